//! Running wasm on the calling thread, on a stack of its own.
//!
//! An executable used to create a thread for the wasm stack (its size is chosen by
//! `--max-wasm-stack`, the main thread's is not) and wait for it: creating and
//! joining a thread, its glibc malloc arena and the wake-up of the waiting main
//! thread cost about 0.1 ms of a hello world's 1 ms. Instead the main thread maps a
//! stack (a `PROT_NONE` guard below it, like a thread stack's), points the stack
//! pointer at it for the duration of one call, and tells the trap handler that this
//! is now the thread's stack (`traps::use_stack`: the stack limit of generated code
//! and the guard-page classification follow it). A panic is caught on the new stack
//! and resumed after switching back: unwinding never crosses the switch.
//!
//! Only on x86_64 so far; elsewhere [`run`] creates a thread as before.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::traps;

/// Bytes of `PROT_NONE` below the stack.
const GUARD: usize = 64 << 10;

/// Runs `f` with `stack_bytes` of wasm stack plus `traps::HOST_RESERVE` (like
/// `traps::run_on_wasm_stack_with`) and returns its result. On x86_64 it runs on
/// this thread; the size is checked the same way.
pub fn run<R: Send + 'static>(
    stack_bytes: u64,
    f: impl FnOnce() -> R + Send + 'static,
) -> std::io::Result<R> {
    if !cfg!(target_arch = "x86_64") {
        return traps::run_on_wasm_stack_with(stack_bytes, f);
    }
    let size = traps::check_wasm_stack(stack_bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?
        + traps::HOST_RESERVE;
    let mapping = Mapping::new(size)?;
    let (low, high) = (mapping.stack_low(), mapping.stack_high());
    let mut f = Some(f);
    let mut result = None;
    let mut body = || {
        let f = f.take().expect("called once");
        result = Some(catch_unwind(AssertUnwindSafe(f)));
    };
    let previous = traps::use_stack(low, high);
    // SAFETY: `[low, high)` is mapped read-write and unused; `body` catches every
    // panic, so nothing unwinds through the switch.
    unsafe { call_on_stack(high, &mut body) };
    traps::restore_stack(previous);
    drop(mapping);
    match result.expect("the body ran") {
        Ok(r) => Ok(r),
        Err(panic) => resume_unwind(panic),
    }
}

/// Calls `body` with the stack pointer at `top` (16-byte aligned, the high end of a
/// free stack), and returns on the original stack.
///
/// # Safety
/// `top` must be the top of mapped, writable, unused memory big enough for `body`,
/// and `body` must not unwind.
#[cfg(target_arch = "x86_64")]
unsafe fn call_on_stack(top: usize, body: &mut dyn FnMut()) {
    unsafe extern "C" fn enter(body: *mut u8) {
        // SAFETY: `body` points at the caller's live `&mut dyn FnMut()`.
        unsafe { (*(body as *mut &mut dyn FnMut()))() }
    }
    let mut body = body;
    debug_assert_eq!(top % 16, 0);
    // SAFETY: see the function contract; `switch_stack` returns on this stack.
    unsafe { switch_stack(&mut body as *mut &mut dyn FnMut() as *mut u8, top, enter) };
}

/// `f(arg)` with the stack pointer at `top`. A frame-pointer frame whose unwind
/// information (CFA = rbp + 16) stays valid while rsp is on the other stack: a
/// backtrace taken on the new stack (a panic with `RUST_BACKTRACE=1`) continues
/// into the caller's frames instead of reading past the new stack's top.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
unsafe extern "C" fn switch_stack(arg: *mut u8, top: usize, f: unsafe extern "C" fn(*mut u8)) {
    core::arch::naked_asm!(
        ".cfi_startproc",
        "push rbp",
        ".cfi_def_cfa_offset 16",
        ".cfi_offset rbp, -16",
        "mov rbp, rsp",
        ".cfi_def_cfa_register rbp",
        "mov rsp, rsi",
        "call rdx",
        "mov rsp, rbp",
        "pop rbp",
        ".cfi_def_cfa rsp, 8",
        "ret",
        ".cfi_endproc",
    )
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn call_on_stack(_top: usize, _body: &mut dyn FnMut()) {
    unreachable!("`run` creates a thread on this architecture");
}

/// The stack's mapping: [`GUARD`] bytes of `PROT_NONE`, then the stack.
struct Mapping {
    base: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(stack: usize) -> std::io::Result<Mapping> {
        let page = 4096;
        let stack = stack.next_multiple_of(page);
        let len = stack
            .checked_add(GUARD)
            .ok_or_else(|| std::io::Error::other("wasm stack size overflows"))?;
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let mapping = Mapping { base, len };
        // SAFETY: the range above the guard lies inside the mapping just made.
        let rc = unsafe {
            libc::mprotect(
                (base as usize + GUARD) as *mut libc::c_void,
                stack,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(mapping)
    }

    fn stack_low(&self) -> usize {
        self.base as usize + GUARD
    }

    fn stack_high(&self) -> usize {
        self.base as usize + self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, no longer in use.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_a_stack_of_the_requested_size_and_restores_the_thread() {
        let before = crate::traps::runtime_state();
        // SAFETY: reading this thread's own runtime state.
        let limit_before = unsafe { (*before).stack_limit };
        let stack_address = || {
            let local = 0u8;
            std::hint::black_box(&local) as *const u8 as usize
        };
        let here = stack_address();
        let (there, limit) = run(1 << 20, move || {
            let there = stack_address();
            // SAFETY: as above.
            (there, unsafe {
                (*crate::traps::runtime_state()).stack_limit
            })
        })
        .unwrap();
        // Not this thread's stack, and the limit leaves the host reserve.
        assert!(there.abs_diff(here) > (1 << 20), "{there:#x} vs {here:#x}");
        assert!(limit < there && there - limit < (1 << 20) + crate::traps::HOST_RESERVE);
        // SAFETY: as above.
        assert_eq!(unsafe { (*before).stack_limit }, limit_before);
        let panicked = std::panic::catch_unwind(|| run(1 << 20, || panic!("inside")));
        assert!(panicked.is_err());
        assert!(run(1, || ()).is_err(), "too small a stack is refused");
    }
}
