//! The GC builtins generated code calls (see `abi::Builtins` for each contract):
//! allocation, which may collect and so needs the caller's frame, and the bulk
//! array operations, which never allocate. Array pointers come from generated code
//! that has already checked them for null; indices and lengths are guest values and
//! are checked here, as a whole and overflow-safely, before anything is written.

use crate::abi::gc::{ARRAY_LENGTH, GC_HEADER_SIZE, OBJECT_TYPE_ID};
use crate::abi::{Trap, ValRaw};
use crate::instance::Instance;

use super::{CallerFrame, alloc_data, types};

/// # Safety
/// `vmctx` must be a live instance's context (generated code passes its own).
unsafe fn instance<'a>(vmctx: *mut u8) -> &'a Instance {
    // SAFETY: word 0 of every VMContext is its Instance (abi::layout).
    unsafe { &**(vmctx as *const *const Instance) }
}

/// Builtin `gc_alloc(vmctx, type_index, length) -> *mut u8`. Entered from generated
/// code, it forwards the caller's frame pointer, return address and stack pointer
/// to [`gc_alloc_impl`], which needs them to find the roots in the wasm frames.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn gc_alloc(_vmctx: *mut u8, _type_index: u32, _length: u32) -> usize {
    core::arch::naked_asm!(
        "mov rcx, rbp",
        "mov r8, [rsp]",
        "lea r9, [rsp + 8]",
        "jmp {imp}",
        imp = sym gc_alloc_impl,
    )
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn gc_alloc(_vmctx: *mut u8, _type_index: u32, _length: u32) -> usize {
    core::arch::naked_asm!(
        "mov x3, x29",
        "mov x4, x30",
        "mov x5, sp",
        "b {imp}",
        imp = sym gc_alloc_impl,
    )
}

extern "C" fn gc_alloc_impl(
    vmctx: *mut u8,
    type_index: u32,
    length: u32,
    fp: usize,
    ret: usize,
    sp: usize,
) -> usize {
    // SAFETY: called by generated code with its own context.
    let instance = unsafe { instance(vmctx) };
    let module = instance.module();
    let (Some(id), Some(ty)) = (module.type_id(type_index), module.gc_type(type_index)) else {
        crate::traps::raise_host_trap(Trap::HostError)
    };
    match alloc_data(Some(CallerFrame { fp, ret, sp }), id, ty, length) {
        Ok(ptr) => ptr as usize,
        Err(trap) => crate::traps::raise_host_trap(trap),
    }
}

/// The element size of the array at `array` and its length.
///
/// # Safety
/// `array` must be a live GC array.
unsafe fn array_shape(array: *mut u8) -> Option<(usize, u32)> {
    // SAFETY: see the contract.
    let (id, len) = unsafe {
        (
            array.add(OBJECT_TYPE_ID as usize).cast::<u32>().read(),
            array.add(ARRAY_LENGTH as usize).cast::<u32>().read(),
        )
    };
    let element = types::type_info_of_id(id)?.array_element()?;
    Some((element.storage.size() as usize, len))
}

/// Address of elements `[index, index + count)` of `array`, if they exist.
///
/// # Safety
/// `array` must be a live GC array.
unsafe fn elements(array: *mut u8, index: u32, count: u32) -> Option<(*mut u8, usize)> {
    // SAFETY: see the contract.
    let (size, len) = unsafe { array_shape(array)? };
    let end = u64::from(index) + u64::from(count);
    if end > u64::from(len) {
        return None;
    }
    // SAFETY: in bounds of the object (its size covers `len` elements).
    let ptr = unsafe { array.add(GC_HEADER_SIZE as usize + index as usize * size) };
    Some((ptr, size))
}

/// `array_new_data(vmctx, type_index, data, offset, length) `: traps: checks that
/// the segment holds the bytes of `length` elements at `offset` (before generated
/// code allocates and copies with `array_init_data`).
pub(crate) extern "C" fn array_new_data(
    vmctx: *mut u8,
    type_index: u32,
    data: u32,
    offset: u32,
    length: u32,
) {
    // SAFETY: called by generated code with its own context.
    let instance = unsafe { instance(vmctx) };
    let Some(size) = instance
        .module()
        .gc_type(type_index)
        .and_then(|t| t.array_element())
        .map(|f| u64::from(f.storage.size()))
    else {
        crate::traps::raise_host_trap(Trap::HostError)
    };
    let bytes = instance.data_segment(data).map_or(0, |b| b.len() as u64);
    if u64::from(offset) + u64::from(length) * size > bytes {
        crate::traps::raise_host_trap(Trap::MemoryOutOfBounds)
    }
}

