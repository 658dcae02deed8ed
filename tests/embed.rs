//! `wasmc --emit lib`: C host programs (fixtures/embed/host_*.c) compiled with the
//! system cc against generated libraries and headers: every value type, traps with
//! backtraces, host imports (one reading guest memory, one trapping), `proc_exit`,
//! a WASI command through `*_run` with preopened directories and environment
//! (compared with wasmtime's recordings), two libraries and a Rust static library in
//! one program, many instances on several threads, the host's own signal handler,
//! a missing import failing at link time, refusals, zlib (examples/zlib) against its
//! native build, and the other targets.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Reference, Scratch, fixture, require, run_command, wasmc};

const LINK_LIBS: &[&str] = &["-lpthread", "-ldl", "-lm"];
const TIMEOUT: Duration = Duration::from_secs(120);

fn embed_fixture(name: &str) -> PathBuf {
    fixture(&format!("embed/{name}"))
}

/// `wasmc INPUT --emit lib -o DIR/libNAME.a [extra]`; returns the library path.
fn library(input: &Path, name: &str, dir: &Path, extra: &[&str]) -> PathBuf {
    let lib = dir.join(format!("lib{name}.a"));
    let mut args: Vec<String> = vec![
        input.display().to_string(),
        "--emit".into(),
        "lib".into(),
        "-o".into(),
        lib.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    wasmc(&args, dir).assert_code(0);
    assert!(lib.is_file());
    lib
}

/// Compiles and links a C host with `cc` (or `compiler`); returns the output of the
/// compiler run and the executable path.
fn link_host(
    compiler: &str,
    sources: &[PathBuf],
    libs: &[PathBuf],
    dir: &Path,
    extra: &[&str],
) -> (common::Output, PathBuf) {
    let exe = dir.join("host");
    let mut cmd = Command::new(compiler);
    cmd.current_dir(dir)
        .args(["-Wall", "-Werror", "-O1", "-I"])
        .arg(dir)
        .args(sources)
        .args(libs)
        .args(extra)
        .arg("-o")
        .arg(&exe);
    (run_command(&mut cmd, TIMEOUT), exe)
}

fn run_host(exe: &Path, args: &[&str], cwd: &Path) -> common::Output {
    let mut cmd = Command::new(exe);
    cmd.args(args).current_dir(cwd);
    run_command(&mut cmd, TIMEOUT)
}

fn expected(name: &str) -> Vec<u8> {
    std::fs::read(embed_fixture(name)).unwrap()
}

#[test]
fn values_traps_imports_and_exit() {
    let scratch = Scratch::new();
    let dir = scratch.path();
    let lib = library(&embed_fixture("plugin.wat"), "plugin", dir, &[]);
    assert!(
        dir.join("plugin.h").is_file(),
        "the header is written beside"
    );
    let (cc, exe) = link_host(
        "cc",
        &[embed_fixture("host_plugin.c")],
        &[lib],
        dir,
        LINK_LIBS,
    );
    cc.assert_code(0);
    let output = run_host(&exe, &[], dir);
    output.assert_code(0);
    output.assert_stdout(&expected("host_plugin.expected"));
}

#[test]
fn header_documents_the_api_and_every_import() {
    let scratch = Scratch::new();
    let dir = scratch.path();
    library(&embed_fixture("plugin.wat"), "plugin", dir, &[]);
    let header = std::fs::read_to_string(dir.join("plugin.h")).unwrap();
    for needle in [
        "cc host.c libplugin.a -lpthread -ldl -lm",
        "plugin_instance *plugin_instantiate(const plugin_config *config, char **error);",
        "int plugin_export_add(plugin_instance *instance, int32_t p0, int32_t p1, int32_t *result);",
        "/* import \"env\".\"log\": (i32, i32) -> () */\nvoid plugin_import_env_log(plugin_instance *instance, int32_t p0, int32_t p1);",
        "double plugin_import_env_scale(plugin_instance *instance, double p0);",
        "int plugin_export_odd_x2dname_x2ev2(",
        "Threads:",
    ] {
        assert!(
            header.contains(needle),
            "plugin.h lacks {needle:?}:\n{header}"
        );
    }
    // WASI imports are the runtime's business, not the embedder's.
    assert!(!header.contains("proc_exit("), "{header}");
}

#[test]
fn command_runs_with_dirs_and_env_like_wasmtime() {
    let build = Scratch::new();
    let include = build.path().join("include");
    std::fs::create_dir(&include).unwrap();
    let header = include.join("cmd.h");
    let lib = library(
        &fixture("rust-hello/rust-hello.wasm"),
        "rusthello",
        build.path(),
        &["--prefix", "cmd", "--header", header.to_str().unwrap()],
    );
    let (cc, exe) = link_host(
        "cc",
        &[embed_fixture("host_command.c")],
        &[lib],
        build.path(),
        &[
            &format!("-I{}", include.display()),
            "-lpthread",
            "-ldl",
            "-lm",
        ],
    );
    cc.assert_code(0);
    // The host takes the executable's command line, so the recordings apply as is.
    for case in [
        "args-env",
        "exit-code",
        "read-file",
        "read-missing",
        "default",
    ] {
        let reference = Reference::load("rust-hello", case);
        let work = Scratch::new();
        let args = reference.prepare(work.path());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run_host(&exe, &args, work.path());
        reference.assert_matches(&output);
    }
}

#[test]
fn two_libraries_and_a_rust_host_link_together() {
    let scratch = Scratch::new();
    let dir = scratch.path();
    let plugin = library(&embed_fixture("plugin.wat"), "plugin", dir, &[]);
    let other = library(&embed_fixture("other.wat"), "other", dir, &[]);
    let rust_lib = dir.join("librusthost.a");
    let mut rustc = Command::new("rustc");
    rustc
        .args(["--edition", "2024", "-O", "--crate-type", "staticlib", "-o"])
        .arg(&rust_lib)
        .arg(embed_fixture("host_rust.rs"));
    run_command(&mut rustc, TIMEOUT).assert_code(0);
    let (cc, exe) = link_host(
        "cc",
        &[embed_fixture("host_two.c")],
        &[plugin, other, rust_lib],
        dir,
        LINK_LIBS,
    );
    cc.assert_code(0);
    let output = run_host(&exe, &[], dir);
    output.assert_code(0);
    output.assert_stdout(&expected("host_two.expected"));
}

/// Builds the library of fixture `module` with `prefix`, links the C host fixture
/// `host` against it, runs it and checks that it succeeds printing `expected`.
fn run_c_host_against(module: &str, prefix: &str, host: &str, expected_output: &str) {
    let scratch = Scratch::new();
    let dir = scratch.path();
    let lib = library(&embed_fixture(module), prefix, dir, &[]);
    let (cc, exe) = link_host("cc", &[embed_fixture(host)], &[lib], dir, LINK_LIBS);
    cc.assert_code(0);
    let output = run_host(&exe, &[], dir);
    output.assert_code(0);
    output.assert_stdout(&expected(expected_output));
}

#[test]
fn instances_on_many_threads() {
    run_c_host_against(
        "plugin.wat",
        "plugin",
        "host_threads.c",
        "host_threads.expected",
    );
}

#[test]
fn the_hosts_own_signal_handler_still_gets_host_faults() {
    run_c_host_against(
        "other.wat",
        "other",
        "host_signals.c",
        "host_signals.expected",
    );
}

#[test]
fn a_missing_import_fails_at_link_time_naming_it() {
    let scratch = Scratch::new();
    let dir = scratch.path();
    let lib = library(&embed_fixture("plugin.wat"), "plugin", dir, &[]);
    let host = dir.join("partial.c");
    std::fs::write(
        &host,
        "#include \"plugin.h\"\n\
         void plugin_import_env_log(plugin_instance *i, int32_t p, int32_t n) { (void)i; (void)p; (void)n; }\n\
         double plugin_import_env_scale(plugin_instance *i, double x) { (void)i; return x; }\n\
         int main(void) { plugin_instance *i = plugin_instantiate(0, 0); plugin_instance_free(i); return 0; }\n",
    )
    .unwrap();
    let (cc, _) = link_host("cc", &[host], &[lib], dir, LINK_LIBS);
    assert_ne!(cc.code(), 0, "{}", cc.describe());
    assert!(
        cc.stderr_text()
            .contains("undefined reference to `plugin_import_env_check'"),
        "{}",
        cc.describe()
    );
}

#[test]
fn only_prefixed_names_are_exported() {
    let scratch = Scratch::new();
    let dir = scratch.path();
    let lib = library(&embed_fixture("other.wat"), "other", dir, &[]);
    let mut ar = Command::new("ar");
    ar.arg("x").arg(&lib).current_dir(dir);
    run_command(&mut ar, TIMEOUT).assert_code(0);
    let mut readelf = Command::new("readelf");
    readelf.args(["-sW", "combined.o"]).current_dir(dir);
    let symbols = run_command(&mut readelf, TIMEOUT);
    symbols.assert_code(0);
    let defined_globals: Vec<String> = symbols
        .stdout_text()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Num: Value Size Type Bind Vis Ndx Name
            let is_entry = fields.first().is_some_and(|f| {
                f.strip_suffix(':')
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            });
            (is_entry && fields.len() == 8 && fields[4] != "LOCAL" && fields[6] != "UND")
                .then(|| fields[7].to_string())
        })
        .collect();
    assert!(defined_globals.contains(&"other_export_add".to_string()));
    assert!(
        defined_globals
            .iter()
            .all(|name| name.starts_with("other_")),
        "{defined_globals:?}"
    );
}

