//! End-to-end tests of WASI 0.2 command components: each program in
//! `fixtures/components/` is compiled with the real `wasmc` binary and run with the
//! recorded options; stdout, stderr, exit status and the files left in the preopened
//! directories must be what `wasmtime run` gave (`fixtures/components/record.py`).
//! Then the hostile cases (bad pointers and handles from the guest) and the
//! components wasmc refuses at compile time, each with a message naming what.
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{
    Reference, Scratch, assert_compile_error, compile, fixture, fixtures_dir, run, wasmc,
};

/// Compiles each module of `program` once and checks every recorded case.
fn check_program(program: &str) {
    let scratch = Scratch::new();
    let mut exes: std::collections::HashMap<String, PathBuf> = Default::default();
    for case in Reference::cases(program) {
        let reference = Reference::load(program, &case);
        let exe = exes
            .entry(reference.module.clone())
            .or_insert_with(|| compile(&fixture(&reference.module), scratch.path()));
        let work = scratch.path().join(format!("case-{case}"));
        fs::create_dir(&work).unwrap();
        let args = reference.prepare(&work);
        // A guest panic prints "panicked" itself: only what follows its own stderr
        // is checked for a panic of wasmc's runtime.
        let output = common::run_command_after_guest_stderr(
            std::process::Command::new(&*exe)
                .args(&args)
                .current_dir(&work),
            std::time::Duration::from_secs(60),
            &reference.stderr,
        );
        reference.assert_matches(&output);
        let recorded_tree = fixtures_dir()
            .join(program)
            .join("expected")
            .join(&case)
            .join("tree");
        if let Ok(expected) = fs::read(&recorded_tree) {
            let actual: Vec<u8> = reference
                .dirs
                .iter()
                .flat_map(|(host, _)| tree(&work.join(host)))
                .collect();
            assert_eq!(
                String::from_utf8_lossy(&actual),
                String::from_utf8_lossy(&expected),
                "{program}/{case}: the preopened files differ from wasmtime's"
            );
        }
    }
}

/// The same listing as `record.py`'s `tree`: directories in walk order, files with
/// their contents.
fn tree(root: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::from(".")];
    while let Some(rel) = dirs.pop() {
        out.extend(format!("dir {}\n", rel.display()).into_bytes());
        let mut entries: Vec<_> = fs::read_dir(root.join(&rel))
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for entry in entries {
            let name = rel.join(entry.file_name());
            let name = name.strip_prefix(".").unwrap_or(&name).to_path_buf();
            if entry.file_type().unwrap().is_dir() {
                subdirs.push(name);
            } else {
                out.extend(format!("file {}\n", name.display()).into_bytes());
                out.extend(fs::read(entry.path()).unwrap());
                out.push(b'\n');
            }
        }
        // os.walk visits subdirectories in sorted order after their parent.
        dirs.extend(subdirs.into_iter().rev());
    }
    out
}

/// Rust std on `wasm32-wasip2`: arguments, environment, stdin, files and directories
/// in a preopen and the sandbox's refusals, clocks, hash seeds, exit codes, a panic.
#[test]
fn rust_std_component() {
    check_program("components/rust");
}

/// wit-component's shape written by hand: main module, shim table, fix-up module,
/// `cabi_realloc`, a re-exporting `wasi:cli/run` component; `run` returning `err`
/// exits 1.
#[test]
fn hand_written_shim_and_fixup() {
    check_program("components/wat");
}

/// Preview1 programs (`fixtures/rust-hello`, `fixtures/wasi/rust`) made components
/// with the preview1 adapter: several core modules importing each other's memory,
/// tables and functions, the adapter's own `cabi_import_realloc`.
#[test]
fn preview1_programs_through_the_adapter() {
    check_program("components/adapter");
}

