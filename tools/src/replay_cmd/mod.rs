//! `astroboids replay ...`: verify, inspect, re-run and export recorded replays.
//!
//! Code map: `inspect` prints a recording, a world or one ship at a tick; this file the rest.

mod inspect;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use astroboids_engine::NetId;
use astroboids_host::replay::{Replay, verify};
use astroboids_host::rerun::{RerunRequest, rerun};
use astroboids_host::trace::{ShipTrace, export, replay_trace};
use astroboids_net::text::escape_control;
use astroboids_sim::SimOptions;
use astroboids_sim::checkpoint::ShipRecord;

use crate::cli::{
    ReplayCommand, ReplayExportArgs, ReplayRerunArgs, ReplayTraceArgs, ReplayVerifyArgs,
};
use crate::script_cmd::load_script_argument;

use inspect::run_inspect;

pub fn run(command: &ReplayCommand) -> Result<()> {
    match command {
        ReplayCommand::Verify(args) => run_verify(args),
        ReplayCommand::Inspect(args) => run_inspect(args),
        ReplayCommand::Rerun(args) => run_rerun(args),
        ReplayCommand::Export(args) => run_export(args),
        ReplayCommand::Trace(args) => run_trace(args),
    }
}

fn open(path: &Path) -> Result<Replay> {
    Ok(Replay::open(path)?)
}

/// Options for re-simulating: script workers on the pool's threads, no artifact cache.
fn options() -> SimOptions {
    SimOptions::default()
}

fn run_verify(args: &ReplayVerifyArgs) -> Result<()> {
    let replay = open(&args.file)?;
    let pool = crate::thread_pool(crate::thread_count(args.threads))?;
    let progress = ProgressBar::new(replay.ticks.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} verifying tick {pos}/{len} [{bar:30}] {per_sec}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let start = replay.start_tick();
    let report = pool.install(|| {
        verify(&replay, options(), |tick| {
            if tick.is_multiple_of(10) {
                progress.set_position(tick - start);
            }
        })
    })?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let ticks_per_s = report.ticks_checked as f64 / seconds.max(1e-9);
    let tick_rate = replay.config.simulation.tick_rate_hz as f64;
    if args.json {
        let divergence = report.divergence.as_ref().map(|d| {
            json!({
                "tick": d.tick,
                "parts": d.parts,
                "compared_at": d.compared_at,
                "differences": d.differences,
            })
        });
        println!(
            "{}",
            json!({
                "file": args.file.display().to_string(),
                "ticks_checked": report.ticks_checked,
                "ok": report.divergence.is_none(),
                "ticks_per_s": ticks_per_s,
                "times_real_time": ticks_per_s / tick_rate,
                "divergence": divergence,
            })
        );
    } else {
        println!(
            "{}: ticks {}..={} ({} ticks) re-simulated in {seconds:.2} s ({ticks_per_s:.0} \
             ticks/s, {:.0}x real time)",
            args.file.display(),
            start + 1,
            replay.last_tick(),
            report.ticks_checked,
            ticks_per_s / tick_rate
        );
    }
    match report.divergence {
        None => {
            if !args.json {
                println!("OK: every tick's state hash matches the recording");
            }
            Ok(())
        }
        Some(d) => {
            if !args.json {
                println!(
                    "DIVERGED at tick {}: the state hash differs in {}",
                    d.tick,
                    d.parts.join(", ")
                );
                match d.compared_at {
                    Some(at) => {
                        println!("at the next recorded keyframe (tick {at}), recorded -> now:");
                        for line in &d.differences {
                            println!("  {line}");
                        }
                    }
                    None => println!("(no keyframe after it to compare entities with)"),
                }
            }
            bail!(
                "{}: the re-simulation diverges from the recording at tick {}",
                args.file.display(),
                d.tick
            )
        }
    }
}

