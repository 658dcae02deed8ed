//! Large and deeply nested (valid) modules compile without exhausting the stack or
//! taking time or memory quadratic in their size.

use wasmc_compiler::{CompileOptions, compile, read_input};

fn compiles(wat: &str) {
    let wasm = read_input(wat.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    // Compile on a thread with a small (256 KiB) stack: the compiler's own
    // recursion must not depend on the nesting depth of the input.
    let handle = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || compile(&wasm, &CompileOptions::default()).map(|_| ()))
        .unwrap();
    handle
        .join()
        .expect("no panic")
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn ten_thousand_nested_blocks_loops_and_ifs() {
    let d = 10_000;
    compiles(&format!(
        "(module (func (export \"f\") (param i32) (result i32) {} (local.get 0) {} {} {}))",
        "(block (result i32) (loop (result i32) ".repeat(d),
        "))".repeat(d),
        "(if (local.get 0) (then ".repeat(d),
        "))".repeat(d),
    ));
}

#[test]
fn ten_thousand_nested_operands() {
    let d = 10_000;
    compiles(&format!(
        "(module (func (export \"f\") (param i32) (result i32) {} (local.get 0) {}))",
        "(i32.add (local.get 0) ".repeat(d),
        ")".repeat(d),
    ));
}

#[test]
fn fifty_thousand_locals() {
    let uses: String = (0..50_000)
        .step_by(7)
        .map(|i| format!("(local.set {} (local.get {i}))", i + 1))
        .collect();
    compiles(&format!(
        "(module (func (export \"f\") (param i32) (result i32) (local {}) {uses} (local.get 49999)))",
        "i32 ".repeat(49_999),
    ));
}

#[test]
fn ten_thousand_functions_calling_each_other() {
    let n = 10_000;
    let funcs: String = (0..n)
        .map(|i| {
            let call = if i > 0 {
                format!("(call {} (local.get 0))", i - 1)
            } else {
                "(local.get 0)".into()
            };
            format!("(func (param i32) (result i32) (i32.add {call} (i32.const {i})))")
        })
        .collect();
    compiles(&format!("(module {funcs} (export \"f\" (func {})))", n - 1));
}
