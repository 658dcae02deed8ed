//! wasmc's compiler: WebAssembly module in, native ELF object out.
//!
//! The pipeline, one module per step:
//! 1. [`read_input`]: `.wat` text or `.wasm` binary to a wasm binary.
//! 2. [`module_env`]: one validating pass over the payloads builds the
//!    [`wasmc_abi::ModuleInfo`] (types, imports, entities, segments, names) and hands
//!    out one function validator per body.
//! 3. [`translate`]: each body is validated and translated to Cranelift IR and
//!    compiled to machine code on a rayon worker thread; before that, [`inline`]
//!    picks small functions of the module and splices them into their callers.
//! 4. [`trampolines`]: host stubs (wasm -> host) and array trampolines (host -> wasm).
//! 5. [`object`]: all code, the serialized metadata and the `wasmc_module` descriptor
//!    are written to one relocatable object, in a deterministic order.
//!
//! ```
//! let wasm = wasmc_compiler::read_input(b"(module (func (export \"f\") (result i32) i32.const 7))").unwrap();
//! let compiled = wasmc_compiler::compile(&wasm, &wasmc_compiler::CompileOptions::default()).unwrap();
//! assert_eq!(compiled.info.funcs.len(), 1);
//! assert!(!compiled.object.is_empty());
//! ```

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod component;
mod inline;
mod isa;
mod memory_image;
mod module_env;
mod object;
mod trampolines;
mod translate;

pub use target_lexicon::Triple;

/// How hard Cranelift optimizes (its `opt_level` setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptLevel {
    None,
    Speed,
    SpeedAndSize,
}

/// Which direct calls between the module's own functions are replaced by the
/// callee's body (`--inline`; see the `inline` module for the heuristic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inlining {
    /// Every call stays a call.
    None,
    /// Small functions off every recursion cycle are inlined, within a growth
    /// budget per caller. Not done at `OptLevel::None`.
    Small,
}

/// Options of one compilation.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Target; x86_64 and aarch64 Linux (gnu or musl) are supported.
    pub triple: Triple,
    pub opt_level: OptLevel,
    /// Check every memory access against the memory's length instead of relying on
    /// guard pages.
    pub explicit_bounds_checks: bool,
    /// Spectre guards: where an explicit bounds check (memory or table) precedes an
    /// access, compute the access address with `select_spectre_guard`, so that an
    /// access executed speculatively past a mispredicted check reads address 0
    /// instead of memory chosen by the index. Guard-page accesses have no check and
    /// are unaffected. On by default; off trades that protection for a little speed.
    pub spectre_guards: bool,
    /// Count executed operators in `VMRuntimeState::fuel_consumed` and trap when the
    /// budget is spent (`--fuel`). Costs run time, so only when asked for.
    pub fuel_metering: bool,
    /// The sandbox policy to bake into the object (see `wasmc_abi::policy`).
    pub policy: Option<wasmc_abi::policy::Policy>,
    /// The CPU to generate code for (`--target-cpu`): `None` for the target's
    /// baseline (x86-64-v2, generic aarch64), `native` for this machine, or a
    /// Cranelift CPU name (`x86-64-v3`, `haswell`, `znver3`...). The features it
    /// implies are recorded in `ModuleInfo::cpu_features`.
    pub target_cpu: Option<String>,
    /// Whole-module inlining of small functions.
    pub inline: Inlining,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            triple: Triple::host(),
            opt_level: OptLevel::Speed,
            explicit_bounds_checks: false,
            spectre_guards: true,
            fuel_metering: false,
            policy: None,
            target_cpu: None,
            inline: Inlining::Small,
        }
    }
}

/// The result of [`compile`].
pub struct CompiledModule {
    /// A relocatable ELF object exporting [`wasmc_abi::DESCRIPTOR_SYMBOL`].
    pub object: Vec<u8>,
    /// The metadata that is also serialized inside `object`.
    pub info: wasmc_abi::ModuleInfo,
}

impl fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledModule")
            .field("object_len", &self.object.len())
            .field("info", &self.info)
            .finish()
    }
}

/// Why a module could not be compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompileErrorKind {
    /// Text or binary parse error.
    Malformed,
    /// The module does not validate.
    Invalid,
    /// The module is valid but uses something wasmc does not support.
    Unsupported,
    /// Unsupported target triple or code generation problem for the target.
    Target,
}

