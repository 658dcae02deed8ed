//! The memory image: a defined memory's initial contents, composed at compile time.
//!
//! Active data segments are normally copied into fresh pages at every start (CPython:
//! 7 MB in 24171 segments, 6700 page faults). When all of a memory's active segments
//! have constant offsets and fit its minimum size, their composition is known ahead
//! of time: the object then carries it as one page-aligned image
//! (`abi::MemoryImage`), which the runtime maps copy-on-write from the executable, so
//! only the pages the program touches are ever read or copied.
//!
//! Anything else (offsets from globals, a segment out of bounds, which must fail
//! instantiation at its turn, imported or shared memories, memory64, custom page
//! sizes) keeps the per-segment copy at instantiation.

use wasmc_abi::{ConstOp, DataMode, ImageChunk, MemoryImage, ModuleInfo};

/// Slack of zero bytes an image may store beyond its segments' bytes: zero bytes
/// that share a page with data are stored, so layouts with a few bytes on each of
/// many pages are left to the copy.
const MAX_ZERO_SLACK: u64 = 1 << 20;

/// Runs of at least this many zero pages are holes, not stored: each costs the
/// runtime one more `mmap` (a few microseconds), shorter runs cost less stored.
const MIN_HOLE_PAGES: u64 = 4;

/// Builds the image of every defined memory that qualifies, records them in
/// `info.memory_images` and turns the segments they absorb into
/// `DataMode::InImage` (not stored: no bytes, no offset).
/// `page_size` is the largest OS page size of the target (the images' alignment).
/// Returns the image section (every image's chunks back to back), or `None` when
/// it is empty: no memory qualifies (`info` is left unchanged) or the qualifying
/// memories' segments hold only zeros (images without chunks).
pub(crate) fn build(info: &mut ModuleInfo, page_size: u64) -> Option<Vec<u8>> {
    let mut section = Vec::new();
    for memory in info.num_imported_memories..info.memories.len() as u32 {
        if let Some(image) = build_one(info, memory, page_size, &mut section) {
            info.memory_images.push(image);
        }
    }
    (!section.is_empty()).then_some(section)
}

/// The image of defined memory `memory`, its chunks appended to `section`.
fn build_one(
    info: &mut ModuleInfo,
    memory: u32,
    page_size: u64,
    section: &mut Vec<u8>,
) -> Option<MemoryImage> {
    let ty = info.memories.get(memory as usize)?;
    if ty.memory64 || ty.shared || ty.page_size_log2 != 16 {
        return None;
    }
    let min_bytes = ty.minimum.checked_mul(1 << 16)?;

    // Every active segment of the memory, with its constant offset.
    let mut placed = Vec::new();
    for (index, segment) in info.data.iter().enumerate() {
        let DataMode::Active {
            memory: target,
            offset,
        } = &segment.mode
        else {
            continue;
        };
        if *target != memory {
            continue;
        }
        let [ConstOp::I32Const(offset)] = offset.0[..] else {
            return None;
        };
        let start = offset as u32 as u64;
        let end = start + segment.bytes.len() as u64;
        if end > min_bytes {
            // Instantiation fails at this segment, after applying the ones before
            // it: the copy does that exactly.
            return None;
        }
        if !segment.bytes.is_empty() {
            placed.push((index, start, end));
        }
    }
    let image_end = placed
        .iter()
        .map(|&(_, _, e)| e)
        .max()?
        .next_multiple_of(page_size);
    if image_end > min_bytes {
        // Only when the memory's size is not a multiple of the image's page.
        return None;
    }

    // The pages holding data: only they can be non-zero. A sparse layout (a
    // segment at 1 GiB) must not allocate the whole span, so the composition is
    // done per run of such pages.
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut by_start: Vec<(u64, u64)> = placed.iter().map(|&(_, s, e)| (s, e)).collect();
    by_start.sort_unstable();
    for (s, e) in by_start {
        let (s, e) = (s / page_size * page_size, e.next_multiple_of(page_size));
        match runs.last_mut() {
            // Gaps too short for a hole are stored (as zero pages of one chunk).
            Some(last) if s <= last.1 + (MIN_HOLE_PAGES - 1) * page_size => last.1 = last.1.max(e),
            _ => runs.push((s, e)),
        }
    }
    let covered: u64 = runs.iter().map(|&(s, e)| e - s).sum();
    let data_bytes: u64 = placed.iter().map(|&(_, s, e)| e - s).sum();
    if covered > data_bytes.saturating_mul(2).saturating_add(MAX_ZERO_SLACK) {
        return None;
    }

    let mut chunks = Vec::new();
    for (run_start, run_end) in runs {
        // Later segments overwrite earlier ones, as at instantiation.
        let mut bytes = vec![0u8; usize::try_from(run_end - run_start).ok()?];
        for &(index, start, end) in &placed {
            if start < run_end && end > run_start {
                let at = (start - run_start) as usize;
                bytes[at..(end - run_start) as usize].copy_from_slice(&info.data[index].bytes);
            }
        }
        split_at_zero_pages(&bytes, run_start, page_size, section, &mut chunks);
    }
    info.data.absorb_into_image(memory);
    Some(MemoryImage {
        memory,
        page_size,
        chunks,
    })
}

