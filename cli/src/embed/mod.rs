//! `--emit lib`: a module compiled into a sandboxed static library with a C header.
//!
//! 1. [`Library::plan`] checks the module against what the C API can express and
//!    gives every export and host import its C name (`plugin_export_add`,
//!    `plugin_import_env_log`); anything it cannot express is refused here, naming
//!    the export or import.
//! 2. `c_source` writes the header (the contract, documented in itself) and the C
//!    wrappers that turn each prefixed function into a call of the runtime's
//!    `wasmc_embed_*` entry points (`abi::embed`, `runtime-lib/src/embed.rs`).
//! 3. `archive` compiles the wrappers with the target's C compiler, links them, the
//!    module object and the runtime archive into one relocatable object (`-r`),
//!    keeps only the prefixed names global (`objcopy`), and packs it with `ar`:
//!    two libraries, and a host with its own Rust or C code, link without clashes.

pub mod archive;
pub mod c_source;

use wasmc_abi::{ExportKind, FuncType, ImportKind, ModuleInfo, ValType};

/// The C types of the wasm values the API carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CType {
    I32,
    I64,
    F32,
    F64,
}

impl CType {
    fn of(ty: ValType) -> Option<CType> {
        match ty {
            ValType::I32 => Some(CType::I32),
            ValType::I64 => Some(CType::I64),
            ValType::F32 => Some(CType::F32),
            ValType::F64 => Some(CType::F64),
            ValType::V128 | ValType::FuncRef | ValType::ExternRef | ValType::Ref(_) => None,
        }
    }

    pub fn c_name(self) -> &'static str {
        match self {
            CType::I32 => "int32_t",
            CType::I64 => "int64_t",
            CType::F32 => "float",
            CType::F64 => "double",
        }
    }

    /// The member of the generated value-slot union.
    pub fn slot_field(self) -> &'static str {
        match self {
            CType::I32 => "i32",
            CType::I64 => "i64",
            CType::F32 => "f32",
            CType::F64 => "f64",
        }
    }

    pub fn wasm_name(self) -> &'static str {
        self.slot_field()
    }
}

/// An exported function and its C wrapper.
#[derive(Debug)]
pub struct ExportFn {
    pub wasm_name: String,
    pub c_name: String,
    /// Position in `ModuleInfo::exports` (what the runtime looks the function up by).
    pub export_index: u32,
    pub params: Vec<CType>,
    pub results: Vec<CType>,
}

/// A function import, in import order.
#[derive(Debug)]
pub enum ImportFn {
    /// Provided by the runtime's WASI.
    Wasi,
    /// Defined by the embedder under `c_name`.
    Host {
        module: String,
        name: String,
        c_name: String,
        params: Vec<CType>,
        result: Option<CType>,
    },
}

/// Everything the header and wrappers need.
#[derive(Debug)]
pub struct Library {
    pub prefix: String,
    pub exports: Vec<ExportFn>,
    pub imports: Vec<ImportFn>,
}

/// Whether `name` is a usable C identifier prefix.
pub fn valid_prefix(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A wasm name as part of a C identifier: ASCII letters, digits and `_` stay, every
/// other byte becomes `_xHH` (its hex value). Distinct names can still meet
/// (`a-b` and `a_x2db`); [`Library::plan`] refuses those.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_x{b:02x}"));
        }
    }
    out
}

