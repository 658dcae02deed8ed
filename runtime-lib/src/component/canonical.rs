//! The canonical ABI, host side: lifting the core values and memory a guest passes
//! to a lowered host function into [`Value`]s, and lowering the host's results back,
//! driven by the [`WitType`]s the compiler recorded in the plan (the types come from
//! the component itself, which embeds the WIT of what it imports).
//!
//! Every pointer and length is checked against the memory's current length; a bad
//! one, an invalid `char`, UTF-8 string, discriminant or handle is a trap with the
//! canonical ABI's message, never a host fault. Sizes, alignments and flattening
//! follow the Component Model's `CanonicalABI.md`.

use crate::abi::ValRaw;
use crate::abi::component::WitType;
use crate::instance::{FuncHandle, MemoryHandle, Val as CoreVal};

/// Parameters beyond this many flat values are passed through memory.
pub const MAX_FLAT_PARAMS: usize = 16;
/// Results beyond this many flat values are returned through memory.
pub const MAX_FLAT_RESULTS: usize = 1;

/// A component-model value. Integers are kept as their bit pattern, zero-extended
/// (the type says how wide and whether signed); `list<u8>` is [`Value::Bytes`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(u64),
    F32(f32),
    F64(f64),
    Char(char),
    String(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    /// Records and tuples: the fields in order.
    Record(Vec<Value>),
    /// Variants, enums (no payload), options (0 = none) and results (0 = ok).
    Variant(u32, Option<Box<Value>>),
    Flags(u32),
    Handle(u32),
}

impl Value {
    pub fn some(v: Value) -> Value {
        Value::Variant(1, Some(Box::new(v)))
    }
    pub fn none() -> Value {
        Value::Variant(0, None)
    }
    pub fn ok(v: Option<Value>) -> Value {
        Value::Variant(0, v.map(Box::new))
    }
    pub fn err(v: Option<Value>) -> Value {
        Value::Variant(1, v.map(Box::new))
    }
    pub fn u64(v: u64) -> Value {
        Value::Int(v)
    }
}

/// A canonical ABI trap, with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonTrap(pub String);

impl CanonTrap {
    pub fn new(message: impl Into<String>) -> CanonTrap {
        CanonTrap(message.into())
    }
}

pub type CanonResult<T> = Result<T, CanonTrap>;

thread_local! {
    /// Set when guest code the host called (`cabi_realloc`) trapped: the lowered
    /// call then ends with that trap, as a trap of the guest, not as a refusal.
    pub static GUEST_TRAP: std::cell::Cell<Option<crate::abi::Trap>> =
        const { std::cell::Cell::new(None) };
}

/// A core value type of the flattened signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flat {
    I32,
    I64,
    F32,
    F64,
}

fn join(a: Flat, b: Flat) -> Flat {
    match (a, b) {
        _ if a == b => a,
        (Flat::I32, Flat::F32) | (Flat::F32, Flat::I32) => Flat::I32,
        _ => Flat::I64,
    }
}

fn discriminant_size(cases: usize) -> u32 {
    match cases {
        0..=256 => 1,
        257..=65536 => 2,
        _ => 4,
    }
}

fn align_to(offset: u32, align: u32) -> u32 {
    offset.div_ceil(align) * align
}

/// The cases of a variant-like type, each with its optional payload.
fn cases(ty: &WitType) -> Option<Vec<Option<&WitType>>> {
    Some(match ty {
        WitType::Variant(cases) => cases.iter().map(Option::as_ref).collect(),
        WitType::Enum(n) => vec![None; *n as usize],
        WitType::Option(t) => vec![None, Some(&**t)],
        WitType::Result { ok, err } => vec![ok.as_deref(), err.as_deref()],
        _ => return None,
    })
}

fn fields(ty: &WitType) -> Option<&[WitType]> {
    match ty {
        WitType::Record(f) | WitType::Tuple(f) => Some(f),
        _ => None,
    }
}

