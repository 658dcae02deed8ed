//! `memory.copy` and `memory.fill` as generated code does them
//! (`compiler/src/translate/bulk_memory.rs`): constant lengths of up to 32 bytes
//! inline, other lengths checked inline and handed to the C library. Every length
//! from 0 to 33, at and around the end of memory, with overlapping ranges, is
//! compared with a model of memory: the result must be the same bytes, and a trap
//! must leave every byte unchanged (the bulk-memory rule the inline store sequences
//! must keep: check, or probe, before the first store). Run for each kind of
//! bounds check: guard pages, explicit checks, a 64-bit memory, 1-byte pages and a
//! shared memory.

use std::sync::Arc;

use wasmc_compiler::CompileOptions;
use wasmc_runtime::abi::Trap;
use wasmc_runtime::instance::{Extern, InstanceHandle, MemoryHandle, Module, Val};

mod support;

/// Lengths with a constant in the code: 0, the inline ones, and the first one
/// past them (33, which takes the library call).
const MAX_CONST_LEN: u64 = 33;

struct Setup {
    /// The memory's definition.
    memory: &'static str,
    /// Index type of the memory.
    index64: bool,
    explicit_bounds_checks: bool,
}

fn module_text(setup: &Setup) -> String {
    let idx = if setup.index64 { "i64" } else { "i32" };
    let mut wat = format!("(module {}\n", setup.memory);
    for n in 0..=MAX_CONST_LEN {
        wat.push_str(&format!(
            "(func (export \"copy_{n}\") (param $d {idx}) (param $s {idx})
               (memory.copy (local.get $d) (local.get $s) ({idx}.const {n})))
             (func (export \"fill_{n}\") (param $d {idx}) (param $v i32)
               (memory.fill (local.get $d) (local.get $v) ({idx}.const {n})))\n"
        ));
    }
    wat.push_str(&format!(
        "(func (export \"copy\") (param $d {idx}) (param $s {idx}) (param $n {idx})
           (memory.copy (local.get $d) (local.get $s) (local.get $n)))
         (func (export \"fill\") (param $d {idx}) (param $v i32) (param $n {idx})
           (memory.fill (local.get $d) (local.get $v) (local.get $n))))"
    ));
    wat
}

fn load(setup: &Setup) -> Arc<Module> {
    let wasm = wat::parse_str(module_text(setup)).expect("test module parses");
    let dir = tempfile::tempdir().unwrap();
    let opts = CompileOptions {
        explicit_bounds_checks: setup.explicit_bounds_checks,
        ..CompileOptions::default()
    };
    support::load(&wasm, &opts, dir.path())
}

fn memory_of(instance: &InstanceHandle) -> MemoryHandle {
    match instance.export("mem") {
        Some(Extern::Memory(m)) => m,
        _ => panic!("no exported memory"),
    }
}

fn contents(memory: &MemoryHandle) -> Vec<u8> {
    let mut bytes = vec![0; memory.data_size()];
    memory.read(0, &mut bytes).unwrap();
    bytes
}

/// Addresses worth trying for a range of `len` bytes in a memory of `size` bytes:
/// the start, the middle, every position where the range's end crosses the
/// memory's end, and addresses far beyond it (where a 32-bit sum would wrap).
fn addresses(size: u64, len: u64, index64: bool) -> Vec<u64> {
    let mut v = vec![0, 1, size / 2];
    for d in 0..=2 {
        v.push((size + d).saturating_sub(len + 1));
        v.push(size.saturating_sub(d));
        v.push(size + d);
    }
    v.push(u64::from(u32::MAX));
    v.push(u64::from(u32::MAX) - len / 2);
    if index64 {
        v.push(u64::MAX);
        v.push(u64::MAX - len / 2);
        v.push(1 << 32);
    }
    v.sort_unstable();
    v.dedup();
    v
}

fn arg(index64: bool, v: u64) -> Val {
    if index64 {
        Val::I64(v as i64)
    } else {
        Val::I32(v as u32 as i32)
    }
}

