//! The GC heap's collector: programs that allocate far more than the heap limit in
//! total (lists, trees, cycles, arrays of references) run in bounded memory, every
//! object still reachable (from a local, an operand, a global, a table, an
//! exception payload, another object, in any frame) survives collections with its
//! contents intact, and a program that really holds more than the limit traps with
//! "GC heap out of memory" instead of growing without bound.

use std::sync::Arc;

use wasmc_compiler::CompileOptions;
use wasmc_runtime::abi;
use wasmc_runtime::gc::{live_objects, set_heap_limit};
use wasmc_runtime::instance::{InstanceHandle, Module, Val};

mod support;

/// The heap limit of every test here (process-wide; the heaps are per thread).
const HEAP_LIMIT: usize = 8 << 20;

const MODULE: &str = r#"
(module
  (type $node (struct (field $v i64) (field $next (mut (ref null $node)))))
  (type $tree (struct (field $l (ref null $tree)) (field $r (ref null $tree)) (field $v i32)))
  (type $refs (array (mut anyref)))
  (type $bytes (array (mut i8)))
  (tag $e (param anyref))
  (global $g (mut (ref null $node)) (ref.null $node))
  (global $const (ref $node) (struct.new $node (i64.const 99) (ref.null $node)))
  (table $t 4 anyref)
  (elem $seg anyref (item (struct.new $node (i64.const 7) (ref.null $node))))

  ;; A list of n nodes holding n-1 .. 0.
  (func $list (export "list") (param $n i32) (result (ref null $node))
    (local $l (ref null $node))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (local.set $l (struct.new $node (i64.extend_i32_u (local.get $n)) (local.get $l)))
        (br $next)))
    (local.get $l))

  (func $sum (param $l (ref null $node)) (result i64)
    (local $s i64)
    (block $done
      (loop $next
        (br_if $done (ref.is_null (local.get $l)))
        (local.set $s (i64.add (local.get $s) (struct.get $node $v (local.get $l))))
        (local.set $l (struct.get $node $next (local.get $l)))
        (br $next)))
    (local.get $s))

  ;; A complete tree of the given depth; every node holds its depth.
  (func $tree (param $d i32) (result (ref null $tree))
    (if (result (ref null $tree)) (i32.eqz (local.get $d))
      (then (ref.null $tree))
      (else
        (struct.new $tree
          (call $tree (i32.sub (local.get $d) (i32.const 1)))
          (call $tree (i32.sub (local.get $d) (i32.const 1)))
          (local.get $d)))))

  ;; The sum of the depths stored in a tree (each node checked against its depth).
  (func $check (param $t (ref null $tree)) (param $d i32) (result i32)
    (if (result i32) (ref.is_null (local.get $t))
      (then (i32.const 0))
      (else
        (if (i32.ne (struct.get $tree $v (local.get $t)) (local.get $d)) (then unreachable))
        (i32.add (local.get $d)
          (i32.add
            (call $check (struct.get $tree $l (local.get $t)) (i32.sub (local.get $d) (i32.const 1)))
            (call $check (struct.get $tree $r (local.get $t)) (i32.sub (local.get $d) (i32.const 1))))))))

  ;; n rounds of garbage: a list, a tree, a two-node cycle, an array of references
  ;; and a byte array, all dropped.
  (func $churn (export "churn") (param $n i32) (result i32)
    (local $a (ref null $node)) (local $b (ref null $node)) (local $arr (ref null $refs))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (if (i64.ne (call $sum (call $list (i32.const 100))) (i64.const 4950)) (then unreachable))
        (drop (call $tree (i32.const 5)))
        (local.set $a (struct.new $node (i64.const 1) (ref.null $node)))
        (local.set $b (struct.new $node (i64.const 2) (local.get $a)))
        (struct.set $node $next (local.get $a) (local.get $b))
        (local.set $arr (array.new $refs (local.get $a) (i32.const 16)))
        (array.set $refs (local.get $arr) (i32.const 3) (array.new_default $bytes (i32.const 1000)))
        (br $next)))
    (i32.const 0))

  (func $pair (param $l (ref null $node)) (param i32) (result i64)
    (call $sum (local.get $l)))

  ;; Objects held everywhere while n rounds of garbage are made; 1 when all read back.
  (func (export "hold") (param $n i32) (result i32)
    (local $l (ref null $node)) (local $arr (ref null $refs)) (local $exn exnref)
    (local $ok i32) (local $tr (ref null $tree))
    (global.set $g (call $list (i32.const 10)))
    (table.set $t (i32.const 1) (call $list (i32.const 20)))
    (local.set $l (call $list (i32.const 30)))
    (local.set $tr (call $tree (i32.const 8)))
    ;; An array holding a list, an i31 and another array.
    (local.set $arr (array.new_fixed $refs 3
      (call $list (i32.const 40))
      (ref.i31 (i32.const 12345))
      (array.new $bytes (i32.const 9) (i32.const 50))))
    ;; A list only reachable through an exception's payload.
    (local.set $exn
      (block $h (result anyref exnref)
        (try_table (catch_ref $e $h) (throw $e (call $list (i32.const 50))))
        unreachable))
    (drop)
    ;; An operand live across the churning call.
    (local.set $ok (i64.eq
      (call $pair (call $list (i32.const 60)) (call $churn (local.get $n)))
      (i64.const 1770)))
    (local.set $ok (i32.and (local.get $ok)
      (i64.eq (call $sum (global.get $g)) (i64.const 45))))
    (local.set $ok (i32.and (local.get $ok)
      (i64.eq (call $sum (ref.cast (ref null $node) (table.get $t (i32.const 1)))) (i64.const 190))))
    (local.set $ok (i32.and (local.get $ok)
      (i64.eq (call $sum (local.get $l)) (i64.const 435))))
    (local.set $ok (i32.and (local.get $ok)
      (i32.eq (call $check (local.get $tr) (i32.const 8)) (i32.const 502))))
    (local.set $ok (i32.and (local.get $ok)
      (i64.eq (call $sum (ref.cast (ref null $node) (array.get $refs (local.get $arr) (i32.const 0))))
              (i64.const 780))))
    (local.set $ok (i32.and (local.get $ok)
      (i32.eq (i31.get_s (ref.cast (ref i31) (array.get $refs (local.get $arr) (i32.const 1))))
              (i32.const 12345))))
    (local.set $ok (i32.and (local.get $ok)
      (i32.eq (array.get_u $bytes (ref.cast (ref $bytes) (array.get $refs (local.get $arr) (i32.const 2))) (i32.const 49))
              (i32.const 9))))
    (local.set $ok (i32.and (local.get $ok)
      (i64.eq (struct.get $node $v (global.get $const)) (i64.const 99))))
    (table.init $t $seg (i32.const 3) (i32.const 0) (i32.const 1))
    (local.set $ok (i32.and (local.get $ok)
      (i64.eq (call $sum (ref.cast (ref null $node) (table.get $t (i32.const 3)))) (i64.const 7))))
    (i32.and (local.get $ok)
      (i64.eq
        (block $h (result anyref)
          (try_table (catch $e $h) (throw_ref (local.get $exn)))
          unreachable)
        (ref.cast (ref null $node))
        (call $sum)
        (i64.const 1225))))

  ;; d nested frames, each holding a list of d+1 nodes in a local, churning at the
  ;; bottom; 1 when every frame reads its own back.
  (func $deep (export "deep") (param $d i32) (param $n i32) (result i32)
    (local $x (ref null $node)) (local $ok i32)
    (local.set $x (call $list (i32.add (local.get $d) (i32.const 1))))
    (local.set $ok
      (if (result i32) (i32.eqz (local.get $d))
        (then (i32.eqz (call $churn (local.get $n))))
        (else (call $deep (i32.sub (local.get $d) (i32.const 1)) (local.get $n)))))
    (i32.and (local.get $ok)
      (i64.eq (call $sum (local.get $x))
        (i64.div_u
          (i64.mul (i64.extend_i32_u (local.get $d)) (i64.extend_i32_u (i32.add (local.get $d) (i32.const 1))))
          (i64.const 2)))))

  ;; Keeps a list of n nodes alive in the global (to exhaust the heap).
  (func (export "keep") (param $n i32)
    (global.set $g (call $list (local.get $n))))
)
"#;

