//! The memory image (`compiler/src/memory_image.rs`, `runtime-lib/src/memory_image.rs`):
//! a memory's constant data segments composed at compile time and mapped
//! copy-on-write from the executable at start-up. These tests check that the
//! mapping gives the contents the segments would (in order, across pages, with zeros
//! around), that it is private (the program's writes reach neither the executable
//! file nor the next run), and that the modules it cannot serve still get their
//! segments copied, or fail instantiation, exactly as before.
mod common;

use common::{Scratch, compile, run};
use object::{Object, ObjectSection};
use std::fs;
use std::path::Path;

/// A program that prints its data, overwrites some of it and prints it again.
/// `$first` and `$tail` are the offset expressions of the first and the last
/// segment; the segment at 4094 overwrites two bytes of the first one and the
/// first one crosses an OS page boundary.
fn program(first: &str, tail: &str, memory: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  {memory}
  (data (i32.const 4090) "ABCDEFGHIJ")
  (data (offset {first}) "0123")
  (data (i32.const 4094) "xy")
  (data (offset {tail}) "tail")
  (data (i32.const 8000) "\n")
  (func $print (param $at i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16))))
  (func $line
    (call $print (i32.const 5000) (i32.const 4))
    (call $print (i32.const 4090) (i32.const 10))
    (call $print (i32.const 70000) (i32.const 4))
    (call $print (i32.const 8000) (i32.const 1)))
  (func (export "_start")
    (call $line)
    ;; The bytes after the last segment, to the end of its page and beyond, are zero.
    (i32.store8 (i32.const 100) (i32.add (i32.const 48)
      (i32.add (i32.load8_u (i32.const 70004))
        (i32.add (i32.load8_u (i32.const 73727)) (i32.load8_u (i32.const 100000))))))
    (call $print (i32.const 100) (i32.const 1))
    (call $print (i32.const 8000) (i32.const 1))
    (i32.store8 (i32.const 4090) (i32.const 122))
    (i32.store8 (i32.const 5000) (i32.const 57))
    (i32.store (i32.const 70000) (i32.const 0x4c494154))
    (call $line))
)"#
    )
}

const EXPECTED: &[u8] = b"0123ABCDxyGHIJtail\n0\n9123zBCDxyGHIJTAIL\n";

/// Compiles `wat`, returns the executable and whether it carries a memory image.
fn build(wat: &str, scratch: &Scratch) -> (std::path::PathBuf, bool) {
    let source = scratch.path().join("image.wat");
    fs::write(&source, wat).unwrap();
    let exe = compile(&source, scratch.path());
    let bytes = fs::read(&exe).unwrap();
    let file = object::File::parse(&*bytes).expect("the executable is an object file");
    let image = file
        .section_by_name(".wasmc_memory_image")
        .map(|section| {
            let (offset, _) = section
                .file_range()
                .expect("the image is stored in the file");
            assert_eq!(offset % 4096, 0, "the image starts a page of the file");
            assert_eq!(
                section.address() % 4096,
                0,
                "the image starts a page in memory"
            );
        })
        .is_some();
    (exe, image)
}

fn run_twice(exe: &Path, scratch: &Scratch) {
    let before = fs::read(exe).unwrap();
    for _ in 0..2 {
        let output = run::<&str>(exe, &[], scratch.path());
        output.assert_code(0);
        output.assert_stdout(EXPECTED);
    }
    assert!(
        fs::read(exe).unwrap() == before,
        "running the program changed its executable"
    );
}

#[test]
fn constant_segments_are_mapped_privately() {
    let scratch = Scratch::new();
    let wat = program("(i32.const 5000)", "(i32.const 70000)", "(memory 2)");
    let (exe, image) = build(&wat, &scratch);
    assert!(image, "constant in-bounds segments make an image");
    run_twice(&exe, &scratch);
}

#[test]
fn started_through_the_dynamic_loader() {
    // `/proc/self/exe` is then the loader, not the program: the image must not be
    // mapped from it. (Today's loaders are smaller than the runtime, so the image's
    // offset is past their end; the runtime also compares the file's pages.)
    let Some(loader) = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
    else {
        return;
    };
    let scratch = Scratch::new();
    let wat = program("(i32.const 5000)", "(i32.const 70000)", "(memory 2)");
    let (exe, image) = build(&wat, &scratch);
    assert!(image);
    let output = common::run_command(
        std::process::Command::new(loader)
            .arg(&exe)
            .current_dir(scratch.path()),
        std::time::Duration::from_secs(60),
    );
    output.assert_code(0);
    output.assert_stdout(EXPECTED);
}

#[test]
fn computed_offsets_are_copied_in_order() {
    // An extended-const offset is not composed at compile time: every segment of
    // that memory is then copied at instantiation, in order.
    let scratch = Scratch::new();
    let wat = program(
        "(i32.add (i32.const 4000) (i32.const 1000))",
        "(i32.const 70000)",
        "(memory 2)",
    );
    let (exe, image) = build(&wat, &scratch);
    assert!(!image, "a computed offset leaves the segments to the copy");
    run_twice(&exe, &scratch);
}

