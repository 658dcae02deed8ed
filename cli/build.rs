//! Builds the runtime static library for every target wasmc can produce executables
//! for, and embeds the archives in the `wasmc` binary so that an installed wasmc needs
//! no Rust toolchain at run time.
//!
//! For each supported target whose Rust standard library is installed (rustup target
//! add), this runs a nested
//! `cargo rustc -p wasmc-runtime --release --lib --crate-type staticlib
//!  --features executable-main --target T -- --print native-static-libs`
//! in its own target directory (`<target dir>/runtime-archives`): the outer cargo holds
//! the lock on its own build directory, so sharing it would deadlock. The
//! `native-static-libs` note tells which system libraries the archive needs (cargo
//! replays it when the archive is fresh).
//!
//! Debug info is stripped from the embedded copies when `llvm-strip` or the target's
//! binutils `strip` is installed (see `copy_stripped`).
//!
//! For the musl targets the executable is linked fully statically without any musl
//! toolchain on the machine: the C runtime objects, `libc.a` and `libunwind.a` that
//! rustup ships in `lib/rustlib/<T>/lib/self-contained/` are embedded too, and a plain
//! gcc driver (`cc`, `aarch64-linux-gnu-gcc`) is used with `-nostdlib`, the same way
//! rustc links musl programs.
//!
//! `WASMC_RUNTIME_TARGETS=t1,t2` restricts the embedded targets (faster development
//! builds); by default every supported target whose std is installed is embedded.
//!
//! Output: `$OUT_DIR/embedded_targets.rs`, included by `src/targets.rs`.

use std::collections::BTreeSet;
use std::env;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Must match the table in `src/targets.rs`.
const SUPPORTED_TARGETS: &[&str] = &[
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("cli/ lives inside the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    // The archives depend on the runtime and the ABI crate, and on the lock file.
    for dir in ["runtime-lib", "abi"] {
        watch_tree(&workspace.join(dir));
    }
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo::rerun-if-changed={}", workspace.join(file).display());
    }
    println!("cargo::rerun-if-env-changed=WASMC_RUNTIME_TARGETS");
    // The default target of the wasmc being built (see targets::default_target).
    println!(
        "cargo::rustc-env=WASMC_HOST_TARGET={}",
        env::var("TARGET").expect("set by cargo")
    );

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = rustc_sysroot(&rustc);
    // rustup rewrites this file when a target is added or removed.
    let components = sysroot.join("lib/rustlib/components");
    if components.exists() {
        println!("cargo::rerun-if-changed={}", components.display());
    }

    let wanted: Vec<String> = match env::var("WASMC_RUNTIME_TARGETS") {
        Ok(list) if !list.trim().is_empty() => {
            let list: Vec<String> = list.split(',').map(|t| t.trim().to_string()).collect();
            for t in &list {
                if !SUPPORTED_TARGETS.contains(&t.as_str()) {
                    panic!(
                        "WASMC_RUNTIME_TARGETS names `{t}`, which wasmc does not support \
                         (supported: {})",
                        SUPPORTED_TARGETS.join(", ")
                    );
                }
            }
            list
        }
        _ => SUPPORTED_TARGETS.iter().map(|t| t.to_string()).collect(),
    };

    let archives_dir = runtime_target_dir(&out_dir);
    let mut embedded = String::new();
    let mut missing = String::new();
    for &triple in SUPPORTED_TARGETS {
        if !wanted.iter().any(|w| w == triple) {
            writeln!(
                missing,
                "    ({triple:?}, \"not embedded in this build of wasmc (excluded by \
                 WASMC_RUNTIME_TARGETS when wasmc was built)\"),"
            )
            .unwrap();
            continue;
        }
        let std_dir = sysroot.join("lib/rustlib").join(triple).join("lib");
        if !has_std(&std_dir) {
            println!(
                "cargo::warning=the wasmc runtime for {triple} is not embedded: its Rust \
                 standard library is not installed (run `rustup target add {triple}` and \
                 rebuild wasmc)"
            );
            writeln!(
                missing,
                "    ({triple:?}, \"not embedded in this build of wasmc: its Rust standard \
                 library was not installed when wasmc was built (run `rustup target add \
                 {triple}`, then rebuild wasmc)\"),"
            )
            .unwrap();
            continue;
        }

        let (archive, native_libs) = build_runtime(&workspace, &archives_dir, triple);
        let dest = out_dir.join(triple);
        fs::create_dir_all(&dest).unwrap();
        let archive_copy = dest.join("libwasmc_runtime.a");
        copy_stripped(&archive, &archive_copy, triple);

        // The musl link is done without a musl toolchain: embed the C runtime objects
        // and static libraries rustup ships for the target.
        let mut support = Vec::new();
        if triple.ends_with("-musl") {
            let self_contained = std_dir.join("self-contained");
            let mut names: Vec<String> = fs::read_dir(&self_contained)
                .unwrap_or_else(|e| panic!("reading {}: {e}", self_contained.display()))
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".o") || n.ends_with(".a"))
                .collect();
            names.sort();
            for name in names {
                let copy_path = dest.join(&name);
                copy_stripped(&self_contained.join(&name), &copy_path, triple);
                support.push((name, copy_path));
            }
        }

        write!(
            embedded,
            "    EmbeddedTarget {{\n        triple: {triple:?},\n        \
             runtime_archive: include_bytes!({:?}),\n        native_libs: &{:?},\n        \
             support_files: &[\n",
            archive_copy.display().to_string(),
            native_libs,
        )
        .unwrap();
        for (name, path) in &support {
            writeln!(
                embedded,
                "            ({name:?}, include_bytes!({:?})),",
                path.display().to_string()
            )
            .unwrap();
        }
        embedded.push_str("        ],\n    },\n");
    }

    let generated = format!(
        "// Generated by cli/build.rs: the runtime archives embedded in this wasmc.\n\
         pub static EMBEDDED: &[EmbeddedTarget] = &[\n{embedded}];\n\
         /// Supported targets that are not embedded, with the reason.\n\
         pub static NOT_EMBEDDED: &[(&str, &str)] = &[\n{missing}];\n"
    );
    fs::write(out_dir.join("embedded_targets.rs"), generated).unwrap();
}

