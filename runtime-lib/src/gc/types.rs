//! The process-wide type registry: canonical type ids for every type of every
//! loaded module, with iso-recursive equivalence (GC proposal).
//!
//! A module's types come in recursion groups. Two groups are equivalent when they
//! have the same shape, where a reference to a type of the same group is compared
//! by its position in the group and a reference to an earlier type by that type's
//! canonical id. The registry interns each group under that key, so equivalent
//! groups of any two modules get the same ids (`base + position`), and type
//! equivalence is `==` on ids: `call_indirect` and casts to a final type compare
//! one word. Each canonical type also records its declared supertype, for the
//! subtype checks of casts to non-final types ([`is_subtype`]), and what the
//! collector and the builtins need to know about its objects ([`TypeInfo`]).
//!
//! *Type rows.* Beside the registry (behind its lock, used when modules are
//! loaded), every canonical type has a row in a table that never moves
//! (`abi::gc::TYPE_ROW_SIZE` bytes per id, reserved once and made accessible as ids
//! are handed out): its [`TypeInfo`] and its supertype display (`abi::gc`). The
//! row is written before its id is published, so generated code (inline casts),
//! the collector and the builtins read it without taking the lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::abi::gc::{TYPE_ROW_DISPLAY, TYPE_ROW_DISPLAY_LEN, TYPE_ROW_SIZE};
use crate::abi::{self, CompositeType, FieldType, FuncType, ModuleInfo, StorageType, SubType};

/// Marks a reference to a type of the group being interned (position in the low
/// bits). Canonical ids are small, so they never have this bit.
const REC_RELATIVE: u32 = 1 << 31;

/// What the runtime knows about a canonical type.
#[derive(Debug, Clone)]
pub struct TypeInfo {
    pub supertype: Option<u32>,
    pub is_final: bool,
    /// Length of the supertype chain (0 for a type without supertype).
    pub depth: u32,
    pub composite: CompositeType,
    /// Structs: field offsets and the object size (see `abi::gc::struct_layout`).
    pub field_offsets: Box<[u32]>,
    pub struct_size: u32,
    /// Offsets (structs) of fields that hold traced references; for arrays, whether
    /// the elements do (one entry, 0).
    pub traced_fields: Box<[u32]>,
}

impl TypeInfo {
    pub fn array_element(&self) -> Option<FieldType> {
        match &self.composite {
            CompositeType::Array(f) => Some(*f),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Registry {
    groups: HashMap<Vec<Key>, u32>,
    /// Indexed by `id - 1`.
    types: Vec<Arc<TypeInfo>>,
}

fn registry() -> &'static RwLock<Registry> {
    static REGISTRY: OnceLock<RwLock<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Canonical ids below this have a row (a 1 GiB reservation, committed as used).
/// Ids count distinct types of the whole process, so this is never reached by
/// real programs; past it, modules with new types are refused.
const MAX_TYPE_IDS: usize = 1 << 24;
/// Rows are made accessible this many bytes at a time.
const ROW_COMMIT_STEP: usize = 64 << 10;

/// The reserved row table (see the module docs).
struct TypeRows {
    base: *mut u8,
    /// Bytes made readable and writable (under the registry's write lock).
    committed: std::sync::atomic::AtomicUsize,
}

// SAFETY: the rows are written under the registry's write lock before their ids
// are published (`PUBLISHED_IDS`, release/acquire), and never changed afterwards.
unsafe impl Sync for TypeRows {}
unsafe impl Send for TypeRows {}

fn type_rows() -> Option<&'static TypeRows> {
    static ROWS: OnceLock<Option<TypeRows>> = OnceLock::new();
    ROWS.get_or_init(|| {
        // SAFETY: a fresh anonymous mapping; nothing else refers to that range.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                MAX_TYPE_IDS * TYPE_ROW_SIZE as usize,
                rustix::mm::ProtFlags::empty(),
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
            )
        }
        .ok()?;
        Some(TypeRows {
            base: base.cast(),
            committed: std::sync::atomic::AtomicUsize::new(0),
        })
    })
    .as_ref()
}

/// Ids below this have a published row.
static PUBLISHED_IDS: AtomicU32 = AtomicU32::new(1);

/// The address of the row table for `VMRuntimeState::gc_type_rows` (null if it
/// could not be reserved; then no module with types loads).
pub(crate) fn type_rows_base() -> *const u8 {
    type_rows().map_or(std::ptr::null(), |rows| rows.base.cast_const())
}

