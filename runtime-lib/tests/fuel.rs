//! Fuel metering: modules compiled with `fuel_metering` run against the thread's
//! budget (`wasmc_runtime::fuel`) and stop with `OutOfFuel` exactly where
//! `wasmtime run -W fuel=N` stops them.
//!
//! The boundaries below (the smallest budget with which `_start` completes) were
//! measured with wasmtime 49.0.3: `wasmtime run -W fuel=N -W
//! exceptions=y,function-references=y,tail-call=y m.wat`, searching for the N where
//! the exit status turns from 134 to 0. The comment of each case derives the number
//! from the cost rules (entry 1, most operators 1, `nop`/`drop`/`block`/`loop`/
//! `else`/`end`/`return`/`unreachable` 0; checks at function entry and loop headers
//! trap when consumed >= budget; bulk operations add their size, see
//! `BULK_CASES`).

use std::cell::Cell;
use std::sync::Arc;

use wasmc_compiler::CompileOptions;
use wasmc_runtime::abi::{self, FuncType, Trap, ValType};
use wasmc_runtime::fuel;
use wasmc_runtime::instance::{Extern, HostFunc, InstanceHandle, Module, Val};
use wasmc_runtime::traps::TrapInfo;

mod support;

fn load_opts(wat: &str, fuel_metering: bool) -> Arc<Module> {
    let wasm = wat::parse_str(wat).expect("test module parses");
    let dir = tempfile::tempdir().unwrap();
    let opts = CompileOptions {
        fuel_metering,
        ..CompileOptions::default()
    };
    support::load(&wasm, &opts, dir.path())
}

fn load(wat: &str) -> Arc<Module> {
    load_opts(wat, true)
}

thread_local! {
    /// Calls of the `fd_write` stand-in on this thread.
    static WRITES: Cell<u32> = const { Cell::new(0) };
}

/// Stands in for WASI `fd_write` (same type, so the module is the one wasmtime ran):
/// counts the lines "printed".
extern "C" fn count_write(_vmctx: *mut u8, _fd: i32, _iovs: i32, _n: i32, _out: i32) -> i32 {
    WRITES.set(WRITES.get() + 1);
    0
}

fn instantiate(module: &Arc<Module>) -> InstanceHandle {
    let write = Extern::HostFunc(HostFunc {
        ty: FuncType {
            params: vec![ValType::I32; 4],
            results: vec![ValType::I32],
        },
        code: count_write as *const u8,
    });
    let mut resolver = |import: &abi::Import| {
        (import.module == "wasi_snapshot_preview1" && import.name == "fd_write")
            .then(|| write.clone())
    };
    InstanceHandle::new(module.clone(), &mut resolver, None).expect("instantiates")
}

/// Runs `_start` with a budget of `budget`.
fn run(instance: &InstanceHandle, budget: u64) -> Result<Vec<Val>, TrapInfo> {
    fuel::set_budget(Some(budget));
    let func = instance.export_func("_start").expect("_start");
    instance.invoke(&func, &[])
}

/// Whether `_start` of a fresh instance (runs change memories and tables)
/// completes with `budget`; any trap but `OutOfFuel` fails the test.
fn completes(module: &Arc<Module>, budget: u64) -> bool {
    match run(&instantiate(module), budget) {
        Ok(_) => true,
        Err(trap) if trap.trap == Trap::OutOfFuel => {
            assert_eq!(fuel::remaining(), Some(0), "budget {budget}");
            false
        }
        Err(trap) => panic!("budget {budget}: unexpected trap {trap}"),
    }
}

