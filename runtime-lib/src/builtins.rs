//! The builtins generated code calls through `VMContext::builtins` (see
//! `abi::Builtins` for the contract of each entry).
//!
//! Each is an `extern "C"` function whose first argument is the calling instance's
//! context. Indices come from validated wasm, but are still looked up with checks:
//! a bad index reports failure (a trap) instead of panicking across the C boundary.
//! Ranges are checked as a whole with overflow-safe arithmetic before anything is
//! written, as the bulk-memory proposal requires; a dropped segment behaves as an
//! empty one.

use std::sync::OnceLock;

use crate::abi::Builtins;
use crate::instance::Instance;

/// Status returned to generated code: success, or trap with the builtin's code.
const OK: u32 = 0;
const TRAP: u32 = 1;

/// The one builtins table every `VMContext` points at.
pub fn builtins() -> &'static Builtins {
    static BUILTINS: OnceLock<Builtins> = OnceLock::new();
    BUILTINS.get_or_init(|| Builtins {
        memory_grow: memory_grow as *const () as usize,
        memory_fill: memory_fill as *const () as usize,
        memory_copy: memory_copy as *const () as usize,
        memory_init: memory_init as *const () as usize,
        data_drop: data_drop as *const () as usize,
        table_grow: table_grow as *const () as usize,
        table_fill: table_fill as *const () as usize,
        table_copy: table_copy as *const () as usize,
        table_init: table_init as *const () as usize,
        elem_drop: elem_drop as *const () as usize,
        raise_trap: crate::traps::raise_trap as *const () as usize,
        exn_new: crate::exceptions::exn_new as *const () as usize,
        throw_ref: crate::traps::throw_ref as *const () as usize,
        memory_atomic_wait32: crate::threads::parking::memory_atomic_wait32 as *const () as usize,
        memory_atomic_wait64: crate::threads::parking::memory_atomic_wait64 as *const () as usize,
        memory_atomic_notify: crate::threads::parking::memory_atomic_notify as *const () as usize,
        gc_alloc: crate::gc::builtins::gc_alloc as *const () as usize,
        array_new_data: crate::gc::builtins::array_new_data as *const () as usize,
        array_new_elem: crate::gc::builtins::array_new_elem as *const () as usize,
        array_fill: crate::gc::builtins::array_fill as *const () as usize,
        array_copy: crate::gc::builtins::array_copy as *const () as usize,
        array_init_data: crate::gc::builtins::array_init_data as *const () as usize,
        array_init_elem: crate::gc::builtins::array_init_elem as *const () as usize,
        is_subtype: crate::gc::types::is_subtype_builtin as *const () as usize,
        // Generated code checks the ranges of `memory.copy`/`memory.fill` itself and
        // calls the C library directly (no lookup of the memory by index, no Rust
        // frame): see `compiler/src/translate/bulk_memory.rs`.
        memmove: libc::memmove as *const () as usize,
        memset: libc::memset as *const () as usize,
    })
}

/// The instance owning `vmctx`.
///
/// # Safety
/// `vmctx` must be a live instance's context (generated code passes its own).
unsafe fn instance<'a>(vmctx: *mut u8) -> &'a Instance {
    // SAFETY: word 0 of every VMContext is its Instance (abi::layout), which lives
    // at least as long as code using the context runs.
    unsafe { &**(vmctx as *const *const Instance) }
}

extern "C" fn memory_grow(vmctx: *mut u8, mem: u32, delta: u64) -> u64 {
    // SAFETY: called by generated code with its own context.
    let instance = unsafe { instance(vmctx) };
    instance
        .memory(mem)
        .and_then(|m| m.grow(delta))
        .unwrap_or(u64::MAX)
}

extern "C" fn memory_fill(vmctx: *mut u8, mem: u32, dst: u64, val: u32, len: u64) -> u32 {
    // SAFETY: called by generated code with its own context.
    let instance = unsafe { instance(vmctx) };
    let Some(p) = instance.memory(mem).and_then(|m| m.checked_range(dst, len)) else {
        return TRAP;
    };
    // SAFETY: the whole range is accessible memory.
    unsafe { std::ptr::write_bytes(p, val as u8, len as usize) };
    OK
}

