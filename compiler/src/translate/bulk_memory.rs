//! `memory.copy` and `memory.fill` in generated code.
//!
//! Both must trap before writing a single byte when a range is out of bounds (the
//! spec tests check that memory is unchanged after the trap), and `memory.copy`'s
//! ranges may overlap (it is `memmove`). Two shapes:
//!
//! * A constant length of 1 to [`INLINE_MAX`] bytes (Rust moves small structs and
//!   arrays with `memory.copy`): at most two loads and two stores of the widest
//!   chunk that fits, the second overlapping the first (7 bytes are 4 at 0 and 4
//!   at 3). Every load comes before any store, so overlapping ranges copy as
//!   `memmove` does. The ranges are checked as any access of `len` bytes is
//!   ([`SimdEnv::heap_address`]): explicitly, or by the guard pages. With guard
//!   pages a source out of bounds faults on a load, before anything is written;
//!   the destination is proved in bounds by a one-byte *load* of its last byte
//!   before the first store (memory is contiguous from address 0, so the last byte
//!   in bounds means every byte is). A probing store would not do: a store that
//!   straddles the end of memory may write its first bytes before it faults on
//!   aarch64.
//! * Any other length: both ranges are compared with the memories' lengths
//!   inline (overflow-safe for 64-bit memories), one trap covers both, and the C
//!   library's `memmove`/`memset` is called through the builtins table
//!   (`Builtins::memmove`/`memset`; generated code references no symbol, see
//!   `docs/ARCHITECTURE.md`). Before, a Rust builtin looked the memory up by index
//!   and checked the ranges behind a second call.
//!
//! Spectre: as for every explicitly checked access, the addresses handed to the
//! C library are `select_spectre_guard`ed on the bounds condition.

use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Type, Value, condcodes::IntCC, types};
use cranelift_frontend::FunctionBuilder;
use wasmc_abi::{Builtin, Trap};

use super::environ::{FuncEnv, to_u64, trap_code};
use super::fuel::const_u64;
use super::simd::SimdEnv;

/// Longest constant `memory.copy`/`memory.fill` done inline (two 16-byte chunks).
pub(crate) const INLINE_MAX: u64 = 32;

/// The chunks `(offset, type)` that cover `len` bytes (1..=INLINE_MAX): one when
/// `len` is a chunk size, else two of the largest size below `len`, the second
/// ending at `len` (they overlap when `len` is not twice the size).
fn chunks(len: u64) -> Vec<(i32, Type)> {
    debug_assert!((1..=INLINE_MAX).contains(&len));
    let ty = |size: u64| match size {
        16 => types::I8X16,
        8 => types::I64,
        4 => types::I32,
        2 => types::I16,
        _ => types::I8,
    };
    if len.is_power_of_two() && len <= 16 {
        return vec![(0, ty(len))];
    }
    let size = [16u64, 8, 4, 2, 1]
        .into_iter()
        .find(|&s| s < len)
        .expect("len > 1 here");
    vec![(0, ty(size)), ((len - size) as i32, ty(size))]
}

/// A wasm-style memory argument for memory `mem` with no static offset.
fn memarg(mem: u32) -> wasmparser::MemArg {
    wasmparser::MemArg {
        align: 0,
        max_align: 0,
        offset: 0,
        target: wasmparser::MemArgTarget::Memory(mem),
        ordering: None,
    }
}

