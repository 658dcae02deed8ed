//! The per-function code facts (trap sites, exception handlers, stack maps, inlined
//! code ranges, names and code lengths of every defined function), laid out so that the runtime reads
//! them in place from the executable's read-only data instead of decoding them at
//! start-up.
//!
//! The compiler builds a [`FuncInfo`] per function and [`encode`]s them all into one
//! blob (`ModuleDescriptor::func_table`). The runtime [`FuncTable::parse`]s that blob
//! once at load, which checks the layout and every function record (work in the
//! number of functions, a few hundred kilobytes for CPython's 11k functions), and
//! then answers lookups by binary search over the sites in place: no allocation,
//! which also makes the lookups usable from the signal handler. A large module used
//! to spend a third of its start-up page faults decoding these tables (CPython:
//! 2.2 MB with postcard, one allocation per function and per stack map).
//!
//! # Layout
//! All integers are little-endian `u32`s, all records unaligned (read with
//! `zerocopy`, which checks at compile time that every bit pattern of a record is
//! valid and at run time that the slices fit):
//!
//! ```text
//! header      num_funcs, num_traps, num_long_traps, num_handlers, num_stack_maps,
//!             num_slots, names_len, num_inlined, num_inlined_funcs
//! funcs       [FuncRecord; num_funcs]
//! traps       [TrapRecord; num_traps]          the trap sites of functions of at most
//!                                              64 KiB of code (16-bit offsets),
//!                                              function by function
//! long_traps  [LongTrapRecord; num_long_traps] those of longer functions
//! handlers    [HandlerRecord; num_handlers]
//! stack_maps  [StackMapRecord; num_stack_maps]
//! slots       [u32; num_slots]                 the stack maps' slots, map by map
//! inlined     [InlinedRecord; num_inlined]     code ranges of inlined callees
//! inlined_funcs [u32; num_inlined_funcs]       their chains of functions, range by range
//! names       [u8; names_len]                  UTF-8 function names, back to back
//! ```
//!
//! A function's sites are the range from the previous record's `*_end` (0 for the
//! first function) to its own, so ranges are contiguous and sorted per function.
//! Trap sites are most of the table (CPython: 637k of them), hence 3-byte records
//! for the functions whose offsets fit in 16 bits, which is nearly all: the table
//! is then about as small as postcard's variable-length encoding was.
//! [`FuncTable::parse`] checks that every such range and name lies in its area. The
//! sites themselves are checked when used: a handler outside its function is never
//! returned, a name that is not UTF-8 reads as no name, an unsorted table makes a
//! lookup miss. A corrupt blob can thus make a lookup wrong, never read outside the
//! blob or resume execution outside the code.

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{FuncInfo, HandlerSite, InlinedRange, StackMapSite, Trap};

/// `FuncRecord::name_start` of a function without a name.
const NO_NAME: u32 = u32::MAX;

/// Functions of at most this many bytes of code keep their trap sites as
/// [`TrapRecord`]s (16-bit offsets), longer ones as [`LongTrapRecord`]s.
const SHORT_FUNCTION: u32 = 1 << 16;

#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Header {
    num_funcs: U32,
    num_traps: U32,
    num_long_traps: U32,
    num_handlers: U32,
    num_stack_maps: U32,
    num_slots: U32,
    names_len: U32,
    num_inlined: U32,
    num_inlined_funcs: U32,
}

/// One defined function.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FuncRecord {
    code_len: U32,
    /// Offset of the name in the names area, or [`NO_NAME`].
    name_start: U32,
    name_len: U32,
    /// End (exclusive) of this function's range in each site array.
    traps_end: U32,
    long_traps_end: U32,
    handlers_end: U32,
    stack_maps_end: U32,
    inlined_end: U32,
}

/// A trap site of a function of at most [`SHORT_FUNCTION`] bytes: offset from the
/// function start, `Trap` code.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct TrapRecord {
    offset: U16,
    trap: u8,
}

/// A trap site of a longer function.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct LongTrapRecord {
    offset: U32,
    trap: u8,
}

#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct HandlerRecord {
    ret: U32,
    handler: U32,
    frame_offset: U32,
}

#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct StackMapRecord {
    ret: U32,
    /// End (exclusive) of this map's slots in the slots area; they start at the
    /// previous map's end (0 for the first map of the table).
    slots_end: U32,
}

