//! Object emission: all code and data of a module in one relocatable ELF object.
//!
//! Contents (all local symbols except the descriptor):
//! * `wasm[N]::name`: defined function N (name from the name section, when present);
//! * `wasmc_host_stub[I]::module.name`, `wasmc_array_trampoline[T]`: glue code;
//! * `wasmc_metadata`: the postcard-serialized `ModuleInfo`;
//! * `wasmc_func_table`: the per-function facts as an `abi::func_table`;
//! * `wasmc_policy`: the encoded sandbox policy, in the section `.wasmc_policy`;
//! * `wasmc_functions` / `wasmc_host_stubs` / `wasmc_array_trampolines`: address tables;
//! * `wasmc_module` (exported): the `ModuleDescriptor` pointing at all of the above.
//!
//! Functions are declared before compilation (so calls can name their targets) and
//! defined afterwards in index order, which makes the object deterministic.

use std::collections::HashMap;

use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module, ModuleError};
use cranelift_object::{ObjectBuilder, ObjectModule};
use wasmc_abi::policy::{POLICY_SECTION, Policy};
use wasmc_abi::{ABI_VERSION, DESCRIPTOR_SYMBOL, ImportKind, MEMORY_IMAGE_SECTION, ModuleInfo};

/// The object of a component's top-level descriptor: `wasmc_module` with no module
/// of its own, the policy, the serialized plan and the table of the core modules'
/// descriptors (exported by the modules' own objects as `module_symbols`).
pub(crate) fn component_descriptor_object(
    isa: OwnedTargetIsa,
    plan: Vec<u8>,
    module_symbols: &[String],
    policy: Option<&Policy>,
) -> Result<Vec<u8>, CompileError> {
    let builder = ObjectBuilder::new(isa, "wasmc", cranelift_module::default_libcall_names())
        .map_err(object_error)?;
    let mut emitter = ObjectEmitter {
        module: ObjectModule::new(builder),
        defined: Vec::new(),
        host_stubs: Vec::new(),
        trampolines: Vec::new(),
        memory_image: None,
    };
    let plan_len = plan.len();
    let plan_id = emitter.data("wasmc_component_plan", plan, |_, _| {})?;
    let mut module_ids = Vec::with_capacity(module_symbols.len());
    for name in module_symbols {
        module_ids.push(
            emitter
                .module
                .declare_data(name, Linkage::Import, false, false)
                .map_err(object_error)?,
        );
    }
    let table_id = emitter.data(
        "wasmc_component_modules",
        vec![0u8; 8 * module_ids.len().max(1)],
        |module, desc| {
            for (i, id) in module_ids.iter().enumerate() {
                let gv = module.declare_data_in_data(*id, desc);
                desc.write_data_addr((i * 8) as u32, gv, 0);
            }
        },
    )?;
    let policy = policy.map(Policy::encode);
    let policy_len = policy.as_ref().map_or(0, Vec::len);
    let policy_id = match policy {
        Some(bytes) => Some(emitter.data_in_section("wasmc_policy", POLICY_SECTION, bytes)?),
        None => None,
    };
    let mut bytes = vec![0u8; DESCRIPTOR_SIZE];
    bytes[0..8].copy_from_slice(&ABI_VERSION.to_le_bytes());
    bytes[56..64].copy_from_slice(&(policy_len as u64).to_le_bytes());
    bytes[72..80].copy_from_slice(&(plan_len as u64).to_le_bytes());
    bytes[88..96].copy_from_slice(&(module_symbols.len() as u64).to_le_bytes());
    emitter.data_with(DESCRIPTOR_SYMBOL, Linkage::Export, bytes, |module, desc| {
        let policy = policy_id.map(|id| (48, id));
        for (offset, id) in [(64, plan_id), (80, table_id)].into_iter().chain(policy) {
            let gv = module.declare_data_in_data(id, desc);
            desc.write_data_addr(offset, gv, 0);
        }
    })?;
    emitter
        .module
        .finish()
        .emit()
        .map_err(|e| CompileError::target(format!("writing the object file failed: {e}")))
}

use crate::CompileError;
use crate::trampolines::{Glue, array_signature};
use crate::translate::CompiledFunction;
use crate::translate::environ::wasm_signature;

/// Size of `abi::ModuleDescriptor` (fifteen 8-byte fields on both 64-bit targets).
const DESCRIPTOR_SIZE: usize = 120;

fn object_error(err: ModuleError) -> CompileError {
    CompileError::target(format!("object emission failed: {err}"))
}

