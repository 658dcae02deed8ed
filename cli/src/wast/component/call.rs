//! Calls across the canonical ABI in the dynamic instantiator: a lifted function
//! called by the script or by a lowering, the lowering itself, and the resource
//! built-ins with the handle tables and borrow rules they enforce.
//!
//! A component-to-component call is *lift, then lower*: the caller's core arguments
//! are lifted into [`Value`]s with the caller's options, lowered into the callee with
//! the callee's, and the results come back the same way. Handles travel as
//! [`Moving`] entries: an `own` is removed from the source table and added to the
//! destination's; a `borrow` lends the source's handle for the duration of the call
//! and appears in the callee's table as a borrow that must be dropped before the
//! call returns (unless the callee owns the resource type, which then sees the
//! representation itself).

use std::cell::Cell;
use std::rc::Rc;

use wasmparser::PrimitiveValType;

use wasmc_abi::component::WitType;
use wasmc_abi::{Trap, ValType};
use wasmc_runtime::component::canonical::{
    self, CanonTrap, Flat, Guest, MAX_FLAT_PARAMS, MAX_FLAT_RESULTS, StringEncoding, Value,
};
use wasmc_runtime::instance::{FuncHandle, MemoryHandle, Val};

use super::instance::{ComponentFunc, ComponentInstance, CoreFunc, HostFn};

/// A failed call: a trap kind and the message the script's `assert_trap` matches.
#[derive(Debug, Clone)]
pub struct Fail {
    pub trap: Trap,
    pub message: String,
}

impl Fail {
    /// A canonical ABI trap found by the harness.
    pub fn new(message: impl Into<String>) -> Fail {
        Fail {
            trap: Trap::HostError,
            message: message.into(),
        }
    }
}

impl From<CanonTrap> for Fail {
    fn from(t: CanonTrap) -> Fail {
        // A trap of the guest's realloc keeps its own kind.
        let trap = canonical::GUEST_TRAP
            .with(|g| g.take())
            .unwrap_or(Trap::HostError);
        Fail { trap, message: t.0 }
    }
}

/// A component value type with names (the script writes cases and flags by name)
/// and run-time resource identities.
#[derive(Debug, Clone)]
pub enum CType {
    Prim(PrimitiveValType),
    List(Box<CType>),
    Record(Vec<(String, CType)>),
    Tuple(Vec<CType>),
    Variant(Vec<(String, Option<CType>)>),
    Enum(Vec<String>),
    Option(Box<CType>),
    Result {
        ok: Option<Box<CType>>,
        err: Option<Box<CType>>,
    },
    Flags(Vec<String>),
    /// `map<K, V>`: in the canonical ABI, a `list<tuple<K, V>>`.
    Map(Box<CType>, Box<CType>),
    Own(Rc<ResourceType>),
    Borrow(Rc<ResourceType>),
}

impl CType {
    /// The engine's type (names and identities dropped).
    pub fn wit(&self) -> WitType {
        match self {
            // `error-context` is refused when the type is converted (see
            // `instance::ctype`), so it never reaches here.
            CType::Prim(p) => {
                wasmc_compiler::component::primitive_wit_type(*p).unwrap_or(WitType::U32)
            }
            CType::List(t) => WitType::List(Box::new(t.wit())),
            CType::Record(f) => WitType::Record(f.iter().map(|(_, t)| t.wit()).collect()),
            CType::Tuple(f) => WitType::Tuple(f.iter().map(CType::wit).collect()),
            CType::Variant(c) => {
                WitType::Variant(c.iter().map(|(_, t)| t.as_ref().map(CType::wit)).collect())
            }
            CType::Enum(n) => WitType::Enum(n.len() as u32),
            CType::Option(t) => WitType::Option(Box::new(t.wit())),
            CType::Result { ok, err } => WitType::Result {
                ok: ok.as_ref().map(|t| Box::new(t.wit())),
                err: err.as_ref().map(|t| Box::new(t.wit())),
            },
            CType::Flags(n) => WitType::Flags(n.len() as u32),
            CType::Map(k, v) => WitType::List(Box::new(WitType::Tuple(vec![k.wit(), v.wit()]))),
            CType::Own(_) => WitType::Own(String::new()),
            CType::Borrow(_) => WitType::Borrow(String::new()),
        }
    }