/// Code of inlined functions (`abi::InlinedRange`): offsets `[start, end)` from the
/// function start; its chain of defined functions (innermost first) ends at
/// `funcs_end` in the inlined-funcs area and starts at the previous range's end.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct InlinedRecord {
    start: U32,
    end: U32,
    funcs_end: U32,
}

/// Encodes the facts of every defined function, in defined-function order, in the
/// layout of the module docs. Fails only when a count does not fit in 32 bits.
pub fn encode(funcs: &[FuncInfo]) -> Result<Vec<u8>, String> {
    let count = |n: usize, what: &str| {
        u32::try_from(n).map_err(|_| format!("too many {what} for the function table"))
    };
    let mut records = Vec::with_capacity(funcs.len());
    let mut traps = Vec::new();
    let mut long_traps = Vec::new();
    let mut handlers = Vec::new();
    let mut stack_maps = Vec::new();
    let mut slots: Vec<U32> = Vec::new();
    let mut inlined = Vec::new();
    let mut inlined_funcs: Vec<U32> = Vec::new();
    let mut names = Vec::new();
    for f in funcs {
        let (name_start, name_len) = match &f.name {
            Some(name) => {
                let start = count(names.len(), "name bytes")?;
                names.extend_from_slice(name.as_bytes());
                (start, count(name.len(), "name bytes")?)
            }
            None => (NO_NAME, 0),
        };
        if f.code_len <= SHORT_FUNCTION {
            for &(offset, trap) in &f.traps {
                let offset = u16::try_from(offset)
                    .map_err(|_| format!("trap site at {offset} outside its function"))?;
                traps.push(TrapRecord {
                    offset: offset.into(),
                    trap: trap as u8,
                });
            }
        } else {
            long_traps.extend(f.traps.iter().map(|&(offset, trap)| LongTrapRecord {
                offset: offset.into(),
                trap: trap as u8,
            }));
        }
        handlers.extend(f.handlers.iter().map(|h| HandlerRecord {
            ret: h.ret.into(),
            handler: h.handler.into(),
            frame_offset: h.frame_offset.into(),
        }));
        for map in &f.stack_maps {
            slots.extend(map.slots.iter().map(|&s| U32::new(s)));
            stack_maps.push(StackMapRecord {
                ret: map.ret.into(),
                slots_end: count(slots.len(), "stack map slots")?.into(),
            });
        }
        for range in &f.inlined {
            inlined_funcs.extend(range.funcs.iter().map(|&f| U32::new(f)));
            inlined.push(InlinedRecord {
                start: range.start.into(),
                end: range.end.into(),
                funcs_end: count(inlined_funcs.len(), "inlined functions")?.into(),
            });
        }
        records.push(FuncRecord {
            code_len: f.code_len.into(),
            name_start: name_start.into(),
            name_len: name_len.into(),
            traps_end: count(traps.len(), "trap sites")?.into(),
            long_traps_end: count(long_traps.len(), "trap sites")?.into(),
            handlers_end: count(handlers.len(), "exception handlers")?.into(),
            stack_maps_end: count(stack_maps.len(), "stack maps")?.into(),
            inlined_end: count(inlined.len(), "inlined ranges")?.into(),
        });
    }
    let header = Header {
        num_funcs: count(records.len(), "functions")?.into(),
        num_traps: count(traps.len(), "trap sites")?.into(),
        num_long_traps: count(long_traps.len(), "trap sites")?.into(),
        num_handlers: count(handlers.len(), "exception handlers")?.into(),
        num_stack_maps: count(stack_maps.len(), "stack maps")?.into(),
        num_slots: count(slots.len(), "stack map slots")?.into(),
        names_len: count(names.len(), "name bytes")?.into(),
        num_inlined: count(inlined.len(), "inlined ranges")?.into(),
        num_inlined_funcs: count(inlined_funcs.len(), "inlined functions")?.into(),
    };
    let mut out = Vec::new();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(records.as_bytes());
    out.extend_from_slice(traps.as_bytes());
    out.extend_from_slice(long_traps.as_bytes());
    out.extend_from_slice(handlers.as_bytes());
    out.extend_from_slice(stack_maps.as_bytes());
    out.extend_from_slice(slots.as_bytes());
    out.extend_from_slice(inlined.as_bytes());
    out.extend_from_slice(inlined_funcs.as_bytes());
    out.extend_from_slice(&names);
    Ok(out)
}