/// The smallest budget with which `_start` completes.
fn boundary(module: &Arc<Module>) -> u64 {
    let (mut lo, mut hi) = (0u64, 1 << 20);
    assert!(completes(module, hi), "does not complete with {hi}");
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if completes(module, mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// `(name, module, wasmtime 49's boundary)`.
const CASES: &[(&str, &str, u64)] = &[
    // Entry 1, checked: consumed 1 needs a budget of 2.
    ("empty", r#"(module (func (export "_start")))"#, 2),
    // Straight-line code is only checked at entry: 3 x (2 consts + add) run on 2.
    (
        "straight",
        r#"(module (func (export "_start")
          (drop (i32.add (i32.const 1) (i32.const 2)))
          (drop (i32.add (i32.const 1) (i32.const 2)))
          (drop (i32.add (i32.const 1) (i32.const 2)))))"#,
        2,
    ),
    // 1 + 3 + call 1 = 5 when the call leaves, callee entry 6 → 7.
    (
        "call",
        r#"(module
          (func $f (drop (i32.add (i32.const 1) (i32.const 2))))
          (func (export "_start")
            (drop (i32.add (i32.const 1) (i32.const 2)))
            call $f
            (drop (i32.add (i32.const 1) (i32.const 2)))))"#,
        7,
    ),
    // 8 per iteration; the 10th header check sees 1 + 9 * 8 = 73 → 74.
    (
        "loop10",
        r#"(module (func (export "_start") (local i32)
          (loop
            (local.set 0 (i32.add (local.get 0) (i32.const 1)))
            (br_if 0 (i32.lt_u (local.get 0) (i32.const 10))))))"#,
        74,
    ),
    // Callee: 4 at entry + 100 iterations of 8 = 804 on return; then the caller's
    // 10th header check at 804 + 72 = 876 → 877.
    (
        "call_indirect",
        r#"(module
          (type $ft (func))
          (table 1 funcref) (elem (i32.const 0) $f)
          (func $f (local i32)
            (loop (local.set 0 (i32.add (local.get 0) (i32.const 1)))
              (br_if 0 (i32.lt_u (local.get 0) (i32.const 100)))))
          (func (export "_start") (local i32)
            (call_indirect (type $ft) (i32.const 0))
            (loop (local.set 0 (i32.add (local.get 0) (i32.const 1)))
              (br_if 0 (i32.lt_u (local.get 0) (i32.const 10))))))"#,
        877,
    ),
    // As call_indirect: call_ref reloads the callee's count too.
    (
        "call_ref",
        r#"(module
          (type $ft (func))
          (func $f (local i32)
            (loop (local.set 0 (i32.add (local.get 0) (i32.const 1)))
              (br_if 0 (i32.lt_u (local.get 0) (i32.const 100)))))
          (elem declare func $f)
          (func (export "_start") (local i32)
            (call_ref $ft (ref.func $f))
            (loop (local.set 0 (i32.add (local.get 0) (i32.const 1)))
              (br_if 0 (i32.lt_u (local.get 0) (i32.const 10))))))"#,
        877,
    ),
    // 1 + const + return_call = 3, callee entry 4, 50th header check at 4 + 49 * 8.
    (
        "return_call",
        r#"(module
          (func $f (param i32) (local i32)
            (loop (local.set 1 (i32.add (local.get 1) (i32.const 1)))
              (br_if 0 (i32.lt_u (local.get 1) (local.get 0)))))
          (func (export "_start") (return_call $f (i32.const 50))))"#,
        397,
    ),
    // Each level n > 0: entry 1 + get/eqz/if 3 + get/get/const/sub/call 5 = 9;
    // 3 + 20 * 9 + 1 at the entry of fac(0) = 184.
    (
        "recursion",
        r#"(module
          (func $fac (param i64) (result i64)
            (if (result i64) (i64.eqz (local.get 0))
              (then (i64.const 1))
              (else (i64.mul (local.get 0)
                (call $fac (i64.sub (local.get 0) (i64.const 1)))))))
          (func (export "_start") (drop (call $fac (i64.const 20)))))"#,
        185,
    ),
    // br_table, return, nop, block, if/else in a loop of 5.
    (
        "control",
        r#"(module
          (func $pick (param i32) (result i32)
            (block $c (block $b (block $a
              (br_table $a $b $c (local.get 0)))
              (return (i32.const 10)))
              (nop) (nop) (return (i32.const 20)))
            (i32.const 30))
          (func (export "_start") (local i32)
            (loop
              (drop (call $pick (local.get 0)))
              (if (i32.eqz (local.get 0)) (then (nop)) (else (block (nop))))
              (br_if 0 (i32.lt_u (local.tee 0 (i32.add (local.get 0) (i32.const 1)))
                (i32.const 5))))))"#,
        69,
    ),
    // A loop with parameters and a result (the header's fuel check must not
    // disturb its parameters); traps unless the sum is right.
    (
        "loop_with_params",
        r#"(module
          (func $sum (param $n i32) (result i32)
            (i32.const 0) (local.get $n)
            (loop $l (param i32 i32) (result i32)
              (local.set $n)
              (i32.add (local.get $n))
              (local.get $n) (i32.const 1) (i32.sub)
              (local.tee $n) (br_if $l (local.get $n))
              (drop)))
          (func (export "_start")
            (if (i32.ne (call $sum (i32.const 10)) (i32.const 55)) (then unreachable))))"#,
        88,
    ),
    // The thrower stores 4 + 800 + throw 1 = 805; the catcher continues from there
    // (the exceptional edge reloads): 805 + 72 = 877.
    (
        "exception_caught_by_caller",
        r#"(module
          (tag $t)
          (func $thrower (local i32)
            (loop (local.set 0 (i32.add (local.get 0) (i32.const 1)))
              (br_if 0 (i32.lt_u (local.get 0) (i32.const 100))))
            (throw $t))
          (func (export "_start") (local i32)
            (block $h (try_table (catch $t $h) (call $thrower)))
            (loop (local.set 0 (i32.add (local.get 0) (i32.const 1)))
              (br_if 0 (i32.lt_u (local.get 0) (i32.const 10))))))"#,
        878,
    ),
    // The thrower's last loop check (4 + 99 * 8) is the last check.
    (
        "exception_last_check_in_thrower",
        r#"(module
          (tag $t)
          (func $thrower (local i32)
            (loop (local.set 0 (i32.add (local.get 0) (i32.const 1)))
              (br_if 0 (i32.lt_u (local.get 0) (i32.const 100))))
            (throw $t))
          (func (export "_start")
            (block $h (try_table (catch $t $h) (call $thrower)))))"#,
        797,
    ),
    // A throw caught in the same function, five times.
    (
        "exception_in_function",
        r#"(module
          (tag $t (param i32))
          (func (export "_start") (local i32)
            (loop
              (block $h (result i32)
                (try_table (catch $t $h) (throw $t (local.get 0))) (i32.const 0))
              (drop)
              (br_if 0 (i32.lt_u (local.tee 0 (i32.add (local.get 0) (i32.const 1)))
                (i32.const 5))))))"#,
        42,
    ),
];

