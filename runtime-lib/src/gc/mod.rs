//! The GC heap: every object the collector manages (GC structs and arrays, and
//! exception objects) and the one non-moving mark-sweep collector that frees them.
//!
//! Objects live outside linear memory, 16-byte aligned, and never move: generated
//! code holds raw pointers. Structs and arrays of up to `abi::gc::MAX_CELL_SIZE`
//! bytes are cells of size-segregated chunks ([`cells`]); larger ones and
//! exceptions are allocations of their own. Each thread that runs
//! wasm has its own heap (instances are `!Send`, so they never outlive it). Roots:
//! * the live GC references of wasm frames, found through the stack maps the compiler
//!   records at every call where one is live ([`crate::traps::visit_stack_roots`]);
//! * every global, table and passive element segment whose type can hold one
//!   ([`track_global`], [`track_table`], [`track_segment`]);
//! * the values being stored into the object being allocated (exception payloads).
//!
//! Marking follows the reference fields of structs and arrays (from the registry's
//! [`types::TypeInfo`], by the canonical type id in each object's header) and the
//! reference values of exception payloads; sweeping frees every unmarked object.
//!
//! *When.* An allocation collects first when the heap has grown by as many bytes as
//! were live after the last collection (at least [`MIN_COLLECTION_BYTES`]): amortised
//! O(1) per allocated byte. When the roots cannot all be seen (wasm entered again
//! from the host while an outer activation runs; constant expressions evaluated at
//! instantiation), nothing is freed: keeping garbage is safe, freeing a live object
//! is not. Likewise for the whole process once an embedded instance was called on a
//! thread other than its own ([`forbid_collection`]).
//!
//! *Limit.* The heap holds at most [`heap_limit`] bytes (default
//! [`DEFAULT_HEAP_LIMIT`]); an allocation that would pass it collects, and if that
//! does not free enough, traps with `Trap::GcHeapOutOfMemory`.
//!
//! The reference encoding (null, i31, host references, object pointers) and the
//! object layout are `abi::gc`'s.

pub(crate) mod builtins;
mod cells;
pub mod types;

use std::alloc::Layout;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Weak;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::abi::gc::{
    ARRAY_LENGTH, GC_HEADER_SIZE, GC_OBJECT_ALIGN, KIND_ARRAY, KIND_STRUCT, MARK_UNMARKED,
    OBJECT_KIND, OBJECT_MARK, OBJECT_TYPE_ID, REF_TAG_MASK,
};
use crate::abi::{CompositeType, Trap, VMException, ValRaw};
use crate::instance::Global;
use crate::table::Table;

/// Mark words of a struct or array (`abi::gc::OBJECT_MARK`): unmarked (what
/// generated code writes into a new object), marked. Both have the top bit set,
/// which the same bytes of an exception never have.
const MARK_WHITE: u32 = MARK_UNMARKED;
const MARK_BLACK: u32 = MARK_UNMARKED + 1;

/// Collections start once this many bytes are allocated. Each collection walks the
/// stack and sweeps every chunk, so with a small live set a low threshold means
/// many collections for little memory (256 KiB cost binary-trees a third of its
/// time in collections).
const MIN_COLLECTION_BYTES: usize = 4 << 20;

/// Default bound of a thread's GC heap (`--max-gc-heap`).
pub const DEFAULT_HEAP_LIMIT: usize = crate::abi::policy::DEFAULT_GC_HEAP as usize;

static HEAP_LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_HEAP_LIMIT);

/// Sets the bound of every thread's GC heap (bytes of live objects).
pub fn set_heap_limit(bytes: usize) {
    HEAP_LIMIT.store(bytes, Ordering::Relaxed);
}

/// The bound of every thread's GC heap.
pub fn heap_limit() -> usize {
    HEAP_LIMIT.load(Ordering::Relaxed)
}

/// An exception: the header generated code reads, and the payload it points at.
#[repr(C)]
pub(crate) struct Exception {
    header: VMException,
    values: Box<[ValRaw]>,
    /// Indices of the payload values that are traced references.
    traced_values: Box<[u32]>,
}

