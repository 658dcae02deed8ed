//! End-to-end tests of the pipeline: compile each fixture with the real `wasmc`
//! binary, run the executable, and check stdout, stderr and the exit code against
//! what wasmtime does with the same module (recorded in `fixtures/*/expected/`).
mod common;

use common::{
    Output, Reference, Scratch, assert_compile_error, compile_fixture, contains_word, fixture, run,
    wasmc,
};
use std::fs;

// ---- hello: both WASI module names, text and binary input ----

fn check_hello(case: &str) {
    let (_, output) = Reference::check("hello", case);
    // The recording is the authority; this states what it contains.
    output.assert_stdout(b"Hello, world!\n");
    output.assert_code(0);
}

#[test]
fn hello_wat() {
    check_hello("wat");
}

#[test]
fn hello_wasm() {
    check_hello("wasm");
}

#[test]
fn hello_wasi_unstable_wat() {
    check_hello("unstable-wat");
}

#[test]
fn hello_wasi_unstable_wasm() {
    check_hello("unstable-wasm");
}

// ---- copy: wasmtime's WASI tutorial program, built with clang and wasi-libc ----

#[test]
fn copy_without_arguments_prints_usage() {
    let reference = Reference::load("copy", "usage");
    let scratch = Scratch::new();
    let exe = compile_fixture("copy/copy.wasm", &scratch);
    let output = run::<&str>(&exe, &[], scratch.path());
    output.assert_code(reference.exit);
    assert_ne!(reference.exit, 0);
    output.assert_stdout(b"");
    // argv[0] is the executable's name under wasmc and the module's under wasmtime,
    // so compare the line around it.
    let stderr = output.stderr_text();
    let argv0 = stderr
        .strip_prefix("usage: ")
        .and_then(|rest| rest.strip_suffix(" <from> <to>\n"));
    assert!(
        argv0.is_some_and(|a| !a.is_empty()),
        "expected `usage: PROGRAM <from> <to>`\n{}",
        output.describe()
    );
    assert!(
        String::from_utf8_lossy(&reference.stderr).starts_with("usage: copy.wasm <from> <to>\n")
    );
}

#[test]
fn copy_without_preopens_is_refused() {
    let reference = Reference::load("copy", "no-preopen");
    let scratch = Scratch::new();
    // The input exists in the working directory: only the sandbox stands in the way.
    fs::write(scratch.path().join("test.txt"), "secret\n").unwrap();
    let exe = compile_fixture("copy/copy.wasm", &scratch);
    // No runtime options and no `--`: the first argument starts the guest's argv.
    let output = run(&exe, &reference.args, scratch.path());
    reference.assert_matches(&output);
    assert!(
        output.stderr_text().contains("Capabilities insufficient"),
        "{}",
        output.describe()
    );
    assert!(!scratch.path().join("out.txt").exists());
}

