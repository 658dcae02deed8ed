//! WASI 0.2 command components: executing the compiler's static instantiation plan.
//!
//! The executable's `wasmc_module` descriptor carries a [`ComponentPlan`] and the
//! descriptors of the component's core modules. [`run_command`] instantiates the core
//! modules in plan order (each import bound to an earlier instance's export or to a
//! host lowering), then calls the core function lifted as `wasi:cli/run#run` and
//! turns its `result` into the exit status (`err` is 1, as in wasmtime).
//!
//! A lowered import reaches [`lowered_call`] through its array host stub. Each core
//! instance's host state is a [`Lowerings`] table (import index → lowering) sharing
//! one [`ComponentState`]: the resolved memories and `cabi_realloc`s and the WASI
//! 0.2 host (`crate::wasi_p2`). `canonical` lifts the arguments and lowers the
//! results; a canonical ABI violation is a trap whose message names it.

pub mod canonical;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::abi::component::{ComponentPlan, CoreDef, CoreExport, CoreInstance, LoweringKind};
use crate::abi::policy::Limits;
use crate::abi::{ImportKind, ModuleDescriptor, Trap, ValRaw};
use crate::instance::{
    Extern, FuncHandle, HostFunc, InstanceHandle, InstantiationError, MemoryHandle, Module,
};
use crate::traps::TrapInfo;
use crate::wasi_p2::WasiP2;
use canonical::{CanonTrap, Flat, Guest, MAX_FLAT_PARAMS, MAX_FLAT_RESULTS, Value};

/// A loaded component: its plan and core modules.
pub struct Component {
    pub plan: ComponentPlan,
    pub modules: Vec<Arc<Module>>,
}

impl Component {
    /// Reads the plan and the core modules of a component descriptor.
    ///
    /// # Safety
    /// As [`Module::new`]: `descriptor` is the `wasmc_module` of a component object
    /// that stays loaded for the rest of the process.
    pub unsafe fn new(descriptor: &'static ModuleDescriptor) -> Result<Component, String> {
        // SAFETY: the descriptor points at `component_plan_len` bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(descriptor.component_plan, descriptor.component_plan_len)
        };
        let plan = ComponentPlan::deserialize(bytes)?;
        let mut modules = Vec::with_capacity(descriptor.num_component_modules);
        for i in 0..descriptor.num_component_modules {
            // SAFETY: the table has `num_component_modules` descriptor pointers, each
            // a module object linked into the same executable.
            let module = unsafe { &**descriptor.component_modules.add(i) };
            modules.push(unsafe { Module::new(module) }?);
        }
        Ok(Component { plan, modules })
    }
}

/// State shared by every core instance of the running component.
pub struct ComponentState {
    pub plan: ComponentPlan,
    /// The instances created so far, in plan order.
    instances: RefCell<Vec<InstanceHandle>>,
    pub host: RefCell<WasiP2>,
}

/// Host state of one core instance: the lowering each function import is bound to,
/// and the number of core parameters its array stub passes.
struct Lowerings {
    state: Rc<ComponentState>,
    by_import: Vec<Option<u32>>,
    core_params: Vec<usize>,
}

/// How a run ended.
pub enum RunOutcome {
    /// `run` returned `ok` (true) or `err` (false).
    Returned(bool),
    Trapped(TrapInfo),
    /// The host refused a call (a canonical ABI violation: a bad pointer, handle,
    /// string...). `wasmtime run` reports these as errors, not traps, with status 1;
    /// the backtrace is the guest's at the call.
    HostRefused(TrapInfo),
    Failed(String),
}

