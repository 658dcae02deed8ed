//! The GC proposal's object layout and reference encoding, shared by the compiler
//! (which reads and writes fields inline) and the runtime (which allocates, traces
//! and frees objects; `runtime-lib/src/gc/`).
//!
//! # References of the `any` hierarchy
//! A reference is one 64-bit word:
//! * `0`: null;
//! * odd: an `i31ref`, the 31-bit value in bits 1..32 (`(v << 1) | 1`);
//! * `…10` in the two low bits: a host reference made an `anyref` by
//!   `any.convert_extern` (the host's externref words have this form, so the
//!   conversions in both directions are the identity);
//! * otherwise (low bits `00`): the address of a GC object.
//!
//! # Objects
//! Every object lives in the runtime's GC heap, outside linear memory, 16-byte
//! aligned, and starts with a [`GC_HEADER_SIZE`]-byte header: the canonical type id
//! (u32 at [`OBJECT_TYPE_ID`]), the kind (u32 at [`OBJECT_KIND`]: [`KIND_STRUCT`] or
//! [`KIND_ARRAY`]), for arrays the length (u32 at [`ARRAY_LENGTH`]), and the
//! collector's mark word (u32 at [`OBJECT_MARK`]). Struct
//! fields follow at the offsets of [`struct_layout`]; array elements at
//! [`GC_HEADER_SIZE`] + `i * size`, each of its storage type's size.

use crate::{FieldType, StorageType};

/// Offset of the canonical type id (u32) in an object header.
pub const OBJECT_TYPE_ID: i32 = 0;
/// Offset of the object kind (u32) in an object header.
pub const OBJECT_KIND: i32 = 4;
/// Offset of an array's length (u32) in its header.
pub const ARRAY_LENGTH: i32 = 8;
/// Offset of the collector's mark word (u32), which generated code never touches.
pub const OBJECT_MARK: i32 = 12;
/// Size of the header; the first field or element follows it.
pub const GC_HEADER_SIZE: u32 = 16;
/// Alignment of every object.
pub const GC_OBJECT_ALIGN: usize = 16;

pub const KIND_STRUCT: u32 = 1;
pub const KIND_ARRAY: u32 = 2;

/// Low bits of an internalized host reference (see the module docs).
pub const HOST_REF_TAG: u64 = 2;
/// Mask of the low bits that tell i31s, host references and objects apart.
pub const REF_TAG_MASK: u64 = 3;

/// The `anyref`/`externref` word of host reference number `n` (what the spec
/// harness passes for `ref.extern n` and `ref.host n`).
pub fn host_ref(n: u32) -> u64 {
    (u64::from(n) << 2) | HOST_REF_TAG
}

/// Byte offset of each field and the object size (header included) of a struct.
/// Fields are placed in order, each at its natural alignment.
pub fn struct_layout(fields: &[FieldType]) -> (Vec<u32>, u32) {
    let mut offset = GC_HEADER_SIZE;
    let mut offsets = Vec::with_capacity(fields.len());
    for field in fields {
        let size = field.storage.size();
        offset = offset.next_multiple_of(size);
        offsets.push(offset);
        offset += size;
    }
    (offsets, offset.next_multiple_of(GC_OBJECT_ALIGN as u32))
}

/// Object size of an array of `length` elements of `element`, or `None` if it does
/// not fit in a `u32`-sized allocation.
pub fn array_size(element: StorageType, length: u32) -> Option<u64> {
    let bytes = u64::from(element.size()) * u64::from(length) + u64::from(GC_HEADER_SIZE);
    (bytes <= u64::from(u32::MAX)).then(|| bytes.next_multiple_of(GC_OBJECT_ALIGN as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ValType;

    #[test]
    fn fields_are_naturally_aligned_after_the_header() {
        let f = |storage| FieldType {
            storage,
            mutable: true,
        };
        let (offsets, size) = struct_layout(&[
            f(StorageType::I8),
            f(StorageType::Val(ValType::I64)),
            f(StorageType::I16),
            f(StorageType::Val(ValType::V128)),
        ]);
        assert_eq!(offsets, [16, 24, 32, 48]);
        assert_eq!(size, 64);
        assert_eq!(struct_layout(&[]), (vec![], 16));
        assert_eq!(array_size(StorageType::I8, 3), Some(32));
        assert_eq!(array_size(StorageType::Val(ValType::I64), u32::MAX), None);
    }
}
