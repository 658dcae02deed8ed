//! The small-object space of the GC heap: structs and arrays of at most
//! `abi::gc::MAX_CELL_SIZE` bytes live in [`CHUNK_SIZE`]-byte chunks of equal-size cells,
//! one set of chunks per size class (multiples of 16 bytes, `abi::gc::cell_class`).
//!
//! *Allocation.* Each class has a free list whose head lives in the thread's
//! `VMRuntimeState::gc_free_cells`, where generated code pops it inline (writing
//! the header and fields itself) and calls the `gc_alloc` builtin only when the
//! list is empty. The list is fed one chunk at a time ([`Cells::refill`]): the free
//! cells of a swept chunk, or a fresh chunk. The cells handed to the list count as
//! allocated from then on (like a thread-local allocation buffer), so the heap's
//! accounting, the collection trigger and the heap limit need no work per object;
//! the next sweep counts exactly again. The limit stays exact: a refill near it
//! hands out only the cells that fit.
//!
//! *Sweeping* walks the chunks cell by cell, reading each cell's mark word
//! (`abi::gc::OBJECT_MARK`): unmarked objects become free cells, and each chunk's
//! free cells form a list of their own, waiting for a refill (the free lists are
//! emptied: their cells are free cells of the chunks too). A chunk left without a
//! live cell is kept for reuse by any class, up to as many as are in use (the
//! heap may double before the next collection); the rest go back to the system,
//! since returning and faulting in pages on every collection cost more than the
//! sweep itself. A cell's mark word tells its state: the two object marks of
//! `super` for an allocated object, [`FREE`] for a free cell, whose first word
//! links its list. Chunks are aligned to their size, so whether a word is an
//! object (for hosts, [`Cells::is_object`]) is a chunk lookup.

use std::alloc::Layout;
use std::collections::BTreeMap;

use crate::abi::gc::{CELL_CLASSES, GC_OBJECT_ALIGN, OBJECT_MARK};

/// Bytes of a chunk (and its alignment).
pub(super) const CHUNK_SIZE: usize = 64 << 10;

/// Mark word of a free cell: neither object mark (so marking never mistakes it for
/// an object) and zero, as a fresh chunk's cells already are.
const FREE: u32 = 0;

fn chunk_layout() -> Layout {
    Layout::from_size_align(CHUNK_SIZE, CHUNK_SIZE).expect("chunk layout")
}

/// The size class (index) of an object of `size` bytes, `None` for a large object.
pub(super) fn class_of(size: usize) -> Option<usize> {
    u32::try_from(size)
        .ok()
        .and_then(crate::abi::gc::cell_class)
}

/// Cell bytes of size class `class`.
pub(super) fn cell_size(class: usize) -> usize {
    (class + 1) * GC_OBJECT_ALIGN
}

/// This thread's free-list heads (`VMRuntimeState::gc_free_cells`).
fn heads() -> *mut [usize; CELL_CLASSES] {
    // SAFETY: the thread's runtime state lives as long as the thread; generated
    // code only touches these words while no Rust code of this thread does.
    unsafe { &raw mut (*crate::traps::runtime_state_mut()).gc_free_cells }
}

fn head(class: usize) -> usize {
    // SAFETY: see `heads`.
    unsafe { (*heads())[class] }
}

fn set_head(class: usize, cell: usize) {
    // SAFETY: see `heads`.
    unsafe { (*heads())[class] = cell }
}

/// Free cells of one chunk, linked through word 0.
struct FreeCells {
    head: usize,
    count: usize,
}

/// The cells of one thread's heap.
pub(super) struct Cells {
    /// Chunk base addresses of each size class.
    chunks: [Vec<usize>; CELL_CLASSES],
    /// Per class, the free cells of swept chunks not yet handed to the free list.
    swept: [Vec<FreeCells>; CELL_CLASSES],
    /// Size class of every chunk, by base address (for [`Cells::is_object`]).
    chunk_class: BTreeMap<usize, usize>,
    /// Empty chunks kept for reuse (not in `chunk_class`).
    spare: Vec<usize>,
    /// Cells live at the last sweep plus every cell handed to a free list since,
    /// and their bytes: what the heap's accounting counts as allocated.
    pub(super) count: usize,
    pub(super) bytes: usize,
}

impl Cells {
    pub(super) const fn new() -> Self {
        Cells {
            chunks: [const { Vec::new() }; CELL_CLASSES],
            swept: [const { Vec::new() }; CELL_CLASSES],
            chunk_class: BTreeMap::new(),
            spare: Vec::new(),
            count: 0,
            bytes: 0,
        }
    }

    /// Whether class `class`'s free list has a cell.
    pub(super) fn has_free(&self, class: usize) -> bool {
        head(class) != 0
    }

    /// A zeroed cell of size class `class` from its free list (its mark word still
    /// [`FREE`]: the caller writes the header), `None` when the list is empty.
    pub(super) fn pop(&mut self, class: usize) -> Option<*mut u8> {
        let cell = head(class) as *mut u8;
        if cell.is_null() {
            return None;
        }
        // SAFETY: a free cell of this class: `cell_size(class)` bytes inside a live
        // chunk, whose word 0 links the next free cell.
        unsafe {
            set_head(class, cell.cast::<usize>().read());
            std::ptr::write_bytes(cell, 0, cell_size(class));
        }
        Some(cell)
    }

