//! Resource limits on real compiled code: memory and table caps at instantiation and
//! on grow, the wasm stack size, and the timeout (`interrupt`).

use std::cell::Cell;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmc_compiler::CompileOptions;
use wasmc_runtime::abi::policy::Limits;
use wasmc_runtime::abi::{self, FuncType, MemoryType, Trap};
use wasmc_runtime::instance::{
    Extern, HostFunc, InstanceHandle, InstantiationError, MemoryHandle, Module, Val,
};
use wasmc_runtime::interrupt::{self, OnHost};
use wasmc_runtime::traps;

mod support;

fn load(wat: &str) -> Arc<Module> {
    let wasm = wat::parse_str(wat).expect("test module parses");
    let dir = tempfile::tempdir().unwrap();
    support::load(&wasm, &CompileOptions::default(), dir.path())
}

fn instantiate_with(
    module: &Arc<Module>,
    imports: &[(&str, &str, Extern)],
    limits: &Limits,
) -> Result<InstanceHandle, InstantiationError> {
    let mut resolver = |import: &abi::Import| {
        imports
            .iter()
            .find(|(m, n, _)| *m == import.module && *n == import.name)
            .map(|(_, _, e)| e.clone())
    };
    InstanceHandle::new_with_limits(module.clone(), &mut resolver, None, limits)
}

fn call(instance: &InstanceHandle, name: &str, args: &[Val]) -> Result<Vec<Val>, traps::TrapInfo> {
    let func = instance
        .export_func(name)
        .unwrap_or_else(|| panic!("no export {name}"));
    instance.invoke(&func, args)
}

fn memory_limit(bytes: u64) -> Limits {
    Limits {
        max_memory: Some(bytes),
        ..Limits::default()
    }
}

fn table_limit(elements: u64) -> Limits {
    Limits {
        max_table_elements: Some(elements),
        ..Limits::default()
    }
}

fn error_message(r: Result<InstanceHandle, InstantiationError>) -> String {
    match r {
        Ok(_) => panic!("instantiation should fail"),
        Err(InstantiationError::Resource(m)) => m,
        Err(e) => panic!("unexpected error kind: {e:?}"),
    }
}

const GROW: &str = r#"(module
  (memory (export "mem") 1)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "size") (result i32) (memory.size))
  (func (export "store") (param i32) (i32.store8 (local.get 0) (i32.const 1))))"#;

#[test]
fn memory_grow_beyond_the_limit_returns_minus_one() {
    let m = load(GROW);
    let i = instantiate_with(&m, &[], &memory_limit(4 << 16)).unwrap();
    assert_eq!(call(&i, "grow", &[Val::I32(2)]), Ok(vec![Val::I32(1)]));
    assert_eq!(call(&i, "grow", &[Val::I32(2)]), Ok(vec![Val::I32(-1)]));
    assert_eq!(call(&i, "grow", &[Val::I32(1)]), Ok(vec![Val::I32(3)]));
    assert_eq!(call(&i, "grow", &[Val::I32(1)]), Ok(vec![Val::I32(-1)]));
    assert_eq!(call(&i, "size", &[]), Ok(vec![Val::I32(4)]));
    // The memory is still fully usable up to the limit, and not beyond.
    assert_eq!(call(&i, "store", &[Val::I32((4 << 16) - 1)]), Ok(vec![]));
    let trap = call(&i, "store", &[Val::I32(4 << 16)]).unwrap_err();
    assert_eq!(trap.trap, Trap::MemoryOutOfBounds);
    // Through the host API too.
    let Some(Extern::Memory(mem)) = i.export("mem") else {
        panic!("no memory export")
    };
    assert_eq!(mem.grow(1), None);
    // Without limits the same module grows freely.
    let free = instantiate_with(&m, &[], &Limits::default()).unwrap();
    assert_eq!(call(&free, "grow", &[Val::I32(100)]), Ok(vec![Val::I32(1)]));
}

