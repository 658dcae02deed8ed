//! Layout of an instance context (`VMContext`): the block of memory whose address is
//! every wasm function's first argument.
//!
//! ```text
//! offset                      field
//! 0                           instance:  *mut Instance        (runtime-private)
//! 8                           runtime:   *const VMRuntimeState (stack limit)
//! 16                          builtins:  *const Builtins
//! 24                          type_ids:  *const u32            (module type index -> canonical id)
//! memory_bases()              [*mut u8; memories]              (copy of each VMMemory.base)
//! memories()                  [*mut VMMemory; memories]        (imported first, then defined)
//! tables()                    [*mut VMTable;  tables]
//! inline_globals()            [VMGlobal; globals]              (16-aligned; used for private globals)
//! globals()                   [*mut VMGlobal; globals]
//! host_fns()                  [usize; imported functions]      (extern "C" host function, or 0)
//! func_refs()                 [VMFuncRef; functions]           (imported first, then defined)
//! tags()                      [usize; tags]                    (tag identity, imported first)
//! ```
//! The fields generated code reads in hot paths come first, at small fixed offsets:
//! the memory bases, the memory and table descriptors and the private globals (C's
//! `__stack_pointer` is global 0, at offset 48 or 64 in a module with one memory).
//! On x86_64 an offset below 128 is a one-byte displacement in every load, and the
//! variable-size arrays (one `VMFuncRef` per function: 264 KB in CPython) would push
//! anything after them to four-byte displacements.
//! A tag's identity is a non-zero word, equal for two tags exactly when they are the
//! same tag (an imported tag has its exporter's identity); `VMException::tag` holds
//! the identity of the tag the exception was thrown with.
//! Memories, tables and globals are reached through a pointer so that imported and
//! exported ones can be shared between instances. A memory's base never moves (its
//! whole reservation is made up front), so the context also holds a copy of each
//! memory's base: generated code reaches linear memory with one load instead of two
//! (`vmctx -> VMMemory -> base`), which small hot functions pay on every call. Every function (imported or
//! defined) has a `VMFuncRef` in the context: calls to imports load the target from
//! it, and `ref.func` is simply its address.

use crate::VMFuncRef;

/// Offsets inside the `VMContext` of one module, derived from its entity counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VMContextLayout {
    pub num_memories: u32,
    pub num_tables: u32,
    pub num_globals: u32,
    pub num_imported_funcs: u32,
    pub num_funcs: u32,
    pub num_tags: u32,
}

const PTR: u32 = 8;

impl VMContextLayout {
    pub const INSTANCE: i32 = 0;
    pub const RUNTIME: i32 = 8;
    pub const BUILTINS: i32 = 16;
    pub const TYPE_IDS: i32 = 24;
    const HEADER: u32 = 32;

    /// Size of one [`VMFuncRef`] and offsets of its fields.
    pub const FUNC_REF_SIZE: u32 = std::mem::size_of::<VMFuncRef>() as u32;
    pub const FUNC_REF_WASM_CALL: i32 = 0;
    pub const FUNC_REF_VMCTX: i32 = 8;
    pub const FUNC_REF_TYPE_ID: i32 = 16;

    /// `VMMemory` fields.
    pub const MEMORY_BASE: i32 = 0;
    pub const MEMORY_LENGTH: i32 = 8;
    /// `VMTable` fields.
    pub const TABLE_BASE: i32 = 0;
    pub const TABLE_LENGTH: i32 = 8;
    /// `VMException` fields.
    pub const EXCEPTION_TAG: i32 = 0;
    pub const EXCEPTION_VALUES: i32 = 8;
    /// `VMRuntimeState` fields.
    pub const RUNTIME_STACK_LIMIT: i32 =
        std::mem::offset_of!(crate::VMRuntimeState, stack_limit) as i32;
    pub const RUNTIME_FUEL_CONSUMED: i32 =
        std::mem::offset_of!(crate::VMRuntimeState, fuel_consumed) as i32;
    pub const RUNTIME_GC_FREE_CELLS: i32 =
        std::mem::offset_of!(crate::VMRuntimeState, gc_free_cells) as i32;
    pub const RUNTIME_GC_TYPE_ROWS: i32 =
        std::mem::offset_of!(crate::VMRuntimeState, gc_type_rows) as i32;