/// A struct or array: `size` bytes at `ptr`, header first.
struct DataObject {
    ptr: *mut u8,
    size: usize,
}

impl Drop for DataObject {
    fn drop(&mut self) {
        // In debug builds, poison the object so that a missed root fails loudly (a
        // garbage type id, wild pointers) instead of reading stale data.
        #[cfg(debug_assertions)]
        // SAFETY: the object's bytes; nothing reachable points at it any more.
        unsafe {
            std::ptr::write_bytes(self.ptr, 0xAB, self.size)
        };
        // SAFETY: allocated in `alloc_data` with this size and alignment.
        unsafe {
            std::alloc::dealloc(
                self.ptr,
                Layout::from_size_align_unchecked(self.size, GC_OBJECT_ALIGN),
            )
        };
    }
}

enum Object {
    Exception(Box<Exception>),
    Data(DataObject),
}

impl Object {
    fn address(&self) -> usize {
        match self {
            Object::Exception(e) => &e.header as *const VMException as usize,
            Object::Data(d) => d.ptr as usize,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Object::Exception(e) => std::mem::size_of::<Exception>() + 16 * e.values.len(),
            Object::Data(d) => d.size,
        }
    }
}

/// Set once objects may be shared between threads (see [`forbid_collection`]).
static COLLECTION_FORBIDDEN: AtomicBool = AtomicBool::new(false);

/// Stops every thread's collector for the rest of the process: an embedded
/// instance was called on a thread other than the one that created it, and each
/// thread's collector sees only its own frames.
pub(crate) fn forbid_collection() {
    COLLECTION_FORBIDDEN.store(true, Ordering::SeqCst);
}

struct Heap {
    /// Exceptions and large structs and arrays.
    objects: Vec<Object>,
    /// Bytes held by `objects`.
    bytes: usize,
    /// Small structs and arrays.
    cells: cells::Cells,
    /// Collect when `bytes` reaches this.
    collect_at: usize,
    exceptions: usize,
    globals: Vec<Weak<Global>>,
    tables: Vec<Weak<Table>>,
    segments: Vec<Weak<[usize]>>,
}

impl Heap {
    /// Bytes of every object.
    fn total_bytes(&self) -> usize {
        self.bytes + self.cells.bytes
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        if COLLECTION_FORBIDDEN.load(Ordering::SeqCst) {
            // Another thread's instance may still point at these.
            std::mem::forget(std::mem::take(&mut self.objects));
        } else {
            self.cells.release();
        }
    }
}

thread_local! {
    static HEAP: RefCell<Heap> = const {
        RefCell::new(Heap {
            objects: Vec::new(),
            bytes: 0,
            cells: cells::Cells::new(),
            collect_at: MIN_COLLECTION_BYTES,
            exceptions: 0,
            globals: Vec::new(),
            tables: Vec::new(),
            segments: Vec::new(),
        })
    };
}

/// Makes the references held by `global` roots.
pub(crate) fn track_global(global: Weak<Global>) {
    HEAP.with_borrow_mut(|heap| heap.globals.push(global));
}

/// Makes the references held by `table` roots.
pub(crate) fn track_table(table: Weak<Table>) {
    HEAP.with_borrow_mut(|heap| heap.tables.push(table));
}

/// Makes the references held by a passive element segment roots.
pub(crate) fn track_segment(items: Weak<[usize]>) {
    HEAP.with_borrow_mut(|heap| heap.segments.push(items));
}

/// Number of exceptions currently allocated on this thread (for tests).
pub fn live_exceptions() -> usize {
    HEAP.with_borrow(|heap| heap.exceptions)
}

/// Number of GC objects (structs, arrays, exceptions) and their bytes currently
/// allocated on this thread (for tests).
pub fn live_objects() -> (usize, usize) {
    HEAP.with_borrow(|heap| {
        let (cells, cell_bytes) = heap.cells.allocated();
        (heap.objects.len() + cells, heap.bytes + cell_bytes)
    })
}

/// Where generated code called an allocating builtin from: what the collector
/// needs to find the roots in the wasm frames. `None` outside wasm (instantiation),
/// where no collection happens.
#[derive(Clone, Copy)]
pub(crate) struct CallerFrame {
    pub fp: usize,
    pub ret: usize,
    pub sp: usize,
}

