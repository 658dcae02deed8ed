//! Module metadata: everything the runtime needs to instantiate a compiled module
//! besides its code. The compiler serializes a [`ModuleInfo`] with postcard into the
//! object; the runtime deserializes it once at start-up. The per-function facts
//! ([`ModuleInfo::funcs`]) are not part of it: they go to a table the runtime reads
//! in place ([`crate::func_table`]), since decoding them was most of a large
//! module's start-up.

use serde::{Deserialize, Serialize};

use crate::{Trap, VMContextLayout};

/// A value type. The WebAssembly 2.0 reference types are [`ValType::FuncRef`]
/// (`(ref null func)`) and [`ValType::ExternRef`] (`(ref null extern)`); every other
/// reference type (typed function references) is a [`ValType::Ref`]. Build reference
/// types with [`ValType::reference`], which keeps that representation unique, so
/// that `==` is type equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValType {
    I32,
    I64,
    F32,
    F64,
    V128,
    FuncRef,
    ExternRef,
    /// Any reference type other than `funcref` and `externref`.
    Ref(RefType),
}

/// A reference type `(ref null? heap)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RefType {
    pub nullable: bool,
    pub heap: HeapType,
}

/// The heap types of the function and extern hierarchies (all wasmc supports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HeapType {
    Func,
    Extern,
    /// The bottom of the function hierarchy (only null is of type `(ref null nofunc)`).
    NoFunc,
    /// The bottom of the extern hierarchy.
    NoExtern,
    /// Exception references (`exnref`): a `*const VMException` (null = 0).
    Exn,
    /// The bottom of the exception hierarchy.
    NoExn,
    /// A function type. In [`ModuleInfo`] this is a type index of that module. Inside
    /// the runtime (types of tables, globals and functions of live instances) it is
    /// a process-wide canonical type id instead, so that types of different modules
    /// compare with `==`.
    Concrete(u32),
    // ---- GC (the `any` hierarchy): values are null (0), an i31 (odd word, see
    // [`crate::gc`]), a GC heap object (a 16-byte-aligned pointer) or an
    // internalized host reference (see [`crate::gc::HOST_REF_TAG`]).
    Any,
    Eq,
    I31,
    Struct,
    Array,
    /// The bottom of the `any` hierarchy.
    None,
    /// A struct type (type index or canonical id, as for [`HeapType::Concrete`]).
    ConcreteStruct(u32),
    /// An array type (type index or canonical id, as for [`HeapType::Concrete`]).
    ConcreteArray(u32),
}

impl HeapType {
    /// Whether the heap type is in the function hierarchy (stored as a
    /// `*const VMFuncRef`) rather than the extern or exception one (a word that is
    /// opaque to the host).
    pub fn is_func(self) -> bool {
        matches!(
            self,
            HeapType::Func | HeapType::NoFunc | HeapType::Concrete(_)
        )
    }

    /// Whether the heap type is in the `any` hierarchy (GC).
    pub fn is_any(self) -> bool {
        matches!(
            self,
            HeapType::Any
                | HeapType::Eq
                | HeapType::I31
                | HeapType::Struct
                | HeapType::Array
                | HeapType::None
                | HeapType::ConcreteStruct(_)
                | HeapType::ConcreteArray(_)
        )
    }

    /// The type index (or canonical id) of a concrete heap type.
    pub fn concrete_index(self) -> Option<u32> {
        match self {
            HeapType::Concrete(i) | HeapType::ConcreteStruct(i) | HeapType::ConcreteArray(i) => {
                Some(i)
            }
            _ => None,
        }
    }

    /// Applies `f` to the index of a concrete heap type.
    pub fn map_index(self, f: impl FnOnce(u32) -> u32) -> HeapType {
        match self {
            HeapType::Concrete(i) => HeapType::Concrete(f(i)),
            HeapType::ConcreteStruct(i) => HeapType::ConcreteStruct(f(i)),
            HeapType::ConcreteArray(i) => HeapType::ConcreteArray(f(i)),
            other => other,
        }
    }