fn instance() -> InstanceHandle {
    set_heap_limit(HEAP_LIMIT);
    let wasm = wat::parse_str(MODULE).expect("test module parses");
    let dir = tempfile::tempdir().unwrap();
    let module: Arc<Module> = support::load(&wasm, &CompileOptions::default(), dir.path());
    InstanceHandle::new(module, &mut |_: &abi::Import| None, None).expect("instantiates")
}

fn call(instance: &InstanceHandle, name: &str, args: &[Val]) -> Result<Vec<Val>, String> {
    let func = instance.export_func(name).expect("export");
    instance.invoke(&func, args).map_err(|t| t.to_string())
}

#[test]
fn garbage_is_collected_and_memory_stays_bounded() {
    let instance = instance();
    // About 3.2 KB per round: 20,000 rounds allocate ~64 MB, 8x the heap limit.
    assert_eq!(
        call(&instance, "churn", &[Val::I32(20_000)]),
        Ok(vec![Val::I32(0)])
    );
    let (_, bytes) = live_objects();
    assert!(bytes <= HEAP_LIMIT, "{bytes} bytes still allocated");
}

#[test]
fn reachable_objects_survive_collections() {
    let instance = instance();
    assert_eq!(
        call(&instance, "hold", &[Val::I32(1)]),
        Ok(vec![Val::I32(1)]),
        "without collection"
    );
    assert_eq!(
        call(&instance, "hold", &[Val::I32(20_000)]),
        Ok(vec![Val::I32(1)])
    );
    // Again, with what the first calls stored in the global and table now garbage.
    assert_eq!(
        call(&instance, "hold", &[Val::I32(20_000)]),
        Ok(vec![Val::I32(1)])
    );
    let (_, bytes) = live_objects();
    assert!(bytes <= HEAP_LIMIT, "{bytes} bytes still allocated");
}

