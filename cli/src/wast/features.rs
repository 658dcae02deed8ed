//! Which WebAssembly proposal each spec-test file exercises, and which proposals wasmc
//! supports. A file is skipped only as a whole, only because its proposal is declared
//! unsupported here, and always with the reason printed; individual assertions are
//! never skipped. A file of a supported proposal that happens to contain a module of
//! an unsupported one runs, and that module's failure is reported as a failure.
//!
//! The classification follows the testsuite layout (see the testsuite's README): the
//! `proposals/<name>/` and `legacy/` directories, and file names for the top level,
//! which mixes WebAssembly 2.0 files with 3.0 proposal files.

use std::path::Path;

/// A WebAssembly feature set that spec-test files are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proposal {
    /// WebAssembly 2.0: MVP, mutable globals, sign extension, saturating truncation,
    /// multi-value, bulk memory, reference types, fixed-width SIMD, plus the text and
    /// binary format tests.
    Core2,
    MultiMemory,
    Memory64,
    TailCall,
    FunctionReferences,
    Gc,
    ExceptionHandling,
    LegacyExceptions,
    RelaxedSimd,
    Threads,
    WideArithmetic,
    CustomPageSizes,
    CustomDescriptors,
    /// Custom sections and annotations (`custom/`): text-format features only.
    Annotations,
}

impl Proposal {
    /// Short name, as used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Proposal::Core2 => "wasm-2.0",
            Proposal::MultiMemory => "multi-memory",
            Proposal::Memory64 => "memory64",
            Proposal::TailCall => "tail-call",
            Proposal::FunctionReferences => "function-references",
            Proposal::Gc => "gc",
            Proposal::ExceptionHandling => "exception-handling",
            Proposal::LegacyExceptions => "legacy-exceptions",
            Proposal::RelaxedSimd => "relaxed-simd",
            Proposal::Threads => "threads",
            Proposal::WideArithmetic => "wide-arithmetic",
            Proposal::CustomPageSizes => "custom-page-sizes",
            Proposal::CustomDescriptors => "custom-descriptors",
            Proposal::Annotations => "annotations",
        }
    }

    /// `None` when wasmc supports the proposal; otherwise why its files are skipped.
    /// This is the declared feature list: keep it in step with the features the
    /// compiler enables.
    pub fn unsupported_reason(self) -> Option<&'static str> {
        match self {
            Proposal::Core2
            | Proposal::MultiMemory
            | Proposal::Memory64
            | Proposal::TailCall
            | Proposal::RelaxedSimd
            | Proposal::FunctionReferences
            | Proposal::ExceptionHandling
            | Proposal::LegacyExceptions
            | Proposal::WideArithmetic
            | Proposal::CustomPageSizes
            | Proposal::Threads
            | Proposal::Gc
            | Proposal::Annotations => None,
            Proposal::CustomDescriptors => {
                Some("custom descriptors (a GC extension) are not supported by wasmc")
            }
        }
    }
}

impl Proposal {
    /// The feature set a file's `assert_invalid` modules are judged by, when its
    /// proposal's repository predates WebAssembly 3.0 and asserts restrictions that
    /// 3.0 lifted. `proposals/threads/` is WebAssembly 1.0 plus threads: it asserts
    /// that a second memory or table is invalid, which multi-memory and reference
    /// types made valid. A
    /// module rejected by these rules passes its `assert_invalid` without being
    /// compiled; the ones they accept still have to be rejected by the compiler.
    pub fn own_validation_rules(self) -> Option<wasmparser::WasmFeatures> {
        match self {
            Proposal::Threads => {
                Some(wasmparser::WasmFeatures::WASM1 | wasmparser::WasmFeatures::THREADS)
            }
            _ => None,
        }
    }
}

