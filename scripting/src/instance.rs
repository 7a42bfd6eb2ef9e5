//! One ship's script instance: memory that persists across ticks, metered calls.

use std::sync::Arc;

use wasmer::{
    Function, FunctionEnv, FunctionEnvMut, Global, Instance, InstantiationError, Memory,
    RuntimeError, Store, TypedFunction, Value, imports,
};

use crate::engine::{CompiledScript, POINTS_EXHAUSTED, REMAINING_POINTS, check_abi_version};
use crate::error::{Fault, FaultKind, ScriptError};

/// Fuel for the `astroboids_abi` call at load: it should return a constant.
const ABI_CALL_FUEL: u64 = 10_000;

/// The outcome of one metered call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// Instructions used (the whole budget when it ran out).
    pub fuel_used: u64,
    /// `None` when the call returned normally.
    pub fault: Option<Fault>,
    /// Lines logged during the call (bounded).
    pub logs: Vec<String>,
    /// Log lines dropped because of the per-call limit.
    pub logs_dropped: u32,
}

/// What host functions see.
struct HostState {
    memory: Option<Memory>,
    remaining: Option<Global>,
    exhausted: Option<Global>,
    random_state: u64,
    logs: Vec<String>,
    logs_dropped: u32,
    log_lines_max: u32,
    log_line_bytes: u32,
    log_fuel: u64,
    abort: Option<String>,
}

/// A script instance. Not `Send` (wasmer's `Store` is not): it stays on the thread that made it.
pub struct ScriptInstance {
    // Field order matters: the store and instance drop before the `CompiledScript` that holds
    // their engine.
    store: Store,
    env: FunctionEnv<HostState>,
    tick: TypedFunction<(), ()>,
    memory: Memory,
    remaining: Global,
    exhausted: Global,
    script: Arc<CompiledScript>,
}

impl ScriptInstance {
    /// Instantiates `script` (running its start function on `start_fuel`) and checks its ABI
    /// version.
    pub fn new(script: &Arc<CompiledScript>, random_seed: u64) -> Result<Self, ScriptError> {
        let limits = script.limits().clone();
        let mut store = Store::new(script.engine().clone());
        let env = FunctionEnv::new(
            &mut store,
            HostState {
                memory: None,
                remaining: None,
                exhausted: None,
                random_state: random_seed,
                logs: Vec::new(),
                logs_dropped: 0,
                log_lines_max: limits.log_lines_per_tick,
                log_line_bytes: limits.log_line_bytes,
                log_fuel: limits.log_fuel,
                abort: None,
            },
        );
        let import_object = imports! {
            "astroboids" => {
                "log" => Function::new_typed_with_env(&mut store, &env, host_log),
                "random" => Function::new_typed_with_env(&mut store, &env, host_random),
            },
            "env" => {
                "abort" => Function::new_typed_with_env(&mut store, &env, host_abort),
            },
        };
        let instance =
            Instance::new(&mut store, script.module(), &import_object).map_err(|e| match e {
                InstantiationError::Start(trap) => ScriptError::Start(Fault {
                    kind: FaultKind::Trap,
                    message: format!(
                        "{} (the start function has {} fuel)",
                        trap.message(),
                        limits.start_fuel
                    ),
                }),
                other => ScriptError::Invalid(other.to_string()),
            })?;
        let exports = &instance.exports;
        let missing = |what: &str| ScriptError::Invalid(format!("instance lacks {what}"));
        let memory = exports
            .get_memory(crate::abi::MEMORY_EXPORT)
            .map_err(|_| missing("memory"))?
            .clone();
        let remaining = exports
            .get_global(REMAINING_POINTS)
            .map_err(|_| missing("metering"))?
            .clone();
        let exhausted = exports
            .get_global(POINTS_EXHAUSTED)
            .map_err(|_| missing("metering"))?
            .clone();
        let tick = exports
            .get_typed_function::<(), ()>(&store, "tick")
            .map_err(|_| missing("tick"))?;
        let abi = exports
            .get_typed_function::<(), i32>(&store, "astroboids_abi")
            .map_err(|_| missing("astroboids_abi"))?;
        {
            let state = env.as_mut(&mut store);
            state.memory = Some(memory.clone());
            state.remaining = Some(remaining.clone());
            state.exhausted = Some(exhausted.clone());
        }
        let mut this = Self {
            store,
            env,
            tick,
            memory,
            remaining,
            exhausted,
            script: Arc::clone(script),
        };
        let version = this.metered(ABI_CALL_FUEL, |store| abi.call(store));
        match version {
            (Ok(v), _) => check_abi_version(v)?,
            (Err(fault), _) => return Err(ScriptError::Start(fault)),
        }
        Ok(this)
    }

    /// The compiled script this instance runs.
    pub fn script(&self) -> &Arc<CompiledScript> {
        &self.script
    }

    /// Runs `tick` with `budget` fuel; `random_seed` seeds `astroboids.random` for this call.
    pub fn run_tick(&mut self, budget: u64, random_seed: u64) -> RunReport {
        {
            let state = self.env.as_mut(&mut self.store);
            state.random_state = random_seed;
            state.logs.clear();
            state.logs_dropped = 0;
            state.abort = None;
        }
        let tick = self.tick.clone();
        let (result, fuel_used) = self.metered(budget, |store| tick.call(store));
        let state = self.env.as_mut(&mut self.store);
        RunReport {
            fuel_used,
            fault: result.err(),
            logs: std::mem::take(&mut state.logs),
            logs_dropped: state.logs_dropped,
        }
    }