#[test]
fn roots_in_every_frame_survive_collections() {
    let instance = instance();
    assert_eq!(
        call(&instance, "deep", &[Val::I32(200), Val::I32(10_000)]),
        Ok(vec![Val::I32(1)])
    );
}

#[test]
fn holding_more_than_the_limit_traps() {
    let instance = instance();
    // 32-byte nodes: a million is 4x the limit.
    let err = call(&instance, "keep", &[Val::I32(1_000_000)]).unwrap_err();
    assert!(err.contains("GC heap out of memory"), "{err}");
    // The failed list was garbage: the same instance can work again.
    assert_eq!(call(&instance, "keep", &[Val::I32(1000)]), Ok(vec![]));
    assert_eq!(
        call(&instance, "churn", &[Val::I32(2000)]),
        Ok(vec![Val::I32(0)])
    );
}

/// A constant expression sized by the guest (`array.new` in a global's initialiser,
/// found by the GC execution fuzzer) fails instantiation with the heap's trap;
/// it used to build a temporary vector of that length first and abort the host.
#[test]
fn huge_constant_arrays_fail_instantiation_without_allocating() {
    set_heap_limit(HEAP_LIMIT);
    for init in [
        "(array.new $a (i64.const 1) (i32.const -1))",
        "(array.new_default $a (i32.const -1))",
        "(array.new $a (i64.const 1) (i32.const 0x7fffffff))",
    ] {
        let wat = format!("(module (type $a (array (mut i64))) (global (ref $a) {init}))");
        let wasm = wat::parse_str(&wat).expect("test module parses");
        let dir = tempfile::tempdir().unwrap();
        let module = support::load(&wasm, &CompileOptions::default(), dir.path());
        let err = InstanceHandle::new(module, &mut |_: &abi::Import| None, None)
            .err()
            .unwrap_or_else(|| panic!("{init}: instantiated"));
        assert!(
            err.to_string().contains("GC heap out of memory"),
            "{init}: {err}"
        );
    }
    // A small one still works, every element set.
    let wasm = wat::parse_str(
        "(module (type $a (array (mut i64)))
           (global $g (ref $a) (array.new $a (i64.const 5) (i32.const 1000)))
           (func (export \"sum\") (result i64) (local $i i32) (local $s i64)
             (loop $l
               (local.set $s (i64.add (local.get $s) (array.get $a (global.get $g) (local.get $i))))
               (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 1000))))
             (local.get $s)))",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let module = support::load(&wasm, &CompileOptions::default(), dir.path());
    let instance = InstanceHandle::new(module, &mut |_: &abi::Import| None, None).unwrap();
    assert_eq!(call(&instance, "sum", &[]), Ok(vec![Val::I64(5000)]));
}

