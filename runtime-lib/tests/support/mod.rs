//! Loading compiled code in-process, as the spec harness does: compile with
//! wasmc-compiler, link a shared object with `cc -shared`, `dlopen` it.

// Each test crate that includes this file uses only part of it.
#![allow(dead_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmc_compiler::{CompileOptions, compile};
use wasmc_runtime::abi;
use wasmc_runtime::instance::Module;

/// Compiles `wasm` and loads it from a shared object written to `dir` (removed
/// again once loaded). Panics on any failure: the callers test valid modules.
pub fn load(wasm: &[u8], opts: &CompileOptions, dir: &Path) -> Arc<Module> {
    let compiled = compile(wasm, opts).unwrap_or_else(|e| panic!("compile: {e}"));
    // Each module gets its own file names: dlopen caches by path.
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let object = dir.join(format!("m{n}.o"));
    let shared = dir.join(format!("m{n}.so"));
    std::fs::write(&object, &compiled.object).unwrap();
    let out = Command::new("cc")
        .args(["-shared", "-nostdlib", "-Wl,-z,noexecstack", "-o"])
        .arg(&shared)
        .arg(&object)
        .output()
        .expect("cc runs");
    assert!(
        out.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = CString::new(shared.as_os_str().as_bytes()).unwrap();
    // SAFETY: loading an object produced by wasmc's compiler (no initializers); it is
    // never unloaded, so the descriptor is 'static.
    let descriptor = unsafe {
        let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        assert!(!handle.is_null(), "dlopen failed");
        let sym = CString::new(abi::DESCRIPTOR_SYMBOL).unwrap();
        let addr = libc::dlsym(handle, sym.as_ptr());
        assert!(!addr.is_null(), "no descriptor symbol");
        &*(addr as *const abi::ModuleDescriptor)
    };
    let _ = std::fs::remove_file(&object);
    let _ = std::fs::remove_file(&shared);
    // SAFETY: as above.
    unsafe { Module::new(descriptor) }.expect("module loads")
}

/// Deterministic pseudo-random numbers (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}
