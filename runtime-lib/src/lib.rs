//! wasmc's runtime library, linked into every executable wasmc produces (as a static
//! library) and used in-process by `wasmc wast` (as an rlib).
//!
//! Areas, one module each: linear memory (`memory`), tables (`table`), the CPU
//! features compiled code needs (`cpu_features`), trap handling and backtraces
//! (`traps`), running wasm on the main thread with a stack of its own
//! (`own_stack`), timeouts (`interrupt`), the fuel budget (`fuel`),
//! exception objects (`exceptions`; the unwinder is in `traps`), shared memories'
//! wait/notify and wasi-threads (`threads`), builtins called by
//! generated code (`builtins`), the executable's command line (`command_line`),
//! instantiation (`instance`), the view host functions get of their caller (`caller`),
//! WASI preview1 (`wasi`), WASI 0.2 components (`component`: the instantiation
//! plan and the canonical ABI; `wasi_p2`: the host), the executable's entry point
//! (`entry`), and the C API of libraries made with `wasmc --emit lib` (`embed`).
//! See `docs/ARCHITECTURE.md` for the contract with generated code.

pub use wasmc_abi as abi;

pub mod builtins;
pub mod caller;
pub mod command_line;
pub mod component;
pub mod cpu_features;
pub mod embed;
pub mod entry;
pub mod exceptions;
pub mod fuel;
pub mod gc;
pub mod instance;
pub mod interrupt;
pub mod memory;
mod memory_image;
pub mod own_stack;
pub mod table;
pub mod threads;
pub mod traps;
pub mod wasi;
pub mod wasi_p2;
