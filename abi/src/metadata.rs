//! Module metadata: everything the runtime needs to instantiate a compiled module
//! besides its code. The compiler serializes a [`ModuleInfo`] with postcard into the
//! object; the runtime deserializes it once at start-up.

use serde::{Deserialize, Serialize};

use crate::{Trap, VMContextLayout};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValType {
    I32,
    I64,
    F32,
    F64,
    V128,
    FuncRef,
    ExternRef,
}

impl ValType {
    pub fn is_ref(self) -> bool {
        matches!(self, ValType::FuncRef | ValType::ExternRef)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FuncType {
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ImportKind {
    Func { type_index: u32 },
    Table(TableType),
    Memory(MemoryType),
    Global(GlobalType),
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
    Active { memory: u32, offset: ConstExpr },
    Passive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSegment {
    pub mode: DataMode,
    pub bytes: Vec<u8>,
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
    pub exports: Vec<Export>,
    pub start: Option<u32>,
    pub elements: Vec<ElementSegment>,
    pub data: Vec<DataSegment>,
    /// One entry per defined function.
    pub funcs: Vec<FuncInfo>,
    /// Whether generated code relies on guard pages instead of explicit bounds checks
    /// (the runtime must then reserve the full guarded region for every memory).
    pub guard_pages: bool,
}

impl ModuleInfo {
    pub fn layout(&self) -> VMContextLayout {
        VMContextLayout {
            num_memories: self.memories.len() as u32,
            num_tables: self.tables.len() as u32,
            num_globals: self.globals.len() as u32,
            num_imported_funcs: self.num_imported_funcs,
            num_funcs: self.functions.len() as u32,
        }
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
