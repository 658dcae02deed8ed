//! The driver of `wasmc wast`: runs every spec file in its own worker process (the
//! `wasmc` binary itself, re-executed in worker mode), several at a time, and prints
//! one summary line per file plus the totals.
//!
//! A worker per file isolates files from each other: a crash in generated code or in
//! the runtime, or a hang, costs that file only (its remaining directives count as
//! failed), and every file starts from a fresh process, so nothing one file leaves
//! behind (registered instances, reserved memory, loaded objects) can influence
//! another.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::WORKER_ENV;
use super::protocol::Record;

/// Environment overrides: worker count, per-file time limit (seconds), and how many
/// failure messages to show per file.
const JOBS_ENV: &str = "WASMC_WAST_JOBS";
const TIMEOUT_ENV: &str = "WASMC_WAST_TIMEOUT";
const SHOW_ENV: &str = "WASMC_WAST_SHOW_FAILURES";
/// A command (program and arguments, separated by whitespace) that worker processes
/// are started through: `RUNNER... <wasmc> wast -- FILE`. It is what lets a wasmc
/// built for another architecture run the suite under an emulator: the driver runs
/// under `qemu-aarch64`, and re-executing its own aarch64 binary needs the emulator
/// again (without binfmt_misc, the kernel cannot start it), e.g.
/// `WASMC_WAST_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"`.
const RUNNER_ENV: &str = "WASMC_WAST_RUNNER";

const DEFAULT_TIMEOUT_SECS: u64 = 300;
const DEFAULT_SHOWN_FAILURES: usize = 5;
/// How much of a dead worker's stderr is quoted in its failure message.
const STDERR_TAIL: usize = 1500;

/// The outcome of one spec file.
#[derive(Debug, Default)]
pub struct FileResult {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub skip_reason: Option<String>,
    /// `line:col: message` of each failed directive, in file order.
    pub failures: Vec<String>,
}

