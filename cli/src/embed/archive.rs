//! Building the static library: wrappers compiled, everything linked into one
//! relocatable object whose only global definitions are the prefixed names, packed
//! with `ar`.
//!
//! ```text
//! CC -c -O2 -fPIC wrappers.c                      (the target's gcc driver)
//! CC -r -nostdlib -o lib.o module.o wrappers.o libwasmc_runtime.a [libunwind.a]
//! objcopy --keep-global-symbols=public.txt --remove-section=.group
//!         --remove-section=.llvmbc --remove-section=.llvmcmd --strip-debug lib.o
//! ar rcs libNAME.a lib.o
//! ```
//!
//! `-r` pulls from the runtime archive exactly what the wrappers reach (the
//! runtime, Rust's std, compiler-builtins; for musl also libunwind, which a musl
//! host toolchain does not ship); C library functions stay undefined for the
//! host's link. `objcopy` then makes every other defined symbol local, so two
//! libraries (each with its own runtime copy) and a host with its own Rust code do
//! not clash. The COMDAT groups are removed for the same reason: Rust's
//! `DW.ref.rust_eh_personality` is emitted in one, and the final link would keep a
//! single copy of it across all objects (possibly the host's, of another Rust
//! version); without the group every library keeps its own. objcopy and ar come
//! from the driver's own binutils (`-print-prog-name`), so cross drivers get
//! cross tools.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::targets::{EmbeddedTarget, Target};

pub struct ArchiveJob<'a> {
    pub target: &'static Target,
    pub embedded: &'static EmbeddedTarget,
    /// The target's gcc driver (the linker of executables).
    pub driver: &'a Path,
    pub object: &'a Path,
    pub wrappers_c: &'a Path,
    /// Directory holding the header the wrappers include.
    pub include_dir: &'a Path,
    pub public_symbols: &'a [String],
    pub output: &'a Path,
    pub workdir: &'a Path,
}

impl ArchiveJob<'_> {
    pub fn run(&self) -> Result<(), String> {
        let dir = self.workdir;
        let wrappers_o = dir.join("wrappers.o");
        let mut compile: Vec<OsString> = ["-c", "-O2", "-fPIC", "-fno-strict-aliasing", "-w"]
            .iter()
            .map(OsString::from)
            .collect();
        compile.push("-I".into());
        compile.push(self.include_dir.into());
        compile.push("-o".into());
        compile.push(wrappers_o.clone().into());
        compile.push(self.wrappers_c.into());
        run_tool(self.driver, &compile, "compiling the C wrappers")?;

        let runtime = dir.join("libwasmc_runtime.a");
        write(&runtime, self.embedded.runtime_archive)?;
        let combined = dir.join("combined.o");
        let mut link: Vec<OsString> = vec!["-r".into(), "-nostdlib".into(), "-o".into()];
        link.push(combined.clone().into());
        link.push(self.object.into());
        link.push(wrappers_o.into());
        link.push(runtime.into());
        if self.target.is_static() {
            let (_, unwind) = self
                .embedded
                .support_files
                .iter()
                .find(|(name, _)| *name == "libunwind.a")
                .ok_or_else(|| {
                    format!(
                        "the embedded {} runtime lacks libunwind.a (rebuild wasmc)",
                        self.target.triple
                    )
                })?;
            let path = dir.join("libunwind.a");
            write(&path, unwind)?;
            link.push(path.into());
        }
        run_tool(self.driver, &link, "linking the library object (-r)")?;

        let keep = dir.join("public-symbols.txt");
        write(&keep, (self.public_symbols.join("\n") + "\n").as_bytes())?;
        let objcopy = binutil(self.driver, "objcopy")?;
        let mut localize: Vec<OsString> =
            vec![format!("--keep-global-symbols={}", keep.display()).into()];
        localize.push("--remove-section=.group".into());
        // Bitcode some compiler-builtins objects embed: binutils' LTO plugin would
        // take the object for LLVM IR (and index no symbol of it).
        localize.push("--remove-section=.llvmbc".into());
        localize.push("--remove-section=.llvmcmd".into());
        localize.push("--strip-debug".into());
        localize.push(combined.clone().into());
        run_tool(
            &objcopy,
            &localize,
            "hiding the runtime's symbols (objcopy)",
        )?;

        let ar = binutil(self.driver, "ar")?;
        let _ = fs::remove_file(self.output);
        let pack: Vec<OsString> = vec!["rcsD".into(), self.output.into(), combined.into()];
        run_tool(&ar, &pack, "writing the archive (ar)")?;
        Ok(())
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The binutils program `name` that goes with `driver` (`aarch64-linux-gnu-gcc`
/// answers with its cross `objcopy`; a plain name means "search PATH").
fn binutil(driver: &Path, name: &str) -> Result<PathBuf, String> {
    let out = Command::new(driver)
        .arg(format!("-print-prog-name={name}"))
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", driver.display()))?;
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let program = if answer.is_empty() {
        name.to_string()
    } else {
        answer
    };
    crate::targets::find_program(program.as_ref()).ok_or_else(|| {
        format!(
            "`{program}` (binutils, used by `{}`) not found; install binutils for the target",
            driver.display()
        )
    })
}

fn run_tool(program: &Path, args: &[OsString], what: &str) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("{what}: cannot run `{}`: {e}", program.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    Err(format!(
        "{what} with `{}` failed ({}):\n{}",
        program.display(),
        output.status,
        text.trim_end()
    ))
}
