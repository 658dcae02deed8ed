//! The threads proposal's operators: atomic loads, stores, read-modify-writes and
//! compare-exchanges, `memory.atomic.wait32/64`, `memory.atomic.notify` and
//! `atomic.fence`.
//!
//! # Memory model
//! Every wasm atomic is sequentially consistent, and so is every Cranelift atomic
//! instruction (`atomic_load`, `atomic_store`, `atomic_rmw`, `atomic_cas`, `fence`),
//! which Cranelift lowers with the standard C++11 seq-cst mapping:
//! * x86_64 (TSO): loads are plain `mov`s, stores `xchg`/`mov`+`mfence`, RMWs
//!   `lock xadd`/`lock cmpxchg` loops, compare-exchange `lock cmpxchg`, the fence
//!   `mfence`;
//! * aarch64: loads `ldar`, stores `stlr`, RMWs and compare-exchange
//!   load-acquire/store-release exclusive loops (`ldaxr`/`stlxr`, or the LSE
//!   `ldaddal`/`casal` family when available), the fence `dmb ish`.
//!
//! Non-atomic accesses to a shared memory stay plain loads and stores: wasm allows
//! them to tear and race, like relaxed accesses. Cranelift treats every atomic
//! instruction as a barrier for its own load/store reordering.
//!
//! # Traps
//! An atomic access whose effective address (`index + offset`) is not a multiple of
//! its size traps with "unaligned atomic"; checked here before the access, so
//! alignment is decided before the bounds (as wasmtime does; the spec suite only
//! tests in-bounds misaligned addresses). Bounds are then checked like any access
//! (guard pages or an explicit check, see `environ`). Wait and notify call builtins
//! that check bounds themselves; a wait on an unshared memory traps there.

use cranelift_codegen::ir::{AtomicRmwOp, InstBuilder, Type, Value, condcodes::IntCC, types};
use cranelift_frontend::FunctionBuilder;
use wasmc_abi::{ATOMIC_WAIT_NOT_SHARED, ATOMIC_WAIT_OUT_OF_BOUNDS, Builtin, Trap};
use wasmparser::{MemArg, MemArgTarget, Operator};

use super::control::State;
use super::environ::{FuncEnv, to_u64, trap_code};
use super::simd::SimdEnv;

/// Translates `op` if it is a threads operator; `false` otherwise.
pub(crate) fn translate_atomic_operator(
    op: &Operator,
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
) -> bool {
    use Operator as O;
    use types::{I8, I16, I32, I64};
    match op {
        O::AtomicFence { .. } => {
            builder.ins().fence();
        }
        O::MemoryAtomicNotify { memarg } => notify(builder, state, env, memarg),
        O::MemoryAtomicWait32 { memarg } => wait(builder, state, env, memarg, I32),
        O::MemoryAtomicWait64 { memarg } => wait(builder, state, env, memarg, I64),

        O::I32AtomicLoad { memarg } => load(builder, state, env, memarg, I32, I32),
        O::I64AtomicLoad { memarg } => load(builder, state, env, memarg, I64, I64),
        O::I32AtomicLoad8U { memarg } => load(builder, state, env, memarg, I8, I32),
        O::I32AtomicLoad16U { memarg } => load(builder, state, env, memarg, I16, I32),
        O::I64AtomicLoad8U { memarg } => load(builder, state, env, memarg, I8, I64),
        O::I64AtomicLoad16U { memarg } => load(builder, state, env, memarg, I16, I64),
        O::I64AtomicLoad32U { memarg } => load(builder, state, env, memarg, I32, I64),

        O::I32AtomicStore { memarg } | O::I64AtomicStore { memarg } => {
            let ty = builder
                .func
                .dfg
                .value_type(*state.stack.last().expect("validated"));
            store(builder, state, env, memarg, ty)
        }
        O::I32AtomicStore8 { memarg } | O::I64AtomicStore8 { memarg } => {
            store(builder, state, env, memarg, I8)
        }
        O::I32AtomicStore16 { memarg } | O::I64AtomicStore16 { memarg } => {
            store(builder, state, env, memarg, I16)
        }
        O::I64AtomicStore32 { memarg } => store(builder, state, env, memarg, I32),

        _ => {
            let Some((rmw, access, result)) = rmw_kind(op) else {
                return false;
            };
            let memarg = memarg_of(op).expect("every RMW operator has a memarg");
            match rmw {
                Rmw::Op(rmw_op) => {
                    rmw_op_access(builder, state, env, &memarg, rmw_op, access, result)
                }
                Rmw::Cmpxchg => cmpxchg(builder, state, env, &memarg, access, result),
            }
        }
    }
    true
}

