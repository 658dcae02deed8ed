//! The WASI state of one program: arguments, environment, and the descriptor table
//! (stdio, preopened directories, files and directories the guest opened).
//!
//! Like `wasmtime run`, the guest sees only what it is given: the arguments after
//! the runtime options, the variables named with `--env`, and the directories
//! named with `--dir`/`--mapdir` (see `crate::command_line`). Each preopen is opened once with ambient
//! authority (`cap_std::fs::Dir::open_ambient_dir`); every later path operation is
//! relative to such a `Dir` and cap-std refuses to leave it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use cap_std::ambient_authority;

use super::types::{Errno, WasiResult};

/// One entry of the descriptor table.
pub(crate) enum Descriptor {
    Stdin { isatty: bool },
    Stdout { isatty: bool },
    Stderr { isatty: bool },
    File(OpenFile),
    Dir(OpenDir),
}

pub(crate) struct OpenFile {
    pub file: cap_std::fs::File,
    /// The file offset, kept here (reads and writes are positioned), so that seeking
    /// past the end or in append mode behaves as in wasmtime.
    pub position: u64,
    pub append: bool,
    pub nonblock: bool,
    /// The host open mode (from the rights and CREAT/TRUNC, as wasmtime): what
    /// `fd_fdstat_get` reports as FD_READ / FD_WRITE; writes need `write`.
    pub read: bool,
    pub write: bool,
}

pub(crate) struct OpenDir {
    pub dir: cap_std::fs::Dir,
    /// The name the guest sees for a preopen; `None` for directories opened later.
    pub preopen: Option<String>,
    pub read: bool,
    /// The snapshot `fd_readdir` serves cookies from (see [`DirListing`]).
    pub listing: Option<DirListing>,
}

impl OpenDir {
    pub fn new(dir: cap_std::fs::Dir, preopen: Option<String>, read: bool) -> OpenDir {
        OpenDir {
            dir,
            preopen,
            read,
            listing: None,
        }
    }
}

/// The entries of a directory as `fd_readdir` numbers them: ".", "..", then the
/// host's entries in the host's order; cookie `n` means "start at entry n".
///
/// Built once per listing (when a guest starts at cookie 0, or continues on a
/// descriptor without one) and then served from memory: re-reading and stat-ing
/// the whole directory on every call, as wasmtime does, costs quadratic time for
/// a large directory listed through a small buffer.
pub(crate) struct DirListing {
    pub entries: Vec<DirEntry>,
}

pub(crate) struct DirEntry {
    /// The hash wasmtime reports as the inode number.
    pub ino: u64,
    pub filetype: u8,
    pub name: Box<[u8]>,
}

/// WASI preview1 state; attached to the instance as its host state.
pub struct WasiCtx {
    pub(crate) args: Vec<Vec<u8>>,
    pub(crate) env: Vec<Vec<u8>>,
    pub(crate) fds: BTreeMap<u32, Descriptor>,
    pub(crate) free_fds: BTreeSet<u32>,
    /// Origin of the monotonic clock (wasmtime's starts near zero too).
    pub(crate) start: Instant,
    /// What `proc_exit` does (see [`ProcExit`]).
    pub(crate) proc_exit: ProcExit,
}

/// What WASI `proc_exit` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcExit {
    /// The process (executables).
    Process,
    /// Only the current wasm call, which returns as a trap; the status is kept in
    /// the context for [`WasiCtx::take_exit_status`] (embedded libraries: the host
    /// process goes on).
    Call(Option<u32>),
}

/// Builds a [`WasiCtx`] programmatically (tests, embedders).
pub struct WasiCtxBuilder {
    args: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    preopens: Vec<(cap_std::fs::Dir, String)>,
    exit_ends_call: bool,
}

impl Default for WasiCtxBuilder {
    fn default() -> Self {
        WasiCtxBuilder::new()
    }
}

impl WasiCtxBuilder {
    pub fn new() -> WasiCtxBuilder {
        WasiCtxBuilder {
            args: Vec::new(),
            env: Vec::new(),
            preopens: Vec::new(),
            exit_ends_call: false,
        }
    }

    /// Makes `proc_exit` end only the wasm call instead of the process (see
    /// [`ProcExit::Call`]).
    pub fn proc_exit_ends_call(mut self) -> Self {
        self.exit_ends_call = true;
        self
    }

    /// Appends one argument (the first one is the guest's argv[0]).
    pub fn arg(mut self, arg: impl AsRef<[u8]>) -> Self {
        self.args.push(arg.as_ref().to_vec());
        self
    }

    pub fn env(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        let mut var = name.as_ref().to_vec();
        var.push(b'=');
        var.extend_from_slice(value.as_ref());
        self.env.push(var);
        self
    }

    /// Preopens the host directory `host`, shown to the guest as `guest`.
    pub fn preopen_dir(mut self, host: impl AsRef<Path>, guest: &str) -> Result<Self, String> {
        let host = host.as_ref();
        let dir = open_preopen(host)?;
        self.preopens.push((dir, guest.to_string()));
        Ok(self)
    }

