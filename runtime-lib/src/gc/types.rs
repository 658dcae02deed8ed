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

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

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

/// Canonical id of every type of `info`, in type-index order.
pub fn intern_module(info: &ModuleInfo) -> Box<[u32]> {
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
        let base = intern_group(key);
        ids.extend((0..size).map(|k| base + k));
        start = end;
    }
    ids.into_boxed_slice()
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
fn intern_group(key: Vec<Key>) -> u32 {
    if let Some(&base) = registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .groups
        .get(&key)
    {
        return base;
    }
    let mut reg = registry().write().unwrap_or_else(|e| e.into_inner());
    if let Some(&base) = reg.groups.get(&key) {
        return base;
    }
    let base = reg.types.len() as u32 + 1;
    let resolve = |j: u32| {
        if j & REC_RELATIVE != 0 {
            base + (j & !REC_RELATIVE)
        } else {
            j
        }
    };
    for k in &key {
        let info = type_info_of(k, &resolve, &reg.types);
        reg.types.push(Arc::new(info));
    }
    reg.groups.insert(key, base);
    base
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

/// Runs `f` with the registry's records, indexed by `id - 1` (one lock for many
/// lookups, as a collection needs).
pub(crate) fn with_all_types<R>(f: impl FnOnce(&[Arc<TypeInfo>]) -> R) -> R {
    f(&registry().read().unwrap_or_else(|e| e.into_inner()).types)
}

/// Whether canonical type `actual` is `expected` or one of its declared subtypes.
pub fn is_subtype(actual: u32, expected: u32) -> bool {
    if actual == expected {
        return true;
    }
    let reg = registry().read().unwrap_or_else(|e| e.into_inner());
    let mut current = actual;
    // Supertype chains are finite (validation: depth at most 63) and point at
    // earlier ids, so this ends.
    while let Some(t) = reg.types.get((current as usize).wrapping_sub(1)) {
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
