//! Lowering of WebAssembly fixed-width SIMD (`v128`) and relaxed-SIMD operators to CLIF.
//!
//! The function translator hands every operator to [`translate_simd_operator`] before its
//! own `match`; this module answers `Ok(false)` for anything that is not a SIMD operator.
//!
//! # One vector type
//! Wasm has a single `v128` type, CLIF has one type per lane shape. Everywhere in wasmc
//! (operand stack, locals, globals, parameters, block parameters) a `v128` is a CLIF
//! `I8X16`. Each operator bitcasts its vector operands to the lane shape it works on
//! ([`pop_vector`]) and bitcasts its vector result back to `I8X16` ([`push_vector`]). The
//! bitcasts are free after register allocation; lane-count-changing bitcasts must name
//! an endianness, and wasm vectors are little-endian, so every bitcast says so.
//!
//! # Choosing CLIF for a wasm operator
//! Most operators map to one CLIF instruction whose semantics already match the spec:
//! vector shifts take the amount modulo the lane width, `swizzle` yields 0 for
//! out-of-range indices, `fmin`/`fmax` propagate NaN and order -0 below +0,
//! `fcvt_to_{s,u}int_sat` saturate and map NaN to 0, `snarrow`/`unarrow` saturate.
//! The rest is composed from such instructions. Only instructions that both the x86_64
//! (SSE4.2 baseline) and the aarch64 backends lower for vector types are used; a few x86
//! lowerings exist only for one exact instruction pattern, which the code below keeps
//! intact and says so where it matters (`trunc_sat_f64x2_*_zero`).
//!
//! # Relaxed SIMD
//! Relaxed operators get one fixed, deterministic choice among the results the
//! relaxed-SIMD spec allows, the same on every target: the result of the corresponding
//! non-relaxed operator (swizzle, trunc_sat, min/max, q15mulr_sat, bitselect), both
//! operands signed for the i7 dot products, and an unfused multiply-add for `madd`/`nmadd`
//! (a fused one would need FMA hardware or a libcall on the x86 baseline).