/// Top-level files of the multi-memory proposal (it added numbered variants of the
/// memory tests rather than a naming scheme).
const MULTI_MEMORY: &[&str] = &[
    "address0",
    "address1",
    "align0",
    "binary0",
    "data0",
    "data1",
    "data_drop0",
    "exports0",
    "float_exprs0",
    "float_exprs1",
    "float_memory0",
    "imports0",
    "imports1",
    "imports2",
    "imports3",
    "imports4",
    "linking0",
    "linking1",
    "linking2",
    "linking3",
    "load0",
    "load1",
    "load2",
    "memory-multi",
    "memory_copy0",
    "memory_copy1",
    "memory_fill0",
    "memory_init0",
    "memory_size0",
    "memory_size1",
    "memory_size2",
    "memory_size3",
    "memory_trap0",
    "memory_trap1",
    "simd_memory-multi",
    "start0",
    "store0",
    "store1",
    "store2",
    "traps0",
];

/// Top-level files of the GC proposal.
const GC: &[&str] = &[
    "binary-gc",
    "extern",
    "i31",
    "ref_cast",
    "ref_eq",
    "ref_test",
    "struct",
];

/// Top-level files of the typed function references proposal. `ref` and `table-sub`
/// test the typed reference syntax `(ref null $t)` and table subtyping, which came
/// with it.
const FUNCTION_REFERENCES: &[&str] = &[
    "br_on_non_null",
    "br_on_null",
    "call_ref",
    "local_init",
    "ref",
    "ref_as_non_null",
    "return_call_ref",
    "table-sub",
];

const EXCEPTIONS: &[&str] = &["tag", "throw", "throw_ref", "try_table"];