    fn has_handles(&self) -> bool {
        match self {
            CType::Prim(_) | CType::Enum(_) | CType::Flags(_) => false,
            CType::Own(_) | CType::Borrow(_) => true,
            CType::List(t) | CType::Option(t) => t.has_handles(),
            CType::Map(k, v) => k.has_handles() || v.has_handles(),
            CType::Record(f) => f.iter().any(|(_, t)| t.has_handles()),
            CType::Tuple(f) => f.iter().any(CType::has_handles),
            CType::Variant(c) => c
                .iter()
                .any(|(_, t)| t.as_ref().is_some_and(CType::has_handles)),
            CType::Result { ok, err } => {
                ok.as_ref().is_some_and(|t| t.has_handles())
                    || err.as_ref().is_some_and(|t| t.has_handles())
            }
        }
    }
}

/// String encodings of the canonical options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encoding {
    #[default]
    Utf8,
    Utf16,
    Latin1Utf16,
}

/// The canonical options of a lift or lower.
#[derive(Clone, Default)]
pub struct Options {
    pub encoding: Encoding,
    pub memory: Option<MemoryHandle>,
    pub realloc: Option<FuncHandle>,
    pub post_return: Option<CoreFunc>,
}

impl Options {
    fn guest(&self) -> Guest<'_> {
        Guest {
            memory: self.memory.as_ref(),
            realloc: self.realloc.as_ref(),
            encoding: match self.encoding {
                Encoding::Utf8 => StringEncoding::Utf8,
                Encoding::Utf16 => StringEncoding::Utf16,
                Encoding::Latin1Utf16 => StringEncoding::Latin1Utf16,
            },
        }
    }
}

/// A resource type with run-time identity: each `(type (resource ...))` a component
/// instance runs defines a new one.
pub struct ResourceType {
    pub dtor: Option<CoreFunc>,
    /// The instance that defined the type (it sees representations, not handles).
    pub owner: Rc<ComponentInstance>,
}

impl std::fmt::Debug for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "resource@{:p}", self)
    }
}

impl ResourceType {
    pub fn new(dtor: Option<CoreFunc>, owner: Rc<ComponentInstance>) -> Rc<ResourceType> {
        Rc::new(ResourceType { dtor, owner })
    }
}

/// The borrows a call handed to its callee, which must all be dropped before it
/// returns.
#[derive(Default)]
pub struct CallScope {
    borrows: Cell<u32>,
}

enum Entry {
    Own {
        rt: Rc<ResourceType>,
        rep: u32,
        /// Borrows of this handle lent to calls in progress.
        lends: u32,
    },
    Borrow {
        rt: Rc<ResourceType>,
        rep: u32,
        scope: Rc<CallScope>,
    },
}

/// A component instance's handle table: index 0 is never valid; freed indices are
/// reused last-freed first.
#[derive(Default)]
pub struct HandleTable {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
}

impl HandleTable {
    fn add(&mut self, entry: Entry) -> Result<u32, Fail> {
        if self.entries.is_empty() {
            self.entries.push(None);
        }
        if let Some(i) = self.free.pop() {
            self.entries[i as usize] = Some(entry);
            return Ok(i);
        }
        if self.entries.len() >= (1 << 28) {
            return Err(Fail::new("resource table has no free slots"));
        }
        self.entries.push(Some(entry));
        Ok(self.entries.len() as u32 - 1)
    }

    fn get_mut(&mut self, index: u32) -> Result<&mut Entry, Fail> {
        self.entries
            .get_mut(index as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| Fail::new(format!("unknown handle index {index}")))
    }

    fn remove(&mut self, index: u32) -> Result<Entry, Fail> {
        self.get_mut(index)?;
        let entry = self.entries[index as usize].take().expect("checked above");
        self.free.push(index);
        Ok(entry)
    }
}

fn check_type(
    index: u32,
    found: &Rc<ResourceType>,
    expected: &Rc<ResourceType>,
) -> Result<(), Fail> {
    if Rc::ptr_eq(found, expected) {
        Ok(())
    } else {
        Err(Fail::new(format!(
            "handle index {index} used with the wrong type, expected guest-defined resource \
             but found a different guest-defined resource"
        )))
    }
}

/// A handle between a lift and a lower.
pub struct Moving {
    rt: Rc<ResourceType>,
    rep: u32,
    own: bool,
}

/// Handles of one call in transit, and the `own` handles lent for it.
#[derive(Default)]
pub struct Transit {
    moving: Vec<Moving>,
    lenders: Vec<(Rc<ComponentInstance>, u32)>,
}