fn show(ty: &FuncType) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(|t| format!("{t:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(&ty.params), list(&ty.results))
}

fn c_types(types: &[ValType]) -> Option<Vec<CType>> {
    types.iter().map(|&t| CType::of(t)).collect()
}

impl Library {
    /// Checks `info` and names everything; the error lists every problem found.
    pub fn plan(info: &ModuleInfo, prefix: &str) -> Result<Library, String> {
        let mut problems = Vec::new();
        let mut names: Vec<(String, String)> = Vec::new(); // (C name, what it is)
        let mut claim = |c_name: &str, what: String, problems: &mut Vec<String>| {
            if let Some((_, other)) = names.iter().find(|(n, _)| n == c_name) {
                problems.push(format!(
                    "{what} and {other} both become the C name `{c_name}`"
                ));
            } else {
                names.push((c_name.to_string(), what));
            }
        };

        let mut exports = Vec::new();
        for (position, export) in info.exports.iter().enumerate() {
            if export.kind != ExportKind::Func {
                continue;
            }
            let Some(ty) = info
                .functions
                .get(export.index as usize)
                .and_then(|&t| info.types.get(t as usize))
            else {
                problems.push(format!("export `{}` has no function type", export.name));
                continue;
            };
            if export.name == "_start" && (!ty.params.is_empty() || !ty.results.is_empty()) {
                problems.push(format!(
                    "export `_start` has type {}, but a WASI command's `_start` takes and \
                     returns nothing",
                    show(ty)
                ));
            }
            let (Some(params), Some(results)) = (c_types(&ty.params), c_types(&ty.results)) else {
                problems.push(format!(
                    "export `{}` has type {}: the C API carries only i32, i64, f32 and f64 \
                     (not v128 or references)",
                    export.name,
                    show(ty)
                ));
                continue;
            };
            let c_name = format!("{prefix}_export_{}", escape(&export.name));
            claim(&c_name, format!("export `{}`", export.name), &mut problems);
            exports.push(ExportFn {
                wasm_name: export.name.clone(),
                c_name,
                export_index: position as u32,
                params,
                results,
            });
        }

        let mut imports = Vec::new();
        for import in &info.imports {
            let what = format!("import `{}`.`{}`", import.module, import.name);
            let ImportKind::Func { type_index } = import.kind else {
                let kind = match import.kind {
                    ImportKind::Memory(_) => "a memory",
                    ImportKind::Table(_) => "a table",
                    ImportKind::Global(_) => "a global",
                    _ => "a tag",
                };
                problems.push(format!(
                    "{what} is {kind}: a library's imports must be functions (the \
                     embedder defines them) or WASI"
                ));
                continue;
            };
            let Some(ty) = info.types.get(type_index as usize) else {
                problems.push(format!("{what} has an unknown type"));
                continue;
            };
            if import.module == "wasi_snapshot_preview1" || import.module == "wasi_unstable" {
                match wasmc_runtime::wasi::resolve(&import.module, &import.name) {
                    Some(host) if host.ty == *ty => imports.push(ImportFn::Wasi),
                    Some(host) => problems.push(format!(
                        "{what} has type {}, but the runtime's has type {}",
                        show(ty),
                        show(&host.ty)
                    )),
                    None => problems.push(format!("{what} is not a WASI preview1 function")),
                }
                continue;
            }
            let (Some(params), Some(results)) = (c_types(&ty.params), c_types(&ty.results)) else {
                problems.push(format!(
                    "{what} has type {}: the C API carries only i32, i64, f32 and f64",
                    show(ty)
                ));
                continue;
            };
            if results.len() > 1 {
                problems.push(format!(
                    "{what} has type {}: a C function returns at most one value",
                    show(ty)
                ));
                continue;
            }
            let c_name = format!(
                "{prefix}_import_{}_{}",
                escape(&import.module),
                escape(&import.name)
            );
            claim(&c_name, what, &mut problems);
            imports.push(ImportFn::Host {
                module: import.module.clone(),
                name: import.name.clone(),
                c_name,
                params,
                result: results.first().copied(),
            });
        }

        if !problems.is_empty() {
            return Err(format!(
                "cannot make a C library of this module: {}",
                problems.join("; ")
            ));
        }
        Ok(Library {
            prefix: prefix.to_string(),
            exports,
            imports,
        })
    }

    /// Every name the library exports (all others are made local).
    pub fn public_symbols(&self) -> Vec<String> {
        let p = &self.prefix;
        let mut names: Vec<String> = c_source::API_FUNCTIONS
            .iter()
            .map(|f| format!("{p}_{f}"))
            .collect();
        names.extend(self.exports.iter().map(|e| e.c_name.clone()));
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_c_identifiers_and_hex_encodes_the_rest() {
        assert_eq!(escape("add"), "add");
        assert_eq!(escape("my_func2"), "my_func2");
        assert_eq!(escape("a-b.c"), "a_x2db_x2ec");
        assert_eq!(escape("é"), "_xc3_xa9");
    }

    #[test]
    fn prefixes_must_be_c_identifiers() {
        assert!(valid_prefix("plugin"));
        assert!(valid_prefix("_z9"));
        assert!(!valid_prefix("9z"));
        assert!(!valid_prefix("a-b"));
        assert!(!valid_prefix(""));
    }
}
