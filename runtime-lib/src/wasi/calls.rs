//! The WASI preview1 functions as safe Rust: each takes the context, a bounds-checked
//! view of guest memory and the raw wasm arguments, writes its results into guest
//! memory, and returns `Ok(())` or the errno. The `extern "C"` entry points in
//! `host.rs` are one-line wrappers over these, so all of this is unit-testable
//! without wasm.
//!
//! Behaviour follows `wasmtime run` (its preview1 implementation over cap-std):
//! errno choices in odd cases are wasmtime's, noted where they are not obvious.
//! Result pointers are checked before an operation has side effects, so that a bad
//! pointer cannot, say, open a file and lose its descriptor.

// The functions take the witx parameters one by one, so some have many.
#![allow(clippy::too_many_arguments)]

use std::io;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cap_fs_ext::{
    DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt, SystemTimeSpec,
};
use cap_std::fs::{FileTypeExt, MetadataExt};

use super::ctx::{Descriptor, DirEntry, DirListing, OpenDir, OpenFile, WasiCtx};
use super::memory::GuestMemory;
use super::types::*;

// ---------------------------------------------------------------- args, environ

fn write_string_list(
    mem: &mut GuestMemory<'_>,
    list: &[Vec<u8>],
    ptrs: u32,
    buf: u32,
) -> WasiResult<()> {
    let count = u32::try_from(list.len()).map_err(|_| Errno::OVERFLOW)?;
    let total: usize = list.iter().map(|s| s.len() + 1).sum();
    let total = u32::try_from(total).map_err(|_| Errno::OVERFLOW)?;
    mem.check(ptrs, count.checked_mul(4).ok_or(Errno::FAULT)?)?;
    mem.check(buf, total)?;
    let mut offset = 0u32;
    for (i, s) in list.iter().enumerate() {
        mem.write_u32(ptrs + 4 * i as u32, buf + offset)?;
        mem.write_bytes(buf + offset, s)?;
        offset += s.len() as u32;
        mem.write_u8(buf + offset, 0)?;
        offset += 1;
    }
    Ok(())
}

fn write_sizes(
    mem: &mut GuestMemory<'_>,
    list: &[Vec<u8>],
    count_out: u32,
    size_out: u32,
) -> WasiResult<()> {
    mem.check(count_out, 4)?;
    mem.check(size_out, 4)?;
    let count = u32::try_from(list.len()).map_err(|_| Errno::OVERFLOW)?;
    let total: usize = list.iter().map(|s| s.len() + 1).sum();
    let total = u32::try_from(total).map_err(|_| Errno::OVERFLOW)?;
    mem.write_u32(count_out, count)?;
    mem.write_u32(size_out, total)
}

pub fn args_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    argv: u32,
    buf: u32,
) -> WasiResult<()> {
    write_string_list(mem, &ctx.args, argv, buf)
}

pub fn args_sizes_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    argc: u32,
    size: u32,
) -> WasiResult<()> {
    write_sizes(mem, &ctx.args, argc, size)
}

pub fn environ_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    env: u32,
    buf: u32,
) -> WasiResult<()> {
    write_string_list(mem, &ctx.env, env, buf)
}

pub fn environ_sizes_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    count: u32,
    size: u32,
) -> WasiResult<()> {
    write_sizes(mem, &ctx.env, count, size)
}

// ---------------------------------------------------------------- clocks, random

pub fn clock_res_get(
    _ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    id: u32,
    out: u32,
) -> WasiResult<()> {
    mem.check(out, 8)?;
    let res = match id {
        // wasmtime reports 1 ns for both host clocks.
        CLOCK_REALTIME | CLOCK_MONOTONIC => 1,
        // wasmtime does not provide the CPU-time clocks and answers EBADF.
        CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => return Err(Errno::BADF),
        _ => return Err(Errno::INVAL),
    };
    mem.write_u64(out, res)
}

fn realtime_now() -> WasiResult<u64> {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Errno::OVERFLOW)?;
    u64::try_from(d.as_nanos()).map_err(|_| Errno::OVERFLOW)
}