    /// Whether a value of this heap type may point at an object the collector
    /// manages (a GC object or an exception): what the collector must see as a
    /// root. `externref` is included because `extern.convert_any` makes a GC object
    /// an externref; i31 and the bottom types never hold one.
    pub fn is_traced(self) -> bool {
        matches!(
            self,
            HeapType::Extern
                | HeapType::Exn
                | HeapType::Any
                | HeapType::Eq
                | HeapType::Struct
                | HeapType::Array
                | HeapType::ConcreteStruct(_)
                | HeapType::ConcreteArray(_)
        )
    }

    /// Abstract subtyping (`self <: other`) where concrete types are compared by
    /// `concrete_sub(a, b)` (canonical ids or type indices with declared supertypes).
    pub fn matches_with(self, other: HeapType, concrete_sub: &dyn Fn(u32, u32) -> bool) -> bool {
        use HeapType as H;
        if self == other {
            return true;
        }
        match (self, other) {
            (H::Concrete(a), H::Concrete(b))
            | (H::ConcreteStruct(a), H::ConcreteStruct(b))
            | (H::ConcreteArray(a), H::ConcreteArray(b)) => concrete_sub(a, b),
            (H::Concrete(_) | H::NoFunc, H::Func) | (H::NoFunc, H::Concrete(_)) => true,
            (H::NoExtern, H::Extern) | (H::NoExn, H::Exn) => true,
            (H::None, b) => b.is_any(),
            (
                H::I31 | H::Struct | H::Array | H::ConcreteStruct(_) | H::ConcreteArray(_),
                H::Any | H::Eq,
            ) => true,
            (H::Eq, H::Any) => true,
            (H::ConcreteStruct(_), H::Struct) | (H::ConcreteArray(_), H::Array) => true,
            _ => false,
        }
    }
}

impl ValType {
    /// The reference type `(ref null? heap)`, as `FuncRef`/`ExternRef` when it is one.
    pub fn reference(nullable: bool, heap: HeapType) -> ValType {
        match (nullable, heap) {
            (true, HeapType::Func) => ValType::FuncRef,
            (true, HeapType::Extern) => ValType::ExternRef,
            _ => ValType::Ref(RefType { nullable, heap }),
        }
    }

    /// The reference type, if this is one.
    pub fn as_ref_type(self) -> Option<RefType> {
        match self {
            ValType::FuncRef => Some(RefType {
                nullable: true,
                heap: HeapType::Func,
            }),
            ValType::ExternRef => Some(RefType {
                nullable: true,
                heap: HeapType::Extern,
            }),
            ValType::Ref(r) => Some(r),
            _ => None,
        }
    }

    pub fn is_ref(self) -> bool {
        self.as_ref_type().is_some()
    }

    /// How a value of this type is stored: a reference type becomes `FuncRef` (a
    /// `*const VMFuncRef`, 0 = null) or `ExternRef` (an opaque word, 0 = null);
    /// other types are their own storage.
    pub fn storage(self) -> ValType {
        match self {
            ValType::Ref(r) if r.heap.is_func() => ValType::FuncRef,
            ValType::Ref(_) => ValType::ExternRef,
            other => other,
        }
    }

    /// Applies `f` to the type index of a concrete heap type (`(ref null? $t)`).
    pub fn map_type_index(self, f: impl FnOnce(u32) -> u32) -> ValType {
        match self {
            ValType::Ref(RefType { nullable, heap }) => ValType::Ref(RefType {
                nullable,
                heap: heap.map_index(f),
            }),
            other => other,
        }
    }

    /// Whether values of this type may point at objects the collector manages (see
    /// [`HeapType::is_traced`]).
    pub fn is_traced(self) -> bool {
        self.as_ref_type().is_some_and(|r| r.heap.is_traced())
    }

    /// Whether values of this type may point at exception objects (`exnref`, nullable
    /// or not), which the exception collector must see as roots. `nullexnref` holds
    /// only null.
    pub fn is_exnref(self) -> bool {
        matches!(
            self,
            ValType::Ref(RefType {
                heap: HeapType::Exn,
                ..
            })
        )
    }

