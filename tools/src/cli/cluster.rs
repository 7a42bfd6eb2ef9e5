//! Command-line arguments of the cluster commands (`shard`, `leader`, `cluster ...`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Where a cluster's coordination and bus servers are, and which world.
#[derive(Debug, Args, Clone)]
pub struct ClusterEndpoints {
    /// The NATS server (JetStream enabled).
    #[arg(long, env = "ASTROBOIDS_NATS", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// The etcd endpoint.
    #[arg(long, env = "ASTROBOIDS_ETCD", default_value = "http://127.0.0.1:2379")]
    pub etcd: String,
    /// The world's name (1 to 64 of A-Z a-z 0-9 _ -): one cluster can hold several.
    #[arg(long, env = "ASTROBOIDS_WORLD", default_value = "main")]
    pub world: String,
    /// Seconds without a heartbeat before this process counts as gone (its shards are
    /// reassigned, its leadership passes on).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i64).range(1..=60))]
    pub lease_ttl: i64,
}

#[derive(Debug, Args)]
pub struct ShardArgs {
    #[command(flatten)]
    pub endpoints: ClusterEndpoints,
    /// This process's id among the world's shard processes (unique while it lives).
    #[arg(long, env = "ASTROBOIDS_SHARD_MEMBER")]
    pub member: u32,
    /// Worker threads for the simulation and scripts [default: every core].
    #[arg(long)]
    pub threads: Option<u32>,
    /// Serve Prometheus metrics at http://ADDR/metrics (loopback only unless
    /// --metrics-public, e.g. 127.0.0.1:9101; port 0 picks one, logged) [default: not
    /// served].
    #[arg(long, env = "ASTROBOIDS_METRICS", value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Allow a --metrics address that is not loopback (e.g. 0.0.0.0:9101 in a container
    /// that Prometheus scrapes): whoever reaches it reads the figures.
    #[arg(long, env = "ASTROBOIDS_METRICS_PUBLIC")]
    pub metrics_public: bool,
    #[command(flatten)]
    pub log: super::LogArgs,
}