/// Runs `name(args)` and checks it against the model: applies `effect` to the
/// model when `in_bounds`, else expects a trap and the memory unchanged.
fn check(
    instance: &InstanceHandle,
    memory: &MemoryHandle,
    model: &mut Vec<u8>,
    name: &str,
    args: &[Val],
    in_bounds: bool,
    effect: impl FnOnce(&mut Vec<u8>),
) {
    let func = instance.export_func(name).unwrap();
    let result = instance.invoke(&func, args);
    if in_bounds {
        assert!(result.is_ok(), "{name}{args:?} trapped");
        effect(model);
    } else {
        let trap = result.expect_err("out of bounds must trap").trap;
        assert_eq!(trap, Trap::MemoryOutOfBounds, "{name}{args:?}");
    }
    assert!(
        contents(memory) == *model,
        "{name}{args:?}: memory differs from the model (in bounds: {in_bounds})"
    );
}

fn run(setup: Setup) {
    let module = load(&setup);
    let instance =
        InstanceHandle::new(module, &mut |_: &wasmc_runtime::abi::Import| None, None).unwrap();
    let memory = memory_of(&instance);
    let size = memory.data_size() as u64;
    // A pattern with no repeats nearby, so a misplaced byte shows.
    let pattern: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(131) % 251) as u8)
        .collect();
    memory.write(0, &pattern).unwrap();
    let mut model = pattern;
    let fits = |at: u64, len: u64| u128::from(at) + u128::from(len) <= u128::from(size);
    let ix = setup.index64;

    for len in 0..=MAX_CONST_LEN {
        for &dst in &addresses(size, len, ix) {
            // fill: constant and run-time length.
            let value = 0x1A2B_3C40 | (len as i32 & 0xf);
            for name in [format!("fill_{len}"), "fill".to_string()] {
                let mut args = vec![arg(ix, dst), Val::I32(value)];
                if name == "fill" {
                    args.push(arg(ix, len));
                }
                check(
                    &instance,
                    &memory,
                    &mut model,
                    &name,
                    &args,
                    fits(dst, len),
                    |m| m[dst as usize..(dst + len) as usize].fill(value as u8),
                );
            }
            // copy: sources around the destination (overlapping both ways) and
            // around the end.
            let mut sources = addresses(size, len, ix);
            for delta in [1, len / 2, len.saturating_sub(1)] {
                sources.push(dst.wrapping_add(delta));
                sources.push(dst.wrapping_sub(delta));
            }
            if !ix {
                sources.retain(|&s| s <= u64::from(u32::MAX));
            }
            for &src in &sources {
                for name in [format!("copy_{len}"), "copy".to_string()] {
                    let mut args = vec![arg(ix, dst), arg(ix, src)];
                    if name == "copy" {
                        args.push(arg(ix, len));
                    }
                    check(
                        &instance,
                        &memory,
                        &mut model,
                        &name,
                        &args,
                        fits(dst, len) && fits(src, len),
                        |m| m.copy_within(src as usize..(src + len) as usize, dst as usize),
                    );
                }
            }
        }
    }
}

#[test]
fn guard_pages() {
    run(Setup {
        memory: r#"(memory (export "mem") 1 1)"#,
        index64: false,
        explicit_bounds_checks: false,
    });
}

#[test]
fn explicit_checks() {
    run(Setup {
        memory: r#"(memory (export "mem") 1 1)"#,
        index64: false,
        explicit_bounds_checks: true,
    });
}

#[test]
fn memory64() {
    run(Setup {
        memory: r#"(memory (export "mem") i64 1 1)"#,
        index64: true,
        explicit_bounds_checks: false,
    });
}

#[test]
fn one_byte_pages() {
    // 1000 bytes: the accessible region is rounded up to an OS page, so only an
    // explicit check finds the end.
    run(Setup {
        memory: r#"(memory (export "mem") 1000 1000 (pagesize 1))"#,
        index64: false,
        explicit_bounds_checks: false,
    });
}

#[test]
fn shared_memory() {
    run(Setup {
        memory: r#"(memory (export "mem") 1 1 shared)"#,
        index64: false,
        explicit_bounds_checks: false,
    });
}
