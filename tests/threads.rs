//! wasi-threads end to end: real programs built for wasm32-wasip1-threads (rayon and
//! `std::thread`; a wait/notify stress test) must print what native builds of the
//! same source print, on x86_64 and on aarch64 (under qemu); a trap or `proc_exit`
//! in a spawned thread ends the whole process; modules that cannot work get clear
//! errors. Fixtures: fixtures/threads/ (README.md there).
mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Scratch, compile_fixture, fixture, run_command, runner, wasmc};

/// The stress test takes well under a second per scale unit natively; a lost
/// wake-up hangs it, and this turns the hang into a failure.
const TIMEOUT: Duration = Duration::from_secs(120);

fn compile_for(module: &str, target: &str, scratch: &Scratch) -> PathBuf {
    let exe = scratch
        .path()
        .join(format!("{}-{target}", module.replace(['/', '.'], "_")));
    let output = wasmc(
        &[
            fixture(module).as_os_str(),
            OsStr::new("--target"),
            OsStr::new(target),
            OsStr::new("-o"),
            exe.as_os_str(),
        ],
        scratch.path(),
    );
    assert!(
        output.status.success(),
        "compiling {module} for {target} failed\n{}",
        output.describe()
    );
    exe
}

fn run_with(runner: &[String], exe: &Path, args: &[&str], cwd: &Path) -> common::Output {
    let mut command = match runner.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    command.args(args).current_dir(cwd);
    run_command(&mut command, TIMEOUT)
}

fn expected(name: &str) -> Vec<u8> {
    fs::read(fixture(&format!("threads/expected/{name}.stdout"))).unwrap()
}

/// Both programs on one target: output equal to the native build's.
fn programs_match_native(target: &str) {
    let Some(runner) = runner(target) else { return };
    let scratch = Scratch::new();
    for program in ["demo", "stress"] {
        let exe = compile_for(&format!("threads/{program}.wasm"), target, &scratch);
        let output = run_with(&runner, &exe, &[], scratch.path());
        output.assert_code(0);
        output.assert_stdout(&expected(program));
        output.assert_stderr(b"");
    }
}

#[test]
fn rayon_and_std_thread_match_native_x86_64() {
    programs_match_native("x86_64-unknown-linux-gnu");
}

#[test]
fn rayon_and_std_thread_match_native_aarch64() {
    programs_match_native("aarch64-unknown-linux-gnu");
}

#[test]
fn static_musl_executables_run_threads() {
    programs_match_native("x86_64-unknown-linux-musl");
}

/// Longer than the recorded run: more rounds of every wait/notify protocol.
#[test]
fn stress_without_lost_wakeups() {
    let scratch = Scratch::new();
    let exe = compile_fixture("threads/stress.wasm", &scratch);
    for _ in 0..3 {
        let output = run_with(&[], &exe, &["--", "4"], scratch.path());
        output.assert_code(0);
        let stdout = output.stdout_text();
        assert!(stdout.ends_with("all ok\n"), "{}", output.describe());
        assert!(
            stdout.contains("passes=14400 ok=true"),
            "{}",
            output.describe()
        );
    }
}

#[test]
fn spawned_threads_exit_and_trap_for_the_whole_process() {
    let scratch = Scratch::new();
    let exe = compile_fixture("threads/spawn.wat", &scratch);
    // No argument: the thread reports its id and start argument (5); main exits 7 + 5.
    let output = run_with(&[], &exe, &[], scratch.path());
    output.assert_code(12);
    output.assert_stderr(b"");
    // One argument: the spawned thread traps while main waits.
    let output = run_with(&[], &exe, &["--", "x"], scratch.path());
    output.assert_code(134);
    let stderr = output.stderr_text();
    assert!(
        stderr.starts_with("wasm trap: unreachable\n"),
        "{}",
        output.describe()
    );
    assert!(stderr.contains("wasm backtrace:"), "{}", output.describe());
    // Two: the spawned thread calls proc_exit(42).
    let output = run_with(&[], &exe, &["--", "x", "y"], scratch.path());
    output.assert_code(42);
}

