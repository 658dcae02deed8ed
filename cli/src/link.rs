//! Linking a compiled module object with the embedded runtime archive into an
//! executable, with the system or cross gcc driver of the target (see `targets`).
//!
//! The runtime archive defines the C `main` (feature `executable-main`), which
//! references the `wasmc_module` descriptor exported by the module object; the object
//! itself references no runtime symbol. Command lines (`OBJ` = module object):
//!
//! ```text
//! glibc, static:  cc -static-pie -o OUT OBJ -Wl,... --start-group libwasmc_runtime.a
//!                    -lgcc_eh <native libs> --end-group
//! glibc, dynamic: cc -pie -o OUT OBJ -Wl,... libwasmc_runtime.a -lgcc_eh <native libs>
//!                    (only when the static C library is not installed)
//! musl:           cc -nostdlib -static-pie -o OUT rcrt1.o crti.o crtbeginS.o OBJ -Wl,...
//!                    --start-group libwasmc_runtime.a libunwind.a libc.a --end-group
//!                    crtendS.o crtn.o
//! ```
//! (`aarch64-linux-gnu-gcc` instead of `cc` for aarch64 on an x86_64 host; `-lgcc_eh`
//! is the static copy of the unwinder Rust's std asks for as `-lgcc_s`.)
//!
//! *Why static.* A dynamically linked executable spends its start in `ld.so`: mapping
//! libc, resolving the ~90 symbols the runtime imports, relocating, and more page
//! faults (hello world: 337k instructions against 206k for the static PIE, 78
//! page faults against 58; bench/README.md). Every executable is still a PIE, so
//! it is loaded at a random address (ASLR) and its relocated data is read-only
//! after start-up (full RELRO: static glibc and musl apply it too). What static
//! linking costs: the executable is larger (hello world 2.2 MB against 1.3 MB,
//! mostly glibc code that is never paged in) and does not pick up a later glibc
//! security update until it is linked again, as with musl; it ignores
//! `LD_PRELOAD` and `LD_LIBRARY_PATH`. glibc's static library is not installed
//! everywhere (Fedora's glibc-static): when the static link cannot find it, the
//! executable is linked dynamically instead, as before.
//!
//! *Which linker.* The driver is asked for LLVM's lld (`-fuse-ld=lld`) when `ld.lld`
//! is on PATH: it links the 4 MB runtime archive in about half the time of GNU ld
//! (bench/README.md). A native gcc finds `ld.lld` on PATH, but a cross gcc looks only
//! for a prefixed `aarch64-linux-gnu-ld.lld`, so the driver also gets `-B DIR/` with
//! a link to `ld.lld` in the scratch directory. A link that fails with lld is tried
//! again with the driver's own linker, so lld is never what stops a link.
//!
//! rustc links aarch64 musl programs `-static -no-pie`; a static PIE works there as
//! well (tests/cross.rs runs it) and keeps address-space randomisation for the
//! sandbox. The musl files come from the embedded copy of rustup's `self-contained`
//! directory, passed by path so that the cross gcc's own (glibc) libraries are never
//! picked up.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use crate::targets::{EmbeddedTarget, LinkStyle, Target, find_program};

/// Flags common to every target: drop unreferenced sections, no executable stack
/// (Cranelift objects carry no `.note.GNU-stack`, which would otherwise make the
/// linker default to an executable stack), full RELRO, unwind tables for Rust panics.
/// Symbols are kept (profilers and debuggers show runtime and wasm function names).
const COMMON_FLAGS: &[&str] = &[
    "-Wl,--gc-sections",
    // Only musl's libc.a and std carry debug info; nothing that maps to wasm source.
    "-Wl,--strip-debug",
    "-Wl,-z,noexecstack",
    "-Wl,-z,relro,-z,now",
    "-Wl,--eh-frame-hdr",
];

pub struct LinkJob<'a> {
    pub target: &'static Target,
    pub embedded: &'static EmbeddedTarget,
    pub linker: &'a Path,
    /// The compiled objects: one for a module; one per core module plus the plan's
    /// for a component.
    pub objects: &'a [PathBuf],
    pub output: &'a Path,
    /// Scratch directory for the runtime archive and support files.
    pub workdir: &'a Path,
}