/// `array_new_elem(vmctx, type_index, elem, offset, length) `: traps: checks that
/// the segment holds `length` items at `offset`.
pub(crate) extern "C" fn array_new_elem(
    vmctx: *mut u8,
    _type_index: u32,
    elem: u32,
    offset: u32,
    length: u32,
) {
    // SAFETY: called by generated code with its own context.
    let instance = unsafe { instance(vmctx) };
    let items = instance.element_segment(elem).map_or(0, |s| s.len() as u64);
    if u64::from(offset) + u64::from(length) > items {
        crate::traps::raise_host_trap(Trap::TableOutOfBounds)
    }
}

pub(crate) extern "C" fn array_fill(
    _vmctx: *mut u8,
    array: *mut u8,
    index: u32,
    value: *const ValRaw,
    length: u32,
) {
    // SAFETY: generated code passes a non-null array.
    let Some((dst, size)) = (unsafe { elements(array, index, length) }) else {
        crate::traps::raise_host_trap(Trap::ArrayOutOfBounds)
    };
    // SAFETY: generated code passes a 16-byte slot.
    let value = unsafe { value.read_unaligned() };
    let n = length as usize;
    // SAFETY (each arm): `dst` is the start of `n` elements of `size` bytes inside
    // the array, aligned to `size` (objects are 16-aligned, elements naturally).
    unsafe {
        match size {
            1 => std::ptr::write_bytes(dst, value as u8, n),
            2 => std::slice::from_raw_parts_mut(dst.cast::<u16>(), n).fill(value as u16),
            4 => std::slice::from_raw_parts_mut(dst.cast::<u32>(), n).fill(value as u32),
            8 => std::slice::from_raw_parts_mut(dst.cast::<u64>(), n).fill(value as u64),
            _ => std::slice::from_raw_parts_mut(dst.cast::<u128>(), n).fill(value),
        }
    }
}

pub(crate) extern "C" fn array_copy(
    _vmctx: *mut u8,
    dst: *mut u8,
    dst_index: u32,
    src: *mut u8,
    src_index: u32,
    length: u32,
) {
    // SAFETY: generated code passes non-null arrays (validation: same element type).
    let (Some((d, size)), Some((s, _))) = (unsafe { elements(dst, dst_index, length) }, unsafe {
        elements(src, src_index, length)
    }) else {
        crate::traps::raise_host_trap(Trap::ArrayOutOfBounds)
    };
    // SAFETY: both ranges are inside live arrays; `copy` allows overlap.
    unsafe { std::ptr::copy(s, d, length as usize * size) };
}

pub(crate) extern "C" fn array_init_data(
    vmctx: *mut u8,
    array: *mut u8,
    dst: u32,
    data: u32,
    src: u32,
    length: u32,
) {
    // SAFETY: called by generated code with its own context.
    let instance = unsafe { instance(vmctx) };
    // SAFETY: generated code passes a non-null array.
    let Some((d, size)) = (unsafe { elements(array, dst, length) }) else {
        crate::traps::raise_host_trap(Trap::ArrayOutOfBounds)
    };
    let bytes = instance.data_segment(data).unwrap_or(&[]);
    let start = src as usize;
    let Some(source) = start
        .checked_add(length as usize * size)
        .and_then(|end| bytes.get(start..end))
    else {
        crate::traps::raise_host_trap(Trap::MemoryOutOfBounds)
    };
    // SAFETY: the destination range is inside the array; the segment is metadata.
    unsafe { std::ptr::copy_nonoverlapping(source.as_ptr(), d, source.len()) };
}

pub(crate) extern "C" fn array_init_elem(
    vmctx: *mut u8,
    array: *mut u8,
    dst: u32,
    elem: u32,
    src: u32,
    length: u32,
) {
    // SAFETY: called by generated code with its own context.
    let instance = unsafe { instance(vmctx) };
    // SAFETY: generated code passes a non-null array.
    let Some((d, _)) = (unsafe { elements(array, dst, length) }) else {
        crate::traps::raise_host_trap(Trap::ArrayOutOfBounds)
    };
    let items = instance.element_segment(elem).unwrap_or_else(|| [].into());
    let start = src as usize;
    let Some(source) = start
        .checked_add(length as usize)
        .and_then(|end| items.get(start..end))
    else {
        crate::traps::raise_host_trap(Trap::TableOutOfBounds)
    };
    for (k, &item) in source.iter().enumerate() {
        // SAFETY: element k of the checked range; reference elements are 8 bytes.
        unsafe { d.add(8 * k).cast::<usize>().write(item) };
    }
}
