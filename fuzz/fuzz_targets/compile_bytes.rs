//! Arbitrary bytes (libFuzzer mutates a corpus of real modules well) must be either
//! compiled or rejected with a one-line error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmc_compiler::{CompileOptions, compile, read_input};

fuzz_target!(|data: &[u8]| {
    let wasm = match read_input(data) {
        Ok(wasm) => wasm,
        Err(e) => {
            assert!(!e.to_string().contains('\n'));
            return;
        }
    };
    if let Err(e) = compile(&wasm, &CompileOptions::default()) {
        assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
    }
});
