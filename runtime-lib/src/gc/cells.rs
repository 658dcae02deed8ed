//! The small-object space of the GC heap: structs and arrays of at most
//! [`MAX_CELL_SIZE`] bytes live in [`CHUNK_SIZE`]-byte chunks of equal-size cells,
//! one set of chunks and one free list per size class (multiples of 16 bytes).
//!
//! Allocation pops a free list (no system allocator call, no per-object bookkeeping);
//! sweeping walks the chunks cell by cell, reading each cell's mark word
//! (`abi::gc::OBJECT_MARK`), and rebuilds the free lists; a chunk left without a
//! live cell is kept for reuse by any class, up to as many as are in use (the
//! heap may double before the next collection); the rest go back to the system,
//! since returning and faulting in pages on every collection cost more than the
//! sweep itself. A cell's mark word tells its state: the two
//! object marks of `super` for an allocated object, [`FREE`] for a free cell, whose
//! first word links the free list. Chunks are aligned to their size, so whether a
//! word is an object (for hosts, [`Cells::is_object`]) is a chunk lookup.

use std::alloc::Layout;
use std::collections::BTreeMap;

use crate::abi::gc::{GC_OBJECT_ALIGN, OBJECT_MARK};

/// Bytes of a chunk (and its alignment).
pub(super) const CHUNK_SIZE: usize = 64 << 10;

/// Objects larger than this are allocated one by one (`super::Object::Data`).
pub(super) const MAX_CELL_SIZE: usize = 512;

const CLASSES: usize = MAX_CELL_SIZE / GC_OBJECT_ALIGN;

/// Mark word of a free cell: neither object mark (so marking never mistakes it for
/// an object) and zero, as a fresh chunk's cells already are.
const FREE: u32 = 0;

fn chunk_layout() -> Layout {
    Layout::from_size_align(CHUNK_SIZE, CHUNK_SIZE).expect("chunk layout")
}

/// The size class (index) of an object of `size` bytes, `None` for a large object.
pub(super) fn class_of(size: usize) -> Option<usize> {
    (size != 0 && size <= MAX_CELL_SIZE).then(|| size.div_ceil(GC_OBJECT_ALIGN) - 1)
}

/// Cell bytes of size class `class`.
pub(super) fn cell_size(class: usize) -> usize {
    (class + 1) * GC_OBJECT_ALIGN
}

/// The cells of one thread's heap.
pub(super) struct Cells {
    /// Chunk base addresses of each size class.
    chunks: [Vec<usize>; CLASSES],
    /// Head of each class's free list (0: empty); links in each free cell's word 0.
    free: [usize; CLASSES],
    /// Size class of every chunk, by base address (for [`Cells::is_object`]).
    chunk_class: BTreeMap<usize, usize>,
    /// Empty chunks kept for reuse (not in `chunk_class`).
    spare: Vec<usize>,
    /// Allocated cells and their bytes.
    pub(super) count: usize,
    pub(super) bytes: usize,
}

impl Cells {
    pub(super) const fn new() -> Self {
        Cells {
            chunks: [const { Vec::new() }; CLASSES],
            free: [0; CLASSES],
            chunk_class: BTreeMap::new(),
            spare: Vec::new(),
            count: 0,
            bytes: 0,
        }
    }

    /// A zeroed cell of size class `class` (its mark word still [`FREE`]: the
    /// caller writes the header), `None` if the system has no memory for a chunk.
    pub(super) fn alloc(&mut self, class: usize) -> Option<*mut u8> {
        if self.free[class] == 0 {
            self.add_chunk(class)?;
        }
        let cell = self.free[class] as *mut u8;
        let size = cell_size(class);
        // SAFETY: a free cell of this class: `size` bytes inside a live chunk,
        // whose word 0 links the next free cell.
        unsafe {
            self.free[class] = cell.cast::<usize>().read();
            std::ptr::write_bytes(cell, 0, size);
        }
        self.count += 1;
        self.bytes += size;
        Some(cell)
    }