fn monotonic_now(ctx: &WasiCtx) -> u64 {
    u64::try_from(ctx.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

pub fn clock_time_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    id: u32,
    _precision: u64,
    out: u32,
) -> WasiResult<()> {
    mem.check(out, 8)?;
    let now = match id {
        CLOCK_REALTIME => realtime_now()?,
        CLOCK_MONOTONIC => monotonic_now(ctx),
        CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => return Err(Errno::BADF),
        _ => return Err(Errno::INVAL),
    };
    mem.write_u64(out, now)
}

pub fn random_get(
    _ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    buf: u32,
    len: u32,
) -> WasiResult<()> {
    let dest = mem.slice_mut(buf, len)?;
    fill_random(dest)
}

fn fill_random(mut dest: &mut [u8]) -> WasiResult<()> {
    while !dest.is_empty() {
        // SAFETY: `dest` is a valid writable buffer of `dest.len()` bytes.
        let n = unsafe { libc::getrandom(dest.as_mut_ptr().cast(), dest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err.into());
        }
        dest = &mut dest[n as usize..];
    }
    Ok(())
}

pub fn sched_yield(_ctx: &mut WasiCtx, _mem: &mut GuestMemory<'_>) -> WasiResult<()> {
    std::thread::yield_now();
    Ok(())
}

/// wasmtime does not deliver signals to the guest: `ENOTSUP`.
pub fn proc_raise(_ctx: &mut WasiCtx, _mem: &mut GuestMemory<'_>, sig: u32) -> WasiResult<()> {
    // `signal` defines 0..=30.
    if sig > 30 {
        return Err(Errno::INVAL);
    }
    Err(Errno::NOTSUP)
}

// ---------------------------------------------------------------- sockets

/// Preview1 sockets only exist when the embedder passes them in; `wasmtime run`
/// never does, so every descriptor answers `ENOTSOCK` (unknown ones `EBADF`).
fn not_a_socket(ctx: &WasiCtx, fd: u32) -> WasiResult<()> {
    ctx.get(fd)?;
    Err(Errno::NOTSOCK)
}

pub fn sock_accept(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    flags: u32,
    _out: u32,
) -> WasiResult<()> {
    check_fdflags(flags)?;
    not_a_socket(ctx, fd)
}

pub fn sock_recv(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    _iovs: u32,
    _iovs_len: u32,
    flags: u32,
    _nread: u32,
    _oflags: u32,
) -> WasiResult<()> {
    // riflags: RECV_PEEK | RECV_WAITALL.
    if flags & !3 != 0 {
        return Err(Errno::INVAL);
    }
    not_a_socket(ctx, fd)
}

pub fn sock_send(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    _iovs: u32,
    _iovs_len: u32,
    flags: u32,
    _nwritten: u32,
) -> WasiResult<()> {
    // siflags defines no flag.
    if flags & 0xffff != 0 {
        return Err(Errno::INVAL);
    }
    not_a_socket(ctx, fd)
}

pub fn sock_shutdown(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    how: u32,
) -> WasiResult<()> {
    // sdflags: RD | WR.
    if how & !3 != 0 {
        return Err(Errno::INVAL);
    }
    not_a_socket(ctx, fd)
}

// ---------------------------------------------------------------- argument checks

// wasmtime decodes flags and enums before a call runs and traps on bits or values
// the witx type does not define; wasmc answers EINVAL instead (the guest keeps
// running, as with EFAULT for wild pointers), also before any effect.

fn lookupflags(flags: u32) -> WasiResult<FollowSymlinks> {
    match flags {
        0 => Ok(FollowSymlinks::No),
        LOOKUP_SYMLINK_FOLLOW => Ok(FollowSymlinks::Yes),
        _ => Err(Errno::INVAL),
    }
}

fn check_rights(rights: u64) -> WasiResult<()> {
    if rights & !RIGHTS_ALL != 0 {
        return Err(Errno::INVAL);
    }
    Ok(())
}

fn check_fdflags(flags: u32) -> WasiResult<u16> {
    match u16::try_from(flags) {
        Ok(f) if f & !FDFLAGS_ALL == 0 => Ok(f),
        _ => Err(Errno::INVAL),
    }
}

// ---------------------------------------------------------------- metadata helpers

fn filetype_of(ft: cap_std::fs::FileType) -> u8 {
    if ft.is_dir() {
        FILETYPE_DIRECTORY
    } else if ft.is_file() {
        FILETYPE_REGULAR_FILE
    } else if ft.is_symlink() {
        FILETYPE_SYMBOLIC_LINK
    } else if ft.is_block_device() {
        FILETYPE_BLOCK_DEVICE
    } else if ft.is_char_device() {
        FILETYPE_CHARACTER_DEVICE
    } else if ft.is_socket() {
        FILETYPE_SOCKET_STREAM
    } else {
        // FIFOs have no preview1 code.
        FILETYPE_UNKNOWN
    }
}

/// wasmtime reports a 64-bit hash of (device, inode) as the inode number (and
/// device 1), so that preview1 inode numbers do not expose host ones.
fn metadata_hash(meta: &cap_std::fs::Metadata) -> u64 {
    use std::hash::Hasher;
    #[allow(deprecated)]
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hasher.write_u64(meta.dev());
    hasher.write_u64(meta.ino());
    hasher.finish()
}

/// Nanoseconds since the epoch: 0 for a time before the epoch or one the host cannot
/// give, and `u64::MAX` for a time past 2554-07-21T23:34:33.709551615Z (saturated).
/// wasmtime 49 fails the whole stat with `EOVERFLOW` there instead, so that one odd
/// timestamp (a file touched with a date in 2600, possible on tmpfs, XFS, btrfs)
/// makes a directory listing or `stat` of an otherwise fine file fail; saturating
/// keeps every other field usable. An intended difference (docs/ARCHITECTURE.md).
pub(crate) fn timestamp(t: io::Result<cap_std::time::SystemTime>) -> u64 {
    match t.map(|t| t.into_std().duration_since(UNIX_EPOCH)) {
        Ok(Ok(d)) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        Ok(Err(_)) | Err(_) => 0,
    }
}

fn filestat_of(meta: &cap_std::fs::Metadata) -> WasiResult<Filestat> {
    Ok(Filestat {
        dev: 1,
        ino: metadata_hash(meta),
        filetype: filetype_of(meta.file_type()),
        nlink: meta.nlink(),
        size: meta.len(),
        atim: timestamp(meta.accessed()),
        mtim: timestamp(meta.modified()),
        // wasmtime fills the status-change time from the creation (birth) time.
        ctim: timestamp(meta.created()),
    })
}

// ---------------------------------------------------------------- fd operations

pub fn fd_advise(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    offset: u64,
    len: u64,
    advice: u32,
) -> WasiResult<()> {
    use rustix::fs::Advice;
    let advice = match advice {
        0 => Advice::Normal,
        1 => Advice::Sequential,
        2 => Advice::Random,
        3 => Advice::WillNeed,
        4 => Advice::DontNeed,
        5 => Advice::NoReuse,
        _ => return Err(Errno::INVAL),
    };
    let file = ctx.file(fd)?;
    rustix::fs::fadvise(&file.file, offset, std::num::NonZeroU64::new(len), advice)?;
    Ok(())
}

/// wasmtime no longer implements `fd_allocate`: `ENOTSUP` for files.
pub fn fd_allocate(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    _offset: u64,
    _len: u64,
) -> WasiResult<()> {
    ctx.file(fd)?;
    Err(Errno::NOTSUP)
}

pub fn fd_close(ctx: &mut WasiCtx, _mem: &mut GuestMemory<'_>, fd: u32) -> WasiResult<()> {
    // Dropping the entry closes files and directories. Closing stdio only removes
    // the guest's handle: the process keeps its own descriptors 0-2.
    ctx.remove(fd).map(drop)
}

pub fn fd_datasync(ctx: &mut WasiCtx, _mem: &mut GuestMemory<'_>, fd: u32) -> WasiResult<()> {
    ctx.file(fd)?.file.sync_data()?;
    Ok(())
}

pub fn fd_sync(ctx: &mut WasiCtx, _mem: &mut GuestMemory<'_>, fd: u32) -> WasiResult<()> {
    ctx.file(fd)?.file.sync_all()?;
    Ok(())
}

pub fn fd_fdstat_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    out: u32,
) -> WasiResult<()> {
    mem.check(out, FDSTAT_SIZE)?;
    let tty_type = |isatty: bool| {
        if isatty {
            FILETYPE_CHARACTER_DEVICE
        } else {
            FILETYPE_UNKNOWN
        }
    };
    let (filetype, flags, base, inheriting) = match ctx.get(fd)? {
        Descriptor::Stdin { isatty } => (tty_type(*isatty), 0, RIGHT_FD_READ, RIGHT_FD_READ),
        Descriptor::Stdout { isatty } | Descriptor::Stderr { isatty } => {
            (tty_type(*isatty), 0, RIGHT_FD_WRITE, RIGHT_FD_WRITE)
        }
        Descriptor::Dir(OpenDir {
            preopen: Some(_), ..
        }) => (
            FILETYPE_DIRECTORY,
            0,
            PREOPEN_RIGHTS_BASE,
            PREOPEN_RIGHTS_INHERITING,
        ),
        Descriptor::Dir(d) => {
            let mut rights = RIGHTS_ALL
                & !(RIGHT_FD_SEEK
                    | RIGHT_FD_FILESTAT_SET_SIZE
                    | RIGHT_PATH_FILESTAT_SET_SIZE
                    | RIGHT_FD_WRITE);
            if !d.read {
                rights &= !(RIGHT_FD_READ | RIGHT_FD_READDIR);
            }
            (FILETYPE_DIRECTORY, 0, rights, rights)
        }
        Descriptor::File(f) => {
            let filetype = filetype_of(f.file.metadata()?.file_type());
            let mut rights = RIGHTS_ALL;
            if !f.read {
                rights &= !(RIGHT_FD_READ | RIGHT_FD_READDIR);
            }
            if !f.write {
                rights &= !RIGHT_FD_WRITE;
            }
            let mut flags = 0;
            if f.append {
                flags |= FDFLAGS_APPEND;
            }
            if f.nonblock {
                flags |= FDFLAGS_NONBLOCK;
            }
            (filetype, flags, rights, rights)
        }
    };
    let mut rec = [0u8; FDSTAT_SIZE as usize];
    rec[0] = filetype;
    rec[2..4].copy_from_slice(&flags.to_le_bytes());
    rec[8..16].copy_from_slice(&base.to_le_bytes());
    rec[16..24].copy_from_slice(&inheriting.to_le_bytes());
    mem.write_bytes(out, &rec)
}

