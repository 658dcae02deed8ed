//! Exception objects (what an `exnref` points at), the `exn_new` builtin, and the
//! collector that frees exceptions no longer reachable.
//!
//! An exception is an `abi::VMException` {tag identity, payload} allocated on the
//! heap and recorded in a per-thread arena. Exception references can be stored
//! anywhere wasm keeps references: locals and operands of live frames, globals and
//! tables (of any instance on the thread), and other exceptions' payloads. A program
//! that throws in a loop would grow without bound if nothing were ever freed, so
//! `exn_new` runs a mark-sweep collection when the arena has doubled since the last
//! one (amortised O(1) per throw):
//! * roots: the wasm frames' live `exnref` slots, found through the stack maps the
//!   compiler records at every call where an exception reference is live
//!   ([`crate::traps::visit_stack_roots`]); every global and table whose type is
//!   `exnref` ([`track_global`], [`track_table`]); the payload being allocated;
//! * marking follows the `exnref` values of reachable exceptions' payloads;
//! * sweeping drops every exception not marked.
//!
//! When the roots cannot all be seen (wasm entered again from the host while an
//! outer activation is running), nothing is freed: keeping too much is safe,
//! freeing a live exception is not. Likewise for the rest of the process once an
//! embedded instance has been called on a thread other than its own
//! ([`forbid_collection`]): its exceptions may then be in several arenas. The non-moving design keeps addresses stable;
//! generated code holds raw pointers. Instances are `!Send`, so they never outlive
//! their thread's arena. The unwinder that delivers exceptions to handlers is in
//! `traps.rs`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Weak;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::abi::{VMException, ValRaw};
use crate::instance::{Global, Instance};
use crate::table::Table;

/// One allocation: the header generated code reads, and the payload it points at.
#[repr(C)]
struct Exception {
    header: VMException,
    values: Box<[ValRaw]>,
    /// Indices of the payload values that are exception references.
    exnref_values: Box<[u32]>,
}

/// Set once exceptions may be shared between threads (an embedded instance called
/// on a thread other than the one that created it, see `embed`): each thread's
/// collector sees only its own frames, so from then on nothing is freed, not even
/// when a thread exits.
static COLLECTION_FORBIDDEN: AtomicBool = AtomicBool::new(false);

/// Stops every thread's collector for the rest of the process (see
/// [`COLLECTION_FORBIDDEN`]).
pub(crate) fn forbid_collection() {
    COLLECTION_FORBIDDEN.store(true, Ordering::SeqCst);
}

/// Collections start once this many exceptions exist.
const MIN_COLLECTION_THRESHOLD: usize = 1024;

struct Arena {
    // Boxed: generated code holds pointers to the headers, which must not move when
    // the vector grows.
    #[allow(clippy::vec_box)]
    live: Vec<Box<Exception>>,
    /// Collect when `live` reaches this length.
    threshold: usize,
    /// Globals and tables of type `exnref` created on this thread.
    globals: Vec<Weak<Global>>,
    tables: Vec<Weak<Table>>,
}

impl Drop for Arena {
    fn drop(&mut self) {
        if COLLECTION_FORBIDDEN.load(Ordering::SeqCst) {
            // Another thread's instance may still point at these.
            std::mem::forget(std::mem::take(&mut self.live));
        }
    }
}

thread_local! {
    static ARENA: RefCell<Arena> = const {
        RefCell::new(Arena {
            live: Vec::new(),
            threshold: MIN_COLLECTION_THRESHOLD,
            globals: Vec::new(),
            tables: Vec::new(),
        })
    };
}

/// Makes the exception held by `global` (if its type is `exnref`) a root.
pub(crate) fn track_global(global: Weak<Global>) {
    ARENA.with_borrow_mut(|arena| arena.globals.push(global));
}

/// Makes the exceptions held by `table` (if its type is `exnref`) roots.
pub(crate) fn track_table(table: Weak<Table>) {
    ARENA.with_borrow_mut(|arena| arena.tables.push(table));
}

