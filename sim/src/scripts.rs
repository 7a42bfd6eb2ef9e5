//! Player scripts as a tick stage: sensors -> scripts -> commands.
//!
//! Each scripted ship has one WebAssembly instance (its memory is the script's persistent
//! state) living on a fixed worker thread. Every tick, in ship-id order, a ship earns fuel into
//! its bucket, and unless it is in fault back-off its script runs with the sensor block of this
//! tick; the command it leaves becomes the ship's [`ShipCommand`]. A fault discards the
//! commands, records a [`ScriptFault`], and never touches other ships.
//!
//! Scripts are validated and compiled once per distinct module ([`ScriptLibrary`]) and given
//! to ships with [`assign_script`]; the instance starts (running the module's start function)
//! at the ship's next tick, so when it starts is part of the deterministic timeline.
//!
//! Determinism: fuel is counted in instructions; jobs and results are ordered by ship id; the
//! random stream is seeded by (universe seed, ship, tick); so the state hash does not depend on
//! the number of worker threads. Instance memory and globals are part of the state hash.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use astroboids_engine::hash::{HashScope, PartitionHashers};
use astroboids_engine::{HashCost, NetId, Tick};
use astroboids_scripting::budget::{BackoffPolicy, FaultStreak, FuelBucket, FuelPolicy};
use astroboids_scripting::{
    ArtifactDir, CompiledScript, CompilerKind, PendingStates, ScriptEngine, ScriptError, ScriptJob,
    ScriptWorkers,
};

use crate::autopilot::Autopilot;
use crate::config::{ScriptsConfig, UniverseConfig};
use crate::script_budget::FuelCaps;
use crate::ships::{ShipCommand, ShipIndex};
use crate::space::{SectorCoord, SpacePos};

/// A script's identity: the XXH3-128 hash of its module bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScriptId(pub u128);

impl std::fmt::Display for ScriptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// The script a ship runs.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShipScript(pub ScriptId);

/// Where a ship's script instance stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InstanceStatus {
    /// Assigned; the instance starts at the ship's next tick.
    #[default]
    Pending,
    Running,
    /// The start function (or an ABI check) failed; the ship idles until it gets a new script.
    Failed,
    /// Stopped by the host (a logged world input: its runs took far longer than their fuel
    /// allows); the ship idles until it gets a script again.
    Suspended,
}

/// A scripted ship's bookkeeping; part of the state hash.
#[derive(Component, Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptRuntime {
    pub status: InstanceStatus,
    pub fuel: FuelBucket,
    pub streak: FaultStreak,
    /// Fuel the script used in the last tick it ran.
    pub fuel_used_last: u64,
    pub fuel_used_total: u64,
    pub faults_total: u64,
}

/// One line a script logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub tick: u64,
    pub text: String,
}

/// A ship's recent log lines, oldest first; bounded by `scripts.log_ring_lines`.
#[derive(Component, Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptLog {
    pub lines: VecDeque<LogLine>,
    /// Lines lost to the per-tick limit or pushed out of the ring.
    pub dropped: u64,
}

/// A script fault: what went wrong, for which ship, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptFault {
    pub ship: NetId,
    pub tick: u64,
    pub kind: ScriptFaultKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptFaultKind {
    /// The fuel budget ran out.
    OutOfFuel,
    /// Unreachable, out-of-bounds access, stack overflow, abort().
    Trap,
    /// The instance could not start.
    Start,
    /// The host suspended the script.
    Suspended,
}

/// The most recent faults of every ship, oldest first; bounded by `scripts.fault_log_max`.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptFaults {
    pub recent: VecDeque<ScriptFault>,
}

/// What scripts did in the last tick, all sectors together.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptTickReport {
    pub ran: u32,
    pub skipped_in_backoff: u32,
    pub faults: u32,
    pub fuel_used: u64,
    /// Instances started this tick, and those that failed to start.
    pub started: u32,
    pub start_failures: u32,
    /// Pending starts left for later ticks (a sector's starts take at most half its fuel, and
    /// are at most `INSTANCE_STARTS_PER_SECTOR_PER_TICK`), summed over sectors.
    pub starts_deferred: u32,
    /// Runs a cap held back: granted less than their bucket allowed (by an account's or their
    /// sector's cap) and then out of fuel, or granted nothing at all.
    pub budget_cut: u32,
}