/// Stores the pages of `bytes` (the contents at `offset` of the memory) in
/// `section` as chunks, leaving out runs of at least [`MIN_HOLE_PAGES`] zero pages.
fn split_at_zero_pages(
    bytes: &[u8],
    offset: u64,
    page_size: u64,
    section: &mut Vec<u8>,
    chunks: &mut Vec<ImageChunk>,
) {
    let page = page_size as usize;
    let is_zero: Vec<bool> = bytes
        .chunks(page)
        .map(|p| p.iter().all(|&b| b == 0))
        .collect();
    let pages = is_zero.len();
    let mut i = 0;
    while i < pages {
        // A chunk runs until a long enough run of zero pages (or the end).
        let start = i;
        let mut end = i;
        while end < pages {
            let zeros = is_zero[end..].iter().take_while(|&&z| z).count();
            if zeros as u64 >= MIN_HOLE_PAGES || end + zeros == pages {
                break;
            }
            end += zeros.max(1);
        }
        if end > start {
            chunks.push(ImageChunk {
                offset: offset + (start * page) as u64,
                len: ((end - start) * page) as u64,
                data_offset: section.len() as u64,
            });
            section.extend_from_slice(&bytes[start * page..end * page]);
        }
        i = end + is_zero[end..].iter().take_while(|&&z| z).count();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(wat: &str) -> ModuleInfo {
        let wasm = wat::parse_str(wat).unwrap();
        crate::module_env::ModuleEnv::parse(&wasm).unwrap().info
    }

    #[test]
    fn segments_compose_in_order_and_leave_the_metadata() {
        let mut info = info(
            r#"(module (memory 1) (data (i32.const 5000) "abcd") (data (i32.const 5001) "XY")
                 (data "passive"))"#,
        );
        let image = build(&mut info, 4096).expect("an image");
        assert_eq!(
            info.memory_images,
            [MemoryImage {
                memory: 0,
                page_size: 4096,
                chunks: vec![ImageChunk {
                    offset: 4096,
                    len: 4096,
                    data_offset: 0
                }],
            }]
        );
        assert_eq!(&image[904..908], b"aXYd");
        assert!(image[..904].iter().chain(&image[908..]).all(|&b| b == 0));
        assert!(
            info.data
                .iter()
                .take(2)
                .all(|d| d.mode == DataMode::InImage && d.bytes.is_empty())
        );
        assert_eq!(info.data[2].bytes, b"passive", "passive segments stay");
    }

    #[test]
    fn memories_the_image_cannot_serve() {
        let many_pages = format!(
            "(module (memory 1000) {})",
            (0..600)
                .map(|i| format!("(data (i32.const {}) \"x\")", i * 65536))
                .collect::<String>()
        );
        for wat in [
            // Out of bounds: instantiation must fail at that segment.
            r#"(module (memory 1) (data (i32.const 65535) "ab"))"#,
            // A computed offset.
            r#"(module (memory 1) (data (offset (i32.add (i32.const 1) (i32.const 2))) "ab"))"#,
            // Imported memories, shared ones, memory64, custom page sizes.
            r#"(module (import "m" "m" (memory 1)) (data (i32.const 0) "ab"))"#,
            r#"(module (memory 1 1 shared) (data (i32.const 0) "ab"))"#,
            r#"(module (memory i64 1) (data (i64.const 0) "ab"))"#,
            r#"(module (memory 65536 (pagesize 1)) (data (i32.const 0) "ab"))"#,
            // Mostly zero bytes stored: one byte on each of many pages.
            many_pages.as_str(),
            // Nothing to compose.
            r#"(module (memory 1) (data (i32.const 0) ""))"#,
        ] {
            let mut info = info(wat);
            let before = info.clone();
            assert!(build(&mut info, 4096).is_none(), "{wat}");
            assert_eq!(info, before, "{wat}");
        }
    }

    /// Runs of zero pages (gaps between segments, zero bytes inside them) are not
    /// stored; a sparse layout costs only its data pages.
    #[test]
    fn zero_pages_are_holes() {
        let mut info = info(
            r#"(module (memory 20000)
                 (data (i32.const 0) "a")
                 (data (i32.const 8192) "b")
                 (data (i32.const 40960) "c")
                 (data (i32.const 45056) "\00\00")
                 (data (i32.const 1000000000) "d"))"#,
        );
        let section = build(&mut info, 4096).expect("an image");
        let chunk = |offset, len, data_offset| ImageChunk {
            offset,
            len,
            data_offset,
        };
        // Pages 0-2 (page 1 is zero but too short a run for a hole), 10, and the
        // page at 1 GB; the zero segment at page 11 stores nothing.
        assert_eq!(
            info.memory_images[0].chunks,
            [
                chunk(0, 3 * 4096, 0),
                chunk(40960, 4096, 3 * 4096),
                chunk(1_000_000_000 / 4096 * 4096, 4096, 4 * 4096),
            ]
        );
        assert_eq!(section.len(), 5 * 4096);
        assert_eq!(
            (section[0], section[8192], section[3 * 4096]),
            (b'a', b'b', b'c')
        );
        assert_eq!(section[4 * 4096 + 1_000_000_000 % 4096], b'd');
        assert_eq!(section.iter().filter(|&&b| b != 0).count(), 4);
        assert_eq!(
            MemoryImage::section_len(&info.memory_images),
            Some(section.len() as u64)
        );
    }

    /// Segments of zeros make an image without chunks: nothing is stored (the
    /// fresh memory is zero), the segments are still only dropped.
    #[test]
    fn zero_segments_store_nothing() {
        let mut info = info(r#"(module (memory 1) (data (i32.const 100) "\00\00"))"#);
        assert_eq!(build(&mut info, 4096), None);
        assert_eq!(info.memory_images.len(), 1);
        assert!(info.memory_images[0].chunks.is_empty());
        assert_eq!(info.data[0].mode, DataMode::InImage);
        assert_eq!(MemoryImage::section_len(&info.memory_images), Some(0));
    }

    /// Every defined memory gets its image, back to back in the section.
    #[test]
    fn every_defined_memory_gets_an_image() {
        let mut info = info(
            r#"(module (import "m" "m" (memory 1)) (memory 1) (memory 2) (memory 1 1 shared)
                 (data (memory 1) (i32.const 10) "one")
                 (data (memory 2) (i32.const 70000) "two")
                 (data (memory 3) (i32.const 0) "shared")
                 (data (memory 0) (i32.const 0) "imported"))"#,
        );
        let section = build(&mut info, 4096).expect("images");
        let images = &info.memory_images;
        assert_eq!(images.len(), 2);
        assert_eq!((images[0].memory, images[1].memory), (1, 2));
        // 70000 is on page 17 of memory 2.
        assert_eq!(images[1].chunks[0].offset, 17 * 4096);
        assert_eq!(images[1].chunks[0].data_offset, 4096);
        assert_eq!(section.len(), 2 * 4096);
        assert_eq!(&section[10..13], b"one");
        assert_eq!(&section[4096 + 70000 - 17 * 4096..][..3], b"two");
        assert!(
            info.data
                .iter()
                .take(2)
                .all(|d| d.mode == DataMode::InImage && d.bytes.is_empty())
        );
        assert_eq!(info.data[2].bytes, b"shared");
        assert_eq!(info.data[3].bytes, b"imported");
    }
}
