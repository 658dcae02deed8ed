//! Checks, before linking, that the runtime of an executable can satisfy every import
//! of the module. Without this the executable would link fine and fail at start-up;
//! `wasmtime run` likewise refuses such a module before running anything.

use wasmc_abi::{FuncType, ImportKind, ModuleInfo, ValType};
use wasmc_runtime::threads::spawn;

/// Names every import the executable runtime cannot provide: functions that are not
/// WASI preview1 functions of `wasmc_runtime::wasi` or wasi-threads' `thread-spawn`
/// (or have another signature), and any memory import but a shared one (which the
/// runtime creates for a threaded program), table or global import (an executable has
/// no other module to take them from).
pub fn check(info: &ModuleInfo) -> Result<(), String> {
    let mut problems = Vec::new();
    for import in &info.imports {
        let name = format!("{}::{}", import.module, import.name);
        match &import.kind {
            ImportKind::Func { type_index } => {
                let Some(wanted) = info.types.get(*type_index as usize) else {
                    problems.push(format!("{name} (function of unknown type {type_index})"));
                    continue;
                };
                let runtime_func =
                    if import.module == spawn::SPAWN_MODULE && import.name == spawn::SPAWN_NAME {
                        Some(spawn::spawn_func())
                    } else {
                        wasmc_runtime::wasi::resolve(&import.module, &import.name)
                    };
                match runtime_func {
                    None => problems.push(format!("{name} (function)")),
                    Some(host) if host.ty != *wanted => problems.push(format!(
                        "{name} (function with type {}, but the runtime's has type {})",
                        show_type(wanted),
                        show_type(&host.ty)
                    )),
                    Some(_) => {}
                }
            }
            // A threaded program's shared memory is created by the runtime.
            ImportKind::Memory(ty) if ty.shared => {}
            ImportKind::Memory(_) => problems.push(format!("{name} (memory)")),
            ImportKind::Table(_) => problems.push(format!("{name} (table)")),
            ImportKind::Global(_) => problems.push(format!("{name} (global)")),
            ImportKind::Tag { .. } => problems.push(format!("{name} (tag)")),
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "unsupported import{}: {}; a wasmc executable provides only WASI preview1 functions \
         (wasi_snapshot_preview1, wasi_unstable), wasi-threads (wasi::thread-spawn, a shared \
         memory)",
        if problems.len() == 1 { "" } else { "s" },
        problems.join(", ")
    ))
}

fn show_type(ty: &FuncType) -> String {
    // The Debug names lower-cased (`i32`, `funcref`...): only used in this message, and
    // independent of the list of value types in wasmc-abi.
    let list = |v: &[ValType]| {
        v.iter()
            .map(|t| format!("{t:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(&ty.params), list(&ty.results))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmc_abi::Import;

    fn module(imports: Vec<Import>, types: Vec<FuncType>) -> ModuleInfo {
        ModuleInfo {
            name: None,
            types,
            num_imported_funcs: imports
                .iter()
                .filter(|i| matches!(i.kind, ImportKind::Func { .. }))
                .count() as u32,
            functions: vec![],
            imports,
            tables: vec![],
            num_imported_tables: 0,
            defined_tables: vec![],
            memories: vec![],
            num_imported_memories: 0,
            globals: vec![],
            num_imported_globals: 0,
            defined_globals: vec![],
            tags: vec![],
            num_imported_tags: 0,
            exports: vec![],
            start: None,
            elements: vec![],
            data: Default::default(),
            funcs: vec![],
            guard_pages: true,
            fuel_metering: false,
            array_host_imports: Vec::new(),
            cpu_features: Vec::new(),
            sub_types: Vec::new(),
            rec_groups: Vec::new(),
            memory_images: Vec::new(),
        }
    }

    fn import(module: &str, name: &str, kind: ImportKind) -> Import {
        Import {
            module: module.into(),
            name: name.into(),
            kind,
        }
    }

    #[test]
    fn names_every_unsupported_import() {
        let proc_exit = FuncType {
            params: vec![ValType::I32],
            results: vec![],
        };
        let info = module(
            vec![
                import(
                    "wasi_snapshot_preview1",
                    "proc_exit",
                    ImportKind::Func { type_index: 0 },
                ),
                import("env", "foo", ImportKind::Func { type_index: 0 }),
                import(
                    "wasi_snapshot_preview1",
                    "bogus",
                    ImportKind::Func { type_index: 0 },
                ),
                import(
                    "env",
                    "g",
                    ImportKind::Global(wasmc_abi::GlobalType {
                        content: ValType::I32,
                        mutable: false,
                    }),
                ),
            ],
            vec![proc_exit],
        );
        let err = check(&info).unwrap_err();
        assert!(err.contains("env::foo (function)"), "{err}");
        assert!(
            err.contains("wasi_snapshot_preview1::bogus (function)"),
            "{err}"
        );
        assert!(err.contains("env::g (global)"), "{err}");
        assert!(!err.contains("proc_exit"), "{err}");
    }

    #[test]
    fn wrong_signature_is_reported() {
        let wrong = FuncType {
            params: vec![ValType::I64],
            results: vec![ValType::I64],
        };
        let info = module(
            vec![import(
                "wasi_snapshot_preview1",
                "proc_exit",
                ImportKind::Func { type_index: 0 },
            )],
            vec![wrong],
        );
        let err = check(&info).unwrap_err();
        assert!(
            err.contains("proc_exit (function with type (i64) -> (i64)"),
            "{err}"
        );
    }

    #[test]
    fn wasi_only_module_passes() {
        let fd_write = FuncType {
            params: vec![ValType::I32; 4],
            results: vec![ValType::I32],
        };
        let info = module(
            vec![import(
                "wasi_snapshot_preview1",
                "fd_write",
                ImportKind::Func { type_index: 0 },
            )],
            vec![fd_write],
        );
        check(&info).unwrap();
    }
}
