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

use wasmc_abi::{ConstOp, DataMode, MemoryImage, ModuleInfo};

/// Slack of zero bytes an image may contain beyond its segments' bytes: the gaps
/// between segments are stored in the executable, so sparse layouts (a segment at
/// 1 GiB) are left to the copy.
const MAX_ZERO_SLACK: u64 = 1 << 20;

/// Builds the image of the module's first defined memory, records it in
/// `info.memory_image` and empties the bytes of the segments it absorbs. `page_size`
/// is the largest OS page size of the target (the image's alignment). Returns the
/// image bytes, or `None` (and leaves `info` unchanged) when the memory does not
/// qualify.
pub(crate) fn build(info: &mut ModuleInfo, page_size: u64) -> Option<Vec<u8>> {
    let memory = info.num_imported_memories;
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
    let image_start = placed.iter().map(|&(_, s, _)| s).min()? / page_size * page_size;
    let image_end = placed
        .iter()
        .map(|&(_, _, e)| e)
        .max()?
        .next_multiple_of(page_size);
    if image_end > min_bytes {
        // Only when the memory's size is not a multiple of the image's page.
        return None;
    }
    let data_bytes: u64 = placed.iter().map(|&(_, s, e)| e - s).sum();
    let len = image_end - image_start;
    if len > data_bytes.saturating_mul(2).saturating_add(MAX_ZERO_SLACK) {
        return None;
    }

    // Later segments overwrite earlier ones, as at instantiation.
    let mut image = vec![0u8; usize::try_from(len).ok()?];
    for &(index, start, end) in &placed {
        let at = (start - image_start) as usize;
        image[at..(end - image_start) as usize].copy_from_slice(&info.data[index].bytes);
    }
    for &(index, _, _) in &placed {
        info.data[index].bytes = Vec::new();
    }
    info.memory_image = Some(MemoryImage {
        memory,
        offset: image_start,
        len,
        page_size,
    });
    Some(image)
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
            info.memory_image,
            Some(MemoryImage {
                memory: 0,
                offset: 4096,
                len: 4096,
                page_size: 4096
            })
        );
        assert_eq!(&image[904..908], b"aXYd");
        assert!(image[..904].iter().chain(&image[908..]).all(|&b| b == 0));
        assert!(info.data[0].bytes.is_empty() && info.data[1].bytes.is_empty());
        assert_eq!(info.data[2].bytes, b"passive", "passive segments stay");
    }

    #[test]
    fn memories_the_image_cannot_serve() {
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
            // Mostly gaps.
            r#"(module (memory 64) (data (i32.const 0) "ab") (data (i32.const 3000000) "cd"))"#,
            // Nothing to compose.
            r#"(module (memory 1) (data (i32.const 0) ""))"#,
        ] {
            let mut info = info(wat);
            let before = info.clone();
            assert!(build(&mut info, 4096).is_none(), "{wat}");
            assert_eq!(info, before, "{wat}");
        }
    }
}
