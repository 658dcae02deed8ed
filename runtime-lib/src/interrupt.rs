//! Wall-clock timeouts (`--timeout`, like wasmtime's `-W timeout`) without any cost
//! while wasm runs: generated code never polls.
//!
//! [`arm`] starts a *watchdog* thread that sleeps until the deadline and then sends
//! the wasm thread [`interrupt_signal`] with `pthread_kill`. The handler runs on the
//! thread's alternate signal stack and looks at the interrupted program counter:
//!
//! * in wasm code: the thread is redirected to the trap unwind exactly like a fault
//!   (`traps::interrupt_wasm`), so the innermost `catch_traps` returns
//!   [`Trap::Interrupt`] ("interrupt") with the wasm backtrace;
//! * anywhere else (a WASI call, possibly blocked forever in a sleep or a read; the
//!   runtime between calls): the thread cannot be unwound safely, so the handler only
//!   reports "in host" and returns. What happens then is the caller's choice,
//!   [`OnHost`]: an executable stops the process from the watchdog thread (after a
//!   short grace period in which the watchdog tries again, so that a thread that was
//!   only passing through the host still gets a trap with a backtrace); an in-process
//!   caller re-signals until the thread is back in wasm code. A call blocked in the
//!   host is then *not* interrupted.
//!
//! Exactly one side reports: the watchdog claims the process exit with one
//! compare-and-swap on the state word, and the wasm thread disarms with another
//! ([`InterruptGuard`]'s drop, [`claim_exit`]); whoever loses does not report (the
//! wasm thread then waits for the watchdog to end the process). At most one signal is
//! outstanding: the watchdog sends the next only after the handler acknowledged the
//! previous one. Disarming takes the lock under which the watchdog signals, so no
//! signal is sent after the guard is gone; one already sent but not yet delivered
//! finds no armed guard on the thread and is ignored.
//!
//! The handler is installed with `SA_RESTART`, so restartable system calls (reads
//! and writes on pipes, terminals and sockets, `open` of a FIFO, `wait`) simply
//! continue; the WASI implementation retries the others (`poll`, sleeps) on `EINTR`,
//! so the guest never sees an `EINTR` caused by the timeout. The signal is a
//! real-time signal nobody else should use; one that comes from outside the process
//! (`kill`) is passed on to the previous disposition (by default it terminates the
//! process, as it would without wasmc).
//!
//! # Use
//! An executable arms the timeout on the wasm thread before instantiating (the start
//! function is wasm code too) and disarms it before reporting the outcome:
//!
//! ```ignore
//! let guard = limits.timeout().map(|t| {
//!     interrupt::arm(t, OnHost::exit_process(|trap| report_trap(trap)))
//! }).transpose()?;
//! let outcome = /* instantiate, call _start */;
//! drop(guard); // never returns if the watchdog is already reporting
//! report(outcome)
//! ```
//!
//! and `proc_exit` calls [`claim_exit`] before ending the process. In-process
//! callers use [`OnHost::WaitForWasm`] around each call.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use crate::abi::Trap;
use crate::traps::{self, TrapInfo};

/// What the watchdog does when the deadline passes while the thread is not in wasm
/// code.
pub enum OnHost {
    /// Keep signalling until the thread is back in wasm code (then it traps). For
    /// in-process callers (`wasmc wast`, embedders), which must not exit the
    /// process: a call blocked in the host is not interrupted.
    WaitForWasm,
    /// For executables: if the thread is still outside wasm code after `grace`, the
    /// watchdog calls `report` with the [`Trap::Interrupt`] trap (no backtrace) and
    /// ends the process with the status it returns (`std::process::exit`).
    ExitProcess {
        grace: Duration,
        report: Box<dyn FnOnce(&TrapInfo) -> i32 + Send>,
    },
}

impl OnHost {
    /// [`OnHost::ExitProcess`] with the default grace period ([`EXIT_GRACE`]).
    pub fn exit_process(report: impl FnOnce(&TrapInfo) -> i32 + Send + 'static) -> OnHost {
        OnHost::ExitProcess {
            grace: EXIT_GRACE,
            report: Box::new(report),
        }
    }
}

impl std::fmt::Debug for OnHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OnHost::WaitForWasm => f.write_str("WaitForWasm"),
            OnHost::ExitProcess { grace, .. } => f
                .debug_struct("ExitProcess")
                .field("grace", grace)
                .finish_non_exhaustive(),
        }
    }
}

