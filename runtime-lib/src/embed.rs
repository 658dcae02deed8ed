//! The runtime side of libraries made with `wasmc --emit lib`: the `wasmc_embed_*`
//! entry points that the generated, prefixed C functions call (the contract is
//! `abi::embed`; the generator is `cli/src/embed/`).
//!
//! # Design
//! * A [`Config`] collects what `wasmc run` takes on its command line (arguments,
//!   environment, preopened directories, the memory cap); problems (a string that is
//!   not valid, a directory that cannot be opened) are reported by instantiation.
//! * An [`Instance`] owns an [`InstanceHandle`] whose host state is a [`WasiCtx`] in
//!   which `proc_exit` ends the call rather than the process
//!   ([`WasiCtxBuilder::proc_exit_ends_call`]). Function imports that are not WASI are
//!   the C functions the embedder defines, reached through generated wrappers.
//! * Calls run on the caller's thread and stack, inside `catch_traps`, so a trap
//!   (or `proc_exit`) comes back as a status with a message; the host process and
//!   other instances are untouched. The stack limit generated code checks is the
//!   calling thread's (its bounds minus a 1 MiB host reserve, see `traps`): before
//!   every call the instance's `VMContext` is pointed at the calling thread's runtime
//!   state, which is what lets an instance move between threads.
//! * One call at a time per instance: a call from a second thread while one runs is
//!   refused with `STATUS_ERROR` (checked with an atomic owner word); nested calls on
//!   the same thread (an import calling back into its instance) are allowed.
//!
//! Instances are `!Send` inside the runtime (`Rc`), but everything reachable from an
//! embedded instance belongs to it alone (its imports are host functions, never
//! another instance's entities), so handing the whole of it to another thread
//! between calls is sound; the embedder's own synchronisation orders the calls.
//!
//! Every entry point catches Rust panics (a panic must not unwind into C) and turns
//! them into an error.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::abi::embed::{STATUS_ERROR, STATUS_EXIT, STATUS_OK, STATUS_TRAP};
use crate::abi::policy::Limits;
use crate::abi::{ExportKind, ImportKind, ModuleDescriptor, Trap, VMContextLayout, ValRaw};
use crate::instance::{Extern, FuncHandle, HostFunc, InstanceHandle, Module, Val};
use crate::traps::{self, TrapInfo};
use crate::wasi::{WasiCtx, WasiCtxBuilder};

/// What an instance is created with (`<prefix>_config`).
#[derive(Default)]
pub struct Config {
    args: Vec<Vec<u8>>,
    env: Vec<(Vec<u8>, Vec<u8>)>,
    dirs: Vec<(PathBuf, String)>,
    max_memory: Option<u64>,
    user_data: usize,
    /// Arguments that could not be taken (reported by instantiation).
    problems: Vec<String>,
}

/// An embedded instance (`<prefix>_instance`).
pub struct Instance {
    /// `None` only while the module is being instantiated (its start function).
    handle: Option<InstanceHandle>,
    /// The function of each export, by position in `ModuleInfo::exports`.
    exports: Vec<Option<FuncHandle>>,
    /// Module-level index of the exported memory (`<prefix>_memory`).
    memory: Option<u32>,
    /// The message of the last failed call (`<prefix>_last_error`).
    last_error: RefCell<CString>,
    /// The status of the `proc_exit` that ended the last call.
    exit_status: Cell<c_int>,
    /// Thread id of the call in progress (0: idle), see [`thread_id`].
    owner: AtomicUsize,
    /// Thread id of the thread that created the instance.
    home_thread: usize,
    /// Calls in progress on the owner thread (an import may call back in).
    depth: Cell<u32>,
    /// Message of a trap raised by a host import through `wasmc_embed_trap`.
    host_trap: RefCell<Option<String>>,
    user_data: usize,
}

thread_local! {
    /// The instance whose call is running on this thread (for host imports).
    static CURRENT: Cell<*mut Instance> = const { Cell::new(std::ptr::null_mut()) };
    static THREAD_ID: u8 = const { 0 };
}

/// A non-zero number unique among live threads: the address of a thread-local.
fn thread_id() -> usize {
    THREAD_ID.with(|t| t as *const u8 as usize)
}

