//! Packaging sandboxed tools: the policy baked in at compile time (`--dir`, `--env`,
//! `--argv0`, limits, `--seal`), run-time options that only tighten it, the limits
//! themselves (memory, wasm stack, timeout, fuel) on real C and Rust programs
//! (`fixtures/packaging/probe.c`, `probe_rust.rs`), `wasmc policy` on every target,
//! and OCI image archives checked with skopeo and umoci (Debian packages installed by
//! scripts/setup.sh).

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Output, Scratch, find_in_path, fixture, require, run, run_command, runner, wasmc};

const PROBE: &str = "packaging/probe.wasm";
const PROBE_RUST: &str = "packaging/probe_rust.wasm";

/// `wasmc FIXTURE -o DIR/NAME ARGS...`, which must succeed.
fn build(fixture_name: &str, scratch: &Scratch, name: &str, args: &[&str]) -> PathBuf {
    let exe = scratch.path().join(name);
    let input = fixture(fixture_name);
    let mut all: Vec<&OsStr> = vec![input.as_os_str(), OsStr::new("-o"), exe.as_os_str()];
    all.extend(args.iter().map(OsStr::new));
    let output = wasmc(&all, scratch.path());
    assert!(
        output.status.success(),
        "wasmc failed\n{}",
        output.describe()
    );
    exe
}

/// The number in the second word of stdout ("grew 7 of 64 MiB", "allocated 20 of ...").
fn second_number(output: &Output) -> u32 {
    let text = output.stdout_text();
    text.split_whitespace()
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no count in the output\n{}", output.describe()))
}

fn lines(output: &Output) -> Vec<String> {
    output.stdout_text().lines().map(str::to_owned).collect()
}

/// Asserts an `error: ...` naming `needle` on stderr and exit status `code`.
fn assert_error(output: &Output, code: i32, needle: &str) {
    output.assert_code(code);
    let stderr = output.stderr_text();
    assert!(
        stderr.starts_with("error: ") && stderr.contains(needle),
        "expected an error naming {needle:?}\n{}",
        output.describe()
    );
}

#[test]
fn baked_dirs_env_and_argv0_apply_on_every_run() {
    let scratch = Scratch::new();
    fs::create_dir(scratch.path().join("data")).unwrap();
    fs::write(scratch.path().join("data/in.txt"), "baked input\n").unwrap();
    fs::create_dir(scratch.path().join("extra")).unwrap();
    fs::write(scratch.path().join("extra/e.txt"), "").unwrap();
    let exe = build(
        PROBE,
        &scratch,
        "tool",
        &[
            "--dir",
            "data::/data",
            "--env",
            "MODE=fast",
            "--env",
            "WASMC_PASSED",
            "--env",
            "WASMC_UNSET_HERE",
            "--argv0",
            "tool-name",
        ],
    );
    let env_run = |args: &[&str]| {
        run_command(
            Command::new(&exe)
                .args(args)
                .current_dir(scratch.path())
                .env("WASMC_PASSED", "yes")
                .env("WASMC_SECRET", "must not leak")
                .env_remove("WASMC_UNSET_HERE"),
            Duration::from_secs(60),
        )
    };
    let out = env_run(&["env"]);
    out.assert_code(0);
    assert_eq!(lines(&out), ["MODE=fast", "WASMC_PASSED=yes"]);

    let out = env_run(&["args", "x"]);
    assert_eq!(lines(&out), ["[0]=tool-name", "[1]=args", "[2]=x"]);

    let out = env_run(&["cat", "/data/in.txt"]);
    out.assert_code(0);
    out.assert_stdout(b"baked input\n");

    // Run-time grants add to the baked ones; the baked ones stay.
    let out = env_run(&["--dir=extra::/extra", "--env", "LATE=1", "ls", "/extra"]);
    out.assert_code(0);
    assert_eq!(lines(&out), ["e.txt"]);
    let out = env_run(&["--env=LATE=1", "env"]);
    assert_eq!(lines(&out), ["MODE=fast", "WASMC_PASSED=yes", "LATE=1"]);
    // Writes land in the granted host directory.
    let out = env_run(&["write", "/data/out.txt", "hello"]);
    out.assert_code(0);
    assert_eq!(
        fs::read_to_string(scratch.path().join("data/out.txt")).unwrap(),
        "hello"
    );

    // The Rust program sees the same policy through std.
    let rust = build(
        PROBE_RUST,
        &scratch,
        "rust-tool",
        &["--dir", "data::/data", "--env", "MODE=rust"],
    );
    let out = run(&rust, &["ls", "/data"], scratch.path());
    out.assert_code(0);
    assert_eq!(lines(&out), ["in.txt", "out.txt"]);
    let out = run(&rust, &["env"], scratch.path());
    assert_eq!(lines(&out), ["MODE=rust"]);
}