/// Only APPEND and NONBLOCK can change (as in wasmtime); the sync flags are `EINVAL`.
pub fn fd_fdstat_set_flags(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    flags: u32,
) -> WasiResult<()> {
    let flags = check_fdflags(flags)?;
    let file = ctx.file_mut(fd)?;
    if flags & (FDFLAGS_DSYNC | FDFLAGS_SYNC | FDFLAGS_RSYNC) != 0 {
        return Err(Errno::INVAL);
    }
    file.append = flags & FDFLAGS_APPEND != 0;
    file.nonblock = flags & FDFLAGS_NONBLOCK != 0;
    Ok(())
}

/// Rights cannot be changed: wasmtime answers `ENOTSUP` for files and directories
/// and `EBADF` for stdio.
pub fn fd_fdstat_set_rights(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    base: u64,
    inheriting: u64,
) -> WasiResult<()> {
    check_rights(base)?;
    check_rights(inheriting)?;
    match ctx.get(fd)? {
        Descriptor::File(_) | Descriptor::Dir(_) => Err(Errno::NOTSUP),
        _ => Err(Errno::BADF),
    }
}

pub fn fd_filestat_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    out: u32,
    flavor: Flavor,
) -> WasiResult<()> {
    mem.check(out, filestat_size(flavor))?;
    let stat = match ctx.get(fd)? {
        Descriptor::Stdin { isatty }
        | Descriptor::Stdout { isatty }
        | Descriptor::Stderr { isatty } => Filestat {
            filetype: if *isatty {
                FILETYPE_CHARACTER_DEVICE
            } else {
                FILETYPE_UNKNOWN
            },
            ..Filestat::default()
        },
        Descriptor::File(f) => filestat_of(&f.file.metadata()?)?,
        Descriptor::Dir(d) => filestat_of(&d.dir.dir_metadata()?)?,
    };
    mem.write_bytes(out, &stat.encode(flavor))
}

pub fn fd_filestat_set_size(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    size: u64,
) -> WasiResult<()> {
    ctx.file(fd)?.file.set_len(size)?;
    Ok(())
}

/// One timestamp of a set_times call: `None` = leave unchanged.
enum NewTime {
    Now,
    At(u64),
}

fn new_times(atim: u64, mtim: u64, flags: u32) -> WasiResult<(Option<NewTime>, Option<NewTime>)> {
    let flags = u16::try_from(flags).map_err(|_| Errno::INVAL)?;
    if flags & !FSTFLAGS_ALL != 0 {
        return Err(Errno::INVAL);
    }
    let one = |set: u16, now: u16, value: u64| -> WasiResult<Option<NewTime>> {
        match (flags & set != 0, flags & now != 0) {
            (true, true) => Err(Errno::INVAL),
            (true, false) => Ok(Some(NewTime::At(value))),
            (false, true) => Ok(Some(NewTime::Now)),
            (false, false) => Ok(None),
        }
    };
    Ok((
        one(FSTFLAGS_ATIM, FSTFLAGS_ATIM_NOW, atim)?,
        one(FSTFLAGS_MTIM, FSTFLAGS_MTIM_NOW, mtim)?,
    ))
}

fn timespec_of(t: &Option<NewTime>) -> rustix::fs::Timespec {
    match t {
        None => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        Some(NewTime::Now) => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        Some(NewTime::At(ns)) => rustix::fs::Timespec {
            tv_sec: (ns / 1_000_000_000) as i64,
            tv_nsec: (ns % 1_000_000_000) as _,
        },
    }
}

fn system_time_spec(t: &Option<NewTime>) -> WasiResult<Option<SystemTimeSpec>> {
    Ok(match t {
        None => None,
        Some(NewTime::Now) => Some(SystemTimeSpec::SymbolicNow),
        Some(NewTime::At(ns)) => {
            let t = UNIX_EPOCH
                .checked_add(Duration::from_nanos(*ns))
                .ok_or(Errno::OVERFLOW)?;
            Some(SystemTimeSpec::Absolute(
                cap_std::time::SystemTime::from_std(t),
            ))
        }
    })
}