pub fn run(inputs: &[PathBuf]) -> Result<ExitCode> {
    let files = expand_inputs(inputs)?;
    if files.is_empty() {
        bail!("no .wast files given");
    }
    let exe = std::env::current_exe().context("cannot locate the wasmc executable")?;
    let runner: Vec<String> = std::env::var(RUNNER_ENV)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let jobs = env_number(JOBS_ENV)
        .map(|n| n as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let timeout = Duration::from_secs(env_number(TIMEOUT_ENV).unwrap_or(DEFAULT_TIMEOUT_SECS));
    let shown = env_number(SHOW_ENV).map_or(DEFAULT_SHOWN_FAILURES, |n| n as usize);
    let scratch = tempfile::Builder::new()
        .prefix("wasmc-wast-")
        .tempdir()
        .context("cannot create a temporary directory")?;

    // Largest files first, so that a big file does not start last and finish alone.
    let mut order: Vec<usize> = (0..files.len()).collect();
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));

    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, FileResult)>();
    let mut totals = (0u64, 0u64, 0u64);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(files.len()) {
            let tx = tx.clone();
            let (next, order, files, exe, runner) = (&next, &order, &files, &exe, &runner);
            let scratch = scratch.path();
            scope.spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&index) = order.get(k) else { break };
                    let result = run_worker(runner, exe, &files[index], scratch, timeout);
                    if tx.send((index, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Print in input order, each file as soon as all files before it are done.
        let mut pending = BTreeMap::new();
        let mut printed = 0;
        for (index, result) in rx {
            pending.insert(index, result);
            while let Some(result) = pending.remove(&printed) {
                print_file(&files[printed], &result, shown);
                totals.0 += result.passed;
                totals.1 += result.failed;
                totals.2 += result.skipped;
                printed += 1;
            }
        }
    });
    out(format_args!(
        "{} passed, {} failed, {} skipped",
        totals.0, totals.1, totals.2
    ));
    Ok(if totals.1 == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints one line of the report. When stdout is gone (`wasmc wast ... | head`) there
/// is nobody left to report to: exit quietly instead of panicking.
fn out(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        std::process::exit(1);
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// Files as given, and the `.wast` files below each given directory (sorted).
fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        let meta =
            std::fs::metadata(input).with_context(|| format!("cannot read {}", input.display()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            collect_wast(input, &mut found)?;
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

fn collect_wast(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_wast(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "wast") {
            out.push(path);
        }
    }
    Ok(())
}

fn print_file(path: &Path, r: &FileResult, shown: usize) {
    let mut line = format!(
        "{}: {} passed, {} failed, {} skipped",
        path.display(),
        r.passed,
        r.failed,
        r.skipped
    );
    if let Some(reason) = &r.skip_reason {
        line.push_str(&format!(" (skipped: {reason})"));
    }
    out(format_args!("{line}"));
    for failure in r.failures.iter().take(shown) {
        out(format_args!("    {failure}"));
    }
    if r.failures.len() > shown {
        out(format_args!(
            "    ... and {} more failures",
            r.failures.len() - shown
        ));
    }
}

/// Runs one file in a worker process (started through `runner`, when not empty) and
/// gathers its records.
fn run_worker(
    runner: &[String],
    exe: &Path,
    file: &Path,
    scratch: &Path,
    timeout: Duration,
) -> FileResult {
    let mut result = FileResult::default();
    let mut command = match runner.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(exe);
            command
        }
        None => Command::new(exe),
    };
    let spawned = command
        .arg("wast")
        // A file name starting with `-` must not be taken for an option.
        .arg("--")
        .arg(file)
        .env(WORKER_ENV, scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            result.failed = 1;
            let through = match runner.first() {
                Some(program) => format!(" through {program} (${RUNNER_ENV})"),
                None => String::new(),
            };
            result
                .failures
                .push(format!("cannot start a worker process{through}: {e}"));
            return result;
        }
    };
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");

    // The watchdog kills the worker when the time limit passes. It is told to stop
    // before the worker is reaped, so the pid it may signal is still our child.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
            // SAFETY: `pid` is our own child, not yet reaped (see above).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            true
        } else {
            false
        }
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });

    let mut total = None;
    let mut done = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        match Record::decode(&line) {
            Some(Record::Total(n)) => total = Some(n),
            Some(Record::Skip(reason)) => result.skip_reason = Some(reason),
            Some(Record::Pass) => result.passed += 1,
            Some(Record::Fail(message)) => {
                result.failed += 1;
                result.failures.push(message);
            }
            Some(Record::Done) => done = true,
            None => {}
        }
    }
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let status = child.wait();
    let stderr = stderr_reader.join().unwrap_or_default();

    let total = total.unwrap_or(0);
    if result.skip_reason.is_some() && done {
        result.skipped = total;
        return result;
    }
    let clean_exit = status.as_ref().is_ok_and(|s| s.success());
    if done && clean_exit {
        return result;
    }
    // The worker died: everything it did not report counts as failed.
    let how = if timed_out {
        format!("worker killed after the {}s time limit", timeout.as_secs())
    } else {
        match &status {
            Ok(s) => describe_status(s),
            Err(e) => format!("cannot wait for the worker: {e}"),
        }
    };
    let stderr = String::from_utf8_lossy(&stderr);
    let tail = tail_chars(stderr.trim(), STDERR_TAIL);
    let not_run = total.saturating_sub(result.passed + result.failed).max(1);
    result.failed += not_run;
    result.failures.push(format!(
        "{how}; {not_run} directive(s) did not run{}",
        if tail.is_empty() {
            String::new()
        } else {
            format!("; stderr: {tail}")
        }
    ));
    result
}

fn describe_status(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(signal) = status.signal() {
        format!("worker killed by signal {signal}")
    } else {
        format!("worker exited with {status}")
    }
}

fn tail_chars(s: &str, max: usize) -> String {
    let count = s.chars().count();
    if count <= max {
        s.to_string()
    } else {
        let tail: String = s.chars().skip(count - max).collect();
        format!("...{tail}")
    }
}
