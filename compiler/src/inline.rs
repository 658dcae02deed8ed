//! Whole-module inlining of small functions ([`crate::Inlining`], `--inline`).
//!
//! An ahead-of-time compiler sees every function of the module, so a direct `call`
//! to a small function of the same module can be replaced by the callee's body:
//! no call, no prologue (stack-limit check, frame set-up), and the optimizer sees
//! both sides (constants, bounds checks, loads of the memory base). Cranelift does
//! the splicing (`Context::inline`); this module decides what to inline and keeps
//! the bookkeeping that backtraces need.
//!
//! The pipeline (driven by `translate::compile_functions`):
//! 1. [`Plan::new`]: one cheap pass over every body (no translation) counts its
//!    operators and lists its direct calls to defined functions. Functions on a
//!    cycle of direct calls (recursion, mutual recursion) are never inlined, so
//!    recursion still goes through real calls and their stack-limit checks, and
//!    inlining always terminates. The others with at most
//!    [`MAX_CANDIDATE_OPERATORS`] operators are *candidates*, ordered by *level*
//!    (1 + the highest level of the candidates they call).
//! 2. The candidates are translated to CLIF in parallel, then, one level at a time
//!    from the bottom, their own calls to lower-level candidates are inlined. A
//!    candidate is final once its level is done, so each call site is inlined once
//!    with the callee's final body (`visit_callee: false`). Only candidates' CLIF is
//!    kept, and they are small: memory stays bounded on big modules.
//! 3. Every function (candidates reuse their final CLIF) inlines its calls to
//!    candidates whose final body has at most [`MAX_CALLEE_INSTS`] CLIF
//!    instructions, within a growth budget ([`growth_budget`]), and is compiled.
//!    A function with loops inlines only the calls inside its loops: a call
//!    outside them runs rarely, and splicing code into a function changes its
//!    register allocation, also in its hot loops (measured: the sieve kernel ran
//!    9% more instructions when `malloc`'s and `free`'s one-line wrappers, called
//!    once each, were inlined into its `main`). Step 2 applies the same rules.
//!    Candidates are also compiled on their own: they may be exported, in a table,
//!    or called from where the budget ran out.
//!
//! Correctness (what inlining must not change):
//! * Only direct calls of defined functions are candidates: imports, `call_indirect`,
//!   `call_ref` and builtins stay calls (Cranelift inlines only direct calls).
//! * Traps: a trap site is a machine-code offset of the function it ended up in,
//!   with the same trap code, so the message is unchanged. Backtraces must still name
//!   the inlined function: every instruction spliced in gets a source location that
//!   indexes a *chain* (the inlined functions, innermost first), and the compiled
//!   code's source-location ranges become `abi::FuncInfo::inlined`, which the
//!   runtime expands into frames (a trap in `g` inlined into `f` reports `g` then
//!   `f`, as without inlining).
//! * Stack overflow: recursion is never inlined (step 1), so an unbounded recursion
//!   still meets a prologue check. An inlined body's stack slots become the caller's,
//!   covered by the caller's check.
//! * Fuel: the count is stored to `VMRuntimeState` before every call and reloaded
//!   after it, and a callee loads it at entry and stores it before returning; after
//!   inlining the same stores and loads remain around the spliced body, so the count
//!   and the check points are exactly those of the calls (fuel tests compare both).
//! * Exceptions: a call inside a `try_table` is a `try_call`; Cranelift gives every
//!   call of the spliced body the caller's handler, which is where the unwinder
//!   would have gone. Except one: a function that may call the `throw_ref` builtin
//!   (it has `throw`, `throw_ref`, `rethrow`, `delegate`, or a `try_table`/`try`
//!   whose unmatched exceptions go on up) is not inlined at a `try_call`. The builtin
//!   has the C calling convention, and Cranelift expects a handler of a C-convention
//!   call to find the callee-saved registers preserved, which wasmc's unwinder (it
//!   restores only the stack and frame pointers, enough for wasm-to-wasm calls,
//!   whose `tail` convention saves nothing across an exceptional edge) does not do;
//!   it does not even look for a handler at the builtin's own return address
//!   (`traps::find_handler`), since without inlining that call never has one.
//! * GC stack maps: Cranelift appends the caller's stack-map entries of the call to
//!   every safepoint of the spliced body, so roots live in the caller stay visible.
//! * Interrupts (`--timeout`) are signals, checked by pc: any wasm code qualifies.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use cranelift_codegen::Context;
use cranelift_codegen::dominator_tree::DominatorTree;
use cranelift_codegen::flowgraph::ControlFlowGraph;
use cranelift_codegen::inline::{Inline, InlineCommand};
use cranelift_codegen::ir::{self, Opcode, SourceLoc};
use cranelift_codegen::loop_analysis::LoopAnalysis;
use cranelift_codegen::traversals::Dfs;
use rayon::prelude::*;
use wasmc_abi::{InlinedRange, ModuleInfo};
use wasmparser::Operator;