pub fn alignment(ty: &WitType) -> u32 {
    match ty {
        WitType::Bool | WitType::S8 | WitType::U8 => 1,
        WitType::S16 | WitType::U16 => 2,
        WitType::S32 | WitType::U32 | WitType::F32 | WitType::Char => 4,
        WitType::S64 | WitType::U64 | WitType::F64 => 8,
        WitType::String | WitType::List(_) | WitType::Own(_) | WitType::Borrow(_) => 4,
        WitType::Flags(n) => flags_size(*n),
        _ if fields(ty).is_some() => fields(ty).unwrap().iter().map(alignment).max().unwrap_or(1),
        _ => {
            let cases = cases(ty).expect("every type is covered");
            let payload = cases
                .iter()
                .flatten()
                .map(|t| alignment(t))
                .max()
                .unwrap_or(1);
            discriminant_size(cases.len()).max(payload)
        }
    }
}

fn flags_size(n: u32) -> u32 {
    match n {
        0..=8 => 1,
        9..=16 => 2,
        _ => 4,
    }
}

pub fn size(ty: &WitType) -> u32 {
    match ty {
        WitType::Bool | WitType::S8 | WitType::U8 => 1,
        WitType::S16 | WitType::U16 => 2,
        WitType::S32 | WitType::U32 | WitType::F32 | WitType::Char => 4,
        WitType::S64 | WitType::U64 | WitType::F64 => 8,
        WitType::String | WitType::List(_) => 8,
        WitType::Own(_) | WitType::Borrow(_) => 4,
        WitType::Flags(n) => flags_size(*n),
        _ if fields(ty).is_some() => {
            let mut s = 0;
            for f in fields(ty).unwrap() {
                s = align_to(s, alignment(f)) + size(f);
            }
            align_to(s, alignment(ty))
        }
        _ => {
            let cases = cases(ty).expect("every type is covered");
            let mut s = discriminant_size(cases.len());
            s = align_to(s, payload_alignment(&cases));
            s += cases.iter().flatten().map(|t| size(t)).max().unwrap_or(0);
            align_to(s, alignment(ty))
        }
    }
}

fn payload_alignment(cases: &[Option<&WitType>]) -> u32 {
    cases
        .iter()
        .flatten()
        .map(|t| alignment(t))
        .max()
        .unwrap_or(1)
}

/// The core types a value of `ty` flattens to.
pub fn flatten(ty: &WitType, out: &mut Vec<Flat>) {
    match ty {
        WitType::S64 | WitType::U64 => out.push(Flat::I64),
        WitType::F32 => out.push(Flat::F32),
        WitType::F64 => out.push(Flat::F64),
        WitType::String | WitType::List(_) => out.extend([Flat::I32, Flat::I32]),
        WitType::Record(f) | WitType::Tuple(f) => f.iter().for_each(|t| flatten(t, out)),
        WitType::Variant(_) | WitType::Enum(_) | WitType::Option(_) | WitType::Result { .. } => {
            let cases = cases(ty).unwrap();
            let mut payload: Vec<Flat> = Vec::new();
            for case in cases.iter().flatten() {
                let mut flat = Vec::new();
                flatten(case, &mut flat);
                for (i, f) in flat.into_iter().enumerate() {
                    match payload.get_mut(i) {
                        Some(p) => *p = join(*p, f),
                        None => payload.push(f),
                    }
                }
            }
            out.push(Flat::I32);
            out.extend(payload);
        }
        _ => out.push(Flat::I32),
    }
}

pub fn flat_count(types: &[WitType]) -> usize {
    let mut flat = Vec::new();
    types.iter().for_each(|t| flatten(t, &mut flat));
    flat.len()
}

pub use crate::abi::component::StringEncoding;

/// The length bit that marks a `latin1+utf16` string as UTF-16.
const UTF16_TAG: u32 = 1 << 31;

/// The guest memory, allocator and string encoding of one lift or lower (its
/// `memory`, `realloc` and `string-encoding` options).
pub struct Guest<'a> {
    pub memory: Option<&'a MemoryHandle>,
    pub realloc: Option<&'a FuncHandle>,
    pub encoding: StringEncoding,
}

