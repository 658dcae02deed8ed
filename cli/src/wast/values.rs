//! Conversions between the `.wast` script's values and the runtime's [`Val`], and the
//! comparison of results with `assert_return` expectations (NaN patterns, v128 lane
//! patterns, reference expectations).

use wast::core::{AbstractHeapType, HeapType, NanPattern, V128Pattern, WastArgCore, WastRetCore};
use wast::{WastArg, WastRet};

use wasmc_runtime::gc::{AnyRefKind, classify};
use wasmc_runtime::instance::Val;

/// `ref.extern N` and `ref.host N` of a script are the host reference word of `N`
/// (`abi::gc::host_ref`): `any.convert_extern` keeps it, so both spellings name the
/// same value in either hierarchy.
fn extern_word(n: u32) -> usize {
    wasmc_runtime::abi::gc::host_ref(n) as usize
}

/// The runtime value of an `invoke` argument.
pub fn arg(arg: &WastArg<'_>) -> Result<Val, String> {
    let WastArg::Core(core) = arg else {
        return Err("component-model argument in a core module test".to_string());
    };
    Ok(match core {
        WastArgCore::I32(v) => Val::I32(*v),
        WastArgCore::I64(v) => Val::I64(*v),
        WastArgCore::F32(v) => Val::F32(v.bits),
        WastArgCore::F64(v) => Val::F64(v.bits),
        WastArgCore::V128(v) => Val::V128(u128::from_le_bytes(v.to_le_bytes())),
        WastArgCore::RefNull(heap) => match null_kind(heap) {
            Some(RefKind::Func) => Val::FuncRef(0),
            Some(RefKind::Extern | RefKind::Any | RefKind::Exn) => Val::ExternRef(0),
            None => {
                return Err(format!(
                    "unsupported argument: ref.null {}",
                    heap_name(heap)
                ));
            }
        },
        WastArgCore::RefExtern(n) => Val::ExternRef(extern_word(*n)),
        WastArgCore::RefHost(n) => Val::ExternRef(extern_word(*n)),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefKind {
    Func,
    Extern,
    Any,
    Exn,
}

/// Which reference hierarchy a `ref.null` heap type belongs to, for the two wasmc
/// supports.
fn null_kind(heap: &HeapType<'_>) -> Option<RefKind> {
    match heap {
        HeapType::Abstract { shared: false, ty } => match ty {
            AbstractHeapType::Func | AbstractHeapType::NoFunc => Some(RefKind::Func),
            AbstractHeapType::Extern | AbstractHeapType::NoExtern => Some(RefKind::Extern),
            AbstractHeapType::Any
            | AbstractHeapType::Eq
            | AbstractHeapType::I31
            | AbstractHeapType::Struct
            | AbstractHeapType::Array
            | AbstractHeapType::None => Some(RefKind::Any),
            AbstractHeapType::Exn | AbstractHeapType::NoExn => Some(RefKind::Exn),
            _ => None,
        },
        // A null of a concrete type index: the harness cannot tell which hierarchy
        // without the module's types; both representations are the word 0.
        _ => None,
    }
}

/// A heap type in the text format's words.
fn heap_name(heap: &HeapType<'_>) -> String {
    match heap {
        HeapType::Abstract { shared, ty } => {
            let name = match ty {
                AbstractHeapType::Func => "func",
                AbstractHeapType::Extern => "extern",
                AbstractHeapType::Exn => "exn",
                AbstractHeapType::Cont => "cont",
                AbstractHeapType::Any => "any",
                AbstractHeapType::Eq => "eq",
                AbstractHeapType::Struct => "struct",
                AbstractHeapType::Array => "array",
                AbstractHeapType::I31 => "i31",
                AbstractHeapType::NoFunc => "nofunc",
                AbstractHeapType::NoExtern => "noextern",
                AbstractHeapType::None => "none",
                AbstractHeapType::NoExn => "noexn",
                AbstractHeapType::NoCont => "nocont",
            };
            if *shared {
                format!("(shared {name})")
            } else {
                name.to_string()
            }
        }
        HeapType::Concrete(index) | HeapType::Exact(index) => match index {
            wast::token::Index::Num(n, _) => n.to_string(),
            wast::token::Index::Id(id) => format!("${}", id.name()),
        },
    }
}

/// Checks one result against its expectation; `Err` describes the mismatch.
pub fn check(expected: &WastRet<'_>, actual: &Val) -> Result<(), String> {
    let WastRet::Core(expected) = expected else {
        return Err("component-model result in a core module test".to_string());
    };
    if matches(expected, actual)? {
        Ok(())
    } else {
        Err(format!(
            "expected {}, got {}",
            show_expected(expected),
            show(actual)
        ))
    }
}

/// `Ok(true)` when `actual` matches; `Err` when the expectation cannot be checked
/// against wasmc's values at all (a GC reference expectation).
fn matches(expected: &WastRetCore<'_>, actual: &Val) -> Result<bool, String> {
    Ok(match (expected, actual) {
        (WastRetCore::I32(e), Val::I32(a)) => e == a,
        (WastRetCore::I64(e), Val::I64(a)) => e == a,
        (WastRetCore::F32(e), Val::F32(a)) => f32_matches(e, *a),
        (WastRetCore::F64(e), Val::F64(a)) => f64_matches(e, *a),
        (WastRetCore::V128(e), Val::V128(a)) => v128_matches(e, *a),
        (WastRetCore::RefNull(heap), actual) => {
            let kind = match heap {
                None => None,
                Some(h) => Some(null_kind(h).ok_or_else(|| {
                    format!(
                        "unsupported expectation: ref.null {} (GC proposal)",
                        heap_name(h)
                    )
                })?),
            };
            matches!(
                (kind, actual),
                (None | Some(RefKind::Func), Val::FuncRef(0))
                    | (
                        None | Some(RefKind::Extern | RefKind::Any | RefKind::Exn),
                        Val::ExternRef(0)
                    )
            )
        }
        // Any non-null function reference: a funcref does not reveal which function
        // it is without calling it (wasmtime checks the same way).
        (WastRetCore::RefFunc(_), Val::FuncRef(a)) => *a != 0,
        (WastRetCore::RefExtern(None), Val::ExternRef(a)) => *a != 0,
        (WastRetCore::RefExtern(Some(n)), Val::ExternRef(a)) => *a == extern_word(*n),
        (WastRetCore::Either(options), actual) => {
            for option in options {
                if matches(option, actual)? {
                    return Ok(true);
                }
            }
            false
        }
        (WastRetCore::RefHost(n), Val::ExternRef(a)) => *a == extern_word(*n),
        (WastRetCore::RefAny, Val::ExternRef(a)) => *a != 0,
        (WastRetCore::RefEq, Val::ExternRef(a)) => matches!(
            classify(*a),
            Some(AnyRefKind::I31(_) | AnyRefKind::Struct | AnyRefKind::Array)
        ),
        (WastRetCore::RefArray, Val::ExternRef(a)) => classify(*a) == Some(AnyRefKind::Array),
        (WastRetCore::RefStruct, Val::ExternRef(a)) => classify(*a) == Some(AnyRefKind::Struct),
        (WastRetCore::RefI31, Val::ExternRef(a)) => {
            matches!(classify(*a), Some(AnyRefKind::I31(_)))
        }
        (WastRetCore::RefI31Shared, _) => {
            return Err(format!(
                "unsupported expectation: {} (GC proposal)",
                show_expected(expected)
            ));
        }
        _ => false,
    })
}

const F32_SIGN: u32 = 0x8000_0000;
const F32_CANONICAL_NAN: u32 = 0x7fc0_0000;
const F64_SIGN: u64 = 0x8000_0000_0000_0000;
const F64_CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;

/// Values compare bit for bit (so `-0` differs from `0` and a NaN literal's payload
/// matters). `nan:canonical` is a NaN with only the payload's top bit set, either
/// sign; `nan:arithmetic` any NaN with the payload's top bit set.
fn f32_matches(expected: &NanPattern<wast::token::F32>, bits: u32) -> bool {
    match expected {
        NanPattern::Value(v) => v.bits == bits,
        NanPattern::CanonicalNan => bits & !F32_SIGN == F32_CANONICAL_NAN,
        NanPattern::ArithmeticNan => bits & F32_CANONICAL_NAN == F32_CANONICAL_NAN,
    }
}

fn f64_matches(expected: &NanPattern<wast::token::F64>, bits: u64) -> bool {
    match expected {
        NanPattern::Value(v) => v.bits == bits,
        NanPattern::CanonicalNan => bits & !F64_SIGN == F64_CANONICAL_NAN,
        NanPattern::ArithmeticNan => bits & F64_CANONICAL_NAN == F64_CANONICAL_NAN,
    }
}

fn v128_matches(expected: &V128Pattern, actual: u128) -> bool {
    let bytes = actual.to_le_bytes();
    let lane = |i: usize, n: usize| -> u64 {
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(&bytes[i * n..i * n + n]);
        u64::from_le_bytes(buf)
    };
    match expected {
        V128Pattern::I8x16(e) => (0..16).all(|i| e[i] as u8 as u64 == lane(i, 1)),
        V128Pattern::I16x8(e) => (0..8).all(|i| e[i] as u16 as u64 == lane(i, 2)),
        V128Pattern::I32x4(e) => (0..4).all(|i| e[i] as u32 as u64 == lane(i, 4)),
        V128Pattern::I64x2(e) => (0..2).all(|i| e[i] as u64 == lane(i, 8)),
        V128Pattern::F32x4(e) => (0..4).all(|i| f32_matches(&e[i], lane(i, 4) as u32)),
        V128Pattern::F64x2(e) => (0..2).all(|i| f64_matches(&e[i], lane(i, 8))),
    }
}

/// A runtime value as text, in the script's notation with raw bits where useful.
pub fn show(v: &Val) -> String {
    match v {
        Val::I32(v) => format!("i32.const {v}"),
        Val::I64(v) => format!("i64.const {v}"),
        Val::F32(b) => format!("f32.const {} ({b:#010x})", f32::from_bits(*b)),
        Val::F64(b) => format!("f64.const {} ({b:#018x})", f64::from_bits(*b)),
        Val::V128(b) => {
            let bytes = b.to_le_bytes();
            let lanes: Vec<String> = bytes
                .chunks(4)
                .map(|c| format!("{:#010x}", u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            format!("v128.const i32x4 {}", lanes.join(" "))
        }
        Val::FuncRef(0) => "ref.null func".to_string(),
        Val::FuncRef(_) => "ref.func".to_string(),
        Val::ExternRef(0) => "ref.null extern".to_string(),
        Val::ExternRef(w) => format!("ref.extern {}", w - 1),
    }
}

fn show_expected(e: &WastRetCore<'_>) -> String {
    fn nan32(p: &NanPattern<wast::token::F32>) -> String {
        match p {
            NanPattern::Value(v) => format!("{} ({:#010x})", f32::from_bits(v.bits), v.bits),
            NanPattern::CanonicalNan => "nan:canonical".into(),
            NanPattern::ArithmeticNan => "nan:arithmetic".into(),
        }
    }
    fn nan64(p: &NanPattern<wast::token::F64>) -> String {
        match p {
            NanPattern::Value(v) => format!("{} ({:#018x})", f64::from_bits(v.bits), v.bits),
            NanPattern::CanonicalNan => "nan:canonical".into(),
            NanPattern::ArithmeticNan => "nan:arithmetic".into(),
        }
    }
    fn join<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
        items.iter().map(f).collect::<Vec<_>>().join(" ")
    }
    match e {
        WastRetCore::I32(v) => format!("i32.const {v}"),
        WastRetCore::I64(v) => format!("i64.const {v}"),
        WastRetCore::F32(p) => format!("f32.const {}", nan32(p)),
        WastRetCore::F64(p) => format!("f64.const {}", nan64(p)),
        WastRetCore::V128(p) => match p {
            V128Pattern::I8x16(l) => format!("v128.const i8x16 {}", join(l, |v| v.to_string())),
            V128Pattern::I16x8(l) => format!("v128.const i16x8 {}", join(l, |v| v.to_string())),
            V128Pattern::I32x4(l) => format!(
                "v128.const i32x4 {}",
                join(l, |v| format!("{:#010x}", *v as u32))
            ),
            V128Pattern::I64x2(l) => format!("v128.const i64x2 {}", join(l, |v| v.to_string())),
            V128Pattern::F32x4(l) => format!("v128.const f32x4 {}", join(l, nan32)),
            V128Pattern::F64x2(l) => format!("v128.const f64x2 {}", join(l, nan64)),
        },
        WastRetCore::RefNull(None) => "ref.null".into(),
        WastRetCore::RefNull(Some(h)) => format!("ref.null {}", heap_name(h)),
        WastRetCore::RefExtern(None) => "ref.extern".into(),
        WastRetCore::RefExtern(Some(n)) => format!("ref.extern {n}"),
        WastRetCore::RefHost(n) => format!("ref.host {n}"),
        WastRetCore::RefFunc(_) => "ref.func".into(),
        WastRetCore::RefAny => "ref.any".into(),
        WastRetCore::RefEq => "ref.eq".into(),
        WastRetCore::RefArray => "ref.array".into(),
        WastRetCore::RefStruct => "ref.struct".into(),
        WastRetCore::RefI31 => "ref.i31".into(),
        WastRetCore::RefI31Shared => "ref.i31_shared".into(),
        WastRetCore::Either(options) => {
            format!(
                "(either {})",
                join(options, |o| format!("({})", show_expected(o)))
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wast::token::{F32, F64};

    #[test]
    fn nan_patterns() {
        let canon = NanPattern::<F32>::CanonicalNan;
        let arith = NanPattern::<F32>::ArithmeticNan;
        assert!(f32_matches(&canon, 0x7fc0_0000));
        assert!(f32_matches(&canon, 0xffc0_0000));
        assert!(!f32_matches(&canon, 0x7fc0_0001));
        assert!(f32_matches(&arith, 0x7fc0_0001));
        assert!(!f32_matches(&arith, 0x7fa0_0000)); // signalling NaN
        assert!(!f32_matches(&arith, 0x3f80_0000));
        assert!(f64_matches(
            &NanPattern::<F64>::CanonicalNan,
            0xfff8_0000_0000_0000
        ));
        assert!(!f64_matches(
            &NanPattern::<F64>::ArithmeticNan,
            0x7ff4_0000_0000_0000
        ));
        // Plain values compare bit for bit: -0 is not 0.
        assert!(!f32_matches(
            &NanPattern::Value(F32 { bits: 0 }),
            0x8000_0000
        ));
    }

    #[test]
    fn v128_lanes() {
        let v = u128::from_le_bytes([1, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 0, 0]);
        assert!(v128_matches(&V128Pattern::I32x4([1, 2, -1, 4]), v));
        assert!(!v128_matches(&V128Pattern::I32x4([1, 2, 3, 4]), v));
        assert!(v128_matches(
            &V128Pattern::I8x16([1, 0, 0, 0, 2, 0, 0, 0, -1, -1, -1, -1, 4, 0, 0, 0]),
            v
        ));
        assert!(v128_matches(
            &V128Pattern::I16x8([1, 0, 2, 0, -1, -1, 4, 0]),
            v
        ));
    }
}