#[test]
fn relative_baked_dirs_are_resolved_at_run_time_and_missing_ones_are_named() {
    let scratch = Scratch::new();
    let compile_dir = scratch.path().join("compile");
    fs::create_dir(&compile_dir).unwrap();
    // Allowed with a warning at compile time: the directory is opened at run time.
    let exe = scratch.path().join("tool");
    let output = wasmc(
        &[
            fixture(PROBE).as_os_str(),
            OsStr::new("-o"),
            exe.as_os_str(),
            OsStr::new("--dir"),
            OsStr::new("work::/w"),
        ],
        &compile_dir,
    );
    output.assert_code(0);
    assert!(
        output.stderr_text().starts_with("warning: --dir work:"),
        "{}",
        output.describe()
    );

    let run_dir = scratch.path().join("run");
    fs::create_dir_all(run_dir.join("work")).unwrap();
    fs::write(run_dir.join("work/here.txt"), "").unwrap();
    let out = run(&exe, &["ls", "/w"], &run_dir);
    out.assert_code(0);
    assert_eq!(lines(&out), ["here.txt"]);

    // Run where `work` does not exist: an error naming it, exit 2, nothing run.
    let out = run(&exe, &["write", "/w/x", "y"], scratch.path());
    assert_error(&out, 2, "work");
    assert!(
        out.stderr_text().contains("built into"),
        "{}",
        out.describe()
    );
    out.assert_stdout(b"");
    // Same for a run-time --dir.
    let out = run(&exe, &["--dir=/nonexistent-wasmc-dir", "args"], &run_dir);
    assert_error(&out, 2, "/nonexistent-wasmc-dir");
}

#[test]
fn unsealed_executables_read_leading_options_and_stop_at_double_dash() {
    let scratch = Scratch::new();
    let exe = build(PROBE, &scratch, "tool", &[]);
    // Without `--`, a leading option is the runtime's (documented: put `--` first).
    let out = run(&exe, &["--env=X=1", "env"], scratch.path());
    assert_eq!(lines(&out), ["X=1"]);
    let out = run(&exe, &["--", "--env=X=1", "args"], scratch.path());
    out.assert_code(2); // the probe's own usage error: "--env=X=1" is no command
    let out = run(&exe, &["--", "args", "--dir=/", "--"], scratch.path());
    let argv0 = format!("[0]={}", exe.display());
    assert_eq!(lines(&out), [&argv0, "[1]=args", "[2]=--dir=/", "[3]=--"]);

    // --wasmc-help prints the options and the policy and runs nothing.
    let exe = build(
        PROBE,
        &scratch,
        "helped",
        &["--max-memory", "64M", "--env", "A=b"],
    );
    let out = run(&exe, &["--wasmc-help"], scratch.path());
    out.assert_code(0);
    let help = out.stdout_text();
    for needle in [
        "--dir HOST",
        "--timeout",
        "--max-memory",
        "64M",
        "A=b",
        "sealed:",
    ] {
        assert!(help.contains(needle), "{needle} missing from\n{help}");
    }
}

