//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub mod cluster;

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
    /// Verify, inspect and re-run recorded replays (`astroboids sim --record FILE`).
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Run the online world: the persistent universe paced at its tick rate, players on QUIC.
    Serve(ServeArgs),
    /// Play on a server: register, log in, upload and sync scripts, spawn and fly ships.
    Client(ClientArgs),
    /// Operator tools on a server's data directory (while the server is stopped).
    Admin(AdminArgs),
    /// Bot players against a server: they register, upload a script, spawn, subscribe and
    /// report snapshot bandwidth, delay and errors (default: against a server of its own).
    Loadgen(LoadgenArgs),
    /// Watch your ships live in the terminal: the map around them, their state, script logs
    /// and faults (uses the login of `astroboids client login`).
    Watch(WatchArgs),
    /// Play in a window: the universe around your fleet drawn from live snapshots, your
    /// ships' state and script logs (uses the login of `astroboids client login`).
    Play(PlayArgs),
    /// Designer tools: map, measure and compare sector generation (no server needed).
    #[command(subcommand)]
    Sectors(SectorsCommand),
    /// One world over several processes: start a local cluster, run a headless world on one,
    /// or show one's status.
    #[command(subcommand)]
    Cluster(crate::cli::cluster::ClusterCommand),
    /// A shard process of a cluster (started by `cluster up`, or by a process manager).
    Shard(crate::cli::cluster::ShardArgs),
    /// A leader process of a cluster: campaigns, and leads the world's ticks once elected.
    Leader(crate::cli::cluster::LeaderArgs),
    /// A gateway of a cluster: players connect here as to `serve` (same client, same
    /// protocol); accounts and scripts live in PostgreSQL.
    Gateway(crate::cli::cluster::GatewayArgs),
}

#[derive(Debug, Subcommand)]
pub enum SectorsCommand {
    /// A PNG map of a region: asteroid ore, nebulae, hazards, the sector grid, legend, scale.
    Render(SectorsRenderArgs),
    /// Distribution tables for a region: asteroids and ore per sector, empty sectors,
    /// nebula coverage, hazards.
    Stats(SectorsStatsArgs),
    /// The same region under two configurations: stats side by side, and a side-by-side map.
    Compare(SectorsCompareArgs),
    /// The named presets (`--config preset:NAME`).
    Presets,
}