    /// Feeds the empty free list of `class` with the free cells of one chunk (a
    /// swept one first, else a spare or new one), at most `budget` bytes of them
    /// (at least one cell fits). `None` if the system has no memory for a chunk.
    pub(super) fn refill(&mut self, class: usize, budget: usize) -> Option<()> {
        debug_assert!(!self.has_free(class));
        let size = cell_size(class);
        let mut cells = match self.swept[class].pop() {
            Some(cells) => cells,
            None => self.add_chunk(class)?,
        };
        let fits = budget / size;
        debug_assert!(fits > 0);
        if cells.count > fits {
            // Near the heap limit: hand out only the first `fits` cells and keep
            // the rest of the chunk's list for later.
            let mut last = cells.head;
            for _ in 1..fits {
                // SAFETY: a free cell's word 0 links the next of its chunk's list,
                // which has `cells.count` cells.
                last = unsafe { (last as *const usize).read() };
            }
            // SAFETY: as above.
            let rest = unsafe { (last as *const usize).read() };
            // SAFETY: as above: the `fits`-th cell ends the handed-out list.
            unsafe { (last as *mut usize).write(0) };
            self.swept[class].push(FreeCells {
                head: rest,
                count: cells.count - fits,
            });
            cells.count = fits;
        }
        set_head(class, cells.head);
        self.count += cells.count;
        self.bytes += cells.count * size;
        Some(())
    }

    /// A new chunk for `class` with every cell free, as a list.
    fn add_chunk(&mut self, class: usize) -> Option<FreeCells> {
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
        let count = CHUNK_SIZE / size;
        // Link the cells in address order (allocation then walks memory forwards);
        // every cell is free (a spare chunk's old marks are at other offsets).
        let mut next = 0;
        for i in (0..count).rev() {
            let cell = base + i * size;
            // SAFETY: inside the chunk; word 0 of a free cell is its link, and
            // the mark word lies within the cell (cells are at least 16 bytes).
            unsafe {
                (cell as *mut usize).write(next);
                ((cell + OBJECT_MARK as usize) as *mut u32).write(FREE);
            }
            next = cell;
        }
        self.chunks[class].push(base);
        self.chunk_class.insert(base, class);
        Some(FreeCells { head: next, count })
    }

    /// Frees every cell whose mark is `white`, turns `black` marks back to
    /// `white`, rebuilds the lists of free cells and returns empty chunks to the
    /// system. The free lists of generated code are emptied (their cells are free
    /// cells of the chunks, found again here).
    pub(super) fn sweep(&mut self, white: u32, black: u32) {
        self.count = 0;
        self.bytes = 0;
        for class in 0..CELL_CLASSES {
            set_head(class, 0);
            let size = cell_size(class);
            let cells_per_chunk = CHUNK_SIZE / size;
            let chunk_class = &mut self.chunk_class;
            let spare = &mut self.spare;
            let swept = &mut self.swept[class];
            swept.clear();
            let (mut count, mut bytes) = (0, 0);
            self.chunks[class].retain(|&base| {
                // A chunk whose objects all died (most, when garbage dies young)
                // is found by reading marks only, and goes back to the spare
                // chunks as it is: `add_chunk` rewrites every cell when it is
                // reused.
                let any_live = (0..cells_per_chunk).any(|i| {
                    let mark = (base + i * size + OBJECT_MARK as usize) as *const u32;
                    // SAFETY: every cell of a live chunk has a mark word.
                    unsafe { mark.read() == black }
                });
                if !any_live {
                    // In debug builds, poison it so that a missed root fails loudly.
                    #[cfg(debug_assertions)]
                    // SAFETY: the chunk's bytes; nothing reachable points into it.
                    unsafe {
                        std::ptr::write_bytes(base as *mut u8, 0xAB, CHUNK_SIZE)
                    };
                    chunk_class.remove(&base);
                    spare.push(base);
                    return false;
                }
                let mut chunk_free = 0usize;
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
                if live < cells_per_chunk {
                    swept.push(FreeCells {
                        head: chunk_free,
                        count: cells_per_chunk - live,
                    });
                }
                count += live;
                bytes += live * size;
                true
            });
            // Refills pop from the end: start with the lowest addresses.
            swept.reverse();
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

    /// Allocated cells and their bytes, exactly (the cells still on the free
    /// lists are not: for tests and statistics, it walks the lists).
    pub(super) fn allocated(&self) -> (usize, usize) {
        let (mut count, mut bytes) = (self.count, self.bytes);
        for class in 0..CELL_CLASSES {
            let mut cell = head(class);
            while cell != 0 {
                count -= 1;
                bytes -= cell_size(class);
                // SAFETY: a free cell's word 0 links the next of its list.
                cell = unsafe { (cell as *const usize).read() };
            }
        }
        (count, bytes)
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
        for class in 0..CELL_CLASSES {
            set_head(class, 0);
            self.swept[class].clear();
        }
        self.chunk_class.clear();
        self.count = 0;
        self.bytes = 0;
    }
}