/// A compilation error with the byte offset in the wasm binary when known.
#[derive(Debug)]
pub struct CompileError {
    pub kind: CompileErrorKind,
    pub offset: Option<usize>,
    pub message: String,
}

impl CompileError {
    pub(crate) fn new(
        kind: CompileErrorKind,
        offset: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        CompileError {
            kind,
            offset,
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(offset: Option<usize>, message: impl Into<String>) -> Self {
        Self::new(CompileErrorKind::Unsupported, offset, message)
    }

    pub(crate) fn target(message: impl Into<String>) -> Self {
        Self::new(CompileErrorKind::Target, None, message)
    }

    /// Classifies a wasmparser error: parse errors are `Malformed`, anything found by
    /// the validator is `Invalid`. `Unsupported` is decided later by [`classify`].
    pub(crate) fn from_wasmparser(
        err: &wasmparser::BinaryReaderError,
        kind: CompileErrorKind,
    ) -> Self {
        Self::new(kind, Some(err.offset() as usize), err.message().to_string())
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            CompileErrorKind::Malformed => "malformed module",
            CompileErrorKind::Invalid => "invalid module",
            CompileErrorKind::Unsupported => "unsupported module",
            CompileErrorKind::Target => "unsupported target",
        };
        match self.offset {
            Some(offset) => write!(f, "{what} at byte offset {offset:#x}: ")?,
            None => write!(f, "{what}: ")?,
        }
        // Keep the message on one line whatever produced it.
        let mut first = true;
        for line in self
            .message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(line)?;
            first = false;
        }
        Ok(())
    }
}

impl std::error::Error for CompileError {}

/// Converts `.wat`/`.wast` text or a wasm binary into a wasm binary. Text is detected by
/// content (anything not starting with the `\0asm` magic that is UTF-8), so the file
/// extension does not matter.
pub fn read_input(bytes: &[u8]) -> Result<Vec<u8>, CompileError> {
    if bytes.starts_with(b"\0asm") {
        return Ok(bytes.to_vec());
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        // Not text: let the binary parser report what is wrong (bad magic, ...).
        return Ok(bytes.to_vec());
    };
    wat::parse_str(text).map_err(|err| {
        // wat renders "message\n --> file:line:col\n | source..." ; keep the message
        // and the position on one line.
        let rendered = err.to_string();
        let mut lines = rendered.lines();
        let message = lines.next().unwrap_or("parse error").trim().to_string();
        let position = lines
            .find_map(|l| l.trim().strip_prefix("-->"))
            .and_then(|loc| {
                let mut parts = loc.trim().rsplitn(3, ':');
                let col = parts.next()?;
                let line = parts.next()?;
                Some(format!(" (at line {line}, column {col})"))
            })
            .unwrap_or_default();
        CompileError::new(
            CompileErrorKind::Malformed,
            None,
            format!("text format: {message}{position}"),
        )
    })
}

/// Validates and compiles a wasm binary into an object file for `opts.triple`.
pub fn compile(wasm: &[u8], opts: &CompileOptions) -> Result<CompiledModule, CompileError> {
    compile_with_progress(wasm, opts, &Progress::default())
}

/// How far a compilation is, readable from another thread while it runs (the
/// `wasmc` command line shows it when compiling takes a while).
#[derive(Debug, Default)]
pub struct Progress {
    total: AtomicUsize,
    done: AtomicUsize,
}

