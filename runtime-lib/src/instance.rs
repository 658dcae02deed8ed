//! Instantiation: builds a `VMContext` for a compiled module, resolves imports,
//! evaluates initializers, and calls exports.
//!
//! # Ownership
//! An [`Instance`] lives in an `Rc` ([`InstanceHandle`]); instances, tables and
//! globals are `!Send`, so everything stays on the thread that created it, which is
//! also the thread whose `VMRuntimeState` (stack limit) the context points at.
//! Memories are the exception: a shared memory is used by the instances of every
//! thread of a wasi-threads program (see `crate::threads`), so [`MemoryHandle`] is
//! an `Arc` of a thread-safe `Memory`. Handles to exported entities keep their owner alive: a function handle
//! holds its instance, a table or global handle holds the instance that exported it
//! (the table may contain that instance's function references).
//!
//! Function references can also flow the other way: an instance that imports a
//! table, a mutable reference-typed global, or a function taking references can
//! store *its own* functions in another instance's state, which outlives it. Such an
//! instance is *pinned*: kept alive until its thread exits (see [`pin`]), whether or
//! not its instantiation succeeded (`linking.wast` calls functions that an
//! instantiation which then trapped had written into an imported table).
//! References handed to the host as [`Val::FuncRef`] are raw pointers, valid while
//! their instance lives.
//!
//! # Instantiation order (WebAssembly 2.0 with bulk memory)
//! Imports are resolved and type-checked; defined globals, memories and tables are
//! created; then active element segments are applied in order, then active data
//! segments, each bounds-checked as a whole, a failure trapping after the earlier
//! ones were applied; active and declared segments are dropped; finally the start
//! function runs.

use std::any::Any;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::abi::func_table::FuncTable;
use crate::abi::policy::{Limits, Policy, format_size};
use crate::abi::{
    self, ConstExpr, ConstOp, DataMode, ElementMode, ExportKind, FuncType, GlobalType, Import,
    ImportKind, MemoryImage, MemoryType, ModuleDescriptor, ModuleInfo, TableType, Trap,
    VMContextLayout, VMFuncRef, VMGlobal, ValRaw, ValType,
};
use crate::memory::Memory;
use crate::table::Table;
use crate::traps::{self, CodeMap, CodeRegistration, TrapInfo};

/// A host function that can satisfy a function import: `code` is an
/// `extern "C" fn(vmctx: *mut u8, params...) -> result` (at most one result) whose
/// parameter and result types are `ty`, with i32/i64/f32/f64 mapped to the C types
/// i32/i64/f32/f64 and references to usize.
#[derive(Debug, Clone)]
pub struct HostFunc {
    pub ty: FuncType,
    pub code: *const u8,
}

// SAFETY: host function pointers are plain code addresses.
unsafe impl Send for HostFunc {}
unsafe impl Sync for HostFunc {}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// A wasm value as the host sees it. Floats are kept as their bit patterns so that
/// NaN payloads survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
    V128(u128),
    /// 0 = null, else a `*const VMFuncRef`.
    FuncRef(usize),
    /// 0 = null, else an opaque host word.
    ExternRef(usize),
}

impl Val {
    pub fn ty(&self) -> ValType {
        match self {
            Val::I32(_) => ValType::I32,
            Val::I64(_) => ValType::I64,
            Val::F32(_) => ValType::F32,
            Val::F64(_) => ValType::F64,
            Val::V128(_) => ValType::V128,
            Val::FuncRef(_) => ValType::FuncRef,
            Val::ExternRef(_) => ValType::ExternRef,
        }
    }

    /// The value's slot representation (see `abi::ValRaw`).
    pub fn to_raw(&self) -> ValRaw {
        match *self {
            Val::I32(v) => v as u32 as u128,
            Val::I64(v) => v as u64 as u128,
            Val::F32(v) => v as u128,
            Val::F64(v) => v as u128,
            Val::V128(v) => v,
            Val::FuncRef(v) | Val::ExternRef(v) => v as u128,
        }
    }

    pub fn from_raw(ty: ValType, raw: ValRaw) -> Val {
        match ty.storage() {
            ValType::I32 => Val::I32(raw as u32 as i32),
            ValType::I64 => Val::I64(raw as u64 as i64),
            ValType::F32 => Val::F32(raw as u32),
            ValType::F64 => Val::F64(raw as u64),
            ValType::V128 => Val::V128(raw),
            ValType::FuncRef => Val::FuncRef(raw as usize),
            ValType::ExternRef | ValType::Ref(_) => Val::ExternRef(raw as usize),
        }
    }