fn run_rerun(args: &ReplayRerunArgs) -> Result<()> {
    let replay = open(&args.file)?;
    let wasm = load_script_argument(&args.script, &args.sdk)?;
    let pool = crate::thread_pool(crate::thread_count(args.threads))?;
    let request = RerunRequest {
        ship: NetId(args.ship),
        wasm,
        from: args.from,
        to: args.to,
    };
    let report = pool.install(|| rerun(&replay, &request, options()))?;
    if args.json {
        println!(
            "{}",
            json!({
                "from": report.from,
                "to": report.to,
                "script": format!("{:032x}", report.script),
                "identical": report.identical,
                "first_command_difference": report.first_command_difference,
                "first_ship_difference": report.first_ship_difference,
                "first_world_difference": report.first_world_difference.as_ref().map(|(t, _)| t),
                "world_parts_differing": report.first_world_difference.as_ref().map(|(_, p)| p),
                "command_differences": report.command_differences.iter().map(|d| json!({
                    "tick": d.tick, "recorded": d.recorded, "rerun": d.rerun
                })).collect::<Vec<_>>(),
                "refused_inputs": report.refused_inputs,
            })
        );
        return Ok(());
    }
    println!(
        "ship {} runs script {:032x} from tick {} to {}",
        args.ship, report.script, report.from, report.to
    );
    if report.identical {
        println!("identical: every tick's state hash equals the recording");
        return Ok(());
    }
    let at = |t: Option<u64>| t.map_or("never".to_string(), |t| format!("tick {t}"));
    println!(
        "commands first differ   {}",
        at(report.first_command_difference)
    );
    println!(
        "ship state first differs {}",
        at(report.first_ship_difference)
    );
    if let Some((tick, parts)) = &report.first_world_difference {
        println!(
            "world first differs      tick {tick} (state hash parts: {})",
            parts.join(", ")
        );
    }
    if !report.command_differences.is_empty() {
        println!("first differing commands (recorded -> re-run):");
        for d in &report.command_differences {
            println!("  tick {}: {} -> {}", d.tick, d.recorded, d.rerun);
        }
    }
    let describe = |s: &Option<ShipRecord>| {
        s.as_ref().map_or("destroyed".to_string(), |s| {
            format!(
                "sector ({}, {}) at ({:.2}, {:.2}), hull {}, cargo {}",
                s.sector.0, s.sector.1, s.local.0, s.local.1, s.hull, s.cargo
            )
        })
    };
    println!("at tick {}:", report.to);
    println!("  recorded: {}", describe(&report.final_ship.0));
    println!("  re-run:   {}", describe(&report.final_ship.1));
    for refused in &report.refused_inputs {
        println!("  {refused}");
    }
    Ok(())
}

fn run_export(args: &ReplayExportArgs) -> Result<()> {
    let replay = open(&args.file)?;
    let pool = crate::thread_pool(crate::thread_count(None))?;
    let trace =
        pool.install(|| export(&replay, NetId(args.ship), args.from, args.to, options()))?;
    let text = serde_json::to_string_pretty(&trace)?;
    match &args.out {
        Some(path) => {
            write_atomically(path, text.as_bytes())?;
            eprintln!(
                "wrote {} ticks of ship {} to {}",
                trace.ticks.len(),
                args.ship,
                path.display()
            );
        }
        None => println!("{text}"),
    }
    Ok(())
}

/// Writes next to `path` and renames, so an existing file is never left half-written.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let temp = path.with_file_name(name);
    std::fs::write(&temp, bytes).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Largest trace file read.
const TRACE_FILE_MAX_BYTES: u64 = 1 << 30;

fn run_trace(args: &ReplayTraceArgs) -> Result<()> {
    let size = std::fs::metadata(&args.trace)
        .with_context(|| format!("cannot read trace {}", args.trace.display()))?
        .len();
    if size > TRACE_FILE_MAX_BYTES {
        bail!(
            "{}: {size} bytes; a trace may have at most {TRACE_FILE_MAX_BYTES}",
            args.trace.display()
        );
    }
    let text = std::fs::read_to_string(&args.trace)
        .with_context(|| format!("cannot read trace {}", args.trace.display()))?;
    let trace: ShipTrace = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a ship trace", args.trace.display()))?;
    let wasm = args
        .script
        .as_ref()
        .map(|p| load_script_argument(p, &args.sdk))
        .transpose()?;
    let report = replay_trace(&trace, wasm.as_deref())
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.trace.display()))?;
    println!(
        "{} ticks of ship {} replayed against {} ({})",
        report.ticks,
        trace.ship,
        args.script
            .as_ref()
            .map_or("the traced script".to_string(), |p| p.display().to_string()),
        if report.started_from_saved_state {
            "from the traced instance state"
        } else {
            "from a fresh instance"
        }
    );
    match report.first_difference {
        None => {
            println!("every answer matches the trace");
            Ok(())
        }
        Some(d) => {
            println!(
                "{} ticks answered differently; the first is tick {}:",
                report.differing_ticks, d.tick
            );
            println!("  traced: {}", escape_control(&d.recorded));
            println!("  now:    {}", escape_control(&d.now));
            Ok(())
        }
    }
}
