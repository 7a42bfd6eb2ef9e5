//! `astroboids replay inspect`: a recording's ticks and keyframes, a world at a tick, or one
//! ship at a tick with its script's run.

use std::borrow::Cow;

use anyhow::Result;
use serde_json::json;

use astroboids_engine::NetId;
use astroboids_host::inspect::{describe_run, describe_sensors, inspect_ship};
use astroboids_host::replay::{Replay, differing_parts};
use astroboids_net::text::escape_control;
use astroboids_sim::checkpoint::ShipRecord;
use astroboids_sim::ships::ShipIndex;
use astroboids_sim::{SimTotals, sectors::Sectors};

use crate::cli::ReplayInspectArgs;

use super::{open, options};

pub(super) fn run_inspect(args: &ReplayInspectArgs) -> Result<()> {
    let replay = open(&args.file)?;
    let pool = crate::thread_pool(crate::thread_count(args.threads))?;
    match (args.tick, args.ship) {
        (None, _) => inspect_recording(&replay, args.json),
        (Some(tick), None) => pool.install(|| inspect_world(&replay, tick, args.json)),
        (Some(tick), Some(ship)) => {
            pool.install(|| inspect_one_ship(&replay, tick, NetId(ship), args.json))
        }
    }
}

fn inspect_recording(replay: &Replay, as_json: bool) -> Result<()> {
    let h = &replay.header;
    let ticks = replay.ticks.len() as u64;
    let inputs: usize = replay.ticks.iter().map(|t| t.inputs.len()).sum();
    let input_bytes: usize = replay
        .ticks
        .iter()
        .flat_map(|t| &t.inputs)
        .map(|i| postcard::to_allocvec(i).map_or(0, |b| b.len()))
        .sum();
    let keyframes: Vec<u64> = replay.keyframe_ticks().collect();
    let per_tick = |b: f64| b / ticks.max(1) as f64;
    if as_json {
        println!(
            "{}",
            json!({
                "file": replay.path.display().to_string(),
                "engine_version": h.engine_version,
                "sim_version": h.sim_version,
                "generator_version": h.generator_version,
                "universe_seed": h.universe_seed,
                "recorded_by": h.recorded_by,
                "start_tick": replay.start_tick(),
                "last_tick": replay.last_tick(),
                "keyframes": keyframes,
                "inputs": inputs,
                "input_bytes_per_tick": per_tick(input_bytes as f64),
                "file_bytes": replay.file_bytes,
                "file_bytes_per_tick": per_tick(replay.file_bytes as f64),
            })
        );
        return Ok(());
    }
    println!("replay      {}", replay.path.display());
    println!(
        "recorded by astroboids {} (simulation version {}, generator version {}): {}",
        h.engine_version, h.sim_version, h.generator_version, h.recorded_by
    );
    println!("universe    seed {}", h.universe_seed);
    println!(
        "ticks       {}..={} ({ticks} ticks, {:.1} s at {} Hz)",
        replay.start_tick() + 1,
        replay.last_tick(),
        ticks as f64 / replay.config.simulation.tick_rate_hz as f64,
        replay.config.simulation.tick_rate_hz
    );
    println!("keyframes   {} at ticks {keyframes:?}", keyframes.len());
    println!(
        "inputs      {inputs} ({:.1} bytes/tick before compression)",
        per_tick(input_bytes as f64)
    );
    println!(
        "file        {} bytes ({:.1} bytes/tick)",
        replay.file_bytes,
        per_tick(replay.file_bytes as f64)
    );
    Ok(())
}

fn inspect_world(replay: &Replay, tick: u64, as_json: bool) -> Result<()> {
    let mut sim = replay.world_at(tick, options())?;
    // Ticks record the quick hash (no script memory), so that is what compares with the
    // recording; the full hash is what `sim` prints as its state hash.
    let quick = sim.quick_state_hash();
    let full = sim.state_hash();
    let record = replay.record(tick);
    let recorded = record.map(|r| format!("{:016x}", r.hash));
    let differing = record.map(|r| differing_parts(&replay.header, r, &mut sim));
    let world = sim.world();
    let totals = world.resource::<SimTotals>();
    let inputs: Vec<String> = replay
        .record(tick)
        .map(|r| {
            r.inputs
                .iter()
                .map(|i| format!("{i:?}"))
                .map(shorten)
                .collect()
        })
        .unwrap_or_default();
    if as_json {
        println!(
            "{}",
            json!({
                "tick": tick,
                "quick_state_hash": quick.hex(),
                "recorded_hash": recorded,
                "matches_recording": differing.as_ref().map(Vec::is_empty),
                "differing_parts": differing,
                "state_hash": full.hex(),
                "ships": world.resource::<ShipIndex>().len(),
                "sectors_loaded": world.resource::<Sectors>().loaded_count(),
                "totals": format!("{totals:?}"),
                "inputs": inputs,
            })
        );
        return Ok(());
    }
    println!("tick        {tick}");
    let verdict = match &differing {
        None => "- (the start)".to_string(),
        Some(parts) if parts.is_empty() => format!(
            "recorded {}: matches",
            recorded.as_deref().expect("a record")
        ),
        Some(parts) => format!(
            "recorded {}: DIFFERS in {}",
            recorded.as_deref().expect("a record"),
            parts.join(", ")
        ),
    };
    println!("quick hash  {} ({verdict})", quick.hex());
    println!(
        "state hash  {} (every part, with script memory)",
        full.hex()
    );
    println!("ships       {}", world.resource::<ShipIndex>().len());
    println!(
        "sectors     {} loaded",
        world.resource::<Sectors>().loaded_count()
    );
    println!("totals      {totals:?}");
    println!("inputs before this tick: {}", inputs.len());
    for input in inputs {
        println!("  {input}");
    }
    Ok(())
}

