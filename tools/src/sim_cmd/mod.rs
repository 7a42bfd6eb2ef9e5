//! `astroboids sim`: a headless run with a progress bar and a summary.

mod inputs;
mod summary;

pub use inputs::{TimedInput, read_timed_inputs};
use summary::{DataSummary, Summary, percentile_ms, print_summary, record_summary};

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use astroboids_engine::{NetId, Pacer, Simulation, UniverseSeed};
use astroboids_host::persistent::DEFAULT_SEED;
use astroboids_host::recording::RecordingPlan;
use astroboids_host::runner::{AnyWorld, RunnableWorld, WorldRunner};
use astroboids_host::{HostError, PersistentWorld, WorldRequest};
use astroboids_net::text::escape_control;
use astroboids_scripting::ArtifactDir;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::{InputOutcome, WorldInput, WorldInputError};
use astroboids_sim::scripts::{
    InstanceStatus, ScriptFaultKind, ScriptFaults, ScriptHost, ScriptLibrary, ScriptLog,
    ScriptRuntime, ScriptTickReport,
};
use astroboids_sim::sectors::Sectors;
use astroboids_sim::ships::ShipIndex;
use astroboids_sim::{SimOptions, SimTotals, build_simulation_with};

use crate::cli::SimArgs;
use crate::script_cmd::load_script_argument;
use crate::universe_config::{parse_config, read_config_source};

pub fn run(args: &SimArgs) -> Result<()> {
    // Read once: a persisted world compares this text with the one it was created with.
    let config_source = read_config_source(args.config.as_deref())?;
    let config = parse_config(config_source.as_ref())?;
    let ships = args.ships.unwrap_or(DEFAULT_SHIPS);
    if ships > config.limits.max_ships {
        anyhow::bail!(
            "--ships {} exceeds limits.max_ships ({}) of the universe configuration",
            ships,
            config.limits.max_ships
        );
    }
    let threads = crate::thread_count(args.threads);
    let pool = crate::thread_pool(threads)?;
    let script = match &args.script {
        Some(path) => Some(load_script_argument(path, &args.sdk)?),
        None => None,
    };
    let timed_inputs = match &args.inputs {
        Some(path) => read_timed_inputs(path)?,
        None => Vec::new(),
    };
    let (summary, no_start) =
        pool.install(|| simulate(args, config, config_source, threads, script, &timed_inputs))?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary);
    }
    if let Some(failure) = no_start {
        let why = failure.first_error.map_or_else(
            || "no fault was kept to say why (scripts.fault_log_max is 0)".to_string(),
            |e| format!("the first failure: {e}"),
        );
        anyhow::bail!(
            "{}: the script failed to start on all {} ships, so the run stopped at tick {}; {why}",
            args.script.as_ref().expect("a script").display(),
            failure.ships,
            failure.tick,
        );
    }
    Ok(())
}

/// A `--script` that started on no ship: each one failed, none is left waiting.
struct NoStart {
    ships: u64,
    tick: u64,
    first_error: Option<String>,
}

/// Ships alive with a script instance by status: (running, waiting to start, failed to start).
/// Suspended scripts are in none of them.
fn script_statuses(sim: &mut Simulation) -> (u64, u64, u64) {
    let world = sim.world_mut();
    let mut query = world.query::<&ScriptRuntime>();
    let mut counts = (0, 0, 0);
    for runtime in query.iter(world) {
        if runtime.status == InstanceStatus::Running {
            counts.0 += 1;
        } else if runtime.status == InstanceStatus::Pending {
            counts.1 += 1;
        } else if runtime.status == InstanceStatus::Failed {
            counts.2 += 1;
        }
    }
    counts
}

/// Whether every scripted ship's script failed to start: checked after each tick until one
/// starts, since starts may be spread over several ticks.
fn check_starts(sim: &mut Simulation) -> Option<NoStart> {
    let (running, starting, failed) = script_statuses(sim);
    if running > 0 || starting > 0 || failed == 0 {
        return None;
    }
    let first_error = sim
        .world()
        .resource::<ScriptFaults>()
        .recent
        .iter()
        .find(|f| f.kind == ScriptFaultKind::Start)
        .map(|f| escape_control(&f.message).into_owned());
    Some(NoStart {
        ships: failed,
        tick: sim.tick(),
        first_error,
    })
}

const DEFAULT_SHIPS: u32 = 1000;

