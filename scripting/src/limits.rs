//! The limits every script runs under: what validation, compilation, instances and workers
//! all read.

use std::time::Duration;

use crate::structure::StructureLimits;

/// Every limit a script runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptLimits {
    pub max_module_bytes: usize,
    /// 64 KiB pages.
    pub max_memory_pages: u32,
    pub max_table_elements: u32,
    /// Bytes of wasm stack; deeper recursion traps.
    pub stack_bytes: usize,
    /// Fuel (instructions) for instantiation, including the start function.
    pub start_fuel: u64,
    /// Log lines a script may write per tick; more are dropped.
    pub log_lines_per_tick: u32,
    /// Longest log line kept, in bytes; longer ones are cut.
    pub log_line_bytes: u32,
    /// Fuel charged per log call, on top of one per byte.
    pub log_fuel: u64,
    /// Compiled scripts kept in the cache; beyond it, scripts no instance uses are dropped.
    pub max_cached_scripts: usize,
    /// The module's shape: what compiling and instantiating it may cost.
    pub structure: StructureLimits,
    /// How long compiling an upload may take ([`crate::ScriptEngine::load_for_upload`]); a host
    /// setting, not part of any world's results.
    pub upload_compile_time_max: Duration,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self {
            max_module_bytes: 256 * 1024,
            max_memory_pages: 16,
            max_table_elements: 10_000,
            stack_bytes: 256 * 1024,
            start_fuel: 250_000,
            log_lines_per_tick: 16,
            log_line_bytes: 256,
            log_fuel: 1_000,
            max_cached_scripts: 1_024,
            structure: StructureLimits::default(),
            upload_compile_time_max: Duration::from_secs(10),
        }
    }
}
