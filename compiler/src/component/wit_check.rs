//! Compile-time type check of a component's WASI imports against the WIT of WASI 0.2.
//!
//! The contract of wasmc's WASI 0.2 host is the WIT of WASI 0.2.12, vendored in
//! `compiler/wit/wasi-0.2.12/` and parsed here with `wit-parser` (once per process).
//! Every WASI instance a component imports is checked export by export, as
//! wasmtime's linker does when it instantiates a component:
//!
//! * a function must exist in that interface of WASI 0.2.12 (any 0.2.x import is
//!   matched against 0.2.12 by semver: 0.2 patch releases only add) and have the
//!   exact type the WIT gives it (parameter names aside, as wasmtime);
//! * a type export must exist; a resource must be the WIT's resource (a `use`d one
//!   such as `pollable` in `wasi:io/streams` is `wasi:io/poll`'s), and any other type
//!   must equal the WIT's, with record field, case, enum and flag names.
//!
//! Both sides are rendered into the same text (`record { a: u32 }`, `own<wasi:io/
//! streams/output-stream>`, …) and compared, so the refusal can show what the WIT
//! expects and what the component declares.

use std::collections::HashMap;
use std::sync::OnceLock;

use wasmparser::component_types::{
    ComponentAnyTypeId, ComponentDefinedType, ComponentEntityType, ComponentFuncType,
    ComponentInstanceTypeId, ComponentValType, ResourceId,
};
use wasmparser::types::TypesRef;
use wit_parser::{Function, Handle, InterfaceId, Resolve, Type, TypeDefKind, TypeId, TypeOwner};

use crate::{CompileError, CompileErrorKind};

/// The version of the vendored WIT.
pub(crate) const WASI_WIT_VERSION: &str = "0.2.12";

/// The WIT packages, in dependency order (each only `use`s earlier ones).
const WIT_SOURCES: &[(&str, &str)] = &[
    ("io.wit", include_str!("../../wit/wasi-0.2.12/io.wit")),
    (
        "clocks.wit",
        include_str!("../../wit/wasi-0.2.12/clocks.wit"),
    ),
    (
        "random.wit",
        include_str!("../../wit/wasi-0.2.12/random.wit"),
    ),
    (
        "sockets.wit",
        include_str!("../../wit/wasi-0.2.12/sockets.wit"),
    ),
    (
        "filesystem.wit",
        include_str!("../../wit/wasi-0.2.12/filesystem.wit"),
    ),
    ("cli.wit", include_str!("../../wit/wasi-0.2.12/cli.wit")),
];

/// The parsed WIT of WASI 0.2.12.
pub(crate) struct WasiWit {
    resolve: Resolve,
    /// Interfaces by unversioned name (`wasi:io/streams`).
    interfaces: HashMap<String, InterfaceId>,
}

