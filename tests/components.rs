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
