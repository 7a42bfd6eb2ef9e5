//! What `astroboids sim` reports at the end of a run: the summary as JSON (`--json`) or as text.

use std::time::Duration;

use serde::Serialize;

use astroboids_engine::stats::nearest_rank;
use astroboids_host::recording::Written;

use crate::cli::SimArgs;

#[derive(Debug, Serialize)]
pub(super) struct Summary {
    pub(super) seed: u64,
    /// Ticks run by this invocation.
    pub(super) ticks: u64,
    /// The world's tick at the end.
    pub(super) tick: u64,
    pub(super) ships: usize,
    /// Ships spawned by this invocation (none when resuming a persisted world).
    pub(super) ships_spawned: u32,
    pub(super) threads: usize,
    pub(super) state_hash: String,
    pub(super) tick_ms_p50: f64,
    pub(super) tick_ms_p99: f64,
    pub(super) tick_ms_max: f64,
    /// The run's first tick (where fresh scripts start).
    pub(super) first_tick_ms: f64,
    /// The slowest tick that wrote a checkpoint (0: none did), and the slowest of the rest:
    /// what checkpoints cost the tick thread.
    pub(super) checkpoint_tick_ms_max: f64,
    /// Every tick that wrote a checkpoint, in order.
    pub(super) checkpoint_ticks_ms: Vec<f64>,
    /// The tick right after each checkpoint: its scripts run once the workers have taken
    /// their states for the checkpoint. Unpaced, that wait lands here; paced (`--realtime`),
    /// the workers take the states in the idle time between ticks.
    pub(super) after_checkpoint_ticks_ms: Vec<f64>,
    pub(super) other_tick_ms_max: f64,
    pub(super) ticks_per_s: f64,
    pub(super) sectors_loaded: usize,
    pub(super) sectors_generated: u64,
    pub(super) sectors_unloaded: u64,
    pub(super) ore_mined: u64,
    pub(super) ships_destroyed: u64,
    pub(super) collision_contacts: u64,
    /// The script every ship ran (`--script`), if any.
    pub(super) script: Option<String>,
    pub(super) script_fuel_used: u64,
    /// Mean fuel (wasm instructions) per script run.
    pub(super) script_fuel_per_run: f64,
    pub(super) script_runs: u64,
    /// Runs a cap held back (granted less than their bucket allowed by the account or world
    /// cap, and out of fuel), and runs skipped because their script was in fault back-off.
    pub(super) script_runs_cut_by_caps: u64,
    pub(super) script_runs_skipped_in_backoff: u64,
    /// Faults of scripts that were running (out of fuel, traps); start failures are counted
    /// apart, in `script_start_failures`.
    pub(super) script_faults: u64,
    /// Ships alive at the end whose script instance is running, waiting to start, or could
    /// not start (those idle until they get another script).
    pub(super) script_ships_running: u64,
    pub(super) script_ships_starting: u64,
    pub(super) script_start_failures: u64,
    /// Scripts compiled for this run vs loaded from the artifact cache.
    pub(super) scripts_compiled: u64,
    pub(super) scripts_loaded_from_cache: u64,
    /// The most recent faults of either kind, newest last (at most 5); a start failure is
    /// marked "(start)".
    pub(super) script_recent_faults: Vec<String>,
    /// `--show-log`: that ship's log lines as "tick N: text", oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) script_log: Option<Vec<String>>,
    /// World inputs applied (setup, `--inputs`) and refused.
    pub(super) inputs_applied: u64,
    pub(super) inputs_refused: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) data: Option<DataSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) record: Option<RecordSummary>,
}

#[derive(Debug, Serialize)]
pub(super) struct DataSummary {
    pub(super) dir: String,
    pub(super) created: bool,
    pub(super) resumed_from_checkpoint: Option<u64>,
    pub(super) replayed_inputs: usize,
    pub(super) resumed_at_tick: u64,
    pub(super) checkpoints_written: u64,
    pub(super) last_checkpoint_bytes: Option<usize>,
}