#[test]
fn sealed_executables_give_every_argument_to_the_program() {
    let scratch = Scratch::new();
    let exe = build(
        PROBE,
        &scratch,
        "sealed",
        &["--seal", "--env", "MODE=sealed", "--argv0", "sealed-tool"],
    );
    let args = [
        "args",
        "--dir=/",
        "--env=HOME",
        "--",
        "",
        "--wasmc-help",
        "--max-memory=1",
    ];
    let out = run(&exe, &args, scratch.path());
    out.assert_code(0);
    let mut expected = vec!["[0]=sealed-tool".to_string()];
    expected.extend(
        args.iter()
            .enumerate()
            .map(|(i, a)| format!("[{}]={a}", i + 1)),
    );
    assert_eq!(lines(&out), expected);
    // `--dir=/` granted nothing and `--env` passed nothing.
    let out = run(&exe, &["ls", "/"], scratch.path());
    out.assert_code(1);
    let out = run(&exe, &["env", "--env=HOME"], scratch.path());
    assert_eq!(lines(&out), ["MODE=sealed"]);

    // Sealing needs an executable.
    let obj = scratch.path().join("x.o");
    let out = wasmc(
        &[
            fixture(PROBE).as_os_str(),
            OsStr::new("--emit"),
            OsStr::new("obj"),
            OsStr::new("--seal"),
            OsStr::new("-o"),
            obj.as_os_str(),
        ],
        scratch.path(),
    );
    assert_error(&out, 1, "--seal");
    assert!(!obj.exists());
}

#[test]
fn memory_limit_baked_and_tightened_at_run_time() {
    let scratch = Scratch::new();
    let exe = build(PROBE, &scratch, "tool", &["--max-memory", "16M"]);
    let out = run(&exe, &["grow", "64"], scratch.path());
    out.assert_code(0);
    let grew: u32 = second_number(&out);
    assert!((14..16).contains(&grew), "{}", out.describe());

    let out = run(&exe, &["--max-memory=8M", "grow", "64"], scratch.path());
    let tighter: u32 = second_number(&out);
    assert!((6..8).contains(&tighter), "{}", out.describe());

    // Looser than baked: refused, naming the baked value.
    let out = run(&exe, &["--max-memory=1G", "grow", "1"], scratch.path());
    assert_error(&out, 2, "--max-memory 16M");
    out.assert_stdout(b"");

    // Unlimited build, limit at run time; Rust's allocator sees the failure.
    let rust = build(PROBE_RUST, &scratch, "rust", &[]);
    let out = run(
        &rust,
        &["--max-memory", "32M", "alloc", "100"],
        scratch.path(),
    );
    out.assert_code(0);
    let got: u32 = second_number(&out);
    assert!((20..32).contains(&got), "{}", out.describe());
    let out = run(&rust, &["alloc", "100"], scratch.path());
    assert_eq!(lines(&out), ["allocated 100 of 100 MiB"]);

    // A memory whose minimum exceeds the limit does not start.
    let wat = scratch.path().join("big.wat");
    fs::write(
        &wat,
        r#"(module (memory (export "memory") 512) (func (export "_start")))"#,
    )
    .unwrap();
    let big = scratch.path().join("big");
    wasmc(
        &[wat.as_os_str(), OsStr::new("-o"), big.as_os_str()],
        scratch.path(),
    )
    .assert_code(0);
    let out = run(&big, &["--max-memory=16M"], scratch.path());
    out.assert_code(1);
    assert!(out.stderr_text().contains("16M"), "{}", out.describe());
    run(&big, &[] as &[&str], scratch.path()).assert_code(0);
}

#[test]
fn wasm_stack_limit_baked_and_at_run_time() {
    let scratch = Scratch::new();
    let exe = build(PROBE, &scratch, "tool", &[]);
    let out = run(&exe, &["recurse", "50000"], scratch.path());
    assert_eq!(lines(&out), ["depth 50000 ok"]);
    let out = run(
        &exe,
        &["--max-wasm-stack", "128K", "recurse", "50000"],
        scratch.path(),
    );
    out.assert_code(134);
    assert!(
        out.stderr_text()
            .starts_with("wasm trap: call stack exhausted"),
        "{}",
        out.describe()
    );
    let small = build(PROBE, &scratch, "small", &["--max-wasm-stack", "128K"]);
    run(&small, &["recurse", "50000"], scratch.path()).assert_code(134);
    run(&small, &["recurse", "100"], scratch.path()).assert_code(0);
    let out = run(
        &small,
        &["--max-wasm-stack=1M", "recurse", "1"],
        scratch.path(),
    );
    assert_error(&out, 2, "--max-wasm-stack 128K");
    let out = run(
        &exe,
        &["--max-wasm-stack=1K", "recurse", "1"],
        scratch.path(),
    );
    assert_error(&out, 2, "1K");
}

