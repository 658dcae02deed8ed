//! The function environment: everything that depends on the `VMContext` layout.
//! Global, memory, table and call lowering all live here so that the operator
//! translator (`code.rs`) never computes a context offset itself.
//!
//! # Memory accesses (read this before changing `heap_address`)
//! A wasm access of `size` bytes at `index + offset` is in bounds iff
//! `index + offset + size <= length`. wasmc reserves, for every 32-bit memory,
//! `MEMORY_RESERVATION` (4 GiB) plus `GUARD_SIZE` bytes of address space; everything
//! beyond `length` is PROT_NONE. For a 32-bit memory `index < 2^32`, so when
//! `offset + size <= GUARD_SIZE` the highest byte touched is below
//! `base + 4 GiB + GUARD_SIZE`: an out-of-bounds access always lands in inaccessible
//! pages and faults. That fault is reported as a trap because the load/store carries
//! the `HEAP_OUT_OF_BOUNDS` trap code, which makes it a recorded trap site. In every
//! other case (static offset too large, 64-bit memory, a memory of 1-byte pages
//! whose accessible region the runtime rounds up to an OS page, or explicit checks
//! requested) the access is compared against the current `length` first.
//!
//! # Spectre guards
//! A bounds check is a branch, and a mispredicted branch lets the access after it
//! run speculatively with an out-of-bounds index, leaving a cache trace of memory
//! the index chose. With `spectre_guards` (the default) every explicitly checked
//! address (memories and table elements) is computed as
//! `select_spectre_guard(oob, 0, addr)`: a data dependency on the compare, which
//! the CPU does not speculate on, so a speculative out-of-bounds access reads
//! address 0. The `trapnz` on the same condition stays in front of it, so the
//! address 0 is never accessed architecturally and the trap (code and site) is the
//! one the check raised before; the runtime's fault classification never sees it.
//! Guard-page accesses have no branch to mispredict and get no guard.
//!
//! # Alias regions
//! Every load and store the translator emits names the kind of memory it touches
//! ([`AliasRegions`]): linear memory, global values, table elements, or the runtime
//! descriptors (memory and table lengths and bases, `VMMemory`/`VMTable`). These
//! live in separate allocations (each linear memory in its own reservation, globals
//! and tables in runtime allocations), so a store to one never changes another,
//! and Cranelift's alias analysis may keep a loaded global or table bound in a
//! register across linear-memory stores (C code stores to memory all the time and
//! reads `__stack_pointer` at every call). Only calls (wasm, host and builtins:
//! `memory.grow`, `table.set` through the runtime, ...) and fences may change
//! several kinds, and Cranelift treats a call as a store to every region. Several
//! memories (or tables, or imported globals) can be the same object, imported
//! twice, so a kind is one region, never one per index.

use std::borrow::Cow;
use std::collections::HashMap;

