//! The dynamic component instantiator of `wasmc wast`.
//!
//! [`instantiate`] walks a component's sections in order, keeping its index spaces
//! as run-time values: core instances (live [`InstanceHandle`]s or bags of exports),
//! core functions (wasm functions or host functions: lowerings and the resource
//! built-ins), memories, tables, globals, tags; component functions (lifts), component
//! instances (export maps), nested component and module definitions, and types (only
//! resource types carry run-time identity). A nested component is instantiated by
//! walking its sections with its imports bound to the instantiation's arguments;
//! outer aliases read the scope the component was defined in.
//!
//! A core module's function import bound to a host function (a lowering, a
//! resource built-in) is compiled with an array host stub, served by
//! [`import_entry`], which finds the host function in the calling instance's host
//! state; one bound to another core instance's function is linked to it directly,
//! as between core modules. Which imports are which is known only when the module
//! is instantiated: the build made in advance stubs every function import (the
//! usual case: a module importing only lowerings), and another split is compiled
//! once, on demand ([`Loaded::module`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;

use wasmparser::component_types::{ComponentAnyTypeId, ComponentValType, ResourceId};
use wasmparser::types::TypesRef;
use wasmparser::{
    CanonicalFunction, CanonicalOption, ComponentAlias, ComponentExternalKind,
    ComponentOuterAliasKind, ComponentType, ExternalKind, Parser, Payload,
};

use wasmc_abi::{FuncType, ImportKind, ValRaw, ValType};
use wasmc_runtime::instance::{
    Extern, FuncHandle, GlobalHandle, HostFunc, InstanceHandle, InstantiationError, MemoryHandle,
    Module, TableHandle, TagHandle, Val,
};
use wasmc_runtime::traps::TrapInfo;

use super::Prepared;
use super::call::{self, CType, Fail, HandleTable, ResourceType};

/// A component instance's run-time state (the canonical ABI's `ComponentInstance`).
pub struct ComponentInstance {
    /// Cleared while the instance runs `realloc` or `post-return`: it may not call
    /// out then ("cannot leave component instance").
    pub may_leave: Cell<bool>,
    /// Cleared while a call into the instance is active: the Component Model forbids
    /// reentrance ("cannot enter component instance").
    pub may_enter: Cell<bool>,
    /// Resource handles, one table for every resource type (indices from 1).
    pub handles: RefCell<HandleTable>,
}

impl ComponentInstance {
    fn new() -> Rc<ComponentInstance> {
        Rc::new(ComponentInstance {
            may_leave: Cell::new(true),
            may_enter: Cell::new(true),
            handles: RefCell::new(HandleTable::default()),
        })
    }
}

/// A host function in a core index space: a lowering or a canonical built-in.
pub struct HostFn {
    pub ty: FuncType,
    #[allow(clippy::type_complexity)]
    pub call: Box<dyn Fn(&[Val]) -> Result<Vec<Val>, Fail>>,
}

#[derive(Clone)]
pub enum CoreFunc {
    Wasm(FuncHandle),
    Host(Rc<HostFn>),
}

impl CoreFunc {
    pub fn ty(&self) -> &FuncType {
        match self {
            CoreFunc::Wasm(f) => f.ty(),
            CoreFunc::Host(h) => &h.ty,
        }
    }

    /// Calls the function; a trap becomes a [`Fail`] with the trap's message.
    pub fn call(&self, args: &[Val]) -> Result<Vec<Val>, Fail> {
        match self {
            CoreFunc::Wasm(f) => f.call(args).map_err(Fail::from_trap),
            CoreFunc::Host(h) => (h.call)(args),
        }
    }
}

#[derive(Clone)]
enum CoreItem {
    Func(CoreFunc),
    Memory(MemoryHandle),
    Table(TableHandle),
    Global(GlobalHandle),
    Tag(TagHandle),
}

#[derive(Clone)]
enum CoreInst {
    Wasm(InstanceHandle),
    Bag(Rc<HashMap<String, CoreItem>>),
}

impl CoreInst {
    fn export(&self, name: &str) -> Option<CoreItem> {
        match self {
            CoreInst::Wasm(instance) => Some(match instance.export(name)? {
                Extern::Func(f) => CoreItem::Func(CoreFunc::Wasm(f)),
                Extern::Memory(m) => CoreItem::Memory(m),
                Extern::Table(t) => CoreItem::Table(t),
                Extern::Global(g) => CoreItem::Global(g),
                Extern::Tag(t) => CoreItem::Tag(t),
                Extern::HostFunc(_) => return None,
            }),
            CoreInst::Bag(bag) => bag.get(name).cloned(),
        }
    }
}

/// A lifted component function.
pub struct ComponentFunc {
    pub core: CoreFunc,
    pub params: Vec<(String, CType)>,
    pub result: Option<CType>,
    pub opts: call::Options,
    /// The instance whose core function this is.
    pub instance: Rc<ComponentInstance>,
}

