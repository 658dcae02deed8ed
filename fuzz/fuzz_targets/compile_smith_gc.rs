//! A valid WebAssembly GC module (wasm-smith with GC, reference types and
//! exceptions: `fuzz/smith_gc.rs`) must compile for both architectures, with every
//! optimization level and both bounds-check modes. Any error or panic is a bug.
#![no_main]

#[path = "../../compiler/tests/support/smith.rs"]
mod smith;
#[path = "../smith_gc.rs"]
mod smith_gc;

use std::str::FromStr;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use wasmc_compiler::{CompileOptions, OptLevel, Triple, compile};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(mut config) = smith::config(&mut u) else {
        return;
    };
    if smith_gc::enable_gc(&mut config, &mut u).is_err() {
        return;
    }
    let Ok(module) = wasm_smith::Module::new(config, &mut u) else {
        return;
    };
    let wasm = module.to_bytes();
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        for opt_level in [OptLevel::None, OptLevel::Speed, OptLevel::SpeedAndSize] {
            for explicit_bounds_checks in [false, true] {
                let opts = CompileOptions {
                    triple: Triple::from_str(triple).unwrap(),
                    opt_level,
                    explicit_bounds_checks,
                    ..CompileOptions::default()
                };
                if let Err(e) = compile(&wasm, &opts) {
                    panic!(
                        "valid GC module rejected ({triple} {opt_level:?} bounds={explicit_bounds_checks}): {e}"
                    );
                }
            }
        }
    }
});