enum Rmw {
    Op(AtomicRmwOp),
    Cmpxchg,
}

/// The read-modify-write operators: (operation, access type, result type).
fn rmw_kind(op: &Operator) -> Option<(Rmw, Type, Type)> {
    use AtomicRmwOp::{Add, And, Or, Sub, Xchg, Xor};
    use Operator as O;
    use types::{I8, I16, I32, I64};
    let (rmw, access, result) = match op {
        O::I32AtomicRmwAdd { .. } => (Rmw::Op(Add), I32, I32),
        O::I64AtomicRmwAdd { .. } => (Rmw::Op(Add), I64, I64),
        O::I32AtomicRmw8AddU { .. } => (Rmw::Op(Add), I8, I32),
        O::I32AtomicRmw16AddU { .. } => (Rmw::Op(Add), I16, I32),
        O::I64AtomicRmw8AddU { .. } => (Rmw::Op(Add), I8, I64),
        O::I64AtomicRmw16AddU { .. } => (Rmw::Op(Add), I16, I64),
        O::I64AtomicRmw32AddU { .. } => (Rmw::Op(Add), I32, I64),
        O::I32AtomicRmwSub { .. } => (Rmw::Op(Sub), I32, I32),
        O::I64AtomicRmwSub { .. } => (Rmw::Op(Sub), I64, I64),
        O::I32AtomicRmw8SubU { .. } => (Rmw::Op(Sub), I8, I32),
        O::I32AtomicRmw16SubU { .. } => (Rmw::Op(Sub), I16, I32),
        O::I64AtomicRmw8SubU { .. } => (Rmw::Op(Sub), I8, I64),
        O::I64AtomicRmw16SubU { .. } => (Rmw::Op(Sub), I16, I64),
        O::I64AtomicRmw32SubU { .. } => (Rmw::Op(Sub), I32, I64),
        O::I32AtomicRmwAnd { .. } => (Rmw::Op(And), I32, I32),
        O::I64AtomicRmwAnd { .. } => (Rmw::Op(And), I64, I64),
        O::I32AtomicRmw8AndU { .. } => (Rmw::Op(And), I8, I32),
        O::I32AtomicRmw16AndU { .. } => (Rmw::Op(And), I16, I32),
        O::I64AtomicRmw8AndU { .. } => (Rmw::Op(And), I8, I64),
        O::I64AtomicRmw16AndU { .. } => (Rmw::Op(And), I16, I64),
        O::I64AtomicRmw32AndU { .. } => (Rmw::Op(And), I32, I64),
        O::I32AtomicRmwOr { .. } => (Rmw::Op(Or), I32, I32),
        O::I64AtomicRmwOr { .. } => (Rmw::Op(Or), I64, I64),
        O::I32AtomicRmw8OrU { .. } => (Rmw::Op(Or), I8, I32),
        O::I32AtomicRmw16OrU { .. } => (Rmw::Op(Or), I16, I32),
        O::I64AtomicRmw8OrU { .. } => (Rmw::Op(Or), I8, I64),
        O::I64AtomicRmw16OrU { .. } => (Rmw::Op(Or), I16, I64),
        O::I64AtomicRmw32OrU { .. } => (Rmw::Op(Or), I32, I64),
        O::I32AtomicRmwXor { .. } => (Rmw::Op(Xor), I32, I32),
        O::I64AtomicRmwXor { .. } => (Rmw::Op(Xor), I64, I64),
        O::I32AtomicRmw8XorU { .. } => (Rmw::Op(Xor), I8, I32),
        O::I32AtomicRmw16XorU { .. } => (Rmw::Op(Xor), I16, I32),
        O::I64AtomicRmw8XorU { .. } => (Rmw::Op(Xor), I8, I64),
        O::I64AtomicRmw16XorU { .. } => (Rmw::Op(Xor), I16, I64),
        O::I64AtomicRmw32XorU { .. } => (Rmw::Op(Xor), I32, I64),
        O::I32AtomicRmwXchg { .. } => (Rmw::Op(Xchg), I32, I32),
        O::I64AtomicRmwXchg { .. } => (Rmw::Op(Xchg), I64, I64),
        O::I32AtomicRmw8XchgU { .. } => (Rmw::Op(Xchg), I8, I32),
        O::I32AtomicRmw16XchgU { .. } => (Rmw::Op(Xchg), I16, I32),
        O::I64AtomicRmw8XchgU { .. } => (Rmw::Op(Xchg), I8, I64),
        O::I64AtomicRmw16XchgU { .. } => (Rmw::Op(Xchg), I16, I64),
        O::I64AtomicRmw32XchgU { .. } => (Rmw::Op(Xchg), I32, I64),
        O::I32AtomicRmwCmpxchg { .. } => (Rmw::Cmpxchg, I32, I32),
        O::I64AtomicRmwCmpxchg { .. } => (Rmw::Cmpxchg, I64, I64),
        O::I32AtomicRmw8CmpxchgU { .. } => (Rmw::Cmpxchg, I8, I32),
        O::I32AtomicRmw16CmpxchgU { .. } => (Rmw::Cmpxchg, I16, I32),
        O::I64AtomicRmw8CmpxchgU { .. } => (Rmw::Cmpxchg, I8, I64),
        O::I64AtomicRmw16CmpxchgU { .. } => (Rmw::Cmpxchg, I16, I64),
        O::I64AtomicRmw32CmpxchgU { .. } => (Rmw::Cmpxchg, I32, I64),
        _ => return None,
    };
    Some((rmw, access, result))
}

