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
}

fn suite_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WASMC_SPEC_TESTSUITE") {
        return PathBuf::from(dir);
    }
    // CARGO_MANIFEST_DIR is cli/; the repository is its parent, and the shared
    // material sits next to the repository.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec-testsuite")
}

/// Parses `path  fail|skip  reason` lines; `#` starts a comment line.
fn read_expectations(path: &Path) -> BTreeMap<String, (Expected, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, char::is_whitespace);
        let file = parts.next().unwrap_or("");
        let kind = parts.next().unwrap_or("");
        let reason = parts.next().unwrap_or("").trim();
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

/// Parses the harness's `<file>: N passed, M failed, K skipped[ (skipped: ...)]` lines.
fn parse_summary(line: &str) -> Option<(String, Outcome)> {
    if line.starts_with(char::is_whitespace) {
        return None;
    }
    let (file, rest) = line.rsplit_once(": ")?;
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
    for (file, outcome) in &outcomes {
        let is_skip = outcome.skipped > 0 && outcome.passed == 0 && outcome.failed == 0;
        match (expectations.get(file), outcome.failed > 0, is_skip) {
            (None, false, false) => {}
            (None, true, _) => problems.push(format!(
                "{file}: unexpected failure ({} failed, {} passed)",
                outcome.failed, outcome.passed
            )),
            (None, false, true) => problems.push(format!(
                "{file}: skipped by the harness but not listed as skipped"
            )),
            (Some((Expected::Fail, _)), true, _) => {}
            (Some((Expected::Skip, _)), false, true) => {}
            (Some((Expected::Fail, _)), false, true) => problems.push(format!(
                "{file}: listed as failing but now skipped: list it as skipped"
            )),
            (Some((Expected::Fail | Expected::Skip, _)), false, false) => problems.push(format!(
                "{file}: now passes: remove it from the list"
            )),
            (Some((Expected::Skip, _)), true, _) => problems.push(format!(
                "{file}: listed as skipped but runs and fails ({} failed): list it as failing with the reason",
                outcome.failed
            )),
        }
    }
    for file in expectations.keys() {
        if !outcomes.contains_key(file) {
            problems.push(format!("{file}: listed but not in the suite's results"));
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