/// Runs `exe ARGS` with stdin a pipe that stays open until the process has exited
/// (a reader that never sees end-of-file), and returns its output and how long it ran.
fn run_with_open_stdin(exe: &Path, args: &[&str], cwd: &Path) -> (Output, Duration) {
    let mut child = Command::new(exe)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the executable");
    let stdin = child.stdin.take();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} {args:?} ignored its timeout", exe.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    drop(stdin);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let output = Output {
        command: format!("{} {args:?}", exe.display()),
        status,
        stdout,
        stderr,
    };
    (output, elapsed)
}

fn assert_interrupted(output: &Output, elapsed: Duration, first_line: &str) {
    output.assert_code(134);
    assert!(
        output.stderr_text().starts_with("wasm trap: interrupt"),
        "{}",
        output.describe()
    );
    // Output written before the deadline stays written.
    assert_eq!(output.stdout_text().lines().next(), Some(first_line));
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(30),
        "stopped after {elapsed:?}\n{}",
        output.describe()
    );
}

#[test]
fn timeout_stops_spinning_sleeping_and_reading_programs() {
    let scratch = Scratch::new();
    let baked = build(PROBE, &scratch, "baked", &["--timeout", "500ms"]);
    let plain = build(PROBE, &scratch, "plain", &[]);
    let cases: [(&Path, &[&str], &str); 4] = [
        (&baked, &["spin"], "spinning"),
        (&baked, &["sleep", "600"], "sleeping"),
        (&plain, &["--timeout", "500ms", "read-stdin"], "reading"),
        (&plain, &["--timeout=0.5s", "spin"], "spinning"),
    ];
    for (exe, args, first) in cases {
        let (output, elapsed) = run_with_open_stdin(exe, args, scratch.path());
        assert_interrupted(&output, elapsed, first);
    }
    // Finishing in time is not affected.
    let out = run(&baked, &["count", "100000"], scratch.path());
    out.assert_code(0);
    // A looser run-time timeout is refused.
    let out = run(&baked, &["--timeout=10s", "spin"], scratch.path());
    assert_error(&out, 2, "--timeout 500ms");

    let rust = build(PROBE_RUST, &scratch, "rust", &["--timeout", "500ms"]);
    for (args, first) in [(&["spin"][..], "spinning"), (&["sleep", "600"], "sleeping")] {
        let (output, elapsed) = run_with_open_stdin(&rust, args, scratch.path());
        assert_interrupted(&output, elapsed, first);
    }
}

#[test]
fn fuel_stops_at_a_deterministic_point() {
    let scratch = Scratch::new();
    let exe = build(PROBE, &scratch, "fuel", &["--fuel", "5000000"]);
    let out = run(&exe, &["count", "10000000"], scratch.path());
    out.assert_code(134);
    assert!(
        out.stderr_text()
            .starts_with("wasm trap: all fuel consumed by WebAssembly"),
        "{}",
        out.describe()
    );
    let steps = lines(&out);
    assert!(
        !steps.is_empty() && !steps.iter().any(|l| l.starts_with("done")),
        "{steps:?}"
    );
    // The same run stops at the same point every time; less fuel stops earlier.
    let again = run(&exe, &["count", "10000000"], scratch.path());
    assert_eq!(again.stdout, out.stdout);
    let less = run(
        &exe,
        &["--fuel", "1000000", "count", "10000000"],
        scratch.path(),
    );
    less.assert_code(134);
    assert!(lines(&less).len() < steps.len(), "{}", less.describe());
    // Enough fuel: the program finishes.
    let out = run(&exe, &["count", "1000"], scratch.path());
    out.assert_code(0);
    // More than baked: refused. Not metered: refused with the way out.
    let out = run(&exe, &["--fuel", "6000000", "count", "1"], scratch.path());
    assert_error(&out, 2, "--fuel 5000000");
    let plain = build(PROBE, &scratch, "plain", &[]);
    let out = run(&plain, &["--fuel", "10", "count", "1"], scratch.path());
    assert_error(&out, 2, "rebuild");

    let rust = build(PROBE_RUST, &scratch, "rust", &["--fuel", "20000000"]);
    let out = run(&rust, &["spin"], scratch.path());
    out.assert_code(134);
    assert_eq!(lines(&out), ["spinning"]);
}

