//! Turns a wasm binary into a loaded module the runtime can instantiate: compile it
//! to an object, link the object into a shared object with the system C compiler, and
//! `dlopen` that. This runs exactly the code and descriptor a real executable would
//! contain, only loaded at run time instead of linked statically.
//!
//! Loaded objects are never unloaded: a trapping instantiation may already have
//! written references to its functions into another instance's table (the spec's
//! `linking.wast` calls them afterwards), and function references may travel between
//! instances in general. A worker process handles a single spec file, so the mappings
//! live as long as they can be needed and no longer.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use wasmc_abi::{ABI_VERSION, DESCRIPTOR_SYMBOL, ModuleDescriptor};
use wasmc_compiler::{CompileError, CompileOptions, compile};

/// Overrides the linker driver used for shared objects (see [`linker`]).
const LINKER_ENV: &str = "WASMC_WAST_LINKER";

/// Why a module could not be prepared.
#[derive(Debug)]
pub enum PrepareError {
    /// The compiler rejected the module (this is the expected outcome for
    /// `assert_invalid` and `assert_malformed`).
    Compile(CompileError),
    /// Linking or loading the shared object failed: a harness or toolchain problem.
    Load(String),
}

impl std::fmt::Display for PrepareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrepareError::Compile(e) => write!(f, "{e}"),
            PrepareError::Load(e) => f.write_str(e),
        }
    }
}

/// Compiles `wasm` without linking (for modules that are expected to be rejected).
pub fn compile_only(wasm: &[u8]) -> Result<(), PrepareError> {
    compile(wasm, &CompileOptions::default())
        .map(drop)
        .map_err(PrepareError::Compile)
}

/// Compiles `wasm` and links the object to `<dir>/<stem>.so`; returns the path of the
/// shared object. Runs on any thread.
pub fn compile_and_link(wasm: &[u8], dir: &Path, stem: &str) -> Result<PathBuf, PrepareError> {
    let compiled = compile(wasm, &CompileOptions::default()).map_err(PrepareError::Compile)?;
    link(&compiled.object, dir, stem)
}

/// [`compile_and_link`] for a core module of a component: the function imports
/// `stubs` (import indices; `None`: all of them) get array host stubs, which the
/// component instantiator serves (see `component::instance`).
pub fn compile_and_link_component_module(
    wasm: &[u8],
    dir: &Path,
    stem: &str,
    stubs: Option<&[u32]>,
) -> Result<PathBuf, PrepareError> {
    let all: Vec<u32>;
    let stubs = match stubs {
        Some(stubs) => stubs,
        None => {
            let info = wasmc_compiler::module_info(wasm).map_err(PrepareError::Compile)?;
            let func_imports = info
                .imports
                .iter()
                .filter(|i| matches!(i.kind, wasmc_abi::ImportKind::Func { .. }))
                .count() as u32;
            all = (0..func_imports).collect();
            &all
        }
    };
    let compiled =
        wasmc_compiler::compile_with_array_host_imports(wasm, &CompileOptions::default(), stubs)
            .map_err(PrepareError::Compile)?;
    link(&compiled.object, dir, stem)
}

/// Links an object into `<dir>/<stem>.so`.
fn link(compiled_object: &[u8], dir: &Path, stem: &str) -> Result<PathBuf, PrepareError> {
    let object = dir.join(format!("{stem}.o"));
    let shared = dir.join(format!("{stem}.so"));
    std::fs::write(&object, compiled_object)
        .map_err(|e| PrepareError::Load(format!("cannot write {}: {e}", object.display())))?;
    // `-nostdlib`: the object references no runtime or libc symbol; the only possible
    // undefined symbols are Cranelift's libm libcalls (fma, ...), which the dynamic
    // loader resolves from the libm this process already has. `noexecstack` because
    // Cranelift's objects carry no `.note.GNU-stack`, and an executable-stack request
    // would make the loader refuse (or change) the whole process's stack.
    let linker = linker();
    let output = Command::new(&linker)
        .args(["-shared", "-nostdlib", "-Wl,-z,noexecstack", "-o"])
        .arg(&shared)
        .arg(&object)
        .output()
        .map_err(|e| PrepareError::Load(format!("cannot run {}: {e}", linker.display())))?;
    if !output.status.success() {
        return Err(PrepareError::Load(format!(
            "linking the shared object with {} failed ({}): {}",
            linker.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    // The object is no longer needed; the shared object stays until it is loaded.
    let _ = std::fs::remove_file(&object);
    Ok(shared)
}

/// The gcc-compatible driver that links shared objects: `$WASMC_WAST_LINKER`, or `cc`.
/// The objects are compiled for the architecture wasmc runs on, so `cc` is right on
/// a native machine; a wasmc built for aarch64 and run under qemu-user on an x86_64
/// machine needs the cross driver instead (`aarch64-linux-gnu-gcc`, which qemu-user
/// executes natively: it is a separate `execve` of an x86_64 program).
fn linker() -> PathBuf {
    std::env::var_os(LINKER_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("cc"), PathBuf::from)
}

/// Loads a shared object produced by [`compile_and_link`] and returns its module
/// descriptor. The object stays loaded for the life of the process.
pub fn load(shared: &Path) -> Result<&'static ModuleDescriptor, String> {
    let path = CString::new(shared.as_os_str().as_bytes())
        .map_err(|_| format!("path contains a NUL byte: {}", shared.display()))?;
    // SAFETY: dlopen runs the object's initializers; objects made by wasmc's compiler
    // have none. RTLD_LOCAL keeps each module's `wasmc_module` symbol private.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!("dlopen {}: {}", shared.display(), dl_error()));
    }
    let symbol = CString::new(DESCRIPTOR_SYMBOL).expect("symbol name has no NUL");
    // SAFETY: `handle` is a live handle from dlopen above.
    let address = unsafe { libc::dlsym(handle, symbol.as_ptr()) };
    if address.is_null() {
        return Err(format!(
            "{} does not define {DESCRIPTOR_SYMBOL}: {}",
            shared.display(),
            dl_error()
        ));
    }
    // SAFETY: the compiler emits `wasmc_module` as an `abi::ModuleDescriptor` (checked
    // by its version field below before anything else is read); the handle is never
    // closed, so the data lives for the rest of the process.
    let descriptor: &'static ModuleDescriptor = unsafe { &*(address as *const ModuleDescriptor) };
    if descriptor.abi_version != ABI_VERSION {
        return Err(format!(
            "{}: ABI version {:#x}, expected {ABI_VERSION:#x}",
            shared.display(),
            descriptor.abi_version
        ));
    }
    Ok(descriptor)
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next
    // dl* call on this thread; it is copied at once.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        "unknown error".to_string()
    } else {
        // SAFETY: non-null, NUL-terminated (see above).
        unsafe { std::ffi::CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }
}
