//! What the spec-suite tests share (`tests/spec.rs` on the host, `tests/spec_aarch64.rs`
//! under qemu-aarch64): where the suite is, the checked-in expectations
//! (`tests/spec-expectations.txt`), parsing `wasmc wast`'s report, and checking a
//! report against the expectations.

// Each test file that includes this module uses only part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Fail,
    Skip,
}

/// One file's line of the report, and the failure lines printed under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    /// The harness skipped the whole file (it printed a `(skipped: reason)`).
    pub file_skipped: bool,
    /// The indented lines under the file's line (`line:col: message`, as many as
    /// `WASMC_WAST_SHOW_FAILURES` lets the harness print).
    pub failures: Vec<String>,
}

pub type Expectations = BTreeMap<String, (Expected, String)>;

pub fn suite_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WASMC_SPEC_TESTSUITE") {
        return PathBuf::from(dir);
    }
    // CARGO_MANIFEST_DIR is cli/; the repository is its parent, and the shared
    // material sits next to the repository.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec-testsuite")
}

/// The suite directory, canonical; panics with a hint when it is missing.
pub fn find_suite() -> PathBuf {
    let suite = suite_dir();
    assert!(
        suite.is_dir(),
        "spec test suite not found at {}; set WASMC_SPEC_TESTSUITE to its location",
        suite.display()
    );
    suite.canonicalize().expect("canonical suite path")
}

/// `tests/spec-expectations.txt`, parsed.
pub fn expectations() -> Expectations {
    read_expectations(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/spec-expectations.txt"))
}

/// Parses `path  fail|skip  reason` lines; `#` starts a comment line. `skip` entries
/// may contain one `*` wildcard (a proposal's files); `fail` entries name one file
/// each, so that a new failure never hides behind a pattern.
pub fn read_expectations(path: &Path) -> Expectations {
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
pub fn matches(pattern: &str, file: &str) -> bool {
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
pub fn lookup<'a>(expectations: &'a Expectations, file: &str) -> Option<(&'a String, Expected)> {
    expectations
        .iter()
        .find(|(pattern, _)| matches(pattern, file))
        .map(|(pattern, (kind, _))| (pattern, *kind))
}

/// Parses the harness's `<file>: N passed, M failed, K skipped[ (skipped: ...)]` lines.
pub fn parse_summary(line: &str) -> Option<(String, Outcome)> {
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
            failures: Vec::new(),
        },
    ))
}

/// Parses a whole report of a run over files of `suite`: one outcome per file, keyed
/// by the path relative to the suite. Panics when the report is not a complete one
/// (fewer than `min_files` files, no totals line); `status` is quoted in that case.
pub fn parse_report(
    stdout: &str,
    suite: &Path,
    status: &std::process::ExitStatus,
    min_files: usize,
) -> BTreeMap<String, Outcome> {
    let prefix = format!("{}/", suite.display());
    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut last_file: Option<String> = None;
    for line in stdout.lines() {
        if let Some((file, outcome)) = parse_summary(line) {
            let rel = file.strip_prefix(&prefix).unwrap_or(&file).to_string();
            outcomes.insert(rel.clone(), outcome);
            last_file = Some(rel);
        } else if let Some(failure) = line.strip_prefix("    ")
            && let Some(outcome) = last_file.as_ref().and_then(|f| outcomes.get_mut(f))
        {
            outcome.failures.push(failure.to_string());
        }
    }
    assert!(
        outcomes.len() >= min_files,
        "expected one summary line per spec file ({min_files} at least), found {} (exit \
         status {status})",
        outcomes.len(),
    );
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.ends_with(" skipped") && !last.contains(':'),
        "missing the totals line; last line: {last:?}"
    );
    outcomes
}

/// Differences between the outcomes and the expectations, one message each (empty
/// when the run is exactly as expected).
pub fn check_expectations(
    outcomes: &BTreeMap<String, Outcome>,
    expectations: &Expectations,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (file, outcome) in outcomes {
        let is_skip = outcome.file_skipped;
        if !is_skip && outcome.skipped > 0 {
            // The harness skips whole files only, never single directives.
            problems.push(format!(
                "{file}: {} directives skipped in a file that was not skipped",
                outcome.skipped
            ));
        }
        let entry = lookup(expectations, file);
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
    problems
}
