//! Per-ship traces: everything one ship's script was given and answered, tick by tick, cut out
//! of a replay into a self-contained JSON file. An author replays it against a script offline
//! ([`replay_trace`]): no world, no other ships, the same sensors, budgets and random seeds.

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use astroboids_engine::NetId;
use astroboids_scripting::blocks::{ScriptCommand, SensorSnapshot};
use astroboids_scripting::{
    CompiledScript, CompilerKind, InstanceState, MemoryImage, ScriptEngine, ScriptInstance,
};
use astroboids_sim::SimOptions;
use astroboids_sim::config::ScriptsConfig;
use astroboids_sim::scripts::{ScriptHost, ScriptTrace};

use crate::compress;
use crate::inspect::trace_ships;
use crate::replay::{Replay, ReplayError};

/// Bump when the trace's fields change.
pub const TRACE_FORMAT: u32 = 1;

/// One ship's script, its inputs and its outputs over a stretch of ticks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipTrace {
    pub format: u32,
    pub universe_seed: u64,
    pub ship: u64,
    /// The script's id (XXH3-128 of the module, hex) and the module, base64.
    pub script: String,
    pub script_wasm_base64: String,
    /// The universe's script rules (fuel, limits) the runs were made under.
    pub rules: ScriptsConfig,
    /// The instance's memory (zstd, base64) and globals before the first traced tick, when it
    /// had been running already; `None` when it started within the trace.
    pub start_state: Option<TraceState>,
    pub ticks: Vec<TraceTick>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceState {
    pub memory_zstd_base64: String,
    pub globals: Vec<u64>,
}

/// One run of the script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceTick {
    pub tick: u64,
    /// Fuel it could spend.
    pub budget: u64,
    /// What `astroboids.random` was seeded with.
    pub random_seed: u64,
    pub sensors: SensorSnapshot,
    pub fuel_used: u64,
    /// `None` when the run faulted.
    pub command: Option<ScriptCommand>,
    pub logs: Vec<String>,
    pub logs_dropped: u32,
    pub fault: Option<String>,
}

/// Cuts `ship`'s trace for ticks `from..=to` (default: the whole recording) out of a replay.
pub fn export(
    replay: &Replay,
    ship: NetId,
    from: Option<u64>,
    to: Option<u64>,
    options: SimOptions,
) -> Result<ShipTrace, ReplayError> {
    let first = replay.start_tick() + 1;
    let from = from.unwrap_or(first);
    let to = to.unwrap_or(replay.last_tick());
    if from < first || from > to || to > replay.last_tick() {
        return Err(replay.invalid(format!(
            "--from {from} --to {to}: the recording has ticks {first}..={}, and from <= to",
            replay.last_tick()
        )));
    }
    let mut sim = replay.world_at(from - 1, options)?;
    let start_state =
        sim.world()
            .resource::<ScriptHost>()
            .instance_state(ship)
            .map(|state| TraceState {
                memory_zstd_base64: base64::engine::general_purpose::STANDARD.encode(
                    compress::pack(&state.memory.to_vec(), compress::REPLAY_LEVEL),
                ),
                globals: state.globals,
            });
    trace_ships(&mut sim, &[ship]);
    while sim.tick() < to {
        replay.step(&mut sim)?;
    }
    let records = std::mem::take(&mut sim.world_mut().resource_mut::<ScriptTrace>().records);
    let Some(script) = records.first().map(|r| r.script) else {
        return Err(replay.invalid(format!(
            "ship {ship}'s script did not run in ticks {from}..={to} (no such ship, no script, \
             or backing off)"
        )));
    };
    if let Some(other) = records.iter().find(|r| r.script != script) {
        return Err(replay.invalid(format!(
            "ship {ship} changed scripts at tick {}: export the stretches before and after it \
             separately (--to {}, --from {})",
            other.tick,
            other.tick - 1,
            other.tick
        )));
    }
    let library = sim
        .world()
        .resource::<astroboids_sim::scripts::ScriptLibrary>();
    let wasm = library
        .wasm(script)
        .expect("a script that ran is in the library");
    Ok(ShipTrace {
        format: TRACE_FORMAT,
        universe_seed: replay.header.universe_seed,
        ship: ship.0,
        script: format!("{:032x}", script.0),
        script_wasm_base64: base64::engine::general_purpose::STANDARD.encode(wasm),
        rules: replay.config.scripts.clone(),
        start_state,
        ticks: records
            .into_iter()
            .map(|r| TraceTick {
                tick: r.tick,
                budget: r.job.budget,
                random_seed: r.job.random_seed,
                sensors: r.job.sensors,
                fuel_used: r.report.fuel_used,
                command: r.report.command,
                logs: r.report.logs,
                logs_dropped: r.report.logs_dropped,
                fault: r.report.fault.map(|f| f.to_string()),
            })
            .collect(),
    })
}

