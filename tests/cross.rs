//! Cross-compilation: every recorded fixture case (hello world, traps, the C file
//! copy, the Rust program, and the WASI programs `wasi/c/wasi_calls.wasm` and
//! `wasi/rust/wasi_std.wasm` with their arguments, environment, preopened
//! directories and exit codes; see `fixtures/*/expected/`) is compiled for each of
//! the four targets and run: aarch64 executables under `qemu-aarch64` (the gnu ones
//! with `-L /usr/aarch64-linux-gnu`), x86_64 ones natively. Each run must give the
//! same exit code and byte-identical stdout as the x86_64-unknown-linux-gnu build
//! (which itself must match the wasmtime recording), the same stderr (trap message
//! and backtrace), and leave the same files in its preopened directories (names,
//! contents, permission bits, symbolic link targets). Every run gets its own fresh
//! copy of those directories. The musl executables must be fully static: no
//! PT_INTERP, no DT_NEEDED.
//!
//! A target is skipped, with a message, only when its toolchain is genuinely absent
//! (runtime not embedded, linker or qemu missing). With `CI=true` nothing may be
//! skipped: scripts/setup.sh installs everything, so a missing tool fails the test.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    Output, Reference, Scratch, TreeEntry, find_in_path, fixtures_dir, require, run_command,
    run_command_after_guest_stderr, runner, snapshot_tree, wasmc,
};

const BASELINE: &str = "x86_64-unknown-linux-gnu";
/// qemu is slower than native; still, every fixture finishes in seconds.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Targets this wasmc can build (first column of `--print-targets`).
fn buildable_targets() -> Vec<String> {
    let scratch = Scratch::new();
    let output = wasmc(&["--print-targets"], scratch.path());
    output.assert_code(0);
    output
        .stdout_text()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Fixtures (relative to `fixtures/`) whose every recorded case runs on every target.
const FIXTURES: [&str; 9] = [
    "hello",
    "traps",
    "copy",
    "rust-hello",
    "wasi/c",
    "wasi/rust",
    // WASI 0.2 components (tests/components.rs).
    "components/rust",
    "components/wat",
    "components/adapter",
];

/// Every recorded case: (fixture, case name).
fn all_cases() -> Vec<(String, String)> {
    let mut cases = Vec::new();
    for fixture in FIXTURES {
        let names = Reference::cases(fixture);
        // wasi/rust has the fewest recordings (2); a fixture without any means a
        // broken checkout, not a pass.
        assert!(
            names.len() >= 2,
            "{fixture}: recordings are missing: {names:?}"
        );
        cases.extend(names.into_iter().map(|n| (fixture.to_owned(), n)));
    }
    assert!(
        cases.len() >= 26,
        "fixture recordings are missing: {cases:?}"
    );
    cases
}

/// Compiles each distinct module once for `target` into `dir`.
struct Builds<'a> {
    target: &'a str,
    dir: PathBuf,
    exes: BTreeMap<String, PathBuf>,
}

