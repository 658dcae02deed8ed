//! Helpers shared by the end-to-end tests: compile a fixture with the real `wasmc`
//! binary, run the executable with runtime options, guest arguments and a working
//! directory, and compare what it did with what wasmtime did (the recordings made by
//! `fixtures/record_reference.py`).
//!
//! Every test works in its own [`Scratch`] directory, so tests run in parallel safely.
//! Processes get a deadline so that a hung executable fails its test instead of
//! hanging the suite, and their output goes to anonymous files (no pipe deadlock).

// Each test file that includes this module uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Seek};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const WASMC: &str = env!("CARGO_BIN_EXE_wasmc");

/// Compiling the largest fixture (a 120 KiB Rust program) takes seconds; this only
/// catches a compiler that never finishes.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(300);
/// Every fixture runs in well under a second.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// `fixtures/` at the workspace root (this package lives in `cli/`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A fixture's path from its name relative to `fixtures/`, checked to exist so that
/// a typo is reported as such rather than as a compiler error.
pub fn fixture(relative: &str) -> PathBuf {
    let path = fixtures_dir().join(relative);
    assert!(path.is_file(), "fixture {} does not exist", path.display());
    path
}

/// A fresh, uniquely named directory, deleted when dropped.
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new() -> Scratch {
        Scratch(
            tempfile::Builder::new()
                .prefix("wasmc-test-")
                .tempdir()
                .expect("create a temporary directory"),
        )
    }

    /// Under `/tmp` itself, for tests that preopen `/tmp` (TMPDIR may point elsewhere).
    pub fn in_tmp() -> Scratch {
        Scratch(
            tempfile::Builder::new()
                .prefix("wasmc-test-")
                .tempdir_in("/tmp")
                .expect("create a directory in /tmp"),
        )
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// What a finished process did.
pub struct Output {
    /// The command line, for failure messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    /// The exit code; a death by signal fails the test (it is never expected: a trap
    /// must exit 134, not abort).
    pub fn code(&self) -> i32 {
        match self.status.code() {
            Some(code) => code,
            None => panic!(
                "{} was killed by a signal ({:?})\n{}",
                self.command,
                self.status,
                self.describe()
            ),
        }
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The whole result, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.command,
            self.status,
            self.stdout_text(),
            self.stderr_text()
        )
    }

    pub fn assert_code(&self, expected: i32) {
        assert_eq!(
            self.code(),
            expected,
            "unexpected exit code\n{}",
            self.describe()
        );
    }

    pub fn assert_stdout(&self, expected: &[u8]) {
        assert!(
            self.stdout == expected,
            "stdout differs\nexpected: {:?}\n{}",
            String::from_utf8_lossy(expected),
            self.describe()
        );
    }

    pub fn assert_stderr(&self, expected: &[u8]) {
        assert!(
            self.stderr == expected,
            "stderr differs\nexpected: {:?}\n{}",
            String::from_utf8_lossy(expected),
            self.describe()
        );
    }
}

/// Runs `command` to completion (or the deadline) with empty stdin, capturing its
/// output. A Rust panic message on stderr fails the test whatever the exit code:
/// neither wasmc nor the runtime may panic on any input.
pub fn run_command(command: &mut Command, timeout: Duration) -> Output {
    run_command_after_guest_stderr(command, timeout, b"")
}