impl WasiWit {
    /// The WIT, parsed on first use.
    pub(crate) fn get() -> Result<&'static WasiWit, CompileError> {
        static WIT: OnceLock<Result<WasiWit, String>> = OnceLock::new();
        WIT.get_or_init(WasiWit::parse).as_ref().map_err(|e| {
            CompileError::new(
                CompileErrorKind::Unsupported,
                None,
                format!("internal error: the vendored WASI {WASI_WIT_VERSION} WIT: {e}"),
            )
        })
    }

    fn parse() -> Result<WasiWit, String> {
        let mut resolve = Resolve::default();
        for (file, source) in WIT_SOURCES {
            resolve
                .push_source(file, source)
                .map_err(|e| format!("{e:#}"))?;
        }
        let mut interfaces = HashMap::new();
        for (_, package) in resolve.packages.iter() {
            for (name, id) in &package.interfaces {
                let package = &package.name;
                interfaces.insert(
                    format!("{}:{}/{name}", package.namespace, package.name),
                    *id,
                );
            }
        }
        Ok(WasiWit {
            resolve,
            interfaces,
        })
    }

    /// Function `name` of interface `interface` (unversioned), if WASI 0.2.12 has it.
    pub(crate) fn function(&self, interface: &str, name: &str) -> Option<&Function> {
        let id = *self.interfaces.get(interface)?;
        self.resolve.interfaces[id].functions.get(name)
    }

    /// Type `name` exported by interface `interface`.
    fn type_export(&self, interface: &str, name: &str) -> Option<TypeId> {
        let id = *self.interfaces.get(interface)?;
        self.resolve.interfaces[id].types.get(name).copied()
    }

    fn function_text(&self, f: &Function) -> Signature {
        Signature {
            params: f.params.iter().map(|p| self.type_text(&p.ty)).collect(),
            result: f.result.as_ref().map(|t| self.type_text(t)),
        }
    }

    /// Follows `type a = b` aliases (what `use` creates) to the definition.
    fn definition(&self, mut id: TypeId) -> TypeId {
        while let TypeDefKind::Type(Type::Id(next)) = self.resolve.types[id].kind {
            id = next;
        }
        id
    }

    /// A resource's name as the plan spells it: `wasi:io/streams/output-stream`.
    fn resource_name(&self, id: TypeId) -> String {
        let def = &self.resolve.types[self.definition(id)];
        let owner = match def.owner {
            TypeOwner::Interface(i) => {
                let interface = &self.resolve.interfaces[i];
                let package = interface
                    .package
                    .map(|p| &self.resolve.packages[p].name)
                    .map(|n| format!("{}:{}", n.namespace, n.name))
                    .unwrap_or_default();
                format!("{package}/{}", interface.name.as_deref().unwrap_or(""))
            }
            _ => String::new(),
        };
        format!("{owner}/{}", def.name.as_deref().unwrap_or(""))
    }

    fn type_text(&self, ty: &Type) -> String {
        let id = match ty {
            Type::Bool => return "bool".into(),
            Type::U8 => return "u8".into(),
            Type::U16 => return "u16".into(),
            Type::U32 => return "u32".into(),
            Type::U64 => return "u64".into(),
            Type::S8 => return "s8".into(),
            Type::S16 => return "s16".into(),
            Type::S32 => return "s32".into(),
            Type::S64 => return "s64".into(),
            Type::F32 => return "f32".into(),
            Type::F64 => return "f64".into(),
            Type::Char => return "char".into(),
            Type::String => return "string".into(),
            Type::ErrorContext => return "error-context".into(),
            Type::Id(id) => self.definition(*id),
        };
        let opt = |t: &Option<Type>| t.as_ref().map(|t| self.type_text(t));
        match &self.resolve.types[id].kind {
            TypeDefKind::Record(r) => {
                record(r.fields.iter().map(|f| (&*f.name, self.type_text(&f.ty))))
            }
            TypeDefKind::Resource => format!("resource {}", self.resource_name(id)),
            TypeDefKind::Handle(Handle::Own(r)) => format!("own<{}>", self.resource_name(*r)),
            TypeDefKind::Handle(Handle::Borrow(r)) => format!("borrow<{}>", self.resource_name(*r)),
            TypeDefKind::Flags(f) => names("flags", f.flags.iter().map(|f| &*f.name)),
            TypeDefKind::Tuple(t) => tuple(t.types.iter().map(|t| self.type_text(t))),
            TypeDefKind::Variant(v) => variant(v.cases.iter().map(|c| (&*c.name, opt(&c.ty)))),
            TypeDefKind::Enum(e) => names("enum", e.cases.iter().map(|c| &*c.name)),
            TypeDefKind::Option(t) => format!("option<{}>", self.type_text(t)),
            TypeDefKind::Result(r) => result(opt(&r.ok), opt(&r.err)),
            TypeDefKind::List(t) => format!("list<{}>", self.type_text(t)),
            TypeDefKind::Map(k, v) => {
                format!("map<{}, {}>", self.type_text(k), self.type_text(v))
            }
            TypeDefKind::FixedLengthList(t, n) => format!("list<{}, {n}>", self.type_text(t)),
            TypeDefKind::Future(_) => "future".into(),
            TypeDefKind::Stream(_) => "stream".into(),
            // `type filesize = u64` (an alias of another id was followed above).
            TypeDefKind::Type(t) => self.type_text(t),
            TypeDefKind::Unknown => "unknown".into(),
        }
    }
}

/// A function type as text, parameter by parameter.
#[derive(PartialEq)]
struct Signature {
    params: Vec<String>,
    result: Option<String>,
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "func({})", self.params.join(", "))?;
        if let Some(result) = &self.result {
            write!(f, " -> {result}")?;
        }
        Ok(())
    }
}

impl Signature {
    /// The first part that differs from `expected`, for the refusal.
    fn first_difference(&self, expected: &Signature) -> String {
        if self.params.len() != expected.params.len() {
            return format!(
                "it takes {} parameters, the WIT {}",
                self.params.len(),
                expected.params.len()
            );
        }
        for (i, (found, want)) in self.params.iter().zip(&expected.params).enumerate() {
            if found != want {
                return format!("parameter {} is `{found}`, the WIT says `{want}`", i + 1);
            }
        }
        let text = |r: &Option<String>| r.clone().unwrap_or_else(|| "no result".into());
        format!(
            "the result is `{}`, the WIT says `{}`",
            text(&self.result),
            text(&expected.result)
        )
    }
}