/// A memory of 1-byte pages (custom-page-sizes): sizes, grows and limits count
/// bytes, and every access is bounds-checked at byte granularity although the
/// runtime can only make whole OS pages accessible (no guard-page elision).
#[test]
fn one_byte_pages_count_and_check_bytes() {
    let m = load(
        r#"(module
          (memory (export "mem") 10 (pagesize 1))
          (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
          (func (export "size") (result i32) (memory.size))
          (func (export "store") (param i32) (i32.store8 (local.get 0) (i32.const 1)))
          (func (export "load16") (param i32) (result i32) (i32.load16_u (local.get 0))))"#,
    );
    let i = instantiate_with(&m, &[], &memory_limit(100)).unwrap();
    assert_eq!(call(&i, "size", &[]), Ok(vec![Val::I32(10)]));
    assert_eq!(call(&i, "store", &[Val::I32(9)]), Ok(vec![]));
    for oob in [10, 11, 4095, 4096, -1] {
        let trap = call(&i, "store", &[Val::I32(oob)]).unwrap_err();
        assert_eq!(trap.trap, Trap::MemoryOutOfBounds, "store at {oob}");
    }
    // A two-byte load whose second byte is one past the end.
    let trap = call(&i, "load16", &[Val::I32(9)]).unwrap_err();
    assert_eq!(trap.trap, Trap::MemoryOutOfBounds);
    assert_eq!(call(&i, "grow", &[Val::I32(1)]), Ok(vec![Val::I32(10)]));
    assert_eq!(call(&i, "load16", &[Val::I32(9)]), Ok(vec![Val::I32(1)]));
    // --max-memory 100 allows exactly 100 one-byte pages.
    assert_eq!(call(&i, "grow", &[Val::I32(89)]), Ok(vec![Val::I32(11)]));
    assert_eq!(call(&i, "grow", &[Val::I32(0)]), Ok(vec![Val::I32(100)]));
    assert_eq!(call(&i, "grow", &[Val::I32(1)]), Ok(vec![Val::I32(-1)]));
    assert_eq!(call(&i, "store", &[Val::I32(99)]), Ok(vec![]));
    let trap = call(&i, "store", &[Val::I32(100)]).unwrap_err();
    assert_eq!(trap.trap, Trap::MemoryOutOfBounds);
    let msg = error_message(instantiate_with(&m, &[], &memory_limit(9)));
    assert_eq!(msg, "memory 0 needs at least 10 but --max-memory is 9");
}