#[test]
fn boundaries_match_wasmtime() {
    for (name, wat, expected) in CASES {
        let module = load(wat);
        assert_eq!(boundary(&module), *expected, "{name}");
        // And the neighbours directly, in the other order.
        assert!(completes(&module, *expected), "{name}");
        assert!(!completes(&module, *expected - 1), "{name}");
    }
}

/// Legacy exception handling, which wasmtime does not run: `try` costs 1 like
/// `try_table`, the clause markers nothing, so a legacy `try` stops exactly where
/// the equivalent `try_table` (boundaries measured with wasmtime above) does.
#[test]
fn legacy_try_costs_what_try_table_costs() {
    let legacy: &[(&str, &str)] = &[
        (
            "exception_caught_by_caller",
            r#"(module
              (tag $t)
              (func $thrower (local i32)
                (loop (local.set 0 (i32.add (local.get 0) (i32.const 1)))
                  (br_if 0 (i32.lt_u (local.get 0) (i32.const 100))))
                (throw $t))
              (func (export "_start") (local i32)
                try call $thrower catch $t end
                (loop (local.set 0 (i32.add (local.get 0) (i32.const 1)))
                  (br_if 0 (i32.lt_u (local.get 0) (i32.const 10))))))"#,
        ),
        (
            "exception_last_check_in_thrower",
            r#"(module
              (tag $t)
              (func $thrower (local i32)
                (loop (local.set 0 (i32.add (local.get 0) (i32.const 1)))
                  (br_if 0 (i32.lt_u (local.get 0) (i32.const 100))))
                (throw $t))
              (func (export "_start")
                try call $thrower catch_all end))"#,
        ),
        (
            "exception_in_function",
            r#"(module
              (tag $t (param i32))
              (func (export "_start") (local i32)
                (loop
                  try (result i32)
                    (throw $t (local.get 0)) (i32.const 0)
                  catch $t
                  end
                  (drop)
                  (br_if 0 (i32.lt_u (local.tee 0 (i32.add (local.get 0) (i32.const 1)))
                    (i32.const 5))))))"#,
        ),
    ];
    for (name, wat) in legacy {
        let (_, _, expected) = CASES.iter().find(|(n, _, _)| n == name).unwrap();
        assert_eq!(boundary(&load(wat)), *expected, "{name}");
    }
}