/// The row of a published id.
fn row(id: u32) -> Option<*const u8> {
    if id == 0 || id >= PUBLISHED_IDS.load(Ordering::Acquire) {
        return None;
    }
    let rows = type_rows()?;
    // SAFETY: published ids have committed rows inside the reservation.
    Some(unsafe { rows.base.add(id as usize * TYPE_ROW_SIZE as usize) }.cast_const())
}

/// The registry's record of canonical type `id`, without the lock.
pub(crate) fn type_info_of_id(id: u32) -> Option<&'static TypeInfo> {
    // SAFETY: word 0 of a published row is the address of the type's `TypeInfo`,
    // held by the registry (which never drops one) for the rest of the process.
    row(id).map(|row| unsafe { &*row.cast::<*const TypeInfo>().read() })
}

/// Entry `depth` of the supertype display of published type `id` (0 past its depth).
fn display_entry(row: *const u8, depth: u32) -> u32 {
    debug_assert!(depth < TYPE_ROW_DISPLAY_LEN);
    // SAFETY: inside a published row.
    unsafe {
        row.add((TYPE_ROW_DISPLAY + 4 * depth) as usize)
            .cast::<u32>()
            .read()
    }
}

/// Writes the rows of ids `first..first + infos.len()` (under the write lock).
fn write_rows(first: u32, infos: &[Arc<TypeInfo>]) -> Result<(), String> {
    let rows = type_rows().ok_or("cannot reserve the GC type table")?;
    let end_id = first as usize + infos.len();
    if end_id > MAX_TYPE_IDS {
        return Err(format!(
            "more than {MAX_TYPE_IDS} distinct types in this process"
        ));
    }
    let need = end_id * TYPE_ROW_SIZE as usize;
    let committed = rows.committed.load(Ordering::Relaxed);
    if need > committed {
        let new = need.next_multiple_of(ROW_COMMIT_STEP);
        // SAFETY: inside the reservation, not yet accessible (no reference to it).
        unsafe {
            rustix::mm::mprotect(
                rows.base.add(committed).cast(),
                new - committed,
                rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE,
            )
        }
        .map_err(|e| format!("cannot grow the GC type table: {e}"))?;
        rows.committed.store(new, Ordering::Relaxed);
    }
    for (k, info) in infos.iter().enumerate() {
        let id = first + k as u32;
        let mut display = [0u32; TYPE_ROW_DISPLAY_LEN as usize];
        if let Some(s) = info.supertype {
            // The supertype is an earlier id: its row is written.
            // SAFETY: rows below `id` are written and committed.
            let super_row = unsafe { rows.base.add(s as usize * TYPE_ROW_SIZE as usize) };
            for (d, entry) in display.iter_mut().enumerate() {
                *entry = display_entry(super_row, d as u32);
            }
        }
        if info.depth < TYPE_ROW_DISPLAY_LEN {
            display[info.depth as usize] = id;
        }
        // SAFETY: row `id` is committed and not yet published (nobody reads it).
        unsafe {
            let row = rows.base.add(id as usize * TYPE_ROW_SIZE as usize);
            row.cast::<*const TypeInfo>().write(Arc::as_ptr(info));
            row.add(TYPE_ROW_DISPLAY as usize)
                .cast::<[u32; TYPE_ROW_DISPLAY_LEN as usize]>()
                .write(display);
        }
    }
    PUBLISHED_IDS.store(end_id as u32, Ordering::Release);
    Ok(())
}

/// Canonical id of every type of `info`, in type-index order.
pub fn intern_module(info: &ModuleInfo) -> Result<Box<[u32]>, String> {
    let mut ids: Vec<u32> = Vec::with_capacity(info.sub_types.len());
    let mut start = 0usize;
    for &size in &info.rec_groups {
        let end = start + size as usize;
        let canon = |j: u32| {
            if (j as usize) < start {
                ids[j as usize]
            } else {
                REC_RELATIVE | (j - start as u32)
            }
        };
        let key: Vec<Key> = (start..end)
            .map(|i| canonical_key(&info.sub_types[i], &info.types[i], canon))
            .collect();
        let base = intern_group(key)?;
        ids.extend((0..size).map(|k| base + k));
        start = end;
    }
    Ok(ids.into_boxed_slice())
}

/// A type definition with canonical references: the registry's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    is_final: bool,
    supertype: Option<u32>,
    composite: KeyComposite,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyComposite {
    Func(FuncType),
    Struct(Vec<FieldType>),
    Array(FieldType),
}