/// The memarg of an atomic RMW operator.
fn memarg_of(op: &Operator) -> Option<MemArg> {
    use Operator as O;
    match op {
        O::I32AtomicRmwAdd { memarg }
        | O::I64AtomicRmwAdd { memarg }
        | O::I32AtomicRmw8AddU { memarg }
        | O::I32AtomicRmw16AddU { memarg }
        | O::I64AtomicRmw8AddU { memarg }
        | O::I64AtomicRmw16AddU { memarg }
        | O::I64AtomicRmw32AddU { memarg }
        | O::I32AtomicRmwSub { memarg }
        | O::I64AtomicRmwSub { memarg }
        | O::I32AtomicRmw8SubU { memarg }
        | O::I32AtomicRmw16SubU { memarg }
        | O::I64AtomicRmw8SubU { memarg }
        | O::I64AtomicRmw16SubU { memarg }
        | O::I64AtomicRmw32SubU { memarg }
        | O::I32AtomicRmwAnd { memarg }
        | O::I64AtomicRmwAnd { memarg }
        | O::I32AtomicRmw8AndU { memarg }
        | O::I32AtomicRmw16AndU { memarg }
        | O::I64AtomicRmw8AndU { memarg }
        | O::I64AtomicRmw16AndU { memarg }
        | O::I64AtomicRmw32AndU { memarg }
        | O::I32AtomicRmwOr { memarg }
        | O::I64AtomicRmwOr { memarg }
        | O::I32AtomicRmw8OrU { memarg }
        | O::I32AtomicRmw16OrU { memarg }
        | O::I64AtomicRmw8OrU { memarg }
        | O::I64AtomicRmw16OrU { memarg }
        | O::I64AtomicRmw32OrU { memarg }
        | O::I32AtomicRmwXor { memarg }
        | O::I64AtomicRmwXor { memarg }
        | O::I32AtomicRmw8XorU { memarg }
        | O::I32AtomicRmw16XorU { memarg }
        | O::I64AtomicRmw8XorU { memarg }
        | O::I64AtomicRmw16XorU { memarg }
        | O::I64AtomicRmw32XorU { memarg }
        | O::I32AtomicRmwXchg { memarg }
        | O::I64AtomicRmwXchg { memarg }
        | O::I32AtomicRmw8XchgU { memarg }
        | O::I32AtomicRmw16XchgU { memarg }
        | O::I64AtomicRmw8XchgU { memarg }
        | O::I64AtomicRmw16XchgU { memarg }
        | O::I64AtomicRmw32XchgU { memarg }
        | O::I32AtomicRmwCmpxchg { memarg }
        | O::I64AtomicRmwCmpxchg { memarg }
        | O::I32AtomicRmw8CmpxchgU { memarg }
        | O::I32AtomicRmw16CmpxchgU { memarg }
        | O::I64AtomicRmw8CmpxchgU { memarg }
        | O::I64AtomicRmw16CmpxchgU { memarg }
        | O::I64AtomicRmw32CmpxchgU { memarg } => Some(*memarg),
        _ => None,
    }
}

