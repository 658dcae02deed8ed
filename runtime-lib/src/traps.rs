//! Trap handling: signal handlers, trap recovery, backtraces, and the wasm stack.
//!
//! # How a trap travels
//! Generated code traps in two ways:
//! * a faulting instruction (Cranelift `trap` = `ud2`/`udf`, a divide by zero on
//!   x86_64, a load or store that hits a guard page, the stack-limit check). The
//!   kernel delivers SIGILL/SIGFPE/SIGSEGV/SIGBUS to [`signal_handler`], which runs on
//!   a per-thread alternate stack;
//! * a call to the `raise_trap` builtin ([`raise_trap`]), used by host stubs.
//!
//! Both look the program counter up among the registered code of loaded modules (a
//! sorted list searched by binary search, see [`CodeMap`]), find the trap code in
//! the function's trap-site table, walk the frame-pointer chain to record a
//! backtrace, and then *unwind*: control goes back to the innermost active
//! [`catch_traps`] on the thread, which returns `Err(TrapInfo)`. The timeout's
//! signal (`interrupt`) unwinds the same way from any pc in wasm code.
//!
//! A memory fault in wasm code is a trap only at an address inside a linear memory's
//! reservation (registered by each `Memory`, see [`register_reservation`]) or the
//! stack guard; any other fault in wasm code is a bug in wasmc and ends the process
//! with a crash report. Signals that are not faults of wasm code are passed on to
//! the previously installed disposition ([`chain`]).
//!
//! # Why not setjmp/longjmp
//! `setjmp` "returns twice", which Rust cannot express soundly. Instead a tiny
//! hand-written assembly routine ([`catch_call`]) saves the callee-saved registers,
//! the stack pointer and its own return address into a buffer, calls a callback and
//! returns 0. The unwind routine ([`unwind`]) reloads those registers and returns
//! 1 from `catch_call`'s call site, as if `catch_call` had returned normally. From
//! Rust's point of view `catch_call` is an ordinary function that returns once.
//! The frames skipped over (the callback's Rust frame and the wasm frames) own
//! nothing that needs dropping: the callback moves its closure in and only calls
//! an array trampoline; anything it leaks on a trap is leaked, never used again.
//!
//! The signal handler does not jump out of itself: it rewrites the interrupted
//! context (pc = `unwind`, first argument register = the buffer, sp = the saved
//! sp) and returns, so the kernel's `sigreturn` restores the signal mask and the
//! unwind happens in normal (non-signal) context.
//!
//! # The wasm stack
//! Wasm runs with a stack limit taken from `VMRuntimeState::stack_limit` (one state
//! per thread, see [`runtime_state`]): the lowest address of the thread's stack plus
//! [`HOST_RESERVE`], so that host functions called from wasm near the limit (WASI,
//! formatting, file system calls) still have room. The signal handler runs on its own
//! alternate stack and does not need any of it. Executables run wasm on a dedicated
//! thread of [`WASM_STACK_SIZE`] plus [`HOST_RESERVE`] bytes ([`run_on_wasm_stack`];
//! `--max-wasm-stack` picks another size, [`run_on_wasm_stack_with`]). 8 MiB is sixteen times wasmtime's default `max_wasm_stack` (512 KiB), chosen
//! because real programs (interpreters, recursive-descent parsers, deep recursion
//! in test suites) routinely exceed 512 KiB, while a runaway recursion still stops
//! within milliseconds.

use std::cell::{Cell, UnsafeCell};
use std::sync::{Arc, Once, OnceLock, RwLock};

use crate::abi::func_table::FuncTable;
use crate::abi::policy::{DEFAULT_WASM_STACK, MAX_WASM_STACK, MIN_WASM_STACK};
use crate::abi::{HandlerSite, Trap, VMException, VMRuntimeState};

/// Stack available to wasm code on the thread created by [`run_on_wasm_stack`]
/// (`abi::policy::DEFAULT_WASM_STACK`; [`run_on_wasm_stack_with`] takes another size).
pub const WASM_STACK_SIZE: usize = DEFAULT_WASM_STACK as usize;
/// Stack kept free below the wasm stack limit for host functions called from wasm.
pub const HOST_RESERVE: usize = 1 << 20;
/// Size of the per-thread alternate signal stack.
const ALT_STACK_SIZE: usize = 64 << 10;
/// Frames recorded per backtrace; deeper stacks (typically a stack overflow) are cut.
const MAX_FRAMES: usize = 512;

/// A trap that stopped wasm execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrapInfo {
    pub trap: Trap,
    /// Program counter of the trapping instruction (for a trap raised through the
    /// `raise_trap` builtin: the return address of that call). 0 when the error did
    /// not come from generated code (see `message`).
    pub pc: usize,
    /// Wasm frames, innermost first, as `module!function`.
    pub backtrace: Vec<String>,
    /// A more precise message than `trap.message()`, for errors found by the host
    /// (for example an argument type mismatch in `invoke`).
    pub message: Option<String>,
}

impl TrapInfo {
    /// A trap reported by the host rather than by generated code.
    pub fn host(trap: Trap, message: impl Into<String>) -> TrapInfo {
        TrapInfo {
            trap,
            pc: 0,
            backtrace: Vec::new(),
            message: Some(message.into()),
        }
    }

    /// The message: `message` when present, otherwise the spec test suite's text.
    pub fn message(&self) -> &str {
        self.message.as_deref().unwrap_or(self.trap.message())
    }

    /// The report printed by executables: `wasm trap: ...`, then the backtrace, one
    /// frame per line. Runs of more than three identical frames (deep recursion) are
    /// shortened to their first and last frame around a count.
    pub fn report(&self) -> String {
        let mut out = format!("wasm trap: {}\n", self.message());
        if self.backtrace.is_empty() {
            return out;
        }
        out.push_str("wasm backtrace:\n");
        let frames = &self.backtrace;
        let mut i = 0;
        while i < frames.len() {
            let run = frames[i..].iter().take_while(|f| **f == frames[i]).count();
            if run > 3 {
                let last = i + run - 1;
                out.push_str(&format!("    {i}: {}\n", frames[i]));
                out.push_str(&format!(
                    "       ... {} more frames of {} ...\n",
                    run - 2,
                    frames[i]
                ));
                out.push_str(&format!("    {last}: {}\n", frames[last]));
            } else {
                for (k, frame) in frames[i..i + run].iter().enumerate() {
                    out.push_str(&format!("    {}: {frame}\n", i + k));
                }
            }
            i += run;
        }
        out
    }
}

impl std::fmt::Display for TrapInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for TrapInfo {}

// ---------------------------------------------------------------------------
// Registered code
// ---------------------------------------------------------------------------

/// The code of one loaded module, as the trap handler needs it.
#[derive(Debug)]
pub(crate) struct CodeMap {
    /// `[start, end)` covers every defined function of the module.
    start: usize,
    end: usize,
    /// Code address of each defined function (the descriptor's table, in place).
    addresses: &'static [usize],
    /// Defined function indices sorted by address, when `addresses` is not sorted
    /// already (the compiler lays functions out in index order, so normally `None`).
    by_address: Option<Box<[u32]>>,
    /// Code lengths, trap sites, handlers, stack maps and names, read in place.
    table: FuncTable<'static>,
    /// Module name of backtrace frames.
    module_name: String,
    num_imported_funcs: u32,
}

impl CodeMap {
    /// `functions[i]` is the code address of defined function `i`; its length comes
    /// from `table` (which has an entry for each).
    pub(crate) fn new(
        functions: &'static [usize],
        table: FuncTable<'static>,
        module_name: Option<&str>,
        num_imported_funcs: u32,
    ) -> CodeMap {
        let by_address = (!functions.is_sorted()).then(|| {
            let mut order: Vec<u32> = (0..functions.len() as u32).collect();
            order.sort_unstable_by_key(|&i| functions[i as usize]);
            order.into_boxed_slice()
        });
        let start = functions.iter().copied().min().unwrap_or(0);
        let end = functions
            .iter()
            .zip(0u32..)
            .map(|(&addr, i)| addr.saturating_add(table.code_len(i).unwrap_or(0) as usize))
            .max()
            .unwrap_or(0);
        CodeMap {
            start,
            end,
            addresses: functions,
            by_address,
            table,
            module_name: module_name.unwrap_or("wasm").to_string(),
            num_imported_funcs,
        }
    }

