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

/// Mark word of an allocated, unmarked struct or array (what a new object gets).
/// The collector's other mark value is `MARK_UNMARKED + 1`; both have the top bit
/// set, which the same bytes of an exception never have.
pub const MARK_UNMARKED: u32 = 0xFA11_C0DE;

/// # Cells
/// Structs and arrays of at most [`MAX_CELL_SIZE`] bytes are cells of one of
/// [`CELL_CLASSES`] size classes (multiples of [`GC_OBJECT_ALIGN`]); each thread
/// keeps a free list per class in `VMRuntimeState::gc_free_cells`. A free cell's
/// word 0 links the next free cell and its mark word is 0.
pub const MAX_CELL_SIZE: u32 = 512;
pub const CELL_CLASSES: usize = MAX_CELL_SIZE as usize / GC_OBJECT_ALIGN;

/// The size class of an object of `size` bytes (a multiple of [`GC_OBJECT_ALIGN`]
/// for every struct and array), `None` when it is too large to be a cell.
pub fn cell_class(size: u32) -> Option<usize> {
    (size != 0 && size <= MAX_CELL_SIZE).then(|| size.div_ceil(GC_OBJECT_ALIGN as u32) as usize - 1)
}

/// # Type rows
/// `VMRuntimeState::gc_type_rows` points at a table of [`TYPE_ROW_SIZE`]-byte rows,
/// row `id` for canonical type `id`: a runtime-private word at offset 0, then the
/// type's *supertype display*: the canonical ids (u32) of its ancestors at depths
/// `0..=depth` (its root supertype first, itself last), zero past its depth, for the
/// first [`TYPE_ROW_DISPLAY_LEN`] depths. A type at depth `d` is a subtype of type
/// `t` exactly when `display[d]` of the type equals `t` (ids are unique, depths
/// fixed), so a cast to a type at depth `d < TYPE_ROW_DISPLAY_LEN` is one load and
/// one compare; deeper targets use the `is_subtype` builtin.
pub const TYPE_ROW_SIZE: u32 = 64;
/// Offset of the display in a row.
pub const TYPE_ROW_DISPLAY: u32 = 8;
/// Depths a row's display covers.
pub const TYPE_ROW_DISPLAY_LEN: u32 = (TYPE_ROW_SIZE - TYPE_ROW_DISPLAY) / 4;

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
        assert_eq!(cell_class(16), Some(0));
        assert_eq!(cell_class(512), Some(CELL_CLASSES - 1));
        assert_eq!(cell_class(528), None);
        assert_eq!(TYPE_ROW_DISPLAY_LEN, 14);
    }
}