#[test]
fn copy_with_preopens_copies_the_file() {
    // Working directory and destination both directly under /tmp, which is preopened.
    let work = Scratch::in_tmp();
    let dest = Scratch::in_tmp();
    // Larger than wasi-libc's BUFSIZ and not text, so the read/write loop goes round.
    let content: Vec<u8> = (0u32..100_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(work.path().join("test.txt"), &content).unwrap();
    let exe = compile_fixture("copy/copy.wasm", &work);
    let dest_file = dest.path().join("copied.bin");
    let output = run(
        &exe,
        &[
            "--dir=.",
            "--dir=/tmp",
            "--",
            "test.txt",
            dest_file.to_str().unwrap(),
        ],
        work.path(),
    );
    output.assert_code(0);
    output.assert_stdout(b"");
    output.assert_stderr(b"");
    let copied = fs::read(&dest_file)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", dest_file.display(), output.describe()));
    assert!(
        copied == content,
        "copied file differs ({} bytes, expected {})",
        copied.len(),
        content.len()
    );

    // Same again without `--`, into the working directory, overwriting a longer file.
    fs::write(work.path().join("copy2.txt"), vec![b'x'; 200_000]).unwrap();
    let output = run(&exe, &["--dir=.", "test.txt", "copy2.txt"], work.path());
    output.assert_code(0);
    output.assert_stderr(b"");
    assert!(
        fs::read(work.path().join("copy2.txt")).unwrap() == content,
        "second copy differs"
    );
}

#[test]
fn copy_to_an_absolute_path_outside_the_preopen_is_refused() {
    let (_, output) = Reference::check("copy", "escape-absolute");
    assert!(
        output.stderr_text().contains("Capabilities insufficient"),
        "{}",
        output.describe()
    );
    assert!(!std::path::Path::new("/etc/wasmc-copy-escape").exists());
}

#[test]
fn copy_through_dotdot_out_of_the_preopen_is_refused() {
    let reference = Reference::load("copy", "escape-dotdot");
    let scratch = Scratch::new();
    let output = reference.run(&scratch);
    reference.assert_matches(&output);
    // `data/../escape.txt` would land in the scratch directory, next to `data`.
    assert!(
        !scratch.path().join("escape.txt").exists(),
        "the guest escaped its preopen\n{}",
        output.describe()
    );
}

// ---- rust-hello: a real std program (args, env, stdio, computation, files, exit) ----

#[test]
fn rust_hello_default() {
    Reference::check("rust-hello", "default");
}

#[test]
fn rust_hello_args_and_env() {
    let (_, output) = Reference::check("rust-hello", "args-env");
    assert!(
        output
            .stdout_text()
            .starts_with("Bonjour from Rust on WASI!\n")
    );
}

#[test]
fn rust_hello_reads_a_preopened_file() {
    Reference::check("rust-hello", "read-file");
}

#[test]
fn rust_hello_missing_file() {
    Reference::check("rust-hello", "read-missing");
}

#[test]
fn rust_hello_file_without_preopen() {
    Reference::check("rust-hello", "read-no-preopen");
}

#[test]
fn rust_hello_exit_code() {
    Reference::check("rust-hello", "exit-code");
}

#[test]
fn rust_hello_bad_argument() {
    Reference::check("rust-hello", "bad-exit-arg");
}

// ---- traps: exit 134, `wasm trap: <spec message>`, a backtrace naming the function ----

/// Runs the trap fixture `name` and checks: everything wasmtime recorded (exit 134,
/// stdout, the guest's stderr), then that wasmc's report starts with the line
/// `wasm trap: MESSAGE` (the spec test suite's text) and that a later line of the
/// backtrace names `function`. The recording itself must agree: wasmtime's message
/// contains MESSAGE and its backtrace names `function`.
fn check_trap(name: &str, message: &str, function: &str) {
    let (reference, output) = Reference::check("traps", name);
    let recorded = reference
        .trap
        .as_deref()
        .unwrap_or_else(|| panic!("{name}: wasmtime did not trap"));
    assert!(
        recorded.contains(message),
        "{name}: wasmtime reported {recorded:?}, not {message:?}"
    );
    assert!(
        contains_word(recorded, function),
        "{name}: wasmtime's backtrace lacks {function}: {recorded:?}"
    );
    assert_eq!(reference.exit, 134);

    let report = &output.stderr[reference.stderr.len()..];
    let report = String::from_utf8_lossy(report);
    let mut lines = report.lines();
    assert_eq!(
        lines.next(),
        Some(format!("wasm trap: {message}").as_str()),
        "{}",
        output.describe()
    );
    assert!(
        lines.any(|line| contains_word(line, function)),
        "the backtrace does not name the wasm function `{function}`\n{}",
        output.describe()
    );
}

#[test]
fn trap_unreachable() {
    check_trap("unreachable", "unreachable", "do_unreachable");
}

#[test]
fn trap_integer_divide_by_zero() {
    check_trap("div-by-zero", "integer divide by zero", "divide");
}

#[test]
fn trap_integer_overflow() {
    check_trap("int-overflow", "integer overflow", "divide_signed");
}

#[test]
fn trap_invalid_conversion_to_integer() {
    check_trap(
        "bad-conversion",
        "invalid conversion to integer",
        "truncate",
    );
}

#[test]
fn trap_out_of_bounds_memory_access() {
    check_trap("memory-oob", "out of bounds memory access", "load");
}

#[test]
fn trap_out_of_bounds_memory_access_beyond_4gib() {
    check_trap("memory-oob-far", "out of bounds memory access", "load_far");
}

#[test]
fn trap_call_indirect_past_table_end() {
    check_trap("call-indirect-oob", "undefined element", "dispatch");
}

#[test]
fn trap_call_indirect_to_null_entry() {
    check_trap("call-indirect-null", "uninitialized element", "dispatch");
}

#[test]
fn trap_call_indirect_type_mismatch() {
    check_trap(
        "call-indirect-type",
        "indirect call type mismatch",
        "dispatch",
    );
}

#[test]
fn trap_call_stack_exhausted() {
    check_trap("stack-overflow", "call stack exhausted", "recurse");
}

#[test]
fn trap_memory_fill_out_of_bounds() {
    check_trap("memory-fill-oob", "out of bounds memory access", "fill");
}

#[test]
fn trap_memory_copy_out_of_bounds() {
    check_trap("memory-copy-oob", "out of bounds memory access", "copy");
}

#[test]
fn trap_table_get_out_of_bounds() {
    check_trap("table-get-oob", "out of bounds table access", "get");
}

#[test]
fn trap_in_start_function() {
    // Instantiation traps, so `_start` (which would print) never runs.
    check_trap("start-trap", "unreachable", "init");
}

#[test]
fn proc_exit_sets_the_exit_code() {
    let (reference, output) = Reference::check("traps", "proc-exit");
    assert_eq!(reference.exit, 7);
    output.assert_stderr(b"");
}

#[test]
fn reachable_exceptions_survive_collection() {
    // Collections run while exceptions are held in every kind of root (see the
    // fixture); a lost one traps.
    let (reference, output) = Reference::check("traps", "exception-roots");
    assert_eq!(reference.exit, 0);
    output.assert_stderr(b"");
}

#[test]
fn module_without_start_is_a_clear_error() {
    // wasmc may refuse it at compile time (better) or the executable may refuse to
    // run; either way the user gets one clear message naming `_start`, no trap, no
    // crash and no silent success.
    let scratch = Scratch::new();
    let input = fixture("traps/no-start.wat");
    let exe = scratch.path().join("no-start");
    let output = wasmc(
        &[input.as_os_str(), "-o".as_ref(), exe.as_os_str()],
        scratch.path(),
    );
    if output.status.success() {
        let output = run::<&str>(&exe, &[], scratch.path());
        let code = output.code();
        assert!(
            code != 0 && code != 134,
            "running a module without _start: {}",
            output.describe()
        );
        assert_mentions_start(&output);
    } else {
        assert_compile_error(&output, &input, &exe);
        assert_mentions_start(&output);
    }
}

fn assert_mentions_start(output: &Output) {
    assert!(
        output.stderr_text().contains("_start"),
        "the error must mention `_start`\n{}",
        output.describe()
    );
}

// ---- bad inputs: exit 1, one line naming the file, never a panic ----

/// Compiles `fixtures/bad/NAME`, which must fail; returns wasmc's output.
fn compile_bad(name: &str) -> Output {
    let scratch = Scratch::new();
    let input = fixture(&format!("bad/{name}"));
    let exe = scratch.path().join("out");
    let output = wasmc(
        &[input.as_os_str(), "-o".as_ref(), exe.as_os_str()],
        scratch.path(),
    );
    assert_compile_error(&output, &input, &exe);
    output
}

#[test]
fn bad_truncated_module() {
    compile_bad("truncated.wasm");
}

#[test]
fn bad_random_bytes() {
    compile_bad("random.bin");
}

#[test]
fn bad_invalid_module_reports_offset() {
    let output = compile_bad("invalid.wat");
    let stderr = output.stderr_text();
    assert!(stderr.contains("type mismatch"), "{}", output.describe());
    assert!(
        stderr.contains("offset"),
        "the error must give the byte offset\n{}",
        output.describe()
    );
}

#[test]
fn bad_unknown_import() {
    let output = compile_bad("unknown-import.wat");
    assert!(
        output.stderr_text().contains("foo"),
        "the error must name the import env.foo\n{}",
        output.describe()
    );
}

#[test]
fn missing_input_file() {
    let scratch = Scratch::new();
    let input = scratch.path().join("does-not-exist.wasm");
    let exe = scratch.path().join("out");
    let output = wasmc(
        &[input.as_os_str(), "-o".as_ref(), exe.as_os_str()],
        scratch.path(),
    );
    assert_compile_error(&output, &input, &exe);
}