    /// Whether the value is of type `ty`, whose concrete heap types (if any) are
    /// canonical type ids. A non-null function reference is checked against its
    /// `VMFuncRef`'s type id.
    pub fn has_type(&self, ty: ValType) -> bool {
        let Some(r) = ty.as_ref_type() else {
            return self.ty() == ty;
        };
        match *self {
            Val::FuncRef(0) | Val::ExternRef(0) => r.nullable && self.ty() == ty.storage(),
            Val::ExternRef(word) => extern_word_has_type(word, r.heap),
            Val::FuncRef(p) => match r.heap {
                abi::HeapType::Func => true,
                abi::HeapType::Concrete(id) => {
                    // SAFETY: a non-null `Val::FuncRef` is the address of a live
                    // `VMFuncRef` (see `Val`).
                    let actual = unsafe { (*(p as *const VMFuncRef)).type_id };
                    // Its type or any declared subtype of it.
                    crate::gc::types::is_subtype(actual, id)
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// The null reference or zero of `ty`.
    pub fn default_for(ty: ValType) -> Val {
        Val::from_raw(ty, 0)
    }
}

/// Whether the non-null word of an extern- or any-hierarchy reference is of heap
/// type `heap` (concrete types as canonical ids). Host references and GC objects
/// are `anyref`s (`any.convert_extern` is the identity) and also `externref`s.
fn extern_word_has_type(word: usize, heap: abi::HeapType) -> bool {
    use crate::gc::AnyRefKind as K;
    use abi::HeapType as H;
    let kind = crate::gc::classify(word);
    match heap {
        H::Extern | H::Any => true,
        H::Eq => matches!(kind, Some(K::I31(_) | K::Struct | K::Array)),
        H::I31 => matches!(kind, Some(K::I31(_))),
        H::Struct => kind == Some(K::Struct),
        H::Array => kind == Some(K::Array),
        H::ConcreteStruct(id) | H::ConcreteArray(id) => {
            matches!(kind, Some(K::Struct | K::Array)) && {
                // SAFETY: `classify` found a live object of this thread's heap.
                let actual = unsafe {
                    (word as *const u8)
                        .add(abi::gc::OBJECT_TYPE_ID as usize)
                        .cast::<u32>()
                        .read()
                };
                crate::gc::types::is_subtype(actual, id)
            }
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Canonical type ids
// ---------------------------------------------------------------------------

/// The process-wide id of a final function type in a recursion group of its own
/// whose concrete heap types are canonical ids: equal ids mean equivalent types.
/// Modules intern all their types at once ([`crate::gc::types::intern_module`]).
/// 0 (no type's id) if the process's type table is full.
pub fn canonical_type_id(ty: &FuncType) -> u32 {
    let info = ModuleInfo {
        types: vec![ty.clone()],
        sub_types: vec![abi::SubType {
            is_final: true,
            supertype: None,
            composite: abi::CompositeType::Func,
        }],
        rec_groups: vec![1],
        ..empty_module_info()
    };
    crate::gc::types::intern_module(&info).map_or(0, |ids| ids[0])
}

fn empty_module_info() -> ModuleInfo {
    ModuleInfo {
        name: None,
        types: Vec::new(),
        imports: Vec::new(),
        functions: Vec::new(),
        num_imported_funcs: 0,
        tables: Vec::new(),
        num_imported_tables: 0,
        defined_tables: Vec::new(),
        memories: Vec::new(),
        num_imported_memories: 0,
        globals: Vec::new(),
        num_imported_globals: 0,
        defined_globals: Vec::new(),
        tags: Vec::new(),
        num_imported_tags: 0,
        exports: Vec::new(),
        start: None,
        elements: Vec::new(),
        data: Default::default(),
        funcs: Vec::new(),
        guard_pages: true,
        fuel_metering: false,
        array_host_imports: Vec::new(),
        sub_types: Vec::new(),
        rec_groups: Vec::new(),
        cpu_features: Vec::new(),
        memory_images: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Module
// ---------------------------------------------------------------------------

type ArrayTrampoline = unsafe extern "C" fn(*const u8, *mut u8, *mut ValRaw);

/// A compiled module loaded in the process: its metadata and code addresses.
pub struct Module {
    info: Arc<ModuleInfo>,
    /// Code address of each defined function.
    functions: &'static [usize],
    /// Host stub address of each imported function.
    host_stubs: &'static [usize],
    /// Array trampoline address of each type index.
    trampolines: &'static [usize],
    /// Canonical id of each type index (what `VMContext::type_ids` points at).
    type_ids: Box<[u32]>,
    /// The registry's record of each type index.
    gc_types: Box<[Arc<crate::gc::types::TypeInfo>]>,
    exports: HashMap<String, usize>,
    /// Whether instances must be pinned (see the module docs).
    pins_instances: bool,
    /// The sandbox policy baked in at compile time, if any.
    policy: Option<Policy>,
    /// The image section of `info.memory_images` (see `memory_image`).
    memory_image: Option<&'static [u8]>,
    /// The defined functions' code facts, read in place.
    func_table: FuncTable<'static>,
    _code: CodeRegistration,
}

// SAFETY: the raw pointers are addresses of immutable code in the loaded image.
unsafe impl Send for Module {}
unsafe impl Sync for Module {}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.info.name)
            .finish_non_exhaustive()
    }
}

impl Module {
    /// Reads a compiled module's descriptor, checks its ABI version and metadata, and
    /// registers its code for trap handling.
    ///
    /// # Safety
    /// `descriptor` must be the `wasmc_module` symbol of an object produced by
    /// wasmc-compiler that stays loaded for the rest of the process (its code
    /// pointers are used without further checks).
    pub unsafe fn new(descriptor: &'static ModuleDescriptor) -> Result<Arc<Module>, String> {
        if descriptor.abi_version != abi::ABI_VERSION {
            return Err(format!(
                "module was compiled for wasmc ABI {:#x}, this runtime implements {:#x}",
                descriptor.abi_version,
                abi::ABI_VERSION
            ));
        }
        if descriptor.metadata.is_null() {
            return Err("corrupt module descriptor: no metadata".into());
        }
        // SAFETY: the descriptor points at `metadata_len` bytes of read-only data.
        let bytes =
            unsafe { std::slice::from_raw_parts(descriptor.metadata, descriptor.metadata_len) };
        let info = ModuleInfo::deserialize(bytes)?;
        validate(&info).map_err(|e| format!("corrupt module metadata: {e}"))?;
        crate::cpu_features::check(&info.cpu_features)?;
        let policy = if descriptor.policy.is_null() {
            None
        } else {
            // SAFETY: the descriptor points at `policy_len` bytes of read-only data.
            let bytes =
                unsafe { std::slice::from_raw_parts(descriptor.policy, descriptor.policy_len) };
            Some(Policy::decode(bytes).map_err(|e| format!("baked sandbox policy: {e}"))?)
        };

        // The code tables are used in place (CPython's 11k functions: copying them,
        // and sorting another copy for the trap handler, cost 70 page faults).
        let read = |ptr: *const *const u8, len: usize| -> Result<&'static [usize], String> {
            if len == 0 {
                return Ok(&[]);
            }
            if ptr.is_null() {
                return Err("corrupt module descriptor: missing code table".into());
            }
            // SAFETY: the compiler emits one code address (8 aligned bytes) per
            // function/type (see ModuleDescriptor), read-only and loaded for the rest
            // of the process.
            Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<usize>(), len) })
        };
        let image_len = MemoryImage::section_len(&info.memory_images)
            .and_then(|len| usize::try_from(len).ok())
            .ok_or("corrupt module metadata: memory image")?;
        let memory_image = match (image_len, descriptor.memory_image.is_null()) {
            (0, true) => None,
            // SAFETY: the compiler emits the section, `section_len` bytes of
            // read-only data, there.
            (len, false) if len > 0 => {
                Some(unsafe { std::slice::from_raw_parts(descriptor.memory_image, len) })
            }
            _ => return Err("corrupt module descriptor: memory image".into()),
        };
        let func_table = if descriptor.func_table.is_null() {
            return Err("corrupt module descriptor: no function table".into());
        } else {
            // SAFETY: the descriptor points at `func_table_len` bytes of read-only
            // data that stay loaded for the rest of the process (see above).
            let bytes: &'static [u8] = unsafe {
                std::slice::from_raw_parts(descriptor.func_table, descriptor.func_table_len)
            };
            FuncTable::parse(bytes)?
        };
        if func_table.len() != info.functions.len() - info.num_imported_funcs as usize {
            return Err("corrupt function table: function count".into());
        }
        let num_imported = info.num_imported_funcs as usize;
        let functions = read(descriptor.functions, info.functions.len() - num_imported)?;
        let host_stubs = read(descriptor.host_stubs, num_imported)?;
        let trampolines = read(descriptor.array_trampolines, info.types.len())?;

        let type_ids = crate::gc::types::intern_module(&info)?;
        let gc_types = type_ids
            .iter()
            .map(|&id| crate::gc::types::type_info(id).ok_or("type registry lost a type"))
            .collect::<Result<Box<[_]>, _>>()?;
        let exports = info
            .exports
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        let pins_instances = info.imports.iter().any(|import| match &import.kind {
            ImportKind::Table(_) => true,
            ImportKind::Global(g) => g.mutable && g.content.is_ref(),
            ImportKind::Func { type_index } => info.types[*type_index as usize]
                .params
                .iter()
                .any(|t| t.is_ref()),
            ImportKind::Memory(_) | ImportKind::Tag { .. } => false,
        });
        let info = Arc::new(info);
        let code = traps::register_code(CodeMap::new(
            functions,
            func_table,
            info.name.as_deref(),
            info.num_imported_funcs,
        ));
        Ok(Arc::new(Module {
            info,
            functions,
            host_stubs,
            trampolines,
            type_ids,
            gc_types,
            exports,
            pins_instances,
            policy,
            memory_image,
            func_table,
            _code: code,
        }))
    }

    /// The module's metadata. Its per-function facts (`funcs`) are empty: they are
    /// in [`Module::func_table`].
    pub fn info(&self) -> &ModuleInfo {
        &self.info
    }

    /// Code lengths, trap sites, handlers, stack maps and names of the defined
    /// functions, read in place from the loaded object.
    pub fn func_table(&self) -> FuncTable<'static> {
        self.func_table
    }

    /// The sandbox policy baked in at compile time (`None` for objects compiled
    /// without one, as the spec harness does).
    pub fn policy(&self) -> Option<&Policy> {
        self.policy.as_ref()
    }

    /// `ty` with its concrete heap type (a type index of this module) replaced by
    /// the canonical type id, so that it can be compared with other modules' types.
    pub fn canonical(&self, ty: ValType) -> ValType {
        ty.map_type_index(|j| self.type_ids[j as usize])
    }

    pub fn name(&self) -> Option<&str> {
        self.info.name.as_deref()
    }

    /// Canonical id of type index `index`.
    pub fn type_id(&self, index: u32) -> Option<u32> {
        self.type_ids.get(index as usize).copied()
    }

    /// The registry's record of type index `index`.
    pub fn gc_type(&self, index: u32) -> Option<&crate::gc::types::TypeInfo> {
        self.gc_types.get(index as usize).map(|t| &**t)
    }

    pub fn imports(&self) -> &[Import] {
        &self.info.imports
    }
}

