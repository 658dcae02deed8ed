//! The `wasmc` command line: help, argument handling, every class of error (one line,
//! exit status 1, never a panic, no output file left behind), `--emit obj`,
//! `--print-targets`, linker selection and temporary-file clean-up.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Output, Scratch, assert_compile_error, fixture, run_command, wasmc};

const TIMEOUT: Duration = Duration::from_secs(300);

const SUPPORTED: [&str; 4] = [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
];

/// `wasmc ARGS` in `cwd` with extra environment variables.
fn wasmc_env(args: &[&OsStr], cwd: &Path, env: &[(&str, &OsStr)]) -> Output {
    let mut cmd = Command::new(common::WASMC);
    cmd.args(args).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_command(&mut cmd, TIMEOUT)
}

/// Asserts a one-line `error: ...` on stderr, exit 1, nothing on stdout; returns the line.
fn assert_one_line_error(output: &Output) -> String {
    output.assert_code(1);
    output.assert_stdout(b"");
    let stderr = output.stderr_text();
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "expected one line\n{}", output.describe());
    assert!(
        lines[0].starts_with("error: "),
        "the line must start with `error: `\n{}",
        output.describe()
    );
    lines[0].to_string()
}

#[test]
fn help_explains_every_flag_with_examples() {
    let scratch = Scratch::new();
    let output = wasmc(&["--help"], scratch.path());
    output.assert_code(0);
    let help = output.stdout_text();
    for flag in [
        "--output",
        "--emit",
        "--opt-level",
        "-O",
        "--target",
        "--linker",
        "--explicit-bounds-checks",
        "--print-targets",
        "wast",
        "Examples:",
        "aarch64-unknown-linux-musl",
        // The sandbox policy options, under their own heading.
        "Sandbox policy",
        "--dir",
        "--env",
        "--argv0",
        "--max-memory",
        "--max-table-elements",
        "--max-wasm-stack",
        "--timeout",
        "--fuel",
        "--seal",
        "policy",
        "oci",
        "put `--` first",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}\n{help}"
        );
    }
    // The policy options come after the general ones, grouped.
    let heading = help.find("Sandbox policy").unwrap();
    assert!(help.find("--explicit-bounds-checks").unwrap() < heading);
    assert!(help.find("--max-memory").unwrap() > heading);
    let output = wasmc(&["policy", "--help"], scratch.path());
    output.assert_code(0);
    assert!(
        output.stdout_text().contains("--json"),
        "{}",
        output.describe()
    );
    let output = wasmc(&["wast", "--help"], scratch.path());
    output.assert_code(0);
    assert!(
        output.stdout_text().contains("FILE"),
        "{}",
        output.describe()
    );
}

#[test]
fn no_arguments_is_a_usage_error() {
    let scratch = Scratch::new();
    let output = wasmc::<&str>(&[], scratch.path());
    // clap's usage error: status 2 with a usage line, as for any bad argument.
    output.assert_code(2);
    assert!(
        output.stderr_text().contains("Usage:"),
        "{}",
        output.describe()
    );
}

#[test]
fn missing_input() {
    let scratch = Scratch::new();
    let input = scratch.path().join("absent.wasm");
    let output = wasmc(&[input.as_os_str()], scratch.path());
    let line = assert_one_line_error(&output);
    assert!(line.contains("absent.wasm"), "{line}");
    assert!(line.contains("No such file"), "{line}");
    assert!(!line.contains("os error"), "raw io error text: {line}");
}

#[test]
fn unreadable_input() {
    // A directory cannot be read as a file (permission bits do not stop root).
    let scratch = Scratch::new();
    let input = scratch.path().join("dir.wasm");
    fs::create_dir(&input).unwrap();
    let output = wasmc(
        &[input.as_os_str(), OsStr::new("-o"), OsStr::new("out")],
        scratch.path(),
    );
    let line = assert_one_line_error(&output);
    assert!(line.contains("dir.wasm"), "{line}");
    assert!(!scratch.path().join("out").exists());
}

