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

    let mut isa_builder = isa::lookup(triple.clone())
        .map_err(|e| CompileError::target(format!("target `{triple}`: {e}")))?;
    if triple.architecture == Architecture::X86_64 {
        isa_builder
            .enable("x86-64-v2")
            .map_err(|e| CompileError::target(format!("x86-64-v2 baseline: {e}")))?;
    }
    isa_builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| CompileError::target(format!("target `{triple}`: {e}")))
}