impl<'a> Builds<'a> {
    fn new(target: &'a str, scratch: &Scratch) -> Builds<'a> {
        let dir = scratch.path().join(target);
        fs::create_dir_all(&dir).unwrap();
        Builds {
            target,
            dir,
            exes: BTreeMap::new(),
        }
    }

    fn exe(&mut self, module: &str) -> PathBuf {
        if let Some(exe) = self.exes.get(module) {
            return exe.clone();
        }
        let input = fixtures_dir().join(module);
        let exe = self.dir.join(module.replace(['/', '.'], "_"));
        let output = wasmc(
            &[
                input.as_os_str(),
                OsStr::new("--target"),
                OsStr::new(self.target),
                OsStr::new("-o"),
                exe.as_os_str(),
            ],
            &self.dir,
        );
        assert!(
            output.status.success(),
            "compiling {module} for {} failed\n{}",
            self.target,
            output.describe()
        );
        self.exes.insert(module.to_owned(), exe.clone());
        exe
    }
}

/// What one run did: its output, and what its preopened directories held afterwards
/// (by host directory name).
struct Run {
    output: Output,
    dirs: BTreeMap<String, BTreeMap<PathBuf, TreeEntry>>,
}

/// Runs one recorded case with `exe` (through `runner`), in a fresh directory holding
/// a fresh copy of the case's preopened directories, like `Reference::run`. The
/// executable is linked there and started as `./NAME`, so that the guest's argv[0] is
/// the same whatever the target (its output may show it).
fn run_case(reference: &Reference, exe: &Path, runner: &[String]) -> Run {
    let scratch = Scratch::new();
    let name = Path::new(&reference.module)
        .file_stem()
        .expect("module file name");
    // A hard link, not a copy: a file this multi-threaded process has just written
    // can still be open in a child another test thread is forking, and executing it
    // would then fail with ETXTBSY.
    let link = scratch.path().join(name);
    fs::hard_link(exe, &link)
        .or_else(|_| fs::copy(exe, &link).map(drop))
        .unwrap();
    let program = Path::new(".").join(name);
    let args = reference.prepare(scratch.path());
    let mut cmd = match runner.split_first() {
        Some((qemu, qemu_args)) => {
            let mut cmd = Command::new(qemu);
            cmd.args(qemu_args).arg(&program);
            cmd
        }
        None => Command::new(&program),
    };
    cmd.args(&args).current_dir(scratch.path());
    // A guest that panics prints "panicked" itself (components/rust's panic case).
    let output = run_command_after_guest_stderr(&mut cmd, RUN_TIMEOUT, &reference.stderr);
    let dirs = reference
        .dirs
        .iter()
        .map(|(host, _)| (host.clone(), snapshot_tree(&scratch.path().join(host))))
        .collect();
    Run { output, dirs }
}

/// How the files left in the preopened directories differ (empty when they do not).
fn tree_differences(
    got: &BTreeMap<String, BTreeMap<PathBuf, TreeEntry>>,
    baseline: &BTreeMap<String, BTreeMap<PathBuf, TreeEntry>>,
) -> Vec<String> {
    let mut differences = Vec::new();
    for (host, tree) in got {
        let base = &baseline[host];
        for path in tree.keys().chain(base.keys()) {
            let shown = Path::new(host).join(path);
            match (tree.get(path), base.get(path)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(_), Some(_)) => differences.push(format!("{}: differs", shown.display())),
                (Some(_), None) => {
                    differences.push(format!("{}: exists, not with x86_64 gnu", shown.display()))
                }
                (None, Some(_)) => differences.push(format!(
                    "{}: missing, exists with x86_64 gnu",
                    shown.display()
                )),
                (None, None) => unreachable!("a path of one of the two trees"),
            }
        }
    }
    differences.sort();
    differences.dedup();
    differences
}

/// The first line of stderr that reports a trap (`wasm trap: ...`), if any.
fn trap_line(output: &Output) -> Option<String> {
    output
        .stderr_text()
        .lines()
        .find(|l| l.contains("wasm trap"))
        .map(str::to_owned)
}

/// Checks that a static executable has no interpreter and needs no shared library.
fn assert_fully_static(exe: &Path) {
    use object::read::elf::{Dyn, FileHeader, ProgramHeader};
    use object::{Endianness, elf};
    let bytes = fs::read(exe).unwrap();
    let header = elf::FileHeader64::<Endianness>::parse(&*bytes).expect("an ELF64 file");
    let endian = header.endian().unwrap();
    let segments = header.program_headers(endian, &*bytes).unwrap();
    for segment in segments {
        assert_ne!(
            segment.p_type(endian),
            elf::PT_INTERP,
            "{} has a PT_INTERP: it is not static",
            exe.display()
        );
        if let Some(entries) = segment.dynamic(endian, &*bytes).unwrap() {
            for entry in entries {
                assert_ne!(
                    entry.d_tag(endian) as u32,
                    elf::DT_NEEDED,
                    "{} needs a shared library",
                    exe.display()
                );
            }
        }
    }
}

