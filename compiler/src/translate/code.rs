//! The operator translator: one `match` over wasmparser operators, grouped by banner
//! comments. Each arm pops its operands from the [`State`] stack, emits Cranelift IR
//! and pushes its results. Operators are validated before they get here, so operand
//! counts and types are known to be right.

use cranelift_codegen::ir::{
    Block, BlockArg, BlockCall, InstBuilder, JumpTableData, MemFlagsData, Type, Value,
    condcodes::{FloatCC, IntCC},
    immediates::{Ieee32, Ieee64},
    types,
};
use cranelift_frontend::FunctionBuilder;
use wasmc_abi::{Builtin, Trap, VMContextLayout};
use wasmparser::{BlockType, MemArg, Operator};

use super::atomics::translate_atomic_operator;
use super::control::{ControlFrame, FrameKind, State};
use super::environ::{FuncEnv, ir_type, to_u64, trap_code};
use super::legacy_eh::{end_legacy_try, translate_catch, translate_delegate, translate_legacy_eh};
use super::operator_name;
use super::simd::{SimdEnv, translate_simd_operator};
use crate::CompileError;
use crate::module_env::val_type;

/// Translates one operator of reachable code (or tracks frames in unreachable code).
pub(crate) fn translate_operator(
    op: &Operator,
    offset: usize,
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
) -> Result<(), CompileError> {
    if !state.reachable {
        // Unreachable operators never run, so they cost no fuel.
        translate_unreachable_operator(op, builder, state, env);
        return Ok(());
    }
    env.fuel_before_op(op, builder);
    translate_reachable_operator(op, offset, builder, state, env)?;
    env.fuel_after_op(op, builder);
    Ok(())
}