impl Guest<'_> {
    fn memory(&self) -> CanonResult<&MemoryHandle> {
        self.memory
            .ok_or_else(|| CanonTrap::new("canonical function has no memory option"))
    }

    pub fn read(&self, offset: u64, len: usize) -> CanonResult<Vec<u8>> {
        // Checked before allocating: a guest length must not size a host allocation
        // beyond the guest's own memory.
        if self
            .memory()?
            .memory()
            .checked_range(offset, len as u64)
            .is_none()
        {
            return Err(CanonTrap::new("out of bounds memory access"));
        }
        let mut buf = vec![0; len];
        self.read_into(offset, &mut buf)?;
        Ok(buf)
    }

    fn read_into(&self, offset: u64, buf: &mut [u8]) -> CanonResult<()> {
        self.memory()?
            .read(offset, buf)
            .map_err(|_| CanonTrap::new("out of bounds memory access"))
    }

    pub fn write(&self, offset: u64, data: &[u8]) -> CanonResult<()> {
        self.memory()?
            .write(offset, data)
            .map_err(|_| CanonTrap::new("out of bounds memory access"))
    }

    fn load_int(&self, offset: u64, width: usize) -> CanonResult<u64> {
        let mut buf = [0u8; 8];
        self.read_into(offset, &mut buf[..width])?;
        Ok(u64::from_le_bytes(buf))
    }

    fn store_int(&self, offset: u64, width: usize, value: u64) -> CanonResult<()> {
        self.write(offset, &value.to_le_bytes()[..width])
    }

    /// `realloc(0, 0, align, size)`, checked: the block must be aligned and inside
    /// the memory.
    pub fn allocate(&self, align: u32, size: u32) -> CanonResult<u32> {
        self.reallocate(0, 0, align, size)
    }

    /// `realloc(old, old_size, align, size)`, checked like [`Guest::allocate`].
    pub fn reallocate(&self, old: u32, old_size: u32, align: u32, size: u32) -> CanonResult<u32> {
        let realloc = self
            .realloc
            .ok_or_else(|| CanonTrap::new("canonical function has no realloc option"))?;
        let results = realloc
            .call(&[
                CoreVal::I32(old as i32),
                CoreVal::I32(old_size as i32),
                CoreVal::I32(align as i32),
                CoreVal::I32(size as i32),
            ])
            .map_err(|trap| {
                GUEST_TRAP.with(|t| t.set(Some(trap.trap)));
                CanonTrap::new(trap.message().to_string())
            })?;
        let Some(CoreVal::I32(ptr)) = results.first() else {
            return Err(CanonTrap::new("realloc returned no pointer"));
        };
        let ptr = *ptr as u32;
        if !ptr.is_multiple_of(align) {
            return Err(CanonTrap::new("realloc return: result not aligned"));
        }
        if u64::from(ptr) + u64::from(size) > self.memory()?.data_size() as u64 {
            return Err(CanonTrap::new("realloc return: beyond end of memory"));
        }
        Ok(ptr)
    }
}

fn int_width(ty: &WitType) -> Option<usize> {
    Some(match ty {
        WitType::S8 | WitType::U8 => 1,
        WitType::S16 | WitType::U16 => 2,
        WitType::S32 | WitType::U32 => 4,
        WitType::S64 | WitType::U64 => 8,
        _ => return None,
    })
}

fn mask(value: u64, width: usize) -> u64 {
    if width >= 8 {
        value
    } else {
        value & ((1u64 << (width * 8)) - 1)
    }
}

fn char_from(code: u32) -> CanonResult<char> {
    char::from_u32(code).ok_or_else(|| CanonTrap::new("invalid `char` bit pattern"))
}

fn string_from(bytes: Vec<u8>) -> CanonResult<String> {
    String::from_utf8(bytes)
        .map_err(|e| CanonTrap::new(format!("invalid utf-8 string: {}", e.utf8_error())))
}

/// Flags beyond the type's count are dropped when lifted.
fn flag_bits(bits: u64, n: u32) -> u32 {
    if n >= 32 {
        bits as u32
    } else {
        (bits & ((1u64 << n) - 1)) as u32
    }
}