/// How long [`OnHost::exit_process`] keeps trying to catch the thread in wasm code
/// before it ends the process.
pub const EXIT_GRACE: Duration = Duration::from_millis(20);

/// Pause between signals while the thread is outside wasm code: short at first (it
/// may be in a quick host call), then doubling up to the maximum (it may be blocked
/// for a long time, and every signal interrupts its system call).
const RETRY_FIRST: Duration = Duration::from_millis(1);
const RETRY_MAX: Duration = Duration::from_millis(50);

// Values of `Shared::state`.
/// Waiting for the deadline, or signalling.
const ARMED: u32 = 0;
/// The thread was interrupted in wasm code: it reports the trap itself.
const DELIVERED: u32 = 1;
/// The watchdog owns the report and ends the process.
const CLAIMED: u32 = 2;
/// The run finished (or the guard was dropped) first.
const DISARMED: u32 = 3;

// Values of `Shared::outcome` (written by the handler).
const IN_WASM: u32 = 1;
const IN_HOST: u32 = 2;

/// State shared by the guard, the watchdog and the signal handler (which only uses
/// the atomics).
struct Shared {
    state: AtomicU32,
    /// Signals handled so far; the watchdog waits for it to move before re-sending.
    acks: AtomicU64,
    /// Where the last handled signal found the thread.
    outcome: AtomicU32,
    /// True once the guard is being dropped: the watchdog sends no further signal.
    /// The watchdog signals while holding this lock.
    stopped: Mutex<bool>,
    wake: Condvar,
    thread: libc::pthread_t,
}

// SAFETY: `pthread_t` is a plain thread id; everything else is Sync.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

thread_local! {
    /// The armed guard's state on this thread, for the signal handler (no destructor:
    /// readable from a signal handler at any time).
    static ARMED_HERE: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
    /// Interrupt signals handled on this thread (see [`signals_handled_here`]).
    static HANDLED_HERE: Cell<u64> = const { Cell::new(0) };
    /// Disarms when the thread exits with a guard still armed (a leaked guard), so
    /// that the watchdog never signals a thread that no longer exists.
    static EXIT_DISARM: ExitDisarm = const { ExitDisarm(Cell::new(None)) };
}

struct ExitDisarm(Cell<Option<Arc<Shared>>>);

impl Drop for ExitDisarm {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            ARMED_HERE.set(std::ptr::null());
            stop_signalling(&shared);
        }
    }
}

/// Keeps the timeout armed for the current thread; dropping it disarms the timeout
/// (see [`InterruptGuard::finish`]). Not `Send`: it belongs to the thread it was
/// armed on.
pub struct InterruptGuard {
    shared: Arc<Shared>,
    watchdog: Option<std::thread::JoinHandle<()>>,
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for InterruptGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterruptGuard")
            .field("state", &self.shared.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Arms a timeout of `timeout` for the current thread (the one that will run wasm):
/// once it expires, wasm code running on this thread traps with
/// [`Trap::Interrupt`]; see the module docs and [`OnHost`] for a thread that is in
/// host code then. One interrupt per guard: after it was delivered the thread runs
/// normally again. Fails when a guard is already armed on this thread or the
/// watchdog thread cannot be created.
pub fn arm(timeout: Duration, on_host: OnHost) -> std::io::Result<InterruptGuard> {
    if !ARMED_HERE.get().is_null() {
        return Err(std::io::Error::other(
            "a timeout is already armed on this thread",
        ));
    }
    traps::prepare_thread();
    install_handler();
    let deadline = Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(u32::MAX as u64));
    let shared = Arc::new(Shared {
        state: AtomicU32::new(ARMED),
        acks: AtomicU64::new(0),
        outcome: AtomicU32::new(0),
        stopped: Mutex::new(false),
        wake: Condvar::new(),
        // SAFETY: pthread_self has no preconditions.
        thread: unsafe { libc::pthread_self() },
    });
    // Armed before the watchdog starts: a signal that found nothing armed would go
    // unacknowledged.
    ARMED_HERE.set(Arc::as_ptr(&shared));
    EXIT_DISARM.with(|slot| slot.0.set(Some(shared.clone())));
    let watchdog_shared = shared.clone();
    let watchdog = std::thread::Builder::new()
        .name("wasm-timeout".into())
        .stack_size(256 << 10)
        .spawn(move || watchdog(&watchdog_shared, deadline, on_host))
        .inspect_err(|_| {
            ARMED_HERE.set(std::ptr::null());
            EXIT_DISARM.with(|slot| drop(slot.0.take()));
        })?;
    Ok(InterruptGuard {
        shared,
        watchdog: Some(watchdog),
        _not_send: PhantomData,
    })
}

impl InterruptGuard {
    /// Disarms the timeout; the same as dropping the guard. Call it when the run is
    /// over and *before* reporting its outcome: if the watchdog already claimed the
    /// report ([`OnHost::ExitProcess`]), this never returns (the watchdog is ending
    /// the process), so that the outcome is not reported twice.
    pub fn finish(self) {}