#[test]
fn fuel_results_are_identical_on_x86_64_and_aarch64() {
    let scratch = Scratch::new();
    let x86 = build(PROBE, &scratch, "x86", &["--fuel", "3000000"]);
    let arm = build(
        PROBE,
        &scratch,
        "arm",
        &[
            "--fuel",
            "3000000",
            "--target",
            "aarch64-unknown-linux-musl",
        ],
    );
    let Some(runner) = runner("aarch64-unknown-linux-musl") else {
        return;
    };
    for fuel in ["3000000", "1234567", "77"] {
        let args = ["--fuel", fuel, "count", "10000000"];
        let native = run(&x86, &args, scratch.path());
        let emulated = run_command(
            Command::new(&runner[0])
                .args(&runner[1..])
                .arg(&arm)
                .args(args)
                .current_dir(scratch.path()),
            Duration::from_secs(300),
        );
        native.assert_code(134);
        emulated.assert_code(134);
        assert_eq!(
            native.stdout_text(),
            emulated.stdout_text(),
            "fuel {fuel} stopped at different points"
        );
        let first = |o: &Output| o.stderr_text().lines().next().map(str::to_owned);
        assert_eq!(first(&native), first(&emulated));
    }
}

#[test]
fn bad_policy_options_are_clear_errors() {
    let scratch = Scratch::new();
    let exe = scratch.path().join("x");
    for (option, value) in [
        ("--max-memory", "12Q"),
        ("--timeout", "-1s"),
        ("--timeout", "0s"),
        ("--max-wasm-stack", "1K"),
        ("--fuel", "lots"),
        ("--dir", "::/x"),
        ("--env", "=v"),
    ] {
        let out = wasmc(
            &[
                fixture(PROBE).as_os_str(),
                OsStr::new("-o"),
                exe.as_os_str(),
                OsStr::new(option),
                OsStr::new(value),
            ],
            scratch.path(),
        );
        out.assert_code(2);
        let stderr = out.stderr_text();
        assert!(
            stderr.contains(option) && stderr.contains(value),
            "{option} {value}: {}",
            out.describe()
        );
        assert!(!exe.exists());
    }
    // And at run time.
    let tool = build(PROBE, &scratch, "tool", &[]);
    for args in [
        &["--max-memory", "12Q", "args"][..],
        &["--timeout", "-1s", "args"],
        &["--timeout"],
    ] {
        let out = run(&tool, args, scratch.path());
        out.assert_code(2);
        out.assert_stdout(b"");
        assert!(
            out.stderr_text().starts_with("error: "),
            "{}",
            out.describe()
        );
    }
}

const TARGETS: [&str; 4] = [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
];