    /// Subtyping (`self <: other`) between types whose concrete heap types are
    /// canonical ids, for types without declared supertypes (all wasmc supports):
    /// `(ref $t) <: (ref null $t) <: funcref`, `nofunc` below every function type,
    /// `noextern` below `extern`.
    pub fn matches(self, other: ValType) -> bool {
        self.matches_with(other, &|a, b| a == b)
    }

    /// Subtyping with concrete heap types compared by `concrete_sub` (declared
    /// supertypes, see [`HeapType::matches_with`]).
    pub fn matches_with(self, other: ValType, concrete_sub: &dyn Fn(u32, u32) -> bool) -> bool {
        if self == other {
            return true;
        }
        let (Some(a), Some(b)) = (self.as_ref_type(), other.as_ref_type()) else {
            return false;
        };
        if a.nullable && !b.nullable {
            return false;
        }
        a.heap.matches_with(b.heap, concrete_sub)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FuncType {
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
}

/// How a struct field or array element is stored: packed (`i8`, `i16`) or as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StorageType {
    I8,
    I16,
    Val(ValType),
}

impl StorageType {
    /// Bytes the field occupies in a GC object (also its alignment).
    pub fn size(self) -> u32 {
        match self {
            StorageType::I8 => 1,
            StorageType::I16 => 2,
            StorageType::Val(ValType::I32 | ValType::F32) => 4,
            StorageType::Val(ValType::V128) => 16,
            StorageType::Val(_) => 8,
        }
    }

    /// The value type a read produces (`i32` for packed fields).
    pub fn unpacked(self) -> ValType {
        match self {
            StorageType::I8 | StorageType::I16 => ValType::I32,
            StorageType::Val(v) => v,
        }
    }

    pub fn map_type_index(self, f: impl FnOnce(u32) -> u32) -> StorageType {
        match self {
            StorageType::Val(v) => StorageType::Val(v.map_type_index(f)),
            other => other,
        }
    }
}

/// A struct field or an array's element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldType {
    pub storage: StorageType,
    pub mutable: bool,
}

/// What a type index defines. A function type's signature is `ModuleInfo::types[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompositeType {
    Func,
    Struct(Vec<FieldType>),
    Array(FieldType),
}