fn translate_reachable_operator(
    op: &Operator,
    offset: usize,
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
) -> Result<(), CompileError> {
    // Small helpers for the many "pop, emit, push" arms.
    macro_rules! unop {
        ($f:ident) => {{
            let a = state.pop();
            let r = builder.ins().$f(a);
            state.push(r);
        }};
        ($f:ident, $ty:expr) => {{
            let a = state.pop();
            let r = builder.ins().$f($ty, a);
            state.push(r);
        }};
    }
    macro_rules! binop {
        ($f:ident) => {{
            let (a, b) = state.pop2();
            let r = builder.ins().$f(a, b);
            state.push(r);
        }};
    }
    macro_rules! icmp {
        ($cc:expr) => {{
            let (a, b) = state.pop2();
            let c = builder.ins().icmp($cc, a, b);
            let r = builder.ins().uextend(types::I32, c);
            state.push(r);
        }};
    }
    macro_rules! fcmp {
        ($cc:expr) => {{
            let (a, b) = state.pop2();
            let c = builder.ins().fcmp($cc, a, b);
            let r = builder.ins().uextend(types::I32, c);
            state.push(r);
        }};
    }
    macro_rules! extend_from {
        ($narrow:expr, $wide:expr) => {{
            let a = state.pop();
            let n = builder.ins().ireduce($narrow, a);
            let r = builder.ins().sextend($wide, n);
            state.push(r);
        }};
    }

    use Operator as O;
    match op {
        // ------------------------------------------------------------ control flow
        O::Nop => {}
        O::Unreachable => {
            builder.ins().trap(trap_code(Trap::UnreachableCodeReached));
            state.reachable = false;
        }
        O::Block { blockty } => {
            let (params, results) = block_types(env, *blockty, offset)?;
            let destination = block_with_params(builder, &results);
            state.frames.push(ControlFrame {
                kind: FrameKind::Block,
                destination,
                num_params: params.len(),
                num_results: results.len(),
                original_stack_size: state.stack.len() - params.len(),
                exit_reachable: false,
            });
        }
        O::Loop { blockty } => {
            let (params, results) = block_types(env, *blockty, offset)?;
            let header = block_with_params(builder, &params);
            let destination = block_with_params(builder, &results);
            let args = state.popn(params.len());
            jump(builder, header, &args);
            // Not sealed: back edges are added until the loop's `end`.
            builder.switch_to_block(header);
            // Before the fuel check: reading the fuel variable in the unsealed header
            // adds a block parameter for it.
            state.stack.extend_from_slice(builder.block_params(header));
            // Every iteration checks the fuel (back edges jump to the header).
            env.fuel_check(builder);
            state.frames.push(ControlFrame {
                kind: FrameKind::Loop { header },
                destination,
                num_params: params.len(),
                num_results: results.len(),
                original_stack_size: state.stack.len() - params.len(),
                exit_reachable: false,
            });
        }
        O::If { blockty } => {
            let cond = state.pop();
            let (params, results) = block_types(env, *blockty, offset)?;
            let then_block = builder.create_block();
            let else_block = builder.create_block();
            let destination = block_with_params(builder, &results);
            // The parameters dominate both arms, so the arms need no block parameters.
            builder.ins().brif(cond, then_block, &[], else_block, &[]);
            builder.seal_block(then_block);
            builder.seal_block(else_block);
            builder.switch_to_block(then_block);
            state.frames.push(ControlFrame {
                kind: FrameKind::If {
                    else_block,
                    params: state.peekn(params.len()).to_vec(),
                    has_else: false,
                },
                destination,
                num_params: params.len(),
                num_results: results.len(),
                original_stack_size: state.stack.len() - params.len(),
                exit_reachable: false,
            });
        }
        O::TryTable { try_table } => translate_try_table(try_table, offset, builder, state, env)?,
        O::Throw { tag_index } => {
            let n = env.tag_params(*tag_index).len();
            let args = state.popn(n);
            let exn = env.exn_new(builder, *tag_index, &args);
            env.throw(builder, exn, state.handlers.last().copied());
            state.reachable = false;
        }
        O::ThrowRef => {
            let exn = state.pop();
            builder
                .ins()
                .trapz(exn, trap_code(Trap::NullExceptionReference));
            env.throw(builder, exn, state.handlers.last().copied());
            state.reachable = false;
        }
        O::Try { .. } | O::Catch { .. } | O::CatchAll | O::Delegate { .. } | O::Rethrow { .. } => {
            translate_legacy_eh(op, offset, builder, state, env)?
        }
        O::Else => translate_else(builder, state),
        O::End => translate_end(builder, state, env),
        O::Br { relative_depth } => {
            let (target, args) = branch_args(state, *relative_depth);
            jump(builder, target, &args);
            state.reachable = false;
        }
        O::BrIf { relative_depth } => {
            let cond = state.pop();
            let (target, args) = branch_args(state, *relative_depth);
            let next = builder.create_block();
            let args: Vec<BlockArg> = args.into_iter().map(BlockArg::Value).collect();
            builder.ins().brif(cond, target, &args, next, &[]);
            builder.seal_block(next);
            builder.switch_to_block(next);
        }
        O::BrTable { targets } => {
            let index = state.pop();
            let (default_block, args) = branch_args(state, targets.default());
            let args: Vec<BlockArg> = args.into_iter().map(BlockArg::Value).collect();
            let mut calls: Vec<BlockCall> = Vec::with_capacity(targets.len() as usize);
            for depth in targets.targets() {
                let depth = depth.map_err(|e| {
                    CompileError::from_wasmparser(&e, crate::CompileErrorKind::Malformed)
                })?;
                let (target, _) = branch_args(state, depth);
                calls.push(builder.func.dfg.block_call(target, &args));
            }
            let default = builder.func.dfg.block_call(default_block, &args);
            let table = builder.create_jump_table(JumpTableData::new(default, &calls));
            builder.ins().br_table(index, table);
            state.reachable = false;
        }
        O::Return => {
            let results = state.peekn(state.num_results).to_vec();
            builder.ins().return_(&results);
            state.reachable = false;
        }
        O::Call { function_index } => {
            let n = env.info.func_type(*function_index).params.len();
            let args = state.popn(n);
            env.handler = state.handlers.last().copied();
            let results = env.call(builder, *function_index, &args, false);
            state.stack.extend(results);
        }
        O::ReturnCall { function_index } => {
            let n = env.info.func_type(*function_index).params.len();
            let args = state.popn(n);
            env.call(builder, *function_index, &args, true);
            state.reachable = false;
        }
        O::CallIndirect {
            type_index,
            table_index,
        } => {
            let index = state.pop();
            let n = env.info.types[*type_index as usize].params.len();
            let args = state.popn(n);
            env.handler = state.handlers.last().copied();
            let results =
                env.call_indirect(builder, *type_index, *table_index, index, &args, false);
            state.stack.extend(results);
        }
        O::ReturnCallIndirect {
            type_index,
            table_index,
        } => {
            let index = state.pop();
            let n = env.info.types[*type_index as usize].params.len();
            let args = state.popn(n);
            env.call_indirect(builder, *type_index, *table_index, index, &args, true);
            state.reachable = false;
        }

        O::CallRef { type_index } => {
            let func_ref = state.pop();
            let n = env.info.types[*type_index as usize].params.len();
            let args = state.popn(n);
            env.handler = state.handlers.last().copied();
            let results = env.call_ref(builder, *type_index, func_ref, &args, false);
            state.stack.extend(results);
        }
        O::ReturnCallRef { type_index } => {
            let func_ref = state.pop();
            let n = env.info.types[*type_index as usize].params.len();
            let args = state.popn(n);
            env.call_ref(builder, *type_index, func_ref, &args, true);
            state.reachable = false;
        }
        // `br_on_null $l`: branch with the values below the reference when it is
        // null; otherwise continue with the (now non-null) reference.
        O::BrOnNull { relative_depth } => {
            let r = state.pop();
            let (target, args) = branch_args(state, *relative_depth);
            let next = builder.create_block();
            let args: Vec<BlockArg> = args.into_iter().map(BlockArg::Value).collect();
            builder.ins().brif(r, next, &[], target, &args);
            builder.seal_block(next);
            builder.switch_to_block(next);
            state.push(r);
        }
        // `br_on_non_null $l`: branch with the reference on top when it is non-null;
        // otherwise drop it and continue.
        O::BrOnNonNull { relative_depth } => {
            // The reference is the last of the branch's values.
            let (target, args) = branch_args(state, *relative_depth);
            let r = state.pop();
            let next = builder.create_block();
            let args: Vec<BlockArg> = args.into_iter().map(BlockArg::Value).collect();
            builder.ins().brif(r, target, &args, next, &[]);
            builder.seal_block(next);
            builder.switch_to_block(next);
        }

        // ------------------------------------------------------------ parametric
        O::Drop => {
            state.pop();
        }
        O::Select | O::TypedSelect { .. } => {
            let cond = state.pop();
            let (a, b) = state.pop2();
            let r = builder.ins().select(cond, a, b);
            state.push(r);
        }

        // ------------------------------------------------------------ variables
        O::LocalGet { local_index } => {
            let v = builder.use_var(state.locals[*local_index as usize]);
            state.push(v);
        }
        O::LocalSet { local_index } => {
            let v = state.pop();
            builder.def_var(state.locals[*local_index as usize], v);
        }
        O::LocalTee { local_index } => {
            let v = *state.stack.last().expect("validated");
            builder.def_var(state.locals[*local_index as usize], v);
        }
        O::GlobalGet { global_index } => {
            let v = env.global_get(builder, *global_index);
            state.push(v);
        }
        O::GlobalSet { global_index } => {
            let v = state.pop();
            env.global_set(builder, *global_index, v);
        }

        // ------------------------------------------------------------ memory
        O::I32Load { memarg } => load(builder, state, env, memarg, Load::Plain(types::I32), 4),
        O::I64Load { memarg } => load(builder, state, env, memarg, Load::Plain(types::I64), 8),
        O::F32Load { memarg } => load(builder, state, env, memarg, Load::Plain(types::F32), 4),
        O::F64Load { memarg } => load(builder, state, env, memarg, Load::Plain(types::F64), 8),
        O::I32Load8S { memarg } => load(builder, state, env, memarg, Load::S8(types::I32), 1),
        O::I32Load8U { memarg } => load(builder, state, env, memarg, Load::U8(types::I32), 1),
        O::I32Load16S { memarg } => load(builder, state, env, memarg, Load::S16(types::I32), 2),
        O::I32Load16U { memarg } => load(builder, state, env, memarg, Load::U16(types::I32), 2),
        O::I64Load8S { memarg } => load(builder, state, env, memarg, Load::S8(types::I64), 1),
        O::I64Load8U { memarg } => load(builder, state, env, memarg, Load::U8(types::I64), 1),
        O::I64Load16S { memarg } => load(builder, state, env, memarg, Load::S16(types::I64), 2),
        O::I64Load16U { memarg } => load(builder, state, env, memarg, Load::U16(types::I64), 2),
        O::I64Load32S { memarg } => load(builder, state, env, memarg, Load::S32, 4),
        O::I64Load32U { memarg } => load(builder, state, env, memarg, Load::U32, 4),
        O::I32Store { memarg } | O::F32Store { memarg } => {
            store(builder, state, env, memarg, Store::Plain, 4)
        }
        O::I64Store { memarg } | O::F64Store { memarg } => {
            store(builder, state, env, memarg, Store::Plain, 8)
        }
        O::I32Store8 { memarg } | O::I64Store8 { memarg } => {
            store(builder, state, env, memarg, Store::Narrow8, 1)
        }
        O::I32Store16 { memarg } | O::I64Store16 { memarg } => {
            store(builder, state, env, memarg, Store::Narrow16, 2)
        }
        O::I64Store32 { memarg } => store(builder, state, env, memarg, Store::Narrow32, 4),
        O::MemorySize { mem } => {
            let v = env.memory_size(builder, *mem);
            state.push(v);
        }
        O::MemoryGrow { mem } => {
            let delta = state.pop();
            let v = env.memory_grow(builder, *mem, delta);
            state.push(v);
        }

        // ------------------------------------------------------------ bulk memory
        O::MemoryFill { mem } => {
            let (dst, val, len) = state.pop3();
            env.memory_fill(builder, *mem, dst, val, len);
            env.fuel_bulk(builder, len, None);
        }
        O::MemoryCopy { dst_mem, src_mem } => {
            let (dst, src, len) = state.pop3();
            env.memory_copy(builder, (*dst_mem, *src_mem), dst, src, len);
            env.fuel_bulk(builder, len, None);
        }
        O::MemoryInit { data_index, mem } => {
            let (dst, src, len) = state.pop3();
            let dst = to_u64(builder, dst);
            let mem = builder.ins().iconst(types::I32, i64::from(*mem));
            let data = builder.ins().iconst(types::I32, i64::from(*data_index));
            let vmctx = env.vmctx;
            env.call_checked_builtin(
                builder,
                Builtin::MemoryInit,
                &[vmctx, mem, data, dst, src, len],
                Trap::MemoryOutOfBounds,
            );
            env.fuel_bulk(builder, len, None);
        }
        O::DataDrop { data_index } => {
            let data = builder.ins().iconst(types::I32, i64::from(*data_index));
            let vmctx = env.vmctx;
            env.call_builtin(builder, Builtin::DataDrop, &[vmctx, data]);
        }

        // ------------------------------------------------------------ tables and references
        O::TableGet { table } => {
            let index = state.pop();
            let v = env.table_get(builder, *table, index);
            state.push(v);
        }
        O::TableSet { table } => {
            let (index, value) = state.pop2();
            env.table_set(builder, *table, index, value);
        }
        O::TableSize { table } => {
            let v = env.table_size(builder, *table);
            state.push(v);
        }
        O::TableGrow { table } => {
            let (init, delta) = state.pop2();
            let v = env.table_grow(builder, *table, init, delta);
            state.push(v);
        }
        O::TableFill { table } => {
            let (dst, val, len) = state.pop3();
            let (dst, len) = (to_u64(builder, dst), to_u64(builder, len));
            let table = builder.ins().iconst(types::I32, i64::from(*table));
            let vmctx = env.vmctx;
            env.call_checked_builtin(
                builder,
                Builtin::TableFill,
                &[vmctx, table, dst, val, len],
                Trap::TableOutOfBounds,
            );
            env.fuel_bulk(builder, len, None);
        }
        O::TableCopy {
            dst_table,
            src_table,
        } => {
            let (dst, src, len) = state.pop3();
            let (dst, src, len) = (
                to_u64(builder, dst),
                to_u64(builder, src),
                to_u64(builder, len),
            );
            let dst_table = builder.ins().iconst(types::I32, i64::from(*dst_table));
            let src_table = builder.ins().iconst(types::I32, i64::from(*src_table));
            let vmctx = env.vmctx;
            env.call_checked_builtin(
                builder,
                Builtin::TableCopy,
                &[vmctx, dst_table, src_table, dst, src, len],
                Trap::TableOutOfBounds,
            );
            env.fuel_bulk(builder, len, None);
        }
        O::TableInit { elem_index, table } => {
            let (dst, src, len) = state.pop3();
            let dst = to_u64(builder, dst);
            let table = builder.ins().iconst(types::I32, i64::from(*table));
            let elem = builder.ins().iconst(types::I32, i64::from(*elem_index));
            let vmctx = env.vmctx;
            env.call_checked_builtin(
                builder,
                Builtin::TableInit,
                &[vmctx, table, elem, dst, src, len],
                Trap::TableOutOfBounds,
            );
            env.fuel_bulk(builder, len, None);
        }
        O::ElemDrop { elem_index } => {
            let elem = builder.ins().iconst(types::I32, i64::from(*elem_index));
            let vmctx = env.vmctx;
            env.call_builtin(builder, Builtin::ElemDrop, &[vmctx, elem]);
        }
        O::RefNull { .. } => {
            let v = builder.ins().iconst(types::I64, 0);
            state.push(v);
        }
        O::RefIsNull => {
            let a = state.pop();
            let c = builder.ins().icmp_imm_u(IntCC::Equal, a, 0);
            let r = builder.ins().uextend(types::I32, c);
            state.push(r);
        }
        O::RefAsNonNull => {
            let r = *state.stack.last().expect("validated");
            builder.ins().trapz(r, trap_code(Trap::NullReference));
        }
        O::RefFunc { function_index } => {
            let v = env.ref_func(builder, *function_index);
            state.push(v);
        }

        // ------------------------------------------------------------ constants
        O::I32Const { value } => {
            let v = builder.ins().iconst(types::I32, i64::from(*value));
            state.push(v);
        }
        O::I64Const { value } => {
            let v = builder.ins().iconst(types::I64, *value);
            state.push(v);
        }
        O::F32Const { value } => {
            let v = builder.ins().f32const(Ieee32::with_bits(value.bits()));
            state.push(v);
        }
        O::F64Const { value } => {
            let v = builder.ins().f64const(Ieee64::with_bits(value.bits()));
            state.push(v);
        }

        // ------------------------------------------------------------ integer comparisons
        O::I32Eqz | O::I64Eqz => {
            let a = state.pop();
            let c = builder.ins().icmp_imm_u(IntCC::Equal, a, 0);
            let r = builder.ins().uextend(types::I32, c);
            state.push(r);
        }
        O::I32Eq | O::I64Eq => icmp!(IntCC::Equal),
        O::I32Ne | O::I64Ne => icmp!(IntCC::NotEqual),
        O::I32LtS | O::I64LtS => icmp!(IntCC::SignedLessThan),
        O::I32LtU | O::I64LtU => icmp!(IntCC::UnsignedLessThan),
        O::I32GtS | O::I64GtS => icmp!(IntCC::SignedGreaterThan),
        O::I32GtU | O::I64GtU => icmp!(IntCC::UnsignedGreaterThan),
        O::I32LeS | O::I64LeS => icmp!(IntCC::SignedLessThanOrEqual),
        O::I32LeU | O::I64LeU => icmp!(IntCC::UnsignedLessThanOrEqual),
        O::I32GeS | O::I64GeS => icmp!(IntCC::SignedGreaterThanOrEqual),
        O::I32GeU | O::I64GeU => icmp!(IntCC::UnsignedGreaterThanOrEqual),

        // ------------------------------------------------------------ float comparisons
        O::F32Eq | O::F64Eq => fcmp!(FloatCC::Equal),
        O::F32Ne | O::F64Ne => fcmp!(FloatCC::NotEqual),
        O::F32Lt | O::F64Lt => fcmp!(FloatCC::LessThan),
        O::F32Gt | O::F64Gt => fcmp!(FloatCC::GreaterThan),
        O::F32Le | O::F64Le => fcmp!(FloatCC::LessThanOrEqual),
        O::F32Ge | O::F64Ge => fcmp!(FloatCC::GreaterThanOrEqual),

        // ------------------------------------------------------------ integer arithmetic
        O::I32Clz | O::I64Clz => unop!(clz),
        O::I32Ctz | O::I64Ctz => unop!(ctz),
        O::I32Popcnt | O::I64Popcnt => unop!(popcnt),
        O::I32Add | O::I64Add => binop!(iadd),
        O::I32Sub | O::I64Sub => binop!(isub),
        O::I32Mul | O::I64Mul => binop!(imul),
        // Cranelift's division traps exactly like wasm: divide by zero, and
        // INT_MIN / -1 overflow for sdiv; srem of INT_MIN by -1 is 0.
        O::I32DivS | O::I64DivS => binop!(sdiv),
        O::I32DivU | O::I64DivU => binop!(udiv),
        O::I32RemS | O::I64RemS => binop!(srem),
        O::I32RemU | O::I64RemU => binop!(urem),
        O::I32And | O::I64And => binop!(band),
        O::I32Or | O::I64Or => binop!(bor),
        O::I32Xor | O::I64Xor => binop!(bxor),
        // Shift and rotate amounts are taken modulo the bit width, as in wasm.
        O::I32Shl | O::I64Shl => binop!(ishl),
        O::I32ShrS | O::I64ShrS => binop!(sshr),
        O::I32ShrU | O::I64ShrU => binop!(ushr),
        O::I32Rotl | O::I64Rotl => binop!(rotl),
        O::I32Rotr | O::I64Rotr => binop!(rotr),

        // ------------------------------------------------------------ float arithmetic
        O::F32Abs | O::F64Abs => unop!(fabs),
        O::F32Neg | O::F64Neg => unop!(fneg),
        O::F32Ceil | O::F64Ceil => unop!(ceil),
        O::F32Floor | O::F64Floor => unop!(floor),
        O::F32Trunc | O::F64Trunc => unop!(trunc),
        // Round to nearest, ties to even.
        O::F32Nearest | O::F64Nearest => unop!(nearest),
        O::F32Sqrt | O::F64Sqrt => unop!(sqrt),
        O::F32Add | O::F64Add => binop!(fadd),
        O::F32Sub | O::F64Sub => binop!(fsub),
        O::F32Mul | O::F64Mul => binop!(fmul),
        O::F32Div | O::F64Div => binop!(fdiv),
        // Cranelift's fmin/fmax propagate NaN and order -0 < +0, as wasm requires.
        O::F32Min | O::F64Min => binop!(fmin),
        O::F32Max | O::F64Max => binop!(fmax),
        O::F32Copysign | O::F64Copysign => binop!(fcopysign),

        // ------------------------------------------------------------ conversions
        O::I32WrapI64 => unop!(ireduce, types::I32),
        O::I64ExtendI32S => unop!(sextend, types::I64),
        O::I64ExtendI32U => unop!(uextend, types::I64),
        // Trapping truncation: NaN traps "invalid conversion to integer", out of range
        // traps "integer overflow" (Cranelift's BAD_CONVERSION_TO_INTEGER / INTEGER_OVERFLOW).
        O::I32TruncF32S | O::I32TruncF64S => unop!(fcvt_to_sint, types::I32),
        O::I32TruncF32U | O::I32TruncF64U => unop!(fcvt_to_uint, types::I32),
        O::I64TruncF32S | O::I64TruncF64S => unop!(fcvt_to_sint, types::I64),
        O::I64TruncF32U | O::I64TruncF64U => unop!(fcvt_to_uint, types::I64),
        O::I32TruncSatF32S | O::I32TruncSatF64S => unop!(fcvt_to_sint_sat, types::I32),
        O::I32TruncSatF32U | O::I32TruncSatF64U => unop!(fcvt_to_uint_sat, types::I32),
        O::I64TruncSatF32S | O::I64TruncSatF64S => unop!(fcvt_to_sint_sat, types::I64),
        O::I64TruncSatF32U | O::I64TruncSatF64U => unop!(fcvt_to_uint_sat, types::I64),
        O::F32ConvertI32S | O::F32ConvertI64S => unop!(fcvt_from_sint, types::F32),
        O::F32ConvertI32U | O::F32ConvertI64U => unop!(fcvt_from_uint, types::F32),
        O::F64ConvertI32S | O::F64ConvertI64S => unop!(fcvt_from_sint, types::F64),
        O::F64ConvertI32U | O::F64ConvertI64U => unop!(fcvt_from_uint, types::F64),
        O::F32DemoteF64 => unop!(fdemote, types::F32),
        O::F64PromoteF32 => unop!(fpromote, types::F64),
        O::I32ReinterpretF32 => reinterpret(builder, state, types::I32),
        O::I64ReinterpretF64 => reinterpret(builder, state, types::I64),
        O::F32ReinterpretI32 => reinterpret(builder, state, types::F32),
        O::F64ReinterpretI64 => reinterpret(builder, state, types::F64),

        // ------------------------------------------------------------ sign extension
        O::I32Extend8S => extend_from!(types::I8, types::I32),
        O::I32Extend16S => extend_from!(types::I16, types::I32),
        O::I64Extend8S => extend_from!(types::I8, types::I64),
        O::I64Extend16S => extend_from!(types::I16, types::I64),
        O::I64Extend32S => extend_from!(types::I32, types::I64),

        // ------------------------------------------------------------ wide arithmetic
        O::I64Add128 | O::I64Sub128 | O::I64MulWideS | O::I64MulWideU => {
            translate_wide_arithmetic(op, builder, state)
        }
        // ------------------------------------------------------------ threads (atomics.rs)
        other if translate_atomic_operator(other, builder, state, env) => {}

        // ------------------------------------------------------------ GC (gc.rs)
        other if super::gc::is_gc_operator(other) => {
            super::gc::translate_gc_operator(other, offset, builder, state, env)?;
        }

        // ------------------------------------------------------------ SIMD (simd.rs)
        other => {
            let handled = translate_simd_operator(other, builder, &mut state.stack, env)
                .map_err(|e| CompileError::unsupported(Some(offset), format!("{e:#}")))?;
            if !handled {
                return Err(CompileError::unsupported(
                    Some(offset),
                    format!("operator `{}` is not supported", operator_name(other)),
                ));
            }
        }
    }
    Ok(())
}

