//! Components in `wasmc wast`: the Component Model reference tests.
//!
//! A component of a script is validated by wasmparser's component validator (with
//! the types of every nested component kept for the instantiator), and each of its
//! core modules is compiled and linked into a shared object like a core module of a
//! spec script, with every function import given an *array host stub* that the
//! instantiator serves through one entry point (a module whose imports turn out to
//! be bound to other core instances' functions is rebuilt for that, see
//! [`instance`]).
//!
//! Unlike an executable, which flattens its component at compile time
//! (`compiler::component`), the harness instantiates components *dynamically*: it
//! walks the sections of the binary, instantiating core modules, resolving aliases
//! and running `canon` definitions as they come, nested components with their
//! arguments bound. Component-to-component calls are a lift followed by a lower
//! through the runtime's canonical ABI engine (`wasmc_runtime::component::canonical`),
//! which is what a fused adapter does, value by value.
//!
//! * [`instance`]: the instantiator (index spaces, core glue);
//! * [`call`]: lifted and lowered calls, resource handle tables, the built-ins;
//! * [`values`]: script values (`u32.const`, `str.const`, `record.const` ...) to and
//!   from canonical values, by type.

pub mod call;
pub mod harness;
pub mod instance;
pub mod values;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use wasmparser::types::Types;
use wasmparser::{Encoding, Parser, Payload, ValidPayload, Validator, WasmFeatures};

use super::loader::{self, PrepareError};

/// The features a component of a script is validated with: wasmparser's defaults
/// plus the Component Model flags the reference tests' own runner passes to wasmtime
/// (`UPSTREAM-README.md`: more async built-ins, threading, stackful async,
/// implements, fixed-length lists, maps). What validates but the instantiator does
/// not implement (the async ABI, threads, maps) is refused when instantiated, as a
/// failure.
pub fn features() -> WasmFeatures {
    WasmFeatures::default()
        | WasmFeatures::COMPONENT_MODEL
        | WasmFeatures::CM_MORE_ASYNC_BUILTINS
        | WasmFeatures::CM_THREADING
        | WasmFeatures::CM_ASYNC_STACKFUL
        | WasmFeatures::CM_IMPLEMENTS
        | WasmFeatures::CM_FIXED_LENGTH_LISTS
        | WasmFeatures::CM_MAP
}

/// A validated component binary with the types of each of its components.
pub struct Validated {
    pub wasm: Vec<u8>,
    /// Types of every component in the binary, by the offset of its header (0 for the
    /// top level).
    pub types: HashMap<usize, Types>,
    /// Byte ranges of every core module in the binary, at any depth.
    pub modules: Vec<Range<usize>>,
}

/// Validates `wasm` and collects what the instantiator needs.
pub fn validate(wasm: Vec<u8>) -> Result<Validated, String> {
    let mut validator = Validator::new_with_features(features());
    let mut types = HashMap::new();
    let mut modules = Vec::new();
    // (is a component, header offset) of the binaries being read, innermost last.
    let mut open: Vec<(bool, usize)> = Vec::new();
    for payload in Parser::new(0).parse_all(&wasm) {
        let payload = payload.map_err(|e| e.to_string())?;
        match &payload {
            Payload::Version {
                encoding, range, ..
            } => {
                open.push((*encoding == Encoding::Component, range.start as usize));
            }
            Payload::ModuleSection {
                unchecked_range, ..
            } => modules.push(unchecked_range.start as usize..unchecked_range.end as usize),
            _ => {}
        }
        match validator.payload(&payload).map_err(|e| e.to_string())? {
            ValidPayload::Func(func, body) => {
                let mut func = func.into_validator(Default::default());
                func.validate(&body).map_err(|e| e.to_string())?;
            }
            ValidPayload::End(t) => {
                if let Some((true, start)) = open.pop() {
                    types.insert(start, t);
                }
            }
            ValidPayload::Ok | ValidPayload::Parser(_) => {}
        }
    }
    Ok(Validated {
        wasm,
        types,
        modules,
    })
}

/// A component of a script, ready to instantiate: the binary and the shared object
/// of each core module built with every function import stubbed (or why it could
/// not be built), and the directory for builds with other stub sets.
pub struct Prepared {
    pub validated: Validated,
    pub shared: HashMap<usize, Result<PathBuf, String>>,
    pub dir: PathBuf,
}

/// Compiles and links one core module of a component (runs on any thread); `stubs`
/// as in [`loader::compile_and_link_component_module`].
pub fn build_module(
    wasm: &[u8],
    range: &Range<usize>,
    dir: &Path,
    stem: &str,
    stubs: Option<&[u32]>,
) -> Result<PathBuf, String> {
    loader::compile_and_link_component_module(&wasm[range.clone()], dir, stem, stubs).map_err(|e| {
        match e {
            PrepareError::Compile(e) => format!("core module at {:#x}: {e}", range.start),
            PrepareError::Load(e) => e,
        }
    })
}
