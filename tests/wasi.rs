//! End-to-end WASI tests: each program in `fixtures/wasi/` is compiled with the real
//! `wasmc` binary and run with runtime options (`--dir`, `--env`) and guest arguments;
//! its stdout, stderr and exit status must be exactly what wasmtime produced
//! (recorded by `fixtures/wasi/record.py`). Then the sandbox cases of wasmtime's WASI
//! tutorial (the file-copy program) and the executable's own option errors.
mod common;

use common::{Reference, Scratch, compile_fixture, run, run_command};
use std::fs;
use std::process::Command;
use std::time::Duration;

// ---------------------------------------------------------------- recorded programs

/// Every preview1 function, with edge cases: rights, seeking past the end, append,
/// readdir cookies with small buffers, renames across preopens, utimes, poll_oneoff,
/// symlink chains and escapes, sockets, proc_raise...
#[test]
fn c_all_functions() {
    Reference::check("wasi/c", "all");
}

#[test]
fn c_proc_exit_codes() {
    Reference::check("wasi/c", "exit-3");
    Reference::check("wasi/c", "exit-125");
}

/// wasmtime refuses exit statuses of 126 and above: the run fails with status 1.
#[test]
fn c_proc_exit_out_of_range() {
    let reference = Reference::load("wasi/c", "exit-126");
    let scratch = Scratch::new();
    let output = reference.run(&scratch);
    output.assert_code(reference.exit);
    output.assert_stdout(&reference.stdout);
}

/// Rust std: files, directories, metadata, seeking, renames, sandbox errors, exit code.
#[test]
fn rust_std() {
    Reference::check("wasi/rust", "all");
    Reference::check("wasi/rust", "no-dirs");
}

// ---------------------------------------------------------------- the copy tutorial

const COPY: &str = "copy/copy.wasm";

fn write_input(dir: &std::path::Path) {
    fs::write(dir.join("test.txt"), b"hello from the host\n").unwrap();
}

/// `./copy test.txt out.txt` without `--dir`: the guest has no capability at all.
#[test]
fn copy_without_dir_is_refused() {
    let scratch = Scratch::new();
    let exe = compile_fixture(COPY, &scratch);
    write_input(scratch.path());
    let output = run(&exe, &["test.txt", "out.txt"], scratch.path());
    assert_ne!(output.code(), 0, "{}", output.describe());
    assert!(
        output.stderr_text().contains("Capabilities insufficient"),
        "{}",
        output.describe()
    );
    assert!(!scratch.path().join("out.txt").exists());
}

/// `./copy --dir=. --dir=/tmp test.txt /tmp/.../out.txt` copies.
#[test]
fn copy_with_dot_and_tmp() {
    let work = Scratch::new();
    let out_dir = Scratch::in_tmp();
    let exe = compile_fixture(COPY, &work);
    write_input(work.path());
    let out = out_dir.path().join("out.txt");
    let out_arg = out.to_str().unwrap();
    let output = run(
        &exe,
        &["--dir=.", "--dir=/tmp", "test.txt", out_arg],
        work.path(),
    );
    output.assert_code(0);
    assert_eq!(fs::read(&out).unwrap(), b"hello from the host\n");
    // The same with the explicit separator and the two-argument option form.
    fs::remove_file(&out).unwrap();
    let output = run(
        &exe,
        &["--dir", ".", "--dir", "/tmp", "--", "test.txt", out_arg],
        work.path(),
    );
    output.assert_code(0);
    assert_eq!(fs::read(&out).unwrap(), b"hello from the host\n");
}

/// `/tmp/../etc/passwd` names a file outside the only preopen: refused, untouched.
#[test]
fn copy_cannot_escape_through_dotdot() {
    let work = Scratch::new();
    let exe = compile_fixture(COPY, &work);
    write_input(work.path());
    let before = fs::read("/etc/passwd").unwrap();
    let output = run(
        &exe,
        &["--dir=.", "--dir=/tmp", "test.txt", "/tmp/../etc/passwd"],
        work.path(),
    );
    assert_ne!(output.code(), 0, "{}", output.describe());
    assert!(
        output.stderr_text().contains("error opening output"),
        "{}",
        output.describe()
    );
    assert_eq!(fs::read("/etc/passwd").unwrap(), before);
}