use cranelift_codegen::ir::{
    self, AbiParam, AliasRegion, AliasRegionData, ArgumentPurpose, Block, BlockArg, Endianness,
    ExceptionTableData, ExceptionTableItem, FuncRef, InstBuilder, MemFlagsData, SigRef, Signature,
    StackSlotData, StackSlotKind, TrapCode, Type, Value, condcodes::IntCC, types,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::FunctionBuilder;
use wasmc_abi::{Builtin, Builtins, ConstOp, FuncType, ModuleInfo, Trap, VMContextLayout, ValType};

use super::fuel::Fuel;
use super::simd::SimdEnv;

/// Cranelift type of a wasm value type. References are pointer-sized; `v128` is
/// always carried as `I8X16`.
pub(crate) fn ir_type(ty: ValType) -> Type {
    match ty {
        ValType::I32 => types::I32,
        ValType::I64 => types::I64,
        ValType::F32 => types::F32,
        ValType::F64 => types::F64,
        ValType::V128 => types::I8X16,
        ValType::FuncRef | ValType::ExternRef | ValType::Ref(_) => types::I64,
    }
}

/// The wasm calling convention: `(callee_vmctx, params...) -> results`, `tail`.
pub(crate) fn wasm_signature(ty: &FuncType) -> Signature {
    let mut sig = Signature::new(CallConv::Tail);
    sig.params
        .push(AbiParam::special(types::I64, ArgumentPurpose::VMContext));
    sig.params
        .extend(ty.params.iter().map(|t| AbiParam::new(ir_type(*t))));
    sig.returns
        .extend(ty.results.iter().map(|t| AbiParam::new(ir_type(*t))));
    sig
}

/// Trap code for an `abi::Trap` that has no Cranelift built-in equivalent.
pub(crate) fn trap_code(trap: Trap) -> TrapCode {
    match trap {
        Trap::StackOverflow => TrapCode::STACK_OVERFLOW,
        Trap::MemoryOutOfBounds => TrapCode::HEAP_OUT_OF_BOUNDS,
        Trap::IntegerOverflow => TrapCode::INTEGER_OVERFLOW,
        Trap::IntegerDivisionByZero => TrapCode::INTEGER_DIVISION_BY_ZERO,
        Trap::BadConversionToInteger => TrapCode::BAD_CONVERSION_TO_INTEGER,
        other => TrapCode::unwrap_user(other as u8),
    }
}

/// Inverse of [`trap_code`], for the trap sites Cranelift reports.
pub(crate) fn abi_trap(code: TrapCode) -> Option<Trap> {
    Some(match code {
        TrapCode::STACK_OVERFLOW => Trap::StackOverflow,
        TrapCode::HEAP_OUT_OF_BOUNDS => Trap::MemoryOutOfBounds,
        TrapCode::INTEGER_OVERFLOW => Trap::IntegerOverflow,
        TrapCode::INTEGER_DIVISION_BY_ZERO => Trap::IntegerDivisionByZero,
        TrapCode::BAD_CONVERSION_TO_INTEGER => Trap::BadConversionToInteger,
        other => return Trap::from_u8(other.as_raw().get()),
    })
}

/// Flags for loads of context fields that never change while the instance lives.
pub(crate) fn frozen() -> MemFlagsData {
    MemFlagsData::trusted().with_readonly().with_can_move()
}

/// Flags for loads/stores of runtime state that may change (lengths, globals),
/// in `region` (see "Alias regions" in the module doc).
pub(crate) fn mutable(region: Option<AliasRegion>) -> MemFlagsData {
    MemFlagsData::trusted().with_alias_region(region)
}

/// The alias regions of one function (see the module doc). Regions belong to the
/// function's data-flow graph, so they are declared again for every function;
/// `None` (no region: may alias anything) until declared.
#[derive(Clone, Copy, Default)]
pub(crate) struct AliasRegions {
    /// Contents of linear memories.
    pub heap: Option<AliasRegion>,
    /// Values of globals (`VMGlobal`).
    pub globals: Option<AliasRegion>,
    /// Elements of tables.
    pub tables: Option<AliasRegion>,
    /// Runtime descriptors that change only in calls: `VMMemory`/`VMTable` length
    /// and base.
    pub descriptors: Option<AliasRegion>,
}

impl AliasRegions {
    /// Declares the regions in `func`. The ids are fixed, so regions stay distinct
    /// (and equal kinds merge) should functions ever be inlined into each other.
    pub fn declare(func: &mut ir::Function) -> Self {
        let mut region = |user_id, description| {
            Some(func.dfg.alias_regions.insert(AliasRegionData {
                user_id,
                description: Cow::Borrowed(description),
            }))
        };
        AliasRegions {
            heap: region(1, "linear memory"),
            globals: region(2, "globals"),
            tables: region(3, "table elements"),
            descriptors: region(4, "memory and table descriptors"),
        }
    }
}

pub(crate) struct FuncEnv<'m> {
    pub info: &'m ModuleInfo,
    layout: VMContextLayout,
    /// Cranelift function ids (`UserExternalName` indices) of the defined functions.
    func_ids: &'m [u32],
    explicit_bounds_checks: bool,
    /// Guard explicitly checked addresses against speculation (see the module doc).
    spectre_guards: bool,
    /// The ISA's C calling convention, for builtins.
    host_call_conv: CallConv,
    /// The function's own `vmctx` parameter.
    pub vmctx: Value,
    /// Signatures and callees imported into this function so far, by type and
    /// function index. Maps rather than vectors indexed by every type/function of the
    /// module: one vector per function would make compiling a module with n
    /// functions O(n²).
    sig_refs: HashMap<u32, SigRef>,
    func_refs: HashMap<u32, FuncRef>,
    builtin_sigs: [Option<SigRef>; Builtins::COUNT],
    /// Exception handler (the dispatch block of the innermost enclosing
    /// `try_table`) for the calls emitted now; `None` outside every `try_table`, where
    /// calls stay plain calls (an exception unwinds through them).
    pub handler: Option<Block>,
    /// Fuel metering state; `None` unless compiled with `fuel_metering`, and then
    /// no fuel code at all is emitted.
    pub fuel: Option<Fuel>,
    /// Set by [`FuncEnv::declare_alias_regions`].
    regions: AliasRegions,
}

impl<'m> FuncEnv<'m> {
    pub fn new(
        info: &'m ModuleInfo,
        func_ids: &'m [u32],
        explicit_bounds_checks: bool,
        spectre_guards: bool,
        host_call_conv: CallConv,
        vmctx: Value,
    ) -> Self {
        FuncEnv {
            info,
            layout: info.layout(),
            func_ids,
            explicit_bounds_checks,
            spectre_guards,
            host_call_conv,
            vmctx,
            sig_refs: HashMap::new(),
            func_refs: HashMap::new(),
            builtin_sigs: [None; Builtins::COUNT],
            handler: None,
            fuel: None,
            regions: AliasRegions::default(),
        }
    }

    /// Declares the alias regions in the function being built; until then accesses
    /// carry none (correct, only slower).
    pub fn declare_alias_regions(&mut self, func: &mut ir::Function) {
        self.regions = AliasRegions::declare(func);
    }

    // ---------------------------------------------------------------- fuel

    /// See [`Fuel::before_op`].
    pub fn fuel_before_op(&mut self, op: &wasmparser::Operator, builder: &mut FunctionBuilder) {
        let vmctx = self.vmctx;
        if let Some(fuel) = &mut self.fuel {
            fuel.before_op(op, builder, vmctx);
        }
    }

    /// See [`Fuel::after_op`].
    pub fn fuel_after_op(&mut self, op: &wasmparser::Operator, builder: &mut FunctionBuilder) {
        let vmctx = self.vmctx;
        if let Some(fuel) = &mut self.fuel {
            fuel.after_op(op, builder, vmctx);
        }
    }

    /// The fuel check of a loop header.
    pub fn fuel_check(&mut self, builder: &mut FunctionBuilder) {
        let vmctx = self.vmctx;
        if let Some(fuel) = &mut self.fuel {
            fuel.check(builder, vmctx);
        }
    }

    /// Writes the fuel count back before the function returns.
    pub fn fuel_flush(&mut self, builder: &mut FunctionBuilder) {
        let vmctx = self.vmctx;
        if let Some(fuel) = &mut self.fuel {
            fuel.flush(builder, vmctx);
        }
    }

