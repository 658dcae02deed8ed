//! Runs real compiled code through the runtime API: each module is compiled with
//! wasmc-compiler, linked into a shared object with `cc -shared`, loaded with
//! `dlopen`, instantiated and called (the scheme the spec harness uses).

use std::cell::Cell;
use std::sync::Arc;

use wasmc_compiler::CompileOptions;
use wasmc_runtime::abi::{self, FuncType, GlobalType, MemoryType, TableType, Trap, ValType};
use wasmc_runtime::instance::{
    Extern, GlobalHandle, HostFunc, InstanceHandle, InstantiationError, MemoryHandle, Module,
    TableHandle, Val,
};
use wasmc_runtime::traps::TrapInfo;

mod support;

fn load_with(wat: &str, opts: &CompileOptions) -> Arc<Module> {
    let wasm = wat::parse_str(wat).expect("test module parses");
    let dir = tempfile::tempdir().unwrap();
    support::load(&wasm, opts, dir.path())
}

fn load(wat: &str) -> Arc<Module> {
    load_with(wat, &CompileOptions::default())
}

fn instantiate(
    module: &Arc<Module>,
    imports: &[(&str, &str, Extern)],
) -> Result<InstanceHandle, InstantiationError> {
    let mut resolver = |import: &abi::Import| {
        imports
            .iter()
            .find(|(m, n, _)| *m == import.module && *n == import.name)
            .map(|(_, _, e)| e.clone())
    };
    InstanceHandle::new(module.clone(), &mut resolver, None)
}

fn call(instance: &InstanceHandle, name: &str, args: &[Val]) -> Result<Vec<Val>, TrapInfo> {
    let func = instance
        .export_func(name)
        .unwrap_or_else(|| panic!("no export {name}"));
    instance.invoke(&func, args)
}

fn trap_of(instance: &InstanceHandle, name: &str, args: &[Val]) -> TrapInfo {
    call(instance, name, args).expect_err("expected a trap")
}

#[test]
fn calls_with_every_value_type_and_multi_value() {
    let m = load(
        r#"(module
          (func (export "add") (param i32 i32) (result i32)
            (i32.add (local.get 0) (local.get 1)))
          (func (export "mix") (param i64 f32 f64) (result f64 i64 f32)
            (local.get 2) (local.get 0) (local.get 1))
          (func (export "v") (param v128) (result v128) (local.get 0))
          (func (export "none")))"#,
    );
    let i = instantiate(&m, &[]).unwrap();
    assert_eq!(
        call(&i, "add", &[Val::I32(-3), Val::I32(5)]),
        Ok(vec![Val::I32(2)])
    );
    assert_eq!(
        call(
            &i,
            "mix",
            &[Val::I64(-1), Val::F32(0x7fc0_0001), Val::F64(7)]
        ),
        Ok(vec![Val::F64(7), Val::I64(-1), Val::F32(0x7fc0_0001)])
    );
    let v = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
    assert_eq!(call(&i, "v", &[Val::V128(v)]), Ok(vec![Val::V128(v)]));
    assert_eq!(call(&i, "none", &[]), Ok(vec![]));
    // Argument type checks.
    assert!(call(&i, "add", &[Val::I32(1)]).is_err());
    assert!(call(&i, "add", &[Val::I32(1), Val::I64(1)]).is_err());
}

const TRAPS: &str = r#"(module $traps
  (type $v (func))
  (type $i (func (result i32)))
  (memory 1)
  (table $t 2 funcref)
  (elem (i32.const 1) $ret1)
  (data $d "abc")
  (func $ret1 (result i32) (i32.const 1))
  (func $do_unreachable (export "unreachable") unreachable)
  (func $recurse (export "recurse") (param i32) (result i32)
    (i32.add (call $recurse (local.get 0)) (i32.const 1)))
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "load_offset") (param i32) (result i32)
    (i32.load offset=0xfffffff0 (local.get 0)))
  (func (export "store8") (param i32) (i32.store8 (local.get 0) (i32.const 1)))
  (func (export "fill") (param i32 i32) (memory.fill (local.get 0) (i32.const 7) (local.get 1)))
  (func (export "copy") (param i32 i32 i32)
    (memory.copy (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init") (param i32 i32 i32)
    (memory.init $d (local.get 0) (local.get 1) (local.get 2)))
  (func (export "drop") (data.drop $d))
  (func (export "table_get") (param i32) (result funcref) (table.get $t (local.get 0)))
  (func (export "table_fill") (param i32 i32) (table.fill $t (local.get 0) (ref.null func) (local.get 1)))
  (func (export "call") (param i32) (result i32) (call_indirect (type $i) (local.get 0)))
  (func (export "call_v") (param i32) (call_indirect (type $v) (local.get 0)))
  (func (export "div_s") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "div_u") (param i64 i64) (result i64) (i64.div_u (local.get 0) (local.get 1)))
  (func (export "rem_s") (param i32 i32) (result i32) (i32.rem_s (local.get 0) (local.get 1)))
  (func (export "trunc") (param f32) (result i32) (i32.trunc_f32_s (local.get 0)))
  (func (export "trunc_u") (param f64) (result i64) (i64.trunc_f64_u (local.get 0)))
  (func $outer (export "nested") (call $middle))
  (func $middle (call $do_unreachable))
)"#;

