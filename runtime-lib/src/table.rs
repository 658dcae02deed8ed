//! Tables: arrays of pointer-sized references (a funcref is a `*const VMFuncRef`, an
//! externref an opaque non-zero word; 0 is null).
//!
//! Generated code reads and writes elements directly through `VMTable { base,
//! length }`, so the elements live in one heap block whose address is published in
//! the `VMTable`; growing reallocates the block and republishes it. Operations that
//! span ranges (`table.fill`, `table.copy`, `table.init`) check the whole range first
//! and change nothing when it is out of bounds, as the bulk-memory proposal requires.

use std::cell::UnsafeCell;

use crate::abi::{TableType, VMTable};

/// Implementation limit on the number of elements of a table (80 MB of elements on a
/// 64-bit host): growing beyond it fails like any failed `table.grow`.
pub const TABLE_MAX_ELEMENTS: u64 = 10_000_000;

/// One table. Shared between instances through `Rc` (see `TableHandle`).
#[derive(Debug)]
pub struct Table {
    /// What generated code reads; boxed so its address is stable.
    vm: Box<UnsafeCell<VMTable>>,
    /// The elements. Only touched through `vm.base` while wasm may run; the `Vec`
    /// itself is used for (re)allocation only.
    elements: UnsafeCell<Vec<usize>>,
    ty: TableType,
    max: u64,
}

impl Table {
    /// A table of `ty.minimum` elements, each set to `init`.
    pub fn new(ty: &TableType, init: usize) -> Result<Table, String> {
        Table::with_limit(ty, init, None)
    }

    /// Like [`Table::new`], but the table never grows beyond `max_elements`: a
    /// `table.grow` past it fails like one past the declared maximum.
    pub fn with_limit(
        ty: &TableType,
        init: usize,
        max_elements: Option<u64>,
    ) -> Result<Table, String> {
        let max = ty
            .maximum
            .unwrap_or(u64::MAX)
            .min(TABLE_MAX_ELEMENTS)
            .min(max_elements.unwrap_or(u64::MAX));
        if ty.minimum > max {
            return Err(format!(
                "table minimum size of {} elements exceeds the limit of {max}",
                ty.minimum
            ));
        }
        let mut elements = Vec::new();
        elements
            .try_reserve_exact(ty.minimum as usize)
            .map_err(|_| format!("cannot allocate a table of {} elements", ty.minimum))?;
        elements.resize(ty.minimum as usize, init);
        let table = Table {
            vm: Box::new(UnsafeCell::new(VMTable {
                base: std::ptr::null_mut(),
                length: 0,
            })),
            elements: UnsafeCell::new(elements),
            ty: *ty,
            max,
        };
        table.publish();
        Ok(table)
    }

    /// Makes `VMTable` describe the current element block.
    fn publish(&self) {
        // SAFETY: single-threaded; no reference into `elements` or `vm` is live.
        unsafe {
            let elements = &mut *self.elements.get();
            let vm = &mut *self.vm.get();
            vm.base = elements.as_mut_ptr();
            vm.length = elements.len();
        }
    }

    /// The declared type, with `minimum` replaced by the current size (what import
    /// matching compares against).
    pub fn current_type(&self) -> TableType {
        TableType {
            minimum: self.size(),
            ..self.ty
        }
    }

    pub fn declared_type(&self) -> &TableType {
        &self.ty
    }

    /// Pointer stored in `VMContext` tables.
    pub fn vmtable(&self) -> *mut VMTable {
        self.vm.get()
    }

    pub fn size(&self) -> u64 {
        // SAFETY: see `publish`.
        unsafe { (*self.vm.get()).length as u64 }
    }

    fn base(&self) -> *mut usize {
        // SAFETY: see `publish`.
        unsafe { (*self.vm.get()).base }
    }

    /// Pointer to `len` elements at `index`, if that range is in bounds.
    fn range(&self, index: u64, len: u64) -> Option<*mut usize> {
        let end = index.checked_add(len)?;
        if end > self.size() {
            return None;
        }
        // SAFETY: index <= length, so the pointer stays within (or one past) the block.
        Some(unsafe { self.base().add(index as usize) })
    }

    /// Every element (for the exception collector's roots).
    pub fn elements(&self) -> &[usize] {
        // SAFETY: `base` points at `size()` initialised elements (see `publish`).
        // Callers hold the slice only while no table operation can run (from a
        // builtin, with generated code stopped at its call).
        unsafe { std::slice::from_raw_parts(self.base(), self.size() as usize) }
    }

    pub fn get(&self, index: u64) -> Option<usize> {
        let p = self.range(index, 1)?;
        // SAFETY: in bounds.
        Some(unsafe { *p })
    }

    /// Sets an element; false when `index` is out of bounds.
    pub fn set(&self, index: u64, value: usize) -> bool {
        let Some(p) = self.range(index, 1) else {
            return false;
        };
        // SAFETY: in bounds.
        unsafe { *p = value };
        true
    }

