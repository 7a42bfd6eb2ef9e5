//! Runs a module's start function under the host's control instead of inside instantiation.
//!
//! wasmer runs the start function as part of `Instance::new`, and when it fails the instance
//! (with its fuel globals) is gone: running out of start fuel could only be reported as
//! "unreachable", and lines the start function logged were lost. This middleware takes the
//! start function out of the module and exports it under a reserved name instead; the host
//! instantiates (no script code runs), then calls it like any other metered call: out of fuel
//! is told apart from a trap, and its logs are kept and charged.

use wasmer::sys::{FunctionMiddleware, MiddlewareError, ModuleMiddleware};
use wasmer::{ExportIndex, LocalFunctionIndex, ModuleInfo};

use crate::state_globals::Unchanged;

/// Where the module's start function is exported (the host's reserved prefix).
pub(crate) const START_EXPORT: &str = "wasmer_deferred_start";

/// Moves the start function to [`START_EXPORT`]. Stateless: one instance serves any module.
#[derive(Debug, Default)]
pub(crate) struct DeferStart;

impl ModuleMiddleware for DeferStart {
    fn generate_function_middleware<'a>(
        &self,
        _: LocalFunctionIndex,
    ) -> Box<dyn FunctionMiddleware<'a> + 'a> {
        Box::new(Unchanged)
    }

    fn transform_module_info(&self, info: &mut ModuleInfo) -> Result<(), MiddlewareError> {
        if let Some(start) = info.start_function.take() {
            info.exports
                .insert(START_EXPORT.to_string(), ExportIndex::Function(start));
        }
        Ok(())
    }
}