    /// Charges the units of a bulk operation (see [`Fuel::bulk`]).
    pub fn fuel_bulk(
        &mut self,
        builder: &mut FunctionBuilder,
        units: Value,
        succeeded: Option<Value>,
    ) {
        let vmctx = self.vmctx;
        if let Some(fuel) = &mut self.fuel {
            fuel.bulk(builder, vmctx, units, succeeded);
        }
    }

    /// Charges a `memory.grow`/`table.grow` of `delta` that returned `prev`
    /// (all ones on failure).
    fn fuel_grow(&mut self, builder: &mut FunctionBuilder, delta: Value, prev: Value) {
        if self.fuel.is_some() {
            let ok = builder.ins().icmp_imm_s(IntCC::NotEqual, prev, -1);
            self.fuel_bulk(builder, delta, Some(ok));
        }
    }

    /// Reads the fuel count from memory where an exception arrives.
    pub fn fuel_reload(&mut self, builder: &mut FunctionBuilder) {
        let vmctx = self.vmctx;
        if let Some(fuel) = &mut self.fuel {
            fuel.reload(builder, vmctx);
        }
    }

    /// `addr`, or 0 when `oob` is set, without a branch the CPU could mispredict
    /// (see "Spectre guards" in the module doc). `oob` has already been trapped on.
    pub(super) fn spectre_guard(
        &self,
        builder: &mut FunctionBuilder,
        oob: Value,
        addr: Value,
    ) -> Value {
        if !self.spectre_guards {
            return addr;
        }
        let null = builder.ins().iconst(types::I64, 0);
        builder.ins().select_spectre_guard(oob, null, addr)
    }

    pub(crate) fn vmctx_load(&self, builder: &mut FunctionBuilder, offset: i32) -> Value {
        builder.ins().load(types::I64, frozen(), self.vmctx, offset)
    }

    // ---------------------------------------------------------------- globals

    fn global_ptr(&self, builder: &mut FunctionBuilder, index: u32) -> Value {
        self.vmctx_load(builder, self.layout.global(index))
    }

    /// The value of global `index` when it is known at compile time: a defined,
    /// immutable global whose initializer uses only constants. Nothing can change
    /// such a global after instantiation (not even when exported: immutable), and
    /// instantiation evaluates the same expression, so `global.get` is a constant.
    fn constant_global(&self, index: u32) -> Option<ConstOp> {
        let defined = index.checked_sub(self.info.num_imported_globals)?;
        let global = &self.info.defined_globals[defined as usize];
        if global.ty.mutable {
            return None;
        }
        let mut stack: Vec<ConstOp> = Vec::new();
        for op in &global.init.0 {
            let value = match *op {
                ConstOp::I32Const(_)
                | ConstOp::I64Const(_)
                | ConstOp::F32Const(_)
                | ConstOp::F64Const(_)
                | ConstOp::V128Const(_) => *op,
                ConstOp::I32Add | ConstOp::I32Sub | ConstOp::I32Mul => {
                    let (ConstOp::I32Const(b), ConstOp::I32Const(a)) = (stack.pop()?, stack.pop()?)
                    else {
                        return None;
                    };
                    ConstOp::I32Const(match op {
                        ConstOp::I32Add => a.wrapping_add(b),
                        ConstOp::I32Sub => a.wrapping_sub(b),
                        _ => a.wrapping_mul(b),
                    })
                }
                ConstOp::I64Add | ConstOp::I64Sub | ConstOp::I64Mul => {
                    let (ConstOp::I64Const(b), ConstOp::I64Const(a)) = (stack.pop()?, stack.pop()?)
                    else {
                        return None;
                    };
                    ConstOp::I64Const(match op {
                        ConstOp::I64Add => a.wrapping_add(b),
                        ConstOp::I64Sub => a.wrapping_sub(b),
                        _ => a.wrapping_mul(b),
                    })
                }
                // Imported globals, references: known only at instantiation.
                _ => return None,
            };
            stack.push(value);
        }
        match stack[..] {
            [value] => Some(value),
            _ => None,
        }
    }

    pub fn global_get(&self, builder: &mut FunctionBuilder, index: u32) -> Value {
        match self.constant_global(index) {
            Some(ConstOp::I32Const(v)) => return builder.ins().iconst(types::I32, i64::from(v)),
            Some(ConstOp::I64Const(v)) => return builder.ins().iconst(types::I64, v),
            Some(ConstOp::F32Const(bits)) => {
                return builder
                    .ins()
                    .f32const(ir::immediates::Ieee32::with_bits(bits));
            }
            Some(ConstOp::F64Const(bits)) => {
                return builder
                    .ins()
                    .f64const(ir::immediates::Ieee64::with_bits(bits));
            }
            Some(ConstOp::V128Const(bits)) => {
                let data = builder
                    .func
                    .dfg
                    .constants
                    .insert(bits.to_le_bytes().to_vec().into());
                return builder.ins().vconst(types::I8X16, data);
            }
            _ => {}
        }
        let ty = self.info.globals[index as usize];
        let flags = if ty.mutable {
            mutable(self.regions.globals)
        } else {
            frozen()
        };
        let (base, offset) = self.global_location(builder, index);
        builder.ins().load(ir_type(ty.content), flags, base, offset)
    }

    pub fn global_set(&self, builder: &mut FunctionBuilder, index: u32, value: Value) {
        let (base, offset) = self.global_location(builder, index);
        builder
            .ins()
            .store(mutable(self.regions.globals), value, base, offset);
    }

