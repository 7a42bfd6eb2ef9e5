//! Command-line arguments.

use clap::{Parser, Subcommand};

pub mod cluster;
mod player;
mod script;
mod sectors;
mod server;
mod sim;

pub use player::*;
pub use script::*;
pub use sectors::*;
pub use server::*;
pub use sim::*;

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