    pub fn memory_bases(&self) -> u32 {
        Self::HEADER
    }
    /// The copy of memory `index`'s (never moving) base address.
    pub fn memory_base(&self, index: u32) -> i32 {
        (self.memory_bases() + index * PTR) as i32
    }
    pub fn memories(&self) -> u32 {
        self.memory_bases() + self.num_memories * PTR
    }
    pub fn memory(&self, index: u32) -> i32 {
        (self.memories() + index * PTR) as i32
    }
    pub fn tables(&self) -> u32 {
        self.memories() + self.num_memories * PTR
    }
    pub fn table(&self, index: u32) -> i32 {
        (self.tables() + index * PTR) as i32
    }
    /// Start of the inline global slots (16-byte aligned): one 16-byte `VMGlobal` per
    /// global index, used for the globals `ModuleInfo::global_is_inline` names (the
    /// others' slots stay unused).
    pub fn inline_globals(&self) -> u32 {
        (self.tables() + self.num_tables * PTR).next_multiple_of(16)
    }
    /// The inline slot of global `index`.
    pub fn inline_global(&self, index: u32) -> i32 {
        (self.inline_globals() + index * 16) as i32
    }
    pub fn globals(&self) -> u32 {
        self.inline_globals() + self.num_globals * 16
    }
    pub fn global(&self, index: u32) -> i32 {
        (self.globals() + index * PTR) as i32
    }
    pub fn host_fns(&self) -> u32 {
        self.globals() + self.num_globals * PTR
    }
    pub fn host_fn(&self, import_index: u32) -> i32 {
        (self.host_fns() + import_index * PTR) as i32
    }
    pub fn func_refs(&self) -> u32 {
        self.host_fns() + self.num_imported_funcs * PTR
    }
    pub fn func_ref(&self, func_index: u32) -> i32 {
        (self.func_refs() + func_index * Self::FUNC_REF_SIZE) as i32
    }
    pub fn tags(&self) -> u32 {
        self.func_refs() + self.num_funcs * Self::FUNC_REF_SIZE
    }
    pub fn tag(&self, tag_index: u32) -> i32 {
        (self.tags() + tag_index * PTR) as i32
    }
    /// Total size in bytes (a multiple of 16).
    pub fn size(&self) -> usize {
        (self.tags() + self.num_tags * PTR).next_multiple_of(16) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_overlap() {
        let l = VMContextLayout {
            num_memories: 2,
            num_tables: 3,
            num_globals: 4,
            num_imported_funcs: 5,
            num_funcs: 7,
            num_tags: 2,
        };
        assert_eq!(l.memory_base(1), 32 + 8);
        assert_eq!(l.memory(0), 32 + 16);
        assert_eq!(l.table(0), 32 + 32);
        // 32 + 32 + 24 = 88, rounded up to 16.
        assert_eq!(l.inline_globals(), 96);
        assert_eq!(l.inline_global(3), 96 + 3 * 16);
        assert_eq!(l.global(0), 96 + 64);
        assert_eq!(l.host_fn(0), 160 + 32);
        assert_eq!(l.func_ref(0), 192 + 40);
        assert_eq!(l.tag(1), 232 + 7 * 24 + 8);
        assert_eq!(
            l.size(),
            (232 + 7 * 24 + 16u32).next_multiple_of(16) as usize
        );
        assert_eq!(VMContextLayout::FUNC_REF_SIZE, 24);
    }

    /// What a C or Rust program compiled by wasm-ld has: one memory, one table, the
    /// `__stack_pointer` as global 0. Its hot fields must be one-byte displacements.
    #[test]
    fn hot_fields_of_a_typical_module_are_below_128() {
        let l = VMContextLayout {
            num_memories: 1,
            num_tables: 1,
            num_globals: 3,
            num_imported_funcs: 40,
            num_funcs: 11000,
            num_tags: 0,
        };
        assert!(l.memory_base(0) < 128);
        assert!(l.memory(0) < 128);
        assert!(l.table(0) < 128);
        assert!(l.inline_global(0) < 128);
        assert!(l.inline_global(2) < 128);
    }
}