/// Runs `exe` with `args`, feeding stdin from a pipe: `before` is written at once,
/// `after` once `delay` has passed, then the pipe is closed. Returns status and
/// stdout/stderr.
fn run_with_pipe(
    exe: &Path,
    args: &[&str],
    before: &[u8],
    delay: std::time::Duration,
    after: &[u8],
) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (before, after) = (before.to_vec(), after.to_vec());
    let writer = std::thread::spawn(move || {
        stdin.write_all(&before).unwrap();
        std::thread::sleep(delay);
        // The guest may be gone already (a trap): a broken pipe is fine.
        let _ = stdin.write_all(&after);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `wasi:io/poll` over stdin (a pipe the test writes to late, early or never) and
/// monotonic-clock timers, from a Rust program calling the WASI imports directly
/// (`fixtures/components/rust/p2_poll.rs`). The expected lines are what `wasmtime
/// run` 49 printed for the same runs (its start-up is slower, so the late write
/// comes 3 s after the start there): the timer wins over a silent stdin, data or
/// the end of the input makes stdin ready, a timer already due yields to nothing
/// else ready and is reported with the ones due since, a non-blocking read first
/// answers nothing, and an empty list traps (status 1, wasmtime's message).
#[test]
fn poll_readiness_matches_wasmtime() {
    use std::time::Duration;
    let scratch = Scratch::new();
    let exe = compile(&fixture("components/rust/p2_poll.wasm"), scratch.path());
    let no_delay = Duration::ZERO;
    /// Arguments; stdin written at once, after a delay, then closed; stdout.
    struct Case {
        args: &'static [&'static str],
        before: &'static [u8],
        delay: Duration,
        after: &'static [u8],
        stdout: &'static str,
    }
    let cases = [
        // Nothing to read for 1.5 s: the 300 ms timer is ready first; the data
        // written later is still read.
        Case {
            args: &["stdin-or-timer", "300"],
            before: b"",
            delay: Duration::from_millis(1500),
            after: b"hello",
            stdout: "then read 5 bytes\nready: [0]\n",
        },
        // Data already in the pipe: stdin is ready, the 10 s timer is not.
        Case {
            args: &["stdin-or-timer", "10000"],
            before: b"hello",
            delay: no_delay,
            after: b"",
            stdout: "then read 5 bytes\nready: [1]\n",
        },
        // The end of the input is ready too.
        Case {
            args: &["stdin-or-timer", "10000"],
            before: b"",
            delay: no_delay,
            after: b"",
            stdout: "then read 0 bytes\nready: [1]\n",
        },
        Case {
            args: &["timers"],
            before: b"",
            delay: no_delay,
            after: b"",
            stdout: "first poll: [1]\nsecond poll: [1, 2]\n",
        },
        Case {
            args: &["nonblocking"],
            before: b"ab",
            delay: Duration::from_millis(200),
            after: b"cde",
            stdout: "read 5 bytes; first answer empty: true\n",
        },
    ];
    for case in cases {
        let (status, stdout, stderr) =
            run_with_pipe(&exe, case.args, case.before, case.delay, case.after);
        assert_eq!(
            (status, stdout.as_str()),
            (0, case.stdout),
            "{:?}: stderr {stderr}",
            case.args
        );
    }
    let (status, stdout, stderr) = run_with_pipe(&exe, &["empty"], b"", no_delay, b"");
    assert_eq!((status, stdout.as_str()), (1, "polling nothing\n"));
    assert!(
        stderr.starts_with("error: empty poll list"),
        "the trap names wasmtime's reason: {stderr}"
    );
}

/// Writes `text` to `name` in `scratch`, compiles it and runs it with `args`.
fn compile_and_run(scratch: &Scratch, name: &str, text: &str, args: &[&str]) -> common::Output {
    let input = scratch.path().join(name);
    fs::write(&input, text).unwrap();
    let exe = compile(&input, scratch.path());
    run(&exe, args, scratch.path())
}

fn shim_fixup_with(from: &str, to: &str) -> String {
    let text = fs::read_to_string(fixture("components/wat/shim_fixup.wat")).unwrap();
    assert!(
        text.contains(from),
        "the fixture no longer contains {from:?}"
    );
    text.replace(from, to)
}

/// The shim/fix-up component with its `get-arguments` lowered with `encoding`; its
/// `run` writes the length word of argument 1 (4 bytes, little-endian) and then the
/// string's bytes as the lowering laid them out, to stdout.
fn arguments_in_encoding(encoding: &str) -> String {
    let text = shim_fixup_with(
        "string-encoding=utf8",
        &format!("string-encoding={encoding}"),
    );
    // UTF-16 strings are 2 bytes per unit; latin1+utf16 ones too when the length's
    // top bit is set, else 1.
    let shift = if encoding == "utf16" {
        "i32.const 1"
    } else {
        "local.get $len i32.const 31 i32.shr_u"
    };
    let write_argument = format!(
        "i32.const 0 call $args
      i32.const 0 i32.load i32.const 8 i32.add local.set $elem
      local.get $elem i32.load offset=4 local.set $len
      local.get $out local.get $elem i32.const 4 i32.add i32.const 4 i32.const 8
      call $write
      local.get $out local.get $elem i32.load
      local.get $len i32.const 0x7fffffff i32.and {shift} i32.shl
      i32.const 8 call $write
      local.get $out call $drop
      i32.const 0)"
    );
    let old_tail = "i32.const 0 call $args
      local.get $out call $drop
      i32.const 4 i32.load
      i32.const 1 i32.gt_u)";
    assert!(text.contains(old_tail), "the fixture's run changed");
    // The fixture's bump allocator ignores an old block; the UTF-16 stores shrink
    // (and latin1+utf16 grows) blocks with realloc, so this one keeps or copies them.
    let bump = "(local $ptr i32)
      ;; A bump allocator: align, hand out, never free.";
    let reallocating = "(local $ptr i32)
      local.get 0
      if
        local.get 3 local.get 1 i32.le_u
        if local.get 0 return end
      end
      ;; A bump allocator: align, hand out, never free; a grown block is copied.
      global.get $heap
      local.get 2 i32.const 1 i32.sub i32.add
      i32.const 0 local.get 2 i32.sub i32.and
      local.get 0 local.get 1 memory.copy";
    assert!(text.contains(bump), "the fixture's allocator changed");
    text.replace(old_tail, &write_argument)
        .replace(
            "(local $out i32)",
            "(local $out i32) (local $elem i32) (local $len i32)",
        )
        .replace(bump, reallocating)
}

