//! Memory and stack limits for script instances.
//!
//! wasmer's default tunables give every memory a Static style, reserving 8 GiB of address space
//! each (~16k instances would fill the address space). Scripts get Dynamic memories instead,
//! with the maximum clamped to the per-script limit, and a bounded wasm stack so deep recursion
//! traps instead of exhausting the host's stack. A table's declared maximum is clamped to the
//! table limit too (wasmer refuses maxima over 2^27 outright; scripts cannot grow tables, so
//! the maximum only has to be valid).
//!
//! This is the only module with `unsafe`: wasmer's `Tunables` trait declares two of its methods
//! `unsafe`, and they are implemented by delegating to wasmer's own implementation unchanged.
#![allow(unsafe_code)]

use std::ptr::NonNull;

use wasmer::sys::vm::{VMConfig, VMMemory, VMMemoryDefinition, VMTable, VMTableDefinition};
use wasmer::sys::{BaseTunables, Tunables};
use wasmer::{MemoryError, MemoryStyle, MemoryType, Pages, TableStyle, TableType};

/// Tunables that cap memories and the wasm stack.
pub struct ScriptTunables {
    base: BaseTunables,
    max_memory_pages: u32,
    max_table_elements: u32,
    vm_config: VMConfig,
}

impl ScriptTunables {
    pub fn new(max_memory_pages: u32, max_table_elements: u32, stack_bytes: usize) -> Self {
        Self {
            base: BaseTunables::new(),
            max_memory_pages,
            max_table_elements,
            vm_config: VMConfig {
                wasm_stack_size: Some(stack_bytes),
            },
        }
    }

    /// The memory type actually created: the maximum clamped to the limit. A minimum above
    /// the limit is refused (validation rejects such modules with a clear message first).
    fn clamp(&self, ty: &MemoryType) -> Result<MemoryType, MemoryError> {
        let limit = Pages(self.max_memory_pages);
        if ty.minimum > limit {
            return Err(MemoryError::Generic(format!(
                "memory needs {} pages at start; the limit is {} pages",
                ty.minimum.0, limit.0
            )));
        }
        let maximum = Some(ty.maximum.map_or(limit, |m| m.min(limit)));
        Ok(MemoryType::new(ty.minimum, maximum, ty.shared))
    }

    /// The table type actually created: the maximum clamped to the limit (validation refuses a
    /// minimum above it first).
    fn clamp_table(&self, ty: &TableType) -> TableType {
        let limit = self.max_table_elements.max(ty.minimum);
        TableType {
            maximum: Some(ty.maximum.map_or(limit, |m| m.min(limit))),
            ..*ty
        }
    }
}

impl Tunables for ScriptTunables {
    fn memory_style(&self, _memory: &MemoryType) -> MemoryStyle {
        // No guard region: bounds are checked in code, so a memory costs only what it uses.
        MemoryStyle::Dynamic {
            offset_guard_size: 0,
        }
    }

    fn table_style(&self, table: &TableType) -> TableStyle {
        self.base.table_style(table)
    }

    fn create_host_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
    ) -> Result<VMMemory, MemoryError> {
        self.base.create_host_memory(&self.clamp(ty)?, style)
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        let ty = self.clamp(ty)?;
        // SAFETY: the caller's guarantees about `vm_definition_location` are passed on as-is;
        // only the memory type (a plain value) differs.
        unsafe {
            self.base
                .create_vm_memory(&ty, style, vm_definition_location)
        }
    }

    fn create_host_table(&self, ty: &TableType, style: &TableStyle) -> Result<VMTable, String> {
        self.base.create_host_table(&self.clamp_table(ty), style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        let ty = self.clamp_table(ty);
        // SAFETY: the caller's guarantees about `vm_definition_location` are passed on as-is;
        // only the table type (a plain value) differs.
        unsafe {
            self.base
                .create_vm_table(&ty, style, vm_definition_location)
        }
    }

    fn vmconfig(&self) -> &VMConfig {
        &self.vm_config
    }
}
