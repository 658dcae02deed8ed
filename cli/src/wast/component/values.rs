//! Component values of a script (`u32.const 1`, `str.const "a"`, `record.const ...`)
//! to and from the canonical ABI engine's [`Value`]s, guided by the function's type.

use wasmparser::PrimitiveValType as P;
use wast::component::WastVal;

use wasmc_runtime::component::canonical::Value;

use super::call::CType;

/// The engine's value of a script argument of type `ty`.
pub fn to_value(ty: &CType, v: &WastVal<'_>) -> Result<Value, String> {
    let mismatch = || {
        format!(
            "argument {} does not have type {}",
            show_wast(v),
            show_type(ty)
        )
    };
    Ok(match (ty, v) {
        (CType::Prim(P::Bool), WastVal::Bool(b)) => Value::Bool(*b),
        (CType::Prim(P::U8), WastVal::U8(x)) => Value::Int(u64::from(*x)),
        (CType::Prim(P::S8), WastVal::S8(x)) => Value::Int(*x as u8 as u64),
        (CType::Prim(P::U16), WastVal::U16(x)) => Value::Int(u64::from(*x)),
        (CType::Prim(P::S16), WastVal::S16(x)) => Value::Int(*x as u16 as u64),
        (CType::Prim(P::U32), WastVal::U32(x)) => Value::Int(u64::from(*x)),
        (CType::Prim(P::S32), WastVal::S32(x)) => Value::Int(*x as u32 as u64),
        (CType::Prim(P::U64), WastVal::U64(x)) => Value::Int(*x),
        (CType::Prim(P::S64), WastVal::S64(x)) => Value::Int(*x as u64),
        (CType::Prim(P::F32), WastVal::F32(x)) => Value::F32(f32::from_bits(x.bits)),
        (CType::Prim(P::F64), WastVal::F64(x)) => Value::F64(f64::from_bits(x.bits)),
        (CType::Prim(P::Char), WastVal::Char(c)) => Value::Char(*c),
        (CType::Prim(P::String), WastVal::String(s)) => Value::String(s.to_string()),
        (CType::List(elem), WastVal::List(items)) => {
            let items = items
                .iter()
                .map(|i| to_value(elem, i))
                .collect::<Result<Vec<_>, _>>()?;
            // The engine keeps `list<u8>`/`list<s8>` as bytes.
            if matches!(**elem, CType::Prim(P::U8 | P::S8)) {
                Value::Bytes(
                    items
                        .iter()
                        .map(|i| match i {
                            Value::Int(b) => *b as u8,
                            _ => 0,
                        })
                        .collect(),
                )
            } else {
                Value::List(items)
            }
        }
        (CType::Map(k, v), WastVal::Map(entries)) => Value::List(
            entries
                .iter()
                .map(|(key, value)| Ok(Value::Record(vec![to_value(k, key)?, to_value(v, value)?])))
                .collect::<Result<_, String>>()?,
        ),
        (CType::Record(fields), WastVal::Record(values)) if fields.len() == values.len() => {
            let mut out = Vec::new();
            for ((name, t), (vname, v)) in fields.iter().zip(values) {
                if name != vname {
                    return Err(mismatch());
                }
                out.push(to_value(t, v)?);
            }
            Value::Record(out)
        }
        (CType::Tuple(fields), WastVal::Tuple(values)) if fields.len() == values.len() => {
            Value::Record(
                fields
                    .iter()
                    .zip(values)
                    .map(|(t, v)| to_value(t, v))
                    .collect::<Result<_, _>>()?,
            )
        }
        (CType::Variant(cases), WastVal::Variant(name, payload)) => {
            let index = cases
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(mismatch)?;
            let payload = match (&cases[index].1, payload) {
                (Some(t), Some(v)) => Some(Box::new(to_value(t, v)?)),
                (None, None) => None,
                _ => return Err(mismatch()),
            };
            Value::Variant(index as u32, payload)
        }
        (CType::Enum(names), WastVal::Enum(name)) => Value::Variant(
            names.iter().position(|n| n == name).ok_or_else(mismatch)? as u32,
            None,
        ),
        (CType::Option(t), WastVal::Option(v)) => match v {
            None => Value::Variant(0, None),
            Some(v) => Value::Variant(1, Some(Box::new(to_value(t, v)?))),
        },
        (CType::Result { ok, err }, WastVal::Result(r)) => {
            let (case, ty, payload) = match r {
                Ok(p) => (0, ok, p),
                Err(p) => (1, err, p),
            };
            let payload = match (ty, payload) {
                (Some(t), Some(v)) => Some(Box::new(to_value(t, v)?)),
                (None, None) => None,
                _ => return Err(mismatch()),
            };
            Value::Variant(case, payload)
        }
        (CType::Flags(names), WastVal::Flags(set)) => {
            let mut bits = 0u32;
            for flag in set {
                let i = names.iter().position(|n| n == flag).ok_or_else(mismatch)?;
                bits |= 1 << i;
            }
            Value::Flags(bits)
        }
        _ => return Err(mismatch()),
    })
}