impl Progress {
    /// (functions compiled, functions to compile); (0, 0) until the module is parsed.
    pub fn functions(&self) -> (usize, usize) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// [`compile`], counting compiled functions in `progress`.
pub fn compile_with_progress(
    wasm: &[u8],
    opts: &CompileOptions,
    progress: &Progress,
) -> Result<CompiledModule, CompileError> {
    compile_core(wasm, opts, wasmc_abi::DESCRIPTOR_SYMBOL, &[], progress)
}

/// [`compile`] with the function imports `array_host_imports` (import indices) given
/// array host stubs: the core modules of components that `wasmc wast` instantiates
/// dynamically, whose imports the harness serves through one entry point.
pub fn compile_with_array_host_imports(
    wasm: &[u8],
    opts: &CompileOptions,
    array_host_imports: &[u32],
) -> Result<CompiledModule, CompileError> {
    compile_core(
        wasm,
        opts,
        wasmc_abi::DESCRIPTOR_SYMBOL,
        array_host_imports,
        &Progress::default(),
    )
}

/// [`compile_with_progress`] with the descriptor exported as `descriptor_symbol` and
/// the function imports `array_host_imports` (import indices) given array host
/// stubs (a component's core modules, see `component`).
pub(crate) fn compile_core(
    wasm: &[u8],
    opts: &CompileOptions,
    descriptor_symbol: &str,
    array_host_imports: &[u32],
    progress: &Progress,
) -> Result<CompiledModule, CompileError> {
    let isa = isa::build(opts)?;
    let result = (|| {
        let module_env::ModuleEnv {
            mut info,
            bodies,
            func_names,
        } = module_env::ModuleEnv::parse(wasm)?;
        info.guard_pages = !opts.explicit_bounds_checks;
        info.fuel_metering = opts.fuel_metering;
        info.array_host_imports = array_host_imports.to_vec();
        info.cpu_features = isa::required_features(&*isa);
        let mut emitter = object::ObjectEmitter::new(isa.clone(), &info, &func_names)?;
        progress.total.store(bodies.len(), Ordering::Relaxed);
        let compiled = translate::compile_functions(
            &info,
            bodies,
            &func_names,
            emitter.defined_ids(),
            &*isa,
            opts,
            &progress.done,
        )?;
        info.funcs = compiled.iter().map(|f| f.func_info.clone()).collect();
        let host_stubs = trampolines::host_stubs(&info, &*isa)?;
        let array_trampolines = trampolines::array_trampolines(&info, &*isa)?;
        if let Some(image) = memory_image::build(&mut info, isa::max_page_size(&*isa)) {
            emitter.set_memory_image(image);
        }
        let object = emitter.finish(
            &info,
            compiled,
            host_stubs,
            array_trampolines,
            opts.policy.as_ref(),
            descriptor_symbol,
        )?;
        Ok(CompiledModule { object, info })
    })();
    result.map_err(|err| classify(err, wasm))
}

/// The module's description (types, imports, exports, segments) without compiling any
/// code. Cheap next to [`compile`], so that a caller can refuse a module (for example
/// one with imports the runtime cannot satisfy) before paying for compilation.
/// Per-function code facts (`ModuleInfo::funcs`) are left empty.
pub fn module_info(wasm: &[u8]) -> Result<wasmc_abi::ModuleInfo, CompileError> {
    module_env::ModuleEnv::parse(wasm)
        .map(|env| env.info)
        .map_err(|err| classify(err, wasm))
}

/// Decides the kind of a compilation error.
///
/// * `Unsupported`: translation stops at the first construct wasmc does not compile,
///   possibly before a later part of the module that is invalid. An invalid module
///   must be reported as invalid, so the whole module is validated first.
/// * `Invalid`: wasmc validates against WebAssembly 3.0 plus the proposals it
///   compiles beyond it (see `module_env::features`). A module rejected only because
///   it uses another proposal (shared-everything threads, ...) is valid wasm that
///   wasmc does not support: report it as such rather than as invalid.
fn classify(mut err: CompileError, wasm: &[u8]) -> CompileError {
    match err.kind {
        CompileErrorKind::Unsupported => {
            if let Err(invalid) = module_env::validate(wasm) {
                return invalid;
            }
        }
        CompileErrorKind::Invalid => {
            // Stack switching is left out: it makes tags with results valid, which
            // WebAssembly 3.0 (exception handling) requires to be rejected as invalid.
            // Custom descriptors too: they relax the typing of `br_on_cast`, whose
            // 3.0 rules the GC tests check.
            let beyond = wasmparser::WasmFeatures::all()
                - wasmparser::WasmFeatures::STACK_SWITCHING
                - wasmparser::WasmFeatures::CUSTOM_DESCRIPTORS;
            if wasmparser::Validator::new_with_features(beyond)
                .validate_all(wasm)
                .is_ok()
            {
                err.kind = CompileErrorKind::Unsupported;
            }
        }
        CompileErrorKind::Malformed | CompileErrorKind::Target => {}
    }
    err
}

#[cfg(test)]
mod tests;