/// Runs `f`, turning a panic into `fallback` (a panic must not unwind into C).
fn no_panic<R>(fallback: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// # Safety
/// `s` is null or a NUL-terminated string.
unsafe fn bytes_of<'a>(s: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: guaranteed by the caller.
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_bytes())
}

/// The C string of `message`, with any NUL byte (which C cannot show) replaced.
fn c_message(message: &str) -> CString {
    CString::new(message.replace('\0', "\\0")).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub extern "C" fn wasmc_embed_config_new() -> *mut Config {
    no_panic(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(Config::default()))
    })
}

/// # Safety
/// `config` is null or from `wasmc_embed_config_new`; the strings are null or
/// NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_config_dir(
    config: *mut Config,
    host: *const c_char,
    guest: *const c_char,
) {
    no_panic((), || {
        // SAFETY: guaranteed by the caller.
        let Some(config) = (unsafe { config.as_mut() }) else {
            return;
        };
        // SAFETY: guaranteed by the caller.
        let (host, guest) = unsafe { (bytes_of(host), bytes_of(guest)) };
        let (Some(host), Some(guest)) = (host, guest) else {
            config
                .problems
                .push("config_dir: the host and guest paths must not be NULL".into());
            return;
        };
        let Ok(guest) = std::str::from_utf8(guest) else {
            config.problems.push(format!(
                "config_dir: the guest path {:?} is not UTF-8",
                String::from_utf8_lossy(guest)
            ));
            return;
        };
        if host.is_empty() || guest.is_empty() {
            config
                .problems
                .push("config_dir: the host and guest paths must not be empty".into());
            return;
        }
        use std::os::unix::ffi::OsStrExt;
        let host = PathBuf::from(std::ffi::OsStr::from_bytes(host));
        config.dirs.push((host, guest.to_string()));
    })
}

/// # Safety
/// As for [`wasmc_embed_config_dir`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_config_env(
    config: *mut Config,
    name: *const c_char,
    value: *const c_char,
) {
    no_panic((), || {
        // SAFETY: guaranteed by the caller.
        let Some(config) = (unsafe { config.as_mut() }) else {
            return;
        };
        // SAFETY: guaranteed by the caller.
        match unsafe { (bytes_of(name), bytes_of(value)) } {
            (Some(name), Some(value)) if !name.is_empty() && !name.contains(&b'=') => {
                config.env.push((name.to_vec(), value.to_vec()));
            }
            (name, _) => config.problems.push(format!(
                "config_env: {:?} is not a variable name (non-empty, without '=') or the \
                 value is NULL",
                String::from_utf8_lossy(name.unwrap_or_default())
            )),
        }
    })
}

/// # Safety
/// As for [`wasmc_embed_config_dir`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_config_arg(config: *mut Config, arg: *const c_char) {
    no_panic((), || {
        // SAFETY: guaranteed by the caller.
        let Some(config) = (unsafe { config.as_mut() }) else {
            return;
        };
        // SAFETY: guaranteed by the caller.
        match unsafe { bytes_of(arg) } {
            Some(arg) => config.args.push(arg.to_vec()),
            None => config
                .problems
                .push("config_arg: the argument must not be NULL".into()),
        }
    })
}

/// # Safety
/// `config` is null or from `wasmc_embed_config_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_config_max_memory(config: *mut Config, bytes: u64) {
    // SAFETY: guaranteed by the caller.
    if let Some(config) = unsafe { config.as_mut() } {
        config.max_memory = Some(bytes);
    }
}

/// # Safety
/// `config` is null or from `wasmc_embed_config_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_config_user_data(config: *mut Config, data: *mut c_void) {
    // SAFETY: guaranteed by the caller.
    if let Some(config) = unsafe { config.as_mut() } {
        config.user_data = data as usize;
    }
}

/// # Safety
/// `config` is null or from `wasmc_embed_config_new`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_config_free(config: *mut Config) {
    if !config.is_null() {
        // SAFETY: guaranteed by the caller: allocated by Box::into_raw, freed once.
        no_panic((), || drop(unsafe { Box::from_raw(config) }));
    }
}

// ---------------------------------------------------------------------------
// Instances
// ---------------------------------------------------------------------------