/// Compiles a bad fixture and checks the refusal; returns the error line.
fn refuse(relative: &str) -> String {
    let scratch = Scratch::new();
    let input = fixture(relative);
    let exe = scratch.path().join("out");
    let output = wasmc(
        &[input.as_os_str(), OsStr::new("-o"), exe.as_os_str()],
        scratch.path(),
    );
    assert_compile_error(&output, &input, &exe);
    assert_one_line_error(&output)
}

#[test]
fn truncated_wasm() {
    let line = refuse("bad/truncated.wasm");
    assert!(line.contains("offset"), "no byte offset: {line}");
}

#[test]
fn random_bytes() {
    refuse("bad/random.bin");
}

#[test]
fn empty_file() {
    let scratch = Scratch::new();
    let input = scratch.path().join("empty.wasm");
    fs::write(&input, b"").unwrap();
    let exe = scratch.path().join("out");
    let output = wasmc(
        &[input.as_os_str(), OsStr::new("-o"), exe.as_os_str()],
        scratch.path(),
    );
    assert_compile_error(&output, &input, &exe);
}

#[test]
fn invalid_module_names_the_offset() {
    let line = refuse("bad/invalid.wat");
    assert!(line.contains("invalid"), "{line}");
    assert!(line.contains("offset"), "no byte offset: {line}");
}

#[test]
fn every_unsupported_import_is_named() {
    let line = refuse("bad/unknown-import.wat");
    assert!(line.contains("env::foo"), "{line}");
    assert!(line.contains("not_a_function"), "{line}");
}

#[test]
fn memory_table_and_global_imports_are_refused_for_executables() {
    let scratch = Scratch::new();
    let input = scratch.path().join("imports.wat");
    fs::write(
        &input,
        r#"(module
             (import "env" "mem" (memory 1))
             (import "env" "tab" (table 1 funcref))
             (import "env" "g" (global i32))
             (func (export "_start")))"#,
    )
    .unwrap();
    let exe = scratch.path().join("out");
    let output = wasmc(
        &[input.as_os_str(), OsStr::new("-o"), exe.as_os_str()],
        scratch.path(),
    );
    assert_compile_error(&output, &input, &exe);
    let line = output.stderr_text();
    for name in ["env::mem", "env::tab", "env::g"] {
        assert!(line.contains(name), "{name} not named: {line}");
    }
}

#[test]
fn unknown_and_unsupported_targets_list_the_supported_ones() {
    let scratch = Scratch::new();
    let input = fixture("hello/hello.wat");
    for target in [
        "riscv64gc-unknown-linux-gnu",
        "not-a-target",
        "x86_64-pc-windows-msvc",
    ] {
        let output = wasmc(
            &[
                input.as_os_str(),
                OsStr::new("--target"),
                OsStr::new(target),
            ],
            scratch.path(),
        );
        let line = assert_one_line_error(&output);
        assert!(line.contains(target), "{line}");
        for supported in SUPPORTED {
            assert!(line.contains(supported), "{supported} not listed: {line}");
        }
    }
    assert!(fs::read_dir(scratch.path()).unwrap().next().is_none());
}

#[test]
fn missing_linker() {
    let scratch = Scratch::new();
    let input = fixture("hello/hello.wat");
    let output = wasmc(
        &[
            input.as_os_str(),
            OsStr::new("--linker"),
            OsStr::new("/nonexistent/cc"),
        ],
        scratch.path(),
    );
    let line = assert_one_line_error(&output);
    assert!(line.contains("/nonexistent/cc"), "{line}");
    assert!(!scratch.path().join("hello").exists());

    // No linker on PATH at all: the message names the package to install and --linker.
    let empty = scratch.path().join("empty-path");
    fs::create_dir(&empty).unwrap();
    let output = wasmc_env(
        &[input.as_os_str()],
        scratch.path(),
        &[("PATH", empty.as_os_str())],
    );
    let line = assert_one_line_error(&output);
    assert!(line.contains("apt-get install"), "{line}");
    assert!(line.contains("--linker"), "{line}");
}