/// The region and universe every sectors command reads.
#[derive(Debug, Args)]
pub struct RegionArgs {
    /// Universe seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First corner, X,Y (included).
    #[arg(long, allow_hyphen_values = true)]
    pub from: astroboids_designer::Coord,
    /// Last corner, X,Y (included).
    #[arg(long, allow_hyphen_values = true)]
    pub to: astroboids_designer::Coord,
    /// Re-run whenever a configuration file changes (Ctrl-C to stop).
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct SectorsRenderArgs {
    /// A universe configuration file, `preset:NAME` or `default`.
    #[arg(long, default_value = "default")]
    pub config: astroboids_designer::ConfigSource,
    #[command(flatten)]
    pub region: RegionArgs,
    /// The PNG to write (replaced only once the new image is complete).
    #[arg(long)]
    pub out: PathBuf,
    /// Zoom; default: the region fits about 1,200 pixels. From 16 on, each sector's
    /// asteroids, nebulae and hazards are drawn.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub pixels_per_sector: Option<u32>,
    /// What a sector's brightness shows: its ore or its number of asteroids.
    #[arg(long, value_enum, default_value_t = ShadeArg::Ore)]
    pub shade: ShadeArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ShadeArg {
    Ore,
    Asteroids,
}

impl From<ShadeArg> for astroboids_designer::Shade {
    fn from(shade: ShadeArg) -> Self {
        match shade {
            ShadeArg::Ore => Self::Ore,
            ShadeArg::Asteroids => Self::Asteroids,
        }
    }
}

#[derive(Debug, Args)]
pub struct SectorsStatsArgs {
    /// A universe configuration file, `preset:NAME` or `default`.
    #[arg(long, default_value = "default")]
    pub config: astroboids_designer::ConfigSource,
    #[command(flatten)]
    pub region: RegionArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SectorsCompareArgs {
    /// Two configurations, each a file, `preset:NAME` or `default`: `--config A --config B`.
    #[arg(long = "config", required = true)]
    pub configs: Vec<astroboids_designer::ConfigSource>,
    #[command(flatten)]
    pub region: RegionArgs,
    /// Also write both maps side by side to this PNG.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub pixels_per_sector: Option<u32>,
    /// What a sector's brightness shows: its ore or its number of asteroids.
    #[arg(long, value_enum, default_value_t = ShadeArg::Ore)]
    pub shade: ShadeArg,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LoadgenArgs {
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// A running server (with --fingerprint), or several separated by commas (the gateways
    /// of a cluster: bots are spread over them in turn, each with all of them to fail over
    /// to); default: start one in a temporary directory, with limits raised for the bots,
    /// and report its CPU and tick times too.
    #[arg(
        long,
        requires = "fingerprint",
        value_delimiter = ',',
        value_name = "ADDR[,ADDR...]"
    )]
    pub server: Vec<std::net::SocketAddr>,
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// Seconds every bot listens once all are set up.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Bots set up at once.
    #[arg(long, default_value_t = 16)]
    pub setup_concurrency: usize,
    /// Share (0 to 1) of snapshot datagrams each bot drops on arrival, emulating a lossy
    /// network.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub drop_datagrams: f64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Where `astroboids client login` kept the server and your session.
    #[arg(long, env = "ASTROBOIDS_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlayArgs {
    /// Where `astroboids client login` kept the server and your session.
    #[arg(long, env = "ASTROBOIDS_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// The window's size in points.
    #[arg(long, default_value_t = 1280.0)]
    pub width: f32,
    #[arg(long, default_value_t = 800.0)]
    pub height: f32,
    /// Write what the window shows as a PNG and exit (with one `drawn:` line per thing drawn,
    /// in pixels).
    #[arg(long, value_name = "FILE.png")]
    pub screenshot: Option<PathBuf>,
    /// With --screenshot: ticks of live snapshots to wait for first.
    #[arg(long, default_value_t = 10, requires = "screenshot", conflicts_with_all = ["replay", "design"])]
    pub after_ticks: u64,
    /// Open in the replay view with this replay (.abreplay) or trace (.json) file.
    #[arg(long, value_name = "FILE", conflicts_with = "design")]
    pub replay: Option<PathBuf>,
    /// With --replay: the tick to show.
    #[arg(long, requires = "replay")]
    pub tick: Option<u64>,
    /// With --replay: the ship to look into.
    #[arg(long, requires = "replay")]
    pub ship: Option<u64>,
    /// Open in the design view: `default`, `preset:NAME` or a universe config file.
    #[arg(long, value_name = "CONFIG", num_args = 0..=1, default_missing_value = "default")]
    pub design: Option<astroboids_designer::ConfigSource>,
    #[command(flatten)]
    pub sdk: SdkArgs,
    /// Measure frame times instead of playing: no server, a synthetic world of this many ships
    /// and asteroids in sight; prints the figures and exits.
    #[arg(long, value_name = "N", conflicts_with = "screenshot")]
    pub bench_entities: Option<usize>,
    /// Frames a benchmark times.
    #[arg(long, default_value_t = 300, requires = "bench_entities")]
    pub bench_frames: usize,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The world's data directory (created on first start).
    #[arg(long, default_value = "astroboids-world")]
    pub data: PathBuf,
    /// Where players connect (QUIC, UDP).
    #[arg(long, default_value = "127.0.0.1:4433")]
    pub listen: std::net::SocketAddr,
    /// The Prometheus text endpoint (loopback only unless --metrics-public).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_listen: std::net::SocketAddr,
    /// Allow a --metrics-listen address that is not loopback (e.g. 0.0.0.0:9464 in a
    /// container that Prometheus scrapes): whoever reaches it reads the figures.
    #[arg(long, env = "ASTROBOIDS_METRICS_PUBLIC")]
    pub metrics_public: bool,
    /// Serve no metrics endpoint.
    #[arg(long)]
    pub no_metrics: bool,
    /// Universe configuration for a new world (TOML; default: the embedded one). An existing
    /// world keeps the one it was made with.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Universe seed for a new world.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Ships one account may own.
    #[arg(long, default_value_t = 50)]
    pub max_ships_per_account: usize,
    /// Ticks per live replay file (DATA/replays).
    #[arg(long, default_value_t = 3000)]
    pub replay_ticks_per_file: u64,
    /// Finished replay files kept.
    #[arg(long, default_value_t = 48)]
    pub keep_replays: usize,
    /// Do not record the live world.
    #[arg(long)]
    pub no_record: bool,
    /// Connections one address may hold.
    #[arg(long, default_value_t = 64)]
    pub max_connections_per_ip: usize,
    /// Requests per second one address may make (bursts of twice that).
    #[arg(long, default_value_t = 50)]
    pub requests_per_ip_per_s: u32,
    /// Registrations and logins one address may have waiting for password hashing at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub password_jobs_per_ip: u64,
    #[command(flatten)]
    pub log: LogArgs,
}

/// How a server process (`serve`, `shard`, `leader`, `cluster up`) logs: events on stderr,
/// filtered by level, as text or JSON lines (what a command prints for its user stays on
/// stdout).
#[derive(Debug, Args, Clone)]
pub struct LogArgs {
    /// What to log: a level (error, warn, info, debug, trace) or tracing filter directives
    /// such as `info,astroboids_cluster_net=debug`. The flag wins over RUST_LOG.
    #[arg(long, env = "RUST_LOG", default_value = "info", value_name = "FILTER")]
    pub log_level: String,
    /// `text` (one readable line per event) or `json` (one object per line: timestamp,
    /// level, target, message, fields).
    #[arg(
        long,
        env = "ASTROBOIDS_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Where the client keeps the server address, its fingerprint and your session token
    /// (default: the user's config directory, e.g. ~/.config/astroboids).
    #[arg(long, env = "ASTROBOIDS_CONFIG_DIR", global = true)]
    pub config_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ClientCommand,
}

#[derive(Debug, Default, Args)]
pub struct ServerArgs {
    /// The server's address, or several separated by commas (the gateways of a cluster:
    /// the first that answers is used, the others when it fails); saved for later commands.
    #[arg(long, value_delimiter = ',', value_name = "ADDR[,ADDR...]")]
    pub server: Vec<std::net::SocketAddr>,
    /// The server certificate's SHA-256 fingerprint, as `astroboids serve` prints it (saved).
    #[arg(long)]
    pub fingerprint: Option<String>,
}

#[derive(Debug, Args)]
pub struct CredentialsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long)]
    pub user: String,
    /// The password (default: $ASTROBOIDS_PASSWORD, else asked for without echo).
    #[arg(long, env = "ASTROBOIDS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create an account (and log in).
    Register(CredentialsArgs),
    /// Log in; the session token is kept in the config directory.
    Login(CredentialsArgs),
    /// End the session.
    Logout,
    /// Upload a script (.ts compiled with the SDK first, or .wasm); NAME defaults to the
    /// file's stem.
    Upload {
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        sdk: SdkArgs,
    },
    /// Your scripts (latest version of each).
    Scripts,
    /// A new ship in your home sector (an admin may spawn one for another user).
    Spawn {
        #[arg(long = "for")]
        for_user: Option<String>,
    },
    /// Give a ship the latest version of one of your scripts.
    Assign {
        #[arg(long)]
        ship: u64,
        #[arg(long)]
        script: String,
    },
    /// Your ships: position, hull, energy, cargo, what flies them.
    Status {
        #[arg(long)]
        ship: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// A ship's recent script log lines and faults.
    Logs {
        #[arg(long)]
        ship: u64,
    },
    /// A manual command for a ship's next tick.
    Move {
        #[arg(long)]
        ship: u64,
        /// -1..1
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        thrust: f32,
        /// -1..1
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        turn: f32,
        #[arg(long)]
        mine: bool,
        #[arg(long)]
        stop: bool,
    },
    /// Watch a folder: compile .ts files, upload them and assign them when they change.
    Sync(SyncArgs),
    /// Finished recordings of the live world (tick ranges for `trace`).
    Replays,
    /// Download a per-ship trace of one of your ships (see `astroboids replay trace`).
    Trace {
        #[arg(long)]
        ship: u64,
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: u64,
        /// Where to write it (default: ship-ID-FROM-TO.trace.json).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Admin: destroy a ship.
    Despawn {
        #[arg(long)]
        ship: u64,
    },
    /// Admin: revoke a user's sessions and close their connections.
    Kick {
        #[arg(long)]
        user: String,
    },
    /// Admin: the ships a user may own (a number, or `default` for the server's).
    ShipLimit {
        #[arg(long)]
        user: String,
        ships: String,
    },
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The folder of scripts (*.ts, *.wasm; a script's name is its file's stem).
    pub dir: PathBuf,
    /// Assign a script on each upload: NAME=all (every ship of yours) or NAME=ID,ID,...
    /// (default: with a single script in the folder, it flies all your ships).
    #[arg(long = "assign", value_name = "NAME=SHIPS")]
    pub assign: Vec<String>,
    /// Sync once and exit (no watching).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub sdk: SdkArgs,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The server's data directory.
    #[arg(long, default_value = "astroboids-world")]
    pub data: PathBuf,
    /// A cluster's PostgreSQL database instead of a data directory: the account commands
    /// work there (gateways may be running).
    #[arg(long, env = "ASTROBOIDS_POSTGRES", value_name = "URL")]
    pub postgres: Option<String>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Every account with its role.
    Accounts,
    /// Create an account (password from $ASTROBOIDS_PASSWORD or asked for).
    CreateUser {
        user: String,
        #[arg(long)]
        admin: bool,
        #[arg(long, env = "ASTROBOIDS_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Make a user an admin or a player.
    SetRole {
        user: String,
        #[arg(value_parser = ["admin", "player"])]
        role: String,
    },
    /// Revoke every session of a user.
    Revoke { user: String },
    /// The ships a user may own: a number, or `default` for the server's.
    ShipLimit { user: String, ships: String },
    /// The server certificate's fingerprint (what clients pin).
    Fingerprint,
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

#[derive(Debug, Clone, Args)]
pub struct SdkArgs {
    /// The SDK directory (default: $ASTROBOIDS_SDK, else scripting/sdk of this checkout).
    #[arg(long, env = "ASTROBOIDS_SDK")]
    pub sdk: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The module, e.g. assets/scripts/miner.wasm, or WebAssembly text (.wat).
    pub file: PathBuf,
    /// Universe configuration whose script limits apply (default: the embedded one).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

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

/// A share between 0 and 1 (`--drop-datagrams`).
fn share(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is outside 0 to 1"))
    }
}