    pub fn build(self) -> WasiCtx {
        let mut ctx = WasiCtx {
            args: self.args,
            env: self.env,
            fds: BTreeMap::new(),
            free_fds: BTreeSet::new(),
            start: Instant::now(),
            proc_exit: if self.exit_ends_call {
                ProcExit::Call(None)
            } else {
                ProcExit::Process
            },
        };
        ctx.fds.insert(0, Descriptor::Stdin { isatty: isatty(0) });
        ctx.fds.insert(1, Descriptor::Stdout { isatty: isatty(1) });
        ctx.fds.insert(2, Descriptor::Stderr { isatty: isatty(2) });
        for (i, (dir, name)) in self.preopens.into_iter().enumerate() {
            ctx.fds.insert(
                3 + i as u32,
                Descriptor::Dir(OpenDir::new(dir, Some(name), true)),
            );
        }
        ctx
    }
}

fn isatty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

fn open_preopen(host: &Path) -> Result<cap_std::fs::Dir, String> {
    let meta = std::fs::metadata(host)
        .map_err(|e| format!("cannot open directory '{}': {e}", host.display()))?;
    if !meta.is_dir() {
        return Err(format!(
            "cannot open directory '{}': not a directory",
            host.display()
        ));
    }
    cap_std::fs::Dir::open_ambient_dir(host, ambient_authority())
        .map_err(|e| format!("cannot open directory '{}': {e}", host.display()))
}

impl WasiCtx {
    /// The status of a `proc_exit` that ended the last call (with
    /// [`WasiCtxBuilder::proc_exit_ends_call`]), and forgets it.
    pub fn take_exit_status(&mut self) -> Option<u32> {
        match &mut self.proc_exit {
            ProcExit::Call(status) => status.take(),
            ProcExit::Process => None,
        }
    }

    /// A context with no arguments, environment or preopens.
    pub fn empty() -> WasiCtx {
        WasiCtxBuilder::new().build()
    }

    pub(crate) fn get(&self, fd: u32) -> WasiResult<&Descriptor> {
        self.fds.get(&fd).ok_or(Errno::BADF)
    }

    pub(crate) fn get_mut(&mut self, fd: u32) -> WasiResult<&mut Descriptor> {
        self.fds.get_mut(&fd).ok_or(Errno::BADF)
    }

    /// A regular file (`EBADF` for anything else, as wasmtime).
    pub(crate) fn file(&self, fd: u32) -> WasiResult<&OpenFile> {
        match self.get(fd)? {
            Descriptor::File(f) => Ok(f),
            _ => Err(Errno::BADF),
        }
    }

    pub(crate) fn file_mut(&mut self, fd: u32) -> WasiResult<&mut OpenFile> {
        match self.get_mut(fd)? {
            Descriptor::File(f) => Ok(f),
            _ => Err(Errno::BADF),
        }
    }

    /// A file for seek/tell: stdio is `ESPIPE`, other kinds `EBADF`.
    pub(crate) fn seekable_mut(&mut self, fd: u32) -> WasiResult<&mut OpenFile> {
        match self.get_mut(fd)? {
            Descriptor::File(f) => Ok(f),
            Descriptor::Stdin { .. } | Descriptor::Stdout { .. } | Descriptor::Stderr { .. } => {
                Err(Errno::SPIPE)
            }
            Descriptor::Dir(_) => Err(Errno::BADF),
        }
    }

    /// A directory, for path operations (`EBADF` otherwise, as wasmtime).
    pub(crate) fn dir(&self, fd: u32) -> WasiResult<&OpenDir> {
        match self.get(fd)? {
            Descriptor::Dir(d) => Ok(d),
            _ => Err(Errno::BADF),
        }
    }

    pub(crate) fn dir_mut(&mut self, fd: u32) -> WasiResult<&mut OpenDir> {
        match self.get_mut(fd)? {
            Descriptor::Dir(d) => Ok(d),
            _ => Err(Errno::BADF),
        }
    }

    /// Inserts a descriptor at the highest freed number, else one past the highest
    /// in use (wasmtime's allocation order, so guests see the same numbers).
    pub(crate) fn push(&mut self, desc: Descriptor) -> WasiResult<u32> {
        let fd = if let Some(fd) = self.free_fds.pop_last() {
            fd
        } else {
            match self.fds.last_key_value() {
                Some((&last, _)) => match last.checked_add(1) {
                    Some(fd) => fd,
                    None => (0..u32::MAX)
                        .rev()
                        .find(|fd| !self.fds.contains_key(fd))
                        .ok_or(Errno::NFILE)?,
                },
                None => 0,
            }
        };
        self.fds.insert(fd, desc);
        Ok(fd)
    }

    pub(crate) fn remove(&mut self, fd: u32) -> WasiResult<Descriptor> {
        let desc = self.fds.remove(&fd).ok_or(Errno::BADF)?;
        self.free_fds.insert(fd);
        Ok(desc)
    }
}