/// Bulk operations cost one more per byte, element or page; beyond 128 units the
/// charge comes with a check; grows that fail are free unless their size is a
/// constant of at most 128 (wasmtime 49.0.3's measured behaviour, same modules).
const BULK_CASES: &[(&str, &str, u64)] = &[
    (
        "copy_big",
        r#"(module (memory 1) (func $g) (func (export "_start") (memory.copy (i32.const 1000) (i32.const 0) (i32.const 300)) (call $g)))"#,
        308,
    ),
    (
        "fill_big",
        r#"(module (memory 1) (func (export "_start") (memory.fill (i32.const 0) (i32.const 7) (i32.const 200))))"#,
        206,
    ),
    (
        "fill_dyn_128",
        r#"(module (memory 1) (func $g) (func $h (param i32) (memory.fill (i32.const 0) (i32.const 7) (local.get 0))) (func (export "_start") (call $h (i32.const 128)) (call $g)))"#,
        139,
    ),
    (
        "fill_dyn_129",
        r#"(module (memory 1) (func $h (param i32) (memory.fill (i32.const 0) (i32.const 7) (local.get 0))) (func (export "_start") (call $h (i32.const 129))))"#,
        138,
    ),
    (
        "fill_small",
        r#"(module (memory 1) (func $g) (func (export "_start") (memory.fill (i32.const 0) (i32.const 7) (i32.const 10)) (call $g)))"#,
        18,
    ),
    (
        "grow_big",
        r#"(module (memory 1 300) (func (export "_start") (drop (memory.grow (i32.const 200)))))"#,
        204,
    ),
    (
        "grow_big_fails",
        r#"(module (memory 1 100) (func $g) (func (export "_start") (drop (memory.grow (i32.const 200))) (call $g)))"#,
        6,
    ),
    (
        "grow_dyn_big",
        r#"(module (memory 1 1000) (func $h (param i32) (drop (memory.grow (local.get 0)))) (func (export "_start") (call $h (i32.const 200))))"#,
        207,
    ),
    (
        "grow_dyn_big_fails",
        r#"(module (memory 1 10) (func $g) (func $h (param i32) (drop (memory.grow (local.get 0)))) (func (export "_start") (call $h (i32.const 200)) (call $g)))"#,
        9,
    ),
    (
        "grow_dyn_small_fails",
        r#"(module (memory 1 10) (func $g) (func $h (param i32) (drop (memory.grow (local.get 0)))) (func (export "_start") (call $h (i32.const 100)) (call $g)))"#,
        9,
    ),
    (
        "grow_small",
        r#"(module (memory 1 300) (func $g) (func (export "_start") (drop (memory.grow (i32.const 20))) (call $g)))"#,
        26,
    ),
    (
        "init_dyn",
        r#"(module (memory 1) (data $d "0123456789012345678901234567890123456789") (func $g) (func $h (param i32) (memory.init $d (i32.const 0) (i32.const 0) (local.get 0))) (func (export "_start") (call $h (i32.const 30)) (call $g)))"#,
        41,
    ),
    (
        "table_copy",
        r#"(module (table 200 funcref) (func $g) (func $h (param i32) (table.copy (i32.const 100) (i32.const 0) (local.get 0))) (func (export "_start") (call $h (i32.const 50)) (call $g)))"#,
        61,
    ),
    (
        "table_fill",
        r#"(module (table 200 funcref) (func $g) (func (export "_start") (table.fill (i32.const 0) (ref.null func) (i32.const 150)) (call $g)))"#,
        158,
    ),
    (
        "table_grow_big",
        r#"(module (table 10 funcref) (func $g) (func (export "_start") (drop (table.grow (ref.null func) (i32.const 200))) (call $g)))"#,
        207,
    ),
    (
        "table_grow_big_fails",
        r#"(module (table 10 150 funcref) (func $g) (func (export "_start") (drop (table.grow (ref.null func) (i32.const 200))) (call $g)))"#,
        7,
    ),
    (
        "table_grow_small_fails",
        r#"(module (table 100 150 funcref) (func $g) (func (export "_start") (drop (table.grow (ref.null func) (i32.const 60))) (call $g)))"#,
        67,
    ),
];

