//! WASI 0.2 command components: flattening at compile time.
//!
//! 1. The component is validated with wasmparser's component validator.
//! 2. [`flatten`] walks its sections once, keeping every index space (core modules,
//!    core instances, core functions, memories, tables, globals; component functions,
//!    instances and nested components) as *definitions*: a core item is an export
//!    of a planned core instance or a host lowering; a component function is a host
//!    import or a lift of a core function. Nested components are walked the same way
//!    with their imports bound to the instantiating arguments, so a component that
//!    only re-exports (wit-component's `wasi:cli/run` shim) costs nothing at run time.
//! 3. The result is one [`ComponentPlan`]: the core instances in instantiation order,
//!    each import bound to an earlier export or a lowering, the lowerings with their
//!    WIT types and options, and the core function lifted as `wasi:cli/run#run`.
//! 4. Each core module is compiled by the ordinary pipeline into an object of its own
//!    (descriptor `wasmc_component_module_N`; lowered imports get array host stubs),
//!    and one more object carries the plan in the `wasmc_module` descriptor.
//!
//! Every WASI import is checked against the WIT of WASI 0.2 ([`wit_check`]): a
//! function that is not in it or has another type is refused with both types.
//! Anything outside what the runtime implements is refused here with a message
//! naming it: WASI interfaces other than those in
//! `wasmc_abi::component::WASI_P2_HOST_FUNCTIONS`, the async ABI (WASI 0.3),
//! imported core modules, components exporting something else than
//! `wasi:cli/run`, resources defined by the component, and canonical built-ins
//! beyond `resource.drop` of a host resource.

use std::collections::HashMap;
use std::ops::Range;

use wasmc_abi::component::{
    ComponentPlan, CoreDef, CoreExport, CoreInstance, Lowering, LoweringKind, StringEncoding,
    WitType, wasi_p2_host_functions, wasi_p2_interface,
};
use wasmc_abi::{ImportKind, ModuleInfo};
use wasmparser::component_types::{
    ComponentAnyTypeId, ComponentDefinedType, ComponentEntityType, ComponentValType, ResourceId,
};
use wasmparser::types::TypesRef;
use wasmparser::{
    CanonicalFunction, CanonicalOption, ComponentAlias, ComponentExternalKind,
    ComponentOuterAliasKind, ComponentTypeRef, ExternalKind, Parser, Payload, PrimitiveValType,
    Validator, WasmFeatures,
};

use crate::{CompileError, CompileErrorKind, CompileOptions};

mod wit_check;

/// The result of [`compile_component`]: objects to link together.
pub struct CompiledComponent {
    /// One object per core module, then the object with the `wasmc_module` descriptor.
    pub objects: Vec<Vec<u8>>,
    pub plan: ComponentPlan,
}

impl std::fmt::Debug for CompiledComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledComponent")
            .field("objects", &self.objects.len())
            .field("plan", &self.plan)
            .finish()
    }
}

/// Whether `wasm` is a component binary (rather than a core module).
pub fn is_component(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && wasm.starts_with(b"\0asm") && wasm[4..8] == [0x0d, 0x00, 0x01, 0x00]
}

/// Validates, flattens and compiles a command component.
pub fn compile_component(
    wasm: &[u8],
    opts: &CompileOptions,
) -> Result<CompiledComponent, CompileError> {
    let (plan, modules) = flatten_component(wasm)?;
    let mut objects = Vec::with_capacity(modules.len() + 1);
    let mut symbols = Vec::with_capacity(modules.len());
    for (index, module) in modules.iter().enumerate() {
        let symbol = format!("wasmc_component_module_{index}");
        let compiled = crate::compile_core(
            &wasm[module.range.clone()],
            opts,
            &symbol,
            &module.array_host_imports,
            &crate::Progress::default(),
        )
        .map_err(|mut e| {
            e.message = format!("core module {index} of the component: {}", e.message);
            e.offset = e.offset.map(|o| o + module.range.start);
            e
        })?;
        objects.push(compiled.object);
        symbols.push(symbol);
    }
    let isa = crate::isa::build(opts)?;
    objects.push(crate::object::component_descriptor_object(
        isa,
        plan.serialize(),
        &symbols,
        opts.policy.as_ref(),
    )?);
    Ok(CompiledComponent { objects, plan })
}

/// A core module of the component as the plan uses it.
pub(crate) struct PlannedModule {
    /// Its bytes within the component binary.
    pub range: Range<usize>,
    /// Function import indices bound to host lowerings.
    pub array_host_imports: Vec<u32>,
}