/// Builds `libwasmc_runtime.a` for `triple`; returns its path and the `-l` flags of the
/// native libraries it needs.
fn build_runtime(workspace: &Path, target_dir: &Path, triple: &str) -> (PathBuf, Vec<String>) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .arg("rustc")
        .arg("--manifest-path")
        .arg(workspace.join("runtime-lib/Cargo.toml"))
        .args(["-p", "wasmc-runtime", "--release", "--lib"])
        .args(["--crate-type", "staticlib"])
        .args(["--features", "executable-main"])
        .args(["--target", triple])
        .arg("--target-dir")
        .arg(target_dir)
        .args(["--", "--print", "native-static-libs"]);
    scrub_env(&mut cmd);
    cmd.env("CARGO_TERM_COLOR", "never")
        // The archive is embedded in wasmc once per target and linked into every
        // executable. Fat LTO keeps only what is reachable from the runtime's exported
        // symbols (a third of the size, and one object for the linker instead of
        // hundreds); no debug info (generated code has none either).
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_LTO", "fat")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");

    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the wasmc runtime: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!(
            "building the wasmc runtime for {triple} failed ({}):\n{stderr}",
            output.status
        );
    }
    let native_libs: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.split_once("native-static-libs:"))
        .next_back()
        .map(|(_, libs)| libs.split_whitespace().map(str::to_string).collect())
        .unwrap_or_else(|| {
            panic!(
                "cargo did not report the native libraries of the {triple} runtime archive:\n\
                 {stderr}"
            )
        });
    let archive = target_dir
        .join(triple)
        .join("release")
        .join("libwasmc_runtime.a");
    if !archive.is_file() {
        panic!(
            "cargo built the {triple} runtime but {} does not exist",
            archive.display()
        );
    }
    (archive, native_libs)
}

