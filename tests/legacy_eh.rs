//! setjmp/longjmp across frames in a real C program (fixtures/sjlj/sjlj.c), built by
//! clang 19 with `-mllvm -wasm-enable-sjlj` into legacy exception handling
//! (`sjlj-legacy.wasm`) and translated to exnref (`sjlj-exnref.wasm`); see
//! fixtures/sjlj/README.md. The reference is the same source built natively with
//! the host's `cc` (glibc's setjmp): wasmtime refuses the legacy module. Both
//! modules are compiled for every target this wasmc can build and run (aarch64
//! under qemu); each run must exit 0 with exactly the native program's output.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Scratch, fixture, run_command, runner, wasmc};

const MODULES: [&str; 2] = ["sjlj/sjlj-legacy.wasm", "sjlj/sjlj-exnref.wasm"];
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The native program's output.
fn native_output(scratch: &Scratch) -> Vec<u8> {
    let exe = scratch.path().join("sjlj-native");
    let build = run_command(
        Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&exe)
            .arg(fixture("sjlj/sjlj.c")),
        RUN_TIMEOUT,
    );
    assert_eq!(build.code(), 0, "native build\n{}", build.describe());
    let run = run_command(&mut Command::new(&exe), RUN_TIMEOUT);
    assert_eq!(run.code(), 0, "native run\n{}", run.describe());
    assert!(
        run.stdout_text().contains("20000 jumps"),
        "native run\n{}",
        run.describe()
    );
    run.stdout
}

fn buildable_targets(scratch: &Scratch) -> Vec<String> {
    let output = wasmc(&["--print-targets"], scratch.path());
    output.assert_code(0);
    output
        .stdout_text()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn setjmp_longjmp_matches_the_native_build() {
    let scratch = Scratch::new();
    let expected = native_output(&scratch);
    let targets = buildable_targets(&scratch);
    assert!(targets.iter().any(|t| t == "x86_64-unknown-linux-gnu"));
    for target in &targets {
        let Some(runner) = runner(target) else {
            continue;
        };
        for module in MODULES {
            let exe = scratch
                .path()
                .join(format!("{}-{target}", module.replace(['/', '.'], "_")));
            let compiled = wasmc(
                &[
                    fixture(module).to_str().unwrap(),
                    "--target",
                    target,
                    "-o",
                    exe.to_str().unwrap(),
                ],
                scratch.path(),
            );
            assert_eq!(
                compiled.code(),
                0,
                "{module} for {target}\n{}",
                compiled.describe()
            );
            let mut command = match runner.split_first() {
                Some((program, args)) => {
                    let mut c = Command::new(program);
                    c.args(args).arg(&exe);
                    c
                }
                None => Command::new(&exe),
            };
            let run = run_command(command.current_dir(scratch.path()), RUN_TIMEOUT);
            assert_eq!(run.code(), 0, "{module} on {target}\n{}", run.describe());
            assert!(
                run.stdout == expected,
                "{module} on {target}: output differs from the native build\n--- native ---\n{}\n{}",
                String::from_utf8_lossy(&expected),
                run.describe()
            );
        }
    }
}