/// Checks every count and index of the metadata, so that instantiation and the
/// builtins can index without further checks.
fn validate(info: &ModuleInfo) -> Result<(), String> {
    let nfuncs = info.functions.len();
    let nimp = info.num_imported_funcs as usize;
    let ntypes = info.types.len();
    let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
    check(nimp <= nfuncs, "more imported functions than functions")?;
    check(
        info.functions.iter().all(|&t| (t as usize) < ntypes),
        "function type index out of range",
    )?;
    for image in &info.memory_images {
        let memory = info.memories.get(image.memory as usize);
        let page = image.page_size;
        let min_bytes = memory.map_or(0, |m| m.minimum.saturating_mul(1 << 16));
        let ok = image.memory >= info.num_imported_memories
            && info
                .memory_images
                .iter()
                .filter(|other| other.memory == image.memory)
                .count()
                == 1
            && memory.is_some_and(|m| !m.memory64 && !m.shared && m.page_size_log2 == 16)
            && page.is_power_of_two()
            && image.chunks.iter().all(|c| {
                c.offset.is_multiple_of(page)
                    && c.len.is_multiple_of(page)
                    && c.data_offset.is_multiple_of(page)
                    && c.offset
                        .checked_add(c.len)
                        .is_some_and(|end| end <= min_bytes && end <= usize::MAX as u64)
            });
        check(ok, "memory image")?;
    }
    // Concrete heap types: within a type, only types up to the end of its
    // recursion group, each of the kind the reference says; elsewhere any type of
    // the module (of that kind).
    let kind_ok = |heap: abi::HeapType, j: u32| {
        matches!(
            (heap, info.sub_types.get(j as usize).map(|t| &t.composite)),
            (abi::HeapType::Concrete(_), Some(abi::CompositeType::Func))
                | (
                    abi::HeapType::ConcreteStruct(_),
                    Some(abi::CompositeType::Struct(_))
                )
                | (
                    abi::HeapType::ConcreteArray(_),
                    Some(abi::CompositeType::Array(_))
                )
        )
    };
    let concrete_below = |t: &ValType, limit: usize| match t.as_ref_type() {
        Some(r) => r
            .heap
            .concrete_index()
            .is_none_or(|j| (j as usize) < limit && kind_ok(r.heap, j)),
        None => true,
    };
    check(
        info.sub_types.len() == ntypes
            && info.rec_groups.iter().map(|&n| n as usize).sum::<usize>() == ntypes,
        "type counts",
    )?;
    let mut group_end = 0usize;
    let mut groups = info.rec_groups.iter();
    for (i, (ty, sub)) in info.types.iter().zip(&info.sub_types).enumerate() {
        while group_end <= i {
            group_end += *groups.next().ok_or("type counts")? as usize;
        }
        let fields: Vec<ValType> = match &sub.composite {
            abi::CompositeType::Func => ty.params.iter().chain(&ty.results).copied().collect(),
            abi::CompositeType::Struct(fs) => fs.iter().map(|f| f.storage.unpacked()).collect(),
            abi::CompositeType::Array(f) => vec![f.storage.unpacked()],
        };
        check(
            fields.iter().all(|t| concrete_below(t, group_end)),
            "type refers to a later type",
        )?;
        check(
            sub.supertype.is_none_or(|s| (s as usize) < i),
            "supertype is not an earlier type",
        )?;
    }
    let element_types = info.tables.iter().map(|t| &t.element);
    let global_types = info.globals.iter().map(|g| &g.content);
    let segment_types = info.elements.iter().map(|e| &e.element);
    check(
        element_types
            .chain(global_types)
            .chain(segment_types)
            .all(|t| concrete_below(t, ntypes)),
        "type index out of range",
    )?;
    check(
        info.num_imported_tables as usize + info.defined_tables.len() == info.tables.len(),
        "table counts",
    )?;
    check(
        info.num_imported_memories as usize <= info.memories.len(),
        "memory counts",
    )?;
    check(
        info.num_imported_globals as usize + info.defined_globals.len() == info.globals.len(),
        "global counts",
    )?;
    let (mut f, mut t, mut m, mut g, mut tags) = (0usize, 0usize, 0usize, 0usize, 0usize);
    for import in &info.imports {
        match &import.kind {
            ImportKind::Func { type_index } => {
                check(
                    info.functions.get(f) == Some(type_index),
                    "function import type",
                )?;
                f += 1;
            }
            ImportKind::Table(ty) => {
                check(info.tables.get(t) == Some(ty), "table import type")?;
                t += 1;
            }
            ImportKind::Memory(ty) => {
                check(info.memories.get(m) == Some(ty), "memory import type")?;
                m += 1;
            }
            ImportKind::Global(ty) => {
                check(info.globals.get(g) == Some(ty), "global import type")?;
                g += 1;
            }
            ImportKind::Tag { type_index } => {
                check(info.tags.get(tags) == Some(type_index), "tag import type")?;
                tags += 1;
            }
        }
    }
    check(
        tags == info.num_imported_tags as usize
            && info.tags.len() >= tags
            && info.tags.iter().all(|&t| (t as usize) < ntypes),
        "tag counts or types",
    )?;
    check(
        f == nimp
            && t == info.num_imported_tables as usize
            && m == info.num_imported_memories as usize
            && g == info.num_imported_globals as usize,
        "import counts",
    )?;
    for (i, d) in info.defined_tables.iter().enumerate() {
        check(
            info.tables[info.num_imported_tables as usize + i] == d.ty,
            "defined table type",
        )?;
    }
    for (i, d) in info.defined_globals.iter().enumerate() {
        check(
            info.globals[info.num_imported_globals as usize + i] == d.ty,
            "defined global type",
        )?;
    }
    for e in &info.exports {
        let limit = match e.kind {
            ExportKind::Func => nfuncs,
            ExportKind::Table => info.tables.len(),
            ExportKind::Memory => info.memories.len(),
            ExportKind::Global => info.globals.len(),
            ExportKind::Tag => info.tags.len(),
        };
        check((e.index as usize) < limit, "export index out of range")?;
    }
    if let Some(start) = info.start {
        check((start as usize) < nfuncs, "start function index")?;
    }
    let exprs = info
        .defined_globals
        .iter()
        .map(|g| &g.init)
        .chain(info.defined_tables.iter().filter_map(|t| t.init.as_ref()))
        .chain(info.elements.iter().flat_map(|e| e.items.iter()))
        .chain(info.elements.iter().filter_map(|e| match &e.mode {
            ElementMode::Active { offset, .. } => Some(offset),
            _ => None,
        }))
        .chain(info.data.iter().filter_map(|d| match &d.mode {
            DataMode::Active { offset, .. } => Some(offset),
            _ => None,
        }));
    for expr in exprs {
        validate_const_expr(expr, info.globals.len(), nfuncs, &info.sub_types)?;
    }
    for e in &info.elements {
        if let ElementMode::Active { table, .. } = e.mode {
            check((table as usize) < info.tables.len(), "element table index")?;
        }
    }
    check(info.data.is_well_formed(), "data segment indices")?;
    for d in info.data.iter() {
        if let DataMode::Active { memory, .. } = d.mode {
            check((memory as usize) < info.memories.len(), "data memory index")?;
        }
    }
    check(
        info.tags.iter().all(|&t| (t as usize) < ntypes),
        "tag type index out of range",
    )?;
    Ok(())
}

fn validate_const_expr(
    expr: &ConstExpr,
    nglobals: usize,
    nfuncs: usize,
    types: &[abi::SubType],
) -> Result<(), String> {
    let mut depth = 0usize;
    let struct_fields = |t: u32| match types.get(t as usize).map(|t| &t.composite) {
        Some(abi::CompositeType::Struct(fields)) => Ok(fields.len()),
        _ => Err("constant expression struct type index".to_string()),
    };
    let is_array = |t: u32| match types.get(t as usize).map(|t| &t.composite) {
        Some(abi::CompositeType::Array(_)) => Ok(()),
        _ => Err("constant expression array type index".to_string()),
    };
    // Pops `n` operands, pushes one result.
    let apply = |depth: &mut usize, n: usize| {
        if *depth < n {
            return Err("constant expression stack underflow".to_string());
        }
        *depth = *depth - n + 1;
        Ok(())
    };
    for op in &expr.0 {
        match *op {
            ConstOp::StructNew(t) => apply(&mut depth, struct_fields(t)?)?,
            ConstOp::StructNewDefault(t) => {
                struct_fields(t)?;
                apply(&mut depth, 0)?
            }
            ConstOp::ArrayNew(t) => {
                is_array(t)?;
                apply(&mut depth, 2)?
            }
            ConstOp::ArrayNewDefault(t) => {
                is_array(t)?;
                apply(&mut depth, 1)?
            }
            ConstOp::ArrayNewFixed(t, n) => {
                is_array(t)?;
                apply(&mut depth, n as usize)?
            }
            ConstOp::RefI31 | ConstOp::AnyConvertExtern | ConstOp::ExternConvertAny => {
                apply(&mut depth, 1)?
            }
            ConstOp::GlobalGet(g) if g as usize >= nglobals => {
                return Err("constant expression global index out of range".into());
            }
            ConstOp::RefFunc(f) if f as usize >= nfuncs => {
                return Err("constant expression function index out of range".into());
            }
            ConstOp::I32Add
            | ConstOp::I32Sub
            | ConstOp::I32Mul
            | ConstOp::I64Add
            | ConstOp::I64Sub
            | ConstOp::I64Mul => {
                if depth < 2 {
                    return Err("constant expression stack underflow".into());
                }
                depth -= 1;
            }
            _ => depth += 1,
        }
    }
    if depth != 1 {
        return Err("constant expression does not produce one value".into());
    }
    Ok(())
}