/// Removes the environment a build script inherits from the outer cargo that would
/// leak into the nested build (target, flags, features, clippy's wrapper...). Registry,
/// network and jobserver settings are kept.
fn scrub_env(cmd: &mut Command) {
    const KEEP_PREFIXES: &[&str] = &[
        "CARGO_HOME",
        "CARGO_MAKEFLAGS",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
    ];
    const REMOVE: &[&str] = &[
        "CARGO",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "RUSTDOC",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
    ];
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let cargo_var = (key.starts_with("CARGO") || key.starts_with("__CARGO"))
            && !KEEP_PREFIXES.iter().any(|p| key.starts_with(p));
        if cargo_var || REMOVE.contains(&key) {
            cmd.env_remove(key);
        }
    }
}

/// `<outer target dir>/runtime-archives`. OUT_DIR is
/// `<target dir>[/<triple>]/<profile>/build/<pkg>-<hash>/out`; the archives are shared
/// by all profiles so that debug, release and test builds do not each rebuild them.
fn runtime_target_dir(out_dir: &Path) -> PathBuf {
    let build = out_dir
        .ancestors()
        .find(|p| p.file_name() == Some(OsStr::new("build")))
        .unwrap_or(out_dir);
    let profile_dir = build.parent().unwrap_or(build);
    let mut target_dir = profile_dir.parent().unwrap_or(profile_dir);
    // Cross builds of wasmc itself put one more level (the triple) in between.
    if SUPPORTED_TARGETS
        .iter()
        .any(|t| target_dir.file_name() == Some(OsStr::new(t)))
    {
        target_dir = target_dir.parent().unwrap_or(target_dir);
    }
    target_dir.join("runtime-archives")
}

fn rustc_sysroot(rustc: &OsStr) -> PathBuf {
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", rustc.to_string_lossy()));
    assert!(out.status.success(), "rustc --print sysroot failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Whether the standard library for a target is installed in the sysroot.
fn has_std(std_dir: &Path) -> bool {
    fs::read_dir(std_dir).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libstd-") && name.ends_with(".rlib")
        })
    })
}

/// Reruns the build script when any file below `dir` changes (including added files,
/// which change their directory's modification time).
fn watch_tree(dir: &Path) {
    let mut seen = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        println!("cargo::rerun-if-changed={}", d.display());
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if seen.insert(path.clone()) {
                println!("cargo::rerun-if-changed={}", path.display());
            }
        }
    }
}

/// Copies `from` to `to` without debug info when a strip tool for the target is
/// available (the archives shrink to less than half; executables are linked with
/// `--strip-debug` anyway, so they are the same either way). Only rewrites `to` when
/// the content changed, so that include_bytes! does not force a recompile of wasmc
/// after a no-op runtime build.
fn copy_stripped(from: &Path, to: &Path, triple: &str) {
    let staging = to.with_extension("staging");
    fs::copy(from, &staging)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), staging.display()));
    if let Some(strip) = strip_tool(triple) {
        let stripped = Command::new(&strip)
            .arg("--strip-debug")
            .arg(&staging)
            .status()
            .is_ok_and(|s| s.success());
        if !stripped {
            // A failed strip may leave a damaged file: start again from the original.
            fs::copy(from, &staging).unwrap_or_else(|e| {
                panic!("copying {} to {}: {e}", from.display(), staging.display())
            });
        }
    }
    if fs::read(to).ok() == fs::read(&staging).ok() {
        fs::remove_file(&staging).unwrap();
    } else {
        fs::rename(&staging, to).unwrap_or_else(|e| panic!("renaming to {}: {e}", to.display()));
    }
}

/// `llvm-strip` (any architecture) or the target's binutils `strip`, if installed.
fn strip_tool(triple: &str) -> Option<PathBuf> {
    let arch = triple.split('-').next().unwrap_or_default();
    let path = env::var_os("PATH")?;
    ["llvm-strip".to_string(), format!("{arch}-linux-gnu-strip")]
        .into_iter()
        .find_map(|name| {
            env::split_paths(&path)
                .map(|dir| dir.join(&name))
                .find(|p| p.is_file())
        })
}
