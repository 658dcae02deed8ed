//! The static instantiation plan of a WASI 0.2 command component.
//!
//! The compiler flattens a component (its core modules, core instances, aliases,
//! `canon lower`/`canon lift`/`resource.drop` definitions and nested re-exporting
//! components) into a [`ComponentPlan`]; the runtime executes it once at start-up:
//! it instantiates the core modules in [`ComponentPlan::instances`] order, binding
//! each import to an earlier instance's export or to a host *lowering*, and then
//! calls the core function lifted as `wasi:cli/run#run`.
//!
//! A lowered import is compiled with an *array* host stub (see
//! [`crate::ModuleInfo::array_host_imports`]): `extern "C" fn(vmctx, import: u32,
//! values: *mut ValRaw)` receives the core arguments in 16-byte slots and writes the
//! core result (at most one, the canonical ABI's `MAX_FLAT_RESULTS`) to `values[0]`.
//! The runtime finds the [`Lowering`] from the calling instance and the import index,
//! and lifts and lowers the values according to its [`WitType`]s.

use serde::{Deserialize, Serialize};

/// Everything the runtime needs to instantiate and run a command component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentPlan {
    /// Core instances in instantiation order; [`CoreDef::Export::instance`] indexes
    /// this list and only refers to earlier entries.
    pub instances: Vec<CoreInstance>,
    /// The host functions the component lowers, by index ([`CoreDef::Lowered`]).
    pub lowerings: Vec<Lowering>,
    /// The core function lifted as `wasi:cli/run@0.2.x#run` (`func() -> result`).
    pub run: CoreExport,
    /// Its `post-return` function, if the lift names one.
    pub run_post_return: Option<CoreExport>,
}

impl ComponentPlan {
    pub fn serialize(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("serializing a component plan cannot fail")
    }

    pub fn deserialize(bytes: &[u8]) -> Result<ComponentPlan, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("corrupt component plan: {e}"))
    }
}

/// One core instance of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CoreInstance {
    /// Instantiate core module `module` (an index into
    /// `ModuleDescriptor::component_modules`) with one definition per import, in the
    /// module's import order.
    Module { module: u32, imports: Vec<CoreDef> },
}

/// A core item (function, memory, table, global) an import is bound to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CoreDef {
    /// The export `name` of an earlier core instance.
    Export(CoreExport),
    /// Host function number `n` of [`ComponentPlan::lowerings`].
    Lowered(u32),
}

/// An export of a core instance of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreExport {
    pub instance: u32,
    pub name: String,
}

/// A host function as the component lowered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lowering {
    pub kind: LoweringKind,
    /// `(memory ...)`: the memory pointers in arguments and results refer to.
    pub memory: Option<CoreExport>,
    /// `(realloc ...)`: allocates results (strings, lists) in that memory.
    pub realloc: Option<CoreExport>,
    /// `string-encoding=...`: how strings are laid out in that memory.
    pub encoding: StringEncoding,
}

/// The `string-encoding` canonical option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StringEncoding {
    #[default]
    Utf8,
    Utf16,
    /// `latin1+utf16`: Latin-1 when every character fits, else UTF-16 with the length's
    /// top bit set.
    Latin1Utf16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LoweringKind {
    /// `canon lower` of function `function` of WASI interface `interface` (package,
    /// name and no version: `wasi:io/streams`), with its component-level type.
    Host {
        interface: String,
        function: String,
        params: Vec<WitType>,
        result: Option<WitType>,
    },
    /// `canon resource.drop` of a host resource type (`wasi:io/streams/output-stream`).
    ResourceDrop { resource: String },
}

/// A component-model value type, as far as the canonical ABI needs it. Field and
/// case names are left out: the host knows them from the WIT and uses positions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WitType {
    Bool,
    S8,
    U8,
    S16,
    U16,
    S32,
    U32,
    S64,
    U64,
    F32,
    F64,
    Char,
    String,
    List(Box<WitType>),
    Record(Vec<WitType>),
    Tuple(Vec<WitType>),
    /// Cases in declaration order, each with its payload type if it has one.
    Variant(Vec<Option<WitType>>),
    /// The number of cases.
    Enum(u32),
    Option(Box<WitType>),
    Result {
        ok: Option<Box<WitType>>,
        err: Option<Box<WitType>>,
    },
    /// The number of flags.
    Flags(u32),
    /// An owned handle of a host resource (`wasi:io/streams/output-stream`).
    Own(String),
    /// A borrowed handle of a host resource.
    Borrow(String),
}