/// A type definition with its place in the subtyping hierarchy (GC proposal).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubType {
    /// A final type has no subtypes (every type without `sub` is final).
    pub is_final: bool,
    /// The declared supertype's type index.
    pub supertype: Option<u32>,
    pub composite: CompositeType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryType {
    /// Limits in pages.
    pub minimum: u64,
    pub maximum: Option<u64>,
    pub memory64: bool,
    pub shared: bool,
    /// log2 of the page size (16 for the default 64 KiB pages).
    pub page_size_log2: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableType {
    pub element: ValType,
    pub minimum: u64,
    pub maximum: Option<u64>,
    pub table64: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalType {
    pub content: ValType,
    pub mutable: bool,
}

/// A constant expression, as a small stack program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConstExpr(pub Vec<ConstOp>);

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ConstOp {
    I32Const(i32),
    I64Const(i64),
    F32Const(u32),
    F64Const(u64),
    V128Const(u128),
    GlobalGet(u32),
    RefNull,
    RefFunc(u32),
    I32Add,
    I32Sub,
    I32Mul,
    I64Add,
    I64Sub,
    I64Mul,
    // ---- GC constant expressions (allocate at instantiation).
    RefI31,
    /// `struct.new $t` (type index): pops one value per field.
    StructNew(u32),
    StructNewDefault(u32),
    /// `array.new $t`: pops the initial value and the length.
    ArrayNew(u32),
    ArrayNewDefault(u32),
    /// `array.new_fixed $t n`: pops `n` values.
    ArrayNewFixed(u32, u32),
    AnyConvertExtern,
    ExternConvertAny,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ImportKind {
    Func {
        type_index: u32,
    },
    Table(TableType),
    Memory(MemoryType),
    Global(GlobalType),
    /// An exception tag; its type is a function type with no results.
    Tag {
        type_index: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Import {
    pub module: String,
    pub name: String,
    pub kind: ImportKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportKind {
    Func,
    Table,
    Memory,
    Global,
    Tag,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    pub name: String,
    pub kind: ExportKind,
    /// Index in the module's space of that kind (imports first).
    pub index: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefinedGlobal {
    pub ty: GlobalType,
    pub init: ConstExpr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefinedTable {
    pub ty: TableType,
    /// Initial value of every element (`ref.null` when absent).
    pub init: Option<ConstExpr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ElementMode {
    Active { table: u32, offset: ConstExpr },
    Passive,
    Declared,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElementSegment {
    pub mode: ElementMode,
    pub element: ValType,
    /// One constant expression per element (`ref.func N` for the function-index form).
    pub items: Vec<ConstExpr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DataMode {
    Active {
        memory: u32,
        offset: ConstExpr,
    },
    Passive,
    /// An active segment that a [`MemoryImage`] holds: instantiation only drops it
    /// (no offset expression to decode at every start: CPython has 24k of them).
    InImage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSegment {
    pub mode: DataMode,
    /// Serialized as one byte string (same postcard encoding as a sequence of
    /// `u8`: a length, then the bytes): the runtime then decodes it with one copy
    /// instead of one call per byte (7 MB of CPython's data: 20 ms at every start).
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// A module's data segments, by data segment index. The segments a memory image
/// holds ([`DataMode::InImage`]) are not stored, only counted: they read as empty
/// `InImage` segments. CPython has 24k of them, which as entries were 1.35 MB of
/// heap decoded at every start for segments instantiation only drops.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DataSegments {
    /// Number of segments (the size of the data segment index space).
    len: u32,
    /// The other segments with their index, sorted by index.
    stored: Vec<(u32, DataSegment)>,
}

/// What every segment held by a memory image reads as.
static IN_IMAGE: DataSegment = DataSegment {
    mode: DataMode::InImage,
    bytes: Vec::new(),
};

impl DataSegments {
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends segment `len()`.
    pub fn push(&mut self, segment: DataSegment) {
        if segment.mode != DataMode::InImage {
            self.stored.push((self.len, segment));
        }
        self.len += 1;
    }

    pub fn get(&self, index: usize) -> Option<&DataSegment> {
        if index >= self.len() {
            return None;
        }
        Some(
            match self
                .stored
                .binary_search_by_key(&index, |(i, _)| *i as usize)
            {
                Ok(at) => &self.stored[at].1,
                Err(_) => &IN_IMAGE,
            },
        )
    }

    /// Every segment in index order.
    pub fn iter(&self) -> impl Iterator<Item = &DataSegment> {
        let mut stored = self.stored.iter().peekable();
        (0..self.len).map(move |i| {
            stored
                .next_if(|(j, _)| *j == i)
                .map_or(&IN_IMAGE, |(_, segment)| segment)
        })
    }

    /// Whether the stored indices are sorted and in range (checked at load; lookups
    /// of an unsorted list would only miss).
    pub fn is_well_formed(&self) -> bool {
        self.stored.windows(2).all(|w| w[0].0 < w[1].0)
            && self.stored.last().is_none_or(|(i, _)| *i < self.len)
    }

    /// Turns every active segment of `memory` into an unstored `InImage` one.
    pub fn absorb_into_image(&mut self, memory: u32) {
        self.stored
            .retain(|(_, s)| !matches!(s.mode, DataMode::Active { memory: m, .. } if m == memory));
    }
}

impl std::ops::Index<usize> for DataSegments {
    type Output = DataSegment;

    fn index(&self, index: usize) -> &DataSegment {
        self.get(index).expect("data segment index out of range")
    }
}

/// Code facts of one defined function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FuncInfo {
    /// Name from the name section, or `None`.
    pub name: Option<String>,
    /// Length of its machine code in bytes.
    pub code_len: u32,
    /// Trap sites `(offset from the function start, trap)`, sorted by offset.
    pub traps: Vec<(u32, Trap)>,
    /// Exception handlers of the calls inside `try_table`s, sorted by return offset
    /// (empty for functions without `try_table`).
    pub handlers: Vec<HandlerSite>,
    /// The calls across which exception references are live, sorted by return
    /// offset (empty for functions that keep none across a call).
    pub stack_maps: Vec<StackMapSite>,
    /// Code that came from functions inlined into this one, sorted by start (empty
    /// when nothing was inlined): backtraces name those functions too.
    pub inlined: Vec<InlinedRange>,
}

/// A stretch of a function's machine code that was compiled from other functions'
/// bodies, inlined into it at compile time (`--inline`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlinedRange {
    /// Code offsets `[start, end)` from the function start.
    pub start: u32,
    pub end: u32,
    /// The defined-function indices whose bodies the code came from, innermost
    /// first: `[g, f]` is code of `g`, inlined into `f`, inlined into this function.
    pub funcs: Vec<u32>,
}

/// A call site with exception references live across it: the roots of this frame
/// for the exception collector while the call runs (Cranelift user stack maps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackMapSite {
    /// Return-address offset of the call, from the function start.
    pub ret: u32,
    /// Byte offsets, from the stack pointer at the call, of the 8-byte slots that
    /// hold live `exnref` values (null or a `*const VMException`).
    pub slots: Vec<u32>,
}

/// A call site with an exception handler: when an exception unwinds to the return
/// address `ret`, execution resumes at `handler` with the stack pointer set to
/// `fp - frame_offset` (the frame's `fp` restored) and the `*const VMException` in
/// the first exception payload register (rax / x0). Every handler catches every
/// exception: the code at `handler` matches tags itself and rethrows on no match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerSite {
    /// Return-address offset of the call, from the function start.
    pub ret: u32,
    /// Offset of the handler code, from the function start.
    pub handler: u32,
    /// Distance from the frame pointer down to the stack pointer at the call.
    pub frame_offset: u32,
}

/// Everything about a compiled module except its code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleInfo {
    /// Module name from the name section, if any.
    pub name: Option<String>,
    pub types: Vec<FuncType>,
    pub imports: Vec<Import>,
    /// Type index of every function, imported first.
    pub functions: Vec<u32>,
    pub num_imported_funcs: u32,
    /// All tables, imported first (imported ones are described by their import too).
    pub tables: Vec<TableType>,
    pub num_imported_tables: u32,
    /// Defined tables only, with their initializers.
    pub defined_tables: Vec<DefinedTable>,
    /// All memories, imported first.
    pub memories: Vec<MemoryType>,
    pub num_imported_memories: u32,
    /// All globals' types, imported first.
    pub globals: Vec<GlobalType>,
    pub num_imported_globals: u32,
    /// Defined globals with their initializers.
    pub defined_globals: Vec<DefinedGlobal>,
    /// Type index of every exception tag, imported first. Generated code reaches a
    /// tag's identity through `VMContextLayout::tag`.
    pub tags: Vec<u32>,
    pub num_imported_tags: u32,
    pub exports: Vec<Export>,
    pub start: Option<u32>,
    pub elements: Vec<ElementSegment>,
    pub data: DataSegments,
    /// One entry per defined function: filled by the compiler, which stores it in
    /// the object as a [`crate::func_table`] (`ModuleDescriptor::func_table`), not
    /// in the serialized metadata. Empty after [`ModuleInfo::deserialize`]; the
    /// runtime reads the table in place instead.
    #[serde(skip)]
    pub funcs: Vec<FuncInfo>,
    /// Whether generated code relies on guard pages instead of explicit bounds checks
    /// (the runtime must then reserve the full guarded region for every memory).
    pub guard_pages: bool,
    /// Whether generated code counts fuel in `VMRuntimeState::fuel_consumed`
    /// (compiled with `--fuel`); only such modules accept a fuel limit.
    pub fuel_metering: bool,
    /// Function import indices whose host stub uses the *array* convention
    /// (`extern "C" fn(vmctx, import: u32, values: *mut ValRaw)`, see
    /// `crate::component`): the imports a component lowers from the host. Empty for
    /// plain modules.
    pub array_host_imports: Vec<u32>,
    /// The CPU features the code was generated for: the names of the Cranelift ISA
    /// flags that were on (`has_sse41`, `has_avx2`, `has_lse`...; `--target-cpu`).
    /// The runtime refuses to run the code on a CPU that lacks one, with a message,
    /// instead of letting an unknown instruction crash it.
    pub cpu_features: Vec<String>,
    /// One entry per type index: what it defines and its declared supertype. For a
    /// function type `types[i]` holds the signature; for a struct or array type
    /// `types[i]` is empty.
    pub sub_types: Vec<SubType>,
    /// The size of each recursion group, in order (they partition the type indices).
    /// Types are canonicalised a whole group at a time (iso-recursive equivalence).
    pub rec_groups: Vec<u32>,
    /// The initial contents of defined memories, composed at compile time from
    /// their active data segments (see [`MemoryImage`]), at most one per memory;
    /// memories whose segments cannot be composed ahead of time have none.
    pub memory_images: Vec<MemoryImage>,
}

/// A page-aligned image of a memory's initial contents, stored in the object
/// (`ModuleDescriptor::memory_image`) so that the runtime can map it copy-on-write
/// from the executable instead of copying every segment at start-up.
///
/// When present, *every* active data segment of `memory` is in the image (their
/// offsets are constants and each lies within the memory's minimum size, so none
/// can trap), and they are left in the metadata as [`DataMode::InImage`] with empty
/// `bytes`: applying the image and dropping those segments is the whole of their
/// instantiation.
///
/// Only the pages that hold a non-zero byte are stored, as [`ImageChunk`]s; runs of
/// zero pages between them are holes, left to the memory's fresh zero pages, so
/// that the executable does not grow by them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryImage {
    /// Module memory index (a defined, 32-bit, unshared memory of 64 KiB pages).
    pub memory: u32,
    /// The alignment of the chunks in memory and in the object: the largest OS page
    /// size of the target.
    pub page_size: u64,
    /// The stored parts, sorted by `offset`, not overlapping.
    pub chunks: Vec<ImageChunk>,
}

/// A stored part of a [`MemoryImage`]: `len` bytes at `data_offset` of the image
/// section go to `offset` of the memory. All three are multiples of the image's
/// `page_size`, and `offset + len` is within the memory's minimum size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageChunk {
    pub offset: u64,
    pub len: u64,
    pub data_offset: u64,
}

impl MemoryImage {
    /// Bytes of the image section the chunks of `images` cover (the section's
    /// length: the compiler stores them back to back).
    pub fn section_len(images: &[MemoryImage]) -> Option<u64> {
        images
            .iter()
            .flat_map(|image| &image.chunks)
            .try_fold(0u64, |end, c| {
                Some(end.max(c.data_offset.checked_add(c.len)?))
            })
    }
}

impl ModuleInfo {
    pub fn layout(&self) -> VMContextLayout {
        VMContextLayout {
            num_memories: self.memories.len() as u32,
            num_tables: self.tables.len() as u32,
            num_globals: self.globals.len() as u32,
            num_imported_funcs: self.num_imported_funcs,
            num_funcs: self.functions.len() as u32,
            num_tags: self.tags.len() as u32,
        }
    }

    /// Whether global `index` lives in its instance's `VMContext` (the inline slot
    /// `VMContextLayout::inline_global`) rather than in a runtime object reached
    /// through a pointer: defined, not exported (nothing outside the instance can
    /// name it) and numeric (no reference the exception collector must find). Generated
    /// code then reads and writes it with one access instead of two (C's
    /// `__stack_pointer`, in every prologue and epilogue).
    pub fn global_is_inline(&self, index: u32) -> bool {
        index >= self.num_imported_globals
            && self.globals.get(index as usize).is_some_and(|g| {
                matches!(
                    g.content,
                    ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64 | ValType::V128
                )
            })
            && !self
                .exports
                .iter()
                .any(|e| e.kind == ExportKind::Global && e.index == index)
    }

    /// Whether the module declares struct or array types: only such modules can
    /// create GC objects, and only their code keeps GC references in stack maps.
    pub fn uses_gc_heap(&self) -> bool {
        self.sub_types
            .iter()
            .any(|t| !matches!(t.composite, CompositeType::Func))
    }

    pub fn func_type(&self, func_index: u32) -> &FuncType {
        &self.types[self.functions[func_index as usize] as usize]
    }

    pub fn serialize(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("serializing module metadata cannot fail")
    }

    pub fn deserialize(bytes: &[u8]) -> Result<ModuleInfo, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("corrupt module metadata: {e}"))
    }
}

/// Bytes reserved for each memory when guard pages are used: the whole 32-bit index
/// space (4 GiB) plus [`GUARD_SIZE`], so that `base + index + offset` for any u32
/// index and static offset below the guard faults instead of escaping.
pub const MEMORY_RESERVATION: u64 = 1 << 32;
/// Guard region after the 4 GiB reservation. Accesses whose static `offset + size`
/// fit in it need no explicit check.
pub const GUARD_SIZE: u64 = 2 << 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_types_are_unique_and_match_by_subtyping() {
        let r = ValType::reference;
        assert_eq!(r(true, HeapType::Func), ValType::FuncRef);
        assert_eq!(r(true, HeapType::Extern), ValType::ExternRef);
        let t = r(false, HeapType::Concrete(3));
        let null_t = r(true, HeapType::Concrete(3));
        assert!(t.matches(null_t) && t.matches(ValType::FuncRef));
        assert!(null_t.matches(ValType::FuncRef) && !null_t.matches(t));
        assert!(!t.matches(r(false, HeapType::Concrete(4))));
        assert!(r(true, HeapType::NoFunc).matches(null_t));
        assert!(!r(true, HeapType::NoFunc).matches(t));
        assert!(r(false, HeapType::NoExtern).matches(ValType::ExternRef));
        assert!(!ValType::ExternRef.matches(ValType::FuncRef));
        assert!(!ValType::FuncRef.matches(r(false, HeapType::Func)));
        assert!(!ValType::I32.matches(ValType::I64));
        assert_eq!(t.storage(), ValType::FuncRef);
        assert_eq!(r(true, HeapType::NoExtern).storage(), ValType::ExternRef);
        assert_eq!(t.map_type_index(|i| i + 1), r(false, HeapType::Concrete(4)));
    }

    #[test]
    fn data_segments_in_images_are_counted_not_stored() {
        let passive = |b: &[u8]| DataSegment {
            mode: DataMode::Passive,
            bytes: b.to_vec(),
        };
        let active = |memory| DataSegment {
            mode: DataMode::Active {
                memory,
                offset: ConstExpr(vec![ConstOp::I32Const(0)]),
            },
            bytes: b"x".to_vec(),
        };
        let mut data = DataSegments::default();
        for segment in [
            active(0),
            passive(b"p"),
            active(1),
            active(0),
            passive(b"q"),
        ] {
            data.push(segment);
        }
        data.absorb_into_image(0);
        data.push(IN_IMAGE.clone());
        assert_eq!(data.len(), 6);
        assert_eq!(data.stored.len(), 3);
        assert!(data.is_well_formed());
        let modes: Vec<_> = data.iter().map(|d| d.mode.clone()).collect();
        assert_eq!(modes[0], DataMode::InImage);
        assert_eq!(data[1].bytes, b"p");
        assert!(matches!(modes[2], DataMode::Active { memory: 1, .. }));
        assert_eq!(modes[3], DataMode::InImage);
        assert_eq!(data.get(4).map(|d| &d.bytes[..]), Some(&b"q"[..]));
        assert_eq!(modes[5], DataMode::InImage);
        assert_eq!(data.get(6), None);
        assert_eq!(data.iter().count(), 6);
    }

    /// Data segments are encoded as byte strings for decoding speed; the encoding
    /// must stay the one a plain `Vec<u8>` gets, byte for byte, and round-trip.
    #[test]
    fn data_segment_bytes_keep_the_sequence_encoding() {
        #[derive(Serialize)]
        struct AsSequence {
            mode: DataMode,
            bytes: Vec<u8>,
        }
        let bytes: Vec<u8> = (0..=255u8).chain(0..200).collect();
        let segment = DataSegment {
            mode: DataMode::Passive,
            bytes: bytes.clone(),
        };
        let encoded = postcard::to_allocvec(&segment).unwrap();
        let plain = postcard::to_allocvec(&AsSequence {
            mode: DataMode::Passive,
            bytes,
        })
        .unwrap();
        assert_eq!(encoded, plain);
        let decoded: DataSegment = postcard::from_bytes(&encoded).unwrap();
        assert_eq!(decoded, segment);
    }
}