    /// Whether the deadline passed and the interrupt reached wasm code (the run
    /// then ended with [`Trap::Interrupt`]).
    pub fn interrupted(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) == DELIVERED
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        ARMED_HERE.set(std::ptr::null());
        // `try_with`: the guard may be dropped while the thread's locals are destroyed.
        let _ = EXIT_DISARM.try_with(|slot| drop(slot.0.take()));
        let claimed = self.shared.state.compare_exchange(
            ARMED,
            DISARMED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) == Err(CLAIMED);
        if claimed {
            wait_for_exit();
        }
        stop_signalling(&self.shared);
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
    }
}

/// For code that ends the process from the wasm thread while a timeout may be armed
/// (WASI `proc_exit`): returns when the caller may exit, and never returns when the
/// watchdog has already claimed the exit (it is reporting the interrupt and ending
/// the process), so that the process ends once, with one report.
pub fn claim_exit() {
    let shared = ARMED_HERE.get();
    if shared.is_null() {
        return;
    }
    // SAFETY: non-null only while this thread's guard (holding the Arc) is alive.
    let shared = unsafe { &*shared };
    if shared
        .state
        .compare_exchange(ARMED, DISARMED, Ordering::AcqRel, Ordering::Acquire)
        == Err(CLAIMED)
    {
        wait_for_exit();
    }
}

/// Parks the calling thread until the watchdog ends the process.
fn wait_for_exit() -> ! {
    loop {
        std::thread::park();
    }
}

/// Marks the guard stopped under the lock the watchdog signals under: once this
/// returns, no further signal is sent.
fn stop_signalling(shared: &Shared) {
    let mut stopped = shared.stopped.lock().unwrap_or_else(|e| e.into_inner());
    *stopped = true;
    shared.wake.notify_all();
}

