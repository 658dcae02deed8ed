//! `memory.atomic.wait32/64` and `memory.atomic.notify`: wait queues keyed by the
//! native address of the waited-on word.
//!
//! A wait checks the value and enqueues itself under the lock of the address's
//! bucket, and a notify dequeues under the same lock, so a notify that follows a
//! store of a new value either finds the waiter in the queue or the waiter sees the
//! new value and does not sleep: no wake-up is lost. Waiters are woken in the
//! order they started waiting (FIFO, as the proposal specifies), each through its
//! own condition variable, so a notify of one waiter does not wake the others.
//! Native addresses are unique per memory (reservations never overlap while the
//! memory lives, and a memory outlives every thread that can wait on it).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::abi::{ATOMIC_WAIT_NOT_SHARED, ATOMIC_WAIT_OUT_OF_BOUNDS};
use crate::instance::Instance;
use crate::memory::Memory;

/// Results of a wait, as wasm sees them.
const WOKEN: u32 = 0;
const NOT_EQUAL: u32 = 1;
const TIMED_OUT: u32 = 2;

/// Number of independently locked buckets (a power of two).
const BUCKETS: usize = 64;

struct Waiter {
    /// Set (under the bucket lock) by the notify that dequeued this waiter.
    woken: AtomicBool,
    condvar: Condvar,
}

type Queues = BTreeMap<usize, VecDeque<Arc<Waiter>>>;

fn bucket(addr: usize) -> MutexGuard<'static, Queues> {
    static TABLE: [Mutex<Queues>; BUCKETS] = [const { Mutex::new(BTreeMap::new()) }; BUCKETS];
    // Words are at least 4-byte aligned; mix the bits above that.
    let index = ((addr >> 2) ^ (addr >> 12)) & (BUCKETS - 1);
    TABLE[index].lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits on the word at `addr` while `still_expected()` (evaluated under the
/// bucket lock) holds, for at most `timeout` (`None`: forever).
fn wait(addr: usize, still_expected: impl FnOnce() -> bool, timeout: Option<Duration>) -> u32 {
    let mut queues = bucket(addr);
    if !still_expected() {
        return NOT_EQUAL;
    }
    // A deadline beyond what `Instant` can represent is as good as none.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let waiter = Arc::new(Waiter {
        woken: AtomicBool::new(false),
        condvar: Condvar::new(),
    });
    queues.entry(addr).or_default().push_back(waiter.clone());
    loop {
        if waiter.woken.load(Ordering::Relaxed) {
            return WOKEN;
        }
        let guard = match deadline {
            None => waiter
                .condvar
                .wait(queues)
                .unwrap_or_else(|e| e.into_inner()),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    dequeue(&mut queues, addr, &waiter);
                    return TIMED_OUT;
                }
                waiter
                    .condvar
                    .wait_timeout(queues, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
        queues = guard;
    }
}

/// Removes a waiter that timed out (it is still queued: `woken` is unset).
fn dequeue(queues: &mut Queues, addr: usize, waiter: &Arc<Waiter>) {
    if let Some(queue) = queues.get_mut(&addr) {
        queue.retain(|w| !Arc::ptr_eq(w, waiter));
        if queue.is_empty() {
            queues.remove(&addr);
        }
    }
}

/// Wakes up to `count` waiters of `addr`, oldest first; returns how many.
fn notify(addr: usize, count: u32) -> u32 {
    let mut queues = bucket(addr);
    let Some(queue) = queues.get_mut(&addr) else {
        return 0;
    };
    let mut woken = 0;
    while woken < count {
        let Some(waiter) = queue.pop_front() else {
            break;
        };
        waiter.woken.store(true, Ordering::Relaxed);
        waiter.condvar.notify_one();
        woken += 1;
    }
    if queue.is_empty() {
        queues.remove(&addr);
    }
    woken
}

/// The instance owning `vmctx`.
///
/// # Safety
/// `vmctx` must be a live instance's context (generated code passes its own).
unsafe fn instance<'a>(vmctx: *mut u8) -> &'a Instance {
    // SAFETY: word 0 of every VMContext is its Instance (abi::layout).
    unsafe { &**(vmctx as *const *const Instance) }
}

/// The native address of the `size`-byte word at `index + offset` of memory `mem`,
/// if it is in bounds. Generated code traps on a misaligned address before calling;
/// checked again here because the atomic accesses below require alignment.
fn word_address(memory: &Memory, index: u64, offset: u64, size: u64) -> Option<usize> {
    let ea = index.checked_add(offset)?;
    let addr = memory.checked_range(ea, size)? as usize;
    addr.is_multiple_of(size as usize).then_some(addr)
}