/// `--dir=$PWD` preopens an absolute name; a relative path does not resolve to it.
#[test]
fn copy_absolute_preopen_does_not_serve_relative_paths() {
    let work = Scratch::new();
    let exe = compile_fixture(COPY, &work);
    write_input(work.path());
    let dir = format!("--dir={}", work.path().display());
    let output = run(&exe, &[dir.as_str(), "test.txt", "out.txt"], work.path());
    assert_ne!(output.code(), 0, "{}", output.describe());
    assert!(
        output.stderr_text().contains("Capabilities insufficient"),
        "{}",
        output.describe()
    );
    assert!(!work.path().join("out.txt").exists());
    // The absolute spelling works.
    let input = work.path().join("test.txt");
    let out = work.path().join("out.txt");
    let output = run(
        &exe,
        &[dir.as_str(), input.to_str().unwrap(), out.to_str().unwrap()],
        work.path(),
    );
    output.assert_code(0);
    assert_eq!(fs::read(&out).unwrap(), b"hello from the host\n");
}

/// `--dir HOST::GUEST` and `--mapdir GUEST::HOST` rename the preopen.
#[test]
fn copy_with_renamed_preopens() {
    let work = Scratch::new();
    let exe = compile_fixture(COPY, &work);
    fs::create_dir(work.path().join("in")).unwrap();
    fs::create_dir(work.path().join("out")).unwrap();
    write_input(&work.path().join("in"));
    let output = run(
        &exe,
        &[
            "--dir=in::/input",
            "--mapdir",
            "/output::out",
            "/input/test.txt",
            "/output/copy.txt",
        ],
        work.path(),
    );
    output.assert_code(0);
    assert_eq!(
        fs::read(work.path().join("out/copy.txt")).unwrap(),
        b"hello from the host\n"
    );
}

// ---------------------------------------------------------------- runtime options

/// A bad runtime option stops the executable before the guest runs.
#[test]
fn option_errors_are_reported() {
    let work = Scratch::new();
    let exe = compile_fixture(COPY, &work);
    write_input(work.path());
    for args in [
        &["--dir=/nonexistent-wasmc-dir", "a", "b"][..],
        &["--dir=test.txt", "a", "b"][..],
        &["--mapdir=nocolons", "a", "b"][..],
        &["--env", "=VALUE", "a", "b"][..],
        &["--dir"][..],
    ] {
        let output = run(&exe, args, work.path());
        assert_ne!(output.code(), 0, "{args:?}\n{}", output.describe());
        assert!(
            !output.stderr_text().contains("usage:"),
            "the guest ran despite {args:?}\n{}",
            output.describe()
        );
        assert!(
            !output.stderr_text().trim().is_empty(),
            "no message for {args:?}"
        );
    }
}

/// The guest's environment is only what `--env` gives; `--env NAME` inherits.
#[test]
fn environment_comes_only_from_env_options() {
    let work = Scratch::new();
    let exe = compile_fixture("wasi/rust/wasi_std.wasm", &work);
    let output = run_command(
        Command::new(&exe)
            .args([
                "--env",
                "INHERITED",
                "--env",
                "SET=1",
                "--env",
                "UNSET_WASMC_VAR",
            ])
            .env("INHERITED", "from host")
            .env("NOT_PASSED", "secret")
            .env_remove("UNSET_WASMC_VAR")
            .current_dir(work.path()),
        Duration::from_secs(60),
    );
    output.assert_code(5);
    let stdout = output.stdout_text();
    assert!(
        stdout.contains(r#"env=[("INHERITED", "from host"), ("SET", "1")]"#),
        "{}",
        output.describe()
    );
}

// ---------------------------------------------------------------- differential fuzzing

/// The WASI differential fuzzer's fixed seeds (fuzz/wasi/, README there): scripts
/// of raw preview1 calls with hostile arguments, replayed through the fuzzer's
/// guest compiled by wasmc and compared with wasmtime 49's recorded results
/// (`fixtures/wasi-fuzz/expected.json`: every errno, output record, byte read,
/// and the final directory trees). Needs python3, not wasmtime.
#[test]
fn wasi_fuzz_recorded_seeds() {
    let scratch = Scratch::new();
    let exe = compile_fixture("wasi-fuzz/interp.wasm", &scratch);
    let root = common::fixtures_dir().join("..");
    let output = run_command(
        Command::new("python3")
            .arg(root.join("fuzz/wasi/fuzz_wasi.py"))
            .arg("check")
            .arg("--wasmc-exe")
            .arg(&exe)
            .arg("--expected")
            .arg(common::fixture("wasi-fuzz/expected.json"))
            .current_dir(scratch.path()),
        Duration::from_secs(300),
    );
    output.assert_code(0);
    assert!(
        output.stdout_text().contains(" 0 findings"),
        "{}",
        output.describe()
    );
}