/// Validates the component and builds its plan without compiling any code.
pub fn plan_component(wasm: &[u8]) -> Result<ComponentPlan, CompileError> {
    flatten_component(wasm).map(|(plan, _)| plan)
}

fn flatten_component(wasm: &[u8]) -> Result<(ComponentPlan, Vec<PlannedModule>), CompileError> {
    let features = WasmFeatures::default() | WasmFeatures::COMPONENT_MODEL;
    let types = Validator::new_with_features(features)
        .validate_all(wasm)
        .map_err(|e| CompileError::from_wasmparser(&e, CompileErrorKind::Invalid))?;
    let mut flattener = Flattener {
        wasm,
        types: types.as_ref(),
        resources: HashMap::new(),
        plan_instances: Vec::new(),
        lowerings: Vec::new(),
        modules: Vec::new(),
        module_infos: HashMap::new(),
    };
    flattener.name_host_resources()?;
    let exports = flattener.component(0..wasm.len(), &HashMap::new(), true)?;
    let run = flattener.run_export(&exports)?;
    let plan = ComponentPlan {
        instances: flattener.plan_instances,
        lowerings: flattener.lowerings,
        run: run.0,
        run_post_return: run.1,
    };
    Ok((plan, flattener.modules))
}

fn unsupported(message: impl Into<String>) -> CompileError {
    CompileError::new(CompileErrorKind::Unsupported, None, message)
}

/// A core item: what an import can be bound to.
#[derive(Clone, Debug)]
enum CoreItem {
    Def(CoreDef),
}

/// A core instance during flattening.
#[derive(Clone, Debug)]
enum CoreInst {
    /// Planned instance `n` of [`ComponentPlan::instances`].
    Planned(u32),
    /// `(core instance (export ...)*)`: a bag of items.
    Bag(HashMap<String, CoreItem>),
}

/// A component-level function.
#[derive(Clone, Debug)]
enum CompFunc {
    /// Function `name` of the imported WASI instance `interface` (versioned name).
    Host { interface: String, name: String },
    /// A lift of a core function (with its post-return).
    Lifted {
        core: CoreDef,
        post_return: Option<CoreDef>,
    },
}

/// A component-level instance.
#[derive(Clone, Debug)]
enum CompInst {
    /// An imported WASI interface instance (its versioned name).
    Host(String),
    /// Exports by name (instantiated nested components and `(instance (export ...))`).
    Bag(HashMap<String, CompItem>),
}

/// Anything a component can import, export or pass to a nested component.
#[derive(Clone, Debug)]
enum CompItem {
    Func(CompFunc),
    Instance(CompInst),
    Component(Range<usize>),
    Module(u32),
    /// Types carry no run-time state; their checks are the validator's.
    Type,
}

struct Flattener<'a> {
    wasm: &'a [u8],
    types: TypesRef<'a>,
    /// Host resource types by id: `wasi:io/streams/output-stream`.
    resources: HashMap<ResourceId, String>,
    plan_instances: Vec<CoreInstance>,
    lowerings: Vec<Lowering>,
    /// Core modules by their position in the binary (one per module section).
    modules: Vec<PlannedModule>,
    module_infos: HashMap<u32, ModuleInfo>,
}

/// The index spaces of one component being walked.
#[derive(Default)]
struct Spaces {
    modules: Vec<u32>,
    core_instances: Vec<CoreInst>,
    core_funcs: Vec<CoreItem>,
    core_memories: Vec<CoreItem>,
    core_tables: Vec<CoreItem>,
    core_globals: Vec<CoreItem>,
    funcs: Vec<CompFunc>,
    instances: Vec<CompInst>,
    components: Vec<Range<usize>>,
}