/// Collects if the heap has grown enough (or `need` more bytes would pass the
/// limit), with `extra_roots` (values about to be stored in a new object) alive.
fn maybe_collect(caller: Option<CallerFrame>, need: usize, extra_roots: &[usize]) {
    let (due, over) = HEAP.with_borrow(|heap| {
        (
            heap.total_bytes() >= heap.collect_at,
            heap.total_bytes().saturating_add(need) > heap_limit(),
        )
    });
    if !(due || over) || COLLECTION_FORBIDDEN.load(Ordering::SeqCst) {
        return;
    }
    let Some(caller) = caller else { return };
    let mut roots: Vec<usize> = extra_roots.to_vec();
    let complete = crate::traps::visit_stack_roots(caller.fp, caller.ret, caller.sp, |slot| {
        // SAFETY: `visit_stack_roots` only passes addresses of 8-byte-aligned
        // slots inside this thread's stack.
        roots.push(unsafe { slot.read() })
    });
    HEAP.with_borrow_mut(|heap| {
        if complete {
            heap_roots(heap, &mut roots);
            collect(heap, roots);
        } else {
            // Try again after as much growth as there is now.
            heap.collect_at = heap
                .total_bytes()
                .saturating_mul(2)
                .max(MIN_COLLECTION_BYTES);
        }
    });
}

/// The roots held by globals, tables and segments, dropping the entries of freed ones.
fn heap_roots(heap: &mut Heap, roots: &mut Vec<usize>) {
    heap.globals.retain(|g| match g.upgrade() {
        Some(global) => {
            roots.push(global.raw_word());
            true
        }
        None => false,
    });
    heap.tables.retain(|t| match t.upgrade() {
        Some(table) => {
            roots.extend(table.elements());
            true
        }
        None => false,
    });
    heap.segments.retain(|s| match s.upgrade() {
        Some(items) => {
            roots.extend(items.iter().copied());
            true
        }
        None => false,
    });
}

/// Mark-sweep. `roots` holds every reference outside the heap; words that are not
/// objects of this heap (null, i31, host references, function references) are
/// ignored.
fn collect(heap: &mut Heap, roots: Vec<usize>) {
    // Exceptions are found through an index (there are few); structs and arrays
    // through their mark word, which also marks them: no per-collection table of
    // every object, whose random accesses dominated collections of large heaps.
    let exceptions: HashMap<usize, usize> = heap
        .objects
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, Object::Exception(_)))
        .map(|(i, o)| (o.address(), i))
        .collect();
    let mut exception_marked = vec![false; heap.objects.len()];
    let mut work = roots;
    {
        while let Some(addr) = work.pop() {
            if addr == 0 || addr & REF_TAG_MASK as usize != 0 {
                continue;
            }
            // SAFETY: a traced slot holds null, an i31, a host reference (both
            // excluded above), or a live object of this heap: a struct or array
            // (header of 16 bytes) or an exception (a 24-byte `VMException`, whose
            // bytes 12..16, the high half of a user-space pointer, never equal a
            // mark value: those have the top bit set).
            let mark = unsafe { (addr as *mut u8).add(OBJECT_MARK as usize).cast::<u32>() };
            match unsafe { mark.read() } {
                MARK_WHITE => {
                    // SAFETY: a live struct or array (see above).
                    unsafe { mark.write(MARK_BLACK) };
                    trace_data(addr as *mut u8, &mut work);
                }
                MARK_BLACK => {}
                _ => {
                    let Some(&i) = exceptions.get(&addr) else {
                        continue;
                    };
                    if std::mem::replace(&mut exception_marked[i], true) {
                        continue;
                    }
                    if let Object::Exception(exn) = &heap.objects[i] {
                        for &v in exn.traced_values.iter() {
                            work.push(exn.values[v as usize] as usize);
                        }
                    }
                }
            }
        }
    }
    let mut i = 0;
    let mut bytes = 0;
    let mut live_exceptions = 0;
    heap.objects.retain(|o| {
        let keep = match o {
            Object::Exception(_) => exception_marked[i],
            Object::Data(d) => {
                // SAFETY: every object of the heap has a header with a mark word.
                let mark = unsafe { d.ptr.add(OBJECT_MARK as usize).cast::<u32>() };
                // SAFETY: as above; survivors are white again for the next collection.
                unsafe { std::mem::replace(&mut *mark, MARK_WHITE) == MARK_BLACK }
            }
        };
        i += 1;
        if keep {
            bytes += o.bytes();
            live_exceptions += usize::from(matches!(o, Object::Exception(_)));
        }
        keep
    });
    heap.bytes = bytes;
    heap.exceptions = live_exceptions;
    heap.cells.sweep(MARK_WHITE, MARK_BLACK);
    heap.collect_at = heap
        .total_bytes()
        .saturating_mul(2)
        .max(MIN_COLLECTION_BYTES);
}