use crate::module_env::FunctionBody;

/// Functions with more wasm operators than this are not translated early (they
/// could not end up under [`MAX_CALLEE_INSTS`] anyway: every operator but a few
/// structural ones becomes at least one instruction).
pub(crate) const MAX_CANDIDATE_OPERATORS: usize = 96;

/// A callee is inlined at a call inside a loop of the caller when its final body
/// (after its own inlining) has at most this many CLIF instructions: accessors,
/// wrappers, `strlen`-like loops.
pub(crate) const MAX_CALLEE_INSTS: usize = 48;

/// How many CLIF instructions inlining may add to a function of `original`
/// instructions: as much again as it has (at least 256, so that small callers can
/// take a few callees), but never more than 4096, which bounds compile time and
/// code growth of the very large functions (interpreter loops) whose register
/// allocation dominates compile time.
pub(crate) fn growth_budget(original: usize) -> usize {
    original.clamp(256, 4096)
}

/// What inlining decided for the module's defined functions (step 1).
pub(crate) struct Plan {
    /// `levels[l]`: the candidates of level `l`, in index order.
    pub levels: Vec<Vec<usize>>,
    /// Candidate flag per defined function.
    pub is_candidate: Vec<bool>,
    /// Whether each defined function's own body may call the `throw_ref` builtin.
    pub throws: Vec<bool>,
}

