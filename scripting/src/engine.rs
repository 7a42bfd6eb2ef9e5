//! Validation, compilation and the compiled-module cache.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use wasmer::sys::{CompilerConfig, Cranelift, Features, NativeEngineExt, Singlepass};
use wasmer::{CompileError, Engine, ExternType, Module};
use wasmer_types::{CompilationProgressCallback, UserAbort};
use xxhash_rust::xxh3::xxh3_128;

use crate::abi;
use crate::artifacts::{ArtifactDir, deserialize_fresh};
use crate::compiled::CompiledScript;
use crate::deferred_start::DeferStart;
use crate::error::ScriptError;
use crate::instance::ScriptInstance;
use crate::limits::ScriptLimits;
use crate::metering::{COST_TABLE_VERSION, FuelMetering};
use crate::state_globals::ExportStateGlobals;
use crate::structure::check_structure;
use crate::tunables::ScriptTunables;

/// Which wasmer compiler turns scripts into machine code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CompilerKind {
    /// Fast to compile, slower code.
    Singlepass,
    /// Slower to compile, faster code.
    Cranelift,
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
    /// Why recent modules were refused, by hash (bounded like the cache): a module refused
    /// while compiled off the tick thread is not compiled again on it.
    refused: Mutex<BTreeMap<u128, ScriptError>>,
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
/// The random seed of the trial instance every module is started in when it is loaded.
const TRIAL_SEED: u64 = 0x5eed_0f7e_57ed;

/// WebAssembly features scripts get: the deterministic MVP plus bulk memory (priced by length)
/// and multi-value; nothing else (no threads, SIMD, reference types, tail calls, exceptions,
/// multi-memory, memory64 or extended constants), so every operator a script can use is one
/// the metering prices.
fn script_features() -> Features {
    let mut f = Features::none();
    f.bulk_memory(true).multi_value(true);
    f
}

impl ScriptEngine {
    pub fn new(limits: ScriptLimits, compiler: CompilerKind) -> Self {
        let mut runtime = Engine::headless();
        runtime.set_tunables(ScriptTunables::new(
            limits.max_memory_pages,
            limits.max_table_elements,
            limits.stack_bytes,
        ));
        Self {
            limits,
            compiler,
            cache: Mutex::new(BTreeMap::new()),
            refused: Mutex::new(BTreeMap::new()),
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

    /// Validates and compiles `wasm`, or returns the cached result for the same bytes. The
    /// result depends only on the bytes and the limits, never on how fast this machine is:
    /// what worlds and replays use.
    pub fn load(&self, wasm: &[u8]) -> Result<Arc<CompiledScript>, ScriptError> {
        self.load_within(wasm, None)
    }

    /// Like [`Self::load`], but refuses a module whose compilation takes longer than
    /// `limits.upload_compile_time_max`: for uploads, where a stranger's module must not hold
    /// a compiler for minutes. Accepted or refused, the outcome is cached, so a later `load`
    /// of the same bytes (on the tick thread) does not compile again.
    pub fn load_for_upload(&self, wasm: &[u8]) -> Result<Arc<CompiledScript>, ScriptError> {
        self.load_within(wasm, Some(self.limits.upload_compile_time_max))
    }

    fn load_within(
        &self,
        wasm: &[u8],
        compile_time_max: Option<Duration>,
    ) -> Result<Arc<CompiledScript>, ScriptError> {
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
        if let Some(refusal) = self.refused_lock().get(&hash) {
            return Err(refusal.clone());
        }
        let loaded = self.load_uncached(wasm, hash, compile_time_max);
        if let Err(refusal) = &loaded {
            let mut refused = self.refused_lock();
            if refused.len() >= self.limits.max_cached_scripts {
                refused.clear();
            }
            refused.insert(hash, refusal.clone());
        }
        loaded
    }

    fn load_uncached(
        &self,
        wasm: &[u8],
        hash: u128,
        compile_time_max: Option<Duration>,
    ) -> Result<Arc<CompiledScript>, ScriptError> {
        check_structure(wasm, &self.limits.structure, self.limits.max_table_elements)?;
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
                let module = compile(&engine, wasm, compile_time_max)?;
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
        let compiled = Arc::new(CompiledScript::new(
            hash,
            self.runtime.clone(),
            module,
            self.limits.clone(),
        ));
        // Whatever would fail when a ship starts the script (its start function, the ABI
        // version, the block addresses, initializing segments) fails here, at upload.
        let trial = ScriptInstance::new(&compiled, TRIAL_SEED)?;
        compiled.record_trial_start_fuel(trial.start_fuel_used());
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

    fn refused_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u128, ScriptError>> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u128, Arc<CompiledScript>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh engine with its own metering middleware: one middleware instance can compile
    /// exactly one module.
    fn compile_engine(&self) -> Engine {
        let metering = Arc::new(FuelMetering::new(
            self.limits.start_fuel,
            self.limits.max_memory_pages,
        ));
        // State globals first: it must see only the script's own globals, not metering's.
        let state_globals = Arc::new(ExportStateGlobals);
        let defer_start = Arc::new(DeferStart);
        let config: Box<dyn CompilerConfig> = match self.compiler {
            CompilerKind::Singlepass => {
                let mut c = Singlepass::default();
                c.canonicalize_nans(true);
                c.push_middleware(state_globals);
                c.push_middleware(defer_start);
                c.push_middleware(metering);
                Box::new(c)
            }
            CompilerKind::Cranelift => {
                let mut c = Cranelift::default();
                c.canonicalize_nans(true);
                c.push_middleware(state_globals);
                c.push_middleware(defer_start);
                c.push_middleware(metering);
                Box::new(c)
            }
        };
        #[allow(deprecated)]
        let mut engine = Engine::new(config, Default::default(), script_features());
        engine.set_tunables(ScriptTunables::new(
            self.limits.max_memory_pages,
            self.limits.max_table_elements,
            self.limits.stack_bytes,
        ));
        engine
    }
}

/// Compiles `wasm`, giving up when `time_max` (if any) has passed: the compiler reports after
/// each batch of functions, and structural limits keep every function small, so it stops soon
/// after the deadline.
fn compile(
    engine: &Engine,
    wasm: &[u8],
    time_max: Option<Duration>,
) -> Result<Module, ScriptError> {
    let deadline = time_max.map(|max| (Instant::now() + max, max));
    let progress = CompilationProgressCallback::new(move |_| match deadline {
        Some((at, max)) if Instant::now() > at => Err(UserAbort::new(format!(
            "compiling took longer than {} ms",
            max.as_millis()
        ))),
        _ => Ok(()),
    });
    engine
        .new_module_with_progress(wasm, progress)
        .map_err(|e| match (e, time_max) {
            (CompileError::Aborted(_), Some(max)) => ScriptError::CompileTimeout {
                limit_ms: max.as_millis() as u64,
            },
            (e, _) => ScriptError::Invalid(e.to_string()),
        })
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
                kind: abi::kind_name(import.ty()),
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