#[test]
fn wasmc_policy_reads_executables_of_every_target() {
    let scratch = Scratch::new();
    let module_sha = {
        let out = run_command(
            Command::new("sha256sum").arg(fixture(PROBE)),
            Duration::from_secs(30),
        );
        out.stdout_text()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    for target in TARGETS {
        let exe = build(
            PROBE,
            &scratch,
            target,
            &[
                "--target",
                target,
                "--dir",
                "/srv/in::/in",
                "--env",
                "LANG",
                "--max-memory",
                "512M",
                "--timeout",
                "30s",
                "--seal",
            ],
        );
        let out = wasmc(&[OsStr::new("policy"), exe.as_os_str()], scratch.path());
        out.assert_code(0);
        let text = out.stdout_text();
        for needle in [
            target,
            "/srv/in -> /in",
            "LANG",
            "512M",
            "30s",
            "yes",
            &module_sha,
        ] {
            assert!(
                text.contains(needle),
                "{target}: {needle} missing from\n{text}"
            );
        }
        let out = wasmc(
            &[OsStr::new("policy"), OsStr::new("--json"), exe.as_os_str()],
            scratch.path(),
        );
        out.assert_code(0);
        let json = out.stdout_text();
        for needle in [
            "\"sealed\": true",
            "\"max_memory\": 536870912",
            "\"timeout_ns\": 30000000000",
            &format!("\"target\": \"{target}\""),
            &format!("\"module_sha256\": \"{module_sha}\""),
            "\"inherit\": true",
        ] {
            assert!(
                json.contains(needle),
                "{target}: {needle} missing from\n{json}"
            );
        }
    }
    // Files wasmc did not make.
    let text = scratch.path().join("notes.txt");
    fs::write(&text, "hello\n").unwrap();
    let out = wasmc(&[OsStr::new("policy"), text.as_os_str()], scratch.path());
    assert_error(&out, 1, "not an executable made by wasmc");
    let out = wasmc(
        &[OsStr::new("policy"), OsStr::new("/bin/sh")],
        scratch.path(),
    );
    assert_error(&out, 1, "not an executable made by wasmc");
    let out = wasmc(
        &[OsStr::new("policy"), OsStr::new("/nonexistent")],
        scratch.path(),
    );
    assert_error(&out, 1, "/nonexistent");
}

#[test]
fn oci_image_archive_is_accepted_by_skopeo_and_umoci_and_runs() {
    let scratch = Scratch::new();
    let archive = build(
        PROBE,
        &scratch,
        "job.tar",
        &[
            "--emit",
            "oci",
            "--target",
            "x86_64-unknown-linux-musl",
            "--dir",
            "/inputs::/inputs",
            "--dir",
            "/outputs::/outputs",
            "--env",
            "MODE=batch",
        ],
    );
    // A gnu executable needs the host's glibc: refused with the reason.
    let out = wasmc(
        &[
            fixture(PROBE).as_os_str(),
            OsStr::new("--emit"),
            OsStr::new("oci"),
            OsStr::new("--target"),
            OsStr::new("x86_64-unknown-linux-gnu"),
            OsStr::new("-o"),
            scratch.path().join("gnu.tar").as_os_str(),
        ],
        scratch.path(),
    );
    assert_error(&out, 1, "musl");
    assert!(!scratch.path().join("gnu.tar").exists());

    for tool in ["skopeo", "umoci"] {
        let found = find_in_path(tool).is_some();
        if require(found, &format!("{tool} not found (Debian package {tool})")).is_none() {
            return;
        }
    }
    let reference = format!("oci-archive:{}", archive.display());
    let out = run_command(
        Command::new("skopeo").args(["inspect", &reference]),
        Duration::from_secs(60),
    );
    out.assert_code(0);
    let inspect = out.stdout_text();
    assert!(inspect.contains("\"Architecture\": \"amd64\""), "{inspect}");
    assert!(inspect.contains("\"Os\": \"linux\""), "{inspect}");
    let out = run_command(
        Command::new("skopeo").args(["inspect", "--config", &reference]),
        Duration::from_secs(60),
    );
    out.assert_code(0);
    let config = out.stdout_text();
    for needle in ["\"/job\"", "\"/inputs\": {}", "\"/outputs\": {}"] {
        assert!(config.contains(needle), "{needle} missing from\n{config}");
    }

    // Unpack with umoci (from the image layout inside the archive) and run the
    // entrypoint in a chroot of the root file system, as a container would.
    let layout = scratch.path().join("layout");
    fs::create_dir(&layout).unwrap();
    run_command(
        Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&layout),
        Duration::from_secs(60),
    )
    .assert_code(0);
    let bundle = scratch.path().join("bundle");
    let mut umoci = Command::new("umoci");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        umoci.arg("--rootless");
    }
    let out = run_command(
        umoci
            .args(["unpack", "--image"])
            .arg(format!("{}:job:latest", layout.display()))
            .arg(&bundle),
        Duration::from_secs(60),
    );
    out.assert_code(0);
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("job").is_file() && rootfs.join("inputs").is_dir());
    if !root {
        eprintln!("SKIPPED: running the entrypoint under chroot needs root");
        return;
    }
    fs::write(rootfs.join("inputs/a.csv"), "1,2,3\n").unwrap();
    let out = run_command(
        Command::new("chroot")
            .arg(&rootfs)
            .args(["/job", "cat", "/inputs/a.csv"]),
        Duration::from_secs(60),
    );
    out.assert_code(0);
    out.assert_stdout(b"1,2,3\n");
    let out = run_command(
        Command::new("chroot")
            .arg(&rootfs)
            .args(["/job", "write", "/outputs/r.txt", "done"]),
        Duration::from_secs(60),
    );
    out.assert_code(0);
    assert_eq!(
        fs::read_to_string(rootfs.join("outputs/r.txt")).unwrap(),
        "done"
    );
    let out = run_command(
        Command::new("chroot").arg(&rootfs).args(["/job", "env"]),
        Duration::from_secs(60),
    );
    assert_eq!(lines(&out), ["MODE=batch"]);
}

