//! WebAssembly GC end to end: the workloads of fixtures/gc (binary-trees, a hash map
//! with string keys, an interpreter over structs and arrays, a collector stress
//! test, a Python program compiled by p2w) compiled by wasmc must do exactly what `wasmtime run -W gc=y,exceptions=y`
//! did (fixtures/gc/expected, recorded by fixtures/gc/record.py), on x86_64 (gnu and
//! static musl) and on aarch64 under qemu; the stress test must run in bounded memory
//! under a tight GC heap limit, and a live set beyond the limit must end in a trap.
//! Code without GC types must compile to the same machine code as before GC.
//!
//! Every fixture checks each value it reads back and exits 1 with `FAIL: ...` on a
//! mismatch, so these tests fail on a wrong value even where the output is a summary.
mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Seek};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{
    Output, Reference, Scratch, fixture, fixtures_dir, run_command_after_guest_stderr, runner,
    wasmc,
};
use sha2::{Digest, Sha256};

/// The runtime option that caps the GC heap, like `--max-memory` for linear memory.
/// It must match the GC implementation's name for it.
const GC_HEAP_LIMIT_OPTION: &str = "--max-gc-heap";

/// qemu is several times slower than native; every case still takes seconds.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Cases left out under qemu: the same code paths as smaller recorded cases
/// (binary-trees, stress-100), only longer, and the p2w program (seconds natively).
const TOO_SLOW_FOR_QEMU: [&str; 4] = ["binary-trees-14", "stress", "stress-keep", "python-p2w"];

/// Compiles `module` (relative to fixtures/) for `target` into `dir`. Until wasmc
/// implements GC this fails with its refusal ("... (GC proposal) are not supported"),
/// which the message shows.
fn compile_for(module: &str, target: &str, dir: &Path) -> PathBuf {
    let exe = dir.join(format!("{}-{target}", module.replace(['/', '.'], "_")));
    let output = wasmc(
        &[
            fixture(module).as_os_str(),
            OsStr::new("--target"),
            OsStr::new(target),
            OsStr::new("-o"),
            exe.as_os_str(),
        ],
        dir,
    );
    assert!(
        output.status.success(),
        "compiling {module} for {target} failed\n{}",
        output.describe()
    );
    exe
}

fn command_for(runner: &[String], exe: &Path) -> Command {
    match runner.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    }
}

/// Every recorded case of fixtures/gc on `target`, each module compiled once.
fn cases_match_wasmtime(target: &str) {
    let Some(runner) = runner(target) else { return };
    let names = Reference::cases("gc");
    assert!(names.len() >= 9, "gc recordings are missing: {names:?}");
    let scratch = Scratch::new();
    let mut exes: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut ran = 0;
    for name in names {
        if !runner.is_empty() && TOO_SLOW_FOR_QEMU.contains(&name.as_str()) {
            continue;
        }
        let reference = Reference::load("gc", &name);
        let exe = exes
            .entry(reference.module.clone())
            .or_insert_with(|| compile_for(&reference.module, target, scratch.path()))
            .clone();
        let work = Scratch::new();
        let args = reference.prepare(work.path());
        let mut command = command_for(&runner, &exe);
        command.args(&args).current_dir(work.path());
        let output = run_command_after_guest_stderr(&mut command, RUN_TIMEOUT, &reference.stderr);
        reference.assert_matches(&output);
        ran += 1;
    }
    assert!(ran >= 7, "only {ran} cases ran on {target}");
}

#[test]
fn gc_programs_match_wasmtime_x86_64_gnu() {
    cases_match_wasmtime("x86_64-unknown-linux-gnu");
}

#[test]
fn gc_programs_match_wasmtime_x86_64_musl() {
    cases_match_wasmtime("x86_64-unknown-linux-musl");
}

#[test]
fn gc_programs_match_wasmtime_aarch64_gnu() {
    cases_match_wasmtime("aarch64-unknown-linux-gnu");
}

// ---------------------------------------------------------------- bounded memory

/// A finished process and its peak resident set size.
struct Measured {
    output: Output,
    max_rss_bytes: u64,
}

