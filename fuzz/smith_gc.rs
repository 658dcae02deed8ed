//! wasm-smith's WebAssembly GC configuration, shared by the `compile_smith_gc`
//! cargo-fuzz target and the execution fuzzer (`runtime-lib/tests/fuzz_exec.rs` with
//! `WASMC_FUZZ_GC=1`, and `fuzz/diff_wasmtime.py --gc` on its records).
//!
//! On top of a configuration from `compiler/tests/support/smith.rs`: the GC proposal
//! (recursive type groups, subtyping, structs, arrays, i31, casts; function
//! references come with it), reference types, and exceptions in half of the modules
//! (so that exception payloads carry GC references). Struct/array and reference
//! instructions are always allowed, whatever subset of instruction kinds was drawn.

use arbitrary::{Result, Unstructured};
use wasm_smith::{Config, InstructionKind, InstructionKinds};

/// Every kind wasm-smith knows, to rebuild a set with two more.
const KINDS: [InstructionKind; 12] = [
    InstructionKind::NumericInt,
    InstructionKind::Numeric,
    InstructionKind::VectorInt,
    InstructionKind::Vector,
    InstructionKind::Reference,
    InstructionKind::Parametric,
    InstructionKind::Variable,
    InstructionKind::Table,
    InstructionKind::MemoryInt,
    InstructionKind::Memory,
    InstructionKind::Control,
    InstructionKind::Aggregate,
];

/// Switches `c` to WebAssembly GC (see the module documentation).
pub fn enable_gc(c: &mut Config, u: &mut Unstructured<'_>) -> Result<()> {
    c.gc_enabled = true;
    c.reference_types_enabled = true;
    c.exceptions_enabled = u.ratio(1, 2)?;
    let mut kinds: Vec<InstructionKind> = KINDS
        .into_iter()
        .filter(|&kind| c.allowed_instructions.contains(kind))
        .collect();
    kinds.extend([InstructionKind::Aggregate, InstructionKind::Reference]);
    c.allowed_instructions = InstructionKinds::new(&kinds);
    // Rec groups and subtype chains take room in the type section; keep single
    // modules small, as smith::config does for everything else.
    c.max_type_size = c.max_type_size.min(200);
    Ok(())
}
