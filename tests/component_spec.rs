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