/// Inputs can carry whole modules: keep their description readable.
fn shorten(text: String) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text;
    }
    let cut = (0..=MAX)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}... ({} bytes)", &text[..cut], text.len())
}

fn ship_lines(s: &ShipRecord) -> Vec<String> {
    let mut lines = vec![
        format!(
            "position    sector ({}, {}) at ({:.3}, {:.3})",
            s.sector.0, s.sector.1, s.local.0, s.local.1
        ),
        format!("velocity    ({:.4}, {:.4})", s.velocity.0, s.velocity.1),
        format!("heading     {:.5}", s.heading),
        format!("hull {}  energy {}  cargo {}", s.hull, s.energy, s.cargo),
    ];
    match &s.script {
        None if s.autopilot => lines.push("flown by    the autopilot".into()),
        None => lines.push("flown by    manual commands only".into()),
        Some(script) => {
            let status = ["starting", "running", "failed"]
                .get(script.status as usize)
                .copied()
                .unwrap_or("?");
            lines.push(format!(
                "flown by    script {:032x} ({status})",
                script.script
            ));
            lines.push(format!(
                "fuel        {} stored, {} used in total, {} faults in total",
                script.fuel_stored, script.fuel_used_total, script.faults_total
            ));
        }
    }
    lines
}

fn inspect_one_ship(replay: &Replay, tick: u64, ship: NetId, as_json: bool) -> Result<()> {
    let seen = inspect_ship(replay, tick, ship, options())?;
    let log: Vec<Cow<str>> = seen
        .state
        .script
        .as_ref()
        .map(|s| {
            s.log
                .iter()
                .filter(|(t, _)| *t == tick)
                .map(|(_, text)| escape_control(text))
                .collect()
        })
        .unwrap_or_default();
    if as_json {
        let run = seen.run.as_ref().map(|r| {
            json!({
                "budget": r.job.budget,
                "random_seed": r.job.random_seed,
                "sensors": r.job.sensors,
                "fuel_used": r.report.fuel_used,
                "command": r.report.command,
                "fault": r.report.fault.as_ref().map(|f| f.to_string()),
                "logs_dropped": r.report.logs_dropped,
            })
        });
        println!(
            "{}",
            json!({
                "tick": tick,
                "ship": ship.0,
                "state": ship_lines(&seen.state),
                "script_run": run,
                "log": log,
                "faults": seen.faults,
                "inputs": seen.inputs.iter().map(|i| shorten(format!("{i:?}"))).collect::<Vec<_>>(),
            })
        );
        return Ok(());
    }
    println!("ship {ship} after tick {tick}");
    for line in ship_lines(&seen.state) {
        println!("  {line}");
    }
    for input in &seen.inputs {
        println!(
            "  input before this tick: {}",
            shorten(format!("{input:?}"))
        );
    }
    match &seen.run {
        None => {
            println!("  its script did not run this tick (no script, starting, or backing off)")
        }
        Some(run) => {
            println!(
                "script run (budget {} fuel, random seed {:#018x})",
                run.job.budget, run.job.random_seed
            );
            println!("  sensors:");
            for line in describe_sensors(&run.job.sensors) {
                println!("    {line}");
            }
            println!(
                "  returned:  {}",
                escape_control(&describe_run(&run.report))
            );
            println!("  fuel used: {}", run.report.fuel_used);
        }
    }
    println!("  log lines this tick: {}", log.len());
    for line in log {
        println!("    {line}");
    }
    if !seen.faults.is_empty() {
        println!("  faults this tick:");
        for fault in &seen.faults {
            println!("    {}", escape_control(fault));
        }
    }
    Ok(())
}