#[test]
fn zero_pages_are_holes_not_stored() {
    // 3 bytes at 3 MiB: the pages between the data are holes, left zero by the
    // fresh memory (the program reads zeros at 70004, 73727 and 100000), and only
    // the four pages holding data are stored in the executable.
    let scratch = Scratch::new();
    let wat = program("(i32.const 5000)", "(i32.const 70000)", "(memory 64)").replace(
        r#"(data (i32.const 8000) "\n")"#,
        r#"(data (i32.const 8000) "\n") (data (i32.const 3145728) "far")"#,
    );
    let (exe, image) = build(&wat, &scratch);
    assert!(image, "a sparse layout makes an image with holes");
    assert_eq!(image_section_size(&exe), 4 * 4096);
    run_twice(&exe, &scratch);
}

/// Size of the executable's memory image section.
fn image_section_size(exe: &Path) -> u64 {
    let bytes = fs::read(exe).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    file.section_by_name(".wasmc_memory_image")
        .expect("an image section")
        .size()
}

#[test]
fn every_memory_gets_its_image() {
    // Two defined memories with data on both sides of a hole each (the second
    // memory's data reaches the first one's to be printed); the images are large
    // enough to be mapped, not copied.
    let scratch = Scratch::new();
    let wat = r#"(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory $a 4)
  (memory $b 4)
  (data (memory $a) (i32.const 16) "a0 ")
  (data (memory $a) (i32.const 200000) "a1 ")
  (data (memory $b) (i32.const 100) "b0 ")
  (data (memory $b) (i32.const 150000) "b1\n")
  (func (export "_start")
    (memory.copy $a $b (i32.const 19) (i32.const 100) (i32.const 3))
    (memory.copy $a $a (i32.const 22) (i32.const 200000) (i32.const 3))
    (memory.copy $a $b (i32.const 25) (i32.const 150000) (i32.const 3))
    ;; A byte of each memory's hole, which must be zero: '0' + both.
    (i32.store8 $a (i32.const 28) (i32.add (i32.const 48)
      (i32.add (i32.load8_u $a (i32.const 100000)) (i32.load8_u $b (i32.const 100000)))))
    (i32.store8 $a (i32.const 29) (i32.const 10))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 14))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
)"#;
    let (exe, image) = build(wat, &scratch);
    assert!(image);
    // Memory a: pages 0 and 48; memory b: pages 0 and 36.
    assert_eq!(image_section_size(&exe), 4 * 4096);
    for _ in 0..2 {
        let output = run::<&str>(&exe, &[], scratch.path());
        output.assert_code(0);
        output.assert_stdout(b"a0 b0 a1 b1\n0\n");
    }
}

#[test]
fn out_of_bounds_segment_still_fails_instantiation() {
    // The last segment ends past the memory's 2 pages: instantiation must fail
    // (after the earlier segments), so there is no image and the program never runs.
    let scratch = Scratch::new();
    let wat = program("(i32.const 5000)", "(i32.const 131070)", "(memory 2)");
    let (exe, image) = build(&wat, &scratch);
    assert!(
        !image,
        "an out-of-bounds segment leaves the segments to the copy"
    );
    let output = run::<&str>(&exe, &[], scratch.path());
    assert_ne!(output.status.code(), Some(0), "{}", output.describe());
    output.assert_stdout(b"");
    assert!(
        output.stderr_text().contains("out of bounds memory access"),
        "{}",
        output.describe()
    );
}

/// Minor page faults of one run of `exe` (from `wait4`, which also reaps it).
#[allow(clippy::zombie_processes)]
fn minor_faults(exe: &Path, cwd: &Path) -> i64 {
    let child = std::process::Command::new(exe)
        .current_dir(cwd)
        .spawn()
        .expect("start the executable");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status:#x}"
    );
    usage.ru_minflt
}

#[test]
fn untouched_image_pages_are_never_faulted_in() {
    // 4 MiB of data of which the program reads one byte: mapped, its pages are not
    // touched; copied, every one of them is written (1024 faults of 4 KiB pages).
    let scratch = Scratch::new();
    let data = "a".repeat(4 << 20);
    let module = |offset: &str| {
        format!(
            r#"(module (memory 128) (data (offset {offset}) "{data}")
                 (func (export "_start") (drop (i32.load8_u (i32.const 2000000)))))"#
        )
    };
    let faults = |offset: &str, expect_image: bool| {
        let dir = scratch
            .path()
            .join(if expect_image { "mapped" } else { "copied" });
        fs::create_dir(&dir).unwrap();
        let source = dir.join("big.wat");
        fs::write(&source, module(offset)).unwrap();
        let exe = compile(&source, &dir);
        let bytes = fs::read(&exe).unwrap();
        let file = object::File::parse(&*bytes).unwrap();
        assert_eq!(
            file.section_by_name(".wasmc_memory_image").is_some(),
            expect_image
        );
        // The lowest of three runs: other processes do not add faults, but be safe.
        (0..3).map(|_| minor_faults(&exe, &dir)).min().unwrap()
    };
    let mapped = faults("(i32.const 1024)", true);
    let copied = faults("(i32.add (i32.const 1000) (i32.const 24))", false);
    assert!(
        mapped + 700 < copied,
        "mapped image: {mapped} minor faults, copied segments: {copied}"
    );
}