/// In unreachable code only the frame structure matters.
fn translate_unreachable_operator(
    op: &Operator,
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
) {
    match op {
        // Every operator that opens a frame, including ones wasmc does not translate in
        // reachable code (`try_table`): its `end` must not close an enclosing frame.
        Operator::Block { .. }
        | Operator::Loop { .. }
        | Operator::If { .. }
        | Operator::TryTable { .. }
        | Operator::Try { .. } => {
            state.unreachable_depth += 1;
        }
        Operator::Else if state.unreachable_depth == 0 => translate_else(builder, state),
        // A clause of a reachable legacy `try` whose body ended unreachable: the
        // clause is reached through the dispatch block.
        Operator::Catch { tag_index } if state.unreachable_depth == 0 => {
            translate_catch(Some(*tag_index), builder, state, env)
        }
        Operator::CatchAll if state.unreachable_depth == 0 => {
            translate_catch(None, builder, state, env)
        }
        // `delegate` ends its `try` like `end`.
        Operator::Delegate { relative_depth } => {
            if state.unreachable_depth > 0 {
                state.unreachable_depth -= 1;
            } else {
                translate_delegate(*relative_depth, builder, state, env);
            }
        }
        Operator::End => {
            if state.unreachable_depth > 0 {
                state.unreachable_depth -= 1;
            } else {
                translate_end(builder, state, env);
            }
        }
        _ => {}
    }
}

