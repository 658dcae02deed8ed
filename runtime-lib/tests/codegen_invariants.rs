//! The invariants wasmc's code generation relies on for speed, checked by running
//! code that would go wrong if one of them did not hold:
//! * `global.get` of a defined immutable global with a constant initializer is a
//!   constant (mutable, imported and import-initialized globals are loaded);
//! * a table whose minimum equals its maximum has that many elements forever, so
//!   `call_indirect` compares with a constant (`table.grow` fails; an import
//!   declaring such a table accepts only tables of exactly that size);
//! * a defined numeric global that is not exported lives in its instance's
//!   `VMContext` (one access): only that instance's code can reach it, so every
//!   instance has its own, initialized and then changed by its code alone;
//! * a linear memory's base never moves, so the `VMContext` holds a copy of it that
//!   generated code reads (also for an imported memory grown by its exporter);
//! * alias regions: linear memory, globals, table elements and the memory/table
//!   descriptors are disjoint, and only calls (wasm, host, builtins) change more
//!   than one; a value loaded before a call is loaded again after it;
//! * a leaf function (it calls nothing) with a frame of at most a page has no
//!   stack-limit check: the host reserve below the limit holds its frame, so
//!   recursion that calls such leaves at every depth still ends in the
//!   stack-overflow trap, on the harness's wasm thread as on any other.
//!
//! The compiler's unit tests check that the optimisations happen (no load in the
//! IR); these check that the results stay right.

use std::sync::Arc;

use wasmc_compiler::CompileOptions;
use wasmc_runtime::abi::{self, GlobalType, TableType, Trap, ValType};
use wasmc_runtime::instance::{Extern, GlobalHandle, InstanceHandle, Module, TableHandle, Val};
use wasmc_runtime::traps::TrapInfo;

mod support;

fn load(wat: &str) -> Arc<Module> {
    let wasm = wat::parse_str(wat).expect("test module parses");
    let dir = tempfile::tempdir().unwrap();
    support::load(&wasm, &CompileOptions::default(), dir.path())
}

fn instantiate(
    module: &Arc<Module>,
    imports: &[(&str, &str, Extern)],
) -> Result<InstanceHandle, String> {
    let mut resolver = |import: &abi::Import| {
        imports
            .iter()
            .find(|(m, n, _)| *m == import.module && *n == import.name)
            .map(|(_, _, e)| e.clone())
    };
    InstanceHandle::new(module.clone(), &mut resolver, None).map_err(|e| e.to_string())
}

fn call(instance: &InstanceHandle, name: &str, args: &[Val]) -> Result<Vec<Val>, TrapInfo> {
    let func = instance
        .export_func(name)
        .unwrap_or_else(|| panic!("no export {name}"));
    instance.invoke(&func, args)
}

fn trap(instance: &InstanceHandle, name: &str, args: &[Val]) -> Trap {
    call(instance, name, args)
        .expect_err("expected a trap")
        .trap
}

fn global(value: Val, content: ValType, mutable: bool) -> Extern {
    Extern::Global(GlobalHandle::new(GlobalType { content, mutable }, value).unwrap())
}