#[test]
fn closed_standard_descriptors_are_not_taken_by_preopens() {
    let scratch = Scratch::new();
    fs::create_dir(scratch.path().join("d")).unwrap();
    let exe = build(PROBE, &scratch, "tool", &[]);
    // `1>&-`: the guest's stdout writes succeed (into /dev/null) and never land in
    // a file of the sandbox.
    let out = run_command(
        Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" --dir=d stdout-after-open d 1>&-")
            .arg(&exe)
            .current_dir(scratch.path()),
        Duration::from_secs(60),
    );
    out.assert_code(0);
    let stderr = out.stderr_text();
    assert!(
        stderr.contains("write to stdout: 10 (ok)"),
        "{}",
        out.describe()
    );
    assert_eq!(fs::read(scratch.path().join("d/f")).unwrap(), b"");
}

#[test]
fn a_broken_stderr_does_not_change_the_exit_status() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let scratch = Scratch::new();
    let tool = build(PROBE, &scratch, "tool", &[]);
    let wat = scratch.path().join("trap.wat");
    fs::write(&wat, r#"(module (func (export "_start") unreachable))"#).unwrap();
    let trap = scratch.path().join("trap");
    wasmc(
        &[wat.as_os_str(), OsStr::new("-o"), trap.as_os_str()],
        scratch.path(),
    )
    .assert_code(0);
    let exit_wat = scratch.path().join("exit.wat");
    fs::write(
        &exit_wat,
        r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (memory (export "memory") 1)
             (func (export "_start") (call $exit (i32.const 200))))"#,
    )
    .unwrap();
    let exit = scratch.path().join("exit");
    wasmc(
        &[exit_wat.as_os_str(), OsStr::new("-o"), exit.as_os_str()],
        scratch.path(),
    )
    .assert_code(0);
    for (exe, args, status) in [
        (&trap, &[][..], 134),
        (&exit, &[], 1),
        (&tool, &["--max-memory", "12Q", "args"], 2),
        (&tool, &["--dir=/nonexistent-wasmc", "args"], 2),
    ] {
        // stderr: a pipe whose reader is gone, so every write fails with EPIPE.
        let mut fds = [0; 2];
        // SAFETY: pipe fills the two descriptors it creates.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors were just created and are owned here.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(read_end);
        let status_got = Command::new(exe)
            .args(args)
            .current_dir(scratch.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(write_end))
            .status()
            .unwrap();
        assert_eq!(
            status_got.code(),
            Some(status),
            "{} {args:?}: {status_got}",
            exe.display()
        );
    }
}

#[test]
fn timeout_stack_and_memory_limits_work_on_aarch64() {
    let scratch = Scratch::new();
    let exe = build(
        PROBE,
        &scratch,
        "arm",
        &["--target", "aarch64-unknown-linux-musl", "--timeout", "1s"],
    );
    let Some(runner) = runner("aarch64-unknown-linux-musl") else {
        return;
    };
    let run_arm = |args: &[&str]| {
        run_command(
            Command::new(&runner[0])
                .args(&runner[1..])
                .arg(&exe)
                .args(args)
                .current_dir(scratch.path()),
            Duration::from_secs(120),
        )
    };
    for command in [&["spin"][..], &["sleep", "600"]] {
        let out = run_arm(command);
        out.assert_code(134);
        assert!(
            out.stderr_text().starts_with("wasm trap: interrupt"),
            "{}",
            out.describe()
        );
    }
    let out = run_arm(&["--max-wasm-stack", "128K", "recurse", "50000"]);
    out.assert_code(134);
    assert!(
        out.stderr_text()
            .starts_with("wasm trap: call stack exhausted"),
        "{}",
        out.describe()
    );
    let out = run_arm(&["--max-memory", "8M", "grow", "64"]);
    let grew: u32 = second_number(&out);
    assert!((6..8).contains(&grew), "{}", out.describe());
}