    /// Where global `index`'s value is: its inline slot in the `VMContext` (see
    /// `ModuleInfo::global_is_inline`), or the runtime object the context points at.
    fn global_location(&self, builder: &mut FunctionBuilder, index: u32) -> (Value, i32) {
        if self.info.global_is_inline(index) {
            (self.vmctx, self.layout.inline_global(index))
        } else {
            (self.global_ptr(builder, index), 0)
        }
    }

    // ---------------------------------------------------------------- memories

    pub fn memory64(&self, mem: u32) -> bool {
        self.info.memories[mem as usize].memory64
    }

    fn memory_ptr(&self, builder: &mut FunctionBuilder, mem: u32) -> Value {
        self.vmctx_load(builder, self.layout.memory(mem))
    }

    /// Whether an access of memory `mem` that ends at most `end` bytes past a
    /// 32-bit index needs no explicit check because it faults when out of bounds
    /// (see the module doc). Guard pages catch an access only where the accessible
    /// region ends exactly at the memory's end: with 64 KiB wasm pages (a multiple
    /// of every OS page size) it does; with 1-byte pages (custom-page-sizes) the
    /// runtime rounds it up to a whole OS page, so such memories are always checked
    /// explicitly.
    pub(super) fn guard_pages_catch(&self, mem: u32, end: u64) -> bool {
        !self.explicit_bounds_checks
            && !self.memory64(mem)
            && self.info.memories[mem as usize].page_size_log2 == 16
            && end <= wasmc_abi::GUARD_SIZE
    }

    /// The base address of memory `mem`. The base never moves (the reservation is
    /// made up front), so its load is `frozen`: `can_move` makes it pure for
    /// Cranelift, which then loads it once per function instead of again after
    /// every store and call. The context holds a copy of it: one load, not two
    /// through the `VMMemory`.
    pub(super) fn memory_base(&self, builder: &mut FunctionBuilder, mem: u32) -> Value {
        self.vmctx_load(builder, self.layout.memory_base(mem))
    }

    pub(super) fn memory_length(&self, builder: &mut FunctionBuilder, mem: u32) -> Value {
        let ptr = self.memory_ptr(builder, mem);
        if self.info.memories[mem as usize].shared {
            // Another thread may grow a shared memory at any time. A plain load
            // could be forwarded from an earlier one (a loop without stores would
            // never see the growth and trap spuriously); an atomic load is always
            // performed (a plain `mov` on x86_64, `ldar` on aarch64).
            let addr = builder
                .ins()
                .iadd_imm_s(ptr, i64::from(VMContextLayout::MEMORY_LENGTH));
            return builder
                .ins()
                .atomic_load(types::I64, mutable(self.regions.descriptors), addr);
        }
        builder.ins().load(
            types::I64,
            mutable(self.regions.descriptors),
            ptr,
            VMContextLayout::MEMORY_LENGTH,
        )
    }

    /// `memory.size` in pages (i32 for 32-bit memories).
    pub fn memory_size(&self, builder: &mut FunctionBuilder, mem: u32) -> Value {
        let length = self.memory_length(builder, mem);
        let log2 = self.info.memories[mem as usize].page_size_log2;
        let pages = builder.ins().ushr_imm_u(length, i64::from(log2));
        if self.memory64(mem) {
            pages
        } else {
            builder.ins().ireduce(types::I32, pages)
        }
    }

    pub fn memory_grow(&mut self, builder: &mut FunctionBuilder, mem: u32, delta: Value) -> Value {
        let delta = to_u64(builder, delta);
        let mem_v = builder.ins().iconst(types::I32, i64::from(mem));
        let vmctx = self.vmctx;
        let prev = self
            .call_builtin(builder, Builtin::MemoryGrow, &[vmctx, mem_v, delta])
            .expect("memory_grow returns a value");
        self.fuel_grow(builder, delta, prev);
        if self.memory64(mem) {
            prev
        } else {
            // u64::MAX (failure) truncates to -1 as required.
            builder.ins().ireduce(types::I32, prev)
        }
    }

    // ---------------------------------------------------------------- tables

    fn table_ptr(&self, builder: &mut FunctionBuilder, table: u32) -> Value {
        self.vmctx_load(builder, self.layout.table(table))
    }

    pub fn table64(&self, table: u32) -> bool {
        self.info.tables[table as usize].table64
    }

    /// Address of element `index` of `table`, trapping with `trap` when out of range.
    /// Every indexed table access (`table.get`/`set`, `call_indirect` and
    /// `return_call_indirect`) goes through here, so all of them get the Spectre
    /// guard; the bulk operations check their ranges in the runtime.
    fn table_entry_addr(
        &self,
        builder: &mut FunctionBuilder,
        table: u32,
        index: Value,
        trap: Trap,
    ) -> Value {
        let index = to_u64(builder, index);
        let ptr = self.table_ptr(builder, table);
        let length = self.table_length(builder, table, ptr);
        let oob = builder
            .ins()
            .icmp(IntCC::UnsignedGreaterThanOrEqual, index, length);
        builder.ins().trapnz(oob, trap_code(trap));
        // The base moves when the table grows: reload it after the length.
        let base = builder.ins().load(
            types::I64,
            mutable(self.regions.descriptors),
            ptr,
            VMContextLayout::TABLE_BASE,
        );
        let scaled = builder.ins().ishl_imm_u(index, 3);
        let addr = builder.ins().iadd(base, scaled);
        self.spectre_guard(builder, oob, addr)
    }

    pub fn table_get(&self, builder: &mut FunctionBuilder, table: u32, index: Value) -> Value {
        let addr = self.table_entry_addr(builder, table, index, Trap::TableOutOfBounds);
        builder
            .ins()
            .load(types::I64, mutable(self.regions.tables), addr, 0)
    }