/// The function table of a loaded module, read in place (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct FuncTable<'a> {
    funcs: &'a [FuncRecord],
    traps: &'a [TrapRecord],
    long_traps: &'a [LongTrapRecord],
    handlers: &'a [HandlerRecord],
    stack_maps: &'a [StackMapRecord],
    slots: &'a [U32],
    inlined: &'a [InlinedRecord],
    inlined_funcs: &'a [U32],
    names: &'a [u8],
}

/// Splits `count` records of type `T` off the front of `bytes`.
fn take<'a, T: FromBytes + KnownLayout + Immutable + Unaligned>(
    bytes: &mut &'a [u8],
    count: U32,
    what: &str,
) -> Result<&'a [T], String> {
    let (items, rest) = <[T]>::ref_from_prefix_with_elems(bytes, count.get() as usize)
        .map_err(|_| format!("corrupt function table: {what} past its end"))?;
    *bytes = rest;
    Ok(items)
}

impl<'a> FuncTable<'a> {
    /// A table of no functions.
    pub const EMPTY: FuncTable<'static> = FuncTable {
        funcs: &[],
        traps: &[],
        long_traps: &[],
        handlers: &[],
        stack_maps: &[],
        slots: &[],
        inlined: &[],
        inlined_funcs: &[],
        names: &[],
    };

    /// Checks the layout of `bytes` (every area within the blob, which it fills
    /// exactly; every function's ranges within their areas) and reads it in place.
    pub fn parse(bytes: &'a [u8]) -> Result<FuncTable<'a>, String> {
        let (header, mut rest) = Header::ref_from_prefix(bytes)
            .map_err(|_| "corrupt function table: shorter than its header".to_string())?;
        let table = FuncTable {
            funcs: take(&mut rest, header.num_funcs, "function records")?,
            traps: take(&mut rest, header.num_traps, "trap sites")?,
            long_traps: take(&mut rest, header.num_long_traps, "trap sites")?,
            handlers: take(&mut rest, header.num_handlers, "exception handlers")?,
            stack_maps: take(&mut rest, header.num_stack_maps, "stack maps")?,
            slots: take(&mut rest, header.num_slots, "stack map slots")?,
            inlined: take(&mut rest, header.num_inlined, "inlined ranges")?,
            inlined_funcs: take(&mut rest, header.num_inlined_funcs, "inlined functions")?,
            names: take(&mut rest, header.names_len, "names")?,
        };
        if !rest.is_empty() {
            return Err("corrupt function table: bytes after its end".into());
        }
        // Every range is contiguous with the previous function's and ends in its
        // area, so that each function's ranges can be sliced without checks.
        let mut ends = [0u32; 5];
        for (i, f) in table.funcs.iter().enumerate() {
            let next = [
                f.traps_end.get(),
                f.long_traps_end.get(),
                f.handlers_end.get(),
                f.stack_maps_end.get(),
                f.inlined_end.get(),
            ];
            let ordered = ends.iter().zip(&next).all(|(a, b)| a <= b);
            let within = next[0] as usize <= table.traps.len()
                && next[1] as usize <= table.long_traps.len()
                && next[2] as usize <= table.handlers.len()
                && next[3] as usize <= table.stack_maps.len()
                && next[4] as usize <= table.inlined.len();
            let name_ok = f.name_start.get() == NO_NAME
                || (f.name_start.get() as usize)
                    .checked_add(f.name_len.get() as usize)
                    .is_some_and(|end| end <= table.names.len());
            if !(ordered && within && name_ok) {
                return Err(format!("corrupt function table: record of function {i}"));
            }
            ends = next;
        }
        let mut slots_end = 0;
        for map in table.stack_maps {
            let end = map.slots_end.get();
            if end < slots_end || end as usize > table.slots.len() {
                return Err("corrupt function table: stack map slots".into());
            }
            slots_end = end;
        }
        let mut funcs_end = 0;
        for range in table.inlined {
            let end = range.funcs_end.get();
            if end < funcs_end || end as usize > table.inlined_funcs.len() {
                return Err("corrupt function table: inlined functions".into());
            }
            funcs_end = end;
        }
        Ok(table)
    }

    /// Number of defined functions.
    pub fn len(&self) -> usize {
        self.funcs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.funcs.is_empty()
    }

    /// Length of defined function `func`'s machine code.
    pub fn code_len(&self, func: u32) -> Option<u32> {
        Some(self.funcs.get(func as usize)?.code_len.get())
    }

    /// The name of defined function `func` from the name section, if it has one
    /// (and it is valid UTF-8).
    pub fn name(&self, func: u32) -> Option<&'a str> {
        let f = self.funcs.get(func as usize)?;
        let start = f.name_start.get() as usize;
        let bytes = self.names.get(start..start + f.name_len.get() as usize)?;
        std::str::from_utf8(bytes).ok()
    }

    /// The previous function's record (for the start of `func`'s ranges) and its own.
    fn records(&self, func: u32) -> Option<(Option<&'a FuncRecord>, &'a FuncRecord)> {
        let f = self.funcs.get(func as usize)?;
        let prev = (func as usize).checked_sub(1).map(|i| &self.funcs[i]);
        Some((prev, f))
    }

    /// `func`'s trap sites: short records, or long ones for a long function.
    fn traps_of(&self, func: u32) -> (&'a [TrapRecord], &'a [LongTrapRecord]) {
        let Some((prev, f)) = self.records(func) else {
            return (&[], &[]);
        };
        if f.code_len.get() <= SHORT_FUNCTION {
            let start = prev.map_or(0, |p| p.traps_end.get());
            let sites = self.traps.get(start as usize..f.traps_end.get() as usize);
            (sites.unwrap_or(&[]), &[])
        } else {
            let start = prev.map_or(0, |p| p.long_traps_end.get());
            let sites = self
                .long_traps
                .get(start as usize..f.long_traps_end.get() as usize);
            (&[], sites.unwrap_or(&[]))
        }
    }

    fn handlers_of(&self, func: u32) -> &'a [HandlerRecord] {
        self.records(func)
            .and_then(|(prev, f)| {
                let start = prev.map_or(0, |p| p.handlers_end.get());
                self.handlers
                    .get(start as usize..f.handlers_end.get() as usize)
            })
            .unwrap_or(&[])
    }

    /// `func`'s stack maps and the index of the first one in the table.
    fn stack_maps_of(&self, func: u32) -> (usize, &'a [StackMapRecord]) {
        self.records(func)
            .and_then(|(prev, f)| {
                let start = prev.map_or(0, |p| p.stack_maps_end.get()) as usize;
                let maps = self
                    .stack_maps
                    .get(start..f.stack_maps_end.get() as usize)?;
                Some((start, maps))
            })
            .unwrap_or((0, &[]))
    }

    /// `func`'s inlined ranges and the index of the first one in the table.
    fn inlined_of(&self, func: u32) -> (usize, &'a [InlinedRecord]) {
        self.records(func)
            .and_then(|(prev, f)| {
                let start = prev.map_or(0, |p| p.inlined_end.get()) as usize;
                let ranges = self.inlined.get(start..f.inlined_end.get() as usize)?;
                Some((start, ranges))
            })
            .unwrap_or((0, &[]))
    }

    /// The functions whose inlined code is at `offset` in defined function `func`,
    /// innermost first (empty where the code is `func`'s own). Ranges are sorted and
    /// disjoint; an unsorted (corrupt) table makes the lookup miss.
    pub fn inlined_at(&self, func: u32, offset: u32) -> impl Iterator<Item = u32> + 'a {
        let (first, ranges) = self.inlined_of(func);
        let i = ranges.partition_point(|r| r.start.get() <= offset);
        let chain = i
            .checked_sub(1)
            .filter(|&i| offset < ranges[i].end.get())
            .map_or(&[][..], |i| self.chain(first + i));
        chain.iter().map(|f| f.get())
    }

    /// The chain of functions of the `index`th inlined range of the table.
    fn chain(&self, index: usize) -> &'a [U32] {
        let start = match index {
            0 => 0,
            j => self.inlined[j - 1].funcs_end.get(),
        };
        let end = self.inlined[index].funcs_end.get();
        self.inlined_funcs
            .get(start as usize..end as usize)
            .unwrap_or(&[])
    }

    /// The trap of the instruction at `offset` in defined function `func`, if it is
    /// a trap site.
    pub fn trap_at(&self, func: u32, offset: u32) -> Option<Trap> {
        let code = match self.traps_of(func) {
            (short, []) => {
                let offset = u16::try_from(offset).ok()?;
                let i = short
                    .binary_search_by_key(&offset, |t| t.offset.get())
                    .ok()?;
                short[i].trap
            }
            (_, long) => {
                let i = long
                    .binary_search_by_key(&offset, |t| t.offset.get())
                    .ok()?;
                long[i].trap
            }
        };
        Trap::from_u8(code)
    }

    /// The exception handler of the call whose return address is at `ret` in
    /// defined function `func`. Only handlers inside the function are returned.
    pub fn handler_at(&self, func: u32, ret: u32) -> Option<HandlerSite> {
        let handlers = self.handlers_of(func);
        let i = handlers.binary_search_by_key(&ret, |h| h.ret.get()).ok()?;
        let h = &handlers[i];
        let code_len = self.code_len(func)?;
        let site = HandlerSite {
            ret: h.ret.get(),
            handler: h.handler.get(),
            frame_offset: h.frame_offset.get(),
        };
        (site.ret <= code_len && site.handler < code_len).then_some(site)
    }

    /// The stack slots (byte offsets from the stack pointer at the call) holding
    /// live references across the call whose return address is at `ret` in defined
    /// function `func`; `None` when the call has no stack map.
    pub fn stack_map_at(&self, func: u32, ret: u32) -> Option<impl Iterator<Item = u32> + 'a> {
        let (first, maps) = self.stack_maps_of(func);
        let i = maps.binary_search_by_key(&ret, |m| m.ret.get()).ok()?;
        let start = match first + i {
            0 => 0,
            j => self.stack_maps[j - 1].slots_end.get(),
        };
        let slots = self
            .slots
            .get(start as usize..maps[i].slots_end.get() as usize)?;
        Some(slots.iter().map(|s| s.get()))
    }

    /// Everything about defined function `func`, decoded (for tools and tests; the
    /// runtime uses the lookups above).
    pub fn func_info(&self, func: u32) -> Option<FuncInfo> {
        let code_len = self.code_len(func)?;
        let (short, long) = self.traps_of(func);
        let short = short.iter().map(|t| (u32::from(t.offset.get()), t.trap));
        let long = long.iter().map(|t| (t.offset.get(), t.trap));
        let traps = short
            .chain(long)
            .filter_map(|(offset, code)| Some((offset, Trap::from_u8(code)?)))
            .collect();
        let handlers = self
            .handlers_of(func)
            .iter()
            .map(|h| HandlerSite {
                ret: h.ret.get(),
                handler: h.handler.get(),
                frame_offset: h.frame_offset.get(),
            })
            .collect();
        let stack_maps = self
            .stack_maps_of(func)
            .1
            .iter()
            .map(|m| StackMapSite {
                ret: m.ret.get(),
                slots: self
                    .stack_map_at(func, m.ret.get())
                    .map(Iterator::collect)
                    .unwrap_or_default(),
            })
            .collect();
        let (first, ranges) = self.inlined_of(func);
        let inlined = ranges
            .iter()
            .enumerate()
            .map(|(i, r)| InlinedRange {
                start: r.start.get(),
                end: r.end.get(),
                funcs: self.chain(first + i).iter().map(|f| f.get()).collect(),
            })
            .collect();
        Some(FuncInfo {
            name: self.name(func).map(str::to_string),
            code_len,
            traps,
            handlers,
            stack_maps,
            inlined,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<FuncInfo> {
        vec![
            FuncInfo {
                name: Some("first".into()),
                code_len: 100,
                traps: vec![
                    (3, Trap::UnreachableCodeReached),
                    (40, Trap::MemoryOutOfBounds),
                ],
                handlers: vec![HandlerSite {
                    ret: 20,
                    handler: 60,
                    frame_offset: 32,
                }],
                stack_maps: vec![
                    StackMapSite {
                        ret: 20,
                        slots: vec![0, 8],
                    },
                    StackMapSite {
                        ret: 30,
                        slots: vec![],
                    },
                ],
                inlined: vec![
                    InlinedRange {
                        start: 10,
                        end: 25,
                        funcs: vec![1],
                    },
                    InlinedRange {
                        start: 38,
                        end: 44,
                        funcs: vec![3, 1],
                    },
                ],
            },
            FuncInfo {
                name: None,
                code_len: 7,
                traps: vec![],
                handlers: vec![],
                stack_maps: vec![],
                inlined: vec![],
            },
            FuncInfo {
                name: Some("long".into()),
                code_len: 200_000,
                traps: vec![
                    (70_000, Trap::IntegerDivisionByZero),
                    (199_999, Trap::StackOverflow),
                ],
                handlers: vec![],
                stack_maps: vec![],
                inlined: vec![],
            },
            FuncInfo {
                name: Some("ünïcode".into()),
                code_len: 50,
                traps: vec![(0, Trap::StackOverflow)],
                handlers: vec![],
                stack_maps: vec![StackMapSite {
                    ret: 9,
                    slots: vec![16],
                }],
                inlined: vec![InlinedRange {
                    start: 0,
                    end: 50,
                    funcs: vec![1],
                }],
            },
        ]
    }

    #[test]
    fn round_trips_and_answers_lookups_in_place() {
        let funcs = sample();
        let bytes = encode(&funcs).unwrap();
        let table = FuncTable::parse(&bytes).unwrap();
        assert_eq!(table.len(), 4);
        for (i, f) in funcs.iter().enumerate() {
            assert_eq!(table.func_info(i as u32).as_ref(), Some(f));
        }
        assert_eq!(table.func_info(4), None);
        assert_eq!(table.trap_at(0, 40), Some(Trap::MemoryOutOfBounds));
        assert_eq!(table.trap_at(0, 41), None);
        assert_eq!(table.trap_at(3, 0), Some(Trap::StackOverflow));
        assert_eq!(table.trap_at(2, 70_000), Some(Trap::IntegerDivisionByZero));
        assert_eq!(table.trap_at(2, 199_999), Some(Trap::StackOverflow));
        assert_eq!(table.trap_at(2, 0), None);
        assert_eq!(table.trap_at(1, 0), None);
        assert_eq!(table.handler_at(0, 20).map(|h| h.handler), Some(60));
        assert_eq!(table.handler_at(0, 30), None);
        let slots = |f, r| table.stack_map_at(f, r).map(Iterator::collect::<Vec<_>>);
        assert_eq!(slots(0, 20), Some(vec![0, 8]));
        assert_eq!(slots(0, 30), Some(vec![]));
        assert_eq!(slots(3, 9), Some(vec![16]));
        assert_eq!(slots(3, 20), None);
        let chain = |f, o| table.inlined_at(f, o).collect::<Vec<_>>();
        assert_eq!(chain(0, 9), Vec::<u32>::new());
        assert_eq!(chain(0, 10), vec![1]);
        assert_eq!(chain(0, 24), vec![1]);
        assert_eq!(chain(0, 25), Vec::<u32>::new());
        assert_eq!(chain(0, 40), vec![3, 1]);
        assert_eq!(chain(3, 49), vec![1]);
        assert_eq!(chain(2, 100), Vec::<u32>::new());
        assert_eq!(table.name(3), Some("ünïcode"));
        assert_eq!(table.name(2), Some("long"));
        assert_eq!(table.name(1), None);
        let empty = encode(&[]).unwrap();
        assert!(FuncTable::parse(&empty).unwrap().is_empty());
    }

    /// Every truncation and every single-byte corruption either fails to parse with
    /// a message or parses into a table whose lookups stay in bounds (they may be
    /// wrong); a handler is only ever returned inside its function.
    #[test]
    fn corrupt_tables_are_refused_or_harmless() {
        let bytes = encode(&sample()).unwrap();
        for len in 0..bytes.len() {
            let err = FuncTable::parse(&bytes[..len]).unwrap_err();
            assert!(err.starts_with("corrupt function table"), "{err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(FuncTable::parse(&longer).is_err());
        for at in 0..bytes.len() {
            for value in [0x00, 0x01, 0x7f, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[at] = value;
                let Ok(table) = FuncTable::parse(&corrupt) else {
                    continue;
                };
                for func in 0..5 {
                    let _ = table.func_info(func);
                    for offset in 0..120 {
                        let _ = table.trap_at(func, offset);
                        let _ = table.stack_map_at(func, offset).map(Iterator::count);
                        let _ = table.inlined_at(func, offset).count();
                        if let Some(h) = table.handler_at(func, offset) {
                            assert!(h.handler < table.code_len(func).unwrap());
                        }
                    }
                }
            }
        }
    }
}
