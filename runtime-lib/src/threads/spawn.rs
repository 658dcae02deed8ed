//! wasi-threads: `wasi.thread-spawn(start_arg) -> tid` starts an OS thread that runs
//! the module's `wasi_thread_start(tid, start_arg)` export in a new instance of the
//! same module, sharing the imported memory and the WASI state.
//!
//! * Each thread is a real OS thread with the wasm stack size of the main one (and
//!   its host reserve), its own `VMRuntimeState` (stack limit, fuel budget), signal
//!   alternate stack and trap recovery: the instance is created on the thread, so
//!   everything per-thread is set up exactly as for the main thread.
//! * Each thread has its own instance (globals such as `__stack_pointer` are
//!   per-instance; the guest's `wasi_thread_start` sets them up), importing the
//!   same shared memory. The module must import its memory: a memory it defined
//!   would be a new one in every instance.
//! * The WASI state (descriptors, arguments, environment, clocks) is one
//!   `WasiCtx` behind a mutex; each WASI call holds it for the call's duration,
//!   except for a plain sleep (a lone relative clock in `poll_oneoff`, what
//!   `std::thread::sleep` and `nanosleep` produce), which is deferred until the
//!   lock is released (see [`sleep_outside_wasi_lock`]) so that a sleeping thread
//!   does not hold up the others' WASI calls. Other blocking calls (a read from a
//!   terminal or pipe, a poll on stdin) still hold it while they block.
//! * A trap in any thread prints the report and ends the process with status 134,
//!   `proc_exit` in any thread ends it with that status, as if the main thread had
//!   done it; returning from the main thread's `_start` ends the process with 0
//!   whatever the other threads are doing (as in wasmtime's former wasi-threads
//!   support). A thread whose `wasi_thread_start` returns simply ends.
//! * Thread ids are 1..=0x1FFF_FFFF as the proposal requires (the main thread does
//!   not get one from here); `thread-spawn` returns a negative value when no thread
//!   can be started (ids exhausted, the OS refuses a thread).

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::abi::policy::Limits;
use crate::abi::{FuncType, Import, ImportKind, ValType};
use crate::caller::Caller;
use crate::instance::{Extern, HostFunc, InstanceHandle, InstantiationError, MemoryHandle, Module};
use crate::memory::Memory;
use crate::wasi::WasiCtx;

/// The import module and name of the spawn function.
pub const SPAWN_MODULE: &str = "wasi";
pub const SPAWN_NAME: &str = "thread-spawn";
/// The export each new thread runs.
pub const THREAD_START: &str = "wasi_thread_start";
/// Largest thread id the proposal allows.
const MAX_TID: u32 = 0x1FFF_FFFF;

/// The `thread-spawn` host function (`(i32) -> i32`).
pub fn spawn_func() -> HostFunc {
    HostFunc {
        ty: FuncType {
            params: vec![ValType::I32],
            results: vec![ValType::I32],
        },
        code: thread_spawn as *const u8,
    }
}

/// Whether a module uses threads the runtime must set up: it imports a shared
/// memory or `wasi.thread-spawn`.
pub fn uses_threads(module: &Module) -> bool {
    module.imports().iter().any(|import| match &import.kind {
        ImportKind::Memory(ty) => ty.shared,
        ImportKind::Func { .. } => import.module == SPAWN_MODULE && import.name == SPAWN_NAME,
        _ => false,
    })
}

/// What every thread of a threaded program shares; the host state of each of its
/// instances (see [`ThreadHost`]).
struct Shared {
    module: Arc<Module>,
    /// The memories the module imports, in import order (created at start-up).
    memories: Vec<MemoryHandle>,
    wasi: Mutex<WasiCtx>,
    limits: Limits,
    /// Reports a trap of a spawned thread and returns the exit status.
    report_trap: fn(&crate::traps::TrapInfo) -> i32,
    next_tid: AtomicU32,
}

/// Host state of every instance of a threaded program: WASI calls lock the shared
/// `WasiCtx` through it, and `thread-spawn` finds what a new thread needs.
pub struct ThreadHost {
    shared: Arc<Shared>,
}

impl ThreadHost {
    /// Runs one WASI call with the shared state locked, then performs the sleep it
    /// deferred, if any, without the lock. A thread that panicked while holding
    /// the lock ended the process, so a poisoned lock is simply taken over.
    pub(crate) fn with_wasi<R>(&self, call: impl FnOnce(&mut WasiCtx) -> R) -> R {
        let result = {
            let mut ctx = self.shared.wasi.lock().unwrap_or_else(|e| e.into_inner());
            DEFERRED_SLEEP.set(Some(Duration::ZERO));
            call(&mut ctx)
        };
        if let Some(sleep) = DEFERRED_SLEEP.take().filter(|d| !d.is_zero()) {
            std::thread::sleep(sleep);
        }
        result
    }
}