/// Traps with "unaligned atomic" unless `index + offset` is a multiple of `size`.
/// Only the low bits matter, so the sum may wrap.
fn check_alignment(builder: &mut FunctionBuilder, memarg: &MemArg, index: Value, size: u32) {
    if size == 1 {
        return;
    }
    let mask = i64::from(size - 1);
    let index = to_u64(builder, index);
    let low = builder
        .ins()
        .iadd_imm_u(index, (memarg.offset as i64) & mask);
    let misaligned = builder.ins().band_imm_u(low, mask);
    builder
        .ins()
        .trapnz(misaligned, trap_code(Trap::HeapMisaligned));
}

/// The native address of an aligned, in-bounds atomic access of `access` bytes.
fn atomic_address(
    builder: &mut FunctionBuilder,
    env: &mut FuncEnv,
    memarg: &MemArg,
    index: Value,
    access: Type,
) -> Value {
    check_alignment(builder, memarg, index, access.bytes());
    env.heap_address(builder, memarg, index, access.bytes())
}

/// Widens an atomic result of type `access` to the operator's result type.
fn widen(builder: &mut FunctionBuilder, value: Value, access: Type, result: Type) -> Value {
    if access == result {
        value
    } else {
        builder.ins().uextend(result, value)
    }
}

/// Narrows an operand to the access type (wasm wraps it).
fn narrow(builder: &mut FunctionBuilder, value: Value, access: Type) -> Value {
    if builder.func.dfg.value_type(value) == access {
        value
    } else {
        builder.ins().ireduce(access, value)
    }
}

fn load(
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
    memarg: &MemArg,
    access: Type,
    result: Type,
) {
    let index = state.pop();
    let addr = atomic_address(builder, env, memarg, index, access);
    let flags = env.heap_flags();
    let v = builder.ins().atomic_load(access, flags, addr);
    let v = widen(builder, v, access, result);
    state.push(v);
}

fn store(
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
    memarg: &MemArg,
    access: Type,
) {
    let (index, value) = state.pop2();
    let addr = atomic_address(builder, env, memarg, index, access);
    let value = narrow(builder, value, access);
    let flags = env.heap_flags();
    builder.ins().atomic_store(flags, value, addr);
}