#[test]
fn only_immutable_defined_constant_globals_are_constants() {
    let m = load(
        r#"(module
          (global $imp (import "env" "imp") i32)
          (global $imp_mut (import "env" "imp_mut") (mut i32))
          (global $c (export "gc") i32 (i32.const 42))
          (global $ext i64 (i64.mul (i64.const 6) (i64.add (i64.const 3) (i64.const 4))))
          (global $f f64 (f64.const 2.5))
          (global $v v128 (v128.const i32x4 1 2 3 4))
          (global $from_imp i32 (i32.add (global.get $imp) (i32.const 1)))
          (global $m (export "gm") (mut i32) (i32.const 1))
          (func (export "c") (result i32) (global.get $c))
          (func (export "ext") (result i64) (global.get $ext))
          (func (export "f") (result f64) (global.get $f))
          (func (export "v") (result i32) (i32x4.extract_lane 3 (global.get $v)))
          (func (export "imp") (result i32) (global.get $imp))
          (func (export "imp_mut") (result i32) (global.get $imp_mut))
          (func (export "from_imp") (result i32) (global.get $from_imp))
          (func (export "m") (result i32) (global.get $m))
          (func (export "set_m") (param i32) (global.set $m (local.get 0))))"#,
    );
    for value in [7, -8] {
        let imp_mut = global(Val::I32(100), ValType::I32, true);
        let i = instantiate(
            &m,
            &[
                ("env", "imp", global(Val::I32(value), ValType::I32, false)),
                ("env", "imp_mut", imp_mut.clone()),
            ],
        )
        .unwrap();
        assert_eq!(call(&i, "c", &[]), Ok(vec![Val::I32(42)]));
        let Some(Extern::Global(c)) = i.export("gc") else {
            panic!("no global c")
        };
        assert_eq!(c.get(), Val::I32(42));
        assert!(c.set(Val::I32(1)).is_err(), "an immutable global changed");
        assert_eq!(call(&i, "ext", &[]), Ok(vec![Val::I64(42)]));
        assert_eq!(call(&i, "f", &[]), Ok(vec![Val::F64(2.5f64.to_bits())]));
        assert_eq!(call(&i, "v", &[]), Ok(vec![Val::I32(4)]));
        // Imported and import-initialized: per instance, not per module.
        assert_eq!(call(&i, "imp", &[]), Ok(vec![Val::I32(value)]));
        assert_eq!(call(&i, "from_imp", &[]), Ok(vec![Val::I32(value + 1)]));
        // Mutable: changed by wasm and by the host.
        assert_eq!(call(&i, "m", &[]), Ok(vec![Val::I32(1)]));
        call(&i, "set_m", &[Val::I32(5)]).unwrap();
        assert_eq!(call(&i, "m", &[]), Ok(vec![Val::I32(5)]));
        let Some(Extern::Global(m_export)) = i.export("gm") else {
            panic!("no global m")
        };
        m_export.set(Val::I32(9)).unwrap();
        assert_eq!(call(&i, "m", &[]), Ok(vec![Val::I32(9)]));
        let Extern::Global(imp_mut) = imp_mut else {
            unreachable!()
        };
        assert_eq!(call(&i, "imp_mut", &[]), Ok(vec![Val::I32(100)]));
        imp_mut.set(Val::I32(101)).unwrap();
        assert_eq!(call(&i, "imp_mut", &[]), Ok(vec![Val::I32(101)]));
    }
}

const FIXED_TABLE: &str = r#"(module
  (table $t (export "t") 2 2 funcref)
  (type $r (func (result i32)))
  (func $one (result i32) (i32.const 1))
  (func $two (result i32) (i32.const 2))
  (elem (table $t) (i32.const 0) func $one $two)
  (func (export "call") (param i32) (result i32) (call_indirect $t (type $r) (local.get 0)))
  (func (export "grow") (param i32) (result i32) (table.grow $t (ref.null func) (local.get 0)))
  (func (export "size") (result i32) (table.size $t)))"#;

#[test]
fn fixed_size_tables_never_change_size() {
    let i = instantiate(&load(FIXED_TABLE), &[]).unwrap();
    assert_eq!(call(&i, "call", &[Val::I32(0)]), Ok(vec![Val::I32(1)]));
    assert_eq!(call(&i, "call", &[Val::I32(1)]), Ok(vec![Val::I32(2)]));
    assert_eq!(trap(&i, "call", &[Val::I32(2)]), Trap::OutOfBoundsElement);
    assert_eq!(trap(&i, "call", &[Val::I32(-1)]), Trap::OutOfBoundsElement);
    // Growing past the maximum fails; growing by 0 succeeds and changes nothing.
    assert_eq!(call(&i, "grow", &[Val::I32(1)]), Ok(vec![Val::I32(-1)]));
    assert_eq!(call(&i, "grow", &[Val::I32(0)]), Ok(vec![Val::I32(2)]));
    assert_eq!(call(&i, "size", &[]), Ok(vec![Val::I32(2)]));
    let Some(Extern::Table(t)) = i.export("t") else {
        panic!("no table t")
    };
    assert_eq!(
        t.grow(1, Val::FuncRef(0)),
        None,
        "the host grew a table past its maximum"
    );
    assert_eq!(trap(&i, "call", &[Val::I32(2)]), Trap::OutOfBoundsElement);
}

