//! Arguments of the headless commands: `sim`, and `replay ...` on what it records.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::SdkArgs;

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Universe seed: the same seed and inputs give the same state hash [default: 1; with
    /// --data, the world's own].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Ships to spawn when the world is new, spread over sectors around the origin, flown by
    /// the autopilot or by --script [default: 1000].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub ships: Option<u32>,
    /// Ticks to simulate in this run.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub ticks: u64,
    /// Run until the world reaches this tick instead (with --data: wherever this run starts).
    #[arg(long, conflicts_with = "ticks", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub until_tick: Option<u64>,
    /// Worker threads for the parallel stages (default: all cores). Results do not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,
    /// Universe configuration file (default: the embedded assets/universe.toml; with --data,
    /// the world's own).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Persist the world in this directory (created when missing or empty) and resume it if it
    /// holds one: inputs are logged before they apply, checkpoints are written every
    /// persistence.checkpoint_every_ticks. A later run continues where this one stopped,
    /// also after a crash.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Timed world inputs, one JSON object per line: {"tick": T, "input": {...}} (see
    /// docs/replays.md). Each is applied before its tick; refused ones are reported.
    #[arg(long, value_name = "FILE")]
    pub inputs: Option<PathBuf>,
    /// Record the run to this replay file (starting at the first checkpoint tick), for
    /// `astroboids replay`.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// With --record: a keyframe (a whole-world checkpoint) every this many checkpoint ticks.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub keyframe_every: u64,
    /// Run paced at the configured tick rate (simulation.tick_rate_hz), as the server will,
    /// instead of as fast as possible. Same ticks, same state hash.
    #[arg(long)]
    pub realtime: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Give every spawned ship this script instead of the autopilot: a .wasm module, a .wat
    /// module (WebAssembly text), or a .ts file compiled with the SDK first. Exits with the
    /// validation error if it is rejected, or with the start error if it starts on no ship.
    #[arg(long)]
    pub script: Option<PathBuf>,
    #[command(flatten)]
    pub sdk: SdkArgs,
    /// Keep compiled scripts here so the next run does not recompile them (default:
    /// $XDG_CACHE_HOME/astroboids/scripts, else ~/.cache/astroboids/scripts; with --data, a
    /// directory inside it).
    #[arg(long, conflicts_with = "no_script_cache")]
    pub script_cache: Option<PathBuf>,
    /// Compile scripts on every run; keep nothing on disk.
    #[arg(long)]
    pub no_script_cache: bool,
    /// Print the script log of this ship (its last `scripts.log_ring_lines` lines) at the end.
    #[arg(long, value_name = "SHIP_ID")]
    pub show_log: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Re-simulate a replay and compare every tick's state hash; exit 0 only if all match.
    Verify(ReplayVerifyArgs),
    /// Show a recorded tick: the world, or one ship's state, sensors, commands, fuel, log.
    Inspect(ReplayInspectArgs),
    /// Re-run a replay with one ship flying a different script and show how it diverges.
    Rerun(ReplayRerunArgs),
    /// Write one ship's per-tick trace (sensors in, commands out) as JSON, to replay its
    /// script offline.
    Export(ReplayExportArgs),
    /// Run a script offline against an exported trace (no world) and compare its answers.
    Trace(ReplayTraceArgs),
}

#[derive(Debug, Args)]
pub struct ReplayTraceArgs {
    /// A trace written by `astroboids replay export`.
    pub trace: PathBuf,
    /// The script to run (default: the traced one): a .wasm or .wat module or a .ts file.
    #[arg(long)]
    pub script: Option<PathBuf>,
    #[command(flatten)]
    pub sdk: SdkArgs,
}

#[derive(Debug, Args)]
pub struct ReplayVerifyArgs {
    pub file: PathBuf,
    /// Worker threads (results do not depend on it).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayInspectArgs {
    pub file: PathBuf,
    /// The tick to show (default: a summary of the whole recording).
    #[arg(long)]
    pub tick: Option<u64>,
    /// The ship to show at that tick.
    #[arg(long, requires = "tick")]
    pub ship: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayRerunArgs {
    pub file: PathBuf,
    /// The ship to give the new script.
    #[arg(long)]
    pub ship: u64,
    /// The new script: a .wasm or .wat module, or a .ts file (compiled with the SDK).
    #[arg(long)]
    pub script: PathBuf,
    #[command(flatten)]
    pub sdk: SdkArgs,
    /// The tick whose start the new script takes over at (default: the first recorded tick).
    #[arg(long)]
    pub from: Option<u64>,
    /// The last tick to run (default: the end of the recording).
    #[arg(long)]
    pub to: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayExportArgs {
    pub file: PathBuf,
    #[arg(long)]
    pub ship: u64,
    /// Where to write the trace (default: stdout).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub from: Option<u64>,
    #[arg(long)]
    pub to: Option<u64>,
}
