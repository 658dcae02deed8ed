//! Threads: shared memories, `memory.atomic.wait`/`notify` (`parking`), and
//! wasi-threads (`spawn`).
//!
//! Atomic loads, stores and read-modify-writes are plain machine instructions
//! emitted by the compiler (see `compiler/src/translate/atomics.rs` for the memory
//! model); the runtime only provides waiting and waking, and makes `Memory` safe to
//! share between threads (see `crate::memory`).

pub(crate) mod parking;
pub mod spawn;
