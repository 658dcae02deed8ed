//! Exception objects (what an `exnref` points at) and the `exn_new` builtin.
//!
//! An exception is an `abi::VMException` {tag identity, payload}: one kind of object
//! of the GC heap (`crate::gc`), whose collector frees the exceptions no longer
//! reachable and follows the references in reachable exceptions' payloads. The
//! unwinder that delivers exceptions to handlers is in `traps.rs`.

use crate::abi::{VMException, ValRaw};
use crate::instance::Instance;

pub use crate::gc::live_exceptions;

/// Allocates an exception with tag identity `tag` and payload `values`, of which
/// those at `traced_values` are references. The pointer stays valid while the
/// exception is reachable from wasm.
pub fn new_exception(tag: usize, values: &[ValRaw], traced_values: &[u32]) -> *const VMException {
    crate::gc::new_exception(tag, values, traced_values)
}

/// The payload of a live exception.
///
/// # Safety
/// `exn` must come from [`new_exception`] on this thread and still be reachable.
pub unsafe fn payload<'a>(exn: *const VMException) -> &'a [ValRaw] {
    // SAFETY: see the contract; a reachable exception is neither freed nor moved.
    unsafe { std::slice::from_raw_parts((*exn).values, (*exn).num_values) }
}

/// Builtin `exn_new(vmctx, tag, values) -> *const VMException` (see
/// `abi::Builtins::exn_new`). Entered from generated code, it forwards the caller's
/// frame pointer, return address and stack pointer at the call to [`exn_new_impl`],
/// which needs them to find the roots in the wasm frames.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn exn_new(
    _vmctx: *mut u8,
    _tag: u32,
    _values: *const ValRaw,
) -> usize {
    core::arch::naked_asm!(
        "mov rcx, rbp",
        "mov r8, [rsp]",
        "lea r9, [rsp + 8]",
        "jmp {imp}",
        imp = sym exn_new_impl,
    )
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn exn_new(
    _vmctx: *mut u8,
    _tag: u32,
    _values: *const ValRaw,
) -> usize {
    core::arch::naked_asm!(
        "mov x3, x29",
        "mov x4, x30",
        "mov x5, sp",
        "b {imp}",
        imp = sym exn_new_impl,
    )
}

extern "C" fn exn_new_impl(
    vmctx: *mut u8,
    tag: u32,
    values: *const ValRaw,
    fp: usize,
    ret: usize,
    sp: usize,
) -> usize {
    // SAFETY: word 0 of every VMContext is its Instance (abi::layout); generated
    // code passes its own live context.
    let instance = unsafe { &**(vmctx as *const *const Instance) };
    let Some((identity, params)) = instance.tag_identity_and_params(tag) else {
        // Validated code only names existing tags.
        crate::traps::raise_host_trap(crate::abi::Trap::HostError)
    };
    let values: &[ValRaw] = if params.is_empty() {
        &[]
    } else {
        // SAFETY: generated code passes a stack array of one 16-byte slot per
        // parameter of the tag's type.
        unsafe { std::slice::from_raw_parts(values, params.len()) }
    };
    let traced_values: Vec<u32> = params
        .iter()
        .enumerate()
        .filter(|(_, ty)| ty.is_traced())
        .map(|(i, _)| i as u32)
        .collect();
    let caller = crate::gc::CallerFrame { fp, ret, sp };
    crate::gc::new_exception_collecting(caller, identity, values, &traced_values) as usize
}
