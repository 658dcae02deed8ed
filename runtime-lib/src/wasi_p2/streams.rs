//! `wasi:io/streams` on stdio and files, with the readiness `wasmtime run` gives
//! them.
//!
//! wasmtime serves stdin from a reader thread and files from background reads and
//! writes; the guest sees that as states, which are mirrored here with synchronous
//! system calls standing in for the background work (a background operation is
//! taken to be finished the next time it is waited for or polled):
//!
//! * **stdin**: a non-blocking `read` with nothing read ahead *requests* a read and
//!   answers nothing; once stdin is readable (`poll(2)`), up to the largest
//!   requested size (64 KiB when a pollable asked) is read ahead and served, in
//!   pieces if the guest asks for less. `blocking-read` waits for readability.
//! * **file input streams**: a non-blocking `read` from idle starts a read of that
//!   size (done at once, as wasmtime's background read runs at once) and answers
//!   nothing; the data is served after the stream has been waited for (a `poll`
//!   round, `block`, `blocking-read`). Subscribing starts a 4 KiB read, ready in
//!   the next `poll` round. End of file is `closed`, and stays so.
//! * **file output streams**: `write` starts the write (done here at once) and
//!   `check-write` answers 0 until the stream has been waited for; a `write`
//!   while one is pending traps, as in wasmtime.
//! * **stdout and stderr** are always ready (synchronous writes, 1 MiB permits).
//!
//! Reads are capped at 64 KiB per call and `blocking-write-and-flush` at 4096 bytes
//! (a trap beyond), wasmtime's limits.

use std::io::Write;
use std::sync::Arc;

use cap_std::fs::{File, FileExt};

use super::poll;

/// wasmtime's cap on the bytes one read allocates and returns.
pub(super) const MAX_READ: usize = 64 * 1024;
/// What `check-write` permits on stdio and idle files (wasmtime's figure).
pub(super) const WRITE_PERMIT: u64 = 1 << 20;
/// The most `blocking-write-and-flush` accepts in one call.
pub(super) const MAX_BLOCKING_WRITE: u64 = 4096;
/// The size of the read a file stream's pollable starts.
const POLL_READ_SIZE: usize = 4096;

/// How a stream operation failed (the `stream-error` variant, or a trap).
pub(super) enum StreamError {
    Closed,
    Failed(std::io::Error),
    Trap(&'static str),
}

type StreamResult<T> = Result<T, StreamError>;

/// Readiness of a stream, for `poll`.
pub(super) enum Readiness {
    Ready,
    /// A background operation was started: ready from the next round on.
    Started,
    /// Waiting for stdin to become readable.
    Stdin,
}

/// The process's stdin as the WASI 0.2 host reads it (one for all `get-stdin`
/// streams, as wasmtime's reader thread).
#[derive(Default)]
pub(super) struct Stdin {
    state: StdinState,
}

#[derive(Default)]
enum StdinState {
    #[default]
    NotRequested,
    /// The guest asked for this many bytes; read once stdin is readable.
    Requested(usize),
    Data(Vec<u8>),
    Error(std::io::Error),
    Closed,
}

impl Stdin {
    /// Performs the requested read if stdin is readable now.
    fn advance(&mut self) {
        if let StdinState::Requested(size) = self.state
            && poll::stdin_ready(Some(0))
        {
            self.state = match poll::read_stdin(size.clamp(1, MAX_READ)) {
                Ok(data) if data.is_empty() => StdinState::Closed,
                Ok(data) => StdinState::Data(data),
                Err(e) => StdinState::Error(e),
            };
        }
    }

    fn read(&mut self, len: usize) -> StreamResult<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.advance();
        match std::mem::replace(&mut self.state, StdinState::Requested(len)) {
            StdinState::NotRequested => Ok(Vec::new()),
            StdinState::Requested(previous) => {
                self.state = StdinState::Requested(previous.max(len));
                Ok(Vec::new())
            }
            StdinState::Data(mut data) => {
                let rest = data.split_off(len.min(data.len()));
                self.state = if rest.is_empty() {
                    StdinState::NotRequested
                } else {
                    StdinState::Data(rest)
                };
                Ok(data)
            }
            StdinState::Error(e) => {
                self.state = StdinState::Closed;
                Err(StreamError::Failed(e))
            }
            StdinState::Closed => {
                self.state = StdinState::Closed;
                Err(StreamError::Closed)
            }
        }
    }

    pub(super) fn readiness(&mut self) -> Readiness {
        if let StdinState::NotRequested = self.state {
            self.state = StdinState::Requested(MAX_READ);
        }
        self.advance();
        match self.state {
            StdinState::Requested(_) => Readiness::Stdin,
            _ => Readiness::Ready,
        }
    }

    fn wait(&mut self) {
        while let Readiness::Stdin = self.readiness() {
            poll::stdin_ready(None);
        }
    }
}

