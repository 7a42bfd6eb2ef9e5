//! One ship's script instance: memory that persists across ticks, metered calls.
//!
//! Code map: this file makes, runs, saves and restores an instance; `host_calls` is what a
//! script may call (`astroboids.log`, `astroboids.random`, `env.abort`) and their fuel.

mod host_calls;

pub use host_calls::escape_control;
use host_calls::{HostState, host_imports};

use std::sync::Arc;

use wasmer::{
    FunctionEnv, Global, Instance, InstantiationError, Memory, RuntimeError, Store, TypedFunction,
    Value,
};

use xxhash_rust::xxh3::Xxh3;

use crate::abi::check_abi_version;
use crate::blocks::{COMMAND_BLOCK_BYTES, SENSOR_BLOCK_BYTES, ScriptCommand, SensorSnapshot};
use crate::compiled::CompiledScript;
use crate::deferred_start::START_EXPORT;
use crate::error::{Fault, FaultKind, ScriptError};
use crate::image_buffers;
use crate::linear_memory;
use crate::memory_image::{MemoryImage, nonzero_chunks};
use crate::metering::{GROW_PAGE_COST, POINTS_EXHAUSTED, REMAINING_POINTS};
use crate::state_globals::STATE_GLOBAL_PREFIX;
use crate::untouched_pages::UntouchedPages;

/// Fuel for each ABI query at start (`astroboids_abi`, `sensor_ptr`, `command_ptr`): they
/// should return constants.
const ABI_CALL_FUEL: u64 = 10_000;

/// The outcome of one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// Instructions used (the whole budget when it ran out).
    pub fuel_used: u64,
    /// `None` when the call returned normally.
    pub fault: Option<Fault>,
    /// Lines logged during the call (bounded).
    pub logs: Vec<String>,
    /// Log lines dropped because of the per-call limit.
    pub logs_dropped: u32,
    /// What the script asked its ship to do; `None` when the run faulted (its commands are
    /// discarded).
    pub command: Option<ScriptCommand>,
}

/// Everything a script keeps between ticks: its memory and its mutable globals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceState {
    pub memory: MemoryImage,
    /// Raw bits of each mutable global, in definition order.
    pub globals: Vec<u64>,
}

impl InstanceState {
    /// A 128-bit digest of the state: the one [`ScriptInstance::state_digest`] gives for the
    /// instance it was taken from.
    pub fn digest(&self) -> u128 {
        state_digest(
            self.memory.len(),
            self.memory.indexed_chunks(),
            self.globals.iter().copied(),
        )
    }
}

/// The digest of a script's state, over its memory as its image holds it (the size, then each
/// chunk that is not all zero with its index: a memory's image is canonical, so this identifies
/// its contents) and its globals' bits. Zero chunks are left out rather than hashed as zeros:
/// most of a script's memory is zero, and hashing it all cost a checkpoint tick at 10,000
/// scripted ships twice a whole tick.
fn state_digest<'a>(
    memory_len: u64,
    chunks: impl Iterator<Item = (u32, &'a [u8])>,
    globals: impl Iterator<Item = u64>,
) -> u128 {
    let mut hasher = Xxh3::new();
    hasher.update(&memory_len.to_le_bytes());
    for (index, chunk) in chunks {
        hasher.update(&index.to_le_bytes());
        hasher.update(chunk);
    }
    for bits in globals {
        hasher.update(&bits.to_le_bytes());
    }
    hasher.digest128()
}

/// A script instance. Not `Send` (wasmer's `Store` is not): it stays on the thread that made it.
///
/// The compiler keeps it so (the script workers rely on it):
///
/// ```compile_fail,E0277
/// fn send_to_another_thread<T: Send>() {}
/// send_to_another_thread::<astroboids_scripting::ScriptInstance>();
/// ```
pub struct ScriptInstance {
    // Field order matters: the store and instance drop before the `CompiledScript` that holds
    // their engine.
    store: Store,
    env: FunctionEnv<HostState>,
    tick: TypedFunction<(), ()>,
    memory: Memory,
    remaining: Global,
    exhausted: Global,
    /// Whether the last metered call faulted. Only then can the metering's exhausted flag be
    /// set (it is set together with a trap), so only then is it read and, before the next
    /// call, cleared: two global accesses fewer on every clean run.
    last_call_faulted: bool,
    /// The script's mutable globals, in definition order (exported by `ExportStateGlobals`).
    state_globals: Vec<Global>,
    sensor_addr: u64,
    command_addr: u64,
    /// Lines the start function logged (charged to its start fuel), until taken.
    start_logs: Vec<String>,
    start_fuel_used: u64,
    script: Arc<CompiledScript>,
}

