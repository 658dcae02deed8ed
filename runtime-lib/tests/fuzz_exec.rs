//! Execution fuzzing: wasm-smith modules (fixed seeds; fuel-limited so that they
//! terminate) are compiled, linked into a shared object, loaded with `dlopen`,
//! instantiated against a provider instance (plus one host function) and every
//! exported function is called with zero and then random arguments, in-process.
//!
//! Traps are expected. A host crash (a fault outside wasm code kills the test
//! process), a panic, an instantiation failure of a valid module, or a hang (the
//! watchdog aborts after `WATCHDOG_SECS` without progress) is a bug. The module being
//! run is always in `$TMPDIR/wasmc-fuzz-exec-current.wasm`, so a crash can be
//! reproduced.
//!
//! Longer runs: `WASMC_FUZZ_START=<seed> WASMC_FUZZ_COUNT=<modules> cargo test
//! --release -p wasmc-runtime --test fuzz_exec -- --nocapture`. With
//! `WASMC_FUZZ_DIFF_DIR=<dir>` (deterministic modules: canonical NaNs, no relaxed
//! SIMD) every module and call outcome is written there for
//! `fuzz/diff_wasmtime.py <dir>`, which replays them on wasmtime and compares.
//!
//! `WASMC_FUZZ_GC=1` generates WebAssembly GC modules instead (`fuzz/smith_gc.rs`:
//! GC types and instructions, exceptions in half of them); every reference argument
//! is then null and exports taking a non-nullable reference are not called. Until
//! wasmc implements GC this fails at the first module with the compiler's refusal.
//! Differential GC runs leave out exports with typed references in their signature
//! (the Python API cannot pass or compare them) and are replayed with
//! `fuzz/diff_wasmtime.py --gc <dir>`.

#[path = "../../compiler/tests/support/smith.rs"]
mod smith;
#[path = "../../fuzz/smith_gc.rs"]
mod smith_gc;
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use support::load;
use wasmc_compiler::{CompileOptions, OptLevel};
use wasmc_runtime::abi::{self, FuncType, ValType};
use wasmc_runtime::instance::{Extern, HostFunc, InstanceHandle, Module, Val};

const DEFAULT_COUNT: u64 = 120;
const FUEL: u32 = 2000;
const WATCHDOG_SECS: u64 = 60;

/// What generated modules may import (module "p"): every kind of entity, the value
/// types wasmc supports, multi-value, a function that traps. The provider instance
/// exports the same names; `h_add` comes from the host (`host_add`) instead.
const PROVIDER: &str = r#"(module
  (func (export "f_v"))
  (func (export "f_i_i") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "f_ijfd_v") (param i32 i64 f32 f64))
  (func (export "f_v_d") (result f64) (f64.const 1.5))
  (func (export "f_v128") (param v128) (result v128) (local.get 0))
  (func (export "f_multi") (param i32) (result i32 i64) (local.get 0) (i64.const 7))
  (func (export "f_ref") (param funcref externref) (result externref) (local.get 1))
  (func (export "f_trap") (param i32) unreachable)
  (memory (export "mem") 1 16)
  (memory (export "mem64") i64 1 16)
  (table (export "tab") 4 64 funcref)
  (table (export "xtab") 4 64 externref)
  (global (export "g_i32") (mut i32) (i32.const 0))
  (global (export "g_i64") i64 (i64.const 1))
  (global (export "g_f32") (mut f32) (f32.const 2.5))
  (global (export "g_f64") f64 (f64.const -0.0))
  (global (export "g_v128") (mut v128) (v128.const i64x2 1 2))
  (global (export "g_funcref") (mut funcref) (ref.null func))
)"#;

