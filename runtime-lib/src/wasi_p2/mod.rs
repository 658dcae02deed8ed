//! The WASI 0.2 host: `wasi:cli`, `wasi:io`, `wasi:clocks`, `wasi:random` and
//! `wasi:filesystem` for command components, on the same cap-std sandbox and
//! `RunConfig` as preview1 (the arguments, variables and preopens come from the
//! [`WasiCtx`] the command line built).
//!
//! Functions are called with lifted [`Value`]s by name (interface without version,
//! function as the WIT spells it; the compiler refused anything not in
//! `abi::component::WASI_P2_HOST_FUNCTIONS`). Resources live in one handle table
//! per component instance, as in the canonical ABI; a handle of the wrong type or a
//! dropped one is a trap. Blocking is real: streams on stdio and files are always
//! ready, and pollables of the monotonic clock sleep until their deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cap_std::fs::{Dir, File, FileExt, OpenOptions};

use crate::component::canonical::{CanonResult, CanonTrap, Value};

use crate::wasi::WasiCtx;

mod poll;
mod streams;
use poll::{Check, Deadline, Pollable};
use streams::{FileInput, FileOutput, InputStream, OutputStream, Readiness, StreamError};

/// An object a handle refers to.
enum Resource {
    InputStream(InputStream),
    OutputStream(OutputStream),
    Pollable(Pollable),
    Descriptor(Descriptor),
    DirectoryEntryStream(std::vec::IntoIter<(u8, String)>),
    /// A stream's `last-operation-failed` error: its message, and the
    /// `wasi:filesystem` error code of the I/O error it came from, which
    /// `filesystem-error-code` reports (the adapter turns it into an errno).
    Error(String, Option<ErrorCode>),
    Terminal,
}

enum Descriptor {
    Dir {
        dir: Arc<Dir>,
        read: bool,
        mutate: bool,
        /// A preopened directory: cap-std holds it as an O_PATH descriptor.
        preopen: bool,
    },
    File {
        file: Arc<File>,
        read: bool,
        write: bool,
    },
}

impl Resource {
    /// The resource type name as the plan spells it.
    fn type_name(&self) -> &'static str {
        match self {
            Resource::InputStream(_) => "wasi:io/streams/input-stream",
            Resource::OutputStream(_) => "wasi:io/streams/output-stream",
            Resource::Pollable(_) => "wasi:io/poll/pollable",
            Resource::Descriptor(_) => "wasi:filesystem/types/descriptor",
            Resource::DirectoryEntryStream(_) => "wasi:filesystem/types/directory-entry-stream",
            Resource::Error(..) => "wasi:io/error/error",
            Resource::Terminal => "wasi:cli/terminal",
        }
    }
}