fn list_bounds(ptr: u32, len: u32, elem: &WitType) -> CanonResult<(u64, usize)> {
    if !ptr.is_multiple_of(alignment(elem)) {
        return Err(CanonTrap::new("list pointer is not aligned"));
    }
    let bytes = u64::from(len) * u64::from(size(elem));
    Ok((u64::from(ptr), bytes as usize))
}

/// Loads a value of type `ty` from guest memory at `ptr`.
pub fn load(guest: &Guest<'_>, ty: &WitType, ptr: u64) -> CanonResult<Value> {
    if let Some(width) = int_width(ty) {
        return Ok(Value::Int(guest.load_int(ptr, width)?));
    }
    Ok(match ty {
        WitType::Bool => Value::Bool(guest.load_int(ptr, 1)? != 0),
        WitType::F32 => Value::F32(f32::from_bits(guest.load_int(ptr, 4)? as u32)),
        WitType::F64 => Value::F64(f64::from_bits(guest.load_int(ptr, 8)?)),
        WitType::Char => Value::Char(char_from(guest.load_int(ptr, 4)? as u32)?),
        WitType::String | WitType::List(_) => {
            let data = guest.load_int(ptr, 4)? as u32;
            let len = guest.load_int(ptr + 4, 4)? as u32;
            lift_sequence(guest, ty, data, len)?
        }
        WitType::Own(_) | WitType::Borrow(_) => Value::Handle(guest.load_int(ptr, 4)? as u32),
        WitType::Flags(n) => {
            Value::Flags(flag_bits(guest.load_int(ptr, flags_size(*n) as usize)?, *n))
        }
        WitType::Record(f) | WitType::Tuple(f) => {
            let mut offset = 0;
            let mut values = Vec::with_capacity(f.len());
            for field in f {
                offset = align_to(offset, alignment(field));
                values.push(load(guest, field, ptr + u64::from(offset))?);
                offset += size(field);
            }
            Value::Record(values)
        }
        _ => {
            let cases = cases(ty).unwrap();
            let disc = guest.load_int(ptr, discriminant_size(cases.len()) as usize)? as u32;
            let case = cases
                .get(disc as usize)
                .ok_or_else(|| CanonTrap::new("invalid variant discriminant"))?;
            let offset = align_to(discriminant_size(cases.len()), payload_alignment(&cases));
            let payload = match case {
                Some(t) => Some(Box::new(load(guest, t, ptr + u64::from(offset))?)),
                None => None,
            };
            Value::Variant(disc, payload)
        }
    })
}

fn lift_sequence(guest: &Guest<'_>, ty: &WitType, data: u32, len: u32) -> CanonResult<Value> {
    match ty {
        WitType::String => lift_string(guest, data, len).map(Value::String),
        WitType::List(elem) if **elem == WitType::U8 || **elem == WitType::S8 => guest
            .read(u64::from(data), len as usize)
            .map(Value::Bytes)
            .map_err(|_| CanonTrap::new("list pointer/length out of bounds of memory")),
        WitType::List(elem) => {
            let (start, bytes) = list_bounds(data, len, elem)?;
            // Checked up front so that a huge length cannot make the host allocate.
            guest
                .memory()?
                .memory()
                .checked_range(start, bytes as u64)
                .ok_or_else(|| CanonTrap::new("list pointer/length out of bounds of memory"))?;
            let step = u64::from(size(elem));
            (0..u64::from(len))
                .map(|i| load(guest, elem, start + i * step))
                .collect::<CanonResult<Vec<_>>>()
                .map(Value::List)
        }
        _ => unreachable!("only strings and lists"),
    }
}