/// Runs `command` to completion (or the deadline) like `common::run_command`, and
/// reads the child's peak RSS from `wait4`.
// The child is reaped by `wait4` itself, which std's `Child` cannot see.
#[allow(clippy::zombie_processes)]
fn run_measured(command: &mut Command, timeout: Duration) -> Measured {
    let description = format!("{command:?}");
    let mut stdout = tempfile::tempfile().expect("create a file for stdout");
    let mut stderr = tempfile::tempfile().expect("create a file for stderr");
    command
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().unwrap())
        .stderr(stderr.try_clone().unwrap());
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + timeout;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our child, not yet reaped (std's Child is never waited
        // on); `status` and `usage` are valid for writes.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(done >= 0, "wait4 on {description} failed");
        if done == pid {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: killing and reaping our own unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::wait4(pid, &mut status, 0, &mut usage);
            }
            panic!("{description} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let read = |file: &mut File| {
        let mut bytes = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut bytes).unwrap();
        bytes
    };
    let output = Output {
        command: description,
        status: ExitStatus::from_raw(status),
        stdout: read(&mut stdout),
        stderr: read(&mut stderr),
    };
    assert!(
        !output.stderr_text().contains("panicked"),
        "a Rust panic\n{}",
        output.describe()
    );
    Measured {
        output,
        // ru_maxrss is in KiB on Linux.
        max_rss_bytes: usage.ru_maxrss as u64 * 1024,
    }
}

const MIB: u64 = 1 << 20;

/// Fails clearly when the runtime has no GC heap limit option of that name (it would
/// otherwise be taken for the program's first argument).
fn assert_heap_limit_option(exe: &Path, cwd: &Path) {
    let help = common::run(exe, &["--wasmc-help"], cwd);
    help.assert_code(0);
    assert!(
        common::contains_word(&help.stdout_text(), GC_HEAP_LIMIT_OPTION),
        "the runtime has no {GC_HEAP_LIMIT_OPTION} option: set GC_HEAP_LIMIT_OPTION in \
         tests/gc.rs to the runtime option that caps the GC heap\n{}",
        help.describe()
    );
}