extern "C" fn memory_copy(
    vmctx: *mut u8,
    dst_mem: u32,
    src_mem: u32,
    dst: u64,
    src: u64,
    len: u64,
) -> u32 {
    // SAFETY: called by generated code with its own context.
    let instance = unsafe { instance(vmctx) };
    let d = instance
        .memory(dst_mem)
        .and_then(|m| m.checked_range(dst, len));
    let s = instance
        .memory(src_mem)
        .and_then(|m| m.checked_range(src, len));
    let (Some(d), Some(s)) = (d, s) else {
        return TRAP;
    };
    // SAFETY: both ranges are accessible; `copy` is memmove (ranges may overlap).
    unsafe { std::ptr::copy(s, d, len as usize) };
    OK
}

extern "C" fn memory_init(
    vmctx: *mut u8,
    mem: u32,
    data: u32,
    dst: u64,
    src: u32,
    len: u32,
) -> u32 {
    // SAFETY: called by generated code with its own context.
    let instance = unsafe { instance(vmctx) };
    let Some(bytes) = instance.data_segment(data) else {
        return TRAP;
    };
    let Some(bytes) = (src as usize)
        .checked_add(len as usize)
        .and_then(|end| bytes.get(src as usize..end))
    else {
        return TRAP;
    };
    let Some(d) = instance
        .memory(mem)
        .and_then(|m| m.checked_range(dst, len as u64))
    else {
        return TRAP;
    };
    // SAFETY: the destination is accessible memory; the segment is module metadata.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), d, bytes.len()) };
    OK
}

extern "C" fn data_drop(vmctx: *mut u8, data: u32) {
    // SAFETY: called by generated code with its own context.
    unsafe { instance(vmctx) }.drop_data_segment(data);
}

extern "C" fn table_grow(vmctx: *mut u8, table: u32, delta: u64, init: usize) -> u64 {
    // SAFETY: called by generated code with its own context.
    let instance = unsafe { instance(vmctx) };
    instance
        .table(table)
        .and_then(|t| t.grow(delta, init))
        .unwrap_or(u64::MAX)
}

extern "C" fn table_fill(vmctx: *mut u8, table: u32, dst: u64, val: usize, len: u64) -> u32 {
    // SAFETY: called by generated code with its own context.
    let instance = unsafe { instance(vmctx) };
    match instance.table(table) {
        Some(t) if t.fill(dst, val, len) => OK,
        _ => TRAP,
    }
}

extern "C" fn table_copy(
    vmctx: *mut u8,
    dst_table: u32,
    src_table: u32,
    dst: u64,
    src: u64,
    len: u64,
) -> u32 {
    // SAFETY: called by generated code with its own context.
    let instance = unsafe { instance(vmctx) };
    match (instance.table(dst_table), instance.table(src_table)) {
        (Some(d), Some(s)) if d.copy_from(s, dst, src, len) => OK,
        _ => TRAP,
    }
}

extern "C" fn table_init(
    vmctx: *mut u8,
    table: u32,
    elem: u32,
    dst: u64,
    src: u32,
    len: u32,
) -> u32 {
    // SAFETY: called by generated code with its own context.
    let instance = unsafe { instance(vmctx) };
    let (Some(t), Some(items)) = (instance.table(table), instance.element_segment(elem)) else {
        return TRAP;
    };
    let Some(items) = (src as usize)
        .checked_add(len as usize)
        .and_then(|end| items.get(src as usize..end))
    else {
        return TRAP;
    };
    if t.init(dst, items) { OK } else { TRAP }
}

extern "C" fn elem_drop(vmctx: *mut u8, elem: u32) {
    // SAFETY: called by generated code with its own context.
    unsafe { instance(vmctx) }.drop_element_segment(elem);
}