/// Strings the host returns in UTF-16 and latin1+utf16 (`get-arguments`), laid
/// out as the canonical ABI says (checked against `wasmtime run` on the same
/// component when this test was written).
#[test]
fn host_strings_in_every_encoding() {
    let scratch = Scratch::new();
    let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_le_bytes).collect() };
    let cases: [(&str, &str, u32, Vec<u8>); 3] = [
        ("utf16", "h\u{e9}\u{1f600}", 4, utf16("h\u{e9}\u{1f600}")),
        ("latin1+utf16", "h\u{e9}", 2, vec![b'h', 0xe9]),
        (
            "latin1+utf16",
            "h\u{e9}\u{1f600}",
            4 | 1 << 31,
            utf16("h\u{e9}\u{1f600}"),
        ),
    ];
    for (i, (encoding, argument, len, bytes)) in cases.into_iter().enumerate() {
        let text = arguments_in_encoding(encoding);
        let output = compile_and_run(&scratch, &format!("enc{i}.wat"), &text, &[argument]);
        output.assert_code(0);
        let mut expected = b"hello from a hand-written component\n".to_vec();
        expected.extend(len.to_le_bytes());
        expected.extend(bytes);
        output.assert_stdout(&expected);
    }
}

/// A list the guest passes past the end of its memory, and a handle it never had:
/// the host refuses the call before doing anything, as wasmtime does (status 1 and
/// its message), and never faults.
#[test]
fn hostile_pointers_and_handles_are_refused() {
    let scratch = Scratch::new();
    let oob = shim_fixup_with(
        "i32.const 16 i32.const 36 i32.const 8",
        "i32.const 65530 i32.const 36 i32.const 8",
    );
    let output = compile_and_run(&scratch, "oob.wat", &oob, &[]);
    output.assert_code(1);
    output.assert_stdout(b"");
    assert!(
        output
            .stderr_text()
            .starts_with("error: list pointer/length out of bounds of memory\n"),
        "{}",
        output.describe()
    );

    let huge = shim_fixup_with(
        "i32.const 16 i32.const 36 i32.const 8",
        "i32.const 16 i32.const -1 i32.const 8",
    );
    let output = compile_and_run(&scratch, "huge.wat", &huge, &[]);
    output.assert_code(1);
    assert!(
        output.stderr_text().contains("out of bounds of memory"),
        "{}",
        output.describe()
    );

    let handle = shim_fixup_with("local.get $out call $drop", "i32.const 99 call $drop");
    let output = compile_and_run(&scratch, "handle.wat", &handle, &[]);
    output.assert_code(1);
    output.assert_stdout(b"hello from a hand-written component\n");
    assert!(
        output
            .stderr_text()
            .starts_with("error: unknown handle index 99\n"),
        "{}",
        output.describe()
    );

    // A realloc that traps while the host returns a string list: a trap of the
    // guest (status 134), as in wasmtime.
    let trapping_realloc = shim_fixup_with(
        "(local $ptr i32)\n",
        "(local $ptr i32)\n      unreachable\n",
    );
    let output = compile_and_run(&scratch, "realloc.wat", &trapping_realloc, &[]);
    output.assert_code(134);
    assert!(
        output.stderr_text().starts_with("wasm trap: unreachable\n"),
        "{}",
        output.describe()
    );

    // Dropping the same handle twice.
    let twice = shim_fixup_with(
        "local.get $out call $drop",
        "local.get $out call $drop local.get $out call $drop",
    );
    let output = compile_and_run(&scratch, "twice.wat", &twice, &[]);
    output.assert_code(1);
    assert!(
        output
            .stderr_text()
            .starts_with("error: unknown handle index"),
        "{}",
        output.describe()
    );
}

