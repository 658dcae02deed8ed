//! The guest's linear memory as WASI functions see it.
//!
//! Every pointer and length a guest passes is hostile: each access goes through
//! [`GuestMemory::slice`] / [`GuestMemory::slice_mut`], which check `ptr + len`
//! against the current memory size with overflow-free arithmetic (both are u32, the
//! sum is computed in u64) and answer `EFAULT` otherwise. Nothing here can read or
//! write outside the slice it was given. Records are accessed byte-wise
//! (little-endian), so unaligned pointers are harmless.

use super::types::{Errno, WasiResult};

/// A bounds-checked view of memory 0 of the calling instance.
pub struct GuestMemory<'a> {
    bytes: &'a mut [u8],
}

impl<'a> GuestMemory<'a> {
    pub fn new(bytes: &'a mut [u8]) -> GuestMemory<'a> {
        GuestMemory { bytes }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn range(&self, ptr: u32, len: u32) -> WasiResult<std::ops::Range<usize>> {
        let start = u64::from(ptr);
        let end = start + u64::from(len); // cannot overflow: both operands < 2^32
        if end > self.bytes.len() as u64 {
            return Err(Errno::FAULT);
        }
        Ok(start as usize..end as usize)
    }

    /// Fails with `EFAULT` unless `[ptr, ptr + len)` lies inside memory. Used to
    /// validate result pointers before an operation has side effects.
    pub fn check(&self, ptr: u32, len: u32) -> WasiResult<()> {
        self.range(ptr, len).map(|_| ())
    }

    pub fn slice(&self, ptr: u32, len: u32) -> WasiResult<&[u8]> {
        let r = self.range(ptr, len)?;
        Ok(&self.bytes[r])
    }

    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> WasiResult<&mut [u8]> {
        let r = self.range(ptr, len)?;
        Ok(&mut self.bytes[r])
    }

    pub fn write_bytes(&mut self, ptr: u32, data: &[u8]) -> WasiResult<()> {
        let len = u32::try_from(data.len()).map_err(|_| Errno::FAULT)?;
        self.slice_mut(ptr, len)?.copy_from_slice(data);
        Ok(())
    }

    pub fn read_u16(&self, ptr: u32) -> WasiResult<u16> {
        let b = self.slice(ptr, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn read_u32(&self, ptr: u32) -> WasiResult<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.slice(ptr, 4)?);
        Ok(u32::from_le_bytes(a))
    }

    pub fn read_u64(&self, ptr: u32) -> WasiResult<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.slice(ptr, 8)?);
        Ok(u64::from_le_bytes(a))
    }

    pub fn write_u8(&mut self, ptr: u32, v: u8) -> WasiResult<()> {
        self.write_bytes(ptr, &[v])
    }

    pub fn write_u16(&mut self, ptr: u32, v: u16) -> WasiResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    pub fn write_u32(&mut self, ptr: u32, v: u32) -> WasiResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    pub fn write_u64(&mut self, ptr: u32, v: u64) -> WasiResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// A path or other string argument: must be valid UTF-8 (`EILSEQ` otherwise, as
    /// in wasmtime).
    pub fn read_str(&self, ptr: u32, len: u32) -> WasiResult<String> {
        let bytes = self.slice(ptr, len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| Errno::ILSEQ)
    }

    /// The first iovec with a non-zero length in the `iovec`/`ciovec` array of
    /// `count` records (buf: u32, buf_len: u32) at `ptr`, checked, or an empty one.
    /// wasmtime reads (and `pread`s) into that buffer only, and so do we. The whole
    /// array must lie inside memory (`EFAULT` otherwise). It is scanned in place
    /// rather than copied: a guest may pass an array as large as its memory (half a
    /// billion records), which must not cost the host as much memory again.
    pub fn first_nonempty_iovec(&self, ptr: u32, count: u32) -> WasiResult<(u32, u32)> {
        let bytes_len = count.checked_mul(8).ok_or(Errno::FAULT)?;
        let raw = self.slice(ptr, bytes_len)?;
        let found = raw.chunks_exact(8).find_map(|c| {
            let buf = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let len = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            (len != 0).then_some((buf, len))
        });
        match found {
            Some((buf, len)) => {
                self.check(buf, len)?;
                Ok((buf, len))
            }
            None => Ok((0, 0)),
        }
    }
}