/// The module of `descriptor`, read once per process: its metadata is parsed and its
/// code registered with the trap handler on first use.
fn module_of(descriptor: &'static ModuleDescriptor) -> Result<Arc<Module>, String> {
    static MODULES: Mutex<Vec<(usize, Arc<Module>)>> = Mutex::new(Vec::new());
    let key = descriptor as *const ModuleDescriptor as usize;
    let mut modules = MODULES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, module)) = modules.iter().find(|(k, _)| *k == key) {
        return Ok(module.clone());
    }
    // SAFETY: the descriptor is the one compiled into this library, which stays
    // loaded for the life of the process.
    let module = unsafe { Module::new(descriptor) }?;
    modules.push((key, module.clone()));
    Ok(module)
}

/// # Safety
/// `descriptor` is the library's `wasmc_module`; `config` null or a live config;
/// `host_imports` points at `num_host_imports` code addresses (see `abi::embed`);
/// `argv0` null or NUL-terminated; `error` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_instantiate(
    descriptor: *const ModuleDescriptor,
    config: *const Config,
    host_imports: *const *const u8,
    num_host_imports: usize,
    argv0: *const c_char,
    error: *mut *mut c_char,
) -> *mut Instance {
    let result = no_panic(
        Err("internal error: the runtime panicked".to_string()),
        || {
            // SAFETY: guaranteed by the caller.
            let descriptor = unsafe { descriptor.as_ref() }.ok_or("no module descriptor")?;
            let imports: &[*const u8] = if host_imports.is_null() {
                &[]
            } else {
                // SAFETY: guaranteed by the caller.
                unsafe { std::slice::from_raw_parts(host_imports, num_host_imports) }
            };
            let default_config = Config::default();
            // SAFETY: guaranteed by the caller.
            let config = unsafe { config.as_ref() }.unwrap_or(&default_config);
            // SAFETY: guaranteed by the caller.
            let argv0 = unsafe { bytes_of(argv0) }.unwrap_or(b"wasm");
            instantiate(descriptor, config, imports, argv0)
        },
    );
    match result {
        Ok(instance) => instance,
        Err(message) => {
            if !error.is_null() {
                // SAFETY: guaranteed by the caller.
                unsafe { *error = c_message(&message).into_raw() };
            }
            std::ptr::null_mut()
        }
    }
}

