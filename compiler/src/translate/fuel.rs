//! Fuel metering (`CompileOptions::fuel_metering`), with wasmtime's `-W fuel`
//! semantics so that a module stops at the same point under both.
//!
//! `VMRuntimeState::fuel_consumed` holds minus the remaining fuel. Every executed
//! operator adds its [`cost`]; entering a function adds 1 more. Fuel is *checked*
//! only at function entry (after adding the entry cost), at every loop header and
//! after big bulk operations (below): when `fuel_consumed >= 0` there, the function
//! traps with `Trap::OutOfFuel`. These check points bound the work done between
//! checks by the length of a function body, exactly as in wasmtime, and a budget
//! of N lets code that reaches at most N - 1 units at every check point complete.
//!
//! Within a function the counter lives in a Cranelift variable. Costs of straight-line
//! operators are summed at compile time (`pending`) and added to the variable in one
//! `iadd` wherever control flow can leave the current block (branches, `if`, `else`,
//! `end`, `loop`, `try_table`, the legacy `try` and its clauses). The variable is
//! written back to memory before control leaves the function (calls, tail calls,
//! returns, throws, `unreachable`) and read again after a call returns, and at the
//! start of a `try_table`'s (or legacy `try`'s) dispatch block (an exception
//! arrives there after the thrower stored its count). Builtins (memory and table
//! operations, `exn_new`) neither read fuel nor run wasm, so they need no
//! write-back.
//!
//! Operators whose work grows with an operand also cost one unit per byte
//! (`memory.fill`/`copy`/`init`), element (`table.fill`/`copy`/`init`/`grow`) or
//! page (`memory.grow`); beyond 128 units they are also a check point (see
//! [`Fuel::bulk`]).
//!
//! Costs are counted per wasm operator, never per machine instruction, so a run
//! stops at the same operator on every target.

use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, condcodes::IntCC, types};
use cranelift_frontend::{FunctionBuilder, Variable};
use wasmc_abi::{Trap, VMContextLayout};
use wasmparser::Operator;

use super::environ::{to_u64, trap_code};

/// Fuel an operator costs (wasmtime's default table): operators that generate no
/// code or only structure control flow are free, everything else costs 1.
pub(crate) fn cost(op: &Operator) -> i64 {
    match op {
        Operator::Nop
        | Operator::Drop
        | Operator::Block { .. }
        | Operator::Loop { .. }
        | Operator::Unreachable
        | Operator::Return
        | Operator::Else
        | Operator::End => 0,
        // Legacy exception handling (wasmtime does not run it, so the choice is
        // ours): the clause markers only structure control flow, like `else`/`end`;
        // `try` and `rethrow` cost 1 like `try_table` and `throw_ref`.
        Operator::Catch { .. } | Operator::CatchAll | Operator::Delegate { .. } => 0,
        _ => 1,
    }
}

/// Fuel state of the function being translated.
pub(crate) struct Fuel {
    /// The function's copy of `fuel_consumed`.
    var: Variable,
    /// Cost of operators translated since the last update of `var`.
    pending: i64,
}

impl Fuel {
    /// Function entry: loads the counter, charges the entry cost and checks.
    pub fn entry(builder: &mut FunctionBuilder, vmctx: Value) -> Fuel {
        let var = builder.declare_var(types::I64);
        let mut fuel = Fuel { var, pending: 1 };
        fuel.reload(builder, vmctx);
        fuel.check(builder, vmctx);
        fuel
    }