pub fn fd_filestat_set_times(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    atim: u64,
    mtim: u64,
    flags: u32,
) -> WasiResult<()> {
    let (a, m) = new_times(atim, mtim, flags)?;
    let times = rustix::fs::Timestamps {
        last_access: timespec_of(&a),
        last_modification: timespec_of(&m),
    };
    match ctx.get(fd)? {
        Descriptor::File(f) => rustix::fs::futimens(&f.file, &times)?,
        // cap-std holds directories as O_PATH descriptors, which futimens
        // refuses (EBADF). wasmtime's preopens are O_PATH too (EBADF, kept), but
        // the directories it opens later are not: "." relative to the directory
        // is the directory.
        Descriptor::Dir(d) if d.preopen.is_some() => rustix::fs::futimens(&d.dir, &times)?,
        Descriptor::Dir(d) => {
            rustix::fs::utimensat(&d.dir, ".", &times, rustix::fs::AtFlags::empty())?
        }
        _ => return Err(Errno::BADF),
    }
    Ok(())
}

/// Reads into the first non-empty iovec only (one host read), as wasmtime does.
pub fn fd_read(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    out: u32,
) -> WasiResult<()> {
    mem.check(out, 4)?;
    let (ptr, len) = mem.first_nonempty_iovec(iovs, iovs_len)?;
    let n = match ctx.get_mut(fd)? {
        Descriptor::File(f) => {
            let buf = mem.slice_mut(ptr, len)?;
            let n = retry_intr(|| rustix::io::pread(&f.file, &mut *buf, f.position))?;
            f.position = f.position.checked_add(n as u64).ok_or(Errno::OVERFLOW)?;
            n
        }
        // wasmtime's stdin answers a read of nothing (every iovec empty) with
        // EINTR.
        Descriptor::Stdin { .. } if len == 0 => return Err(Errno::INTR),
        Descriptor::Stdin { .. } => {
            let buf = mem.slice_mut(ptr, len)?;
            read_stdin(buf)?
        }
        _ => return Err(Errno::BADF),
    };
    mem.write_u32(out, n as u32)
}

pub fn fd_pread(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    offset: u64,
    out: u32,
) -> WasiResult<()> {
    mem.check(out, 4)?;
    let (ptr, len) = mem.first_nonempty_iovec(iovs, iovs_len)?;
    let n = match ctx.get(fd)? {
        Descriptor::File(f) => {
            let buf = mem.slice_mut(ptr, len)?;
            retry_intr(|| rustix::io::pread(&f.file, &mut *buf, offset))?
        }
        Descriptor::Stdin { .. } => return Err(Errno::SPIPE),
        _ => return Err(Errno::BADF),
    };
    mem.write_u32(out, n as u32)
}

fn retry_intr<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> WasiResult<T> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other.map_err(Errno::from),
        }
    }
}

fn read_stdin(buf: &mut [u8]) -> WasiResult<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    loop {
        // SAFETY: `buf` is a valid writable buffer; fd 0 is the process's stdin.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err.into());
        }
    }
}

/// Writes all of `data` to the process's descriptor `fd` (1 or 2), unbuffered,
/// looping on short writes.
fn write_stdio(fd: i32, mut data: &[u8]) -> WasiResult<()> {
    while !data.is_empty() {
        // SAFETY: `data` is a valid readable buffer; `fd` is the process's stdout
        // or stderr.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err.into());
        }
        data = &data[n as usize..];
    }
    Ok(())
}

/// Writes all of `data` at `offset` (or at the end of the file when `append`),
/// returning the offset after the data.
fn write_file_all(
    file: &cap_std::fs::File,
    mut data: &[u8],
    append: bool,
    mut offset: u64,
) -> WasiResult<u64> {
    if append {
        // The host file is not opened O_APPEND (the guest can toggle the flag), so
        // append means "at the current end".
        offset = file.metadata()?.len();
    }
    while !data.is_empty() {
        let n = retry_intr(|| rustix::io::pwrite(file, data, offset))?;
        if n == 0 {
            return Err(Errno::IO);
        }
        data = &data[n..];
        offset = offset.checked_add(n as u64).ok_or(Errno::FBIG)?;
    }
    Ok(offset)
}

/// `fd_write` / `fd_pwrite`: like wasmtime, one call writes the first non-empty
/// ciovec (completely) and reports its length; callers such as wasi-libc's
/// `writev` loop for the rest. Writing more would change what a guest that checks
/// `nwritten` observes (wasmtime's recorded output shows it).
fn write_impl(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    at: Option<u64>,
    out: u32,
) -> WasiResult<()> {
    mem.check(out, 4)?;
    let (ptr, len) = mem.first_nonempty_iovec(iovs, iovs_len)?;
    let data = mem.slice(ptr, len)?;
    match ctx.get_mut(fd)? {
        // Refused even for an empty write, which the host would accept (wasmtime
        // checks the descriptor first).
        Descriptor::File(f) if !f.write => return Err(Errno::BADF),
        Descriptor::File(f) => {
            // Linux pwrite semantics: the offset is ignored in append mode.
            let pos = write_file_all(&f.file, data, f.append, at.unwrap_or(f.position))?;
            if at.is_none() {
                f.position = pos;
            }
        }
        Descriptor::Stdout { .. } | Descriptor::Stderr { .. } if at.is_some() => {
            return Err(Errno::SPIPE);
        }
        Descriptor::Stdout { .. } => write_stdio(1, data)?,
        Descriptor::Stderr { .. } => write_stdio(2, data)?,
        _ => return Err(Errno::BADF),
    }
    mem.write_u32(out, len)
}

pub fn fd_write(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    out: u32,
) -> WasiResult<()> {
    write_impl(ctx, mem, fd, iovs, iovs_len, None, out)
}

pub fn fd_pwrite(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    offset: u64,
    out: u32,
) -> WasiResult<()> {
    write_impl(ctx, mem, fd, iovs, iovs_len, Some(offset), out)
}

pub fn fd_prestat_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    out: u32,
) -> WasiResult<()> {
    mem.check(out, PRESTAT_SIZE)?;
    match ctx.get(fd)? {
        Descriptor::Dir(OpenDir {
            preopen: Some(name),
            ..
        }) => {
            let len = u32::try_from(name.len()).map_err(|_| Errno::OVERFLOW)?;
            let mut rec = [0u8; PRESTAT_SIZE as usize];
            rec[4..8].copy_from_slice(&len.to_le_bytes());
            mem.write_bytes(out, &rec)
        }
        _ => Err(Errno::BADF),
    }
}

