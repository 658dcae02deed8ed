//! Readiness of WASI 0.2 pollables (`wasi:io/poll`), modelled on `wasmtime run`.
//!
//! A pollable either waits for a deadline of the monotonic clock or watches a
//! stream. What is ready when:
//!
//! * **streams** as `streams` describes: stdin once it is readable (`poll(2)` on
//!   descriptor 0), a file input stream from the round after it was subscribed
//!   or read (its background read), stdout, stderr and file output streams
//!   always.
//! * **a deadline** in the future is ready once the clock reaches it; one that is
//!   already due when subscribed (`subscribe-duration(0)`, an instant in the past)
//!   *yields once* first, as wasmtime's does (so that a guest polling in a loop
//!   with a zero timeout lets other pollables be seen): `poll` reports it only if
//!   nothing else was ready in its first round, and `ready` answers false the first
//!   time.
//!
//! `poll` runs in rounds: every pollable is checked; if some are ready, their
//! indices are returned, grouped by the resource they watch (in the order those
//! resources were created, as wasmtime's table orders them) and in list order
//! within a group. Otherwise the thread sleeps in `poll(2)` on stdin (if watched)
//! until the earliest deadline, then checks again. An empty list traps.

use std::time::Instant;

/// What a pollable watches.
#[derive(Clone, Copy, Debug)]
pub(super) enum Pollable {
    Deadline(Deadline),
    /// The stream with this handle.
    Stream(u32),
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Deadline {
    /// Already due when subscribed; `yielded` once it has been checked once.
    Past {
        yielded: bool,
    },
    At(Instant),
    /// Too far in the future to represent: never ready.
    Never,
}

impl Deadline {
    /// A deadline `at` (None: not representable), as subscribed at `now`.
    /// wasmtime's timers tick in milliseconds (counted from about the start of the
    /// process, `origin`), rounding a deadline up to the next tick: a deadline in
    /// the future fires at that tick, never sooner.
    pub(super) fn new(at: Option<Instant>, now: Instant, origin: Instant) -> Deadline {
        match at {
            Some(at) if at <= now => Deadline::Past { yielded: false },
            Some(at) => {
                let since = at.saturating_duration_since(origin);
                let millis = since.as_nanos().div_ceil(1_000_000);
                let tick = u64::try_from(millis)
                    .ok()
                    .and_then(|ms| origin.checked_add(std::time::Duration::from_millis(ms)));
                tick.map_or(Deadline::Never, Deadline::At)
            }
            None => Deadline::Never,
        }
    }

