//! A valid module (wasm-smith, restricted to wasmc's features) must compile for both
//! architectures, with every optimization level and both bounds-check modes. Any
//! error or panic is a bug.
#![no_main]

#[path = "../../compiler/tests/support/smith.rs"]
mod smith;

use std::str::FromStr;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use wasmc_compiler::{CompileOptions, OptLevel, Triple, compile};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(wasm) = smith::module(&mut u) else {
        return;
    };
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
                        "valid module rejected ({triple} {opt_level:?} bounds={explicit_bounds_checks}): {e}"
                    );
                }
            }
        }
    }
});