pub fn fd_prestat_dir_name(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    path: u32,
    max_len: u32,
) -> WasiResult<()> {
    match ctx.get(fd)? {
        Descriptor::Dir(OpenDir {
            preopen: Some(name),
            ..
        }) => {
            if name.len() > max_len as usize {
                return Err(Errno::NAMETOOLONG);
            }
            mem.write_bytes(path, name.as_bytes())
        }
        // wasmtime's (legacy) answer for descriptors that are not preopens.
        _ => Err(Errno::NOTDIR),
    }
}

/// Moves `from` to `to`, closing what `to` held. Both must be open (`EBADF`
/// otherwise, as wasmtime answers).
pub fn fd_renumber(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    from: u32,
    to: u32,
) -> WasiResult<()> {
    if !ctx.fds.contains_key(&from) || !ctx.fds.contains_key(&to) {
        return Err(Errno::BADF);
    }
    if from != to {
        let desc = ctx.remove(from)?;
        ctx.free_fds.remove(&to);
        ctx.fds.insert(to, desc);
    }
    Ok(())
}

pub fn fd_seek(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    offset: i64,
    whence: u32,
    out: u32,
    flavor: Flavor,
) -> WasiResult<()> {
    mem.check(out, 8)?;
    let whence = Whence::decode(whence, flavor)?;
    let file = ctx.seekable_mut(fd)?;
    let pos = match whence {
        Whence::Set => u64::try_from(offset).map_err(|_| Errno::INVAL)?,
        Whence::Cur => file
            .position
            .checked_add_signed(offset)
            .ok_or(Errno::INVAL)?,
        Whence::End => {
            let size = file.file.metadata()?.len();
            size.checked_add_signed(offset).ok_or(Errno::INVAL)?
        }
    };
    file.position = pos;
    mem.write_u64(out, pos)
}

pub fn fd_tell(ctx: &mut WasiCtx, mem: &mut GuestMemory<'_>, fd: u32, out: u32) -> WasiResult<()> {
    mem.check(out, 8)?;
    let pos = ctx.seekable_mut(fd)?.position;
    mem.write_u64(out, pos)
}

/// The names and types of a directory's entries, in the host's order (one
/// `getdents` pass, no stat).
pub(crate) fn list_names(dir: &cap_std::fs::Dir) -> WasiResult<Vec<String>> {
    let mut names = Vec::new();
    for entry in dir.entries()? {
        let entry = entry?;
        // wasmtime fails the listing on a name that is not UTF-8.
        let name = entry.file_name().into_string().map_err(|_| Errno::ILSEQ)?;
        names.push(name);
    }
    Ok(names)
}

/// Stats each listed name once (the inode hash and type, without following
/// symlinks, as wasmtime). A name that vanished since it was listed (removed or
/// renamed by someone else meanwhile) is left out instead of failing the whole
/// listing: the guest sees the directory as it is after the removal.
pub(crate) fn build_listing(dir: &cap_std::fs::Dir, names: Vec<String>) -> WasiResult<DirListing> {
    let own = metadata_hash(&dir.dir_metadata()?);
    let mut entries = Vec::with_capacity(names.len() + 2);
    entries.push(DirEntry {
        ino: own,
        filetype: FILETYPE_DIRECTORY,
        name: Box::from(&b"."[..]),
    });
    // wasmtime reports the directory's own inode for ".." too.
    entries.push(DirEntry {
        ino: own,
        filetype: FILETYPE_DIRECTORY,
        name: Box::from(&b".."[..]),
    });
    for name in names {
        let meta = match dir.symlink_metadata(&name) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        entries.push(DirEntry {
            ino: metadata_hash(&meta),
            filetype: filetype_of(meta.file_type()),
            name: name.into_bytes().into_boxed_slice(),
        });
    }
    Ok(DirListing { entries })
}

/// Copies as much of `src` as fits at `dst[*used..]`; false once `dst` is full.
fn put_truncated(dst: &mut [u8], used: &mut usize, src: &[u8]) -> bool {
    let n = src.len().min(dst.len() - *used);
    dst[*used..*used + n].copy_from_slice(&src[..n]);
    *used += n;
    *used < dst.len()
}

/// Entry `n` of the listing has cookie `n` and `d_next` `n + 1`. Cookie 0 starts
/// a new listing (rewinddir); other cookies continue the descriptor's snapshot,
/// so each entry is read and stat-ed once per listing however small the buffer.
pub fn fd_readdir(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    buf: u32,
    buf_len: u32,
    cookie: u64,
    out: u32,
) -> WasiResult<()> {
    mem.check(out, 4)?;
    mem.check(buf, buf_len)?;
    let dir = ctx.dir_mut(fd)?;
    if cookie == 0 {
        dir.listing = None;
    }
    let listing = match &mut dir.listing {
        Some(listing) => listing,
        slot @ None => slot.insert(build_listing(&dir.dir, list_names(&dir.dir)?)?),
    };
    // Fill the buffer with (header, name) pairs in place, truncating the last one
    // that does not fit: a full buffer tells the guest to call again with a larger
    // one or the last complete entry's d_next.
    let start = usize::try_from(cookie).unwrap_or(usize::MAX);
    let dst = mem.slice_mut(buf, buf_len)?;
    let mut used = 0;
    if !dst.is_empty() {
        for (i, entry) in listing.entries.iter().enumerate().skip(start) {
            let mut header = [0u8; DIRENT_SIZE];
            header[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            header[8..16].copy_from_slice(&entry.ino.to_le_bytes());
            header[16..20].copy_from_slice(&(entry.name.len() as u32).to_le_bytes());
            header[20] = entry.filetype;
            if !put_truncated(dst, &mut used, &header)
                || !put_truncated(dst, &mut used, &entry.name)
            {
                break;
            }
        }
    }
    mem.write_u32(out, used as u32)
}

// ---------------------------------------------------------------- path operations

/// The longest path argument that is read, in bytes. Linux refuses a path of
/// `PATH_MAX` (4096) bytes or more with `ENAMETOOLONG` anyway (and so did every
/// longer path tried through cap-std); the bound, well above that, keeps a guest
/// from making the host copy gigabytes of its memory for one call.
const MAX_PATH_ARG: u32 = 1 << 16;

fn path_arg(mem: &GuestMemory<'_>, ptr: u32, len: u32) -> WasiResult<String> {
    mem.check(ptr, len)?;
    if len > MAX_PATH_ARG {
        return Err(Errno::NAMETOOLONG);
    }
    mem.read_str(ptr, len)
}

pub fn path_create_directory(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    path: u32,
    path_len: u32,
) -> WasiResult<()> {
    let dir = ctx.dir(fd)?;
    let path = path_arg(mem, path, path_len)?;
    dir.dir.create_dir(&path)?;
    Ok(())
}

pub fn path_filestat_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    flags: u32,
    path: u32,
    path_len: u32,
    out: u32,
    flavor: Flavor,
) -> WasiResult<()> {
    mem.check(out, filestat_size(flavor))?;
    let follow = lookupflags(flags)?;
    let dir = ctx.dir(fd)?;
    let path = path_arg(mem, path, path_len)?;
    let meta = match follow {
        FollowSymlinks::Yes => dir.dir.metadata(&path)?,
        FollowSymlinks::No => dir.dir.symlink_metadata(&path)?,
    };
    mem.write_bytes(out, &filestat_of(&meta)?.encode(flavor))
}

