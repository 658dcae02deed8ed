//! The entry point of a generated executable.
//!
//! With the `executable-main` feature (only in the staticlib the CLI links into
//! executables) this module defines the C `main`, which runs the module exported by
//! the compiled object as `wasmc_module` like `wasmtime run` does:
//!
//! 1. the command line becomes a `WasiCtx` (runtime options such as `--dir`, then the
//!    guest's arguments); a bad option prints `error: ...` and exits 2;
//! 2. on a dedicated thread with a large stack (see `traps::run_on_wasm_stack`) the
//!    module is instantiated with its imports resolved to WASI functions, its start
//!    function runs, then its `_start` export; a module without `_start` (a reactor)
//!    gets `_initialize` called and then an error naming `_start`;
//! 3. a trap prints `wasm trap: <message>`, the wasm backtrace, and exits 134;
//!    `proc_exit(n)` exits n right away ([`exit_process`]); returning from `_start`
//!    exits 0. Other errors print `error: ...` and exit 1.

use std::ffi::OsString;
use std::io::Write;
use std::sync::Arc;

use crate::abi::{Import, ImportKind};
use crate::instance::{Extern, InstanceHandle, InstantiationError, Module};
use crate::traps::{self, TrapInfo};

/// Exit status of a program stopped by a trap (wasmtime's: 128 + SIGABRT).
pub const TRAP_EXIT_STATUS: i32 = 134;
/// Exit status for invalid runtime options.
pub const USAGE_EXIT_STATUS: i32 = 2;

/// Ends the process with `code`, from any thread (WASI `proc_exit`). Guest output is
/// written unbuffered by WASI, so there is nothing to flush.
pub fn exit_process(code: i32) -> ! {
    std::process::exit(code)
}

/// Runs a WASI command module as the executable does and returns the exit status.
/// `args` is the command line after the program name.
pub fn run_command(module: Arc<Module>, argv0: String, args: Vec<OsString>) -> i32 {
    match traps::run_on_wasm_stack(move || run_on_this_thread(module, argv0, args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: cannot create the thread that runs wasm: {e}");
            1
        }
    }
}

fn run_on_this_thread(module: Arc<Module>, argv0: String, args: Vec<OsString>) -> i32 {
    let ctx = match crate::wasi::WasiCtx::from_command_line(argv0, args.into_iter()) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE_EXIT_STATUS;
        }
    };
    let mut resolver = |import: &Import| match import.kind {
        ImportKind::Func { .. } => {
            crate::wasi::resolve(&import.module, &import.name).map(Extern::HostFunc)
        }
        _ => None,
    };
    let instance = match InstanceHandle::new(module, &mut resolver, Some(Box::new(ctx))) {
        Ok(instance) => instance,
        Err(InstantiationError::Trap(trap)) => return report_trap(&trap),
        Err(e) => {
            eprintln!("error: cannot instantiate the module: {e}");
            return 1;
        }
    };
    let Some(start) = instance.export_func("_start") else {
        // A reactor: initialize it as wasmtime does, but there is nothing to run.
        if let Some(init) = instance.export_func("_initialize")
            && let Err(trap) = init.call(&[])
        {
            return report_trap(&trap);
        }
        eprintln!("error: the module has no `_start` function export (it is not a WASI command)");
        return 1;
    };
    if !start.ty().params.is_empty() || !start.ty().results.is_empty() {
        eprintln!("error: the module's `_start` export must take and return nothing");
        return 1;
    }
    match start.call(&[]) {
        Ok(_) => 0,
        Err(trap) => report_trap(&trap),
    }
}

fn report_trap(trap: &TrapInfo) -> i32 {
    let _ = std::io::stdout().flush();
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(trap.report().as_bytes());
    let _ = stderr.flush();
    TRAP_EXIT_STATUS
}

#[cfg(feature = "executable-main")]
mod executable {
    use std::ffi::{CStr, OsString, c_char, c_int};
    use std::os::unix::ffi::OsStringExt;

    use crate::abi::ModuleDescriptor;
    use crate::instance::Module;

    unsafe extern "C" {
        /// The module compiled into this executable (see `abi::DESCRIPTOR_SYMBOL`).
        static wasmc_module: ModuleDescriptor;
    }

    /// The C entry point of a generated executable.
    #[unsafe(no_mangle)]
    pub extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
        // Like any Rust program (and wasmtime), a write to a closed pipe must fail
        // with EPIPE rather than kill the process.
        // SAFETY: setting a signal disposition to SIG_IGN.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };

        let mut args: Vec<OsString> = (0..argc.max(0) as usize)
            .map(|i| {
                // SAFETY: the C runtime passes `argc` valid NUL-terminated strings.
                let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
                OsString::from_vec(arg.to_bytes().to_vec())
            })
            .collect();
        let argv0 = if args.is_empty() {
            String::from("wasm")
        } else {
            args.remove(0).to_string_lossy().into_owned()
        };

        // SAFETY: the object linked into this executable defines `wasmc_module`, and
        // it stays loaded for the life of the process.
        let module = match unsafe { Module::new(&*std::ptr::addr_of!(wasmc_module)) } {
            Ok(module) => module,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        super::run_command(module, argv0, args)
    }
}
