//! `astroboids sim`: a headless run with a progress bar and a summary.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use astroboids_engine::NetId;
use astroboids_engine::Simulation;
use astroboids_scripting::ArtifactDir;
use astroboids_sim::config::{EMBEDDED_CONFIG_ORIGIN, EMBEDDED_CONFIG_TOML, UniverseConfig};
use astroboids_sim::scripts::{
    ScriptFaults, ScriptLibrary, ScriptLog, ScriptTickReport, add_script, assign_script,
};
use astroboids_sim::sectors::Sectors;
use astroboids_sim::ships::ShipIndex;
use astroboids_sim::{SimOptions, SimTotals, build_simulation_with, spawn::spawn_fleet};

use crate::cli::SimArgs;
use crate::script_cmd::load_script_argument;

#[derive(Debug, Serialize)]
struct Summary {
    seed: u64,
    ticks: u64,
    ships: usize,
    ships_spawned: u32,
    threads: usize,
    state_hash: String,
    tick_ms_p50: f64,
    tick_ms_p99: f64,
    tick_ms_max: f64,
    ticks_per_s: f64,
    sectors_loaded: usize,
    sectors_generated: u64,
    sectors_unloaded: u64,
    ore_mined: u64,
    ships_destroyed: u64,
    collision_contacts: u64,
    /// The script every ship ran (`--script`), if any.
    script: Option<String>,
    script_fuel_used: u64,
    /// Mean fuel (wasm instructions) per script run.
    script_fuel_per_run: f64,
    script_runs: u64,
    script_faults: u64,
    /// Scripts compiled for this run vs loaded from the artifact cache.
    scripts_compiled: u64,
    scripts_loaded_from_cache: u64,
    /// The most recent faults, newest last (at most 5).
    script_recent_faults: Vec<String>,
    /// `--show-log`: that ship's log lines as "tick N: text", oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    script_log: Option<Vec<String>>,
}