#[test]
fn memory_minimum_above_the_limit_fails_to_instantiate() {
    let m = load(r#"(module (memory 20))"#);
    let msg = error_message(instantiate_with(&m, &[], &memory_limit(1 << 20)));
    assert_eq!(msg, "memory 0 needs at least 1280K but --max-memory is 1M");
    // Exactly at the limit is fine.
    assert!(instantiate_with(&m, &[], &memory_limit(20 << 16)).is_ok());
    let big = load(r#"(module (memory 16384))"#);
    let msg = error_message(instantiate_with(&big, &[], &memory_limit(512 << 20)));
    assert_eq!(msg, "memory 0 needs at least 1G but --max-memory is 512M");
}

#[test]
fn imported_memories_are_limited_by_their_owner() {
    let m = load(
        r#"(module (import "env" "mem" (memory 8))
             (memory 1)
             (func (export "grow0") (param i32) (result i32) (memory.grow 0 (local.get 0)))
             (func (export "grow1") (param i32) (result i32) (memory.grow 1 (local.get 0))))"#,
    );
    let host = MemoryHandle::new(MemoryType {
        minimum: 8,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: 16,
    })
    .unwrap();
    let imports = [("env", "mem", Extern::Memory(host.clone()))];
    let i = instantiate_with(&m, &imports, &memory_limit(2 << 16)).unwrap();
    // The imported memory (8 pages, above the limit) grows as its owner allows; the
    // defined one (memory 1) stops at the limit.
    assert_eq!(call(&i, "grow0", &[Val::I32(4)]), Ok(vec![Val::I32(8)]));
    assert_eq!(call(&i, "grow1", &[Val::I32(1)]), Ok(vec![Val::I32(1)]));
    assert_eq!(call(&i, "grow1", &[Val::I32(1)]), Ok(vec![Val::I32(-1)]));
    // The second memory is named by its index.
    let m = load(r#"(module (memory 1) (memory 3))"#);
    let msg = error_message(instantiate_with(&m, &[], &memory_limit(2 << 16)));
    assert_eq!(msg, "memory 1 needs at least 192K but --max-memory is 128K");
}

#[test]
fn table_limits() {
    let m = load(
        r#"(module
          (table (export "t") 2 funcref)
          (func (export "grow") (param i32) (result i32)
            (table.grow (ref.null func) (local.get 0))))"#,
    );
    let i = instantiate_with(&m, &[], &table_limit(10)).unwrap();
    assert_eq!(call(&i, "grow", &[Val::I32(8)]), Ok(vec![Val::I32(2)]));
    assert_eq!(call(&i, "grow", &[Val::I32(1)]), Ok(vec![Val::I32(-1)]));
    let Some(Extern::Table(t)) = i.export("t") else {
        panic!("no table export")
    };
    assert_eq!(t.size(), 10);
    assert_eq!(t.grow(1, Val::FuncRef(0)), None);

    let m = load(r#"(module (table 1 funcref) (table 100 externref))"#);
    let msg = error_message(instantiate_with(&m, &[], &table_limit(50)));
    assert_eq!(
        msg,
        "table 1 needs at least 100 elements but --max-table-elements is 50"
    );
    assert!(instantiate_with(&m, &[], &table_limit(100)).is_ok());
}

/// `$down(n)` recurses n deep; each frame keeps some locals live across the call so
/// that frames have a realistic size.
const RECURSE: &str = r#"(module
  (func $down (export "down") (param i32) (result i32)
    (local i64 i64 i64 i64)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else
        (local.set 1 (i64.extend_i32_u (local.get 0)))
        (local.set 2 (i64.mul (local.get 1) (local.get 1)))
        (i32.add
          (call $down (i32.sub (local.get 0) (i32.const 1)))
          (i32.wrap_i64 (i64.add (local.get 1) (local.get 2))))))))"#;

fn recurse_on_stack(module: &Arc<Module>, stack: u64, depth: i32) -> Result<(), Trap> {
    let module = module.clone();
    traps::run_on_wasm_stack_with(stack, move || {
        let i = instantiate_with(&module, &[], &Limits::default()).unwrap();
        call(&i, "down", &[Val::I32(depth)])
            .map(|_| ())
            .map_err(|t| {
                assert!(
                    t.backtrace.iter().all(|f| f.ends_with("!down")),
                    "{:?}",
                    t.backtrace
                );
                t.trap
            })
    })
    .expect("the wasm thread starts")
}

#[test]
fn the_wasm_stack_size_is_a_parameter() {
    let m = load(RECURSE);
    // 100 000 frames of a few dozen bytes: too deep for 256 KiB, fine with 8 MiB.
    assert_eq!(
        recurse_on_stack(&m, 256 << 10, 100_000),
        Err(Trap::StackOverflow)
    );
    assert_eq!(recurse_on_stack(&m, 8 << 20, 100_000), Ok(()));
    // A shallow recursion fits both.
    assert_eq!(recurse_on_stack(&m, 256 << 10, 1_000), Ok(()));
    assert_eq!(recurse_on_stack(&m, 8 << 20, 1_000), Ok(()));
    // The default is 8 MiB.
    let module = m.clone();
    let default = traps::run_on_wasm_stack(move || {
        let i = instantiate_with(&module, &[], &Limits::default()).unwrap();
        call(&i, "down", &[Val::I32(100_000)]).map(|_| ())
    })
    .unwrap();
    assert_eq!(default, Ok(()));
}

