//! The WebAssembly spec test suite, run through `wasmc wast`, compared file by file
//! with the checked-in expectations in `tests/spec-expectations.txt`.
//!
//! Every file not listed there must pass completely. A listed file must end exactly as
//! listed (`fail`: some directive fails; `skip`: the harness skips the whole file as an
//! unsupported proposal), and every entry carries its reason. A listed file that now
//! passes fails this test with "now passes: remove it from the list", so the list can
//! only shrink honestly; an unlisted failure fails it too.
//!
//! The suite is found at `../shared/spec-testsuite` next to the repository, or where
//! `WASMC_SPEC_TESTSUITE` points.

mod spec_support;

use std::process::Command;

use spec_support::{check_expectations, expectations, find_suite, parse_report};

#[test]
fn spec_testsuite() {
    let suite = find_suite();
    let expectations = expectations();

    let output = Command::new(env!("CARGO_BIN_EXE_wasmc"))
        .arg("wast")
        .arg(&suite)
        .output()
        .expect("run wasmc wast");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    eprint!("{stderr}");

    let outcomes = parse_report(&stdout, &suite, &output.status, 200);
    let problems = check_expectations(&outcomes, &expectations);
    assert!(
        problems.is_empty(),
        "spec test suite differs from tests/spec-expectations.txt:\n  {}",
        problems.join("\n  ")
    );
}

/// Runs `wasmc wast` on one script written to a temporary directory.
fn run_script(name: &str, script: &str, env: &[(&str, &str)]) -> (String, bool) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join(name);
    std::fs::write(&path, script).expect("write script");
    let output = Command::new(env!("CARGO_BIN_EXE_wasmc"))
        .arg("wast")
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .expect("run wasmc wast");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (stdout, output.status.success())
}

/// The harness itself: every kind of check must be able to fail. Each `;; FAIL`
/// directive below is wrong on purpose and must be reported, with its position.
#[test]
fn harness_reports_each_kind_of_mismatch() {
    let script = r#"
(module
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "nan") (result f32) (f32.div (f32.const 0) (f32.const 0)))
  (func (export "payload") (result f32) (f32.const nan:0x400001))
  (func (export "neg0") (result f64) (f64.const -0))
  (func (export "vec") (result v128) (v128.const i32x4 1 2 3 4))
  (func $rec (export "rec") (call $rec))
  (func (export "unreachable") unreachable)
  (func (export "ext") (param externref) (result externref) (local.get 0))
  (func (export "two") (result i32 i64) (i32.const 1) (i64.const 2))
  (global (export "g") i32 (i32.const 7))
)
(assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 3))
(assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 4)) ;; FAIL
(assert_return (invoke "nan") (f32.const nan:canonical))
(assert_return (invoke "nan") (f32.const nan:arithmetic))
(assert_return (invoke "nan") (f32.const 0)) ;; FAIL
(assert_return (invoke "payload") (f32.const nan:arithmetic))
(assert_return (invoke "payload") (f32.const nan:canonical)) ;; FAIL
(assert_return (invoke "neg0") (f64.const -0))
(assert_return (invoke "neg0") (f64.const 0)) ;; FAIL
(assert_return (invoke "vec") (v128.const i32x4 1 2 3 4))
(assert_return (invoke "vec") (v128.const i16x8 1 0 2 0 3 0 4 0))
(assert_return (invoke "vec") (v128.const i32x4 1 2 3 5)) ;; FAIL
(assert_return (invoke "ext" (ref.extern 7)) (ref.extern 7))
(assert_return (invoke "ext" (ref.extern 7)) (ref.extern 8)) ;; FAIL
(assert_return (invoke "ext" (ref.null extern)) (ref.null extern))
(assert_return (invoke "ext" (ref.null extern)) (ref.null func)) ;; FAIL
(assert_return (invoke "two") (i32.const 1) (i64.const 2))
(assert_return (invoke "two") (i32.const 1)) ;; FAIL
(assert_return (get "g") (i32.const 7))
(assert_return (get "g") (i32.const 8)) ;; FAIL
(assert_trap (invoke "unreachable") "unreachable")
(assert_trap (invoke "unreachable") "integer overflow") ;; FAIL
(assert_trap (invoke "add" (i32.const 1) (i32.const 2)) "unreachable") ;; FAIL
(assert_exhaustion (invoke "rec") "call stack exhausted")
(assert_exhaustion (invoke "unreachable") "call stack exhausted") ;; FAIL
(invoke "unreachable") ;; FAIL
(assert_invalid (module (func (result i32))) "type mismatch")
(assert_invalid (module (func)) "type mismatch") ;; FAIL
(assert_malformed (module quote "(func") "unexpected end")
(assert_malformed (module quote "(func)") "nothing wrong") ;; FAIL
(assert_unlinkable (module (import "spectest" "nope" (func))) "unknown import")
(assert_unlinkable (module (import "spectest" "print_i32" (func))) "unknown import") ;; FAIL
(assert_unlinkable (module) "unknown import") ;; FAIL
(module $M (func (export "f") (result i32) (i32.const 42)))
(register "m" $M)
(module (import "m" "f" (func $f (result i32))) (func (export "g") (result i32) (call $f)))
(assert_return (invoke "g") (i32.const 42))
(assert_return (invoke $M "f") (i32.const 42))
(module (import "spectest" "global_i32" (global i32)) (import "spectest" "memory" (memory 1))
  (func (export "g") (result i32) (global.get 0)))