#[test]
fn every_reachable_trap_kind() {
    for opts in [
        CompileOptions::default(),
        CompileOptions {
            explicit_bounds_checks: true,
            ..CompileOptions::default()
        },
    ] {
        let m = load_with(TRAPS, &opts);
        let i = instantiate(&m, &[]).unwrap();
        let t = |name: &str, args: &[Val]| trap_of(&i, name, args).trap;

        assert_eq!(t("unreachable", &[]), Trap::UnreachableCodeReached);
        assert_eq!(t("recurse", &[Val::I32(0)]), Trap::StackOverflow);
        assert_eq!(call(&i, "load", &[Val::I32(65532)]), Ok(vec![Val::I32(0)]));
        assert_eq!(t("load", &[Val::I32(65533)]), Trap::MemoryOutOfBounds);
        assert_eq!(t("load", &[Val::I32(-1)]), Trap::MemoryOutOfBounds);
        assert_eq!(t("load_offset", &[Val::I32(-1)]), Trap::MemoryOutOfBounds);
        assert_eq!(t("store8", &[Val::I32(65536)]), Trap::MemoryOutOfBounds);
        assert_eq!(
            t("fill", &[Val::I32(65000), Val::I32(537)]),
            Trap::MemoryOutOfBounds
        );
        assert_eq!(
            t("copy", &[Val::I32(0), Val::I32(65530), Val::I32(7)]),
            Trap::MemoryOutOfBounds
        );
        assert_eq!(
            t("init", &[Val::I32(0), Val::I32(1), Val::I32(3)]),
            Trap::MemoryOutOfBounds
        );
        assert_eq!(t("table_get", &[Val::I32(2)]), Trap::TableOutOfBounds);
        assert_eq!(
            t("table_fill", &[Val::I32(1), Val::I32(2)]),
            Trap::TableOutOfBounds
        );
        assert_eq!(t("call", &[Val::I32(0)]), Trap::IndirectCallToNull);
        assert_eq!(t("call", &[Val::I32(2)]), Trap::OutOfBoundsElement);
        assert_eq!(t("call_v", &[Val::I32(1)]), Trap::BadSignature);
        assert_eq!(call(&i, "call", &[Val::I32(1)]), Ok(vec![Val::I32(1)]));
        assert_eq!(
            t("div_s", &[Val::I32(i32::MIN), Val::I32(-1)]),
            Trap::IntegerOverflow
        );
        assert_eq!(
            t("div_s", &[Val::I32(1), Val::I32(0)]),
            Trap::IntegerDivisionByZero
        );
        assert_eq!(
            t("div_u", &[Val::I64(1), Val::I64(0)]),
            Trap::IntegerDivisionByZero
        );
        assert_eq!(
            t("rem_s", &[Val::I32(1), Val::I32(0)]),
            Trap::IntegerDivisionByZero
        );
        assert_eq!(
            call(&i, "rem_s", &[Val::I32(i32::MIN), Val::I32(-1)]),
            Ok(vec![Val::I32(0)])
        );
        assert_eq!(
            t("trunc", &[Val::F32(f32::NAN.to_bits())]),
            Trap::BadConversionToInteger
        );
        assert_eq!(
            t("trunc", &[Val::F32(3e9f32.to_bits())]),
            Trap::IntegerOverflow
        );
        assert_eq!(
            t("trunc_u", &[Val::F64((-1.0f64).to_bits())]),
            Trap::IntegerOverflow
        );

        // The instance still works after all those traps, and memory was untouched
        // by the failed bulk operations.
        assert_eq!(call(&i, "load", &[Val::I32(65000)]), Ok(vec![Val::I32(0)]));
        call(&i, "init", &[Val::I32(10), Val::I32(0), Val::I32(3)]).unwrap();
        assert_eq!(
            call(&i, "load", &[Val::I32(10)]),
            Ok(vec![Val::I32(0x0063_6261)])
        );
        // A dropped data segment behaves as empty: length 0 still works.
        call(&i, "drop", &[]).unwrap();
        call(&i, "init", &[Val::I32(0), Val::I32(0), Val::I32(0)]).unwrap();
        assert_eq!(
            t("init", &[Val::I32(0), Val::I32(0), Val::I32(1)]),
            Trap::MemoryOutOfBounds
        );
    }
}

#[test]
fn trap_backtrace_names_wasm_functions() {
    let m = load(TRAPS);
    let i = instantiate(&m, &[]).unwrap();
    let trap = trap_of(&i, "nested", &[]);
    assert_eq!(trap.trap, Trap::UnreachableCodeReached);
    assert_eq!(
        trap.backtrace,
        ["traps!do_unreachable", "traps!middle", "traps!outer"],
        "{}",
        trap.report()
    );
    assert!(trap.pc != 0);
    assert!(
        trap.report()
            .starts_with("wasm trap: unreachable\nwasm backtrace:\n    0: traps!do_unreachable\n")
    );
    let overflow = trap_of(&i, "recurse", &[Val::I32(0)]);
    assert!(!overflow.backtrace.is_empty());
    assert!(overflow.backtrace.iter().all(|f| f == "traps!recurse"));
}