/// A nested component definition: its bytes and the scope it was defined in.
pub struct ComponentDef {
    range: Range<usize>,
    outer: Option<Rc<RefCell<Scope>>>,
}

/// A core module definition: its position in the binary.
#[derive(Clone)]
pub struct ModuleDef {
    range: Range<usize>,
}

/// Anything a component can import, export or pass on.
#[derive(Clone)]
pub enum Item {
    Func(Rc<ComponentFunc>),
    Instance(Rc<HashMap<String, Item>>),
    Component(Rc<ComponentDef>),
    Module(ModuleDef),
    /// A type; only resource types have run-time identity.
    Type(Option<Rc<ResourceType>>),
}

impl Item {
    fn kind(&self) -> &'static str {
        match self {
            Item::Func(_) => "func",
            Item::Instance(_) => "instance",
            Item::Component(_) => "component",
            Item::Module(_) => "module",
            Item::Type(_) => "type",
        }
    }
}

/// The index spaces of one component instance being built.
#[derive(Default)]
pub struct Scope {
    parent: Option<Rc<RefCell<Scope>>>,
    modules: Vec<ModuleDef>,
    components: Vec<Rc<ComponentDef>>,
    types: Vec<Option<Rc<ResourceType>>>,
    /// Run-time resource types by the validator's identity, for type conversions.
    resources: HashMap<ResourceId, Rc<ResourceType>>,
    core_instances: Vec<CoreInst>,
    core_funcs: Vec<CoreFunc>,
    core_memories: Vec<MemoryHandle>,
    core_tables: Vec<TableHandle>,
    core_globals: Vec<GlobalHandle>,
    core_tags: Vec<TagHandle>,
    funcs: Vec<Rc<ComponentFunc>>,
    instances: Vec<Rc<HashMap<String, Item>>>,
}

impl Scope {
    fn resource(&self, id: ResourceId) -> Option<Rc<ResourceType>> {
        match self.resources.get(&id) {
            Some(r) => Some(r.clone()),
            None => self.parent.as_ref()?.borrow().resource(id),
        }
    }

    fn push(&mut self, item: Item) {
        match item {
            Item::Func(f) => self.funcs.push(f),
            Item::Instance(i) => self.instances.push(i),
            Item::Component(c) => self.components.push(c),
            Item::Module(m) => self.modules.push(m),
            Item::Type(t) => self.types.push(t),
        }
    }

    fn item(&self, kind: ComponentExternalKind, index: u32) -> Result<Item, String> {
        let i = index as usize;
        let missing = || format!("{kind:?} index {index} out of bounds");
        Ok(match kind {
            ComponentExternalKind::Func => {
                Item::Func(self.funcs.get(i).ok_or_else(missing)?.clone())
            }
            ComponentExternalKind::Instance => {
                Item::Instance(self.instances.get(i).ok_or_else(missing)?.clone())
            }
            ComponentExternalKind::Component => {
                Item::Component(self.components.get(i).ok_or_else(missing)?.clone())
            }
            ComponentExternalKind::Module => {
                Item::Module(self.modules.get(i).ok_or_else(missing)?.clone())
            }
            ComponentExternalKind::Type => {
                Item::Type(self.types.get(i).ok_or_else(missing)?.clone())
            }
            ComponentExternalKind::Value => return Err("component values are not supported".into()),
        })
    }

    fn core_item(&self, kind: ExternalKind, index: u32) -> Result<CoreItem, String> {
        let i = index as usize;
        let missing = || format!("core {kind:?} index {index} out of bounds");
        Ok(match kind {
            ExternalKind::Func | ExternalKind::FuncExact => {
                CoreItem::Func(self.core_funcs.get(i).ok_or_else(missing)?.clone())
            }
            ExternalKind::Memory => {
                CoreItem::Memory(self.core_memories.get(i).ok_or_else(missing)?.clone())
            }
            ExternalKind::Table => {
                CoreItem::Table(self.core_tables.get(i).ok_or_else(missing)?.clone())
            }
            ExternalKind::Global => {
                CoreItem::Global(self.core_globals.get(i).ok_or_else(missing)?.clone())
            }
            ExternalKind::Tag => CoreItem::Tag(self.core_tags.get(i).ok_or_else(missing)?.clone()),
        })
    }

    /// The item an outer alias of `kind` names (core types have no run-time value).
    fn aliasable(&self, kind: ComponentOuterAliasKind, index: u32) -> Result<Item, String> {
        let i = index as usize;
        let missing = || format!("outer alias: {kind:?} index {index} out of bounds");
        Ok(match kind {
            ComponentOuterAliasKind::CoreModule => {
                Item::Module(self.modules.get(i).cloned().ok_or_else(missing)?)
            }
            ComponentOuterAliasKind::Component => {
                Item::Component(self.components.get(i).cloned().ok_or_else(missing)?)
            }
            ComponentOuterAliasKind::Type | ComponentOuterAliasKind::CoreType => {
                Item::Type(self.types.get(i).cloned().ok_or_else(missing)?)
            }
        })
    }

