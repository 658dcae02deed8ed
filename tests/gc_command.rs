//! A WASI command using WebAssembly GC, compiled to an executable: the output
//! matches `wasmtime run -W gc=y` (`Hello, GC!`, exit 0) after 4 GB of garbage in
//! 4 KB arrays while a struct is held by a global, and `--max-gc-heap` bounds the
//! heap (an allocation that cannot fit traps: exit 134). The GC workloads checked
//! against wasmtime are `tests/gc.rs`'s; this is the end-to-end smoke test of the
//! executable path (compile, link, runtime options).

mod common;

use common::{Scratch, compile, run};

const HELLO_GC: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (type $chars (array (mut i8)))
  (type $pair (struct (field $s (ref $chars)) (field $n (mut i32))))
  (data $hello "Hello, GC!\n")
  (global $keep (mut (ref null $pair)) (ref.null $pair))
  (func $print (param $s (ref $chars))
    (local $i i32)
    (loop $copy
      (i32.store8 (i32.add (i32.const 64) (local.get $i)) (array.get_u $chars (local.get $s) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $copy (i32.lt_u (local.get $i) (array.len (local.get $s)))))
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (array.len (local.get $s)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (local $p (ref $pair)) (local $i i32)
    (local.set $p (struct.new $pair (array.new_data $chars $hello (i32.const 0) (i32.const 11)) (i32.const 0)))
    (global.set $keep (local.get $p))
    ;; 4 GB of garbage in between.
    (loop $l
      (drop (array.new $chars (i32.const 0) (i32.const 4000)))
      (struct.set $pair $n (local.get $p) (i32.add (struct.get $pair $n (local.get $p)) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000000))))
    (call $print (struct.get $pair $s (ref.as_non_null (global.get $keep))))
    (if (i32.ne (struct.get $pair $n (local.get $p)) (i32.const 1000000)) (then unreachable)))
)
"#;

#[test]
fn a_gc_command_runs_in_bounded_memory_and_respects_the_heap_limit() {
    let scratch = Scratch::new();
    let source = scratch.path().join("hello-gc.wat");
    std::fs::write(&source, HELLO_GC).unwrap();
    let exe = compile(&source, scratch.path());

    // What `wasmtime run -W gc=y hello-gc.wat` prints (wasmtime 49).
    let output = run(&exe, &[] as &[&str], scratch.path());
    output.assert_code(0);
    output.assert_stdout(b"Hello, GC!\n");

    // Each 4000-byte array needs a 4016-byte object: no collection makes room in 1K.
    let output = run(&exe, &["--max-gc-heap", "1K"], scratch.path());
    output.assert_code(134);
    assert!(
        output
            .stderr_text()
            .contains("wasm trap: GC heap out of memory"),
        "{}",
        output.describe()
    );
    // 64K is enough: the garbage is collected.
    let output = run(&exe, &["--max-gc-heap", "64K"], scratch.path());
    output.assert_code(0);
    output.assert_stdout(b"Hello, GC!\n");
}
