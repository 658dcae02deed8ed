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
