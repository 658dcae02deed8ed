//! WASI preview1 (`wasi_snapshot_preview1`, and the older `wasi_unstable`), with the
//! behaviour of `wasmtime run`.
//!
//! * `ctx`: [`WasiCtx`], the per-program state (arguments, environment, descriptor
//!   table); the executable's options are parsed by `crate::command_line`.
//! * `memory`: [`GuestMemory`], the bounds-checked view of guest memory. Every
//!   guest pointer and length goes through it; a bad one is `EFAULT`.
//! * `calls`: every WASI function as a safe function
//!   `(ctx, memory, wasm args...) -> Result<(), Errno>`.
//! * `host`: the `extern "C"` entry points and [`resolve`].
//! * `types`: errno values, flags and record layouts from the witx definitions.
//!
//! Sandbox: a guest reaches the host filesystem only through the directories
//! preopened with `--dir`/`--mapdir`, each a `cap_std::fs::Dir`; all path
//! operations are cap-std calls relative to one, and cap-std refuses `..` above it,
//! absolute paths and symlinks that lead outside (reported as `EPERM`, as
//! wasmtime does). Absolute symlink targets are refused even inside a preopen.

mod calls;
mod ctx;
mod host;
mod memory;
pub mod types;

#[cfg(test)]
mod tests;

pub use calls::*;
pub(crate) use ctx::Descriptor as CtxDescriptor;
pub use ctx::{ProcExit, WasiCtx, WasiCtxBuilder};
pub use host::resolve;
pub use memory::GuestMemory;
pub use types::{Errno, Filestat, Flavor, WasiResult};