impl FuncEnv<'_> {
    /// `memory.copy` of `len` bytes from `src` in `src_mem` to `dst` in `dst_mem`
    /// (operands as wasm pushed them: i32 or i64 by the memories' index types).
    pub fn memory_copy(
        &mut self,
        builder: &mut FunctionBuilder,
        (dst_mem, src_mem): (u32, u32),
        dst: Value,
        src: Value,
        len: Value,
    ) {
        if let Some(n) = const_u64(builder, len).filter(|n| (1..=INLINE_MAX).contains(n)) {
            let dst_addr = self.heap_address(builder, &memarg(dst_mem), dst, n as u32);
            let src_addr = self.heap_address(builder, &memarg(src_mem), src, n as u32);
            let flags = self.heap_flags();
            let chunks = chunks(n);
            let values: Vec<Value> = chunks
                .iter()
                .map(|&(offset, ty)| builder.ins().load(ty, flags, src_addr, offset))
                .collect();
            self.probe_last_byte(builder, dst_mem, dst_addr, n);
            for (&(offset, _), value) in chunks.iter().zip(values) {
                builder.ins().store(flags, value, dst_addr, offset);
            }
            return;
        }
        let (dst, src, len) = (
            to_u64(builder, dst),
            to_u64(builder, src),
            to_u64(builder, len),
        );
        let (dst_addr, dst_oob) = self.range_check(builder, dst_mem, dst, len);
        let (src_addr, src_oob) = self.range_check(builder, src_mem, src, len);
        let oob = builder.ins().bor(dst_oob, src_oob);
        builder
            .ins()
            .trapnz(oob, trap_code(Trap::MemoryOutOfBounds));
        let dst_addr = self.spectre_guard(builder, oob, dst_addr);
        let src_addr = self.spectre_guard(builder, oob, src_addr);
        self.call_builtin(builder, Builtin::Memmove, &[dst_addr, src_addr, len]);
    }

    /// `memory.fill` of `len` bytes at `dst` in `mem` with the low byte of `value`.
    pub fn memory_fill(
        &mut self,
        builder: &mut FunctionBuilder,
        mem: u32,
        dst: Value,
        value: Value,
        len: Value,
    ) {
        if let Some(n) = const_u64(builder, len).filter(|n| (1..=INLINE_MAX).contains(n)) {
            let addr = self.heap_address(builder, &memarg(mem), dst, n as u32);
            self.probe_last_byte(builder, mem, addr, n);
            let flags = self.heap_flags();
            let byte = builder.ins().ireduce(types::I8, value);
            for (offset, ty) in chunks(n) {
                let pattern = splat_byte(builder, byte, ty);
                builder.ins().store(flags, pattern, addr, offset);
            }
            return;
        }
        let (dst, len) = (to_u64(builder, dst), to_u64(builder, len));
        let (addr, oob) = self.range_check(builder, mem, dst, len);
        builder
            .ins()
            .trapnz(oob, trap_code(Trap::MemoryOutOfBounds));
        let addr = self.spectre_guard(builder, oob, addr);
        self.call_builtin(builder, Builtin::Memset, &[addr, value, len]);
    }

    /// The native address of `index` in `mem` and the condition "`len` bytes from
    /// `index` are not all in bounds" (i64 operands), without trapping.
    fn range_check(
        &mut self,
        builder: &mut FunctionBuilder,
        mem: u32,
        index: Value,
        len: Value,
    ) -> (Value, Value) {
        let length = self.memory_length(builder, mem);
        let oob = if self.memory64(mem) {
            let (end, overflow) = builder.ins().uadd_overflow(index, len);
            let beyond = builder.ins().icmp(IntCC::UnsignedGreaterThan, end, length);
            builder.ins().bor(beyond, overflow)
        } else {
            // Both are zero-extended 32-bit values: the sum cannot overflow.
            let end = builder.ins().iadd(index, len);
            builder.ins().icmp(IntCC::UnsignedGreaterThan, end, length)
        };
        let base = self.memory_base(builder, mem);
        (builder.ins().iadd(base, index), oob)
    }

    /// When guard pages (not an explicit check) bound `len` bytes at `addr` in
    /// `mem`, loads its last byte, which faults (a trap) unless every byte is in
    /// bounds: the check a store sequence needs before its first store.
    fn probe_last_byte(&self, builder: &mut FunctionBuilder, mem: u32, addr: Value, len: u64) {
        if self.guard_pages_catch(mem, len) {
            // A load that may trap is never removed, used or not.
            let flags: MemFlagsData = self.heap_flags();
            builder.ins().load(types::I8, flags, addr, (len - 1) as i32);
        }
    }
}

/// `byte` repeated to fill a value of type `ty`.
fn splat_byte(builder: &mut FunctionBuilder, byte: Value, ty: Type) -> Value {
    if ty == types::I8 {
        byte
    } else if ty.is_vector() {
        builder.ins().splat(ty, byte)
    } else {
        let wide = builder.ins().uextend(ty, byte);
        let ones = match ty.bytes() {
            2 => 0x0101,
            4 => 0x0101_0101,
            _ => 0x0101_0101_0101_0101_u64 as i64,
        };
        builder.ins().imul_imm_u(wide, ones)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length is covered exactly: no byte outside `0..len`, none missed.
    #[test]
    fn chunks_cover_every_length() {
        for len in 1..=INLINE_MAX {
            let mut covered = vec![false; len as usize];
            let chunks = chunks(len);
            assert!(chunks.len() <= 2, "{len}: {chunks:?}");
            for (offset, ty) in chunks {
                for b in offset as u64..offset as u64 + u64::from(ty.bytes()) {
                    assert!(b < len, "{len}: byte {b} beyond the range");
                    covered[b as usize] = true;
                }
            }
            assert!(covered.iter().all(|&c| c), "{len}: a byte is not covered");
        }
    }
}