fn translate_else(builder: &mut FunctionBuilder, state: &mut State) {
    let reachable = state.reachable;
    let results: Vec<Value> = {
        let frame = state.frames.last().expect("else inside an if frame");
        state
            .peekn(if reachable { frame.num_results } else { 0 })
            .to_vec()
    };
    let frame = state.frames.last_mut().expect("else inside an if frame");
    if reachable {
        jump(builder, frame.destination, &results);
        frame.exit_reachable = true;
    }
    let original = frame.original_stack_size;
    let FrameKind::If {
        else_block,
        params,
        has_else,
    } = &mut frame.kind
    else {
        unreachable!("validated: else only closes an if");
    };
    *has_else = true;
    let else_block = *else_block;
    let params = params.clone();
    state.truncate(original);
    state.stack.extend(params);
    builder.switch_to_block(else_block);
    // The `if` itself was reachable (its frame exists), so the else arm is.
    state.reachable = true;
}

fn translate_end(builder: &mut FunctionBuilder, state: &mut State, env: &mut FuncEnv) {
    let mut frame = state.frames.pop().expect("end closes a frame");
    leave_frame(builder, state, &mut frame);
    match &frame.kind {
        FrameKind::If {
            else_block,
            params,
            has_else: false,
        } => {
            // No else arm: the parameters flow through unchanged (validation ensures
            // the if's parameter and result types are equal).
            builder.switch_to_block(*else_block);
            jump(builder, frame.destination, params);
            frame.exit_reachable = true;
        }
        FrameKind::Loop { header } => builder.seal_block(*header),
        FrameKind::TryTable { dispatch } => {
            // Every call and throw of the body has been emitted.
            builder.seal_block(*dispatch);
            state.handlers.pop();
        }
        FrameKind::LegacyTry { .. } => end_legacy_try(&frame, builder, state, env),
        _ => {}
    }
    continue_after_frame(builder, state, env, frame);
}