/// How one link attempt gets its C library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CLibrary {
    /// The target's glibc, linked in (`-static-pie`).
    GlibcStatic,
    /// The target's glibc as a shared library (`-pie`).
    GlibcDynamic,
    /// The embedded musl files (`-nostdlib -static-pie`).
    EmbeddedMusl,
}

/// A link attempt that failed: the linker's exit status and its output.
struct Failure {
    status: ExitStatus,
    text: String,
}

impl Failure {
    /// Whether the linker did not find a library or the static start file: for a
    /// static glibc link, its static library is not installed. (GNU ld: "cannot find
    /// -lc", "cannot find rcrt1.o"; lld: "unable to find library -lc", "cannot open
    /// rcrt1.o". Not gcc's "cannot find 'ld'", which is about the linker.)
    fn library_not_found(&self) -> bool {
        self.text.lines().any(|line| {
            line.contains("cannot find -l")
                || line.contains("unable to find library -l")
                || (line.contains("rcrt1.o")
                    && (line.contains("cannot find") || line.contains("cannot open")))
        })
    }
}

impl LinkJob<'_> {
    /// Writes the embedded files out and runs the linker. The error is a full message
    /// including the linker's own output.
    pub fn run(&self) -> Result<(), String> {
        let archive = self.workdir.join("libwasmc_runtime.a");
        fs::write(&archive, self.embedded.runtime_archive)
            .map_err(|e| format!("cannot write {}: {e}", archive.display()))?;
        let support = self.workdir.join("support");
        if !self.embedded.support_files.is_empty() {
            fs::create_dir_all(&support)
                .map_err(|e| format!("cannot create {}: {e}", support.display()))?;
            for (name, bytes) in self.embedded.support_files {
                let path = support.join(name);
                fs::write(&path, bytes)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
        }

        let lld = self.offer_lld();
        let attempt = |libc| self.link_trying_lld(libc, lld.as_deref(), &archive, &support);
        let outcome = match self.target.link_style {
            LinkStyle::StaticPie => attempt(CLibrary::EmbeddedMusl)?,
            LinkStyle::Glibc => match attempt(CLibrary::GlibcStatic)? {
                // glibc's static library is not installed: link with the shared one.
                Some(failure) if failure.library_not_found() => attempt(CLibrary::GlibcDynamic)?,
                outcome => outcome,
            },
        };
        match outcome {
            None => Ok(()),
            Some(failure) => Err(self.failure_message(&failure)),
        }
    }

    /// A directory with `ld.lld` (a link to the one on PATH) for the driver's `-B`,
    /// or None when lld is not installed or the link cannot be made.
    fn offer_lld(&self) -> Option<PathBuf> {
        let lld = find_program("ld.lld".as_ref())?;
        let dir = self.workdir.join("lld");
        fs::create_dir_all(&dir).ok()?;
        std::os::unix::fs::symlink(&lld, dir.join("ld.lld")).ok()?;
        Some(dir)
    }

    /// Links with lld first when `lld` holds it, then with the driver's own linker if
    /// that failed. `Ok(None)` is success, `Ok(Some)` the failure of the last attempt.
    fn link_trying_lld(
        &self,
        libc: CLibrary,
        lld: Option<&Path>,
        archive: &Path,
        support: &Path,
    ) -> Result<Option<Failure>, String> {
        if lld.is_some() {
            match self.link_once(libc, lld, archive, support)? {
                None => return Ok(None),
                // The driver's own linker would not find the file either.
                Some(failure) if libc == CLibrary::GlibcStatic && failure.library_not_found() => {
                    return Ok(Some(failure));
                }
                Some(_) => {}
            }
        }
        self.link_once(libc, None, archive, support)
    }

    fn link_once(
        &self,
        libc: CLibrary,
        lld: Option<&Path>,
        archive: &Path,
        support: &Path,
    ) -> Result<Option<Failure>, String> {
        let args = self.arguments(libc, lld, archive, support)?;
        let output = Command::new(self.linker)
            .args(&args)
            // English messages, so that the hints below can recognise them.
            .env("LC_ALL", "C")
            .output()
            .map_err(|e| format!("cannot run linker `{}`: {e}", self.linker.display()))?;
        if output.status.success() {
            return Ok(None);
        }
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        Ok(Some(Failure {
            status: output.status,
            text,
        }))
    }

    fn failure_message(&self, failure: &Failure) -> String {
        let mut message = format!(
            "linking with `{}` failed ({}):\n{}",
            self.linker.display(),
            failure.status,
            failure.text.trim_end()
        );
        if self.target.link_style == LinkStyle::Glibc
            && [
                "cannot find crt",
                "cannot find -lc",
                "unable to find library -lc",
            ]
            .iter()
            .any(|what| failure.text.contains(what))
        {
            let (_, packages) = self.target.default_linker();
            message.push_str(&format!(
                "\nhint: the C library for {} seems to be missing (Debian packages: {packages})",
                self.target.triple
            ));
        }
        message
    }

    fn arguments(
        &self,
        libc: CLibrary,
        lld: Option<&Path>,
        archive: &Path,
        support: &Path,
    ) -> Result<Vec<OsString>, String> {
        let mut args: Vec<OsString> = Vec::new();
        let support_file = |name: &str| -> Result<PathBuf, String> {
            let found = self.embedded.support_files.iter().any(|(n, _)| *n == name);
            if found {
                Ok(support.join(name))
            } else {
                Err(format!(
                    "this wasmc has no embedded `{name}` for {} (rebuild wasmc with the \
                     target's Rust standard library installed)",
                    self.target.triple
                ))
            }
        };
        let (crt_start, crt_end): (&[&str], &[&str]) = match libc {
            CLibrary::GlibcStatic | CLibrary::GlibcDynamic => (&[], &[]),
            CLibrary::EmbeddedMusl => (
                &["rcrt1.o", "crti.o", "crtbeginS.o"],
                &["crtendS.o", "crtn.o"],
            ),
        };
        match libc {
            CLibrary::GlibcStatic => args.push("-static-pie".into()),
            CLibrary::GlibcDynamic => args.push("-pie".into()),
            CLibrary::EmbeddedMusl => {
                args.extend(["-nostdlib".into(), "-static-pie".into()]);
            }
        }
        if let Some(dir) = lld {
            // `-B` takes a prefix: the slash makes it the directory's.
            let mut prefix = OsString::from("-B");
            prefix.push(dir.join(""));
            // One thread: the link of a small module is mostly start-up, which
            // lld's thread pool makes slower (zlib 69 -> 57 ms CPU, SQLite 76 -> 60;
            // CPython's 20 MB object 111 -> 122 ms wall), and a 2-core machine
            // compiling in parallel gains nothing from it.
            args.extend([prefix, "-fuse-ld=lld".into(), "-Wl,--threads=1".into()]);
        }
        args.push("-o".into());
        args.push(self.output.into());
        for name in crt_start {
            args.push(support_file(name)?.into());
        }
        args.extend(self.objects.iter().map(OsString::from));
        args.extend(COMMON_FLAGS.iter().map(OsString::from));
        let static_link = libc != CLibrary::GlibcDynamic;
        if static_link {
            // The runtime archive contains compiler_builtins, which musl's libc.a needs
            // too (aarch64 long double arithmetic in printf), and static glibc's
            // libraries refer to each other: resolve them as a group.
            args.push("-Wl,--start-group".into());
        } else {
            args.push("-Wl,--as-needed".into());
        }
        args.push(archive.into());
        for lib in self.embedded.native_libs {
            if *lib == "-lgcc_s" {
                // Rust's std wants the unwinder of the shared libgcc_s; its static copy
                // in gcc's libgcc_eh.a is the same code without a second shared library
                // to load and relocate at every start (hello world: 10% of the CPU
                // time of a run, bench/README.md).
                args.push("-lgcc_eh".into());
                continue;
            }
            // A library that is embedded (musl's libc.a, libunwind.a) is passed by
            // path; others are left to the linker's search path.
            let embedded = lib
                .strip_prefix("-l")
                .map(|name| format!("lib{name}.a"))
                .filter(|file| self.embedded.support_files.iter().any(|(n, _)| n == file));
            match embedded {
                Some(file) => args.push(support.join(file).into()),
                None => args.push(lib.into()),
            }
        }
        if static_link {
            args.push("-Wl,--end-group".into());
        }
        for name in crt_end {
            args.push(support_file(name)?.into());
        }
        Ok(args)
    }
}