#[test]
fn bulk_operation_boundaries_match_wasmtime() {
    for (name, wat, expected) in BULK_CASES {
        let module = load(wat);
        assert_eq!(boundary(&module), *expected, "{name}");
        assert!(!completes(&module, *expected - 1), "{name}");
    }
}

/// The units of a bulk operation are charged after it: an out-of-bounds fill traps
/// as out of bounds even when the fuel would not cover it (as in wasmtime).
#[test]
fn failing_bulk_operation_traps_as_itself() {
    let instance = instantiate(&load(
        r#"(module (memory 1)
          (func (export "_start") (memory.fill (i32.const 0) (i32.const 7) (i32.const 100000))))"#,
    ));
    assert_eq!(
        run(&instance, 10).unwrap_err().trap,
        Trap::MemoryOutOfBounds
    );
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let instance = instantiate(&load(
        r#"(module (func $spin (export "_start") (loop (br 0))))"#,
    ));
    let trap = run(&instance, 1_000_000).unwrap_err();
    assert_eq!(trap.trap, Trap::OutOfFuel);
    assert_eq!(trap.message(), "all fuel consumed by WebAssembly");
    assert_eq!(trap.backtrace.len(), 1);
    assert!(trap.backtrace[0].ends_with("spin"), "{:?}", trap.backtrace);
    assert_eq!(fuel::remaining(), Some(0));
}

/// The loop prints a line per iteration (6 fuel: 4 consts, the call, `br`); with
/// 1000, wasmtime prints 166 lines before the 167th header check (at 7 + 166 * 6 =
/// 1003) traps, and 167 with 1004.
#[test]
fn prints_before_the_trap_match_wasmtime() {
    let instance = instantiate(&load(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write"
            (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "x\n")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const 2))
            (loop
              (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
              (br 0))))"#,
    ));
    for (budget, lines) in [(1000, 166), (1003, 166), (1004, 167), (1010, 168)] {
        WRITES.set(0);
        let trap = run(&instance, budget).unwrap_err();
        assert_eq!(trap.trap, Trap::OutOfFuel);
        assert_eq!(WRITES.get(), lines, "budget {budget}");
    }
}

