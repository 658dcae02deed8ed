//! Translation of the GC proposal's operators: structs, arrays, i31, casts, the
//! extern/any conversions.
//!
//! The reference encoding and object layout are `abi::gc`'s: null 0, an i31 an odd
//! word, a host reference `…10`, an object a 16-byte-aligned pointer whose header
//! holds its canonical type id, kind and (arrays) length. Field and element accesses
//! are inline loads and stores after a null check (and, for arrays, a bounds check
//! against the header's length); the bulk array operations call builtins. Objects
//! never move, so loaded pointers stay valid across calls; the values themselves
//! are kept alive across allocations by the stack maps (`translate::GcRefTracking`).
//!
//! *Allocation* of an object whose size is known here (structs, `array.new_fixed`)
//! and small enough to be a cell pops the thread's free list of its size class
//! inline (`VMRuntimeState::gc_free_cells`, reached through `vmctx->runtime`) and
//! writes the header; only an empty list calls the `gc_alloc` builtin, which
//! refills it and may collect. No call happens between the pop and the push of the
//! new object, so the collector never runs while an object is unrooted, and the
//! fields are written right after (a popped cell holds old bytes: every field is
//! written, by `struct.new`'s operands or zeros).
//!
//! *Casts* to a concrete type compare ids, and for a non-final target at depth
//! `d` read entry `d` of the object's type's supertype display (`abi::gc` "Type
//! rows"): one load and one compare, no call, for targets less than
//! `TYPE_ROW_DISPLAY_LEN` deep.

use cranelift_codegen::ir::{
    BlockArg, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value, condcodes::IntCC,
    types,
};
use cranelift_frontend::FunctionBuilder;
use wasmc_abi::gc::{
    ARRAY_LENGTH, GC_HEADER_SIZE, HOST_REF_TAG, KIND_ARRAY, KIND_STRUCT, MARK_UNMARKED,
    OBJECT_KIND, OBJECT_TYPE_ID, REF_TAG_MASK, TYPE_ROW_DISPLAY, TYPE_ROW_DISPLAY_LEN,
    TYPE_ROW_SIZE, cell_class,
};
use wasmc_abi::{
    Builtin, CompositeType, FieldType, HeapType, StorageType, Trap, VMContextLayout, ValType,
};
use wasmparser::Operator;

use super::code::{branch_args_for_gc, jump_args};
use super::control::State;
use super::environ::{FuncEnv, ir_type, trap_code};
use crate::CompileError;
use crate::module_env::ref_type_in;

/// Flags of a GC object access: objects are aligned and outside linear memory; the
/// pointer has been null-checked, so the access cannot trap.
fn object_flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Whether `op` belongs to the GC proposal (translated here).
pub(crate) fn is_gc_operator(op: &Operator) -> bool {
    use Operator as O;
    matches!(
        op,
        O::RefEq
            | O::RefI31
            | O::I31GetS
            | O::I31GetU
            | O::AnyConvertExtern
            | O::ExternConvertAny
            | O::StructNew { .. }
            | O::StructNewDefault { .. }
            | O::StructGet { .. }
            | O::StructGetS { .. }
            | O::StructGetU { .. }
            | O::StructSet { .. }
            | O::ArrayNew { .. }
            | O::ArrayNewDefault { .. }
            | O::ArrayNewFixed { .. }
            | O::ArrayNewData { .. }
            | O::ArrayNewElem { .. }
            | O::ArrayGet { .. }
            | O::ArrayGetS { .. }
            | O::ArrayGetU { .. }
            | O::ArraySet { .. }
            | O::ArrayLen
            | O::ArrayFill { .. }
            | O::ArrayCopy { .. }
            | O::ArrayInitData { .. }
            | O::ArrayInitElem { .. }
            | O::RefTestNonNull { .. }
            | O::RefTestNullable { .. }
            | O::RefCastNonNull { .. }
            | O::RefCastNullable { .. }
            | O::BrOnCast { .. }
            | O::BrOnCastFail { .. }
    )
}