/// The WASI 0.2 state of one running component.
pub struct WasiP2 {
    args: Vec<String>,
    env: Vec<(String, String)>,
    preopens: Vec<(Arc<Dir>, String)>,
    /// The handle table: index `h - 1` holds handle `h` (0 is never a handle).
    handles: Vec<Option<Resource>>,
    free: Vec<u32>,
    /// When each handle's resource was created (a count): `poll` orders ready
    /// pollables by it, as wasmtime's resource table does.
    created: Vec<u64>,
    resources_created: u64,
    start: Instant,
    stdin: streams::Stdin,
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl WasiP2 {
    /// Takes the arguments, environment and preopened directories of `ctx`.
    pub fn new(ctx: WasiCtx) -> WasiP2 {
        let mut preopens = Vec::new();
        for descriptor in ctx.fds.into_values() {
            if let crate::wasi::CtxDescriptor::Dir(open) = descriptor
                && let Some(name) = open.preopen
            {
                preopens.push((Arc::new(open.dir), name));
            }
        }
        WasiP2 {
            args: ctx.args.iter().map(|a| lossy(a)).collect(),
            env: ctx
                .env
                .iter()
                .map(|v| {
                    let v = lossy(v);
                    match v.split_once('=') {
                        Some((k, val)) => (k.to_string(), val.to_string()),
                        None => (v, String::new()),
                    }
                })
                .collect(),
            preopens,
            handles: Vec::new(),
            free: Vec::new(),
            created: Vec::new(),
            resources_created: 0,
            start: ctx.start,
            stdin: streams::Stdin::default(),
        }
    }

    fn insert(&mut self, resource: Resource) -> Value {
        let handle = match self.free.pop() {
            Some(h) => {
                self.handles[h as usize - 1] = Some(resource);
                h
            }
            None => {
                self.handles.push(Some(resource));
                self.created.push(0);
                self.handles.len() as u32
            }
        };
        self.resources_created += 1;
        self.created[handle as usize - 1] = self.resources_created;
        Value::Handle(handle)
    }

    fn get(&mut self, value: &Value) -> CanonResult<&mut Resource> {
        let Value::Handle(h) = value else {
            return Err(CanonTrap::new("expected a handle"));
        };
        self.handles
            .get_mut((*h as usize).wrapping_sub(1))
            .and_then(Option::as_mut)
            .ok_or_else(|| CanonTrap::new(format!("unknown handle index {h}")))
    }

    /// The input stream `value` refers to, with the stdin state it may read.
    fn input_stream(
        &mut self,
        value: &Value,
    ) -> CanonResult<(&mut InputStream, &mut streams::Stdin)> {
        let Value::Handle(h) = value else {
            return Err(CanonTrap::new("expected a handle"));
        };
        match self
            .handles
            .get_mut((*h as usize).wrapping_sub(1))
            .and_then(Option::as_mut)
        {
            Some(Resource::InputStream(stream)) => Ok((stream, &mut self.stdin)),
            Some(_) => Err(wrong_type()),
            None => Err(CanonTrap::new(format!("unknown handle index {h}"))),
        }
    }

    /// `resource.drop` of handle `handle` of type `resource`.
    pub fn drop_handle(&mut self, resource: &str, handle: u32) -> CanonResult<()> {
        let slot = self
            .handles
            .get_mut((handle as usize).wrapping_sub(1))
            .filter(|s| s.is_some())
            .ok_or_else(|| CanonTrap::new(format!("unknown handle index {handle}")))?;
        let actual = slot.as_ref().map(Resource::type_name).unwrap_or("");
        let terminal = resource.starts_with("wasi:cli/terminal");
        if actual != resource && !(terminal && actual == "wasi:cli/terminal") {
            return Err(CanonTrap::new(format!(
                "handle {handle} is a `{actual}`, not a `{resource}` (resource.drop)"
            )));
        }
        *slot = None;
        self.free.push(handle);
        Ok(())
    }

    /// Calls `function` of `interface` with lifted arguments; the result, if the
    /// function has one.
    pub fn call(
        &mut self,
        interface: &str,
        function: &str,
        args: Vec<Value>,
    ) -> CanonResult<Option<Value>> {
        let arg = |i: usize| {
            args.get(i)
                .ok_or_else(|| CanonTrap::new("missing argument"))
        };
        let int = |i: usize| match arg(i)? {
            Value::Int(v) => Ok(*v),
            Value::Flags(v) => Ok(u64::from(*v)),
            _ => Err(CanonTrap::new("expected an integer argument")),
        };
        let some = Value::some;
        Ok(Some(match (interface, function) {
            ("wasi:cli/environment", "get-environment") => Value::List(
                self.env
                    .iter()
                    .map(|(k, v)| {
                        Value::Record(vec![Value::String(k.clone()), Value::String(v.clone())])
                    })
                    .collect(),
            ),
            ("wasi:cli/environment", "get-arguments") => {
                Value::List(self.args.iter().cloned().map(Value::String).collect())
            }
            ("wasi:cli/environment", "initial-cwd") => Value::none(),
            ("wasi:cli/exit", "exit") => {
                let status = match arg(0)? {
                    Value::Variant(0, _) => 0,
                    _ => 1,
                };
                crate::entry::exit_process(status)
            }
            ("wasi:cli/stdin", "get-stdin") => {
                self.insert(Resource::InputStream(InputStream::Stdin))
            }
            ("wasi:cli/stdout", "get-stdout") => {
                self.insert(Resource::OutputStream(OutputStream::Stdout))
            }
            ("wasi:cli/stderr", "get-stderr") => {
                self.insert(Resource::OutputStream(OutputStream::Stderr))
            }
            ("wasi:cli/terminal-stdin", _)
            | ("wasi:cli/terminal-stdout", _)
            | ("wasi:cli/terminal-stderr", _) => {
                // As `wasmtime run`: a terminal only when the descriptor is one.
                let fd = match interface {
                    "wasi:cli/terminal-stdin" => 0,
                    "wasi:cli/terminal-stdout" => 1,
                    _ => 2,
                };
                // SAFETY: isatty only queries the descriptor.
                if unsafe { libc::isatty(fd) } == 1 {
                    some(self.insert(Resource::Terminal))
                } else {
                    Value::none()
                }
            }
            ("wasi:io/error", "[method]error.to-debug-string") => match self.get(arg(0)?)? {
                Resource::Error(message, _) => Value::String(message.clone()),
                _ => return Err(wrong_type()),
            },
            ("wasi:io/poll", "[method]pollable.ready") => {
                let Value::Handle(handle) = *arg(0)? else {
                    return Err(CanonTrap::new("expected a handle"));
                };
                Value::Bool(matches!(self.check_pollable(handle)?, Check::Ready))
            }
            ("wasi:io/poll", "[method]pollable.block") => {
                let Value::Handle(handle) = *arg(0)? else {
                    return Err(CanonTrap::new("expected a handle"));
                };
                self.poll(&[handle])?;
                return Ok(None);
            }
            ("wasi:io/poll", "poll") => {
                let Value::List(list) = arg(0)? else {
                    return Err(CanonTrap::new("expected a list of pollables"));
                };
                if list.is_empty() {
                    // wasmtime's message.
                    return Err(CanonTrap::new("empty poll list"));
                }
                let mut handles = Vec::with_capacity(list.len());
                for value in list {
                    let Value::Handle(handle) = *value else {
                        return Err(CanonTrap::new("expected a handle"));
                    };
                    handles.push(handle);
                }
                let ready = self.poll(&handles)?;
                Value::List(
                    ready
                        .into_iter()
                        .map(|i| Value::Int(u64::from(i)))
                        .collect(),
                )
            }
            ("wasi:io/streams", "[method]input-stream.subscribe")
            | ("wasi:io/streams", "[method]output-stream.subscribe") => {
                let Value::Handle(handle) = *arg(0)? else {
                    return Err(CanonTrap::new("expected a handle"));
                };
                match self.get(arg(0)?)? {
                    Resource::InputStream(_) | Resource::OutputStream(_) => {}
                    _ => return Err(wrong_type()),
                }
                self.insert(Resource::Pollable(Pollable::Stream(handle)))
            }
            ("wasi:io/streams", "[method]input-stream.read")
            | ("wasi:io/streams", "[method]input-stream.blocking-read")
            | ("wasi:io/streams", "[method]input-stream.skip")
            | ("wasi:io/streams", "[method]input-stream.blocking-skip") => {
                let len = usize::try_from(int(1)?).unwrap_or(usize::MAX);
                let (stream, stdin) = self.input_stream(arg(0)?)?;
                let result = if function.contains("blocking") {
                    stream.blocking_read(stdin, len)
                } else {
                    stream.read(stdin, len)
                };
                let skip = function.contains("skip");
                self.stream_result(result.map(|bytes| {
                    if skip {
                        Value::Int(bytes.len() as u64)
                    } else {
                        Value::Bytes(bytes)
                    }
                }))?
            }
            ("wasi:io/streams", "[method]output-stream.check-write") => {
                let Resource::OutputStream(stream) = self.get(arg(0)?)? else {
                    return Err(wrong_type());
                };
                let result = stream.check_write().map(Value::Int);
                self.stream_result(result)?
            }
            ("wasi:io/streams", "[method]output-stream.write")
            | ("wasi:io/streams", "[method]output-stream.blocking-write-and-flush")
            | ("wasi:io/streams", "[method]output-stream.write-zeroes")
            | ("wasi:io/streams", "[method]output-stream.blocking-write-zeroes-and-flush") => {
                let bytes = if function.contains("zeroes") {
                    let len = int(1)?;
                    if function.starts_with("[method]output-stream.blocking")
                        && len > streams::MAX_BLOCKING_WRITE
                    {
                        return Err(CanonTrap::new(
                            "Buffer too large for blocking-write-zeroes-and-flush (expected \
                             at most 4096)",
                        ));
                    }
                    // More than `check-write` ever permits breaks the stream's
                    // contract (the WIT lets the host trap); refused rather than
                    // allocating what a hostile length asks for.
                    if len > streams::WRITE_PERMIT {
                        return Err(CanonTrap::new(
                            "write-zeroes of more bytes than check-write permits",
                        ));
                    }
                    vec![0u8; len as usize]
                } else {
                    let Value::Bytes(bytes) = arg(1)? else {
                        return Err(CanonTrap::new("expected a list<u8> argument"));
                    };
                    bytes.clone()
                };
                let blocking = function.starts_with("[method]output-stream.blocking");
                if blocking
                    && !function.contains("zeroes")
                    && bytes.len() as u64 > streams::MAX_BLOCKING_WRITE
                {
                    return Err(CanonTrap::new(
                        "Buffer too large for blocking-write-and-flush (expected at most 4096)",
                    ));
                }
                let Resource::OutputStream(stream) = self.get(arg(0)?)? else {
                    return Err(wrong_type());
                };
                let result = if blocking {
                    stream.blocking_write_and_flush(&bytes)
                } else {
                    stream.write(&bytes)
                };
                self.stream_result(result.map(|()| Value::Record(Vec::new())))?
                    .map_unit()
            }
            ("wasi:io/streams", "[method]output-stream.flush")
            | ("wasi:io/streams", "[method]output-stream.blocking-flush") => {
                let Resource::OutputStream(stream) = self.get(arg(0)?)? else {
                    return Err(wrong_type());
                };
                let result = if function.contains("blocking") {
                    stream.blocking_flush()
                } else {
                    stream.flush()
                };
                self.stream_result(result.map(|()| Value::Record(Vec::new())))?
                    .map_unit()
            }
            ("wasi:clocks/monotonic-clock", "now") => {
                Value::Int(self.start.elapsed().as_nanos() as u64)
            }
            ("wasi:clocks/monotonic-clock", "resolution") => Value::Int(1),
            ("wasi:clocks/monotonic-clock", "subscribe-instant") => {
                let deadline = self.start.checked_add(Duration::from_nanos(int(0)?));
                let deadline = Deadline::new(deadline, Instant::now(), self.start);
                self.insert(Resource::Pollable(Pollable::Deadline(deadline)))
            }
            ("wasi:clocks/monotonic-clock", "subscribe-duration") => {
                let now = Instant::now();
                let at = now.checked_add(Duration::from_nanos(int(0)?));
                let deadline = Deadline::new(at, now, self.start);
                self.insert(Resource::Pollable(Pollable::Deadline(deadline)))
            }
            ("wasi:clocks/wall-clock", "now") => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                datetime(now)
            }
            ("wasi:clocks/wall-clock", "resolution") => datetime(Duration::from_nanos(1)),
            ("wasi:random/random", "get-random-bytes")
            | ("wasi:random/insecure", "get-insecure-random-bytes") => {
                let mut bytes = vec![0u8; int(0)?.min(1 << 26) as usize];
                fill_random(&mut bytes)?;
                Value::Bytes(bytes)
            }
            ("wasi:random/random", "get-random-u64")
            | ("wasi:random/insecure", "get-insecure-random-u64") => {
                let mut bytes = [0u8; 8];
                fill_random(&mut bytes)?;
                Value::Int(u64::from_le_bytes(bytes))
            }
            ("wasi:random/insecure-seed", "insecure-seed") => {
                let mut bytes = [0u8; 16];
                fill_random(&mut bytes)?;
                Value::Record(vec![
                    Value::Int(u64::from_le_bytes(bytes[..8].try_into().unwrap())),
                    Value::Int(u64::from_le_bytes(bytes[8..].try_into().unwrap())),
                ])
            }
            ("wasi:filesystem/preopens", "get-directories") => {
                let preopens: Vec<_> = self.preopens.clone();
                Value::List(
                    preopens
                        .into_iter()
                        .map(|(dir, name)| {
                            let handle = self.insert(Resource::Descriptor(Descriptor::Dir {
                                dir,
                                read: true,
                                mutate: true,
                                preopen: true,
                            }));
                            Value::Record(vec![handle, Value::String(name)])
                        })
                        .collect(),
                )
            }
            ("wasi:filesystem/types", "filesystem-error-code") => match self.get(arg(0)?)? {
                Resource::Error(_, code) => match code {
                    Some(code) => some(Value::Variant(code.0, None)),
                    None => Value::none(),
                },
                _ => return Err(wrong_type()),
            },
            ("wasi:filesystem/types", method) => {
                let method = method.to_string();
                return self.filesystem(&method, &args).map(Some);
            }
            _ => {
                return Err(CanonTrap::new(format!(
                    "`{function}` of `{interface}` is not implemented by this host"
                )));
            }
        }))
    }