/// Falls through to the frame's continuation with its results, if reachable.
pub(super) fn leave_frame(builder: &mut FunctionBuilder, state: &State, frame: &mut ControlFrame) {
    if state.reachable {
        let results = state.peekn(frame.num_results).to_vec();
        jump(builder, frame.destination, &results);
        frame.exit_reachable = true;
    }
}

/// After a frame has been closed: continues in its destination (with the results
/// on the stack) if anything reaches it; returns at the end of the function body.
pub(super) fn continue_after_frame(
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
    frame: ControlFrame,
) {
    state.truncate(frame.original_stack_size);
    // Every branch to the destination is inside the frame, so all are known now.
    builder.seal_block(frame.destination);
    if frame.exit_reachable {
        builder.switch_to_block(frame.destination);
        state
            .stack
            .extend_from_slice(builder.block_params(frame.destination));
        state.reachable = true;
        if state.frames.is_empty() {
            // End of the function body.
            let results = state.stack.clone();
            env.fuel_flush(builder);
            builder.ins().return_(&results);
            state.reachable = false;
        }
    } else {
        state.reachable = false;
    }
}

/// `try_table`: emits the dispatch block first (the catch labels are resolved
/// outside the `try_table`, so before its frame is pushed), then opens the frame.
///
/// The dispatch block receives the `*const VMException` (from a `try_call`'s
/// catch-all handler, or from a `throw` in the body) and tests the clauses in order:
/// `catch $t` compares the exception's tag identity with this instance's tag `$t`
/// and branches with the payload (plus the exception for `catch_ref`); `catch_all`
/// branches unconditionally. Without a match the exception is rethrown to the
/// enclosing `try_table` of the function, or out of the function.
fn translate_try_table(
    try_table: &wasmparser::TryTable,
    offset: usize,
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
) -> Result<(), CompileError> {
    use wasmparser::Catch;
    let (params, results) = block_types(env, try_table.ty, offset)?;
    let destination = block_with_params(builder, &results);
    let dispatch = builder.create_block();
    let exn = builder.append_block_param(dispatch, types::I64);
    // A root while the dispatch code runs (see `translate::GcRefTracking`).
    builder.declare_value_needs_stack_map(exn);
    // The body continues in a fresh block: the current one must be terminated before
    // the builder switches to the dispatch block.
    let body = builder.create_block();
    jump(builder, body, &[]);
    builder.seal_block(body);
    builder.switch_to_block(dispatch);
    // The thrower (this function or a callee) stored its fuel count before throwing.
    env.fuel_reload(builder);
    let mut matched_all = false;
    for catch in &try_table.catches {
        match *catch {
            Catch::One { tag, label } | Catch::OneRef { tag, label } => {
                let (mut values, next) = test_tag(builder, env, exn, tag);
                if matches!(catch, Catch::OneRef { .. }) {
                    values.push(exn);
                }
                let target = mark_branch_target(state, label);
                jump(builder, target, &values);
                builder.switch_to_block(next);
            }
            Catch::All { label } | Catch::AllRef { label } => {
                let values = if matches!(catch, Catch::AllRef { .. }) {
                    vec![exn]
                } else {
                    Vec::new()
                };
                let target = mark_branch_target(state, label);
                jump(builder, target, &values);
                matched_all = true;
                break;
            }
        }
    }
    if !matched_all {
        env.throw(builder, exn, state.handlers.last().copied());
    }
    builder.switch_to_block(body);
    state.frames.push(ControlFrame {
        kind: FrameKind::TryTable { dispatch },
        destination,
        num_params: params.len(),
        num_results: results.len(),
        original_stack_size: state.stack.len() - params.len(),
        exit_reachable: false,
    });
    state.handlers.push(dispatch);
    Ok(())
}

