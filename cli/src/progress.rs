//! The progress line on stderr while a compilation takes long: nothing for the first
//! two seconds (most modules are done by then), then `compiling N/M functions` and
//! `linking`, rewritten in place, and erased before wasmc prints anything else or
//! exits. Only when stderr is a terminal: logs and pipes never see it.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmc_compiler::Progress;

/// Quiet period before the line appears; `WASMC_PROGRESS_DELAY_MS` overrides it
/// (tests use 0).
const DELAY: Duration = Duration::from_secs(2);

fn delay() -> Duration {
    std::env::var("WASMC_PROGRESS_DELAY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(DELAY, Duration::from_millis)
}
/// How often the line is rewritten.
const INTERVAL: Duration = Duration::from_millis(250);

struct Shared {
    progress: Progress,
    linking: AtomicBool,
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    /// Waits up to `timeout` for [`ProgressLine`] to be dropped; true if it was.
    fn wait_stopped(&self, timeout: Duration) -> bool {
        let stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let (stopped, _) = self
            .wake
            .wait_timeout_while(stopped, timeout, |stopped| !*stopped)
            .unwrap_or_else(|e| e.into_inner());
        *stopped
    }
}

/// The progress display of one compilation; dropping it erases the line.
pub struct ProgressLine {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts the display for compiling `file` (nothing is shown when stderr is not a
    /// terminal).
    pub fn start(file: &str) -> ProgressLine {
        let shared = Arc::new(Shared {
            progress: Progress::default(),
            linking: AtomicBool::new(false),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        });
        let thread = std::io::stderr().is_terminal().then(|| {
            let shared = shared.clone();
            let file = file.to_string();
            std::thread::spawn(move || show(&shared, &file))
        });
        ProgressLine { shared, thread }
    }

    /// The counter to pass to `wasmc_compiler::compile_with_progress`.
    pub fn progress(&self) -> &Progress {
        &self.shared.progress
    }

    /// Compilation is over; the linker runs.
    pub fn linking(&self) {
        self.shared.linking.store(true, Ordering::Relaxed);
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        *self
            .shared
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn show(shared: &Shared, file: &str) {
    if shared.wait_stopped(delay()) {
        return;
    }
    let mut stderr = std::io::stderr();
    loop {
        let line = if shared.linking.load(Ordering::Relaxed) {
            format!("wasmc: {file}: linking")
        } else {
            let (done, total) = shared.progress.functions();
            let percent = (done * 100).checked_div(total).unwrap_or(0);
            format!("wasmc: {file}: compiling, {done}/{total} functions ({percent}%)")
        };
        // `\r` + erase-line: rewrite in place.
        let _ = write!(stderr, "\r\x1b[K{line}");
        let _ = stderr.flush();
        if shared.wait_stopped(INTERVAL) {
            break;
        }
    }
    let _ = write!(stderr, "\r\x1b[K");
    let _ = stderr.flush();
}