fn instantiate(
    descriptor: &'static ModuleDescriptor,
    config: &Config,
    host_imports: &[*const u8],
    argv0: &[u8],
) -> Result<*mut Instance, String> {
    if let Some(problem) = config.problems.first() {
        return Err(problem.clone());
    }
    let module = module_of(descriptor)?;
    let info = module.info();

    let baked = module.policy().map(|p| p.limits).unwrap_or_default();
    let requested = Limits {
        max_memory: config.max_memory,
        ..Limits::default()
    };
    let limits = baked
        .tighten(&requested)
        .map_err(|e| format!("config_max_memory: {e}"))?;

    let mut wasi = WasiCtxBuilder::new().proc_exit_ends_call();
    if config.args.is_empty() {
        wasi = wasi.arg(argv0);
    }
    for arg in &config.args {
        wasi = wasi.arg(arg);
    }
    for (name, value) in &config.env {
        wasi = wasi.env(name, value);
    }
    for (host, guest) in &config.dirs {
        wasi = wasi.preopen_dir(host, guest)?;
    }
    let wasi = wasi.build();

    let mut func_imports = 0;
    let mut resolver = |import: &crate::abi::Import| {
        let ImportKind::Func { type_index } = import.kind else {
            return None;
        };
        let code = host_imports.get(func_imports).copied();
        func_imports += 1;
        match code {
            Some(code) if !code.is_null() => Some(Extern::HostFunc(HostFunc {
                ty: info.types.get(type_index as usize)?.clone(),
                code,
            })),
            _ => crate::wasi::resolve(&import.module, &import.name).map(Extern::HostFunc),
        }
    };

    let instance = Box::into_raw(Box::new(Instance {
        handle: None,
        exports: Vec::new(),
        memory: None,
        last_error: RefCell::new(CString::default()),
        exit_status: Cell::new(0),
        owner: AtomicUsize::new(thread_id()),
        home_thread: thread_id(),
        depth: Cell::new(1),
        host_trap: RefCell::new(None),
        user_data: config.user_data,
    }));
    // Imports called by the start function see the instance (without its memory).
    let previous = CURRENT.replace(instance);
    let created = InstanceHandle::new_with_limits(
        module.clone(),
        &mut resolver,
        Some(Box::new(wasi)),
        &limits,
    );
    CURRENT.set(previous);
    {
        // SAFETY: allocated above; the start function's calls have all returned.
        let this = unsafe { &*instance };
        this.depth.set(0);
        this.owner.store(0, Ordering::Release);
    }
    // SAFETY: allocated above, not yet handed out, and no call is running.
    let this = unsafe { &mut *instance };
    let handle = match created {
        Ok(handle) => handle,
        Err(e) => {
            // SAFETY: allocated above; nothing else refers to it any more.
            drop(unsafe { Box::from_raw(instance) });
            return Err(match e {
                crate::instance::InstantiationError::Trap(trap) => {
                    trap_message(&trap).trim_end().to_string()
                }
                // The limit's name in the library's terms, not the executable's.
                e => format!("cannot instantiate the module: {e}")
                    .replace("--max-memory", "the memory limit")
                    .replace("--max-table-elements", "the table limit"),
            });
        }
    };
    this.exports = info
        .exports
        .iter()
        .map(|export| match export.kind {
            ExportKind::Func => handle.export_func(&export.name),
            _ => None,
        })
        .collect();
    let memories = info.exports.iter().filter(|e| e.kind == ExportKind::Memory);
    this.memory = memories
        .clone()
        .find(|e| e.name == "memory")
        .or_else(|| memories.clone().next())
        .map(|e| e.index);
    this.handle = Some(handle);

    // A reactor (a library built by wasi-libc, Rust...) is initialized as wasmtime
    // does it before its exports are used.
    let has_start = info.exports.iter().any(|e| e.name == "_start");
    if let Some(index) = info.exports.iter().position(|e| e.name == "_initialize")
        && !has_start
    {
        // SAFETY: `instance` is live and idle.
        let status = unsafe { call_export(instance, index, &mut []) };
        if status != STATUS_OK {
            // SAFETY: live, and the call has returned.
            let error = unsafe { &*instance }.last_error.borrow().clone();
            let message = format!(
                "the module's `_initialize` failed: {}",
                error.to_string_lossy().trim_end()
            );
            // SAFETY: as above; the failed instance is not handed out.
            drop(unsafe { Box::from_raw(instance) });
            return Err(message);
        }
    }
    Ok(instance)
}

/// # Safety
/// `instance` is null or from `wasmc_embed_instantiate`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_instance_free(instance: *mut Instance) {
    // SAFETY: guaranteed by the caller.
    let Some(this) = (unsafe { instance.as_ref() }) else {
        return;
    };
    // Freeing an instance while one of its calls runs (from one of its imports)
    // would pull its memory from under the wasm code: refused, the instance leaks.
    if this.owner.load(Ordering::Acquire) != 0 {
        return;
    }
    // SAFETY: allocated by Box::into_raw in `instantiate`, freed once (the caller's
    // promise), and idle.
    no_panic((), || drop(unsafe { Box::from_raw(instance) }));
}

/// # Safety
/// `error` is null or a message from `wasmc_embed_instantiate`, freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_free_error(error: *mut c_char) {
    if !error.is_null() {
        // SAFETY: guaranteed by the caller: made by CString::into_raw.
        drop(unsafe { CString::from_raw(error) });
    }
}

/// # Safety
/// `instance` is null or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_last_error(instance: *const Instance) -> *const c_char {
    // SAFETY: guaranteed by the caller.
    match unsafe { instance.as_ref() } {
        // The string stays in place until the next call of this instance.
        Some(this) => this.last_error.borrow().as_ptr(),
        None => c"no instance (NULL)".as_ptr(),
    }
}

/// # Safety
/// `instance` is null or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_user_data(instance: *const Instance) -> *mut c_void {
    // SAFETY: guaranteed by the caller.
    unsafe { instance.as_ref() }.map_or(std::ptr::null_mut(), |this| this.user_data as *mut c_void)
}