/// Evaluates a (validated) constant expression. `global(i)` reads global `i`;
/// `func_ref(i)` is the address of function `i`'s `VMFuncRef`; `module` resolves
/// the type indices of allocating expressions (GC), which fail without it.
pub fn eval_const_expr(
    expr: &ConstExpr,
    global: &dyn Fn(u32) -> ValRaw,
    func_ref: &dyn Fn(u32) -> usize,
    module: Option<&Module>,
) -> Result<ValRaw, String> {
    let mut stack: Vec<ValRaw> = Vec::with_capacity(4);
    let alloc = |t: u32, length: u32| -> Result<(*mut u8, &crate::gc::types::TypeInfo), String> {
        let module = module.ok_or("allocation in a constant expression without a module")?;
        let (Some(id), Some(ty)) = (module.type_id(t), module.gc_type(t)) else {
            return Err("constant expression type index".into());
        };
        let ptr =
            crate::gc::alloc_data(None, id, ty, length).map_err(|t| t.message().to_string())?;
        Ok((ptr, ty))
    };
    let pop_n = |stack: &mut Vec<ValRaw>, n: usize| -> Result<Vec<ValRaw>, String> {
        if stack.len() < n {
            return Err("constant expression stack underflow".into());
        }
        Ok(stack.split_off(stack.len() - n))
    };
    for op in &expr.0 {
        let value = match *op {
            ConstOp::RefI31 => {
                let v = pop_n(&mut stack, 1)?[0] as u32;
                (((u64::from(v) << 1) | 1) & 0xffff_ffff) as u128
            }
            ConstOp::AnyConvertExtern | ConstOp::ExternConvertAny => pop_n(&mut stack, 1)?[0],
            ConstOp::StructNew(t) | ConstOp::StructNewDefault(t) => {
                let (ptr, ty) = alloc(t, 0)?;
                if let (ConstOp::StructNew(_), abi::CompositeType::Struct(fields)) =
                    (op, &ty.composite)
                {
                    let values = pop_n(&mut stack, fields.len())?;
                    for ((field, offset), value) in fields.iter().zip(&ty.field_offsets).zip(values)
                    {
                        // SAFETY: a fresh struct; the field is inside it (its layout).
                        unsafe { write_field(ptr.add(*offset as usize), field.storage, value) };
                    }
                }
                ptr as u128
            }
            ConstOp::ArrayNew(t) | ConstOp::ArrayNewDefault(t) | ConstOp::ArrayNewFixed(t, _) => {
                // The elements: one value repeated (`array.new`), the given values
                // (`array.new_fixed`), or none (zeroed, `array.new_default`). The
                // length is the guest's: nothing is sized by it before `alloc` has
                // checked it against the heap limit.
                let (fill, values, length) = match *op {
                    ConstOp::ArrayNew(_) => {
                        let v = pop_n(&mut stack, 2)?;
                        (Some(v[0]), Vec::new(), v[1] as u32)
                    }
                    ConstOp::ArrayNewDefault(_) => {
                        (None, Vec::new(), pop_n(&mut stack, 1)?[0] as u32)
                    }
                    ConstOp::ArrayNewFixed(_, n) => (None, pop_n(&mut stack, n as usize)?, n),
                    _ => unreachable!(),
                };
                let (ptr, ty) = alloc(t, length)?;
                let storage = ty
                    .array_element()
                    .ok_or("constant expression array type")?
                    .storage;
                let element = |k: usize| {
                    // SAFETY: element k < length of a fresh array of `length` elements.
                    unsafe {
                        ptr.add(abi::gc::GC_HEADER_SIZE as usize + k * storage.size() as usize)
                    }
                };
                match fill {
                    Some(value) => (0..length as usize)
                        .for_each(|k| unsafe { write_field(element(k), storage, value) }),
                    None => values
                        .into_iter()
                        .enumerate()
                        .for_each(|(k, value)| unsafe { write_field(element(k), storage, value) }),
                }
                ptr as u128
            }
            ConstOp::I32Const(v) => v as u32 as u128,
            ConstOp::I64Const(v) => v as u64 as u128,
            ConstOp::F32Const(v) => v as u128,
            ConstOp::F64Const(v) => v as u128,
            ConstOp::V128Const(v) => v,
            ConstOp::GlobalGet(g) => global(g),
            ConstOp::RefNull => 0,
            ConstOp::RefFunc(f) => func_ref(f) as u128,
            ConstOp::I32Add | ConstOp::I32Sub | ConstOp::I32Mul => {
                let (b, a) = (stack.pop(), stack.pop());
                let (Some(a), Some(b)) = (a, b) else {
                    return Err("constant expression stack underflow".into());
                };
                let (a, b) = (a as u32, b as u32);
                (match op {
                    ConstOp::I32Add => a.wrapping_add(b),
                    ConstOp::I32Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                }) as u128
            }
            ConstOp::I64Add | ConstOp::I64Sub | ConstOp::I64Mul => {
                let (b, a) = (stack.pop(), stack.pop());
                let (Some(a), Some(b)) = (a, b) else {
                    return Err("constant expression stack underflow".into());
                };
                let (a, b) = (a as u64, b as u64);
                (match op {
                    ConstOp::I64Add => a.wrapping_add(b),
                    ConstOp::I64Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                }) as u128
            }
        };
        stack.push(value);
    }
    match (stack.pop(), stack.is_empty()) {
        (Some(v), true) => Ok(v),
        _ => Err("constant expression does not produce one value".into()),
    }
}

/// Stores `value` into a field of storage type `storage` (its low bytes for packed
/// and narrow types).
///
/// # Safety
/// `at` must point at `storage.size()` writable bytes.
unsafe fn write_field(at: *mut u8, storage: abi::StorageType, value: ValRaw) {
    let bytes = value.to_le_bytes();
    // SAFETY: see the contract.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), at, storage.size() as usize) };
}

// ---------------------------------------------------------------------------
// Externs and handles
// ---------------------------------------------------------------------------

/// Something that can satisfy an import, or that an instance exports.
#[derive(Debug, Clone)]
pub enum Extern {
    Func(FuncHandle),
    HostFunc(HostFunc),
    Memory(MemoryHandle),
    Table(TableHandle),
    Global(GlobalHandle),
    Tag(TagHandle),
}

/// An exception tag. Tags have identity: each definition instantiated is a new tag,
/// and an import refers to the exporter's tag itself (compare with
/// [`TagHandle::same`]). Generated code sees the identity as a word in the
/// `VMContext` (`VMContextLayout::tag`), compared with `VMException::tag`.
#[derive(Debug, Clone)]
pub struct TagHandle {
    tag: Rc<Tag>,
}

#[derive(Debug)]
struct Tag {
    /// Canonical id of the tag's function type.
    type_id: u32,
    /// The identity word: unique in the process and never reused (an address could
    /// be reused after the tag is freed while exceptions thrown with it live on).
    identity: usize,
}

impl Tag {
    fn new(type_id: u32) -> Tag {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        Tag {
            type_id,
            identity: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }
}

impl TagHandle {
    /// Canonical id of the tag's type (see [`canonical_type_id`]).
    pub fn type_id(&self) -> u32 {
        self.tag.type_id
    }

    /// Whether both handles denote the same tag.
    pub fn same(&self, other: &TagHandle) -> bool {
        Rc::ptr_eq(&self.tag, &other.tag)
    }
}

/// A function of an instance (defined or imported). Keeps the instance alive.
#[derive(Clone)]
pub struct FuncHandle {
    instance: Rc<Instance>,
    index: u32,
}

impl std::fmt::Debug for FuncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FuncHandle")
            .field("index", &self.index)
            .field("ty", self.ty())
            .finish()
    }
}

impl FuncHandle {
    pub fn ty(&self) -> &FuncType {
        self.instance.module.info.func_type(self.index)
    }

    /// The function's `VMFuncRef` (what `ref.func` yields), as a `Val::FuncRef` word.
    pub fn func_ref(&self) -> usize {
        self.instance.func_ref(self.index) as usize
    }

    /// Calls the function; type-checks `args`; a trap is returned as `Err`.
    pub fn call(&self, args: &[Val]) -> Result<Vec<Val>, TrapInfo> {
        let ty = self.ty();
        let module = &self.instance.module;
        if args.len() != ty.params.len()
            || args
                .iter()
                .zip(&ty.params)
                .any(|(a, &t)| !a.has_type(module.canonical(t)))
        {
            let given: Vec<ValType> = args.iter().map(Val::ty).collect();
            return Err(TrapInfo::host(
                Trap::HostError,
                format!(
                    "argument type mismatch: the function takes {:?}, given {:?}",
                    ty.params, given
                ),
            ));
        }
        let mut values = vec![0 as ValRaw; ty.params.len().max(ty.results.len()).max(1)];
        for (slot, arg) in values.iter_mut().zip(args) {
            *slot = arg.to_raw();
        }
        // SAFETY: the arguments were type-checked above and stored by `to_raw`; the
        // buffer holds max(params, results) slots.
        unsafe { self.call_raw(&mut values) }?;
        Ok(ty
            .results
            .iter()
            .zip(&values)
            .map(|(&t, &raw)| Val::from_raw(t, raw))
            .collect())
    }
}

impl FuncHandle {
    /// Calls the function with its parameters already in `values` (array-call
    /// layout, see `abi`) and leaves its results there; a trap is returned as `Err`.
    /// The allocation-free path of [`FuncHandle::call`] (used by `embed`).
    ///
    /// # Safety
    /// `values` holds at least max(params, results) slots, and each parameter slot a
    /// value of the parameter's type as `Val::to_raw` stores it (a reference must be
    /// a valid reference of its type).
    pub unsafe fn call_raw(&self, values: &mut [ValRaw]) -> Result<(), TrapInfo> {
        let ty = self.ty();
        if values.len() < ty.params.len().max(ty.results.len()) {
            return Err(TrapInfo::host(Trap::HostError, "value buffer too small"));
        }
        let module = &self.instance.module;
        let type_index = module.info.functions[self.index as usize] as usize;
        let trampoline = module.trampolines[type_index] as *const u8;
        if trampoline.is_null() {
            return Err(TrapInfo::host(Trap::HostError, "missing array trampoline"));
        }
        // SAFETY: the compiler emits an `ArrayTrampoline` per type index.
        let trampoline: ArrayTrampoline = unsafe { std::mem::transmute(trampoline) };
        // SAFETY: func_refs are initialized before any handle to the instance exists.
        let func_ref = unsafe { *self.instance.func_ref(self.index) };
        let values_ptr = values.as_mut_ptr();
        traps::catch_traps(|| {
            // SAFETY: the trampoline of the function's own type, called with its code
            // and context and a value array large enough for params and results.
            unsafe { trampoline(func_ref.wasm_call, func_ref.vmctx, values_ptr) }
        })
    }
}

/// A memory; keeps it alive. `Send`: a shared memory is used by several threads
/// (see `crate::threads`).
#[derive(Debug, Clone)]
pub struct MemoryHandle {
    memory: Arc<Memory>,
}

impl MemoryHandle {
    /// A new host-owned memory (for example `spectest`'s).
    pub fn new(ty: MemoryType) -> Result<MemoryHandle, String> {
        Ok(MemoryHandle {
            memory: Arc::new(Memory::new(&ty)?),
        })
    }

    /// A handle owning `memory` (for example a shared memory the runtime creates
    /// for a threaded program, see `crate::threads`).
    pub fn from_memory(memory: Memory) -> MemoryHandle {
        MemoryHandle {
            memory: Arc::new(memory),
        }
    }

    /// The memory's type with its current size as minimum.
    pub fn ty(&self) -> MemoryType {
        self.memory.current_type()
    }