/// An instance made but not started: no script code has run in it yet, so it is the same
/// whenever and wherever it was made. Making one is most of what a start costs the host (the
/// store, the memory mapping, data segments, the exports table), so a worker can make it ahead
/// of the tick that starts it ([`crate::ScriptWorkers::prepare`]).
pub struct PreparedInstance {
    instance: ScriptInstance,
    start: Option<TypedFunction<(), ()>>,
    abi: TypedFunction<(), i32>,
    sensor_ptr: TypedFunction<(), i32>,
    command_ptr: TypedFunction<(), i32>,
}

impl PreparedInstance {
    /// The compiled script this instance was made from.
    pub fn script(&self) -> &Arc<CompiledScript> {
        &self.instance.script
    }

    /// Runs the start function on the start fuel left after the initial pages, with
    /// `astroboids.random` seeded by `random_seed`, then checks the ABI version and block
    /// addresses.
    pub fn start(self, random_seed: u64) -> Result<ScriptInstance, ScriptError> {
        let Self {
            instance: mut this,
            start,
            abi,
            sensor_ptr,
            command_ptr,
        } = self;
        let start_fuel = this.script.limits().start_fuel;
        this.env.as_mut(&mut this.store).random_state = random_seed;
        if let Some(start) = start {
            let left = start_fuel - this.start_fuel_used;
            let (result, used) = this.metered(left, |store| start.call(store));
            this.start_fuel_used += used;
            this.start_logs = std::mem::take(&mut this.env.as_mut(&mut this.store).logs);
            result.map_err(|fault| start_failure(fault, start_fuel, &this.start_logs))?;
        }
        let mut ask = |f: &TypedFunction<(), i32>| {
            this.metered(ABI_CALL_FUEL, |store| f.call(store))
                .0
                .map_err(ScriptError::Start)
        };
        check_abi_version(ask(&abi)?)?;
        let sensor = ask(&sensor_ptr)?;
        let command = ask(&command_ptr)?;
        let memory_bytes = this.memory.view(&this.store).data_size();
        (this.sensor_addr, this.command_addr) = check_blocks(sensor, command, memory_bytes)?;
        Ok(this)
    }
}

impl ScriptInstance {
    /// Instantiates `script`, runs its start function on `start_fuel` and checks its ABI
    /// version and block addresses.
    pub fn new(script: &Arc<CompiledScript>, random_seed: u64) -> Result<Self, ScriptError> {
        Self::prepare(script)?.start(random_seed)
    }

    /// Instantiates `script` without running any of its code (see [`PreparedInstance`]). Fails
    /// as [`Self::new`] would for what instantiating alone can tell: a module that does not
    /// instantiate, lacks an export, or whose initial memory costs more than its start fuel.
    pub fn prepare(script: &Arc<CompiledScript>) -> Result<PreparedInstance, ScriptError> {
        let limits = script.limits().clone();
        let mut store = Store::new(script.engine().clone());
        let env = FunctionEnv::new(&mut store, HostState::new(&limits));
        let import_object = host_imports(&mut store, &env);
        // No script code runs here: the start function was moved to an export (see
        // `deferred_start`), so only segment initialization can fail.
        let instance =
            Instance::new(&mut store, script.module(), &import_object).map_err(|e| match e {
                InstantiationError::Start(trap) => ScriptError::Initialize(trap.message()),
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
        let start = exports
            .get_typed_function::<(), ()>(&store, START_EXPORT)
            .ok();
        let query = |name: &'static str| {
            exports
                .get_typed_function::<(), i32>(&store, name)
                .map_err(|_| missing(name))
        };
        let (abi, sensor_ptr, command_ptr) = (
            query("astroboids_abi")?,
            query("sensor_ptr")?,
            query("command_ptr")?,
        );
        let mut state_globals: Vec<(usize, Global)> = exports
            .iter()
            .filter_map(|(name, _)| {
                let n = name.strip_prefix(STATE_GLOBAL_PREFIX)?.parse().ok()?;
                Some((n, exports.get_global(name).ok()?.clone()))
            })
            .collect();
        state_globals.sort_unstable_by_key(|(n, _)| *n);
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
            last_call_faulted: false,
            state_globals: state_globals.into_iter().map(|(_, g)| g).collect(),
            sensor_addr: 0,
            command_addr: 0,
            start_logs: Vec::new(),
            start_fuel_used: 0,
            script: Arc::clone(script),
        };
        // The pages the module starts with are paid from the start fuel, as grown pages are.
        let initial_pages = this.memory.view(&this.store).size().0;
        let pages_fuel = u64::from(initial_pages) * GROW_PAGE_COST as u64;
        if pages_fuel > limits.start_fuel {
            return Err(ScriptError::Start(Fault {
                kind: FaultKind::OutOfFuel,
                message: format!(
                    "its initial memory of {initial_pages} pages costs {pages_fuel} fuel, more \
                     than the {} start fuel",
                    limits.start_fuel
                ),
            }));
        }
        this.start_fuel_used = pages_fuel;
        Ok(PreparedInstance {
            instance: this,
            start,
            abi,
            sensor_ptr,
            command_ptr,
        })
    }