/// Wall-clock times of this tick's script runs over the host's bound: what a host's watchdog
/// reads after each tick. Observability only (measured on the workers, never hashed, never
/// read by a system): the host acts on it through a logged `WorldInput::SuspendScript`, so
/// replays reproduce the suspension without the clock.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct SlowScripts {
    /// Runs longer than this are listed; `None` lists nothing.
    pub run_wall_ns_max: Option<u64>,
    /// (ship, wall ns, fuel used) of this tick's runs over the bound, in ship order.
    pub runs: Vec<(NetId, u64, u64)>,
}

/// Every script the world knows: compiled modules by id, with their bytes (for persistence).
#[derive(Resource)]
pub struct ScriptLibrary {
    /// Shared so a host can compile modules ahead of time off the tick thread (the engine's
    /// cache then hands the tick thread the finished module).
    engine: Arc<ScriptEngine>,
    scripts: BTreeMap<ScriptId, LibraryEntry>,
    max_scripts: usize,
}

struct LibraryEntry {
    compiled: Arc<CompiledScript>,
    wasm: Arc<[u8]>,
}

/// Why a script could not be added or assigned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptAssignError {
    #[error("script rejected: {0}")]
    Rejected(#[from] ScriptError),
    #[error("the library holds {limit} scripts, its limit; no room for another")]
    LibraryFull { limit: usize },
    #[error("unknown script {0}")]
    UnknownScript(ScriptId),
    #[error("no ship {0}")]
    UnknownShip(NetId),
}

impl ScriptLibrary {
    pub fn new(engine: ScriptEngine, max_scripts: usize) -> Self {
        Self {
            engine: Arc::new(engine),
            scripts: BTreeMap::new(),
            max_scripts,
        }
    }

    /// Validates and compiles `wasm` (or finds it already there); returns its id.
    pub fn add(&mut self, wasm: &[u8]) -> Result<ScriptId, ScriptAssignError> {
        let compiled = self.engine.load(wasm)?;
        let id = ScriptId(compiled.hash());
        if !self.scripts.contains_key(&id) {
            if self.scripts.len() >= self.max_scripts {
                return Err(ScriptAssignError::LibraryFull {
                    limit: self.max_scripts,
                });
            }
            self.scripts.insert(
                id,
                LibraryEntry {
                    compiled,
                    wasm: Arc::from(wasm),
                },
            );
        }
        Ok(id)
    }

    /// Every script's id, in order.
    pub fn ids(&self) -> impl Iterator<Item = ScriptId> + '_ {
        self.scripts.keys().copied()
    }

    pub fn contains(&self, id: ScriptId) -> bool {
        self.scripts.contains_key(&id)
    }

    /// The module bytes of `id`.
    pub fn wasm(&self, id: ScriptId) -> Option<&Arc<[u8]>> {
        self.scripts.get(&id).map(|e| &e.wasm)
    }

    pub fn engine(&self) -> &ScriptEngine {
        &self.engine
    }

    /// The engine, to compile (and so cache) modules on another thread.
    pub fn shared_engine(&self) -> Arc<ScriptEngine> {
        Arc::clone(&self.engine)
    }

    pub(crate) fn compiled(&self, id: ScriptId) -> Option<&Arc<CompiledScript>> {
        self.scripts.get(&id).map(|e| &e.compiled)
    }
}

/// Ships whose script runs are recorded tick by tick: what each was given (sensors, budget,
/// random seed) and what it returned. For replay inspection and per-ship traces; insert it to
/// turn tracing on. Observability only: not hashed, not checkpointed.
#[derive(Resource, Debug, Default)]
pub struct ScriptTrace {
    pub ships: std::collections::BTreeSet<NetId>,
    /// Oldest first; the reader drains it.
    pub records: Vec<ScriptTraceRecord>,
}

/// One traced run.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptTraceRecord {
    pub tick: u64,
    pub script: ScriptId,
    pub job: ScriptJob,
    pub report: astroboids_scripting::RunReport,
}

