//! Linking a compiled module object with the embedded runtime archive into an
//! executable, with the system or cross gcc driver of the target (see `targets`).
//!
//! The runtime archive defines the C `main` (feature `executable-main`), which
//! references the `wasmc_module` descriptor exported by the module object; the object
//! itself references no runtime symbol. Command lines (`OBJ` = module object):
//!
//! ```text
//! gnu:            cc -pie -o OUT OBJ libwasmc_runtime.a -Wl,... <native libs>
//!                    (with the static `-lgcc_eh` for `-lgcc_s`)
//! musl:           cc -nostdlib -static-pie -o OUT rcrt1.o crti.o crtbeginS.o OBJ -Wl,...
//!                    --start-group libwasmc_runtime.a libunwind.a libc.a --end-group
//!                    crtendS.o crtn.o
//! ```
//! (`aarch64-linux-gnu-gcc` instead of `cc` for aarch64 on an x86_64 host.) rustc
//! links aarch64 musl programs `-static -no-pie`; a static PIE works there as well
//! (tests/cross.rs runs it) and keeps address-space randomisation for the sandbox.
//! The musl files come from the embedded copy of rustup's `self-contained` directory,
//! passed by path so that the cross gcc's own (glibc) libraries are never picked up.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::targets::{EmbeddedTarget, LinkStyle, Target};

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

        let args = self.arguments(&archive, &support)?;
        let output = Command::new(self.linker)
            .args(&args)
            // English messages, so that the hints below can recognise them.
            .env("LC_ALL", "C")
            .output()
            .map_err(|e| format!("cannot run linker `{}`: {e}", self.linker.display()))?;
        if output.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        let mut message = format!(
            "linking with `{}` failed ({}):\n{}",
            self.linker.display(),
            output.status,
            text.trim_end()
        );
        if self.target.link_style == LinkStyle::DynamicPie
            && (text.contains("cannot find crt") || text.contains("cannot find -lc"))
        {
            let (_, packages) = self.target.default_linker();
            message.push_str(&format!(
                "\nhint: the C library for {} seems to be missing (Debian packages: {packages})",
                self.target.triple
            ));
        }
        Err(message)
    }

    fn arguments(&self, archive: &Path, support: &Path) -> Result<Vec<OsString>, String> {
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
        let (crt_start, crt_end): (&[&str], &[&str]) = match self.target.link_style {
            LinkStyle::DynamicPie => (&[], &[]),
            LinkStyle::StaticPie => (
                &["rcrt1.o", "crti.o", "crtbeginS.o"],
                &["crtendS.o", "crtn.o"],
            ),
        };
        match self.target.link_style {
            LinkStyle::DynamicPie => args.push("-pie".into()),
            LinkStyle::StaticPie => {
                args.extend(["-nostdlib".into(), "-static-pie".into()]);
            }
        }
        args.push("-o".into());
        args.push(self.output.into());
        for name in crt_start {
            args.push(support_file(name)?.into());
        }
        args.extend(self.objects.iter().map(OsString::from));
        args.extend(COMMON_FLAGS.iter().map(OsString::from));
        let static_link = self.target.link_style != LinkStyle::DynamicPie;
        if static_link {
            // The runtime archive contains compiler_builtins, which musl's libc.a needs
            // too (aarch64 long double arithmetic in printf): resolve them as a group.
            args.push("-Wl,--start-group".into());
        } else {
            args.push("-Wl,--as-needed".into());
        }
        args.push(archive.into());
        for lib in self.embedded.native_libs {
            if *lib == "-lgcc_s" && !static_link {
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
