//! The entry point of a generated executable.
//!
//! With the `executable-main` feature (only in the staticlib the CLI links into
//! executables) this module defines the C `main`, which runs the module exported by
//! the compiled object as `wasmc_module` like `wasmtime run` does:
//!
//! 1. descriptors 0-2 that the parent left closed are reopened on `/dev/null`, so
//!    that no preopen or guest file takes a standard descriptor's number;
//! 2. the command line and the policy baked into the executable become a
//!    [`RunConfig`] (see `command_line`); a bad option prints `error: ...` and
//!    exits 2, `--wasmc-help` prints the options and the policy;
//! 3. with the configured wasm stack (on the main thread with a stack of its own,
//!    `own_stack`, or on a dedicated thread, `traps::run_on_wasm_stack`) the
//!    module is instantiated with its imports resolved to WASI functions, its start
//!    function runs, then its `_start` export;
//!    a module without `_start` (a reactor) gets `_initialize` called and then an
//!    error naming `_start`;
//!    a threaded program (shared memory, `wasi.thread-spawn`) is instantiated by
//!    `threads::spawn`, which also starts its other threads;
//! 4. a trap prints `wasm trap: <message>`, the wasm backtrace, and exits 134;
//!    `proc_exit(n)` exits n right away ([`exit_process`]); returning from `_start`
//!    exits 0, leaving the instance to the process exit ([`Teardown::LeaveToExit`]).
//!    Other errors print `error: ...` and exit 1.
//!
//! Nothing here may fail because stderr is unusable (closed, or a pipe nobody
//! reads): messages are written best-effort and the exit status stays the same.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::sync::Arc;

use crate::abi::policy::Limits;
use crate::abi::{Import, ImportKind};
use crate::command_line::{self, Invocation, OPTIONS_HELP, RunConfig};
use crate::instance::{Extern, InstanceHandle, InstantiationError, Module};
use crate::interrupt::{self, OnHost};
use crate::traps::{self, TrapInfo};

/// Exit status of a program stopped by a trap (wasmtime's: 128 + SIGABRT).
pub const TRAP_EXIT_STATUS: i32 = 134;
/// Exit status for invalid runtime options.
pub const USAGE_EXIT_STATUS: i32 = 2;

/// Ends the process with `code`, from any thread (WASI `proc_exit`). Guest output is
/// written unbuffered by WASI, so there is nothing to flush.
pub fn exit_process(code: i32) -> ! {
    // If the timeout's watchdog is already reporting an interrupt, it ends the
    // process (once, with its report) and this never returns.
    crate::interrupt::claim_exit();
    std::process::exit(code)
}

/// Writes `error: message` to stderr, ignoring a stderr that cannot be written.
pub fn print_error(message: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "error: {message}");
}

/// What happens to a command's instance when its run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Teardown {
    /// Unmap its memory and free it and the WASI state (in-process callers).
    Free,
    /// Leave all of it to the process exit that follows (the executable's `main`):
    /// unmapping the memory reservation and freeing the metadata and the WASI state
    /// change nothing then and cost time at every exit (CPython's start-up: about
    /// 5%, bench/README.md).
    LeaveToExit,
}

/// Runs a WASI command module as the executable does and returns the exit status.
/// `exe_name` is how the executable was invoked, `args` the command line after it.
pub fn run_command(module: Arc<Module>, exe_name: &OsStr, args: Vec<OsString>) -> i32 {
    run_command_with(module, exe_name, args, Teardown::Free)
}

/// [`run_command`], choosing what happens to the instance at the end.
pub fn run_command_with(
    module: Arc<Module>,
    exe_name: &OsStr,
    args: Vec<OsString>,
    teardown: Teardown,
) -> i32 {
    let policy = module.policy().cloned().unwrap_or_default();
    let config = match command_line::parse(&policy, module.info().fuel_metering, exe_name, args) {
        Ok(Invocation::Run(config)) => config,
        Ok(Invocation::Help) => {
            let text = format!(
                "Usage: {} [RUNTIME OPTIONS] [--] [ARGS...]\n\n{OPTIONS_HELP}\n\n\
                 Built into this executable:\n{}",
                exe_name.to_string_lossy(),
                policy.describe()
            );
            let _ = std::io::stdout().write_all(text.as_bytes());
            return 0;
        }
        Err(e) => {
            print_error(e);
            return USAGE_EXIT_STATUS;
        }
    };
    let stack = config.limits.wasm_stack();
    let run = move || run_on_this_thread(module, config, teardown);
    let ran = match teardown {
        // The executable's main thread does nothing else: wasm runs on it, on a
        // stack of its own, instead of on a new thread (start-up time).
        Teardown::LeaveToExit => crate::own_stack::run(stack, run),
        Teardown::Free => traps::run_on_wasm_stack_with(stack, run),
    };
    match ran {
        Ok(code) => code,
        Err(e) => {
            let what = match teardown {
                Teardown::LeaveToExit => "set up the stack",
                Teardown::Free => "create the thread",
            };
            print_error(format_args!("cannot {what} that runs wasm: {e}"));
            1
        }
    }
}

