//! Arguments of the commands that run or operate a server: `serve` with its logging,
//! `admin` on its data directory, and `loadgen` against it.

use std::path::PathBuf;

use clap::{Args, Subcommand};

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