    fn push_core(&mut self, item: CoreItem) {
        match item {
            CoreItem::Func(f) => self.core_funcs.push(f),
            CoreItem::Memory(m) => self.core_memories.push(m),
            CoreItem::Table(t) => self.core_tables.push(t),
            CoreItem::Global(g) => self.core_globals.push(g),
            CoreItem::Tag(t) => self.core_tags.push(t),
        }
    }

    /// Pushes `item` and records the run-time identity of the resource types it is
    /// or exports (an instance's types are reachable through its functions' types
    /// without ever being aliased).
    fn push_bound(&mut self, types: TypesRef<'_>, item: Item) {
        match &item {
            Item::Type(_) => {
                let index = self.types.len() as u32;
                self.push(item);
                self.bind_type(types, index);
            }
            Item::Instance(bag) => {
                let bag = bag.clone();
                let index = self.instances.len() as u32;
                self.push(item);
                // The index spaces mirror the validator's; checked all the same, so
                // that a disagreement is a missing binding, never a panic.
                if index < types.component_instance_count() {
                    self.bind_instance(types, types.component_instance_at(index), &bag);
                }
            }
            _ => self.push(item),
        }
    }

    fn bind_instance(
        &mut self,
        types: TypesRef<'_>,
        id: wasmparser::component_types::ComponentInstanceTypeId,
        bag: &HashMap<String, Item>,
    ) {
        use wasmparser::component_types::ComponentEntityType as E;
        for (name, export) in types[id].exports.iter() {
            match (&export.ty, bag.get(name)) {
                (
                    E::Type {
                        referenced,
                        created,
                    },
                    Some(Item::Type(Some(rt))),
                ) => {
                    for t in [referenced, created] {
                        if let ComponentAnyTypeId::Resource(r) = t {
                            self.resources.insert(r.resource(), rt.clone());
                        }
                    }
                }
                (E::Instance(inner), Some(Item::Instance(inner_bag))) => {
                    let inner_bag = inner_bag.clone();
                    self.bind_instance(types, *inner, &inner_bag);
                }
                _ => {}
            }
        }
    }

    /// Records the run-time identity of type index `index` if it is a resource.
    fn bind_type(&mut self, types: TypesRef<'_>, index: u32) {
        if let Some(Some(resource)) = self.types.get(index as usize)
            && index < types.component_type_count()
            && let ComponentAnyTypeId::Resource(id) = types.component_any_type_at(index)
        {
            self.resources.insert(id.resource(), resource.clone());
        }
    }
}

/// Why an instantiation failed (the message of an `assert_unlinkable`/`_trap`).
#[derive(Debug)]
pub enum InstantiateError {
    /// A link error or something the instantiator does not support.
    Link(String),
    Trap(Fail),
}

impl std::fmt::Display for InstantiateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstantiateError::Link(m) => f.write_str(m),
            InstantiateError::Trap(t) => write!(f, "trapped: {}", t.message),
        }
    }
}

impl From<String> for InstantiateError {
    fn from(m: String) -> Self {
        InstantiateError::Link(m)
    }
}

impl From<&str> for InstantiateError {
    fn from(m: &str) -> Self {
        InstantiateError::Link(format!("{m} out of bounds"))
    }
}

/// The loaded core modules of a prepared component: by offset and the function
/// imports given array host stubs.
pub struct Loaded {
    prepared: Rc<Prepared>,
    #[allow(clippy::type_complexity)]
    modules: RefCell<HashMap<(usize, Vec<u32>), Arc<Module>>>,
    infos: RefCell<HashMap<usize, Rc<wasmc_abi::ModuleInfo>>>,
}

impl Loaded {
    pub fn new(prepared: Rc<Prepared>) -> Rc<Loaded> {
        Rc::new(Loaded {
            prepared,
            modules: RefCell::new(HashMap::new()),
            infos: RefCell::new(HashMap::new()),
        })
    }

    /// The module's imports and types, without compiling it.
    fn info(&self, def: &ModuleDef) -> Result<Rc<wasmc_abi::ModuleInfo>, String> {
        if let Some(info) = self.infos.borrow().get(&def.range.start) {
            return Ok(info.clone());
        }
        let wasm = &self.prepared.validated.wasm[def.range.clone()];
        let info = Rc::new(
            wasmc_compiler::module_info(wasm)
                .map_err(|e| format!("core module not compiled: {e}"))?,
        );
        self.infos
            .borrow_mut()
            .insert(def.range.start, info.clone());
        Ok(info)
    }