impl<'a> Flattener<'a> {
    /// Names every resource type exported by an imported WASI instance, and refuses
    /// imports the host does not provide or whose types differ from the WIT of WASI
    /// 0.2 (`wit_check`).
    fn name_host_resources(&mut self) -> Result<(), CompileError> {
        let mut parser = Parser::new(0);
        let mut data = self.wasm;
        let mut instance_index = 0u32;
        // (versioned name, interface, type) of every imported WASI instance.
        let mut host_imports = Vec::new();
        loop {
            let payload = match parser
                .parse(data, true)
                .map_err(|e| CompileError::from_wasmparser(&e, CompileErrorKind::Malformed))?
            {
                wasmparser::Chunk::Parsed { consumed, payload } => {
                    data = &data[consumed..];
                    payload
                }
                wasmparser::Chunk::NeedMoreData(_) => unreachable!("parsing the whole input"),
            };
            match payload {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => {
                    // The parser has moved past the nested binary; the caller skips
                    // its bytes.
                    let skipped = match &payload {
                        Payload::ModuleSection {
                            unchecked_range, ..
                        }
                        | Payload::ComponentSection {
                            unchecked_range, ..
                        } => (unchecked_range.end - unchecked_range.start) as usize,
                        _ => 0,
                    };
                    data = &data[skipped..];
                }
                Payload::ComponentImportSection(reader) => {
                    for import in reader {
                        let import = import.map_err(|e| {
                            CompileError::from_wasmparser(&e, CompileErrorKind::Malformed)
                        })?;
                        let name = import.name.name;
                        match import.ty {
                            ComponentTypeRef::Instance(_) => {
                                let interface = host_interface(name)?;
                                let ty = self.types.component_instance_at(instance_index);
                                instance_index += 1;
                                let exports = &self.types[ty].exports;
                                for (export, item) in exports {
                                    if let ComponentEntityType::Type {
                                        created: ComponentAnyTypeId::Resource(id),
                                        ..
                                    } = item.ty
                                    {
                                        // The first interface that exports a resource
                                        // defines it; later ones alias it
                                        // (`wasi:io/streams` re-exports `pollable`).
                                        self.resources
                                            .entry(id.resource())
                                            .or_insert_with(|| format!("{interface}/{export}"));
                                    }
                                }
                                host_imports.push((name.to_string(), interface.to_string(), ty));
                            }
                            ComponentTypeRef::Module(_) => {
                                return Err(unsupported(format!(
                                    "the component imports a core module (`{name}`); \
                                     only components whose modules are all inside are supported"
                                )));
                            }
                            ComponentTypeRef::Type(_) => {}
                            _ => {
                                return Err(unsupported(format!(
                                    "the component imports `{name}`, which is not a WASI 0.2 \
                                     interface; only interface instances can be imported"
                                )));
                            }
                        }
                    }
                }
                Payload::ComponentAliasSection(reader) => {
                    for alias in reader {
                        let alias = alias.map_err(|e| {
                            CompileError::from_wasmparser(&e, CompileErrorKind::Malformed)
                        })?;
                        if let ComponentAlias::InstanceExport {
                            kind: ComponentExternalKind::Instance,
                            ..
                        } = alias
                        {
                            instance_index += 1;
                        }
                    }
                }
                Payload::ComponentInstanceSection(reader) => {
                    instance_index += reader.count();
                }
                Payload::ComponentExportSection(reader) => {
                    for export in reader.into_iter().flatten() {
                        if export.kind == ComponentExternalKind::Instance {
                            instance_index += 1;
                        }
                    }
                }
                Payload::End(_) => break,
                _ => {}
            }
        }
        // Once every host resource has its name: each import against the WIT.
        let wit = wit_check::WasiWit::get()?;
        let component_types = wit_check::ComponentTypes {
            types: self.types,
            resources: &self.resources,
        };
        for (import, interface, ty) in host_imports {
            let implemented =
                wasi_p2_host_functions(&interface).expect("checked by host_interface");
            component_types.check_import(wit, &import, &interface, ty, implemented)?;
        }
        Ok(())
    }