    /// `result<T, stream-error>`: an I/O error becomes `last-operation-failed` with
    /// an `error` resource, end of stream `closed`; a trap stays one.
    fn stream_result(&mut self, result: Result<Value, StreamError>) -> CanonResult<Value> {
        Ok(match result {
            Ok(value) => Value::ok(Some(value)),
            Err(StreamError::Closed) => Value::err(Some(Value::Variant(1, None))),
            Err(StreamError::Failed(e)) => {
                let message = e.to_string();
                let error = self.insert(Resource::Error(message, Some(ErrorCode::from(e))));
                Value::err(Some(Value::Variant(0, Some(Box::new(error)))))
            }
            Err(StreamError::Trap(message)) => return Err(CanonTrap::new(message)),
        })
    }

    /// Checks pollable `handle` once (a past deadline or an idle file stream is
    /// ready from the next check on).
    fn check_pollable(&mut self, handle: u32) -> CanonResult<Check> {
        let pollable = match self.get(&Value::Handle(handle))? {
            Resource::Pollable(Pollable::Deadline(deadline)) => return Ok(deadline.check()),
            Resource::Pollable(pollable) => *pollable,
            _ => return Err(wrong_type()),
        };
        let Pollable::Stream(stream) = pollable else {
            unreachable!("deadlines returned above")
        };
        let readiness = match self.handles.get_mut((stream as usize).wrapping_sub(1)) {
            Some(Some(Resource::InputStream(input))) => input.readiness(&mut self.stdin),
            Some(Some(Resource::OutputStream(output))) => output.readiness(),
            // The stream is gone (dropped before its pollable): nothing to wait for.
            _ => Readiness::Ready,
        };
        Ok(match readiness {
            Readiness::Ready => Check::Ready,
            Readiness::Started => Check::NextRound,
            Readiness::Stdin => Check::Stdin,
        })
    }