    /// The defined function containing `pc` and `pc`'s offset in it.
    fn func_at(&self, pc: usize) -> Option<(u32, u32)> {
        let index = match &self.by_address {
            None => self
                .addresses
                .partition_point(|&addr| addr <= pc)
                .checked_sub(1)? as u32,
            Some(order) => {
                let i = order.partition_point(|&f| self.addresses[f as usize] <= pc);
                order[i.checked_sub(1)?]
            }
        };
        let addr = self.addresses[index as usize];
        let len = self.table.code_len(index)? as usize;
        let offset = pc - addr;
        (offset < len).then_some((index, offset as u32))
    }

    fn trap_at(&self, func: u32, offset: u32) -> Option<Trap> {
        self.table.trap_at(func, offset)
    }

    /// The handler of the call whose return address is at `offset` in `func`.
    fn handler_at(&self, func: u32, offset: u32) -> Option<HandlerSite> {
        self.table.handler_at(func, offset)
    }

    /// The stack slots of the call whose return address is at `offset` in `func`.
    fn stack_map_at(&self, func: u32, offset: u32) -> Option<impl Iterator<Item = u32>> {
        self.table.stack_map_at(func, offset)
    }

    /// Writes the `module!function` name of defined function `func` (no allocation:
    /// the crash report uses it inside the signal handler).
    fn write_frame_name(&self, out: &mut impl std::fmt::Write, func: u32) -> std::fmt::Result {
        match self.table.name(func) {
            Some(name) => write!(out, "{}!{name}", self.module_name),
            None => write!(
                out,
                "{}!wasm-function[{}]",
                self.module_name,
                self.num_imported_funcs as u64 + func as u64
            ),
        }
    }

    /// The names of the frames at `offset` in `func`, innermost first: the
    /// functions whose inlined code is there (see `abi::InlinedRange`), then `func`.
    fn frame_names(&self, func: u32, offset: u32) -> impl Iterator<Item = String> + '_ {
        let defined = self.table.len();
        self.table
            .inlined_at(func, offset)
            .filter(move |&f| (f as usize) < defined)
            .chain(std::iter::once(func))
            .map(|f| self.frame_name(f))
    }

    fn frame_name(&self, func: u32) -> String {
        let mut name = String::new();
        let _ = self.write_frame_name(&mut name, func);
        name
    }
}

/// All registered code, sorted by start address. Modules are few and registered
/// rarely; the signal handler only ever *tries* to take the read lock (see
/// [`with_registry_in_handler`]).
static REGISTRY: RwLock<Vec<Arc<CodeMap>>> = RwLock::new(Vec::new());

/// Keeps a module's code registered for trap lookup while it lives.
#[derive(Debug)]
pub(crate) struct CodeRegistration(Arc<CodeMap>);

pub(crate) fn register_code(map: CodeMap) -> CodeRegistration {
    let map = Arc::new(map);
    if map.start < map.end {
        let mut registry = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
        let i = registry.partition_point(|m| m.start <= map.start);
        registry.insert(i, map.clone());
    }
    CodeRegistration(map)
}

impl Drop for CodeRegistration {
    fn drop(&mut self) {
        let mut registry = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
        registry.retain(|m| !Arc::ptr_eq(m, &self.0));
    }
}

fn find_code(registry: &[Arc<CodeMap>], pc: usize) -> Option<&CodeMap> {
    // Code ranges of different objects never overlap; the same object registered by
    // two `Module`s gives identical entries, any of which describes the code.
    let i = registry.partition_point(|m| m.start <= pc);
    let map = registry.get(i.checked_sub(1)?)?;
    (pc < map.end).then_some(&**map)
}

/// Is `pc` inside a registered wasm function?
fn is_wasm_pc(registry: &[Arc<CodeMap>], pc: usize) -> bool {
    find_code(registry, pc)
        .and_then(|m| m.func_at(pc))
        .is_some()
}

/// Runs `f` with the registry if its lock can be taken without blocking forever:
/// the faulting thread itself may hold the write lock (a crash inside
/// registration), so only `try_read` is used, retried briefly in case another
/// thread holds it for an insertion.
fn with_registry_in_handler<R>(f: impl FnOnce(&[Arc<CodeMap>]) -> R) -> Option<R> {
    try_read_in_handler(&REGISTRY, |registry| f(registry))
}

fn try_read_in_handler<T, R>(lock: &RwLock<T>, f: impl FnOnce(&T) -> R) -> Option<R> {
    for _ in 0..100_000 {
        if let Ok(guard) = lock.try_read() {
            return Some(f(&guard));
        }
        std::hint::spin_loop();
    }
    None
}

/// Address ranges `[start, end)` reserved for linear memories, sorted by start: a
/// fault in wasm code is a wasm trap only inside one of them (or in the stack guard).
/// Read by the signal handler like [`REGISTRY`].
static RESERVATIONS: RwLock<Vec<(usize, usize)>> = RwLock::new(Vec::new());

/// Keeps a linear memory's reservation known to the trap handler while it lives.
#[derive(Debug)]
pub(crate) struct ReservationRegistration {
    start: usize,
    end: usize,
}

pub(crate) fn register_reservation(start: usize, len: usize) -> ReservationRegistration {
    let end = start.saturating_add(len);
    let mut list = RESERVATIONS.write().unwrap_or_else(|e| e.into_inner());
    let i = list.partition_point(|r| r.0 <= start);
    list.insert(i, (start, end));
    ReservationRegistration { start, end }
}

impl Drop for ReservationRegistration {
    fn drop(&mut self) {
        let mut list = RESERVATIONS.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = list.iter().position(|&r| r == (self.start, self.end)) {
            list.remove(i);
        }
    }
}

/// Does `addr` lie in a linear memory's reservation? `None` when the list cannot be
/// read (see [`with_registry_in_handler`]).
fn in_reservation_in_handler(addr: usize) -> Option<bool> {
    try_read_in_handler(&RESERVATIONS, |list| {
        // Reservations never overlap (they are distinct mappings).
        let i = list.partition_point(|r| r.0 <= addr);
        i.checked_sub(1).is_some_and(|i| addr < list[i].1)
    })
}

/// The `module!function` name of the wasm function containing `pc`.
pub fn frame_name(pc: usize) -> Option<String> {
    let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    let map = find_code(&registry, pc)?;
    let (func, _) = map.func_at(pc)?;
    Some(map.frame_name(func))
}

// ---------------------------------------------------------------------------
// Per-thread state
// ---------------------------------------------------------------------------

/// Where a trap returns to, plus what the trap handler recorded. Lives on the stack
/// of [`catch_traps`]; `regs` must stay the first field (the assembly uses offset 0).
#[repr(C)]
struct CallState {
    regs: [usize; 24],
    trap: Option<Trap>,
    pc: usize,
    /// Lookup pcs of the recorded frames (a return address minus one for callers);
    /// the first `num_frames` are written. Left uninitialized otherwise: zeroing
    /// 4 KiB on every call into wasm was half the cost of a short call.
    frames: [std::mem::MaybeUninit<usize>; MAX_FRAMES],
    num_frames: usize,
}

thread_local! {
    /// The innermost active `catch_traps` of this thread, or null.
    static CURRENT: Cell<*mut CallState> = const { Cell::new(std::ptr::null_mut()) };
    /// How many `catch_traps` calls are active on this thread (wasm activations,
    /// possibly with host frames between them).
    static ACTIVATIONS: Cell<u32> = const { Cell::new(0) };
    /// `(lowest, highest)` address of this thread's stack; (0, 0) until prepared.
    static STACK_BOUNDS: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// This thread's runtime state, pointed at by every `VMContext` created on it.
    /// Const-initialized without destructor: its address is stable until the thread
    /// exits, and instances (which are `!Send`) cannot outlive it.
    static RUNTIME_STATE: UnsafeCell<VMRuntimeState> =
        const {
            UnsafeCell::new(VMRuntimeState {
                stack_limit: 0,
                // No budget until `fuel::set_budget`: unlimited (see `fuel`).
                fuel_consumed: crate::fuel::UNLIMITED,
                gc_free_cells: [0; crate::abi::gc::CELL_CLASSES],
                gc_type_rows: std::ptr::null(),
            })
        };
    /// The alternate signal stack installed for this thread, if we installed one.
    static ALT_STACK: AltStackSlot = const { AltStackSlot(Cell::new(None)) };
}