/// Pushes the references held by the struct or array at `obj` onto `work`.
fn trace_data(obj: *mut u8, work: &mut Vec<usize>) {
    // SAFETY: a live object's header, written by `alloc_data`.
    let (type_id, kind) = unsafe {
        (
            obj.add(OBJECT_TYPE_ID as usize).cast::<u32>().read(),
            obj.add(OBJECT_KIND as usize).cast::<u32>().read(),
        )
    };
    let Some(ty) = types::type_info_of_id(type_id) else {
        return;
    };
    if ty.traced_fields.is_empty() {
        return;
    }
    if kind == KIND_ARRAY {
        // SAFETY: as above; the elements are 8-byte references.
        let len = unsafe { obj.add(ARRAY_LENGTH as usize).cast::<u32>().read() };
        for k in 0..len as usize {
            let at = GC_HEADER_SIZE as usize + 8 * k;
            // SAFETY: inside the object (its size covers `len` elements).
            work.push(unsafe { obj.add(at).cast::<usize>().read() });
        }
    } else {
        for &offset in ty.traced_fields.iter() {
            // SAFETY: the field is inside the struct (its layout).
            work.push(unsafe { obj.add(offset as usize).cast::<usize>().read() });
        }
    }
}

/// Allocates an exception with tag identity `tag` and payload `values`, of which
/// those at `traced_values` are references the collector follows. The pointer stays
/// valid while the exception is reachable from wasm.
pub(crate) fn new_exception(
    tag: usize,
    values: &[ValRaw],
    traced_values: &[u32],
) -> *const VMException {
    let values: Box<[ValRaw]> = values.into();
    let exn = Box::new(Exception {
        header: VMException {
            tag,
            values: values.as_ptr(),
            num_values: values.len(),
        },
        values,
        traced_values: traced_values.into(),
    });
    // `header` is the first field of a `repr(C)` struct: the box's address.
    let ptr = &exn.header as *const VMException;
    HEAP.with_borrow_mut(|heap| {
        let object = Object::Exception(exn);
        heap.bytes += object.bytes();
        heap.exceptions += 1;
        heap.objects.push(object);
    });
    ptr
}

/// Collects if due, then allocates an exception (the `exn_new` builtin).
pub(crate) fn new_exception_collecting(
    caller: CallerFrame,
    tag: usize,
    values: &[ValRaw],
    traced_values: &[u32],
) -> *const VMException {
    let roots: Vec<usize> = traced_values
        .iter()
        .map(|&i| values[i as usize] as usize)
        .collect();
    let need = std::mem::size_of::<Exception>() + 16 * values.len();
    maybe_collect(Some(caller), need, &roots);
    new_exception(tag, values, traced_values)
}