    pub fn table_set(&self, builder: &mut FunctionBuilder, table: u32, index: Value, value: Value) {
        let addr = self.table_entry_addr(builder, table, index, Trap::TableOutOfBounds);
        builder
            .ins()
            .store(mutable(self.regions.tables), value, addr, 0);
    }

    /// The number of elements of a table whose minimum and maximum are equal: it
    /// can never grow (`table.grow` fails past the maximum), and an imported one
    /// matches only a table whose size lies between the two. wasm-ld gives C and
    /// Rust programs such a table, so `call_indirect` compares with a constant.
    fn fixed_table_length(&self, table: u32) -> Option<u64> {
        let ty = &self.info.tables[table as usize];
        (ty.maximum == Some(ty.minimum)).then_some(ty.minimum)
    }

    /// The current number of elements of `table` (i64), `ptr` its `VMTable`.
    fn table_length(&self, builder: &mut FunctionBuilder, table: u32, ptr: Value) -> Value {
        match self.fixed_table_length(table) {
            Some(length) => builder.ins().iconst(types::I64, length as i64),
            None => builder.ins().load(
                types::I64,
                mutable(self.regions.descriptors),
                ptr,
                VMContextLayout::TABLE_LENGTH,
            ),
        }
    }

    pub fn table_size(&self, builder: &mut FunctionBuilder, table: u32) -> Value {
        let ptr = self.table_ptr(builder, table);
        let length = self.table_length(builder, table, ptr);
        if self.table64(table) {
            length
        } else {
            builder.ins().ireduce(types::I32, length)
        }
    }

    pub fn table_grow(
        &mut self,
        builder: &mut FunctionBuilder,
        table: u32,
        init: Value,
        delta: Value,
    ) -> Value {
        let delta = to_u64(builder, delta);
        let table_v = builder.ins().iconst(types::I32, i64::from(table));
        let vmctx = self.vmctx;
        let prev = self
            .call_builtin(builder, Builtin::TableGrow, &[vmctx, table_v, delta, init])
            .expect("table_grow returns a value");
        self.fuel_grow(builder, delta, prev);
        if self.table64(table) {
            prev
        } else {
            builder.ins().ireduce(types::I32, prev)
        }
    }

    /// `ref.func`: the address of the function's `VMFuncRef` in this context.
    pub fn ref_func(&self, builder: &mut FunctionBuilder, func: u32) -> Value {
        builder
            .ins()
            .iadd_imm_u(self.vmctx, i64::from(self.layout.func_ref(func)))
    }

    // ---------------------------------------------------------------- builtins

    fn builtin_signature(&self, builtin: Builtin) -> Signature {
        use types::{I32, I64};
        let (params, ret): (&[Type], Option<Type>) = match builtin {
            Builtin::MemoryGrow => (&[I64, I32, I64], Some(I64)),
            Builtin::MemoryFill => (&[I64, I32, I64, I32, I64], Some(I32)),
            Builtin::MemoryCopy => (&[I64, I32, I32, I64, I64, I64], Some(I32)),
            Builtin::MemoryInit => (&[I64, I32, I32, I64, I32, I32], Some(I32)),
            Builtin::DataDrop => (&[I64, I32], None),
            Builtin::TableGrow => (&[I64, I32, I64, I64], Some(I64)),
            Builtin::TableFill => (&[I64, I32, I64, I64, I64], Some(I32)),
            Builtin::TableCopy => (&[I64, I32, I32, I64, I64, I64], Some(I32)),
            Builtin::TableInit => (&[I64, I32, I32, I64, I32, I32], Some(I32)),
            Builtin::ElemDrop => (&[I64, I32], None),
            Builtin::RaiseTrap => (&[I64, I32], None),
            Builtin::ExnNew => (&[I64, I32, I64], Some(I64)),
            Builtin::ThrowRef => (&[I64, I64], None),
            Builtin::MemoryAtomicWait32 => (&[I64, I32, I64, I64, I32, I64], Some(I32)),
            Builtin::MemoryAtomicWait64 => (&[I64, I32, I64, I64, I64, I64], Some(I32)),
            Builtin::MemoryAtomicNotify => (&[I64, I32, I64, I64, I32], Some(I64)),
            Builtin::GcAlloc => (&[I64, I32, I32], Some(I64)),
            Builtin::ArrayNewData | Builtin::ArrayNewElem => (&[I64, I32, I32, I32, I32], None),
            Builtin::ArrayFill => (&[I64, I64, I32, I64, I32], None),
            Builtin::ArrayCopy => (&[I64, I64, I32, I64, I32, I32], None),
            Builtin::ArrayInitData | Builtin::ArrayInitElem => {
                (&[I64, I64, I32, I32, I32, I32], None)
            }
            Builtin::IsSubtype => (&[I32, I32], Some(I32)),
            Builtin::Memmove => (&[I64, I64, I64], Some(I64)),
            Builtin::Memset => (&[I64, I32, I64], Some(I64)),
        };
        let mut sig = Signature::new(self.host_call_conv);
        sig.params.extend(params.iter().map(|t| AbiParam::new(*t)));
        sig.returns.extend(ret.map(AbiParam::new));
        sig
    }

    /// Calls `builtins[builtin]` with the C convention; returns its result if any.
    pub fn call_builtin(
        &mut self,
        builder: &mut FunctionBuilder,
        builtin: Builtin,
        args: &[Value],
    ) -> Option<Value> {
        let sig = match self.builtin_sigs[builtin as usize] {
            Some(sig) => sig,
            None => {
                let sig = builder.import_signature(self.builtin_signature(builtin));
                self.builtin_sigs[builtin as usize] = Some(sig);
                sig
            }
        };
        let table = self.vmctx_load(builder, VMContextLayout::BUILTINS);
        let func = builder.ins().load(
            types::I64,
            frozen(),
            table,
            Builtins::offset_of(builtin as usize),
        );
        let call = builder.ins().call_indirect(sig, func, args);
        builder.inst_results(call).first().copied()
    }