    /// `poll` (and `block`, with one handle): waits until one of the pollables is
    /// ready and returns the indices of the ready ones, in wasmtime's order.
    fn poll(&mut self, handles: &[u32]) -> CanonResult<Vec<u32>> {
        let mut groups = Vec::with_capacity(handles.len());
        for &handle in handles {
            match self.get(&Value::Handle(handle))? {
                Resource::Pollable(pollable) => {
                    let watched = pollable.watched(handle);
                    let created = self.created.get((watched as usize).wrapping_sub(1));
                    groups.push((created.copied().unwrap_or(0), watched));
                }
                _ => return Err(wrong_type()),
            }
        }
        let mut order: Vec<usize> = (0..handles.len()).collect();
        order.sort_by_key(|&i| groups[i]);
        let mut error = None;
        let ready = poll::poll(handles, &order, |handle| {
            match self.check_pollable(handle) {
                Ok(check) => check,
                Err(e) => {
                    error.get_or_insert(e);
                    Check::Ready
                }
            }
        });
        match error {
            Some(e) => Err(e),
            None => Ok(ready),
        }
    }

    fn filesystem(&mut self, method: &str, args: &[Value]) -> CanonResult<Value> {
        let arg = |i: usize| {
            args.get(i)
                .ok_or_else(|| CanonTrap::new("missing argument"))
        };
        let int = |i: usize| match arg(i)? {
            Value::Int(v) => Ok(*v),
            Value::Flags(v) => Ok(u64::from(*v)),
            _ => Err(CanonTrap::new("expected an integer argument")),
        };
        let string = |i: usize| match arg(i)? {
            Value::String(s) => Ok(s.clone()),
            _ => Err(CanonTrap::new("expected a string argument")),
        };
        let descriptor = match self.get(arg(0)?)? {
            Resource::Descriptor(Descriptor::Dir {
                dir,
                read,
                mutate,
                preopen,
            }) => Descriptor::Dir {
                dir: dir.clone(),
                read: *read,
                mutate: *mutate,
                preopen: *preopen,
            },
            Resource::Descriptor(Descriptor::File { file, read, write }) => Descriptor::File {
                file: file.clone(),
                read: *read,
                write: *write,
            },
            Resource::DirectoryEntryStream(entries) => {
                // read-directory-entry
                return Ok(match entries.next() {
                    Some((ty, name)) => Value::ok(Some(Value::some(Value::Record(vec![
                        Value::Variant(u32::from(ty), None),
                        Value::String(name),
                    ])))),
                    None => Value::ok(Some(Value::none())),
                });
            }
            _ => return Err(wrong_type()),
        };
        let dir = || match &descriptor {
            Descriptor::Dir { dir, .. } => Ok(dir.clone()),
            Descriptor::File { .. } => Err(ErrorCode::NOT_DIRECTORY),
        };
        let file = || match &descriptor {
            Descriptor::File { file, .. } => Ok(file.clone()),
            Descriptor::Dir { .. } => Err(ErrorCode::IS_DIRECTORY),
        };
        let result: Result<Value, Fail> = (|| {
            Ok(match method {
                "[method]descriptor.read-via-stream" => {
                    let file = file()?;
                    self.insert(Resource::InputStream(InputStream::File(FileInput::new(
                        file,
                        int(1)?,
                    ))))
                }
                "[method]descriptor.write-via-stream" | "[method]descriptor.append-via-stream" => {
                    let file = file()?;
                    let append = method.ends_with("append-via-stream");
                    let position = if append { 0 } else { int(1)? };
                    self.insert(Resource::OutputStream(OutputStream::File(FileOutput::new(
                        file, position, append,
                    ))))
                }
                "[method]descriptor.get-flags" => Value::Flags(match &descriptor {
                    Descriptor::Dir { read, mutate, .. } => {
                        u32::from(*read) | (u32::from(*mutate) << 5)
                    }
                    Descriptor::File { read, write, .. } => {
                        u32::from(*read) | (u32::from(*write) << 1)
                    }
                }),
                "[method]descriptor.get-type" => Value::Variant(
                    match &descriptor {
                        Descriptor::Dir { .. } => 3,
                        Descriptor::File { file, .. } => {
                            descriptor_type(&file.metadata().map_err(ErrorCode::from)?.file_type())
                        }
                    },
                    None,
                ),
                "[method]descriptor.stat" => stat(&descriptor_metadata(&descriptor)?),
                "[method]descriptor.stat-at" => {
                    let (follow, path) = (int(1)? & 1 != 0, string(2)?);
                    let dir = dir()?;
                    stat(&path_metadata(&dir, follow, &path)?)
                }
                "[method]descriptor.open-at" => {
                    let (path_flags, path, open_flags, flags) =
                        (int(1)?, string(2)?, int(3)?, int(4)?);
                    let mutate = matches!(descriptor, Descriptor::Dir { mutate: true, .. });
                    self.open_at(&*dir()?, mutate, path_flags, &path, open_flags, flags)?
                }
                "[method]descriptor.read-directory" => {
                    let dir = dir()?;
                    let mut entries = Vec::new();
                    for entry in dir.entries()? {
                        let entry = entry?;
                        let ty = entry.file_type().map(|t| descriptor_type(&t)).unwrap_or(0);
                        entries.push((ty as u8, entry.file_name().to_string_lossy().into_owned()));
                    }
                    self.insert(Resource::DirectoryEntryStream(entries.into_iter()))
                }
                "[method]descriptor.create-directory-at" => {
                    dir()?.create_dir(string(1)?)?;
                    Value::Record(Vec::new())
                }
                "[method]descriptor.remove-directory-at" => {
                    dir()?.remove_dir(string(1)?)?;
                    Value::Record(Vec::new())
                }
                "[method]descriptor.unlink-file-at" => {
                    dir()?.remove_file(string(1)?)?;
                    Value::Record(Vec::new())
                }
                "[method]descriptor.metadata-hash" => hash(&descriptor_metadata(&descriptor)?),
                "[method]descriptor.metadata-hash-at" => {
                    let (follow, path) = (int(1)? & 1 != 0, string(2)?);
                    let dir = dir()?;
                    hash(&path_metadata(&dir, follow, &path)?)
                }
                "[method]descriptor.rename-at" => {
                    let (old, new) = (string(1)?, string(3)?);
                    let target = match self.get(arg(2)?)? {
                        Resource::Descriptor(Descriptor::Dir { dir, .. }) => dir.clone(),
                        Resource::Descriptor(Descriptor::File { .. }) => {
                            return Err(ErrorCode::NOT_DIRECTORY.into());
                        }
                        _ => return Err(wrong_type().into()),
                    };
                    crate::wasi::rename_at(&*dir()?, &old, &target, &new)?;
                    Value::Record(Vec::new())
                }
                "[method]descriptor.link-at" => {
                    let (old, new) = (string(2)?, string(4)?);
                    // wasmtime refuses to follow a symlink source.
                    if int(1)? & 1 != 0 {
                        return Err(ErrorCode::INVALID.into());
                    }
                    let target = match self.get(arg(3)?)? {
                        Resource::Descriptor(Descriptor::Dir { dir, .. }) => dir.clone(),
                        Resource::Descriptor(Descriptor::File { .. }) => {
                            return Err(ErrorCode::NOT_DIRECTORY.into());
                        }
                        _ => return Err(wrong_type().into()),
                    };
                    dir()?.hard_link(old, &target, new)?;
                    Value::Record(Vec::new())
                }
                "[method]descriptor.symlink-at" => {
                    let (old, new) = (string(1)?, string(2)?);
                    // An absolute target could never be followed inside the sandbox.
                    if old.starts_with('/') {
                        return Err(ErrorCode::NOT_PERMITTED.into());
                    }
                    dir()?.symlink(old, new)?;
                    Value::Record(Vec::new())
                }
                "[method]descriptor.readlink-at" => {
                    let target = dir()?.read_link(string(1)?)?;
                    Value::String(target.to_string_lossy().into_owned())
                }
                "[method]descriptor.read" => {
                    let len = int(1)?.min(streams::MAX_READ as u64) as usize;
                    let offset = int(2)?;
                    let mut buf = vec![0u8; len];
                    let n = file()?.read_at(&mut buf, offset)?;
                    buf.truncate(n);
                    // End of file is "nothing read", even for a read of 0 bytes (as
                    // wasmtime: the adapter answers EINTR to an empty read not at
                    // the end).
                    Value::Record(vec![Value::Bytes(buf), Value::Bool(n == 0)])
                }
                "[method]descriptor.write" => {
                    let Value::Bytes(bytes) = arg(1)? else {
                        return Err(CanonTrap::new("expected a list<u8> argument").into());
                    };
                    let n = file()?.write_at(bytes, int(2)?)?;
                    Value::Int(n as u64)
                }
                "[method]descriptor.set-size" => {
                    file()?.set_len(int(1)?)?;
                    Value::Record(Vec::new())
                }
                "[method]descriptor.sync" | "[method]descriptor.sync-data" => {
                    if let Ok(file) = file() {
                        file.sync_all()?;
                    }
                    Value::Record(Vec::new())
                }
                "[method]descriptor.advise" => {
                    // Advice only: accepted on files, as wasmtime does.
                    file()?;
                    Value::Record(Vec::new())
                }
                "[method]descriptor.set-times" => {
                    let (a, m) = (new_timestamp(arg(1)?)?, new_timestamp(arg(2)?)?);
                    let times = rustix::fs::Timestamps {
                        last_access: timespec(&a),
                        last_modification: timespec(&m),
                    };
                    match &descriptor {
                        Descriptor::File { file, .. } => rustix::fs::futimens(&**file, &times)
                            .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))?,
                        // cap-std holds preopened directories as O_PATH
                        // descriptors, which futimens refuses (`bad-descriptor`);
                        // wasmtime's are O_PATH too, kept. The directories opened
                        // later are not: "." relative to one is the directory.
                        Descriptor::Dir {
                            dir, preopen: true, ..
                        } => rustix::fs::futimens(&**dir, &times)
                            .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))?,
                        Descriptor::Dir { dir, .. } => {
                            rustix::fs::utimensat(&**dir, ".", &times, rustix::fs::AtFlags::empty())
                                .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))?
                        }
                    }
                    Value::Record(Vec::new())
                }
                "[method]descriptor.set-times-at" => {
                    use cap_fs_ext::DirExt;
                    let path = string(2)?;
                    let a = system_time_spec(new_timestamp(arg(3)?)?)?;
                    let m = system_time_spec(new_timestamp(arg(4)?)?)?;
                    if int(1)? & 1 != 0 {
                        dir()?.set_times(&path, a, m)?;
                    } else {
                        dir()?.set_symlink_times(&path, a, m)?;
                    }
                    Value::Record(Vec::new())
                }
                "[method]descriptor.is-same-object" => {
                    let other = match self.get(arg(1)?)? {
                        Resource::Descriptor(Descriptor::Dir { dir, .. }) => dir.dir_metadata(),
                        Resource::Descriptor(Descriptor::File { file, .. }) => file.metadata(),
                        _ => return Err(wrong_type().into()),
                    };
                    let this = match &descriptor {
                        Descriptor::Dir { dir, .. } => dir.dir_metadata(),
                        Descriptor::File { file, .. } => file.metadata(),
                    };
                    // A bool, not a result: a failed stat answers "not the same".
                    let same = match (this, other) {
                        (Ok(a), Ok(b)) => hash(&a) == hash(&b),
                        _ => false,
                    };
                    return Ok(Value::Bool(same));
                }
                _ => {
                    return Err(CanonTrap::new(format!(
                        "`{method}` of `wasi:filesystem/types` is not implemented by this host"
                    ))
                    .into());
                }
            })
        })();
        Ok(match result {
            Err(Fail::Trap(trap)) => return Err(trap),
            // Functions returning `result<_, error-code>` have no ok payload: an empty
            // record stands for it.
            Ok(Value::Record(fields)) if fields.is_empty() => Value::ok(None),
            Ok(value) => Value::ok(Some(value)),
            Err(Fail::Code(code)) => Value::err(Some(Value::Variant(code.0, None))),
        })
    }

    /// `open-at`, with wasmtime's semantics (those of preview1's `path_open` in
    /// `wasi::calls`, which wasmtime implements on this same call): the sync flags
    /// are unsupported, `directory` excludes `create`/`exclusive`/`truncate`,
    /// `create` and `truncate` open for writing, a descriptor not opened for
    /// writing is opened for reading, and a directory opened for writing is
    /// `is-directory`.
    fn open_at(
        &mut self,
        dir: &Dir,
        mutate: bool,
        path_flags: u64,
        path: &str,
        open_flags: u64,
        flags: u64,
    ) -> Result<Value, ErrorCode> {
        use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt};
        const CREATE: u64 = 1;
        const DIRECTORY: u64 = 2;
        const EXCLUSIVE: u64 = 4;
        const TRUNCATE: u64 = 8;
        const READ: u64 = 1;
        const WRITE: u64 = 2;
        const SYNC_FLAGS: u64 = 4 | 8 | 16;
        let follow = if path_flags & 1 != 0 {
            FollowSymlinks::Yes
        } else {
            FollowSymlinks::No
        };
        if flags & SYNC_FLAGS != 0 {
            return Err(ErrorCode::UNSUPPORTED);
        }
        let write = flags & WRITE != 0 || open_flags & (CREATE | TRUNCATE) != 0;
        let read = flags & READ != 0 || flags & WRITE == 0;
        if open_flags & DIRECTORY != 0 {
            if open_flags & (CREATE | EXCLUSIVE | TRUNCATE) != 0 {
                return Err(ErrorCode::INVALID);
            }
            // Without symlink-follow a symlink is `loop`, as in wasmtime (which opens
            // with O_NOFOLLOW; O_DIRECTORY | O_NOFOLLOW says ENOTDIR).
            if follow == FollowSymlinks::No
                && !path.ends_with('/')
                && dir.symlink_metadata(path).is_ok_and(|m| m.is_symlink())
            {
                return Err(ErrorCode::LOOP);
            }
            let sub = match follow {
                FollowSymlinks::Yes => dir.open_dir(path)?,
                FollowSymlinks::No => cap_fs_ext::DirExt::open_dir_nofollow(dir, path)?,
            };
            if write {
                return Err(ErrorCode::IS_DIRECTORY);
            }
            return Ok(self.insert(Resource::Descriptor(Descriptor::Dir {
                dir: Arc::new(sub),
                read,
                mutate,
                preopen: false,
            })));
        }
        if write && !mutate {
            return Err(ErrorCode::NOT_PERMITTED);
        }
        let mut options = OpenOptions::new();
        options
            .follow(follow)
            .maybe_dir(true)
            .read(read)
            .write(write);
        if open_flags & CREATE != 0 {
            if open_flags & EXCLUSIVE != 0 {
                options.create_new(true);
            } else {
                options.create(true);
            }
        }
        if open_flags & TRUNCATE != 0 {
            options.truncate(true);
        }
        let file = dir.open_with(path, &options)?;
        if file.metadata()?.is_dir() {
            return Ok(self.insert(Resource::Descriptor(Descriptor::Dir {
                dir: Arc::new(Dir::from_std_file(file.into_std())),
                read,
                mutate,
                preopen: false,
            })));
        }
        Ok(self.insert(Resource::Descriptor(Descriptor::File {
            file: Arc::new(file),
            read,
            write,
        })))
    }
}