/// A wasm timeout in nanoseconds: negative means forever.
fn timeout(ns: i64) -> Option<Duration> {
    u64::try_from(ns).ok().map(Duration::from_nanos)
}

/// Builtin `memory_atomic_wait32` (see `abi::Builtins`).
pub(crate) extern "C" fn memory_atomic_wait32(
    vmctx: *mut u8,
    mem: u32,
    index: u64,
    offset: u64,
    expected: u32,
    timeout_ns: i64,
) -> u32 {
    // SAFETY: called by generated code with its own context.
    let Some(memory) = (unsafe { instance(vmctx) }).memory(mem) else {
        return ATOMIC_WAIT_OUT_OF_BOUNDS;
    };
    let Some(addr) = word_address(memory, index, offset, 4) else {
        return ATOMIC_WAIT_OUT_OF_BOUNDS;
    };
    if !memory.is_shared() {
        return ATOMIC_WAIT_NOT_SHARED;
    }
    // SAFETY: `addr` is a 4-aligned word inside accessible memory, which never
    // becomes inaccessible while the memory lives; other threads access it only
    // through atomic instructions or wasm's racy plain accesses.
    let word = unsafe { AtomicU32::from_ptr(addr as *mut u32) };
    wait(
        addr,
        || word.load(Ordering::SeqCst) == expected,
        timeout(timeout_ns),
    )
}

/// Builtin `memory_atomic_wait64` (see `abi::Builtins`).
pub(crate) extern "C" fn memory_atomic_wait64(
    vmctx: *mut u8,
    mem: u32,
    index: u64,
    offset: u64,
    expected: u64,
    timeout_ns: i64,
) -> u32 {
    // SAFETY: called by generated code with its own context.
    let Some(memory) = (unsafe { instance(vmctx) }).memory(mem) else {
        return ATOMIC_WAIT_OUT_OF_BOUNDS;
    };
    let Some(addr) = word_address(memory, index, offset, 8) else {
        return ATOMIC_WAIT_OUT_OF_BOUNDS;
    };
    if !memory.is_shared() {
        return ATOMIC_WAIT_NOT_SHARED;
    }
    // SAFETY: as in `memory_atomic_wait32`, for an 8-aligned word.
    let word = unsafe { AtomicU64::from_ptr(addr as *mut u64) };
    wait(
        addr,
        || word.load(Ordering::SeqCst) == expected,
        timeout(timeout_ns),
    )
}

/// Builtin `memory_atomic_notify` (see `abi::Builtins`).
pub(crate) extern "C" fn memory_atomic_notify(
    vmctx: *mut u8,
    mem: u32,
    index: u64,
    offset: u64,
    count: u32,
) -> u64 {
    // SAFETY: called by generated code with its own context.
    let Some(memory) = (unsafe { instance(vmctx) }).memory(mem) else {
        return u64::MAX;
    };
    let Some(addr) = word_address(memory, index, offset, 4) else {
        return u64::MAX;
    };
    // Nobody can wait on an unshared memory (the wait traps): nothing to wake.
    if !memory.is_shared() {
        return 0;
    }
    u64::from(notify(addr, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::thread;

    #[test]
    fn wait_returns_not_equal_and_times_out() {
        let word = AtomicU32::new(5);
        let addr = &word as *const _ as usize;
        assert_eq!(
            wait(addr, || word.load(Ordering::SeqCst) == 4, None),
            NOT_EQUAL
        );
        let start = Instant::now();
        assert_eq!(
            wait(addr, || true, Some(Duration::from_millis(20))),
            TIMED_OUT
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(wait(addr, || true, Some(Duration::ZERO)), TIMED_OUT);
        // The timed-out waiters left the queue.
        assert_eq!(notify(addr, u32::MAX), 0);
    }

    #[test]
    fn notify_wakes_in_order_and_counts() {
        static WORD: AtomicU32 = AtomicU32::new(0);
        let addr = &WORD as *const _ as usize;
        let waiters: Vec<_> = (0..4)
            .map(|_| thread::spawn(move || wait(addr, || WORD.load(Ordering::SeqCst) == 0, None)))
            .collect();
        // Wake them two at a time once all four are queued.
        let mut woken = 0;
        while woken < 4 {
            woken += notify(addr, 2);
            thread::yield_now();
        }
        for w in waiters {
            assert_eq!(w.join().unwrap(), WOKEN);
        }
        assert_eq!(notify(addr, 1), 0);
    }
}