/// Reads a string in the guest's encoding.
fn lift_string(guest: &Guest<'_>, data: u32, len: u32) -> CanonResult<String> {
    let (utf16, units) = match guest.encoding {
        StringEncoding::Utf8 => (false, len),
        StringEncoding::Utf16 => (true, len),
        StringEncoding::Latin1Utf16 if len & UTF16_TAG != 0 => (true, len ^ UTF16_TAG),
        StringEncoding::Latin1Utf16 => (false, len),
    };
    let bytes_len = if utf16 {
        u64::from(units) * 2
    } else {
        u64::from(units)
    };
    if guest.encoding != StringEncoding::Utf8 && !data.is_multiple_of(2) {
        return Err(CanonTrap::new("unaligned pointer"));
    }
    if bytes_len > u64::from(u32::MAX) {
        return Err(CanonTrap::new(
            "string pointer/length out of bounds of memory",
        ));
    }
    let bytes = guest
        .read(u64::from(data), bytes_len as usize)
        .map_err(|_| CanonTrap::new("string pointer/length out of bounds of memory"))?;
    match (guest.encoding, utf16) {
        (StringEncoding::Utf8, _) => string_from(bytes),
        (_, true) => {
            let units = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| CanonTrap::new("invalid utf-16 string"))
        }
        (_, false) => Ok(bytes.iter().map(|b| char::from(*b)).collect()),
    }
}

/// Writes a string in the guest's encoding into memory from its realloc; returns
/// (pointer, length as the guest sees it). The host's strings are UTF-8, and the
/// realloc calls are those of the canonical ABI's `store_string` for a UTF-8
/// source (a worst-case block shrunk afterwards; Latin-1 inflated to UTF-16 in
/// place at the first character beyond it), so a guest sees the same calls as
/// under wasmtime.
fn lower_string(guest: &Guest<'_>, s: &str) -> CanonResult<(u32, u32)> {
    let too_long = || CanonTrap::new("string or list too long for a 32-bit memory");
    // The source's code units (UTF-8 bytes); every size below is at most twice it.
    let src_units = u32::try_from(s.len())
        .ok()
        .filter(|l| l & UTF16_TAG == 0)
        .ok_or_else(too_long)?;
    let worst_case = src_units.checked_mul(2).ok_or_else(too_long)?;
    let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_le_bytes).collect() };
    match guest.encoding {
        StringEncoding::Utf8 => {
            let ptr = guest.allocate(1, src_units)?;
            guest.write(u64::from(ptr), s.as_bytes())?;
            Ok((ptr, src_units))
        }
        StringEncoding::Utf16 => {
            let mut ptr = guest.allocate(2, worst_case)?;
            let encoded = utf16(s);
            guest.write(u64::from(ptr), &encoded)?;
            let len = encoded.len() as u32;
            if len < worst_case {
                ptr = guest.reallocate(ptr, worst_case, 2, len)?;
            }
            Ok((ptr, len / 2))
        }
        StringEncoding::Latin1Utf16 => {
            let mut ptr = guest.allocate(2, src_units)?;
            let latin1_prefix = s.find(|c: char| (c as u32) >= 256).unwrap_or(s.len());
            let latin1: Vec<u8> = s[..latin1_prefix].chars().map(|c| c as u32 as u8).collect();
            guest.write(u64::from(ptr), &latin1)?;
            let written = latin1.len() as u32;
            if latin1_prefix == s.len() {
                if written < src_units {
                    ptr = guest.reallocate(ptr, src_units, 2, written)?;
                }
                return Ok((ptr, written));
            }
            // Inflate what was written (as the guest's realloc moved it) to UTF-16,
            // then write the rest.
            ptr = guest.reallocate(ptr, src_units, 2, worst_case)?;
            let moved = guest.read(u64::from(ptr), latin1.len())?;
            let inflated: Vec<u8> = moved.iter().flat_map(|b| [*b, 0]).collect();
            guest.write(u64::from(ptr), &inflated)?;
            let rest = utf16(&s[latin1_prefix..]);
            guest.write(u64::from(ptr) + u64::from(written) * 2, &rest)?;
            let len = written * 2 + rest.len() as u32;
            if len < worst_case {
                ptr = guest.reallocate(ptr, worst_case, 2, len)?;
            }
            Ok((ptr, (len / 2) | UTF16_TAG))
        }
    }
}