fn canonical_key(sub: &SubType, func: &FuncType, canon: impl Fn(u32) -> u32) -> Key {
    let field = |f: &FieldType| FieldType {
        storage: f.storage.map_type_index(&canon),
        mutable: f.mutable,
    };
    let composite = match &sub.composite {
        CompositeType::Func => KeyComposite::Func(FuncType {
            params: func
                .params
                .iter()
                .map(|t| t.map_type_index(&canon))
                .collect(),
            results: func
                .results
                .iter()
                .map(|t| t.map_type_index(&canon))
                .collect(),
        }),
        CompositeType::Struct(fields) => KeyComposite::Struct(fields.iter().map(field).collect()),
        CompositeType::Array(f) => KeyComposite::Array(field(f)),
    };
    Key {
        is_final: sub.is_final,
        supertype: sub.supertype.map(&canon),
        composite,
    }
}

/// The base id of the group `key` (interning it if new).
fn intern_group(key: Vec<Key>) -> Result<u32, String> {
    if let Some(&base) = registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .groups
        .get(&key)
    {
        return Ok(base);
    }
    let mut reg = registry().write().unwrap_or_else(|e| e.into_inner());
    if let Some(&base) = reg.groups.get(&key) {
        return Ok(base);
    }
    let base = reg.types.len() as u32 + 1;
    let resolve = |j: u32| {
        if j & REC_RELATIVE != 0 {
            base + (j & !REC_RELATIVE)
        } else {
            j
        }
    };
    let first = reg.types.len();
    for k in &key {
        let info = type_info_of(k, &resolve, &reg.types);
        reg.types.push(Arc::new(info));
    }
    if let Err(e) = write_rows(base, &reg.types[first..]) {
        reg.types.truncate(first);
        return Err(e);
    }
    reg.groups.insert(key, base);
    Ok(base)
}

fn type_info_of(key: &Key, resolve: &dyn Fn(u32) -> u32, known: &[Arc<TypeInfo>]) -> TypeInfo {
    let field = |f: &FieldType| FieldType {
        storage: f.storage.map_type_index(resolve),
        mutable: f.mutable,
    };
    let composite = match &key.composite {
        KeyComposite::Func(_) => CompositeType::Func,
        KeyComposite::Struct(fields) => CompositeType::Struct(fields.iter().map(field).collect()),
        KeyComposite::Array(f) => CompositeType::Array(field(f)),
    };
    let supertype = key.supertype.map(resolve);
    let depth = supertype
        .and_then(|s| known.get((s as usize).wrapping_sub(1)))
        .map_or(0, |t| t.depth + 1);
    let (field_offsets, struct_size, traced_fields) = match &composite {
        CompositeType::Struct(fields) => {
            let (offsets, size) = abi::gc::struct_layout(fields);
            let traced = fields
                .iter()
                .zip(&offsets)
                .filter(|(f, _)| is_traced(f.storage))
                .map(|(_, &o)| o)
                .collect();
            (offsets.into_boxed_slice(), size, traced)
        }
        CompositeType::Array(f) => (
            Box::default(),
            0,
            if is_traced(f.storage) {
                Box::from([0u32])
            } else {
                Box::default()
            },
        ),
        CompositeType::Func => (Box::default(), 0, Box::default()),
    };
    TypeInfo {
        supertype,
        is_final: key.is_final,
        depth,
        composite,
        field_offsets,
        struct_size,
        traced_fields,
    }
}

fn is_traced(storage: StorageType) -> bool {
    matches!(storage, StorageType::Val(v) if v.is_traced())
}

/// The registry's record of canonical type `id`.
pub fn type_info(id: u32) -> Option<Arc<TypeInfo>> {
    registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .types
        .get((id as usize).wrapping_sub(1))
        .cloned()
}

/// Whether canonical type `actual` is `expected` or one of its declared subtypes
/// (without the registry's lock: the display, or for deep types the chain of rows).
pub fn is_subtype(actual: u32, expected: u32) -> bool {
    if actual == expected {
        return true;
    }
    let (Some(actual_row), Some(want)) = (row(actual), type_info_of_id(expected)) else {
        return false;
    };
    if want.depth < TYPE_ROW_DISPLAY_LEN {
        return display_entry(actual_row, want.depth) == expected;
    }
    let mut current = actual;
    // Supertype chains are finite (validation: depth at most 63) and point at
    // earlier ids, so this ends.
    while let Some(t) = type_info_of_id(current) {
        match t.supertype {
            Some(s) if s == expected => return true,
            Some(s) if s < current => current = s,
            _ => return false,
        }
    }
    false
}

/// Builtin `is_subtype(actual, expected) -> u32` (see `abi::Builtins::is_subtype`).
pub(crate) extern "C" fn is_subtype_builtin(actual: u32, expected: u32) -> u32 {
    u32::from(is_subtype(actual, expected))
}