/// The same entities as imports of module "p": wasm-smith's `available_imports`.
const IMPORTS: &str = r#"(module
  (import "p" "f_v" (func))
  (import "p" "f_i_i" (func (param i32) (result i32)))
  (import "p" "f_ijfd_v" (func (param i32 i64 f32 f64)))
  (import "p" "f_v_d" (func (result f64)))
  (import "p" "f_v128" (func (param v128) (result v128)))
  (import "p" "f_multi" (func (param i32) (result i32 i64)))
  (import "p" "f_ref" (func (param funcref externref) (result externref)))
  (import "p" "f_trap" (func (param i32)))
  (import "p" "h_add" (func (param i32 i64) (result i64)))
  (import "p" "mem" (memory 1 16))
  (import "p" "mem64" (memory i64 1 16))
  (import "p" "tab" (table 4 64 funcref))
  (import "p" "xtab" (table 4 64 externref))
  (import "p" "g_i32" (global (mut i32)))
  (import "p" "g_i64" (global i64))
  (import "p" "g_f32" (global (mut f32)))
  (import "p" "g_f64" (global f64))
  (import "p" "g_v128" (global (mut v128)))
  (import "p" "g_funcref" (global (mut funcref)))
)"#;

extern "C" fn host_add(_vmctx: *mut u8, a: i32, b: i64) -> i64 {
    i64::from(a).wrapping_add(b)
}

/// A random argument. For differential runs (`diff`) floats are never NaN and
/// externrefs are null: the Python side passes floats as doubles (NaN payloads do
/// not survive) and has no opaque words. In GC modules (`gc`) every reference is
/// null: an opaque word could reach `any.convert_extern` and a cast, which may
/// treat it as a GC object.
fn random_val(ty: ValType, u: &mut Unstructured<'_>, diff: bool, gc: bool) -> Val {
    if gc && matches!(ty, ValType::ExternRef | ValType::Ref(_)) {
        return Val::default_for(ty);
    }
    match ty.storage() {
        ValType::I32 => Val::I32(u.arbitrary().unwrap_or(0)),
        ValType::I64 => Val::I64(u.arbitrary().unwrap_or(0)),
        ValType::F32 => {
            let bits: u32 = u.arbitrary().unwrap_or(0);
            let nan = f32::from_bits(bits).is_nan();
            Val::F32(if diff && nan {
                bits & 0x807f_ffff
            } else {
                bits
            })
        }
        ValType::F64 => {
            let bits: u64 = u.arbitrary().unwrap_or(0);
            let nan = f64::from_bits(bits).is_nan();
            Val::F64(if diff && nan {
                bits & 0x800f_ffff_ffff_ffff
            } else {
                bits
            })
        }
        ValType::V128 => Val::V128(u.arbitrary().unwrap_or(0)),
        ValType::FuncRef => Val::FuncRef(0),
        _ if diff => Val::ExternRef(0),
        // An opaque word: wasm can only pass it around.
        _ => Val::ExternRef(u.arbitrary::<u16>().unwrap_or(0) as usize),
    }
}