trait MapUnit {
    fn map_unit(self) -> Value;
}

impl MapUnit for Value {
    /// `result<_, stream-error>`: drops the placeholder ok payload.
    fn map_unit(self) -> Value {
        match self {
            Value::Variant(0, _) => Value::ok(None),
            other => other,
        }
    }
}

fn wrong_type() -> CanonTrap {
    CanonTrap::new("handle index refers to a resource of another type")
}

fn datetime(d: Duration) -> Value {
    Value::Record(vec![
        Value::Int(d.as_secs()),
        Value::Int(u64::from(d.subsec_nanos())),
    ])
}

fn fill_random(dest: &mut [u8]) -> CanonResult<()> {
    let mut filled = 0;
    while filled < dest.len() {
        let rest = &mut dest[filled..];
        // SAFETY: writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(CanonTrap::new("the host's random source failed"));
        }
        filled += n as usize;
    }
    Ok(())
}

fn descriptor_type(ty: &cap_std::fs::FileType) -> u32 {
    use cap_fs_ext::FileTypeExt;
    if ty.is_dir() {
        3
    } else if ty.is_file() {
        6
    } else if ty.is_symlink() {
        5
    } else if ty.is_block_device() {
        1
    } else if ty.is_char_device() {
        2
    } else if ty.is_fifo() {
        4
    } else if ty.is_socket() {
        7
    } else {
        0
    }
}