/// The worker threads running the instances. Behind a mutex only to make the resource `Sync`;
/// the tick holds it alone.
#[derive(Resource)]
pub struct ScriptHost {
    workers: Mutex<ScriptWorkers>,
    /// Whether the script stage of a checkpoint tick has the workers take the states of the
    /// instances that ran ([`Self::take_states_at_checkpoint_ticks`]).
    states_at_checkpoint_ticks: AtomicBool,
    /// Whether a checkpoint tick's states were taken since the world was made or opened: the
    /// image buffers are warm from then on (see `script_stage::image_warming_slice`).
    checkpoint_states_taken: AtomicBool,
}

impl ScriptHost {
    pub fn new(workers: usize) -> Self {
        Self {
            workers: Mutex::new(ScriptWorkers::new(workers.max(1))),
            states_at_checkpoint_ticks: AtomicBool::new(false),
            checkpoint_states_taken: AtomicBool::new(false),
        }
    }

    /// Says that the script states (or the full state hash) will be asked for after every
    /// checkpoint tick (persistence, replay recording, cluster shards): the workers then take
    /// the states of a checkpoint tick's runs as soon as the runs are done, beside the rest of
    /// the tick, instead of when asked (see `ScriptWorkers::run_keeping_states`). The states
    /// and hashes are the same either way; only when the copy is made changes. Off by default,
    /// as a run that captures nothing would copy every memory for nothing.
    pub fn take_states_at_checkpoint_ticks(&self, wanted: bool) {
        self.states_at_checkpoint_ticks
            .store(wanted, Ordering::Relaxed);
    }

    /// Whether the states are taken after the runs of checkpoint ticks.
    pub(crate) fn takes_states_at_checkpoint_ticks(&self) -> bool {
        self.states_at_checkpoint_ticks.load(Ordering::Relaxed)
    }

    pub(crate) fn note_checkpoint_states_taken(&self) {
        self.checkpoint_states_taken.store(true, Ordering::Relaxed);
    }

    /// Whether the states of a checkpoint tick were taken since this world was made or opened.
    pub(crate) fn checkpoint_states_taken(&self) -> bool {
        self.checkpoint_states_taken.load(Ordering::Relaxed)
    }

    pub(crate) fn workers(&self) -> MutexGuard<'_, ScriptWorkers> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn worker_count(&self) -> usize {
        self.workers().worker_count()
    }

    /// Waits until the workers have made every instance asked for so far (see
    /// [`assign_script`]), so that the next tick does not wait for them.
    pub fn settle(&self) {
        self.workers().settle();
    }

    /// The memory and globals of `ship`'s instance, if it has one.
    pub fn instance_state(&self, ship: NetId) -> Option<astroboids_scripting::InstanceState> {
        self.workers().state(ship.0).ok()
    }

    /// The states of those of `ships` whose script runs, gathered from all workers at once
    /// without waiting (see `ScriptWorkers::states_later`): the states as of now, collected
    /// from the returned [`PendingStates`] on any thread.
    pub fn instance_states_later(&self, ships: &[NetId]) -> PendingStates {
        let ids: Vec<u64> = ships.iter().map(|s| s.0).collect();
        self.workers().states_later(&ids)
    }
}

/// Adds `wasm` to the world's script library; returns its id.
pub fn add_script(world: &mut World, wasm: &[u8]) -> Result<ScriptId, ScriptAssignError> {
    world.resource_mut::<ScriptLibrary>().add(wasm)
}

/// Gives `ship` the script `id`, replacing its autopilot or previous script (whose state is
/// dropped). The instance starts at the ship's next tick.
pub fn assign_script(
    world: &mut World,
    ship: NetId,
    id: ScriptId,
) -> Result<(), ScriptAssignError> {
    if !world.resource::<ScriptLibrary>().contains(id) {
        return Err(ScriptAssignError::UnknownScript(id));
    }
    let entity = world
        .resource::<ShipIndex>()
        .entity(ship)
        .ok_or(ScriptAssignError::UnknownShip(ship))?;
    world.entity_mut(entity).remove::<Autopilot>().insert((
        ShipScript(id),
        ScriptRuntime::default(),
        ScriptLog::default(),
        ShipCommand::default(),
    ));
    // The instance is made now, between ticks, on the ship's worker; the next tick only runs
    // its start function. (Only how long the next tick takes depends on this, never what it
    // does.)
    if let Some(host) = world.get_resource::<ScriptHost>()
        && let Some(compiled) = world.resource::<ScriptLibrary>().compiled(id)
    {
        host.workers().prepare(ship.0, compiled);
    }
    Ok(())
}

