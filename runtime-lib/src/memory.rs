//! Linear memory.
//!
//! A 32-bit memory reserves [`MEMORY_RESERVATION`] + [`GUARD_SIZE`] bytes of address
//! space up front, all `PROT_NONE`, and makes the first `size` bytes (rounded up to
//! OS pages) readable and writable. Growing is one `mprotect`; the base never moves,
//! so generated code may keep it in a register. Any 32-bit index plus a static
//! offset below the guard size lands in the reservation, so accesses that the
//! compiler did not check fault on a `PROT_NONE` page and become
//! "out of bounds memory access" in the trap handler.
//!
//! The full reservation is made for every 32-bit memory, even for modules compiled
//! with explicit bounds checks: a memory may be exported to a module that relies on
//! guard pages, and reserving address space costs nothing until pages are touched.
//! 64-bit memories always need explicit bounds checks; they reserve their maximum
//! (at most [`MEMORY64_MAX_BYTES`]) plus one guard page.
//!
//! Pages are `1 << page_size_log2` bytes (custom-page-sizes proposal). With pages
//! smaller than an OS page the accessible region is rounded up to a whole OS page,
//! so generated code must bounds-check such memories explicitly.

//!
//! A memory is `Send + Sync` (shared memories of the threads proposal are used by
//! every thread of a wasi-threads program): its size is kept in atomics and
//! `grow` runs under a lock, so two concurrent grows cannot both succeed past the
//! maximum, and other threads never see a length whose pages are not accessible
//! yet (the `mprotect` comes before the release store of the new length).

use std::cell::UnsafeCell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::abi::{GUARD_SIZE, MEMORY_RESERVATION, MemoryType, VMMemory};

/// Implementation limit of a 64-bit memory's size (and reservation).
pub const MEMORY64_MAX_BYTES: u64 = 1 << 34;

/// One linear memory. Shared between instances through `Arc` (see `MemoryHandle`).
#[derive(Debug)]
pub struct Memory {
    /// What generated code reads; boxed so its address is stable.
    vm: Box<UnsafeCell<VMMemory>>,
    /// Start and length of the whole reservation.
    mapping: *mut u8,
    mapping_len: usize,
    /// Bytes currently readable and writable (a multiple of the OS page size).
    accessible: AtomicUsize,
    ty: MemoryType,
    pages: AtomicU64,
    /// Serializes `grow` (threads of a shared memory may grow it concurrently).
    grow_lock: Mutex<()>,
    /// Maximum size in pages: the declared maximum capped by the implementation.
    max_pages: u64,
    /// Tells the trap handler that faults in the reservation are wasm traps.
    registration: Option<crate::traps::ReservationRegistration>,
}

impl Memory {
    /// Reserves and initializes a memory of `ty.minimum` zeroed pages.
    pub fn new(ty: &MemoryType) -> Result<Memory, String> {
        Memory::with_limit(ty, None)
    }