fn timestamp(t: std::io::Result<cap_std::time::SystemTime>) -> Value {
    match t {
        Ok(t) => match t.into_std().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Value::some(datetime(d)),
            Err(_) => Value::none(),
        },
        Err(_) => Value::none(),
    }
}

/// The metadata of an open descriptor (`stat`, `metadata-hash`).
fn descriptor_metadata(descriptor: &Descriptor) -> std::io::Result<cap_std::fs::Metadata> {
    match descriptor {
        Descriptor::Dir { dir, .. } => dir.dir_metadata(),
        Descriptor::File { file, .. } => file.metadata(),
    }
}

/// The metadata of `path` under `dir`, following a final symlink when the
/// path-flags' `symlink-follow` bit is set (`stat-at`, `metadata-hash-at`).
fn path_metadata(dir: &Dir, follow: bool, path: &str) -> std::io::Result<cap_std::fs::Metadata> {
    if follow {
        dir.metadata(path)
    } else {
        dir.symlink_metadata(path)
    }
}

fn stat(m: &cap_std::fs::Metadata) -> Value {
    use cap_fs_ext::MetadataExt;
    Value::Record(vec![
        Value::Variant(descriptor_type(&m.file_type()), None),
        Value::Int(m.nlink()),
        Value::Int(m.len()),
        timestamp(m.accessed()),
        timestamp(m.modified()),
        timestamp(m.created().or_else(|_| m.modified())),
    ])
}

