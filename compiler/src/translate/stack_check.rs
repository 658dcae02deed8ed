//! Which functions go without the stack-limit check in their prologue.
//!
//! Every function's prologue compares the stack pointer with
//! `VMRuntimeState::stack_limit` (two dependent loads, a compare and a branch) so
//! that unbounded recursion traps before it runs off the stack. A *leaf* function,
//! whose IR calls nothing (no wasm call, host call or builtin), cannot recurse: it
//! uses its own frame and returns. Cranelift already leaves the check out of leaves
//! with no frame at all; this drops it from leaves whose frame (saved registers and
//! spill slots) is at most [`LEAF_FRAME_MAX`], which is most small hot helpers
//! (allocator fast paths, object accessors).
//!
//! Why that is safe on every stack wasm runs on: the runtime sets the limit a host
//! reserve above the stack's lowest address (`traps::HOST_RESERVE`, 1 MiB, or half
//! of a smaller thread stack; main thread's own stack, wasm threads, wasi-threads,
//! the embedding API on the caller's thread, the spec harness). A leaf's caller
//! passed its own check, so the leaf's frame begins above the limit and ends at
//! most `LEAF_FRAME_MAX` below it: inside the reserve, never past it (a reserve of
//! less than one page would need a stack of under 8 KiB, where host calls could not
//! run either). Even then, a frame no larger than the smallest page cannot step over
//! the guard page below a stack, and a fault there is reported as the stack-overflow
//! trap (`traps::is_stack_guard`).
//!
//! The frame size is known only after register allocation, so a leaf is compiled
//! without the check first and compiled again with it in the rare case its frame
//! turns out larger. The compiler's unit tests check which functions keep the
//! check (`stack_check_only_where_a_frame_can_pass_the_reserve`);
//! `runtime-lib/tests/codegen_invariants.rs` runs recursion through a spilling leaf
//! into the stack-overflow trap.

use cranelift_codegen::ir::{self, GlobalValue};

/// The largest frame (bytes below the frame pointer) a leaf may have without the
/// check: the smallest page size of the targets (4 KiB).
pub(crate) const LEAF_FRAME_MAX: u32 = 4096;

/// Whether `func` calls nothing: no call instruction of any kind.
fn is_leaf(func: &ir::Function) -> bool {
    func.layout
        .blocks()
        .flat_map(|block| func.layout.block_insts(block))
        .all(|inst| !func.dfg.insts[inst].opcode().is_call())
}

/// Before compiling: takes the stack limit off `func` when it is a leaf, returning
/// what to put back if the frame turns out too large ([`needs_check_after_all`]).
pub(crate) fn drop_for_leaf(func: &mut ir::Function) -> Option<GlobalValue> {
    if is_leaf(func) {
        func.stack_limit.take()
    } else {
        None
    }
}

/// After compiling a leaf without the check: whether its frame is too large to go
/// without it.
pub(crate) fn needs_check_after_all(
    buffer: &cranelift_codegen::MachBufferFinalized<cranelift_codegen::Final>,
) -> bool {
    // No frame layout recorded: assume the worst.
    buffer
        .frame_layout()
        .is_none_or(|layout| layout.frame_to_fp_offset > LEAF_FRAME_MAX)
}