/// A fake linker script in `dir` that records its arguments and then fails or succeeds.
fn fake_linker(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("fake-ld");
    fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"{}/args\"\n{body}\n",
            dir.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn linker_failure_shows_its_stderr_and_leaves_no_output() {
    let scratch = Scratch::new();
    let linker = fake_linker(
        scratch.path(),
        "echo 'fake-ld: undefined reference to `boom`' >&2; exit 1",
    );
    let input = fixture("hello/hello.wat");
    let exe = scratch.path().join("hello");
    let output = wasmc(
        &[
            input.as_os_str(),
            OsStr::new("--linker"),
            linker.as_os_str(),
            OsStr::new("-o"),
            exe.as_os_str(),
        ],
        scratch.path(),
    );
    output.assert_code(1);
    let stderr = output.stderr_text();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("hello.wat"), "{stderr}");
    assert!(stderr.contains("undefined reference to `boom`"), "{stderr}");
    assert!(!exe.exists());
}

#[test]
fn linker_gets_static_pie_for_gnu_and_musl() {
    for (target, expected, refused) in [
        ("x86_64-unknown-linux-gnu", "-static-pie", "-pie"),
        ("aarch64-unknown-linux-gnu", "-static-pie", "-pie"),
        ("x86_64-unknown-linux-musl", "-static-pie", "-lgcc_s"),
        ("aarch64-unknown-linux-musl", "-static-pie", "-lgcc_s"),
    ] {
        if !target_embedded(target) {
            eprintln!("skipping {target}: its runtime is not embedded in this wasmc");
            continue;
        }
        let scratch = Scratch::new();
        // Records the arguments, then "links" by creating the output file.
        let linker = fake_linker(
            scratch.path(),
            "while [ $# -gt 0 ]; do if [ \"$1\" = -o ]; then : > \"$2\"; fi; shift; done",
        );
        let input = fixture("hello/hello.wat");
        let exe = scratch.path().join("hello");
        let output = wasmc(
            &[
                input.as_os_str(),
                OsStr::new("--target"),
                OsStr::new(target),
                OsStr::new("--linker"),
                linker.as_os_str(),
                OsStr::new("-o"),
                exe.as_os_str(),
            ],
            scratch.path(),
        );
        output.assert_code(0);
        let args = fs::read_to_string(scratch.path().join("args")).unwrap();
        let args: Vec<&str> = args.lines().collect();
        assert!(args.contains(&expected), "{target}: {args:?}");
        assert!(!args.contains(&refused), "{target}: {args:?}");
        assert!(args.contains(&"-Wl,-z,noexecstack"), "{target}: {args:?}");
        // The unwinder is linked statically (start-up time), never as libgcc_s.
        assert!(!args.contains(&"-lgcc_s"), "{target}: {args:?}");
        if target.ends_with("-gnu") {
            assert!(args.contains(&"-lgcc_eh"), "{target}: {args:?}");
        }
        assert!(exe.exists());
    }
}