fn hash(m: &cap_std::fs::Metadata) -> Value {
    use cap_fs_ext::MetadataExt;
    Value::Record(vec![Value::Int(m.ino()), Value::Int(m.dev())])
}

/// A `new-timestamp`: `None` for no-change, `Some(None)` for now, or the time.
type NewTimestamp = Option<Option<Duration>>;

fn new_timestamp(value: &Value) -> CanonResult<NewTimestamp> {
    Ok(match value {
        Value::Variant(0, None) => None,
        Value::Variant(1, None) => Some(None),
        Value::Variant(2, Some(datetime)) => match &**datetime {
            Value::Record(f) => match (f.first(), f.get(1)) {
                (Some(Value::Int(secs)), Some(Value::Int(nanos))) => {
                    Some(Some(Duration::new(*secs, 0) + Duration::from_nanos(*nanos)))
                }
                _ => return Err(CanonTrap::new("expected a datetime")),
            },
            _ => return Err(CanonTrap::new("expected a datetime")),
        },
        _ => return Err(CanonTrap::new("expected a new-timestamp")),
    })
}

fn timespec(t: &NewTimestamp) -> rustix::fs::Timespec {
    match t {
        None => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        Some(None) => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        Some(Some(d)) => rustix::fs::Timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: d.subsec_nanos() as _,
        },
    }
}

