//! Memory and stack limits for script instances.
//!
//! wasmer's default tunables give every memory a Static style, reserving 8 GiB of address space
//! each (~16k instances would fill the address space). Scripts get Dynamic memories instead,
//! with the maximum clamped to the per-script limit, and a bounded wasm stack so deep recursion
//! traps instead of exhausting the host's stack. A table's declared maximum is clamped to the
//! table limit too (wasmer refuses maxima over 2^27 outright; scripts cannot grow tables, so
//! the maximum only has to be valid).
//!
//! Memories are [`ReservedMemory`]: the whole limit is reserved (address space only) when the
//! instance is made, and growing makes more of it accessible in place. wasmer's own dynamic
//! memory maps a new region and copies everything on every `memory.grow`; page faults make
//! that cost grow with the memory (15 one-page grows to 1 MiB took ~6 ms here), which no
//! per-page price could cover without making every script's heap growth unaffordable.
//!
//! One of the three modules with `unsafe` (with `artifacts` and `linear_memory`): wasmer's
//! `Tunables` trait declares two of its methods `unsafe` (a memory is made as a
//! [`ReservedMemory`], a table is made by wasmer's own code with its maximum clamped), a memory
//! hands compiled code a raw definition (base, length) to use, and `ReservedMemory` is `Send`
//! and `Sync` by declaration, as wasmer's own memories are.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::ptr::NonNull;

use wasmer::sys::vm::{
    LinearMemory, Mmap, MmapType, VMConfig, VMMemory, VMMemoryDefinition, VMTable,
    VMTableDefinition,
};
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
        let memory = ReservedMemory::new(self.clamp(ty)?, *style, Definition::owned())?;
        Ok(VMMemory(Box::new(memory)))
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        // The caller guarantees `vm_definition_location` points into the instance's VM context
        // and outlives the memory (wasmer's own memories rely on the same).
        let definition = Definition::Instance(vm_definition_location);
        let memory = ReservedMemory::new(self.clamp(ty)?, *style, definition)?;
        Ok(VMMemory(Box::new(memory)))
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

/// Where compiled code reads a memory's base and length.
#[derive(Debug)]
enum Definition {
    /// In the instance's VM context (a memory the module defines).
    Instance(NonNull<VMMemoryDefinition>),
    /// Owned here (a memory made by the host).
    Owned(Box<UnsafeCell<VMMemoryDefinition>>),
}

impl Definition {
    fn owned() -> Self {
        Self::Owned(Box::new(UnsafeCell::new(VMMemoryDefinition {
            base: std::ptr::null_mut(),
            current_length: 0,
        })))
    }

    fn pointer(&self) -> NonNull<VMMemoryDefinition> {
        match self {
            Self::Instance(pointer) => *pointer,
            // A Box's contents are never null.
            Self::Owned(cell) => NonNull::new(cell.get()).expect("a Box is never null"),
        }
    }

    fn set(&self, base: *mut u8, current_length: usize) {
        let mut pointer = self.pointer();
        // SAFETY: the pointer is valid for the memory's whole life (see `create_vm_memory`, or
        // owned here), and the store that owns the memory is used by one thread at a time
        // (a `Store` is not `Send`), so nothing reads the definition while it is written.
        let definition = unsafe { pointer.as_mut() };
        definition.base = base;
        definition.current_length = current_length;
    }
}

/// A linear memory whose whole maximum is reserved up front, so it grows in place: growing
/// only makes reserved pages accessible (no copy, and the base never moves). Costs address
/// space only for what it reserves: the per-script limit, not wasmer's 8 GiB.
#[derive(Debug)]
pub(crate) struct ReservedMemory {
    mmap: Mmap,
    ty: MemoryType,
    style: MemoryStyle,
    size: Pages,
    maximum: Pages,
    definition: Definition,
}

// SAFETY: the raw pointers are to memory this value owns (the mapping, an owned definition) or
// to the instance's definition, which lives as long as the instance holding this memory; all
// access goes through `&mut self` or the store's single-threaded use.
unsafe impl Send for ReservedMemory {}
// SAFETY: as above; `&self` methods only read.
unsafe impl Sync for ReservedMemory {}

impl ReservedMemory {
    /// `ty` already clamped: its maximum is set and within the limit.
    fn new(
        ty: MemoryType,
        style: MemoryStyle,
        definition: Definition,
    ) -> Result<Self, MemoryError> {
        let maximum = ty.maximum.unwrap_or(ty.minimum).max(ty.minimum);
        let reserved = maximum.bytes().0;
        let accessible = ty.minimum.bytes().0;
        // Anonymous and private (no file): `untouched_pages` relies on a page never touched
        // reading zero.
        let mut mmap = Mmap::accessible_reserved(accessible, reserved, None, MmapType::Private)
            .map_err(MemoryError::Region)?;
        definition.set(mmap.as_mut_ptr(), accessible);
        Ok(Self {
            mmap,
            ty,
            style,
            size: ty.minimum,
            maximum,
            definition,
        })
    }
}

impl LinearMemory for ReservedMemory {
    fn ty(&self) -> MemoryType {
        MemoryType {
            minimum: self.size,
            ..self.ty
        }
    }

    fn size(&self) -> Pages {
        self.size
    }

    fn style(&self) -> MemoryStyle {
        self.style
    }

    fn grow(&mut self, delta: Pages) -> Result<Pages, MemoryError> {
        let previous = self.size;
        let refused = || MemoryError::CouldNotGrow {
            current: previous,
            attempted_delta: delta,
        };
        if delta.0 == 0 {
            return Ok(previous);
        }
        let grown = previous.checked_add(delta).ok_or_else(refused)?;
        if grown > self.maximum {
            return Err(refused());
        }
        let (start, len) = (previous.bytes().0, delta.bytes().0);
        self.mmap
            .make_accessible(start, len)
            .map_err(MemoryError::Region)?;
        self.size = grown;
        self.definition.set(self.mmap.as_mut_ptr(), grown.bytes().0);
        Ok(previous)
    }

    fn vmmemory(&self) -> NonNull<VMMemoryDefinition> {
        self.definition.pointer()
    }

    fn try_clone(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        Err(MemoryError::MemoryNotShared)
    }

    fn copy(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        let mut copy = Self::new(self.ty, self.style, Definition::owned())?;
        if self.size > copy.size {
            copy.grow(Pages(self.size.0 - copy.size.0))?;
        }
        let len = self.size.bytes().0;
        copy.mmap.as_mut_slice()[..len].copy_from_slice(&self.mmap.as_slice()[..len]);
        Ok(Box::new(copy))
    }
}
