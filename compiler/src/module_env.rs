//! The module-level pass: one walk over wasmparser's payloads that validates every
//! section and builds the [`ModuleInfo`] the runtime needs, plus the function bodies
//! (each with its own function validator) for the translation step.
//!
//! Function bodies are *not* validated here: that happens while translating, in
//! parallel, so that every operator is parsed once.

use std::collections::HashMap;

use wasmc_abi::{
    CompositeType, ConstExpr, ConstOp, DataMode, DataSegment, DefinedGlobal, DefinedTable,
    ElementMode, ElementSegment, Export, ExportKind, FieldType, FuncType, GlobalType, Import,
    ImportKind, MemoryType, ModuleInfo, StorageType, SubType, TableType, ValType,
};
use wasmparser::{
    AbstractHeapType, CompositeInnerType, ElementItems, ElementKind, ExternalKind, FuncToValidate,
    FuncValidatorAllocations, HeapType, KnownCustom, Name, Parser, Payload, RefType, TypeRef,
    ValidPayload, Validator, ValidatorResources, WasmFeatures,
};

use crate::{CompileError, CompileErrorKind};

/// The feature set modules are validated against: WebAssembly 3.0, which is what the
/// spec test suite assumes (so `assert_invalid`/`assert_malformed` follow 3.0 rules,
/// e.g. `global.get` of an immutable defined global in a constant expression is
/// valid).
///
/// Validating a proposal is not the same as implementing it. The parts of 3.0 that
/// wasmc does not compile are reported as [`CompileErrorKind::Unsupported`] once
/// the module is known to be valid (see `crate::classify`):
/// * shared types and custom descriptors (GC extensions beyond 3.0);
///
/// Relaxed SIMD is compiled with one fixed, deterministic choice per operator (see
/// `translate::simd`). Beyond 3.0, wasmc also compiles wide arithmetic, custom page
/// sizes and legacy exception handling (`try`/`catch`/`delegate`/`rethrow`, what
/// LLVM 19 and older emit for C++ exceptions and setjmp/longjmp). Anything else
/// (stack switching, ...) fails validation and is then reported as unsupported,
/// because it validates with every feature enabled.
pub(crate) fn features() -> WasmFeatures {
    WasmFeatures::WASM3
        | WasmFeatures::THREADS
        | WasmFeatures::WIDE_ARITHMETIC
        | WasmFeatures::CUSTOM_PAGE_SIZES
        | WasmFeatures::LEGACY_EXCEPTIONS
}

/// Validates the whole module (every section and every function body) without
/// translating anything. Used to tell an invalid module from a valid one that wasmc
/// does not support: translation stops at the first unsupported construct, which
/// may come before the construct that makes the module invalid.
pub(crate) fn validate(wasm: &[u8]) -> Result<(), CompileError> {
    let mut validator = Validator::new_with_features(features());
    let mut parser = Parser::new(0);
    parser.set_features(features());
    let mut allocs = FuncValidatorAllocations::default();
    for payload in parser.parse_all(wasm) {
        let payload = payload.map_err(malformed)?;
        if let ValidPayload::Func(func, body) = validator.payload(&payload).map_err(invalid)? {
            let mut func = func.into_validator(std::mem::take(&mut allocs));
            // Operator decoding and validation errors are not told apart here; both
            // make the module unusable, which is all the caller needs to know.
            func.validate(&body).map_err(invalid)?;
            allocs = func.into_allocations();
        }
    }
    Ok(())
}

/// One function body waiting for translation.
pub(crate) struct FunctionBody<'a> {
    pub validator: FuncToValidate<ValidatorResources>,
    pub body: wasmparser::FunctionBody<'a>,
}

/// The result of the module pass.
pub(crate) struct ModuleEnv<'a> {
    /// Complete except for `funcs` (filled after code generation) and `guard_pages`.
    pub info: ModuleInfo,
    /// Defined function bodies, in defined-function order.
    pub bodies: Vec<FunctionBody<'a>>,
    /// Function names from the name section, by function index (imports included).
    pub func_names: HashMap<u32, String>,
}

fn malformed(err: wasmparser::BinaryReaderError) -> CompileError {
    CompileError::from_wasmparser(&err, CompileErrorKind::Malformed)
}

fn invalid(err: wasmparser::BinaryReaderError) -> CompileError {
    CompileError::from_wasmparser(&err, CompileErrorKind::Invalid)
}