pub(super) enum InputStream {
    Stdin,
    File(FileInput),
}

pub(super) struct FileInput {
    file: Arc<File>,
    position: u64,
    state: ReadState,
}

enum ReadState {
    Idle,
    /// A read was started: done here at once (wasmtime's background read runs
    /// right away too), its outcome seen once the stream is waited for.
    Started(Box<ReadState>),
    Data(Vec<u8>),
    Error(std::io::Error),
    Closed,
}

impl FileInput {
    pub(super) fn new(file: Arc<File>, position: u64) -> FileInput {
        FileInput {
            file,
            position,
            state: ReadState::Idle,
        }
    }

    fn read_at_position(&self, size: usize) -> ReadState {
        let mut buf = vec![0u8; size.min(MAX_READ)];
        loop {
            match self.file.read_at(&mut buf, self.position) {
                Ok(0) => return ReadState::Closed,
                Ok(n) => {
                    buf.truncate(n);
                    return ReadState::Data(buf);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return ReadState::Error(e),
            }
        }
    }

    /// Finishes a started read.
    fn finish(&mut self) {
        if let ReadState::Started(_) = self.state {
            let ReadState::Started(outcome) = std::mem::replace(&mut self.state, ReadState::Idle)
            else {
                unreachable!("matched above")
            };
            self.state = *outcome;
        }
    }

    fn start(&mut self, size: usize) {
        self.state = ReadState::Started(Box::new(self.read_at_position(size)));
    }

    fn read(&mut self, len: usize) -> StreamResult<Vec<u8>> {
        match &mut self.state {
            ReadState::Idle => {
                if len > 0 {
                    self.start(len);
                }
                Ok(Vec::new())
            }
            ReadState::Started(_) => Ok(Vec::new()),
            ReadState::Data(data) => {
                let rest = data.split_off(len.min(data.len()));
                let chunk = std::mem::replace(data, rest);
                if data.is_empty() {
                    self.state = ReadState::Idle;
                }
                self.position += chunk.len() as u64;
                Ok(chunk)
            }
            ReadState::Error(_) => match std::mem::replace(&mut self.state, ReadState::Closed) {
                ReadState::Error(e) => Err(StreamError::Failed(e)),
                _ => unreachable!("matched above"),
            },
            ReadState::Closed => Err(StreamError::Closed),
        }
    }

    fn blocking_read(&mut self, len: usize) -> StreamResult<Vec<u8>> {
        self.finish();
        if let ReadState::Idle = self.state {
            self.state = self.read_at_position(len);
        }
        self.read(len)
    }

    fn readiness(&mut self) -> Readiness {
        match self.state {
            ReadState::Idle => {
                self.start(POLL_READ_SIZE);
                Readiness::Started
            }
            ReadState::Started(_) => {
                self.finish();
                Readiness::Ready
            }
            _ => Readiness::Ready,
        }
    }
}

impl InputStream {
    pub(super) fn read(&mut self, stdin: &mut Stdin, len: usize) -> StreamResult<Vec<u8>> {
        let len = len.min(MAX_READ);
        match self {
            InputStream::Stdin => stdin.read(len),
            InputStream::File(file) => file.read(len),
        }
    }

    pub(super) fn blocking_read(&mut self, stdin: &mut Stdin, len: usize) -> StreamResult<Vec<u8>> {
        let len = len.min(MAX_READ);
        match self {
            InputStream::Stdin => {
                stdin.wait();
                stdin.read(len)
            }
            InputStream::File(file) => file.blocking_read(len),
        }
    }

    pub(super) fn readiness(&mut self, stdin: &mut Stdin) -> Readiness {
        match self {
            InputStream::Stdin => stdin.readiness(),
            InputStream::File(file) => file.readiness(),
        }
    }
}

pub(super) enum OutputStream {
    Stdout,
    Stderr,
    File(FileOutput),
}

pub(super) struct FileOutput {
    file: Arc<File>,
    position: u64,
    append: bool,
    state: WriteState,
}

enum WriteState {
    Ready,
    /// A write was started (and, here, done): its outcome, seen once waited for.
    Started(std::io::Result<usize>),
    Error(std::io::Error),
    Closed,
}

impl FileOutput {
    pub(super) fn new(file: Arc<File>, position: u64, append: bool) -> FileOutput {
        FileOutput {
            file,
            position,
            append,
            state: WriteState::Ready,
        }
    }