/// [`run_command`] for a guest that itself writes `guest_stderr` (recorded from
/// wasmtime) at the start of stderr, such as a Rust guest's own panic message: only
/// what comes after it is checked for a Rust panic of wasmc's runtime. When stderr
/// does not start with `guest_stderr`, all of it is checked.
pub fn run_command_after_guest_stderr(
    command: &mut Command,
    timeout: Duration,
    guest_stderr: &[u8],
) -> Output {
    let description = describe_command(command);
    let mut stdout = tempfile::tempfile().expect("create a file for stdout");
    let mut stderr = tempfile::tempfile().expect("create a file for stderr");
    command
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().expect("duplicate the stdout file"))
        .stderr(stderr.try_clone().expect("duplicate the stderr file"));
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                // Already exited between the two calls is fine; the kill error is moot.
                let _ = child.kill();
                let _ = child.wait();
                panic!("{description} did not finish within {timeout:?}");
            }
            Err(e) => panic!("waiting for {description}: {e}"),
        }
    };
    let output = Output {
        command: description,
        status,
        stdout: read_all(&mut stdout),
        stderr: read_all(&mut stderr),
    };
    let ours = output
        .stderr
        .strip_prefix(guest_stderr)
        .unwrap_or(&output.stderr);
    assert!(
        !String::from_utf8_lossy(ours).contains("panicked"),
        "a Rust panic\n{}",
        output.describe()
    );
    output
}

fn read_all(file: &mut File) -> Vec<u8> {
    let mut bytes = Vec::new();
    file.rewind().expect("rewind a captured output file");
    file.read_to_end(&mut bytes)
        .expect("read a captured output file");
    bytes
}

fn describe_command(command: &Command) -> String {
    let mut text = String::new();
    if let Some(dir) = command.get_current_dir() {
        text.push_str(&format!("(cd {} && ", dir.display()));
    }
    text.push_str(&shell_word(command.get_program()));
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&shell_word(arg));
    }
    if command.get_current_dir().is_some() {
        text.push(')');
    }
    text
}

fn shell_word(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:+,@".contains(c))
    {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Runs `wasmc ARGS...` in `cwd`.
pub fn wasmc<S: AsRef<OsStr>>(args: &[S], cwd: &Path) -> Output {
    run_command(
        Command::new(WASMC).args(args).current_dir(cwd),
        COMPILE_TIMEOUT,
    )
}

/// Compiles `input` into an executable inside `out_dir` (named after the input's
/// stem) and returns its path; a compilation failure fails the test.
pub fn compile(input: &Path, out_dir: &Path) -> PathBuf {
    let stem = input.file_stem().expect("input file name");
    let exe = out_dir.join(stem);
    let output = wasmc(
        &[input.as_os_str(), OsStr::new("-o"), exe.as_os_str()],
        out_dir,
    );
    assert!(
        output.status.success(),
        "wasmc failed\n{}",
        output.describe()
    );
    assert!(
        exe.is_file(),
        "wasmc succeeded but wrote no {}\n{}",
        exe.display(),
        output.describe()
    );
    exe
}

/// Compiles the fixture `relative` (to `fixtures/`) into `scratch`.
pub fn compile_fixture(relative: &str, scratch: &Scratch) -> PathBuf {
    compile(&fixture(relative), scratch.path())
}

/// Runs a compiled executable: `exe RUNTIME_OPTIONS... GUEST_ARGS...` in `cwd`.
/// The caller decides whether a `--` separates the two.
pub fn run<S: AsRef<OsStr>>(exe: &Path, args: &[S], cwd: &Path) -> Output {
    run_command(Command::new(exe).args(args).current_dir(cwd), RUN_TIMEOUT)
}

/// Copies the directory tree `from` to `to` (which must not exist).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// One entry of a [`snapshot_tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEntry {
    /// Permission bits.
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        contents: Vec<u8>,
    },
    Symlink {
        target: PathBuf,
    },
    /// A socket, FIFO or device node.
    Special,
}

