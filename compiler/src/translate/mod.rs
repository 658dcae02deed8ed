//! Function translation driver: validates each body while translating it to
//! Cranelift IR, compiles it, and collects machine code, relocations and trap sites.
//!
//! Every defined function is handled independently on a rayon worker thread with a
//! per-thread `FunctionBuilderContext`/`Context`; results are collected in index
//! order, so the object written afterwards does not depend on scheduling.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

use cranelift_codegen::Context;
use cranelift_codegen::FinalizedMachExceptionHandler;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{
    self, GlobalValueData, InstBuilder, MemFlagsData, UserFuncName, Value, types,
};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::ModuleReloc;
use rayon::prelude::*;
use wasmc_abi::{FuncInfo, HandlerSite, ModuleInfo, StackMapSite, VMContextLayout, ValType};
use wasmparser::{FuncValidator, FuncValidatorAllocations, Operator, ValidatorResources};

use crate::module_env::{FunctionBody, val_type};
use crate::{CompileError, CompileErrorKind, CompileOptions, Inlining, inline};

mod atomics;
mod bulk_memory;
mod code;
mod control;
pub(crate) mod environ;
mod fuel;
mod gc;
mod legacy_eh;
pub(crate) mod simd;
mod stack_check;

use control::{ControlFrame, FrameKind, State};
use environ::{FuncEnv, abi_trap, ir_type, wasm_signature};

/// Machine code of one defined function, ready for `define_function_bytes`.
pub(crate) struct CompiledFunction {
    pub bytes: Vec<u8>,
    pub alignment: u64,
    pub relocs: Vec<ModuleReloc>,
    pub func_info: FuncInfo,
}