    /// Current size in pages.
    pub fn size(&self) -> u64 {
        self.memory.size_pages()
    }

    /// Current size in bytes.
    pub fn data_size(&self) -> usize {
        self.memory.byte_len()
    }

    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
        self.memory.read(offset, buf)
    }

    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), String> {
        self.memory.write(offset, data)
    }

    /// Grows by `delta` pages; the previous size, or `None`.
    pub fn grow(&self, delta: u64) -> Option<u64> {
        self.memory.grow(delta)
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }
}

/// A table; keeps it and the instance that exported it alive.
#[derive(Debug, Clone)]
pub struct TableHandle {
    table: Rc<Table>,
    /// Kept alive: the table may hold its function references.
    _owner: Option<Rc<Instance>>,
}

impl TableHandle {
    /// A new host-owned table whose elements are all `init`.
    pub fn new(ty: TableType, init: Val) -> Result<TableHandle, String> {
        if !init.has_type(ty.element) {
            return Err("table initial value does not match the element type".into());
        }
        Ok(TableHandle {
            table: track_table(Rc::new(Table::new(&ty, init.to_raw() as usize)?)),
            _owner: None,
        })
    }

    /// The table's type with its current size as minimum. A concrete element type
    /// `(ref null? $t)` holds the canonical type id (see `abi::HeapType::Concrete`).
    pub fn ty(&self) -> TableType {
        self.table.current_type()
    }

    pub fn size(&self) -> u64 {
        self.table.size()
    }

    pub fn get(&self, index: u64) -> Option<Val> {
        let raw = self.table.get(index)?;
        Some(Val::from_raw(
            self.table.declared_type().element,
            raw as u128,
        ))
    }

    /// Sets an element. The caller keeps the instance a function reference belongs
    /// to alive as long as the table may be used.
    pub fn set(&self, index: u64, value: Val) -> Result<(), String> {
        if !value.has_type(self.table.declared_type().element) {
            return Err("value does not match the table's element type".into());
        }
        if self.table.set(index, value.to_raw() as usize) {
            Ok(())
        } else {
            Err("out of bounds table access".to_string())
        }
    }

    pub fn grow(&self, delta: u64, init: Val) -> Option<u64> {
        if !init.has_type(self.table.declared_type().element) {
            return None;
        }
        self.table.grow(delta, init.to_raw() as usize)
    }

    pub fn table(&self) -> &Table {
        &self.table
    }
}

/// Storage of one global.
#[derive(Debug)]
pub struct Global {
    value: UnsafeCell<VMGlobal>,
    ty: GlobalType,
}

/// A global; keeps it and the instance that exported it alive.
#[derive(Debug, Clone)]
pub struct GlobalHandle {
    global: Rc<Global>,
    /// Kept alive: the global may hold one of its function references.
    _owner: Option<Rc<Instance>>,
}

impl GlobalHandle {
    /// A new host-owned global.
    pub fn new(ty: GlobalType, value: Val) -> Result<GlobalHandle, String> {
        if !value.has_type(ty.content) {
            return Err("global initial value does not match its type".into());
        }
        Ok(GlobalHandle {
            global: Global::new(ty, value.to_raw()),
            _owner: None,
        })
    }

    /// The global's type; a concrete reference type holds the canonical type id.
    pub fn ty(&self) -> GlobalType {
        self.global.ty
    }

    pub fn get(&self) -> Val {
        Val::from_raw(self.global.ty.content, self.raw())
    }

    /// Sets a mutable global.
    pub fn set(&self, value: Val) -> Result<(), String> {
        if !self.global.ty.mutable {
            return Err("cannot set an immutable global".into());
        }
        if !value.has_type(self.global.ty.content) {
            return Err("value does not match the global's type".into());
        }
        self.set_raw(value.to_raw());
        Ok(())
    }

    fn raw(&self) -> ValRaw {
        // SAFETY: single-threaded; generated code is not running during this read.
        unsafe { (*self.global.value.get()).value }
    }

    fn set_raw(&self, raw: ValRaw) {
        // SAFETY: as in `raw`.
        unsafe { (*self.global.value.get()).value = raw };
    }

    fn vmglobal(&self) -> *mut VMGlobal {
        self.global.value.get()
    }
}

/// Makes the exceptions a table of `exnref` holds roots of the exception collector.
fn track_table(table: Rc<Table>) -> Rc<Table> {
    if table.declared_type().element.is_traced() {
        crate::gc::track_table(Rc::downgrade(&table));
    }
    table
}

impl Global {
    fn new(ty: GlobalType, value: ValRaw) -> Rc<Global> {
        let global = Rc::new(Global {
            value: UnsafeCell::new(VMGlobal { value }),
            ty,
        });
        if ty.content.is_traced() {
            crate::gc::track_global(Rc::downgrade(&global));
        }
        global
    }

    /// The pointer-sized value (a reference's word) held by the global.
    pub(crate) fn raw_word(&self) -> usize {
        // SAFETY: read while generated code on this thread is stopped in a builtin.
        unsafe { (*self.value.get()).value as usize }
    }
}

// ---------------------------------------------------------------------------
// Instance
// ---------------------------------------------------------------------------

/// Why instantiation failed.
#[derive(Debug, Clone)]
pub enum InstantiationError {
    /// An import is missing or has the wrong type.
    Unlinkable(String),
    /// A segment was out of bounds, or the start function trapped.
    Trap(TrapInfo),
    /// Memory or tables could not be allocated, or the module is corrupt.
    Resource(String),
}

impl std::fmt::Display for InstantiationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstantiationError::Unlinkable(m) | InstantiationError::Resource(m) => f.write_str(m),
            InstantiationError::Trap(t) => write!(f, "{t}"),
        }
    }
}

impl std::error::Error for InstantiationError {}

/// A module instance: the `VMContext` and everything it points at.
pub struct Instance {
    module: Arc<Module>,
    /// The context (layout from `module.info.layout()`), 16-byte aligned.
    vmctx: *mut u8,
    vmctx_layout: std::alloc::Layout,
    memories: Vec<MemoryHandle>,
    tables: Vec<TableHandle>,
    globals: Vec<GlobalHandle>,
    tags: Vec<TagHandle>,
    /// Instances whose functions were imported (their `VMFuncRef`s were copied).
    _func_owners: Vec<Rc<Instance>>,
    /// Items of each element segment; emptied when dropped.
    elements: RefCell<Vec<Rc<[usize]>>>,
    /// Whether each data segment was dropped.
    dropped_data: Box<[Cell<bool>]>,
    host_state: UnsafeCell<Option<Box<dyn Any>>>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("module", &self.module)
            .field("vmctx", &self.vmctx)
            .finish_non_exhaustive()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: allocated in `InstanceHandle::new` with this layout.
        unsafe { std::alloc::dealloc(self.vmctx, self.vmctx_layout) };
    }
}

impl Instance {
    fn layout(&self) -> VMContextLayout {
        self.module.info.layout()
    }

    /// Identity word and parameter types of tag `index`.
    pub fn tag_identity_and_params(&self, index: u32) -> Option<(usize, &[ValType])> {
        let tag = self.tags.get(index as usize)?;
        let info = &self.module.info;
        let ty = info.types.get(*info.tags.get(index as usize)? as usize)?;
        Some((tag.tag.identity, &ty.params))
    }

    pub fn module(&self) -> &Arc<Module> {
        &self.module
    }

    pub fn vmctx(&self) -> *mut u8 {
        self.vmctx
    }

    /// Address of function `index`'s `VMFuncRef` inside the context.
    fn func_ref(&self, index: u32) -> *mut VMFuncRef {
        // SAFETY: `index` < number of functions (callers pass validated indices), so
        // the offset is inside the context.
        unsafe { self.vmctx.add(self.layout().func_ref(index) as usize) as *mut VMFuncRef }
    }

    /// Memory `index` (module-level), for builtins.
    pub fn memory(&self, index: u32) -> Option<&Memory> {
        self.memories.get(index as usize).map(|m| &*m.memory)
    }

    /// Table `index` (module-level), for builtins.
    pub fn table(&self, index: u32) -> Option<&Table> {
        self.tables.get(index as usize).map(|t| &*t.table)
    }

    /// The items of element segment `index` (empty once dropped).
    pub fn element_segment(&self, index: u32) -> Option<Rc<[usize]>> {
        self.elements.borrow().get(index as usize).cloned()
    }

    pub fn drop_element_segment(&self, index: u32) {
        if let Some(seg) = self.elements.borrow_mut().get_mut(index as usize) {
            *seg = Rc::from(Vec::new());
        }
    }

    /// The bytes of data segment `index` (empty once dropped).
    pub fn data_segment(&self, index: u32) -> Option<&[u8]> {
        let dropped = self.dropped_data.get(index as usize)?;
        if dropped.get() {
            return Some(&[]);
        }
        Some(&self.module.info.data.get(index as usize)?.bytes)
    }

    pub fn drop_data_segment(&self, index: u32) {
        if let Some(d) = self.dropped_data.get(index as usize) {
            d.set(true);
        }
    }

