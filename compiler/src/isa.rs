//! Target selection and Cranelift settings.
//!
//! The settings follow from how the object is used:
//! * `is_pic`: the object is linked into a PIE executable or a shared object (the spec
//!   harness dlopen()s modules).
//! * `preserve_frame_pointers`: the runtime prints wasm backtraces by walking frame
//!   pointers.
//! * inline stack probes: functions with frames larger than a page touch every page in
//!   order, without a call to an outline `__probestack` that would be an external
//!   symbol. The stack-limit check (set per function) runs before the probes, so a big
//!   frame traps with "call stack exhausted" before it reaches the guard page.
//! * `enable_multi_ret_implicit_sret`: wasm functions may return more values than
//!   there are return registers.
//! * x86_64 targets the x86-64-v2 baseline (SSE4.1 gives `roundss` for
//!   floor/ceil/trunc/nearest, so no libm libcalls are needed, and popcnt).
//!   `--target-cpu` (`CompileOptions::target_cpu`) adds features on top: `native`
//!   (this machine's, as `wasmtime compile` does by default), `x86-64-v3`/`-v4`, or
//!   a Cranelift CPU name. The enabled `has_*` flags are recorded in
//!   `ModuleInfo::cpu_features`, which the runtime checks before running the code.

use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use target_lexicon::{Architecture, BinaryFormat, Environment, OperatingSystem};

use crate::{CompileError, CompileOptions, OptLevel};

pub(crate) fn build(opts: &CompileOptions) -> Result<OwnedTargetIsa, CompileError> {
    let mut triple = opts.triple.clone();
    if triple.binary_format == BinaryFormat::Unknown {
        triple.binary_format = BinaryFormat::Elf;
    }
    let triple = &triple;
    let arch_ok = matches!(
        triple.architecture,
        Architecture::X86_64 | Architecture::Aarch64(_)
    );
    let os_ok = matches!(triple.operating_system, OperatingSystem::Linux);
    let env_ok = matches!(
        triple.environment,
        Environment::Gnu | Environment::Musl | Environment::Unknown
    );
    let format_ok = matches!(
        triple.binary_format,
        BinaryFormat::Elf | BinaryFormat::Unknown
    );
    if !(arch_ok && os_ok && env_ok && format_ok) {
        return Err(CompileError::target(format!(
            "target `{triple}` is not supported; wasmc supports x86_64 and aarch64 Linux \
             (e.g. x86_64-unknown-linux-gnu, aarch64-unknown-linux-musl)"
        )));
    }

    let mut flags = settings::builder();
    let opt_level = match opts.opt_level {
        OptLevel::None => "none",
        OptLevel::Speed => "speed",
        OptLevel::SpeedAndSize => "speed_and_size",
    };
    let shared: &[(&str, &str)] = &[
        ("opt_level", opt_level),
        ("is_pic", "true"),
        ("preserve_frame_pointers", "true"),
        ("enable_probestack", "true"),
        ("probestack_strategy", "inline"),
        ("enable_multi_ret_implicit_sret", "true"),
        // No unwinder walks this code: backtraces use frame pointers.
        ("unwind_info", "false"),
        // The verifier costs compile time; keep it where bugs are hunted.
        (
            "enable_verifier",
            if cfg!(debug_assertions) {
                "true"
            } else {
                "false"
            },
        ),
    ];
    for (name, value) in shared {
        flags
            .set(name, value)
            .map_err(|e| CompileError::target(format!("cranelift setting {name}={value}: {e}")))?;
    }

    let flags = settings::Flags::new(flags);
    let configured = |implied: &[&str]| -> Result<isa::Builder, CompileError> {
        let mut isa_builder = isa::lookup(triple.clone())
            .map_err(|e| CompileError::target(format!("target `{triple}`: {e}")))?;
        if let Some(cpu) = &opts.target_cpu {
            select_cpu(&mut isa_builder, triple, cpu)?;
        }
        if triple.architecture == Architecture::X86_64 {
            // Always at least the baseline, whatever CPU was named (module docs).
            isa_builder
                .enable("x86-64-v2")
                .map_err(|e| CompileError::target(format!("x86-64-v2 baseline: {e}")))?;
        }
        for name in implied {
            isa_builder
                .enable(name)
                .map_err(|e| CompileError::target(format!("{name}: {e}")))?;
        }
        Ok(isa_builder)
    };
    let finish = |isa_builder: isa::Builder| {
        isa_builder
            .finish(flags.clone())
            .map_err(|e| CompileError::target(format!("target `{triple}`: {e}")))
    };
    let isa = finish(configured(&[])?)?;
    // Cranelift's presets name AVX2 without AVX and AVX-512 extensions without
    // AVX512F; the architecture implies them, and only with them does Cranelift use
    // the VEX/EVEX encodings (no false dependencies in scalar float code).
    let enabled = required_features(&*isa);
    let has = |name: &str| enabled.iter().any(|f| f == name);
    let mut implied = Vec::new();
    if has("has_avx2") && !has("has_avx") {
        implied.push("has_avx");
    }
    if enabled.iter().any(|f| f.starts_with("has_avx512")) && !has("has_avx512f") {
        implied.push("has_avx512f");
    }
    if implied.is_empty() {
        return Ok(isa);
    }
    finish(configured(&implied)?)
}