/// Every function and type a component imports from WASI is checked against the WIT
/// of WASI 0.2 (`compiler/wit/`) at compile time: a wrong type is refused naming the
/// interface, the function and both types; the fixture itself (imports of 0.2.0,
/// 0.2.3 and 0.2.6) is accepted, being matched by semver.
#[test]
fn imports_are_type_checked_against_the_wit() {
    let scratch = Scratch::new();
    let wrong_param = shim_fixup_with("(type $bytes (list u8))", "(type $bytes (list u16))");
    let renamed_case = shim_fixup_with(r#"(case "closed")"#, r#"(case "shut")"#);
    let wrong_result = shim_fixup_with("(type $args (list string))", "(type $args (list u32))");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "wrong-param.wat",
            &wrong_param,
            &[
                "`wasi:io/streams@0.2.3`",
                "function `[method]output-stream.blocking-write-and-flush` has the wrong type: \
                 parameter 2 is `list<u16>`, the WIT says `list<u8>`",
                "expected `func(borrow<wasi:io/streams/output-stream>, list<u8>) -> result<_, \
                 variant { last-operation-failed(own<wasi:io/error/error>), closed }>`",
            ],
        ),
        (
            "renamed-case.wat",
            &renamed_case,
            &[
                "type `stream-error` is `variant { last-operation-failed(own<wasi:io/error/error>), shut }`",
            ],
        ),
        (
            "wrong-result.wat",
            &wrong_result,
            &[
                "`wasi:cli/environment@0.2.6`",
                "`get-arguments` has the wrong type: the result is `list<u32>`, the WIT says \
                 `list<string>`",
            ],
        ),
        (
            "own-pollable.wat",
            r#"(component
                 (import "wasi:io/poll@0.2.0" (instance (export "pollable" (type (sub resource)))))
                 (import "wasi:io/streams@0.2.1" (instance (export "pollable" (type (sub resource))))))"#,
            &[
                "type `pollable` is `resource wasi:io/streams/pollable`, the WIT of WASI 0.2.12 \
               says `resource wasi:io/poll/pollable`",
            ],
        ),
        (
            "clock-u32.wat",
            r#"(component (import "wasi:clocks/monotonic-clock@0.2.0" (instance
                 (export "now" (func (result u32))))))"#,
            &["function `now` has the wrong type: the result is `u32`, the WIT says `u64`"],
        ),
        (
            "not-in-wasi.wat",
            r#"(component (import "wasi:clocks/monotonic-clock@0.2.9" (instance
                 (export "sleep" (func (param "ns" u64))))))"#,
            &[
                "`wasi:clocks/monotonic-clock` of WASI 0.2.12",
                "has no function `sleep`",
            ],
        ),
        (
            "not-implemented.wat",
            r#"(component
                 (import "wasi:io/error@0.2.0" (instance $ioerr
                   (export "error" (type (sub resource)))))
                 (alias export $ioerr "error" (type $error))
                 (import "wasi:io/streams@0.2.0" (instance
                   (export "output-stream" (type $o (sub resource)))
                   (export "input-stream" (type $i (sub resource)))
                   (type $bo (borrow $o)) (type $bi (borrow $i))
                   (alias outer 1 $error (type $error-outer))
                   (export "error" (type $err (eq $error-outer)))
                   (type $e (own $err))
                   (type $v (variant (case "last-operation-failed" $e) (case "closed")))
                   (export "stream-error" (type $se (eq $v)))
                   (export "[method]output-stream.splice"
                     (func (param "self" $bo) (param "src" $bi) (param "len" u64)
                       (result (result u64 (error $se))))))))"#,
            &[
                "`[method]output-stream.splice` of `wasi:io/streams@0.2.0`",
                "does not implement yet",
            ],
        ),
    ];
    for (name, text, expected) in cases {
        let input = scratch.path().join(name);
        fs::write(&input, text).unwrap();
        let exe = scratch.path().join(name.trim_end_matches(".wat"));
        let output = wasmc(
            &[input.as_os_str(), "-o".as_ref(), exe.as_os_str()],
            scratch.path(),
        );
        assert_compile_error(&output, &input, &exe);
        for expected in *expected {
            assert!(
                output.stderr_text().contains(expected),
                "{name}: the error must say {expected:?}\n{}",
                output.describe()
            );
        }
    }
}

