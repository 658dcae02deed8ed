//! Applying memory images (`abi::MemoryImage`, built by the compiler's
//! `memory_image`): memories' initial contents, as page-aligned chunks of one
//! section of the object. Runs of zero pages are not stored (holes): the memory's
//! fresh pages are already zero there.
//!
//! When the section lies in the main executable's file, each chunk is mapped
//! `MAP_PRIVATE | MAP_FIXED` from `/proc/self/exe` over its place in the memory:
//! nothing is read until the program touches a page, and a write copies that page
//! only (the file never changes). The section's file offset comes from the program
//! headers (`dl_iterate_phdr`): the `PT_LOAD` segment holding it maps file offset
//! `p_offset` at `load bias + p_vaddr`.
//!
//! Anywhere else (an object loaded with `dlopen`, as the embedding library and the
//! spec harness do; no `/proc`; a page size the image is not aligned to) the chunks
//! are copied, which gives the same contents.

use std::ffi::c_void;

use rustix::fd::OwnedFd;

use crate::abi::MemoryImage;
use crate::memory::Memory;

/// Sections of fewer OS pages are copied: mapping costs seven system calls (the
/// program headers walk, `open`, `fstat`, two `pread`s, `mmap`, `close`), more than
/// faulting in and filling a few fresh pages (hello world's one page measured
/// slower mapped).
const MIN_MAPPED_PAGES: usize = 4;

/// Writes every image of `images` (memory, image), whose chunks are in `section`,
/// into its freshly created memory.
pub(crate) fn apply<'a>(
    images: impl Iterator<Item = (&'a Memory, &'a MemoryImage)>,
    section: &[u8],
) -> Result<(), String> {
    let mut executable = None;
    let mut opened = false;
    for (memory, image) in images {
        for chunk in &image.chunks {
            let bytes = chunk
                .data_offset
                .checked_add(chunk.len)
                .and_then(|end| section.get(chunk.data_offset as usize..end as usize));
            let fits = chunk
                .offset
                .checked_add(chunk.len)
                .is_some_and(|end| end <= memory.byte_len() as u64);
            let (Some(bytes), true) = (bytes, fits) else {
                return Err("the memory image does not fit its memory".into());
            };
            // Opened at the first chunk, once for all of them.
            if !opened {
                executable = MappableSection::open(section);
                opened = true;
            }
            // SAFETY: `offset + len` is within the accessible part of the memory
            // (checked above), whose reservation starts at `base`.
            let dst = unsafe { memory.base().add(chunk.offset as usize) };
            let mapped = executable
                .as_ref()
                .is_some_and(|exe| exe.map(dst, chunk.data_offset, bytes.len()));
            if !mapped {
                memory.write(chunk.offset, bytes)?;
            }
        }
    }
    Ok(())
}

/// The image section's place in the executable's file, open for mapping.
struct MappableSection {
    exe: OwnedFd,
    /// File offset of the section's first byte.
    file_offset: u64,
}

impl MappableSection {
    /// `None` when `section` cannot (or should not) be mapped from the executable.
    fn open(section: &[u8]) -> Option<MappableSection> {
        let page = rustix::param::page_size();
        let aligned = |x: usize| x.is_multiple_of(page);
        if section.len() < MIN_MAPPED_PAGES * page
            || !aligned(section.as_ptr() as usize)
            || !aligned(section.len())
        {
            return None;
        }
        let file_offset = main_program_file_offset(section)?;
        if !aligned(file_offset as usize) {
            return None;
        }
        let exe = rustix::fs::open(
            "/proc/self/exe",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ok()?;
        // A mapping past the end of the file would fault on access instead of trapping.
        match rustix::fs::fstat(&exe) {
            Ok(stat) if (stat.st_size as u64) >= file_offset + section.len() as u64 => {}
            _ => return None,
        }
        // `/proc/self/exe` is the file the kernel executed, which is not the program
        // when it was started through the dynamic loader (`ld.so ./program`): make
        // sure the file holds the section where the headers say, by its first and
        // last pages.
        let file_has_section = |at: usize| {
            let mut page_bytes = vec![0u8; page];
            matches!(rustix::io::pread(&exe, &mut page_bytes, file_offset + at as u64), Ok(n) if n == page)
                && page_bytes == section[at..at + page]
        };
        if !file_has_section(0) || !file_has_section(section.len() - page) {
            return None;
        }
        Some(MappableSection { exe, file_offset })
    }

    /// Maps the `len` bytes at `data_offset` of the section privately over `dst`.
    /// False, with `dst` left readable and writable (and still zero), when that
    /// cannot be done.
    fn map(&self, dst: *mut u8, data_offset: u64, len: usize) -> bool {
        let page = rustix::param::page_size();
        if !(dst as usize).is_multiple_of(page)
            || !len.is_multiple_of(page)
            || !(data_offset as usize).is_multiple_of(page)
        {
            return false;
        }
        use rustix::mm::{MapFlags, ProtFlags};
        let rw = ProtFlags::READ | ProtFlags::WRITE;
        // SAFETY: `dst..dst + len` is accessible memory of a fresh linear memory
        // that nothing has written yet; it is replaced by a private mapping of the
        // same length with the contents the copy would have written (the caller
        // checked that the chunk lies in the section, which lies in the file).
        let mapped = unsafe {
            rustix::mm::mmap(
                dst.cast::<c_void>(),
                len,
                rw,
                MapFlags::PRIVATE | MapFlags::FIXED,
                &self.exe,
                self.file_offset + data_offset,
            )
        };
        if mapped.is_ok() {
            return true;
        }
        // A failed `MAP_FIXED` may have unmapped the range already: put fresh zero
        // pages back before the caller copies (and if that fails too, the copy
        // faults into the reservation and is reported, never silently wrong).
        // SAFETY: as above, the range belongs to the memory's reservation.
        let _ = unsafe {
            rustix::mm::mmap_anonymous(
                dst.cast::<c_void>(),
                len,
                rw,
                MapFlags::PRIVATE | MapFlags::FIXED | MapFlags::NORESERVE,
            )
        };
        false
    }
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