#[test]
fn wasm_stack_bounds_are_checked() {
    let too_small = traps::run_on_wasm_stack_with(1024, || unreachable!()).unwrap_err();
    assert_eq!(too_small.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(
        too_small.to_string(),
        "a wasm stack of 1K is too small: the minimum is 64K"
    );
    let too_large = traps::run_on_wasm_stack_with(8 << 30, || unreachable!()).unwrap_err();
    assert_eq!(
        too_large.to_string(),
        "a wasm stack of 8G is too large: the maximum is 4G"
    );
    assert_eq!(
        traps::run_on_wasm_stack_with(abi::policy::MIN_WASM_STACK, || 5).unwrap(),
        5
    );
}

// ---------------------------------------------------------------------------
// Timeout
// ---------------------------------------------------------------------------

const SPIN: &str = r#"(module
  (import "env" "block" (func $block))
  (func $spin (export "spin") (loop (br 0)))
  (func $blocked (export "blocked") (call $block) (call $spin))
  (func (export "block_only") (call $block))
  (func (export "quick") (result i32) (i32.const 7))
  (func (export "count") (param i32) (result i32)
    (loop $l
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br_if $l (local.get 0)))
    (local.get 0)))"#;

thread_local! {
    /// The read end of a pipe `block` reads one byte from (per thread: tests run in
    /// parallel).
    static BLOCK_FD: Cell<i32> = const { Cell::new(-1) };
    /// What that read returned (-1 - errno on failure).
    static BLOCK_RESULT: Cell<i64> = const { Cell::new(i64::MIN) };
}

/// A host function blocked in a system call: reads one byte from `BLOCK_FD`.
extern "C" fn block(_vmctx: *mut u8) {
    let mut byte = 0u8;
    let fd = BLOCK_FD.get();
    // SAFETY: reads one byte into a local.
    let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
    let result = if n < 0 {
        -1 - i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        n as i64
    };
    BLOCK_RESULT.set(result);
}

