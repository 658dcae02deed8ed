//! Legacy exception handling: `try`, `catch`, `catch_all`, `delegate`, `rethrow`
//! (the phase-3 proposal that LLVM 19 and older emit for C++ exceptions and for
//! setjmp/longjmp).
//!
//! Lowered onto the machinery of `try_table` (see `translate_try_table` in
//! `code.rs` and `abi::VMException`): a legacy `try` gets a *dispatch* block that
//! takes the exception pointer, its body's calls become `try_call`s to it and its
//! `throw`s jump to it (`State::handlers`), and the runtime's unwinder delivers to
//! it exactly as to a `try_table`. What differs is the text: the catch clauses
//! come after the body, with their handler code inline, so the dispatch block is
//! filled in clause by clause as the operators arrive:
//!
//! ```text
//! try $l            dispatch(exn):  tag(exn) == $a ? -> arm a (payload)
//!   body                            tag(exn) == $b ? -> arm b (payload)
//! catch $a                          (catch_all)      -> arm c
//!   arm a                           otherwise: rethrow to the enclosing handler
//! catch $b
//!   arm b           every arm falls through to the `try`'s continuation
//! catch_all
//!   arm c
//! end
//! ```
//!
//! * At the first clause the body is complete: the dispatch block is sealed and
//!   leaves the handler stack (an exception thrown in an arm goes to the enclosing
//!   handler, not back to this `try`).
//! * `catch $t` tests the tag in the current test block (the dispatch block, then
//!   each test's "no match" block) and continues in the arm with the payload on the
//!   stack; `catch_all` continues in the current test block itself.
//! * `end` without `catch_all` (also a `try` without any clause) finishes the
//!   chain with a rethrow of the exception to the enclosing handler.
//! * `rethrow $l` throws the exception of the `try` whose arm it is in: the
//!   dispatch block's parameter, which dominates every arm.
//! * `try … delegate $l` ends the `try`; its dispatch block rethrows to the
//!   handler that an exception thrown directly inside label `$l` would reach
//!   (counted from outside the `try`; the function's own label means the caller).
//!
//! Every exception is an `exnref` object as for `throw`, so `rethrow` and
//! `delegate` keep the exception's identity (and payload) across modules.

use cranelift_codegen::ir::types;
use cranelift_frontend::FunctionBuilder;
use wasmparser::Operator;

use super::code::{block_types, block_with_params, continue_after_frame, leave_frame, test_tag};
use super::control::{ControlFrame, FrameKind, LegacyClauses, State};
use super::environ::FuncEnv;
use crate::CompileError;

/// Translates a legacy exception-handling operator in reachable code.
pub(super) fn translate_legacy_eh(
    op: &Operator,
    offset: usize,
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
) -> Result<(), CompileError> {
    match op {
        Operator::Try { blockty } => {
            let (params, results) = block_types(env, *blockty, offset)?;
            let destination = block_with_params(builder, &results);
            let dispatch = builder.create_block();
            let exn = builder.append_block_param(dispatch, types::I64);
            // A root as long as `rethrow` in an arm can still use it (see
            // `translate::GcRefTracking`).
            builder.declare_value_needs_stack_map(exn);
            state.frames.push(ControlFrame {
                kind: FrameKind::LegacyTry {
                    dispatch,
                    exn,
                    clauses: LegacyClauses::Body,
                },
                destination,
                num_params: params.len(),
                num_results: results.len(),
                original_stack_size: state.stack.len() - params.len(),
                exit_reachable: false,
            });
            state.handlers.push(dispatch);
        }
        Operator::Catch { tag_index } => translate_catch(Some(*tag_index), builder, state, env),
        Operator::CatchAll => translate_catch(None, builder, state, env),
        Operator::Delegate { relative_depth } => {
            translate_delegate(*relative_depth, builder, state, env)
        }
        Operator::Rethrow { relative_depth } => {
            let FrameKind::LegacyTry { exn, .. } = state.frame_at(*relative_depth).kind else {
                unreachable!("validated: rethrow targets a catch arm");
            };
            env.throw(builder, exn, state.handlers.last().copied());
            state.reachable = false;
        }
        _ => unreachable!("not a legacy exception-handling operator"),
    }
    Ok(())
}

/// `catch $tag` (`Some`) or `catch_all` (`None`): ends the body or the previous
/// arm and starts this clause's arm. Also called in unreachable code when the
/// clause belongs to a `try` that was itself reachable.
pub(super) fn translate_catch(
    tag: Option<u32>,
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
) {
    let mut frame = state.frames.pop().expect("catch inside a try frame");
    leave_frame(builder, state, &mut frame);
    state.truncate(frame.original_stack_size);
    let FrameKind::LegacyTry {
        dispatch,
        exn,
        ref mut clauses,
    } = frame.kind
    else {
        unreachable!("validated: catch only follows a try body or arm");
    };
    let test_block = match clauses {
        LegacyClauses::Body => {
            // The body is complete: every call and throw into `dispatch` is known.
            builder.seal_block(dispatch);
            state.handlers.pop();
            builder.switch_to_block(dispatch);
            // The thrower stored its fuel count before throwing.
            env.fuel_reload(builder);
            dispatch
        }
        LegacyClauses::Catching { next_test } => {
            let next = next_test.expect("validated: no clause after catch_all");
            builder.switch_to_block(next);
            next
        }
    };
    *clauses = match tag {
        Some(tag) => {
            let (payload, no_match) = test_tag(builder, env, exn, tag);
            state.stack.extend(payload);
            LegacyClauses::Catching {
                next_test: Some(no_match),
            }
        }
        None => {
            // The arm runs in the test block itself: nothing is left to test.
            debug_assert_eq!(builder.current_block(), Some(test_block));
            LegacyClauses::Catching { next_test: None }
        }
    };
    state.frames.push(frame);
    // The arm is reached through the dispatch block.
    state.reachable = true;
}

/// `end` of a legacy `try` (after its results have been passed on): an exception
/// no clause matched (or any exception, for a `try` without clauses) goes on to
/// the enclosing handler.
pub(super) fn end_legacy_try(
    frame: &ControlFrame,
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
) {
    let FrameKind::LegacyTry {
        dispatch,
        exn,
        ref clauses,
    } = frame.kind
    else {
        unreachable!("a legacy try frame");
    };
    match clauses {
        LegacyClauses::Body => {
            builder.seal_block(dispatch);
            state.handlers.pop();
            builder.switch_to_block(dispatch);
            env.fuel_reload(builder);
        }
        LegacyClauses::Catching {
            next_test: Some(no_match),
        } => builder.switch_to_block(*no_match),
        LegacyClauses::Catching { next_test: None } => return,
    }
    env.throw(builder, exn, state.handlers.last().copied());
}

/// `delegate $depth`: ends the `try`; exceptions from its body are thrown on to
/// the handler of label `$depth` (counted from outside the `try`).
pub(super) fn translate_delegate(
    depth: u32,
    builder: &mut FunctionBuilder,
    state: &mut State,
    env: &mut FuncEnv,
) {
    let mut frame = state.frames.pop().expect("delegate closes a try frame");
    leave_frame(builder, state, &mut frame);
    let FrameKind::LegacyTry {
        dispatch,
        exn,
        clauses: LegacyClauses::Body,
    } = frame.kind
    else {
        unreachable!("validated: delegate directly ends a try body");
    };
    builder.seal_block(dispatch);
    state.handlers.pop();
    builder.switch_to_block(dispatch);
    env.fuel_reload(builder);
    let target = state.handler_at(depth);
    env.throw(builder, exn, target);
    continue_after_frame(builder, state, env, frame);
}