fn record<'n>(fields: impl Iterator<Item = (&'n str, String)>) -> String {
    let fields: Vec<String> = fields.map(|(n, t)| format!("{n}: {t}")).collect();
    format!("record {{ {} }}", fields.join(", "))
}

fn variant<'n>(cases: impl Iterator<Item = (&'n str, Option<String>)>) -> String {
    let cases: Vec<String> = cases
        .map(|(n, t)| match t {
            Some(t) => format!("{n}({t})"),
            None => n.to_string(),
        })
        .collect();
    format!("variant {{ {} }}", cases.join(", "))
}

fn names<'n>(kind: &str, names: impl Iterator<Item = &'n str>) -> String {
    format!("{kind} {{ {} }}", names.collect::<Vec<_>>().join(", "))
}

fn tuple(types: impl Iterator<Item = String>) -> String {
    format!("tuple<{}>", types.collect::<Vec<_>>().join(", "))
}

fn result(ok: Option<String>, err: Option<String>) -> String {
    match (ok, err) {
        (None, None) => "result".into(),
        (Some(ok), None) => format!("result<{ok}>"),
        (None, Some(err)) => format!("result<_, {err}>"),
        (Some(ok), Some(err)) => format!("result<{ok}, {err}>"),
    }
}

/// The component's side: its types as text, with host resources by name.
pub(crate) struct ComponentTypes<'a> {
    pub types: TypesRef<'a>,
    pub resources: &'a HashMap<ResourceId, String>,
}

impl ComponentTypes<'_> {
    fn resource(&self, id: ResourceId) -> String {
        self.resources
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "a resource of the component's own".into())
    }

    fn function_text(&self, f: &ComponentFuncType) -> Signature {
        Signature {
            params: f.params.iter().map(|(_, t)| self.type_text(*t)).collect(),
            result: f.result.map(|t| self.type_text(t)),
        }
    }

    fn type_text(&self, ty: ComponentValType) -> String {
        let id = match ty {
            ComponentValType::Primitive(p) => return primitive_text(p).into(),
            ComponentValType::Type(id) => id,
        };
        let opt = |t: Option<ComponentValType>| t.map(|t| self.type_text(t));
        match &self.types[id] {
            ComponentDefinedType::Primitive(p) => primitive_text(*p).into(),
            ComponentDefinedType::Record(r) => record(
                r.fields
                    .iter()
                    .map(|(n, t)| (n.as_str(), self.type_text(*t))),
            ),
            ComponentDefinedType::Variant(v) => {
                variant(v.cases.iter().map(|(n, c)| (n.as_str(), opt(c.ty))))
            }
            ComponentDefinedType::List { element, .. } => {
                format!("list<{}>", self.type_text(*element))
            }
            ComponentDefinedType::FixedLengthList {
                element, length, ..
            } => format!("list<{}, {length}>", self.type_text(*element)),
            ComponentDefinedType::Map { key, value, .. } => {
                format!("map<{}, {}>", self.type_text(*key), self.type_text(*value))
            }
            ComponentDefinedType::Tuple(t) => tuple(t.types.iter().map(|t| self.type_text(*t))),
            ComponentDefinedType::Flags(f) => names("flags", f.iter().map(|n| n.as_str())),
            ComponentDefinedType::Enum(e) => names("enum", e.iter().map(|n| n.as_str())),
            ComponentDefinedType::Option { ty, .. } => format!("option<{}>", self.type_text(*ty)),
            ComponentDefinedType::Result { ok, err, .. } => result(opt(*ok), opt(*err)),
            ComponentDefinedType::Own(r) => format!("own<{}>", self.resource(r.resource())),
            ComponentDefinedType::Borrow(r) => format!("borrow<{}>", self.resource(r.resource())),
            // WASI 0.3's types: never in 0.2's WIT, so their payload does not matter.
            ComponentDefinedType::Future { .. } => "future".into(),
            ComponentDefinedType::Stream { .. } => "stream".into(),
        }
    }

    /// Checks every export of the imported WASI instance `import` (its versioned
    /// name, `interface` without the version) against the WIT; `implemented` lists
    /// the functions wasmc's host provides.
    pub(crate) fn check_import(
        &self,
        wit: &WasiWit,
        import: &str,
        interface: &str,
        ty: ComponentInstanceTypeId,
        implemented: &[&str],
    ) -> Result<(), CompileError> {
        let refuse = |kind, message: String| {
            Err(CompileError::new(
                kind,
                None,
                format!("the component's import `{import}` does not match WASI: {message}"),
            ))
        };
        for (name, item) in &self.types[ty].exports {
            match item.ty {
                ComponentEntityType::Func(func) => {
                    let Some(expected) = wit.function(interface, name) else {
                        return refuse(
                            CompileErrorKind::Unsupported,
                            format!(
                                "`{interface}` of WASI {WASI_WIT_VERSION} (the version wasmc's \
                                 host follows) has no function `{name}`"
                            ),
                        );
                    };
                    if !implemented.contains(&name.as_str()) {
                        return Err(CompileError::new(
                            CompileErrorKind::Unsupported,
                            None,
                            format!(
                                "the component imports `{name}` of `{import}`, which wasmc's \
                                 WASI 0.2 host does not implement yet"
                            ),
                        ));
                    }
                    let expected = wit.function_text(expected);
                    let found = self.function_text(&self.types[func]);
                    if found != expected || self.types[func].async_ {
                        let difference = if self.types[func].async_ {
                            "it is declared async".to_string()
                        } else {
                            found.first_difference(&expected)
                        };
                        return refuse(
                            CompileErrorKind::Invalid,
                            format!(
                                "function `{name}` has the wrong type: {difference} (expected \
                                 `{expected}`, found `{found}`)"
                            ),
                        );
                    }
                }
                ComponentEntityType::Type { referenced, .. } => {
                    let Some(expected) = wit.type_export(interface, name) else {
                        return refuse(
                            CompileErrorKind::Unsupported,
                            format!(
                                "`{interface}` of WASI {WASI_WIT_VERSION} has no type `{name}`"
                            ),
                        );
                    };
                    let expected_text = wit.type_text(&Type::Id(expected));
                    let found_text = match referenced {
                        ComponentAnyTypeId::Resource(r) => {
                            format!("resource {}", self.resource(r.resource()))
                        }
                        ComponentAnyTypeId::Defined(d) => self.type_text(ComponentValType::Type(d)),
                        _ => "not a value type".into(),
                    };
                    if found_text != expected_text {
                        return refuse(
                            CompileErrorKind::Invalid,
                            format!(
                                "type `{name}` is `{found_text}`, the WIT of WASI \
                                 {WASI_WIT_VERSION} says `{expected_text}`"
                            ),
                        );
                    }
                }
                _ => {
                    return refuse(
                        CompileErrorKind::Unsupported,
                        format!("`{name}` is neither a function nor a type"),
                    );
                }
            }
        }
        Ok(())
    }
}