fn spin_instance() -> InstanceHandle {
    let m = load(SPIN);
    let block = Extern::HostFunc(HostFunc {
        ty: FuncType {
            params: vec![],
            results: vec![],
        },
        code: block as *const u8,
    });
    instantiate_with(&m, &[("env", "block", block)], &Limits::default()).unwrap()
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

/// Generous: the machine running the tests may be loaded.
const SLACK: Duration = Duration::from_secs(3);

#[test]
fn timeout_interrupts_wasm_with_a_backtrace() {
    let i = spin_instance();
    let start = Instant::now();
    let guard = interrupt::arm(Duration::from_millis(100), OnHost::WaitForWasm).unwrap();
    let trap = call(&i, "spin", &[]).unwrap_err();
    let elapsed = start.elapsed();
    assert!(guard.interrupted());
    drop(guard);
    assert_eq!(trap.trap, Trap::Interrupt);
    assert_eq!(trap.message(), "interrupt");
    assert!(trap.report().starts_with("wasm trap: interrupt\n"));
    assert_eq!(trap.backtrace.len(), 1, "{:?}", trap.backtrace);
    assert!(trap.backtrace[0].ends_with("!spin"), "{:?}", trap.backtrace);
    assert!(
        elapsed >= Duration::from_millis(100) && elapsed < Duration::from_millis(100) + SLACK,
        "{elapsed:?}"
    );
    // The thread and the instance keep working, and a new timeout can be armed.
    assert_eq!(call(&i, "quick", &[]), Ok(vec![Val::I32(7)]));
    let guard = interrupt::arm(Duration::from_millis(20), OnHost::WaitForWasm).unwrap();
    let trap = call(&i, "blocked", &[]);
    // `blocked` calls `block` first, which fails at once on fd -1 (EBADF) unless a
    // test set it; either way the loop after it is interrupted.
    assert_eq!(trap.unwrap_err().trap, Trap::Interrupt);
    drop(guard);
}

#[test]
fn an_expired_timeout_interrupts_at_once() {
    let i = spin_instance();
    for _ in 0..20 {
        let guard = interrupt::arm(Duration::ZERO, OnHost::WaitForWasm).unwrap();
        assert_eq!(call(&i, "spin", &[]).unwrap_err().trap, Trap::Interrupt);
        guard.finish();
    }
}

#[test]
fn in_exit_process_mode_wasm_code_still_traps_normally() {
    let i = spin_instance();
    let guard = interrupt::arm(
        Duration::from_millis(50),
        OnHost::exit_process(|_| panic!("the thread was in wasm: no process exit")),
    )
    .unwrap();
    let trap = call(&i, "spin", &[]).unwrap_err();
    guard.finish();
    assert_eq!(trap.trap, Trap::Interrupt);
    assert!(trap.backtrace[0].ends_with("!spin"), "{:?}", trap.backtrace);
}

#[test]
fn a_finished_run_gets_no_late_signal() {
    let i = spin_instance();
    let guard = interrupt::arm(Duration::from_millis(50), OnHost::WaitForWasm).unwrap();
    assert_eq!(call(&i, "quick", &[]), Ok(vec![Val::I32(7)]));
    guard.finish();
    let before = interrupt::signals_handled_here();
    // Busy in wasm well past the deadline.
    let start = Instant::now();
    let mut runs = 0;
    while start.elapsed() < Duration::from_millis(300) {
        assert_eq!(
            call(&i, "count", &[Val::I32(1_000_000)]),
            Ok(vec![Val::I32(0)])
        );
        runs += 1;
    }
    assert!(runs > 0);
    assert_eq!(interrupt::signals_handled_here(), before);
    // Only one timeout per thread at a time.
    let guard = interrupt::arm(Duration::from_secs(60), OnHost::WaitForWasm).unwrap();
    assert!(interrupt::arm(Duration::from_secs(60), OnHost::WaitForWasm).is_err());
    drop(guard);
}

#[test]
fn a_host_call_is_not_interrupted_in_wait_for_wasm_mode() {
    std::thread::spawn(|| {
        let i = spin_instance();
        let (read, write) = pipe();
        BLOCK_FD.set(read);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            // SAFETY: writes one byte from a local to our pipe.
            assert_eq!(unsafe { libc::write(write, b"x".as_ptr().cast(), 1) }, 1);
        });
        let start = Instant::now();
        let guard = interrupt::arm(Duration::from_millis(50), OnHost::WaitForWasm).unwrap();
        let before = interrupt::signals_handled_here();
        let trap = call(&i, "blocked", &[]).unwrap_err();
        let elapsed = start.elapsed();
        let signals = interrupt::signals_handled_here() - before;
        drop(guard);
        writer.join().unwrap();
        BLOCK_FD.set(-1);
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(read);
            libc::close(write);
        }
        // The read was signalled several times but completed (SA_RESTART: no EINTR),
        // then the loop after it was interrupted.
        assert_eq!(BLOCK_RESULT.get(), 1);
        assert!(signals > 1, "{signals}");
        assert_eq!(trap.trap, Trap::Interrupt);
        assert!(trap.backtrace[0].ends_with("!spin"), "{:?}", trap.backtrace);
        assert!(
            elapsed >= Duration::from_millis(400) && elapsed < Duration::from_millis(400) + SLACK,
            "{elapsed:?}"
        );
    })
    .join()
    .unwrap();
}