    /// Like [`Memory::new`], but the memory never grows beyond `max_bytes` (rounded
    /// down to whole pages): a `memory.grow` past it fails like one past the declared
    /// maximum. The caller checks the minimum against the limit first, to report it
    /// with context (see `InstanceHandle::new_with_limits`); here a minimum above the
    /// limit is just an error.
    pub fn with_limit(ty: &MemoryType, max_bytes: Option<u64>) -> Result<Memory, String> {
        if ty.page_size_log2 > 16 {
            return Err(format!(
                "unsupported memory page size 2^{}",
                ty.page_size_log2
            ));
        }
        // A 32-bit memory spans at most 4 GiB, and its size in pages is a u32
        // (which matters for 1-byte pages).
        let limit_pages = if ty.memory64 {
            MEMORY64_MAX_BYTES >> ty.page_size_log2
        } else {
            (MEMORY_RESERVATION >> ty.page_size_log2).min(u32::MAX as u64)
        };
        let limit_pages = match max_bytes {
            Some(bytes) => limit_pages.min(bytes >> ty.page_size_log2),
            None => limit_pages,
        };
        let max_pages = ty.maximum.unwrap_or(u64::MAX).min(limit_pages);
        if ty.minimum > max_pages {
            return Err(format!(
                "memory minimum size of {} pages exceeds the limit of {} pages",
                ty.minimum, max_pages
            ));
        }
        let os_page = rustix::param::page_size() as u64;
        let reservation = if ty.memory64 {
            (max_pages << ty.page_size_log2).next_multiple_of(os_page) + os_page
        } else {
            MEMORY_RESERVATION + GUARD_SIZE
        };
        let mapping_len = usize::try_from(reservation)
            .map_err(|_| "memory reservation does not fit the address space".to_string())?;
        // SAFETY: a fresh anonymous mapping; nothing else refers to that range.
        let mapping = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                mapping_len,
                rustix::mm::ProtFlags::empty(),
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
            )
        }
        .map_err(|e| format!("cannot reserve {reservation} bytes for a linear memory: {e}"))?
            as *mut u8;
        let memory = Memory {
            vm: Box::new(UnsafeCell::new(VMMemory {
                base: mapping,
                length: 0,
            })),
            mapping,
            mapping_len,
            accessible: AtomicUsize::new(0),
            ty: *ty,
            pages: AtomicU64::new(0),
            grow_lock: Mutex::new(()),
            max_pages,
            registration: Some(crate::traps::register_reservation(
                mapping as usize,
                mapping_len,
            )),
        };
        if ty.minimum > 0 && memory.grow(ty.minimum).is_none() {
            return Err(format!(
                "cannot make {} pages of linear memory accessible",
                ty.minimum
            ));
        }
        Ok(memory)
    }

    /// The declared type, with `minimum` replaced by the current size (what import
    /// matching compares against).
    pub fn current_type(&self) -> MemoryType {
        MemoryType {
            minimum: self.size_pages(),
            ..self.ty
        }
    }

    pub fn declared_type(&self) -> &MemoryType {
        &self.ty
    }

    /// Pointer stored in `VMContext` memories.
    pub fn vmmemory(&self) -> *mut VMMemory {
        self.vm.get()
    }

    pub fn base(&self) -> *mut u8 {
        self.mapping
    }

    /// Current size in pages.
    pub fn size_pages(&self) -> u64 {
        self.pages.load(Ordering::Acquire)
    }

    /// Current size in bytes.
    pub fn byte_len(&self) -> usize {
        self.length_word().load(Ordering::Acquire)
    }

    /// `VMMemory::length`, which generated code reads with plain loads while
    /// `grow` on another thread may store to it.
    fn length_word(&self) -> &AtomicUsize {
        // SAFETY: the field is a properly aligned usize inside the boxed VMMemory,
        // which lives as long as `self`; the runtime only accesses it atomically.
        unsafe { AtomicUsize::from_ptr(&raw mut (*self.vm.get()).length) }
    }

    /// Whether this is a shared memory (threads proposal).
    pub fn is_shared(&self) -> bool {
        self.ty.shared
    }

    /// The maximum size in pages this memory can reach.
    pub fn max_pages(&self) -> u64 {
        self.max_pages
    }

    /// Grows by `delta` pages; returns the previous size in pages, or `None` when
    /// the result would exceed the maximum (the memory is then unchanged).
    pub fn grow(&self, delta: u64) -> Option<u64> {
        let _serialized = self.grow_lock.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.pages.load(Ordering::Relaxed);
        let new = old.checked_add(delta)?;
        if new > self.max_pages {
            return None;
        }
        let new_bytes = usize::try_from(new << self.ty.page_size_log2).ok()?;
        let os_page = rustix::param::page_size();
        let new_accessible = new_bytes.checked_next_multiple_of(os_page)?;
        if new_accessible > self.mapping_len {
            return None;
        }
        let accessible = self.accessible.load(Ordering::Relaxed);
        if new_accessible > accessible {
            // SAFETY: the range lies inside our reservation and is not accessible yet,
            // so no Rust reference to it exists.
            let made_accessible = unsafe {
                rustix::mm::mprotect(
                    self.mapping.add(accessible) as *mut _,
                    new_accessible - accessible,
                    rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE,
                )
            };
            made_accessible.ok()?;
            self.accessible.store(new_accessible, Ordering::Relaxed);
        }
        // Published after the pages are accessible: a thread that sees the new
        // length can use every byte below it.
        self.pages.store(new, Ordering::Release);
        self.length_word().store(new_bytes, Ordering::Release);
        Some(old)
    }

    /// `len` bytes at `offset`, if they are in bounds.
    pub fn checked_range(&self, offset: u64, len: u64) -> Option<*mut u8> {
        let end = offset.checked_add(len)?;
        if end > self.byte_len() as u64 {
            return None;
        }
        // SAFETY: offset <= length <= reservation, so the result stays in the mapping.
        Some(unsafe { self.mapping.add(offset as usize) })
    }

    /// Copies memory contents at `offset` into `buf`.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
        let src = self
            .checked_range(offset, buf.len() as u64)
            .ok_or("out of bounds memory access")?;
        // SAFETY: the source range is accessible memory of this instance; `buf` is a
        // distinct Rust allocation.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `data` into memory at `offset`.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), String> {
        let dst = self
            .checked_range(offset, data.len() as u64)
            .ok_or("out of bounds memory access")?;
        // SAFETY: the destination range is accessible memory of this instance.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }
}

// SAFETY: the mapping is owned by the memory; its mutable state (size, accessible
// bytes, `VMMemory::length`) is atomic and `grow` is serialized by `grow_lock`.
// `VMMemory::base` never changes after construction.
unsafe impl Send for Memory {}
// SAFETY: as above.
unsafe impl Sync for Memory {}

