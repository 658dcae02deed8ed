//! The CPU features compiled code needs (`ModuleInfo::cpu_features`, set by
//! `wasmc --target-cpu`), checked once when a module is loaded: code built for
//! AVX2 on a CPU without it would die of an illegal instruction somewhere in the
//! program, reported as a crash of wasmc; refusing to start names what is missing.
//!
//! The names are Cranelift's ISA flags (`has_avx2`, `has_lse`...). A name this
//! runtime cannot check is refused too: running without knowing is the crash above.
//!
//! *Why not `is_x86_feature_detected!`.* Under a hypervisor every `cpuid`
//! instruction exits to the host; on the development VM one costs 6-18 µs, and
//! the standard library's detection runs about ten of them on first use, a tenth
//! of a hello world's whole run (bench/README.md). Here only the leaves the
//! required features live in are read, and on glibc not even those: its dynamic
//! loader (or static start-up) has already run `cpuid` for its own string
//! functions and publishes the raw leaves (`__x86_get_cpuid_feature_leaf`, glibc
//! 2.33, `<sys/platform/x86.h>`). The default x86-64-v2 baseline needs leaf 1
//! only. As in the standard library, AVX and AVX-512 features also need the OS to
//! save their registers (`OSXSAVE` and the `XCR0` bits, read with `xgetbv`, which
//! does not exit).

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
    x86::feature(name).is_some_and(x86::present)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    /// A CPUID leaf (and sub-leaf) that holds feature bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Leaf {
        /// Leaf 1.
        Basic,
        /// Leaf 7, sub-leaf 0.
        Extended,
        /// Leaf 7, sub-leaf 1.
        Extended1,
        /// Leaf 0x8000_0001.
        AmdExtended,
    }

    /// Register of a leaf, in CPUID's output order.
    #[derive(Clone, Copy, Debug)]
    pub(super) enum Reg {
        Eax = 0,
        Ebx = 1,
        Ecx = 2,
    }

    /// Register state the OS must save for a feature to be usable.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum OsState {
        None,
        /// XMM and YMM (`XCR0` bits 1-2).
        Avx,
        /// XMM, YMM, opmask and ZMM (`XCR0` bits 1-2 and 5-7).
        Avx512,
    }

    /// Where a feature's bit is.
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Feature {
        pub leaf: Leaf,
        pub reg: Reg,
        pub bit: u32,
        pub os: OsState,
    }

    /// Cranelift's x86 ISA flags and their CPUID bits (Intel SDM vol. 2A, CPUID;
    /// the same bits the standard library tests).
    pub(super) fn feature(name: &str) -> Option<Feature> {
        use Leaf::*;
        use OsState::{Avx, Avx512, None as Plain};
        use Reg::*;
        let (leaf, reg, bit, os) = match name {
            "has_sse3" => (Basic, Ecx, 0, Plain),
            "has_ssse3" => (Basic, Ecx, 9, Plain),
            "has_fma" => (Basic, Ecx, 12, Avx),
            "has_cmpxchg16b" => (Basic, Ecx, 13, Plain),
            "has_sse41" => (Basic, Ecx, 19, Plain),
            "has_sse42" => (Basic, Ecx, 20, Plain),
            "has_popcnt" => (Basic, Ecx, 23, Plain),
            "has_avx" => (Basic, Ecx, 28, Avx),
            "has_bmi1" => (Extended, Ebx, 3, Plain),
            "has_avx2" => (Extended, Ebx, 5, Avx),
            "has_bmi2" => (Extended, Ebx, 8, Plain),
            "has_avx512f" => (Extended, Ebx, 16, Avx512),
            "has_avx512dq" => (Extended, Ebx, 17, Avx512),
            "has_avx512vl" => (Extended, Ebx, 31, Avx512),
            "has_avx512vbmi" => (Extended, Ecx, 1, Avx512),
            "has_avx512vnni" => (Extended, Ecx, 11, Avx512),
            "has_avx512bitalg" => (Extended, Ecx, 12, Avx512),
            "has_avx_vnni" => (Extended1, Eax, 4, Avx),
            "has_lzcnt" => (AmdExtended, Ecx, 5, Plain),
            _ => return None,
        };
        Some(Feature { leaf, reg, bit, os })
    }

    pub(super) fn present(feature: Feature) -> bool {
        let regs = leaf(feature.leaf);
        regs[feature.reg as usize] & (1 << feature.bit) != 0 && os_saves(feature.os)
    }

    /// Leaf 1's `OSXSAVE` bit: `xgetbv` may be used.
    const OSXSAVE: u32 = 1 << 27;

    fn os_saves(state: OsState) -> bool {
        let mask = match state {
            OsState::None => return true,
            OsState::Avx => 0b110,
            OsState::Avx512 => 0b1110_0110,
        };
        if leaf(Leaf::Basic)[Reg::Ecx as usize] & OSXSAVE == 0 {
            return false;
        }
        let (low, _high): (u32, u32);
        // SAFETY: `xgetbv` with ECX = 0 reads XCR0; OSXSAVE says the OS enabled it.
        unsafe {
            core::arch::asm!("xgetbv", in("ecx") 0, out("eax") low, out("edx") _high,
                options(nomem, nostack, preserves_flags));
        }
        low & mask == mask
    }

    /// The registers (eax, ebx, ecx, edx) of a feature leaf, all zero when the CPU
    /// does not have the leaf: glibc's copy, or `cpuid` on other C libraries.
    pub(super) fn leaf(leaf: Leaf) -> [u32; 4] {
        if cfg!(target_env = "gnu") {
            glibc_leaf(leaf)
        } else {
            cpuid_leaf(leaf)
        }
    }

    /// glibc's copy of the leaf's registers (read by its start-up).
    #[cfg(target_env = "gnu")]
    pub(super) fn glibc_leaf(leaf: Leaf) -> [u32; 4] {
        /// `struct cpuid_feature` of `<bits/platform/x86.h>`.
        #[repr(C)]
        struct CpuidFeature {
            cpuid: [u32; 4],
            active: [u32; 4],
        }
        unsafe extern "C" {
            /// Returns a pointer to a zeroed entry for an index this glibc does
            /// not know.
            fn __x86_get_cpuid_feature_leaf(index: u32) -> *const CpuidFeature;
        }
        // glibc's `CPUID_INDEX_*`.
        let index = match leaf {
            Leaf::Basic => 0,
            Leaf::Extended => 1,
            Leaf::AmdExtended => 2,
            Leaf::Extended1 => 6,
        };
        // SAFETY: the function returns a pointer into glibc's read-only CPU
        // features, filled in before any user code runs, or to a zeroed entry.
        unsafe { (*__x86_get_cpuid_feature_leaf(index)).cpuid }
    }

    #[cfg(not(target_env = "gnu"))]
    fn glibc_leaf(_leaf: Leaf) -> [u32; 4] {
        unreachable!("only read on glibc")
    }

    /// The leaf's registers from the `cpuid` instruction. Each leaf is read once,
    /// and the highest leaf only when a feature beyond leaf 1 is asked for.
    /// (On glibc only the tests use it.)
    #[cfg_attr(all(target_env = "gnu", not(test)), allow(dead_code))]
    pub(super) fn cpuid_leaf(leaf: Leaf) -> [u32; 4] {
        use core::arch::x86_64::__cpuid_count;
        use std::sync::OnceLock;
        static LEAVES: [OnceLock<[u32; 4]>; 4] = [const { OnceLock::new() }; 4];
        let read = |leaf: u32, sub_leaf: u32| {
            let r = __cpuid_count(leaf, sub_leaf);
            [r.eax, r.ebx, r.ecx, r.edx]
        };
        let slot = match leaf {
            Leaf::Basic => 0,
            Leaf::Extended => 1,
            Leaf::Extended1 => 2,
            Leaf::AmdExtended => 3,
        };
        *LEAVES[slot].get_or_init(|| match leaf {
            Leaf::Basic => read(1, 0),
            Leaf::Extended if read(0, 0)[0] >= 7 => read(7, 0),
            Leaf::Extended1 if cpuid_leaf(Leaf::Extended)[0] >= 1 => read(7, 1),
            Leaf::AmdExtended if read(0x8000_0000, 0)[0] >= 0x8000_0001 => read(0x8000_0001, 0),
            _ => [0; 4],
        })
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

    /// The CPUID bits read here (glibc's copy on gnu) agree with the standard
    /// library's detection on this machine for every flag the check knows.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn agrees_with_the_standard_library() {
        use std::arch::is_x86_feature_detected as detected;
        let std_names = [
            ("has_sse3", detected!("sse3")),
            ("has_ssse3", detected!("ssse3")),
            ("has_fma", detected!("fma")),
            ("has_cmpxchg16b", detected!("cmpxchg16b")),
            ("has_sse41", detected!("sse4.1")),
            ("has_sse42", detected!("sse4.2")),
            ("has_popcnt", detected!("popcnt")),
            ("has_avx", detected!("avx")),
            ("has_bmi1", detected!("bmi1")),
            ("has_avx2", detected!("avx2")),
            ("has_bmi2", detected!("bmi2")),
            ("has_avx512f", detected!("avx512f")),
            ("has_avx512dq", detected!("avx512dq")),
            ("has_avx512vl", detected!("avx512vl")),
            ("has_avx512vbmi", detected!("avx512vbmi")),
            ("has_avx512vnni", detected!("avx512vnni")),
            ("has_avx512bitalg", detected!("avx512bitalg")),
            ("has_avx_vnni", detected!("avxvnni")),
            ("has_lzcnt", detected!("lzcnt")),
        ];
        for (name, expected) in std_names {
            assert_eq!(has(name), expected, "{name}");
        }
        // On glibc, its copy of the leaves has the bits `cpuid` gives.
        if cfg!(target_env = "gnu") {
            for (name, _) in std_names {
                let feature = x86::feature(name).unwrap();
                let bit = |regs: [u32; 4]| regs[feature.reg as usize] & (1 << feature.bit);
                assert_eq!(
                    bit(x86::glibc_leaf(feature.leaf)),
                    bit(x86::cpuid_leaf(feature.leaf)),
                    "{name}"
                );
            }
        }
        // The baseline is all in leaf 1, so its check needs no other leaf.
        for name in [
            "has_sse3",
            "has_ssse3",
            "has_cmpxchg16b",
            "has_sse41",
            "has_sse42",
            "has_popcnt",
        ] {
            assert_eq!(x86::feature(name).unwrap().leaf, x86::Leaf::Basic, "{name}");
        }
    }
}