/// Lifts the flat core values of `ty` from `flat` (consumed in order).
pub fn lift_flat(
    guest: &Guest<'_>,
    ty: &WitType,
    flat: &mut dyn Iterator<Item = (Flat, ValRaw)>,
) -> CanonResult<Value> {
    let mut next = || {
        flat.next()
            .ok_or_else(|| CanonTrap::new("too few core arguments for the function type"))
    };
    if let Some(width) = int_width(ty) {
        return Ok(Value::Int(mask(next()?.1 as u64, width)));
    }
    Ok(match ty {
        WitType::Bool => Value::Bool(next()?.1 as u32 != 0),
        WitType::F32 => Value::F32(f32::from_bits(next()?.1 as u32)),
        WitType::F64 => Value::F64(f64::from_bits(next()?.1 as u64)),
        WitType::Char => Value::Char(char_from(next()?.1 as u32)?),
        WitType::String | WitType::List(_) => {
            let data = next()?.1 as u32;
            let len = next()?.1 as u32;
            lift_sequence(guest, ty, data, len)?
        }
        WitType::Own(_) | WitType::Borrow(_) => Value::Handle(next()?.1 as u32),
        WitType::Flags(n) => Value::Flags(flag_bits(next()?.1 as u64, *n)),
        WitType::Record(f) | WitType::Tuple(f) => Value::Record(
            f.iter()
                .map(|t| lift_flat(guest, t, flat))
                .collect::<CanonResult<_>>()?,
        ),
        _ => {
            let disc = next()?.1 as u32;
            let mut all = Vec::new();
            flatten(ty, &mut all);
            let payload_types = &all[1..];
            let raw: Vec<(Flat, ValRaw)> = payload_types
                .iter()
                .map(|_| flat.next())
                .collect::<Option<_>>()
                .ok_or_else(|| CanonTrap::new("too few core arguments for the function type"))?;
            let cases = cases(ty).unwrap();
            let case = cases
                .get(disc as usize)
                .ok_or_else(|| CanonTrap::new("invalid variant discriminant"))?;
            let payload = match case {
                Some(t) => {
                    let mut wanted = Vec::new();
                    flatten(t, &mut wanted);
                    // Each joined slot is converted back to the case's own type.
                    let coerced: Vec<(Flat, ValRaw)> = wanted
                        .iter()
                        .zip(&raw)
                        .map(|(want, (_, bits))| {
                            let bits = *bits as u64;
                            let v = match want {
                                Flat::I32 | Flat::F32 => bits & 0xffff_ffff,
                                Flat::I64 | Flat::F64 => bits,
                            };
                            (*want, v as ValRaw)
                        })
                        .collect();
                    let mut coerced = coerced.into_iter();
                    Some(Box::new(lift_flat(guest, t, &mut coerced)?))
                }
                None => None,
            };
            Value::Variant(disc, payload)
        }
    })
}

fn mismatch(ty: &WitType) -> CanonTrap {
    CanonTrap::new(format!("host value does not match the type {ty:?}"))
}