    /// Memory `idx` as a byte slice of its current length (empty when there is no
    /// such memory). For host functions called from wasm: the slice must not be
    /// kept across anything that may grow the memory or run wasm.
    #[allow(clippy::mut_from_ref)]
    pub fn memory_slice(&self, idx: u32) -> &mut [u8] {
        match self.memory(idx) {
            // SAFETY: `len` bytes from the base are accessible; the memory lives as
            // long as the instance; wasm is suspended while a host function runs.
            Some(m) if m.byte_len() > 0 => unsafe {
                std::slice::from_raw_parts_mut(m.base(), m.byte_len())
            },
            _ => &mut [],
        }
    }

    /// The host state attached at instantiation (for example the `WasiCtx`).
    #[allow(clippy::mut_from_ref)]
    pub fn host_state_mut(&self) -> Option<&mut dyn Any> {
        // SAFETY: only host functions of this instance reach the state, one at a time
        // (a host function runs with wasm suspended, and does not call back into
        // wasm while holding it).
        unsafe { (*self.host_state.get()).as_deref_mut() }
    }
}

thread_local! {
    /// Pinned instances of this thread (see the module docs).
    static PINNED: RefCell<Vec<Rc<Instance>>> = const { RefCell::new(Vec::new()) };
}

/// Keeps `instance` alive until the current thread exits.
fn pin(instance: &Rc<Instance>) {
    PINNED.with(|p| p.borrow_mut().push(instance.clone()));
}

/// A function import, resolved.
enum ImportedFunc {
    Host(*const u8),
    Wasm(VMFuncRef, Rc<Instance>),
}

/// An instantiated module.
#[derive(Debug, Clone)]
pub struct InstanceHandle(Rc<Instance>);

impl InstanceHandle {
    /// Instantiates `module`: resolves each import through `resolver`, creates and
    /// initializes its state, runs its start function. See the module docs.
    pub fn new(
        module: Arc<Module>,
        resolver: &mut dyn FnMut(&Import) -> Option<Extern>,
        host_state: Option<Box<dyn Any>>,
    ) -> Result<InstanceHandle, InstantiationError> {
        InstanceHandle::new_with_limits(module, resolver, host_state, &Limits::default())
    }

    /// [`InstanceHandle::new`] with resource limits: every memory and table the
    /// module defines is capped at `limits.max_memory` bytes and
    /// `limits.max_table_elements` elements (`memory.grow` and `table.grow` past the
    /// cap return -1), and one whose minimum is above the cap fails to instantiate
    /// with an [`InstantiationError::Resource`] naming it. Imported memories and tables
    /// are limited by whoever created them. The other limits (stack, timeout, fuel)
    /// apply to a run, not to an instance, and are ignored here.
    pub fn new_with_limits(
        module: Arc<Module>,
        resolver: &mut dyn FnMut(&Import) -> Option<Extern>,
        host_state: Option<Box<dyn Any>>,
        limits: &Limits,
    ) -> Result<InstanceHandle, InstantiationError> {
        let info = module.info.clone();
        // Checked first: a module that cannot run within the limits reserves nothing
        // and resolves no import.
        check_minimums(&info, limits).map_err(InstantiationError::Resource)?;
        let runtime = traps::runtime_state();

        // Imports.
        let mut funcs = Vec::with_capacity(info.num_imported_funcs as usize);
        let mut memories = Vec::with_capacity(info.memories.len());
        let mut tables = Vec::with_capacity(info.tables.len());
        let mut globals = Vec::with_capacity(info.globals.len());
        let mut tags = Vec::with_capacity(info.tags.len());
        for import in &info.imports {
            let ext = resolver(import).ok_or_else(|| {
                InstantiationError::Unlinkable(format!(
                    "unknown import: `{}`.`{}`",
                    import.module, import.name
                ))
            })?;
            let incompatible = || {
                InstantiationError::Unlinkable(format!(
                    "incompatible import type for `{}`.`{}`",
                    import.module, import.name
                ))
            };
            match (&import.kind, ext) {
                (ImportKind::Func { type_index }, Extern::Func(f)) => {
                    // SAFETY: the exporter's func refs are initialized.
                    let func_ref = unsafe { *f.instance.func_ref(f.index) };
                    // A function matches an import when its type is the import's
                    // type or a declared subtype of it (canonical ids).
                    if !crate::gc::types::is_subtype(
                        func_ref.type_id,
                        module.type_ids[*type_index as usize],
                    ) {
                        return Err(incompatible());
                    }
                    funcs.push(ImportedFunc::Wasm(func_ref, f.instance.clone()));
                }
                (ImportKind::Func { type_index }, Extern::HostFunc(h)) => {
                    // A C function returns at most one value (the host stub of a
                    // multi-value import only traps).
                    if h.ty != info.types[*type_index as usize]
                        || h.ty.results.len() > 1
                        || h.code.is_null()
                    {
                        return Err(incompatible());
                    }
                    funcs.push(ImportedFunc::Host(h.code));
                }
                (ImportKind::Memory(ty), Extern::Memory(m)) => {
                    let actual = m.memory.declared_type();
                    if actual.memory64 != ty.memory64
                        || actual.shared != ty.shared
                        || actual.page_size_log2 != ty.page_size_log2
                        || !limits_match(m.size(), actual.maximum, ty.minimum, ty.maximum)
                    {
                        return Err(incompatible());
                    }
                    memories.push(m);
                }
                (ImportKind::Table(ty), Extern::Table(t)) => {
                    let actual = t.table.declared_type();
                    // Table element types are invariant (tables are mutable).
                    if actual.element != module.canonical(ty.element)
                        || actual.table64 != ty.table64
                        || !limits_match(t.size(), actual.maximum, ty.minimum, ty.maximum)
                    {
                        return Err(incompatible());
                    }
                    tables.push(t);
                }
                (ImportKind::Tag { type_index }, Extern::Tag(tag)) => {
                    // Tag types have no subtyping: the types must be equivalent.
                    if tag.type_id() != module.type_ids[*type_index as usize] {
                        return Err(incompatible());
                    }
                    tags.push(tag);
                }
                (ImportKind::Global(ty), Extern::Global(g)) => {
                    // Immutable globals are covariant, mutable ones invariant.
                    let actual = g.ty();
                    let expected = module.canonical(ty.content);
                    let matches = if ty.mutable {
                        actual.content == expected
                    } else {
                        actual
                            .content
                            .matches_with(expected, &crate::gc::types::is_subtype)
                    };
                    if actual.mutable != ty.mutable || !matches {
                        return Err(incompatible());
                    }
                    globals.push(g);
                }
                _ => return Err(incompatible()),
            }
        }

        // The context. Function refs first: constant expressions may take them.
        let layout = info.layout();
        let vmctx_layout = std::alloc::Layout::from_size_align(layout.size().max(16), 16)
            .map_err(|e| InstantiationError::Resource(format!("context layout: {e}")))?;
        // SAFETY: non-zero size.
        let vmctx = unsafe { std::alloc::alloc_zeroed(vmctx_layout) };
        if vmctx.is_null() {
            return Err(InstantiationError::Resource(
                "cannot allocate the instance context".into(),
            ));
        }
        // Owns the allocation until the Instance does.
        struct Ctx(*mut u8, std::alloc::Layout);
        impl Drop for Ctx {
            fn drop(&mut self) {
                // SAFETY: allocated above with this layout.
                unsafe { std::alloc::dealloc(self.0, self.1) }
            }
        }
        let ctx_guard = Ctx(vmctx, vmctx_layout);
        // SAFETY: every write below is at an offset of `layout`, inside the
        // zeroed, 16-byte aligned allocation of `layout.size()` bytes.
        let write = |offset: i32, value: usize| unsafe {
            *(vmctx.add(offset as usize) as *mut usize) = value;
        };
        write(VMContextLayout::RUNTIME, runtime as usize);
        write(
            VMContextLayout::BUILTINS,
            crate::builtins::builtins() as *const _ as usize,
        );
        write(VMContextLayout::TYPE_IDS, module.type_ids.as_ptr() as usize);
        let mut func_owners = Vec::new();
        for index in 0..info.functions.len() as u32 {
            let type_id = module.type_ids[info.functions[index as usize] as usize];
            let func_ref = match funcs.get(index as usize) {
                Some(ImportedFunc::Host(code)) => {
                    write(layout.host_fn(index), *code as usize);
                    VMFuncRef {
                        wasm_call: module.host_stubs[index as usize] as *const u8,
                        vmctx,
                        type_id,
                        _pad: 0,
                    }
                }
                Some(ImportedFunc::Wasm(func_ref, owner)) => {
                    func_owners.push(owner.clone());
                    *func_ref
                }
                None => VMFuncRef {
                    wasm_call: module.functions[(index - info.num_imported_funcs) as usize]
                        as *const u8,
                    vmctx,
                    type_id,
                    _pad: 0,
                },
            };
            // SAFETY: inside the context, aligned (offsets are multiples of 8).
            unsafe {
                *(vmctx.add(layout.func_ref(index) as usize) as *mut VMFuncRef) = func_ref;
            }
        }
        drop(funcs);
        let func_ref_addr = |index: u32| vmctx as usize + layout.func_ref(index) as usize;

        // Globals, in order: an initializer may read imported and earlier globals.
        for defined in &info.defined_globals {
            let value = eval_const_expr(
                &defined.init,
                &|g| {
                    globals
                        .get(g as usize)
                        .map_or(0, |h: &GlobalHandle| h.raw())
                },
                &func_ref_addr,
                Some(&module),
            )
            .map_err(InstantiationError::Resource)?;
            let handle = GlobalHandle {
                global: Global::new(
                    GlobalType {
                        content: module.canonical(defined.ty.content),
                        mutable: defined.ty.mutable,
                    },
                    value,
                ),
                _owner: None,
            };
            globals.push(handle);
        }
        let global_value = |g: u32| globals.get(g as usize).map_or(0, |h| h.raw());

        // Tags: a fresh identity per definition and instance.
        for &type_index in &info.tags[info.num_imported_tags as usize..] {
            tags.push(TagHandle {
                tag: Rc::new(Tag::new(module.type_ids[type_index as usize])),
            });
        }
        for (i, t) in tags.iter().enumerate() {
            write(layout.tag(i as u32), t.tag.identity);
        }
        // Memories and tables.
        for ty in &info.memories[info.num_imported_memories as usize..] {
            let memory =
                Memory::with_limit(ty, limits.max_memory).map_err(InstantiationError::Resource)?;
            memories.push(MemoryHandle {
                memory: Arc::new(memory),
            });
        }
        for defined in &info.defined_tables {
            let init = match &defined.init {
                Some(expr) => eval_const_expr(expr, &global_value, &func_ref_addr, Some(&module))
                    .map_err(InstantiationError::Resource)?,
                None => 0,
            };
            let ty = TableType {
                element: module.canonical(defined.ty.element),
                ..defined.ty
            };
            let table = Table::with_limit(&ty, init as usize, limits.max_table_elements)
                .map_err(InstantiationError::Resource)?;
            tables.push(TableHandle {
                table: track_table(Rc::new(table)),
                _owner: None,
            });
        }
        for (i, m) in memories.iter().enumerate() {
            write(layout.memory(i as u32), m.memory.vmmemory() as usize);
            // Generated code reads the base from here (see `VMContextLayout`): the
            // base of a memory never moves.
            write(layout.memory_base(i as u32), m.memory.base() as usize);
        }
        for (i, t) in tables.iter().enumerate() {
            write(layout.table(i as u32), t.table.vmtable() as usize);
        }
        for (i, g) in globals.iter().enumerate() {
            let index = i as u32;
            if info.global_is_inline(index) {
                // The value lives in the context from now on (generated code uses the
                // slot directly); the pointer still leads to it for the runtime.
                let slot = vmctx as usize + layout.inline_global(index) as usize;
                // SAFETY: the slot is inside the context (layout), 16-byte aligned, and
                // nothing else refers to it yet.
                unsafe { (slot as *mut VMGlobal).write(VMGlobal { value: g.raw() }) };
                write(layout.global(index), slot);
            } else {
                write(layout.global(index), g.vmglobal() as usize);
            }
        }

        // Element segment items (passive ones are kept for table.init).
        let mut elements = Vec::with_capacity(info.elements.len());
        for segment in &info.elements {
            let items = segment
                .items
                .iter()
                .map(|e| {
                    eval_const_expr(e, &global_value, &func_ref_addr, Some(&module))
                        .map(|v| v as usize)
                })
                .collect::<Result<Vec<usize>, String>>()
                .map_err(InstantiationError::Resource)?;
            let items = Rc::<[usize]>::from(items);
            if segment.element.is_traced() {
                crate::gc::track_segment(Rc::downgrade(&items));
            }
            elements.push(items);
        }

        std::mem::forget(ctx_guard);
        let instance = Rc::new(Instance {
            module: module.clone(),
            vmctx,
            vmctx_layout,
            memories,
            tables,
            globals,
            tags,
            _func_owners: func_owners,
            elements: RefCell::new(elements),
            dropped_data: info.data.iter().map(|_| Cell::new(false)).collect(),
            host_state: UnsafeCell::new(host_state),
        });
        write(VMContextLayout::INSTANCE, Rc::as_ptr(&instance) as usize);
        if module.pins_instances {
            pin(&instance);
        }
        let handle = InstanceHandle(instance);
        handle.initialize()?;
        Ok(handle)
    }