    /// The module compiled with array host stubs for the function imports `stubs`
    /// (all of them: the build made in advance; otherwise built now, once).
    fn module(&self, def: &ModuleDef, stubs: Vec<u32>, all: bool) -> Result<Arc<Module>, String> {
        let key = (def.range.start, stubs);
        if let Some(m) = self.modules.borrow().get(&key) {
            return Ok(m.clone());
        }
        let built;
        let shared = if all {
            match self.prepared.shared.get(&def.range.start) {
                Some(Ok(path)) => path,
                Some(Err(e)) => return Err(format!("core module not compiled: {e}")),
                None => {
                    return Err(format!(
                        "internal error: no core module at {:#x}",
                        def.range.start
                    ));
                }
            }
        } else {
            let n = BUILDS.with(|b| b.replace(b.get() + 1));
            let stem = format!("b{n}_{}", def.range.start);
            built = super::build_module(
                &self.prepared.validated.wasm,
                &def.range,
                &self.prepared.dir,
                &stem,
                Some(&key.1),
            )
            .map_err(|e| format!("core module not compiled: {e}"))?;
            &built
        };
        let descriptor = super::super::loader::load(shared)?;
        // SAFETY: the descriptor comes from an object wasmc's compiler produced, and
        // `loader::load` never unloads it.
        let module = unsafe { Module::new(descriptor) }.map_err(|e| format!("cannot load: {e}"))?;
        self.modules.borrow_mut().insert(key, module.clone());
        Ok(module)
    }
}

thread_local! {
    /// Builds made during instantiation, for unique file names.
    static BUILDS: Cell<u64> = const { Cell::new(0) };
}

/// An instantiated top-level component: its exports.
pub struct Instantiated {
    pub exports: HashMap<String, Item>,
}

/// Instantiates the top-level component of `loaded` (it imports nothing: a script
/// gives no imports to its components).
pub fn instantiate(loaded: &Rc<Loaded>) -> Result<Instantiated, InstantiateError> {
    let wasm_len = loaded.prepared.validated.wasm.len();
    let def = ComponentDef {
        range: 0..wasm_len,
        outer: None,
    };
    let exports = walk(loaded, &def, &HashMap::new())?;
    Ok(Instantiated { exports })
}