#[test]
fn memory_grow_and_size() {
    let m = load(
        r#"(module
          (memory (export "mem") 1 3)
          (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
          (func (export "size") (result i32) (memory.size))
          (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1))))"#,
    );
    let i = instantiate(&m, &[]).unwrap();
    let Some(Extern::Memory(mem)) = i.export("mem") else {
        panic!("no memory export")
    };
    assert_eq!(call(&i, "size", &[]), Ok(vec![Val::I32(1)]));
    assert_eq!(call(&i, "grow", &[Val::I32(1)]), Ok(vec![Val::I32(1)]));
    assert_eq!(call(&i, "grow", &[Val::I32(2)]), Ok(vec![Val::I32(-1)]));
    assert_eq!(call(&i, "grow", &[Val::I32(1)]), Ok(vec![Val::I32(2)]));
    assert_eq!(call(&i, "grow", &[Val::I32(0)]), Ok(vec![Val::I32(3)]));
    assert_eq!(call(&i, "size", &[]), Ok(vec![Val::I32(3)]));
    assert_eq!(mem.size(), 3);
    call(
        &i,
        "store",
        &[Val::I32(3 * 65536 - 4), Val::I32(0x1234_5678)],
    )
    .unwrap();
    let mut buf = [0u8; 4];
    mem.read(3 * 65536 - 4, &mut buf).unwrap();
    assert_eq!(u32::from_le_bytes(buf), 0x1234_5678);
    assert_eq!(
        trap_of(&i, "store", &[Val::I32(3 * 65536 - 3), Val::I32(0)]).trap,
        Trap::MemoryOutOfBounds
    );
    // Host-side growth is visible to wasm too (base never moves).
    let m2 = load(
        r#"(module
          (memory (export "mem") 0)
          (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
          (func (export "load") (param i32) (result i32) (i32.load (local.get 0))))"#,
    );
    let i2 = instantiate(&m2, &[]).unwrap();
    assert_eq!(
        trap_of(&i2, "load", &[Val::I32(0)]).trap,
        Trap::MemoryOutOfBounds
    );
    let Some(Extern::Memory(mem2)) = i2.export("mem") else {
        panic!()
    };
    assert_eq!(mem2.grow(1), Some(0));
    mem2.write(4, &[9, 0, 0, 0]).unwrap();
    assert_eq!(call(&i2, "load", &[Val::I32(4)]), Ok(vec![Val::I32(9)]));
    assert_eq!(
        call(&i2, "grow", &[Val::I32(65536)]),
        Ok(vec![Val::I32(-1)])
    );
}

#[test]
fn tables_grow_set_get_and_funcrefs() {
    let m = load(
        r#"(module
          (type $i (func (result i32)))
          (table $t (export "tab") 1 4 funcref)
          (func $seven (export "seven") (result i32) (i32.const 7))
          (func (export "grow") (param i32) (result i32)
            (table.grow $t (ref.func $seven) (local.get 0)))
          (func (export "size") (result i32) (table.size $t))
          (func (export "set") (param i32) (table.set $t (local.get 0) (ref.func $seven)))
          (func (export "call") (param i32) (result i32) (call_indirect $t (type $i) (local.get 0)))
          (func (export "get") (param i32) (result funcref) (table.get $t (local.get 0))))"#,
    );
    let i = instantiate(&m, &[]).unwrap();
    let Some(Extern::Table(tab)) = i.export("tab") else {
        panic!()
    };
    assert_eq!(call(&i, "size", &[]), Ok(vec![Val::I32(1)]));
    assert_eq!(tab.get(0), Some(Val::FuncRef(0)));
    assert_eq!(call(&i, "grow", &[Val::I32(2)]), Ok(vec![Val::I32(1)]));
    assert_eq!(call(&i, "grow", &[Val::I32(2)]), Ok(vec![Val::I32(-1)]));
    assert_eq!(tab.size(), 3);
    // Grown elements hold ref.func $seven, which is callable.
    assert_eq!(call(&i, "call", &[Val::I32(2)]), Ok(vec![Val::I32(7)]));
    let seven = i.export_func("seven").unwrap();
    assert_eq!(tab.get(2), Some(Val::FuncRef(seven.func_ref())));
    assert_eq!(
        call(&i, "get", &[Val::I32(1)]),
        Ok(vec![Val::FuncRef(seven.func_ref())])
    );
    assert_eq!(
        trap_of(&i, "call", &[Val::I32(0)]).trap,
        Trap::IndirectCallToNull
    );
    call(&i, "set", &[Val::I32(0)]).unwrap();
    assert_eq!(call(&i, "call", &[Val::I32(0)]), Ok(vec![Val::I32(7)]));
    assert_eq!(
        trap_of(&i, "set", &[Val::I32(3)]).trap,
        Trap::TableOutOfBounds
    );
    // Host-side growth is seen by generated code (VMTable republished).
    assert_eq!(tab.grow(1, Val::FuncRef(0)), Some(3));
    assert_eq!(call(&i, "size", &[]), Ok(vec![Val::I32(4)]));
    assert_eq!(tab.grow(1, Val::FuncRef(0)), None);
    assert_eq!(
        trap_of(&i, "call", &[Val::I32(3)]).trap,
        Trap::IndirectCallToNull
    );
}