    /// Applies active segments and runs the start function.
    fn initialize(&self) -> Result<(), InstantiationError> {
        let instance = &*self.0;
        let info = &instance.module.info;
        let global_value = |g: u32| instance.globals.get(g as usize).map_or(0, |h| h.raw());
        let func_ref_addr = |f: u32| instance.func_ref(f) as usize;
        let trap = |t: Trap| {
            InstantiationError::Trap(TrapInfo {
                trap: t,
                pc: 0,
                backtrace: Vec::new(),
                message: None,
            })
        };
        for (i, segment) in info.elements.iter().enumerate() {
            match &segment.mode {
                ElementMode::Active { table, offset } => {
                    let offset = eval_const_expr(
                        offset,
                        &global_value,
                        &func_ref_addr,
                        Some(&instance.module),
                    )
                    .map_err(InstantiationError::Resource)?;
                    let table = &instance.tables[*table as usize].table;
                    let offset = if table.declared_type().table64 {
                        offset as u64
                    } else {
                        offset as u32 as u64
                    };
                    let items = instance.element_segment(i as u32).unwrap_or_default();
                    if !table.init(offset, &items) {
                        return Err(trap(Trap::TableOutOfBounds));
                    }
                    instance.drop_element_segment(i as u32);
                }
                ElementMode::Declared => instance.drop_element_segment(i as u32),
                ElementMode::Passive => {}
            }
        }
        // An image holds every active segment of its memory (see `abi::MemoryImage`).
        if let Some(section) = instance.module.memory_image {
            let memories = info
                .memory_images
                .iter()
                .map(|image| (&*instance.memories[image.memory as usize].memory, image));
            crate::memory_image::apply(memories, section).map_err(InstantiationError::Resource)?;
        }
        for (i, segment) in info.data.iter().enumerate() {
            if segment.mode == DataMode::InImage {
                instance.drop_data_segment(i as u32);
            }
            if let DataMode::Active { memory, offset } = &segment.mode {
                let offset = eval_const_expr(
                    offset,
                    &global_value,
                    &func_ref_addr,
                    Some(&instance.module),
                )
                .map_err(InstantiationError::Resource)?;
                let memory = &instance.memories[*memory as usize].memory;
                let offset = if memory.declared_type().memory64 {
                    offset as u64
                } else {
                    offset as u32 as u64
                };
                if memory.write(offset, &segment.bytes).is_err() {
                    return Err(trap(Trap::MemoryOutOfBounds));
                }
                instance.drop_data_segment(i as u32);
            }
        }
        if let Some(start) = info.start {
            let func = FuncHandle {
                instance: self.0.clone(),
                index: start,
            };
            func.call(&[]).map_err(InstantiationError::Trap)?;
        }
        Ok(())
    }

    /// The export called `name`.
    pub fn export(&self, name: &str) -> Option<Extern> {
        let info = &self.0.module.info;
        let export = &info.exports[*self.0.module.exports.get(name)?];
        let index = export.index as usize;
        Some(match export.kind {
            ExportKind::Func => Extern::Func(FuncHandle {
                instance: self.0.clone(),
                index: export.index,
            }),
            ExportKind::Memory => Extern::Memory(self.0.memories[index].clone()),
            ExportKind::Table => Extern::Table(TableHandle {
                table: self.0.tables[index].table.clone(),
                _owner: Some(self.0.clone()),
            }),
            ExportKind::Global => Extern::Global(GlobalHandle {
                global: self.0.globals[index].global.clone(),
                _owner: Some(self.0.clone()),
            }),
            ExportKind::Tag => Extern::Tag(self.0.tags[index].clone()),
        })
    }

    /// The exported function called `name`.
    pub fn export_func(&self, name: &str) -> Option<FuncHandle> {
        match self.export(name)? {
            Extern::Func(f) => Some(f),
            _ => None,
        }
    }

    /// Calls `func` (a function of any instance) with `args`; see [`FuncHandle::call`].
    pub fn invoke(&self, func: &FuncHandle, args: &[Val]) -> Result<Vec<Val>, TrapInfo> {
        func.call(args)
    }

    pub fn instance(&self) -> &Instance {
        &self.0
    }

    pub fn module(&self) -> &Arc<Module> {
        &self.0.module
    }
}

/// Fails when a defined memory or table needs more than `limits` allow, naming it,
/// its minimum and the limit as the command-line option spells it.
fn check_minimums(info: &ModuleInfo, limits: &Limits) -> Result<(), String> {
    if let Some(max) = limits.max_memory {
        let first = info.num_imported_memories as usize;
        for (i, ty) in info.memories.iter().enumerate().skip(first) {
            // Bytes as u128: a memory64 minimum in pages can exceed u64 in bytes.
            let bytes = u128::from(ty.minimum)
                .checked_shl(u32::from(ty.page_size_log2))
                .unwrap_or(u128::MAX);
            if bytes > u128::from(max) {
                return Err(format!(
                    "memory {i} needs at least {} but --max-memory is {}",
                    format_size(u64::try_from(bytes).unwrap_or(u64::MAX)),
                    format_size(max)
                ));
            }
        }
    }
    if let Some(max) = limits.max_table_elements {
        let first = info.num_imported_tables as usize;
        for (i, ty) in info.tables.iter().enumerate().skip(first) {
            if ty.minimum > max {
                return Err(format!(
                    "table {i} needs at least {} elements but --max-table-elements is {max}",
                    ty.minimum
                ));
            }
        }
    }
    Ok(())
}

