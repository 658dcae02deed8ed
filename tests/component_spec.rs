//! The Component Model reference tests, run through `wasmc wast`, compared file by
//! file with the checked-in expectations in `tests/component-spec-expectations.txt`
//! (same format and rules as the core suite's `tests/spec-expectations.txt`).
//!
//! Every `.wast` file of the suite runs except the `async/` folder (the async ABI of
//! WASI 0.3 is out of scope) and the files the suite's own `nyi.txt` lists (tests
//! that land ahead of every implementation). A file not in the expectations must
//! pass completely; a listed file that now passes fails this test.
//!
//! The suite is found at `../shared/component-model-tests` next to the repository,
//! or where `WASMC_COMPONENT_MODEL_TESTS` points.

mod spec_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use spec_support::{check_expectations, parse_report, read_expectations};

fn suite() -> PathBuf {
    let dir = std::env::var_os("WASMC_COMPONENT_MODEL_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/component-model-tests")
        });
    assert!(
        dir.is_dir(),
        "Component Model reference tests not found at {}; set WASMC_COMPONENT_MODEL_TESTS",
        dir.display()
    );
    dir.canonicalize().expect("canonical suite path")
}

/// The suite's files minus `async/` and `nyi.txt`, sorted.
fn files(suite: &Path) -> Vec<PathBuf> {
    let nyi = std::fs::read_to_string(suite.join("nyi.txt")).unwrap_or_default();
    let nyi: Vec<&str> = nyi
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches("./"))
        .collect();
    let mut files = Vec::new();
    let mut dirs = vec![suite.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read suite directory") {
            let path = entry.expect("directory entry").path();
            let rel = path
                .strip_prefix(suite)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                if rel != "async" {
                    dirs.push(path);
                }
            } else if rel.ends_with(".wast") && !nyi.contains(&rel.as_str()) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn component_model_reference_tests() {
    let suite = suite();
    let files = files(&suite);
    assert!(
        files.len() >= 20,
        "only {} files found in {}",
        files.len(),
        suite.display()
    );
    let expectations = read_expectations(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/component-spec-expectations.txt"),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_wasmc"))
        .arg("wast")
        .args(&files)
        .output()
        .expect("run wasmc wast");
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    let outcomes = parse_report(&stdout, &suite, &output.status, files.len());
    let problems = check_expectations(&outcomes, &expectations);
    assert!(
        problems.is_empty(),
        "Component Model tests differ from tests/component-spec-expectations.txt:\n  {}",
        problems.join("\n  ")
    );
}

