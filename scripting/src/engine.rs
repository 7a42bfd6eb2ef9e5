//! Validation, compilation and the compiled-module cache.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wasmer::sys::{CompilerConfig, Cranelift, Features, NativeEngineExt, Singlepass};
use wasmer::wasmparser::Operator;
use wasmer::{Engine, ExternType, Module};
use wasmer_middlewares::Metering;
use xxhash_rust::xxh3::xxh3_128;

use crate::abi::{self, ABI_VERSION};
use crate::artifacts::{ArtifactDir, deserialize_fresh};
use crate::error::ScriptError;
use crate::state_globals::ExportStateGlobals;
use crate::tunables::ScriptTunables;

/// Which wasmer compiler turns scripts into machine code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CompilerKind {
    /// Fast to compile, slower code.
    Singlepass,
    /// Slower to compile, faster code.
    Cranelift,
}

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
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self {
            max_module_bytes: 256 * 1024,
            max_memory_pages: 16,
            max_table_elements: 10_000,
            stack_bytes: 256 * 1024,
            start_fuel: 5_000_000,
            log_lines_per_tick: 16,
            log_line_bytes: 256,
            log_fuel: 1_000,
            max_cached_scripts: 1_024,
        }
    }
}

/// A validated, compiled module. Shared by every ship that runs the same script.
pub struct CompiledScript {
    hash: u128,
    /// The engine `module` was loaded into. It must outlive every instance of the module
    /// (wasmer crashes otherwise), so a handle lives here, next to the module.
    engine: Engine,
    module: Module,
    limits: ScriptLimits,
}

impl CompiledScript {
    /// XXH3-128 of the module bytes: the script's identity.
    pub fn hash(&self) -> u128 {
        self.hash
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
            other => kind_name(other).to_string(),
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

/// Compiles scripts and caches them by (module hash, compiler): in memory, and on disk when
/// given an [`ArtifactDir`].
/// The id of a module: XXH3-128 of its bytes (what [`CompiledScript::hash`] returns).
pub fn module_hash(wasm: &[u8]) -> u128 {
    xxh3_128(wasm)
}

pub struct ScriptEngine {
    limits: ScriptLimits,
    compiler: CompilerKind,
    cache: Mutex<BTreeMap<u128, Arc<CompiledScript>>>,
    /// Every module runs on this compiler-less engine: compiled modules are serialized and
    /// deserialized into it, so the per-module compile engines can be dropped and modules from
    /// disk and fresh ones behave the same.
    runtime: Engine,
    artifacts: Option<ArtifactDir>,
    compiled: AtomicU64,
    loaded_from_disk: AtomicU64,
}

/// How `ScriptEngine::load` found its modules, since the engine was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadStats {
    /// Compiled from WebAssembly.
    pub compiled: u64,
    /// Read back from the artifact directory.
    pub loaded_from_disk: u64,
}

/// The wasmer version artifacts are built with (pinned with `=` in Cargo.toml); part of the
/// artifact key, because artifacts are not portable across versions.
const WASMER_VERSION: &str = "7.4.2";
/// Bump when `operator_cost` or the middlewares change: the costs are baked into artifacts.
const COST_TABLE_VERSION: u32 = 1;

/// Instruction costs: one per operator, so budgets read as "instructions". Bulk memory
/// operators cost a flat amount whatever their length (wasmer cannot meter by length), which
/// is why memory size is capped instead.
fn operator_cost(_op: &Operator) -> u64 {
    1
}

/// WebAssembly features scripts get: the deterministic MVP plus bulk memory and multi-value;
/// no threads, SIMD, relaxed SIMD, multi-memory, memory64 or exceptions.
fn script_features() -> Features {
    let mut f = Features::default();
    f.threads(false)
        .simd(false)
        .relaxed_simd(false)
        .multi_memory(false)
        .memory64(false)
        .exceptions(false)
        .bulk_memory(true)
        .multi_value(true)
        .reference_types(false);
    f
}

impl ScriptEngine {
    pub fn new(limits: ScriptLimits, compiler: CompilerKind) -> Self {
        let mut runtime = Engine::headless();
        runtime.set_tunables(ScriptTunables::new(
            limits.max_memory_pages,
            limits.stack_bytes,
        ));
        Self {
            limits,
            compiler,
            cache: Mutex::new(BTreeMap::new()),
            runtime,
            artifacts: None,
            compiled: AtomicU64::new(0),
            loaded_from_disk: AtomicU64::new(0),
        }
    }