    /// Calls a builtin that returns a status and traps with `trap` when it is non-zero.
    pub fn call_checked_builtin(
        &mut self,
        builder: &mut FunctionBuilder,
        builtin: Builtin,
        args: &[Value],
        trap: Trap,
    ) {
        let status = self
            .call_builtin(builder, builtin, args)
            .expect("checked builtins return a status");
        builder.ins().trapnz(status, trap_code(trap));
    }

    // ---------------------------------------------------------------- calls

    pub fn sig_ref(&mut self, builder: &mut FunctionBuilder, type_index: u32) -> SigRef {
        if let Some(&sig) = self.sig_refs.get(&type_index) {
            return sig;
        }
        let sig = builder.import_signature(wasm_signature(&self.info.types[type_index as usize]));
        self.sig_refs.insert(type_index, sig);
        sig
    }

    fn direct_func_ref(&mut self, builder: &mut FunctionBuilder, func: u32) -> FuncRef {
        if let Some(&f) = self.func_refs.get(&func) {
            return f;
        }
        let type_index = self.info.functions[func as usize];
        let sig = self.sig_ref(builder, type_index);
        let defined = func - self.info.num_imported_funcs;
        let name = builder
            .func
            .declare_imported_user_function(ir::UserExternalName::new(
                0,
                self.func_ids[defined as usize],
            ));
        let f = builder.import_function(ir::ExtFuncData {
            name: ir::ExternalName::user(name),
            signature: sig,
            // Defined functions are in the same object: a PC-relative call reaches them.
            colocated: true,
            patchable: false,
        });
        self.func_refs.insert(func, f);
        f
    }

    /// Emits a call (or tail call) to function `func`. Returns the results of a
    /// normal call; a tail call terminates the block and returns nothing.
    pub fn call(
        &mut self,
        builder: &mut FunctionBuilder,
        func: u32,
        args: &[Value],
        tail: bool,
    ) -> Vec<Value> {
        let mut full_args = Vec::with_capacity(args.len() + 1);
        if func < self.info.num_imported_funcs {
            // Imports are called through their VMFuncRef, which the runtime fills in
            // once at instantiation.
            let offset = self.layout.func_ref(func);
            let code = builder.ins().load(
                types::I64,
                frozen(),
                self.vmctx,
                offset + VMContextLayout::FUNC_REF_WASM_CALL,
            );
            let callee_vmctx = builder.ins().load(
                types::I64,
                frozen(),
                self.vmctx,
                offset + VMContextLayout::FUNC_REF_VMCTX,
            );
            full_args.push(callee_vmctx);
            full_args.extend_from_slice(args);
            let sig = self.sig_ref(builder, self.info.functions[func as usize]);
            self.emit_call(builder, sig, Callee::Indirect(code), &full_args, tail)
        } else {
            full_args.push(self.vmctx);
            full_args.extend_from_slice(args);
            let f = self.direct_func_ref(builder, func);
            let sig = builder.func.dfg.ext_funcs[f].signature;
            self.emit_call(builder, sig, Callee::Direct(f), &full_args, tail)
        }
    }

    /// `call_indirect` / `return_call_indirect`: bounds check ("undefined element"),
    /// null check ("uninitialized element"), canonical type id check
    /// ("indirect call type mismatch"), then a call through the `VMFuncRef`.
    pub fn call_indirect(
        &mut self,
        builder: &mut FunctionBuilder,
        type_index: u32,
        table: u32,
        index: Value,
        args: &[Value],
        tail: bool,
    ) -> Vec<Value> {
        let addr = self.table_entry_addr(builder, table, index, Trap::OutOfBoundsElement);
        let func_ref = builder
            .ins()
            .load(types::I64, mutable(self.regions.tables), addr, 0);
        builder
            .ins()
            .trapz(func_ref, trap_code(Trap::IndirectCallToNull));
        let type_ids = self.vmctx_load(builder, VMContextLayout::TYPE_IDS);
        let expected = builder
            .ins()
            .load(types::I32, frozen(), type_ids, (type_index * 4) as i32);
        // A VMFuncRef never changes once a table points at it.
        let actual = builder.ins().load(
            types::I32,
            MemFlagsData::trusted().with_readonly(),
            func_ref,
            VMContextLayout::FUNC_REF_TYPE_ID,
        );
        if self.info.sub_types[type_index as usize].is_final {
            // A final type has no subtypes: the ids must be equal (the only check
            // for modules without GC types).
            let mismatch = builder.ins().icmp(IntCC::NotEqual, expected, actual);
            builder
                .ins()
                .trapnz(mismatch, trap_code(Trap::BadSignature));
        } else {
            let ok = self.is_subtype(builder, actual, expected, type_index);
            builder.ins().trapz(ok, trap_code(Trap::BadSignature));
        }
        self.call_func_ref(builder, type_index, func_ref, args, tail)
    }

    /// The canonical id of type index `type_index` of this module (i32).
    pub fn type_id(&self, builder: &mut FunctionBuilder, type_index: u32) -> Value {
        let type_ids = self.vmctx_load(builder, VMContextLayout::TYPE_IDS);
        builder
            .ins()
            .load(types::I32, frozen(), type_ids, (type_index * 4) as i32)
    }