/// Tests whether the exception `exn` carries this instance's tag `tag` (shared by
/// `try_table` and the legacy `catch`). On a match, continues in a new block and
/// returns the payload loaded there; also returns the (sealed, not yet current)
/// block where execution goes when the tag differs.
pub(super) fn test_tag(
    builder: &mut FunctionBuilder,
    env: &mut FuncEnv,
    exn: Value,
    tag: u32,
) -> (Vec<Value>, Block) {
    let flags = MemFlagsData::trusted().with_readonly();
    let thrown = builder
        .ins()
        .load(types::I64, flags, exn, VMContextLayout::EXCEPTION_TAG);
    let ours = env.tag_identity(builder, tag);
    let same = builder.ins().icmp(IntCC::Equal, thrown, ours);
    let matched = builder.create_block();
    let next = builder.create_block();
    builder.ins().brif(same, matched, &[], next, &[]);
    builder.seal_block(matched);
    builder.seal_block(next);
    builder.switch_to_block(matched);
    (env.exn_payload(builder, exn, tag), next)
}

/// The block a branch of `depth` jumps to; marks the target frame's exit as
/// reachable (for branches whose values do not come from the operand stack).
fn mark_branch_target(state: &mut State, depth: u32) -> Block {
    let frame = state.frame_at(depth);
    if !frame.is_loop() {
        frame.exit_reachable = true;
    }
    frame.branch_target().0
}