impl Drop for Memory {
    fn drop(&mut self) {
        // Forgotten before the range is unmapped (and possibly reused for something
        // else, whose faults are not wasm traps).
        drop(self.registration.take());
        // SAFETY: we own the whole mapping; no instance uses it any more (instances
        // hold an `Rc` to the memory).
        unsafe {
            let _ = rustix::mm::munmap(self.mapping as *mut _, self.mapping_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(minimum: u64, maximum: Option<u64>) -> MemoryType {
        MemoryType {
            minimum,
            maximum,
            memory64: false,
            shared: false,
            page_size_log2: 16,
        }
    }

    #[test]
    fn reserve_and_access_initial_pages() {
        let m = Memory::new(&ty(2, None)).unwrap();
        assert_eq!(m.size_pages(), 2);
        assert_eq!(m.byte_len(), 2 * 65536);
        // SAFETY: the VMMemory belongs to `m`.
        let vm = unsafe { &*m.vmmemory() };
        assert_eq!(vm.base, m.base());
        assert_eq!(vm.length, 2 * 65536);
        m.write(2 * 65536 - 4, &[1, 2, 3, 4]).unwrap();
        let mut buf = [0u8; 4];
        m.read(2 * 65536 - 4, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4]);
        assert!(m.write(2 * 65536 - 3, &[0; 4]).is_err());
        assert!(m.read(u64::MAX, &mut buf).is_err());
        // Fresh memory is zeroed.
        m.read(0, &mut buf).unwrap();
        assert_eq!(buf, [0; 4]);
    }

    #[test]
    fn grow_respects_maximum_and_keeps_base() {
        let m = Memory::new(&ty(1, Some(3))).unwrap();
        let base = m.base();
        assert_eq!(m.grow(1), Some(1));
        assert_eq!(m.grow(0), Some(2));
        assert_eq!(m.grow(2), None);
        assert_eq!(m.size_pages(), 2);
        assert_eq!(m.grow(1), Some(2));
        assert_eq!(m.grow(1), None);
        assert_eq!(m.base(), base);
        assert_eq!(m.byte_len(), 3 * 65536);
        m.write(3 * 65536 - 1, &[7]).unwrap();
        assert_eq!(m.grow(u64::MAX), None);
    }

    #[test]
    fn limit_of_32_bit_memories() {
        let m = Memory::new(&ty(0, None)).unwrap();
        assert_eq!(m.max_pages(), 65536);
        assert_eq!(m.grow(65537), None);
        assert!(Memory::new(&ty(65537, None)).is_err());
    }

    #[test]
    fn small_pages_and_memory64() {
        let m = Memory::new(&MemoryType {
            minimum: 10,
            maximum: Some(100),
            memory64: true,
            shared: false,
            page_size_log2: 0,
        })
        .unwrap();
        assert_eq!(m.byte_len(), 10);
        assert!(m.write(9, &[1]).is_ok());
        assert!(m.write(10, &[1]).is_err());
        assert_eq!(m.grow(90), Some(10));
        assert_eq!(m.grow(1), None);
        assert_eq!(m.byte_len(), 100);
    }

    #[test]
    fn a_limit_caps_growth_in_whole_pages() {
        // 3.5 pages: rounded down to 3.
        let m = Memory::with_limit(&ty(1, None), Some(3 * 65536 + 32768)).unwrap();
        assert_eq!(m.max_pages(), 3);
        assert_eq!(m.grow(2), Some(1));
        assert_eq!(m.grow(1), None);
        assert_eq!(m.size_pages(), 3);
        // The declared maximum still applies when it is lower.
        let m = Memory::with_limit(&ty(1, Some(2)), Some(1 << 30)).unwrap();
        assert_eq!(m.max_pages(), 2);
        assert!(Memory::with_limit(&ty(2, None), Some(65536)).is_err());
        // A 32-bit memory keeps its full reservation (generated code relies on the
        // guard region whatever the limit)...
        let m = Memory::with_limit(&ty(0, None), Some(0)).unwrap();
        assert_eq!(m.mapping_len as u64, MEMORY_RESERVATION + GUARD_SIZE);
        assert_eq!(m.grow(1), None);
        assert_eq!(m.grow(0), Some(0));
        // ...while a 64-bit one only reserves up to the limit.
        let m = Memory::with_limit(
            &MemoryType {
                minimum: 1,
                maximum: None,
                memory64: true,
                shared: false,
                page_size_log2: 16,
            },
            Some(4 << 16),
        )
        .unwrap();
        assert_eq!(m.max_pages(), 4);
        assert!(m.mapping_len <= (4 << 16) + 65536);
    }

    #[test]
    fn guard_region_is_reserved_for_32_bit_memories() {
        let m = Memory::new(&ty(1, Some(1))).unwrap();
        assert_eq!(m.mapping_len as u64, MEMORY_RESERVATION + GUARD_SIZE);
    }
}