/// Cells are reused without being cleared by the sweep: every inline allocation
/// (struct.new_default, array.new_default and array.new of run-time lengths,
/// array.new_fixed) must still give an object whose fields are exactly the
/// defaults or operands, after its cell held other objects full of ones.
#[test]
fn reused_cells_start_with_default_fields() {
    set_heap_limit(HEAP_LIMIT);
    let wasm = wat::parse_str(
        r#"(module
          (type $s (struct (field (mut i64)) (field (mut i64)) (field (mut i32)) (field (mut i8))))
          (type $b (array (mut i8)))
          (type $w (array (mut i64)))
          (type $r (array (mut anyref)))
          ;; 1 when every object of every size up to `max` starts as it must,
          ;; each one then filled with ones and dropped (its cell reused next).
          (func (export "check") (param $rounds i32) (param $max i32) (result i32)
            (local $n i32) (local $i i32) (local $s (ref $s)) (local $b (ref $b))
            (local $w (ref $w)) (local $r (ref $r))
            (loop $round
              (local.set $n (i32.const 0))
              (loop $size
                (local.set $s (struct.new_default $s))
                (if (i64.ne (i64.or (struct.get $s 0 (local.get $s)) (struct.get $s 1 (local.get $s)))
                            (i64.const 0)) (then (return (i32.const 0))))
                (if (i32.or (struct.get $s 2 (local.get $s)) (struct.get_u $s 3 (local.get $s)))
                  (then (return (i32.const 0))))
                (struct.set $s 0 (local.get $s) (i64.const -1))
                (struct.set $s 1 (local.get $s) (i64.const -1))
                (struct.set $s 2 (local.get $s) (i32.const -1))
                (struct.set $s 3 (local.get $s) (i32.const -1))
                (local.set $b (array.new_default $b (local.get $n)))
                (local.set $w (array.new $w (i64.const 7) (local.get $n)))
                (local.set $r (array.new_default $r (local.get $n)))
                (local.set $i (i32.const 0))
                (block $checked
                  (loop $elem
                    (br_if $checked (i32.ge_u (local.get $i) (local.get $n)))
                    (if (array.get_u $b (local.get $b) (local.get $i)) (then (return (i32.const 0))))
                    (if (i64.ne (array.get $w (local.get $w) (local.get $i)) (i64.const 7))
                      (then (return (i32.const 0))))
                    (if (i32.eqz (ref.is_null (array.get $r (local.get $r) (local.get $i))))
                      (then (return (i32.const 0))))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br $elem)))
                (if (i32.ne (array.len (local.get $b)) (local.get $n)) (then (return (i32.const 0))))
                (array.fill $b (local.get $b) (i32.const 0) (i32.const -1) (local.get $n))
                (array.fill $w (local.get $w) (i32.const 0) (i64.const -1) (local.get $n))
                (array.fill $r (local.get $r) (i32.const 0) (local.get $s) (local.get $n))
                (local.set $w (array.new_fixed $w 3 (i64.const 1) (i64.const 2) (i64.const 3)))
                (if (i64.ne (i64.add (array.get $w (local.get $w) (i32.const 0))
                                     (array.get $w (local.get $w) (i32.const 2)))
                            (i64.const 4)) (then (return (i32.const 0))))
                (br_if $size (i32.le_u (local.tee $n (i32.add (local.get $n) (i32.const 1))) (local.get $max))))
              (br_if $round (local.tee $rounds (i32.sub (local.get $rounds) (i32.const 1)))))
            (i32.const 1)))"#,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let module = support::load(&wasm, &CompileOptions::default(), dir.path());
    let instance = InstanceHandle::new(module, &mut |_: &abi::Import| None, None).unwrap();
    // Lengths up to 80 cover the inline sizes and the builtin's beyond them;
    // 3000 rounds allocate ~150 MB, many collections' worth.
    assert_eq!(
        call(&instance, "check", &[Val::I32(3000), Val::I32(80)]),
        Ok(vec![Val::I32(1)])
    );
}

/// Casts along a supertype chain deeper than the supertype display (whose targets
/// past it use the builtin): `ref.test` of an object of each depth against the
/// type of each depth holds exactly when the target is an ancestor (or itself).
#[test]
fn casts_along_a_deep_chain() {
    const DEPTH: usize = 20;
    let mut types = String::from("(type $t0 (sub (struct (field i32))))");
    for d in 1..DEPTH {
        types += &format!("(type $t{d} (sub $t{} (struct (field i32))))", d - 1);
    }
    let news: String = (0..DEPTH)
        .map(|d| format!("(struct.new $t{d} (i32.const {d}))"))
        .collect::<Vec<_>>()
        .join(" ");
    let tests: String = (0..DEPTH)
        .map(|d| {
            format!(
                "(local.set $bits (i64.or (local.get $bits)
                   (i64.shl (i64.extend_i32_u (ref.test (ref $t{d}) (local.get $o)))
                            (i64.const {d}))))"
            )
        })
        .collect();
    let wat = format!(
        r#"(module {types}
          (type $objs (array anyref))
          (global $objs (ref $objs) (array.new_fixed $objs {DEPTH} {news}))
          ;; Bit d set when object `i` (of type $ti) is a $td.
          (func (export "test") (param $i i32) (result i64)
            (local $o anyref) (local $bits i64)
            (local.set $o (array.get $objs (global.get $objs) (local.get $i)))
            {tests}
            (local.get $bits)))"#
    );
    let wasm = wat::parse_str(&wat).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let module = support::load(&wasm, &CompileOptions::default(), dir.path());
    let instance = InstanceHandle::new(module, &mut |_: &abi::Import| None, None).unwrap();
    for i in 0..DEPTH {
        // Ancestors at depths 0..=i.
        let expected = (1i64 << (i + 1)) - 1;
        assert_eq!(
            call(&instance, "test", &[Val::I32(i as i32)]),
            Ok(vec![Val::I64(expected)]),
            "object of depth {i}"
        );
    }
}
