//! The shard and leader processes of a networked cluster: shells around the I/O-free cores
//! (`astroboids_cluster::{ShardNode, Conductor}`) that carry their messages over the bus and
//! their records through etcd, and decide nothing themselves.
//!
//! Subjects (after `astroboids.W.`), each message published with an id so that a repeat (a
//! retry, a redelivery, a new leader re-publishing) is stored once:
//!
//! | subject | from -> to | message | id |
//! | --- | --- | --- | --- |
//! | `start` | leader -> shards | `TickStart` | `start-<epoch>-<tick>` |
//! | `xchg.<epoch>.<to>` | shard -> shard | `ExchangeFrame` (an `Exchange`, cut to fit) | `x-<epoch>-<tick>-<from>-<to>-<frame>` |
//! | `report` | shards -> leader | `ShardReport` (ready, done, stored) | `ready-<epoch>-<shard>`, `done-<epoch>-<tick>-<shard>`, `stored-<epoch>-<tick>-<shard>` |
//! | `outcome` | leader -> anyone | `TickReport` | `outcome-<epoch>-<tick>` |
//! | `input` | clients -> leader | `WorldInput` | the client's own |
//!
//! Live subjects (`astroboids-live.W.<suffix>`, outside the stream: nothing stored, a
//! subscriber that is away misses them; see [`crate::bus::LiveSubscription`]):
//!
//! | subject | from -> to | message |
//! | --- | --- | --- |
//! | `views.<shard>` | shard -> gateways | `live::ShardViews` (every player's piece of a tick, in parts) |
//! | `query.<shard>` | gateway -> shard, request-reply | `live::ShipQuery`, answered with `live::ShipFacts` |
//!
//! The `start` subject is the world's sequenced input log: every start carries the inputs of
//! its tick, in order, and the input-log position it has read through, so a new leader knows
//! where to go on. Checkpoint pieces are blobs named by `astroboids_cluster::plan`; script
//! modules are blobs named by their hash (`astroboids_cluster::scripts`), put by the leader
//! before the start that adds them and fetched by each shard that lacks them.
//!
//! Both processes log what happens to them through `tracing` (registration, plans, restores,
//! leadership, takeovers, checkpoints, stopping; every tick at debug level) and count it
//! through `metrics` ([`metrics`] names and describes every figure).

mod forward;
pub mod leader;
pub mod metrics;
pub mod shard;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::NetError;

pub use leader::{LeaderProcess, run_leader_process};
pub use shard::{ShardProcess, run_shard_process};

/// The subject every shard reports on.
pub const REPORT_SUBJECT: &str = "report";
/// The subject the leader publishes tick starts on (the input log).
pub const START_SUBJECT: &str = "start";
/// The subject the leader publishes finished ticks on.
pub const OUTCOME_SUBJECT: &str = "outcome";
/// The subject world inputs are submitted on.
pub const INPUT_SUBJECT: &str = "input";

/// The live subject shard `shard` publishes players' view pieces on.
pub fn views_subject(shard: u32) -> String {
    format!("views.{shard}")
}

/// Every shard's view pieces (what a gateway subscribes to).
pub const ALL_VIEWS_SUBJECT: &str = "views.*";

/// The live subject shard `shard` answers ship queries on.
pub fn query_subject(shard: u32) -> String {
    format!("query.{shard}")
}

/// The subject shard `to` of `epoch` receives exchanges on.
pub fn exchange_subject(epoch: u64, to: u32) -> String {
    format!("xchg.{epoch}.{to}")
}

/// The registration (`astroboids_cluster::plan::Registration`) of a shard process whose key
/// is bound to `lease`: one lease per process, so a process registered anew under a member id
/// has another.
pub(crate) fn registration(lease: i64) -> astroboids_cluster::plan::Registration {
    lease.cast_unsigned()
}

/// Why a process stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("a {what} message on the bus does not decode: {error}")]
    Decode { what: &'static str, error: String },
    #[error(
        "the world has no spec at config key {key:?}: create it first (`astroboids cluster up` does)"
    )]
    NoSpec { key: &'static str },
    #[error("the world's spec is invalid: {0}")]
    Spec(#[from] astroboids_cluster::plan::SpecError),
    #[error(transparent)]
    Shard(#[from] astroboids_cluster::shard_node::ShardError),
    #[error(transparent)]
    Leader(#[from] astroboids_cluster::leader::LeaderError),
    #[error(transparent)]
    Restore(#[from] astroboids_cluster::checkpoint::PlanRestoreError),
    #[error(transparent)]
    Frames(#[from] astroboids_cluster::frames::FrameError),
    #[error(transparent)]
    Scripts(#[from] astroboids_cluster::scripts::ScriptRefError),
    #[error(transparent)]
    Piece(#[from] astroboids_cluster::checkpoint::PieceError),
    #[error("checkpoint piece {name} is missing from the blob store")]
    MissingPiece { name: String },
    #[error("lost leadership (fence {fence}): another leader was elected")]
    Deposed { fence: u64 },
    #[error("the {what} stream ended")]
    Ended { what: &'static str },
}

/// The world's spec from the coordination store, validated (shards and the leader start from it).
pub(crate) async fn world_spec(
    coordination: &crate::coordination::Coordination,
) -> Result<astroboids_cluster::plan::WorldSpec, ProcessError> {
    let key = astroboids_cluster::plan::keys::SPEC;
    Ok(coordination
        .get_json::<astroboids_cluster::plan::WorldSpec>(key)
        .await?
        .ok_or(ProcessError::NoSpec { key })?
        .value
        .validated()?)
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("protocol messages are plain data")
}

pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, ProcessError> {
    postcard::from_bytes(bytes).map_err(|e| ProcessError::Decode {
        what,
        error: e.to_string(),
    })
}