fn watchdog(shared: &Shared, deadline: Instant, on_host: OnHost) {
    // Sleep until the deadline unless disarmed first.
    {
        let mut stopped = shared.stopped.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *stopped {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            stopped = shared
                .wake
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
    let expired = Instant::now();
    let mut pause = RETRY_FIRST;
    loop {
        let before = shared.acks.load(Ordering::Acquire);
        {
            let stopped = shared.stopped.lock().unwrap_or_else(|e| e.into_inner());
            if *stopped || shared.state.load(Ordering::Acquire) != ARMED {
                return;
            }
            // SAFETY: the thread is alive: its guard (or, if leaked, its exit) sets
            // `stopped` under this lock before the thread can end.
            unsafe { libc::pthread_kill(shared.thread, interrupt_signal()) };
        }
        // Wait for the handler's acknowledgement (the signal stays pending while the
        // thread blocks it, e.g. in a fault handler or a host call that masks
        // signals) or for the disarm.
        let grace_over = || match &on_host {
            OnHost::ExitProcess { grace, .. } => expired.elapsed() >= *grace,
            OnHost::WaitForWasm => false,
        };
        while shared.acks.load(Ordering::Acquire) == before {
            if sleep_unless_stopped(shared, Duration::from_millis(1)) {
                return;
            }
            if grace_over() {
                break;
            }
        }
        if shared.acks.load(Ordering::Acquire) != before
            && shared.outcome.load(Ordering::Acquire) == IN_WASM
        {
            return; // the thread reports the trap itself (state is DELIVERED)
        }
        if grace_over() {
            break;
        }
        if sleep_unless_stopped(shared, pause) {
            return;
        }
        pause = (pause * 2).min(RETRY_MAX);
    }
    // ExitProcess: the thread stayed outside wasm code for the whole grace period.
    let OnHost::ExitProcess { report, .. } = on_host else {
        return;
    };
    if shared
        .state
        .compare_exchange(ARMED, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return; // the run finished (or was interrupted in wasm) just now
    }
    let trap = TrapInfo {
        trap: Trap::Interrupt,
        pc: 0,
        backtrace: Vec::new(),
        message: None,
    };
    let status = report(&trap);
    std::process::exit(status);
}

/// Sleeps for `pause`; true when the guard was stopped meanwhile.
fn sleep_unless_stopped(shared: &Shared, pause: Duration) -> bool {
    let stopped = shared.stopped.lock().unwrap_or_else(|e| e.into_inner());
    if *stopped {
        return true;
    }
    let (stopped, _) = shared
        .wake
        .wait_timeout(stopped, pause)
        .unwrap_or_else(|e| e.into_inner());
    *stopped
}

// ---------------------------------------------------------------------------
// The signal
// ---------------------------------------------------------------------------

/// The signal the watchdog sends: a real-time signal from the top of the range
/// (glibc and musl reserve the bottom ones for themselves; libraries that use
/// real-time signals usually count up from `SIGRTMIN`).
pub fn interrupt_signal() -> libc::c_int {
    libc::SIGRTMAX() - 2
}

/// The action installed before ours, for signals sent from outside the process.
struct Previous(libc::sigaction);
// SAFETY: written once before our handler is installed, only read afterwards.
unsafe impl Send for Previous {}
unsafe impl Sync for Previous {}

static PREVIOUS: OnceLock<Previous> = OnceLock::new();

fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let signal = interrupt_signal();
        // SAFETY: sigaction with valid, fully initialized structures; the previous
        // action is saved before ours becomes active.
        unsafe {
            let mut previous: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, std::ptr::null(), &mut previous);
            let _ = PREVIOUS.set(Previous(previous));
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    });
}

/// How many timeout signals the current thread has handled (for tests and
/// diagnostics: a finished run must not receive any more).
#[doc(hidden)]
pub fn signals_handled_here() -> u64 {
    HANDLED_HERE.get()
}

extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (code, pid) = unsafe { ((*info).si_code, (*info).si_pid()) };
    // SAFETY: getpid has no preconditions.
    if code != libc::SI_TKILL || pid != unsafe { libc::getpid() } {
        return pass_on(signal, info, uc);
    }
    HANDLED_HERE.set(HANDLED_HERE.get() + 1);
    let shared = ARMED_HERE.get();
    if shared.is_null() {
        return; // sent just before a disarm: nothing to interrupt any more
    }
    // SAFETY: non-null only while this thread's guard (holding the Arc) is alive, and
    // the guard cannot be dropped while this handler runs on its thread.
    let shared = unsafe { &*shared };
    // The delivery is claimed (one CAS, against the watchdog's claim of the process
    // exit) only once the thread is known to be in wasm code, and before unwinding:
    // once the thread unwinds, the guard may be dropped at any time.
    let claim = || {
        shared
            .state
            .compare_exchange(ARMED, DELIVERED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    };
    // SAFETY: `uc` is the context the kernel passed to this handler, on this thread.
    let outcome = if unsafe { traps::interrupt_wasm(uc as *mut libc::ucontext_t, claim) } {
        IN_WASM
    } else {
        IN_HOST
    };
    shared.outcome.store(outcome, Ordering::Release);
    shared.acks.fetch_add(1, Ordering::AcqRel);
}

/// A signal from outside (`kill`): what would have happened without us.
fn pass_on(signal: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let Some(Previous(previous)) = PREVIOUS.get() else {
        return;
    };
    let action = previous.sa_sigaction;
    if action == libc::SIG_IGN {
        return;
    }
    if action == libc::SIG_DFL {
        // SAFETY: restores the default action and re-sends the signal to this
        // thread; it stays blocked until this handler returns, then takes effect.
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(signal, &default, std::ptr::null_mut());
            libc::raise(signal);
        }
        return;
    }
    // SAFETY: calling the previously installed handler as it was declared.
    unsafe {
        if previous.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(action);
            f(signal, info, uc);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(action);
            f(signal);
        }
    }
}