#[test]
fn remaining_fuel_after_successful_calls() {
    // 1 at entry + 3 x 3 = 10 per call.
    let straight = instantiate(&load(
        r#"(module (func (export "_start")
          (drop (i32.add (i32.const 1) (i32.const 2)))
          (drop (i32.add (i32.const 1) (i32.const 2)))
          (drop (i32.add (i32.const 1) (i32.const 2)))))"#,
    ));
    run(&straight, 100).unwrap();
    assert_eq!(fuel::remaining(), Some(90));
    // The budget carries over from call to call.
    let func = straight.export_func("_start").unwrap();
    straight.invoke(&func, &[]).unwrap();
    assert_eq!(fuel::remaining(), Some(80));
    // A loop of 10 x 8 after the entry: 81; then a call of 1 + 3 + call + 1 + 3 + 3 = 12
    // with results (the callee's count comes back through memory).
    let looped = instantiate(&load(
        r#"(module
          (func $f (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
          (func (export "_start") (local i32)
            (loop
              (local.set 0 (i32.add (local.get 0) (i32.const 1)))
              (br_if 0 (i32.lt_u (local.get 0) (i32.const 10)))))
          (func (export "g") (result i32)
            (call $f (i32.const 1))))"#,
    ));
    run(&looped, 100).unwrap();
    assert_eq!(fuel::remaining(), Some(19));
    let g = looped.export_func("g").unwrap();
    fuel::set_budget(Some(50));
    assert_eq!(looped.invoke(&g, &[]), Ok(vec![Val::I32(2)]));
    // g: entry 1, const 1, call 1; f: entry 1, get/const/add 3.
    assert_eq!(fuel::remaining(), Some(43));
    // Code can overrun the budget between checks; the count then reads as 0.
    run(&straight, 5).unwrap();
    assert_eq!(fuel::remaining(), Some(0));
}

#[test]
fn without_a_budget_metered_code_is_unlimited() {
    // Each test runs on a fresh thread: no budget has been set on it.
    let instance = instantiate(&load(
        r#"(module (func (export "_start") (local i32)
          (loop
            (local.set 0 (i32.add (local.get 0) (i32.const 1)))
            (br_if 0 (i32.lt_u (local.get 0) (i32.const 1000000))))))"#,
    ));
    let func = instance.export_func("_start").unwrap();
    assert_eq!(instance.invoke(&func, &[]), Ok(vec![]));
    assert_eq!(fuel::remaining(), None);
    // Removing a budget again works the same.
    assert!(run(&instance, 1000).is_err());
    fuel::set_budget(None);
    assert_eq!(instance.invoke(&func, &[]), Ok(vec![]));
    assert_eq!(fuel::remaining(), None);
}

#[test]
fn unmetered_code_ignores_the_budget() {
    let module = load_opts(
        r#"(module (func (export "_start") (local i32)
          (loop
            (local.set 0 (i32.add (local.get 0) (i32.const 1)))
            (br_if 0 (i32.lt_u (local.get 0) (i32.const 1000))))))"#,
        false,
    );
    assert!(!module.info().fuel_metering);
    let instance = instantiate(&module);
    assert_eq!(run(&instance, 0), Ok(vec![]));
    assert_eq!(fuel::remaining(), Some(0));
    run(&instance, 10).unwrap();
    assert_eq!(fuel::remaining(), Some(10));
}

/// Inlining (on by default) must not change what a run costs: a helper called in a
/// loop, inlined or not, leaves the same fuel, and the same budgets run out.
#[test]
fn inlining_does_not_change_fuel() {
    let wat = r#"(module
        (func $get (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
        (func $work (param i32) (result i32) (local $s i32)
          (loop $l
            (local.set $s (i32.add (local.get $s) (call $get (local.get 0))))
            (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
          (local.get $s))
        (func (export "_start") (drop (call $work (i32.const 100)))))"#;
    let wasm = wat::parse_str(wat).expect("test module parses");
    let modules: Vec<Arc<Module>> = [
        wasmc_compiler::Inlining::Small,
        wasmc_compiler::Inlining::None,
    ]
    .into_iter()
    .map(|inline| {
        let dir = tempfile::tempdir().unwrap();
        let opts = CompileOptions {
            fuel_metering: true,
            inline,
            ..CompileOptions::default()
        };
        support::load(&wasm, &opts, dir.path())
    })
    .collect();
    let left: Vec<Option<u64>> = modules
        .iter()
        .map(|m| {
            run(&instantiate(m), 100_000).expect("completes");
            fuel::remaining()
        })
        .collect();
    assert_eq!(left[0], left[1]);
    let used = 100_000 - left[0].unwrap();
    for budget in [used - 1, used, used + 1] {
        assert_eq!(
            completes(&modules[0], budget),
            completes(&modules[1], budget),
            "budget {budget}"
        );
    }
}