/// Why [`suspend_script`] changed nothing; [`crate::inputs::WorldInputError`] has a variant for
/// each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SuspendError {
    UnknownShip(NetId),
    NotScripted(NetId),
}

/// Stops `ship`'s script: status `Suspended` (its instance is dropped at the next tick) and a
/// fault with `reason` for its owner. Errors (changing nothing) when the ship runs no script.
pub(crate) fn suspend_script(
    world: &mut World,
    ship: NetId,
    reason: &str,
) -> Result<(), SuspendError> {
    let entity = world
        .resource::<ShipIndex>()
        .entity(ship)
        .ok_or(SuspendError::UnknownShip(ship))?;
    let tick = world.resource::<Tick>().0;
    let limit = world.resource::<UniverseConfig>().scripts.fault_log_max as usize;
    let mut runtime = world
        .get_mut::<ScriptRuntime>(entity)
        .ok_or(SuspendError::NotScripted(ship))?;
    runtime.status = InstanceStatus::Suspended;
    runtime.faults_total += 1;
    let mut faults = world.resource_mut::<ScriptFaults>();
    FaultLog {
        faults: &mut faults,
        limit,
    }
    .push(
        ship,
        tick,
        ScriptFaultKind::Suspended,
        format!("suspended: {reason}"),
    );
    Ok(())
}

/// Gives `ship` a running instance of `script` with a saved state (restoring a checkpoint).
pub(crate) fn restore_instance(
    world: &mut World,
    ship: NetId,
    script: ScriptId,
    state: astroboids_scripting::InstanceState,
) -> Result<(), String> {
    let compiled = world
        .resource::<ScriptLibrary>()
        .compiled(script)
        .ok_or_else(|| format!("unknown script {script}"))?
        .clone();
    world
        .resource::<ScriptHost>()
        .workers()
        .restore(ship.0, &compiled, state)
        .map_err(|e| e.to_string())
}

/// The script library, the workers and the script state of ships, and their hash parts. The
/// stage that runs the scripts each tick is `ScriptStagePlugin`, added after this one: it sits
/// above everything here (and above sensors, ships and autopilot), so it lives apart.
#[derive(Debug, Clone)]
pub struct ScriptsPlugin {
    /// Worker threads for script instances (results do not depend on it).
    pub workers: usize,
    pub compiler: CompilerKind,
    /// Compiled scripts survive restarts here (the host's directory: the sim only hands it to
    /// the script engine).
    pub artifacts: Option<ArtifactDir>,
}

impl Plugin for ScriptsPlugin {
    fn build(&self, app: &mut App) {
        let config = app.world().resource::<UniverseConfig>().scripts.clone();
        let mut engine = ScriptEngine::new(config.limits(), self.compiler);
        if let Some(dir) = &self.artifacts {
            engine = engine.with_artifact_dir(dir.clone());
        }
        app.insert_resource(ScriptLibrary::new(engine, config.max_scripts as usize))
            .insert_resource(ScriptHost::new(self.workers))
            .init_resource::<ScriptFaults>()
            .init_resource::<ScriptTickReport>()
            .init_resource::<SlowScripts>();
        app.world_mut()
            .resource_mut::<astroboids_engine::hash::StateHashRegistry>()
            .register_scoped(
                "scripts",
                HashScope::Partitioned(hash_scripts),
                HashCost::Cheap,
            );
        app.world_mut()
            .resource_mut::<astroboids_engine::hash::StateHashRegistry>()
            .register_scoped(
                "script_memory",
                HashScope::Partitioned(hash_script_memory),
                HashCost::Heavy,
            );
    }
}

/// Recent faults, bounded; what the stage and `suspend_script` record faults through.
pub(crate) struct FaultLog<'a> {
    pub(crate) faults: &'a mut ScriptFaults,
    pub(crate) limit: usize,
}

impl FaultLog<'_> {
    pub(crate) fn push(&mut self, ship: NetId, tick: u64, kind: ScriptFaultKind, message: String) {
        if self.limit == 0 {
            return;
        }
        while self.faults.recent.len() >= self.limit {
            self.faults.recent.pop_front();
        }
        self.faults.recent.push_back(ScriptFault {
            ship,
            tick,
            kind,
            message,
        });
    }
}