/// Components outside what wasmc runs are refused at compile time with one line
/// naming what, and no executable.
#[test]
fn unsupported_components_are_refused() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "sockets.wat",
            r#"(component (import "wasi:sockets/tcp@0.2.0" (instance)))"#,
            "wasi:sockets/tcp@0.2.0",
        ),
        (
            "p3.wat",
            r#"(component (import "wasi:cli/stdout@0.3.0" (instance)))"#,
            "WASI 0.3",
        ),
        (
            "missing-function.wat",
            r#"(component (import "wasi:cli/environment@0.2.0" (instance
                 (export "no-such-function" (func)))))"#,
            "no-such-function",
        ),
        (
            "core-module-import.wat",
            r#"(component (import "m" (core module)))"#,
            "imports a core module",
        ),
        (
            "not-a-command.wat",
            r#"(component
                 (core module $m (func (export "f")))
                 (core instance $i (instantiate $m))
                 (func $f (canon lift (core func $i "f")))
                 (export "f" (func $f)))"#,
            "only WASI 0.2 commands",
        ),
        ("empty.wat", "(component)", "wasi:cli/run"),
    ];
    let scratch = Scratch::new();
    for (name, text, expected) in cases {
        let input = scratch.path().join(name);
        fs::write(&input, text).unwrap();
        let exe = scratch.path().join(name.trim_end_matches(".wat"));
        let output = wasmc(
            &[input.as_os_str(), "-o".as_ref(), exe.as_os_str()],
            scratch.path(),
        );
        assert_compile_error(&output, &input, &exe);
        assert!(
            output.stderr_text().contains(expected),
            "{name}: the error must name {expected:?}\n{}",
            output.describe()
        );
    }
}