/// Everything under `root` (not following symbolic links), by path relative to it:
/// what a program left in a preopened directory, for comparing two runs. Times,
/// inode numbers and link counts are left out; they differ between any two runs.
pub fn snapshot_tree(root: &Path) -> BTreeMap<PathBuf, TreeEntry> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, TreeEntry>) {
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
                .path();
            let meta = fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
            let mode = meta.permissions().mode() & 0o7777;
            let relative = path.strip_prefix(root).expect("under the root").to_owned();
            let kind = meta.file_type();
            let node = if kind.is_dir() {
                walk(root, &path, into);
                TreeEntry::Dir { mode }
            } else if kind.is_file() {
                TreeEntry::File {
                    mode,
                    contents: fs::read(&path)
                        .unwrap_or_else(|e| panic!("read {}: {e}", path.display())),
                }
            } else if kind.is_symlink() {
                TreeEntry::Symlink {
                    target: fs::read_link(&path)
                        .unwrap_or_else(|e| panic!("readlink {}: {e}", path.display())),
                }
            } else {
                TreeEntry::Special
            };
            into.insert(relative, node);
        }
    }
    let mut tree = BTreeMap::new();
    walk(root, root, &mut tree);
    tree
}

/// One case recorded from wasmtime by `fixtures/record_reference.py`
/// (`fixtures/<fixture>/expected/<case>/`; the script documents the files).
pub struct Reference {
    pub name: String,
    /// Fixture directory (the base of `dirs` hosts).
    pub fixture_dir: PathBuf,
    /// Relative to `fixtures/`.
    pub module: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// (fixture subdirectory, guest name)
    pub dirs: Vec<(String, String)>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: i32,
    /// wasmtime's trap message and backtrace, when the case traps.
    pub trap: Option<String>,
}

impl Reference {
    pub fn load(fixture: &str, case: &str) -> Reference {
        let fixture_dir = fixtures_dir().join(fixture);
        let dir = fixture_dir.join("expected").join(case);
        assert!(
            dir.is_dir(),
            "no recording {} (run fixtures/record_reference.py)",
            dir.display()
        );
        let bytes = |file: &str| fs::read(dir.join(file)).ok();
        let text = |file: &str| {
            bytes(file).map(|b| {
                String::from_utf8(b)
                    .unwrap_or_else(|_| panic!("{}/{file} is not UTF-8", dir.display()))
            })
        };
        let lines = |file: &str| {
            text(file)
                .map(|t| t.lines().map(str::to_owned).collect::<Vec<String>>())
                .unwrap_or_default()
        };
        let required = |file: &str| {
            bytes(file).unwrap_or_else(|| panic!("{}/{file} is missing", dir.display()))
        };
        let dirs = lines("dirs")
            .into_iter()
            .map(|line| match line.split_once("::") {
                Some((host, guest)) => (host.to_owned(), guest.to_owned()),
                None => panic!("{}/dirs: {line:?} is not HOST::GUEST", dir.display()),
            })
            .collect();
        let required_text = |file: &str| {
            text(file).unwrap_or_else(|| panic!("{}/{file} is missing", dir.display()))
        };
        let exit = required_text("exit");
        Reference {
            name: format!("{fixture}/{case}"),
            module: required_text("module").trim().to_owned(),
            args: lines("args"),
            env: lines("env"),
            dirs,
            stdout: required("stdout"),
            stderr: required("stderr"),
            exit: exit
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{}/exit: {exit:?} is not a number", dir.display())),
            trap: text("trap"),
            fixture_dir,
        }
    }