#[derive(Debug, Serialize)]
pub(super) struct RecordSummary {
    pub(super) file: String,
    pub(super) start_tick: u64,
    pub(super) ticks: u64,
    pub(super) keyframes: u64,
    pub(super) file_bytes: u64,
    pub(super) input_bytes_per_tick: f64,
    /// Per-tick records (inputs and state hashes), compressed, per tick.
    pub(super) tick_record_bytes_per_tick: f64,
    pub(super) keyframe_bytes: u64,
    pub(super) file_bytes_per_tick: f64,
}

/// What `--record` wrote, for the summary (a warning when nothing could be).
pub(super) fn record_summary(args: &SimArgs, written: Option<Written>) -> Option<RecordSummary> {
    let path = args.record.as_ref()?;
    let Some(written) = written else {
        eprintln!(
            "warning: no replay written to {}: the run reached no checkpoint tick to start \
             recording at (persistence.checkpoint_every_ticks)",
            path.display()
        );
        return None;
    };
    let stats = written.stats;
    let per_tick = |bytes: u64| bytes as f64 / stats.ticks.max(1) as f64;
    Some(RecordSummary {
        file: written.path.display().to_string(),
        start_tick: written.start_tick,
        ticks: stats.ticks,
        keyframes: stats.keyframes,
        file_bytes: stats.file_bytes,
        input_bytes_per_tick: per_tick(stats.input_bytes),
        tick_record_bytes_per_tick: per_tick(stats.tick_record_bytes),
        keyframe_bytes: stats.keyframe_bytes,
        file_bytes_per_tick: per_tick(stats.file_bytes),
    })
}

/// Nearest-rank percentile of sorted durations, in milliseconds (0 for none).
pub(super) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    nearest_rank(sorted, p).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

pub(super) fn print_summary(s: &Summary) {
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
        "  slowest ticks    first {:.1} ms, with a checkpoint {:.1} ms, any other {:.1} ms",
        s.first_tick_ms, s.checkpoint_tick_ms_max, s.other_tick_ms_max
    );
    if let Some(after) = s.after_checkpoint_ticks_ms.iter().copied().reduce(f64::max) {
        println!("  after checkpoint slowest {after:.1} ms (scripts wait for the state capture)");
    }
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
        println!("  script faults    {} while running", s.script_faults);
        println!(
            "  script budgets   {} runs held back by the account or sector cap, {} skipped in back-off",
            s.script_runs_cut_by_caps, s.script_runs_skipped_in_backoff
        );
        println!(
            "  script starts    {} ships running, {} waiting to start, {} failed to start (idle)",
            s.script_ships_running, s.script_ships_starting, s.script_start_failures
        );
        if !s.script_recent_faults.is_empty() {
            println!("  recent faults");
            for fault in &s.script_recent_faults {
                println!("    {fault}");
            }
        }
        if let Some(log) = &s.script_log {
            println!("  script log");
            for line in log {
                println!("    {line}");
            }
        }
    }
    if s.inputs_applied + s.inputs_refused > 0 {
        println!(
            "  inputs           {} applied, {} refused",
            s.inputs_applied, s.inputs_refused
        );
    }
    if let Some(d) = &s.data {
        let origin = match (d.created, d.resumed_from_checkpoint) {
            (true, _) => "created".to_string(),
            (false, Some(cp)) => format!(
                "resumed at tick {} (checkpoint {cp} + {} logged inputs)",
                d.resumed_at_tick, d.replayed_inputs
            ),
            (false, None) => format!(
                "resumed at tick {} ({} logged inputs)",
                d.resumed_at_tick, d.replayed_inputs
            ),
        };
        println!("  data             {} ({origin})", d.dir);
        println!(
            "  checkpoints      {} written{}",
            d.checkpoints_written,
            d.last_checkpoint_bytes.map_or(String::new(), |b| format!(
                ", the last {b} bytes compressed"
            ))
        );
    }
    if let Some(r) = &s.record {
        println!(
            "  replay           {} ({} ticks from tick {}, {} bytes: {:.1} bytes/tick)",
            r.file, r.ticks, r.start_tick, r.file_bytes, r.file_bytes_per_tick,
        );
        println!(
            "                   per tick: {:.1} bytes of records (inputs {:.1} bytes before \
             compression, state hashes); {} keyframes: {} bytes",
            r.tick_record_bytes_per_tick, r.input_bytes_per_tick, r.keyframes, r.keyframe_bytes
        );
    }
    println!("  world tick       {}", s.tick);
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