/// Keeps a name-section name usable as a symbol: printable, no whitespace, bounded.
fn sanitize(name: &str) -> String {
    name.chars()
        .take(200)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
}

pub(crate) struct ObjectEmitter {
    module: ObjectModule,
    defined: Vec<FuncId>,
    host_stubs: Vec<FuncId>,
    trampolines: Vec<FuncId>,
    /// The image section of `ModuleInfo::memory_images`, when there is one.
    memory_image: Option<Vec<u8>>,
}

impl ObjectEmitter {
    /// Declares every function of the object.
    pub fn new(
        isa: OwnedTargetIsa,
        info: &ModuleInfo,
        func_names: &HashMap<u32, String>,
    ) -> Result<Self, CompileError> {
        let builder = ObjectBuilder::new(
            isa.clone(),
            "wasmc",
            cranelift_module::default_libcall_names(),
        )
        .map_err(object_error)?;
        let mut module = ObjectModule::new(builder);

        let mut defined = Vec::with_capacity(info.functions.len());
        for index in info.num_imported_funcs..info.functions.len() as u32 {
            // The index keeps names unique and distinct from any libcall symbol.
            let name = match func_names.get(&index) {
                Some(n) => format!("wasm[{index}]::{}", sanitize(n)),
                None => format!("wasm[{index}]"),
            };
            let sig = wasm_signature(info.func_type(index));
            defined.push(
                module
                    .declare_function(&name, Linkage::Local, &sig)
                    .map_err(object_error)?,
            );
        }

        let mut host_stubs = Vec::new();
        for import in &info.imports {
            if let ImportKind::Func { type_index } = import.kind {
                let index = host_stubs.len();
                let name = format!(
                    "wasmc_host_stub[{index}]::{}.{}",
                    sanitize(&import.module),
                    sanitize(&import.name)
                );
                let sig = wasm_signature(&info.types[type_index as usize]);
                host_stubs.push(
                    module
                        .declare_function(&name, Linkage::Local, &sig)
                        .map_err(object_error)?,
                );
            }
        }

        let mut trampolines = Vec::with_capacity(info.types.len());
        let sig = array_signature(&*isa);
        for index in 0..info.types.len() {
            trampolines.push(
                module
                    .declare_function(
                        &format!("wasmc_array_trampoline[{index}]"),
                        Linkage::Local,
                        &sig,
                    )
                    .map_err(object_error)?,
            );
        }
        Ok(ObjectEmitter {
            module,
            defined,
            host_stubs,
            trampolines,
            memory_image: None,
        })
    }

    /// Stores `bytes` as the image section `ModuleInfo::memory_images` describes.
    pub fn set_memory_image(&mut self, bytes: Vec<u8>) {
        self.memory_image = Some(bytes);
    }

    /// Function ids of the defined functions, in defined-function order.
    pub fn defined_ids(&self) -> &[FuncId] {
        &self.defined
    }

