//! The exception collector: a program that throws in a loop runs in bounded memory,
//! and every exception still reachable (from a local, an operand, a global, a table
//! or another exception's payload, in any frame) survives the collections with its
//! payload intact.

use std::sync::Arc;

use wasmc_compiler::CompileOptions;
use wasmc_runtime::abi;
use wasmc_runtime::exceptions::live_exceptions;
use wasmc_runtime::instance::{InstanceHandle, Module, Val};

mod support;

const MODULE: &str = r#"
(module
  (tag $e (param i32))
  (tag $box (param exnref i32))
  (global $g (mut exnref) (ref.null exn))
  (table $t 4 exnref)

  ;; A caught exception of tag $e with payload n.
  (func $make (param $n i32) (result exnref) (local $x exnref)
    (block $h (result i32 exnref)
      (try_table (catch_ref $e $h) (throw $e (local.get $n)))
      unreachable)
    (local.set $x)
    (drop)
    (local.get $x))

  ;; The payload of an exception of tag $e.
  (func $value (param exnref) (result i32)
    (block $h (result i32)
      (try_table (catch $e $h) (throw_ref (local.get 0)))
      unreachable))

  ;; n throws: caught without a reference, with one that is dropped, and with one
  ;; that is thrown again and caught by catch_all.
  (func $churn (export "churn") (param $n i32) (result i32)
    (loop $l
      (block $h (result i32)
        (try_table (catch $e $h) (throw $e (local.get $n)))
        unreachable)
      (drop)
      (drop (call $make (local.get $n)))
      (block $all
        (try_table (catch_all $all) (throw_ref (call $make (local.get $n)))))
      (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (i32.const 0))))
    (i32.const 0))

  (func $pair (param exnref i32) (result i32)
    (i32.add (call $value (local.get 0)) (local.get 1)))

  ;; Exceptions held everywhere while n more are thrown; 1 when all read back.
  (func (export "hold") (param $n i32) (result i32)
    (local $l exnref) (local $boxed exnref) (local $inner exnref) (local $ok i32)
    (global.set $g (call $make (i32.const 11)))
    (table.set $t (i32.const 2) (call $make (i32.const 22)))
    (local.set $l (call $make (i32.const 33)))
    ;; An exception only reachable through another's payload.
    (block $h (result exnref i32 exnref)
      (try_table (catch_ref $box $h)
        (throw $box (call $make (i32.const 44)) (i32.const 55)))
      unreachable)
    (local.set $boxed)
    (drop)
    (drop)
    ;; An operand live across the churning call.
    (local.set $ok
      (i32.eq
        (call $pair (call $make (i32.const 66)) (call $churn (local.get $n)))
        (i32.const 66)))
    (local.set $ok (i32.and (local.get $ok)
      (i32.eq (call $value (global.get $g)) (i32.const 11))))
    (local.set $ok (i32.and (local.get $ok)
      (i32.eq (call $value (table.get $t (i32.const 2))) (i32.const 22))))
    (local.set $ok (i32.and (local.get $ok)
      (i32.eq (call $value (local.get $l)) (i32.const 33))))
    (block $h (result exnref i32)
      (try_table (catch $box $h) (throw_ref (local.get $boxed)))
      unreachable)
    (i32.eq (i32.const 55))
    (local.set $ok (i32.and (local.get $ok)))
    (local.set $inner)
    (i32.and (local.get $ok)
      (i32.eq (call $value (local.get $inner)) (i32.const 44))))

  ;; A legacy catch arm that throws n more before rethrowing its own exception,
  ;; which only the arm holds meanwhile.
  (func (export "legacy") (param $n i32) (result i32)
    (block $h (result i32)
      (try_table (catch $e $h)
        try
          (throw $e (i32.const 77))
        catch $e
          drop
          (drop (call $churn (local.get $n)))
          rethrow 0
        end)
      unreachable))

  ;; d nested frames, each holding an exception of payload d in a local, churning
  ;; at the bottom; 1 when every frame reads its own back.
  (func $deep (export "deep") (param $d i32) (param $n i32) (result i32)
    (local $x exnref) (local $ok i32)
    (local.set $x (call $make (local.get $d)))
    (local.set $ok
      (if (result i32) (i32.eqz (local.get $d))
        (then (i32.eqz (call $churn (local.get $n))))
        (else (call $deep (i32.sub (local.get $d) (i32.const 1)) (local.get $n)))))
    (i32.and (local.get $ok)
      (i32.eq (call $value (local.get $x)) (local.get $d))))
)
"#;

fn instance() -> InstanceHandle {
    let wasm = wat::parse_str(MODULE).expect("test module parses");
    let dir = tempfile::tempdir().unwrap();
    let module: Arc<Module> = support::load(&wasm, &CompileOptions::default(), dir.path());
    InstanceHandle::new(module, &mut |_: &abi::Import| None, None).expect("instantiates")
}

fn call(instance: &InstanceHandle, name: &str, args: &[Val]) -> Vec<Val> {
    let func = instance.export_func(name).expect("export");
    instance.invoke(&func, args).expect("no trap")
}

#[test]
fn throwing_in_a_loop_runs_in_bounded_memory() {
    let instance = instance();
    // 3 exceptions per iteration: 600,000 in all.
    assert_eq!(
        call(&instance, "churn", &[Val::I32(200_000)]),
        [Val::I32(0)]
    );
    // Collections start at 4 MiB of heap (`gc::MIN_COLLECTION_BYTES`), some 17,000
    // exceptions of this loop; without collection all 600,000 would be live.
    let live = live_exceptions();
    assert!(live < 40_000, "{live} exceptions still allocated");
}

#[test]
fn reachable_exceptions_survive_collections() {
    let instance = instance();
    assert_eq!(
        call(&instance, "hold", &[Val::I32(1)]),
        [Val::I32(1)],
        "without collection"
    );
    assert_eq!(call(&instance, "hold", &[Val::I32(50_000)]), [Val::I32(1)]);
    // Again, with the global and table entries of the first call now garbage.
    assert_eq!(call(&instance, "hold", &[Val::I32(50_000)]), [Val::I32(1)]);
    assert!(live_exceptions() < 10_000);
}

#[test]
fn roots_in_every_frame_survive_collections() {
    let instance = instance();
    assert_eq!(
        call(&instance, "deep", &[Val::I32(200), Val::I32(20_000)]),
        [Val::I32(1)]
    );
}

#[test]
fn a_legacy_catch_keeps_its_exception_for_rethrow() {
    let instance = instance();
    assert_eq!(
        call(&instance, "legacy", &[Val::I32(20_000)]),
        [Val::I32(77)]
    );
}