    /// Whether canonical type `actual` is type index `type_index` (canonical id
    /// `expected`) or a declared subtype of it: an i8 truth value (see
    /// `gc::is_subtype`: the supertype display, inline).
    pub fn is_subtype(
        &mut self,
        builder: &mut FunctionBuilder,
        actual: Value,
        expected: Value,
        type_index: u32,
    ) -> Value {
        super::gc::is_subtype(builder, self, actual, expected, type_index)
    }

    /// `call_ref` / `return_call_ref`: a null check ("null function reference"), then
    /// a call through the `VMFuncRef`. Validation guarantees that a non-null
    /// reference of static type `(ref null? $t)` points at a function of type `$t`
    /// (types have no declared subtypes), so no type check is needed.
    pub fn call_ref(
        &mut self,
        builder: &mut FunctionBuilder,
        type_index: u32,
        func_ref: Value,
        args: &[Value],
        tail: bool,
    ) -> Vec<Value> {
        builder
            .ins()
            .trapz(func_ref, trap_code(Trap::NullFunctionReference));
        self.call_func_ref(builder, type_index, func_ref, args, tail)
    }

    /// Calls (or tail-calls) the non-null, type-checked `func_ref`.
    fn call_func_ref(
        &mut self,
        builder: &mut FunctionBuilder,
        type_index: u32,
        func_ref: Value,
        args: &[Value],
        tail: bool,
    ) -> Vec<Value> {
        // A VMFuncRef never changes once a reference to it exists.
        let code = builder.ins().load(
            types::I64,
            MemFlagsData::trusted().with_readonly(),
            func_ref,
            VMContextLayout::FUNC_REF_WASM_CALL,
        );
        let callee_vmctx = builder.ins().load(
            types::I64,
            MemFlagsData::trusted().with_readonly(),
            func_ref,
            VMContextLayout::FUNC_REF_VMCTX,
        );
        let mut full_args = Vec::with_capacity(args.len() + 1);
        full_args.push(callee_vmctx);
        full_args.extend_from_slice(args);
        let sig = self.sig_ref(builder, type_index);
        self.emit_call(builder, sig, Callee::Indirect(code), &full_args, tail)
    }

    /// Emits a wasm call. A tail call leaves the frame, so enclosing handlers do not
    /// apply to it. A normal call inside a `try_table` becomes a `try_call` whose
    /// only handler (a catch-all) is the dispatch block, which receives the
    /// exception pointer; the call continues at a fresh block holding the results.
    fn emit_call(
        &mut self,
        builder: &mut FunctionBuilder,
        sig: SigRef,
        callee: Callee,
        args: &[Value],
        tail: bool,
    ) -> Vec<Value> {
        if tail {
            match callee {
                Callee::Direct(f) => builder.ins().return_call(f, args),
                Callee::Indirect(code) => builder.ins().return_call_indirect(sig, code, args),
            };
            return Vec::new();
        }
        let Some(dispatch) = self.handler else {
            let call = match callee {
                Callee::Direct(f) => builder.ins().call(f, args),
                Callee::Indirect(code) => builder.ins().call_indirect(sig, code, args),
            };
            return builder.inst_results(call).to_vec();
        };
        let returns: Vec<Type> = builder.func.dfg.signatures[sig]
            .returns
            .iter()
            .map(|p| p.value_type)
            .collect();
        let continuation = builder.create_block();
        for ty in &returns {
            builder.append_block_param(continuation, *ty);
        }
        let ret_args: Vec<BlockArg> = (0..returns.len() as u32)
            .map(BlockArg::TryCallRet)
            .collect();
        let normal = builder.func.dfg.block_call(continuation, &ret_args);
        let exceptional = builder
            .func
            .dfg
            .block_call(dispatch, &[BlockArg::TryCallExn(0)]);
        let table = builder
            .func
            .dfg
            .exception_tables
            .push(ExceptionTableData::new(
                sig,
                normal,
                [ExceptionTableItem::Default(exceptional)],
            ));
        match callee {
            Callee::Direct(f) => builder.ins().try_call(f, args, table),
            Callee::Indirect(code) => builder.ins().try_call_indirect(code, args, table),
        };
        builder.seal_block(continuation);
        builder.switch_to_block(continuation);
        builder.block_params(continuation).to_vec()
    }

    // ---------------------------------------------------------------- exceptions

    /// The identity word of tag `tag` (see `VMContextLayout::tag`).
    pub fn tag_identity(&self, builder: &mut FunctionBuilder, tag: u32) -> Value {
        self.vmctx_load(builder, self.layout.tag(tag))
    }

