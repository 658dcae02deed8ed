//! Deterministic fuzzing smoke test: wasm-smith modules (fixed seeds) restricted to the
//! features wasmc supports must compile for both architectures, every optimization
//! level and both bounds-check modes; mutated (truncated, bit-flipped) binaries must be
//! rejected with an error, never a panic.
//!
//! Longer runs: `WASMC_FUZZ_START=<first seed> WASMC_FUZZ_COUNT=<modules>
//! cargo test --release -p wasmc-compiler --test fuzz_smoke -- --nocapture`, or the
//! cargo-fuzz targets in `fuzz/`. A failing module is written to the temp directory
//! (`wasmc-fuzz-<seed>.wasm`) for reproduction.

#[path = "support/smith.rs"]
mod smith;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;

use arbitrary::Unstructured;
use wasmc_compiler::{CompileOptions, OptLevel, Triple, compile};

const DEFAULT_COUNT: u64 = 300;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

/// Every compile configuration; the smoke run takes a seed-dependent slice of it.
fn configurations() -> Vec<CompileOptions> {
    let mut all = Vec::new();
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        for opt_level in [OptLevel::None, OptLevel::Speed, OptLevel::SpeedAndSize] {
            for explicit_bounds_checks in [false, true] {
                all.push(CompileOptions {
                    triple: Triple::from_str(triple).unwrap(),
                    opt_level,
                    explicit_bounds_checks,
                    ..CompileOptions::default()
                });
            }
        }
    }
    all
}

fn save(seed: u64, tag: &str, wasm: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("wasmc-fuzz-{seed}{tag}.wasm"));
    let _ = std::fs::write(&path, wasm);
    path.display().to_string()
}

/// Compiles `wasm`, turning a panic into an error message.
fn try_compile(wasm: &[u8], opts: &CompileOptions) -> Result<Result<(), String>, String> {
    match catch_unwind(AssertUnwindSafe(|| compile(wasm, opts))) {
        Ok(Ok(_)) => Ok(Ok(())),
        Ok(Err(e)) => {
            let text = e.to_string();
            if text.contains('\n') {
                return Err(format!("multi-line error message: {text:?}"));
            }
            Ok(Err(format!("{:?}: {text}", e.kind)))
        }
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panic: {msg}"))
        }
    }
}

/// Byte-level mutants of a valid module: truncations, bit flips, byte overwrites and
/// insertions, each at positions drawn from `rng`.
fn mutants(wasm: &[u8], rng: &mut Unstructured<'_>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if wasm.len() <= 8 {
        return out;
    }
    let pos = |rng: &mut Unstructured<'_>| rng.int_in_range(8..=wasm.len() - 1).unwrap_or(8);
    // Truncation anywhere after the header.
    out.push(wasm[..pos(rng)].to_vec());
    // A few single-bit flips.
    let mut flipped = wasm.to_vec();
    for _ in 0..rng.int_in_range(1..=4u32).unwrap_or(1) {
        let p = pos(rng);
        flipped[p] ^= 1 << rng.int_in_range(0..=7u32).unwrap_or(0);
    }
    out.push(flipped);
    // Overwrite with an extreme byte (LEB continuation, 0xff, 0).
    let mut overwritten = wasm.to_vec();
    let p = pos(rng);
    overwritten[p] = *rng.choose(&[0x00u8, 0x7f, 0x80, 0xff]).unwrap_or(&0xff);
    out.push(overwritten);
    // Inserted byte shifts everything after it.
    let mut inserted = wasm.to_vec();
    let p = pos(rng);
    inserted.insert(p, rng.arbitrary().unwrap_or(0x80));
    out.push(inserted);
    out
}

#[test]
fn generated_modules_compile_and_mutants_never_panic() {
    let start = env_u64("WASMC_FUZZ_START").unwrap_or(0);
    let count = env_u64("WASMC_FUZZ_COUNT").unwrap_or(DEFAULT_COUNT);
    // The smoke run compiles each module with 2 of the 12 configurations (one per
    // architecture, rotating through opt levels and bounds-check modes); a long run
    // with WASMC_FUZZ_FULL=1 uses all 12.
    let full = std::env::var_os("WASMC_FUZZ_FULL").is_some();
    let configs = configurations();
    let host = CompileOptions::default();
    let mut failures = Vec::new();
    let (mut modules, mut compiles, mut mutant_count, mut rejected) = (0u64, 0u64, 0u64, 0u64);
    let mut total_bytes = 0u64;

    for seed in start..start + count {
        let raw = smith::seed_bytes(seed, 64 * 1024);
        let mut u = Unstructured::new(&raw);
        let Ok(wasm) = smith::module(&mut u) else {
            continue;
        };
        modules += 1;
        total_bytes += wasm.len() as u64;
        if std::env::var_os("WASMC_FUZZ_SAVE").is_some() {
            save(seed, "-gen", &wasm);
        }
        let chosen: Vec<&CompileOptions> = if full {
            configs.iter().collect()
        } else {
            // configs are ordered [x86 (6 variants), aarch64 (6 variants)].
            let k = (seed % 6) as usize;
            vec![&configs[k], &configs[6 + (k + 1) % 6]]
        };
        for opts in chosen {
            compiles += 1;
            let problem = match try_compile(&wasm, opts) {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => format!("valid module rejected: {e}"),
                Err(e) => e,
            };
            let file = save(seed, "", &wasm);
            failures.push(format!(
                "seed {seed} ({file}) {} {:?} bounds={}: {problem}",
                opts.triple, opts.opt_level, opts.explicit_bounds_checks
            ));
            break;
        }

        let mut rng = Unstructured::new(&raw[raw.len() / 2..]);
        for (n, mutant) in mutants(&wasm, &mut rng).into_iter().enumerate() {
            mutant_count += 1;
            match try_compile(&mutant, &host) {
                Ok(Ok(())) => {}
                Ok(Err(_)) => rejected += 1,
                Err(e) => {
                    let file = save(seed, &format!("-mutant{n}"), &mutant);
                    failures.push(format!("seed {seed} mutant {n} ({file}): {e}"));
                }
            }
        }
        if failures.len() >= 20 {
            break;
        }
    }
    eprintln!(
        "fuzz smoke: seeds {start}..{}: {modules} modules, {compiles} compilations, \
         {mutant_count} mutants ({rejected} rejected), {total_bytes} bytes of wasm, {} failures",
        start + count,
        failures.len()
    );
    assert!(modules > count / 2, "wasm-smith produced too few modules");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The mutants must have exercised the error paths, not only re-compiled.
    assert!(rejected > 0);
}