    /// Defines all code and data and returns the object file bytes.
    pub fn finish(
        mut self,
        info: &ModuleInfo,
        functions: Vec<CompiledFunction>,
        host_stubs: Vec<Glue>,
        trampolines: Vec<Glue>,
        policy: Option<&Policy>,
        descriptor_symbol: &str,
    ) -> Result<Vec<u8>, CompileError> {
        for (id, f) in self.defined.iter().zip(&functions) {
            self.module
                .define_function_bytes(*id, f.alignment, &f.bytes, &f.relocs)
                .map_err(object_error)?;
        }
        for (ids, glue) in [
            (&self.host_stubs, &host_stubs),
            (&self.trampolines, &trampolines),
        ] {
            for (id, g) in ids.iter().zip(glue) {
                self.module
                    .define_function_bytes(*id, g.alignment, &g.bytes, &[])
                    .map_err(object_error)?;
            }
        }

        let metadata = info.serialize();
        let metadata_len = metadata.len();
        let metadata_id = self.data("wasmc_metadata", metadata, |_, _| {})?;
        let func_table =
            wasmc_abi::func_table::encode(&info.funcs).map_err(CompileError::target)?;
        let func_table_len = func_table.len();
        let func_table_id = self.data("wasmc_func_table", func_table, |_, _| {})?;
        let functions_id = self.address_table("wasmc_functions", &self.defined.clone())?;
        let stubs_id = self.address_table("wasmc_host_stubs", &self.host_stubs.clone())?;
        let trampolines_id =
            self.address_table("wasmc_array_trampolines", &self.trampolines.clone())?;

        // The policy goes to a section of its own, which keeps its name in the linked
        // executable, so that `wasmc policy` finds it without running anything.
        let policy = policy.map(Policy::encode);
        let policy_len = policy.as_ref().map_or(0, Vec::len);
        let policy_id = match policy {
            Some(bytes) => Some(self.data_in_section("wasmc_policy", POLICY_SECTION, bytes)?),
            None => None,
        };

        // The memory image goes to a section of its own, aligned to the target's page
        // size, so that in the linked executable it starts a page of the file too
        // (`ld` keeps file offsets and addresses congruent modulo the page size) and
        // the runtime can map it.
        let image_id = match (self.memory_image.take(), info.memory_images.first()) {
            (Some(bytes), Some(image)) => {
                let id = self
                    .module
                    .declare_data("wasmc_memory_image", Linkage::Local, false, false)
                    .map_err(object_error)?;
                let mut desc = DataDescription::new();
                desc.define(bytes.into_boxed_slice());
                desc.set_align(image.page_size);
                desc.set_custom_section(MEMORY_IMAGE_SECTION);
                self.module.define_data(id, &desc).map_err(object_error)?;
                Some(id)
            }
            _ => None,
        };

        // ModuleDescriptor: abi_version, metadata, metadata_len, functions,
        // host_stubs, array_trampolines, policy, policy_len, then the four component
        // fields, which stay zero for a module, the memory image, the function
        // table and its length (fifteen 8-byte fields).
        let mut bytes = vec![0u8; DESCRIPTOR_SIZE];
        bytes[0..8].copy_from_slice(&ABI_VERSION.to_le_bytes());
        bytes[16..24].copy_from_slice(&(metadata_len as u64).to_le_bytes());
        bytes[56..64].copy_from_slice(&(policy_len as u64).to_le_bytes());
        bytes[112..120].copy_from_slice(&(func_table_len as u64).to_le_bytes());
        self.data_with(descriptor_symbol, Linkage::Export, bytes, |module, desc| {
            let policy = policy_id.map(|id| (48, id));
            let image = image_id.map(|id| (96, id));
            for (offset, id) in [
                (8, metadata_id),
                (24, functions_id),
                (32, stubs_id),
                (40, trampolines_id),
                (104, func_table_id),
            ]
            .into_iter()
            .chain(policy)
            .chain(image)
            {
                let gv = module.declare_data_in_data(id, desc);
                desc.write_data_addr(offset, gv, 0);
            }
        })?;

        let product = self.module.finish();
        product
            .emit()
            .map_err(|e| CompileError::target(format!("writing the object file failed: {e}")))
    }

    /// A table of code addresses. Never empty, so the runtime always gets a valid
    /// (aligned, non-null) pointer even for zero entries.
    fn address_table(&mut self, name: &str, funcs: &[FuncId]) -> Result<DataId, CompileError> {
        let bytes = vec![0u8; 8 * funcs.len().max(1)];
        self.data(name, bytes, |module, desc| {
            for (i, id) in funcs.iter().enumerate() {
                let f = module.declare_func_in_data(*id, desc);
                desc.write_function_addr((i * 8) as u32, f);
            }
        })
    }

    /// Read-only data in a section named `section`.
    fn data_in_section(
        &mut self,
        name: &str,
        section: &str,
        bytes: Vec<u8>,
    ) -> Result<DataId, CompileError> {
        let id = self
            .module
            .declare_data(name, Linkage::Local, false, false)
            .map_err(object_error)?;
        let mut desc = DataDescription::new();
        desc.define(bytes.into_boxed_slice());
        desc.set_align(8);
        desc.set_custom_section(section);
        self.module.define_data(id, &desc).map_err(object_error)?;
        Ok(id)
    }

    fn data(
        &mut self,
        name: &str,
        bytes: Vec<u8>,
        relocate: impl FnOnce(&ObjectModule, &mut DataDescription),
    ) -> Result<DataId, CompileError> {
        self.data_with(name, Linkage::Local, bytes, relocate)
    }

    fn data_with(
        &mut self,
        name: &str,
        linkage: Linkage,
        bytes: Vec<u8>,
        relocate: impl FnOnce(&ObjectModule, &mut DataDescription),
    ) -> Result<DataId, CompileError> {
        let id = self
            .module
            .declare_data(name, linkage, false, false)
            .map_err(object_error)?;
        let mut desc = DataDescription::new();
        desc.define(bytes.into_boxed_slice());
        desc.set_align(8);
        relocate(&self.module, &mut desc);
        self.module.define_data(id, &desc).map_err(object_error)?;
        Ok(id)
    }
}