#[test]
fn imports_of_fixed_size_tables_accept_only_that_size() {
    let importer = load(
        r#"(module
          (import "env" "t" (table $t 3 3 funcref))
          (type $r (func (result i32)))
          (func (export "call") (param i32) (result i32) (call_indirect $t (type $r) (local.get 0))))"#,
    );
    let table = |minimum, maximum| {
        Extern::Table(
            TableHandle::new(
                TableType {
                    element: ValType::FuncRef,
                    minimum,
                    maximum,
                    table64: false,
                },
                Val::FuncRef(0),
            )
            .unwrap(),
        )
    };
    // Larger, smaller, or growable tables are refused.
    for (minimum, maximum) in [(4, Some(4)), (2, Some(3)), (3, Some(4)), (3, None)] {
        let result = instantiate(&importer, &[("env", "t", table(minimum, maximum))]);
        assert!(
            result.is_err(),
            "table {minimum}..{maximum:?} was accepted for (table 3 3)"
        );
    }
    let i = instantiate(&importer, &[("env", "t", table(3, Some(3)))]).unwrap();
    assert_eq!(trap(&i, "call", &[Val::I32(2)]), Trap::IndirectCallToNull);
    assert_eq!(trap(&i, "call", &[Val::I32(3)]), Trap::OutOfBoundsElement);
}

#[test]
fn calls_and_builtins_invalidate_loaded_values() {
    let m = load(
        r#"(module
          (memory 1 3)
          (global $g (mut i32) (i32.const 10))
          (table $t 2 funcref)
          (type $r (func (result i32)))
          (func $one (result i32) (i32.const 1))
          (func $two (result i32) (i32.const 2))
          (elem (table $t) (i32.const 0) func $one)
          (elem $e func $two)
          (func $bump (global.set $g (i32.add (global.get $g) (i32.const 1))))
          (func $poke (i32.store (i32.const 8) (i32.const 77)))
          ;; Each returns the value before and after a call that changes it.
          (func (export "global") (result i32 i32)
            (global.get $g) (call $bump) (global.get $g))
          (func (export "memory") (result i32 i32)
            (i32.store (i32.const 8) (i32.const 5))
            (i32.load (i32.const 8)) (call $poke) (i32.load (i32.const 8)))
          (func (export "fill") (result i32 i32)
            (i32.store (i32.const 16) (i32.const 5))
            (i32.load (i32.const 16))
            (memory.fill (i32.const 16) (i32.const 1) (i32.const 4))
            (i32.load (i32.const 16)))
          (func (export "grow") (result i32 i32)
            (memory.size) (drop (memory.grow (i32.const 1))) (memory.size))
          (func (export "table") (result i32 i32)
            (call_indirect $t (type $r) (i32.const 0))
            (table.init $t $e (i32.const 0) (i32.const 0) (i32.const 1))
            (call_indirect $t (type $r) (i32.const 0)))
          (func (export "table_grow") (result i32 i32)
            (drop (call_indirect $t (type $r) (i32.const 0)))
            (table.size $t)
            (drop (table.grow $t (ref.func $one) (i32.const 1)))
            (table.size $t))
          (func (export "after_grow") (result i32) (call_indirect $t (type $r) (i32.const 2)))
          (elem declare func $one))"#,
    );
    let i = instantiate(&m, &[]).unwrap();
    let pair = |a, b| Ok(vec![Val::I32(a), Val::I32(b)]);
    assert_eq!(call(&i, "global", &[]), pair(10, 11));
    assert_eq!(call(&i, "memory", &[]), pair(5, 77));
    assert_eq!(call(&i, "fill", &[]), pair(5, 0x0101_0101));
    assert_eq!(call(&i, "grow", &[]), pair(1, 2));
    assert_eq!(call(&i, "table", &[]), pair(1, 2));
    assert_eq!(call(&i, "table_grow", &[]), pair(2, 3));
    assert_eq!(call(&i, "after_grow", &[]), Ok(vec![Val::I32(1)]));
}