/// [`branch_args`] for the GC casts (`br_on_cast`, `br_on_cast_fail`).
pub(super) fn branch_args_for_gc(state: &mut State, depth: u32) -> (Block, Vec<Value>) {
    branch_args(state, depth)
}

/// Branch arguments for a `brif`.
pub(super) fn jump_args(args: &[Value]) -> Vec<BlockArg> {
    args.iter().copied().map(BlockArg::Value).collect()
}

/// The target block of a branch of `depth` and the values it carries; marks the
/// target frame's exit as reachable.
fn branch_args(state: &mut State, depth: u32) -> (Block, Vec<Value>) {
    let frame = state.frame_at(depth);
    let (target, n) = frame.branch_target();
    if !frame.is_loop() {
        frame.exit_reachable = true;
    }
    (target, state.peekn(n).to_vec())
}

pub(super) fn jump(builder: &mut FunctionBuilder, block: Block, args: &[Value]) {
    let args: Vec<BlockArg> = args.iter().copied().map(BlockArg::Value).collect();
    builder.ins().jump(block, &args);
}

pub(super) fn block_with_params(builder: &mut FunctionBuilder, types: &[Type]) -> Block {
    let block = builder.create_block();
    for ty in types {
        builder.append_block_param(block, *ty);
    }
    block
}