    /// Writes `bytes` into guest memory at `offset` (e.g. the sensor block before a tick).
    pub fn write_memory(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Fault> {
        self.memory
            .view(&self.store)
            .write(offset, bytes)
            .map_err(|_| Fault {
                kind: FaultKind::Trap,
                message: format!(
                    "the script's buffer at {offset} ({} bytes) is outside its memory",
                    bytes.len()
                ),
            })
    }

    /// Reads `len` bytes of guest memory at `offset` (e.g. the command block after a tick).
    pub fn read_memory(&self, offset: u64, len: usize) -> Result<Vec<u8>, Fault> {
        let mut out = vec![0; len];
        self.memory
            .view(&self.store)
            .read(offset, &mut out)
            .map_err(|_| Fault {
                kind: FaultKind::Trap,
                message: format!(
                    "the script's buffer at {offset} ({len} bytes) is outside its memory"
                ),
            })?;
        Ok(out)
    }

    /// A copy of the instance's linear memory: the script's persistent state.
    pub fn memory_snapshot(&self) -> Vec<u8> {
        self.memory
            .view(&self.store)
            .copy_to_vec()
            .unwrap_or_default()
    }

    /// Runs `call` with `budget` fuel; returns its result (or the fault) and the fuel used.
    fn metered<T>(
        &mut self,
        budget: u64,
        call: impl FnOnce(&mut Store) -> Result<T, RuntimeError>,
    ) -> (Result<T, Fault>, u64) {
        let budget_i64 = i64::try_from(budget).unwrap_or(i64::MAX);
        self.set_fuel(budget_i64);
        let result = call(&mut self.store);
        let exhausted = matches!(self.exhausted.get(&mut self.store), Value::I32(v) if v != 0);
        let left = match self.remaining.get(&mut self.store) {
            Value::I64(v) => v.max(0),
            _ => 0,
        };
        let used = if exhausted {
            budget
        } else {
            budget.saturating_sub(left as u64)
        };
        let abort = self.env.as_mut(&mut self.store).abort.take();
        let result = result.map_err(|e| {
            if exhausted {
                Fault {
                    kind: FaultKind::OutOfFuel,
                    message: format!("used all {budget} fuel"),
                }
            } else {
                Fault {
                    kind: FaultKind::Trap,
                    message: abort.unwrap_or_else(|| e.message()),
                }
            }
        });
        (result, used)
    }

    fn set_fuel(&mut self, points: i64) {
        // The globals have these types by construction of the metering middleware.
        let _ = self.remaining.set(&mut self.store, Value::I64(points));
        let _ = self.exhausted.set(&mut self.store, Value::I32(0));
    }
}

/// Takes `cost` fuel from inside a host call; traps as out-of-fuel when there is not enough.
fn charge(env: &mut FunctionEnvMut<HostState>, cost: u64) -> Result<(), RuntimeError> {
    let (state, mut store) = env.data_and_store_mut();
    let (Some(remaining), Some(exhausted)) = (state.remaining.clone(), state.exhausted.clone())
    else {
        return Ok(());
    };
    let left = match remaining.get(&mut store) {
        Value::I64(v) => v,
        _ => 0,
    };
    let cost = i64::try_from(cost).unwrap_or(i64::MAX);
    if left < cost {
        let _ = remaining.set(&mut store, Value::I64(0));
        let _ = exhausted.set(&mut store, Value::I32(1));
        return Err(RuntimeError::new("out of fuel in a host call"));
    }
    let _ = remaining.set(&mut store, Value::I64(left - cost));
    Ok(())
}

fn host_log(mut env: FunctionEnvMut<HostState>, ptr: i32, len: i32) -> Result<(), RuntimeError> {
    let len = u64::from(len.max(0) as u32);
    let fuel = env.data().log_fuel;
    charge(&mut env, fuel.saturating_add(len))?;
    let (state, store) = env.data_and_store_mut();
    if state.logs.len() >= state.log_lines_max as usize {
        state.logs_dropped += 1;
        return Ok(());
    }
    let keep = len.min(u64::from(state.log_line_bytes));
    let mut bytes = vec![0u8; keep as usize];
    let Some(memory) = state.memory.as_ref() else {
        return Ok(());
    };
    memory
        .view(&store)
        .read(u64::from(ptr as u32), &mut bytes)
        .map_err(|_| RuntimeError::new("astroboids.log: (ptr, len) is outside the memory"))?;
    state
        .logs
        .push(String::from_utf8_lossy(&bytes).into_owned());
    Ok(())
}

fn host_random(mut env: FunctionEnvMut<HostState>) -> i32 {
    // SplitMix64 step: fixed algorithm, so the sequence is the same everywhere.
    let state = env.data_mut();
    state.random_state = state.random_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = state.random_state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 32) as u32 as i32
}

fn host_abort(
    mut env: FunctionEnvMut<HostState>,
    _message: i32,
    _file: i32,
    line: i32,
    column: i32,
) -> Result<(), RuntimeError> {
    let text = format!("abort() called at line {line}, column {column}");
    env.data_mut().abort = Some(text.clone());
    Err(RuntimeError::new(text))
}