impl Plan {
    /// The plan for `bodies` (defined functions in order). A body that cannot be
    /// read is left out here; translation reports it.
    pub fn new(info: &ModuleInfo, bodies: &[FunctionBody<'_>]) -> Plan {
        let imported = info.num_imported_funcs;
        let summaries: Vec<Option<Summary>> = bodies
            .par_iter()
            .map(|body| summarize(&body.body, imported))
            .collect();
        let n = bodies.len();
        let callees: Vec<Vec<u32>> = summaries
            .iter()
            .map(|s| s.as_ref().map(|s| s.callees.clone()).unwrap_or_default())
            .collect();
        let throws = summaries
            .iter()
            .map(|s| s.as_ref().is_none_or(|s| s.throws))
            .collect();
        let on_cycle = on_call_cycle(&callees);
        let is_candidate: Vec<bool> = (0..n)
            .map(|f| {
                !on_cycle[f]
                    && summaries[f]
                        .as_ref()
                        .is_some_and(|s| s.operators <= MAX_CANDIDATE_OPERATORS)
            })
            .collect();
        let level = candidate_levels(&callees, &is_candidate);
        let mut levels: Vec<Vec<usize>> = Vec::new();
        for (f, l) in level.iter().enumerate() {
            if let Some(l) = *l {
                if levels.len() <= l {
                    levels.resize(l + 1, Vec::new());
                }
                levels[l].push(f);
            }
        }
        Plan {
            levels,
            is_candidate,
            throws,
        }
    }

    /// No inlining at all.
    pub fn none(num_defined: usize) -> Plan {
        Plan {
            levels: Vec::new(),
            is_candidate: vec![false; num_defined],
            throws: vec![true; num_defined],
        }
    }
}

/// What the plan needs to know of one body.
struct Summary {
    operators: usize,
    /// Defined functions it calls directly, sorted.
    callees: Vec<u32>,
    /// It may call the `throw_ref` builtin (see the module doc).
    throws: bool,
}

/// The summary of a body, or `None` if the body cannot be read.
fn summarize(body: &wasmparser::FunctionBody<'_>, imported: u32) -> Option<Summary> {
    let mut reader = body.get_operators_reader().ok()?;
    let mut operators = 0;
    let mut callees = Vec::new();
    let mut throws = false;
    while !reader.eof() {
        let op = reader.read().ok()?;
        operators += 1;
        match op {
            Operator::Call { function_index } | Operator::ReturnCall { function_index } => {
                if let Some(defined) = function_index.checked_sub(imported) {
                    callees.push(defined);
                }
            }
            Operator::Throw { .. }
            | Operator::ThrowRef
            | Operator::Rethrow { .. }
            | Operator::Delegate { .. }
            | Operator::TryTable { .. }
            | Operator::Try { .. } => throws = true,
            _ => {}
        }
    }
    callees.sort_unstable();
    callees.dedup();
    Some(Summary {
        operators,
        callees,
        throws,
    })
}

/// Which functions lie on a cycle of the direct-call graph (a self-call included):
/// Tarjan's strongly connected components, iterative (call chains of real programs
/// are deep enough to overflow a recursive walk).
fn on_call_cycle(callees: &[Vec<u32>]) -> Vec<bool> {
    let n = callees.len();
    const UNSEEN: u32 = u32::MAX;
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut cycle = vec![false; n];
    let mut next = 0u32;
    // (function, position in its callee list)
    let mut work: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        work.push((root, 0));
        while let Some(&mut (f, ref mut pos)) = work.last_mut() {
            if *pos == 0 && index[f] == UNSEEN {
                index[f] = next;
                low[f] = next;
                next += 1;
                stack.push(f);
                on_stack[f] = true;
            }
            let edges = &callees[f];
            if *pos < edges.len() {
                let g = edges[*pos] as usize;
                *pos += 1;
                if g >= n {
                    continue;
                }
                if g == f {
                    cycle[f] = true;
                } else if index[g] == UNSEEN {
                    work.push((g, 0));
                } else if on_stack[g] {
                    low[f] = low[f].min(index[g]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[f]);
            }
            if low[f] == index[f] {
                let mut members = Vec::new();
                while let Some(g) = stack.pop() {
                    on_stack[g] = false;
                    members.push(g);
                    if g == f {
                        break;
                    }
                }
                if members.len() > 1 {
                    for g in members {
                        cycle[g] = true;
                    }
                }
            }
        }
    }
    cycle
}

/// Level of each candidate: 0 when it calls no candidate, else 1 + the highest
/// level of the candidates it calls. Candidates are off every cycle, so the
/// candidate subgraph is acyclic and a post-order walk computes this.
fn candidate_levels(callees: &[Vec<u32>], is_candidate: &[bool]) -> Vec<Option<usize>> {
    let n = callees.len();
    let mut level: Vec<Option<usize>> = vec![None; n];
    let mut work: Vec<(usize, usize)> = Vec::new();
    for root in (0..n).filter(|&f| is_candidate[f]) {
        if level[root].is_some() {
            continue;
        }
        work.push((root, 0));
        while let Some(&mut (f, ref mut pos)) = work.last_mut() {
            let edges = &callees[f];
            if let Some(&g) = edges.get(*pos) {
                *pos += 1;
                let g = g as usize;
                if g < n && is_candidate[g] && level[g].is_none() {
                    work.push((g, 0));
                }
                continue;
            }
            let below = edges
                .iter()
                .filter_map(|&g| level.get(g as usize).copied().flatten())
                .max();
            level[f] = Some(below.map_or(0, |l| l + 1));
            work.pop();
        }
    }
    level
}

/// A candidate's final CLIF (its own calls inlined), ready to be spliced.
pub(crate) struct InlineBody {
    pub func: ir::Function,
    /// Chains of `func`'s source locations (see [`Chains`]).
    pub chains: Vec<Vec<u32>>,
    /// CLIF instructions in `func`'s layout.
    pub size: usize,
    /// It may call the `throw_ref` builtin: not to be inlined at a `try_call`.
    pub throws: bool,
}

/// The inlining chains of one function: an instruction spliced in from inlined
/// code has the source location `n`, the index of its chain, the defined functions
/// it came from, innermost first. Instructions of the function's own body have none.
#[derive(Default)]
pub(crate) struct Chains {
    pub list: Vec<Vec<u32>>,
    ids: HashMap<Vec<u32>, u32>,
}

impl Chains {
    fn id(&mut self, chain: Vec<u32>) -> u32 {
        if let Some(&id) = self.ids.get(&chain) {
            return id;
        }
        let id = self.list.len() as u32;
        self.list.push(chain.clone());
        self.ids.insert(chain, id);
        id
    }
}

/// Number of instructions in `func`'s layout.
pub(crate) fn clif_size(func: &ir::Function) -> usize {
    func.layout
        .blocks()
        .map(|b| func.layout.block_insts(b).count())
        .sum()
}

/// The callees available for inlining, indexed by defined function, and how call
/// targets (Cranelift user names) map to defined functions.
pub(crate) struct Callees<'a> {
    pub bodies: &'a [Option<InlineBody>],
    pub defined_of_name: &'a HashMap<u32, usize>,
}

