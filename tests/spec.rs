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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Fail,
    Skip,
}

#[derive(Debug)]
struct Outcome {
    passed: u64,
    failed: u64,
    skipped: u64,
    /// The harness skipped the whole file (it printed a `(skipped: reason)`).
    file_skipped: bool,
}

fn suite_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WASMC_SPEC_TESTSUITE") {
        return PathBuf::from(dir);
    }
    // CARGO_MANIFEST_DIR is cli/; the repository is its parent, and the shared
    // material sits next to the repository.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec-testsuite")
}

/// Parses `path  fail|skip  reason` lines; `#` starts a comment line. `skip` entries
/// may contain one `*` wildcard (a proposal's files); `fail` entries name one file
/// each, so that a new failure never hides behind a pattern.
fn read_expectations(path: &Path) -> BTreeMap<String, (Expected, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (file, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim_start();
        let (kind, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let reason = reason.trim();
        let kind = match kind {
            "fail" => Expected::Fail,
            "skip" => Expected::Skip,
            other => panic!(
                "{}:{}: unknown expectation {other:?}",
                path.display(),
                n + 1
            ),
        };
        assert!(
            kind == Expected::Skip || !file.contains('*'),
            "{}:{}: only skip entries may use a wildcard",
            path.display(),
            n + 1
        );
        assert!(
            !reason.is_empty(),
            "{}:{}: the entry for {file} has no reason",
            path.display(),
            n + 1
        );
        assert!(
            map.insert(file.to_string(), (kind, reason.to_string()))
                .is_none(),
            "{}:{}: {file} is listed twice",
            path.display(),
            n + 1
        );
    }
    map
}

/// Does `file` match `pattern` (with at most one `*`)?
fn matches(pattern: &str, file: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == file,
        Some((prefix, suffix)) => {
            file.len() >= prefix.len() + suffix.len()
                && file.starts_with(prefix)
                && file.ends_with(suffix)
        }
    }
}

/// The expectation entry for `file`, if any.
fn lookup<'a>(
    expectations: &'a BTreeMap<String, (Expected, String)>,
    file: &str,
) -> Option<(&'a String, Expected)> {
    expectations
        .iter()
        .find(|(pattern, _)| matches(pattern, file))
        .map(|(pattern, (kind, _))| (pattern, *kind))
}

/// Parses the harness's `<file>: N passed, M failed, K skipped[ (skipped: ...)]` lines.
fn parse_summary(line: &str) -> Option<(String, Outcome)> {
    if line.starts_with(char::is_whitespace) {
        return None;
    }
    // The file name ends at the first ": " followed by the counts (a skip reason
    // after the counts may contain ": " too).
    let (at, _) = line
        .match_indices(": ")
        .find(|(i, _)| line[i + 2..].starts_with(|c: char| c.is_ascii_digit()))?;
    let (file, rest) = (&line[..at], &line[at + 2..]);
    let file_skipped = rest.contains(" (skipped: ");
    let rest = rest.split(" (skipped:").next()?;
    let mut numbers = rest.split(", ").map(|part| {
        let (n, _) = part.split_once(' ')?;
        n.parse::<u64>().ok()
    });
    let passed = numbers.next()??;
    let failed = numbers.next()??;
    let skipped = numbers.next()??;
    Some((
        file.to_string(),
        Outcome {
            passed,
            failed,
            skipped,
            file_skipped,
        },
    ))
}

#[test]
fn spec_testsuite() {
    let suite = suite_dir();
    assert!(
        suite.is_dir(),
        "spec test suite not found at {}; set WASMC_SPEC_TESTSUITE to its location",
        suite.display()
    );
    let suite = suite.canonicalize().expect("canonical suite path");
    let expectations_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/spec-expectations.txt");
    let expectations = read_expectations(&expectations_path);

    let output = Command::new(env!("CARGO_BIN_EXE_wasmc"))
        .arg("wast")
        .arg(&suite)
        .output()
        .expect("run wasmc wast");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    eprint!("{stderr}");

    let prefix = format!("{}/", suite.display());
    let mut outcomes = BTreeMap::new();
    for line in stdout.lines() {
        if let Some((file, outcome)) = parse_summary(line) {
            let rel = file.strip_prefix(&prefix).unwrap_or(&file).to_string();
            outcomes.insert(rel, outcome);
        }
    }
    assert!(
        outcomes.len() > 200,
        "expected one summary line per spec file, found {} (exit status {})",
        outcomes.len(),
        output.status
    );

    let mut problems = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for (file, outcome) in &outcomes {
        let is_skip = outcome.file_skipped;
        if !is_skip && outcome.skipped > 0 {
            // The harness skips whole files only, never single directives.
            problems.push(format!(
                "{file}: {} directives skipped in a file that was not skipped",
                outcome.skipped
            ));
        }
        let entry = lookup(&expectations, file);
        if let Some((pattern, _)) = entry {
            used.insert(pattern.clone());
        }
        match (entry.map(|(_, kind)| kind), outcome.failed > 0, is_skip) {
            (None, false, false) => {}
            (None, true, _) => problems.push(format!(
                "{file}: unexpected failure ({} failed, {} passed)",
                outcome.failed, outcome.passed
            )),
            (None, false, true) => problems.push(format!(
                "{file}: skipped by the harness but not listed as skipped"
            )),
            (Some(Expected::Fail), true, _) => {}
            (Some(Expected::Skip), false, true) => {}
            (Some(Expected::Fail), false, true) => problems.push(format!(
                "{file}: listed as failing but now skipped: list it as skipped"
            )),
            (Some(Expected::Fail | Expected::Skip), false, false) => problems.push(format!(
                "{file}: now passes: remove it from the list"
            )),
            (Some(Expected::Skip), true, _) => problems.push(format!(
                "{file}: listed as skipped but runs and fails ({} failed): list it as failing with the reason",
                outcome.failed
            )),
        }
    }
    for pattern in expectations.keys() {
        if !used.contains(pattern) {
            problems.push(format!(
                "{pattern}: listed but matches no file of the suite"
            ));
        }
    }
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.ends_with(" skipped") && !last.contains(':'),
        "missing the totals line; last line: {last:?}"
    );
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