fn walk(
    loaded: &Rc<Loaded>,
    def: &ComponentDef,
    args: &HashMap<String, Item>,
) -> Result<HashMap<String, Item>, InstantiateError> {
    let wasm = &loaded.prepared.validated.wasm[..];
    let types = loaded
        .prepared
        .validated
        .types
        .get(&def.range.start)
        .ok_or_else(|| {
            format!(
                "internal error: no types for the component at {:#x}",
                def.range.start
            )
        })?
        .as_ref();
    let scope = Rc::new(RefCell::new(Scope {
        parent: def.outer.clone(),
        ..Scope::default()
    }));
    let this = ComponentInstance::new();
    let mut exports = HashMap::new();
    let mut parser = Parser::new(def.range.start as u64);
    let mut data = &wasm[def.range.clone()];
    let malformed = |e: wasmparser::BinaryReaderError| InstantiateError::Link(e.to_string());
    loop {
        let payload = match parser.parse(data, true).map_err(malformed)? {
            wasmparser::Chunk::Parsed { consumed, payload } => {
                data = &data[consumed..];
                payload
            }
            wasmparser::Chunk::NeedMoreData(_) => {
                return Err("internal error: truncated component".to_string().into());
            }
        };
        match payload {
            Payload::Version { .. } | Payload::CustomSection(_) | Payload::CoreTypeSection(_) => {}
            Payload::ModuleSection {
                unchecked_range, ..
            } => {
                let range = unchecked_range.start as usize..unchecked_range.end as usize;
                data = &data[range.len()..];
                scope.borrow_mut().modules.push(ModuleDef { range });
            }
            Payload::ComponentSection {
                unchecked_range, ..
            } => {
                let range = unchecked_range.start as usize..unchecked_range.end as usize;
                data = &data[range.len()..];
                scope.borrow_mut().components.push(Rc::new(ComponentDef {
                    range,
                    outer: Some(scope.clone()),
                }));
            }
            Payload::ComponentTypeSection(reader) => {
                for ty in reader {
                    let ty = ty.map_err(malformed)?;
                    let mut s = scope.borrow_mut();
                    let index = s.types.len() as u32;
                    let value = match ty {
                        ComponentType::Resource { rep, dtor } => {
                            if rep != wasmparser::ValType::I32 {
                                return Err(format!("resources represented as {rep}").into());
                            }
                            let dtor = match dtor {
                                Some(i) => Some(
                                    s.core_funcs.get(i as usize).cloned().ok_or("dtor index")?,
                                ),
                                None => None,
                            };
                            Some(ResourceType::new(dtor, this.clone()))
                        }
                        _ => None,
                    };
                    s.types.push(value);
                    s.bind_type(types, index);
                }
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    let import = import.map_err(malformed)?;
                    let name = import.name.name;
                    let item = args
                        .get(name)
                        .cloned()
                        .ok_or_else(|| format!("component import `{name}` is not satisfied"))?;
                    scope.borrow_mut().push_bound(types, item);
                }
            }
            Payload::InstanceSection(reader) => {
                for instance in reader {
                    let instance = instance.map_err(malformed)?;
                    let inst = match instance {
                        wasmparser::Instance::Instantiate { module_index, args } => {
                            let (module, bound) = {
                                let s = scope.borrow();
                                let module = s
                                    .modules
                                    .get(module_index as usize)
                                    .cloned()
                                    .ok_or("module index")?;
                                let mut bound = HashMap::new();
                                for arg in args.iter() {
                                    let inst = s
                                        .core_instances
                                        .get(arg.index as usize)
                                        .cloned()
                                        .ok_or("core instance index")?;
                                    bound.insert(arg.name.to_string(), inst);
                                }
                                (module, bound)
                            };
                            instantiate_core(loaded, &module, &bound)?
                        }
                        wasmparser::Instance::FromExports(items) => {
                            let s = scope.borrow();
                            let mut bag = HashMap::new();
                            for export in items.iter() {
                                bag.insert(
                                    export.name.to_string(),
                                    s.core_item(export.kind, export.index)?,
                                );
                            }
                            CoreInst::Bag(Rc::new(bag))
                        }
                    };
                    scope.borrow_mut().core_instances.push(inst);
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for alias in reader {
                    let alias = alias.map_err(malformed)?;
                    let mut s = scope.borrow_mut();
                    match alias {
                        ComponentAlias::CoreInstanceExport {
                            instance_index,
                            name,
                            ..
                        } => {
                            let inst = s
                                .core_instances
                                .get(instance_index as usize)
                                .ok_or("core instance index")?;
                            let item = inst
                                .export(name)
                                .ok_or_else(|| format!("core instance has no export `{name}`"))?;
                            s.push_core(item);
                        }
                        ComponentAlias::InstanceExport {
                            kind,
                            instance_index,
                            name,
                        } => {
                            let inst = s
                                .instances
                                .get(instance_index as usize)
                                .ok_or("instance index")?;
                            let item = inst
                                .get(name)
                                .cloned()
                                .ok_or_else(|| format!("instance has no export `{name}`"))?;
                            if item.kind() != kind_name(kind) {
                                return Err(format!("export `{name}` is not a {kind:?}").into());
                            }
                            s.push_bound(types, item);
                        }
                        ComponentAlias::Outer { kind, count, index } => {
                            if kind == ComponentOuterAliasKind::CoreType {
                                continue;
                            }
                            let item = if count == 0 {
                                s.aliasable(kind, index)?
                            } else {
                                let mut outer = s.parent.clone();
                                for _ in 1..count {
                                    outer = outer.and_then(|o| o.borrow().parent.clone());
                                }
                                let outer = outer.ok_or("outer alias count")?;
                                let outer = outer.borrow();
                                outer.aliasable(kind, index)?
                            };
                            s.push_bound(types, item);
                        }
                    }
                }
            }
            Payload::ComponentCanonicalSection(reader) => {
                for canon in reader {
                    let canon = canon.map_err(malformed)?;
                    canonical(canon, &scope, types, &this)?;
                }
            }
            Payload::ComponentInstanceSection(reader) => {
                for instance in reader {
                    let inst = match instance.map_err(malformed)? {
                        wasmparser::ComponentInstance::Instantiate {
                            component_index,
                            args,
                        } => {
                            let (component, bound) = {
                                let s = scope.borrow();
                                let component = s
                                    .components
                                    .get(component_index as usize)
                                    .cloned()
                                    .ok_or("component index")?;
                                let mut bound = HashMap::new();
                                for arg in args.iter() {
                                    bound
                                        .insert(arg.name.to_string(), s.item(arg.kind, arg.index)?);
                                }
                                (component, bound)
                            };
                            walk(loaded, &component, &bound)?
                        }
                        wasmparser::ComponentInstance::FromExports(items) => {
                            let s = scope.borrow();
                            let mut bag = HashMap::new();
                            for export in items.iter() {
                                bag.insert(
                                    export.name.name.to_string(),
                                    s.item(export.kind, export.index)?,
                                );
                            }
                            bag
                        }
                    };
                    scope
                        .borrow_mut()
                        .push_bound(types, Item::Instance(Rc::new(inst)));
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(malformed)?;
                    let mut s = scope.borrow_mut();
                    let item = s.item(export.kind, export.index)?;
                    s.push_bound(types, item.clone());
                    exports.insert(export.name.name.to_string(), item);
                }
            }
            Payload::ComponentStartSection { .. } => {
                return Err("component start functions are not supported"
                    .to_string()
                    .into());
            }
            Payload::End(_) => return Ok(exports),
            other => {
                return Err(format!(
                    "component section {:?} is not supported",
                    other.as_section().map(|(id, _)| id)
                )
                .into());
            }
        }
    }
}

