//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "astroboids",
    version,
    about = "AstroBoids: a deterministic programmable-fleet universe"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a headless world as fast as possible and print a summary.
    Sim(SimArgs),
    /// Build and check ship scripts.
    #[command(subcommand)]
    Script(ScriptCommand),
}

#[derive(Debug, Subcommand)]
pub enum ScriptCommand {
    /// Compile a TypeScript (AssemblyScript) ship script with the SDK, then check the result.
    Build(BuildArgs),
    /// Validate a WebAssembly ship script and print its imports, exports and limits.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The script, e.g. assets/scripts/miner.ts.
    pub file: PathBuf,
    /// Where to write the module (default: next to the script, with a .wasm extension).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub sdk: SdkArgs,
}

#[derive(Debug, Args)]
pub struct SdkArgs {
    /// The SDK directory (default: $ASTROBOIDS_SDK, else scripting/sdk of this checkout).
    #[arg(long, env = "ASTROBOIDS_SDK")]
    pub sdk: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The module, e.g. assets/scripts/miner.wasm.
    pub file: PathBuf,
    /// Universe configuration whose script limits apply (default: the embedded one).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Universe seed: the same seed and inputs give the same state hash.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Ships to spawn (autopilot-flown), spread over sectors around the origin.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub ships: u32,
    /// Ticks to simulate.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub ticks: u64,
    /// Worker threads for the parallel stages (default: all cores). Results do not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,
    /// Universe configuration file (default: the embedded assets/universe.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run paced at the configured tick rate (simulation.tick_rate_hz), as the server will,
    /// instead of as fast as possible. Same ticks, same state hash.
    #[arg(long)]
    pub realtime: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Give every ship this script instead of the autopilot: a .wasm module, or a .ts file
    /// compiled with the SDK first. Exits with the validation error if it is rejected.
    #[arg(long)]
    pub script: Option<PathBuf>,
    #[command(flatten)]
    pub sdk: SdkArgs,
    /// Keep compiled scripts here so the next run does not recompile them (default:
    /// $XDG_CACHE_HOME/astroboids/scripts, else ~/.cache/astroboids/scripts).
    #[arg(long, conflicts_with = "no_script_cache")]
    pub script_cache: Option<PathBuf>,
    /// Compile scripts on every run; keep nothing on disk.
    #[arg(long)]
    pub no_script_cache: bool,
    /// Print the script log of this ship (its last `scripts.log_ring_lines` lines) at the end.
    #[arg(long, value_name = "SHIP_ID")]
    pub show_log: Option<u64>,
}