#[test]
fn globals_from_host_and_wasm() {
    let m = load(
        r#"(module
          (global $imp (import "env" "base") i32)
          (global $g (export "g") (mut i64) (i64.const 5))
          (global $c (export "c") i32 (i32.add (global.get $imp) (i32.const 10)))
          (global $f (export "f") (mut f64) (f64.const 1.5))
          (func (export "bump") (global.set $g (i64.add (global.get $g) (i64.const 1))))
          (func (export "get_g") (result i64) (global.get $g)))"#,
    );
    let base = GlobalHandle::new(
        GlobalType {
            content: ValType::I32,
            mutable: false,
        },
        Val::I32(32),
    )
    .unwrap();
    let i = instantiate(&m, &[("env", "base", Extern::Global(base))]).unwrap();
    let Some(Extern::Global(g)) = i.export("g") else {
        panic!()
    };
    let Some(Extern::Global(c)) = i.export("c") else {
        panic!()
    };
    let Some(Extern::Global(f)) = i.export("f") else {
        panic!()
    };
    assert_eq!(c.get(), Val::I32(42));
    assert!(c.set(Val::I32(1)).is_err());
    assert_eq!(f.get(), Val::F64(1.5f64.to_bits()));
    assert_eq!(g.get(), Val::I64(5));
    call(&i, "bump", &[]).unwrap();
    assert_eq!(g.get(), Val::I64(6));
    g.set(Val::I64(100)).unwrap();
    assert!(g.set(Val::I32(1)).is_err());
    assert_eq!(call(&i, "get_g", &[]), Ok(vec![Val::I64(100)]));
}

const EXPORTER: &str = r#"(module $A
  (memory (export "mem") 1 2)
  (table (export "tab") 3 funcref)
  (global (export "gm") (mut i32) (i32.const 1))
  (global (export "gi") i32 (i32.const 2))
  (func $get (export "get") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "twice") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
  (func (export "call") (param i32) (result i32) (call_indirect (result i32) (local.get 0)))
  (func (export "read_gm") (result i32) (global.get 0))
  (elem (i32.const 0) $get))"#;

#[test]
fn imports_between_instances() {
    let a = load(EXPORTER);
    let ia = instantiate(&a, &[]).unwrap();
    let exp = |n: &str| ia.export(n).unwrap();
    let b = load(
        r#"(module $B
          (import "A" "mem" (memory 1))
          (import "A" "tab" (table 2 funcref))
          (import "A" "gm" (global $gm (mut i32)))
          (import "A" "twice" (func $twice (param i32) (result i32)))
          (func $nine (result i32) (i32.const 9))
          (elem (i32.const 1) $nine)
          (elem declare func $twice)
          (data (i32.const 100) "\2a")
          (func (export "run") (param i32) (result i32) (call $twice (local.get 0)))
          (func (export "set_gm") (param i32) (global.set $gm (local.get 0)))
          (func (export "ref_twice") (result funcref) (ref.func $twice)))"#,
    );
    let imports = [
        ("A", "mem", exp("mem")),
        ("A", "tab", exp("tab")),
        ("A", "gm", exp("gm")),
        ("A", "twice", exp("twice")),
    ];
    let ib = instantiate(&b, &imports).unwrap();
    assert_eq!(call(&ib, "run", &[Val::I32(21)]), Ok(vec![Val::I32(42)]));
    // B's data went into A's memory, B's element into A's table.
    assert_eq!(call(&ia, "get", &[Val::I32(100)]), Ok(vec![Val::I32(42)]));
    assert_eq!(call(&ia, "call", &[Val::I32(1)]), Ok(vec![Val::I32(9)]));
    // The shared global.
    call(&ib, "set_gm", &[Val::I32(77)]).unwrap();
    assert_eq!(call(&ia, "read_gm", &[]), Ok(vec![Val::I32(77)]));
    // An imported wasm function's reference is a copy of the exporter's VMFuncRef:
    // same code, context and type id.
    let twice = ia.export_func("twice").unwrap();
    let Ok(result) = call(&ib, "ref_twice", &[]) else {
        panic!()
    };
    let [Val::FuncRef(copy)] = result[..] else {
        panic!("{result:?}")
    };
    // SAFETY: both are live VMFuncRefs of instances alive here.
    let (copy, original) = unsafe {
        (
            *(copy as *const abi::VMFuncRef),
            *(twice.func_ref() as *const abi::VMFuncRef),
        )
    };
    assert_eq!(copy.wasm_call, original.wasm_call);
    assert_eq!(copy.vmctx, original.vmctx);
    assert_eq!(copy.type_id, original.type_id);
    // B outlives the handle to A: the table still calls B's function.
    drop(ib);
    assert_eq!(call(&ia, "call", &[Val::I32(1)]), Ok(vec![Val::I32(9)]));
}