    /// Walks the component in `range` (the whole binary for the top level) with its
    /// imports bound to `args`, and returns its exports.
    fn component(
        &mut self,
        range: Range<usize>,
        args: &HashMap<String, CompItem>,
        top_level: bool,
    ) -> Result<HashMap<String, CompItem>, CompileError> {
        let malformed = |e: wasmparser::BinaryReaderError| {
            CompileError::from_wasmparser(&e, CompileErrorKind::Malformed)
        };
        let mut parser = Parser::new(range.start as u64);
        let mut data = &self.wasm[range.clone()];
        let mut spaces = Spaces::default();
        let mut exports = HashMap::new();
        loop {
            let payload = match parser.parse(data, true).map_err(malformed)? {
                wasmparser::Chunk::Parsed { consumed, payload } => {
                    data = &data[consumed..];
                    payload
                }
                wasmparser::Chunk::NeedMoreData(_) => unreachable!("parsing the whole input"),
            };
            match payload {
                Payload::Version { .. } | Payload::CustomSection(_) => {}
                Payload::ModuleSection {
                    unchecked_range, ..
                } => {
                    // The parser has moved past the nested binary; skip its bytes.
                    let unchecked_range =
                        unchecked_range.start as usize..unchecked_range.end as usize;
                    data = &data[unchecked_range.len()..];
                    let index = self.modules.len() as u32;
                    self.modules.push(PlannedModule {
                        range: unchecked_range,
                        array_host_imports: Vec::new(),
                    });
                    spaces.modules.push(index);
                }
                Payload::ComponentSection {
                    unchecked_range, ..
                } => {
                    // The parser has moved past the nested binary; skip its bytes.
                    let unchecked_range =
                        unchecked_range.start as usize..unchecked_range.end as usize;
                    data = &data[unchecked_range.len()..];
                    spaces.components.push(unchecked_range);
                }
                Payload::CoreTypeSection(_) | Payload::ComponentTypeSection(_) => {}
                Payload::ComponentImportSection(reader) => {
                    for import in reader {
                        let import = import.map_err(malformed)?;
                        let name = import.name.name;
                        let item = if top_level {
                            match import.ty {
                                ComponentTypeRef::Instance(_) => {
                                    CompItem::Instance(CompInst::Host(name.to_string()))
                                }
                                ComponentTypeRef::Type(_) => CompItem::Type,
                                // Refused by `name_host_resources`.
                                _ => return Err(unsupported(format!("import `{name}`"))),
                            }
                        } else {
                            args.get(name).cloned().ok_or_else(|| {
                                unsupported(format!(
                                    "nested component import `{name}` is not supplied"
                                ))
                            })?
                        };
                        spaces.push(item);
                    }
                }
                Payload::InstanceSection(reader) => {
                    for instance in reader {
                        let instance = instance.map_err(malformed)?;
                        let inst = match instance {
                            wasmparser::Instance::Instantiate { module_index, args } => {
                                let module = *spaces
                                    .modules
                                    .get(module_index as usize)
                                    .ok_or_else(|| unsupported("core module index"))?;
                                let mut bound = HashMap::new();
                                for arg in args.iter() {
                                    let inst = spaces
                                        .core_instances
                                        .get(arg.index as usize)
                                        .cloned()
                                        .ok_or_else(|| unsupported("core instance index"))?;
                                    bound.insert(arg.name.to_string(), inst);
                                }
                                self.instantiate(module, &bound)?
                            }
                            wasmparser::Instance::FromExports(items) => {
                                let mut bag = HashMap::new();
                                for export in items.iter() {
                                    let item = spaces.core_item(export.kind, export.index)?;
                                    bag.insert(export.name.to_string(), item);
                                }
                                CoreInst::Bag(bag)
                            }
                        };
                        spaces.core_instances.push(inst);
                    }
                }
                Payload::ComponentAliasSection(reader) => {
                    for alias in reader {
                        match alias.map_err(malformed)? {
                            ComponentAlias::CoreInstanceExport {
                                kind,
                                instance_index,
                                name,
                            } => {
                                let inst = spaces
                                    .core_instances
                                    .get(instance_index as usize)
                                    .ok_or_else(|| unsupported("core instance index"))?;
                                let item = core_export(inst, name)?;
                                match kind {
                                    ExternalKind::Func | ExternalKind::FuncExact => {
                                        spaces.core_funcs.push(item)
                                    }
                                    ExternalKind::Memory => spaces.core_memories.push(item),
                                    ExternalKind::Table => spaces.core_tables.push(item),
                                    ExternalKind::Global => spaces.core_globals.push(item),
                                    ExternalKind::Tag => {
                                        return Err(unsupported(
                                            "core tags shared between a component's modules",
                                        ));
                                    }
                                }
                            }
                            ComponentAlias::InstanceExport {
                                kind,
                                instance_index,
                                name,
                            } => {
                                let inst = spaces
                                    .instances
                                    .get(instance_index as usize)
                                    .cloned()
                                    .ok_or_else(|| unsupported("instance index"))?;
                                let item = match (&inst, kind) {
                                    (CompInst::Host(_), ComponentExternalKind::Type) => {
                                        CompItem::Type
                                    }
                                    (CompInst::Host(interface), ComponentExternalKind::Func) => {
                                        CompItem::Func(CompFunc::Host {
                                            interface: interface.clone(),
                                            name: name.to_string(),
                                        })
                                    }
                                    (CompInst::Host(interface), _) => {
                                        return Err(unsupported(format!(
                                            "export `{name}` of `{interface}`"
                                        )));
                                    }
                                    (CompInst::Bag(bag), _) => {
                                        bag.get(name).cloned().ok_or_else(|| {
                                            unsupported(format!("instance export `{name}`"))
                                        })?
                                    }
                                };
                                spaces.push(item);
                            }
                            ComponentAlias::Outer { kind, .. } => match kind {
                                ComponentOuterAliasKind::CoreType
                                | ComponentOuterAliasKind::Type => {}
                                _ => {
                                    return Err(unsupported(
                                        "outer aliases of modules or components",
                                    ));
                                }
                            },
                        }
                    }
                }
                Payload::ComponentCanonicalSection(reader) => {
                    for canon in reader {
                        let canon = canon.map_err(malformed)?;
                        if !top_level {
                            return Err(unsupported(
                                "canonical functions inside a nested component",
                            ));
                        }
                        self.canonical(canon, &mut spaces)?;
                    }
                }
                Payload::ComponentInstanceSection(reader) => {
                    for instance in reader {
                        let inst = match instance.map_err(malformed)? {
                            wasmparser::ComponentInstance::Instantiate {
                                component_index,
                                args,
                            } => {
                                let range = spaces
                                    .components
                                    .get(component_index as usize)
                                    .cloned()
                                    .ok_or_else(|| unsupported("component index"))?;
                                let mut bound = HashMap::new();
                                for arg in args.iter() {
                                    bound.insert(
                                        arg.name.to_string(),
                                        spaces.item(arg.kind, arg.index)?,
                                    );
                                }
                                CompInst::Bag(self.component(range, &bound, false)?)
                            }
                            wasmparser::ComponentInstance::FromExports(items) => {
                                let mut bag = HashMap::new();
                                for export in items.iter() {
                                    bag.insert(
                                        export.name.name.to_string(),
                                        spaces.item(export.kind, export.index)?,
                                    );
                                }
                                CompInst::Bag(bag)
                            }
                        };
                        spaces.instances.push(inst);
                    }
                }
                Payload::ComponentExportSection(reader) => {
                    for export in reader {
                        let export = export.map_err(malformed)?;
                        let item = spaces.item(export.kind, export.index)?;
                        // An export also adds the item to its index space.
                        spaces.push(item.clone());
                        exports.insert(export.name.name.to_string(), item);
                    }
                }
                Payload::ComponentStartSection { .. } => {
                    return Err(unsupported("component start functions"));
                }
                Payload::End(_) => return Ok(exports),
                other => {
                    return Err(unsupported(format!(
                        "component section {:?}",
                        other.as_section().map(|(id, _)| id)
                    )));
                }
            }
        }
    }