/// Name of an operator for error messages (its wasmparser variant name).
pub(crate) fn operator_name(op: &Operator) -> String {
    let debug = format!("{op:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Translates and compiles every defined function in parallel. `func_ids[i]` is the
/// object-module function id of defined function `i` (used in call relocations).
/// With inlining, small functions are translated first and spliced into their
/// callers (see `crate::inline`).
pub(crate) fn compile_functions(
    info: &ModuleInfo,
    bodies: Vec<FunctionBody<'_>>,
    func_names: &HashMap<u32, String>,
    func_ids: &[cranelift_module::FuncId],
    isa: &dyn TargetIsa,
    opts: &CompileOptions,
    done: &AtomicUsize,
) -> Result<Vec<CompiledFunction>, CompileError> {
    let raw_ids: Vec<u32> = func_ids.iter().map(|id| id.as_u32()).collect();
    let prepared = Prepared::new(info, bodies, &raw_ids, isa, opts)?;
    let Prepared {
        bodies,
        offsets,
        callees,
        defined_of_name,
    } = prepared;
    let callees = inline::Callees {
        bodies: &callees,
        defined_of_name: &defined_of_name,
    };
    bodies
        .into_par_iter()
        .enumerate()
        .map_init(
            || {
                (
                    FunctionBuilderContext::new(),
                    Context::new(),
                    FuncValidatorAllocations::default(),
                )
            },
            |(fctx, ctx, allocs), (defined, body)| {
                let func_index = info.num_imported_funcs + defined as u32;
                let result = catch_unwind(AssertUnwindSafe(|| {
                    let chains = function_ir(
                        ctx, info, &raw_ids, &callees, defined, body, fctx, allocs, isa, opts,
                    )?;
                    compile_one(ctx, info, func_ids, defined, offsets[defined], &chains, isa)
                }));
                let mut compiled = result.unwrap_or_else(|_| Err(internal_error(func_index)))?;
                compiled.func_info.name = func_names.get(&func_index).cloned();
                done.fetch_add(1, Ordering::Relaxed);
                Ok(compiled)
            },
        )
        .collect()
}

fn internal_error(func_index: u32) -> CompileError {
    CompileError::new(
        CompileErrorKind::Target,
        None,
        format!("internal compiler error while compiling function {func_index}"),
    )
}

/// What is left to do for one defined function after inlining's early steps.
enum Work<'a> {
    /// Translate this body (not a candidate), then inline into it.
    Translate(FunctionBody<'a>),
    /// A candidate too large to be inlined anywhere: its final CLIF, moved here so
    /// that it is freed once compiled.
    Final(Box<inline::InlineBody>),
    /// A candidate that may be inlined: its final CLIF is in `Prepared::callees`
    /// until every function is compiled.
    Inlinable,
}

/// The module's functions after inlining's early steps: the work left per
/// function and the final CLIF of the inlinable candidates.
struct Prepared<'a> {
    bodies: Vec<Work<'a>>,
    /// Byte offset of each body in the module, for error messages.
    offsets: Vec<usize>,
    callees: Vec<Option<inline::InlineBody>>,
    /// Cranelift user-name index (object function id) -> defined function.
    defined_of_name: HashMap<u32, usize>,
}

impl<'a> Prepared<'a> {
    /// Steps 1 and 2 of `crate::inline`: plan, translate the candidates in parallel,
    /// inline among them bottom-up.
    fn new(
        info: &ModuleInfo,
        bodies: Vec<FunctionBody<'a>>,
        raw_ids: &[u32],
        isa: &dyn TargetIsa,
        opts: &CompileOptions,
    ) -> Result<Prepared<'a>, CompileError> {
        let enabled = opts.inline == Inlining::Small && opts.opt_level != crate::OptLevel::None;
        let plan = if enabled {
            inline::Plan::new(info, &bodies)
        } else {
            inline::Plan::none(bodies.len())
        };
        let offsets = bodies
            .iter()
            .map(|b| b.body.range().start as usize)
            .collect();
        let defined_of_name: HashMap<u32, usize> =
            raw_ids.iter().enumerate().map(|(d, &r)| (r, d)).collect();
        let mut bodies: Vec<Option<FunctionBody<'a>>> = bodies.into_iter().map(Some).collect();
        let candidates: Vec<(usize, FunctionBody<'a>)> = (0..bodies.len())
            .filter(|&d| plan.is_candidate[d])
            .filter_map(|d| bodies[d].take().map(|b| (d, b)))
            .collect();
        let mut translated: Vec<Option<ir::Function>> = (0..bodies.len()).map(|_| None).collect();
        let results: Vec<(usize, ir::Function)> = candidates
            .into_par_iter()
            .map_init(
                || {
                    (
                        FunctionBuilderContext::new(),
                        FuncValidatorAllocations::default(),
                    )
                },
                |(fctx, allocs), (defined, body)| {
                    let func_index = info.num_imported_funcs + defined as u32;
                    catch_unwind(AssertUnwindSafe(|| {
                        translate_function(info, raw_ids, defined, body, fctx, allocs, isa, opts)
                    }))
                    .unwrap_or_else(|_| Err(internal_error(func_index)))
                    .map(|f| (defined, f))
                },
            )
            .collect::<Result<_, _>>()?;
        for (defined, func) in results {
            translated[defined] = Some(func);
        }
        let mut callees: Vec<Option<inline::InlineBody>> =
            (0..bodies.len()).map(|_| None).collect();
        for level in &plan.levels {
            let work: Vec<(usize, ir::Function)> = level
                .iter()
                .filter_map(|&d| translated[d].take().map(|f| (d, f)))
                .collect();
            let view = inline::Callees {
                bodies: &callees,
                defined_of_name: &defined_of_name,
            };
            let finished: Vec<(usize, inline::InlineBody)> = work
                .into_par_iter()
                .map(|(defined, func)| {
                    let func_index = info.num_imported_funcs + defined as u32;
                    let mut ctx = Context::for_function(func);
                    let mut chains = inline::Chains::default();
                    let inlined_throws = catch_unwind(AssertUnwindSafe(|| {
                        inline::inline_calls(&mut ctx, &mut chains, &view)
                    }))
                    .map_err(|_| internal_error(func_index))?
                    .map_err(|e| inline_error(func_index, e))?;
                    let size = inline::clif_size(&ctx.func);
                    Ok((
                        defined,
                        inline::InlineBody {
                            func: ctx.func,
                            chains: chains.list,
                            size,
                            throws: plan.throws[defined] || inlined_throws,
                        },
                    ))
                })
                .collect::<Result<_, CompileError>>()?;
            for (defined, body) in finished {
                callees[defined] = Some(body);
            }
        }
        let bodies = bodies
            .into_iter()
            .zip(callees.iter_mut())
            .map(|(body, callee)| match body {
                Some(body) => Work::Translate(body),
                None => match callee.take() {
                    Some(c) if c.size > inline::MAX_CALLEE_INSTS => Work::Final(Box::new(c)),
                    c => {
                        *callee = c;
                        Work::Inlinable
                    }
                },
            })
            .collect();
        Ok(Prepared {
            bodies,
            offsets,
            callees,
            defined_of_name,
        })
    }
}

fn inline_error(func_index: u32, message: String) -> CompileError {
    CompileError::new(
        CompileErrorKind::Target,
        None,
        format!("function {func_index}: {message}"),
    )
}

/// Puts the final CLIF of defined function `defined` in `ctx.func` (see [`Work`]);
/// a function translated now also inlines its calls. Returns the chains of its
/// inlined code (see `inline::Chains`).
#[allow(clippy::too_many_arguments)]
fn function_ir(
    ctx: &mut Context,
    info: &ModuleInfo,
    raw_ids: &[u32],
    callees: &inline::Callees<'_>,
    defined: usize,
    work: Work<'_>,
    fctx: &mut FunctionBuilderContext,
    allocs: &mut FuncValidatorAllocations,
    isa: &dyn TargetIsa,
    opts: &CompileOptions,
) -> Result<Vec<Vec<u32>>, CompileError> {
    let func_index = info.num_imported_funcs + defined as u32;
    ctx.clear();
    match work {
        Work::Translate(body) => {
            ctx.func = translate_function(info, raw_ids, defined, body, fctx, allocs, isa, opts)?;
            let mut chains = inline::Chains::default();
            inline::inline_calls(ctx, &mut chains, callees)
                .map_err(|e| inline_error(func_index, e))?;
            Ok(chains.list)
        }
        Work::Final(body) => {
            let body = *body;
            ctx.func = body.func;
            Ok(body.chains)
        }
        Work::Inlinable => {
            // A candidate: final since step 2.
            let body = callees.bodies[defined]
                .as_ref()
                .ok_or_else(|| internal_error(func_index))?;
            ctx.func = body.func.clone();
            Ok(body.chains.clone())
        }
    }
}

/// Validates and translates one body to CLIF.
#[allow(clippy::too_many_arguments)]
fn translate_function(
    info: &ModuleInfo,
    raw_ids: &[u32],
    defined: usize,
    body: FunctionBody<'_>,
    fctx: &mut FunctionBuilderContext,
    allocs: &mut FuncValidatorAllocations,
    isa: &dyn TargetIsa,
    opts: &CompileOptions,
) -> Result<ir::Function, CompileError> {
    let func_index = info.num_imported_funcs + defined as u32;
    let ty = info.func_type(func_index);
    let mut func = ir::Function::with_name_signature(
        UserFuncName::user(0, raw_ids[defined]),
        wasm_signature(ty),
    );
    let mut validator = body.validator.into_validator(std::mem::take(allocs));
    translate_body(
        &mut func,
        fctx,
        &mut validator,
        &body.body,
        info,
        raw_ids,
        isa,
        opts,
    )?;
    *allocs = validator.into_allocations();
    Ok(func)
}

/// Compiles `ctx.func` (defined function `defined`, whose inlined code has the
/// source-location chains `chains`) to machine code.
fn compile_one(
    ctx: &mut Context,
    info: &ModuleInfo,
    func_ids: &[cranelift_module::FuncId],
    defined: usize,
    body_offset: usize,
    chains: &[Vec<u32>],
    isa: &dyn TargetIsa,
) -> Result<CompiledFunction, CompileError> {
    let func_index = info.num_imported_funcs + defined as u32;
    let compile = |ctx: &mut Context| {
        ctx.compile(isa, &mut ControlPlane::default())
            .map(|_| ())
            .map_err(|e| {
                CompileError::new(
                    CompileErrorKind::Target,
                    Some(body_offset),
                    format!(
                        "code generation failed for function {func_index}: {:?}",
                        e.inner
                    ),
                )
            })
    };
    // Leaves with small frames go without the stack-limit check (see stack_check).
    // Decided after inlining: a function whose calls were all inlined is a leaf.
    let leaf = stack_check::drop_for_leaf(&mut ctx.func).map(|limit| (limit, ctx.func.clone()));
    compile(ctx)?;
    if let Some((limit, mut func)) = leaf {
        let code = ctx.compiled_code().expect("compiled just above");
        if stack_check::needs_check_after_all(&code.buffer) {
            func.stack_limit = Some(limit);
            ctx.clear();
            ctx.func = func;
            compile(ctx)?;
        }
    }
    let code = ctx.compiled_code().expect("compiled just above");
    let buffer = &code.buffer;
    let mut traps: Vec<(u32, wasmc_abi::Trap)> = buffer
        .traps()
        .iter()
        .filter_map(|t| abi_trap(t.code).map(|trap| (t.offset, trap)))
        .collect();
    traps.sort_by_key(|(offset, _)| *offset);
    let handlers = handler_sites(buffer, func_index, body_offset)?;
    // Pushed by Cranelift in increasing return-address order.
    let stack_maps = buffer
        .user_stack_maps()
        .iter()
        .map(|(ret, _span, map)| StackMapSite {
            ret: *ret,
            slots: map.entries().map(|(_ty, offset)| offset).collect(),
        })
        .collect();
    let inlined = if chains.is_empty() {
        Vec::new()
    } else {
        inline::inlined_ranges(buffer.get_srclocs_sorted(), chains)
    };
    let bytes = buffer.data().to_vec();
    let relocs = buffer
        .relocs()
        .iter()
        .map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, func_ids[defined]))
        .collect();
    Ok(CompiledFunction {
        // The ISA's preferred alignment (32 bytes on x86_64, where the minimum is 1):
        // where a function starts relative to cache lines and the decoder's fetch
        // blocks changes the speed of its hot loops by large, arbitrary amounts.
        alignment: u64::from(buffer.alignment.max(isa.function_alignment().preferred)),
        func_info: FuncInfo {
            name: None,
            code_len: bytes.len() as u32,
            traps,
            handlers,
            stack_maps,
            inlined,
        },
        bytes,
        relocs,
    })
}