pub(super) fn block_types(
    env: &FuncEnv,
    blockty: BlockType,
    offset: usize,
) -> Result<(Vec<Type>, Vec<Type>), CompileError> {
    Ok(match blockty {
        BlockType::Empty => (Vec::new(), Vec::new()),
        BlockType::Type(t) => (
            Vec::new(),
            vec![ir_type(val_type(t, &env.info.sub_types, offset)?)],
        ),
        BlockType::FuncType(index) => {
            let ty = &env.info.types[index as usize];
            (
                ty.params.iter().map(|t| ir_type(*t)).collect(),
                ty.results.iter().map(|t| ir_type(*t)).collect(),
            )
        }
    })
}

/// Wide arithmetic: 128-bit integers as (low, high) pairs of i64 on the operand
/// stack, low half first. Cranelift's i128 add/sub lower to add-with-carry pairs, and
/// the 64x64 -> 128 multiplications to a plain multiply for the low half and a
/// high-half multiply (`smulhi`/`umulhi`).
fn translate_wide_arithmetic(op: &Operator, builder: &mut FunctionBuilder, state: &mut State) {
    let (lo, hi) = match op {
        Operator::I64Add128 | Operator::I64Sub128 => {
            let (b_lo, b_hi) = state.pop2();
            let (a_lo, a_hi) = state.pop2();
            let a = builder.ins().iconcat(a_lo, a_hi);
            let b = builder.ins().iconcat(b_lo, b_hi);
            let r = if matches!(op, Operator::I64Add128) {
                builder.ins().iadd(a, b)
            } else {
                builder.ins().isub(a, b)
            };
            builder.ins().isplit(r)
        }
        Operator::I64MulWideS | Operator::I64MulWideU => {
            let (a, b) = state.pop2();
            let lo = builder.ins().imul(a, b);
            let hi = if matches!(op, Operator::I64MulWideS) {
                builder.ins().smulhi(a, b)
            } else {
                builder.ins().umulhi(a, b)
            };
            (lo, hi)
        }
        _ => unreachable!("not a wide-arithmetic operator"),
    };
    state.push(lo);
    state.push(hi);
}

fn reinterpret(builder: &mut FunctionBuilder, state: &mut State, to: Type) {
    let a = state.pop();
    let r = builder.ins().bitcast(to, MemFlagsData::new(), a);
    state.push(r);
}

#[derive(Clone, Copy)]
enum Load {
    Plain(Type),
    S8(Type),
    U8(Type),
    S16(Type),
    U16(Type),
    S32,
    U32,
}

fn load(
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
    memarg: &MemArg,
    kind: Load,
    size: u32,
) {
    let index = state.pop();
    let addr = env.heap_address(builder, memarg, index, size);
    let flags = env.heap_flags();
    let ins = builder.ins();
    let v = match kind {
        Load::Plain(ty) => ins.load(ty, flags, addr, 0),
        Load::S8(ty) => ins.sload8(ty, flags, addr, 0),
        Load::U8(ty) => ins.uload8(ty, flags, addr, 0),
        Load::S16(ty) => ins.sload16(ty, flags, addr, 0),
        Load::U16(ty) => ins.uload16(ty, flags, addr, 0),
        Load::S32 => ins.sload32(flags, addr, 0),
        Load::U32 => ins.uload32(flags, addr, 0),
    };
    state.push(v);
}

#[derive(Clone, Copy)]
enum Store {
    Plain,
    Narrow8,
    Narrow16,
    Narrow32,
}

fn store(
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
    memarg: &MemArg,
    kind: Store,
    size: u32,
) {
    let (index, value) = state.pop2();
    let addr = env.heap_address(builder, memarg, index, size);
    let flags = env.heap_flags();
    let ins = builder.ins();
    match kind {
        Store::Plain => ins.store(flags, value, addr, 0),
        Store::Narrow8 => ins.istore8(flags, value, addr, 0),
        Store::Narrow16 => ins.istore16(flags, value, addr, 0),
        Store::Narrow32 => ins.istore32(flags, value, addr, 0),
    };
}
