//! Makes a script's mutable globals reachable from the host.
//!
//! A script's state is its linear memory *and* its mutable globals (compilers keep variables,
//! the heap pointer and the stack pointer in globals). The host must see all of it to hash it
//! and, later, to checkpoint it. WebAssembly only lets the host read exported globals, so this
//! middleware exports every mutable global the module defines under a reserved name,
//! `wasmer_state_global_<n>`, numbered in definition order.

use wasmer::sys::{FunctionMiddleware, MiddlewareError, ModuleMiddleware};
use wasmer::{ExportIndex, LocalFunctionIndex, ModuleInfo, Mutability};

/// Prefix of the exports this middleware adds; `n` counts mutable globals in index order.
pub(crate) const STATE_GLOBAL_PREFIX: &str = "wasmer_state_global_";

/// Adds an export for each mutable global. Stateless, so one instance may serve any number of
/// modules (unlike wasmer's `Metering`).
#[derive(Debug, Default)]
pub(crate) struct ExportStateGlobals;

/// Leaves function bodies alone: the default `feed` passes operators through. For middlewares
/// that only change the module's description.
#[derive(Debug)]
pub(crate) struct Unchanged;

impl FunctionMiddleware<'_> for Unchanged {}

impl ModuleMiddleware for ExportStateGlobals {
    fn generate_function_middleware<'a>(
        &self,
        _: LocalFunctionIndex,
    ) -> Box<dyn FunctionMiddleware<'a> + 'a> {
        Box::new(Unchanged)
    }

    fn transform_module_info(&self, info: &mut ModuleInfo) -> Result<(), MiddlewareError> {
        let mutable: Vec<_> = info
            .globals
            .iter()
            .filter(|(_, ty)| ty.mutability == Mutability::Var)
            .map(|(index, _)| index)
            .collect();
        for (n, index) in mutable.into_iter().enumerate() {
            info.exports.insert(
                format!("{STATE_GLOBAL_PREFIX}{n}"),
                ExportIndex::Global(index),
            );
        }
        Ok(())
    }
}