/// Translates `op` if it is a GC operator; `Ok(false)` otherwise.
pub(crate) fn translate_gc_operator(
    op: &Operator,
    offset: usize,
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
) -> Result<bool, CompileError> {
    use Operator as O;
    match op {
        O::RefEq => {
            let (a, b) = state.pop2();
            let c = builder.ins().icmp(IntCC::Equal, a, b);
            let r = builder.ins().uextend(types::I32, c);
            state.push(r);
        }
        // i31: the value in bits 1..32 of the word, bit 0 set (see `abi::gc`).
        O::RefI31 => {
            let x = state.pop();
            let shifted = builder.ins().ishl_imm_u(x, 1);
            let tagged = builder.ins().bor_imm_u(shifted, 1);
            let r = builder.ins().uextend(types::I64, tagged);
            state.push(r);
        }
        O::I31GetS | O::I31GetU => {
            let r = state.pop();
            builder.ins().trapz(r, trap_code(Trap::NullI31Reference));
            let w = builder.ins().ireduce(types::I32, r);
            let v = if matches!(op, O::I31GetS) {
                builder.ins().sshr_imm_s(w, 1)
            } else {
                builder.ins().ushr_imm_u(w, 1)
            };
            state.push(v);
        }
        // The representations of host references and objects are shared by both
        // hierarchies, so the conversions are the identity.
        O::AnyConvertExtern | O::ExternConvertAny => {}

        // ------------------------------------------------------------ structs
        O::StructNew { struct_type_index } | O::StructNewDefault { struct_type_index } => {
            let fields = struct_fields(env, *struct_type_index).to_vec();
            let values = if matches!(op, O::StructNew { .. }) {
                state.popn(fields.len())
            } else {
                Vec::new()
            };
            let (offsets, size) = wasmc_abi::gc::struct_layout(&fields);
            let zero_fields = values.is_empty() && !fields.is_empty();
            let obj = alloc_fixed(
                builder,
                env,
                *struct_type_index,
                FixedShape {
                    kind: KIND_STRUCT,
                    length: 0,
                    size,
                    zero_fields,
                },
            );
            for ((field, offset), value) in fields.iter().zip(&offsets).zip(values) {
                store_field(builder, field.storage, value, obj, *offset as i32);
            }
            state.push(obj);
        }
        O::StructGet {
            struct_type_index,
            field_index,
        }
        | O::StructGetS {
            struct_type_index,
            field_index,
        }
        | O::StructGetU {
            struct_type_index,
            field_index,
        } => {
            let obj = state.pop();
            builder
                .ins()
                .trapz(obj, trap_code(Trap::NullStructReference));
            let (field, offset) = struct_field(env, *struct_type_index, *field_index);
            let signed = matches!(op, O::StructGetS { .. });
            let v = load_field(builder, field.storage, signed, obj, offset);
            state.push(v);
        }
        O::StructSet {
            struct_type_index,
            field_index,
        } => {
            let (obj, value) = state.pop2();
            builder
                .ins()
                .trapz(obj, trap_code(Trap::NullStructReference));
            let (field, offset) = struct_field(env, *struct_type_index, *field_index);
            store_field(builder, field.storage, value, obj, offset);
        }

        // ------------------------------------------------------------ arrays
        O::ArrayNew { array_type_index } => {
            let (value, length) = state.pop2();
            let arr = alloc_array(builder, env, *array_type_index, length, Some(value));
            state.push(arr);
        }
        O::ArrayNewDefault { array_type_index } => {
            let length = state.pop();
            let arr = alloc_array(builder, env, *array_type_index, length, None);
            state.push(arr);
        }
        O::ArrayNewFixed {
            array_type_index,
            array_size,
        } => {
            let values = state.popn(*array_size as usize);
            let storage = array_element(env, *array_type_index).storage;
            let arr = match wasmc_abi::gc::array_size(storage, *array_size)
                .and_then(|size| u32::try_from(size).ok())
            {
                Some(size) => alloc_fixed(
                    builder,
                    env,
                    *array_type_index,
                    FixedShape {
                        kind: KIND_ARRAY,
                        length: *array_size,
                        size,
                        zero_fields: false,
                    },
                ),
                None => {
                    let length = builder.ins().iconst(types::I32, i64::from(*array_size));
                    alloc(builder, env, *array_type_index, Some(length))
                }
            };
            for (i, value) in values.into_iter().enumerate() {
                let at = GC_HEADER_SIZE + i as u32 * storage.size();
                store_field(builder, storage, value, arr, at as i32);
            }
            state.push(arr);
        }
        O::ArrayNewData {
            array_type_index,
            array_data_index,
        }
        | O::ArrayNewElem {
            array_type_index,
            array_elem_index: array_data_index,
        } => {
            let (source, length) = state.pop2();
            let data = matches!(op, O::ArrayNewData { .. });
            let t = builder
                .ins()
                .iconst(types::I32, i64::from(*array_type_index));
            let seg = builder
                .ins()
                .iconst(types::I32, i64::from(*array_data_index));
            let vmctx = env.vmctx;
            // The segment range is checked before anything is allocated.
            let check = if data {
                Builtin::ArrayNewData
            } else {
                Builtin::ArrayNewElem
            };
            env.call_builtin(builder, check, &[vmctx, t, seg, source, length]);
            let arr = alloc(builder, env, *array_type_index, Some(length));
            let zero = builder.ins().iconst(types::I32, 0);
            let init = if data {
                Builtin::ArrayInitData
            } else {
                Builtin::ArrayInitElem
            };
            env.call_builtin(builder, init, &[vmctx, arr, zero, seg, source, length]);
            state.push(arr);
        }
        O::ArrayGet { array_type_index }
        | O::ArrayGetS { array_type_index }
        | O::ArrayGetU { array_type_index } => {
            let (arr, index) = state.pop2();
            let storage = array_element(env, *array_type_index).storage;
            let addr = element_addr(builder, arr, index, storage);
            let signed = matches!(op, O::ArrayGetS { .. });
            let v = load_field(builder, storage, signed, addr, 0);
            state.push(v);
        }
        O::ArraySet { array_type_index } => {
            let (arr, index, value) = state.pop3();
            let storage = array_element(env, *array_type_index).storage;
            let addr = element_addr(builder, arr, index, storage);
            store_field(builder, storage, value, addr, 0);
        }
        O::ArrayLen => {
            let arr = state.pop();
            builder
                .ins()
                .trapz(arr, trap_code(Trap::NullArrayReference));
            let len = builder
                .ins()
                .load(types::I32, object_flags(), arr, ARRAY_LENGTH);
            state.push(len);
        }
        O::ArrayFill { .. } => {
            let [arr, index, value, length] = state.popn(4).try_into().expect("4 operands");
            builder
                .ins()
                .trapz(arr, trap_code(Trap::NullArrayReference));
            fill(builder, env, arr, index, value, length);
        }
        O::ArrayCopy { .. } => {
            let [dst, di, src, si, length] = state.popn(5).try_into().expect("5 operands");
            builder
                .ins()
                .trapz(dst, trap_code(Trap::NullArrayReference));
            builder
                .ins()
                .trapz(src, trap_code(Trap::NullArrayReference));
            let vmctx = env.vmctx;
            env.call_builtin(
                builder,
                Builtin::ArrayCopy,
                &[vmctx, dst, di, src, si, length],
            );
        }
        O::ArrayInitData {
            array_data_index: seg,
            ..
        }
        | O::ArrayInitElem {
            array_elem_index: seg,
            ..
        } => {
            let [arr, dst, src, length] = state.popn(4).try_into().expect("4 operands");
            builder
                .ins()
                .trapz(arr, trap_code(Trap::NullArrayReference));
            let seg = builder.ins().iconst(types::I32, i64::from(*seg));
            let vmctx = env.vmctx;
            let builtin = if matches!(op, O::ArrayInitData { .. }) {
                Builtin::ArrayInitData
            } else {
                Builtin::ArrayInitElem
            };
            env.call_builtin(builder, builtin, &[vmctx, arr, dst, seg, src, length]);
        }

        // ------------------------------------------------------------ casts
        O::RefTestNonNull { hty } | O::RefTestNullable { hty } => {
            let nullable = matches!(op, O::RefTestNullable { .. });
            let heap = heap_type(env, *hty, offset)?;
            let r = state.pop();
            let ok = ref_test(builder, env, r, nullable, heap);
            let v = builder.ins().uextend(types::I32, ok);
            state.push(v);
        }
        O::RefCastNonNull { hty } | O::RefCastNullable { hty } => {
            let nullable = matches!(op, O::RefCastNullable { .. });
            let heap = heap_type(env, *hty, offset)?;
            let r = *state.stack.last().expect("validated");
            let ok = ref_test(builder, env, r, nullable, heap);
            builder.ins().trapz(ok, trap_code(Trap::CastFailure));
        }
        O::BrOnCast {
            relative_depth,
            to_ref_type,
            ..
        }
        | O::BrOnCastFail {
            relative_depth,
            to_ref_type,
            ..
        } => {
            let heap = heap_type(env, to_ref_type.heap_type(), offset)?;
            let r = *state.stack.last().expect("validated");
            let ok = ref_test(builder, env, r, to_ref_type.is_nullable(), heap);
            let (target, args) = branch_args_for_gc(state, *relative_depth);
            let args = jump_args(&args);
            let next = builder.create_block();
            if matches!(op, O::BrOnCast { .. }) {
                builder.ins().brif(ok, target, &args, next, &[]);
            } else {
                builder.ins().brif(ok, next, &[], target, &args);
            }
            builder.seal_block(next);
            builder.switch_to_block(next);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Our heap type of a wasmparser heap type in a cast.
fn heap_type(
    env: &FuncEnv,
    hty: wasmparser::HeapType,
    offset: usize,
) -> Result<HeapType, CompileError> {
    let r = wasmparser::RefType::new(true, hty).ok_or_else(|| {
        CompileError::unsupported(Some(offset), "heap type index too large".to_string())
    })?;
    match ref_type_in(r, &env.info.sub_types, 0, offset)? {
        ValType::Ref(r) => Ok(r.heap),
        ValType::FuncRef => Ok(HeapType::Func),
        ValType::ExternRef => Ok(HeapType::Extern),
        _ => unreachable!("a reference type"),
    }
}

fn struct_fields<'a>(env: &FuncEnv<'a>, type_index: u32) -> &'a [FieldType] {
    match &env.info.sub_types[type_index as usize].composite {
        CompositeType::Struct(fields) => fields,
        _ => &[],
    }
}

fn struct_field(env: &FuncEnv, type_index: u32, field: u32) -> (FieldType, i32) {
    let fields = struct_fields(env, type_index);
    let (offsets, _) = wasmc_abi::gc::struct_layout(fields);
    (fields[field as usize], offsets[field as usize] as i32)
}

fn array_element(env: &FuncEnv, type_index: u32) -> FieldType {
    match &env.info.sub_types[type_index as usize].composite {
        CompositeType::Array(f) => *f,
        _ => unreachable!("validated: an array type"),
    }
}

/// A new zeroed object of `type_index` (an array of `length` elements).
fn alloc(
    builder: &mut FunctionBuilder,
    env: &mut FuncEnv,
    type_index: u32,
    length: Option<Value>,
) -> Value {
    let t = builder.ins().iconst(types::I32, i64::from(type_index));
    let length = length.unwrap_or_else(|| builder.ins().iconst(types::I32, 0));
    let vmctx = env.vmctx;
    env.call_builtin(builder, Builtin::GcAlloc, &[vmctx, t, length])
        .expect("gc_alloc returns the object")
}

/// What [`alloc_fixed`] allocates.
struct FixedShape {
    kind: u32,
    /// Array length (0 for a struct).
    length: u32,
    /// Object size in bytes, header included (a multiple of 16).
    size: u32,
    /// Zero the fields (the caller does not write them all).
    zero_fields: bool,
}

/// Objects up to this size have their fields zeroed inline; larger `_default`
/// allocations call the builtin, which zeroes them.
const MAX_INLINE_ZEROING: u32 = 256;

/// A new object of `type_index` of a size known at compile time, header written,
/// fields zero if `shape.zero_fields` (else holding old bytes: the caller writes
/// every field). Small objects pop the free list of their size class inline; an
/// empty list, or a large object, calls `gc_alloc`.
fn alloc_fixed(
    builder: &mut FunctionBuilder,
    env: &mut FuncEnv,
    type_index: u32,
    shape: FixedShape,
) -> Value {
    let class =
        cell_class(shape.size).filter(|_| !shape.zero_fields || shape.size <= MAX_INLINE_ZEROING);
    let Some(class) = class else {
        let length = builder.ins().iconst(types::I32, i64::from(shape.length));
        return alloc(builder, env, type_index, Some(length));
    };
    let runtime = env.vmctx_load(builder, VMContextLayout::RUNTIME);
    let head_offset = VMContextLayout::RUNTIME_GC_FREE_CELLS + 8 * class as i32;
    let length = builder.ins().iconst(types::I32, i64::from(shape.length));
    let (cell, refill) = pop_cell(
        builder,
        env,
        runtime,
        head_offset,
        type_index,
        shape.kind,
        length,
    );
    let done = builder.create_block();
    builder.append_block_param(done, types::I64);
    if shape.zero_fields {
        let zero = builder.ins().iconst(types::I64, 0);
        for offset in (GC_HEADER_SIZE..shape.size).step_by(8) {
            builder
                .ins()
                .store(object_flags(), zero, cell, offset as i32);
        }
    }
    builder.ins().jump(done, &[BlockArg::Value(cell)]);

    // Slow path: the builtin refills the list (collecting first if due) and
    // returns a zeroed object with its header.
    builder.switch_to_block(refill);
    let obj = alloc(builder, env, type_index, Some(length));
    builder.ins().jump(done, &[BlockArg::Value(obj)]);

    builder.seal_block(done);
    builder.switch_to_block(done);
    builder.block_params(done)[0]
}

/// Pops the free list whose head is at `runtime + head_offset` (the thread's
/// `gc_free_cells[class]`): on a cell, continues in a new block with the cell
/// unlinked and its header written for an object of `type_index`, `kind` and
/// `length` (an i32), and returns it; an empty list branches to the returned
/// (cold, sealed, empty) block instead.
fn pop_cell(
    builder: &mut FunctionBuilder,
    env: &mut FuncEnv,
    runtime: Value,
    head_offset: i32,
    type_index: u32,
    kind: u32,
    length: Value,
) -> (Value, cranelift_codegen::ir::Block) {
    // The head is thread state that only allocations (inline, or the builtin,
    // which Cranelift treats as a store to everything) change.
    let runtime_flags = MemFlagsData::trusted();
    let cell = builder
        .ins()
        .load(types::I64, runtime_flags, runtime, head_offset);
    let pop = builder.create_block();
    let refill = builder.create_block();
    builder.ins().brif(cell, pop, &[], refill, &[]);
    builder.seal_block(pop);
    builder.seal_block(refill);
    builder.set_cold_block(refill);

    // Unlink the cell, write the header: type id and kind, then length and the
    // collector's "unmarked" mark (two words, little-endian).
    builder.switch_to_block(pop);
    let next = builder.ins().load(types::I64, object_flags(), cell, 0);
    builder
        .ins()
        .store(runtime_flags, next, runtime, head_offset);
    let id = env.type_id(builder, type_index);
    let id = builder.ins().uextend(types::I64, id);
    let id_and_kind = builder.ins().bor_imm_u(id, i64::from(kind) << 32);
    builder
        .ins()
        .store(object_flags(), id_and_kind, cell, OBJECT_TYPE_ID);
    let length = builder.ins().uextend(types::I64, length);
    let length_and_mark = builder
        .ins()
        .bor_imm_u(length, i64::from(MARK_UNMARKED) << 32);
    builder
        .ins()
        .store(object_flags(), length_and_mark, cell, ARRAY_LENGTH);
    (cell, refill)
}

/// `array.new` (`init` the value of every element) and `array.new_default`
/// (`init` `None`: zeros) of a length known only at run time: arrays of up to
/// `MAX_INLINE_ZEROING` bytes pop the free list of their size class inline and
/// initialise their elements in a loop; larger ones, or an empty list, call
/// `gc_alloc` (and `array_fill` for `array.new`).
fn alloc_array(
    builder: &mut FunctionBuilder,
    env: &mut FuncEnv,
    type_index: u32,
    length: Value,
    init: Option<Value>,
) -> Value {
    let storage = array_element(env, type_index).storage;
    let element = i64::from(storage.size());
    let done = builder.create_block();
    builder.append_block_param(done, types::I64);
    let call = builder.create_block();
    builder.set_cold_block(call);

    // Object size, `abi::gc::array_size` (no overflow in 64 bits).
    let length64 = builder.ins().uextend(types::I64, length);
    let bytes = builder.ins().imul_imm_u(length64, element);
    let padded = builder
        .ins()
        .iadd_imm_u(bytes, i64::from(GC_HEADER_SIZE) + 15);
    let size = builder.ins().band_imm_u(padded, -16);
    let small = builder.ins().icmp_imm_u(
        IntCC::UnsignedLessThanOrEqual,
        size,
        i64::from(MAX_INLINE_ZEROING),
    );
    let try_pop = builder.create_block();
    builder.ins().brif(small, try_pop, &[], call, &[]);
    builder.seal_block(try_pop);
    builder.switch_to_block(try_pop);
    // The head of class `size / 16 - 1` is at `gc_free_cells + (size / 16 - 1) * 8`.
    let runtime = env.vmctx_load(builder, VMContextLayout::RUNTIME);
    let class_offset = builder.ins().ushr_imm_u(size, 1);
    let heads = builder.ins().iadd(runtime, class_offset);
    let head_offset = VMContextLayout::RUNTIME_GC_FREE_CELLS - 8;
    let (cell, refill) = pop_cell(
        builder,
        env,
        heads,
        head_offset,
        type_index,
        KIND_ARRAY,
        length,
    );
    // Elements: every one set to `init`, or every word of the body zeroed.
    let (step, end) = match init {
        Some(_) => (
            element,
            builder.ins().iadd_imm_u(bytes, i64::from(GC_HEADER_SIZE)),
        ),
        None => (8, size),
    };
    let end = builder.ins().iadd(cell, end);
    let first = builder.ins().iadd_imm_u(cell, i64::from(GC_HEADER_SIZE));
    let head = builder.create_block();
    let body = builder.create_block();
    let exit = builder.create_block();
    builder.append_block_param(head, types::I64);
    builder.ins().jump(head, &[BlockArg::Value(first)]);
    builder.switch_to_block(head);
    let at = builder.block_params(head)[0];
    let more = builder.ins().icmp(IntCC::UnsignedLessThan, at, end);
    builder.ins().brif(more, body, &[], exit, &[]);
    builder.seal_block(body);
    builder.seal_block(exit);
    builder.switch_to_block(body);
    match init {
        Some(value) => store_field(builder, storage, value, at, 0),
        None => {
            let zero = builder.ins().iconst(types::I64, 0);
            builder.ins().store(object_flags(), zero, at, 0);
        }
    }
    let next = builder.ins().iadd_imm_u(at, step);
    builder.ins().jump(head, &[BlockArg::Value(next)]);
    builder.seal_block(head);
    builder.switch_to_block(exit);
    builder.ins().jump(done, &[BlockArg::Value(cell)]);

    // The builtins: a large array, or the list was empty.
    builder.switch_to_block(refill);
    builder.ins().jump(call, &[]);
    builder.seal_block(call);
    builder.switch_to_block(call);
    let obj = alloc(builder, env, type_index, Some(length));
    if let Some(value) = init {
        let zero = builder.ins().iconst(types::I32, 0);
        fill(builder, env, obj, zero, value, length);
    }
    builder.ins().jump(done, &[BlockArg::Value(obj)]);

    builder.seal_block(done);
    builder.switch_to_block(done);
    builder.block_params(done)[0]
}

/// The depth of type index `type_index` in its supertype chain (0 for a type
/// without supertype): the same as its canonical type's, so known here.
fn type_depth(env: &FuncEnv, type_index: u32) -> u32 {
    let mut depth = 0;
    let mut t = type_index;
    // Validation: supertypes are earlier types, chains at most 63 long.
    while let Some(s) = env.info.sub_types[t as usize].supertype {
        depth += 1;
        t = s;
    }
    depth
}

/// Whether canonical type `actual` is type index `type_index` (canonical id
/// `expected`) or one of its subtypes: an i8 truth value. Equal ids first; then
/// entry `depth` of the supertype display in `actual`'s type row (`abi::gc`),
/// whose ids are the ancestors of `actual` at each depth: `actual` is a subtype
/// exactly when its ancestor at the target's depth is the target. Targets deeper
/// than the display call the `is_subtype` builtin.
pub(crate) fn is_subtype(
    builder: &mut FunctionBuilder,
    env: &mut FuncEnv,
    actual: Value,
    expected: Value,
    type_index: u32,
) -> Value {
    let slow = builder.create_block();
    let done = builder.create_block();
    builder.append_block_param(done, types::I8);
    let equal = builder.ins().icmp(IntCC::Equal, actual, expected);
    builder
        .ins()
        .brif(equal, done, &[BlockArg::Value(equal)], slow, &[]);
    builder.seal_block(slow);
    builder.switch_to_block(slow);
    let depth = type_depth(env, type_index);
    let r = if depth < TYPE_ROW_DISPLAY_LEN {
        let runtime = env.vmctx_load(builder, VMContextLayout::RUNTIME);
        // The table's address is set before any code runs and never changes.
        let rows = builder.ins().load(
            types::I64,
            MemFlagsData::trusted().with_readonly().with_can_move(),
            runtime,
            VMContextLayout::RUNTIME_GC_TYPE_ROWS,
        );
        let index = builder.ins().uextend(types::I64, actual);
        let offset = builder.ins().imul_imm_u(index, i64::from(TYPE_ROW_SIZE));
        let row = builder.ins().iadd(rows, offset);
        // Rows are written before any object or function of their type exists.
        let ancestor = builder.ins().load(
            types::I32,
            MemFlagsData::trusted().with_readonly(),
            row,
            (TYPE_ROW_DISPLAY + 4 * depth) as i32,
        );
        builder.ins().icmp(IntCC::Equal, ancestor, expected)
    } else {
        let r = env
            .call_builtin(builder, Builtin::IsSubtype, &[actual, expected])
            .expect("is_subtype returns a value");
        builder.ins().icmp_imm_u(IntCC::NotEqual, r, 0)
    };
    builder.ins().jump(done, &[BlockArg::Value(r)]);
    builder.seal_block(done);
    builder.switch_to_block(done);
    builder.block_params(done)[0]
}

/// `array.fill` of the non-null `arr` (the value passes through a stack slot).
fn fill(
    builder: &mut FunctionBuilder,
    env: &mut FuncEnv,
    arr: Value,
    index: Value,
    value: Value,
    length: Value,
) {
    let slot =
        builder.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 4));
    let addr = builder.ins().stack_addr(types::I64, slot, 0);
    builder.ins().store(MemFlagsData::trusted(), value, addr, 0);
    let vmctx = env.vmctx;
    env.call_builtin(
        builder,
        Builtin::ArrayFill,
        &[vmctx, arr, index, addr, length],
    );
}