/// # Safety
/// `instance` is null or live; `length` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_memory(
    instance: *const Instance,
    length: *mut usize,
) -> *mut u8 {
    // SAFETY: guaranteed by the caller.
    let memory = unsafe { instance.as_ref() }
        .and_then(|this| this.handle.as_ref()?.instance().memory(this.memory?));
    let (base, len) = memory.map_or((std::ptr::null_mut(), 0), |m| (m.base(), m.byte_len()));
    if !length.is_null() {
        // SAFETY: guaranteed by the caller.
        unsafe { *length = len };
    }
    base
}

/// The instance whose call is running on this thread (null outside calls).
#[unsafe(no_mangle)]
pub extern "C" fn wasmc_embed_current() -> *mut Instance {
    CURRENT.get()
}

/// Ends the running call of `instance` with a trap carrying `message`; for host
/// imports. Returns (doing nothing) unless `instance` is the one whose call is
/// innermost on this thread.
///
/// # Safety
/// `instance` is null or live; `message` null or NUL-terminated. Every C frame
/// between the import and here is discarded, as by `longjmp`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_trap(instance: *const Instance, message: *const c_char) {
    // SAFETY: guaranteed by the caller.
    let Some(this) = (unsafe { instance.as_ref() }) else {
        return;
    };
    // Only the innermost call on this thread can be ended: an import of another
    // instance's call (nested inside one of this instance's) must not unwind it.
    if !std::ptr::eq(CURRENT.get(), instance)
        || this.depth.get() == 0
        || this.owner.load(Ordering::Acquire) != thread_id()
    {
        return;
    }
    // SAFETY: guaranteed by the caller.
    let text = unsafe { bytes_of(message) }.map_or_else(
        || "a host import trapped".to_string(),
        |m| String::from_utf8_lossy(m).into_owned(),
    );
    *this.host_trap.borrow_mut() = Some(text);
    // Nothing owned remains in this frame (the message was moved into the instance).
    traps::raise_host_trap(Trap::HostError)
}

// ---------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------

/// # Safety
/// `instance` is null or live; `values` points at `num_values` writable, 16-byte
/// aligned slots holding the export's parameters (see `abi::embed`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_call(
    instance: *mut Instance,
    export_index: u32,
    values: *mut ValRaw,
    num_values: usize,
) -> c_int {
    if instance.is_null() || (values.is_null() && num_values != 0) {
        return STATUS_ERROR;
    }
    let values: &mut [ValRaw] = if num_values == 0 {
        &mut []
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts_mut(values, num_values) }
    };
    // SAFETY: guaranteed by the caller.
    unsafe { call_export(instance, export_index as usize, values) }
}

/// Runs the command's `_start`; `proc_exit(n)` is a normal end with `*exit_code = n`,
/// returning from `_start` one with 0.
///
/// # Safety
/// `instance` is null or live; `exit_code` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasmc_embed_run(instance: *mut Instance, exit_code: *mut c_int) -> c_int {
    // SAFETY: guaranteed by the caller.
    let Some(this) = (unsafe { instance.as_ref() }) else {
        return STATUS_ERROR;
    };
    let Some(index) = this.handle.as_ref().and_then(|h| {
        let info = h.module().info();
        info.exports
            .iter()
            .position(|e| e.name == "_start" && e.kind == ExportKind::Func)
    }) else {
        if this.owner.load(Ordering::Acquire) == 0 {
            *this.last_error.borrow_mut() =
                c"the module has no `_start` export: it is not a WASI command".to_owned();
        }
        return STATUS_ERROR;
    };
    // SAFETY: live instance; `_start` takes and returns nothing (checked by wasmc).
    let status = unsafe { call_export(instance, index, &mut [0]) };
    let code = match status {
        STATUS_OK => 0,
        STATUS_EXIT => this.exit_status.get(),
        other => return other,
    };
    if !exit_code.is_null() {
        // SAFETY: guaranteed by the caller.
        unsafe { *exit_code = code };
    }
    STATUS_OK
}

impl Instance {
    /// The instance's WASI state.
    fn wasi(&self) -> Option<&mut WasiCtx> {
        self.handle
            .as_ref()?
            .instance()
            .host_state_mut()?
            .downcast_mut::<WasiCtx>()
    }
}