#[derive(Debug, Args)]
pub struct LeaderArgs {
    #[command(flatten)]
    pub endpoints: ClusterEndpoints,
    /// Its name in the election [default: leader-PID].
    #[arg(long, env = "ASTROBOIDS_LEADER_NAME")]
    pub name: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (loopback only unless
    /// --metrics-public, e.g. 127.0.0.1:9102; port 0 picks one, logged) [default: not
    /// served].
    #[arg(long, env = "ASTROBOIDS_METRICS", value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Allow a --metrics address that is not loopback (e.g. 0.0.0.0:9102 in a container
    /// that Prometheus scrapes): whoever reaches it reads the figures.
    #[arg(long, env = "ASTROBOIDS_METRICS_PUBLIC")]
    pub metrics_public: bool,
    #[command(flatten)]
    pub log: super::LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start a local cluster: nats-server and etcd on loopback (unless --nats/--etcd are
    /// given), a leader and a standby, and N shard processes; Ctrl-C stops all of it.
    Up(ClusterUpArgs),
    /// Make a world: write its spec (seed, configuration, shards, assignment, checkpoint
    /// interval, tick period) to etcd and exit. A world that has one keeps it (exit 0 all the
    /// same): a deployment's one-off step, before its shards and leaders start.
    Create(ClusterCreateArgs),
    /// Run a headless world on a fresh local cluster and print the same summary as
    /// `astroboids sim`, plus per-shard figures.
    Sim(ClusterSimArgs),
    /// Show a running cluster: leader, plan, shards, last checkpoint, last tick and timings.
    Status(ClusterStatusArgs),
}

/// What a new world is made of (ignored when the world already exists).
#[derive(Debug, Args, Clone)]
pub struct WorldArgs {
    /// Universe seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A universe configuration file (TOML) [default: the embedded one].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// How sectors are spread over the shards: `stripes:WIDTH` or `blocks:SIDE`.
    #[arg(long, default_value = "stripes:4")]
    pub assignment: String,
    /// Ticks between checkpoints (what a lost shard's recovery re-runs at most)
    /// [default: the configuration's persistence.checkpoint_every_ticks].
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ClusterUpArgs {
    /// Shard processes to start.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub shards: u32,
    /// Leader processes to start (one leads, the others stand by).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub leaders: u32,
    /// Where the servers keep their data and the processes their logs.
    #[arg(long, default_value = "astroboids-cluster")]
    pub data: PathBuf,
    /// Use this NATS server instead of starting one.
    #[arg(long, env = "ASTROBOIDS_NATS")]
    pub nats: Option<String>,
    /// Use this etcd instead of starting one.
    #[arg(long, env = "ASTROBOIDS_ETCD")]
    pub etcd: Option<String>,
    /// Ports for the servers started here.
    #[arg(long, default_value_t = 4222)]
    pub nats_port: u16,
    #[arg(long, default_value_t = 2379)]
    pub etcd_port: u16,
    #[arg(long, env = "ASTROBOIDS_WORLD", default_value = "main")]
    pub world: String,
    #[command(flatten)]
    pub new_world: WorldArgs,
    /// Milliseconds per tick [default: the configuration's tick rate].
    #[arg(long)]
    pub tick_ms: Option<u64>,
    /// Gateways to start (players' QUIC front doors; they share one identity).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=16))]
    pub gateways: u32,
    /// The first gateway's UDP port; the others take the next ones (0: free ports).
    #[arg(long, default_value_t = 7777)]
    pub gateway_port: u16,
    /// Use this PostgreSQL database instead of starting one.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// The port of the PostgreSQL started here.
    #[arg(long, default_value_t = 5432)]
    pub postgres_port: u16,
    /// The gateways' per-address limits.
    #[command(flatten)]
    pub gateway_limits: GatewayLimits,
    #[command(flatten)]
    pub log: super::LogArgs,
}

/// `cluster create`: the world's settings as [`WorldArgs`] and `--shards`/`--tick-ms` of
/// `cluster up`, each also from an `ASTROBOIDS_*` variable (a container's environment).
#[derive(Debug, Args)]
pub struct ClusterCreateArgs {
    /// The etcd endpoint.
    #[arg(long, env = "ASTROBOIDS_ETCD", default_value = "http://127.0.0.1:2379")]
    pub etcd: String,
    /// The world's name (1 to 64 of A-Z a-z 0-9 _ -): one cluster can hold several.
    #[arg(long, env = "ASTROBOIDS_WORLD", default_value = "main")]
    pub world: String,
    /// Shards the world is spread over (a shard process holds one or more; more processes
    /// stand by).
    #[arg(long, env = "ASTROBOIDS_SHARDS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub shards: u32,
    /// Universe seed.
    #[arg(long, env = "ASTROBOIDS_SEED", default_value_t = 1)]
    pub seed: u64,
    /// A universe configuration file (TOML) [default: the embedded one].
    #[arg(long, env = "ASTROBOIDS_CONFIG")]
    pub config: Option<PathBuf>,
    /// How sectors are spread over the shards: `stripes:WIDTH` or `blocks:SIDE`.
    #[arg(long, env = "ASTROBOIDS_ASSIGNMENT", default_value = "stripes:4")]
    pub assignment: String,
    /// Ticks between checkpoints (what a lost shard's recovery re-runs at most)
    /// [default: the configuration's persistence.checkpoint_every_ticks].
    #[arg(long, env = "ASTROBOIDS_CHECKPOINT_EVERY")]
    pub checkpoint_every: Option<u64>,
    /// Milliseconds per tick [default: the configuration's tick rate].
    #[arg(long, env = "ASTROBOIDS_TICK_MS")]
    pub tick_ms: Option<u64>,
}

impl ClusterCreateArgs {
    /// Its world settings, as the other cluster commands take them.
    pub fn world_args(&self) -> WorldArgs {
        WorldArgs {
            seed: self.seed,
            config: self.config.clone(),
            assignment: self.assignment.clone(),
            checkpoint_every: self.checkpoint_every,
        }
    }
}

#[derive(Debug, Args)]
pub struct ClusterSimArgs {
    /// Shard processes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub shards: u32,
    /// Ships spawned before the first tick.
    #[arg(long, default_value_t = 1_000)]
    pub ships: u32,
    /// Ticks to run.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub ticks: u64,
    /// A script every ship runs (.wasm, .wat, or AssemblyScript .ts).
    #[arg(long)]
    pub script: Option<PathBuf>,
    #[command(flatten)]
    pub new_world: WorldArgs,
    #[command(flatten)]
    pub sdk: super::SdkArgs,
    /// Worker threads per shard process [default: every core / shards, at least 1].
    #[arg(long)]
    pub threads: Option<u32>,
    /// Keep the servers' data and the processes' logs here (default: a temporary directory,
    /// removed afterwards).
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ClusterStatusArgs {
    #[command(flatten)]
    pub endpoints: ClusterEndpoints,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub endpoints: ClusterEndpoints,
    /// The PostgreSQL database that holds accounts, sessions, scripts and ship ownership
    /// (its schema is made or migrated on start).
    #[arg(long, env = "ASTROBOIDS_POSTGRES", value_name = "URL")]
    pub postgres: String,
    /// Where players connect (QUIC over UDP).
    #[arg(long, env = "ASTROBOIDS_LISTEN", default_value = "0.0.0.0:7777")]
    pub listen: std::net::SocketAddr,
    /// The directory of the TLS identity every gateway of the cluster shares (one
    /// fingerprint for players to pin); made there on first start when missing.
    #[arg(long, env = "ASTROBOIDS_IDENTITY", value_name = "DIR")]
    pub identity: PathBuf,
    /// Its name in logs and in the store [default: gateway-PID].
    #[arg(long, env = "ASTROBOIDS_GATEWAY_NAME")]
    pub name: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (loopback only unless
    /// --metrics-public; port 0 picks one, logged) [default: not served].
    #[arg(long, env = "ASTROBOIDS_METRICS", value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Allow a metrics address off loopback (for a Prometheus in another container).
    #[arg(long, env = "ASTROBOIDS_METRICS_PUBLIC")]
    pub metrics_public: bool,
    /// Player connections at most.
    #[arg(long, default_value_t = 2_000)]
    pub max_connections: usize,
    /// Ships one player may own (an admin may set another limit per account).
    #[arg(long, default_value_t = 50)]
    pub max_ships: u32,
    #[command(flatten)]
    pub limits: GatewayLimits,
    #[command(flatten)]
    pub log: super::LogArgs,
}

/// Per-address limits of a gateway (a load test from one address raises them).
#[derive(Debug, Args, Clone)]
pub struct GatewayLimits {
    /// Connections one address may hold.
    #[arg(long, default_value_t = 64)]
    pub max_connections_per_ip: usize,
    /// Requests per second one address may make (bursts of twice that).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub requests_per_ip_per_s: u32,
}