/// The exception handler of every `try_call` (see `abi::HandlerSite`), sorted by
/// return offset. wasmc gives each `try_call` exactly one catch-all handler.
fn handler_sites(
    buffer: &cranelift_codegen::MachBufferFinalized<cranelift_codegen::Final>,
    func_index: u32,
    offset: usize,
) -> Result<Vec<HandlerSite>, CompileError> {
    let mut sites = Vec::new();
    for site in buffer.call_sites() {
        let Some(handler) = site.exception_handlers.iter().find_map(|h| match h {
            FinalizedMachExceptionHandler::Default(target) => Some(*target),
            _ => None,
        }) else {
            continue;
        };
        let frame_offset = site.frame_offset.ok_or_else(|| {
            CompileError::new(
                CompileErrorKind::Target,
                Some(offset),
                format!("function {func_index}: the backend gave no frame offset for a handler"),
            )
        })?;
        sites.push(HandlerSite {
            ret: site.ret_addr,
            handler,
            frame_offset,
        });
    }
    sites.sort_by_key(|s| s.ret);
    Ok(sites)
}

fn malformed(err: wasmparser::BinaryReaderError) -> CompileError {
    CompileError::from_wasmparser(&err, CompileErrorKind::Malformed)
}

/// Zero value of a local of type `ty`.
fn zero_value(builder: &mut FunctionBuilder, ty: ValType) -> Value {
    match ty {
        ValType::I32 => builder.ins().iconst(types::I32, 0),
        // Null for references. A non-nullable local is never read before it is set
        // (validation), so null is as good as any initial value.
        ValType::I64 | ValType::FuncRef | ValType::ExternRef | ValType::Ref(_) => {
            builder.ins().iconst(types::I64, 0)
        }
        ValType::F32 => builder.ins().f32const(0.0),
        ValType::F64 => builder.ins().f64const(0.0),
        ValType::V128 => {
            let c = builder.func.dfg.constants.insert(vec![0u8; 16].into());
            builder.ins().vconst(types::I8X16, c)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn translate_body(
    func: &mut ir::Function,
    fctx: &mut FunctionBuilderContext,
    validator: &mut FuncValidator<ValidatorResources>,
    body: &wasmparser::FunctionBody<'_>,
    info: &ModuleInfo,
    raw_ids: &[u32],
    isa: &dyn TargetIsa,
    opts: &CompileOptions,
) -> Result<(), CompileError> {
    let func_index = validator.index();
    let ty = info.func_type(func_index);
    let mut builder = FunctionBuilder::new(func, fctx);
    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    builder.seal_block(entry);
    let params = builder.block_params(entry).to_vec();
    let vmctx = params[0];

    // Stack limit: vmctx->runtime->stack_limit, checked in the prologue.
    let vmctx_gv = builder.create_global_value(GlobalValueData::VMContext);
    let frozen = builder
        .func
        .dfg
        .mem_flags
        .insert_unchecked(MemFlagsData::trusted().with_readonly());
    let runtime = builder.create_global_value(GlobalValueData::Load {
        base: vmctx_gv,
        offset: VMContextLayout::RUNTIME.into(),
        global_type: types::I64,
        flags: frozen,
    });
    let mutable = builder
        .func
        .dfg
        .mem_flags
        .insert_unchecked(MemFlagsData::trusted());
    let stack_limit = builder.create_global_value(GlobalValueData::Load {
        base: runtime,
        offset: VMContextLayout::RUNTIME_STACK_LIMIT.into(),
        global_type: types::I64,
        flags: mutable,
    });
    builder.func.stack_limit = Some(stack_limit);

    let mut state = State::new(ty.results.len());
    let mut roots = GcRefTracking::for_module(info);
    for (param, value) in ty.params.iter().zip(&params[1..]) {
        let var = builder.declare_var(ir_type(*param));
        if roots.is_root(*param) {
            builder.declare_var_needs_stack_map(var);
            roots.enabled = true;
        }
        builder.def_var(var, *value);
        state.locals.push(var);
    }
    let mut locals = body.get_locals_reader().map_err(malformed)?;
    for _ in 0..locals.get_count() {
        let offset = locals.original_position();
        let (count, wasm_ty) = locals.read().map_err(malformed)?;
        validator
            .define_locals(offset, count, wasm_ty)
            .map_err(|e| CompileError::from_wasmparser(&e, CompileErrorKind::Invalid))?;
        let local_ty = val_type(wasm_ty, &info.sub_types, offset as usize)?;
        let zero = zero_value(&mut builder, local_ty);
        for _ in 0..count {
            let var = builder.declare_var(ir_type(local_ty));
            if roots.is_root(local_ty) {
                builder.declare_var_needs_stack_map(var);
                roots.enabled = true;
            }
            builder.def_var(var, zero);
            state.locals.push(var);
        }
    }

    // The function body is a block whose exit returns.
    let results: Vec<_> = ty.results.iter().map(|t| ir_type(*t)).collect();
    let exit = builder.create_block();
    for t in &results {
        builder.append_block_param(exit, *t);
    }
    state.frames.push(ControlFrame {
        kind: FrameKind::Block,
        destination: exit,
        num_params: 0,
        num_results: results.len(),
        original_stack_size: 0,
        exit_reachable: false,
    });

    let mut env = FuncEnv::new(
        info,
        raw_ids,
        opts.explicit_bounds_checks,
        opts.spectre_guards,
        isa.default_call_conv(),
        vmctx,
    );
    env.declare_alias_regions(builder.func);
    if opts.fuel_metering {
        env.fuel = Some(fuel::Fuel::entry(&mut builder, vmctx));
    }
    let mut reader = wasmparser::OperatorsReader::new(locals.get_binary_reader());
    while !reader.eof() {
        let (op, offset) = reader.read_with_offset().map_err(malformed)?;
        let offset = offset as usize;
        validator.op(offset as u64, &op).map_err(|e| {
            CompileError::new(
                CompileErrorKind::Invalid,
                Some(e.offset() as usize),
                format!("{} (operator `{}`)", e.message(), operator_name(&op)),
            )
        })?;
        if state.frames.is_empty() {
            // Validation rejects operators after the final `end`; be defensive anyway.
            return Err(CompileError::new(
                CompileErrorKind::Invalid,
                Some(offset),
                "operators remaining after end of function",
            ));
        }
        if matches!(op, Operator::TryTable { .. } | Operator::Try { .. }) {
            // `catch_ref`/`catch_all_ref` produce exception references in any module,
            // and a legacy `try` keeps its exception for `rethrow`.
            roots.enabled = true;
        }
        state.low_water = state.stack.len();
        code::translate_operator(&op, offset, &mut builder, &mut state, &mut env)?;
        if roots.enabled {
            roots.declare_pushed(&mut builder, &state, validator, info, offset)?;
        }
    }
    reader.finish().map_err(malformed)?;
    if !state.frames.is_empty() {
        return Err(CompileError::new(
            CompileErrorKind::Malformed,
            Some(reader.original_position() as usize),
            "function body ends before its final `end`",
        ));
    }
    builder.finalize(isa.frontend_config());
    Ok(())
}

/// Marks every SSA value holding a reference the collector manages (an exception
/// or, in modules with GC types, any traced reference: `anyref`, `eqref`,
/// struct and array references, `externref`) as a root, so that Cranelift keeps it
/// in a stack slot across calls and records the slot in the call's user stack map
/// (`abi::StackMapSite`); the collector reads those slots (runtime `gc/`). Without
/// this an object referenced only from a live local or operand would look
/// unreachable.
///
/// Variables (params and locals) are declared where they are created.
/// Operand-stack values are declared as they are pushed: after each operator, the
/// values above the stack's low-water mark are the ones it pushed, and the
/// validator, which has just checked the same operator, knows their types.
/// Modules without GC types track exception references only, and only if they
/// mention `exnref` in a type, or in functions with a `try_table`
/// (`catch_ref`/`catch_all_ref`) or a legacy `try` (its exception, kept for
/// `rethrow`, is declared where the `try` creates it); other code is not scanned
/// and compiles exactly as before.
struct GcRefTracking {
    enabled: bool,
    /// The module can hold GC objects: every traced reference is a root, not only
    /// `exnref`.
    gc: bool,
}

impl GcRefTracking {
    fn for_module(info: &ModuleInfo) -> GcRefTracking {
        let in_types = info
            .types
            .iter()
            .any(|t| t.params.iter().chain(&t.results).any(|v| v.is_exnref()));
        let in_globals = info.globals.iter().any(|g| g.content.is_exnref());
        let in_tables = info.tables.iter().any(|t| t.element.is_exnref());
        let gc = module_holds_gc_refs(info);
        GcRefTracking {
            enabled: in_types || in_globals || in_tables || gc,
            gc,
        }
    }

    /// Whether values of type `ty` must be roots (and turn tracking on).
    fn is_root(&mut self, ty: ValType) -> bool {
        let root = if self.gc {
            ty.is_traced()
        } else {
            ty.is_exnref()
        };
        self.enabled |= root;
        root
    }

    fn declare_pushed(
        &self,
        builder: &mut FunctionBuilder,
        state: &State,
        validator: &FuncValidator<ValidatorResources>,
        info: &ModuleInfo,
        offset: usize,
    ) -> Result<(), CompileError> {
        if !state.reachable {
            return Ok(());
        }
        let height = state.stack.len();
        if validator.operand_stack_height() as usize != height {
            // The translator's operand stack mirrors the validator's in reachable
            // code; if it ever did not, roots could be missed: refuse to compile.
            return Err(CompileError::new(
                CompileErrorKind::Target,
                Some(offset),
                format!(
                    "internal compiler error: operand stack height {height} differs from the validator's {}",
                    validator.operand_stack_height()
                ),
            ));
        }
        for (i, &value) in state.stack.iter().enumerate().skip(state.low_water) {
            if builder.func.dfg.value_type(value) != types::I64 {
                continue;
            }
            let depth = height - 1 - i;
            if let Some(Some(wasmparser::ValType::Ref(r))) = validator.get_operand_type(depth)
                && self.heap_is_root(r.heap_type(), info)
            {
                builder.declare_value_needs_stack_map(value);
            }
        }
        Ok(())
    }

    fn heap_is_root(&self, heap: wasmparser::HeapType, info: &ModuleInfo) -> bool {
        use wasmparser::AbstractHeapType as A;
        match heap {
            wasmparser::HeapType::Abstract { ty: A::Exn, .. } => true,
            _ if !self.gc => false,
            wasmparser::HeapType::Abstract { ty, .. } => {
                matches!(ty, A::Extern | A::Any | A::Eq | A::Struct | A::Array)
            }
            wasmparser::HeapType::Concrete(wasmparser::UnpackedIndex::Module(i))
            | wasmparser::HeapType::Exact(wasmparser::UnpackedIndex::Module(i)) => !matches!(
                info.sub_types.get(i as usize).map(|t| &t.composite),
                Some(wasmc_abi::CompositeType::Func)
            ),
            // Anything else: a root, to be safe.
            _ => true,
        }
    }
}

/// Whether the module can see GC objects at all: it declares struct or array
/// types, or mentions a heap type of the `any` hierarchy (an import may hand it
/// objects of another module).
fn module_holds_gc_refs(info: &ModuleInfo) -> bool {
    let mentions_any = |t: &ValType| t.as_ref_type().is_some_and(|r| r.heap.is_any());
    info.uses_gc_heap()
        || info
            .types
            .iter()
            .any(|t| t.params.iter().chain(&t.results).any(mentions_any))
        || info.globals.iter().any(|g| mentions_any(&g.content))
        || info.tables.iter().any(|t| mentions_any(&t.element))
}

/// The Cranelift IR of every defined function of `wasm`, before code generation
/// (for tests that check what the translator emits).
#[cfg(test)]
pub(crate) fn translate_to_ir(
    wasm: &[u8],
    opts: &CompileOptions,
) -> Result<Vec<ir::Function>, CompileError> {
    let crate::module_env::ModuleEnv { info, bodies, .. } =
        crate::module_env::ModuleEnv::parse(wasm)?;
    let isa = crate::isa::build(opts)?;
    let raw_ids: Vec<u32> = (0..bodies.len() as u32).collect();
    let mut fctx = FunctionBuilderContext::new();
    let mut functions = Vec::new();
    for (defined, body) in bodies.into_iter().enumerate() {
        let func_index = info.num_imported_funcs + defined as u32;
        let mut func = ir::Function::with_name_signature(
            UserFuncName::user(0, defined as u32),
            wasm_signature(info.func_type(func_index)),
        );
        let mut validator = body
            .validator
            .into_validator(FuncValidatorAllocations::default());
        translate_body(
            &mut func,
            &mut fctx,
            &mut validator,
            &body.body,
            &info,
            &raw_ids,
            &*isa,
            opts,
        )?;
        functions.push(func);
    }
    Ok(functions)
}