fn kind_name(kind: ComponentExternalKind) -> &'static str {
    match kind {
        ComponentExternalKind::Func => "func",
        ComponentExternalKind::Instance => "instance",
        ComponentExternalKind::Component => "component",
        ComponentExternalKind::Module => "module",
        ComponentExternalKind::Type => "type",
        ComponentExternalKind::Value => "value",
    }
}

/// Runs one `canon` definition.
fn canonical(
    canon: CanonicalFunction,
    scope: &Rc<RefCell<Scope>>,
    types: TypesRef<'_>,
    this: &Rc<ComponentInstance>,
) -> Result<(), InstantiateError> {
    let resource_at = |s: &Scope, index: u32| -> Result<Rc<ResourceType>, String> {
        s.types
            .get(index as usize)
            .cloned()
            .flatten()
            .ok_or_else(|| format!("type {index} is not a resource type"))
    };
    let mut s = scope.borrow_mut();
    match canon {
        CanonicalFunction::Lift {
            core_func_index,
            type_index,
            options,
        } => {
            let core = s
                .core_funcs
                .get(core_func_index as usize)
                .cloned()
                .ok_or("core func index")?;
            if type_index >= types.component_type_count() {
                return Err(format!("type index {type_index} out of bounds").into());
            }
            let ComponentAnyTypeId::Func(id) = types.component_any_type_at(type_index) else {
                return Err("canon lift of a non-function type".to_string().into());
            };
            let fty = &types[id];
            if fty.async_ {
                return Err("async functions are not supported".to_string().into());
            }
            let params = fty
                .params
                .iter()
                .map(|(n, t)| Ok((n.to_string(), ctype(&s, types, *t)?)))
                .collect::<Result<Vec<_>, String>>()?;
            let result = fty.result.map(|t| ctype(&s, types, t)).transpose()?;
            let opts = options_of(&s, &options)?;
            s.funcs.push(Rc::new(ComponentFunc {
                core,
                params,
                result,
                opts,
                instance: this.clone(),
            }));
        }
        CanonicalFunction::Lower {
            func_index,
            options,
        } => {
            let callee = s
                .funcs
                .get(func_index as usize)
                .cloned()
                .ok_or("func index")?;
            if func_index >= types.component_function_count() {
                return Err(format!("function index {func_index} out of bounds").into());
            }
            let fty = &types[types.component_function_at(func_index)];
            let params = fty
                .params
                .iter()
                .map(|(_, t)| ctype(&s, types, *t))
                .collect::<Result<Vec<_>, String>>()?;
            let result = fty.result.map(|t| ctype(&s, types, t)).transpose()?;
            let opts = options_of(&s, &options)?;
            let host = call::lower(callee, params, result, opts, this.clone());
            s.core_funcs.push(CoreFunc::Host(Rc::new(host)));
        }
        CanonicalFunction::ResourceNew { resource } => {
            let r = resource_at(&s, resource)?;
            s.core_funcs
                .push(CoreFunc::Host(Rc::new(call::resource_new(r, this.clone()))));
        }
        CanonicalFunction::ResourceDrop { resource } => {
            let r = resource_at(&s, resource)?;
            s.core_funcs
                .push(CoreFunc::Host(Rc::new(call::resource_drop(
                    r,
                    this.clone(),
                ))));
        }
        CanonicalFunction::ResourceRep { resource } => {
            let r = resource_at(&s, resource)?;
            s.core_funcs
                .push(CoreFunc::Host(Rc::new(call::resource_rep(r, this.clone()))));
        }
        other => {
            let what = format!("{other:?}");
            let what = what.split([' ', '{', '(']).next().unwrap_or("").to_string();
            return Err(format!("the canonical built-in `{what}` is not supported").into());
        }
    }
    Ok(())
}

fn options_of(s: &Scope, options: &[CanonicalOption]) -> Result<call::Options, String> {
    let mut opts = call::Options::default();
    for option in options {
        match *option {
            CanonicalOption::UTF8 => opts.encoding = call::Encoding::Utf8,
            CanonicalOption::UTF16 => opts.encoding = call::Encoding::Utf16,
            CanonicalOption::CompactUTF16 => opts.encoding = call::Encoding::Latin1Utf16,
            CanonicalOption::Memory(i) => {
                opts.memory = Some(
                    s.core_memories
                        .get(i as usize)
                        .cloned()
                        .ok_or("memory index")?,
                );
            }
            CanonicalOption::Realloc(i) => {
                match s.core_funcs.get(i as usize).cloned().ok_or("func index")? {
                    CoreFunc::Wasm(f) => opts.realloc = Some(f),
                    CoreFunc::Host(_) => {
                        return Err("a host function as realloc is not supported".into());
                    }
                }
            }
            CanonicalOption::PostReturn(i) => {
                opts.post_return = Some(s.core_funcs.get(i as usize).cloned().ok_or("func index")?);
            }
            _ => return Err(format!("canonical option {option:?} is not supported")),
        }
    }
    Ok(opts)
}