/// Limits subtyping (spec "import matching"): the actual minimum is at least the
/// required one, and if a maximum is required the actual one exists and is no larger.
fn limits_match(
    actual_min: u64,
    actual_max: Option<u64>,
    required_min: u64,
    required_max: Option<u64>,
) -> bool {
    actual_min >= required_min
        && match required_max {
            None => true,
            Some(max) => actual_max.is_some_and(|m| m <= max),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(ops: &[ConstOp]) -> ConstExpr {
        ConstExpr(ops.to_vec())
    }

    /// A descriptor of a module without functions whose function table is `table`.
    fn descriptor(table: &[u8]) -> &'static ModuleDescriptor {
        let metadata = empty_module_info().serialize().leak();
        let table: &'static [u8] = table.to_vec().leak();
        Box::leak(Box::new(ModuleDescriptor {
            abi_version: abi::ABI_VERSION,
            metadata: metadata.as_ptr(),
            metadata_len: metadata.len(),
            functions: std::ptr::null(),
            host_stubs: std::ptr::null(),
            array_trampolines: std::ptr::null(),
            policy: std::ptr::null(),
            policy_len: 0,
            component_plan: std::ptr::null(),
            component_plan_len: 0,
            component_modules: std::ptr::null(),
            num_component_modules: 0,
            memory_image: std::ptr::null(),
            func_table: if table.is_empty() {
                std::ptr::null()
            } else {
                table.as_ptr()
            },
            func_table_len: table.len(),
        }))
    }

    /// A descriptor whose function table is missing, truncated, or describes
    /// another number of functions is refused with a message at load.
    #[test]
    fn corrupt_function_tables_are_refused_at_load() {
        let load = |table: &[u8]| {
            // SAFETY: the descriptor and everything it points at are leaked (static).
            unsafe { Module::new(descriptor(table)) }.map(|_| ())
        };
        let empty = abi::func_table::encode(&[]).unwrap();
        assert_eq!(load(&empty), Ok(()));
        assert_eq!(
            load(&[]),
            Err("corrupt module descriptor: no function table".into())
        );
        assert!(
            load(&empty[..empty.len() - 1])
                .unwrap_err()
                .starts_with("corrupt function table")
        );
        let one = abi::func_table::encode(&[abi::FuncInfo {
            name: None,
            code_len: 1,
            traps: vec![],
            handlers: vec![],
            stack_maps: vec![],
            inlined: vec![],
        }])
        .unwrap();
        assert_eq!(
            load(&one),
            Err("corrupt function table: function count".into())
        );
    }

    #[test]
    fn const_exprs() {
        let globals = |g: u32| [5u128, 0xffff_ffff, 1 << 40][g as usize];
        let funcs = |f: u32| 0x1000 + f as usize * 24;
        let eval = |ops: &[ConstOp]| eval_const_expr(&expr(ops), &globals, &funcs, None);
        assert_eq!(eval(&[ConstOp::I32Const(-1)]), Ok(0xffff_ffff));
        assert_eq!(eval(&[ConstOp::I64Const(-1)]), Ok(u64::MAX as u128));
        assert_eq!(eval(&[ConstOp::GlobalGet(2)]), Ok(1 << 40));
        assert_eq!(eval(&[ConstOp::RefFunc(2)]), Ok(0x1000 + 48));
        assert_eq!(eval(&[ConstOp::RefNull]), Ok(0));
        assert_eq!(
            eval(&[ConstOp::GlobalGet(1), ConstOp::I32Const(2), ConstOp::I32Add]),
            Ok(1),
            "i32.add wraps"
        );
        assert_eq!(
            eval(&[ConstOp::I32Const(3), ConstOp::GlobalGet(0), ConstOp::I32Sub]),
            Ok(-2i32 as u32 as u128)
        );
        assert_eq!(
            eval(&[
                ConstOp::I64Const(i64::MAX),
                ConstOp::I64Const(2),
                ConstOp::I64Mul
            ]),
            Ok(-2i64 as u64 as u128)
        );
        assert_eq!(
            eval(&[ConstOp::I64Const(7), ConstOp::I64Const(9), ConstOp::I64Sub]),
            Ok(-2i64 as u64 as u128)
        );
        assert!(eval(&[ConstOp::I32Add]).is_err());
        assert!(eval(&[ConstOp::I32Const(1), ConstOp::I32Const(1)]).is_err());
        assert!(eval(&[]).is_err());
    }

    #[test]
    fn const_expr_validation() {
        assert!(validate_const_expr(&expr(&[ConstOp::GlobalGet(3)]), 3, 1, &[]).is_err());
        assert!(validate_const_expr(&expr(&[ConstOp::RefFunc(1)]), 3, 1, &[]).is_err());
        assert!(validate_const_expr(&expr(&[ConstOp::RefFunc(0)]), 3, 1, &[]).is_ok());
        assert!(
            validate_const_expr(&expr(&[ConstOp::I32Const(1), ConstOp::I32Mul]), 0, 0, &[])
                .is_err()
        );
    }

    #[test]
    fn type_interner() {
        let a = FuncType {
            params: vec![ValType::I32],
            results: vec![],
        };
        let b = FuncType {
            params: vec![],
            results: vec![ValType::I32],
        };
        let ia = canonical_type_id(&a);
        let ib = canonical_type_id(&b);
        assert_ne!(ia, ib);
        assert_ne!(ia, 0);
        assert_eq!(canonical_type_id(&a.clone()), ia);
        assert_eq!(canonical_type_id(&b), ib);
    }

    #[test]
    fn limits() {
        assert!(limits_match(2, Some(5), 1, Some(5)));
        assert!(!limits_match(2, Some(6), 1, Some(5)));
        assert!(!limits_match(2, None, 1, Some(5)));
        assert!(limits_match(2, None, 2, None));
        assert!(!limits_match(1, None, 2, None));
    }

    #[test]
    fn val_raw_round_trip() {
        for v in [
            Val::I32(-5),
            Val::I64(-5),
            Val::F32(0x7fc0_0001),
            Val::F64(0x7ff8_0000_0000_0001),
            Val::V128(u128::MAX - 3),
            Val::FuncRef(0x1234),
            Val::ExternRef(0),
        ] {
            assert_eq!(Val::from_raw(v.ty(), v.to_raw()), v);
        }
        assert_eq!(Val::I32(-1).to_raw(), 0xffff_ffff);
    }
}

#[cfg(test)]
mod typed_reference_tests {
    use super::*;
    use crate::abi::HeapType;

    fn func(params: Vec<ValType>) -> FuncType {
        FuncType {
            params,
            results: vec![],
        }
    }

    /// Concrete heap types are compared through canonical ids: equivalent types of
    /// different modules (at different indices, self-referential ones included) get
    /// one id; a different referenced type gives a different id.
    /// Canonical ids of function types, each final and in a group of its own.
    fn canonical_type_ids(types: &[FuncType]) -> Box<[u32]> {
        let info = ModuleInfo {
            types: types.to_vec(),
            sub_types: types
                .iter()
                .map(|_| abi::SubType {
                    is_final: true,
                    supertype: None,
                    composite: abi::CompositeType::Func,
                })
                .collect(),
            rec_groups: vec![1; types.len()],
            ..empty_module_info()
        };
        crate::gc::types::intern_module(&info).expect("type table")
    }

    #[test]
    fn canonical_ids_follow_type_structure() {
        let r = |nullable, i| ValType::reference(nullable, HeapType::Concrete(i));
        let a = canonical_type_ids(&[
            func(vec![ValType::I32]),
            func(vec![r(false, 0)]),
            func(vec![r(true, 2)]),
        ]);
        let b = canonical_type_ids(&[
            func(vec![ValType::F64]),
            func(vec![ValType::I32]),
            func(vec![r(false, 1)]),
            func(vec![r(true, 3)]),
            func(vec![r(false, 0)]),
        ]);
        assert_eq!(a[0], b[1]);
        assert_eq!(a[1], b[2], "(ref $t) with equivalent $t");
        assert_eq!(a[2], b[3], "self-reference");
        assert_ne!(a[1], b[4], "(ref $t) with a different $t");
        assert_ne!(a[1], a[2]);
    }

    #[test]
    fn values_are_checked_against_typed_references() {
        let r = ValType::reference;
        assert!(Val::FuncRef(0).has_type(r(true, HeapType::Concrete(7))));
        assert!(!Val::FuncRef(0).has_type(r(false, HeapType::Func)));
        assert!(!Val::ExternRef(0).has_type(ValType::FuncRef));
        assert!(Val::ExternRef(5).has_type(r(false, HeapType::Extern)));
        assert!(!Val::ExternRef(5).has_type(r(true, HeapType::NoExtern)));
        let func_ref = VMFuncRef {
            wasm_call: std::ptr::null(),
            vmctx: std::ptr::null_mut(),
            type_id: 7,
            _pad: 0,
        };
        let v = Val::FuncRef(&func_ref as *const VMFuncRef as usize);
        assert!(v.has_type(r(false, HeapType::Concrete(7))));
        assert!(!v.has_type(r(true, HeapType::Concrete(8))));
        assert!(v.has_type(r(false, HeapType::Func)));
        assert!(!v.has_type(r(true, HeapType::NoFunc)));
        assert_eq!(
            Val::from_raw(r(false, HeapType::Concrete(7)), 9),
            Val::FuncRef(9)
        );
    }
}