/// The address of element `index` of `arr`, after the null and bounds checks.
fn element_addr(
    builder: &mut FunctionBuilder,
    arr: Value,
    index: Value,
    storage: StorageType,
) -> Value {
    builder
        .ins()
        .trapz(arr, trap_code(Trap::NullArrayReference));
    let len = builder
        .ins()
        .load(types::I32, object_flags(), arr, ARRAY_LENGTH);
    let oob = builder
        .ins()
        .icmp(IntCC::UnsignedGreaterThanOrEqual, index, len);
    builder.ins().trapnz(oob, trap_code(Trap::ArrayOutOfBounds));
    let index = builder.ins().uextend(types::I64, index);
    let scaled = builder.ins().imul_imm_u(index, i64::from(storage.size()));
    let base = builder.ins().iadd(arr, scaled);
    builder.ins().iadd_imm_u(base, i64::from(GC_HEADER_SIZE))
}

fn load_field(
    builder: &mut FunctionBuilder,
    storage: StorageType,
    signed: bool,
    addr: Value,
    offset: i32,
) -> Value {
    let flags = object_flags();
    let ins = builder.ins();
    match (storage, signed) {
        (StorageType::I8, true) => ins.sload8(types::I32, flags, addr, offset),
        (StorageType::I8, false) => ins.uload8(types::I32, flags, addr, offset),
        (StorageType::I16, true) => ins.sload16(types::I32, flags, addr, offset),
        (StorageType::I16, false) => ins.uload16(types::I32, flags, addr, offset),
        (StorageType::Val(v), _) => ins.load(ir_type(v), flags, addr, offset),
    }
}