/// The harness's type of a component value type, with run-time resource identities.
fn ctype(s: &Scope, types: TypesRef<'_>, ty: ComponentValType) -> Result<CType, String> {
    use wasmparser::component_types::ComponentDefinedType as D;
    let id = match ty {
        ComponentValType::Primitive(p) => return Ok(CType::Prim(p)),
        ComponentValType::Type(id) => id,
    };
    let resource = |id: ResourceId| {
        s.resource(id)
            .ok_or_else(|| "a handle of a resource type the instantiator did not bind".to_string())
    };
    Ok(match &types[id] {
        D::Primitive(p) => CType::Prim(*p),
        D::Record(r) => CType::Record(
            r.fields
                .iter()
                .map(|(n, t)| Ok((n.to_string(), ctype(s, types, *t)?)))
                .collect::<Result<_, String>>()?,
        ),
        D::Variant(v) => CType::Variant(
            v.cases
                .iter()
                .map(|(n, c)| Ok((n.to_string(), c.ty.map(|t| ctype(s, types, t)).transpose()?)))
                .collect::<Result<_, String>>()?,
        ),
        D::List { element, .. } => CType::List(Box::new(ctype(s, types, *element)?)),
        D::Tuple(t) => CType::Tuple(
            t.types
                .iter()
                .map(|t| ctype(s, types, *t))
                .collect::<Result<_, String>>()?,
        ),
        D::Flags(names) => {
            if names.len() > 32 {
                return Err("flags types with more than 32 flags are not supported".into());
            }
            CType::Flags(names.iter().map(|n| n.to_string()).collect())
        }
        D::Enum(names) => CType::Enum(names.iter().map(|n| n.to_string()).collect()),
        D::Option { ty, .. } => CType::Option(Box::new(ctype(s, types, *ty)?)),
        D::Result { ok, err, .. } => CType::Result {
            ok: ok.map(|t| ctype(s, types, t).map(Box::new)).transpose()?,
            err: err.map(|t| ctype(s, types, t).map(Box::new)).transpose()?,
        },
        D::Own(id) => CType::Own(resource(id.resource())?),
        D::Borrow(id) => CType::Borrow(resource(id.resource())?),
        D::Map { key, value, .. } => CType::Map(
            Box::new(ctype(s, types, *key)?),
            Box::new(ctype(s, types, *value)?),
        ),
        D::FixedLengthList { .. } => return Err("fixed-length list types are not supported".into()),
        D::Future { .. } | D::Stream { .. } => {
            return Err("future and stream types (the async ABI) are not supported".into());
        }
    })
}

/// Host state of a core instance: the host function each stubbed function import
/// is bound to, by function import index.
struct ImportCalls {
    calls: Vec<Option<(FuncType, CoreFunc)>>,
}

/// Instantiates core module `module` with its imports taken from `args`. A
/// function import bound to a host function (a lowering, a built-in) gets an array
/// host stub; one bound to another core instance's function is linked to it
/// directly, as in a core module (so exceptions, multiple results and function
/// identity work as between core modules). The module is built for that split.
fn instantiate_core(
    loaded: &Rc<Loaded>,
    module: &ModuleDef,
    args: &HashMap<String, CoreInst>,
) -> Result<CoreInst, InstantiateError> {
    let info = loaded.info(module)?;
    let mut calls = Vec::new();
    let mut stubs = Vec::new();
    let mut externs = Vec::with_capacity(info.imports.len());
    for import in &info.imports {
        let item = args
            .get(&import.module)
            .ok_or_else(|| {
                format!(
                    "unknown import: no instance `{}` for `{}`",
                    import.module, import.name
                )
            })?
            .export(&import.name)
            .ok_or_else(|| {
                format!(
                    "unknown import: `{}` has no export `{}`",
                    import.module, import.name
                )
            })?;
        let ext = match (&import.kind, item) {
            (ImportKind::Func { type_index }, CoreItem::Func(f)) => {
                let ty = info.types[*type_index as usize].clone();
                if !same_signature(&ty, f.ty()) {
                    return Err(format!(
                        "incompatible import type for `{}` `{}`: function signature mismatch",
                        import.module, import.name
                    )
                    .into());
                }
                let func_import = calls.len() as u32;
                match f {
                    CoreFunc::Wasm(f) => {
                        calls.push(None);
                        Extern::Func(f)
                    }
                    host @ CoreFunc::Host(_) => {
                        stubs.push(func_import);
                        calls.push(Some((ty.clone(), host)));
                        Extern::HostFunc(HostFunc {
                            ty,
                            code: import_entry as *const u8,
                        })
                    }
                }
            }
            (_, CoreItem::Memory(m)) => Extern::Memory(m),
            (_, CoreItem::Table(t)) => Extern::Table(t),
            (_, CoreItem::Global(g)) => Extern::Global(g),
            (_, CoreItem::Tag(t)) => Extern::Tag(t),
            (_, CoreItem::Func(_)) => {
                return Err(format!(
                    "incompatible import type for `{}` `{}`",
                    import.module, import.name
                )
                .into());
            }
        };
        externs.push(Some(ext));
    }
    let all = stubs.len() == calls.len();
    let module = loaded.module(module, stubs, all)?;
    let mut position = 0;
    let mut resolver = |_: &wasmc_abi::Import| {
        position += 1;
        externs[position - 1].take()
    };
    match InstanceHandle::new(module, &mut resolver, Some(Box::new(ImportCalls { calls }))) {
        Ok(instance) => Ok(CoreInst::Wasm(instance)),
        Err(InstantiationError::Trap(trap)) => Err(InstantiateError::Trap(Fail::from_trap(trap))),
        Err(e) => Err(InstantiateError::Link(e.to_string())),
    }
}