(assert_return (invoke "g") (i32.const 666))
(assert_trap (module (func $s unreachable) (start $s)) "unreachable")
(assert_trap (module (func $s) (start $s)) "unreachable") ;; FAIL
(module definition $D (global (export "g") (mut i32) (i32.const 5))
  (func (export "inc") (global.set 0 (i32.add (global.get 0) (i32.const 1)))))
(module instance $I1 $D)
(module instance $I2 $D)
(invoke $I1 "inc")
(assert_return (get $I1 "g") (i32.const 6))
(assert_return (get $I2 "g") (i32.const 5))
(assert_return (get $I2 "g") (i32.const 6)) ;; FAIL
(module (func (export "missing-import-later") (result i32) (i32.const 0)))
(module (import "nowhere" "f" (func))) ;; FAIL
(assert_return (invoke "missing-import-later") (i32.const 0)) ;; FAIL
"#;
    let expected_failures: Vec<usize> = script
        .lines()
        .enumerate()
        .filter(|(_, l)| l.ends_with(";; FAIL"))
        .map(|(i, _)| i + 1)
        .collect();
    let directives = script.lines().filter(|l| l.starts_with('(')).count();
    let (stdout, success) = run_script(
        "harness.wast",
        script,
        &[("WASMC_WAST_SHOW_FAILURES", "1000")],
    );
    assert!(
        !success,
        "failures must give a non-zero exit status:\n{stdout}"
    );
    let summary = format!(
        "{} passed, {} failed, 0 skipped",
        directives - expected_failures.len(),
        expected_failures.len()
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.ends_with(&format!("harness.wast: {summary}"))),
        "expected `{summary}`:\n{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some(summary.as_str()), "{stdout}");
    let reported: Vec<usize> = stdout
        .lines()
        .filter_map(|l| l.trim_start().split(':').next()?.parse().ok())
        .collect();
    assert_eq!(reported, expected_failures, "{stdout}");
}

/// A script that never finishes is killed at the time limit and reported as failed,
/// without stopping the run.
#[test]
fn harness_survives_a_hanging_script() {
    let script = r#"
(module (func (export "spin") (loop (br 0))) (func (export "ok")))
(invoke "ok")
(invoke "spin")
(invoke "ok")
"#;
    let (stdout, success) = run_script("hang.wast", script, &[("WASMC_WAST_TIMEOUT", "2")]);
    assert!(!success, "{stdout}");
    assert!(
        stdout.contains("hang.wast: 2 passed, 2 failed, 0 skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("time limit"), "{stdout}");
}