/// Applies `--target-cpu cpu` to the ISA builder.
fn select_cpu(
    isa_builder: &mut isa::Builder,
    triple: &target_lexicon::Triple,
    cpu: &str,
) -> Result<(), CompileError> {
    let arch_name = match triple.architecture {
        Architecture::X86_64 => "x86_64",
        _ => "aarch64",
    };
    if cpu == "native" {
        let host = target_lexicon::Triple::host().architecture;
        if host != triple.architecture {
            return Err(CompileError::target(format!(
                "--target-cpu native: the target is {arch_name} but this machine is {host}; \
                 name the target's CPU instead"
            )));
        }
        return cranelift_native::infer_native_flags(isa_builder)
            .map_err(|e| CompileError::target(format!("--target-cpu native: {e}")));
    }
    if cpu == "generic" || (cpu == "x86-64-v2" && arch_name == "x86_64") {
        return Ok(());
    }
    // Only CPU names (Cranelift presets), not single settings such as `has_avx` or
    // `sign_return_address`, which would pass `enable` as well.
    let known = isa_builder
        .iter()
        .any(|s| s.name == cpu && s.kind == settings::SettingKind::Preset);
    if !known {
        let mut names: Vec<&str> = isa_builder
            .iter()
            .filter(|s| s.kind == settings::SettingKind::Preset)
            .map(|s| s.name)
            .filter(|n| {
                !matches!(
                    *n,
                    "baseline" | "x86-64" | "sse3" | "ssse3" | "sse41" | "sse42"
                )
            })
            .collect();
        names.sort_unstable();
        return Err(CompileError::target(format!(
            "--target-cpu {cpu}: not a CPU wasmc knows for {arch_name}; use `native`, \
             `generic`{}{}",
            if arch_name == "x86_64" {
                ", `x86-64-v2` (the default)"
            } else {
                " (the default)"
            },
            if names.is_empty() {
                String::new()
            } else {
                format!(" or one of: {}", names.join(", "))
            }
        )));
    }
    isa_builder
        .enable(cpu)
        .map_err(|e| CompileError::target(format!("--target-cpu {cpu}: {e}")))
}

/// The CPU features `isa` generates code for: its `has_*` flags that are on.
pub(crate) fn required_features(isa: &dyn isa::TargetIsa) -> Vec<String> {
    isa.isa_flags()
        .iter()
        .filter(|v| v.name.starts_with("has_") && v.as_bool() == Some(true))
        .map(|v| v.name.to_string())
        .collect()
}

/// The largest OS page size executables for this target may run with: what a
/// memory image is aligned to (see `memory_image`). aarch64 Linux kernels use 4, 16
/// or 64 KiB pages.
pub(crate) fn max_page_size(isa: &dyn isa::TargetIsa) -> u64 {
    match isa.triple().architecture {
        Architecture::Aarch64(_) => 64 << 10,
        _ => 4 << 10,
    }
}
