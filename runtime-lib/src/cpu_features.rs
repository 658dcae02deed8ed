//! The CPU features compiled code needs (`ModuleInfo::cpu_features`, set by
//! `wasmc --target-cpu`), checked once when a module is loaded: code built for
//! AVX2 on a CPU without it would die of an illegal instruction somewhere in the
//! program, reported as a crash of wasmc; refusing to start names what is missing.
//!
//! The names are Cranelift's ISA flags (`has_avx2`, `has_lse`...). A name this
//! runtime cannot check is refused too: running without knowing is the crash above.

/// Checks that this CPU has every feature in `required`; the error names the
/// missing ones.
pub fn check(required: &[String]) -> Result<(), String> {
    let missing: Vec<&str> = required
        .iter()
        .map(String::as_str)
        .filter(|name| !has(name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "this code was compiled for CPU features this machine does not have ({}); \
         compile it again with a `--target-cpu` this CPU supports (the default needs \
         only {})",
        missing
            .iter()
            .map(|name| name.strip_prefix("has_").unwrap_or(name))
            .collect::<Vec<_>>()
            .join(", "),
        if cfg!(target_arch = "x86_64") {
            "x86-64-v2"
        } else {
            "ARMv8.0"
        }
    ))
}

/// Whether this CPU has the feature behind Cranelift's ISA flag `name`.
#[cfg(target_arch = "x86_64")]
fn has(name: &str) -> bool {
    use std::arch::is_x86_feature_detected as detected;
    match name {
        "has_sse3" => detected!("sse3"),
        "has_ssse3" => detected!("ssse3"),
        "has_cmpxchg16b" => detected!("cmpxchg16b"),
        "has_sse41" => detected!("sse4.1"),
        "has_sse42" => detected!("sse4.2"),
        "has_popcnt" => detected!("popcnt"),
        "has_avx" => detected!("avx"),
        "has_avx2" => detected!("avx2"),
        "has_fma" => detected!("fma"),
        "has_bmi1" => detected!("bmi1"),
        "has_bmi2" => detected!("bmi2"),
        "has_lzcnt" => detected!("lzcnt"),
        "has_avx_vnni" => detected!("avxvnni"),
        "has_avx512f" => detected!("avx512f"),
        "has_avx512dq" => detected!("avx512dq"),
        "has_avx512vl" => detected!("avx512vl"),
        "has_avx512bitalg" => detected!("avx512bitalg"),
        "has_avx512vbmi" => detected!("avx512vbmi"),
        "has_avx512vnni" => detected!("avx512vnni"),
        _ => false,
    }
}

/// Whether this CPU has the feature behind Cranelift's ISA flag `name`.
#[cfg(target_arch = "aarch64")]
fn has(name: &str) -> bool {
    use std::arch::is_aarch64_feature_detected as detected;
    match name {
        "has_lse" => detected!("lse"),
        "has_pauth" => detected!("paca"),
        "has_fp16" => detected!("fp16"),
        "has_dotprod" => detected!("dotprod"),
        "has_i8mm" => detected!("i8mm"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_passes_and_unknown_features_are_refused() {
        assert_eq!(check(&[]), Ok(()));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            check(&["has_sse41".to_string(), "has_popcnt".to_string()]),
            Ok(())
        );
        let err = check(&["has_teleport".to_string()]).unwrap_err();
        assert!(err.contains("(teleport)"), "{err}");
    }
}