/// Prepares the current thread for running wasm: installs the signal handlers
/// (once per process), an alternate signal stack, and the stack limit.
pub fn prepare_thread() {
    install_handlers();
    if STACK_BOUNDS.get() != (0, 0) {
        return;
    }
    let (low, high) = current_stack_bounds();
    STACK_BOUNDS.set((low, high));
    let size = high - low;
    let reserve = HOST_RESERVE.min(size / 2);
    RUNTIME_STATE.with(|state| {
        // SAFETY: the state is thread-local and nothing else borrows it here;
        // generated code only reads it while wasm runs on this thread.
        unsafe { (*state.get()).stack_limit = low + reserve };
    });
    install_alt_stack();
}

/// What [`use_stack`] replaced: the thread's stack bounds and stack limit.
pub(crate) struct PreviousStack {
    bounds: (usize, usize),
    stack_limit: usize,
}

/// Makes `[low, high)`, a stack the caller is about to run this thread on (see
/// `own_stack`), the thread's stack for trap handling (stack-guard faults, frame
/// walks) and for the stack limit of generated code, exactly as [`prepare_thread`]
/// does for a thread's own stack. [`restore_stack`] undoes it once the thread is
/// back on its own stack.
pub(crate) fn use_stack(low: usize, high: usize) -> PreviousStack {
    install_handlers();
    let bounds = STACK_BOUNDS.replace((low, high));
    let reserve = HOST_RESERVE.min((high - low) / 2);
    let stack_limit = RUNTIME_STATE.with(|state| {
        // SAFETY: as in `prepare_thread`.
        unsafe { std::mem::replace(&mut (*state.get()).stack_limit, low + reserve) }
    });
    install_alt_stack();
    PreviousStack {
        bounds,
        stack_limit,
    }
}

/// Undoes [`use_stack`].
pub(crate) fn restore_stack(previous: PreviousStack) {
    STACK_BOUNDS.set(previous.bounds);
    RUNTIME_STATE.with(|state| {
        // SAFETY: as in `prepare_thread`.
        unsafe { (*state.get()).stack_limit = previous.stack_limit };
    });
}

/// The current thread's `VMRuntimeState` (prepared on first use).
pub fn runtime_state() -> *const VMRuntimeState {
    prepare_thread();
    let rows = crate::gc::types::type_rows_base();
    RUNTIME_STATE.with(|state| {
        // SAFETY: as in `prepare_thread`; the table's address never changes.
        unsafe { (*state.get()).gc_type_rows = rows };
        state.get() as *const VMRuntimeState
    })
}

/// The current thread's `VMRuntimeState`, for the runtime's own updates (fuel).
pub(crate) fn runtime_state_mut() -> *mut VMRuntimeState {
    RUNTIME_STATE.with(|state| state.get())
}

fn current_stack_bounds() -> (usize, usize) {
    // SAFETY: `attr` is initialized by pthread_getattr_np before use and destroyed
    // after; the out-pointers are valid locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
            let mut addr: *mut libc::c_void = std::ptr::null_mut();
            let mut size: libc::size_t = 0;
            let rc = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
            libc::pthread_attr_destroy(&mut attr);
            if rc == 0 && size > 0 {
                return (addr as usize, addr as usize + size);
            }
        }
    }
    // Unknown bounds: assume the 8 MiB default below the current frame.
    let here = &0u8 as *const u8 as usize;
    (here.saturating_sub(7 << 20), here + (1 << 20))
}

/// Runs `f` on a new thread with [`WASM_STACK_SIZE`] + [`HOST_RESERVE`] bytes of
/// stack and returns its result (a panic in `f` is resumed on the caller). Fails only
/// when the thread cannot be created.
pub fn run_on_wasm_stack<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> std::io::Result<R> {
    run_on_wasm_stack_with(WASM_STACK_SIZE as u64, f)
}

/// [`run_on_wasm_stack`] with `stack_bytes` of wasm stack (the host reserve comes on
/// top, so wasm code gets about `stack_bytes` before "call stack exhausted"). A size
/// outside [`MIN_WASM_STACK`]..=[`MAX_WASM_STACK`] is an `InvalidInput` error saying
/// so; `f` does not run then.
pub fn run_on_wasm_stack_with<R: Send + 'static>(
    stack_bytes: u64,
    f: impl FnOnce() -> R + Send + 'static,
) -> std::io::Result<R> {
    let stack = check_wasm_stack(stack_bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let handle = std::thread::Builder::new()
        .name("wasm".into())
        .stack_size(stack + HOST_RESERVE)
        .spawn(f)?;
    match handle.join() {
        Ok(r) => Ok(r),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// `stack_bytes` as a thread stack size, if it is within the accepted bounds.
pub fn check_wasm_stack(stack_bytes: u64) -> Result<usize, String> {
    use crate::abi::policy::format_size;
    if stack_bytes < MIN_WASM_STACK {
        return Err(format!(
            "a wasm stack of {} is too small: the minimum is {}",
            format_size(stack_bytes),
            format_size(MIN_WASM_STACK)
        ));
    }
    if stack_bytes > MAX_WASM_STACK {
        return Err(format!(
            "a wasm stack of {} is too large: the maximum is {}",
            format_size(stack_bytes),
            format_size(MAX_WASM_STACK)
        ));
    }
    usize::try_from(stack_bytes)
        .ok()
        .filter(|s| s.checked_add(HOST_RESERVE).is_some())
        .ok_or_else(|| {
            format!(
                "a wasm stack of {} does not fit this machine's address space",
                format_size(stack_bytes)
            )
        })
}

// ---------------------------------------------------------------------------
// Alternate signal stack
// ---------------------------------------------------------------------------

struct AltStack {
    mapping: *mut libc::c_void,
    len: usize,
}

struct AltStackSlot(Cell<Option<AltStack>>);

impl Drop for AltStackSlot {
    fn drop(&mut self) {
        if let Some(stack) = self.0.take() {
            // SAFETY: disables the alternate stack only if it is still ours, then
            // unmaps the memory we mapped for it; the thread is exiting and runs no
            // more wasm.
            unsafe {
                let mut current: libc::stack_t = std::mem::zeroed();
                libc::sigaltstack(std::ptr::null(), &mut current);
                let ours = (stack.mapping as usize) + page_size();
                if current.ss_sp as usize == ours && current.ss_flags & libc::SS_ONSTACK == 0 {
                    let disable = libc::stack_t {
                        ss_sp: std::ptr::null_mut(),
                        ss_flags: libc::SS_DISABLE,
                        ss_size: 0,
                    };
                    libc::sigaltstack(&disable, std::ptr::null_mut());
                    libc::munmap(stack.mapping, stack.len);
                }
            }
        }
    }
}

fn page_size() -> usize {
    rustix::param::page_size()
}

fn install_alt_stack() {
    // SAFETY: queries and installs this thread's alternate signal stack; the mapping
    // (one guard page + ALT_STACK_SIZE) stays alive until the thread exits
    // (`AltStackSlot::drop`).
    unsafe {
        let mut current: libc::stack_t = std::mem::zeroed();
        if libc::sigaltstack(std::ptr::null(), &mut current) != 0 {
            return;
        }
        if current.ss_flags & libc::SS_DISABLE == 0 && current.ss_size >= ALT_STACK_SIZE {
            return; // someone installed a large enough one already
        }
        let guard = page_size();
        let len = ALT_STACK_SIZE + guard;
        let mapping = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if mapping == libc::MAP_FAILED {
            return;
        }
        let stack_ptr = (mapping as *mut u8).add(guard) as *mut libc::c_void;
        if libc::mprotect(
            stack_ptr,
            ALT_STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
        ) != 0
        {
            libc::munmap(mapping, len);
            return;
        }
        let new = libc::stack_t {
            ss_sp: stack_ptr,
            ss_flags: 0,
            ss_size: ALT_STACK_SIZE,
        };
        if libc::sigaltstack(&new, std::ptr::null_mut()) != 0 {
            libc::munmap(mapping, len);
            return;
        }
        ALT_STACK.with(|slot| slot.0.set(Some(AltStack { mapping, len })));
    }
}

// ---------------------------------------------------------------------------
// Signal handlers
// ---------------------------------------------------------------------------

const SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// The actions that were installed before ours, restored for faults outside wasm.
struct PreviousActions([libc::sigaction; 4]);
// SAFETY: written once before our handlers are installed, only read afterwards.
unsafe impl Sync for PreviousActions {}
unsafe impl Send for PreviousActions {}

static PREVIOUS: OnceLock<PreviousActions> = OnceLock::new();

fn install_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction with valid, fully initialized structures; the previous
        // actions are saved before ours become active so that the handler can
        // restore them.
        unsafe {
            let mut previous: [libc::sigaction; 4] = std::mem::zeroed();
            for (i, &signal) in SIGNALS.iter().enumerate() {
                libc::sigaction(signal, std::ptr::null(), &mut previous[i]);
            }
            let _ = PREVIOUS.set(PreviousActions(previous));
            for &signal in &SIGNALS {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = signal_handler as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                // The timeout's signal waits until a fault is handled (its handler
                // would only find host code and use more of the alternate stack).
                libc::sigaddset(&mut action.sa_mask, crate::interrupt::interrupt_signal());
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    });
}

/// Did the kernel raise the signal for an instruction of this thread (a fault), as
/// opposed to someone sending it (`kill`, `raise`, `sigqueue`: `si_code <= 0`)?
fn is_fault(info: *const libc::siginfo_t) -> bool {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    unsafe { (*info).si_code > 0 }
}

/// Not a wasm trap: do what would have happened without us, leaving our handler
/// installed (other threads and later runs still need it). A previous handler is
/// called with the same arguments; the default action is taken by restoring it and
/// re-raising the signal (the process dies by it, as it would without wasmc); an
/// ignored signal is ignored, unless it is a fault, which cannot be ignored (the
/// instruction would fault again forever) and takes the default action too.
fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let previous = SIGNALS
        .iter()
        .position(|&s| s == signal)
        .and_then(|i| Some(PREVIOUS.get()?.0[i]));
    // SAFETY: an all-zero sigaction is SIG_DFL.
    let previous = previous.unwrap_or_else(|| unsafe { std::mem::zeroed() });
    let fault = is_fault(info);
    match previous.sa_sigaction {
        libc::SIG_DFL => die_by_default(signal),
        libc::SIG_IGN if fault => die_by_default(signal),
        libc::SIG_IGN => {}
        handler => {
            // SAFETY: calling the previously installed handler as it was declared,
            // with the arguments we were given.
            unsafe {
                if previous.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(handler);
                    f(signal, info, uc);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                    f(signal);
                }
            }
            // A handler that declines a signal typically restores the default action
            // and returns (Rust's stack-overflow handler does), counting on the
            // fault to happen again. A sent signal does not happen again: re-raise it.
            if !fault && current_action_is_default(signal) {
                die_by_default(signal);
            }
        }
    }
}