fn primitive_text(p: wasmparser::PrimitiveValType) -> &'static str {
    use wasmparser::PrimitiveValType as P;
    match p {
        P::Bool => "bool",
        P::S8 => "s8",
        P::U8 => "u8",
        P::S16 => "s16",
        P::U16 => "u16",
        P::S32 => "s32",
        P::U32 => "u32",
        P::S64 => "s64",
        P::U64 => "u64",
        P::F32 => "f32",
        P::F64 => "f64",
        P::Char => "char",
        P::String => "string",
        P::ErrorContext => "error-context",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_wit_parses_and_has_every_host_function() {
        let wit = WasiWit::get().expect("the vendored WIT parses");
        for (interface, functions) in wasmc_abi::component::WASI_P2_HOST_FUNCTIONS {
            assert!(
                wit.interfaces.contains_key(*interface),
                "{interface} is not in the WIT"
            );
            for function in *functions {
                assert!(
                    wit.function(interface, function).is_some(),
                    "{function} of {interface} is not in the WIT"
                );
            }
        }
    }

    #[test]
    fn wit_types_render_with_names_and_resources() {
        let wit = WasiWit::get().unwrap();
        let read = wit
            .function("wasi:filesystem/types", "[method]descriptor.read")
            .unwrap();
        let text = wit.function_text(read).to_string();
        assert!(
            text.starts_with("func(borrow<wasi:filesystem/types/descriptor>, u64, u64) -> result<tuple<list<u8>, bool>, enum { access, "),
            "{text}"
        );
        let subscribe = wit
            .function("wasi:io/streams", "[method]input-stream.subscribe")
            .unwrap();
        assert_eq!(
            wit.function_text(subscribe).to_string(),
            "func(borrow<wasi:io/streams/input-stream>) -> own<wasi:io/poll/pollable>"
        );
    }
}