/// Compares a result with its expectation; floats compare by value with any NaN
/// equal to any NaN (the Component Model does not canonicalize NaNs).
pub fn check(ty: &CType, expected: &WastVal<'_>, actual: &Value) -> Result<(), String> {
    let expected_value = to_value(ty, expected)?;
    if same(&expected_value, actual) {
        Ok(())
    } else {
        Err(format!(
            "expected {}, got {}",
            show_wast(expected),
            show(ty, actual)
        ))
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits(),
        (Value::F64(x), Value::F64(y)) => (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits(),
        (Value::List(x), Value::List(y)) | (Value::Record(x), Value::Record(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Variant(c, p), Value::Variant(d, q)) => {
            c == d
                && match (p, q) {
                    (Some(p), Some(q)) => same(p, q),
                    (None, None) => true,
                    _ => false,
                }
        }
        _ => a == b,
    }
}

fn show_wast(v: &WastVal<'_>) -> String {
    format!("{v:?}")
}

fn show_type(ty: &CType) -> String {
    format!("{:?}", ty.wit())
}

/// A value in the script's notation (roughly), for failure messages.
pub fn show(ty: &CType, v: &Value) -> String {
    match (ty, v) {
        (CType::Prim(p), Value::Int(x)) => {
            let x = match p {
                P::S8 => (*x as i8).to_string(),
                P::S16 => (*x as i16).to_string(),
                P::S32 => (*x as i32).to_string(),
                P::S64 => (*x as i64).to_string(),
                _ => x.to_string(),
            };
            format!("{p:?}.const {x}").to_lowercase()
        }
        (CType::Variant(cases), Value::Variant(i, p)) => match cases.get(*i as usize) {
            Some((name, Some(t))) => format!(
                "(variant.const {name:?} {})",
                p.as_ref().map_or("?".into(), |p| show(t, p))
            ),
            Some((name, None)) => format!("(variant.const {name:?})"),
            None => format!("(variant #{i})"),
        },
        (CType::Enum(names), Value::Variant(i, _)) => format!(
            "(enum.const {:?})",
            names.get(*i as usize).map_or("?", String::as_str)
        ),
        (CType::List(t), Value::List(items)) => format!(
            "(list.const {})",
            items
                .iter()
                .map(|i| show(t, i))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        (CType::Record(fields), Value::Record(values)) => format!(
            "(record.const {})",
            fields
                .iter()
                .zip(values)
                .map(|((n, t), v)| format!("(field {n:?} {})", show(t, v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        (CType::Tuple(fields), Value::Record(values)) => format!(
            "(tuple.const {})",
            fields
                .iter()
                .zip(values)
                .map(|(t, v)| show(t, v))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        _ => format!("{v:?}"),
    }
}