fn current_action_is_default(signal: libc::c_int) -> bool {
    // SAFETY: queries the current disposition into a local.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_DFL
    }
}

/// Restores the default action of `signal` and raises it again: it is delivered as
/// soon as the handler returns (the signal is blocked while its handler runs) and,
/// for the signals handled here, ends the process with a core dump.
fn die_by_default(signal: libc::c_int) {
    // SAFETY: installs SIG_DFL and sends the signal to this thread.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        libc::sigaction(signal, &default, std::ptr::null_mut());
        libc::raise(signal);
    }
}

/// Registers of an interrupted context.
struct Context {
    pc: usize,
    fp: usize,
}

#[cfg(target_arch = "x86_64")]
unsafe fn read_context(uc: *mut libc::ucontext_t) -> Context {
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler.
    let gregs = unsafe { &(*uc).uc_mcontext.gregs };
    Context {
        pc: gregs[libc::REG_RIP as usize] as usize,
        fp: gregs[libc::REG_RBP as usize] as usize,
    }
}

#[cfg(target_arch = "x86_64")]
unsafe fn redirect_to_unwind(uc: *mut libc::ucontext_t, state: *mut CallState) {
    // SAFETY: as in `read_context`; `state` is live (it is the thread's current
    // catch_traps buffer) and holds the saved sp at regs[6].
    unsafe {
        let gregs = &mut (*uc).uc_mcontext.gregs;
        gregs[libc::REG_RIP as usize] = unwind as *const () as usize as i64;
        gregs[libc::REG_RDI as usize] = state as usize as i64;
        gregs[libc::REG_RSP as usize] = (*state).regs[6] as i64;
    }
}

#[cfg(target_arch = "aarch64")]
unsafe fn read_context(uc: *mut libc::ucontext_t) -> Context {
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler.
    let mc = unsafe { &(*uc).uc_mcontext };
    Context {
        pc: mc.pc as usize,
        fp: mc.regs[29] as usize,
    }
}

#[cfg(target_arch = "aarch64")]
unsafe fn redirect_to_unwind(uc: *mut libc::ucontext_t, state: *mut CallState) {
    // SAFETY: as in `read_context`; `state` is live and holds the saved sp at
    // regs[12].
    unsafe {
        let mc = &mut (*uc).uc_mcontext;
        mc.pc = unwind as *const () as usize as _;
        mc.regs[0] = state as usize as _;
        mc.sp = (*state).regs[12] as _;
    }
}

/// What a signal in wasm code is.
enum Verdict {
    Trap(Trap),
    /// Not a wasm trap although the pc is in wasm code: a bug in wasmc.
    Bug,
}

extern "C" fn signal_handler(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    uc: *mut libc::c_void,
) {
    let state = CURRENT.get();
    // Only faults of this thread's wasm code are ours; a signal sent by someone else
    // is not a fault even when it interrupts wasm code.
    if state.is_null() || !is_fault(info) {
        return chain(signal, info, uc);
    }
    let uc_ctx = uc as *mut libc::ucontext_t;
    // SAFETY: a valid ucontext from the kernel.
    let ctx = unsafe { read_context(uc_ctx) };
    // SAFETY: the kernel passes a valid siginfo; si_addr is meaningful for
    // SIGSEGV/SIGBUS (the faulting address) and is only used for those.
    let fault_addr = unsafe { (*info).si_addr() } as usize;
    let memory_fault = matches!(signal, libc::SIGSEGV | libc::SIGBUS);
    // Only looked up for memory faults, before taking the code registry.
    let in_memory = memory_fault && in_reservation_in_handler(fault_addr) == Some(true);

    let verdict = with_registry_in_handler(|registry| {
        let map = find_code(registry, ctx.pc)?;
        let (func, offset) = map.func_at(ctx.pc)?;
        let site = map.trap_at(func, offset);
        let verdict = match (signal, site) {
            _ if memory_fault && is_stack_guard(fault_addr) => Verdict::Trap(Trap::StackOverflow),
            // An access that left its memory's accessible part but stayed in the
            // reservation: the guard pages doing their job.
            _ if in_memory => Verdict::Trap(site.unwrap_or(Trap::MemoryOutOfBounds)),
            // A fault anywhere else: a bad address computed by generated code. A
            // trap site other than a memory access may rely on a fault (a null
            // check by load), so it counts.
            (_, Some(trap)) if memory_fault && trap != Trap::MemoryOutOfBounds => {
                Verdict::Trap(trap)
            }
            _ if memory_fault => Verdict::Bug,
            // A trap instruction or a division: only at a recorded site.
            (_, Some(trap)) => Verdict::Trap(trap),
            (_, None) => Verdict::Bug,
        };
        match verdict {
            Verdict::Trap(trap) => {
                // SAFETY: `state` is the live buffer of this thread's innermost
                // catch_traps.
                unsafe { record(state, registry, trap, ctx.pc, Some(ctx.pc), ctx.fp) };
            }
            Verdict::Bug => crash_report(signal, ctx.pc, fault_addr, map, func, offset),
        }
        Some(verdict)
    });
    match verdict.flatten() {
        // SAFETY: `state` is live; the context is rewritten to continue in `unwind`.
        Some(Verdict::Trap(_)) => unsafe { redirect_to_unwind(uc_ctx, state) },
        // The process must not go on: generated code did something it never should.
        Some(Verdict::Bug) => die_by_default(signal),
        // Not in wasm code (or the registry is unreadable): not ours.
        None => chain(signal, info, uc),
    }
}