/// Stores `value` of type `ty` at `ptr` in guest memory.
pub fn store(guest: &Guest<'_>, ty: &WitType, value: &Value, ptr: u64) -> CanonResult<()> {
    if let Some(width) = int_width(ty) {
        let Value::Int(v) = value else {
            return Err(mismatch(ty));
        };
        return guest.store_int(ptr, width, *v);
    }
    match (ty, value) {
        (WitType::Bool, Value::Bool(b)) => guest.store_int(ptr, 1, u64::from(*b)),
        (WitType::F32, Value::F32(f)) => guest.store_int(ptr, 4, u64::from(f.to_bits())),
        (WitType::F64, Value::F64(f)) => guest.store_int(ptr, 8, f.to_bits()),
        (WitType::Char, Value::Char(c)) => guest.store_int(ptr, 4, u64::from(*c as u32)),
        (WitType::String | WitType::List(_), _) => {
            let (data, len) = lower_sequence(guest, ty, value)?;
            guest.store_int(ptr, 4, u64::from(data))?;
            guest.store_int(ptr + 4, 4, u64::from(len))
        }
        (WitType::Own(_) | WitType::Borrow(_), Value::Handle(h)) => {
            guest.store_int(ptr, 4, u64::from(*h))
        }
        (WitType::Flags(n), Value::Flags(bits)) => {
            guest.store_int(ptr, flags_size(*n) as usize, u64::from(*bits))
        }
        (WitType::Record(f) | WitType::Tuple(f), Value::Record(values))
            if f.len() == values.len() =>
        {
            let mut offset = 0;
            for (field, v) in f.iter().zip(values) {
                offset = align_to(offset, alignment(field));
                store(guest, field, v, ptr + u64::from(offset))?;
                offset += size(field);
            }
            Ok(())
        }
        (_, Value::Variant(disc, payload)) if cases(ty).is_some() => {
            let cases = cases(ty).unwrap();
            let case = cases.get(*disc as usize).ok_or_else(|| mismatch(ty))?;
            guest.store_int(
                ptr,
                discriminant_size(cases.len()) as usize,
                u64::from(*disc),
            )?;
            let offset = align_to(discriminant_size(cases.len()), payload_alignment(&cases));
            match (case, payload) {
                (Some(t), Some(v)) => store(guest, t, v, ptr + u64::from(offset)),
                (None, None) => Ok(()),
                _ => Err(mismatch(ty)),
            }
        }
        _ => Err(mismatch(ty)),
    }
}

/// Copies a string or list into memory allocated with the guest's realloc.
fn lower_sequence(guest: &Guest<'_>, ty: &WitType, value: &Value) -> CanonResult<(u32, u32)> {
    let too_long = || CanonTrap::new("string or list too long for a 32-bit memory");
    match (ty, value) {
        (WitType::String, Value::String(s)) => lower_string(guest, s),
        (WitType::List(elem), Value::Bytes(bytes))
            if **elem == WitType::U8 || **elem == WitType::S8 =>
        {
            let len = u32::try_from(bytes.len()).map_err(|_| too_long())?;
            let ptr = guest.allocate(1, len)?;
            guest.write(u64::from(ptr), bytes)?;
            Ok((ptr, len))
        }
        (WitType::List(elem), Value::List(items)) => {
            let len = u32::try_from(items.len()).map_err(|_| too_long())?;
            let bytes = len.checked_mul(size(elem)).ok_or_else(too_long)?;
            let ptr = guest.allocate(alignment(elem), bytes)?;
            for (i, item) in items.iter().enumerate() {
                store(
                    guest,
                    elem,
                    item,
                    u64::from(ptr) + i as u64 * u64::from(size(elem)),
                )?;
            }
            Ok((ptr, len))
        }
        _ => Err(mismatch(ty)),
    }
}

