//! The `spectest` host module every spec script may import from: print functions,
//! four immutable globals, a table (and its 64-bit twin) and a memory (and its shared twin), as the reference interpreter
//! defines them. One set is created per script, so state written through the shared
//! table or memory is seen by every module of the script, as the tests expect.

use std::collections::HashMap;

use wasmc_abi::{FuncType, GlobalType, MemoryType, TableType, ValType};
use wasmc_runtime::instance::{Extern, GlobalHandle, HostFunc, MemoryHandle, TableHandle, Val};

// The print functions print nothing: the harness's stdout carries its protocol, and
// no test checks what they print (wasmtime prints the values; nothing depends on it).
extern "C" fn print(_vmctx: *mut u8) {}
extern "C" fn print_i32(_vmctx: *mut u8, _a: i32) {}
extern "C" fn print_i64(_vmctx: *mut u8, _a: i64) {}
extern "C" fn print_f32(_vmctx: *mut u8, _a: f32) {}
extern "C" fn print_f64(_vmctx: *mut u8, _a: f64) {}
extern "C" fn print_i32_f32(_vmctx: *mut u8, _a: i32, _b: f32) {}
extern "C" fn print_f64_f64(_vmctx: *mut u8, _a: f64, _b: f64) {}

/// The exports of a fresh `spectest` module.
pub fn exports() -> Result<HashMap<String, Extern>, String> {
    use ValType::{F32, F64, I32, I64};
    let func = |params: &[ValType], code: *const u8| {
        Extern::HostFunc(HostFunc {
            ty: FuncType {
                params: params.to_vec(),
                results: Vec::new(),
            },
            code,
        })
    };
    let global = |content: ValType, value: Val| -> Result<Extern, String> {
        let ty = GlobalType {
            content,
            mutable: false,
        };
        Ok(Extern::Global(GlobalHandle::new(ty, value)?))
    };
    let mut map = HashMap::new();
    map.insert("print".into(), func(&[], print as *const u8));
    map.insert("print_i32".into(), func(&[I32], print_i32 as *const u8));
    map.insert("print_i64".into(), func(&[I64], print_i64 as *const u8));
    map.insert("print_f32".into(), func(&[F32], print_f32 as *const u8));
    map.insert("print_f64".into(), func(&[F64], print_f64 as *const u8));
    map.insert(
        "print_i32_f32".into(),
        func(&[I32, F32], print_i32_f32 as *const u8),
    );
    map.insert(
        "print_f64_f64".into(),
        func(&[F64, F64], print_f64_f64 as *const u8),
    );
    map.insert("global_i32".into(), global(I32, Val::I32(666))?);
    map.insert("global_i64".into(), global(I64, Val::I64(666))?);
    map.insert(
        "global_f32".into(),
        global(F32, Val::F32(666.6f32.to_bits()))?,
    );
    map.insert(
        "global_f64".into(),
        global(F64, Val::F64(666.6f64.to_bits()))?,
    );
    let table = TableHandle::new(
        TableType {
            element: ValType::FuncRef,
            minimum: 10,
            maximum: Some(20),
            table64: false,
        },
        Val::FuncRef(0),
    )?;
    map.insert("table".into(), Extern::Table(table));
    // WebAssembly 3.0's `spectest` also has a 64-bit table (memory64 proposal).
    let table64 = TableHandle::new(
        TableType {
            element: ValType::FuncRef,
            minimum: 10,
            maximum: Some(20),
            table64: true,
        },
        Val::FuncRef(0),
    )?;
    map.insert("table64".into(), Extern::Table(table64));
    let memory = MemoryHandle::new(MemoryType {
        minimum: 1,
        maximum: Some(2),
        memory64: false,
        shared: false,
        page_size_log2: 16,
    })?;
    map.insert("memory".into(), Extern::Memory(memory));
    // The threads proposal's `spectest` adds a shared twin of `memory`.
    let shared_memory = MemoryHandle::new(MemoryType {
        minimum: 1,
        maximum: Some(2),
        memory64: false,
        shared: true,
        page_size_log2: 16,
    })?;
    map.insert("shared_memory".into(), Extern::Memory(shared_memory));
    Ok(map)
}