fn same_signature(a: &FuncType, b: &FuncType) -> bool {
    a.params == b.params && a.results == b.results
}

thread_local! {
    /// The message of a [`Fail`] being raised through wasm frames as a trap, taken
    /// back by [`Fail::from_trap`] where the trap is caught.
    static PENDING: RefCell<Option<String>> = const { RefCell::new(None) };
}

impl Fail {
    /// A trap caught from wasm: with the message of the `Fail` that raised it, if a
    /// host function did.
    pub fn from_trap(trap: TrapInfo) -> Fail {
        let pending = PENDING.with(|p| p.borrow_mut().take());
        // A realloc that trapped inside the engine leaves its kind behind; it was
        // reported already.
        wasmc_runtime::component::canonical::GUEST_TRAP.with(|t| t.set(None));
        Fail {
            trap: trap.trap,
            message: pending.unwrap_or_else(|| trap.message().to_string()),
        }
    }
}

/// The host entry of every function import of a component's core instance.
extern "C" fn import_entry(vmctx: *mut u8, import: u32, values: *mut ValRaw) {
    // Everything that owns memory lives in `dispatch`'s frame, which has returned
    // before the trap unwinds the frames above this one.
    if let Err(fail) = dispatch(vmctx, import, values) {
        let trap = fail.trap;
        PENDING.with(|p| *p.borrow_mut() = Some(fail.message));
        wasmc_runtime::traps::raise_host_trap(trap);
    }
}

fn dispatch(vmctx: *mut u8, import: u32, values: *mut ValRaw) -> Result<(), Fail> {
    // SAFETY: only array host stubs call this, with their own context.
    let mut caller = unsafe { wasmc_runtime::caller::Caller::from_vmctx(vmctx) };
    let (ty, func) = caller
        .host_state::<ImportCalls>()
        .and_then(|c| c.calls.get(import as usize).cloned().flatten())
        .ok_or_else(|| Fail::new("internal error: unbound import"))?;
    let slots = ty.params.len().max(ty.results.len()).max(1);
    // SAFETY: the stub passes `max(params, results, 1)` 16-byte slots.
    let raw = unsafe { std::slice::from_raw_parts_mut(values, slots) };
    let args: Vec<Val> = ty
        .params
        .iter()
        .zip(raw.iter())
        .map(|(t, r)| from_raw(*t, *r))
        .collect();
    let results = func.call(&args)?;
    if results.len() != ty.results.len() {
        return Err(Fail::new("internal error: host function result count"));
    }
    for (slot, v) in raw.iter_mut().zip(&results) {
        *slot = to_raw(v);
    }
    Ok(())
}

fn from_raw(ty: ValType, raw: ValRaw) -> Val {
    match ty {
        ValType::I32 => Val::I32(raw as u32 as i32),
        ValType::I64 => Val::I64(raw as u64 as i64),
        ValType::F32 => Val::F32(raw as u32),
        ValType::F64 => Val::F64(raw as u64),
        ValType::V128 => Val::V128(raw),
        ValType::ExternRef => Val::ExternRef(raw as usize),
        ValType::FuncRef | ValType::Ref(_) => Val::FuncRef(raw as usize),
    }
}

fn to_raw(v: &Val) -> ValRaw {
    match *v {
        Val::I32(x) => u128::from(x as u32),
        Val::I64(x) => u128::from(x as u64),
        Val::F32(x) => u128::from(x),
        Val::F64(x) => u128::from(x),
        Val::V128(x) => x,
        Val::FuncRef(x) | Val::ExternRef(x) => x as u128,
    }
}