/// Writes what is known about a fault that is not a wasm trap to stderr, without
/// allocating (the handler may have interrupted anything).
fn crash_report(
    signal: libc::c_int,
    pc: usize,
    fault_addr: usize,
    map: &CodeMap,
    func: u32,
    offset: u32,
) {
    use std::fmt::Write;
    let mut out = StackWriter::<512>::new();
    let name = match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        _ => "signal",
    };
    let _ = write!(
        out,
        "wasmc: internal error: {name} in wasm code at pc {pc:#x} ("
    );
    let _ = map.write_frame_name(&mut out, func);
    let _ = write!(out, "+{offset:#x})");
    if matches!(signal, libc::SIGSEGV | libc::SIGBUS) {
        let _ = write!(out, ", fault address {fault_addr:#x}");
    }
    let _ = writeln!(out, "; this is a bug in wasmc, not a wasm trap");
    // SAFETY: writes initialized bytes of a local buffer to stderr.
    unsafe { libc::write(2, out.buf.as_ptr().cast(), out.len) };
}

/// A fixed buffer that `write!` fills, cutting what does not fit.
struct StackWriter<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackWriter<N> {
    fn new() -> Self {
        StackWriter {
            buf: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> std::fmt::Write for StackWriter<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// For the timeout's signal handler (`interrupt`): if the thread was interrupted in
/// wasm code under a `catch_traps` and `claim()` agrees, records [`Trap::Interrupt`]
/// with the backtrace, rewrites the context to continue in the unwind routine (as for
/// a fault) and returns true. Otherwise (host code, no wasm running, or the claim
/// refused) changes nothing.
///
/// # Safety
/// Only from a signal handler running on the interrupted thread, with the context
/// the kernel passed to it.
pub(crate) unsafe fn interrupt_wasm(
    uc: *mut libc::ucontext_t,
    claim: impl FnOnce() -> bool,
) -> bool {
    let state = CURRENT.get();
    if state.is_null() {
        return false;
    }
    // SAFETY: a valid ucontext from the kernel (function contract).
    let ctx = unsafe { read_context(uc) };
    let recorded = with_registry_in_handler(|registry| {
        if !is_wasm_pc(registry, ctx.pc) || !claim() {
            return false;
        }
        // SAFETY: `state` is the live buffer of this thread's innermost catch_traps,
        // and wasm code runs only inside it.
        unsafe {
            record(
                state,
                registry,
                Trap::Interrupt,
                ctx.pc,
                Some(ctx.pc),
                ctx.fp,
            )
        };
        true
    });
    if recorded != Some(true) {
        return false;
    }
    // SAFETY: `state` is live; wasm frames own nothing, so abandoning them at any
    // instruction is as safe as at a trap site.
    unsafe { redirect_to_unwind(uc, state) };
    true
}

/// Does a fault at `addr` hit the guard region below this thread's stack?
fn is_stack_guard(addr: usize) -> bool {
    let (low, _) = STACK_BOUNDS.get();
    low != 0 && addr < low + page_size() && addr >= low.saturating_sub(HOST_RESERVE)
}

/// Records a trap and the wasm frames from `first_pc` (a faulting pc: looked up as
/// is) then along the frame-pointer chain starting at `fp`.
///
/// # Safety
/// `state` must be the live current buffer; `fp` a frame pointer of this thread
/// (it is only dereferenced inside the thread's stack bounds).
unsafe fn record(
    state: *mut CallState,
    registry: &[Arc<CodeMap>],
    trap: Trap,
    pc: usize,
    first_pc: Option<usize>,
    mut fp: usize,
) {
    // SAFETY: see the function contract.
    let state = unsafe { &mut *state };
    state.trap = Some(trap);
    state.pc = pc;
    state.num_frames = 0;
    let push = |state: &mut CallState, pc: usize| {
        if state.num_frames < MAX_FRAMES {
            state.frames[state.num_frames] = std::mem::MaybeUninit::new(pc);
            state.num_frames += 1;
        }
    };
    let mut in_wasm = false;
    if let Some(first) = first_pc.filter(|&p| is_wasm_pc(registry, p)) {
        push(state, first);
        in_wasm = true;
    }
    // When the trap was raised from outside wasm code (a host stub calling
    // `raise_trap`), one non-wasm frame is skipped to reach its wasm caller.
    let mut may_skip = !in_wasm;
    let (low, high) = STACK_BOUNDS.get();
    // Frame records are [fp] = caller's fp, [fp + 8] = return address. Stop at the
    // first return address outside wasm code (the trampoline that entered wasm), or
    // on anything that does not look like a frame of this stack.
    while fp >= low && fp.saturating_add(16) <= high && fp.is_multiple_of(8) {
        // SAFETY: `fp` is 8-aligned and [fp, fp + 16) lies inside this thread's stack.
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        let lookup = ret.wrapping_sub(1);
        if is_wasm_pc(registry, lookup) {
            push(state, lookup);
            may_skip = false;
        } else if may_skip {
            may_skip = false;
        } else {
            break;
        }
        // The stack grows down: a caller's record is always higher.
        if next <= fp {
            break;
        }
        fp = next;
    }
}

/// Builtin `raise_trap(vmctx, trap: u32) -> !`: unwinds to the innermost
/// `catch_traps` with that trap. Entered from generated code, it forwards the
/// caller's frame pointer and return address to [`raise_trap_impl`].
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn raise_trap(_vmctx: *mut u8, _trap: u32) -> ! {
    core::arch::naked_asm!(
        "mov rdx, rbp",
        "mov rcx, [rsp]",
        "jmp {imp}",
        imp = sym raise_trap_impl,
    )
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn raise_trap(_vmctx: *mut u8, _trap: u32) -> ! {
    core::arch::naked_asm!(
        "mov x2, x29",
        "mov x3, x30",
        "b {imp}",
        imp = sym raise_trap_impl,
    )
}

extern "C" fn raise_trap_impl(_vmctx: *mut u8, trap: u32, fp: usize, ret: usize) -> ! {
    let trap = u8::try_from(trap)
        .ok()
        .and_then(Trap::from_u8)
        .unwrap_or(Trap::HostError);
    let state = CURRENT.get();
    if state.is_null() {
        // Wasm was entered without catch_traps: nothing to return to.
        eprintln!("wasm trap: {}", trap.message());
        std::process::abort();
    }
    {
        let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
        // The return address points into the caller (a host stub or a wasm function);
        // the walk from `fp` starts with that caller's own frame record.
        let caller = ret.wrapping_sub(1);
        // SAFETY: `state` is this thread's live buffer; `fp` is the caller's frame
        // pointer on this stack.
        unsafe { record(state, &registry, trap, ret, Some(caller), fp) };
    }
    // SAFETY: `state` is live and was filled by catch_call; nothing on the frames
    // between here and there needs dropping (the registry guard was released above).
    unsafe { unwind(state) }
}

// ---------------------------------------------------------------------------
// Exceptions
// ---------------------------------------------------------------------------

/// Builtin `throw_ref(vmctx, exn) -> !`: throws the non-null exception `exn` (see
/// `abi::Builtins::throw_ref`). Entered from generated code, it forwards the
/// caller's frame pointer and return address to [`throw_impl`].
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn throw_ref(_vmctx: *mut u8, _exn: *const VMException) -> ! {
    core::arch::naked_asm!(
        "mov rdx, rbp",
        "mov rcx, [rsp]",
        "jmp {imp}",
        imp = sym throw_impl,
    )
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn throw_ref(_vmctx: *mut u8, _exn: *const VMException) -> ! {
    core::arch::naked_asm!(
        "mov x2, x29",
        "mov x3, x30",
        "b {imp}",
        imp = sym throw_impl,
    )
}

/// Where an exception resumes: a handler's code address and the frame to restore.
struct Landing {
    pc: usize,
    sp: usize,
    fp: usize,
}

/// Finds the innermost handler above the wasm frame whose frame pointer is `fp`
/// (the function that called `throw_ref`; its own call to `throw_ref` never has a
/// handler). Each step reads the frame record `[fp] = caller's fp`,
/// `[fp + 8] = return address` and looks the return address up among the handler
/// sites of the caller. `None` when the walk leaves wasm code (or the frame chain
/// does not look like one of this stack) without finding a handler.
fn find_handler(registry: &[Arc<CodeMap>], mut fp: usize) -> Option<Landing> {
    let (low, high) = STACK_BOUNDS.get();
    while fp >= low && fp.saturating_add(16) <= high && fp.is_multiple_of(8) {
        // SAFETY: `fp` is 8-aligned and [fp, fp + 16) lies inside this thread's stack.
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        let map = find_code(registry, ret.wrapping_sub(1))?;
        let (func, offset) = map.func_at(ret.wrapping_sub(1))?;
        if let Some(site) = map.handler_at(func, offset + 1) {
            let start = ret - (offset as usize + 1);
            return Some(Landing {
                pc: start + site.handler as usize,
                sp: next.checked_sub(site.frame_offset as usize)?,
                fp: next,
            });
        }
        // The stack grows down: a caller's record is always higher.
        if next <= fp {
            return None;
        }
        fp = next;
    }
    None
}

extern "C" fn throw_impl(_vmctx: *mut u8, exn: *const VMException, fp: usize, ret: usize) -> ! {
    let state = CURRENT.get();
    if state.is_null() {
        // Wasm was entered without catch_traps: nothing to return to.
        eprintln!("wasm trap: {}", Trap::UncaughtException.message());
        std::process::abort();
    }
    let landing = {
        let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
        let landing = find_handler(&registry, fp);
        if landing.is_none() {
            let caller = ret.wrapping_sub(1);
            // SAFETY: `state` is this thread's live buffer; `fp` is the caller's
            // frame pointer on this stack.
            unsafe {
                record(
                    state,
                    &registry,
                    Trap::UncaughtException,
                    ret,
                    Some(caller),
                    fp,
                )
            };
        }
        landing
    };
    match landing {
        // SAFETY: the landing is a handler site of registered code with the frame it
        // belongs to; Cranelift's handler expects exactly this state (all registers
        // but sp, fp and the payload are clobbered across a `try_call`'s exceptional
        // edge). The frames in between own nothing (the registry guard is released).
        Some(l) => unsafe { resume(l.pc, l.sp, l.fp, exn) },
        // SAFETY: `state` is live and filled by `record` above.
        None => unsafe { unwind(state) },
    }
}

/// Calls `visit` with the address of every stack slot that holds a live exception
/// reference in the wasm frames of this thread, from the frame that called a
/// builtin (frame pointer `fp`, return address `ret`, stack pointer at the call
/// `sp`) outwards; each frame's slots come from the stack map of its call site
/// (`abi::StackMapSite`). Returns false, having visited nothing reliable, when the
/// frames cannot all be seen: wasm entered more than once on this thread (host
/// frames, which keep no frame records wasmc can follow, may hide older wasm
/// frames) or a frame chain that leaves this thread's stack.
pub(crate) fn visit_stack_roots(
    fp: usize,
    ret: usize,
    sp: usize,
    mut visit: impl FnMut(*const usize),
) -> bool {
    if ACTIVATIONS.get() != 1 {
        return false;
    }
    let (low, high) = STACK_BOUNDS.get();
    let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    let (mut fp, mut ret, mut sp) = (fp, ret, sp);
    loop {
        // A return address outside wasm code: the walk has reached the host frames
        // that entered wasm (the array trampoline's caller).
        let Some(map) = find_code(&registry, ret.wrapping_sub(1)) else {
            return true;
        };
        let Some((func, offset)) = map.func_at(ret.wrapping_sub(1)) else {
            return true;
        };
        if let Some(slots) = map.stack_map_at(func, offset + 1) {
            for slot in slots {
                let addr = sp.saturating_add(slot as usize);
                if addr < low || addr.saturating_add(8) > high || !addr.is_multiple_of(8) {
                    return false;
                }
                visit(addr as *const usize);
            }
        }
        // The caller's frame: its record is at `fp`, and its stack pointer at the
        // call was just above that record (`fp + 16` on both targets).
        if fp < low || fp.saturating_add(16) > high || !fp.is_multiple_of(8) {
            return false;
        }
        // SAFETY: `fp` is 8-aligned and [fp, fp + 16) lies inside this thread's stack.
        let (next, next_ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        // The stack grows down: a caller's record is always higher.
        if next <= fp {
            return false;
        }
        sp = fp + 16;
        ret = next_ret;
        fp = next;
    }
}

/// Continues at a handler: restores sp and fp and passes the exception in the
/// first payload register (rax).
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
unsafe extern "C" fn resume(_pc: usize, _sp: usize, _fp: usize, _exn: *const VMException) -> ! {
    core::arch::naked_asm!("mov rsp, rsi", "mov rbp, rdx", "mov rax, rcx", "jmp rdi",)
}

/// aarch64: the first payload register is x0.
#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
unsafe extern "C" fn resume(_pc: usize, _sp: usize, _fp: usize, _exn: *const VMException) -> ! {
    core::arch::naked_asm!(
        "mov sp, x1",
        "mov x29, x2",
        "mov x16, x0",
        "mov x0, x3",
        "br x16",
    )
}

/// Unwinds the current thread to its innermost [`catch_traps`], reporting `trap`
/// with a backtrace of the wasm frames above the caller. For host code called from
/// wasm that must abort the wasm call; every Rust frame between the caller and the
/// `catch_traps` is discarded without running destructors (their resources leak), so
/// call it only from a frame that owns nothing.
pub fn raise_host_trap(trap: Trap) -> ! {
    // SAFETY: the vmctx argument is unused by the implementation.
    unsafe { raise_trap(std::ptr::null_mut(), trap as u32) }
}

// ---------------------------------------------------------------------------
// catch_traps
// ---------------------------------------------------------------------------

/// Runs `f`; if generated code called by `f` traps, returns the trap instead.
///
/// `f` must not rely on destructors of values it owns when a trap happens (they are
/// skipped, see the module docs). Panics in `f` propagate normally. Calls nest: a
/// trap returns to the innermost active `catch_traps` of the thread.
pub fn catch_traps<R>(f: impl FnOnce() -> R) -> Result<R, TrapInfo> {
    prepare_thread();
    let mut state = CallState {
        regs: [0; 24],
        trap: None,
        pc: 0,
        frames: [const { std::mem::MaybeUninit::uninit() }; MAX_FRAMES],
        num_frames: 0,
    };
    let state_ptr: *mut CallState = &mut state;
    let mut payload: Payload<_, R> = (Some(f), None);
    let previous = CURRENT.replace(state_ptr);
    ACTIVATIONS.set(ACTIVATIONS.get() + 1);
    // SAFETY: `state_ptr` points at a live CallState whose `regs` start at offset 0;
    // `call_closure::<F, R>` matches the payload type.
    let rc = unsafe {
        catch_call(
            state_ptr as *mut usize,
            call_closure_of(&payload),
            &mut payload as *mut Payload<_, R> as *mut u8,
        )
    };
    ACTIVATIONS.set(ACTIVATIONS.get() - 1);
    CURRENT.set(previous);
    if rc == 0 {
        return match payload.1 {
            Some(Ok(result)) => Ok(result),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Err(TrapInfo::host(
                Trap::HostError,
                "wasm call did not complete",
            )),
        };
    }
    // SAFETY: the trap handler finished writing through `state_ptr` before unwinding.
    let state = unsafe { &*state_ptr };
    let trap = state.trap.unwrap_or(Trap::HostError);
    let frames = &state.frames[..state.num_frames];
    let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    let backtrace = frames
        .iter()
        .filter_map(|pc| {
            // SAFETY: `record` wrote the first `num_frames` entries.
            let pc = unsafe { pc.assume_init() };
            let map = find_code(&registry, pc)?;
            let (func, offset) = map.func_at(pc)?;
            Some(map.frame_names(func, offset))
        })
        .flatten()
        .collect();
    Err(TrapInfo {
        trap,
        pc: state.pc,
        backtrace,
        message: None,
    })
}

type Payload<F, R> = (Option<F>, Option<std::thread::Result<R>>);

fn call_closure_of<F: FnOnce() -> R, R>(_: &Payload<F, R>) -> extern "C" fn(*mut u8) {
    call_closure::<F, R>
}

extern "C" fn call_closure<F: FnOnce() -> R, R>(data: *mut u8) {
    // SAFETY: `catch_traps` passes a pointer to its `Payload<F, R>`.
    let payload = unsafe { &mut *(data as *mut Payload<F, R>) };
    if let Some(f) = payload.0.take() {
        payload.1 = Some(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    }
}

/// Saves the callee-saved registers, sp and the return address into `regs`, calls
/// `callback(data)`, and returns 0. [`unwind`] makes it return 1 instead.
///
/// x86_64 layout: rbx, rbp, r12-r15, sp after return, return address.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
unsafe extern "C" fn catch_call(
    _regs: *mut usize,
    _callback: extern "C" fn(*mut u8),
    _data: *mut u8,
) -> u32 {
    core::arch::naked_asm!(
        "mov [rdi], rbx",
        "mov [rdi + 8], rbp",
        "mov [rdi + 16], r12",
        "mov [rdi + 24], r13",
        "mov [rdi + 32], r14",
        "mov [rdi + 40], r15",
        "lea rax, [rsp + 8]",
        "mov [rdi + 48], rax",
        "mov rax, [rsp]",
        "mov [rdi + 56], rax",
        // A frame record keeps the stack 16-byte aligned for the call and lets
        // frame-pointer walks pass through.
        "push rbp",
        "mov rbp, rsp",
        "mov rdi, rdx",
        "call rsi",
        "pop rbp",
        "xor eax, eax",
        "ret",
    )
}

/// Restores what [`catch_call`] saved in `state.regs` and returns 1 from it.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
unsafe extern "C" fn unwind(_state: *mut CallState) -> ! {
    core::arch::naked_asm!(
        "mov rbx, [rdi]",
        "mov rbp, [rdi + 8]",
        "mov r12, [rdi + 16]",
        "mov r13, [rdi + 24]",
        "mov r14, [rdi + 32]",
        "mov r15, [rdi + 40]",
        "mov rsp, [rdi + 48]",
        "mov eax, 1",
        "jmp qword ptr [rdi + 56]",
    )
}

/// aarch64 layout: x19-x28, x29, x30 (return address), sp, d8-d15.
#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
unsafe extern "C" fn catch_call(
    _regs: *mut usize,
    _callback: extern "C" fn(*mut u8),
    _data: *mut u8,
) -> u32 {
    core::arch::naked_asm!(
        "stp x19, x20, [x0, #0]",
        "stp x21, x22, [x0, #16]",
        "stp x23, x24, [x0, #32]",
        "stp x25, x26, [x0, #48]",
        "stp x27, x28, [x0, #64]",
        "stp x29, x30, [x0, #80]",
        "mov x9, sp",
        "str x9, [x0, #96]",
        "stp d8, d9, [x0, #104]",
        "stp d10, d11, [x0, #120]",
        "stp d12, d13, [x0, #136]",
        "stp d14, d15, [x0, #152]",
        "stp x29, x30, [sp, #-16]!",
        "mov x29, sp",
        "mov x0, x2",
        "blr x1",
        "ldp x29, x30, [sp], #16",
        "mov w0, #0",
        "ret",
    )
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
unsafe extern "C" fn unwind(_state: *mut CallState) -> ! {
    core::arch::naked_asm!(
        "ldp x19, x20, [x0, #0]",
        "ldp x21, x22, [x0, #16]",
        "ldp x23, x24, [x0, #32]",
        "ldp x25, x26, [x0, #48]",
        "ldp x27, x28, [x0, #64]",
        "ldp x29, x30, [x0, #80]",
        "ldr x9, [x0, #96]",
        "mov sp, x9",
        "ldp d8, d9, [x0, #104]",
        "ldp d10, d11, [x0, #120]",
        "ldp d12, d13, [x0, #136]",
        "ldp d14, d15, [x0, #152]",
        "mov w0, #1",
        "ret",
    )
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("wasmc-runtime supports x86_64 and aarch64 only");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{FuncInfo, MemoryType};

    // Fake "wasm functions": tiny assembly routines registered as module code.

    /// Loads from the address in the first argument register.
    #[cfg(target_arch = "x86_64")]
    #[unsafe(naked)]
    extern "C" fn fake_load(_addr: usize) -> usize {
        core::arch::naked_asm!("mov rax, [rdi]", "ret")
    }
    #[cfg(target_arch = "aarch64")]
    #[unsafe(naked)]
    extern "C" fn fake_load(_addr: usize) -> usize {
        core::arch::naked_asm!("ldr x0, [x0]", "ret")
    }
    /// Executes a trap instruction at offset 0.
    #[cfg(target_arch = "x86_64")]
    #[unsafe(naked)]
    extern "C" fn fake_trap() {
        core::arch::naked_asm!("ud2", "ret")
    }
    #[cfg(target_arch = "aarch64")]
    #[unsafe(naked)]
    extern "C" fn fake_trap() {
        core::arch::naked_asm!("udf #0", "ret")
    }
    /// The same at another address (tests run in parallel and must not share code).
    #[cfg(target_arch = "x86_64")]
    #[unsafe(naked)]
    extern "C" fn fake_trap2() {
        core::arch::naked_asm!("ud2", "ret")
    }
    #[cfg(target_arch = "aarch64")]
    #[unsafe(naked)]
    extern "C" fn fake_trap2() {
        core::arch::naked_asm!("udf #0", "ret")
    }

    type FakeFunc<'a> = (usize, u32, Vec<(u32, Trap)>, &'a str);

    fn register(funcs: &[FakeFunc<'_>]) -> CodeRegistration {
        let infos: Vec<FuncInfo> = funcs
            .iter()
            .map(|(_, len, traps, name)| FuncInfo {
                name: Some(name.to_string()),
                code_len: *len,
                traps: traps.clone(),
                handlers: Vec::new(),
                stack_maps: Vec::new(),
                inlined: Vec::new(),
            })
            .collect();
        // Registered code lives for the process (as a loaded module's tables do).
        let bytes = crate::abi::func_table::encode(&infos).unwrap().leak();
        let table = FuncTable::parse(bytes).unwrap();
        let addrs: Vec<usize> = funcs.iter().map(|f| f.0).collect();
        register_code(CodeMap::new(addrs.leak(), table, Some("fake"), 0))
    }

    #[test]
    fn report_shortens_recursion() {
        let mut backtrace = vec!["m!f".to_string(); 6];
        backtrace.push("m!main".to_string());
        let info = TrapInfo {
            trap: Trap::StackOverflow,
            pc: 1,
            backtrace,
            message: None,
        };
        assert_eq!(
            info.report(),
            "wasm trap: call stack exhausted\nwasm backtrace:\n    0: m!f\n       \
             ... 4 more frames of m!f ...\n    5: m!f\n    6: m!main\n"
        );
        let short = TrapInfo {
            backtrace: vec!["m!f".into(), "m!f".into(), "m!g".into()],
            ..info
        };
        assert_eq!(
            short.report(),
            "wasm trap: call stack exhausted\nwasm backtrace:\n    0: m!f\n    1: m!f\n    2: m!g\n"
        );
    }

    #[test]
    fn catch_traps_returns_the_value_without_a_trap() {
        assert_eq!(catch_traps(|| 41 + 1), Ok(42));
    }

    #[test]
    fn trap_instruction_in_registered_code() {
        let _code = register(&[(
            fake_trap as *const () as usize,
            4,
            vec![(0, Trap::UnreachableCodeReached)],
            "boom",
        )]);
        let err = catch_traps(|| fake_trap()).unwrap_err();
        assert_eq!(err.trap, Trap::UnreachableCodeReached);
        assert_eq!(err.pc, fake_trap as *const () as usize);
        assert_eq!(err.backtrace, vec!["fake!boom".to_string()]);
        assert!(
            err.report()
                .starts_with("wasm trap: unreachable\nwasm backtrace:\n    0: fake!boom\n")
        );
        // The thread keeps working after a trap, and again.
        assert_eq!(catch_traps(|| 7), Ok(7));
        assert_eq!(
            catch_traps(|| fake_trap()).unwrap_err().trap,
            Trap::UnreachableCodeReached
        );
    }

    #[test]
    fn segfault_on_guard_page_is_out_of_bounds() {
        let _code = register(&[(fake_load as *const () as usize, 4, vec![], "load")]);
        let memory = crate::memory::Memory::new(&MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: 16,
        })
        .unwrap();
        let inside = memory.base() as usize + 8;
        assert_eq!(catch_traps(|| fake_load(inside)), Ok(0));
        let outside = memory.base() as usize + (3 << 30);
        let err = catch_traps(|| fake_load(outside)).unwrap_err();
        assert_eq!(err.trap, Trap::MemoryOutOfBounds);
        assert_eq!(err.backtrace, vec!["fake!load".to_string()]);
    }

    #[test]
    fn nested_catch_traps_return_to_the_innermost() {
        let _code = register(&[(
            fake_trap2 as *const () as usize,
            4,
            vec![(0, Trap::IntegerOverflow)],
            "inner",
        )]);
        let outer = catch_traps(|| {
            let inner = catch_traps(|| fake_trap2());
            assert_eq!(inner.unwrap_err().trap, Trap::IntegerOverflow);
            "outer finished"
        });
        assert_eq!(outer, Ok("outer finished"));
        assert!(CURRENT.get().is_null());
    }

    #[test]
    fn host_raised_trap_unwinds() {
        let err = catch_traps(|| -> u32 { raise_host_trap(Trap::TableOutOfBounds) }).unwrap_err();
        assert_eq!(err.trap, Trap::TableOutOfBounds);
        assert!(err.backtrace.is_empty());
    }

    #[test]
    fn panics_propagate_through_catch_traps() {
        let r = std::panic::catch_unwind(|| catch_traps(|| panic!("inner panic")));
        assert!(r.is_err());
        assert!(CURRENT.get().is_null());
    }

    // Child processes: scenarios that end (or must not end) the process run in this
    // test binary re-executed with `WASMC_TRAPS_CHILD` naming the scenario.

    /// A fresh PROT_NONE page that is no linear memory.
    fn unregistered_page() -> usize {
        // SAFETY: a new private mapping, never accessible.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page_size(),
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        page as usize
    }

    fn guard_page_of_a_memory() -> (crate::memory::Memory, usize) {
        let memory = crate::memory::Memory::new(&MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: 16,
        })
        .unwrap();
        let outside = memory.base() as usize + (1 << 20);
        (memory, outside)
    }

    static CHAINED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    extern "C" fn counting_handler(
        _signal: libc::c_int,
        _info: *mut libc::siginfo_t,
        _uc: *mut libc::c_void,
    ) {
        CHAINED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn set_action(signal: libc::c_int, action: usize, siginfo: bool) {
        // SAFETY: installs a valid disposition.
        unsafe {
            let mut a: libc::sigaction = std::mem::zeroed();
            a.sa_sigaction = action;
            a.sa_flags = if siginfo { libc::SA_SIGINFO } else { 0 };
            libc::sigemptyset(&mut a.sa_mask);
            libc::sigaction(signal, &a, std::ptr::null_mut());
        }
    }

    /// Sends SIGSEGV to the whole process, as `kill -SEGV <pid>` does.
    fn kill_segv() {
        // SAFETY: signals our own process.
        unsafe { libc::kill(libc::getpid(), libc::SIGSEGV) };
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    #[test]
    fn child_process() {
        let Ok(scenario) = std::env::var("WASMC_TRAPS_CHILD") else {
            return;
        };
        match scenario.as_str() {
            "wild-load" => {
                let _code = register(&[(fake_load as *const () as usize, 4, vec![], "load")]);
                let page = unregistered_page();
                let r = catch_traps(|| fake_load(page));
                println!("survived: {r:?}");
            }
            "kill-segv" => {
                prepare_thread();
                kill_segv();
                println!("survived");
            }
            "chain-handler" => {
                set_action(libc::SIGSEGV, counting_handler as *const () as usize, true);
                let _code = register(&[(fake_load as *const () as usize, 4, vec![], "load")]);
                let (_memory, outside) = guard_page_of_a_memory();
                prepare_thread();
                kill_segv();
                let trap = catch_traps(|| fake_load(outside)).unwrap_err().trap;
                kill_segv();
                let trap2 = catch_traps(|| fake_load(outside)).unwrap_err().trap;
                println!(
                    "chained {} {trap:?} {trap2:?}",
                    CHAINED.load(std::sync::atomic::Ordering::SeqCst)
                );
            }
            "ignored" => {
                set_action(libc::SIGSEGV, libc::SIG_IGN, false);
                let _code = register(&[(fake_load as *const () as usize, 4, vec![], "load")]);
                let (_memory, outside) = guard_page_of_a_memory();
                prepare_thread();
                kill_segv();
                let trap = catch_traps(|| fake_load(outside)).unwrap_err().trap;
                println!("ignored {trap:?}");
            }
            other => panic!("unknown scenario {other}"),
        }
    }

    fn run_child(scenario: &str) -> (std::process::Output, String, String) {
        use std::process::Stdio;
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "traps::tests::child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("WASMC_TRAPS_CHILD", scenario)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A broken handler can make the child fault forever: kill it after a while.
        let pid = child.id();
        let (done, waiting) = std::sync::mpsc::channel::<()>();
        let killer = std::thread::spawn(move || {
            if waiting
                .recv_timeout(std::time::Duration::from_secs(20))
                .is_err()
            {
                // SAFETY: signals our own child, which has not been reaped yet.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        });
        let out = child.wait_with_output().unwrap();
        let _ = done.send(());
        killer.join().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out, stdout, stderr)
    }

    fn signal_of(out: &std::process::Output) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        out.status.signal()
    }

    #[test]
    fn a_fault_outside_linear_memory_in_wasm_code_is_a_crash() {
        let (out, stdout, stderr) = run_child("wild-load");
        assert_eq!(signal_of(&out), Some(libc::SIGSEGV), "{stdout}\n{stderr}");
        assert!(!stdout.contains("survived"), "{stdout}");
        assert!(
            stderr.contains("internal error: SIGSEGV in wasm code")
                && stderr.contains("(fake!load+0x0)")
                && stderr.contains("this is a bug in wasmc"),
            "{stderr}"
        );
    }

    #[test]
    fn a_segv_sent_from_outside_kills_the_process() {
        let (out, stdout, stderr) = run_child("kill-segv");
        assert_eq!(signal_of(&out), Some(libc::SIGSEGV), "{stdout}\n{stderr}");
        assert!(!stdout.contains("survived"), "{stdout}");
    }

    #[test]
    fn a_segv_sent_from_outside_reaches_the_previous_handler() {
        let (out, stdout, stderr) = run_child("chain-handler");
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("chained 2 MemoryOutOfBounds MemoryOutOfBounds"),
            "{stdout}"
        );
    }

    #[test]
    fn a_segv_sent_from_outside_is_ignored_if_it_was_ignored() {
        let (out, stdout, stderr) = run_child("ignored");
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("ignored MemoryOutOfBounds"), "{stdout}");
    }

    #[test]
    fn stack_limit_leaves_the_host_reserve() {
        let limit = run_on_wasm_stack(|| {
            let state = runtime_state();
            let here = &state as *const _ as usize;
            // SAFETY: the thread's own runtime state.
            let limit = unsafe { (*state).stack_limit };
            let (low, high) = STACK_BOUNDS.get();
            assert!(low < limit && limit < here && here < high);
            assert_eq!(limit - low, HOST_RESERVE);
            here - limit
        })
        .unwrap();
        assert!(limit > WASM_STACK_SIZE - (64 << 10), "{limit}");
    }
}