    /// Keeps compiled artifacts in `dir` and reuses them across restarts.
    pub fn with_artifact_dir(mut self, dir: ArtifactDir) -> Self {
        self.artifacts = Some(dir);
        self
    }

    pub fn load_stats(&self) -> LoadStats {
        LoadStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            loaded_from_disk: self.loaded_from_disk.load(Ordering::Relaxed),
        }
    }

    /// Names the artifact of module `hash` under this engine's configuration on this CPU.
    fn artifact_key(&self, hash: u128) -> u128 {
        let target = self.runtime.target();
        let l = &self.limits;
        let description = format!(
            "{hash:032x}|wasmer {WASMER_VERSION}|{:?}|cost table {COST_TABLE_VERSION}|start fuel {}|\
             pages {}|stack {}|{}|{:?}",
            self.compiler,
            l.start_fuel,
            l.max_memory_pages,
            l.stack_bytes,
            target.triple(),
            target.cpu_features(),
        );
        xxh3_128(description.as_bytes())
    }

    pub fn limits(&self) -> &ScriptLimits {
        &self.limits
    }

    /// Validates and compiles `wasm`, or returns the cached result for the same bytes.
    pub fn load(&self, wasm: &[u8]) -> Result<Arc<CompiledScript>, ScriptError> {
        if wasm.len() > self.limits.max_module_bytes {
            return Err(ScriptError::TooLarge {
                bytes: wasm.len(),
                limit: self.limits.max_module_bytes,
            });
        }
        let hash = module_hash(wasm);
        if let Some(hit) = self.cache_lock().get(&hash) {
            return Ok(Arc::clone(hit));
        }
        let key = self.artifact_key(hash);
        let from_disk = self
            .artifacts
            .as_ref()
            .and_then(|dir| dir.load(key, &self.runtime));
        let module = match from_disk {
            Some(module) => {
                // Validated when it was compiled; checked again, as it is cheap.
                check_reserved_exports(wasm)?;
                check_module(&module, &self.limits)?;
                self.loaded_from_disk.fetch_add(1, Ordering::Relaxed);
                module
            }
            None => {
                let engine = self.compile_engine();
                let module =
                    Module::new(&engine, wasm).map_err(|e| ScriptError::Invalid(e.to_string()))?;
                check_reserved_exports(wasm)?;
                check_module(&module, &self.limits)?;
                let artifact = module
                    .serialize()
                    .map_err(|e| ScriptError::Invalid(format!("cannot serialize: {e}")))?;
                if let Some(dir) = &self.artifacts {
                    dir.store(key, &artifact);
                }
                self.compiled.fetch_add(1, Ordering::Relaxed);
                deserialize_fresh(&self.runtime, &artifact)
                    .map_err(|e| ScriptError::Invalid(format!("cannot load the artifact: {e}")))?
            }
        };
        let compiled = Arc::new(CompiledScript {
            hash,
            engine: self.runtime.clone(),
            module,
            limits: self.limits.clone(),
        });
        let mut cache = self.cache_lock();
        if cache.len() >= self.limits.max_cached_scripts {
            // Only the cache holds these: no instance runs them, so they can go.
            cache.retain(|_, script| Arc::strong_count(script) > 1);
        }
        cache.insert(hash, Arc::clone(&compiled));
        Ok(compiled)
    }

    /// Scripts in the cache.
    pub fn cached(&self) -> usize {
        self.cache_lock().len()
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u128, Arc<CompiledScript>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh engine with its own metering middleware: one middleware instance can compile
    /// exactly one module.
    fn compile_engine(&self) -> Engine {
        let metering = Arc::new(Metering::new(self.limits.start_fuel, operator_cost));
        // State globals first: it must see only the script's own globals, not metering's.
        let state_globals = Arc::new(ExportStateGlobals);
        let config: Box<dyn CompilerConfig> = match self.compiler {
            CompilerKind::Singlepass => {
                let mut c = Singlepass::default();
                c.canonicalize_nans(true);
                c.push_middleware(state_globals);
                c.push_middleware(metering);
                Box::new(c)
            }
            CompilerKind::Cranelift => {
                let mut c = Cranelift::default();
                c.canonicalize_nans(true);
                c.push_middleware(state_globals);
                c.push_middleware(metering);
                Box::new(c)
            }
        };
        #[allow(deprecated)]
        let mut engine = Engine::new(config, Default::default(), script_features());
        engine.set_tunables(ScriptTunables::new(
            self.limits.max_memory_pages,
            self.limits.stack_bytes,
        ));
        engine
    }
}

fn kind_name(ty: &ExternType) -> &'static str {
    match ty {
        ExternType::Function(_) => "function",
        ExternType::Global(_) => "global",
        ExternType::Table(_) => "table",
        ExternType::Memory(_) => "memory",
        ExternType::Tag(_) => "tag",
    }
}