/// 1500 rounds allocate about 28 million objects (some 700 MB) while keeping a few
/// hundred KB alive: with the GC heap capped at 16 MiB the run must finish, check
/// every value, and never hold much more than the cap.
#[test]
fn stress_runs_in_bounded_memory_under_a_tight_heap_limit() {
    let scratch = Scratch::new();
    let exe = compile_for("gc/stress.wasm", "x86_64-unknown-linux-gnu", scratch.path());
    assert_heap_limit_option(&exe, scratch.path());
    let measured = run_measured(
        Command::new(&exe)
            .args([GC_HEAP_LIMIT_OPTION, "16M", "--", "1500"])
            .current_dir(scratch.path()),
        RUN_TIMEOUT,
    );
    let output = &measured.output;
    output.assert_code(0);
    let stdout = output.stdout_text();
    assert!(
        stdout.starts_with("rounds 1500\n") && stdout.ends_with("all checks passed\n"),
        "{}",
        output.describe()
    );
    // The objects counted by the program itself: far beyond the heap limit.
    let objects: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("objects allocated "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no object count\n{}", output.describe()));
    assert!(objects > 25_000_000, "{}", output.describe());
    // The cap, plus the runtime, the code and the I/O buffers.
    let bound = 16 * MIB + 48 * MIB;
    assert!(
        measured.max_rss_bytes < bound,
        "peak RSS {} MiB over {} MiB with a 16 MiB GC heap\n{}",
        measured.max_rss_bytes / MIB,
        bound / MIB,
        output.describe()
    );
}

/// With `keep`, every round's tree (about 140 KB) stays reachable: 200 rounds need
/// some 28 MB, beyond an 8 MiB cap. Running out of GC heap is a wasm trap with a
/// message and a backtrace (exit 134), reached without exceeding the cap by much.
#[test]
fn a_live_set_beyond_the_heap_limit_traps() {
    let scratch = Scratch::new();
    let exe = compile_for("gc/stress.wasm", "x86_64-unknown-linux-gnu", scratch.path());
    assert_heap_limit_option(&exe, scratch.path());
    let measured = run_measured(
        Command::new(&exe)
            .args([GC_HEAP_LIMIT_OPTION, "8M", "--", "200", "keep"])
            .current_dir(scratch.path()),
        RUN_TIMEOUT,
    );
    let output = &measured.output;
    output.assert_code(134);
    let stderr = output.stderr_text();
    let first_line = stderr.lines().next().unwrap_or_default();
    assert!(
        first_line.starts_with("wasm trap: ")
            && first_line.to_lowercase().contains("gc heap")
            && stderr.contains("wasm backtrace:"),
        "expected a GC heap trap\n{}",
        output.describe()
    );
    assert!(
        !output.stdout_text().contains("all checks passed"),
        "{}",
        output.describe()
    );
    assert!(
        measured.max_rss_bytes < 8 * MIB + 48 * MIB,
        "peak RSS {} MiB with an 8 MiB GC heap\n{}",
        measured.max_rss_bytes / MIB,
        output.describe()
    );
    // The same live set fits under the default limit (the recorded `stress-keep`
    // case keeps 60 trees; this one 200).
    let output = common::run(&exe, &["--", "200", "keep"], scratch.path());
    output.assert_code(0);
    assert!(
        output
            .stdout_text()
            .ends_with("kept trees 200\nall checks passed\n"),
        "{}",
        output.describe()
    );
}

// ---------------------------------------------------------------- nobody else pays

/// Modules without GC types, compiled for both architectures, with the SHA-256 of
/// their code as recorded in fixtures/gc/text-sections.txt before GC was
/// implemented. `WASMC_BLESS=1` rewrites the file (after a deliberate change of code
/// generation; a GC change must never need it).
const UNCHANGED_MODULES: [&str; 6] = [
    "hello/hello.wasm",
    "copy/copy.wasm",
    "rust-hello/rust-hello.wasm",
    "packaging/probe.wasm",
    // Exceptions (exnref, and the legacy proposal) and threads: no GC types either.
    "sjlj/sjlj-exnref.wasm",
    "threads/demo.wasm",
];
const UNCHANGED_TARGETS: [&str; 2] = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"];

/// SHA-256 of the concatenated contents of the object's text sections, in order.
fn text_digest(object_file: &Path) -> String {
    use object::{Object, ObjectSection, SectionKind};
    let bytes = fs::read(object_file).unwrap();
    let file =
        object::File::parse(&*bytes).unwrap_or_else(|e| panic!("{}: {e}", object_file.display()));
    let mut hasher = Sha256::new();
    let mut sections = 0;
    for section in file.sections().filter(|s| s.kind() == SectionKind::Text) {
        hasher.update(section.data().expect("text section data"));
        sections += 1;
    }
    assert!(sections > 0, "{}: no text section", object_file.display());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn code_without_gc_types_is_unchanged() {
    let scratch = Scratch::new();
    let mut lines = Vec::new();
    for target in UNCHANGED_TARGETS {
        for module in UNCHANGED_MODULES {
            let object_file = scratch
                .path()
                .join(format!("{}-{target}.o", module.replace(['/', '.'], "_")));
            let output = wasmc(
                &[
                    fixture(module).as_os_str(),
                    OsStr::new("--emit"),
                    OsStr::new("obj"),
                    OsStr::new("--target"),
                    OsStr::new(target),
                    OsStr::new("-o"),
                    object_file.as_os_str(),
                ],
                scratch.path(),
            );
            output.assert_code(0);
            lines.push(format!("{target} {module} {}", text_digest(&object_file)));
        }
    }
    let actual = lines.join("\n") + "\n";
    let recorded_path = fixtures_dir().join("gc/text-sections.txt");
    if std::env::var_os("WASMC_BLESS").is_some_and(|v| v == "1") {
        let header = "# SHA-256 of the text sections of modules without GC types (target, module,\n\
                      # digest), checked by tests/gc.rs; WASMC_BLESS=1 rewrites this file.\n";
        fs::write(&recorded_path, format!("{header}{actual}")).unwrap();
        return;
    }
    let recorded = fs::read_to_string(&recorded_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (WASMC_BLESS=1 records it)",
            recorded_path.display()
        )
    });
    let recorded: Vec<&str> = recorded.lines().filter(|l| !l.starts_with('#')).collect();
    let actual: Vec<&str> = actual.lines().collect();
    let changed: Vec<String> = actual
        .iter()
        .filter(|line| !recorded.contains(line))
        .map(|line| line.to_string())
        .collect();
    assert!(
        changed.is_empty() && recorded.len() == actual.len(),
        "the code of modules without GC types changed:\n{}\nrecorded:\n{}",
        changed.join("\n"),
        recorded.join("\n")
    );
}