/// A zeroed struct or array of canonical type `type_id` (`length` elements for an
/// array), after a collection if one is due. Fails when the heap limit would be
/// passed, or when the array's size is not representable.
pub(crate) fn alloc_data(
    caller: Option<CallerFrame>,
    type_id: u32,
    ty: &types::TypeInfo,
    length: u32,
) -> Result<*mut u8, Trap> {
    let (kind, size) = match &ty.composite {
        CompositeType::Struct(_) => (KIND_STRUCT, u64::from(ty.struct_size)),
        CompositeType::Array(f) => (
            KIND_ARRAY,
            crate::abi::gc::array_size(f.storage, length).ok_or(Trap::GcHeapOutOfMemory)?,
        ),
        CompositeType::Func => return Err(Trap::CastFailure),
    };
    let size = usize::try_from(size).map_err(|_| Trap::GcHeapOutOfMemory)?;
    let ptr = match cells::class_of(size) {
        Some(class) => alloc_cell(caller, class)?,
        None => {
            maybe_collect(caller, size, &[]);
            HEAP.with_borrow_mut(|heap| {
                if heap.total_bytes().saturating_add(size) > heap_limit() {
                    return Err(Trap::GcHeapOutOfMemory);
                }
                let layout = Layout::from_size_align(size, GC_OBJECT_ALIGN)
                    .map_err(|_| Trap::GcHeapOutOfMemory)?;
                // SAFETY: `size` is at least the header size, so non-zero.
                let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
                if ptr.is_null() {
                    return Err(Trap::GcHeapOutOfMemory);
                }
                heap.bytes += size;
                heap.objects.push(Object::Data(DataObject { ptr, size }));
                Ok(ptr)
            })?
        }
    };
    // SAFETY: a fresh allocation of at least GC_HEADER_SIZE bytes, 16-aligned.
    unsafe {
        ptr.add(OBJECT_TYPE_ID as usize)
            .cast::<u32>()
            .write(type_id);
        ptr.add(OBJECT_KIND as usize).cast::<u32>().write(kind);
        ptr.add(ARRAY_LENGTH as usize).cast::<u32>().write(length);
        ptr.add(OBJECT_MARK as usize)
            .cast::<u32>()
            .write(MARK_WHITE);
    }
    Ok(ptr)
}

/// A zeroed cell of size class `class` (the caller writes the header). Generated
/// code pops the free list itself and comes here when it is empty: the list is
/// then fed the free cells of the next chunk, after a collection if one is due,
/// and never with more bytes than the heap limit leaves.
fn alloc_cell(caller: Option<CallerFrame>, class: usize) -> Result<*mut u8, Trap> {
    if let Some(cell) = HEAP.with_borrow_mut(|heap| heap.cells.pop(class)) {
        return Ok(cell);
    }
    let size = cells::cell_size(class);
    maybe_collect(caller, size, &[]);
    HEAP.with_borrow_mut(|heap| {
        if !heap.cells.has_free(class) {
            let budget = heap_limit().saturating_sub(heap.total_bytes());
            if budget < size {
                return Err(Trap::GcHeapOutOfMemory);
            }
            heap.cells
                .refill(class, budget)
                .ok_or(Trap::GcHeapOutOfMemory)?;
        }
        heap.cells.pop(class).ok_or(Trap::GcHeapOutOfMemory)
    })
}

/// What a non-null `anyref` word is, for hosts (the spec harness): `None` for a
/// word that is not an object of the `any` hierarchy made by this runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyRefKind {
    I31(i32),
    Struct,
    Array,
    /// An internalized host reference (`abi::gc::host_ref`).
    Host(u32),
}

/// Classifies an `anyref` word (see [`AnyRefKind`]); `None` for null.
pub fn classify(word: usize) -> Option<AnyRefKind> {
    let word = word as u64;
    if word == 0 {
        return None;
    }
    if word & 1 == 1 {
        return Some(AnyRefKind::I31((word as u32 as i32) >> 1));
    }
    if word & REF_TAG_MASK == crate::abi::gc::HOST_REF_TAG {
        return Some(AnyRefKind::Host((word >> 2) as u32));
    }
    let is_object = HEAP.with_borrow(|heap| {
        heap.cells.is_object(word as usize, MARK_WHITE, MARK_BLACK)
            || heap
                .objects
                .iter()
                .any(|o| matches!(o, Object::Data(_)) && o.address() == word as usize)
    });
    if !is_object {
        return None;
    }
    // SAFETY: a live object of this heap.
    let kind = unsafe {
        (word as *const u8)
            .add(OBJECT_KIND as usize)
            .cast::<u32>()
            .read()
    };
    Some(if kind == KIND_ARRAY {
        AnyRefKind::Array
    } else {
        AnyRefKind::Struct
    })
}