impl<'a> ModuleEnv<'a> {
    pub fn parse(wasm: &'a [u8]) -> Result<ModuleEnv<'a>, CompileError> {
        let mut validator = Validator::new_with_features(features());
        let mut parser = Parser::new(0);
        parser.set_features(features());
        let mut env = ModuleEnv {
            info: ModuleInfo {
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
                cpu_features: Vec::new(),
                sub_types: Vec::new(),
                rec_groups: Vec::new(),
                memory_images: Vec::new(),
            },
            bodies: Vec::new(),
            func_names: HashMap::new(),
        };
        let mut seen_end = false;
        for payload in parser.parse_all(wasm) {
            let payload = payload.map_err(malformed)?;
            match validator.payload(&payload).map_err(invalid)? {
                ValidPayload::Ok => {}
                ValidPayload::Func(validator, body) => {
                    env.bodies.push(FunctionBody { validator, body });
                    continue;
                }
                ValidPayload::End(_) => seen_end = true,
                ValidPayload::Parser(_) => {
                    return Err(CompileError::unsupported(
                        None,
                        "nested modules and components are not supported",
                    ));
                }
            }
            env.section(payload)?;
        }
        if !seen_end {
            return Err(CompileError::new(
                CompileErrorKind::Malformed,
                Some(wasm.len()),
                "unexpected end of module",
            ));
        }
        Ok(env)
    }

    /// Records the contents of one (already validated) section.
    fn section(&mut self, payload: Payload<'a>) -> Result<(), CompileError> {
        let info = &mut self.info;
        match payload {
            Payload::TypeSection(reader) => {
                for group in reader.into_iter_with_offsets() {
                    let (offset, group) = group.map_err(malformed)?;
                    let offset = offset as usize;
                    let start = info.sub_types.len();
                    let subs: Vec<&wasmparser::SubType> = group.types().collect();
                    // First the kind of every type of the group (references inside
                    // the group may point forward), then the definitions.
                    for sub in &subs {
                        if sub.composite_type.shared {
                            return Err(CompileError::unsupported(
                                Some(offset),
                                "shared types (shared-everything threads) are not supported",
                            ));
                        }
                        if sub.composite_type.descriptor_idx.is_some()
                            || sub.composite_type.describes_idx.is_some()
                        {
                            return Err(CompileError::unsupported(
                                Some(offset),
                                "custom descriptors are not supported",
                            ));
                        }
                        let composite = match &sub.composite_type.inner {
                            CompositeInnerType::Func(_) => CompositeType::Func,
                            CompositeInnerType::Struct(_) => CompositeType::Struct(Vec::new()),
                            CompositeInnerType::Array(_) => CompositeType::Array(FieldType {
                                storage: StorageType::I8,
                                mutable: false,
                            }),
                            CompositeInnerType::Cont(_) => {
                                return Err(CompileError::unsupported(
                                    Some(offset),
                                    "continuation types (stack switching) are not supported",
                                ));
                            }
                        };
                        info.sub_types.push(SubType {
                            is_final: sub.is_final,
                            supertype: None,
                            composite,
                        });
                    }
                    for (i, sub) in subs.iter().enumerate() {
                        let supertype = match sub.supertype_idxs.first() {
                            Some(idx) => Some(type_index_of(*idx, start, offset)?),
                            None => None,
                        };
                        let kinds = &info.sub_types;
                        let (func, composite) = match &sub.composite_type.inner {
                            CompositeInnerType::Func(ft) => (
                                FuncType {
                                    params: val_types_in(ft.params(), kinds, start, offset)?,
                                    results: val_types_in(ft.results(), kinds, start, offset)?,
                                },
                                CompositeType::Func,
                            ),
                            CompositeInnerType::Struct(st) => (
                                FuncType {
                                    params: Vec::new(),
                                    results: Vec::new(),
                                },
                                CompositeType::Struct(
                                    st.fields
                                        .iter()
                                        .map(|f| field_type(f, kinds, start, offset))
                                        .collect::<Result<_, _>>()?,
                                ),
                            ),
                            CompositeInnerType::Array(at) => (
                                FuncType {
                                    params: Vec::new(),
                                    results: Vec::new(),
                                },
                                CompositeType::Array(field_type(&at.0, kinds, start, offset)?),
                            ),
                            CompositeInnerType::Cont(_) => unreachable!("refused above"),
                        };
                        info.types.push(func);
                        let entry = &mut info.sub_types[start + i];
                        entry.supertype = supertype;
                        entry.composite = composite;
                    }
                    info.rec_groups.push(subs.len() as u32);
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports_with_offsets() {
                    let (offset, import) = import.map_err(malformed)?;
                    let offset = offset as usize;
                    let kind = match import.ty {
                        TypeRef::Func(type_index) | TypeRef::FuncExact(type_index) => {
                            info.functions.push(type_index);
                            info.num_imported_funcs += 1;
                            ImportKind::Func { type_index }
                        }
                        TypeRef::Table(t) => {
                            let t = table_type(&t, &info.sub_types, offset)?;
                            info.tables.push(t);
                            info.num_imported_tables += 1;
                            ImportKind::Table(t)
                        }
                        TypeRef::Memory(m) => {
                            let m = memory_type(&m, offset)?;
                            info.memories.push(m);
                            info.num_imported_memories += 1;
                            ImportKind::Memory(m)
                        }
                        TypeRef::Global(g) => {
                            let g = global_type(&g, &info.sub_types, offset)?;
                            info.globals.push(g);
                            info.num_imported_globals += 1;
                            ImportKind::Global(g)
                        }
                        TypeRef::Tag(tag) => {
                            info.tags.push(tag.func_type_idx);
                            info.num_imported_tags += 1;
                            ImportKind::Tag {
                                type_index: tag.func_type_idx,
                            }
                        }
                    };
                    info.imports.push(Import {
                        module: import.module.to_string(),
                        name: import.name.to_string(),
                        kind,
                    });
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    info.functions.push(ty.map_err(malformed)?);
                }
            }
            Payload::TableSection(reader) => {
                for table in reader.into_iter_with_offsets() {
                    let (offset, table) = table.map_err(malformed)?;
                    let offset = offset as usize;
                    let ty = table_type(&table.ty, &info.sub_types, offset)?;
                    let init = match table.init {
                        wasmparser::TableInit::RefNull => None,
                        wasmparser::TableInit::Expr(e) => Some(const_expr(&e)?),
                    };
                    info.tables.push(ty);
                    info.defined_tables.push(DefinedTable { ty, init });
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader.into_iter_with_offsets() {
                    let (offset, memory) = memory.map_err(malformed)?;
                    info.memories.push(memory_type(&memory, offset as usize)?);
                }
            }
            Payload::TagSection(reader) => {
                for tag in reader {
                    info.tags.push(tag.map_err(malformed)?.func_type_idx);
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader.into_iter_with_offsets() {
                    let (offset, global) = global.map_err(malformed)?;
                    let offset = offset as usize;
                    let ty = global_type(&global.ty, &info.sub_types, offset)?;
                    info.globals.push(ty);
                    info.defined_globals.push(DefinedGlobal {
                        ty,
                        init: const_expr(&global.init_expr)?,
                    });
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(malformed)?;
                    let kind = match export.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => ExportKind::Func,
                        ExternalKind::Table => ExportKind::Table,
                        ExternalKind::Memory => ExportKind::Memory,
                        ExternalKind::Global => ExportKind::Global,
                        ExternalKind::Tag => ExportKind::Tag,
                    };
                    info.exports.push(Export {
                        name: export.name.to_string(),
                        kind,
                        index: export.index,
                    });
                }
            }
            Payload::StartSection { func, .. } => info.start = Some(func),
            Payload::ElementSection(reader) => {
                for element in reader.into_iter_with_offsets() {
                    let (offset, element) = element.map_err(malformed)?;
                    let offset = offset as usize;
                    let mode = match element.kind {
                        ElementKind::Passive => ElementMode::Passive,
                        ElementKind::Declared => ElementMode::Declared,
                        ElementKind::Active {
                            table_index,
                            offset_expr,
                        } => ElementMode::Active {
                            table: table_index.unwrap_or(0),
                            offset: const_expr(&offset_expr)?,
                        },
                    };
                    let (element_type, items) = match element.items {
                        ElementItems::Functions(funcs) => {
                            let mut items = Vec::with_capacity(funcs.count() as usize);
                            for f in funcs {
                                items
                                    .push(ConstExpr(vec![ConstOp::RefFunc(f.map_err(malformed)?)]));
                            }
                            (ValType::FuncRef, items)
                        }
                        ElementItems::Expressions(ty, exprs) => {
                            let mut items = Vec::with_capacity(exprs.count() as usize);
                            for e in exprs {
                                items.push(const_expr(&e.map_err(malformed)?)?);
                            }
                            (ref_type_in(ty, &info.sub_types, 0, offset)?, items)
                        }
                    };
                    info.elements.push(ElementSegment {
                        mode,
                        element: element_type,
                        items,
                    });
                }
            }
            Payload::DataSection(reader) => {
                for data in reader {
                    let data = data.map_err(malformed)?;
                    let mode = match data.kind {
                        wasmparser::DataKind::Passive => DataMode::Passive,
                        wasmparser::DataKind::Active {
                            memory_index,
                            offset_expr,
                        } => DataMode::Active {
                            memory: memory_index,
                            offset: const_expr(&offset_expr)?,
                        },
                    };
                    info.data.push(DataSegment {
                        mode,
                        bytes: data.data.to_vec(),
                    });
                }
            }
            Payload::CustomSection(reader) => {
                if let KnownCustom::Name(names) = reader.as_known() {
                    self.read_names(names);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The name section is advisory: a malformed one is ignored rather than failing
    /// the compilation (as the spec requires for custom sections).
    fn read_names(&mut self, names: wasmparser::NameSectionReader<'a>) {
        for subsection in names {
            match subsection {
                Ok(Name::Module { name, .. }) => self.info.name = Some(name.to_string()),
                Ok(Name::Function(map)) => {
                    for naming in map {
                        match naming {
                            Ok(n) => {
                                self.func_names.insert(n.index, n.name.to_string());
                            }
                            Err(_) => break,
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
}

/// The module type index a packed index names (inside a rec group, a
/// group-relative index is made absolute with the group's first type `start`).
fn type_index_of(
    idx: wasmparser::PackedIndex,
    start: usize,
    offset: usize,
) -> Result<u32, CompileError> {
    match idx.unpack() {
        wasmparser::UnpackedIndex::Module(i) => Ok(i),
        wasmparser::UnpackedIndex::RecGroup(i) => Ok(start as u32 + i),
        wasmparser::UnpackedIndex::Id(_) => Err(CompileError::unsupported(
            Some(offset),
            "canonicalized type ids are not expected here",
        )),
    }
}

fn field_type(
    f: &wasmparser::FieldType,
    kinds: &[SubType],
    start: usize,
    offset: usize,
) -> Result<FieldType, CompileError> {
    let storage = match f.element_type {
        wasmparser::StorageType::I8 => StorageType::I8,
        wasmparser::StorageType::I16 => StorageType::I16,
        wasmparser::StorageType::Val(v) => StorageType::Val(val_type_in(v, kinds, start, offset)?),
    };
    Ok(FieldType {
        storage,
        mutable: f.mutable,
    })
}

fn val_types_in(
    tys: &[wasmparser::ValType],
    kinds: &[SubType],
    start: usize,
    offset: usize,
) -> Result<Vec<ValType>, CompileError> {
    tys.iter()
        .map(|t| val_type_in(*t, kinds, start, offset))
        .collect()
}

/// A value type inside a type definition (references may be group-relative).
fn val_type_in(
    ty: wasmparser::ValType,
    kinds: &[SubType],
    start: usize,
    offset: usize,
) -> Result<ValType, CompileError> {
    match ty {
        wasmparser::ValType::Ref(r) => ref_type_in(r, kinds, start, offset),
        other => val_type(other, kinds, offset),
    }
}

pub(crate) fn val_type(
    ty: wasmparser::ValType,
    kinds: &[SubType],
    offset: usize,
) -> Result<ValType, CompileError> {
    Ok(match ty {
        wasmparser::ValType::I32 => ValType::I32,
        wasmparser::ValType::I64 => ValType::I64,
        wasmparser::ValType::F32 => ValType::F32,
        wasmparser::ValType::F64 => ValType::F64,
        wasmparser::ValType::V128 => ValType::V128,
        wasmparser::ValType::Ref(r) => ref_type_in(r, kinds, 0, offset)?,
    })
}

/// A reference type; a concrete heap type becomes `Concrete`, `ConcreteStruct` or
/// `ConcreteArray` by the kind of the type it names (`kinds`, the module's types
/// so far; a group-relative index counts from `start`).
pub(crate) fn ref_type_in(
    ty: RefType,
    kinds: &[SubType],
    start: usize,
    offset: usize,
) -> Result<ValType, CompileError> {
    use wasmc_abi::HeapType as H;
    let heap = match ty.heap_type() {
        HeapType::Abstract { shared: false, ty } => match ty {
            AbstractHeapType::Func => H::Func,
            AbstractHeapType::Extern => H::Extern,
            AbstractHeapType::NoFunc => H::NoFunc,
            AbstractHeapType::NoExtern => H::NoExtern,
            AbstractHeapType::Exn => H::Exn,
            AbstractHeapType::NoExn => H::NoExn,
            AbstractHeapType::Any => H::Any,
            AbstractHeapType::Eq => H::Eq,
            AbstractHeapType::I31 => H::I31,
            AbstractHeapType::Struct => H::Struct,
            AbstractHeapType::Array => H::Array,
            AbstractHeapType::None => H::None,
            AbstractHeapType::Cont | AbstractHeapType::NoCont => {
                return Err(CompileError::unsupported(
                    Some(offset),
                    format!("reference type {ty:?} (stack switching) is not supported"),
                ));
            }
        },
        HeapType::Concrete(idx) => {
            let index = match idx {
                wasmparser::UnpackedIndex::Module(i) => i,
                wasmparser::UnpackedIndex::RecGroup(i) => start as u32 + i,
                wasmparser::UnpackedIndex::Id(_) => {
                    return Err(CompileError::unsupported(
                        Some(offset),
                        "canonicalized type ids are not expected here",
                    ));
                }
            };
            match kinds.get(index as usize).map(|t| &t.composite) {
                Some(CompositeType::Func) => H::Concrete(index),
                Some(CompositeType::Struct(_)) => H::ConcreteStruct(index),
                Some(CompositeType::Array(_)) => H::ConcreteArray(index),
                None => {
                    return Err(CompileError::new(
                        CompileErrorKind::Invalid,
                        Some(offset),
                        format!("unknown type {index}"),
                    ));
                }
            }
        }
        _ => {
            return Err(CompileError::unsupported(
                Some(offset),
                format!("reference type {ty} is not supported"),
            ));
        }
    };
    Ok(ValType::reference(ty.is_nullable(), heap))
}

fn table_type(
    t: &wasmparser::TableType,
    kinds: &[SubType],
    offset: usize,
) -> Result<TableType, CompileError> {
    Ok(TableType {
        element: ref_type_in(t.element_type, kinds, 0, offset)?,
        minimum: t.initial,
        maximum: t.maximum,
        table64: t.table64,
    })
}

fn memory_type(m: &wasmparser::MemoryType, _offset: usize) -> Result<MemoryType, CompileError> {
    Ok(MemoryType {
        minimum: m.initial,
        maximum: m.maximum,
        memory64: m.memory64,
        shared: m.shared,
        // Validation allows only 1-byte and 64 KiB pages (custom-page-sizes).
        page_size_log2: m.page_size_log2.map_or(16, |l| l as u8),
    })
}

fn global_type(
    g: &wasmparser::GlobalType,
    kinds: &[SubType],
    offset: usize,
) -> Result<GlobalType, CompileError> {
    Ok(GlobalType {
        content: val_type(g.content_type, kinds, offset)?,
        mutable: g.mutable,
    })
}

/// Converts a (validated) constant expression into the runtime's small stack program.
fn const_expr(expr: &wasmparser::ConstExpr<'_>) -> Result<ConstExpr, CompileError> {
    use wasmparser::Operator as O;
    let mut reader = expr.get_operators_reader();
    let mut ops = Vec::new();
    while !reader.eof() {
        let (op, offset) = reader.read_with_offset().map_err(malformed)?;
        ops.push(match op {
            O::I32Const { value } => ConstOp::I32Const(value),
            O::I64Const { value } => ConstOp::I64Const(value),
            O::F32Const { value } => ConstOp::F32Const(value.bits()),
            O::F64Const { value } => ConstOp::F64Const(value.bits()),
            O::V128Const { value } => ConstOp::V128Const(value.i128() as u128),
            O::GlobalGet { global_index } => ConstOp::GlobalGet(global_index),
            O::RefNull { .. } => ConstOp::RefNull,
            O::RefFunc { function_index } => ConstOp::RefFunc(function_index),
            O::I32Add => ConstOp::I32Add,
            O::I32Sub => ConstOp::I32Sub,
            O::I32Mul => ConstOp::I32Mul,
            O::I64Add => ConstOp::I64Add,
            O::I64Sub => ConstOp::I64Sub,
            O::I64Mul => ConstOp::I64Mul,
            O::RefI31 => ConstOp::RefI31,
            O::StructNew { struct_type_index } => ConstOp::StructNew(struct_type_index),
            O::StructNewDefault { struct_type_index } => {
                ConstOp::StructNewDefault(struct_type_index)
            }
            O::ArrayNew { array_type_index } => ConstOp::ArrayNew(array_type_index),
            O::ArrayNewDefault { array_type_index } => ConstOp::ArrayNewDefault(array_type_index),
            O::ArrayNewFixed {
                array_type_index,
                array_size,
            } => ConstOp::ArrayNewFixed(array_type_index, array_size),
            O::AnyConvertExtern => ConstOp::AnyConvertExtern,
            O::ExternConvertAny => ConstOp::ExternConvertAny,
            O::End => continue,
            other => {
                return Err(CompileError::unsupported(
                    Some(offset as usize),
                    format!(
                        "operator `{}` in a constant expression is not supported",
                        crate::translate::operator_name(&other)
                    ),
                ));
            }
        });
    }
    Ok(ConstExpr(ops))
}