/// [`run_command`] for a WASI 0.2 command component: the same options, policy,
/// limits and sandbox; `run` returning `err` exits 1 (as `wasmtime run`).
pub fn run_component_command(
    component: crate::component::Component,
    descriptor: &'static crate::abi::ModuleDescriptor,
    exe_name: &OsStr,
    args: Vec<OsString>,
) -> i32 {
    let policy = if descriptor.policy.is_null() {
        crate::abi::policy::Policy::default()
    } else {
        // SAFETY: the descriptor points at `policy_len` bytes of read-only data.
        let bytes = unsafe { std::slice::from_raw_parts(descriptor.policy, descriptor.policy_len) };
        match crate::abi::policy::Policy::decode(bytes) {
            Ok(policy) => policy,
            Err(e) => {
                print_error(format_args!("baked sandbox policy: {e}"));
                return 1;
            }
        }
    };
    let fuel_metering = component.modules.iter().any(|m| m.info().fuel_metering);
    let config = match command_line::parse(&policy, fuel_metering, exe_name, args) {
        Ok(Invocation::Run(config)) => config,
        Ok(Invocation::Help) => {
            let text = format!(
                "Usage: {} [RUNTIME OPTIONS] [--] [ARGS...]\n\n{OPTIONS_HELP}\n\n\
                 Built into this executable:\n{}",
                exe_name.to_string_lossy(),
                policy.describe()
            );
            let _ = std::io::stdout().write_all(text.as_bytes());
            return 0;
        }
        Err(e) => {
            print_error(e);
            return USAGE_EXIT_STATUS;
        }
    };
    let stack = config.limits.wasm_stack();
    // Modules are `Arc`s but the plan's state is thread-bound: move the parts.
    let run = move || {
        let ctx = match config.wasi_ctx() {
            Ok(ctx) => ctx,
            Err(e) => {
                print_error(e);
                return USAGE_EXIT_STATUS;
            }
        };
        let limits = config.limits;
        crate::gc::set_heap_limit(usize::try_from(limits.gc_heap()).unwrap_or(usize::MAX));
        if fuel_metering {
            crate::fuel::set_budget(limits.fuel);
        }
        let timeout = match limits.timeout() {
            Some(timeout) => match interrupt::arm(timeout, OnHost::exit_process(report_trap)) {
                Ok(guard) => Some(guard),
                Err(e) => {
                    print_error(format_args!("cannot start the timeout's watchdog: {e}"));
                    return 1;
                }
            },
            None => None,
        };
        let outcome = crate::component::run(component, crate::wasi_p2::WasiP2::new(ctx), &limits);
        drop(timeout);
        match outcome {
            crate::component::RunOutcome::Returned(true) => 0,
            crate::component::RunOutcome::Returned(false) => 1,
            crate::component::RunOutcome::Trapped(trap) => report_trap(&trap),
            crate::component::RunOutcome::HostRefused(trap) => {
                let report = trap.report();
                let report = report.strip_prefix("wasm trap: ").unwrap_or(&report);
                let _ = std::io::stdout().flush();
                let _ = write!(std::io::stderr(), "error: {report}");
                1
            }
            crate::component::RunOutcome::Failed(message) => {
                print_error(message);
                1
            }
        }
    };
    match traps::run_on_wasm_stack_with(stack, run) {
        Ok(code) => code,
        Err(e) => {
            print_error(format_args!("cannot create the thread that runs wasm: {e}"));
            1
        }
    }
}

fn run_on_this_thread(module: Arc<Module>, config: RunConfig, teardown: Teardown) -> i32 {
    let ctx = match config.wasi_ctx() {
        Ok(ctx) => ctx,
        Err(e) => {
            print_error(e);
            return USAGE_EXIT_STATUS;
        }
    };
    let limits = config.limits;
    crate::gc::set_heap_limit(usize::try_from(limits.gc_heap()).unwrap_or(usize::MAX));
    if module.info().fuel_metering {
        crate::fuel::set_budget(limits.fuel);
    }
    // Armed before instantiation: the start function is wasm code too.
    let timeout = match limits.timeout() {
        Some(timeout) => match interrupt::arm(timeout, OnHost::exit_process(report_trap)) {
            Ok(guard) => Some(guard),
            Err(e) => {
                print_error(format_args!("cannot start the timeout's watchdog: {e}"));
                return 1;
            }
        },
        None => None,
    };
    let outcome = instantiate_and_start(module, ctx, &limits, teardown);
    // Disarm before reporting: if the watchdog is already reporting the interrupt,
    // this never returns and the process ends with that one report.
    drop(timeout);
    match outcome {
        Outcome::Finished => 0,
        Outcome::Trapped(trap) => report_trap(&trap),
        Outcome::Failed(message) => {
            print_error(message);
            1
        }
    }
}