    /// Checks the deadline now; a past deadline's first check uses up its yield.
    pub(super) fn check(&mut self) -> Check {
        match self {
            Deadline::Past { yielded: true } => Check::Ready,
            Deadline::Past { yielded } => {
                *yielded = true;
                Check::NextRound
            }
            Deadline::At(at) if Instant::now() >= *at => Check::Ready,
            Deadline::At(at) => Check::Until(*at),
            Deadline::Never => Check::Never,
        }
    }
}

/// The outcome of checking a pollable once.
#[derive(Clone, Copy)]
pub(super) enum Check {
    Ready,
    /// Ready from the next round on (a past deadline's yield, a background read).
    NextRound,
    /// Waiting for stdin to become readable.
    Stdin,
    Until(Instant),
    Never,
}

impl Pollable {
    /// The resource wasmtime groups ready pollables by (and orders them by its
    /// creation): the watched stream; a deadline is its own.
    pub(super) fn watched(&self, own_handle: u32) -> u32 {
        match self {
            Pollable::Stream(handle) => *handle,
            Pollable::Deadline(_) => own_handle,
        }
    }
}

/// `wasi:io/poll.poll` over the pollables `handles`, visited in `order` (by
/// watched resource, then list order): checks them in rounds with `check(handle)`
/// until one is ready, sleeping in between, and returns the indices of the ready
/// ones. A handle listed twice is checked once per round (both indices are ready
/// together, as in wasmtime).
pub(super) fn poll(
    handles: &[u32],
    order: &[usize],
    mut check: impl FnMut(u32) -> Check,
) -> Vec<u32> {
    loop {
        let mut ready = Vec::new();
        let (mut next_round, mut stdin, mut earliest) = (false, false, None::<Instant>);
        let mut checked = std::collections::HashMap::new();
        for &i in order {
            let handle = handles[i];
            let outcome = *checked.entry(handle).or_insert_with(|| check(handle));
            match outcome {
                Check::Ready => ready.push(i as u32),
                Check::NextRound => next_round = true,
                Check::Stdin => stdin = true,
                Check::Until(at) => earliest = Some(earliest.map_or(at, |e| e.min(at))),
                Check::Never => {}
            }
        }
        if !ready.is_empty() {
            return ready;
        }
        if next_round {
            continue;
        }
        let timeout = earliest.map(|at| at.saturating_duration_since(Instant::now()));
        if stdin {
            // Wakes up for stdin or the deadline, whichever comes first.
            stdin_ready(timeout.map(|t| t.as_millis().saturating_add(1)));
        } else if let Some(timeout) = timeout {
            std::thread::sleep(timeout);
        } else {
            // Nothing can ever become ready (only deadlines too far away to
            // represent): wasmtime waits forever too.
            loop {
                std::thread::park();
            }
        }
    }
}

/// Whether stdin is readable (data, end of file or an error) within `timeout_ms`
/// milliseconds (None: wait as long as it takes).
pub(super) fn stdin_ready(timeout_ms: Option<u128>) -> bool {
    let timeout = match timeout_ms {
        None => -1,
        Some(ms) => ms.min(i32::MAX as u128) as i32,
    };
    let mut fds = [libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    }];
    loop {
        // SAFETY: `fds` is one valid pollfd that outlives the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, timeout) };
        if n >= 0 {
            return n > 0;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // A descriptor poll(2) cannot watch: report it readable, so that the
            // read that follows answers with the real error.
            return true;
        }
    }
}

/// Reads up to `len` bytes from stdin with one read(2), unbuffered: what the
/// guest did not ask for stays in the pipe, where `poll(2)` sees it. An empty
/// result is the end of the input.
pub(super) fn read_stdin(len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    loop {
        // SAFETY: `buf` is valid for `len` bytes of writes.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), len) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_past_deadline_yields_one_round() {
        let now = Instant::now();
        let mut past = Deadline::new(Some(now), now, now);
        assert!(matches!(past.check(), Check::NextRound));
        assert!(matches!(past.check(), Check::Ready));
        // A future deadline fires on the next millisecond tick, never before.
        let at = now + Duration::from_micros(10);
        match Deadline::new(Some(at), now, now) {
            Deadline::At(tick) => assert_eq!(tick, now + Duration::from_millis(1)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(Deadline::new(None, now, now), Deadline::Never));
    }

    #[test]
    fn poll_reports_every_ready_pollable_of_the_round_in_visit_order() {
        // Handles 1..=3: 1 yields a round, 2 is ready, 3 waits; listed [3, 1, 2, 2].
        let handles = [3, 1, 2, 2];
        let order = [1, 2, 3, 0];
        let mut yielded = false;
        let ready = poll(&handles, &order, |h| match h {
            1 if !yielded => {
                yielded = true;
                Check::NextRound
            }
            1 | 2 => Check::Ready,
            _ => Check::Until(Instant::now() + Duration::from_secs(60)),
        });
        // Round one: handle 2 (listed twice, checked once) is ready; 1 yields.
        assert_eq!(ready, vec![2, 3]);
        // Only a yielding pollable: ready in the second round, without sleeping.
        let start = Instant::now();
        let mut rounds = 0;
        let ready = poll(&[7], &[0], |_| {
            rounds += 1;
            if rounds == 1 {
                Check::NextRound
            } else {
                Check::Ready
            }
        });
        assert_eq!((ready, rounds), (vec![0], 2));
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
