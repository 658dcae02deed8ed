//! Legacy exception handling (`try`/`catch`/`catch_all`/`delegate`/`rethrow`) on
//! real compiled code: across instances, mixed with `try_table`/`throw_ref` (both
//! share one exception object), through many frames, and uncaught. The spec's
//! `legacy/` scripts cover the single-module semantics.

use std::sync::Arc;

use wasmc_compiler::CompileOptions;
use wasmc_runtime::abi::{self, Trap};
use wasmc_runtime::instance::{Extern, InstanceHandle, Module, Val};
use wasmc_runtime::traps::TrapInfo;

mod support;

fn load(wat: &str) -> Arc<Module> {
    let wasm = wat::parse_str(wat).expect("test module parses");
    let dir = tempfile::tempdir().unwrap();
    support::load(&wasm, &CompileOptions::default(), dir.path())
}

fn instantiate(module: &Arc<Module>, imports: &[(&str, &str, Extern)]) -> InstanceHandle {
    let mut resolver = |import: &abi::Import| {
        imports
            .iter()
            .find(|(m, n, _)| *m == import.module && *n == import.name)
            .map(|(_, _, e)| e.clone())
    };
    InstanceHandle::new(module.clone(), &mut resolver, None).expect("instantiates")
}

fn call(instance: &InstanceHandle, name: &str, args: &[Val]) -> Result<Vec<Val>, TrapInfo> {
    let func = instance
        .export_func(name)
        .unwrap_or_else(|| panic!("no export {name}"));
    instance.invoke(&func, args)
}

/// The thrower: a legacy `rethrow` and a `delegate` to its caller, with an i64
/// and an f64 payload.
const THROWER: &str = r#"(module
  (tag $e (export "e") (param i64 f64))
  (tag $other (export "other"))
  (func (export "throw") (param i64 f64)
    try
      (throw $e (local.get 0) (local.get 1))
    catch $e
      drop drop
      rethrow 0
    end)
  (func (export "throw_delegated") (param i32)
    block
      try
        (if (local.get 0) (then (throw $other)))
        (throw $e (i64.const 7) (f64.const 0.5))
      delegate 1
    end))"#;

#[test]
fn exceptions_cross_instances_and_keep_their_payload() {
    let thrower = instantiate(&load(THROWER), &[]);
    let imports = [
        ("t", "e", thrower.export("e").unwrap()),
        ("t", "other", thrower.export("other").unwrap()),
        ("t", "throw", thrower.export("throw").unwrap()),
        (
            "t",
            "throw_delegated",
            thrower.export("throw_delegated").unwrap(),
        ),
    ];
    let catcher = load(
        r#"(module
          (tag $e (import "t" "e") (param i64 f64))
          (tag $other (import "t" "other"))
          (tag $mine (param i64 f64))
          (func $throw (import "t" "throw") (param i64 f64))
          (func $delegated (import "t" "throw_delegated") (param i32))
          ;; catch by the imported tag: the payload arrives intact
          (func (export "legacy") (param i64 f64) (result i64 f64)
            try (result i64 f64)
              (call $throw (local.get 0) (local.get 1))
              (i64.const -1) (f64.const -1)
            catch $mine
            catch $e
            end)
          ;; caught by try_table (catch_ref), thrown on with throw_ref, caught by a
          ;; legacy catch: one exception object all the way
          (func (export "mixed") (param i64 f64) (result i64 f64)
            try (result i64 f64)
              (block $h (result i64 f64 exnref)
                (try_table (catch_ref $e $h)
                  (call $throw (local.get 0) (local.get 1)))
                (i64.const -1) (f64.const -1) (return))
              (throw_ref)
            catch $e
            end)
          ;; a legacy catch_all, then rethrow to a try_table catch
          (func (export "to_try_table") (param i64 f64) (result i64 f64)
            (block $h (result i64 f64)
              (try_table (catch $e $h)
                try
                  (call $throw (local.get 0) (local.get 1))
                catch_all
                  rethrow 0
                end)
              (i64.const -1) (f64.const -1)))
          ;; which tag the delegated exception has
          (func (export "delegated") (param i32) (result i32)
            try (result i32)
              (call $delegated (local.get 0))
              (i32.const 0)
            catch $e
              drop drop (i32.const 1)
            catch $other
              (i32.const 2)
            end))"#,
    );
    let catcher = instantiate(&catcher, &imports);
    let payload = [Val::I64(-42), Val::F64(2.5f64.to_bits())];
    for name in ["legacy", "mixed", "to_try_table"] {
        assert_eq!(
            call(&catcher, name, &payload),
            Ok(payload.to_vec()),
            "{name}"
        );
    }
    assert_eq!(
        call(&catcher, "delegated", &[Val::I32(0)]),
        Ok(vec![Val::I32(1)])
    );
    assert_eq!(
        call(&catcher, "delegated", &[Val::I32(1)]),
        Ok(vec![Val::I32(2)])
    );
}

#[test]
fn unmatched_and_delegated_exceptions_pass_through_every_frame() {
    let m = load(
        r#"(module
          (tag $a (param i32))
          (tag $b (param i32))
          ;; recursion: every level has a legacy try that does not match $b and
          ;; one that delegates past a catch_all; the innermost level throws
          (func $down (param i32)
            (if (i32.eqz (local.get 0)) (then (throw $b (i32.const 99))))
            try
              try
                try
                  (call $down (i32.sub (local.get 0) (i32.const 1)))
                delegate 1
              catch_all
                unreachable
              end
            catch $a
              drop
            end)
          (func (export "run") (param i32) (result i32)
            try (result i32)
              (call $down (local.get 0))
              (i32.const 0)
            catch $b
            end)
          (func (export "uncaught")
            try
              (throw $a (i32.const 1))
            catch $b
              drop
            end))"#,
    );
    let i = instantiate(&m, &[]);
    for depth in [0, 1, 10, 1000] {
        assert_eq!(
            call(&i, "run", &[Val::I32(depth)]),
            Ok(vec![Val::I32(99)]),
            "depth {depth}"
        );
    }
    let trap = call(&i, "uncaught", &[]).unwrap_err();
    assert_eq!(trap.trap, Trap::UncaughtException);
}

#[test]
fn catch_arms_loop_and_rethrow_outer_exceptions() {
    let m = load(
        r#"(module
          (tag $n (param i32))
          (tag $stop)
          ;; throws $n i for i in 0..count, each caught in a loop; inside the
          ;; arm of $one a nested catch rethrows the *outer* exception (rethrow 1)
          ;; on to this catch, which adds its payload
          (func (export "outer") (param i32) (result i32)
            (local $i i32) (local $sum i32)
            (loop $next
              try
                (call $one (local.get $i))
              catch $n
                (local.set $sum (i32.add (local.get $sum)))
              end
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $next (i32.lt_u (local.get $i) (local.get 0))))
            (local.get $sum))
          (func $one (param i32)
            try
              (throw $n (local.get 0))
            catch $n
              drop
              try
                (throw $stop)
              catch $stop
                rethrow 1
              end
            end))"#,
    );
    let i = instantiate(&m, &[]);
    assert_eq!(
        call(&i, "outer", &[Val::I32(1000)]),
        Ok(vec![Val::I32(999 * 1000 / 2)])
    );
}