/// Compiles and runs every case for `target`, comparing with the x86_64 gnu build.
fn check_target(target: &str) {
    let buildable = buildable_targets();
    for t in [BASELINE, target] {
        if require(
            buildable.iter().any(|b| b == t),
            &format!("this wasmc cannot build {t} (see `wasmc --print-targets`)"),
        )
        .is_none()
        {
            return;
        }
    }
    let Some(runner) = runner(target) else { return };

    let scratch = Scratch::new();
    let mut baseline = Builds::new(BASELINE, &scratch);
    let mut builds = Builds::new(target, &scratch);
    let mut failures = Vec::new();
    for (fixture, case) in all_cases() {
        let reference = Reference::load(&fixture, &case);
        let base_exe = baseline.exe(&reference.module);
        let Run {
            output: base,
            dirs: base_dirs,
        } = run_case(&reference, &base_exe, &[]);
        // The baseline must itself be right, or comparing with it proves nothing.
        // (Its stderr is compared with wasmtime's by the pipeline and WASI tests.)
        base.assert_code(reference.exit);
        base.assert_stdout(&reference.stdout);

        let exe = builds.exe(&reference.module);
        if target.ends_with("-musl") {
            assert_fully_static(&exe);
        }
        let Run { output: out, dirs } = run_case(&reference, &exe, &runner);
        let name = format!("{fixture}/{case}");
        let tree_diff = tree_differences(&dirs, &base_dirs);
        if out.status.code() != base.status.code() {
            failures.push(format!(
                "{name}: exit {:?}, x86_64 gnu exits {:?}\n{}",
                out.status,
                base.status,
                out.describe()
            ));
        } else if out.stdout != base.stdout {
            failures.push(format!(
                "{name}: stdout differs from x86_64 gnu\n{}",
                out.describe()
            ));
        } else if trap_line(&out) != trap_line(&base) {
            failures.push(format!(
                "{name}: trap report differs: {:?} vs x86_64 gnu {:?}\n{}",
                trap_line(&out),
                trap_line(&base),
                out.describe()
            ));
        } else if out.stderr != base.stderr {
            // Same trap, same guest output: the backtrace or a message differs.
            failures.push(format!(
                "{name}: stderr differs from x86_64 gnu\n{}\nx86_64 gnu stderr:\n{}",
                out.describe(),
                base.stderr_text()
            ));
        } else if !tree_diff.is_empty() {
            failures.push(format!(
                "{name}: the preopened directories differ from x86_64 gnu's after the run:\n{}\n{}",
                tree_diff.join("\n"),
                out.describe()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} case(s) differ from x86_64-unknown-linux-gnu:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn aarch64_gnu_matches_x86_64() {
    check_target("aarch64-unknown-linux-gnu");
}

#[test]
fn aarch64_musl_matches_x86_64() {
    check_target("aarch64-unknown-linux-musl");
}

#[test]
fn x86_64_musl_matches_x86_64_gnu() {
    check_target("x86_64-unknown-linux-musl");
}

/// A static executable runs with an empty environment, and in a root directory that
/// contains nothing else (like an empty `FROM scratch` container).
#[test]
fn static_hello_runs_with_empty_environment() {
    let target = "x86_64-unknown-linux-musl";
    if require(
        buildable_targets().iter().any(|b| b == target),
        &format!("this wasmc cannot build {target}"),
    )
    .is_none()
    {
        return;
    }
    let scratch = Scratch::new();
    let exe = scratch.path().join("hello");
    let input = fixtures_dir().join("hello/hello.wasm");
    let output = wasmc(
        &[
            input.as_os_str(),
            OsStr::new("--target"),
            OsStr::new(target),
            OsStr::new("-o"),
            exe.as_os_str(),
        ],
        scratch.path(),
    );
    output.assert_code(0);
    assert_fully_static(&exe);
    let mut cmd = Command::new(&exe);
    cmd.env_clear().current_dir(scratch.path());
    let run = run_command(&mut cmd, RUN_TIMEOUT);
    run.assert_code(0);
    run.assert_stdout(b"Hello, world!\n");

    // The real thing when we may: a root directory holding nothing but the executable
    // (chroot needs root, which CI containers usually are).
    let root = scratch.path().join("empty-root");
    fs::create_dir(&root).unwrap();
    fs::hard_link(&exe, root.join("hello")).unwrap(); // not a copy: see run_case
    let chroot = find_in_path("chroot");
    if !is_root() || chroot.is_none() {
        eprintln!("SKIPPED: the empty-root run needs root and chroot(8)");
        return;
    }
    let mut cmd = Command::new(chroot.unwrap());
    cmd.arg(&root).arg("/hello").env_clear();
    let run = run_command(&mut cmd, RUN_TIMEOUT);
    run.assert_code(0);
    run.assert_stdout(b"Hello, world!\n");
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|uids| uids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// The comparison of preopened directories notices a changed file, a missing one,
/// an extra one and a changed symbolic link, and nothing else.
#[test]
fn tree_comparison_reports_differences() {
    use std::os::unix::fs::symlink;
    let make = |content: &[u8], extra: bool, link: &str| {
        let scratch = Scratch::new();
        let root = scratch.path().join("data");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/file.txt"), content).unwrap();
        fs::write(root.join("same.txt"), b"same").unwrap();
        if extra {
            fs::write(root.join("extra.txt"), b"").unwrap();
        }
        symlink(link, root.join("link")).unwrap();
        BTreeMap::from([("data".to_owned(), snapshot_tree(&root))])
    };
    let base = make(b"one", false, "sub/file.txt");
    assert!(tree_differences(&make(b"one", false, "sub/file.txt"), &base).is_empty());
    assert_eq!(
        tree_differences(&make(b"two", true, "same.txt"), &base),
        [
            "data/extra.txt: exists, not with x86_64 gnu",
            "data/link: differs",
            "data/sub/file.txt: differs",
        ]
    );
    assert_eq!(
        tree_differences(&base, &make(b"one", true, "sub/file.txt")),
        ["data/extra.txt: missing, exists with x86_64 gnu"]
    );
}