#[test]
fn import_errors() {
    let a = load(EXPORTER);
    let ia = instantiate(&a, &[]).unwrap();
    let exp = |n: &str| ia.export(n).unwrap();
    let err = |wat: &str, imports: &[(&str, &str, Extern)]| match instantiate(&load(wat), imports) {
        Err(InstantiationError::Unlinkable(m)) => m,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("instantiation succeeded"),
    };
    assert_eq!(
        err(r#"(module (import "A" "nope" (func)))"#, &[]),
        "unknown import: `A`.`nope`"
    );
    let incompatible = "incompatible import type for `A`.`x`";
    for (wat, ext) in [
        (
            r#"(module (import "A" "x" (func (param i64))))"#,
            exp("twice"),
        ),
        (r#"(module (import "A" "x" (memory 1)))"#, exp("twice")),
        (r#"(module (import "A" "x" (memory 2)))"#, exp("mem")),
        (r#"(module (import "A" "x" (memory 1 1)))"#, exp("mem")),
        (r#"(module (import "A" "x" (memory 0)))"#, exp("mem")),
        (r#"(module (import "A" "x" (table 4 funcref)))"#, exp("tab")),
        (
            r#"(module (import "A" "x" (table 1 externref)))"#,
            exp("tab"),
        ),
        (
            r#"(module (import "A" "x" (table 1 5 funcref)))"#,
            exp("tab"),
        ),
        (r#"(module (import "A" "x" (global i32)))"#, exp("gm")),
        (r#"(module (import "A" "x" (global (mut i32))))"#, exp("gi")),
        (r#"(module (import "A" "x" (global i64)))"#, exp("gi")),
    ] {
        if wat.contains("(memory 0)") {
            // Not an error: a larger memory satisfies a smaller minimum.
            assert!(instantiate(&load(wat), &[("A", "x", ext)]).is_ok());
            continue;
        }
        assert_eq!(err(wat, &[("A", "x", ext)]), incompatible, "{wat}");
    }
    // Matching uses the current size: after growing, a larger minimum matches.
    let Extern::Memory(mem) = exp("mem") else {
        panic!()
    };
    mem.grow(1).unwrap();
    assert!(
        instantiate(
            &load(r#"(module (import "A" "x" (memory 2 2)))"#),
            &[("A", "x", exp("mem"))]
        )
        .is_ok()
    );
}

extern "C" fn host_add(_vmctx: *mut u8, a: i32, b: i64) -> i64 {
    a as i64 + b
}

thread_local! {
    static SEEN: Cell<f64> = const { Cell::new(0.0) };
}

extern "C" fn host_record(vmctx: *mut u8, x: f64) {
    // SAFETY: called from wasm with its context.
    let mut caller = unsafe { wasmc_runtime::caller::Caller::from_vmctx(vmctx) };
    let first = caller.memory().first().copied().unwrap_or(0);
    SEEN.set(x + first as f64);
}

extern "C" fn host_fail(_vmctx: *mut u8) -> i32 {
    wasmc_runtime::traps::raise_host_trap(Trap::HostError)
}

#[test]
fn host_functions() {
    let m = load(
        r#"(module
          (import "host" "add" (func $add (param i32 i64) (result i64)))
          (import "host" "record" (func $record (param f64)))
          (import "host" "fail" (func $fail (result i32)))
          (memory (export "mem") 1)
          (data (i32.const 0) "\05")
          (func (export "add") (param i32 i64) (result i64) (call $add (local.get 0) (local.get 1)))
          (func (export "record") (call $record (f64.const 0.5)))
          (func (export "fail") (result i32) (call $fail))
          (export "reexported" (func $add)))"#,
    );
    let ty = |params: Vec<ValType>, results: Vec<ValType>| FuncType { params, results };
    let host = |ty: FuncType, code: *const u8| Extern::HostFunc(HostFunc { ty, code });
    let imports = [
        (
            "host",
            "add",
            host(
                ty(vec![ValType::I32, ValType::I64], vec![ValType::I64]),
                host_add as *const u8,
            ),
        ),
        (
            "host",
            "record",
            host(ty(vec![ValType::F64], vec![]), host_record as *const u8),
        ),
        (
            "host",
            "fail",
            host(ty(vec![], vec![ValType::I32]), host_fail as *const u8),
        ),
    ];
    let i = instantiate(&m, &imports).unwrap();
    assert_eq!(
        call(&i, "add", &[Val::I32(-2), Val::I64(1 << 40)]),
        Ok(vec![Val::I64((1 << 40) - 2)])
    );
    assert_eq!(
        call(&i, "reexported", &[Val::I32(1), Val::I64(2)]),
        Ok(vec![Val::I64(3)])
    );
    call(&i, "record", &[]).unwrap();
    assert_eq!(SEEN.get(), 5.5);
    assert_eq!(trap_of(&i, "fail", &[]).trap, Trap::HostError);
    // A host function of the wrong type is refused.
    let mut wrong = imports.clone();
    wrong[0].2 = host(
        ty(vec![ValType::I32], vec![ValType::I64]),
        host_add as *const u8,
    );
    assert!(matches!(
        instantiate(&m, &wrong),
        Err(InstantiationError::Unlinkable(_))
    ));
}

#[test]
fn segments_apply_in_order_and_trap_after_partial_initialization() {
    let a = load(EXPORTER);
    let ia = instantiate(&a, &[]).unwrap();
    let exp = |n: &str| ia.export(n).unwrap();
    // As in linking.wast: the element segment lands in the imported table, the first
    // data segment in the imported memory, then the second data segment traps.
    let b = load(
        r#"(module
          (import "A" "mem" (memory 1))
          (import "A" "tab" (table 3 funcref))
          (func $f (result i32) (i32.const 55))
          (elem (i32.const 2) $f)
          (data (i32.const 200) "\01")
          (data (i32.const 65536) "x")
          (start $f2)
          (func $f2 unreachable))"#,
    );
    let imports = [("A", "mem", exp("mem")), ("A", "tab", exp("tab"))];
    match instantiate(&b, &imports) {
        Err(InstantiationError::Trap(t)) => assert_eq!(t.trap, Trap::MemoryOutOfBounds),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(call(&ia, "get", &[Val::I32(200)]), Ok(vec![Val::I32(1)]));
    // The failed instance's function is still callable through A's table.
    assert_eq!(call(&ia, "call", &[Val::I32(2)]), Ok(vec![Val::I32(55)]));

    // An out-of-bounds element segment traps before any data segment is applied.
    let c = load(
        r#"(module
          (import "A" "mem" (memory 1))
          (import "A" "tab" (table 3 funcref))
          (func $f (result i32) (i32.const 66))
          (elem (i32.const 0) $f)
          (elem (i32.const 3) $f)
          (data (i32.const 300) "\01"))"#,
    );
    match instantiate(&c, &imports) {
        Err(InstantiationError::Trap(t)) => assert_eq!(t.trap, Trap::TableOutOfBounds),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(call(&ia, "call", &[Val::I32(0)]), Ok(vec![Val::I32(66)]));
    assert_eq!(call(&ia, "get", &[Val::I32(300)]), Ok(vec![Val::I32(0)]));
}

#[test]
fn start_function_runs_and_its_trap_fails_instantiation() {
    let m = load(
        r#"(module
          (global $g (export "g") (mut i32) (i32.const 0))
          (func $init (global.set $g (i32.const 123)))
          (start $init))"#,
    );
    let i = instantiate(&m, &[]).unwrap();
    let Some(Extern::Global(g)) = i.export("g") else {
        panic!()
    };
    assert_eq!(g.get(), Val::I32(123));
    let m = load(r#"(module (func $init unreachable) (start $init))"#);
    match instantiate(&m, &[]) {
        Err(InstantiationError::Trap(t)) => {
            assert_eq!(t.trap, Trap::UnreachableCodeReached);
            assert_eq!(t.backtrace, ["wasm!init"]);
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn passive_segments_and_bulk_table_ops() {
    let m = load(
        r#"(module
          (type $i (func (result i32)))
          (table $t 4 funcref)
          (func $a (result i32) (i32.const 1))
          (func $b (result i32) (i32.const 2))
          (elem $p func $a $b)
          (elem declare func $a)
          (func (export "init") (param i32 i32 i32) (table.init $t $p (local.get 0) (local.get 1) (local.get 2)))
          (func (export "drop") (elem.drop $p))
          (func (export "copy") (param i32 i32 i32) (table.copy (local.get 0) (local.get 1) (local.get 2)))
          (func (export "call") (param i32) (result i32) (call_indirect (type $i) (local.get 0))))"#,
    );
    let i = instantiate(&m, &[]).unwrap();
    call(&i, "init", &[Val::I32(1), Val::I32(0), Val::I32(2)]).unwrap();
    assert_eq!(call(&i, "call", &[Val::I32(2)]), Ok(vec![Val::I32(2)]));
    assert_eq!(
        trap_of(&i, "init", &[Val::I32(3), Val::I32(0), Val::I32(2)]).trap,
        Trap::TableOutOfBounds
    );
    call(&i, "copy", &[Val::I32(0), Val::I32(1), Val::I32(3)]).unwrap();
    assert_eq!(call(&i, "call", &[Val::I32(0)]), Ok(vec![Val::I32(1)]));
    assert_eq!(call(&i, "call", &[Val::I32(1)]), Ok(vec![Val::I32(2)]));
    assert_eq!(
        trap_of(&i, "copy", &[Val::I32(2), Val::I32(0), Val::I32(3)]).trap,
        Trap::TableOutOfBounds
    );
    call(&i, "drop", &[]).unwrap();
    call(&i, "init", &[Val::I32(0), Val::I32(0), Val::I32(0)]).unwrap();
    assert_eq!(
        trap_of(&i, "init", &[Val::I32(0), Val::I32(0), Val::I32(1)]).trap,
        Trap::TableOutOfBounds
    );
}

#[test]
fn host_memory_and_table_satisfy_imports() {
    let mem = MemoryHandle::new(MemoryType {
        minimum: 1,
        maximum: Some(2),
        memory64: false,
        shared: false,
        page_size_log2: 16,
    })
    .unwrap();
    let tab = TableHandle::new(
        TableType {
            element: ValType::FuncRef,
            minimum: 10,
            maximum: Some(20),
            table64: false,
        },
        Val::FuncRef(0),
    )
    .unwrap();
    let m = load(
        r#"(module
          (import "spectest" "memory" (memory 1 2))
          (import "spectest" "table" (table 10 20 funcref))
          (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
          (func (export "size") (result i32) (table.size 0)))"#,
    );
    let i = instantiate(
        &m,
        &[
            ("spectest", "memory", Extern::Memory(mem.clone())),
            ("spectest", "table", Extern::Table(tab.clone())),
        ],
    )
    .unwrap();
    call(&i, "store", &[Val::I32(8), Val::I32(-1)]).unwrap();
    let mut buf = [0; 4];
    mem.read(8, &mut buf).unwrap();
    assert_eq!(buf, [0xff; 4]);
    assert_eq!(call(&i, "size", &[]), Ok(vec![Val::I32(10)]));
}

/// Many instantiations of one module in a thread: each gets fresh state and releases
/// its reservation (a leak would exhaust the address space after a few thousand).
/// Speed is measured by bench/bench.py, not asserted here.
#[test]
fn repeated_instantiation_gets_fresh_state() {
    let m = load(
        r#"(module
          (memory 17)
          (table 10 funcref)
          (global $g (mut i32) (i32.const 0))
          (func $f)
          (func (export "bump") (result i32)
            (global.set $g (i32.add (global.get $g) (i32.const 1)))
            (global.get $g))
          (elem (i32.const 0) $f $f)
          (data (i32.const 0) "hello"))"#,
    );
    for _ in 0..2000 {
        let i = instantiate(&m, &[]).unwrap();
        assert_eq!(call(&i, "bump", &[]), Ok(vec![Val::I32(1)]));
    }
}

#[test]
fn command_entry_exit_statuses() {
    use wasmc_runtime::entry::{TRAP_EXIT_STATUS, USAGE_EXIT_STATUS, run_command};
    let run = |wat: &str, args: &[&str]| {
        run_command(
            load(wat),
            std::ffi::OsStr::new("prog"),
            args.iter().map(Into::into).collect(),
        )
    };
    assert_eq!(run(r#"(module (func (export "_start")))"#, &[]), 0);
    assert_eq!(
        run(r#"(module (func (export "_start") unreachable))"#, &[]),
        TRAP_EXIT_STATUS
    );
    assert_eq!(
        run(r#"(module (func $s unreachable) (start $s))"#, &[]),
        TRAP_EXIT_STATUS
    );
    // A reactor: `_initialize` runs (and may trap), then the missing `_start` is an
    // error.
    assert_eq!(run(r#"(module (func (export "_initialize")))"#, &[]), 1);
    assert_eq!(
        run(r#"(module (func (export "_initialize") unreachable))"#, &[]),
        TRAP_EXIT_STATUS
    );
    assert_eq!(
        run(r#"(module (func (export "_start") (param i32)))"#, &[]),
        1
    );
    // Imports outside WASI cannot be satisfied.
    assert_eq!(
        run(
            r#"(module (import "env" "f" (func)) (func (export "_start")))"#,
            &[]
        ),
        1
    );
    // Imports that WASI provides are resolved.
    assert_eq!(
        run(
            r#"(module
              (import "wasi_snapshot_preview1" "sched_yield" (func $y (result i32)))
              (func (export "_start") (drop (call $y))))"#,
            &[]
        ),
        0
    );
    // A bad runtime option.
    assert_eq!(
        run(
            r#"(module (func (export "_start")))"#,
            &["--dir", "/nonexistent/wasmc-test-dir"]
        ),
        USAGE_EXIT_STATUS
    );
}

/// Spectre guards change how an explicitly checked address is computed, not what an
/// access does: in-bounds accesses read and write the same bytes, and out-of-bounds
/// ones trap with the same code (the check's trap, before the guarded access), for
/// every kind of checked access, with guards on and off, with and without explicit
/// memory checks. A guarded access that ran architecturally at address 0 would
/// instead be reported as a wasmc bug and kill the test process.
#[test]
fn spectre_guards_keep_results_and_trap_codes() {
    const WAT: &str = r#"(module
      (type $i (func (result i32)))
      (memory $m 1)
      (memory $m64 i64 1)
      (table $t 3 funcref)
      (table $t64 i64 2 funcref)
      (elem (table $t) (i32.const 1) func $seven $eight)
      (elem (table $t64) (i64.const 0) func $eight)
      (func $seven (result i32) (i32.const 7))
      (func $eight (result i32) (i32.const 8))
      (func (export "store") (param i32 i32) (i32.store offset=4 (local.get 0) (local.get 1)))
      (func (export "load") (param i32) (result i32) (i32.load offset=4 (local.get 0)))
      (func (export "load_far") (param i32) (result i32)
        (i32.load offset=0x80000000 (local.get 0)))
      (func (export "v128_load") (param i32) (result i64)
        (i64x2.extract_lane 1 (v128.load (local.get 0))))
      (func (export "store64") (param i64 i64) (i64.store $m64 (local.get 0) (local.get 1)))
      (func (export "load64") (param i64) (result i64) (i64.load $m64 offset=8 (local.get 0)))
      (func (export "grow64") (result i64) (memory.grow $m64 (i64.const 1)))
      (func (export "call") (param i32) (result i32) (call_indirect $t (type $i) (local.get 0)))
      (func (export "tail") (param i32) (result i32)
        (return_call_indirect $t (type $i) (local.get 0)))
      (func (export "call64") (param i64) (result i32)
        (call_indirect $t64 (type $i) (local.get 0)))
      (func (export "copy_entry") (param i32 i32)
        (table.set $t (local.get 1) (table.get $t (local.get 0)))))"#;
    for explicit_bounds_checks in [false, true] {
        for spectre_guards in [true, false] {
            let opts = CompileOptions {
                explicit_bounds_checks,
                spectre_guards,
                ..CompileOptions::default()
            };
            let what = format!("explicit={explicit_bounds_checks} guards={spectre_guards}");
            let m = load_with(WAT, &opts);
            let i = instantiate(&m, &[]).unwrap();
            let ok = |name: &str, args: &[Val], want: &[Val]| {
                assert_eq!(call(&i, name, args), Ok(want.to_vec()), "{name} {what}");
            };
            let t = |name: &str, args: &[Val], trap: Trap| {
                assert_eq!(trap_of(&i, name, args).trap, trap, "{name} {args:?} {what}");
            };

            // 32-bit memory: the last valid address and the first invalid ones.
            ok("store", &[Val::I32(65528), Val::I32(0x1234_5678)], &[]);
            ok("load", &[Val::I32(65528)], &[Val::I32(0x1234_5678)]);
            ok(
                "v128_load",
                &[Val::I32(65520)],
                &[Val::I64(0x1234_5678 << 32)],
            );
            t("load", &[Val::I32(65529)], Trap::MemoryOutOfBounds);
            t("load", &[Val::I32(-1)], Trap::MemoryOutOfBounds);
            t(
                "store",
                &[Val::I32(65529), Val::I32(1)],
                Trap::MemoryOutOfBounds,
            );
            t("v128_load", &[Val::I32(65521)], Trap::MemoryOutOfBounds);
            t("load_far", &[Val::I32(0)], Trap::MemoryOutOfBounds);

            // memory64, before and after growing (the guard uses the current length).
            ok("store64", &[Val::I64(65528), Val::I64(-2)], &[]);
            ok("load64", &[Val::I64(65520)], &[Val::I64(-2)]);
            t("load64", &[Val::I64(65521)], Trap::MemoryOutOfBounds);
            t("load64", &[Val::I64(-8)], Trap::MemoryOutOfBounds);
            // index + offset fits, + size wraps: the address would be below the base.
            t("load64", &[Val::I64(-12)], Trap::MemoryOutOfBounds);
            t(
                "store64",
                &[Val::I64(65536), Val::I64(1)],
                Trap::MemoryOutOfBounds,
            );
            ok("grow64", &[], &[Val::I64(1)]);
            ok("store64", &[Val::I64(131064), Val::I64(5)], &[]);
            ok("load64", &[Val::I64(131056)], &[Val::I64(5)]);
            t("load64", &[Val::I64(131057)], Trap::MemoryOutOfBounds);

            // Tables: calls, tail calls, table.get/set.
            ok("call", &[Val::I32(2)], &[Val::I32(8)]);
            ok("tail", &[Val::I32(1)], &[Val::I32(7)]);
            ok("call64", &[Val::I64(0)], &[Val::I32(8)]);
            t("call", &[Val::I32(3)], Trap::OutOfBoundsElement);
            t("call", &[Val::I32(-1)], Trap::OutOfBoundsElement);
            t("tail", &[Val::I32(3)], Trap::OutOfBoundsElement);
            t("call64", &[Val::I64(2)], Trap::OutOfBoundsElement);
            t("call64", &[Val::I64(-1)], Trap::OutOfBoundsElement);
            t("call", &[Val::I32(0)], Trap::IndirectCallToNull);
            ok("copy_entry", &[Val::I32(1), Val::I32(0)], &[]);
            ok("call", &[Val::I32(0)], &[Val::I32(7)]);
            t(
                "copy_entry",
                &[Val::I32(3), Val::I32(0)],
                Trap::TableOutOfBounds,
            );
            t(
                "copy_entry",
                &[Val::I32(0), Val::I32(3)],
                Trap::TableOutOfBounds,
            );
        }
    }
}
