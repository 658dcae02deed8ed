//! The contract between a library made with `wasmc --emit lib` and the runtime inside
//! it: the C wrappers the CLI generates (one per export and per host import, named
//! after the library's prefix) call the runtime's `wasmc_embed_*` entry points
//! (`runtime-lib/src/embed.rs`) with the values below. Both sides compile against
//! this file; the C side gets the numbers from the generator.
//!
//! Entry points (all `extern "C"`, hidden in the finished library):
//!
//! ```text
//! wasmc_embed_config_new() -> *mut Config
//! wasmc_embed_config_dir(cfg, host: *const c_char, guest: *const c_char)
//! wasmc_embed_config_env(cfg, name: *const c_char, value: *const c_char)
//! wasmc_embed_config_arg(cfg, arg: *const c_char)
//! wasmc_embed_config_max_memory(cfg, bytes: u64)
//! wasmc_embed_config_user_data(cfg, data: *mut c_void)
//! wasmc_embed_config_free(cfg)
//! wasmc_embed_instantiate(descriptor: *const ModuleDescriptor, cfg,
//!                         host_imports: *const *const u8, num_host_imports: usize,
//!                         argv0: *const c_char,            (when no argument is configured)
//!                         error: *mut *mut c_char) -> *mut Instance
//! wasmc_embed_instance_free(instance)
//! wasmc_embed_free_error(error: *mut c_char)
//! wasmc_embed_call(instance, export_index: u32, values: *mut ValRaw,
//!                  num_values: usize) -> c_int         (a STATUS_* value)
//! wasmc_embed_run(instance, exit_code: *mut c_int) -> c_int
//! wasmc_embed_memory(instance, length: *mut usize) -> *mut u8
//! wasmc_embed_last_error(instance) -> *const c_char
//! wasmc_embed_user_data(instance) -> *mut c_void
//! wasmc_embed_current() -> *mut Instance               (inside a host import)
//! wasmc_embed_trap(instance, message: *const c_char)   (inside a host import)
//! ```
//!
//! `host_imports` has one entry per function import of the module, in import order:
//! null for a WASI import (the runtime provides it), otherwise the address of an
//! `extern "C" fn(vmctx, params...) -> result` (see `runtime::instance::HostFunc`).
//! `export_index` is the position of a function export in `ModuleInfo::exports`;
//! `values` is the array-call buffer of that function's type (parameters in,
//! results out), `num_values` its length (at least max(params, results)).

/// The call finished; results are in place.
pub const STATUS_OK: i32 = 0;
/// Wasm trapped (or a host import trapped the call); the instance's last error holds
/// `wasm trap: <message>` and the wasm backtrace.
pub const STATUS_TRAP: i32 = 1;
/// The guest called WASI `proc_exit` during an export call (`*_run` reports this as
/// success with the exit code instead).
pub const STATUS_EXIT: i32 = 2;
/// The call could not be made (null or busy instance, bad arguments); nothing ran.
pub const STATUS_ERROR: i32 = 3;