pub fn path_filestat_set_times(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    flags: u32,
    path: u32,
    path_len: u32,
    atim: u64,
    mtim: u64,
    fst_flags: u32,
) -> WasiResult<()> {
    let follow = lookupflags(flags)?;
    let (a, m) = new_times(atim, mtim, fst_flags)?;
    let dir = ctx.dir(fd)?;
    let path = path_arg(mem, path, path_len)?;
    let (a, m) = (system_time_spec(&a)?, system_time_spec(&m)?);
    match follow {
        FollowSymlinks::Yes => dir.dir.set_times(&path, a, m)?,
        FollowSymlinks::No => dir.dir.set_symlink_times(&path, a, m)?,
    }
    Ok(())
}

pub fn path_link(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    old_fd: u32,
    old_flags: u32,
    old_path: u32,
    old_len: u32,
    new_fd: u32,
    new_path: u32,
    new_len: u32,
) -> WasiResult<()> {
    let follow = lookupflags(old_flags)?;
    let old_dir = ctx.dir(old_fd)?;
    let new_dir = ctx.dir(new_fd)?;
    let old_path = path_arg(mem, old_path, old_len)?;
    let new_path = path_arg(mem, new_path, new_len)?;
    // wasmtime refuses to follow a symlink source here.
    if follow == FollowSymlinks::Yes {
        return Err(Errno::INVAL);
    }
    old_dir.dir.hard_link(&old_path, &new_dir.dir, &new_path)?;
    Ok(())
}

pub fn path_open(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    dirflags: u32,
    path: u32,
    path_len: u32,
    oflags: u32,
    rights_base: u64,
    rights_inheriting: u64,
    fdflags: u32,
    out: u32,
) -> WasiResult<()> {
    mem.check(out, 4)?;
    let follow = lookupflags(dirflags)?;
    check_rights(rights_base)?;
    check_rights(rights_inheriting)?;
    let fdflags = check_fdflags(fdflags)?;
    let path = path_arg(mem, path, path_len)?;
    let oflags = u16::try_from(oflags).map_err(|_| Errno::INVAL)?;
    if oflags & !OFLAGS_ALL != 0 {
        return Err(Errno::INVAL);
    }
    let dir = match ctx.get(fd)? {
        Descriptor::Dir(d) => d,
        Descriptor::File(_) => return Err(Errno::NOTDIR),
        _ => return Err(Errno::BADF),
    };
    // wasmtime does not support the sync flags at open: ENOTSUP, before anything
    // is created or truncated.
    if fdflags & (FDFLAGS_DSYNC | FDFLAGS_RSYNC | FDFLAGS_SYNC) != 0 {
        return Err(Errno::NOTSUP);
    }
    let write_right = rights_base & RIGHT_FD_WRITE != 0;
    // The host open mode, which is what wasmtime reports back as the descriptor's
    // FD_READ / FD_WRITE rights: CREAT and TRUNC open for writing, and a
    // descriptor not opened for writing is opened for reading.
    let read = rights_base & RIGHT_FD_READ != 0 || !write_right;
    let write = write_right || oflags & (OFLAGS_CREAT | OFLAGS_TRUNC) != 0;
    let directory = oflags & OFLAGS_DIRECTORY != 0;

    if directory {
        // A directory cannot be created, required new or truncated by path_open;
        // refused before anything is opened (wasmtime: EINVAL), so that the flags
        // never truncate or create a regular file first.
        if oflags & (OFLAGS_CREAT | OFLAGS_EXCL | OFLAGS_TRUNC) != 0 {
            return Err(Errno::INVAL);
        }
        // Without SYMLINK_FOLLOW a symlink is ELOOP as in wasmtime (which opens
        // with O_NOFOLLOW first; O_DIRECTORY | O_NOFOLLOW says ENOTDIR).
        if follow == FollowSymlinks::No
            && !path.ends_with('/')
            && dir
                .dir
                .symlink_metadata(&path)
                .is_ok_and(|m| m.is_symlink())
        {
            return Err(Errno::LOOP);
        }
        // Opened as a directory only (O_DIRECTORY): a regular file, a FIFO or a
        // device is refused by the host with ENOTDIR without being opened.
        let opened = match follow {
            FollowSymlinks::Yes => dir.dir.open_dir(&path),
            FollowSymlinks::No => dir.dir.open_dir_nofollow(&path),
        }?;
        // wasmtime opens it for writing as asked, which a directory refuses.
        if write {
            return Err(Errno::ISDIR);
        }
        let new_fd = ctx.push(Descriptor::Dir(OpenDir::new(opened, None, read)))?;
        return mem.write_u32(out, new_fd);
    }

    let mut opts = cap_std::fs::OpenOptions::new();
    opts.follow(follow);
    if oflags & OFLAGS_CREAT != 0 {
        if oflags & OFLAGS_EXCL != 0 {
            opts.create_new(true);
        } else {
            opts.create(true);
        }
        opts.write(true);
    }
    if oflags & OFLAGS_TRUNC != 0 {
        opts.truncate(true).write(true);
    }
    if write {
        opts.write(true);
    }
    if read {
        opts.read(true);
    }
    opts.maybe_dir(true);

    let file = dir.dir.open_with(&path, &opts)?;
    let is_dir = file.metadata()?.is_dir();
    let desc = if is_dir {
        Descriptor::Dir(OpenDir::new(
            cap_std::fs::Dir::from_std_file(file.into_std()),
            None,
            read,
        ))
    } else {
        Descriptor::File(OpenFile {
            file,
            position: 0,
            append: fdflags & FDFLAGS_APPEND != 0,
            nonblock: fdflags & FDFLAGS_NONBLOCK != 0,
            read,
            write,
        })
    };
    let new_fd = ctx.push(desc)?;
    mem.write_u32(out, new_fd)
}

