//! `wasmc wast FILE|DIR...`: runs WebAssembly spec-test scripts (`.wast`) against
//! wasmc's compiler and runtime.
//!
//! Each module of a script is compiled by wasmc's compiler to an object, linked into
//! a shared object and loaded with `dlopen`, then instantiated and called through the
//! runtime library in-process: the same generated code and runtime paths a compiled
//! executable uses.
//!
//! * [`driver`]: runs one worker process per file, several at a time, and prints one
//!   line per file and the totals (the exit status is non-zero if anything failed);
//! * [`script`]: a worker: parses one script and runs its directives;
//! * [`component`]: components: validation, a dynamic instantiator, calls through
//!   the canonical ABI (the Component Model reference tests);
//! * [`features`]: which proposal a file belongs to, and which proposals are skipped;
//! * [`legacy_text`]: the folded legacy exception-handling syntax (`legacy/` files),
//!   rewritten into flat instructions the parser reads;
//! * [`loader`]: compile, link, `dlopen`;
//! * [`spectest`]: the `spectest` host module;
//! * [`values`]: script values and result matching;
//! * [`protocol`]: what a worker reports to the driver.
//!
//! Environment: `WASMC_WAST_JOBS` (parallel workers), `WASMC_WAST_TIMEOUT` (seconds
//! per file), `WASMC_WAST_SHOW_FAILURES` (messages shown per file),
//! `WASMC_WAST_LINKER` (driver that links the shared objects, default `cc`) and
//! `WASMC_WAST_RUNNER` (command prefix that workers are started through). The last
//! two run the suite for another architecture under an emulator; the aarch64 run in
//! `tests/spec_aarch64.rs` uses
//! `WASMC_WAST_LINKER=aarch64-linux-gnu-gcc WASMC_WAST_RUNNER="qemu-aarch64 -L
//! /usr/aarch64-linux-gnu" qemu-aarch64 -L /usr/aarch64-linux-gnu <aarch64 wasmc> wast ...`.

mod component;
mod driver;
mod features;
mod legacy_text;
mod loader;
mod protocol;
mod script;
mod spectest;
mod values;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};

/// Set in a worker process's environment: run the single given file in-process. The
/// value is the driver's scratch directory, where the worker puts its shared objects
/// (so that the driver removes them even when it had to kill the worker).
const WORKER_ENV: &str = "WASMC_WAST_WORKER";

/// Entry point of the `wasmc wast` subcommand.
pub fn run(files: &[PathBuf]) -> Result<ExitCode> {
    if std::env::var_os(WORKER_ENV).is_none() {
        return driver::run(files);
    }
    let [file] = files else {
        bail!("a wast worker runs exactly one file, got {}", files.len());
    };
    let file = file.clone();
    let scratch = std::env::var_os(WORKER_ENV).map(PathBuf::from);
    // Wasm runs on a thread with the runtime's known stack size, so that the stack
    // limit (and `assert_exhaustion`) behaves as in a compiled executable.
    wasmc_runtime::traps::run_on_wasm_stack(move || script::run(&file, scratch.as_deref()))?;
    Ok(ExitCode::SUCCESS)
}