use anyhow::{Context as _, Result, bail};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32X4, F64X2, I8, I8X16, I16, I16X8, I32, I32X4, I64, I64X2};
use cranelift_codegen::ir::{ConstantData, Endianness, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;
use wasmparser::{MemArg, Operator};

/// What SIMD lowering needs from the function translator's environment: linear-memory
/// addressing for the `v128` loads and stores.
pub(crate) trait SimdEnv {
    /// Native address for an `access_size`-byte access of memory `memarg.memory` at wasm
    /// address `index` + `memarg.offset`; emits the bounds check/trap when needed.
    fn heap_address(
        &mut self,
        builder: &mut FunctionBuilder,
        memarg: &MemArg,
        index: Value,
        access_size: u32,
    ) -> Value;

    /// Flags for a heap access (little-endian, `HEAP_OUT_OF_BOUNDS` trap code).
    ///
    /// Cranelift 0.135 made `ir::MemFlags` an index into the function's flag set; the
    /// instruction builders take the flag *data* (`MemFlagsData`) and intern it.
    fn heap_flags(&self) -> MemFlagsData;
}

/// Translates one SIMD operator; returns `Ok(false)` if `op` is not a SIMD operator.
///
/// `v128` operands on `stack` must be `I8X16` values; `v128` results are pushed as
/// `I8X16`. Scalar operands and results (lane values, shift amounts, `i32` booleans,
/// addresses) have their usual wasm-to-CLIF types. An error means the operand stack
/// does not match the operator (the module was not validated, or the caller is wrong).
pub(crate) fn translate_simd_operator(
    op: &Operator,
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    env: &mut dyn SimdEnv,
) -> Result<bool> {
    use Operator as O;
    let b = builder;
    let s = stack;
    match op {
        // ---------------------------------------------------------------- memory
        O::V128Load { memarg } => {
            let addr = pop_address(b, s, env, memarg, 16)?;
            let v = b.ins().load(I8X16, env.heap_flags(), addr, 0);
            s.push(v);
        }
        O::V128Load8x8S { memarg } => {
            let addr = pop_address(b, s, env, memarg, 8)?;
            let v = b.ins().sload8x8(env.heap_flags(), addr, 0);
            push_vector(b, s, v);
        }
        O::V128Load8x8U { memarg } => {
            let addr = pop_address(b, s, env, memarg, 8)?;
            let v = b.ins().uload8x8(env.heap_flags(), addr, 0);
            push_vector(b, s, v);
        }
        O::V128Load16x4S { memarg } => {
            let addr = pop_address(b, s, env, memarg, 8)?;
            let v = b.ins().sload16x4(env.heap_flags(), addr, 0);
            push_vector(b, s, v);
        }
        O::V128Load16x4U { memarg } => {
            let addr = pop_address(b, s, env, memarg, 8)?;
            let v = b.ins().uload16x4(env.heap_flags(), addr, 0);
            push_vector(b, s, v);
        }
        O::V128Load32x2S { memarg } => {
            let addr = pop_address(b, s, env, memarg, 8)?;
            let v = b.ins().sload32x2(env.heap_flags(), addr, 0);
            push_vector(b, s, v);
        }
        O::V128Load32x2U { memarg } => {
            let addr = pop_address(b, s, env, memarg, 8)?;
            let v = b.ins().uload32x2(env.heap_flags(), addr, 0);
            push_vector(b, s, v);
        }
        O::V128Load8Splat { memarg } => load_splat(b, s, env, memarg, I8X16)?,
        O::V128Load16Splat { memarg } => load_splat(b, s, env, memarg, I16X8)?,
        O::V128Load32Splat { memarg } => load_splat(b, s, env, memarg, I32X4)?,
        O::V128Load64Splat { memarg } => load_splat(b, s, env, memarg, I64X2)?,
        O::V128Load32Zero { memarg } => load_zero(b, s, env, memarg, I32X4)?,
        O::V128Load64Zero { memarg } => load_zero(b, s, env, memarg, I64X2)?,
        O::V128Load8Lane { memarg, lane } => load_lane(b, s, env, memarg, I8X16, *lane)?,
        O::V128Load16Lane { memarg, lane } => load_lane(b, s, env, memarg, I16X8, *lane)?,
        O::V128Load32Lane { memarg, lane } => load_lane(b, s, env, memarg, I32X4, *lane)?,
        O::V128Load64Lane { memarg, lane } => load_lane(b, s, env, memarg, I64X2, *lane)?,
        O::V128Store { memarg } => {
            let v = pop_vector(b, s, I8X16)?;
            let addr = pop_address(b, s, env, memarg, 16)?;
            b.ins().store(env.heap_flags(), v, addr, 0);
        }
        O::V128Store8Lane { memarg, lane } => store_lane(b, s, env, memarg, I8X16, *lane)?,
        O::V128Store16Lane { memarg, lane } => store_lane(b, s, env, memarg, I16X8, *lane)?,
        O::V128Store32Lane { memarg, lane } => store_lane(b, s, env, memarg, I32X4, *lane)?,
        O::V128Store64Lane { memarg, lane } => store_lane(b, s, env, memarg, I64X2, *lane)?,

        // ------------------------------------------------- constants and lane moves
        O::V128Const { value } => {
            let handle = (b.func.dfg.constants).insert(ConstantData::from(&value.bytes()[..]));
            let v = b.ins().vconst(I8X16, handle);
            s.push(v);
        }
        O::I8x16Shuffle { lanes } => {
            // Validation guarantees indices < 32; anything else would make CLIF's
            // `shuffle` pick zero instead of failing, so refuse it here.
            if lanes.iter().any(|&l| l >= 32) {
                bail!("i8x16.shuffle lane index out of range: {lanes:?}");
            }
            let y = pop_vector(b, s, I8X16)?;
            let x = pop_vector(b, s, I8X16)?;
            let mask = b.func.dfg.immediates.push(ConstantData::from(&lanes[..]));
            let v = b.ins().shuffle(x, y, mask);
            s.push(v);
        }
        O::I8x16Swizzle => binary(b, s, I8X16, |b, x, y| b.ins().swizzle(x, y))?,
        O::I8x16Splat => splat(b, s, I8X16)?,
        O::I16x8Splat => splat(b, s, I16X8)?,
        O::I32x4Splat => splat(b, s, I32X4)?,
        O::I64x2Splat => splat(b, s, I64X2)?,
        O::F32x4Splat => splat(b, s, F32X4)?,
        O::F64x2Splat => splat(b, s, F64X2)?,
        O::I8x16ExtractLaneS { lane } => extract_lane(b, s, I8X16, *lane, Extend::Signed)?,
        O::I8x16ExtractLaneU { lane } => extract_lane(b, s, I8X16, *lane, Extend::Unsigned)?,
        O::I16x8ExtractLaneS { lane } => extract_lane(b, s, I16X8, *lane, Extend::Signed)?,
        O::I16x8ExtractLaneU { lane } => extract_lane(b, s, I16X8, *lane, Extend::Unsigned)?,
        O::I32x4ExtractLane { lane } => extract_lane(b, s, I32X4, *lane, Extend::None)?,
        O::I64x2ExtractLane { lane } => extract_lane(b, s, I64X2, *lane, Extend::None)?,
        O::F32x4ExtractLane { lane } => extract_lane(b, s, F32X4, *lane, Extend::None)?,
        O::F64x2ExtractLane { lane } => extract_lane(b, s, F64X2, *lane, Extend::None)?,
        O::I8x16ReplaceLane { lane } => replace_lane(b, s, I8X16, *lane)?,
        O::I16x8ReplaceLane { lane } => replace_lane(b, s, I16X8, *lane)?,
        O::I32x4ReplaceLane { lane } => replace_lane(b, s, I32X4, *lane)?,
        O::I64x2ReplaceLane { lane } => replace_lane(b, s, I64X2, *lane)?,
        O::F32x4ReplaceLane { lane } => replace_lane(b, s, F32X4, *lane)?,
        O::F64x2ReplaceLane { lane } => replace_lane(b, s, F64X2, *lane)?,

        // ------------------------------------------------------------ comparisons
        O::I8x16Eq => icmp(b, s, I8X16, IntCC::Equal)?,
        O::I8x16Ne => icmp(b, s, I8X16, IntCC::NotEqual)?,
        O::I8x16LtS => icmp(b, s, I8X16, IntCC::SignedLessThan)?,
        O::I8x16LtU => icmp(b, s, I8X16, IntCC::UnsignedLessThan)?,
        O::I8x16GtS => icmp(b, s, I8X16, IntCC::SignedGreaterThan)?,
        O::I8x16GtU => icmp(b, s, I8X16, IntCC::UnsignedGreaterThan)?,
        O::I8x16LeS => icmp(b, s, I8X16, IntCC::SignedLessThanOrEqual)?,
        O::I8x16LeU => icmp(b, s, I8X16, IntCC::UnsignedLessThanOrEqual)?,
        O::I8x16GeS => icmp(b, s, I8X16, IntCC::SignedGreaterThanOrEqual)?,
        O::I8x16GeU => icmp(b, s, I8X16, IntCC::UnsignedGreaterThanOrEqual)?,
        O::I16x8Eq => icmp(b, s, I16X8, IntCC::Equal)?,
        O::I16x8Ne => icmp(b, s, I16X8, IntCC::NotEqual)?,
        O::I16x8LtS => icmp(b, s, I16X8, IntCC::SignedLessThan)?,
        O::I16x8LtU => icmp(b, s, I16X8, IntCC::UnsignedLessThan)?,
        O::I16x8GtS => icmp(b, s, I16X8, IntCC::SignedGreaterThan)?,
        O::I16x8GtU => icmp(b, s, I16X8, IntCC::UnsignedGreaterThan)?,
        O::I16x8LeS => icmp(b, s, I16X8, IntCC::SignedLessThanOrEqual)?,
        O::I16x8LeU => icmp(b, s, I16X8, IntCC::UnsignedLessThanOrEqual)?,
        O::I16x8GeS => icmp(b, s, I16X8, IntCC::SignedGreaterThanOrEqual)?,
        O::I16x8GeU => icmp(b, s, I16X8, IntCC::UnsignedGreaterThanOrEqual)?,
        O::I32x4Eq => icmp(b, s, I32X4, IntCC::Equal)?,
        O::I32x4Ne => icmp(b, s, I32X4, IntCC::NotEqual)?,
        O::I32x4LtS => icmp(b, s, I32X4, IntCC::SignedLessThan)?,
        O::I32x4LtU => icmp(b, s, I32X4, IntCC::UnsignedLessThan)?,
        O::I32x4GtS => icmp(b, s, I32X4, IntCC::SignedGreaterThan)?,
        O::I32x4GtU => icmp(b, s, I32X4, IntCC::UnsignedGreaterThan)?,
        O::I32x4LeS => icmp(b, s, I32X4, IntCC::SignedLessThanOrEqual)?,
        O::I32x4LeU => icmp(b, s, I32X4, IntCC::UnsignedLessThanOrEqual)?,
        O::I32x4GeS => icmp(b, s, I32X4, IntCC::SignedGreaterThanOrEqual)?,
        O::I32x4GeU => icmp(b, s, I32X4, IntCC::UnsignedGreaterThanOrEqual)?,
        O::I64x2Eq => icmp(b, s, I64X2, IntCC::Equal)?,
        O::I64x2Ne => icmp(b, s, I64X2, IntCC::NotEqual)?,
        O::I64x2LtS => icmp(b, s, I64X2, IntCC::SignedLessThan)?,
        O::I64x2GtS => icmp(b, s, I64X2, IntCC::SignedGreaterThan)?,
        O::I64x2LeS => icmp(b, s, I64X2, IntCC::SignedLessThanOrEqual)?,
        O::I64x2GeS => icmp(b, s, I64X2, IntCC::SignedGreaterThanOrEqual)?,
        // Wasm float comparisons are ordered except `ne`, which is true for NaN.
        O::F32x4Eq => fcmp(b, s, F32X4, FloatCC::Equal)?,
        O::F32x4Ne => fcmp(b, s, F32X4, FloatCC::NotEqual)?,
        O::F32x4Lt => fcmp(b, s, F32X4, FloatCC::LessThan)?,
        O::F32x4Gt => fcmp(b, s, F32X4, FloatCC::GreaterThan)?,
        O::F32x4Le => fcmp(b, s, F32X4, FloatCC::LessThanOrEqual)?,
        O::F32x4Ge => fcmp(b, s, F32X4, FloatCC::GreaterThanOrEqual)?,
        O::F64x2Eq => fcmp(b, s, F64X2, FloatCC::Equal)?,
        O::F64x2Ne => fcmp(b, s, F64X2, FloatCC::NotEqual)?,
        O::F64x2Lt => fcmp(b, s, F64X2, FloatCC::LessThan)?,
        O::F64x2Gt => fcmp(b, s, F64X2, FloatCC::GreaterThan)?,
        O::F64x2Le => fcmp(b, s, F64X2, FloatCC::LessThanOrEqual)?,
        O::F64x2Ge => fcmp(b, s, F64X2, FloatCC::GreaterThanOrEqual)?,

        // ---------------------------------------------------------------- bitwise
        O::V128Not => unary(b, s, I8X16, |b, x| b.ins().bnot(x))?,
        O::V128And => binary(b, s, I8X16, |b, x, y| b.ins().band(x, y))?,
        // `v128.andnot a b` = a & !b, which is CLIF's `band_not a b`.
        O::V128AndNot => binary(b, s, I8X16, |b, x, y| b.ins().band_not(x, y))?,
        O::V128Or => binary(b, s, I8X16, |b, x, y| b.ins().bor(x, y))?,
        O::V128Xor => binary(b, s, I8X16, |b, x, y| b.ins().bxor(x, y))?,
        // `v128.bitselect v1 v2 c` takes bits of v1 where c is 1; CLIF puts c first.
        O::V128Bitselect => ternary(b, s, I8X16, |b, x, y, c| b.ins().bitselect(c, x, y))?,

        // ------------------------------------------------------ lane reductions
        O::V128AnyTrue => reduce(b, s, I8X16, |b, x| b.ins().vany_true(x))?,
        O::I8x16AllTrue => reduce(b, s, I8X16, |b, x| b.ins().vall_true(x))?,
        O::I16x8AllTrue => reduce(b, s, I16X8, |b, x| b.ins().vall_true(x))?,
        O::I32x4AllTrue => reduce(b, s, I32X4, |b, x| b.ins().vall_true(x))?,
        O::I64x2AllTrue => reduce(b, s, I64X2, |b, x| b.ins().vall_true(x))?,
        O::I8x16Bitmask => reduce(b, s, I8X16, |b, x| b.ins().vhigh_bits(I32, x))?,
        O::I16x8Bitmask => reduce(b, s, I16X8, |b, x| b.ins().vhigh_bits(I32, x))?,
        O::I32x4Bitmask => reduce(b, s, I32X4, |b, x| b.ins().vhigh_bits(I32, x))?,
        O::I64x2Bitmask => reduce(b, s, I64X2, |b, x| b.ins().vhigh_bits(I32, x))?,

        // ---------------------------------------------------- integer arithmetic
        O::I8x16Add => binary(b, s, I8X16, |b, x, y| b.ins().iadd(x, y))?,
        O::I16x8Add => binary(b, s, I16X8, |b, x, y| b.ins().iadd(x, y))?,
        O::I32x4Add => binary(b, s, I32X4, |b, x, y| b.ins().iadd(x, y))?,
        O::I64x2Add => binary(b, s, I64X2, |b, x, y| b.ins().iadd(x, y))?,
        O::I8x16Sub => binary(b, s, I8X16, |b, x, y| b.ins().isub(x, y))?,
        O::I16x8Sub => binary(b, s, I16X8, |b, x, y| b.ins().isub(x, y))?,
        O::I32x4Sub => binary(b, s, I32X4, |b, x, y| b.ins().isub(x, y))?,
        O::I64x2Sub => binary(b, s, I64X2, |b, x, y| b.ins().isub(x, y))?,
        O::I16x8Mul => binary(b, s, I16X8, |b, x, y| b.ins().imul(x, y))?,
        O::I32x4Mul => binary(b, s, I32X4, |b, x, y| b.ins().imul(x, y))?,
        O::I64x2Mul => binary(b, s, I64X2, |b, x, y| b.ins().imul(x, y))?,
        O::I8x16Neg => unary(b, s, I8X16, |b, x| b.ins().ineg(x))?,
        O::I16x8Neg => unary(b, s, I16X8, |b, x| b.ins().ineg(x))?,
        O::I32x4Neg => unary(b, s, I32X4, |b, x| b.ins().ineg(x))?,
        O::I64x2Neg => unary(b, s, I64X2, |b, x| b.ins().ineg(x))?,
        // `iabs` wraps for the minimum value (abs(-128) = -128), as wasm requires.
        O::I8x16Abs => unary(b, s, I8X16, |b, x| b.ins().iabs(x))?,
        O::I16x8Abs => unary(b, s, I16X8, |b, x| b.ins().iabs(x))?,
        O::I32x4Abs => unary(b, s, I32X4, |b, x| b.ins().iabs(x))?,
        O::I64x2Abs => unary(b, s, I64X2, |b, x| b.ins().iabs(x))?,
        O::I8x16AddSatS => binary(b, s, I8X16, |b, x, y| b.ins().sadd_sat(x, y))?,
        O::I8x16AddSatU => binary(b, s, I8X16, |b, x, y| b.ins().uadd_sat(x, y))?,
        O::I8x16SubSatS => binary(b, s, I8X16, |b, x, y| b.ins().ssub_sat(x, y))?,
        O::I8x16SubSatU => binary(b, s, I8X16, |b, x, y| b.ins().usub_sat(x, y))?,
        O::I16x8AddSatS => binary(b, s, I16X8, |b, x, y| b.ins().sadd_sat(x, y))?,
        O::I16x8AddSatU => binary(b, s, I16X8, |b, x, y| b.ins().uadd_sat(x, y))?,
        O::I16x8SubSatS => binary(b, s, I16X8, |b, x, y| b.ins().ssub_sat(x, y))?,
        O::I16x8SubSatU => binary(b, s, I16X8, |b, x, y| b.ins().usub_sat(x, y))?,
        O::I8x16MinS => binary(b, s, I8X16, |b, x, y| b.ins().smin(x, y))?,
        O::I8x16MinU => binary(b, s, I8X16, |b, x, y| b.ins().umin(x, y))?,
        O::I8x16MaxS => binary(b, s, I8X16, |b, x, y| b.ins().smax(x, y))?,
        O::I8x16MaxU => binary(b, s, I8X16, |b, x, y| b.ins().umax(x, y))?,
        O::I16x8MinS => binary(b, s, I16X8, |b, x, y| b.ins().smin(x, y))?,
        O::I16x8MinU => binary(b, s, I16X8, |b, x, y| b.ins().umin(x, y))?,
        O::I16x8MaxS => binary(b, s, I16X8, |b, x, y| b.ins().smax(x, y))?,
        O::I16x8MaxU => binary(b, s, I16X8, |b, x, y| b.ins().umax(x, y))?,
        O::I32x4MinS => binary(b, s, I32X4, |b, x, y| b.ins().smin(x, y))?,
        O::I32x4MinU => binary(b, s, I32X4, |b, x, y| b.ins().umin(x, y))?,
        O::I32x4MaxS => binary(b, s, I32X4, |b, x, y| b.ins().smax(x, y))?,
        O::I32x4MaxU => binary(b, s, I32X4, |b, x, y| b.ins().umax(x, y))?,
        // `avg_round` is the unsigned (a + b + 1) >> 1 without intermediate overflow.
        O::I8x16AvgrU => binary(b, s, I8X16, |b, x, y| b.ins().avg_round(x, y))?,
        O::I16x8AvgrU => binary(b, s, I16X8, |b, x, y| b.ins().avg_round(x, y))?,
        O::I8x16Popcnt => unary(b, s, I8X16, |b, x| b.ins().popcnt(x))?,
        // Q15 rounding multiply, saturating (only -32768 * -32768 saturates).
        O::I16x8Q15MulrSatS => binary(b, s, I16X8, |b, x, y| b.ins().sqmul_round_sat(x, y))?,

        // ------------------------------------ narrowing, widening, dot products
        O::I8x16NarrowI16x8S => binary(b, s, I16X8, |b, x, y| b.ins().snarrow(x, y))?,
        O::I8x16NarrowI16x8U => binary(b, s, I16X8, |b, x, y| b.ins().unarrow(x, y))?,
        O::I16x8NarrowI32x4S => binary(b, s, I32X4, |b, x, y| b.ins().snarrow(x, y))?,
        O::I16x8NarrowI32x4U => binary(b, s, I32X4, |b, x, y| b.ins().unarrow(x, y))?,
        O::I16x8ExtendLowI8x16S => unary(b, s, I8X16, |b, x| b.ins().swiden_low(x))?,
        O::I16x8ExtendHighI8x16S => unary(b, s, I8X16, |b, x| b.ins().swiden_high(x))?,
        O::I16x8ExtendLowI8x16U => unary(b, s, I8X16, |b, x| b.ins().uwiden_low(x))?,
        O::I16x8ExtendHighI8x16U => unary(b, s, I8X16, |b, x| b.ins().uwiden_high(x))?,
        O::I32x4ExtendLowI16x8S => unary(b, s, I16X8, |b, x| b.ins().swiden_low(x))?,
        O::I32x4ExtendHighI16x8S => unary(b, s, I16X8, |b, x| b.ins().swiden_high(x))?,
        O::I32x4ExtendLowI16x8U => unary(b, s, I16X8, |b, x| b.ins().uwiden_low(x))?,
        O::I32x4ExtendHighI16x8U => unary(b, s, I16X8, |b, x| b.ins().uwiden_high(x))?,
        O::I64x2ExtendLowI32x4S => unary(b, s, I32X4, |b, x| b.ins().swiden_low(x))?,
        O::I64x2ExtendHighI32x4S => unary(b, s, I32X4, |b, x| b.ins().swiden_high(x))?,
        O::I64x2ExtendLowI32x4U => unary(b, s, I32X4, |b, x| b.ins().uwiden_low(x))?,
        O::I64x2ExtendHighI32x4U => unary(b, s, I32X4, |b, x| b.ins().uwiden_high(x))?,
        O::I16x8ExtAddPairwiseI8x16S => unary(b, s, I8X16, |b, x| extadd_pairwise(b, x, true))?,
        O::I16x8ExtAddPairwiseI8x16U => unary(b, s, I8X16, |b, x| extadd_pairwise(b, x, false))?,
        O::I32x4ExtAddPairwiseI16x8S => unary(b, s, I16X8, |b, x| extadd_pairwise(b, x, true))?,
        O::I32x4ExtAddPairwiseI16x8U => unary(b, s, I16X8, |b, x| extadd_pairwise(b, x, false))?,
        O::I16x8ExtMulLowI8x16S => extmul(b, s, I8X16, Half::Low, true)?,
        O::I16x8ExtMulHighI8x16S => extmul(b, s, I8X16, Half::High, true)?,
        O::I16x8ExtMulLowI8x16U => extmul(b, s, I8X16, Half::Low, false)?,
        O::I16x8ExtMulHighI8x16U => extmul(b, s, I8X16, Half::High, false)?,
        O::I32x4ExtMulLowI16x8S => extmul(b, s, I16X8, Half::Low, true)?,
        O::I32x4ExtMulHighI16x8S => extmul(b, s, I16X8, Half::High, true)?,
        O::I32x4ExtMulLowI16x8U => extmul(b, s, I16X8, Half::Low, false)?,
        O::I32x4ExtMulHighI16x8U => extmul(b, s, I16X8, Half::High, false)?,
        O::I64x2ExtMulLowI32x4S => extmul(b, s, I32X4, Half::Low, true)?,
        O::I64x2ExtMulHighI32x4S => extmul(b, s, I32X4, Half::High, true)?,
        O::I64x2ExtMulLowI32x4U => extmul(b, s, I32X4, Half::Low, false)?,
        O::I64x2ExtMulHighI32x4U => extmul(b, s, I32X4, Half::High, false)?,
        O::I32x4DotI16x8S => binary(b, s, I16X8, signed_dot)?,

        // ------------------------------------------------------------------ shifts
        O::I8x16Shl => shift(b, s, I8X16, |b, x, n| b.ins().ishl(x, n))?,
        O::I16x8Shl => shift(b, s, I16X8, |b, x, n| b.ins().ishl(x, n))?,
        O::I32x4Shl => shift(b, s, I32X4, |b, x, n| b.ins().ishl(x, n))?,
        O::I64x2Shl => shift(b, s, I64X2, |b, x, n| b.ins().ishl(x, n))?,
        O::I8x16ShrS => shift(b, s, I8X16, |b, x, n| b.ins().sshr(x, n))?,
        O::I16x8ShrS => shift(b, s, I16X8, |b, x, n| b.ins().sshr(x, n))?,
        O::I32x4ShrS => shift(b, s, I32X4, |b, x, n| b.ins().sshr(x, n))?,
        O::I64x2ShrS => shift(b, s, I64X2, |b, x, n| b.ins().sshr(x, n))?,
        O::I8x16ShrU => shift(b, s, I8X16, |b, x, n| b.ins().ushr(x, n))?,
        O::I16x8ShrU => shift(b, s, I16X8, |b, x, n| b.ins().ushr(x, n))?,
        O::I32x4ShrU => shift(b, s, I32X4, |b, x, n| b.ins().ushr(x, n))?,
        O::I64x2ShrU => shift(b, s, I64X2, |b, x, n| b.ins().ushr(x, n))?,

        // ------------------------------------------------------ float arithmetic
        O::F32x4Add => binary(b, s, F32X4, |b, x, y| b.ins().fadd(x, y))?,
        O::F64x2Add => binary(b, s, F64X2, |b, x, y| b.ins().fadd(x, y))?,
        O::F32x4Sub => binary(b, s, F32X4, |b, x, y| b.ins().fsub(x, y))?,
        O::F64x2Sub => binary(b, s, F64X2, |b, x, y| b.ins().fsub(x, y))?,
        O::F32x4Mul => binary(b, s, F32X4, |b, x, y| b.ins().fmul(x, y))?,
        O::F64x2Mul => binary(b, s, F64X2, |b, x, y| b.ins().fmul(x, y))?,
        O::F32x4Div => binary(b, s, F32X4, |b, x, y| b.ins().fdiv(x, y))?,
        O::F64x2Div => binary(b, s, F64X2, |b, x, y| b.ins().fdiv(x, y))?,
        // CLIF `fmin`/`fmax` have the wasm semantics: NaN in, NaN out; -0 < +0.
        O::F32x4Min => binary(b, s, F32X4, |b, x, y| b.ins().fmin(x, y))?,
        O::F64x2Min => binary(b, s, F64X2, |b, x, y| b.ins().fmin(x, y))?,
        O::F32x4Max => binary(b, s, F32X4, |b, x, y| b.ins().fmax(x, y))?,
        O::F64x2Max => binary(b, s, F64X2, |b, x, y| b.ins().fmax(x, y))?,
        O::F32x4PMin => binary(b, s, F32X4, pseudo_min)?,
        O::F64x2PMin => binary(b, s, F64X2, pseudo_min)?,
        O::F32x4PMax => binary(b, s, F32X4, pseudo_max)?,
        O::F64x2PMax => binary(b, s, F64X2, pseudo_max)?,
        O::F32x4Abs => unary(b, s, F32X4, |b, x| b.ins().fabs(x))?,
        O::F64x2Abs => unary(b, s, F64X2, |b, x| b.ins().fabs(x))?,
        O::F32x4Neg => unary(b, s, F32X4, |b, x| b.ins().fneg(x))?,
        O::F64x2Neg => unary(b, s, F64X2, |b, x| b.ins().fneg(x))?,
        O::F32x4Sqrt => unary(b, s, F32X4, |b, x| b.ins().sqrt(x))?,
        O::F64x2Sqrt => unary(b, s, F64X2, |b, x| b.ins().sqrt(x))?,
        O::F32x4Ceil => unary(b, s, F32X4, |b, x| b.ins().ceil(x))?,
        O::F64x2Ceil => unary(b, s, F64X2, |b, x| b.ins().ceil(x))?,
        O::F32x4Floor => unary(b, s, F32X4, |b, x| b.ins().floor(x))?,
        O::F64x2Floor => unary(b, s, F64X2, |b, x| b.ins().floor(x))?,
        O::F32x4Trunc => unary(b, s, F32X4, |b, x| b.ins().trunc(x))?,
        O::F64x2Trunc => unary(b, s, F64X2, |b, x| b.ins().trunc(x))?,
        // `nearest` rounds half to even, like wasm's `nearest`.
        O::F32x4Nearest => unary(b, s, F32X4, |b, x| b.ins().nearest(x))?,
        O::F64x2Nearest => unary(b, s, F64X2, |b, x| b.ins().nearest(x))?,

        // ------------------------------------------------------------ conversions
        O::F32x4ConvertI32x4S => unary(b, s, I32X4, |b, x| b.ins().fcvt_from_sint(F32X4, x))?,
        O::F32x4ConvertI32x4U => unary(b, s, I32X4, |b, x| b.ins().fcvt_from_uint(F32X4, x))?,
        O::F64x2ConvertLowI32x4S => unary(b, s, I32X4, |b, x| {
            let wide = b.ins().swiden_low(x);
            b.ins().fcvt_from_sint(F64X2, wide)
        })?,
        O::F64x2ConvertLowI32x4U => unary(b, s, I32X4, |b, x| {
            let wide = b.ins().uwiden_low(x);
            b.ins().fcvt_from_uint(F64X2, wide)
        })?,
        O::I32x4TruncSatF32x4S | O::I32x4RelaxedTruncF32x4S => {
            unary(b, s, F32X4, |b, x| b.ins().fcvt_to_sint_sat(I32X4, x))?
        }
        O::I32x4TruncSatF32x4U | O::I32x4RelaxedTruncF32x4U => {
            unary(b, s, F32X4, |b, x| b.ins().fcvt_to_uint_sat(I32X4, x))?
        }
        O::I32x4TruncSatF64x2SZero | O::I32x4RelaxedTruncF64x2SZero => {
            unary(b, s, F64X2, |b, x| trunc_sat_f64x2_zero(b, x, true))?
        }
        O::I32x4TruncSatF64x2UZero | O::I32x4RelaxedTruncF64x2UZero => {
            unary(b, s, F64X2, |b, x| trunc_sat_f64x2_zero(b, x, false))?
        }
        O::F32x4DemoteF64x2Zero => unary(b, s, F64X2, |b, x| b.ins().fvdemote(x))?,
        O::F64x2PromoteLowF32x4 => unary(b, s, F32X4, |b, x| b.ins().fvpromote_low(x))?,

        // ----------------------------------------------------------- relaxed SIMD
        // Each gets the deterministic choice described in the module docs. (The relaxed
        // truncations share the arms of their saturating counterparts above.)
        O::I8x16RelaxedSwizzle => binary(b, s, I8X16, |b, x, y| b.ins().swizzle(x, y))?,
        O::F32x4RelaxedMin => binary(b, s, F32X4, |b, x, y| b.ins().fmin(x, y))?,
        O::F64x2RelaxedMin => binary(b, s, F64X2, |b, x, y| b.ins().fmin(x, y))?,
        O::F32x4RelaxedMax => binary(b, s, F32X4, |b, x, y| b.ins().fmax(x, y))?,
        O::F64x2RelaxedMax => binary(b, s, F64X2, |b, x, y| b.ins().fmax(x, y))?,
        O::F32x4RelaxedMadd => ternary(b, s, F32X4, mul_add)?,
        O::F64x2RelaxedMadd => ternary(b, s, F64X2, mul_add)?,
        O::F32x4RelaxedNmadd => ternary(b, s, F32X4, neg_mul_add)?,
        O::F64x2RelaxedNmadd => ternary(b, s, F64X2, neg_mul_add)?,
        // Bitwise select is a valid laneselect for every mask.
        O::I8x16RelaxedLaneselect
        | O::I16x8RelaxedLaneselect
        | O::I32x4RelaxedLaneselect
        | O::I64x2RelaxedLaneselect => {
            ternary(b, s, I8X16, |b, x, y, c| b.ins().bitselect(c, x, y))?
        }
        O::I16x8RelaxedQ15mulrS => binary(b, s, I16X8, |b, x, y| b.ins().sqmul_round_sat(x, y))?,
        O::I16x8RelaxedDotI8x16I7x16S => binary(b, s, I8X16, signed_dot)?,
        O::I32x4RelaxedDotI8x16I7x16AddS => {
            let acc = pop_vector(b, s, I32X4)?;
            let y = pop_vector(b, s, I8X16)?;
            let x = pop_vector(b, s, I8X16)?;
            let dot16 = signed_dot(b, x, y);
            let dot32 = extadd_pairwise(b, dot16, true);
            let v = b.ins().iadd(dot32, acc);
            push_vector(b, s, v);
        }

        _ => return Ok(false),
    }
    Ok(true)
}

// ------------------------------------------------------------- operand stack helpers

/// Bitcast for vectors: lane layout is little-endian, as in wasm memory.
fn bitcast_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

fn pop(stack: &mut Vec<Value>) -> Result<Value> {
    stack
        .pop()
        .context("operand stack underflow while translating a SIMD operator")
}

/// Pops a `v128` operand and views it as `ty`.
fn pop_vector(builder: &mut FunctionBuilder, stack: &mut Vec<Value>, ty: Type) -> Result<Value> {
    let v = pop(stack)?;
    let actual = builder.func.dfg.value_type(v);
    if !actual.is_vector() || actual.bits() != 128 {
        bail!("SIMD operator expected a v128 operand, found a {actual} value");
    }
    Ok(if actual == ty {
        v
    } else {
        builder.ins().bitcast(ty, bitcast_flags(), v)
    })
}

/// Pops a scalar operand of type `ty` (a lane value or a shift amount).
fn pop_scalar(builder: &FunctionBuilder, stack: &mut Vec<Value>, ty: Type) -> Result<Value> {
    let v = pop(stack)?;
    let actual = builder.func.dfg.value_type(v);
    if actual != ty {
        bail!("SIMD operator expected a {ty} operand, found a {actual} value");
    }
    Ok(v)
}

/// Pushes a vector result in the canonical `I8X16` form.
fn push_vector(builder: &mut FunctionBuilder, stack: &mut Vec<Value>, v: Value) {
    let v = if builder.func.dfg.value_type(v) == I8X16 {
        v
    } else {
        builder.ins().bitcast(I8X16, bitcast_flags(), v)
    };
    stack.push(v);
}

fn unary(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    ty: Type,
    f: impl FnOnce(&mut FunctionBuilder, Value) -> Value,
) -> Result<()> {
    let x = pop_vector(builder, stack, ty)?;
    let v = f(builder, x);
    push_vector(builder, stack, v);
    Ok(())
}

fn binary(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    ty: Type,
    f: impl FnOnce(&mut FunctionBuilder, Value, Value) -> Value,
) -> Result<()> {
    let y = pop_vector(builder, stack, ty)?;
    let x = pop_vector(builder, stack, ty)?;
    let v = f(builder, x, y);
    push_vector(builder, stack, v);
    Ok(())
}

fn ternary(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    ty: Type,
    f: impl FnOnce(&mut FunctionBuilder, Value, Value, Value) -> Value,
) -> Result<()> {
    let z = pop_vector(builder, stack, ty)?;
    let y = pop_vector(builder, stack, ty)?;
    let x = pop_vector(builder, stack, ty)?;
    let v = f(builder, x, y, z);
    push_vector(builder, stack, v);
    Ok(())
}

/// Shifts: `v128, i32 -> v128`. CLIF vector shifts already take the amount modulo the
/// lane width, which is exactly the wasm rule.
fn shift(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    ty: Type,
    f: impl FnOnce(&mut FunctionBuilder, Value, Value) -> Value,
) -> Result<()> {
    let amount = pop_scalar(builder, stack, I32)?;
    let x = pop_vector(builder, stack, ty)?;
    let v = f(builder, x, amount);
    push_vector(builder, stack, v);
    Ok(())
}

/// `v128 -> i32` reductions. The CLIF boolean reductions yield an `i8` 0/1.
fn reduce(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    ty: Type,
    f: impl FnOnce(&mut FunctionBuilder, Value) -> Value,
) -> Result<()> {
    let x = pop_vector(builder, stack, ty)?;
    let mut v = f(builder, x);
    if builder.func.dfg.value_type(v) != I32 {
        v = builder.ins().uextend(I32, v);
    }
    stack.push(v);
    Ok(())
}

fn icmp(builder: &mut FunctionBuilder, stack: &mut Vec<Value>, ty: Type, cc: IntCC) -> Result<()> {
    binary(builder, stack, ty, |b, x, y| b.ins().icmp(cc, x, y))
}

fn fcmp(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    ty: Type,
    cc: FloatCC,
) -> Result<()> {
    binary(builder, stack, ty, |b, x, y| b.ins().fcmp(cc, x, y))
}

// ----------------------------------------------------------------- lanes and splats

/// The scalar type wasm uses for a lane of `ty` (`i32` for the narrow integer lanes).
fn wasm_lane_type(ty: Type) -> Type {
    match ty.lane_type() {
        I8 | I16 => I32,
        lane => lane,
    }
}

fn check_lane(ty: Type, lane: u8) -> Result<()> {
    if u32::from(lane) >= ty.lane_count() {
        bail!("lane index {lane} out of range for {ty}");
    }
    Ok(())
}

/// Pops a wasm scalar and narrows it to the lane type of `ty`.
fn pop_lane_value(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    ty: Type,
) -> Result<Value> {
    let x = pop_scalar(builder, stack, wasm_lane_type(ty))?;
    Ok(if ty.lane_type() == wasm_lane_type(ty) {
        x
    } else {
        builder.ins().ireduce(ty.lane_type(), x)
    })
}

fn splat(builder: &mut FunctionBuilder, stack: &mut Vec<Value>, ty: Type) -> Result<()> {
    let x = pop_lane_value(builder, stack, ty)?;
    let v = builder.ins().splat(ty, x);
    push_vector(builder, stack, v);
    Ok(())
}

enum Extend {
    Signed,
    Unsigned,
    None,
}

fn extract_lane(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    ty: Type,
    lane: u8,
    extend: Extend,
) -> Result<()> {
    check_lane(ty, lane)?;
    let x = pop_vector(builder, stack, ty)?;
    let v = builder.ins().extractlane(x, lane);
    let v = match extend {
        Extend::Signed => builder.ins().sextend(I32, v),
        Extend::Unsigned => builder.ins().uextend(I32, v),
        Extend::None => v,
    };
    stack.push(v);
    Ok(())
}

fn replace_lane(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    ty: Type,
    lane: u8,
) -> Result<()> {
    check_lane(ty, lane)?;
    let x = pop_lane_value(builder, stack, ty)?;
    let vector = pop_vector(builder, stack, ty)?;
    let v = builder.ins().insertlane(vector, x, lane);
    push_vector(builder, stack, v);
    Ok(())
}

// -------------------------------------------------------------------- memory access

/// Pops a wasm address and turns it into a native one for an `access_size`-byte access.
fn pop_address(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    env: &mut dyn SimdEnv,
    memarg: &MemArg,
    access_size: u32,
) -> Result<Value> {
    let index = pop(stack)?;
    let index_ty = builder.func.dfg.value_type(index);
    if index_ty != I32 && index_ty != I64 {
        bail!("SIMD memory operator expected an i32 or i64 address, found a {index_ty} value");
    }
    Ok(env.heap_address(builder, memarg, index, access_size))
}

fn load_splat(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    env: &mut dyn SimdEnv,
    memarg: &MemArg,
    ty: Type,
) -> Result<()> {
    let lane = ty.lane_type();
    let addr = pop_address(builder, stack, env, memarg, lane.bytes())?;
    let x = builder.ins().load(lane, env.heap_flags(), addr, 0);
    let v = builder.ins().splat(ty, x);
    push_vector(builder, stack, v);
    Ok(())
}

/// `v128.load32_zero` / `load64_zero`: the scalar in lane 0, zeros elsewhere, which is
/// what `scalar_to_vector` defines.
fn load_zero(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    env: &mut dyn SimdEnv,
    memarg: &MemArg,
    ty: Type,
) -> Result<()> {
    let lane = ty.lane_type();
    let addr = pop_address(builder, stack, env, memarg, lane.bytes())?;
    let x = builder.ins().load(lane, env.heap_flags(), addr, 0);
    let v = builder.ins().scalar_to_vector(ty, x);
    push_vector(builder, stack, v);
    Ok(())
}

/// `v128.loadN_lane`: operands are `[address, vector]`, the vector on top.
fn load_lane(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    env: &mut dyn SimdEnv,
    memarg: &MemArg,
    ty: Type,
    lane: u8,
) -> Result<()> {
    check_lane(ty, lane)?;
    let vector = pop_vector(builder, stack, ty)?;
    let lane_ty = ty.lane_type();
    let addr = pop_address(builder, stack, env, memarg, lane_ty.bytes())?;
    let x = builder.ins().load(lane_ty, env.heap_flags(), addr, 0);
    let v = builder.ins().insertlane(vector, x, lane);
    push_vector(builder, stack, v);
    Ok(())
}

/// `v128.storeN_lane`: operands are `[address, vector]`, the vector on top.
fn store_lane(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    env: &mut dyn SimdEnv,
    memarg: &MemArg,
    ty: Type,
    lane: u8,
) -> Result<()> {
    check_lane(ty, lane)?;
    let vector = pop_vector(builder, stack, ty)?;
    let lane_ty = ty.lane_type();
    let addr = pop_address(builder, stack, env, memarg, lane_ty.bytes())?;
    let x = builder.ins().extractlane(vector, lane);
    builder.ins().store(env.heap_flags(), x, addr, 0);
    Ok(())
}

// ------------------------------------------------------------- composite operations

#[derive(Clone, Copy)]
enum Half {
    Low,
    High,
}

fn widen(builder: &mut FunctionBuilder, x: Value, half: Half, signed: bool) -> Value {
    match (half, signed) {
        (Half::Low, true) => builder.ins().swiden_low(x),
        (Half::High, true) => builder.ins().swiden_high(x),
        (Half::Low, false) => builder.ins().uwiden_low(x),
        (Half::High, false) => builder.ins().uwiden_high(x),
    }
}

/// `extmul_{low,high}`: widen one half of each operand, then multiply; the product of
/// two N-bit values always fits in 2N bits, so the wrapping multiply is exact.
fn extmul(
    builder: &mut FunctionBuilder,
    stack: &mut Vec<Value>,
    ty: Type,
    half: Half,
    signed: bool,
) -> Result<()> {
    binary(builder, stack, ty, |b, x, y| {
        let x = widen(b, x, half, signed);
        let y = widen(b, y, half, signed);
        b.ins().imul(x, y)
    })
}

/// Sum of adjacent lane pairs, widened. `iadd_pairwise(lo, hi)` adds adjacent pairs of
/// the concatenation `lo ++ hi`, so feeding it the two widened halves pairs lanes
/// (0,1), (2,3), ... of the original vector. Both backends recognise this shape.
fn extadd_pairwise(builder: &mut FunctionBuilder, x: Value, signed: bool) -> Value {
    let lo = widen(builder, x, Half::Low, signed);
    let hi = widen(builder, x, Half::High, signed);
    builder.ins().iadd_pairwise(lo, hi)
}

/// Signed dot product of adjacent lane pairs into lanes twice as wide:
/// `r[i] = x[2i]*y[2i] + x[2i+1]*y[2i+1]`. Used by `i32x4.dot_i16x8_s` and, with
/// both operands treated as signed, the relaxed i8x16/i7x16 dot products (the
/// sum of two i8*i8 products, at most 2 * 128 * 128, fits in i16).
fn signed_dot(builder: &mut FunctionBuilder, x: Value, y: Value) -> Value {
    let xl = builder.ins().swiden_low(x);
    let yl = builder.ins().swiden_low(y);
    let lo = builder.ins().imul(xl, yl);
    let xh = builder.ins().swiden_high(x);
    let yh = builder.ins().swiden_high(y);
    let hi = builder.ins().imul(xh, yh);
    builder.ins().iadd_pairwise(lo, hi)
}

/// `pmin(a, b) = b < a ? b : a` lane-wise (no NaN or signed-zero special cases: a NaN
/// `b` is never less, so `a` is returned; `pmin(-0, +0)` is `-0`, the first operand).
/// The operand order of `fcmp`/`bitselect` below is also the shape the x86 backend
/// turns into a single `minps`/`minpd`.
fn pseudo_min(builder: &mut FunctionBuilder, a: Value, b: Value) -> Value {
    let ty = builder.func.dfg.value_type(a);
    let lt = builder.ins().fcmp(FloatCC::LessThan, b, a);
    let mask = builder.ins().bitcast(ty, bitcast_flags(), lt);
    builder.ins().bitselect(mask, b, a)
}

/// `pmax(a, b) = a < b ? b : a` lane-wise (see [`pseudo_min`]).
fn pseudo_max(builder: &mut FunctionBuilder, a: Value, b: Value) -> Value {
    let ty = builder.func.dfg.value_type(a);
    let lt = builder.ins().fcmp(FloatCC::LessThan, a, b);
    let mask = builder.ins().bitcast(ty, bitcast_flags(), lt);
    builder.ins().bitselect(mask, b, a)
}

/// `i32x4.trunc_sat_f64x2_{s,u}_zero`: saturating conversion of both f64 lanes to 64-bit
/// integers, then a saturating narrow against a zero vector, which leaves the two
/// results in lanes 0 and 1 and zeros in lanes 2 and 3. The x86 backend lowers
/// `snarrow`/`uunarrow` of I64X2 only in exactly this form (conversion result and a
/// `vconst` zero as the direct operands), so nothing may be inserted between them.
fn trunc_sat_f64x2_zero(builder: &mut FunctionBuilder, x: Value, signed: bool) -> Value {
    let zero = builder
        .func
        .dfg
        .constants
        .insert(ConstantData::from(&[0u8; 16][..]));
    let zero = builder.ins().vconst(I64X2, zero);
    if signed {
        let wide = builder.ins().fcvt_to_sint_sat(I64X2, x);
        builder.ins().snarrow(wide, zero)
    } else {
        let wide = builder.ins().fcvt_to_uint_sat(I64X2, x);
        builder.ins().uunarrow(wide, zero)
    }
}

/// Relaxed `madd`: `x * y + z`, rounded twice (a result the relaxed spec allows).
fn mul_add(builder: &mut FunctionBuilder, x: Value, y: Value, z: Value) -> Value {
    let product = builder.ins().fmul(x, y);
    builder.ins().fadd(product, z)
}

/// Relaxed `nmadd`: `-(x * y) + z`, rounded twice. Negating `x` first is exact and
/// gives the same result as negating the product.
fn neg_mul_add(builder: &mut FunctionBuilder, x: Value, y: Value, z: Value) -> Value {
    let neg = builder.ins().fneg(x);
    mul_add(builder, neg, y, z)
}

#[cfg(test)]
mod tests {
    //! Every SIMD operator wasmparser knows is translated from a small wasm function,
    //! verified, and compiled for x86_64 (SSE4.2 baseline, with and without the
    //! optimizer) and for aarch64: this proves each operator lowers on both targets.

    use super::*;
    use cranelift_codegen::control::ControlPlane;
    use cranelift_codegen::ir::types::{F32, F64};
    use cranelift_codegen::ir::{AbiParam, Function, Signature, TrapCode, UserFuncName};
    use cranelift_codegen::isa::{self, CallConv, OwnedTargetIsa, TargetFrontendConfig};
    use cranelift_codegen::settings::{self, Configurable};
    use cranelift_frontend::FunctionBuilderContext;
    use std::collections::BTreeSet;
    use std::str::FromStr;
    use target_lexicon::PointerWidth;
    use wasmparser::{Parser, Payload, ValType, Validator, WasmFeatures};

    /// Stand-in for the compiler's environment: memory at a base pointer passed as the
    /// first parameter, no explicit bounds checks (the guard-region configuration).
    struct TestEnv {
        base: Value,
    }

    impl SimdEnv for TestEnv {
        fn heap_address(
            &mut self,
            builder: &mut FunctionBuilder,
            memarg: &MemArg,
            index: Value,
            _access_size: u32,
        ) -> Value {
            let index = if builder.func.dfg.value_type(index) == I32 {
                builder.ins().uextend(I64, index)
            } else {
                index
            };
            let addr = builder.ins().iadd(self.base, index);
            let offset = i64::try_from(memarg.offset).expect("test offsets are small");
            builder.ins().iadd_imm_u(addr, offset)
        }

        fn heap_flags(&self) -> MemFlagsData {
            MemFlagsData::new()
                .with_endianness(Endianness::Little)
                .with_trap_code(Some(TrapCode::HEAP_OUT_OF_BOUNDS))
        }
    }

    macro_rules! simd_operator_names {
        ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*))*) => {
            /// Every SIMD and relaxed-SIMD operator of wasmparser, by variant name.
            const ALL_SIMD_OPERATORS: &[&str] = &[$(stringify!($op)),*];
            fn simd_operator_name(op: &Operator) -> Option<&'static str> {
                match op {
                    $(Operator::$op { .. } => Some(stringify!($op)),)*
                    _ => None,
                }
            }
        };
    }
    wasmparser::for_each_visit_simd_operator!(simd_operator_names);

    #[rustfmt::skip]
    const UNARY: &[&str] = &[
        "v128.not", "i8x16.abs", "i8x16.neg", "i8x16.popcnt", "i16x8.abs", "i16x8.neg",
        "i32x4.abs", "i32x4.neg", "i64x2.abs", "i64x2.neg",
        "i16x8.extadd_pairwise_i8x16_s", "i16x8.extadd_pairwise_i8x16_u",
        "i32x4.extadd_pairwise_i16x8_s", "i32x4.extadd_pairwise_i16x8_u",
        "i16x8.extend_low_i8x16_s", "i16x8.extend_high_i8x16_s",
        "i16x8.extend_low_i8x16_u", "i16x8.extend_high_i8x16_u",
        "i32x4.extend_low_i16x8_s", "i32x4.extend_high_i16x8_s",
        "i32x4.extend_low_i16x8_u", "i32x4.extend_high_i16x8_u",
        "i64x2.extend_low_i32x4_s", "i64x2.extend_high_i32x4_s",
        "i64x2.extend_low_i32x4_u", "i64x2.extend_high_i32x4_u",
        "f32x4.ceil", "f32x4.floor", "f32x4.trunc", "f32x4.nearest",
        "f32x4.abs", "f32x4.neg", "f32x4.sqrt",
        "f64x2.ceil", "f64x2.floor", "f64x2.trunc", "f64x2.nearest",
        "f64x2.abs", "f64x2.neg", "f64x2.sqrt",
        "i32x4.trunc_sat_f32x4_s", "i32x4.trunc_sat_f32x4_u",
        "f32x4.convert_i32x4_s", "f32x4.convert_i32x4_u",
        "i32x4.trunc_sat_f64x2_s_zero", "i32x4.trunc_sat_f64x2_u_zero",
        "f64x2.convert_low_i32x4_s", "f64x2.convert_low_i32x4_u",
        "f32x4.demote_f64x2_zero", "f64x2.promote_low_f32x4",
        "i32x4.relaxed_trunc_f32x4_s", "i32x4.relaxed_trunc_f32x4_u",
        "i32x4.relaxed_trunc_f64x2_s_zero", "i32x4.relaxed_trunc_f64x2_u_zero",
    ];

    #[rustfmt::skip]
    const BINARY: &[&str] = &[
        "v128.and", "v128.andnot", "v128.or", "v128.xor", "i8x16.swizzle",
        "i8x16.eq", "i8x16.ne", "i8x16.lt_s", "i8x16.lt_u", "i8x16.gt_s", "i8x16.gt_u",
        "i8x16.le_s", "i8x16.le_u", "i8x16.ge_s", "i8x16.ge_u",
        "i16x8.eq", "i16x8.ne", "i16x8.lt_s", "i16x8.lt_u", "i16x8.gt_s", "i16x8.gt_u",
        "i16x8.le_s", "i16x8.le_u", "i16x8.ge_s", "i16x8.ge_u",
        "i32x4.eq", "i32x4.ne", "i32x4.lt_s", "i32x4.lt_u", "i32x4.gt_s", "i32x4.gt_u",
        "i32x4.le_s", "i32x4.le_u", "i32x4.ge_s", "i32x4.ge_u",
        "i64x2.eq", "i64x2.ne", "i64x2.lt_s", "i64x2.gt_s", "i64x2.le_s", "i64x2.ge_s",
        "f32x4.eq", "f32x4.ne", "f32x4.lt", "f32x4.gt", "f32x4.le", "f32x4.ge",
        "f64x2.eq", "f64x2.ne", "f64x2.lt", "f64x2.gt", "f64x2.le", "f64x2.ge",
        "i8x16.narrow_i16x8_s", "i8x16.narrow_i16x8_u",
        "i16x8.narrow_i32x4_s", "i16x8.narrow_i32x4_u",
        "i8x16.add", "i8x16.add_sat_s", "i8x16.add_sat_u", "i8x16.sub", "i8x16.sub_sat_s",
        "i8x16.sub_sat_u", "i8x16.min_s", "i8x16.min_u", "i8x16.max_s", "i8x16.max_u",
        "i8x16.avgr_u",
        "i16x8.q15mulr_sat_s", "i16x8.add", "i16x8.add_sat_s", "i16x8.add_sat_u",
        "i16x8.sub", "i16x8.sub_sat_s", "i16x8.sub_sat_u", "i16x8.mul", "i16x8.min_s",
        "i16x8.min_u", "i16x8.max_s", "i16x8.max_u", "i16x8.avgr_u",
        "i16x8.extmul_low_i8x16_s", "i16x8.extmul_high_i8x16_s",
        "i16x8.extmul_low_i8x16_u", "i16x8.extmul_high_i8x16_u",
        "i32x4.add", "i32x4.sub", "i32x4.mul", "i32x4.min_s", "i32x4.min_u",
        "i32x4.max_s", "i32x4.max_u", "i32x4.dot_i16x8_s",
        "i32x4.extmul_low_i16x8_s", "i32x4.extmul_high_i16x8_s",
        "i32x4.extmul_low_i16x8_u", "i32x4.extmul_high_i16x8_u",
        "i64x2.add", "i64x2.sub", "i64x2.mul",
        "i64x2.extmul_low_i32x4_s", "i64x2.extmul_high_i32x4_s",
        "i64x2.extmul_low_i32x4_u", "i64x2.extmul_high_i32x4_u",
        "f32x4.add", "f32x4.sub", "f32x4.mul", "f32x4.div", "f32x4.min", "f32x4.max",
        "f32x4.pmin", "f32x4.pmax",
        "f64x2.add", "f64x2.sub", "f64x2.mul", "f64x2.div", "f64x2.min", "f64x2.max",
        "f64x2.pmin", "f64x2.pmax",
        "i8x16.relaxed_swizzle", "f32x4.relaxed_min", "f32x4.relaxed_max",
        "f64x2.relaxed_min", "f64x2.relaxed_max", "i16x8.relaxed_q15mulr_s",
        "i16x8.relaxed_dot_i8x16_i7x16_s",
    ];

    #[rustfmt::skip]
    const TERNARY: &[&str] = &[
        "v128.bitselect", "f32x4.relaxed_madd", "f32x4.relaxed_nmadd",
        "f64x2.relaxed_madd", "f64x2.relaxed_nmadd", "i8x16.relaxed_laneselect",
        "i16x8.relaxed_laneselect", "i32x4.relaxed_laneselect", "i64x2.relaxed_laneselect",
        "i32x4.relaxed_dot_i8x16_i7x16_add_s",
    ];

    #[rustfmt::skip]
    const REDUCE: &[&str] = &[
        "v128.any_true", "i8x16.all_true", "i16x8.all_true", "i32x4.all_true",
        "i64x2.all_true", "i8x16.bitmask", "i16x8.bitmask", "i32x4.bitmask", "i64x2.bitmask",
    ];

    /// (shape, lane count, wasm lane type, extract suffixes)
    const SHAPES: &[(&str, u8, &str, &[&str])] = &[
        ("i8x16", 16, "i32", &["_s", "_u"]),
        ("i16x8", 8, "i32", &["_s", "_u"]),
        ("i32x4", 4, "i32", &[""]),
        ("i64x2", 2, "i64", &[""]),
        ("f32x4", 4, "f32", &[""]),
        ("f64x2", 2, "f64", &[""]),
    ];

    #[rustfmt::skip]
    const LOADS: &[&str] = &[
        "v128.load", "v128.load8x8_s", "v128.load8x8_u", "v128.load16x4_s",
        "v128.load16x4_u", "v128.load32x2_s", "v128.load32x2_u", "v128.load8_splat",
        "v128.load16_splat", "v128.load32_splat", "v128.load64_splat", "v128.load32_zero",
        "v128.load64_zero",
    ];

    const SHUFFLES: &[&str] = &[
        "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15",
        "16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31",
        "0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23",
        "31 0 30 1 29 2 28 3 27 4 26 5 25 6 24 7",
        "4 5 6 7 0 1 2 3 12 13 14 15 8 9 10 11",
        "3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3",
    ];

    /// One function per test case; the body uses only `local.get` and SIMD operators.
    fn test_module() -> String {
        let mut funcs = Vec::new();
        let mut func = |params: &str, result: &str, body: String| {
            let params = if params.is_empty() {
                String::new()
            } else {
                format!("(param {params})")
            };
            let result = if result.is_empty() {
                String::new()
            } else {
                format!("(result {result})")
            };
            funcs.push(format!("  (func {params} {result} {body})"));
        };
        let gets = |n: usize| {
            (0..n)
                .map(|i| format!("local.get {i} "))
                .collect::<String>()
        };
        for op in UNARY {
            func("v128", "v128", format!("{}{op}", gets(1)));
        }
        for op in BINARY {
            func("v128 v128", "v128", format!("{}{op}", gets(2)));
        }
        for op in TERNARY {
            func("v128 v128 v128", "v128", format!("{}{op}", gets(3)));
        }
        for op in REDUCE {
            func("v128", "i32", format!("{}{op}", gets(1)));
        }
        for &(shape, lanes, scalar, suffixes) in SHAPES {
            func(scalar, "v128", format!("{}{shape}.splat", gets(1)));
            for lane in [0, lanes - 1] {
                for suffix in suffixes {
                    let result = if scalar == "i64" || scalar.starts_with('f') {
                        scalar
                    } else {
                        "i32"
                    };
                    func(
                        "v128",
                        result,
                        format!("{}{shape}.extract_lane{suffix} {lane}", gets(1)),
                    );
                }
                func(
                    &format!("v128 {scalar}"),
                    "v128",
                    format!("{}{shape}.replace_lane {lane}", gets(2)),
                );
            }
            if !shape.starts_with('f') {
                for op in ["shl", "shr_s", "shr_u"] {
                    func("v128 i32", "v128", format!("{}{shape}.{op}", gets(2)));
                }
            }
        }
        func(
            "",
            "v128",
            "v128.const i32x4 1 -2 0x7fffffff 0x80000000".into(),
        );
        func("", "v128", "v128.const f64x2 -0.0 nan".into());
        for lanes in SHUFFLES {
            func(
                "v128 v128",
                "v128",
                format!("{}i8x16.shuffle {lanes}", gets(2)),
            );
        }
        for op in LOADS {
            func("i32", "v128", format!("{}{op}", gets(1)));
            func(
                "i32",
                "v128",
                format!("{}{op} offset=65536 align=1", gets(1)),
            );
        }
        func("i32 v128", "", format!("{}v128.store", gets(2)));
        func(
            "i32 v128",
            "",
            format!("{}v128.store offset=7 align=1", gets(2)),
        );
        for (bits, lanes) in [(8, 16), (16, 8), (32, 4), (64, 2)] {
            for lane in [0, lanes - 1] {
                for kind in ["load", "store"] {
                    let result = if kind == "load" { "v128" } else { "" };
                    let body = format!("{}v128.{kind}{bits}_lane offset=3 {lane}", gets(2));
                    func("i32 v128", result, body);
                }
            }
        }
        format!("(module\n  (memory 1)\n{}\n)", funcs.join("\n"))
    }

    fn clif_type(ty: ValType) -> Type {
        match ty {
            ValType::I32 => I32,
            ValType::I64 => I64,
            ValType::F32 => F32,
            ValType::F64 => F64,
            ValType::V128 => I8X16,
            ValType::Ref(_) => panic!("reference types do not occur in the SIMD tests"),
        }
    }

    /// Translates every function of `wasm` with a minimal driver (`local.get`, `end`,
    /// SIMD operators) and returns the functions plus the SIMD operators seen.
    fn translate_module(wasm: &[u8]) -> (Vec<Function>, BTreeSet<&'static str>) {
        Validator::new_with_features(WasmFeatures::all())
            .validate_all(wasm)
            .expect("the test module validates");
        let mut types = Vec::new();
        let mut func_types = Vec::new();
        let mut bodies = Vec::new();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.expect("the test module parses") {
                Payload::TypeSection(reader) => {
                    for ty in reader.into_iter_err_on_gc_types() {
                        types.push(ty.expect("function type"));
                    }
                }
                Payload::FunctionSection(reader) => {
                    func_types.extend(reader.into_iter().map(|t| t.expect("type index")));
                }
                Payload::CodeSectionEntry(body) => bodies.push(body),
                _ => {}
            }
        }
        let mut seen = BTreeSet::new();
        let mut funcs = Vec::new();
        for (index, body) in bodies.iter().enumerate() {
            let wasm_ty = &types[func_types[index] as usize];
            let mut sig = Signature::new(CallConv::SystemV);
            sig.params.push(AbiParam::new(I64));
            sig.params.extend(
                wasm_ty
                    .params()
                    .iter()
                    .map(|&t| AbiParam::new(clif_type(t))),
            );
            sig.returns.extend(
                wasm_ty
                    .results()
                    .iter()
                    .map(|&t| AbiParam::new(clif_type(t))),
            );
            let mut func = Function::with_name_signature(UserFuncName::user(0, index as u32), sig);
            let mut fctx = FunctionBuilderContext::new();
            let mut builder = FunctionBuilder::new(&mut func, &mut fctx);
            let entry = builder.create_block();
            builder.append_block_params_for_function_params(entry);
            builder.switch_to_block(entry);
            builder.seal_block(entry);
            let params = builder.block_params(entry).to_vec();
            let mut env = TestEnv { base: params[0] };
            let mut stack = Vec::new();
            let mut reader = body.get_operators_reader().expect("operators");
            while !reader.eof() {
                let op = reader.read().expect("operator");
                match op {
                    Operator::LocalGet { local_index } => {
                        stack.push(params[local_index as usize + 1]);
                    }
                    Operator::End => {
                        builder.ins().return_(&stack);
                    }
                    op => {
                        let name = simd_operator_name(&op)
                            .unwrap_or_else(|| panic!("unexpected operator {op:?}"));
                        seen.insert(name);
                        let handled =
                            translate_simd_operator(&op, &mut builder, &mut stack, &mut env)
                                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
                        assert!(handled, "{name} was not recognised as a SIMD operator");
                    }
                }
            }
            builder.finalize(TargetFrontendConfig {
                default_call_conv: CallConv::SystemV,
                pointer_width: PointerWidth::U64,
                page_size_align_log2: 12,
            });
            funcs.push(func);
        }
        (funcs, seen)
    }

    fn isa(triple: &str, opt_level: &str, features: &[&str]) -> OwnedTargetIsa {
        let mut flags = settings::builder();
        flags.set("opt_level", opt_level).unwrap();
        flags.enable("enable_verifier").unwrap();
        let mut builder = isa::lookup(target_lexicon::Triple::from_str(triple).unwrap()).unwrap();
        for feature in features {
            builder.enable(feature).unwrap();
        }
        builder.finish(settings::Flags::new(flags)).unwrap()
    }

    fn target_isas() -> Vec<(&'static str, OwnedTargetIsa)> {
        // x86-64-v2 = SSE3, SSSE3, SSE4.1, SSE4.2, POPCNT: wasmc's x86_64 baseline.
        vec![
            (
                "x86_64 v2 speed",
                isa("x86_64-unknown-linux-gnu", "speed", &["x86-64-v2"]),
            ),
            (
                "x86_64 v2 none",
                isa("x86_64-unknown-linux-gnu", "none", &["x86-64-v2"]),
            ),
            (
                "aarch64 speed",
                isa("aarch64-unknown-linux-gnu", "speed", &[]),
            ),
            (
                "aarch64 none",
                isa("aarch64-unknown-linux-gnu", "none", &[]),
            ),
        ]
    }

    #[test]
    fn every_simd_operator_lowers_on_x86_64_and_aarch64() {
        let wat = test_module();
        let wasm = wat::parse_str(&wat).expect("test module assembles");
        let (funcs, seen) = translate_module(&wasm);

        let missing: Vec<_> = ALL_SIMD_OPERATORS
            .iter()
            .filter(|op| !seen.contains(*op))
            .collect();
        assert!(
            missing.is_empty(),
            "SIMD operators without a test case: {missing:?}"
        );
        assert!(ALL_SIMD_OPERATORS.len() >= 236 + 20);

        let mut failures = Vec::new();
        let (mut compiled, mut code_bytes) = (0, 0);
        for (name, isa) in target_isas() {
            for func in &funcs {
                if let Err(errors) = cranelift_codegen::verify_function(func, isa.flags()) {
                    failures.push(format!("{name}: verifier:\n{errors}\n{}", func.display()));
                    continue;
                }
                let mut ctx = cranelift_codegen::Context::for_function(func.clone());
                match ctx.compile(&*isa, &mut ControlPlane::default()) {
                    Ok(code) => code_bytes += code.code_buffer().len(),
                    Err(e) => failures.push(format!("{name}: {:?}\n{}", e.inner, func.display())),
                }
            }
            compiled += funcs.len();
        }
        eprintln!("compiled {compiled} functions, {code_bytes} bytes of code");
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn non_simd_operators_are_left_to_the_caller() {
        let mut func = Function::new();
        let mut fctx = FunctionBuilderContext::new();
        let mut builder = FunctionBuilder::new(&mut func, &mut fctx);
        let block = builder.create_block();
        builder.switch_to_block(block);
        let base = builder.ins().iconst(I64, 0);
        let mut env = TestEnv { base };
        let mut stack = vec![builder.ins().iconst(I32, 1), builder.ins().iconst(I32, 2)];
        for op in [
            Operator::I32Add,
            Operator::Nop,
            Operator::I32Load { memarg: memarg() },
        ] {
            let handled = translate_simd_operator(&op, &mut builder, &mut stack, &mut env).unwrap();
            assert!(!handled, "{op:?} is not a SIMD operator");
        }
        assert_eq!(
            stack.len(),
            2,
            "a non-SIMD operator must leave the stack alone"
        );
    }

    fn memarg() -> MemArg {
        MemArg {
            align: 0,
            max_align: 4,
            offset: 0,
            target: Default::default(),
            ordering: None,
        }
    }

    #[test]
    fn malformed_operand_stacks_are_errors_not_panics() {
        let mut func = Function::new();
        let mut fctx = FunctionBuilderContext::new();
        let mut builder = FunctionBuilder::new(&mut func, &mut fctx);
        let block = builder.create_block();
        builder.switch_to_block(block);
        let base = builder.ins().iconst(I64, 0);
        let mut env = TestEnv { base };
        let scalar = builder.ins().iconst(I32, 1);

        let mut empty = Vec::new();
        let err = translate_simd_operator(&Operator::I8x16Add, &mut builder, &mut empty, &mut env);
        assert!(err.unwrap_err().to_string().contains("underflow"));

        let mut wrong = vec![scalar, scalar];
        let err = translate_simd_operator(&Operator::I32x4Mul, &mut builder, &mut wrong, &mut env);
        assert!(err.unwrap_err().to_string().contains("expected a v128"));

        let handle = builder
            .func
            .dfg
            .constants
            .insert(ConstantData::from(&[0u8; 16][..]));
        let vector = builder.ins().vconst(I8X16, handle);
        let mut lane = vec![vector];
        let op = Operator::I32x4ExtractLane { lane: 4 };
        let err = translate_simd_operator(&op, &mut builder, &mut lane, &mut env);
        assert!(err.unwrap_err().to_string().contains("out of range"));

        let mut shift = vec![vector, vector];
        let err = translate_simd_operator(&Operator::I16x8Shl, &mut builder, &mut shift, &mut env);
        assert!(err.unwrap_err().to_string().contains("expected a i32"));
    }
}