#[test]
fn what_the_c_api_cannot_express_is_refused_by_name() {
    let scratch = Scratch::new();
    let dir = scratch.path();
    let cases = [
        (
            r#"(module (func (export "vec") (param v128)))"#,
            "export `vec` has type (v128) -> ()",
        ),
        (
            r#"(module (func (export "r") (result externref) ref.null extern))"#,
            "export `r` has type () -> (externref)",
        ),
        (
            r#"(module (import "env" "mem" (memory 1)))"#,
            "import `env`.`mem` is a memory",
        ),
        (
            r#"(module (import "env" "two" (func (result i32 i32))))"#,
            "import `env`.`two` has type () -> (i32, i32): a C function returns at most one value",
        ),
        (
            r#"(module (func (export "a-b")) (func (export "a_x2db")))"#,
            "export `a_x2db` and export `a-b` both become the C name `m_export_a_x2db`",
        ),
    ];
    for (i, (wat, message)) in cases.iter().enumerate() {
        let input = dir.join(format!("case{i}.wat"));
        std::fs::write(&input, wat).unwrap();
        let out = wasmc(
            &[input.to_str().unwrap(), "--emit", "lib", "-o", "libm.a"],
            dir,
        );
        assert_eq!(out.code(), 1, "{}", out.describe());
        assert!(
            out.stderr_text().contains(message),
            "{message}\n{}",
            out.describe()
        );
        assert!(!dir.join("libm.a").exists());
    }
    let plugin = embed_fixture("plugin.wat");
    let plugin = plugin.to_str().unwrap();
    let out = wasmc(&[plugin, "--emit", "lib", "--dir", "/tmp"], dir);
    assert_eq!(out.code(), 1);
    assert!(
        out.stderr_text()
            .contains("--dir (use <prefix>_config_dir) cannot be combined with --emit lib")
    );
    let out = wasmc(&[plugin, "--emit", "lib", "-o", "lib9.a"], dir);
    assert!(
        out.stderr_text().contains("give one with --prefix"),
        "{}",
        out.describe()
    );
    let out = wasmc(&[plugin, "--emit", "lib", "--prefix", "no-dash"], dir);
    assert!(
        out.stderr_text().contains("is not a C identifier"),
        "{}",
        out.describe()
    );
    let out = wasmc(&[plugin, "--prefix", "p"], dir);
    assert!(
        out.stderr_text().contains("apply to --emit lib"),
        "{}",
        out.describe()
    );
}