#[test]
fn memory_bases_stay_valid_when_memories_grow() {
    let exporter = load(
        r#"(module
          (memory (export "mem") 1 8)
          (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
          (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1))))"#,
    );
    let importer = load(
        r#"(module
          (import "a" "mem" (memory 1))
          (memory $own 1 8)
          (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
          (func (export "grow_own") (param i32) (result i32) (memory.grow $own (local.get 0)))
          (func (export "own") (param i32 i32) (result i32)
            (i32.store $own (local.get 0) (local.get 1))
            (i32.load $own (local.get 0))))"#,
    );
    let a = instantiate(&exporter, &[]).unwrap();
    let b = instantiate(&importer, &[("a", "mem", a.export("mem").unwrap())]).unwrap();
    let page = 65536;
    // Grown by its exporter after the importer was instantiated.
    assert_eq!(call(&a, "grow", &[Val::I32(3)]), Ok(vec![Val::I32(1)]));
    call(&a, "store", &[Val::I32(3 * page + 8), Val::I32(1234)]).unwrap();
    assert_eq!(
        call(&b, "load", &[Val::I32(3 * page + 8)]),
        Ok(vec![Val::I32(1234)])
    );
    assert_eq!(
        trap(&b, "load", &[Val::I32(4 * page)]),
        Trap::MemoryOutOfBounds
    );
    // Its own second memory, grown by itself.
    assert_eq!(
        trap(&b, "own", &[Val::I32(page), Val::I32(1)]),
        Trap::MemoryOutOfBounds
    );
    assert_eq!(call(&b, "grow_own", &[Val::I32(1)]), Ok(vec![Val::I32(1)]));
    assert_eq!(
        call(&b, "own", &[Val::I32(page), Val::I32(77)]),
        Ok(vec![Val::I32(77)])
    );
    // The memories are distinct.
    assert_eq!(call(&b, "load", &[Val::I32(page)]), Ok(vec![Val::I32(0)]));
}

#[test]
fn private_globals_live_in_each_instance() {
    let module = load(
        r#"(module
            (global $count (mut i64) (i64.const 40))
            (global $seen (mut f32) (f32.const 0.5))
            (global $shared (export "shared") (mut i32) (i32.const 0))
            (global $base i32 (i32.const 9))
            (global $from_base (mut i32) (global.get $base))
            (func $start
              (global.set $count (i64.add (global.get $count) (i64.const 1)))
              (global.set $from_base (i32.add (global.get $from_base) (i32.const 1))))
            (start $start)
            (func (export "bump") (result i64)
              (global.set $count (i64.add (global.get $count) (i64.const 1)))
              (global.set $seen (f32.add (global.get $seen) (f32.const 1)))
              (global.set $shared (i32.add (global.get $shared) (i32.const 1)))
              (global.get $count))
            (func (export "seen") (result f32) (global.get $seen))
            (func (export "from_base") (result i32) (global.get $from_base)))"#,
    );
    let a = instantiate(&module, &[]).unwrap();
    let b = instantiate(&module, &[]).unwrap();
    // The start function ran once per instance on its own copy.
    assert_eq!(call(&a, "bump", &[]).unwrap(), [Val::I64(42)]);
    assert_eq!(call(&a, "bump", &[]).unwrap(), [Val::I64(43)]);
    assert_eq!(call(&b, "bump", &[]).unwrap(), [Val::I64(42)]);
    assert_eq!(call(&a, "seen", &[]).unwrap(), [Val::F32(2.5f32.to_bits())]);
    assert_eq!(call(&b, "seen", &[]).unwrap(), [Val::F32(1.5f32.to_bits())]);
    assert_eq!(call(&a, "from_base", &[]).unwrap(), [Val::I32(10)]);
    // The exported one is the object the host sees.
    let Some(Extern::Global(shared)) = a.export("shared") else {
        panic!("no exported global");
    };
    assert_eq!(shared.get(), Val::I32(2));
    shared.set(Val::I32(100)).unwrap();
    call(&a, "bump", &[]).unwrap();
    assert_eq!(shared.get(), Val::I32(101));
}

#[test]
fn leaves_without_stack_check_fit_below_the_limit() {
    // $leaf keeps 40 values live (spill slots: a frame of a few hundred bytes, so
    // the compiler leaves its check out); $recurse calls it at every depth, so
    // when $recurse's own check finally fails, the leaf has just run with its
    // frame below the limit.
    let loads: String = (0..40)
        .map(|i| format!("(i64.load offset={} (local.get 0))\n", i * 8))
        .collect();
    let adds = "(i64.add)\n".repeat(39);
    let module = load(&format!(
        r#"(module
            (memory 1)
            (func $leaf (param i32) (result i64) {loads}{adds})
            (func $recurse (export "recurse") (param i32) (result i64)
              (i64.add
                (call $leaf (i32.and (local.get 0) (i32.const 1023)))
                (call $recurse (i32.add (local.get 0) (i32.const 1)))))
            (func (export "leaf") (param i32) (result i64) (call $leaf (local.get 0))))"#
    ));
    let instance = instantiate(&module, &[]).unwrap();
    assert_eq!(
        trap(&instance, "recurse", &[Val::I32(0)]),
        Trap::StackOverflow
    );
    // And the instance still works afterwards.
    assert_eq!(
        call(&instance, "leaf", &[Val::I32(0)]).unwrap(),
        [Val::I64(0)]
    );
}