/// A fake linker that appends each call's arguments (one line) to `calls` and runs
/// `body` with them.
fn logging_linker(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("logging-ld");
    fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$*\" >> \"{}/calls\"\n{body}\n\
             while [ $# -gt 0 ]; do if [ \"$1\" = -o ]; then : > \"$2\"; fi; shift; done\n",
            dir.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn linker_calls(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("calls"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn glibc_is_linked_dynamically_when_its_static_library_is_missing() {
    if !target_embedded("x86_64-unknown-linux-gnu") {
        eprintln!("skipping: the x86_64 gnu runtime is not embedded in this wasmc");
        return;
    }
    let scratch = Scratch::new();
    // Fails a static link the way GNU ld does without libc.a.
    let linker = logging_linker(
        scratch.path(),
        "case \" $* \" in *' -static-pie '*) \
         echo 'ld: cannot find -lc: No such file or directory' >&2; exit 1;; esac",
    );
    let input = fixture("hello/hello.wat");
    let exe = scratch.path().join("hello");
    let no_lld = scratch.path().join("empty-path");
    fs::create_dir(&no_lld).unwrap();
    let output = wasmc_env(
        &[
            input.as_os_str(),
            OsStr::new("--target"),
            OsStr::new("x86_64-unknown-linux-gnu"),
            OsStr::new("--linker"),
            linker.as_os_str(),
            OsStr::new("-o"),
            exe.as_os_str(),
        ],
        scratch.path(),
        &[("PATH", no_lld.as_os_str())],
    );
    output.assert_code(0);
    let calls = linker_calls(scratch.path());
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].starts_with("-static-pie "), "{calls:?}");
    assert!(calls[1].starts_with("-pie "), "{calls:?}");
    assert!(calls[1].contains("-Wl,-z,relro,-z,now"), "{calls:?}");
    assert!(exe.exists());

    // Any other failure of the static link is reported, not retried dynamically.
    let scratch = Scratch::new();
    let linker = logging_linker(
        scratch.path(),
        "echo 'ld: undefined reference to `boom`' >&2; exit 1",
    );
    let output = wasmc_env(
        &[
            input.as_os_str(),
            OsStr::new("--target"),
            OsStr::new("x86_64-unknown-linux-gnu"),
            OsStr::new("--linker"),
            linker.as_os_str(),
            OsStr::new("-o"),
            exe.as_os_str(),
        ],
        scratch.path(),
        &[("PATH", no_lld.as_os_str())],
    );
    output.assert_code(1);
    assert!(
        output
            .stderr_text()
            .contains("undefined reference to `boom`")
    );
    assert_eq!(linker_calls(scratch.path()).len(), 1);
}

#[test]
fn lld_is_used_when_installed_and_its_failure_retried_without_it() {
    if !target_embedded("x86_64-unknown-linux-gnu") {
        eprintln!("skipping: the x86_64 gnu runtime is not embedded in this wasmc");
        return;
    }
    let scratch = Scratch::new();
    // `ld.lld` on PATH; a driver that cannot run it (like a gcc too old for
    // -fuse-ld=lld).
    let bin = scratch.path().join("bin");
    fs::create_dir(&bin).unwrap();
    fs::write(bin.join("ld.lld"), "#!/bin/sh\nexit 1\n").unwrap();
    fs::set_permissions(bin.join("ld.lld"), fs::Permissions::from_mode(0o755)).unwrap();
    let linker = logging_linker(
        scratch.path(),
        "case \" $* \" in *' -fuse-ld=lld '*) \
         echo \"collect2: fatal error: cannot find 'ld'\" >&2; exit 1;; esac",
    );
    let input = fixture("hello/hello.wat");
    let exe = scratch.path().join("hello");
    let output = wasmc_env(
        &[
            input.as_os_str(),
            OsStr::new("--target"),
            OsStr::new("x86_64-unknown-linux-gnu"),
            OsStr::new("--linker"),
            linker.as_os_str(),
            OsStr::new("-o"),
            exe.as_os_str(),
        ],
        scratch.path(),
        &[("PATH", bin.as_os_str())],
    );
    output.assert_code(0);
    let calls = linker_calls(scratch.path());
    assert_eq!(calls.len(), 2, "{calls:?}");
    // Offered through -B, where a cross gcc finds it too.
    assert!(calls[0].contains(" -fuse-ld=lld "), "{calls:?}");
    assert!(calls[0].contains("/lld/ "), "{calls:?}");
    assert!(!calls[1].contains("-fuse-ld=lld"), "{calls:?}");
    // Both static: lld's failure was not a missing C library.
    assert!(
        calls.iter().all(|c| c.starts_with("-static-pie ")),
        "{calls:?}"
    );
    assert!(exe.exists());
}

#[test]
fn unwritable_output() {
    let scratch = Scratch::new();
    let input = fixture("hello/hello.wat");
    for out in ["/nonexistent-dir/hello", "."] {
        let output = wasmc(
            &[input.as_os_str(), OsStr::new("-o"), OsStr::new(out)],
            scratch.path(),
        );
        let line = assert_one_line_error(&output);
        assert!(line.contains(out), "{line}");
    }
}

#[test]
fn emit_obj_writes_an_elf_object_exporting_the_descriptor() {
    let scratch = Scratch::new();
    let input = fixture("hello/hello.wat");
    let output = wasmc(
        &[input.as_os_str(), OsStr::new("--emit"), OsStr::new("obj")],
        scratch.path(),
    );
    output.assert_code(0);
    // Default name: the input stem plus `.o`, in the current directory.
    let bytes = fs::read(scratch.path().join("hello.o")).expect("hello.o written");
    use object::{Object, ObjectSymbol};
    let file = object::File::parse(&*bytes).expect("an object file");
    assert_eq!(file.format(), object::BinaryFormat::Elf);
    assert_eq!(file.kind(), object::ObjectKind::Relocatable);
    assert!(
        file.symbols()
            .any(|s| s.is_global() && s.is_definition() && s.name() == Ok("wasmc_module")),
        "wasmc_module is not exported"
    );
    let mode = fs::metadata(scratch.path().join("hello.o"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0, "an object file is not executable");

    // And for aarch64: the object has the target's machine type.
    if target_embedded("aarch64-unknown-linux-gnu") {
        let out = scratch.path().join("a64.o");
        let output = wasmc(
            &[
                input.as_os_str(),
                OsStr::new("--emit"),
                OsStr::new("obj"),
                OsStr::new("--target"),
                OsStr::new("aarch64-unknown-linux-gnu"),
                OsStr::new("-o"),
                out.as_os_str(),
            ],
            scratch.path(),
        );
        output.assert_code(0);
        let bytes = fs::read(&out).unwrap();
        let file = object::File::parse(&*bytes).unwrap();
        assert_eq!(file.architecture(), object::Architecture::Aarch64);
    }
}

#[test]
fn default_output_is_the_input_stem_and_executable() {
    let scratch = Scratch::new();
    let input = fixture("hello/hello.wat");
    let output = wasmc(&[input.as_os_str()], scratch.path());
    output.assert_code(0);
    let exe = scratch.path().join("hello");
    let mode = fs::metadata(&exe)
        .expect("./hello written")
        .permissions()
        .mode();
    assert_ne!(mode & 0o111, 0, "the executable is executable");
    let run = common::run::<&str>(&exe, &[], scratch.path());
    run.assert_code(0);
    run.assert_stdout(b"Hello, world!\n");
    // Start-up: no shared library beyond the C library's (the unwinder is static).
    let bytes = fs::read(&exe).unwrap();
    assert!(
        !bytes.windows(11).any(|w| w == b"libgcc_s.so"),
        "the executable needs libgcc_s"
    );
}

#[test]
fn opt_levels_are_accepted() {
    let scratch = Scratch::new();
    let input = fixture("hello/hello.wat");
    for level in ["-O0", "-O1", "-O2", "--opt-level=speed-and-size"] {
        let exe = scratch.path().join("hello");
        let output = wasmc(
            &[
                input.as_os_str(),
                OsStr::new(level),
                OsStr::new("-o"),
                exe.as_os_str(),
            ],
            scratch.path(),
        );
        output.assert_code(0);
        common::run::<&str>(&exe, &[], scratch.path()).assert_stdout(b"Hello, world!\n");
    }
    let output = wasmc(&[input.as_os_str(), OsStr::new("-O7")], scratch.path());
    output.assert_code(2);
}

/// With and without Spectre guards (`--no-spectre-guards` reaches the compiler: the
/// executables differ).
#[test]
fn explicit_bounds_checks_still_trap_out_of_bounds() {
    let scratch = Scratch::new();
    let input = fixture("traps/memory-oob.wat");
    let mut executables = Vec::new();
    for extra in [&[][..], &[OsStr::new("--no-spectre-guards")][..]] {
        let exe = scratch.path().join(format!("oob{}", executables.len()));
        let mut args = vec![
            input.as_os_str(),
            OsStr::new("--explicit-bounds-checks"),
            OsStr::new("-o"),
            exe.as_os_str(),
        ];
        args.extend_from_slice(extra);
        let output = wasmc(&args, scratch.path());
        output.assert_code(0);
        let run = common::run::<&str>(&exe, &[], scratch.path());
        run.assert_code(134);
        assert!(
            run.stderr_text().contains("out of bounds memory access"),
            "{}",
            run.describe()
        );
        executables.push(fs::read(&exe).unwrap());
    }
    assert!(executables[0] != executables[1]);
}

#[test]
fn temporary_files_are_removed() {
    let scratch = Scratch::new();
    let tmp = scratch.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let input = fixture("hello/hello.wat");
    let failing = fake_linker(scratch.path(), "exit 1");
    for extra in [&[][..], &[OsStr::new("--linker"), failing.as_os_str()][..]] {
        let mut args = vec![input.as_os_str(), OsStr::new("-o"), OsStr::new("hello")];
        args.extend_from_slice(extra);
        wasmc_env(&args, scratch.path(), &[("TMPDIR", tmp.as_os_str())]);
        let left: Vec<_> = fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
        // Nor any staging file next to the output.
        let staged: Vec<_> = fs::read_dir(scratch.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".wasmc-"))
            .collect();
        assert!(staged.is_empty(), "staging files left: {staged:?}");
    }
}

/// Whether this wasmc embeds the runtime for `target` (per --print-targets, which
/// also requires the linker).
fn target_embedded(target: &str) -> bool {
    let scratch = Scratch::new();
    let output = wasmc(&["--print-targets"], scratch.path());
    output
        .stdout_text()
        .lines()
        .any(|l| l.split_whitespace().next() == Some(target))
}

#[test]
fn print_targets() {
    let scratch = Scratch::new();
    let output = wasmc(&["--print-targets"], scratch.path());
    output.assert_code(0);
    let stdout = output.stdout_text();
    let listed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(!listed.is_empty(), "{}", output.describe());
    for t in &listed {
        assert!(SUPPORTED.contains(t), "unexpected target {t}\n{stdout}");
    }
    // The default target is marked, and the machine's own target is buildable.
    assert_eq!(stdout.matches("(default)").count(), 1, "{stdout}");
    if cfg!(target_arch = "x86_64") {
        assert!(listed.contains(&"x86_64-unknown-linux-gnu"), "{stdout}");
    }
    // Targets that are not ready are explained on stderr, each naming what is missing.
    for t in SUPPORTED.iter().filter(|t| !listed.contains(t)) {
        assert!(
            output.stderr_text().contains(t),
            "{t} neither listed nor explained\n{}",
            output.describe()
        );
    }
    // CI installs every toolchain (scripts/setup.sh): all four targets must be there.
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        assert_eq!(
            listed.len(),
            4,
            "CI must build every target\n{}",
            output.describe()
        );
    }

    // Without any linker on PATH, nothing is buildable and each reason names the linker.
    let empty = scratch.path().join("empty-path");
    fs::create_dir(&empty).unwrap();
    let output = wasmc_env(
        &[OsStr::new("--print-targets")],
        scratch.path(),
        &[("PATH", empty.as_os_str())],
    );
    output.assert_code(0);
    output.assert_stdout(b"");
    assert!(
        output.stderr_text().contains("not found"),
        "{}",
        output.describe()
    );
}