pub fn path_readlink(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    path: u32,
    path_len: u32,
    buf: u32,
    buf_len: u32,
    out: u32,
) -> WasiResult<()> {
    mem.check(out, 4)?;
    mem.check(buf, buf_len)?;
    let dir = ctx.dir(fd)?;
    let path = path_arg(mem, path, path_len)?;
    let target = dir.dir.read_link(&path)?;
    let target = target
        .into_os_string()
        .into_string()
        .map_err(|_| Errno::ILSEQ)?;
    // Truncated to the buffer, without a terminator (POSIX readlink).
    let bytes = &target.as_bytes()[..target.len().min(buf_len as usize)];
    mem.write_bytes(buf, bytes)?;
    mem.write_u32(out, bytes.len() as u32)
}

pub fn path_remove_directory(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    path: u32,
    path_len: u32,
) -> WasiResult<()> {
    let dir = ctx.dir(fd)?;
    let path = path_arg(mem, path, path_len)?;
    dir.dir.remove_dir(&path)?;
    Ok(())
}

/// The directory part of a relative path ("." for a bare name).
fn parent_of(path: &str) -> &str {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/",
        Some((parent, _)) => parent,
        None => ".",
    }
}

pub fn path_rename(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    old_fd: u32,
    old_path: u32,
    old_len: u32,
    new_fd: u32,
    new_path: u32,
    new_len: u32,
) -> WasiResult<()> {
    let old_dir = ctx.dir(old_fd)?;
    let new_dir = ctx.dir(new_fd)?;
    let old_path = path_arg(mem, old_path, old_len)?;
    let new_path = path_arg(mem, new_path, new_len)?;
    rename_at(&old_dir.dir, &old_path, &new_dir.dir, &new_path)?;
    Ok(())
}