/// The compiled module also exports the metering globals the middleware added, so names the
/// author chose are read from the original bytes (already validated by the compiler).
fn check_reserved_exports(wasm: &[u8]) -> Result<(), ScriptError> {
    use wasmer::wasmparser::{Parser, Payload};
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(Payload::ExportSection(reader)) = payload else {
            continue;
        };
        for export in reader.into_iter().flatten() {
            if export.name.starts_with(abi::RESERVED_EXPORT_PREFIX) {
                return Err(ScriptError::ReservedExport {
                    name: export.name.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Imports, exports, memory and tables against the ABI and the limits.
fn check_module(module: &Module, limits: &ScriptLimits) -> Result<(), ScriptError> {
    for import in module.imports() {
        let (m, n) = (import.module(), import.name());
        let ExternType::Function(found) = import.ty() else {
            return Err(ScriptError::ImportKind {
                module: m.to_string(),
                name: n.to_string(),
                kind: kind_name(import.ty()),
            });
        };
        let Some(spec) = abi::IMPORTS.iter().find(|s| s.module == m && s.name == n) else {
            return Err(ScriptError::ForbiddenImport {
                module: m.to_string(),
                name: n.to_string(),
                hint: abi::forbidden_import_hint(m, n),
            });
        };
        if found.params() != spec.params || found.results() != spec.results {
            return Err(ScriptError::ImportSignature {
                module: m.to_string(),
                name: n.to_string(),
                found: abi::signature(found.params(), found.results()),
                expected: abi::signature(spec.params, spec.results),
            });
        }
    }

    let mut memories = Vec::new();
    for export in module.exports() {
        if let ExternType::Memory(ty) = export.ty() {
            memories.push((export.name().to_string(), *ty));
        }
    }
    for spec in abi::EXPORTS {
        let expected = abi::signature(spec.params, spec.results);
        let found = module.exports().find(|e| e.name() == spec.name);
        match found.as_ref().map(|e| e.ty()) {
            Some(ExternType::Function(f)) => {
                if f.params() != spec.params || f.results() != spec.results {
                    return Err(ScriptError::ExportSignature {
                        name: spec.name,
                        found: abi::signature(f.params(), f.results()),
                        expected,
                    });
                }
            }
            _ => {
                return Err(ScriptError::MissingExport {
                    name: spec.name,
                    expected,
                });
            }
        }
    }

    let info = module.info();
    if info.memories.len() != 1 {
        return Err(ScriptError::Memory(format!(
            "it defines {}",
            info.memories.len()
        )));
    }
    if !memories.iter().any(|(name, _)| name == abi::MEMORY_EXPORT) {
        return Err(ScriptError::Memory(
            "it does not export `memory`".to_string(),
        ));
    }
    for ty in info.memories.values() {
        if ty.minimum.0 > limits.max_memory_pages {
            return Err(ScriptError::MemoryTooLarge {
                minimum: ty.minimum.0,
                limit: limits.max_memory_pages,
                limit_kib: limits.max_memory_pages * 64,
            });
        }
    }
    for (index, table) in info.tables.values().enumerate() {
        if table.minimum > limits.max_table_elements {
            return Err(ScriptError::TableTooLarge {
                index,
                minimum: table.minimum,
                limit: limits.max_table_elements,
            });
        }
    }
    Ok(())
}

/// The ABI version a freshly started instance reports; checked right after instantiation.
pub(crate) fn check_abi_version(found: i32) -> Result<(), ScriptError> {
    if found == ABI_VERSION {
        Ok(())
    } else {
        Err(ScriptError::AbiVersion {
            found,
            supported: ABI_VERSION,
        })
    }
}

/// Globals the metering middleware adds to every module (i64 points left, i32 exhausted flag).
pub(crate) const REMAINING_POINTS: &str = "wasmer_metering_remaining_points";
pub(crate) const POINTS_EXHAUSTED: &str = "wasmer_metering_points_exhausted";
