//! Instantiation: builds a `VMContext` for a compiled module, resolves imports,
//! evaluates initializers, and calls exports.

use crate::abi::FuncType;

/// A host function that can satisfy a function import: `code` is an
/// `extern "C" fn(vmctx: *mut u8, params...) -> result` (at most one result) whose
/// parameter and result types are `ty`, with i32/i64/f32/f64 mapped to the C types
/// i32/i64/f32/f64 and references to usize.
#[derive(Debug, Clone)]
pub struct HostFunc {
    pub ty: FuncType,
    pub code: *const u8,
}

// SAFETY: host function pointers are plain code addresses.
unsafe impl Send for HostFunc {}
unsafe impl Sync for HostFunc {}