/// Renames as wasmtime does; shared with WASI 0.2's `rename-at`. A trailing slash
/// names a directory: renaming anything else with one is ENOTDIR (wasmtime), where
/// cap-std would drop the slash and rename. Checked after the parents resolve
/// inside the sandbox, so that escapes stay EPERM.
pub(crate) fn rename_at(
    old_dir: &cap_std::fs::Dir,
    old_path: &str,
    new_dir: &cap_std::fs::Dir,
    new_path: &str,
) -> io::Result<()> {
    if old_path.ends_with('/') || new_path.ends_with('/') {
        // Absolute paths and a last component that is empty, "." or ".." are left
        // to cap-std (EPERM, ENOENT...), as wasmtime answers those first.
        // So are over-long names (ENAMETOOLONG) and NUL bytes (EINVAL).
        let plain = |p: &str| {
            !p.starts_with('/')
                && !p.contains('\0')
                && p.len() < 4096
                && p.split('/').all(|c| c.len() <= 255)
                && !matches!(
                    p.trim_end_matches('/').rsplit('/').next(),
                    Some("" | "." | "..")
                )
        };
        if plain(old_path) && plain(new_path) {
            old_dir.metadata(parent_of(old_path))?;
            new_dir.metadata(parent_of(new_path))?;
            if old_dir
                .symlink_metadata(old_path)
                .is_ok_and(|m| !m.is_dir())
            {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
        }
    }
    old_dir.rename(old_path, new_dir, new_path)
}

/// Creates a symlink. An absolute target is refused (cap-std, like wasmtime), so a
/// guest cannot plant a link that would lead outside its directories.
pub fn path_symlink(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    old_path: u32,
    old_len: u32,
    fd: u32,
    new_path: u32,
    new_len: u32,
) -> WasiResult<()> {
    let dir = ctx.dir(fd)?;
    let old_path = path_arg(mem, old_path, old_len)?;
    let new_path = path_arg(mem, new_path, new_len)?;
    dir.dir.symlink(&old_path, &new_path)?;
    Ok(())
}

pub fn path_unlink_file(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    path: u32,
    path_len: u32,
) -> WasiResult<()> {
    let dir = ctx.dir(fd)?;
    let path = path_arg(mem, path, path_len)?;
    dir.dir.remove_file(&path)?;
    Ok(())
}

// ---------------------------------------------------------------- poll_oneoff

enum Sub {
    /// A clock that fires at `deadline`.
    Clock { deadline: Instant },
    /// stdin readability (the only host descriptor that can block).
    StdinRead,
    /// Always ready: regular files and stdout/stderr. `hangup` marks a file read
    /// at or past its end.
    Ready { eventtype: u8, hangup: bool },
    /// The only subscription is a relative timer: a plain sleep.
    Sleep(u64),
}

/// The clock readings a `poll_oneoff` call converts absolute timeouts with, taken
/// once so that decoding a subscription twice gives the same deadline.
struct PollClocks {
    start: Instant,
    monotonic: u64,
    realtime: WasiResult<u64>,
}

/// Decodes the subscription at `at` (its userdata and what it waits for),
/// straight from guest memory. `lone`: it is the call's only subscription.
fn decode_sub(
    ctx: &WasiCtx,
    mem: &GuestMemory<'_>,
    at: u32,
    clocks: &PollClocks,
    flavor: Flavor,
    lone: bool,
) -> WasiResult<(u64, Sub)> {
    // Offsets of the clock fields within the union (see `subscription_size`).
    let clock_base = match flavor {
        Flavor::Preview1 => 16,
        Flavor::Unstable => 24,
    };
    let userdata = mem.read_u64(at)?;
    let tag = mem.slice(at + 8, 1)?[0];
    match tag {
        0 => {
            let id = mem.read_u32(at + clock_base)?;
            let timeout = mem.read_u64(at + clock_base + 8)?;
            let flags = mem.read_u16(at + clock_base + 24)?;
            // Not a `clockid` (wasmtime traps), or unknown flags.
            if id > CLOCK_THREAD_CPUTIME || flags & !SUBCLOCKFLAGS_ABSTIME != 0 {
                return Err(Errno::INVAL);
            }
            let absolute = flags & SUBCLOCKFLAGS_ABSTIME != 0;
            if lone && !absolute {
                // A lone relative timer is a plain sleep (on any of the four
                // clocks, as in wasmtime).
                return Ok((userdata, Sub::Sleep(timeout)));
            }
            let wait = match (id, absolute) {
                (CLOCK_MONOTONIC | CLOCK_REALTIME, false) => timeout,
                (CLOCK_MONOTONIC, true) => timeout.saturating_sub(clocks.monotonic),
                (CLOCK_REALTIME, true) => timeout.saturating_sub(clocks.realtime?),
                _ => return Err(Errno::INVAL),
            };
            let deadline = clocks
                .start
                .checked_add(Duration::from_nanos(wait))
                .unwrap_or(clocks.start + Duration::from_secs(u32::MAX as u64));
            Ok((userdata, Sub::Clock { deadline }))
        }
        1 | 2 => {
            let fd = mem.read_u32(at + 16)?;
            let sub = match (tag, ctx.get(fd)?) {
                (1, Descriptor::Stdin { .. }) => Sub::StdinRead,
                (1, Descriptor::File(f)) => {
                    let size = f.file.metadata()?.len();
                    Sub::Ready {
                        eventtype: EVENTTYPE_FD_READ,
                        hangup: size <= f.position,
                    }
                }
                (
                    2,
                    Descriptor::Stdout { .. } | Descriptor::Stderr { .. } | Descriptor::File(_),
                ) => Sub::Ready {
                    eventtype: EVENTTYPE_FD_WRITE,
                    hangup: false,
                },
                _ => return Err(Errno::BADF),
            };
            Ok((userdata, sub))
        }
        _ => Err(Errno::INVAL),
    }
}
fn write_event(
    mem: &mut GuestMemory<'_>,
    at: u32,
    userdata: u64,
    eventtype: u8,
    nbytes: u64,
    flags: u16,
) -> WasiResult<()> {
    let mut rec = [0u8; EVENT_SIZE as usize];
    rec[0..8].copy_from_slice(&userdata.to_le_bytes());
    // error (u16 @8) stays 0 = success
    rec[10] = eventtype;
    rec[16..24].copy_from_slice(&nbytes.to_le_bytes());
    rec[24..26].copy_from_slice(&flags.to_le_bytes());
    mem.write_bytes(at, &rec)
}

/// Subscriptions are decoded in place, twice (to wait, then to report), rather
/// than copied: their number is the guest's to choose (up to tens of millions in
/// a 4 GiB memory) and must not size a host allocation.
pub fn poll_oneoff(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    subs_ptr: u32,
    events_ptr: u32,
    nsubs: u32,
    nevents_out: u32,
    flavor: Flavor,
) -> WasiResult<()> {
    mem.check(nevents_out, 4)?;
    if nsubs == 0 {
        // Waiting forever is not supported in preview1 (wasmtime: EINVAL).
        return Err(Errno::INVAL);
    }
    let sub_size = subscription_size(flavor);
    mem.check(subs_ptr, nsubs.checked_mul(sub_size).ok_or(Errno::FAULT)?)?;
    mem.check(
        events_ptr,
        nsubs.checked_mul(EVENT_SIZE).ok_or(Errno::FAULT)?,
    )?;
    let clocks = PollClocks {
        start: Instant::now(),
        monotonic: monotonic_now(ctx),
        realtime: realtime_now(),
    };
    let lone = nsubs == 1;

    // Pass 1: validate every subscription and find how long to wait.
    let mut any_ready = false;
    let mut wants_stdin = false;
    let mut earliest: Option<Instant> = None;
    for i in 0..nsubs {
        match decode_sub(ctx, mem, subs_ptr + i * sub_size, &clocks, flavor, lone)? {
            (userdata, Sub::Sleep(timeout)) => {
                // Not under a threaded program's WASI lock (see `threads::spawn`).
                crate::threads::spawn::sleep_outside_wasi_lock(Duration::from_nanos(timeout));
                // wasmtime reports nbytes 1 for this event (0 for other clocks).
                write_event(mem, events_ptr, userdata, EVENTTYPE_CLOCK, 1, 0)?;
                return mem.write_u32(nevents_out, 1);
            }
            (_, Sub::Clock { deadline }) => {
                earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
            }
            (_, Sub::StdinRead) => wants_stdin = true,
            (_, Sub::Ready { .. }) => any_ready = true,
        }
    }

    let timeout = if any_ready {
        Some(Duration::ZERO)
    } else {
        earliest.map(|d| d.saturating_duration_since(Instant::now()))
    };
    let stdin_ready = if wants_stdin {
        poll_stdin(timeout)?
    } else {
        if let Some(t) = timeout {
            std::thread::sleep(t);
        }
        false
    };

    // Pass 2: report the ready ones, in subscription order. When a descriptor
    // is ready at once, wasmtime returns with the descriptors only: its timers,
    // even ones already past, and stdin (read by a worker thread) are not ready
    // in that first poll (measured with wasmtime run 49).
    let after = Instant::now();
    let mut count = 0u32;
    for i in 0..nsubs {
        let (userdata, sub) = decode_sub(ctx, mem, subs_ptr + i * sub_size, &clocks, flavor, lone)?;
        let event = match sub {
            Sub::Clock { deadline } if !any_ready && deadline <= after => {
                Some((EVENTTYPE_CLOCK, 0, 0))
            }
            Sub::StdinRead if stdin_ready && !any_ready => Some((EVENTTYPE_FD_READ, 1, 0)),
            Sub::Ready { eventtype, hangup } => {
                Some((eventtype, 1, if hangup { EVENTRWFLAGS_HANGUP } else { 0 }))
            }
            _ => None,
        };
        if let Some((eventtype, nbytes, flags)) = event {
            // count <= i < nsubs: inside the events array checked above.
            write_event(
                mem,
                events_ptr + count * EVENT_SIZE,
                userdata,
                eventtype,
                nbytes,
                flags,
            )?;
            count += 1;
        }
    }
    mem.write_u32(nevents_out, count)
}

/// Waits until stdin is readable (or at end of file) or `timeout` passes.
fn poll_stdin(timeout: Option<Duration>) -> WasiResult<bool> {
    let mut pfd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let ts = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            libc::timespec {
                tv_sec: left.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: left.subsec_nanos() as _,
            }
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `pfd` is one valid pollfd; `ts_ptr` is null or points at a live
        // timespec; no signal mask is passed.
        let n = unsafe { libc::ppoll(&mut pfd, 1, ts_ptr, std::ptr::null()) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err.into());
        }
    }
}