/// How a run ended, reported only once the timeout is disarmed.
enum Outcome {
    Finished,
    Trapped(TrapInfo),
    Failed(String),
}

fn instantiate_and_start(
    module: Arc<Module>,
    ctx: crate::wasi::WasiCtx,
    limits: &Limits,
    teardown: Teardown,
) -> Outcome {
    let mut resolver = |import: &Import| match import.kind {
        ImportKind::Func { .. } => {
            crate::wasi::resolve(&import.module, &import.name).map(Extern::HostFunc)
        }
        _ => None,
    };
    let instantiated = if crate::threads::spawn::uses_threads(&module) {
        crate::threads::spawn::instantiate_main(module, ctx, limits, report_trap)
    } else {
        InstanceHandle::new_with_limits(module, &mut resolver, Some(Box::new(ctx)), limits)
    };
    let instance = match instantiated {
        Ok(instance) => instance,
        Err(InstantiationError::Trap(trap)) => return Outcome::Trapped(trap),
        Err(e) => return Outcome::Failed(format!("cannot instantiate the module: {e}")),
    };
    let Some(start) = instance.export_func("_start") else {
        // A reactor: initialize it as wasmtime does, but there is nothing to run.
        if let Some(init) = instance.export_func("_initialize")
            && let Err(trap) = init.call(&[])
        {
            return Outcome::Trapped(trap);
        }
        return Outcome::Failed(
            "the module has no `_start` function export (it is not a WASI command)".into(),
        );
    };
    if !start.ty().params.is_empty() || !start.ty().results.is_empty() {
        return Outcome::Failed("the module's `_start` export must take and return nothing".into());
    }
    let outcome = match start.call(&[]) {
        Ok(_) => Outcome::Finished,
        Err(trap) => Outcome::Trapped(trap),
    };
    if teardown == Teardown::LeaveToExit {
        std::mem::forget(instance);
    }
    outcome
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
        reopen_closed_stdio();

        let mut args: Vec<OsString> = (0..argc.max(0) as usize)
            .map(|i| {
                // SAFETY: the C runtime passes `argc` valid NUL-terminated strings.
                let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
                OsString::from_vec(arg.to_bytes().to_vec())
            })
            .collect();
        let exe_name = if args.is_empty() {
            OsString::from("wasm")
        } else {
            args.remove(0)
        };

        // SAFETY: as below.
        let descriptor = unsafe { &*std::ptr::addr_of!(wasmc_module) };
        if !descriptor.component_plan.is_null() {
            // SAFETY: a component descriptor written by the compiler, linked in.
            return match unsafe { crate::component::Component::new(descriptor) } {
                Ok(component) => {
                    super::run_component_command(component, descriptor, &exe_name, args)
                }
                Err(e) => {
                    super::print_error(e);
                    1
                }
            };
        }
        // SAFETY: the object linked into this executable defines `wasmc_module`, and
        // it stays loaded for the life of the process.
        let module = match unsafe { Module::new(&*std::ptr::addr_of!(wasmc_module)) } {
            Ok(module) => module,
            Err(e) => {
                super::print_error(e);
                return 1;
            }
        };
        super::run_command_with(module, &exe_name, args, super::Teardown::LeaveToExit)
    }

    /// Started with descriptor 0, 1 or 2 closed (`./prog 1>&-`), the first preopen
    /// or file would take that number and the program's stdout would land in it.
    /// Reopen them on `/dev/null` first, as Rust's own start-up does: writes then
    /// succeed and go nowhere, as in wasmtime.
    fn reopen_closed_stdio() {
        for fd in 0..3 {
            // SAFETY: F_GETFD only queries the descriptor.
            let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
            if closed {
                // SAFETY: opening a constant path; open returns the lowest free
                // descriptor, which is `fd` since the lower ones are open by now.
                let opened = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
                if opened != fd {
                    // Nothing sensible is left to do without standard descriptors.
                    std::process::abort();
                }
            }
        }
    }
}