/// Each scripted ship's runtime in its sector's partition, in id order.
fn hash_scripts(world: &mut World, h: &mut PartitionHashers) {
    let mut query = world.query::<(&NetId, &SpacePos, &ShipScript, &ScriptRuntime)>();
    let mut ships: Vec<_> = query.iter(world).collect();
    ships.sort_unstable_by_key(|s| *s.0);
    for (id, pos, script, runtime) in ships {
        let h = h.partition(pos.sector.partition_key());
        h.write_u64(id.0);
        h.write_u64(script.0.0 as u64);
        h.write_u64((script.0.0 >> 64) as u64);
        h.write_u32(match runtime.status {
            InstanceStatus::Pending => 0,
            InstanceStatus::Running => 1,
            InstanceStatus::Failed => 2,
            InstanceStatus::Suspended => 3,
        });
        for v in [
            runtime.fuel.stored,
            runtime.streak.resume_at_tick,
            u64::from(runtime.streak.faults),
            u64::from(runtime.streak.clean_runs),
            runtime.fuel_used_last,
            runtime.fuel_used_total,
            runtime.faults_total,
        ] {
            h.write_u64(v);
        }
    }
}

/// The memory and globals of every running script (`running_script_ships`), in its ship's
/// sector partition, in ship order: heavy (every such memory's touched pages are read).
fn hash_script_memory(world: &mut World, h: &mut PartitionHashers) {
    let running = running_script_ships(world);
    let digests = world.resource::<ScriptHost>().workers().state_digests();
    // Both in ship order: one merging walk.
    let mut digests = digests.into_iter().peekable();
    for (ship, sector) in running {
        while digests.next_if(|(id, _)| *id < ship.0).is_some() {}
        if let Some((_, digest)) = digests.next_if(|(id, _)| *id == ship.0) {
            let h = h.partition(sector.partition_key());
            h.write_u64(ship.0);
            h.write_u64(digest as u64);
            h.write_u64((digest >> 64) as u64);
        }
    }
}

/// The ships whose script instance is part of the world's state, in id order, with their
/// sectors: those whose script runs. A checkpoint holds exactly these instances' states and
/// the state hash covers exactly these, so that a restored world hashes as the one it was
/// captured from. The workers may hold others between ticks (a ship destroyed in the tick or
/// since given a new script, a suspended script): the next script stage drops them before
/// running anything, so nothing they hold can reach the world again.
pub(crate) fn running_script_ships(world: &mut World) -> Vec<(NetId, SectorCoord)> {
    let mut query = world.query::<(&NetId, &SpacePos, &ScriptRuntime)>();
    let mut running: Vec<(NetId, SectorCoord)> = query
        .iter(world)
        .filter(|(_, _, runtime)| runtime.status == InstanceStatus::Running)
        .map(|(id, pos, _)| (*id, pos.sector))
        .collect();
    running.sort_unstable_by_key(|(id, _)| *id);
    running
}

impl ScriptsConfig {
    pub fn fuel_policy(&self) -> FuelPolicy {
        FuelPolicy {
            per_tick: self.fuel_per_tick,
            bucket_max: self.fuel_bucket_max,
            burst_max: self.fuel_burst_max,
        }
    }

    pub fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy {
            faults_before_backoff: self.faults_before_backoff,
            first_skip_ticks: self.backoff_first_skip_ticks,
            max_skip_ticks: self.backoff_max_skip_ticks,
            clean_runs_to_forgive: self.backoff_clean_runs_to_forgive,
        }
    }

    pub(crate) fn fuel_caps(&self) -> FuelCaps {
        FuelCaps {
            account_max: self.account_fuel_per_tick_max,
            sector_max: self.sector_fuel_per_tick_max,
            start_fuel: self.start_fuel,
        }
    }

    pub fn limits(&self) -> astroboids_scripting::ScriptLimits {
        astroboids_scripting::ScriptLimits {
            max_module_bytes: self.max_module_bytes as usize,
            max_memory_pages: self.max_memory_pages,
            max_table_elements: self.max_table_elements,
            stack_bytes: self.stack_bytes as usize,
            start_fuel: self.start_fuel,
            log_lines_per_tick: self.log_lines_per_tick,
            log_line_bytes: self.log_line_bytes,
            log_fuel: self.log_fuel,
            max_cached_scripts: self.max_scripts as usize,
            ..astroboids_scripting::ScriptLimits::default()
        }
    }
}