/// The first tick where a script answered differently from the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceDifference {
    pub tick: u64,
    pub recorded: String,
    pub now: String,
}

/// The outcome of [`replay_trace`].
#[derive(Debug, Clone, PartialEq)]
pub struct TraceReplayReport {
    pub ticks: u64,
    /// Whether the run started from the trace's saved instance state (same script) or fresh.
    pub started_from_saved_state: bool,
    pub first_difference: Option<TraceDifference>,
    pub differing_ticks: u64,
}

/// Runs `wasm` (default: the traced script) through the trace's ticks, feeding it the
/// recorded sensors, budgets and random seeds, and compares its answers with the recorded ones.
pub fn replay_trace(trace: &ShipTrace, wasm: Option<&[u8]>) -> Result<TraceReplayReport, String> {
    replay_trace_with(trace, wasm, |_, _, _| {})
}

/// [`replay_trace`], telling `each_tick` every tick's answers as it goes (the tick, the traced
/// answer, the answer now; equal or not), for viewers that show the two side by side.
pub fn replay_trace_with(
    trace: &ShipTrace,
    wasm: Option<&[u8]>,
    mut each_tick: impl FnMut(u64, &str, &str),
) -> Result<TraceReplayReport, String> {
    if trace.format != TRACE_FORMAT {
        return Err(format!(
            "trace format {}; this build reads format {TRACE_FORMAT}",
            trace.format
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let traced = b64
        .decode(&trace.script_wasm_base64)
        .map_err(|e| format!("script_wasm_base64: {e}"))?;
    let wasm = wasm.unwrap_or(&traced);
    let engine = ScriptEngine::new(trace.rules.limits(), CompilerKind::Cranelift);
    let compiled: Arc<CompiledScript> = engine.load(wasm).map_err(|e| e.to_string())?;
    let same_script = wasm == traced.as_slice();
    let Some(first) = trace.ticks.first() else {
        return Err("the trace has no ticks".into());
    };
    // The start function draws from the stream of the tick the instance started.
    let mut instance = ScriptInstance::new(&compiled, first.random_seed)
        .map_err(|e| format!("the script does not start: {e}"))?;
    let started_from_saved_state = same_script && trace.start_state.is_some();
    if let (true, Some(state)) = (same_script, &trace.start_state) {
        let memory = compress::unpack(
            &b64.decode(&state.memory_zstd_base64)
                .map_err(|e| format!("start_state.memory_zstd_base64: {e}"))?,
            trace.rules.max_memory_pages as usize * 65_536,
        )?;
        instance
            .restore_state(&InstanceState {
                memory: MemoryImage::of(&memory),
                globals: state.globals.clone(),
            })
            .map_err(|e| format!("start_state: {e}"))?;
    }
    let mut report = TraceReplayReport {
        ticks: 0,
        started_from_saved_state,
        first_difference: None,
        differing_ticks: 0,
    };
    for tick in &trace.ticks {
        let run = instance.run_tick(tick.budget, tick.random_seed, &tick.sensors);
        report.ticks += 1;
        let recorded = answer(&tick.command, &tick.fault);
        let now = answer(&run.command, &run.fault.map(|f| f.to_string()));
        each_tick(tick.tick, &recorded, &now);
        if recorded != now {
            report.differing_ticks += 1;
            report.first_difference.get_or_insert(TraceDifference {
                tick: tick.tick,
                recorded,
                now,
            });
        }
    }
    Ok(report)
}

fn answer(command: &Option<ScriptCommand>, fault: &Option<String>) -> String {
    match (fault, command) {
        (Some(f), _) => format!("fault: {f}"),
        (None, Some(c)) => format!(
            "thrust {} turn {} mine {} stop {}",
            c.thrust, c.turn, c.mine, c.stop
        ),
        (None, None) => "no command".into(),
    }
}