    /// Plans the instantiation of core module `module` with `args`.
    fn instantiate(
        &mut self,
        module: u32,
        args: &HashMap<String, CoreInst>,
    ) -> Result<CoreInst, CompileError> {
        if !self.module_infos.contains_key(&module) {
            let range = self.modules[module as usize].range.clone();
            let info = crate::module_info(&self.wasm[range]).map_err(|mut e| {
                e.message = format!("core module {module} of the component: {}", e.message);
                e
            })?;
            self.module_infos.insert(module, info);
        }
        let info = &self.module_infos[&module];
        let mut imports = Vec::with_capacity(info.imports.len());
        let mut array_host_imports = Vec::new();
        let mut func_import = 0u32;
        for import in &info.imports {
            let inst = args.get(&import.module).ok_or_else(|| {
                unsupported(format!(
                    "core import module `{}` not supplied",
                    import.module
                ))
            })?;
            let CoreItem::Def(def) = core_export(inst, &import.name)?;
            if let ImportKind::Func { .. } = import.kind {
                if let CoreDef::Lowered(_) = def {
                    array_host_imports.push(func_import);
                }
                func_import += 1;
            } else if let CoreDef::Lowered(_) = def {
                return Err(unsupported(format!(
                    "core import `{}`.`{}` is bound to a function but is not one",
                    import.module, import.name
                )));
            }
            imports.push(def);
        }
        let planned = &mut self.modules[module as usize];
        if self
            .plan_instances
            .iter()
            .any(|i| matches!(i, CoreInstance::Module { module: m, .. } if *m == module))
            && planned.array_host_imports != array_host_imports
        {
            return Err(unsupported(
                "a core module instantiated twice with host functions bound differently",
            ));
        }
        planned.array_host_imports = array_host_imports;
        let index = self.plan_instances.len() as u32;
        self.plan_instances
            .push(CoreInstance::Module { module, imports });
        Ok(CoreInst::Planned(index))
    }