    /// Fuel the start function used (0 without one).
    pub fn start_fuel_used(&self) -> u64 {
        self.start_fuel_used
    }

    /// Lines the start function logged; empty after the first call.
    pub fn take_start_logs(&mut self) -> Vec<String> {
        std::mem::take(&mut self.start_logs)
    }

    /// The compiled script this instance runs.
    pub fn script(&self) -> &Arc<CompiledScript> {
        &self.script
    }

    /// Writes `sensors` into the sensor block, zeroes the command block, runs `tick` with
    /// `budget` fuel and reads the command back. `random_seed` seeds `astroboids.random` for
    /// this call.
    pub fn run_tick(
        &mut self,
        budget: u64,
        random_seed: u64,
        sensors: &SensorSnapshot,
    ) -> RunReport {
        {
            let state = self.env.as_mut(&mut self.store);
            state.random_state = random_seed;
            state.logs.clear();
            state.logs_dropped = 0;
            state.abort = None;
        }
        {
            // Both blocks were checked to lie inside the memory at start, and memory never
            // shrinks.
            let memory = linear_memory::bytes_mut(&self.memory, &mut self.store);
            let sensor = self.sensor_addr as usize;
            // Encoded in place: no buffer to copy from (every byte of the block is written).
            sensors.encode_into(&mut memory[sensor..sensor + SENSOR_BLOCK_BYTES]);
            let command = self.command_addr as usize;
            memory[command..command + COMMAND_BLOCK_BYTES].fill(0);
        }
        let tick = self.tick.clone();
        let (result, fuel_used) = self.metered(budget, |store| tick.call(store));
        let command = result.is_ok().then(|| {
            let memory = linear_memory::bytes(&self.memory, &self.store);
            let command = self.command_addr as usize;
            ScriptCommand::decode(&memory[command..command + COMMAND_BLOCK_BYTES])
        });
        let state = self.env.as_mut(&mut self.store);
        RunReport {
            fuel_used,
            fault: result.err(),
            logs: std::mem::take(&mut state.logs),
            logs_dropped: state.logs_dropped,
            command,
        }
    }

    /// The script's state: memory and mutable globals.
    pub fn state(&mut self) -> InstanceState {
        let memory = linear_memory::bytes(&self.memory, &self.store);
        let untouched = UntouchedPages::of(memory);
        InstanceState {
            memory: MemoryImage::of_skipping(memory, |range| untouched.known_zero(range)),
            globals: self.global_bits(),
        }
    }

    /// Replaces this instance's state with `state`, taken from an instance of the same script
    /// (a checkpoint): memory grown to the saved size and overwritten, mutable globals set. The
    /// instance then continues exactly as the one the state was taken from.
    pub fn restore_state(&mut self, state: &InstanceState) -> Result<(), ScriptError> {
        let mismatch = |what: String| ScriptError::Restore(what);
        if state.globals.len() != self.state_globals.len() {
            return Err(mismatch(format!(
                "the saved state has {} mutable globals, the script has {}",
                state.globals.len(),
                self.state_globals.len()
            )));
        }
        let page = u64::from(wasmer::WASM_PAGE_SIZE as u32);
        let saved = state.memory.len();
        let current = self.memory.view(&self.store).data_size();
        if !saved.is_multiple_of(page) || saved < current {
            return Err(mismatch(format!(
                "the saved memory is {saved} bytes; it must be whole pages and at least the \
                 {current} bytes the script starts with"
            )));
        }
        let grow = ((saved - current) / page) as u32;
        if grow > 0 {
            self.memory
                .grow(&mut self.store, wasmer::Pages(grow))
                .map_err(|e| mismatch(format!("cannot grow memory to {saved} bytes: {e}")))?;
        }
        let memory = linear_memory::bytes_mut(&self.memory, &mut self.store);
        if memory.len() as u64 != saved {
            return Err(mismatch(format!(
                "the saved memory is {saved} bytes; the script's grew to {}",
                memory.len()
            )));
        }
        let untouched = UntouchedPages::of(memory);
        state
            .memory
            .write_to_skipping(memory, |range| untouched.known_zero(range));
        for (global, &bits) in self.state_globals.iter().zip(&state.globals) {
            let value = match global.ty(&self.store).ty {
                wasmer::Type::I32 => Value::I32(bits as u32 as i32),
                wasmer::Type::I64 => Value::I64(bits as i64),
                wasmer::Type::F32 => Value::F32(f32::from_bits(bits as u32)),
                wasmer::Type::F64 => Value::F64(f64::from_bits(bits)),
                other => return Err(mismatch(format!("a global of type {other:?}"))),
            };
            global
                .set(&mut self.store, value)
                .map_err(|e| mismatch(format!("cannot set a global: {e}")))?;
        }
        Ok(())
    }

