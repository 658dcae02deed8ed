//! Shared by the compiler's fuzz smoke test, the cargo-fuzz targets (`fuzz/`) and the
//! runtime's execution fuzz test: how to turn random bytes into a valid module using
//! exactly the WebAssembly features wasmc compiles.

// Each test crate that includes this file uses only part of it.
#![allow(dead_code)]

use arbitrary::{Result, Unstructured};
use wasm_smith::{Config, Module};

/// A wasm-smith configuration drawn from `u` (so sizes and instruction mixes vary),
/// restricted to what wasmc supports: WebAssembly 2.0 + SIMD + relaxed SIMD + tail
/// calls + extended const + multi-memory + memory64 + wide arithmetic + custom page
/// sizes. Proposals wasmc reports as unsupported (GC, ...) are switched off so every
/// generated module must compile; so are exceptions (a module that throws out of
/// every export would exercise little else). Threads are off here too (a generated
/// `memory.atomic.wait` on a shared memory may block forever when executed); the
/// compile-only [`module`] switches them on.
pub fn config(u: &mut Unstructured<'_>) -> Result<Config> {
    let mut c: Config = u.arbitrary()?;
    c.simd_enabled = true;
    c.relaxed_simd_enabled = u.arbitrary()?;
    c.tail_call_enabled = true;
    c.extended_const_enabled = true;
    c.memory64_enabled = true;
    c.bulk_memory_enabled = true;
    c.reference_types_enabled = true;
    c.multi_value_enabled = true;
    c.saturating_float_to_int_enabled = true;
    c.sign_extension_ops_enabled = true;
    c.gc_enabled = false;
    c.exceptions_enabled = false;
    c.threads_enabled = false;
    c.shared_everything_threads_enabled = false;
    c.wide_arithmetic_enabled = true;
    c.custom_page_sizes_enabled = true;
    c.custom_descriptors_enabled = false;
    c.compact_imports_enabled = false;
    c.acquire_release_atomics_enabled = false;
    c.multibyte_array_access_enabled = false;
    c.max_memories = c.max_memories.min(4);
    c.max_tables = c.max_tables.min(4);
    // Keep single modules small: the fuzz loop gains more from many modules than
    // from a few huge ones.
    c.min_funcs = u.int_in_range(1..=10)?;
    c.max_funcs = c.max_funcs.clamp(c.min_funcs, 40);
    c.max_instructions = c.max_instructions.clamp(50, 400);
    if u.ratio(1, 3)? {
        // A random subset of instruction kinds starves whole areas (memory, SIMD)
        // too often; a third of the modules may use everything.
        c.allowed_instructions = wasm_smith::InstructionKinds::all();
        c.allow_floats = true;
    }
    c.max_types = c.max_types.min(40);
    c.max_imports = c.max_imports.min(20);
    c.max_exports = c.max_exports.min(40);
    c.max_globals = c.max_globals.min(40);
    c.max_data_segments = c.max_data_segments.min(20);
    c.max_element_segments = c.max_element_segments.min(20);
    c.max_elements = c.max_elements.min(40);
    Ok(c)
}

/// A valid module drawn from `u` with [`config`] plus threads (shared memories and
/// atomics), for the compile-only fuzzers.
pub fn module(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut c = config(u)?;
    c.threads_enabled = true;
    Ok(Module::new(c, u)?.to_bytes())
}

/// Deterministic pseudo-random bytes (splitmix64), the raw material of one module.
pub fn seed_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}