    fn canonical(
        &mut self,
        canon: CanonicalFunction,
        spaces: &mut Spaces,
    ) -> Result<(), CompileError> {
        match canon {
            CanonicalFunction::Lift {
                core_func_index,
                options,
                ..
            } => {
                let core = spaces.core_func(core_func_index)?;
                let opts = self.options(&options, spaces)?;
                spaces.funcs.push(CompFunc::Lifted {
                    core,
                    post_return: opts.post_return,
                });
            }
            CanonicalFunction::Lower {
                func_index,
                options,
            } => {
                let func = spaces
                    .funcs
                    .get(func_index as usize)
                    .cloned()
                    .ok_or_else(|| unsupported("function index"))?;
                let CompFunc::Host { interface, name } = func else {
                    return Err(unsupported(
                        "lowering a function the component itself lifts (adapter fusion)",
                    ));
                };
                let opts = self.options(&options, spaces)?;
                let ty = &self.types[self.types.component_function_at(func_index)];
                if ty.async_ {
                    return Err(unsupported(format!(
                        "`{name}` of `{interface}` is an async function (WASI 0.3)"
                    )));
                }
                let params = ty
                    .params
                    .iter()
                    .map(|(_, t)| self.wit_type(*t))
                    .collect::<Result<Vec<_>, _>>()?;
                let result = ty.result.map(|t| self.wit_type(t)).transpose()?;
                let unversioned = wasi_p2_interface(&interface).unwrap_or(&interface);
                let index = self.lowerings.len() as u32;
                self.lowerings.push(Lowering {
                    kind: LoweringKind::Host {
                        interface: unversioned.to_string(),
                        function: name,
                        params,
                        result,
                    },
                    memory: opts.memory,
                    realloc: opts.realloc,
                    encoding: opts.encoding,
                });
                spaces
                    .core_funcs
                    .push(CoreItem::Def(CoreDef::Lowered(index)));
            }
            CanonicalFunction::ResourceDrop { resource } => {
                let id = match self.types.component_any_type_at(resource) {
                    ComponentAnyTypeId::Resource(id) => id.resource(),
                    _ => return Err(unsupported("resource.drop of a non-resource type")),
                };
                let resource = self.resources.get(&id).cloned().ok_or_else(|| {
                    unsupported("resources defined by the component itself (resource.drop)")
                })?;
                let index = self.lowerings.len() as u32;
                self.lowerings.push(Lowering {
                    kind: LoweringKind::ResourceDrop { resource },
                    memory: None,
                    realloc: None,
                    encoding: StringEncoding::Utf8,
                });
                spaces
                    .core_funcs
                    .push(CoreItem::Def(CoreDef::Lowered(index)));
            }
            CanonicalFunction::ResourceNew { .. } | CanonicalFunction::ResourceRep { .. } => {
                return Err(unsupported(
                    "resources defined by the component itself (resource.new, resource.rep)",
                ));
            }
            other => {
                let what = format!("{other:?}");
                let what = what.split([' ', '{', '(']).next().unwrap_or("");
                return Err(unsupported(format!(
                    "the canonical built-in `{what}` (the async ABI of WASI 0.3, threads or GC \
                     are not supported)"
                )));
            }
        }
        Ok(())
    }

    fn options(
        &self,
        options: &[CanonicalOption],
        spaces: &Spaces,
    ) -> Result<CanonOptions, CompileError> {
        let mut opts = CanonOptions::default();
        for option in options {
            match *option {
                CanonicalOption::UTF8 => opts.encoding = StringEncoding::Utf8,
                CanonicalOption::UTF16 => opts.encoding = StringEncoding::Utf16,
                CanonicalOption::CompactUTF16 => opts.encoding = StringEncoding::Latin1Utf16,
                CanonicalOption::Memory(index) => {
                    let CoreItem::Def(def) = spaces
                        .core_memories
                        .get(index as usize)
                        .cloned()
                        .ok_or_else(|| unsupported("memory index"))?;
                    opts.memory = Some(export_of(def, "memory")?);
                }
                CanonicalOption::Realloc(index) => {
                    opts.realloc = Some(export_of(spaces.core_func(index)?, "realloc")?);
                }
                CanonicalOption::PostReturn(index) => {
                    opts.post_return = Some(spaces.core_func(index)?);
                }
                CanonicalOption::Async | CanonicalOption::Callback(_) => {
                    return Err(unsupported("the async ABI (WASI 0.3)"));
                }
                CanonicalOption::CoreType(_) | CanonicalOption::Gc => {
                    return Err(unsupported("the GC canonical ABI options"));
                }
            }
        }
        Ok(opts)
    }