    /// Every case recorded for `fixture` (the names of the directories in
    /// `fixtures/<fixture>/expected/`), sorted.
    pub fn cases(fixture: &str) -> Vec<String> {
        let dir = fixtures_dir().join(fixture).join("expected");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
                entry.file_name().to_string_lossy().into_owned()
            })
            .collect();
        names.sort();
        names
    }

    /// Prepares a run of the case in `work` (a fresh directory): copies the case's
    /// preopened directories there, so that what the program writes never touches
    /// the fixtures, and returns the executable's arguments,
    /// `--dir=HOST::GUEST... --env K=V... -- ARGS...` (HOST relative to `work`).
    pub fn prepare(&self, work: &Path) -> Vec<String> {
        let mut args = Vec::new();
        for (host, guest) in &self.dirs {
            copy_dir(&self.fixture_dir.join(host), &work.join(host));
            args.push(format!("--dir={host}::{guest}"));
        }
        for var in &self.env {
            args.push("--env".to_owned());
            args.push(var.clone());
        }
        args.push("--".to_owned());
        args.extend(self.args.iter().cloned());
        args
    }

    /// Compiles the case's module into `scratch`, copies its preopened directories
    /// there and runs it from there as
    /// `exe --dir=HOST::GUEST... --env K=V... -- ARGS...`.
    pub fn run(&self, scratch: &Scratch) -> Output {
        let exe = compile_fixture(&self.module, scratch);
        let args = self.prepare(scratch.path());
        run(&exe, &args, scratch.path())
    }

    /// Asserts that `output` is exactly what wasmtime did: exit code, stdout and, for
    /// a program that did not trap, stderr. (For a trap, the guest's own stderr must
    /// come first; the trap report after it is checked by the trap tests.)
    pub fn assert_matches(&self, output: &Output) {
        output.assert_code(self.exit);
        output.assert_stdout(&self.stdout);
        if self.trap.is_some() {
            assert!(
                output.stderr.starts_with(&self.stderr),
                "{}: stderr must start with the guest's own {:?}\n{}",
                self.name,
                String::from_utf8_lossy(&self.stderr),
                output.describe()
            );
        } else {
            output.assert_stderr(&self.stderr);
        }
    }

    /// Runs the case in a fresh scratch directory and checks it against the recording.
    pub fn check(fixture: &str, case: &str) -> (Reference, Output) {
        let reference = Reference::load(fixture, case);
        let scratch = Scratch::new();
        let output = reference.run(&scratch);
        reference.assert_matches(&output);
        (reference, output)
    }
}

/// Whether `text` contains `word` delimited by non-identifier characters (so that
/// "load" does not match inside "download").
pub fn contains_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Asserts that `output` is wasmc refusing an input: exit status 1, nothing on
/// stdout, a single line on stderr that names the input file, and no output file.
pub fn assert_compile_error(output: &Output, input: &Path, exe: &Path) {
    output.assert_code(1);
    output.assert_stdout(b"");
    let stderr = output.stderr_text();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "the error must be one line\n{}",
        output.describe()
    );
    let name = input
        .file_name()
        .expect("input file name")
        .to_string_lossy();
    assert!(
        stderr.contains(&*name),
        "the error must name {name}\n{}",
        output.describe()
    );
    assert!(
        !exe.exists(),
        "a failed compilation left {} behind\n{}",
        exe.display(),
        output.describe()
    );
}

// ---------------------------------------------------------------- running other targets

const AARCH64_GNU_SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// A program on PATH.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| v == "true")
}

/// Skips (returns None) when a tool is missing, except in CI where that is a failure.
pub fn require(available: bool, what: &str) -> Option<()> {
    if available {
        return Some(());
    }
    if in_ci() {
        panic!("CI=true but {what}; scripts/setup.sh should have installed it");
    }
    eprintln!("SKIPPED: {what}");
    None
}

/// How to run an executable of `target` on this (x86_64) machine.
pub fn runner(target: &str) -> Option<Vec<String>> {
    if target.starts_with("x86_64") {
        require(
            cfg!(target_arch = "x86_64"),
            "this test runs x86_64 executables natively",
        )?;
        return Some(vec![]);
    }
    let qemu = find_in_path("qemu-aarch64").or_else(|| find_in_path("qemu-aarch64-static"));
    require(
        qemu.is_some(),
        "qemu-aarch64 not found (Debian package qemu-user)",
    )?;
    let mut cmd = vec![qemu.unwrap().display().to_string()];
    if target.ends_with("-gnu") {
        require(
            Path::new(AARCH64_GNU_SYSROOT).join("lib").is_dir(),
            "/usr/aarch64-linux-gnu/lib is missing (Debian package libc6-dev-arm64-cross)",
        )?;
        cmd.extend(["-L".to_owned(), AARCH64_GNU_SYSROOT.to_owned()]);
    }
    Some(cmd)
}