/// The component harness itself: every kind of check must be able to fail, and
/// the semantics it checks (strings across components, borrows, handle types) must
/// be the canonical ABI's. Each `;; FAIL` directive is wrong on purpose.
#[test]
fn component_harness_reports_each_kind_of_mismatch() {
    let script = r#"
(component
  (core module $m
    (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
    (func (export "boom") unreachable))
  (core instance $i (instantiate $m))
  (func (export "add") (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $i "add")))
  (func (export "boom") (canon lift (core func $i "boom"))))
(assert_return (invoke "add" (u32.const 1) (u32.const 2)) (u32.const 3))
(assert_return (invoke "add" (u32.const 1) (u32.const 2)) (u32.const 4)) ;; FAIL
(assert_return (invoke "add" (u32.const 1) (u32.const 2))) ;; FAIL
(assert_trap (invoke "boom") "unreachable")
(assert_trap (invoke "add" (u32.const 1) (u32.const 2)) "unreachable") ;; FAIL
(invoke "boom") ;; FAIL
(invoke "missing") ;; FAIL
(assert_invalid (component (core func (canon lower (func 0)))) "unknown function")
(assert_invalid (component) "nothing wrong") ;; FAIL
(component
  (component $Lib
    (core module $M
      (memory (export "mem") 1)
      (global $next (mut i32) (i32.const 1024))
      (func (export "realloc") (param i32 i32 i32 i32) (result i32)
        (local $p i32)
        (local.set $p (global.get $next))
        (global.set $next (i32.add (global.get $next) (local.get 3)))
        (local.get $p))
      (func (export "len") (param i32 i32) (result i32) (local.get 1)))
    (core instance $m (instantiate $M))
    (func (export "len") (param "s" string) (result u32)
      (canon lift (core func $m "len") (memory (core memory $m "mem"))
        (realloc (core func $m "realloc")) string-encoding=utf16)))
  (component $App
    (import "len" (func $len (param "s" string) (result u32)))
    (core module $Mem (memory (export "mem") 1)
      (data (i32.const 16) "h\c3\a9llo"))
    (core instance $mem (instantiate $Mem))
    (core func $len' (canon lower (func $len) (memory (core memory $mem "mem"))))
    (core module $Main
      (import "" "len" (func $len (param i32 i32) (result i32)))
      (func (export "run") (result i32) (call $len (i32.const 16) (i32.const 6)))
      (func (export "bad") (result i32) (call $len (i32.const 65534) (i32.const 6))))
    (core instance $main (instantiate $Main (with "" (instance (export "len" (func $len'))))))
    (func (export "run") (result u32) (canon lift (core func $main "run")))
    (func (export "bad") (result u32) (canon lift (core func $main "bad"))))
  (instance $lib (instantiate $Lib))
  (instance $app (instantiate $App (with "len" (func $lib "len"))))
  (export "run" (func $app "run"))
  (export "bad" (func $app "bad")))
(assert_return (invoke "run") (u32.const 5))
(assert_return (invoke "run") (u32.const 6)) ;; FAIL
(assert_trap (invoke "bad") "string content out-of-bounds")
(component
  (component $Owner
    (type $R (resource (rep i32)))
    (core func $new (canon resource.new $R))
    (core module $M
      (import "" "new" (func $new (param i32) (result i32)))
      (func (export "make") (result i32) (call $new (i32.const 7)))
      (func (export "keep") (param i32)))
    (core instance $m (instantiate $M (with "" (instance (export "new" (func $new))))))
    (export $R' "r" (type $R))
    (func (export "make") (result (own $R')) (canon lift (core func $m "make")))
    (func (export "keep") (param "r" (borrow $R')) (canon lift (core func $m "keep"))))
  (component $User
    (import "r" (type $R (sub resource)))
    (import "make" (func $make (result (own $R))))
    (import "keep" (func $keep (param "r" (borrow $R))))
    (core func $make' (canon lower (func $make)))
    (core func $keep' (canon lower (func $keep)))
    (core func $drop (canon resource.drop $R))
    (core module $M
      (import "" "make" (func $make (result i32)))
      (import "" "keep" (func $keep (param i32)))
      (import "" "drop" (func $drop (param i32)))
      (func (export "run") (result i32)
        (local $h i32)
        (local.set $h (call $make))
        (call $keep (local.get $h))
        (call $drop (local.get $h))
        (local.get $h))
      (func (export "double-drop")
        (local $h i32)
        (local.set $h (call $make))
        (call $drop (local.get $h))
        (call $drop (local.get $h))))
    (core instance $m (instantiate $M (with "" (instance
      (export "make" (func $make')) (export "keep" (func $keep')) (export "drop" (func $drop))))))
    (func (export "run") (result u32) (canon lift (core func $m "run")))
    (func (export "double-drop") (canon lift (core func $m "double-drop"))))
  (instance $owner (instantiate $Owner))
  (instance $user (instantiate $User
    (with "r" (type $owner "r")) (with "make" (func $owner "make")) (with "keep" (func $owner "keep"))))
  (export "run" (func $user "run"))
  (export "double-drop" (func $user "double-drop")))
(assert_return (invoke "run") (u32.const 1))
(assert_trap (invoke "double-drop") "unknown handle index 1")
(assert_trap (invoke "double-drop") "cannot remove owned resource while borrowed") ;; FAIL
"#;
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("harness.wast");
    std::fs::write(&path, script).expect("write script");
    let output = Command::new(env!("CARGO_BIN_EXE_wasmc"))
        .arg("wast")
        .arg(&path)
        .env("WASMC_WAST_SHOW_FAILURES", "1000")
        .output()
        .expect("run wasmc wast");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected_failures: Vec<usize> = script
        .lines()
        .enumerate()
        .filter(|(_, l)| l.ends_with(";; FAIL"))
        .map(|(i, _)| i + 1)
        .collect();
    let directives = script.lines().filter(|l| l.starts_with('(')).count();
    assert!(
        !output.status.success(),
        "failures must fail the run:\n{stdout}"
    );
    let summary = format!(
        "{} passed, {} failed, 0 skipped",
        directives - expected_failures.len(),
        expected_failures.len()
    );
    assert_eq!(stdout.lines().last(), Some(summary.as_str()), "{stdout}");
    let reported: Vec<usize> = stdout
        .lines()
        .filter_map(|l| l.trim_start().split(':').next()?.parse().ok())
        .collect();
    assert_eq!(reported, expected_failures, "{stdout}");
}