    fn write_now(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let position = if self.append {
            self.file.metadata()?.len()
        } else {
            self.position
        };
        let mut written = 0;
        while written < bytes.len() {
            match self
                .file
                .write_at(&bytes[written..], position + written as u64)
            {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    fn finish(&mut self) {
        if let WriteState::Started(_) = self.state {
            let WriteState::Started(outcome) =
                std::mem::replace(&mut self.state, WriteState::Ready)
            else {
                unreachable!("matched above")
            };
            match outcome {
                Ok(n) => {
                    if !self.append {
                        self.position += n as u64;
                    }
                }
                Err(e) => self.state = WriteState::Error(e),
            }
        }
    }

    /// Takes a pending error (the stream is closed after it).
    fn take_error(&mut self) -> StreamResult<()> {
        match self.state {
            WriteState::Closed => Err(StreamError::Closed),
            WriteState::Error(_) => match std::mem::replace(&mut self.state, WriteState::Closed) {
                WriteState::Error(e) => Err(StreamError::Failed(e)),
                _ => unreachable!("matched above"),
            },
            _ => Ok(()),
        }
    }
}

impl OutputStream {
    pub(super) fn check_write(&mut self) -> StreamResult<u64> {
        match self {
            OutputStream::Stdout | OutputStream::Stderr => Ok(WRITE_PERMIT),
            OutputStream::File(file) => {
                file.take_error()?;
                Ok(match file.state {
                    WriteState::Started(_) => 0,
                    _ => WRITE_PERMIT,
                })
            }
        }
    }

    pub(super) fn write(&mut self, bytes: &[u8]) -> StreamResult<()> {
        match self {
            OutputStream::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)
                    .and_then(|()| out.flush())
                    .map_err(StreamError::Failed)
            }
            OutputStream::Stderr => std::io::stderr()
                .lock()
                .write_all(bytes)
                .map_err(StreamError::Failed),
            OutputStream::File(file) => match file.state {
                WriteState::Ready => {
                    file.state = WriteState::Started(file.write_now(bytes));
                    Ok(())
                }
                WriteState::Closed => Err(StreamError::Closed),
                WriteState::Started(_) | WriteState::Error(_) => Err(StreamError::Trap(
                    "write not permitted: check_write not called first",
                )),
            },
        }
    }

    pub(super) fn blocking_write_and_flush(&mut self, bytes: &[u8]) -> StreamResult<()> {
        match self {
            OutputStream::File(file) => {
                file.finish();
                file.take_error()?;
                match file.write_now(bytes) {
                    Ok(n) => {
                        if !file.append {
                            file.position += n as u64;
                        }
                        Ok(())
                    }
                    Err(e) => {
                        file.state = WriteState::Closed;
                        Err(StreamError::Failed(e))
                    }
                }
            }
            stdio => stdio.write(bytes),
        }
    }

    pub(super) fn flush(&mut self) -> StreamResult<()> {
        match self {
            OutputStream::File(file) => file.take_error(),
            _ => Ok(()),
        }
    }

    pub(super) fn blocking_flush(&mut self) -> StreamResult<()> {
        self.flush()?;
        self.readiness();
        self.check_write().map(|_| ())
    }

    pub(super) fn readiness(&mut self) -> Readiness {
        if let OutputStream::File(file) = self {
            file.finish();
        }
        Readiness::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(contents: &[u8]) -> (tempfile::TempDir, Arc<File>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), contents).unwrap();
        let std_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.path().join("f"))
            .unwrap();
        (dir, Arc::new(File::from_std(std_file)))
    }

    #[test]
    fn a_file_read_is_served_once_waited_for() {
        let (_dir, file) = file_with(b"hello");
        let mut input = FileInput::new(file, 1);
        // Non-blocking from idle: starts the read, answers nothing, and keeps
        // answering nothing until the stream is waited for.
        assert_eq!(input.read(3).ok(), Some(Vec::new()));
        assert_eq!(input.read(3).ok(), Some(Vec::new()));
        assert!(matches!(input.readiness(), Readiness::Ready));
        assert_eq!(input.read(2).ok(), Some(b"el".to_vec()));
        assert_eq!(input.read(9).ok(), Some(b"l".to_vec()));
        // A blocking read reads at once; then the end is `closed`, and stays so.
        assert_eq!(input.blocking_read(9).ok(), Some(b"o".to_vec()));
        assert!(matches!(input.blocking_read(9), Err(StreamError::Closed)));
        assert!(matches!(input.read(9), Err(StreamError::Closed)));
    }

    #[test]
    fn a_file_write_holds_the_permit_until_waited_for() {
        let (dir, file) = file_with(b"");
        let mut output = OutputStream::File(FileOutput::new(file, 0, false));
        assert_eq!(output.check_write().ok(), Some(WRITE_PERMIT));
        assert!(output.write(b"ab").is_ok());
        assert_eq!(output.check_write().ok(), Some(0));
        assert!(matches!(
            output.write(b"cd"),
            Err(StreamError::Trap(
                "write not permitted: check_write not called first"
            ))
        ));
        assert!(matches!(output.readiness(), Readiness::Ready));
        assert_eq!(output.check_write().ok(), Some(WRITE_PERMIT));
        assert!(output.blocking_write_and_flush(b"cd").is_ok());
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"abcd");
    }
}