    fn add_chunk(&mut self, class: usize) -> Option<()> {
        let base = match self.spare.pop() {
            Some(base) => base,
            None => {
                // SAFETY: the layout has a non-zero size.
                let base = unsafe { std::alloc::alloc(chunk_layout()) } as usize;
                if base == 0 {
                    return None;
                }
                base
            }
        };
        let size = cell_size(class);
        // Link the cells in address order (allocation then walks memory forwards);
        // every cell is free (a spare chunk's old marks are at other offsets).
        let mut next = 0;
        for i in (0..CHUNK_SIZE / size).rev() {
            let cell = base + i * size;
            // SAFETY: inside the chunk; word 0 of a free cell is its link, and
            // the mark word lies within the cell (cells are at least 16 bytes).
            unsafe {
                (cell as *mut usize).write(next);
                ((cell + OBJECT_MARK as usize) as *mut u32).write(FREE);
            }
            next = cell;
        }
        self.free[class] = next;
        self.chunks[class].push(base);
        self.chunk_class.insert(base, class);
        Some(())
    }

    /// Frees every cell whose mark is `white`, turns `black` marks back to
    /// `white`, rebuilds the free lists and returns empty chunks to the system.
    pub(super) fn sweep(&mut self, white: u32, black: u32) {
        self.count = 0;
        self.bytes = 0;
        for class in 0..CLASSES {
            let size = cell_size(class);
            let cells_per_chunk = CHUNK_SIZE / size;
            let mut free_head = 0usize;
            let chunk_class = &mut self.chunk_class;
            let spare = &mut self.spare;
            let (mut count, mut bytes) = (0, 0);
            self.chunks[class].retain(|&base| {
                let mut chunk_free = free_head;
                let mut live = 0;
                for i in (0..cells_per_chunk).rev() {
                    let cell = (base + i * size) as *mut u8;
                    // SAFETY: every cell of a live chunk has a mark word.
                    let mark = unsafe { cell.add(OBJECT_MARK as usize).cast::<u32>() };
                    // SAFETY: as above.
                    let state = unsafe { mark.read() };
                    if state == black {
                        // SAFETY: as above; white again for the next collection.
                        unsafe { mark.write(white) };
                        live += 1;
                        continue;
                    }
                    if state == white {
                        // Garbage. In debug builds, poison it so that a missed root
                        // fails loudly (wild type ids and pointers).
                        #[cfg(debug_assertions)]
                        // SAFETY: the cell's bytes; nothing reachable points here.
                        unsafe {
                            std::ptr::write_bytes(cell, 0xAB, size)
                        };
                        // SAFETY: as above.
                        unsafe { mark.write(FREE) };
                    }
                    // SAFETY: a free cell's word 0 is its link.
                    unsafe { cell.cast::<usize>().write(chunk_free) };
                    chunk_free = cell as usize;
                }
                if live == 0 {
                    // No live object is in it, and its cells are not linked (the
                    // list is left as it was before this chunk).
                    chunk_class.remove(&base);
                    spare.push(base);
                    return false;
                }
                free_head = chunk_free;
                count += live;
                bytes += live * size;
                true
            });
            self.free[class] = free_head;
            self.count += count;
            self.bytes += bytes;
        }
        let in_use = self.chunk_class.len();
        while self.spare.len() > in_use {
            let base = self.spare.pop().expect("more spare chunks than in use");
            // SAFETY: allocated in `add_chunk` with this layout; empty.
            unsafe { std::alloc::dealloc(base as *mut u8, chunk_layout()) };
        }
    }

    /// Whether `addr` is an allocated cell (an object) of this space.
    pub(super) fn is_object(&self, addr: usize, white: u32, black: u32) -> bool {
        let base = addr & !(CHUNK_SIZE - 1);
        let Some(&class) = self.chunk_class.get(&base) else {
            return false;
        };
        let offset = addr - base;
        if !offset.is_multiple_of(cell_size(class)) || offset + cell_size(class) > CHUNK_SIZE {
            return false;
        }
        // SAFETY: a cell of a live chunk.
        let mark = unsafe {
            (addr as *const u8)
                .add(OBJECT_MARK as usize)
                .cast::<u32>()
                .read()
        };
        mark == white || mark == black
    }

    /// Returns every chunk to the system.
    pub(super) fn release(&mut self) {
        let spare = std::mem::take(&mut self.spare);
        let in_use = self.chunks.iter_mut().flat_map(std::mem::take);
        for base in in_use.chain(spare) {
            // SAFETY: allocated in `add_chunk` with this layout; the heap is going
            // away with every object in it.
            unsafe { std::alloc::dealloc(base as *mut u8, chunk_layout()) };
        }
        self.free = [0; CLASSES];
        self.chunk_class.clear();
        self.count = 0;
        self.bytes = 0;
    }
}
