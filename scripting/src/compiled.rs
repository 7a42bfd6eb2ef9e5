//! A validated, compiled module, as every instance of it shares it.

use wasmer::{Engine, ExternType, Module};

use crate::abi;
use crate::limits::ScriptLimits;

/// A validated, compiled module. Shared by every ship that runs the same script.
pub struct CompiledScript {
    hash: u128,
    /// The engine `module` was loaded into. It must outlive every instance of the module
    /// (wasmer crashes otherwise), so a handle lives here, next to the module.
    engine: Engine,
    module: Module,
    limits: ScriptLimits,
    /// Fuel the start function used in the trial instance at load.
    trial_start_fuel: std::sync::OnceLock<u64>,
}

impl CompiledScript {
    /// Fuel the module's start function used when it was tried at load (0 without one); a
    /// ship's start uses the same unless the start function depends on its random draws.
    pub fn trial_start_fuel(&self) -> u64 {
        self.trial_start_fuel.get().copied().unwrap_or(0)
    }

    /// XXH3-128 of the module bytes: the script's identity.
    pub fn hash(&self) -> u128 {
        self.hash
    }

    /// A module `engine` compiled, under `limits`; its trial start fuel is recorded later
    /// ([`Self::record_trial_start_fuel`]).
    pub(crate) fn new(hash: u128, engine: Engine, module: Module, limits: ScriptLimits) -> Self {
        Self {
            hash,
            engine,
            module,
            limits,
            trial_start_fuel: std::sync::OnceLock::new(),
        }
    }

    /// What the module's start function used in the trial instance at load (the first
    /// recording stays).
    pub(crate) fn record_trial_start_fuel(&self, fuel: u64) {
        let _ = self.trial_start_fuel.set(fuel);
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }
    pub(crate) fn module(&self) -> &Module {
        &self.module
    }
    pub(crate) fn limits(&self) -> &ScriptLimits {
        &self.limits
    }

    /// What the module imports and exports (host-reserved exports left out) and its memory.
    pub fn describe(&self) -> ModuleSummary {
        let signature = |ty: &ExternType| match ty {
            ExternType::Function(f) => abi::signature(f.params(), f.results()),
            other => abi::kind_name(other).to_string(),
        };
        let memory = self.module.info().memories.values().next();
        ModuleSummary {
            imports: self
                .module
                .imports()
                .map(|i| (format!("{}.{}", i.module(), i.name()), signature(i.ty())))
                .collect(),
            exports: self
                .module
                .exports()
                .filter(|e| !e.name().starts_with(abi::RESERVED_EXPORT_PREFIX))
                .map(|e| (e.name().to_string(), signature(e.ty())))
                .collect(),
            memory_min_pages: memory.map_or(0, |m| m.minimum.0),
            memory_max_pages: memory.and_then(|m| m.maximum).map(|p| p.0),
        }
    }
}

/// A compiled module's interface, for `astroboids script check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSummary {
    /// ("module.name", "(params) -> (results)").
    pub imports: Vec<(String, String)>,
    /// (name, "(params) -> (results)" or "memory", "global", ...).
    pub exports: Vec<(String, String)>,
    pub memory_min_pages: u32,
    /// As declared; the host clamps it to its limit.
    pub memory_max_pages: Option<u32>,
}