/// Child processes of the tests below: this test binary re-executed with
/// `WASMC_LIMITS_CHILD` naming the scenario (the test does nothing otherwise).
#[test]
fn child_process() {
    let Ok(scenario) = std::env::var("WASMC_LIMITS_CHILD") else {
        return;
    };
    let i = spin_instance();
    match scenario.as_str() {
        "blocked-forever" | "blocked-masked" => {
            if scenario == "blocked-masked" {
                // The host call runs with the signal blocked: it is never handled.
                // SAFETY: changes this thread's signal mask with a valid set.
                unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, interrupt::interrupt_signal());
                    libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                }
            }
            let (read, _write) = pipe();
            BLOCK_FD.set(read);
            let _guard = interrupt::arm(
                Duration::from_millis(200),
                OnHost::exit_process(|trap| {
                    eprint!("{}", trap.report());
                    134
                }),
            )
            .unwrap();
            println!("output before the timeout");
            let _ = call(&i, "blocked", &[]);
            println!("the call returned");
            std::process::exit(0);
        }
        // proc_exit racing with the watchdog: whoever claims first ends the process.
        "exit-after-claim" | "exit-before-claim" => {
            let (read, write) = pipe();
            BLOCK_FD.set(read);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                // SAFETY: writes one byte from a local to our pipe.
                unsafe { libc::write(write, b"x".as_ptr().cast(), 1) };
            });
            let _guard = interrupt::arm(
                Duration::from_millis(50),
                OnHost::exit_process(|trap| {
                    // A slow report: the wasm thread gets back from the host meanwhile.
                    std::thread::sleep(Duration::from_millis(600));
                    eprint!("{}", trap.report());
                    134
                }),
            )
            .unwrap();
            if scenario == "exit-before-claim" {
                interrupt::claim_exit();
            }
            call(&i, "block_only", &[]).unwrap();
            // As `proc_exit(0)` would.
            interrupt::claim_exit();
            println!("exit 0");
            std::process::exit(0);
        }
        // The timeout's signal sent from outside is not a timeout.
        "kill-with-the-signal" => {
            let _guard = interrupt::arm(Duration::from_secs(60), OnHost::WaitForWasm).unwrap();
            // SAFETY: signals our own process.
            unsafe { libc::kill(libc::getpid(), interrupt::interrupt_signal()) };
            std::thread::sleep(Duration::from_millis(200));
            println!("survived");
        }
        other => panic!("unknown scenario {other}"),
    }
}

fn run_child(scenario: &str) -> (std::process::Output, Duration) {
    let start = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WASMC_LIMITS_CHILD", scenario)
        .output()
        .unwrap();
    (out, start.elapsed())
}

#[test]
fn exit_process_mode_stops_a_thread_blocked_in_the_host() {
    for scenario in ["blocked-forever", "blocked-masked"] {
        exit_process_child(scenario);
    }
}

fn exit_process_child(scenario: &str) {
    let (out, elapsed) = run_child(scenario);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(134), "{stdout}\n{stderr}");
    assert!(stdout.contains("output before the timeout"), "{stdout}");
    assert!(!stdout.contains("the call returned"), "{stdout}");
    assert!(stderr.contains("wasm trap: interrupt\n"), "{stderr}");
    assert!(elapsed < Duration::from_millis(200) + SLACK, "{elapsed:?}");
}

#[test]
fn a_process_exit_and_the_watchdog_never_both_report() {
    // The watchdog claimed first (the thread was blocked in the host for longer than
    // timeout + grace): the thread's exit waits, the watchdog's report and status win.
    let (out, _) = run_child("exit-after-claim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(134), "{stdout}\n{stderr}");
    assert!(!stdout.contains("exit 0"), "{stdout}");
    assert!(stderr.contains("wasm trap: interrupt"), "{stderr}");
    // The thread claimed first: the watchdog stands down.
    let (out, _) = run_child("exit-before-claim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("exit 0"), "{stdout}");
    assert!(!stderr.contains("wasm trap"), "{stderr}");
}

#[test]
fn the_signal_sent_from_outside_takes_its_default_action() {
    use std::os::unix::process::ExitStatusExt;
    let (out, _) = run_child("kill-with-the-signal");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.signal(),
        Some(interrupt::interrupt_signal()),
        "{stdout}"
    );
    assert!(!stdout.contains("survived"), "{stdout}");
}