    fn wit_type(&self, ty: ComponentValType) -> Result<WitType, CompileError> {
        let id = match ty {
            ComponentValType::Primitive(p) => return primitive(p),
            ComponentValType::Type(id) => id,
        };
        let resource = |id: ResourceId| {
            self.resources
                .get(&id)
                .cloned()
                .ok_or_else(|| unsupported("handles of resources the component defines"))
        };
        Ok(match &self.types[id] {
            ComponentDefinedType::Primitive(p) => primitive(*p)?,
            ComponentDefinedType::Record(r) => WitType::Record(
                r.fields
                    .values()
                    .map(|t| self.wit_type(*t))
                    .collect::<Result<_, _>>()?,
            ),
            ComponentDefinedType::Variant(v) => WitType::Variant(
                v.cases
                    .values()
                    .map(|c| c.ty.map(|t| self.wit_type(t)).transpose())
                    .collect::<Result<_, _>>()?,
            ),
            ComponentDefinedType::List { element, .. } => {
                WitType::List(Box::new(self.wit_type(*element)?))
            }
            ComponentDefinedType::Tuple(t) => WitType::Tuple(
                t.types
                    .iter()
                    .map(|t| self.wit_type(*t))
                    .collect::<Result<_, _>>()?,
            ),
            ComponentDefinedType::Flags(names) => {
                if names.len() > 32 {
                    return Err(unsupported("flags types with more than 32 flags"));
                }
                WitType::Flags(names.len() as u32)
            }
            ComponentDefinedType::Enum(names) => WitType::Enum(names.len() as u32),
            ComponentDefinedType::Option { ty, .. } => {
                WitType::Option(Box::new(self.wit_type(*ty)?))
            }
            ComponentDefinedType::Result { ok, err, .. } => WitType::Result {
                ok: ok.map(|t| self.wit_type(t).map(Box::new)).transpose()?,
                err: err.map(|t| self.wit_type(t).map(Box::new)).transpose()?,
            },
            ComponentDefinedType::Own(id) => WitType::Own(resource(id.resource())?),
            ComponentDefinedType::Borrow(id) => WitType::Borrow(resource(id.resource())?),
            ComponentDefinedType::Map { .. } | ComponentDefinedType::FixedLengthList { .. } => {
                return Err(unsupported("map and fixed-length list types"));
            }
            ComponentDefinedType::Future { .. } | ComponentDefinedType::Stream { .. } => {
                return Err(unsupported("future and stream types (WASI 0.3)"));
            }
        })
    }

    /// The core function lifted as `wasi:cli/run@0.2.x#run`, and its post-return.
    fn run_export(
        &self,
        exports: &HashMap<String, CompItem>,
    ) -> Result<(CoreExport, Option<CoreExport>), CompileError> {
        let mut run = None;
        for (name, item) in exports {
            match (wasi_p2_interface(name), item) {
                (Some("wasi:cli/run"), CompItem::Instance(CompInst::Bag(bag))) => {
                    run = bag.get("run").cloned();
                }
                _ => {
                    return Err(unsupported(format!(
                        "the component exports `{name}`; only WASI 0.2 commands (exporting \
                         `wasi:cli/run`) can be compiled to executables"
                    )));
                }
            }
        }
        let Some(CompItem::Func(CompFunc::Lifted { core, post_return })) = run else {
            return Err(unsupported(
                "the component does not export `wasi:cli/run@0.2.x` with a `run` function; \
                 only WASI 0.2 commands can be compiled to executables",
            ));
        };
        Ok((
            export_of(core, "run")?,
            post_return
                .map(|p| export_of(p, "post-return"))
                .transpose()?,
        ))
    }
}

#[derive(Default)]
struct CanonOptions {
    encoding: StringEncoding,
    memory: Option<CoreExport>,
    realloc: Option<CoreExport>,
    post_return: Option<CoreDef>,
}

impl Spaces {
    fn push(&mut self, item: CompItem) {
        match item {
            CompItem::Func(f) => self.funcs.push(f),
            CompItem::Instance(i) => self.instances.push(i),
            CompItem::Component(c) => self.components.push(c),
            CompItem::Module(m) => self.modules.push(m),
            CompItem::Type => {}
        }
    }