/// The WASI 0.2 interfaces and functions the runtime implements, by interface (no
/// version) and function name as the WIT spells it. The compiler refuses a component
/// that imports anything else, naming it; the runtime's host implements each one.
pub const WASI_P2_HOST_FUNCTIONS: &[(&str, &[&str])] = &[
    (
        "wasi:cli/environment",
        &["get-environment", "get-arguments", "initial-cwd"],
    ),
    ("wasi:cli/exit", &["exit"]),
    ("wasi:cli/stdin", &["get-stdin"]),
    ("wasi:cli/stdout", &["get-stdout"]),
    ("wasi:cli/stderr", &["get-stderr"]),
    ("wasi:cli/terminal-input", &[]),
    ("wasi:cli/terminal-output", &[]),
    ("wasi:cli/terminal-stdin", &["get-terminal-stdin"]),
    ("wasi:cli/terminal-stdout", &["get-terminal-stdout"]),
    ("wasi:cli/terminal-stderr", &["get-terminal-stderr"]),
    ("wasi:io/error", &["[method]error.to-debug-string"]),
    (
        "wasi:io/poll",
        &["[method]pollable.ready", "[method]pollable.block", "poll"],
    ),
    (
        "wasi:io/streams",
        &[
            "[method]input-stream.read",
            "[method]input-stream.blocking-read",
            "[method]input-stream.skip",
            "[method]input-stream.blocking-skip",
            "[method]input-stream.subscribe",
            "[method]output-stream.check-write",
            "[method]output-stream.write",
            "[method]output-stream.blocking-write-and-flush",
            "[method]output-stream.flush",
            "[method]output-stream.blocking-flush",
            "[method]output-stream.subscribe",
            "[method]output-stream.write-zeroes",
            "[method]output-stream.blocking-write-zeroes-and-flush",
        ],
    ),
    (
        "wasi:clocks/monotonic-clock",
        &[
            "now",
            "resolution",
            "subscribe-instant",
            "subscribe-duration",
        ],
    ),
    ("wasi:clocks/wall-clock", &["now", "resolution"]),
    (
        "wasi:random/random",
        &["get-random-bytes", "get-random-u64"],
    ),
    (
        "wasi:random/insecure",
        &["get-insecure-random-bytes", "get-insecure-random-u64"],
    ),
    ("wasi:random/insecure-seed", &["insecure-seed"]),
    ("wasi:filesystem/preopens", &["get-directories"]),
    (
        "wasi:filesystem/types",
        &[
            "[method]descriptor.read-via-stream",
            "[method]descriptor.write-via-stream",
            "[method]descriptor.append-via-stream",
            "[method]descriptor.advise",
            "[method]descriptor.set-times",
            "[method]descriptor.set-times-at",
            "[method]descriptor.get-flags",
            "[method]descriptor.get-type",
            "[method]descriptor.set-size",
            "[method]descriptor.read",
            "[method]descriptor.write",
            "[method]descriptor.read-directory",
            "[method]descriptor.sync",
            "[method]descriptor.sync-data",
            "[method]descriptor.create-directory-at",
            "[method]descriptor.stat",
            "[method]descriptor.stat-at",
            "[method]descriptor.open-at",
            "[method]descriptor.remove-directory-at",
            "[method]descriptor.rename-at",
            "[method]descriptor.link-at",
            "[method]descriptor.symlink-at",
            "[method]descriptor.readlink-at",
            "[method]descriptor.unlink-file-at",
            "[method]descriptor.is-same-object",
            "[method]descriptor.metadata-hash",
            "[method]descriptor.metadata-hash-at",
            "[method]directory-entry-stream.read-directory-entry",
            "filesystem-error-code",
        ],
    ),
];

/// Whether `name` (`wasi:io/streams@0.2.3`) is a WASI 0.2.x interface, and which: the
/// interface without its version. Any 0.2.x version matches (semver: 0.2 patch
/// releases only add), as in wasmtime.
pub fn wasi_p2_interface(name: &str) -> Option<&str> {
    let (interface, version) = name.split_once('@')?;
    let patch = version.strip_prefix("0.2.")?;
    // A plain patch number, optionally with a pre-release or build suffix.
    let digits = patch.split(['-', '+']).next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(interface)
}

/// The host functions of a WASI 0.2 interface, `None` if the host has none.
pub fn wasi_p2_host_functions(interface: &str) -> Option<&'static [&'static str]> {
    WASI_P2_HOST_FUNCTIONS
        .iter()
        .find(|(name, _)| *name == interface)
        .map(|(_, functions)| *functions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_versions_match_by_semver() {
        assert_eq!(
            wasi_p2_interface("wasi:io/streams@0.2.6"),
            Some("wasi:io/streams")
        );
        assert_eq!(
            wasi_p2_interface("wasi:cli/run@0.2.0"),
            Some("wasi:cli/run")
        );
        assert_eq!(
            wasi_p2_interface("wasi:cli/run@0.2.0-rc-2023-12-05"),
            Some("wasi:cli/run")
        );
        assert_eq!(wasi_p2_interface("wasi:io/streams@0.3.0"), None);
        assert_eq!(wasi_p2_interface("wasi:io/streams@0.2."), None);
        assert_eq!(wasi_p2_interface("wasi:io/streams"), None);
        assert!(wasi_p2_host_functions("wasi:sockets/tcp").is_none());
        assert!(
            wasi_p2_host_functions("wasi:cli/exit")
                .unwrap()
                .contains(&"exit")
        );
    }

    #[test]
    fn plans_round_trip() {
        let plan = ComponentPlan {
            instances: vec![CoreInstance::Module {
                module: 0,
                imports: vec![CoreDef::Lowered(0)],
            }],
            lowerings: vec![Lowering {
                kind: LoweringKind::Host {
                    interface: "wasi:cli/exit".into(),
                    function: "exit".into(),
                    params: vec![WitType::Result {
                        ok: None,
                        err: None,
                    }],
                    result: None,
                },
                memory: None,
                realloc: None,
                encoding: StringEncoding::Latin1Utf16,
            }],
            run: CoreExport {
                instance: 0,
                name: "run".into(),
            },
            run_post_return: None,
        };
        assert_eq!(ComponentPlan::deserialize(&plan.serialize()).unwrap(), plan);
    }
}