    /// Charges `op` and, where control may leave the current block or the function,
    /// brings the variable (and memory) up to date first. Called for reachable
    /// operators only, before they are translated.
    pub fn before_op(&mut self, op: &Operator, builder: &mut FunctionBuilder, vmctx: Value) {
        self.pending += cost(op);
        match op {
            // Control leaves this function: the callee, the catcher or the runtime
            // reads the count from memory.
            Operator::Unreachable
            | Operator::Return
            | Operator::Call { .. }
            | Operator::CallIndirect { .. }
            | Operator::CallRef { .. }
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. }
            | Operator::ReturnCallRef { .. }
            | Operator::Throw { .. }
            | Operator::ThrowRef
            | Operator::Rethrow { .. } => self.flush(builder, vmctx),
            // The current block ends (or splits): settle the costs on this path.
            Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Else
            | Operator::End
            | Operator::Br { .. }
            | Operator::BrIf { .. }
            | Operator::BrTable { .. }
            | Operator::BrOnNull { .. }
            | Operator::BrOnNonNull { .. }
            | Operator::TryTable { .. }
            | Operator::Try { .. }
            | Operator::Catch { .. }
            | Operator::CatchAll
            | Operator::Delegate { .. } => self.settle(builder),
            _ => {}
        }
    }

    /// After a call returned: the callee changed the count in memory.
    pub fn after_op(&mut self, op: &Operator, builder: &mut FunctionBuilder, vmctx: Value) {
        if matches!(
            op,
            Operator::Call { .. } | Operator::CallIndirect { .. } | Operator::CallRef { .. }
        ) {
            self.reload(builder, vmctx);
        }
    }

    /// Adds the pending costs to the variable.
    fn settle(&mut self, builder: &mut FunctionBuilder) {
        let pending = std::mem::take(&mut self.pending);
        if pending != 0 {
            let fuel = builder.use_var(self.var);
            let fuel = builder.ins().iadd_imm_s(fuel, pending);
            builder.def_var(self.var, fuel);
        }
    }

    /// Settles and writes the count back to `VMRuntimeState::fuel_consumed`.
    pub fn flush(&mut self, builder: &mut FunctionBuilder, vmctx: Value) {
        self.settle(builder);
        let fuel = builder.use_var(self.var);
        let runtime = runtime_ptr(builder, vmctx);
        builder.ins().store(
            MemFlagsData::trusted(),
            fuel,
            runtime,
            VMContextLayout::RUNTIME_FUEL_CONSUMED,
        );
    }

    /// Reads the count from memory (after a call, or where an exception arrives).
    pub fn reload(&mut self, builder: &mut FunctionBuilder, vmctx: Value) {
        let runtime = runtime_ptr(builder, vmctx);
        let fuel = builder.ins().load(
            types::I64,
            MemFlagsData::trusted(),
            runtime,
            VMContextLayout::RUNTIME_FUEL_CONSUMED,
        );
        builder.def_var(self.var, fuel);
    }

    /// Traps with `OutOfFuel` when the budget is spent (`fuel_consumed >= 0`). The
    /// count is written back on the (cold) trapping path so that the runtime sees
    /// the budget exhausted.
    pub fn check(&mut self, builder: &mut FunctionBuilder, vmctx: Value) {
        self.settle(builder);
        let fuel = builder.use_var(self.var);
        let spent = builder
            .ins()
            .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, fuel, 0);
        self.trap_if(builder, vmctx, spent);
    }

    /// Traps with `OutOfFuel` when `condition` holds, after writing the count back.
    fn trap_if(&mut self, builder: &mut FunctionBuilder, vmctx: Value, condition: Value) {
        let out = builder.create_block();
        let continuation = builder.create_block();
        builder.ins().brif(condition, out, &[], continuation, &[]);
        builder.set_cold_block(out);
        builder.seal_block(out);
        builder.seal_block(continuation);
        builder.switch_to_block(out);
        self.flush(builder, vmctx);
        builder.ins().trap(trap_code(Trap::OutOfFuel));
        builder.switch_to_block(continuation);
    }
}

/// Operators whose work grows with an operand (`memory.fill` and friends) cost
/// one more unit per byte, element or page, charged after the operation. Beyond
/// this many units the charge is followed by a check. As in wasmtime 49 (measured):
/// a big `memory.fill` out of bounds traps as out of bounds, not out of fuel, and
/// a grow that fails costs nothing unless its size is a constant of at most 128.
const SMALL_BULK_UNITS: u64 = 128;

impl Fuel {
    /// Charges the `units` (an unsigned count) of a bulk operation that has
    /// just been emitted. `succeeded` is the result test of a grow; other bulk
    /// operations trap when they fail, so reaching this point means success.
    /// The sum cannot overflow: above [`SMALL_BULK_UNITS`] units are only charged
    /// for an operation that succeeded, which no operation on 2^62 units can.
    pub fn bulk(
        &mut self,
        builder: &mut FunctionBuilder,
        vmctx: Value,
        units: Value,
        succeeded: Option<Value>,
    ) {
        let units = to_u64(builder, units);
        if let Some(units) = const_u64(builder, units) {
            if units <= SMALL_BULK_UNITS {
                self.pending += units as i64;
                return;
            }
            if succeeded.is_none() {
                self.pending = self
                    .pending
                    .saturating_add(units.min(i64::MAX as u64) as i64);
                self.check(builder, vmctx);
                return;
            }
        }
        self.settle(builder);
        let big =
            builder
                .ins()
                .icmp_imm_u(IntCC::UnsignedGreaterThan, units, SMALL_BULK_UNITS as i64);
        // A grow is charged only when it succeeds (unless its size is a small
        // constant, folded above), and checked when big.
        let (charged, checked) = match succeeded {
            None => (units, big),
            Some(ok) => {
                let zero = builder.ins().iconst(types::I64, 0);
                let charged = builder.ins().select(ok, units, zero);
                (charged, builder.ins().band(big, ok))
            }
        };
        let fuel = builder.use_var(self.var);
        let fuel = builder.ins().iadd(fuel, charged);
        builder.def_var(self.var, fuel);
        let spent = builder
            .ins()
            .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, fuel, 0);
        let out = builder.ins().band(checked, spent);
        self.trap_if(builder, vmctx, out);
    }
}

/// The value of `v` if it is a constant, seen through a zero extension.
pub(super) fn const_u64(builder: &FunctionBuilder, v: Value) -> Option<u64> {
    use cranelift_codegen::ir::{InstructionData, Opcode};
    let dfg = &builder.func.dfg;
    let inst = dfg.value_def(v).inst()?;
    match dfg.insts[inst] {
        InstructionData::UnaryImm {
            opcode: Opcode::Iconst,
            imm,
        } => {
            let bits = dfg.value_type(v).bits();
            let raw = imm.bits() as u64;
            Some(if bits >= 64 {
                raw
            } else {
                raw & ((1u64 << bits) - 1)
            })
        }
        InstructionData::Unary {
            opcode: Opcode::Uextend,
            arg,
        } => const_u64(builder, arg),
        _ => None,
    }
}

/// `vmctx->runtime`, which never changes while the instance lives.
fn runtime_ptr(builder: &mut FunctionBuilder, vmctx: Value) -> Value {
    builder.ins().load(
        types::I64,
        MemFlagsData::trusted().with_readonly().with_can_move(),
        vmctx,
        VMContextLayout::RUNTIME,
    )
}