fn store_field(
    builder: &mut FunctionBuilder,
    storage: StorageType,
    value: Value,
    addr: Value,
    offset: i32,
) {
    let flags = object_flags();
    let ins = builder.ins();
    match storage {
        StorageType::I8 => ins.istore8(flags, value, addr, offset),
        StorageType::I16 => ins.istore16(flags, value, addr, offset),
        StorageType::Val(_) => ins.store(flags, value, addr, offset),
    };
}

/// Whether `r` (a reference of the same hierarchy as `heap`) is of type
/// `(ref null? heap)`: an i8 truth value.
fn ref_test(
    builder: &mut FunctionBuilder,
    env: &mut FuncEnv,
    r: Value,
    nullable: bool,
    heap: HeapType,
) -> Value {
    use HeapType as H;
    let is_null = builder.ins().icmp_imm_u(IntCC::Equal, r, 0);
    let if_null = builder.ins().iconst(types::I8, i64::from(nullable));
    // Tests that need no load: a select on the null check.
    let non_null = match heap {
        H::Any | H::Func | H::Extern | H::Exn => Some(builder.ins().iconst(types::I8, 1)),
        H::None | H::NoFunc | H::NoExtern | H::NoExn => Some(builder.ins().iconst(types::I8, 0)),
        H::I31 => {
            let bit = builder.ins().band_imm_u(r, 1);
            Some(builder.ins().icmp_imm_u(IntCC::NotEqual, bit, 0))
        }
        // An i31 or an object: anything but a host reference.
        H::Eq => {
            let tag = builder.ins().band_imm_u(r, REF_TAG_MASK as i64);
            Some(
                builder
                    .ins()
                    .icmp_imm_u(IntCC::NotEqual, tag, HOST_REF_TAG as i64),
            )
        }
        _ => None,
    };
    if let Some(non_null) = non_null {
        return builder.ins().select(is_null, if_null, non_null);
    }
    // The rest read the object (or function reference) the word points at.
    let done = builder.create_block();
    builder.append_block_param(done, types::I8);
    let check = builder.create_block();
    builder
        .ins()
        .brif(is_null, done, &[BlockArg::Value(if_null)], check, &[]);
    builder.seal_block(check);
    builder.switch_to_block(check);
    let result = match heap {
        H::Concrete(t) => {
            // A function reference: its `VMFuncRef`'s type id.
            let actual = builder.ins().load(
                types::I32,
                MemFlagsData::trusted().with_readonly(),
                r,
                VMContextLayout::FUNC_REF_TYPE_ID,
            );
            let expected = env.type_id(builder, t);
            if env.info.sub_types[t as usize].is_final {
                builder.ins().icmp(IntCC::Equal, actual, expected)
            } else {
                env.is_subtype(builder, actual, expected, t)
            }
        }
        _ => {
            // Only objects (low bits 00) can be structs or arrays.
            let object = builder.create_block();
            let zero = builder.ins().iconst(types::I8, 0);
            let tag = builder.ins().band_imm_u(r, REF_TAG_MASK as i64);
            builder
                .ins()
                .brif(tag, done, &[BlockArg::Value(zero)], object, &[]);
            builder.seal_block(object);
            builder.switch_to_block(object);
            match heap {
                H::Struct | H::Array => {
                    let kind = builder
                        .ins()
                        .load(types::I32, object_flags(), r, OBJECT_KIND);
                    let want = if heap == H::Struct {
                        KIND_STRUCT
                    } else {
                        KIND_ARRAY
                    };
                    builder
                        .ins()
                        .icmp_imm_u(IntCC::Equal, kind, i64::from(want))
                }
                H::ConcreteStruct(t) | H::ConcreteArray(t) => {
                    let actual = builder
                        .ins()
                        .load(types::I32, object_flags(), r, OBJECT_TYPE_ID);
                    let expected = env.type_id(builder, t);
                    if env.info.sub_types[t as usize].is_final {
                        builder.ins().icmp(IntCC::Equal, actual, expected)
                    } else {
                        env.is_subtype(builder, actual, expected, t)
                    }
                }
                _ => unreachable!("handled above"),
            }
        }
    };
    builder.ins().jump(done, &[BlockArg::Value(result)]);
    builder.seal_block(done);
    builder.switch_to_block(done);
    builder.block_params(done)[0]
}