#[test]
fn output_is_reproducible() {
    // Same input, different working and temporary directories: identical bytes (the
    // scratch paths must not leak into the executable).
    let input = fixture("copy/copy.wasm");
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let scratch = Scratch::new();
        let tmp = scratch.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let output = wasmc_env(
            &[input.as_os_str(), OsStr::new("-o"), OsStr::new("copy")],
            scratch.path(),
            &[("TMPDIR", tmp.as_os_str())],
        );
        output.assert_code(0);
        outputs.push(fs::read(scratch.path().join("copy")).unwrap());
    }
    assert!(outputs[0] == outputs[1], "two compilations differ");
}

/// The progress line appears only when stderr is a terminal (here a pseudo-terminal
/// made by util-linux `script`; the delay is set to 0 so that a small module shows
/// it), and is erased before wasmc exits; a pipe never sees it.
#[test]
fn progress_line_only_on_a_terminal() {
    let scratch = Scratch::new();
    let input = fixture("real/lua.wasm");
    let zero = OsStr::new("0");
    let args = [input.as_os_str(), OsStr::new("-o"), OsStr::new("lua")];
    let piped = wasmc_env(&args, scratch.path(), &[("WASMC_PROGRESS_DELAY_MS", zero)]);
    piped.assert_code(0);
    assert!(piped.stderr.is_empty(), "{}", piped.describe());

    if common::find_in_path("script").is_none() {
        eprintln!("skipping the terminal half: no `script` (util-linux)");
        return;
    }
    let command = format!("{} {} -o lua-tty", common::WASMC, input.display());
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .current_dir(scratch.path())
        .env("WASMC_PROGRESS_DELAY_MS", "0");
    let tty = run_command(&mut cmd, TIMEOUT);
    tty.assert_code(0);
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(
        shown.contains("compiling") && shown.contains("functions"),
        "no progress line on the terminal:\n{}",
        tty.describe()
    );
    assert!(
        shown.ends_with("\r\x1b[K"),
        "the line is not erased at the end:\n{}",
        tty.describe()
    );
    assert!(scratch.path().join("lua-tty").exists());
}

