//! The fuel budget for modules compiled with fuel metering (`--fuel`, wasmtime's
//! `-W fuel`).
//!
//! `VMRuntimeState::fuel_consumed` of the thread holds minus the fuel that remains.
//! Generated code adds the cost of the operators it executes and, at function entry
//! and at loop headers, traps with `Trap::OutOfFuel` when the value is `>= 0`
//! (see `compiler/src/translate/fuel.rs`). So a budget of N stops a program at the
//! first check point where it has consumed N or more.
//!
//! The budget belongs to the thread, like the stack limit: every instance on the
//! thread draws from it, and it carries over from one call to the next (as a
//! wasmtime `Store`'s fuel does). Executables run wasm on a thread of its own
//! (`traps::run_on_wasm_stack`), so the budget must be set on that thread.
//!
//! A thread on which no budget was set runs metered code without limit: the count
//! starts at `i64::MIN`, which no program reaches 0 from (2^63 operators take
//! centuries). Code compiled without metering never reads the budget.

use std::cell::Cell;

use crate::traps::runtime_state_mut;

/// `fuel_consumed` of a thread without a budget.
pub(crate) const UNLIMITED: i64 = i64::MIN;

thread_local! {
    /// Whether `set_budget(Some(_))` is in force on this thread.
    static LIMITED: Cell<bool> = const { Cell::new(false) };
}

/// Sets the fuel available to wasm on the calling thread: `None` for no limit.
/// Budgets above `i64::MAX` are clamped to it (the counter is an `i64`).
pub fn set_budget(fuel: Option<u64>) {
    let consumed = match fuel {
        Some(fuel) => -(fuel.min(i64::MAX as u64) as i64),
        None => UNLIMITED,
    };
    LIMITED.set(fuel.is_some());
    // SAFETY: the state is this thread's own and lives as long as the thread; wasm
    // on this thread is either not running or suspended in a host call, and it
    // reloads the count from memory when that call returns.
    unsafe { (*runtime_state_mut()).fuel_consumed = consumed };
}

/// The fuel left on the calling thread, or `None` when it has no budget. After an
/// `OutOfFuel` trap this is 0. The count is exact whenever wasm is not running or
/// is in a host call; after other traps it may miss the operators since the last
/// call or loop header (as in wasmtime).
pub fn remaining() -> Option<u64> {
    if !LIMITED.get() {
        return None;
    }
    // SAFETY: as in `set_budget`.
    let consumed = unsafe { (*runtime_state_mut()).fuel_consumed };
    Some(if consumed >= 0 {
        0
    } else {
        consumed.unsigned_abs()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_round_trip_and_clamping() {
        // Each test runs on a thread of its own, so the thread starts unlimited.
        assert_eq!(remaining(), None);
        set_budget(Some(1234));
        assert_eq!(remaining(), Some(1234));
        set_budget(Some(0));
        assert_eq!(remaining(), Some(0));
        set_budget(Some(u64::MAX));
        assert_eq!(remaining(), Some(i64::MAX as u64));
        set_budget(None);
        assert_eq!(remaining(), None);
        // SAFETY: this thread's state, no wasm running.
        assert_eq!(unsafe { (*runtime_state_mut()).fuel_consumed }, UNLIMITED);
    }

    #[test]
    fn an_overspent_budget_reads_as_zero() {
        set_budget(Some(5));
        // Generated code may push the count past 0 before the next check point.
        // SAFETY: this thread's state, no wasm running.
        unsafe { (*runtime_state_mut()).fuel_consumed = 17 };
        assert_eq!(remaining(), Some(0));
    }
}
