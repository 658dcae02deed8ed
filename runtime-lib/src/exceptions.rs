//! Exception objects (what an `exnref` points at) and the `exn_new` builtin.
//!
//! An exception is an `abi::VMException` {tag identity, payload} allocated on the
//! heap and recorded in a per-thread arena that frees nothing until the thread
//! exits. Exception references can be stored anywhere wasm keeps references
//! (locals, globals, tables of any instance, other exceptions' payloads) and wasmc
//! has no collector to trace them, so an exception must outlive every reference to
//! it; keeping all of them is the simple, safe choice. The cost is memory: a program
//! that throws in a loop grows by `48 + 16 * payload` bytes per throw. Throwing is
//! rare in the programs wasmc targets (C++ exceptions, the spec tests), and
//! instances are `!Send`, so they never outlive their thread's arena.
//! The unwinder that delivers exceptions to handlers is in `traps.rs`.

use std::cell::RefCell;

use crate::abi::{VMException, ValRaw};
use crate::instance::Instance;

/// One allocation: the header generated code reads, and the payload it points at.
#[repr(C)]
struct Exception {
    header: VMException,
    _values: Box<[ValRaw]>,
}

thread_local! {
    // Boxed: generated code holds pointers to the headers, which must not move when
    // the vector grows.
    #[allow(clippy::vec_box)]
    static ARENA: RefCell<Vec<Box<Exception>>> = const { RefCell::new(Vec::new()) };
}

/// Allocates an exception with tag identity `tag` and payload `values`; the
/// pointer stays valid until the thread exits.
pub fn new_exception(tag: usize, values: &[ValRaw]) -> *const VMException {
    let values: Box<[ValRaw]> = values.into();
    let exn = Box::new(Exception {
        header: VMException {
            tag,
            values: values.as_ptr(),
            num_values: values.len(),
        },
        _values: values,
    });
    // `header` is the first field of a `repr(C)` struct: the box's address.
    let ptr = &exn.header as *const VMException;
    ARENA.with_borrow_mut(|arena| arena.push(exn));
    ptr
}

/// The payload of a live exception.
///
/// # Safety
/// `exn` must come from [`new_exception`] on this thread.
pub unsafe fn payload<'a>(exn: *const VMException) -> &'a [ValRaw] {
    // SAFETY: see the contract; the arena never frees or moves the payload.
    unsafe { std::slice::from_raw_parts((*exn).values, (*exn).num_values) }
}

/// Builtin `exn_new(vmctx, tag, values) -> *const VMException` (see
/// `abi::Builtins::exn_new`).
pub(crate) extern "C" fn exn_new(vmctx: *mut u8, tag: u32, values: *const ValRaw) -> usize {
    // SAFETY: word 0 of every VMContext is its Instance (abi::layout); generated
    // code passes its own live context.
    let instance = unsafe { &**(vmctx as *const *const Instance) };
    let Some((identity, arity)) = instance.tag_identity_and_arity(tag) else {
        // Validated code only names existing tags.
        crate::traps::raise_host_trap(crate::abi::Trap::HostError)
    };
    let values: &[ValRaw] = if arity == 0 {
        &[]
    } else {
        // SAFETY: generated code passes a stack array of one 16-byte slot per
        // parameter of the tag's type.
        unsafe { std::slice::from_raw_parts(values, arity) }
    };
    new_exception(identity, values) as usize
}