/// The proposal a spec-test file belongs to, from its path (relative to the
/// testsuite root, or any path whose last components follow its layout).
pub fn classify(path: &Path) -> Proposal {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|s| s.to_str())
        .unwrap_or("");
    match parent {
        "threads" => return Proposal::Threads,
        "wide-arithmetic" => return Proposal::WideArithmetic,
        "custom-page-sizes" => return Proposal::CustomPageSizes,
        "custom-descriptors" => return Proposal::CustomDescriptors,
        "legacy" => return Proposal::LegacyExceptions,
        "custom" => return Proposal::Annotations,
        _ => {}
    }
    if MULTI_MEMORY.contains(&stem) {
        return Proposal::MultiMemory;
    }
    if GC.contains(&stem)
        || stem.starts_with("array")
        || stem.starts_with("br_on_cast")
        || stem.starts_with("type-")
    {
        return Proposal::Gc;
    }
    if FUNCTION_REFERENCES.contains(&stem) {
        return Proposal::FunctionReferences;
    }
    if EXCEPTIONS.contains(&stem) {
        return Proposal::ExceptionHandling;
    }
    if stem.starts_with("return_call") {
        return Proposal::TailCall;
    }
    if stem.starts_with("relaxed_") || stem.contains("_relaxed_") {
        return Proposal::RelaxedSimd;
    }
    if stem.starts_with("memory64") || (stem.ends_with("64") && stem != "f64" && stem != "i64") {
        return Proposal::Memory64;
    }
    Proposal::Core2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(p: &str) -> Proposal {
        classify(Path::new(p))
    }

    /// A small module that needs each proposal (`None` where no module of the
    /// proposal can be written without another unsupported one).
    fn representative(p: Proposal) -> Option<&'static str> {
        Some(match p {
            Proposal::Core2 | Proposal::Annotations => {
                "(module (func (result i32) (i32.extend8_s (i32.const 1))))"
            }
            Proposal::MultiMemory => "(module (memory 1) (memory 1))",
            Proposal::Memory64 => "(module (memory i64 1))",
            Proposal::TailCall => "(module (func $f return_call $f))",
            Proposal::FunctionReferences => {
                "(module (type $t (func)) (func (param (ref null $t))))"
            }
            Proposal::Gc => "(module (type (struct (field i32))))",
            Proposal::ExceptionHandling => "(module (tag) (func throw 0))",
            Proposal::LegacyExceptions => {
                "(module (tag $e) (func try throw $e catch $e catch_all end))"
            }
            Proposal::CustomDescriptors => return None,
            Proposal::RelaxedSimd => {
                "(module (func (param v128 v128 v128) (result v128)
                   (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2))))"
            }
            Proposal::Threads => "(module (memory 1 1 shared))",
            Proposal::WideArithmetic => {
                "(module (func (param i64 i64 i64 i64) (result i64 i64)
                   (i64.add128 (local.get 0) (local.get 1) (local.get 2) (local.get 3))))"
            }
            Proposal::CustomPageSizes => "(module (memory 1 (pagesize 1)))",
        })
    }

    /// The declared list must match what the compiler actually accepts, so that a
    /// proposal the compiler learns is no longer skipped (and one it drops is).
    #[test]
    fn declared_support_matches_the_compiler() {
        use wasmc_compiler::{CompileErrorKind, CompileOptions, compile};
        let all = [
            Proposal::Core2,
            Proposal::MultiMemory,
            Proposal::Memory64,
            Proposal::TailCall,
            Proposal::FunctionReferences,
            Proposal::Gc,
            Proposal::ExceptionHandling,
            Proposal::LegacyExceptions,
            Proposal::RelaxedSimd,
            Proposal::Threads,
            Proposal::WideArithmetic,
            Proposal::CustomPageSizes,
            Proposal::CustomDescriptors,
            Proposal::Annotations,
        ];
        for p in all {
            let Some(text) = representative(p) else {
                continue;
            };
            let wasm = wat::parse_str(text).expect("representative module parses");
            let result = compile(&wasm, &CompileOptions::default());
            match (p.unsupported_reason(), result) {
                (None, Ok(_)) => {}
                (Some(_), Err(e)) if e.kind == CompileErrorKind::Unsupported => {}
                (None, Err(e)) => panic!("{} is declared supported, but: {e}", p.name()),
                (Some(_), Ok(_)) => panic!(
                    "{} is declared unsupported, but the compiler accepts it: update the list",
                    p.name()
                ),
                (Some(_), Err(e)) => panic!("{}: unexpected error {e}", p.name()),
            }
        }
    }

    #[test]
    fn classifies_by_directory_and_name() {
        assert_eq!(class("proposals/threads/atomic.wast"), Proposal::Threads);
        assert_eq!(class("/x/legacy/throw.wast"), Proposal::LegacyExceptions);
        assert_eq!(class("i64.wast"), Proposal::Core2);
        assert_eq!(class("f64.wast"), Proposal::Core2);
        assert_eq!(class("simd_load64_lane.wast"), Proposal::Core2);
        assert_eq!(class("simd_f64x2.wast"), Proposal::Core2);
        assert_eq!(class("binary_leb128_64.wast"), Proposal::Memory64);
        assert_eq!(class("table_grow64.wast"), Proposal::Memory64);
        assert_eq!(class("memory64-imports.wast"), Proposal::Memory64);
        assert_eq!(class("array_copy.wast"), Proposal::Gc);
        assert_eq!(class("type-rec.wast"), Proposal::Gc);
        assert_eq!(class("type.wast"), Proposal::Core2);
        assert_eq!(class("return_call_ref.wast"), Proposal::FunctionReferences);
        assert_eq!(class("return_call_indirect.wast"), Proposal::TailCall);
        assert_eq!(class("i8x16_relaxed_swizzle.wast"), Proposal::RelaxedSimd);
        assert_eq!(class("load2.wast"), Proposal::MultiMemory);
        assert_eq!(class("simd_i32x4_arith2.wast"), Proposal::Core2);
        assert_eq!(class("try_table.wast"), Proposal::ExceptionHandling);
        assert_eq!(
            class("proposals/wide-arithmetic/wide-arithmetic.wast"),
            Proposal::WideArithmetic
        );
        assert_eq!(
            class("proposals/custom-page-sizes/memory_max.wast"),
            Proposal::CustomPageSizes
        );
    }
}