/// Calls export `index` with the parameters in `values` and leaves its results there.
///
/// # Safety
/// `instance` is live.
unsafe fn call_export(instance: *mut Instance, index: usize, values: &mut [ValRaw]) -> c_int {
    // SAFETY: guaranteed by the caller. Only shared references: an import may call
    // back into the same instance.
    let this = unsafe { &*instance };
    let me = thread_id();
    match this
        .owner
        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
    {
        Ok(_) => {}
        Err(owner) if owner == me => {}
        // Another thread is inside this instance: nothing may be touched.
        Err(_) => return STATUS_ERROR,
    }
    if me != this.home_thread {
        // Exceptions this instance holds may now live in another thread's arena,
        // whose collector cannot see this thread's frames (see `exceptions`).
        crate::gc::forbid_collection();
    }
    this.depth.set(this.depth.get() + 1);
    let previous = CURRENT.replace(instance);
    // (The fallback is built only on a panic: no allocation per call.)
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        call_on_this_thread(this, index, values)
    }))
    .unwrap_or_else(|_| {
        Err(Failure::Error(
            "internal error: the runtime panicked".into(),
        ))
    });
    CURRENT.set(previous);
    this.depth.set(this.depth.get() - 1);
    if this.depth.get() == 0 {
        this.owner.store(0, Ordering::Release);
    }
    let (status, message) = match outcome {
        Ok(()) => return STATUS_OK,
        Err(Failure::Error(message)) => (STATUS_ERROR, message),
        Err(Failure::Trap(message)) => (STATUS_TRAP, message),
        Err(Failure::Exit(code)) => {
            this.exit_status.set(code as c_int);
            (STATUS_EXIT, format!("the guest called proc_exit({code})"))
        }
    };
    *this.last_error.borrow_mut() = c_message(&message);
    status
}

enum Failure {
    Error(String),
    Trap(String),
    Exit(u32),
}

fn call_on_this_thread(
    this: &Instance,
    index: usize,
    values: &mut [ValRaw],
) -> Result<(), Failure> {
    let Some(handle) = this.handle.as_ref() else {
        return Err(Failure::Error(
            "the instance is still being instantiated (its start function is running)".into(),
        ));
    };
    let Some(Some(func)) = this.exports.get(index) else {
        return Err(Failure::Error(format!("export {index} is not a function")));
    };
    let ty = func.ty();
    if values.len() < ty.params.len().max(ty.results.len()) {
        return Err(Failure::Error("the value buffer is too small".into()));
    }
    // wasmc makes no C wrapper for such exports; a raw word is no valid reference.
    if ty.params.iter().any(|t| t.is_ref()) {
        return Err(Failure::Error(format!(
            "export {index} takes references, which the C API cannot pass"
        )));
    }
    // Normalize the parameters as `Val` stores them (an i32 slot's upper bytes are
    // whatever C left there).
    for (slot, &t) in values.iter_mut().zip(&ty.params) {
        *slot = Val::from_raw(t, *slot).to_raw();
    }
    // Generated code checks the stack limit of the thread this context points at:
    // point it at this thread's (the instance may have been created on another).
    let vmctx = handle.instance().vmctx();
    // SAFETY: the header word `RUNTIME` of a live context; no wasm code of this
    // instance runs on another thread (owner check above).
    unsafe {
        *(vmctx.add(VMContextLayout::RUNTIME as usize) as *mut *const crate::abi::VMRuntimeState) =
            traps::runtime_state();
    }
    // SAFETY: the buffer is large enough and its parameter slots were just
    // normalized for their types, which are numeric only (wasmc refuses libraries
    // whose exports take references or v128).
    match unsafe { func.call_raw(values) } {
        Ok(()) => Ok(()),
        Err(trap) => {
            if let Some(status) = this.wasi().and_then(WasiCtx::take_exit_status) {
                return Err(Failure::Exit(status));
            }
            let mut trap = trap;
            if let Some(message) = this.host_trap.borrow_mut().take() {
                trap.message = Some(format!("host import trapped: {message}"));
            }
            Err(Failure::Trap(trap_message(&trap).trim_end().to_string()))
        }
    }
}

/// `wasm trap: <message>` and the wasm backtrace, as executables print it.
fn trap_message(trap: &TrapInfo) -> String {
    trap.report()
}