/// Reads and validates the universe configuration, or the embedded default.
pub fn load_config(path: Option<&std::path::Path>) -> Result<UniverseConfig> {
    let (text, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config file {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (
            EMBEDDED_CONFIG_TOML.to_string(),
            EMBEDDED_CONFIG_ORIGIN.to_string(),
        ),
    };
    Ok(UniverseConfig::from_toml_str(&text, &origin)?)
}

pub fn run(args: &SimArgs) -> Result<()> {
    let config = load_config(args.config.as_deref())?;
    if args.ships > config.limits.max_ships {
        anyhow::bail!(
            "--ships {} exceeds limits.max_ships ({}) of the universe configuration",
            args.ships,
            config.limits.max_ships
        );
    }
    let threads = args
        .threads
        .map(|t| t as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start the worker threads")?;
    let script = match &args.script {
        Some(path) => Some(load_script_argument(path, &args.sdk)?),
        None => None,
    };
    let summary = pool.install(|| simulate(args, config, threads, script.as_deref()))?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

fn simulate(
    args: &SimArgs,
    config: UniverseConfig,
    threads: usize,
    script: Option<&[u8]>,
) -> Result<Summary> {
    let options = SimOptions {
        script_artifacts: script_artifact_dir(args),
        ..SimOptions::default()
    };
    let mut sim = build_simulation_with(config, args.seed, options);
    let ships = spawn_fleet(sim.world_mut(), args.ships)?;
    if let (Some(wasm), Some(path)) = (script, &args.script) {
        let id = add_script(sim.world_mut(), wasm).with_context(|| path.display().to_string())?;
        for ship in ships {
            assign_script(sim.world_mut(), ship, id)?;
        }
    }
    let mut script_runs = 0u64;

    let progress = ProgressBar::new(args.ticks);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} tick {pos}/{len} [{bar:30}] {per_sec} ETA {eta} {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let mut durations = Vec::with_capacity(args.ticks as usize);
    let mut record = |sim: &mut Simulation, took: Duration| {
        durations.push(took);
        script_runs += u64::from(sim.world().resource::<ScriptTickReport>().ran);
        let tick = sim.tick();
        if tick.is_multiple_of(10) {
            let ships = sim.world().resource::<ShipIndex>().len();
            progress.set_message(format!("{ships} ships"));
            progress.set_position(tick);
        }
    };
    let started = Instant::now();
    if args.realtime {
        let ticks = args.ticks;
        sim.run_paced(
            || started.elapsed(),
            std::thread::sleep,
            |sim, took| {
                record(sim, took);
                if sim.tick() >= ticks {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
    } else {
        for _ in 0..args.ticks {
            let t0 = Instant::now();
            sim.step();
            record(&mut sim, t0.elapsed());
        }
    }
    progress.finish_and_clear();
    let wall = started.elapsed();

    let hash = sim.state_hash();
    let world = sim.world();
    let totals = world.resource::<SimTotals>().clone();
    let load_stats = world.resource::<ScriptLibrary>().engine().load_stats();
    durations.sort_unstable();
    let faults = &world.resource::<ScriptFaults>().recent;
    let script_recent_faults = faults
        .iter()
        .skip(faults.len().saturating_sub(5))
        .map(|f| format!("ship {} tick {}: {}", f.ship, f.tick, f.message))
        .collect();
    Ok(Summary {
        seed: args.seed,
        ticks: args.ticks,
        ships: world.resource::<ShipIndex>().len(),
        ships_spawned: args.ships,
        threads,
        state_hash: hash.hex(),
        tick_ms_p50: percentile_ms(&durations, 0.50),
        tick_ms_p99: percentile_ms(&durations, 0.99),
        tick_ms_max: durations.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        ticks_per_s: args.ticks as f64 / wall.as_secs_f64().max(1e-9),
        sectors_loaded: world.resource::<Sectors>().loaded_count(),
        sectors_generated: totals.sectors_generated,
        sectors_unloaded: totals.sectors_unloaded,
        ore_mined: totals.ore_mined,
        ships_destroyed: totals.ships_destroyed,
        collision_contacts: totals.collision_contacts,
        script: args.script.as_ref().map(|p| p.display().to_string()),
        script_fuel_used: totals.script_fuel_used,
        script_fuel_per_run: totals.script_fuel_used as f64 / script_runs.max(1) as f64,
        script_runs,
        script_faults: totals.script_faults,
        scripts_compiled: load_stats.compiled,
        scripts_loaded_from_cache: load_stats.loaded_from_disk,
        script_recent_faults,
        script_log: args.show_log.map(|ship| ship_log(&sim, NetId(ship))),
    })
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
        .map(|l| format!("tick {}: {}", l.tick, l.text))
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

/// Nearest-rank percentile of sorted durations, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

fn print_summary(s: &Summary) {
    println!(
        "AstroBoids headless run (seed {}, {} threads)",
        s.seed, s.threads
    );
    println!("  ticks            {}", s.ticks);
    println!(
        "  ships            {} alive of {} spawned ({} destroyed)",
        s.ships, s.ships_spawned, s.ships_destroyed
    );
    println!(
        "  tick time        p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({:.0} ticks/s)",
        s.tick_ms_p50, s.tick_ms_p99, s.tick_ms_max, s.ticks_per_s
    );
    println!(
        "  sectors          {} loaded, {} generated, {} unloaded",
        s.sectors_loaded, s.sectors_generated, s.sectors_unloaded
    );
    println!("  ore mined        {}", s.ore_mined);
    println!("  collisions       {} contact events", s.collision_contacts);
    if let Some(script) = &s.script {
        println!("  script           {script}");
        println!(
            "  script fuel      {} in {} runs ({:.0} per run)",
            s.script_fuel_used, s.script_runs, s.script_fuel_per_run
        );
        println!(
            "  script module    {} compiled, {} loaded from the artifact cache",
            s.scripts_compiled, s.scripts_loaded_from_cache
        );
        println!("  script faults    {}", s.script_faults);
        for fault in &s.script_recent_faults {
            println!("    {fault}");
        }
        if let Some(log) = &s.script_log {
            println!("  script log");
            for line in log {
                println!("    {line}");
            }
        }
    }
    println!("  state hash       {}", s.state_hash);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&d, 0.5), 50.0);
        assert_eq!(percentile_ms(&d, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }
}
