//! What a host function (WASI, `spectest`) sees of the wasm instance that called it.
//!
//! Host functions are `extern "C" fn(vmctx: *mut u8, params...) -> result`; the first
//! argument is the calling instance's `VMContext`. `Caller::from_vmctx` turns it into
//! safe accessors.

use std::any::Any;

/// The calling instance, as seen from a host function.
pub struct Caller<'a> {
    // Shared: the instance is also borrowed by the `invoke` that entered wasm; the
    // mutable views it hands out (memory, host state) use interior mutability.
    instance: &'a crate::instance::Instance,
}

impl<'a> Caller<'a> {
    /// # Safety
    /// `vmctx` must be the context pointer a wasm function passed to a host function.
    pub unsafe fn from_vmctx(vmctx: *mut u8) -> Caller<'a> {
        // SAFETY: word 0 of every VMContext is its owning Instance (abi::layout).
        let instance = unsafe { &**(vmctx as *const *const crate::instance::Instance) };
        Caller { instance }
    }

    /// The instance's memory 0 as a byte slice of its current length (empty when the
    /// module has no memory). Guest pointers must be checked against its length.
    pub fn memory(&mut self) -> &mut [u8] {
        self.instance.memory_slice(0)
    }

    /// Host state attached at instantiation (for example the `WasiCtx`).
    pub fn host_state<T: Any>(&mut self) -> Option<&mut T> {
        self.instance.host_state_mut()?.downcast_mut::<T>()
    }
}