    /// The whole memory, every page read (so touched); for tests of the paths that skip
    /// untouched pages.
    #[cfg(test)]
    pub(crate) fn memory_read_in_full(&self) -> Vec<u8> {
        linear_memory::bytes(&self.memory, &self.store).to_vec()
    }

    /// How many pages of the memory were ever touched (`None`: not known on this system).
    #[cfg(test)]
    pub(crate) fn touched_memory_pages(&self) -> Option<usize> {
        UntouchedPages::of(linear_memory::bytes(&self.memory, &self.store)).touched_count()
    }

    /// Readies a buffer of the size [`Self::state`] would copy the memory into now, so that a
    /// later state finds it instead of new memory (see `image_buffers.rs`). Reads the memory's
    /// touched pages; copies nothing.
    pub(crate) fn warm_image_buffer(&self) {
        let memory = linear_memory::bytes(&self.memory, &self.store);
        let untouched = UntouchedPages::of(memory);
        image_buffers::warm(MemoryImage::stored_bytes_of_skipping(memory, |range| {
            untouched.known_zero(range)
        }));
    }

    /// A 128-bit digest of [`Self::state`] (the same as [`InstanceState::digest`]), computed
    /// without copying the memory or reading its untouched pages.
    pub fn state_digest(&mut self) -> u128 {
        let globals = self.global_bits();
        let memory = linear_memory::bytes(&self.memory, &self.store);
        let untouched = UntouchedPages::of(memory);
        let chunks = nonzero_chunks(memory, |range| untouched.known_zero(range));
        state_digest(memory.len() as u64, chunks, globals.into_iter())
    }

    fn global_bits(&mut self) -> Vec<u64> {
        self.state_globals
            .iter()
            .map(|g| match g.get(&mut self.store) {
                Value::I32(v) => u64::from(v as u32),
                Value::I64(v) => v as u64,
                Value::F32(v) => u64::from(v.to_bits()),
                Value::F64(v) => v.to_bits(),
                // Reference types are off: a script cannot have such globals.
                _ => 0,
            })
            .collect()
    }

    /// A copy of the instance's linear memory: the script's persistent state.
    pub fn memory_snapshot(&self) -> Vec<u8> {
        linear_memory::bytes(&self.memory, &self.store).to_vec()
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
        self.last_call_faulted = result.is_err();
        let exhausted = self.last_call_faulted
            && matches!(self.exhausted.get(&mut self.store), Value::I32(v) if v != 0);
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
        if self.last_call_faulted {
            let _ = self.exhausted.set(&mut self.store, Value::I32(0));
        }
    }
}

/// Why a start function failed, with the last lines it logged (often the reason).
fn start_failure(fault: Fault, start_fuel: u64, logs: &[String]) -> ScriptError {
    let mut message = match fault.kind {
        FaultKind::OutOfFuel => format!("its start function used all {start_fuel} start fuel"),
        FaultKind::Trap => format!("{} in the start function", fault.message),
    };
    if let Some(last) = logs.last() {
        message.push_str(&format!(" (its last log line: \"{last}\")"));
    }
    ScriptError::Start(Fault {
        kind: fault.kind,
        message,
    })
}

/// Checks the block addresses a script reported: inside the memory it starts with (memory
/// never shrinks, so they stay valid) and not overlapping. Returns them as offsets.
fn check_blocks(sensor: i32, command: i32, memory_bytes: u64) -> Result<(u64, u64), ScriptError> {
    let blocks = [
        ("sensor_ptr", sensor, SENSOR_BLOCK_BYTES),
        ("command_ptr", command, COMMAND_BLOCK_BYTES),
    ];
    for (export, addr, len) in blocks {
        let start = u64::from(addr as u32);
        if start + len as u64 > memory_bytes {
            return Err(ScriptError::Blocks(format!(
                "{export}() returned {start}: its {len}-byte block must lie inside the memory \
                 the script starts with ({memory_bytes} bytes)"
            )));
        }
    }
    let (s, c) = (u64::from(sensor as u32), u64::from(command as u32));
    if s < c + COMMAND_BLOCK_BYTES as u64 && c < s + SENSOR_BLOCK_BYTES as u64 {
        return Err(ScriptError::Blocks(format!(
            "the sensor block at {s} ({SENSOR_BLOCK_BYTES} bytes) overlaps the command block at \
             {c} ({COMMAND_BLOCK_BYTES} bytes)"
        )));
    }
    Ok((s, c))
}