/// Allocates an exception with tag identity `tag` and payload `values`, of which
/// those at `exnref_values` are exception references. The pointer stays valid while
/// the exception is reachable from wasm (see the module docs).
pub fn new_exception(tag: usize, values: &[ValRaw], exnref_values: &[u32]) -> *const VMException {
    let values: Box<[ValRaw]> = values.into();
    let exn = Box::new(Exception {
        header: VMException {
            tag,
            values: values.as_ptr(),
            num_values: values.len(),
        },
        values,
        exnref_values: exnref_values.into(),
    });
    // `header` is the first field of a `repr(C)` struct: the box's address.
    let ptr = &exn.header as *const VMException;
    ARENA.with_borrow_mut(|arena| arena.live.push(exn));
    ptr
}

/// Number of exceptions currently allocated on this thread (for tests).
pub fn live_exceptions() -> usize {
    ARENA.with_borrow(|arena| arena.live.len())
}

/// The payload of a live exception.
///
/// # Safety
/// `exn` must come from [`new_exception`] on this thread and still be reachable.
pub unsafe fn payload<'a>(exn: *const VMException) -> &'a [ValRaw] {
    // SAFETY: see the contract; a reachable exception is neither freed nor moved.
    unsafe { std::slice::from_raw_parts((*exn).values, (*exn).num_values) }
}

/// Mark-sweep over this thread's exceptions. `roots` holds every exception reference
/// outside the arena (null words are ignored, and so is any word that is not an
/// exception of this arena: only exceptions are ever freed).
fn collect(arena: &mut Arena, roots: Vec<usize>) {
    let index: HashMap<usize, usize> = arena
        .live
        .iter()
        .enumerate()
        .map(|(i, e)| (&e.header as *const VMException as usize, i))
        .collect();
    let mut marked = vec![false; arena.live.len()];
    let mut work = roots;
    while let Some(addr) = work.pop() {
        let Some(&i) = index.get(&addr) else { continue };
        if std::mem::replace(&mut marked[i], true) {
            continue;
        }
        let exn = &arena.live[i];
        for &v in exn.exnref_values.iter() {
            work.push(exn.values[v as usize] as usize);
        }
    }
    let mut i = 0;
    arena.live.retain(|_| {
        let keep = marked[i];
        i += 1;
        keep
    });
    arena.threshold = (arena.live.len() * 2).max(MIN_COLLECTION_THRESHOLD);
}

/// The roots held by globals and tables, dropping the entries of freed ones.
fn global_and_table_roots(arena: &mut Arena, roots: &mut Vec<usize>) {
    arena.globals.retain(|g| match g.upgrade() {
        Some(global) => {
            roots.push(global.raw_word());
            true
        }
        None => false,
    });
    arena.tables.retain(|t| match t.upgrade() {
        Some(table) => {
            roots.extend(table.elements());
            true
        }
        None => false,
    });
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
    let exnref_values: Vec<u32> = params
        .iter()
        .enumerate()
        .filter(|(_, ty)| ty.is_exnref())
        .map(|(i, _)| i as u32)
        .collect();
    if ARENA.with_borrow(|arena| arena.live.len() >= arena.threshold)
        && !COLLECTION_FORBIDDEN.load(Ordering::SeqCst)
    {
        let mut roots: Vec<usize> = exnref_values
            .iter()
            .map(|&i| values[i as usize] as usize)
            .collect();
        let complete = crate::traps::visit_stack_roots(fp, ret, sp, |slot| {
            // SAFETY: `visit_stack_roots` only passes addresses of 8-byte-aligned
            // slots inside this thread's stack.
            roots.push(unsafe { slot.read() })
        });
        if complete {
            ARENA.with_borrow_mut(|arena| {
                global_and_table_roots(arena, &mut roots);
                collect(arena, roots);
            });
        } else {
            // Try again after as many allocations as there are now.
            ARENA.with_borrow_mut(|arena| arena.threshold = arena.live.len() * 2);
        }
    }
    new_exception(identity, values, &exnref_values) as usize
}