thread_local! {
    /// `Some` while this thread runs a WASI call under the shared lock: the sleep
    /// to perform once the lock is released.
    static DEFERRED_SLEEP: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// Sleeps for `duration`, or, during a WASI call of a threaded program, arranges
/// for the sleep to happen right after the call releases the shared WASI lock and
/// before it returns to wasm. For a call that only sleeps and then writes its
/// result: the guest is blocked in the call either way, so it cannot tell.
pub(crate) fn sleep_outside_wasi_lock(duration: Duration) {
    match DEFERRED_SLEEP.get() {
        Some(pending) => DEFERRED_SLEEP.set(Some(pending.saturating_add(duration))),
        None => std::thread::sleep(duration),
    }
}

/// Instantiates a threaded program's main instance: creates its imported shared
/// memories (capped by `limits.max_memory`) and resolves `thread-spawn` and WASI.
/// `report_trap` is how a spawned thread reports a trap before the process exits.
pub fn instantiate_main(
    module: Arc<Module>,
    ctx: WasiCtx,
    limits: &Limits,
    report_trap: fn(&crate::traps::TrapInfo) -> i32,
) -> Result<InstanceHandle, InstantiationError> {
    let mut memories = Vec::new();
    for import in module.imports() {
        if let ImportKind::Memory(ty) = &import.kind {
            if !ty.shared {
                // Only a threaded program's shared memory comes from the runtime.
                return Err(unknown_import(import));
            }
            let memory = Memory::with_limit(ty, limits.max_memory).map_err(|e| {
                InstantiationError::Resource(format!(
                    "cannot create the imported memory `{}`.`{}`: {e}",
                    import.module, import.name
                ))
            })?;
            memories.push(MemoryHandle::from_memory(memory));
        }
    }
    let spawns = module
        .imports()
        .iter()
        .any(|i| i.module == SPAWN_MODULE && i.name == SPAWN_NAME);
    if spawns && memories.is_empty() {
        return Err(InstantiationError::Unlinkable(
            "the module imports `wasi`.`thread-spawn` but no shared memory: wasi-threads \
             needs the memory imported, so that every thread's instance shares it"
                .into(),
        ));
    }
    if spawns && !has_thread_start(&module) {
        return Err(InstantiationError::Unlinkable(format!(
            "the module imports `wasi`.`thread-spawn` but has no `{THREAD_START}` \
             function export of type (i32, i32) -> ()"
        )));
    }
    let shared = Arc::new(Shared {
        module,
        memories,
        wasi: Mutex::new(ctx),
        limits: *limits,
        report_trap,
        next_tid: AtomicU32::new(1),
    });
    instantiate(&shared)
}

/// Whether the module exports `wasi_thread_start` with the proposal's type.
fn has_thread_start(module: &Module) -> bool {
    let info = module.info();
    info.exports.iter().any(|export| {
        export.name == THREAD_START
            && match export.kind {
                crate::abi::ExportKind::Func => {
                    let ty = info.func_type(export.index);
                    ty.params == [ValType::I32, ValType::I32] && ty.results.is_empty()
                }
                _ => false,
            }
    })
}

fn unknown_import(import: &Import) -> InstantiationError {
    InstantiationError::Unlinkable(format!(
        "unknown import: `{}`.`{}`",
        import.module, import.name
    ))
}

/// A new instance of the program's module on the current thread.
fn instantiate(shared: &Arc<Shared>) -> Result<InstanceHandle, InstantiationError> {
    let mut memories = shared.memories.iter();
    let mut resolver = |import: &Import| match import.kind {
        ImportKind::Func { .. } if import.module == SPAWN_MODULE && import.name == SPAWN_NAME => {
            Some(Extern::HostFunc(spawn_func()))
        }
        ImportKind::Func { .. } => {
            crate::wasi::resolve(&import.module, &import.name).map(Extern::HostFunc)
        }
        ImportKind::Memory(_) => memories.next().cloned().map(Extern::Memory),
        _ => None,
    };
    let host = ThreadHost {
        shared: shared.clone(),
    };
    InstanceHandle::new_with_limits(
        shared.module.clone(),
        &mut resolver,
        Some(Box::new(host)),
        &shared.limits,
    )
}

/// `wasi.thread-spawn(start_arg) -> tid`, or a negative value on failure.
extern "C" fn thread_spawn(vmctx: *mut u8, start_arg: i32) -> i32 {
    // SAFETY: only generated code calls this, with its own VMContext.
    let mut caller = unsafe { Caller::from_vmctx(vmctx) };
    let Some(host) = caller.host_state::<ThreadHost>() else {
        return -1;
    };
    let shared = host.shared.clone();
    // Ids are never reused: a program that starts more than 2^29 threads in its
    // life gets failures from then on.
    let tid = shared.next_tid.fetch_add(1, Ordering::Relaxed);
    if tid == 0 || tid > MAX_TID {
        shared.next_tid.store(MAX_TID + 1, Ordering::Relaxed);
        return -1;
    }
    let Ok(stack) = crate::traps::check_wasm_stack(shared.limits.wasm_stack()) else {
        return -1;
    };
    let spawned = std::thread::Builder::new()
        .name(format!("wasm-{tid}"))
        .stack_size(stack + crate::traps::HOST_RESERVE)
        .spawn(move || run_thread(shared, tid, start_arg));
    match spawned {
        Ok(_detached) => tid as i32,
        Err(_) => -1,
    }
}

/// Body of a spawned thread: instantiate, run `wasi_thread_start(tid, start_arg)`.
fn run_thread(shared: Arc<Shared>, tid: u32, start_arg: i32) {
    if shared.module.info().fuel_metering {
        crate::fuel::set_budget(shared.limits.fuel);
    }
    let instance = match instantiate(&shared) {
        Ok(instance) => instance,
        Err(InstantiationError::Trap(trap)) => {
            crate::entry::exit_process((shared.report_trap)(&trap));
        }
        Err(e) => {
            crate::entry::print_error(format_args!("cannot start thread {tid}: {e}"));
            crate::entry::exit_process(1);
        }
    };
    // Checked when the main instance was created.
    let Some(start) = instance.export_func(THREAD_START) else {
        crate::entry::exit_process(1);
    };
    let args = [
        crate::instance::Val::I32(tid as i32),
        crate::instance::Val::I32(start_arg),
    ];
    if let Err(trap) = start.call(&args) {
        crate::entry::exit_process((shared.report_trap)(&trap));
    }
}