/// examples/zlib: zlib compiled to wasm and used through its generated header must
/// print exactly what the same program prints against zlib built natively from the
/// same sources (recorded by examples/zlib/build.sh): identical compressed bytes,
/// checksums and round trips, and corrupted input rejected.
#[test]
fn zlib_example_matches_the_native_build() {
    let scratch = Scratch::new();
    let dir = scratch.path();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/zlib");
    let lib = library(&example.join("zlib.wasm"), "wz", dir, &[]);
    let (cc, exe) = link_host("cc", &[example.join("demo.c")], &[lib], dir, LINK_LIBS);
    cc.assert_code(0);
    let input = fixture("real/data/rust/access.log");
    let output = run_host(&exe, &[input.to_str().unwrap()], dir);
    output.assert_code(0);
    output.assert_stdout(&std::fs::read(example.join("expected.txt")).unwrap());
}

/// The other targets: aarch64 glibc (linked with the cross gcc, run under qemu) and
/// x86_64 musl (linked statically with musl-gcc); aarch64 musl is built and checked
/// to be an aarch64 archive exporting the API (no aarch64 musl C compiler on Debian).
#[test]
fn other_targets() {
    let scratch = Scratch::new();
    let wat = embed_fixture("plugin.wat");
    let host = embed_fixture("host_plugin.c");
    let want = expected("host_plugin.expected");

    if require(
        buildable("aarch64-unknown-linux-gnu"),
        "this wasmc cannot build aarch64-unknown-linux-gnu (see `wasmc --print-targets`)",
    )
    .is_some()
    {
        let dir = scratch.path().join("aarch64-gnu");
        std::fs::create_dir(&dir).unwrap();
        let lib = library(
            &wat,
            "plugin",
            &dir,
            &["--target", "aarch64-unknown-linux-gnu"],
        );
        let header = std::fs::read_to_string(dir.join("plugin.h")).unwrap();
        assert!(header.contains("aarch64-linux-gnu-gcc host.c libplugin.a -lpthread -ldl -lm"));
        let (cc, exe) = link_host(
            "aarch64-linux-gnu-gcc",
            std::slice::from_ref(&host),
            &[lib],
            &dir,
            LINK_LIBS,
        );
        cc.assert_code(0);
        if let Some(runner) = common::runner("aarch64-unknown-linux-gnu") {
            let mut cmd = Command::new(&runner[0]);
            cmd.args(&runner[1..]).arg(&exe).current_dir(&dir);
            let output = run_command(&mut cmd, TIMEOUT);
            output.assert_code(0);
            output.assert_stdout(&want);
        }
    }

    if require(
        buildable("x86_64-unknown-linux-musl") && common::find_in_path("musl-gcc").is_some(),
        "this wasmc cannot build x86_64-unknown-linux-musl, or musl-gcc (musl-tools) is missing",
    )
    .is_some()
    {
        let dir = scratch.path().join("x86_64-musl");
        std::fs::create_dir(&dir).unwrap();
        let lib = library(
            &wat,
            "plugin",
            &dir,
            &["--target", "x86_64-unknown-linux-musl"],
        );
        let (cc, exe) = link_host(
            "musl-gcc",
            std::slice::from_ref(&host),
            &[lib],
            &dir,
            &["-static"],
        );
        cc.assert_code(0);
        let output = run_host(&exe, &[], &dir);
        output.assert_code(0);
        output.assert_stdout(&want);
    }

    if require(
        buildable("aarch64-unknown-linux-musl"),
        "this wasmc cannot build aarch64-unknown-linux-musl",
    )
    .is_none()
    {
        return;
    }
    let dir = scratch.path().join("aarch64-musl");
    std::fs::create_dir(&dir).unwrap();
    let lib = library(
        &wat,
        "plugin",
        &dir,
        &["--target", "aarch64-unknown-linux-musl"],
    );
    let bytes = std::fs::read(&lib).unwrap();
    assert!(bytes.starts_with(b"!<arch>\n"));
    // e_machine of the member: EM_AARCH64 (183) right after the ELF header's start.
    let elf = bytes
        .windows(4)
        .position(|w| w == b"\x7fELF")
        .expect("an ELF member");
    assert_eq!(u16::from_le_bytes([bytes[elf + 18], bytes[elf + 19]]), 183);
}

/// Whether this wasmc embeds the runtime of `target` (`--print-targets`).
fn buildable(target: &str) -> bool {
    let scratch = Scratch::new();
    let output = wasmc(&["--print-targets"], scratch.path());
    output
        .stdout_text()
        .lines()
        .any(|l| l.split_whitespace().next() == Some(target))
}