/// Lowers `value` of type `ty` to flat core values (strings and lists are copied
/// into guest memory).
pub fn lower_flat(
    guest: &Guest<'_>,
    ty: &WitType,
    value: &Value,
    out: &mut Vec<u64>,
) -> CanonResult<()> {
    if let Some(width) = int_width(ty) {
        let Value::Int(v) = value else {
            return Err(mismatch(ty));
        };
        // Signed values are sign-extended to their core type.
        let v = match ty {
            WitType::S8 => *v as i8 as i64 as u64,
            WitType::S16 => *v as i16 as i64 as u64,
            WitType::S32 => *v as i32 as i64 as u64,
            _ => mask(*v, width),
        };
        out.push(v);
        return Ok(());
    }
    match (ty, value) {
        (WitType::Bool, Value::Bool(b)) => out.push(u64::from(*b)),
        (WitType::F32, Value::F32(f)) => out.push(u64::from(f.to_bits())),
        (WitType::F64, Value::F64(f)) => out.push(f.to_bits()),
        (WitType::Char, Value::Char(c)) => out.push(u64::from(*c as u32)),
        (WitType::String | WitType::List(_), _) => {
            let (data, len) = lower_sequence(guest, ty, value)?;
            out.extend([u64::from(data), u64::from(len)]);
        }
        (WitType::Own(_) | WitType::Borrow(_), Value::Handle(h)) => out.push(u64::from(*h)),
        (WitType::Flags(_), Value::Flags(bits)) => out.push(u64::from(*bits)),
        (WitType::Record(f) | WitType::Tuple(f), Value::Record(values))
            if f.len() == values.len() =>
        {
            for (t, v) in f.iter().zip(values) {
                lower_flat(guest, t, v, out)?;
            }
        }
        (_, Value::Variant(disc, payload)) if cases(ty).is_some() => {
            let cases = cases(ty).unwrap();
            let case = cases.get(*disc as usize).ok_or_else(|| mismatch(ty))?;
            let mut all = Vec::new();
            flatten(ty, &mut all);
            out.push(u64::from(*disc));
            let start = out.len();
            match (case, payload) {
                (Some(t), Some(v)) => lower_flat(guest, t, v, out)?,
                (None, None) => {}
                _ => return Err(mismatch(ty)),
            }
            // Pad the unused joined slots with zeros.
            out.resize(start + all.len() - 1, 0);
        }
        _ => return Err(mismatch(ty)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_flattening_follow_the_canonical_abi() {
        let result_u64 = WitType::Result {
            ok: Some(Box::new(WitType::U64)),
            err: Some(Box::new(WitType::Enum(37))),
        };
        assert_eq!((size(&result_u64), alignment(&result_u64)), (16, 8));
        let mut flat = Vec::new();
        flatten(&result_u64, &mut flat);
        assert_eq!(flat, [Flat::I32, Flat::I64]);
        let datetime = WitType::Record(vec![WitType::U64, WitType::U32]);
        assert_eq!((size(&datetime), alignment(&datetime)), (16, 8));
        let opt = WitType::Option(Box::new(datetime.clone()));
        assert_eq!(size(&opt), 24);
        let list = WitType::List(Box::new(WitType::Tuple(vec![
            WitType::String,
            WitType::String,
        ])));
        assert_eq!(size(&list), 8);
        assert_eq!(flat_count(&[list]), 2);
        assert_eq!(size(&WitType::Flags(6)), 1);
        assert_eq!(size(&WitType::Variant(vec![None; 300])), 2);
    }

    #[test]
    fn strings_lift_in_every_encoding() {
        let memory = MemoryHandle::new(crate::abi::MemoryType {
            minimum: 1,
            maximum: Some(1),
            memory64: false,
            shared: false,
            page_size_log2: 16,
        })
        .expect("memory");
        let guest = |encoding| Guest {
            memory: Some(&memory),
            realloc: None,
            encoding,
        };
        let lift = |encoding, ptr: u32, len: u32| {
            let mut flat = [(Flat::I32, u128::from(ptr)), (Flat::I32, u128::from(len))].into_iter();
            lift_flat(&guest(encoding), &WitType::String, &mut flat)
        };
        memory.write(0, "h\u{e9}\u{1f600}".as_bytes()).unwrap();
        let utf16: Vec<u8> = "h\u{e9}\u{1f600}"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        memory.write(16, &utf16).unwrap();
        memory.write(32, &[b'h', 0xe9]).unwrap();
        let expected = Ok(Value::String("h\u{e9}\u{1f600}".into()));
        assert_eq!(lift(StringEncoding::Utf8, 0, 7), expected);
        assert_eq!(lift(StringEncoding::Utf16, 16, 4), expected);
        assert_eq!(
            lift(StringEncoding::Latin1Utf16, 16, 4 | UTF16_TAG),
            expected
        );
        assert_eq!(
            lift(StringEncoding::Latin1Utf16, 32, 2),
            Ok(Value::String("h\u{e9}".into()))
        );
        // UTF-16 needs 2-byte alignment; a lone surrogate is invalid; a length
        // past the memory is refused before anything is allocated for it.
        assert!(lift(StringEncoding::Utf16, 17, 1).is_err());
        memory.write(48, &0xd800u16.to_le_bytes()).unwrap();
        assert!(lift(StringEncoding::Utf16, 48, 1).is_err());
        assert!(lift(StringEncoding::Utf16, 0, 0x7fff_ffff).is_err());
        assert!(lift(StringEncoding::Utf8, 0, 2).is_err()); // cuts `é` in half
    }
}