    /// Parameter types of tag `tag`.
    pub fn tag_params(&self, tag: u32) -> &'m [ValType] {
        let info: &'m ModuleInfo = self.info;
        &info.types[info.tags[tag as usize] as usize].params
    }

    /// `exn_new`: a new exception of tag `tag` carrying `values`. The values are
    /// passed in a stack array of 16-byte slots (`abi::ValRaw`).
    pub fn exn_new(&mut self, builder: &mut FunctionBuilder, tag: u32, values: &[Value]) -> Value {
        let array = if values.is_empty() {
            builder.ins().iconst(types::I64, 0)
        } else {
            let slot = builder.create_sized_stack_slot(StackSlotData::new(
                StackSlotKind::ExplicitSlot,
                16 * values.len() as u32,
                4,
            ));
            let addr = builder.ins().stack_addr(types::I64, slot, 0);
            for (i, v) in values.iter().enumerate() {
                builder
                    .ins()
                    .store(MemFlagsData::trusted(), *v, addr, 16 * i as i32);
            }
            addr
        };
        let tag_v = builder.ins().iconst(types::I32, i64::from(tag));
        let vmctx = self.vmctx;
        self.call_builtin(builder, Builtin::ExnNew, &[vmctx, tag_v, array])
            .expect("exn_new returns the exception")
    }

    /// The payload of `exn`, known to be of tag `tag`. An exception never changes.
    pub fn exn_payload(&self, builder: &mut FunctionBuilder, exn: Value, tag: u32) -> Vec<Value> {
        let flags = MemFlagsData::trusted().with_readonly();
        let params = self.tag_params(tag);
        if params.is_empty() {
            return Vec::new();
        }
        let values = builder
            .ins()
            .load(types::I64, flags, exn, VMContextLayout::EXCEPTION_VALUES);
        params
            .iter()
            .enumerate()
            .map(|(i, t)| {
                builder
                    .ins()
                    .load(ir_type(*t), flags, values, 16 * i as i32)
            })
            .collect()
    }

    /// Throws the non-null `exn`: to `handler` (a dispatch block of this function)
    /// when the throw is inside a `try_table`, else through the `throw_ref` builtin,
    /// which unwinds the wasm frames above this one. Terminates the current block.
    pub fn throw(&mut self, builder: &mut FunctionBuilder, exn: Value, handler: Option<Block>) {
        match handler {
            Some(dispatch) => {
                builder.ins().jump(dispatch, &[BlockArg::Value(exn)]);
            }
            None => {
                let vmctx = self.vmctx;
                self.call_builtin(builder, Builtin::ThrowRef, &[vmctx, exn]);
                // `throw_ref` never returns.
                builder.ins().trap(trap_code(Trap::UnreachableCodeReached));
            }
        }
    }
}

/// The target of a wasm call.
#[derive(Clone, Copy)]
enum Callee {
    Direct(FuncRef),
    Indirect(Value),
}

/// Zero-extends an i32 operand to i64 (64-bit memories/tables already pass i64).
pub(crate) fn to_u64(builder: &mut FunctionBuilder, v: Value) -> Value {
    if builder.func.dfg.value_type(v) == types::I64 {
        v
    } else {
        builder.ins().uextend(types::I64, v)
    }
}

impl SimdEnv for FuncEnv<'_> {
    fn heap_address(
        &mut self,
        builder: &mut FunctionBuilder,
        memarg: &wasmparser::MemArg,
        index: Value,
        access_size: u32,
    ) -> Value {
        let mem = match memarg.target {
            wasmparser::MemArgTarget::Memory(mem) => mem,
            // GC is not enabled, so validation rejects array-targeted memargs.
            wasmparser::MemArgTarget::Array(_) => unreachable!("array memarg without GC"),
        };
        let memory64 = self.memory64(mem);
        let offset = memarg.offset;
        let end = offset.checked_add(u64::from(access_size));
        let guarded = end.is_some_and(|end| self.guard_pages_catch(mem, end));
        let index = to_u64(builder, index);
        // The bounds check's condition, when there is one, for the Spectre guard.
        let mut checked = None;
        match end {
            _ if guarded => {}
            // offset + size overflows u64: no index can make this access valid.
            None => {
                builder.ins().trap(trap_code(Trap::MemoryOutOfBounds));
                // Keep the block well-formed for the caller, which still emits the access
                // (it is unreachable). Fresh block: nothing jumps to it.
                let dead = builder.create_block();
                builder.switch_to_block(dead);
                builder.seal_block(dead);
            }
            Some(end) => {
                let length = self.memory_length(builder, mem);
                // For a 32-bit memory `index + end` cannot overflow (index < 2^32,
                // end < 2^64 - 2^32 is checked below); for a 64-bit one use a trapping add.
                let (limit, overflow) = if !memory64 && end <= u64::MAX - u64::from(u32::MAX) {
                    (builder.ins().iadd_imm_u(index, end as i64), None)
                } else if self.spectre_guards {
                    // A wrapped sum passes the compare below: the guard's condition
                    // must include the overflow, or a speculative access could reach
                    // the bytes just below the base (`base + index + offset` wraps).
                    let end_v = builder.ins().iconst(types::I64, end as i64);
                    let (sum, overflow) = builder.ins().uadd_overflow(index, end_v);
                    (sum, Some(overflow))
                } else {
                    let end_v = builder.ins().iconst(types::I64, end as i64);
                    let sum = builder.ins().uadd_overflow_trap(
                        index,
                        end_v,
                        trap_code(Trap::MemoryOutOfBounds),
                    );
                    (sum, None)
                };
                let beyond = builder
                    .ins()
                    .icmp(IntCC::UnsignedGreaterThan, limit, length);
                let oob = match overflow {
                    Some(overflow) => builder.ins().bor(beyond, overflow),
                    None => beyond,
                };
                builder
                    .ins()
                    .trapnz(oob, trap_code(Trap::MemoryOutOfBounds));
                checked = Some(oob);
            }
        }
        let base = self.memory_base(builder, mem);
        let addr = builder.ins().iadd(base, index);
        let addr = if offset == 0 {
            addr
        } else {
            builder.ins().iadd_imm_u(addr, offset as i64)
        };
        // Guard the final address (offset included), so that a speculative
        // out-of-bounds access touches the first bytes of address 0 only.
        match checked {
            Some(oob) => self.spectre_guard(builder, oob, addr),
            None => addr,
        }
    }

    fn heap_flags(&self) -> MemFlagsData {
        MemFlagsData::new()
            .with_endianness(Endianness::Little)
            .with_trap_code(Some(TrapCode::HEAP_OUT_OF_BOUNDS))
            .with_alias_region(self.regions.heap)
    }
}