/// `--target-cpu native` runs here; code for features this CPU lacks is refused at
/// start-up with a message that names them, instead of crashing on an instruction.
#[test]
fn target_cpu_native_runs_and_missing_features_are_refused() {
    let scratch = Scratch::new();
    let input = fixture("hello/hello.wat");
    let exe = scratch.path().join("hello-native");
    let output = wasmc(
        &[
            input.as_os_str(),
            OsStr::new("--target-cpu"),
            OsStr::new("native"),
            OsStr::new("-o"),
            exe.as_os_str(),
        ],
        scratch.path(),
    );
    output.assert_code(0);
    let run = common::run::<&str>(&exe, &[], scratch.path());
    run.assert_code(0);
    run.assert_stdout(b"Hello, world!\n");

    let line = assert_one_line_error(&wasmc(
        &[input.as_os_str(), OsStr::new("--target-cpu=pentium9")],
        scratch.path(),
    ));
    assert!(line.contains("not a CPU wasmc knows"), "{line}");

    #[cfg(target_arch = "x86_64")]
    if !std::arch::is_x86_feature_detected!("avx512f") {
        let exe = scratch.path().join("hello-v4");
        let output = wasmc(
            &[
                input.as_os_str(),
                OsStr::new("--target-cpu"),
                OsStr::new("x86-64-v4"),
                OsStr::new("-o"),
                exe.as_os_str(),
            ],
            scratch.path(),
        );
        output.assert_code(0);
        let run = common::run::<&str>(&exe, &[], scratch.path());
        run.assert_code(1);
        let stderr = run.stderr_text();
        assert!(
            stderr.contains("CPU features this machine does not have")
                && stderr.contains("avx512f"),
            "{stderr}"
        );
        assert!(run.stdout.is_empty());
    }
}