fn system_time_spec(t: NewTimestamp) -> Result<Option<cap_fs_ext::SystemTimeSpec>, ErrorCode> {
    Ok(match t {
        None => None,
        Some(None) => Some(cap_fs_ext::SystemTimeSpec::SymbolicNow),
        Some(Some(d)) => {
            let t = std::time::UNIX_EPOCH
                .checked_add(d)
                .ok_or(ErrorCode::OVERFLOW)?;
            Some(cap_fs_ext::SystemTimeSpec::Absolute(
                cap_std::time::SystemTime::from_std(t),
            ))
        }
    })
}

/// Why a filesystem call failed: an `error-code` for the guest, or a trap.
enum Fail {
    Code(ErrorCode),
    Trap(CanonTrap),
}

impl From<ErrorCode> for Fail {
    fn from(code: ErrorCode) -> Fail {
        Fail::Code(code)
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Fail {
        Fail::Code(e.into())
    }
}

impl From<CanonTrap> for Fail {
    fn from(trap: CanonTrap) -> Fail {
        Fail::Trap(trap)
    }
}

/// A `wasi:filesystem/types.error-code` case.
#[derive(Debug, Clone, Copy)]
struct ErrorCode(u32);

impl ErrorCode {
    const INVALID: ErrorCode = ErrorCode(12);
    const LOOP: ErrorCode = ErrorCode(15);
    const UNSUPPORTED: ErrorCode = ErrorCode(27);
    const IS_DIRECTORY: ErrorCode = ErrorCode(14);
    const NOT_DIRECTORY: ErrorCode = ErrorCode(24);
    const OVERFLOW: ErrorCode = ErrorCode(30);
    const NOT_PERMITTED: ErrorCode = ErrorCode(31);
}

impl From<std::io::Error> for ErrorCode {
    fn from(e: std::io::Error) -> ErrorCode {
        let code = match e.raw_os_error() {
            Some(libc::EACCES) => 0,
            Some(libc::EAGAIN) => 1,
            Some(libc::EALREADY) => 2,
            Some(libc::EBADF) => 3,
            Some(libc::EBUSY) => 4,
            Some(libc::EDEADLK) => 5,
            Some(libc::EDQUOT) => 6,
            Some(libc::EEXIST) => 7,
            Some(libc::EFBIG) => 8,
            Some(libc::EILSEQ) => 9,
            Some(libc::EINPROGRESS) => 10,
            Some(libc::EINTR) => 11,
            Some(libc::EINVAL) => 12,
            Some(libc::EIO) => 13,
            Some(libc::EISDIR) => 14,
            Some(libc::ELOOP) => 15,
            Some(libc::EMLINK) => 16,
            Some(libc::EMSGSIZE) => 17,
            Some(libc::ENAMETOOLONG) => 18,
            Some(libc::ENODEV) => 19,
            Some(libc::ENOENT) => 20,
            Some(libc::ENOLCK) => 21,
            Some(libc::ENOMEM) => 22,
            Some(libc::ENOSPC) => 23,
            Some(libc::ENOTDIR) => 24,
            Some(libc::ENOTEMPTY) => 25,
            Some(libc::ENOTRECOVERABLE) => 26,
            Some(libc::ENOTSUP) => 27,
            Some(libc::ENOTTY) => 28,
            Some(libc::ENXIO) => 29,
            Some(libc::EOVERFLOW) => 30,
            Some(libc::EPERM) => 31,
            Some(libc::EPIPE) => 32,
            Some(libc::EROFS) => 33,
            Some(libc::ESPIPE) => 34,
            Some(libc::ETXTBSY) => 35,
            Some(libc::EXDEV) => 36,
            _ => match e.kind() {
                std::io::ErrorKind::NotFound => 20,
                // cap-std's refusal to leave the sandbox, as in wasmtime.
                std::io::ErrorKind::PermissionDenied => 31,
                std::io::ErrorKind::AlreadyExists => 7,
                _ => 13,
            },
        };
        ErrorCode(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::component::WASI_P2_HOST_FUNCTIONS;

    /// Every function the compiler lets a component import is implemented: called
    /// without its arguments it fails on a missing argument, never as unknown.
    #[test]
    fn every_listed_function_is_implemented() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = crate::wasi::WasiCtxBuilder::new()
            .preopen_dir(dir.path(), "/d")
            .unwrap()
            .build();
        let mut host = WasiP2::new(ctx);
        let Some(Value::List(preopens)) = host
            .call("wasi:filesystem/preopens", "get-directories", vec![])
            .unwrap()
        else {
            panic!("get-directories returns a list");
        };
        let Value::Record(fields) = &preopens[0] else {
            panic!("a preopen is a tuple");
        };
        let descriptor = fields[0].clone();
        for (interface, functions) in WASI_P2_HOST_FUNCTIONS {
            for function in *functions {
                if *function == "exit" {
                    continue;
                }
                let args = if function.starts_with("[method]descriptor.") {
                    vec![descriptor.clone()]
                } else {
                    vec![]
                };
                if let Err(e) = host.call(interface, function, args) {
                    assert!(
                        !e.0.contains("not implemented"),
                        "{interface}#{function}: {}",
                        e.0
                    );
                }
            }
        }
    }
}