/// Inlines into `func` (whose chains are `chains`) its direct calls of inlinable
/// callees, within its growth budget, and records where the spliced code came
/// from. Returns whether some inlined callee may call the `throw_ref` builtin.
pub(crate) fn inline_calls(
    ctx: &mut Context,
    chains: &mut Chains,
    callees: &Callees<'_>,
) -> Result<bool, String> {
    let (has_loops, in_loops) = calls_in_loops(&ctx.func);
    let mut inliner = Inliner {
        callees,
        has_loops,
        in_loops,
        budget: growth_budget(clif_size(&ctx.func)),
        used: 0,
        sites: Vec::new(),
    };
    let inlined = ctx
        .inline(&mut inliner)
        .map_err(|e| format!("inlining failed: {e:?}"))?;
    let sites = std::mem::take(&mut inliner.sites);
    if inlined {
        record_chains(&mut ctx.func, chains, callees, &sites);
    }
    Ok(sites
        .iter()
        .any(|&(callee, _)| callees.bodies[callee].as_ref().is_some_and(|b| b.throws)))
}

/// Whether `func` has loops, and its direct calls that lie inside one.
fn calls_in_loops(func: &ir::Function) -> (bool, HashSet<ir::Inst>) {
    let cfg = ControlFlowGraph::with_function(func);
    let domtree = DominatorTree::with_function(func, &cfg);
    let mut loops = LoopAnalysis::new();
    loops.compute(func, &cfg, &domtree);
    let mut calls = HashSet::new();
    let has_loops = loops.loops().next().is_some();
    for block in func.layout.blocks() {
        if loops.innermost_loop(block).is_none() {
            continue;
        }
        for inst in func.layout.block_insts(block) {
            if matches!(
                func.dfg.insts[inst].opcode(),
                Opcode::Call | Opcode::TryCall | Opcode::ReturnCall
            ) {
                calls.insert(inst);
            }
        }
    }
    (has_loops, calls)
}

struct Inliner<'a> {
    callees: &'a Callees<'a>,
    has_loops: bool,
    in_loops: HashSet<ir::Inst>,
    budget: usize,
    used: usize,
    /// (callee, first instruction index it was given), in inlining order.
    sites: Vec<(usize, usize)>,
}

impl Inline for Inliner<'_> {
    fn inline(
        &mut self,
        caller: &ir::Function,
        call_inst: ir::Inst,
        call_opcode: Opcode,
        callee: ir::FuncRef,
        _call_args: &[ir::Value],
    ) -> InlineCommand<'_> {
        let ir::ExternalName::User(name) = caller.dfg.ext_funcs[callee].name else {
            return InlineCommand::KeepCall;
        };
        let name = &caller.params.user_named_funcs()[name];
        let Some(&defined) = self.callees.defined_of_name.get(&name.index) else {
            return InlineCommand::KeepCall;
        };
        let Some(Some(body)) = self.callees.bodies.get(defined) else {
            return InlineCommand::KeepCall;
        };
        if name.namespace != 0
            || (body.throws && call_opcode == Opcode::TryCall)
            || body.size > MAX_CALLEE_INSTS
            || (self.has_loops && !self.in_loops.contains(&call_inst))
            || self.used + body.size > self.budget
        {
            return InlineCommand::KeepCall;
        }
        self.used += body.size;
        // Cranelift creates the spliced instructions from here on, in order.
        self.sites.push((defined, caller.dfg.num_insts()));
        InlineCommand::Inline {
            callee: Cow::Borrowed(&body.func),
            visit_callee: false,
        }
    }
}