/// Refused `--inputs` lines reported one by one; the rest are only counted.
const MAX_REFUSALS_SHOWN: u64 = 20;

/// Applies `input` for the next tick; the inner error is a refusal (world unchanged).
fn submit(
    runner: &mut WorldRunner<AnyWorld>,
    input: &WorldInput,
) -> Result<Result<InputOutcome, WorldInputError>> {
    match runner.submit(input.clone()) {
        Ok(outcome) => Ok(Ok(outcome)),
        Err(HostError::Input(refused)) => Ok(Err(refused)),
        Err(e) => Err(e.into()),
    }
}

fn simulate(
    args: &SimArgs,
    config: UniverseConfig,
    config_source: Option<(String, String)>,
    threads: usize,
    script: Option<Vec<u8>>,
    timed_inputs: &[TimedInput],
) -> Result<(Summary, Option<NoStart>)> {
    let (world, opened) = match &args.data {
        Some(dir) => {
            let request = WorldRequest {
                seed: args.seed,
                config: config_source,
                script_workers: rayon::current_num_threads(),
            };
            let (world, report) = PersistentWorld::open(dir, request)?;
            (AnyWorld::Persistent(Box::new(world)), Some(report))
        }
        None => {
            let options = SimOptions {
                script_artifacts: script_artifact_dir(args),
                ..SimOptions::default()
            };
            let seed = args.seed.unwrap_or(DEFAULT_SEED);
            (
                AnyWorld::InMemory(Box::new(build_simulation_with(config, seed, options))),
                None,
            )
        }
    };
    let fresh = opened.as_ref().is_none_or(|r| r.created);
    if let Some(report) = opened.as_ref().filter(|r| !r.created) {
        eprintln!(
            "resuming the world in {} at tick {} (checkpoint {}, {} logged inputs re-applied)",
            args.data.as_ref().expect("persistent").display(),
            report.tick,
            report
                .checkpoint_tick
                .map_or("none".to_string(), |t| t.to_string()),
            report.replayed_inputs
        );
        if args.ships.is_some() || args.script.is_some() {
            eprintln!("note: --ships and --script only apply when the data directory is new");
        }
    }
    // `--record` starts at the first checkpoint tick of the run (capturing anywhere else would
    // change the run) and records every tick after it.
    let plan = match &args.record {
        Some(path) => RecordingPlan::File {
            path: path.clone(),
            recorded_by: std::env::args().collect::<Vec<_>>().join(" "),
            keyframe_every_checkpoints: args.keyframe_every,
        },
        None => RecordingPlan::Off,
    };
    let (mut world, started) = WorldRunner::new(world, plan);
    if let Some(error) = started.error {
        anyhow::bail!("cannot record: {error}");
    }
    let start_tick = world.sim().tick();
    let end_tick = args.until_tick.unwrap_or(start_tick + args.ticks);
    if end_tick <= start_tick {
        anyhow::bail!("--until-tick {end_tick}: the world is already at tick {start_tick}");
    }

    let mut inputs_applied = 0u64;
    let mut inputs_refused = 0u64;
    let ships_spawned = if fresh {
        let count = args.ships.unwrap_or(DEFAULT_SHIPS);
        let setup = WorldInput::fleet_setup(count, script);
        for input in &setup {
            submit(&mut world, input)?.with_context(|| {
                args.script
                    .as_ref()
                    .map_or("setting up the world".into(), |p| p.display().to_string())
            })?;
            inputs_applied += 1;
        }
        count
    } else {
        0
    };
    // Inputs the data directory already holds are not sent again.
    let already_applied = opened
        .as_ref()
        .map_or(0, |r| r.inputs_logged_through.unwrap_or(0).max(r.tick));
    let mut next_input = timed_inputs.partition_point(|t| t.tick <= already_applied);

    let mut script_runs = 0u64;
    let (mut runs_cut, mut runs_skipped) = (0u64, 0u64);
    // Whether to watch for a `--script` that starts on no ship (only a new world runs it).
    let mut watch_starts = fresh && args.script.is_some();
    let mut no_start = None;
    let mut checkpoints_written = 0u64;
    let progress = ProgressBar::new(end_tick - start_tick);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} tick {pos}/{len} [{bar:30}] {per_sec} ETA {eta} {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    // A server makes the instances of an accepted assignment while it waits for its tick;
    // here setup assigned every script at once, so let the workers finish making them before
    // the clock starts, as a server's idle time between ticks would.
    if let Some(host) = world.sim().world().get_resource::<ScriptHost>() {
        host.settle();
    }
    let mut durations = Vec::with_capacity((end_tick - start_tick) as usize);
    let (mut checkpoint_tick_max, mut other_tick_max) = (Duration::ZERO, Duration::ZERO);
    let mut checkpoint_ticks = Vec::new();
    let mut after_checkpoint_ticks = Vec::new();
    let mut previous_wrote_checkpoint = false;
    let started = Instant::now();
    let mut pacer = args
        .realtime
        .then(|| Pacer::new(world.sim().tick_rate(), started.elapsed(), 4));
    while world.sim().tick() < end_tick {
        let tick = world.sim().tick() + 1;
        while let Some(timed) = timed_inputs.get(next_input).filter(|t| t.tick <= tick) {
            next_input += 1;
            match submit(&mut world, &timed.input)? {
                Ok(_) => inputs_applied += 1,
                Err(refused) => {
                    inputs_refused += 1;
                    if inputs_refused == MAX_REFUSALS_SHOWN + 1 {
                        eprintln!("warning: more inputs refused; the summary counts them all");
                    }
                    if inputs_refused > MAX_REFUSALS_SHOWN {
                        continue;
                    }
                    eprintln!(
                        "warning: {} line {}: {} input for tick {} refused: {refused}",
                        args.inputs.as_ref().expect("timed inputs").display(),
                        timed.line,
                        timed.input.kind(),
                        timed.tick
                    );
                }
            }
        }
        if let Some(pacer) = &mut pacer {
            pacer.wait_for_tick(|| started.elapsed(), std::thread::sleep);
        }
        let t0 = Instant::now();
        let stepped = world.step()?;
        let took = t0.elapsed();
        durations.push(took);
        if stepped.checkpoint_written {
            checkpoint_tick_max = checkpoint_tick_max.max(took);
            checkpoint_ticks.push(took.as_secs_f64() * 1e3);
        } else if durations.len() > 1 {
            other_tick_max = other_tick_max.max(took);
        }
        if previous_wrote_checkpoint {
            after_checkpoint_ticks.push(took.as_secs_f64() * 1e3);
        }
        previous_wrote_checkpoint = stepped.checkpoint_written;
        if let Some(tick) = stepped.committed {
            eprintln!("acknowledged: inputs for tick {tick} are logged");
        }
        checkpoints_written += u64::from(stepped.checkpoint_written);
        if let Some(error) = stepped.recording.error {
            anyhow::bail!("the recording failed: {error}");
        }
        let script_tick = world.sim().world().resource::<ScriptTickReport>();
        script_runs += u64::from(script_tick.ran);
        runs_cut += u64::from(script_tick.budget_cut);
        runs_skipped += u64::from(script_tick.skipped_in_backoff);
        if watch_starts {
            // Idle ships for the rest of the run would only hide the error.
            no_start = check_starts(world.sim_mut());
            if no_start.is_some() {
                break;
            }
            watch_starts = script_runs == 0;
        }
        if tick.is_multiple_of(10) {
            let ships = world.sim().world().resource::<ShipIndex>().len();
            progress.set_message(format!("{ships} ships"));
            progress.set_position(tick - start_tick);
        }
    }
    progress.finish_and_clear();
    let wall = started.elapsed();
    let ticks_run = world.sim().tick() - start_tick;
    let (script_ships_running, script_ships_starting, script_start_failures) =
        script_statuses(world.sim_mut());

    let hash = world.sim_mut().state_hash();
    let (mut world, written) = world.finish();
    if let AnyWorld::Persistent(w) = &mut world {
        // The last checkpoint may still be in the writer's hands: its size is reported.
        w.flush_checkpoints()?;
    }
    let record = record_summary(args, written.map_err(anyhow::Error::msg)?);
    let data = match (world.persistent(), opened) {
        (Some(w), Some(report)) => Some(DataSummary {
            dir: w.path().display().to_string(),
            created: report.created,
            resumed_from_checkpoint: report.checkpoint_tick,
            replayed_inputs: report.replayed_inputs,
            resumed_at_tick: report.tick,
            checkpoints_written,
            last_checkpoint_bytes: w.last_checkpoint_bytes(),
        }),
        _ => None,
    };
    let sim = world.sim();
    let w = sim.world();
    let totals = w.resource::<SimTotals>().clone();
    let load_stats = w.resource::<ScriptLibrary>().engine().load_stats();
    let first_tick_ms = durations.first().map_or(0.0, |d| d.as_secs_f64() * 1e3);
    durations.sort_unstable();
    let faults = &w.resource::<ScriptFaults>().recent;
    let script_recent_faults = faults
        .iter()
        .skip(faults.len().saturating_sub(5))
        .map(|f| {
            let kind = if f.kind == ScriptFaultKind::Start {
                " (start)"
            } else {
                ""
            };
            format!(
                "ship {} tick {}{kind}: {}",
                f.ship,
                f.tick,
                escape_control(&f.message)
            )
        })
        .collect();
    let summary = Summary {
        seed: w.resource::<UniverseSeed>().0,
        ticks: ticks_run,
        tick: sim.tick(),
        ships: w.resource::<ShipIndex>().len(),
        ships_spawned,
        threads,
        state_hash: hash.hex(),
        tick_ms_p50: percentile_ms(&durations, 0.50),
        tick_ms_p99: percentile_ms(&durations, 0.99),
        tick_ms_max: durations.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        first_tick_ms,
        checkpoint_tick_ms_max: checkpoint_tick_max.as_secs_f64() * 1e3,
        checkpoint_ticks_ms: checkpoint_ticks,
        after_checkpoint_ticks_ms: after_checkpoint_ticks,
        other_tick_ms_max: other_tick_max.as_secs_f64() * 1e3,
        ticks_per_s: ticks_run as f64 / wall.as_secs_f64().max(1e-9),
        sectors_loaded: w.resource::<Sectors>().loaded_count(),
        sectors_generated: totals.sectors_generated,
        sectors_unloaded: totals.sectors_unloaded,
        ore_mined: totals.ore_mined,
        ships_destroyed: totals.ships_destroyed,
        collision_contacts: totals.collision_contacts,
        script: args.script.as_ref().map(|p| p.display().to_string()),
        script_fuel_used: totals.script_fuel_used,
        script_fuel_per_run: totals.script_fuel_used as f64 / script_runs.max(1) as f64,
        script_runs,
        script_runs_cut_by_caps: runs_cut,
        script_runs_skipped_in_backoff: runs_skipped,
        script_faults: totals.script_faults,
        script_ships_running,
        script_ships_starting,
        script_start_failures,
        scripts_compiled: load_stats.compiled,
        scripts_loaded_from_cache: load_stats.loaded_from_disk,
        script_recent_faults,
        script_log: args.show_log.map(|ship| ship_log(sim, NetId(ship))),
        inputs_applied,
        inputs_refused,
        data,
        record,
    };
    if let AnyWorld::Persistent(w) = world {
        w.close()?;
    }
    Ok((summary, no_start))
}