/// A value as the differential script reads it: `[type, decimal bits]`.
fn val_json(v: &Val) -> String {
    let (ty, bits) = match *v {
        Val::I32(x) => ("i32", x.to_string()),
        Val::I64(x) => ("i64", x.to_string()),
        Val::F32(x) => ("f32", x.to_string()),
        Val::F64(x) => ("f64", x.to_string()),
        Val::V128(x) => ("v128", x.to_string()),
        Val::FuncRef(x) => ("funcref", (x != 0).to_string()),
        Val::ExternRef(x) => ("externref", (x != 0).to_string()),
    };
    format!("[\"{ty}\", \"{bits}\"]")
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // JSON text is UTF-8: only control characters need escapes.
            c if (c as u32) < 0x20 => out += &format!("\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out + "\""
}

fn note(msg: &str) {
    // Straight to the process's stderr (not the test harness's capture), so the
    // message survives an abort.
    let _ = std::io::stderr().write_all(msg.as_bytes());
}

/// Bumped before every module and call; the watchdog aborts when it stalls.
static PROGRESS: AtomicU64 = AtomicU64::new(0);
static SEED: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct Stats {
    modules: u64,
    instantiated: u64,
    instantiation_traps: u64,
    calls: u64,
    returned: u64,
    trapped: u64,
}

#[test]
fn generated_modules_run_without_host_crashes() {
    let start: u64 = std::env::var("WASMC_FUZZ_START")
        .ok()
        .map_or(0, |s| s.parse().expect("WASMC_FUZZ_START"));
    let count: u64 = std::env::var("WASMC_FUZZ_COUNT")
        .ok()
        .map_or(DEFAULT_COUNT, |s| s.parse().expect("WASMC_FUZZ_COUNT"));
    let available_imports = wat::parse_str(IMPORTS).unwrap();
    let current = std::env::temp_dir().join("wasmc-fuzz-exec-current.wasm");
    let dir = tempfile::tempdir().unwrap();
    let gc = std::env::var_os("WASMC_FUZZ_GC").is_some_and(|v| v == "1");
    // Differential runs: each module and what each call did go to this directory.
    let diff: Option<PathBuf> = std::env::var_os("WASMC_FUZZ_DIFF_DIR").map(PathBuf::from);
    if let Some(d) = &diff {
        std::fs::create_dir_all(d).unwrap();
    }

    // Watchdog: generated code that does not terminate is a bug (fuel bounds every
    // loop and call), and so is a host call that blocks.
    std::thread::spawn(|| {
        let mut last = (u64::MAX, Instant::now());
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let p = PROGRESS.load(Ordering::Relaxed);
            if p != last.0 {
                last = (p, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(WATCHDOG_SECS) {
                note(&format!(
                    "fuzz_exec: no progress for {WATCHDOG_SECS} s at seed {}, aborting\n",
                    SEED.load(Ordering::Relaxed)
                ));
                std::process::abort();
            }
        }
    });

    let provider_module = load(
        &wat::parse_str(PROVIDER).unwrap(),
        &CompileOptions::default(),
        dir.path(),
    );
    let mut stats = Stats::default();
    for seed in start..start + count {
        SEED.store(seed, Ordering::Relaxed);
        PROGRESS.fetch_add(1, Ordering::Relaxed);
        let raw = smith::seed_bytes(seed, 64 * 1024);
        let mut u = Unstructured::new(&raw);
        let Ok(mut config) = smith::config(&mut u) else {
            continue;
        };
        if gc && smith_gc::enable_gc(&mut config, &mut u).is_err() {
            continue;
        }
        config.available_imports = Some(available_imports.clone());
        // Keep memories and tables small enough that a fill or copy of all of it is
        // quick; the watchdog is for real hangs.
        config.max_memory32_bytes = 1 << 24;
        config.max_memory64_bytes = 1 << 24;
        config.max_table_elements = 10_000;
        // Every function is called from the host.
        config.export_everything = true;
        if diff.is_some() {
            // Only deterministic results can be compared.
            config.canonicalize_nans = true;
            config.relaxed_simd_enabled = false;
            // Not among the features fuzz/diff_wasmtime.py turns on in wasmtime.
            config.wide_arithmetic_enabled = false;
            config.custom_page_sizes_enabled = false;
        }
        let Ok(mut module) = wasm_smith::Module::new(config, &mut u) else {
            continue;
        };
        module
            .ensure_termination(FUEL)
            .expect("wasm-smith generated the bodies");
        let wasm = module.to_bytes();
        std::fs::write(&current, &wasm).unwrap();
        if let Some(dir) = &diff {
            std::fs::write(dir.join(format!("{seed}.wasm")), &wasm).unwrap();
        }
        stats.modules += 1;

        let opts = CompileOptions {
            opt_level: [OptLevel::None, OptLevel::Speed, OptLevel::SpeedAndSize]
                [(seed % 3) as usize],
            explicit_bounds_checks: seed % 2 == 1,
            ..CompileOptions::default()
        };
        let compiled = load(&wasm, &opts, dir.path());
        // Instances that import a table are pinned to their thread (see the
        // runtime's instance docs): a thread per module frees them afterwards.
        let provider_module = provider_module.clone();
        let diff = diff.clone();
        let module_stats = std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(move || run_module(seed, &raw, compiled, provider_module, diff.as_deref(), gc))
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("seed {seed} failed (see above)"));
        stats.instantiated += module_stats.instantiated;
        stats.instantiation_traps += module_stats.instantiation_traps;
        stats.calls += module_stats.calls;
        stats.returned += module_stats.returned;
        stats.trapped += module_stats.trapped;
    }
    eprintln!(
        "fuzz_exec: seeds {start}..{}: {} modules, {} instantiated ({} traps at \
         instantiation), {} calls: {} returned, {} trapped",
        start + count,
        stats.modules,
        stats.instantiated,
        stats.instantiation_traps,
        stats.calls,
        stats.returned,
        stats.trapped
    );
    assert!(stats.modules > count / 2);
    assert!(
        stats.calls > stats.modules,
        "too few exported functions ran"
    );
    assert!(stats.returned > 0 && stats.trapped > 0);
}

/// Instantiates `compiled` against a fresh provider instance and calls each
/// exported function (in a fresh instance) with zero and then random arguments.
fn run_module(
    seed: u64,
    raw: &[u8],
    compiled: Arc<Module>,
    provider_module: Arc<Module>,
    diff: Option<&Path>,
    gc: bool,
) -> Stats {
    let mut stats = Stats::default();
    // What happened, for the differential script (`fuzz/diff_wasmtime.py`).
    let mut record: Vec<String> = Vec::new();
    let provider = InstanceHandle::new(provider_module.clone(), &mut |_| None, None)
        .expect("provider instantiates");
    let mut resolver = |import: &abi::Import| {
        if import.module != "p" {
            return None;
        }
        if import.name == "h_add" {
            return Some(Extern::HostFunc(HostFunc {
                ty: FuncType {
                    params: vec![ValType::I32, ValType::I64],
                    results: vec![ValType::I64],
                },
                code: host_add as *const u8,
            }));
        }
        provider.export(&import.name)
    };
    // Fuel lives in a (non-exported) global of the instance: each export gets a
    // fresh instance, so that one exhausting the fuel does not starve the rest.
    // The message of the last instantiation that trapped (for the diff record).
    let trap_message = std::cell::RefCell::new(String::new());
    let mut instantiate = |stats: &mut Stats| {
        match InstanceHandle::new(compiled.clone(), &mut resolver, None) {
            Ok(i) => Some(i),
            // Segments out of bounds or a trapping start function: valid modules
            // may fail to instantiate, but only with a trap.
            Err(wasmc_runtime::instance::InstantiationError::Trap(t)) => {
                stats.instantiation_traps += 1;
                *trap_message.borrow_mut() = t.to_string();
                None
            }
            // A constant expression allocating past the GC heap limit (`array.new`
            // with a huge length in a global's initialiser) is refused before
            // anything is allocated; wasmtime traps there too.
            Err(wasmc_runtime::instance::InstantiationError::Resource(e))
                if e.contains("GC heap out of memory") =>
            {
                stats.instantiation_traps += 1;
                *trap_message.borrow_mut() = e;
                None
            }
            Err(e) => panic!("seed {seed}: instantiation failed: {e:?}"),
        }
    };
    let first = instantiate(&mut stats);
    if let Some(dir) = diff {
        let outcome = if first.is_some() { "ok" } else { "trap" };
        let message = if first.is_some() {
            String::new()
        } else {
            format!(", \"message\": {}", json_str(&trap_message.borrow()))
        };
        record.push(format!("{{\"instantiate\": \"{outcome}\"{message}}}"));
        if first.is_none() {
            write_record(dir, seed, &record);
        }
    }
    if first.is_none() {
        return stats;
    }
    stats.instantiated += 1;
    let mut args_rng = Unstructured::new(&raw[raw.len() / 2..]);
    for export in &compiled.info().exports {
        if export.kind != abi::ExportKind::Func {
            continue;
        }
        let ty = compiled.info().func_type(export.index);
        let has_v128 = ty
            .params
            .iter()
            .chain(&ty.results)
            .any(|t| *t == ValType::V128);
        // No value of a non-nullable reference type can be made here.
        let needs_reference = ty
            .params
            .iter()
            .any(|t| matches!(t, ValType::Ref(r) if !r.nullable));
        // Typed references cannot cross the Python API of the differential script.
        let typed_reference = ty
            .params
            .iter()
            .chain(&ty.results)
            .any(|t| matches!(t, ValType::Ref(_)));
        if gc && (needs_reference || (diff.is_some() && typed_reference)) {
            continue;
        }
        if diff.is_some() && has_v128 {
            // wasmtime's Python API cannot call it: skip it (and its instantiation,
            // which runs the start function) on both sides, so that
            // its side effects (on the shared provider memory, say) do not make the
            // two runs diverge.
            continue;
        }
        let Some(instance) = instantiate(&mut stats) else {
            break;
        };
        let func = instance
            .export_func(&export.name)
            .expect("exported function");
        let ty = func.ty().clone();
        for round in 0..2 {
            let args: Vec<Val> = ty
                .params
                .iter()
                .map(|&t| {
                    if round == 0 {
                        Val::default_for(t)
                    } else {
                        random_val(t, &mut args_rng, diff.is_some(), gc)
                    }
                })
                .collect();
            PROGRESS.fetch_add(1, Ordering::Relaxed);
            stats.calls += 1;
            let outcome = instance.invoke(&func, &args);
            if diff.is_some() {
                let args: Vec<String> = args.iter().map(val_json).collect();
                let result = match &outcome {
                    Ok(results) => {
                        let r: Vec<String> = results.iter().map(val_json).collect();
                        format!("\"results\": [{}]", r.join(", "))
                    }
                    Err(trap) => format!("\"trap\": {}", json_str(trap.message())),
                };
                record.push(format!(
                    "{{\"export\": {}, \"round\": {round}, \"args\": [{}], \
                     {result}}}",
                    json_str(&export.name),
                    args.join(", ")
                ));
            }
            match outcome {
                Ok(results) => {
                    stats.returned += 1;
                    assert_eq!(results.len(), ty.results.len(), "seed {seed}");
                    for (v, t) in results.iter().zip(&ty.results) {
                        assert_eq!(v.ty(), t.storage(), "seed {seed}: result type");
                    }
                }
                Err(_) => stats.trapped += 1,
            }
        }
    }
    if let Some(dir) = diff {
        // The provider's memories and globals after all calls: stores (SIMD ones
        // included) are compared too, not only results.
        let mut digests = Vec::new();
        for name in ["mem", "mem64"] {
            let Some(Extern::Memory(m)) = provider.export(name) else {
                unreachable!("provider exports {name}")
            };
            let mut bytes = vec![0u8; m.data_size()];
            m.read(0, &mut bytes).unwrap();
            digests.push(format!("\"{name}\": \"{}\"", fnv1a(&bytes)));
        }
        for name in ["g_i32", "g_f32"] {
            let Some(Extern::Global(g)) = provider.export(name) else {
                unreachable!("provider exports {name}")
            };
            digests.push(format!("\"{name}\": {}", val_json(&g.get())));
        }
        record.push(format!("{{\"final\": {{{}}}}}", digests.join(", ")));
        write_record(dir, seed, &record);
    }
    stats
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn write_record(dir: &Path, seed: u64, record: &[String]) {
    let json = format!("[\n{}\n]\n", record.join(",\n"));
    std::fs::write(dir.join(format!("{seed}.json")), json).unwrap();
}