/// Gives every instruction spliced in by the inlining `sites` the source location
/// of its chain: the callee's chain of the instruction it copies (code the callee
/// had inlined itself) followed by the callee. Cranelift creates the copies in the
/// callee's block pre-order, instructions in layout order; where the copies stop
/// matching that order (instructions Cranelift adds itself, for example to route
/// exceptions), the rest of the site gets the callee alone.
fn record_chains(
    func: &mut ir::Function,
    chains: &mut Chains,
    callees: &Callees<'_>,
    sites: &[(usize, usize)],
) {
    // Source location 0 must be representable: locations are stored relative to
    // the function's first one.
    func.params.ensure_base_srcloc(SourceLoc::new(0));
    let end = func.dfg.num_insts();
    for (i, &(callee, first)) in sites.iter().enumerate() {
        let last = sites.get(i + 1).map_or(end, |s| s.1);
        let Some(Some(body)) = callees.bodies.get(callee) else {
            continue;
        };
        let callee_func = &body.func;
        let mut originals = Dfs::new()
            .pre_order_iter(callee_func)
            .flat_map(|b| callee_func.layout.block_insts(b))
            .collect::<Vec<_>>()
            .into_iter();
        let mut in_order = true;
        for index in first..last {
            let inst = ir::Inst::from_u32(index as u32);
            let original = if in_order { originals.next() } else { None };
            let inner = match original {
                Some(orig) if copies(callee_func, orig, func, inst) => {
                    let loc = callee_func.srcloc(orig);
                    (!loc.is_default())
                        .then(|| body.chains.get(loc.bits() as usize))
                        .flatten()
                }
                _ => {
                    in_order = false;
                    None
                }
            };
            let mut chain = inner.cloned().unwrap_or_default();
            chain.push(callee as u32);
            let id = chains.id(chain);
            func.set_srcloc(inst, SourceLoc::new(id));
        }
    }
}

/// Whether `inst` of `func` can be Cranelift's copy of `orig` of `callee`: the same
/// opcode, or a return turned into a jump (or kept, for a tail call), or a call
/// turned into a `try_call` inside the caller's handler.
fn copies(callee: &ir::Function, orig: ir::Inst, func: &ir::Function, inst: ir::Inst) -> bool {
    let (a, b) = (
        callee.dfg.insts[orig].opcode(),
        func.dfg.insts[inst].opcode(),
    );
    a == b
        || (a.is_return() && b == Opcode::Jump)
        || (a == Opcode::Call && b == Opcode::TryCall)
        || (a == Opcode::CallIndirect && b == Opcode::TryCallIndirect)
}

/// The inlined ranges of compiled code (`abi::FuncInfo::inlined`) from the
/// buffer's source-location ranges.
pub(crate) fn inlined_ranges(
    srclocs: &[cranelift_codegen::MachSrcLoc<cranelift_codegen::Final>],
    chains: &[Vec<u32>],
) -> Vec<InlinedRange> {
    let mut ranges: Vec<(u32, u32, u32)> = Vec::new();
    for s in srclocs {
        if s.loc.is_default() || s.start >= s.end || s.loc.bits() as usize >= chains.len() {
            continue;
        }
        let id = s.loc.bits();
        match ranges.last_mut() {
            Some(last) if last.2 == id && last.1 == s.start => last.1 = s.end,
            _ => ranges.push((s.start, s.end, id)),
        }
    }
    ranges.sort_by_key(|r| r.0);
    ranges
        .into_iter()
        .map(|(start, end, id)| InlinedRange {
            start,
            end,
            funcs: chains[id as usize].clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_include_self_calls_and_mutual_recursion() {
        // 0 -> 1 -> 2 -> 1, 3 -> 3, 4 -> 0
        let callees = vec![vec![1], vec![2], vec![1], vec![3], vec![0]];
        assert_eq!(
            on_call_cycle(&callees),
            vec![false, true, true, true, false]
        );
    }

    #[test]
    fn levels_count_up_from_leaves() {
        // 0 -> 1 -> 2, 0 -> 2, 3 not a candidate, 4 -> 3
        let callees = vec![vec![1, 2], vec![2], vec![], vec![], vec![3]];
        let cand = [true, true, true, false, true];
        assert_eq!(
            candidate_levels(&callees, &cand),
            vec![Some(2), Some(1), Some(0), None, Some(0)]
        );
    }
}
