//! Control frames and the operand stack of one function being translated.
//!
//! Each wasm `block`/`loop`/`if` (and the function body itself) pushes a
//! [`ControlFrame`]. Branch targets: a `loop` is entered again at its header (with the
//! loop's parameters), every other frame continues at its `destination` block (with
//! the frame's results as block parameters).
//!
//! Unreachable code (after `br`, `return`, `unreachable`, ...) is not translated; the
//! validator still sees every operator. Frames opened inside unreachable code are
//! only counted (`unreachable_depth`) so that the matching `else`/`end` can be found.

use cranelift_codegen::ir::{Block, Value};
use cranelift_frontend::Variable;

pub(crate) enum FrameKind {
    Block,
    Loop {
        header: Block,
    },
    If {
        /// Where the `else` arm (or the implicit empty one) starts.
        else_block: Block,
        /// The `if`'s parameters, re-pushed for the `else` arm.
        params: Vec<Value>,
        has_else: bool,
    },
    /// A `try_table`: calls and throws inside it go to `dispatch`, a block taking the
    /// exception pointer that tests the catch clauses in order and rethrows (to the
    /// enclosing `try_table` of the function, or out of it) when none matches.
    TryTable {
        dispatch: Block,
    },
    /// A legacy `try` (`try`/`catch`/`catch_all`/`delegate`, see `legacy_eh.rs`).
    /// Like a `try_table`, its body throws to `dispatch`; the clauses are translated
    /// as they come, one tag test after the other, starting in `dispatch`.
    LegacyTry {
        dispatch: Block,
        /// The exception `dispatch` received: what `rethrow` in a clause rethrows.
        exn: Value,
        clauses: LegacyClauses,
    },
}

/// Where a legacy `try` is in its text: the body, or the catch clauses.
pub(crate) enum LegacyClauses {
    /// Still in the body, which `dispatch` protects.
    Body,
    /// In a `catch`/`catch_all` arm (no longer protected by this `try`).
    /// `next_test` is where the next clause's tag test goes, `None` after
    /// `catch_all` (nothing is left to test).
    Catching { next_test: Option<Block> },
}

pub(crate) struct ControlFrame {
    pub kind: FrameKind,
    /// Continuation after `end`; its block parameters are the frame's results.
    pub destination: Block,
    pub num_params: usize,
    pub num_results: usize,
    /// Operand stack height below the frame's parameters.
    pub original_stack_size: usize,
    /// Whether any branch (or fallthrough) reaches `destination`.
    pub exit_reachable: bool,
}

impl ControlFrame {
    /// Block a branch to this frame jumps to, and how many values it carries.
    pub fn branch_target(&self) -> (Block, usize) {
        match self.kind {
            FrameKind::Loop { header } => (header, self.num_params),
            _ => (self.destination, self.num_results),
        }
    }

    pub fn is_loop(&self) -> bool {
        matches!(self.kind, FrameKind::Loop { .. })
    }
}

/// Operand stack, control stack and reachability of the function being translated.
pub(crate) struct State {
    pub stack: Vec<Value>,
    pub frames: Vec<ControlFrame>,
    pub reachable: bool,
    /// Frames opened while unreachable that have not been closed yet.
    pub unreachable_depth: u32,
    /// Parameters first, then declared locals.
    pub locals: Vec<Variable>,
    /// Number of results of the function (for `return`).
    pub num_results: usize,
    /// Dispatch blocks of the open `try_table` frames and of the legacy `try`
    /// frames still in their body, innermost last.
    pub handlers: Vec<Block>,
    /// Lowest operand stack height reached while translating the current operator:
    /// the values it pushed are the ones above it (see `translate::GcRefTracking`).
    /// Pops through [`State::pop`], [`State::popn`] and [`State::truncate`] lower it.
    pub low_water: usize,
}

impl State {
    pub fn new(num_results: usize) -> Self {
        State {
            stack: Vec::new(),
            frames: Vec::new(),
            reachable: true,
            unreachable_depth: 0,
            locals: Vec::new(),
            num_results,
            handlers: Vec::new(),
            low_water: 0,
        }
    }

    pub fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    pub fn pop(&mut self) -> Value {
        let v = self
            .stack
            .pop()
            .expect("operand stack underflow despite validation");
        self.low_water = self.low_water.min(self.stack.len());
        v
    }

    pub fn pop2(&mut self) -> (Value, Value) {
        let b = self.pop();
        let a = self.pop();
        (a, b)
    }

    pub fn pop3(&mut self) -> (Value, Value, Value) {
        let c = self.pop();
        let (a, b) = self.pop2();
        (a, b, c)
    }

    /// The top `n` values, bottom first.
    pub fn peekn(&self, n: usize) -> &[Value] {
        &self.stack[self.stack.len() - n..]
    }

    pub fn popn(&mut self, n: usize) -> Vec<Value> {
        let values = self.stack.split_off(self.stack.len() - n);
        self.low_water = self.low_water.min(self.stack.len());
        values
    }

    /// Drops the operand stack down to `height` values.
    pub fn truncate(&mut self, height: usize) {
        self.stack.truncate(height);
        self.low_water = self.low_water.min(self.stack.len());
    }

    /// The frame a branch of `depth` targets.
    pub fn frame_at(&mut self, depth: u32) -> &mut ControlFrame {
        let i = self.frames.len() - 1 - depth as usize;
        &mut self.frames[i]
    }

    /// The dispatch block an exception thrown directly inside the frame of `depth`
    /// goes to (what `delegate` needs): that of the innermost frame at or outside it
    /// whose body is protected, a `try_table` or a legacy `try` still in its body;
    /// `None` when the exception leaves the function.
    pub fn handler_at(&self, depth: u32) -> Option<Block> {
        let i = self.frames.len() - 1 - depth as usize;
        self.frames[..=i].iter().rev().find_map(|f| match f.kind {
            FrameKind::TryTable { dispatch }
            | FrameKind::LegacyTry {
                dispatch,
                clauses: LegacyClauses::Body,
                ..
            } => Some(dispatch),
            _ => None,
        })
    }
}