fn rmw_op_access(
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
    memarg: &MemArg,
    op: AtomicRmwOp,
    access: Type,
    result: Type,
) {
    let (index, operand) = state.pop2();
    let addr = atomic_address(builder, env, memarg, index, access);
    let operand = narrow(builder, operand, access);
    let flags = env.heap_flags();
    let old = builder.ins().atomic_rmw(access, flags, op, addr, operand);
    let old = widen(builder, old, access, result);
    state.push(old);
}

fn cmpxchg(
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
    memarg: &MemArg,
    access: Type,
    result: Type,
) {
    let (index, expected, replacement) = state.pop3();
    let addr = atomic_address(builder, env, memarg, index, access);
    // Both operands wrap to the access width: `i32.atomic.rmw8.cmpxchg_u` with
    // expected 0x111 compares the byte with 0x11.
    let expected = narrow(builder, expected, access);
    let replacement = narrow(builder, replacement, access);
    let flags = env.heap_flags();
    let old = builder.ins().atomic_cas(flags, addr, expected, replacement);
    let old = widen(builder, old, access, result);
    state.push(old);
}

/// The memory index of a memarg (always a memory: GC is not enabled).
fn memory_index(memarg: &MemArg) -> u32 {
    match memarg.target {
        MemArgTarget::Memory(mem) => mem,
        MemArgTarget::Array(_) => unreachable!("array memarg without GC"),
    }
}

/// `memory.atomic.wait32/64 (index, expected, timeout) -> 0|1|2`.
fn wait(
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
    memarg: &MemArg,
    ty: Type,
) {
    let (index, expected, timeout) = state.pop3();
    check_alignment(builder, memarg, index, ty.bytes());
    let mem = builder
        .ins()
        .iconst(types::I32, i64::from(memory_index(memarg)));
    let index = to_u64(builder, index);
    let offset = builder.ins().iconst(types::I64, memarg.offset as i64);
    let builtin = if ty == types::I32 {
        Builtin::MemoryAtomicWait32
    } else {
        Builtin::MemoryAtomicWait64
    };
    let vmctx = env.vmctx;
    let result = env
        .call_builtin(
            builder,
            builtin,
            &[vmctx, mem, index, offset, expected, timeout],
        )
        .expect("wait returns a value");
    let oob = builder
        .ins()
        .icmp_imm_u(IntCC::Equal, result, i64::from(ATOMIC_WAIT_OUT_OF_BOUNDS));
    builder
        .ins()
        .trapnz(oob, trap_code(Trap::MemoryOutOfBounds));
    let unshared =
        builder
            .ins()
            .icmp_imm_u(IntCC::Equal, result, i64::from(ATOMIC_WAIT_NOT_SHARED));
    builder
        .ins()
        .trapnz(unshared, trap_code(Trap::AtomicWaitNonSharedMemory));
    state.push(result);
}

/// `memory.atomic.notify (index, count) -> woken`.
fn notify(builder: &mut FunctionBuilder, state: &mut State, env: &mut FuncEnv, memarg: &MemArg) {
    let (index, count) = state.pop2();
    check_alignment(builder, memarg, index, 4);
    let mem = builder
        .ins()
        .iconst(types::I32, i64::from(memory_index(memarg)));
    let index = to_u64(builder, index);
    let offset = builder.ins().iconst(types::I64, memarg.offset as i64);
    let vmctx = env.vmctx;
    let woken = env
        .call_builtin(
            builder,
            Builtin::MemoryAtomicNotify,
            &[vmctx, mem, index, offset, count],
        )
        .expect("notify returns a value");
    let oob = builder.ins().icmp_imm_s(IntCC::Equal, woken, -1);
    builder
        .ins()
        .trapnz(oob, trap_code(Trap::MemoryOutOfBounds));
    let woken = builder.ins().ireduce(types::I32, woken);
    state.push(woken);
}