    fn item(&self, kind: ComponentExternalKind, index: u32) -> Result<CompItem, CompileError> {
        let missing = || unsupported(format!("{kind:?} index {index}"));
        Ok(match kind {
            ComponentExternalKind::Func => CompItem::Func(
                self.funcs
                    .get(index as usize)
                    .cloned()
                    .ok_or_else(missing)?,
            ),
            ComponentExternalKind::Instance => CompItem::Instance(
                self.instances
                    .get(index as usize)
                    .cloned()
                    .ok_or_else(missing)?,
            ),
            ComponentExternalKind::Component => CompItem::Component(
                self.components
                    .get(index as usize)
                    .cloned()
                    .ok_or_else(missing)?,
            ),
            ComponentExternalKind::Module => {
                CompItem::Module(*self.modules.get(index as usize).ok_or_else(missing)?)
            }
            ComponentExternalKind::Type => CompItem::Type,
            ComponentExternalKind::Value => return Err(unsupported("component values")),
        })
    }

    fn core_item(&self, kind: ExternalKind, index: u32) -> Result<CoreItem, CompileError> {
        let space = match kind {
            ExternalKind::Func | ExternalKind::FuncExact => &self.core_funcs,
            ExternalKind::Memory => &self.core_memories,
            ExternalKind::Table => &self.core_tables,
            ExternalKind::Global => &self.core_globals,
            ExternalKind::Tag => return Err(unsupported("core tags in a component")),
        };
        space
            .get(index as usize)
            .cloned()
            .ok_or_else(|| unsupported(format!("core {kind:?} index {index}")))
    }

    fn core_func(&self, index: u32) -> Result<CoreDef, CompileError> {
        let CoreItem::Def(def) = self.core_item(ExternalKind::Func, index)?;
        Ok(def)
    }
}

fn core_export(inst: &CoreInst, name: &str) -> Result<CoreItem, CompileError> {
    match inst {
        CoreInst::Planned(instance) => Ok(CoreItem::Def(CoreDef::Export(CoreExport {
            instance: *instance,
            name: name.to_string(),
        }))),
        CoreInst::Bag(bag) => bag
            .get(name)
            .cloned()
            .ok_or_else(|| unsupported(format!("core instance export `{name}`"))),
    }
}

fn export_of(def: CoreDef, what: &str) -> Result<CoreExport, CompileError> {
    match def {
        CoreDef::Export(export) => Ok(export),
        CoreDef::Lowered(_) => Err(unsupported(format!(
            "a host function used as the {what} of a canonical function"
        ))),
    }
}

/// The WASI 0.2 interface an import names, or the refusal naming it.
fn host_interface(name: &str) -> Result<&str, CompileError> {
    let Some(interface) = wasi_p2_interface(name) else {
        if name.contains("@0.3") {
            return Err(unsupported(format!(
                "the component imports `{name}`: WASI 0.3 (the async ABI) is not supported"
            )));
        }
        return Err(unsupported(format!(
            "the component imports `{name}`, which is not a WASI 0.2 interface"
        )));
    };
    if wasi_p2_host_functions(interface).is_none() {
        return Err(unsupported(format!(
            "the component imports `{name}`, which wasmc's WASI 0.2 host does not provide \
             yet (supported: wasi:cli, wasi:io, wasi:clocks, wasi:random, wasi:filesystem)"
        )));
    }
    Ok(interface)
}

fn primitive(p: PrimitiveValType) -> Result<WitType, CompileError> {
    primitive_wit_type(p)
        .ok_or_else(|| unsupported("error-context values (the async ABI of WASI 0.3)"))
}

/// The canonical ABI engine's type of a primitive value type; `None` for
/// `error-context`, which belongs to the async ABI the engine does not implement.
pub fn primitive_wit_type(p: PrimitiveValType) -> Option<WitType> {
    Some(match p {
        PrimitiveValType::Bool => WitType::Bool,
        PrimitiveValType::S8 => WitType::S8,
        PrimitiveValType::U8 => WitType::U8,
        PrimitiveValType::S16 => WitType::S16,
        PrimitiveValType::U16 => WitType::U16,
        PrimitiveValType::S32 => WitType::S32,
        PrimitiveValType::U32 => WitType::U32,
        PrimitiveValType::S64 => WitType::S64,
        PrimitiveValType::U64 => WitType::U64,
        PrimitiveValType::F32 => WitType::F32,
        PrimitiveValType::F64 => WitType::F64,
        PrimitiveValType::Char => WitType::Char,
        PrimitiveValType::String => WitType::String,
        PrimitiveValType::ErrorContext => return None,
    })
}