    /// Grows by `delta` elements set to `init`; returns the previous size, or `None`
    /// (table unchanged) beyond the maximum or when memory runs out.
    pub fn grow(&self, delta: u64, init: usize) -> Option<u64> {
        let old = self.size();
        let new = old.checked_add(delta)?;
        if new > self.max {
            return None;
        }
        {
            // SAFETY: single-threaded; generated code is not running inside this call
            // except through the table.grow builtin, which reloads `VMTable` after.
            let elements = unsafe { &mut *self.elements.get() };
            elements.try_reserve_exact(delta as usize).ok()?;
            elements.resize(new as usize, init);
        }
        self.publish();
        Some(old)
    }

    /// `table.fill`: false (table unchanged) when out of bounds.
    pub fn fill(&self, dst: u64, value: usize, len: u64) -> bool {
        let Some(p) = self.range(dst, len) else {
            return false;
        };
        for i in 0..len as usize {
            // SAFETY: the whole range was checked.
            unsafe { *p.add(i) = value };
        }
        true
    }

    /// `table.copy` from `src` (which may be `self`): false when either range is out
    /// of bounds. Overlapping ranges copy as if through a temporary.
    pub fn copy_from(&self, src_table: &Table, dst: u64, src: u64, len: u64) -> bool {
        let (Some(d), Some(s)) = (self.range(dst, len), src_table.range(src, len)) else {
            return false;
        };
        // SAFETY: both ranges are in bounds; `copy` handles overlap.
        unsafe { std::ptr::copy(s, d, len as usize) };
        true
    }

    /// `table.init` with the given segment items: false when out of bounds.
    pub fn init(&self, dst: u64, items: &[usize]) -> bool {
        let Some(d) = self.range(dst, items.len() as u64) else {
            return false;
        };
        // SAFETY: in bounds; `items` is a separate Rust allocation.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), d, items.len()) };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::ValType;

    fn ty(minimum: u64, maximum: Option<u64>) -> TableType {
        TableType {
            element: ValType::FuncRef,
            minimum,
            maximum,
            table64: false,
        }
    }

    #[test]
    fn new_get_set() {
        let t = Table::new(&ty(3, None), 7).unwrap();
        assert_eq!(t.size(), 3);
        assert_eq!(t.get(2), Some(7));
        assert_eq!(t.get(3), None);
        assert!(t.set(1, 9));
        assert_eq!(t.get(1), Some(9));
        assert!(!t.set(3, 1));
        // SAFETY: the VMTable belongs to `t`.
        let vm = unsafe { &*t.vmtable() };
        assert_eq!(vm.length, 3);
        // SAFETY: index 1 is in bounds.
        assert_eq!(unsafe { *vm.base.add(1) }, 9);
    }

    #[test]
    fn grow_updates_vmtable_and_honours_maximum() {
        let t = Table::new(&ty(1, Some(4)), 0).unwrap();
        assert_eq!(t.grow(2, 5), Some(1));
        assert_eq!(t.size(), 3);
        assert_eq!(t.get(2), Some(5));
        assert_eq!(t.get(0), Some(0));
        assert_eq!(t.grow(2, 5), None);
        assert_eq!(t.grow(1, 6), Some(3));
        assert_eq!(t.grow(0, 6), Some(4));
        assert_eq!(t.grow(u64::MAX, 0), None);
        // SAFETY: the VMTable belongs to `t`.
        let vm = unsafe { &*t.vmtable() };
        assert_eq!(vm.length, 4);
        // SAFETY: index 3 is in bounds.
        assert_eq!(unsafe { *vm.base.add(3) }, 6);
        assert!(Table::new(&ty(TABLE_MAX_ELEMENTS + 1, None), 0).is_err());
    }

    #[test]
    fn a_limit_caps_growth() {
        let t = Table::with_limit(&ty(2, None), 0, Some(5)).unwrap();
        assert_eq!(t.grow(3, 1), Some(2));
        assert_eq!(t.grow(1, 1), None);
        assert_eq!(t.size(), 5);
        let t = Table::with_limit(&ty(2, Some(3)), 0, Some(5)).unwrap();
        assert_eq!(t.grow(2, 1), None);
        assert!(Table::with_limit(&ty(6, None), 0, Some(5)).is_err());
    }

    #[test]
    fn bulk_operations_check_bounds_first() {
        let t = Table::new(&ty(5, None), 0).unwrap();
        assert!(t.init(1, &[1, 2, 3]));
        assert!(!t.init(3, &[9, 9, 9]));
        assert_eq!(t.get(3), Some(3));
        assert!(t.init(5, &[]));
        assert!(!t.init(6, &[]));
        // Overlapping copy within one table.
        assert!(t.copy_from(&t, 2, 1, 3));
        let all: Vec<_> = (0..5).map(|i| t.get(i).unwrap()).collect();
        assert_eq!(all, [0, 1, 1, 2, 3]);
        assert!(!t.copy_from(&t, 3, 0, 3));
        assert!(t.fill(0, 8, 2));
        assert!(!t.fill(4, 8, 2));
        assert_eq!(t.get(4), Some(3));
        assert!(!t.fill(u64::MAX, 1, 2));
    }
}