/// The log ring of `ship`, or a line saying why there is none.
fn ship_log(sim: &Simulation, ship: NetId) -> Vec<String> {
    let world = sim.world();
    let Some(entity) = world.resource::<ShipIndex>().entity(ship) else {
        return vec![format!("no ship {ship} (destroyed, or never spawned)")];
    };
    let Some(log) = world.get::<ScriptLog>(entity) else {
        return vec![format!("ship {ship} runs no script")];
    };
    let mut lines: Vec<String> = log
        .lines
        .iter()
        .map(|l| format!("tick {}: {}", l.tick, escape_control(&l.text)))
        .collect();
    if log.dropped > 0 {
        lines.push(format!(
            "({} older or over-limit lines dropped)",
            log.dropped
        ));
    }
    lines
}

/// The artifact directory for compiled scripts, unless disabled. A directory that cannot be
/// created only costs compile time, so it is reported and the run goes on.
fn script_artifact_dir(args: &SimArgs) -> Option<ArtifactDir> {
    if args.no_script_cache || args.script.is_none() {
        return None;
    }
    let dir = args.script_cache.clone().or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache"))
            })?;
        Some(cache.join("astroboids/scripts"))
    })?;
    match ArtifactDir::new(&dir) {
        Ok(artifacts) => Some(artifacts),
        Err(e) => {
            eprintln!(
                "warning: cannot use {} for compiled scripts ({e}); compiling without a cache",
                dir.display()
            );
            None
        }
    }
}
