//! Applying a memory image (`abi::MemoryImage`, built by the compiler's
//! `memory_image`): a memory's initial contents, page-aligned in the object.
//!
//! When the image lies in the main executable's file, its pages are mapped
//! `MAP_PRIVATE | MAP_FIXED` from `/proc/self/exe` over the memory's first
//! accessible pages: nothing is read until the program touches a page, and a write
//! copies that page only (the file never changes). The image's file offset comes
//! from the program headers (`dl_iterate_phdr`): the `PT_LOAD` segment holding it
//! maps file offset `p_offset` at `load bias + p_vaddr`.
//!
//! Anywhere else (an object loaded with `dlopen`, as the embedding library and the
//! spec harness do; no `/proc`; a page size the image is not aligned to) the image is
//! copied, which gives the same contents.

use std::ffi::c_void;

use crate::abi::MemoryImage;
use crate::memory::Memory;

/// Images of fewer OS pages are copied: mapping costs seven system calls (the
/// program headers walk, `open`, `fstat`, two `pread`s, `mmap`, `close`), more than
/// faulting in and filling a few fresh pages (hello world's one page measured
/// slower mapped).
const MIN_MAPPED_PAGES: usize = 4;

/// Writes `image` (whose bytes are `bytes`) into the freshly created `memory`.
pub(crate) fn apply(memory: &Memory, image: &MemoryImage, bytes: &[u8]) -> Result<(), String> {
    let fits = image
        .offset
        .checked_add(image.len)
        .is_some_and(|end| end <= memory.byte_len() as u64);
    if !fits || bytes.len() as u64 != image.len {
        return Err("the memory image does not fit its memory".into());
    }
    // SAFETY: `offset + len` is within the accessible part of the memory (checked
    // above), whose reservation starts at `base`.
    let dst = unsafe { memory.base().add(image.offset as usize) };
    if map_from_executable(dst, bytes) {
        return Ok(());
    }
    memory.write(image.offset, bytes)
}

/// Maps the executable's copy of `bytes` privately over `dst`. False, with `dst`
/// left readable and writable (and still zero), when that cannot be done.
fn map_from_executable(dst: *mut u8, bytes: &[u8]) -> bool {
    let page = rustix::param::page_size();
    let aligned = |x: usize| x.is_multiple_of(page);
    if bytes.len() < MIN_MAPPED_PAGES * page
        || !aligned(dst as usize)
        || !aligned(bytes.as_ptr() as usize)
        || !aligned(bytes.len())
    {
        return false;
    }
    let Some(file_offset) = main_program_file_offset(bytes) else {
        return false;
    };
    if !aligned(file_offset as usize) {
        return false;
    }
    let Ok(exe) = rustix::fs::open(
        "/proc/self/exe",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    // A mapping past the end of the file would fault on access instead of trapping.
    match rustix::fs::fstat(&exe) {
        Ok(stat) if (stat.st_size as u64) >= file_offset + bytes.len() as u64 => {}
        _ => return false,
    }
    // `/proc/self/exe` is the file the kernel executed, which is not the program
    // when it was started through the dynamic loader (`ld.so ./program`): make sure
    // the file holds the image where the headers say, by its first and last pages.
    let file_has_image = |at: usize| {
        let mut page_bytes = vec![0u8; page];
        matches!(rustix::io::pread(&exe, &mut page_bytes, file_offset + at as u64), Ok(n) if n == page)
            && page_bytes == bytes[at..at + page]
    };
    if !file_has_image(0) || !file_has_image(bytes.len() - page) {
        return false;
    }
    use rustix::mm::{MapFlags, ProtFlags};
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    // SAFETY: `dst..dst + len` is accessible memory of a fresh linear memory that
    // nothing has written yet; it is replaced by a private mapping of the same
    // length with the contents the copy would have written.
    let mapped = unsafe {
        rustix::mm::mmap(
            dst.cast::<c_void>(),
            bytes.len(),
            rw,
            MapFlags::PRIVATE | MapFlags::FIXED,
            &exe,
            file_offset,
        )
    };
    if mapped.is_ok() {
        return true;
    }
    // A failed `MAP_FIXED` may have unmapped the range already: put fresh zero pages
    // back before the caller copies (and if that fails too, the copy faults into
    // the reservation and is reported, never silently wrong).
    // SAFETY: as above, the range belongs to the memory's reservation.
    let _ = unsafe {
        rustix::mm::mmap_anonymous(
            dst.cast::<c_void>(),
            bytes.len(),
            rw,
            MapFlags::PRIVATE | MapFlags::FIXED | MapFlags::NORESERVE,
        )
    };
    false
}

/// The offset in the main executable's file of `bytes`, when they lie in one of
/// its loaded segments' file-backed part.
fn main_program_file_offset(bytes: &[u8]) -> Option<u64> {
    struct Search {
        start: usize,
        end: usize,
        found: Option<u64>,
    }
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `Search` passed below; `info` and its program
        // headers are valid for the duration of the call.
        let (search, info) = unsafe { (&mut *data.cast::<Search>(), &*info) };
        let headers = if info.dlpi_phdr.is_null() {
            &[][..]
        } else {
            // SAFETY: `dlpi_phnum` headers start at `dlpi_phdr`.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) }
        };
        for header in headers.iter().filter(|h| h.p_type == libc::PT_LOAD) {
            let start = (info.dlpi_addr as usize).wrapping_add(header.p_vaddr as usize);
            let Some(file_end) = start.checked_add(header.p_filesz as usize) else {
                continue;
            };
            if start <= search.start && search.end <= file_end {
                search.found = Some(header.p_offset + (search.start - start) as u64);
            }
        }
        // The first object reported is the main program: stop there.
        1
    }
    let mut search = Search {
        start: bytes.as_ptr() as usize,
        end: bytes.as_ptr() as usize + bytes.len(),
        found: None,
    };
    // SAFETY: `visit` only reads the headers it is given and writes `search`.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&raw mut search).cast()) };
    search.found
}