impl Transit {
    /// Ends the loans of the call.
    fn release(&mut self) {
        for (instance, index) in self.lenders.drain(..) {
            if let Ok(Entry::Own { lends, .. }) = instance.handles.borrow_mut().get_mut(index) {
                *lends = lends.saturating_sub(1);
            }
        }
    }
}

/// Applies `f` to every handle inside `value` of type `ty`.
fn each_handle(
    ty: &CType,
    value: &mut Value,
    f: &mut dyn FnMut(&CType, &mut u32) -> Result<(), Fail>,
) -> Result<(), Fail> {
    if !ty.has_handles() {
        return Ok(());
    }
    match (ty, value) {
        (CType::Own(_) | CType::Borrow(_), Value::Handle(h)) => f(ty, h),
        (CType::List(t), Value::List(items)) => {
            items.iter_mut().try_for_each(|v| each_handle(t, v, f))
        }
        (CType::Map(k, v), Value::List(items)) => {
            let entry = CType::Tuple(vec![(**k).clone(), (**v).clone()]);
            items.iter_mut().try_for_each(|e| each_handle(&entry, e, f))
        }
        (CType::Record(fields), Value::Record(values)) => fields
            .iter()
            .zip(values)
            .try_for_each(|((_, t), v)| each_handle(t, v, f)),
        (CType::Tuple(fields), Value::Record(values)) => fields
            .iter()
            .zip(values)
            .try_for_each(|(t, v)| each_handle(t, v, f)),
        (_, Value::Variant(case, Some(payload))) => {
            let case_ty = match ty {
                CType::Variant(c) => c.get(*case as usize).and_then(|(_, t)| t.as_ref()),
                CType::Option(t) if *case == 1 => Some(&**t),
                CType::Result { ok, .. } if *case == 0 => ok.as_deref(),
                CType::Result { err, .. } if *case == 1 => err.as_deref(),
                _ => None,
            };
            match case_ty {
                Some(t) => each_handle(t, payload, f),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Takes the handles of a lifted value out of `from`'s table.
fn lift_handles(
    from: &Rc<ComponentInstance>,
    ty: &CType,
    value: &mut Value,
    transit: &mut Transit,
) -> Result<(), Fail> {
    each_handle(ty, value, &mut |ty, h| {
        let index = *h;
        let mut table = from.handles.borrow_mut();
        let moving = match ty {
            CType::Own(rt) => {
                match table.get_mut(index)? {
                    Entry::Own {
                        rt: found, lends, ..
                    } => {
                        check_type(index, found, rt)?;
                        if *lends > 0 {
                            return Err(Fail::new("cannot remove owned resource while borrowed"));
                        }
                    }
                    Entry::Borrow { .. } => {
                        return Err(Fail::new(format!(
                            "handle index {index} used with the wrong type, expected own \
                             handle but found a borrow"
                        )));
                    }
                }
                let Entry::Own { rep, .. } = table.remove(index)? else {
                    unreachable!("checked above")
                };
                Moving {
                    rt: rt.clone(),
                    rep,
                    own: true,
                }
            }
            CType::Borrow(rt) => {
                let rep = match table.get_mut(index)? {
                    Entry::Own {
                        rt: found,
                        rep,
                        lends,
                    } => {
                        check_type(index, found, rt)?;
                        *lends += 1;
                        transit.lenders.push((from.clone(), index));
                        *rep
                    }
                    Entry::Borrow { rt: found, rep, .. } => {
                        check_type(index, found, rt)?;
                        *rep
                    }
                };
                Moving {
                    rt: rt.clone(),
                    rep,
                    own: false,
                }
            }
            _ => unreachable!("only handle types"),
        };
        *h = transit.moving.len() as u32;
        transit.moving.push(moving);
        Ok(())
    })
}

/// Puts the handles in transit into `to`'s table (`scope`: the call the borrows are
/// lent to).
fn lower_handles(
    to: &Rc<ComponentInstance>,
    ty: &CType,
    value: &mut Value,
    transit: &Transit,
    scope: &Rc<CallScope>,
) -> Result<(), Fail> {
    each_handle(ty, value, &mut |_, h| {
        let moving = transit
            .moving
            .get(*h as usize)
            .ok_or_else(|| Fail::new("internal error: handle not in transit"))?;
        *h = if moving.own {
            to.handles.borrow_mut().add(Entry::Own {
                rt: moving.rt.clone(),
                rep: moving.rep,
                lends: 0,
            })?
        } else if Rc::ptr_eq(&moving.rt.owner, to) {
            // The owner of a resource type sees the representation.
            moving.rep
        } else {
            scope.borrows.set(scope.borrows.get() + 1);
            to.handles.borrow_mut().add(Entry::Borrow {
                rt: moving.rt.clone(),
                rep: moving.rep,
                scope: scope.clone(),
            })?
        };
        Ok(())
    })
}

fn flat_types(types: &[WitType]) -> Vec<Flat> {
    let mut flat = Vec::new();
    types.iter().for_each(|t| canonical::flatten(t, &mut flat));
    flat
}

fn to_val(flat: Flat, bits: u64) -> Val {
    match flat {
        Flat::I32 => Val::I32(bits as u32 as i32),
        Flat::I64 => Val::I64(bits as i64),
        Flat::F32 => Val::F32(bits as u32),
        Flat::F64 => Val::F64(bits),
    }
}

fn raw_of(v: &Val) -> u128 {
    match *v {
        Val::I32(x) => u128::from(x as u32),
        Val::I64(x) => u128::from(x as u64),
        Val::F32(x) => u128::from(x),
        Val::F64(x) => u128::from(x),
        Val::V128(x) => x,
        Val::FuncRef(x) | Val::ExternRef(x) => x as u128,
    }
}

fn check_aligned(ptr: u32, ty: &WitType) -> Result<(), Fail> {
    if !ptr.is_multiple_of(canonical::alignment(ty)) {
        return Err(Fail::new("unaligned pointer"));
    }
    Ok(())
}

fn has_string(ty: &WitType) -> bool {
    match ty {
        WitType::String => true,
        WitType::List(t) | WitType::Option(t) => has_string(t),
        WitType::Record(f) | WitType::Tuple(f) => f.iter().any(has_string),
        WitType::Variant(c) => c.iter().flatten().any(has_string),
        WitType::Result { ok, err } => {
            ok.as_deref().is_some_and(has_string) || err.as_deref().is_some_and(has_string)
        }
        _ => false,
    }
}

/// The message of a trap in a component-to-component call as the reference tests
/// expect it: wasmtime's fused adapters check a realloc'd block or a source range
/// as the copy's destination or source (`string`: the value copied contains a
/// string), where a call from the host reports the canonical ABI's own words.
fn fused(mut fail: Fail, string: bool) -> Fail {
    let content = if string {
        "string content out-of-bounds"
    } else {
        "list content out-of-bounds"
    };
    let message = match fail.message.as_str() {
        "realloc return: result not aligned" => "unaligned pointer",
        "realloc return: beyond end of memory" => content,
        "string pointer/length out of bounds of memory" => "string content out-of-bounds",
        "list pointer/length out of bounds of memory" => "list content out-of-bounds",
        _ => return fail,
    };
    fail.message = message.to_string();
    fail
}

/// Runs `f` with `instance.may_leave` cleared (realloc and post-return calls).
fn without_leave<T>(instance: &ComponentInstance, f: impl FnOnce() -> T) -> T {
    let before = instance.may_leave.replace(false);
    let result = f();
    instance.may_leave.set(before);
    result
}

/// Calls a lifted function with `args` (handles in `transit`); the result's handles
/// are left in `transit` too.
pub fn call_lifted(
    func: &ComponentFunc,
    mut args: Vec<Value>,
    transit: &mut Transit,
    from_guest: bool,
) -> Result<Option<Value>, Fail> {
    let callee = &func.instance;
    if !callee.may_enter.get() {
        return Err(Fail::new("cannot enter component instance"));
    }
    let scope = Rc::new(CallScope::default());
    for ((_, ty), value) in func.params.iter().zip(args.iter_mut()) {
        lower_handles(callee, ty, value, transit, &scope)?;
    }
    let param_types: Vec<WitType> = func.params.iter().map(|(_, t)| t.wit()).collect();
    let guest = func.opts.guest();
    let flat_params = flat_types(&param_types);
    let core_args: Vec<Val> = without_leave(callee, || -> Result<Vec<Val>, Fail> {
        if flat_params.len() > MAX_FLAT_PARAMS {
            let tuple = WitType::Tuple(param_types.clone());
            let ptr = guest.allocate(canonical::alignment(&tuple), canonical::size(&tuple))?;
            canonical::store(&guest, &tuple, &Value::Record(args), u64::from(ptr))?;
            Ok(vec![Val::I32(ptr as i32)])
        } else {
            let mut out = Vec::new();
            for (ty, value) in param_types.iter().zip(&args) {
                canonical::lower_flat(&guest, ty, value, &mut out)?;
            }
            Ok(flat_params
                .iter()
                .zip(out)
                .map(|(f, b)| to_val(*f, b))
                .collect())
        }
    })
    .map_err(|f| {
        if from_guest {
            fused(f, param_types.iter().any(has_string))
        } else {
            f
        }
    })?;
    callee.may_enter.set(false);
    let core_results = func.core.call(&core_args);
    callee.may_enter.set(true);
    let core_results = core_results?;
    let result_type = func.result.as_ref().map(CType::wit);
    let mut value = match &result_type {
        None => None,
        Some(ty) => {
            let flat = flat_types(std::slice::from_ref(ty));
            Some(if flat.len() > MAX_FLAT_RESULTS {
                let Some(Val::I32(ptr)) = core_results.first() else {
                    return Err(Fail::new("internal error: no return pointer"));
                };
                let ptr = *ptr as u32;
                check_aligned(ptr, ty)?;
                canonical::load(&guest, ty, u64::from(ptr))?
            } else {
                let mut raw = flat.iter().copied().zip(core_results.iter().map(raw_of));
                canonical::lift_flat(&guest, ty, &mut raw)?
            })
        }
    };
    if let (Some(ty), Some(v)) = (&func.result, value.as_mut()) {
        lift_handles(callee, ty, v, transit)?;
    }
    if scope.borrows.get() != 0 {
        return Err(Fail::new(
            "borrow handles still remain at the end of the call",
        ));
    }
    if let Some(post_return) = &func.opts.post_return {
        without_leave(callee, || post_return.call(&core_results))?;
    }
    Ok(value)
}

/// `canon lower` of `callee` into a core function of `caller`, with the caller's
/// view of the type (`params`, `result`) and options.
pub fn lower(
    callee: Rc<ComponentFunc>,
    params: Vec<CType>,
    result: Option<CType>,
    opts: Options,
    caller: Rc<ComponentInstance>,
) -> HostFn {
    let param_types: Vec<WitType> = params.iter().map(CType::wit).collect();
    let result_type = result.as_ref().map(CType::wit);
    let flat_params = flat_types(&param_types);
    let flat_results = result_type
        .as_ref()
        .map(|t| flat_types(std::slice::from_ref(t)))
        .unwrap_or_default();
    let by_memory = flat_params.len() > MAX_FLAT_PARAMS;
    let retptr = flat_results.len() > MAX_FLAT_RESULTS;
    let core_type = |f: &Flat| match f {
        Flat::I32 => ValType::I32,
        Flat::I64 => ValType::I64,
        Flat::F32 => ValType::F32,
        Flat::F64 => ValType::F64,
    };
    let mut core_params: Vec<ValType> = if by_memory {
        vec![ValType::I32]
    } else {
        flat_params.iter().map(core_type).collect()
    };
    if retptr {
        core_params.push(ValType::I32);
    }
    let core_results: Vec<ValType> = if retptr {
        Vec::new()
    } else {
        flat_results.iter().map(core_type).collect()
    };
    let ty = wasmc_abi::FuncType {
        params: core_params,
        results: core_results,
    };
    let call = move |args: &[Val]| -> Result<Vec<Val>, Fail> {
        if !caller.may_leave.get() {
            return Err(Fail::new("cannot leave component instance"));
        }
        let guest = opts.guest();
        let mut values = if by_memory {
            let Some(Val::I32(ptr)) = args.first() else {
                return Err(Fail::new("internal error: no parameter pointer"));
            };
            let tuple = WitType::Tuple(param_types.clone());
            check_aligned(*ptr as u32, &tuple)?;
            match canonical::load(&guest, &tuple, u64::from(*ptr as u32))? {
                Value::Record(v) => v,
                _ => unreachable!("a tuple loads as a record"),
            }
        } else {
            let mut raw = flat_params.iter().copied().zip(args.iter().map(raw_of));
            param_types
                .iter()
                .map(|t| canonical::lift_flat(&guest, t, &mut raw))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fused(e.into(), false))?
        };
        let mut transit = Transit::default();
        let lifted = (|| {
            for (ty, value) in params.iter().zip(values.iter_mut()) {
                lift_handles(&caller, ty, value, &mut transit)?;
            }
            call_lifted(&callee, values, &mut transit, true)
        })();
        transit.release();
        let mut value = lifted?;
        let (Some(ty), Some(wit), Some(value)) = (&result, &result_type, value.as_mut()) else {
            return Ok(Vec::new());
        };
        lower_handles(&caller, ty, value, &transit, &Rc::new(CallScope::default()))?;
        without_leave(&caller, || {
            if retptr {
                let Some(Val::I32(ptr)) = args.last() else {
                    return Err(Fail::new("internal error: no return pointer"));
                };
                let ptr = *ptr as u32;
                check_aligned(ptr, wit)?;
                canonical::store(&guest, wit, value, u64::from(ptr))?;
                Ok(Vec::new())
            } else {
                let mut out = Vec::new();
                canonical::lower_flat(&guest, wit, value, &mut out)?;
                Ok(flat_results
                    .iter()
                    .zip(out)
                    .map(|(f, b)| to_val(*f, b))
                    .collect())
            }
        })
    };
    HostFn {
        ty,
        call: Box::new(call),
    }
}

fn i32_fn(
    params: usize,
    results: usize,
    f: impl Fn(&[Val]) -> Result<Vec<Val>, Fail> + 'static,
) -> HostFn {
    HostFn {
        ty: wasmc_abi::FuncType {
            params: vec![ValType::I32; params],
            results: vec![ValType::I32; results],
        },
        call: Box::new(f),
    }
}

/// The built-ins may not run while their instance runs `realloc` or `post-return`.
fn check_may_leave(instance: &ComponentInstance) -> Result<(), Fail> {
    if instance.may_leave.get() {
        Ok(())
    } else {
        Err(Fail::new("cannot leave component instance"))
    }
}

fn arg(args: &[Val]) -> u32 {
    match args.first() {
        Some(Val::I32(v)) => *v as u32,
        _ => 0,
    }
}

/// `canon resource.new`: a new `own` handle for a representation.
pub fn resource_new(rt: Rc<ResourceType>, instance: Rc<ComponentInstance>) -> HostFn {
    i32_fn(1, 1, move |args| {
        check_may_leave(&instance)?;
        let index = instance.handles.borrow_mut().add(Entry::Own {
            rt: rt.clone(),
            rep: arg(args),
            lends: 0,
        })?;
        Ok(vec![Val::I32(index as i32)])
    })
}

/// `canon resource.rep`: the representation behind a handle of the type.
pub fn resource_rep(rt: Rc<ResourceType>, instance: Rc<ComponentInstance>) -> HostFn {
    // Unlike `resource.new` and `resource.drop`, allowed during `post-return`.
    i32_fn(1, 1, move |args| {
        let index = arg(args);
        let mut table = instance.handles.borrow_mut();
        let (found, rep) = match table.get_mut(index)? {
            Entry::Own { rt, rep, .. } | Entry::Borrow { rt, rep, .. } => (rt, *rep),
        };
        check_type(index, found, &rt)?;
        Ok(vec![Val::I32(rep as i32)])
    })
}

/// `canon resource.drop`: ends a borrow, or destroys an owned resource (running its
/// destructor in the defining instance).
pub fn resource_drop(rt: Rc<ResourceType>, instance: Rc<ComponentInstance>) -> HostFn {
    i32_fn(1, 0, move |args| {
        check_may_leave(&instance)?;
        let index = arg(args);
        let entry = {
            let mut table = instance.handles.borrow_mut();
            match table.get_mut(index)? {
                Entry::Own {
                    rt: found, lends, ..
                } => {
                    check_type(index, found, &rt)?;
                    if *lends > 0 {
                        return Err(Fail::new("cannot remove owned resource while borrowed"));
                    }
                }
                Entry::Borrow { rt: found, .. } => check_type(index, found, &rt)?,
            }
            table.remove(index)?
        };
        match entry {
            Entry::Borrow { scope, .. } => {
                scope.borrows.set(scope.borrows.get().saturating_sub(1));
            }
            Entry::Own { rt, rep, .. } => {
                if let Some(dtor) = &rt.dtor {
                    if !Rc::ptr_eq(&rt.owner, &instance) && !rt.owner.may_enter.get() {
                        return Err(Fail::new("cannot enter component instance"));
                    }
                    dtor.call(&[Val::I32(rep as i32)])?;
                }
            }
        }
        Ok(Vec::new())
    })
}