thread_local! {
    /// The message of the canonical ABI trap being raised, attached to the
    /// [`TrapInfo`] once it reaches [`run_command`].
    static PENDING_TRAP_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A trap, or the host's refusal whose message [`lowered_call`] left behind.
fn outcome_of(mut trap: TrapInfo) -> RunOutcome {
    match PENDING_TRAP_MESSAGE.with(|m| m.borrow_mut().take()) {
        Some(message) if trap.trap == Trap::HostError => {
            trap.message = Some(message);
            RunOutcome::HostRefused(trap)
        }
        _ => RunOutcome::Trapped(trap),
    }
}

/// Instantiates the component and calls its `wasi:cli/run#run`.
pub fn run(component: Component, host: WasiP2, limits: &Limits) -> RunOutcome {
    let state = Rc::new(ComponentState {
        plan: component.plan,
        instances: RefCell::new(Vec::new()),
        host: RefCell::new(host),
    });
    for (index, instance) in state.plan.instances.iter().enumerate() {
        let CoreInstance::Module { module, imports } = instance;
        let Some(module) = component.modules.get(*module as usize).cloned() else {
            return RunOutcome::Failed(format!("corrupt component plan: no core module {module}"));
        };
        let info = module.info();
        if imports.len() != info.imports.len() {
            return RunOutcome::Failed(format!(
                "corrupt component plan: instance {index} binds {} imports, its module has {}",
                imports.len(),
                info.imports.len()
            ));
        }
        let mut by_import = Vec::new();
        let mut core_params = Vec::new();
        let mut externs = Vec::with_capacity(imports.len());
        for (import, def) in info.imports.iter().zip(imports) {
            let func_import = by_import.len() as u32;
            if let ImportKind::Func { type_index } = import.kind {
                let lowered = match def {
                    CoreDef::Lowered(l) => Some(*l),
                    CoreDef::Export(_) => None,
                };
                // The compiler gave exactly the lowered imports array host stubs.
                if lowered.is_some() != info.array_host_imports.contains(&func_import) {
                    return RunOutcome::Failed(format!(
                        "corrupt component plan: import {func_import} of instance {index}"
                    ));
                }
                by_import.push(lowered);
                core_params.push(info.types[type_index as usize].params.len());
                if lowered.is_some() {
                    externs.push(Some(Extern::HostFunc(HostFunc {
                        ty: info.types[type_index as usize].clone(),
                        code: lowered_call as *const u8,
                    })));
                    continue;
                }
            }
            externs.push(match def {
                CoreDef::Export(export) => state.export(export),
                CoreDef::Lowered(_) => None,
            });
        }
        let mut position = 0;
        let mut resolver = |_: &crate::abi::Import| {
            position += 1;
            externs[position - 1].take()
        };
        let host_state = Lowerings {
            state: state.clone(),
            by_import,
            core_params,
        };
        match InstanceHandle::new_with_limits(
            module,
            &mut resolver,
            Some(Box::new(host_state)),
            limits,
        ) {
            Ok(instance) => state.instances.borrow_mut().push(instance),
            Err(InstantiationError::Trap(trap)) => return outcome_of(trap),
            Err(e) => {
                return RunOutcome::Failed(format!(
                    "cannot instantiate core instance {index}: {e}"
                ));
            }
        }
    }
    let run = match state.export(&state.plan.run) {
        Some(Extern::Func(f)) => f,
        _ => return RunOutcome::Failed("the component's `run` export is missing".into()),
    };
    let results = match run.call(&[]) {
        Ok(results) => results,
        Err(trap) => return outcome_of(trap),
    };
    // `result` flattens to one i32: 0 is `ok`, 1 is `err`.
    let ok = match results.first() {
        Some(crate::instance::Val::I32(0)) => true,
        Some(crate::instance::Val::I32(1)) => false,
        _ => {
            return RunOutcome::Trapped(TrapInfo::host(
                Trap::HostError,
                "invalid variant discriminant in the result of `run`",
            ));
        }
    };
    if let Some(post_return) = &state.plan.run_post_return {
        let Some(Extern::Func(f)) = state.export(post_return) else {
            return RunOutcome::Failed("the component's post-return export is missing".into());
        };
        if let Err(trap) = f.call(&[crate::instance::Val::I32(!ok as i32)]) {
            return outcome_of(trap);
        }
    }
    RunOutcome::Returned(ok)
}

impl ComponentState {
    fn export(&self, export: &CoreExport) -> Option<Extern> {
        self.instances
            .borrow()
            .get(export.instance as usize)?
            .export(&export.name)
    }

    fn memory(&self, export: &Option<CoreExport>) -> Option<MemoryHandle> {
        match self.export(export.as_ref()?)? {
            Extern::Memory(m) => Some(m),
            _ => None,
        }
    }

    fn func(&self, export: &Option<CoreExport>) -> Option<FuncHandle> {
        match self.export(export.as_ref()?)? {
            Extern::Func(f) => Some(f),
            _ => None,
        }
    }
}

/// The host entry of every lowered import (array convention, see
/// `abi::component`). A canonical ABI violation or host failure traps.
extern "C" fn lowered_call(vmctx: *mut u8, import: u32, values: *mut ValRaw) {
    // Everything that owns memory lives in `call_lowered`'s frame, which has returned
    // before the trap unwinds the frames above this one.
    if let Err(trap) = call_lowered(vmctx, import, values) {
        if let Some(guest) = canonical::GUEST_TRAP.with(|t| t.take()) {
            // The guest's realloc trapped: that trap ends the run.
            crate::traps::raise_host_trap(guest);
        }
        PENDING_TRAP_MESSAGE.with(|m| *m.borrow_mut() = Some(trap.0));
        crate::traps::raise_host_trap(Trap::HostError);
    }
}

fn call_lowered(vmctx: *mut u8, import: u32, values: *mut ValRaw) -> Result<(), CanonTrap> {
    // SAFETY: only array host stubs call this, with their own context.
    let mut caller = unsafe { crate::caller::Caller::from_vmctx(vmctx) };
    let (state, lowering, stub_params) = {
        let lowerings = caller
            .host_state::<Lowerings>()
            .ok_or_else(|| CanonTrap::new("lowered call without component state"))?;
        let lowering = lowerings
            .by_import
            .get(import as usize)
            .copied()
            .flatten()
            .ok_or_else(|| CanonTrap::new("lowered call of an import that is not lowered"))?;
        let stub_params = lowerings.core_params[import as usize];
        (lowerings.state.clone(), lowering, stub_params)
    };
    let lowering = &state.plan.lowerings[lowering as usize];
    let memory = state.memory(&lowering.memory);
    let realloc = state.func(&lowering.realloc);
    let guest = Guest {
        memory: memory.as_ref(),
        realloc: realloc.as_ref(),
        encoding: lowering.encoding,
    };
    match &lowering.kind {
        LoweringKind::ResourceDrop { resource } => {
            // SAFETY: the stub passes at least one slot; `resource.drop` takes an i32.
            let handle = unsafe { *values } as u32;
            state.host.borrow_mut().drop_handle(resource, handle)
        }
        LoweringKind::Host {
            interface,
            function,
            params,
            result,
        } => {
            let mut flat_params = Vec::new();
            params
                .iter()
                .for_each(|t| canonical::flatten(t, &mut flat_params));
            let mut flat_results = Vec::new();
            if let Some(t) = result {
                canonical::flatten(t, &mut flat_results);
            }
            let by_memory = flat_params.len() > MAX_FLAT_PARAMS;
            let core_params = if by_memory { 1 } else { flat_params.len() }
                + usize::from(flat_results.len() > MAX_FLAT_RESULTS);
            // The validator matched the lowered core type to the canonical ABI's
            // flattening; checked again so that a disagreement can never read past
            // the stub's slots.
            if core_params != stub_params {
                return Err(CanonTrap::new(format!(
                    "`{function}` of `{interface}`: the core signature has {stub_params} \
                     parameters, its type flattens to {core_params}"
                )));
            }
            // SAFETY: the stub passes `max(params, results, 1)` slots, and
            // `core_params` is its parameter count.
            let raw = unsafe { std::slice::from_raw_parts(values, core_params.max(1)) };
            let args = if by_memory {
                let ptr = raw[0] as u32;
                let tuple = crate::abi::component::WitType::Tuple(params.clone());
                check_aligned(ptr, canonical::alignment(&tuple))?;
                match canonical::load(&guest, &tuple, u64::from(ptr))? {
                    Value::Record(v) => v,
                    _ => unreachable!("a tuple loads as a record"),
                }
            } else {
                let mut flat = flat_params.iter().copied().zip(raw.iter().copied());
                params
                    .iter()
                    .map(|t| canonical::lift_flat(&guest, t, &mut flat))
                    .collect::<Result<Vec<_>, _>>()?
            };
            let value = state
                .host
                .borrow_mut()
                .call(interface, function, args)
                .map_err(|e| {
                    CanonTrap::new(format!("{} (in `{function}` of `{interface}`)", e.0))
                })?;
            let (Some(ty), Some(value)) = (result, value) else {
                return Ok(());
            };
            if flat_results.len() > MAX_FLAT_RESULTS {
                let retptr = raw[core_params - 1] as u32;
                check_aligned(retptr, canonical::alignment(ty))?;
                canonical::store(&guest, ty, &value, u64::from(retptr))
            } else {
                let mut out = Vec::new();
                canonical::lower_flat(&guest, ty, &value, &mut out)?;
                let bits = match flat_results.first() {
                    Some(Flat::I32 | Flat::F32) => u128::from(out[0] as u32),
                    _ => u128::from(out[0]),
                };
                // SAFETY: the stub reserves at least one slot for the result.
                unsafe { *values = bits };
                Ok(())
            }
        }
    }
}

fn check_aligned(ptr: u32, align: u32) -> Result<(), CanonTrap> {
    if !ptr.is_multiple_of(align) {
        return Err(CanonTrap::new("pointer is not aligned"));
    }
    Ok(())
}