/// A thread sleeping in `poll_oneoff` does not hold the shared WASI state: the main
/// thread writes and exits long before the 3 s sleep ends.
#[test]
fn a_sleeping_thread_does_not_block_the_others_wasi_calls() {
    let scratch = Scratch::new();
    let exe = compile_fixture("threads/sleeper.wat", &scratch);
    let started = std::time::Instant::now();
    let output = run_with(&[], &exe, &[], scratch.path());
    let took = started.elapsed();
    output.assert_code(0);
    output.assert_stdout(b"main done\n");
    assert!(
        took < Duration::from_millis(2500),
        "the main thread waited for the other's sleep ({took:?})"
    );
}

/// `--timeout` ends a program whose main thread waits forever in
/// `memory.atomic.wait32` (host code: the watchdog reports and exits).
#[test]
fn a_wait_forever_is_ended_by_the_timeout() {
    let scratch = Scratch::new();
    let input = scratch.path().join("hang.wat");
    fs::write(
        &input,
        r#"(module (import "env" "memory" (memory 1 1 shared))
             (func (export "_start")
               (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1)))))"#,
    )
    .unwrap();
    let exe = scratch.path().join("hang");
    let output = wasmc(
        &[
            input.as_os_str(),
            OsStr::new("--timeout"),
            OsStr::new("300ms"),
            OsStr::new("-o"),
            exe.as_os_str(),
        ],
        scratch.path(),
    );
    output.assert_code(0);
    let run = run_with(&[], &exe, &[], scratch.path());
    run.assert_code(134);
    assert!(
        run.stderr_text().starts_with("wasm trap: interrupt"),
        "{}",
        run.describe()
    );
}

fn compile_wat(wat: &str, scratch: &Scratch) -> (common::Output, PathBuf) {
    let input = scratch.path().join("module.wat");
    fs::write(&input, wat).unwrap();
    let exe = scratch.path().join("module");
    let output = wasmc(
        &[input.as_os_str(), OsStr::new("-o"), exe.as_os_str()],
        scratch.path(),
    );
    (output, exe)
}

#[test]
fn modules_that_cannot_spawn_are_refused_clearly() {
    let scratch = Scratch::new();
    // thread-spawn with a memory of its own: each instance would get another one.
    let (output, exe) = compile_wat(
        r#"(module (import "wasi" "thread-spawn" (func (param i32) (result i32)))
             (memory 1 1 shared)
             (func (export "wasi_thread_start") (param i32 i32))
             (func (export "_start")))"#,
        &scratch,
    );
    output.assert_code(0);
    let run = run_with(&[], &exe, &[], scratch.path());
    run.assert_code(1);
    assert!(
        run.stderr_text().contains("no shared memory"),
        "{}",
        run.describe()
    );
    // No wasi_thread_start export.
    let (output, exe) = compile_wat(
        r#"(module (import "wasi" "thread-spawn" (func (param i32) (result i32)))
             (import "env" "memory" (memory 1 1 shared))
             (func (export "_start")))"#,
        &scratch,
    );
    output.assert_code(0);
    let run = run_with(&[], &exe, &[], scratch.path());
    run.assert_code(1);
    assert!(
        run.stderr_text().contains("wasi_thread_start"),
        "{}",
        run.describe()
    );
    // An imported memory that is not shared has no provider.
    let (output, _) = compile_wat(
        r#"(module (import "env" "memory" (memory 1)) (func (export "_start")))"#,
        &scratch,
    );
    assert_ne!(output.code(), 0, "{}", output.describe());
    assert!(
        output.stderr_text().contains("env::memory (memory)"),
        "{}",
        output.describe()
    );
    // A wait on an unshared memory traps.
    let (output, exe) = compile_wat(
        r#"(module (memory 1)
             (func (export "_start")
               (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1)))))"#,
        &scratch,
    );
    output.assert_code(0);
    let run = run_with(&[], &exe, &[], scratch.path());
    run.assert_code(134);
    assert!(
        run.stderr_text()
            .starts_with("wasm trap: atomic wait on non-shared memory\n"),
        "{}",
        run.describe()
    );
}
