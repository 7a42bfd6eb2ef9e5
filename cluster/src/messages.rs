//! What the leader and the shards say to each other each tick. Transport-neutral values: the
//! in-process cluster passes them by value, the NATS shell encodes them with postcard.

use serde::{Deserialize, Serialize};

use astroboids_engine::hash::HashShares;
use astroboids_sim::checkpoint::{SectorDeltaRecord, ShipRecord};
use astroboids_sim::inputs::WorldInput;
use astroboids_sim::shard::HaloShip;

use crate::assignment::ShardId;

/// The leader's go for one tick: every shard applies `inputs` (in order) and runs the tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickStart {
    /// The plan this tick runs under (see [`crate::plan::Plan`]): a shard obeys only starts of
    /// the plan it restored itself for. A re-run after a recovery runs the same ticks again
    /// under a newer epoch.
    pub epoch: u64,
    /// The tick to run (the world's tick after it).
    pub tick: u64,
    /// The leader's election revision: a shard ignores a start fenced lower than one it has
    /// already obeyed (a deposed leader that has not noticed yet).
    pub fence: u64,
    /// Ships alive in the whole world before `inputs` (what world-wide limits count).
    pub ships_alive: u64,
    /// World inputs for this tick, in the order the leader sequenced them.
    pub inputs: Vec<WorldInput>,
    /// The position in the input log up to which inputs are in this start or an earlier one:
    /// a leader taking over reads inputs after it, so none is applied twice or lost.
    pub inputs_through: u64,
    /// Report the heavy hash parts too (script memory): at checkpoint ticks and when asked.
    pub full_hash: bool,
    /// Each input's position in the input log (0: a new world's setup, logged nowhere), so
    /// that whoever submitted one finds its verdict in the tick's report.
    #[serde(default)]
    pub positions: Vec<u64>,
    /// `AddScript` inputs whose module travels in the blob store (see [`crate::scripts`]);
    /// empty in the start the leader and the shards' cores work with.
    #[serde(default)]
    pub scripts: Vec<ScriptRef>,
}

/// How one input fared: the ids of the ships it spawned (none for other inputs), or why it
/// was refused (the world is unchanged by it).
pub type InputVerdict = Result<Vec<u64>, String>;

/// A start's `AddScript` input whose module is in the blob store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptRef {
    /// The input's index in the start.
    pub input: u32,
    /// The module's XXH3-128.
    pub hash: u128,
}

/// What one shard sends another after a tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Exchange {
    pub epoch: u64,
    pub tick: u64,
    pub from: ShardId,
    /// Ships that ended the tick in the receiver's sectors, in id order.
    pub handoffs: Vec<ShipRecord>,
    /// Ships the receiver's ships may sense at the next tick, in id order.
    pub halo: Vec<HaloShip>,
    /// Sector deltas that changed this tick, of sectors next to the receiver's.
    pub deltas: Vec<SectorDeltaRecord>,
}

/// A shard's report of a finished tick (after its handoffs are in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickDone {
    pub epoch: u64,
    pub tick: u64,
    pub shard: ShardId,
    /// Ships this shard holds now.
    pub ships: u64,
    /// Its shares of the state hash (cheap parts; heavy ones too when asked).
    pub hash: HashShares,
    /// How each input of the tick fared here: `None` where this shard could not judge (a
    /// command for a ship it does not hold), else the verdict.
    pub verdicts: Vec<Option<InputVerdict>>,
    pub figures: ShardFigures,
}

/// What a tick cost one shard, for status pages and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ShardFigures {
    /// Applying inputs and running the tick.
    pub tick_us: u64,
    /// Gathering departures, halo and deltas and taking in the others'.
    pub exchange_us: u64,
    pub handoffs_out: u32,
    pub halo_out: u32,
    /// Encoded bytes of what this shard sent the others: filled in by the shell that encodes
    /// them (the core does not encode, so it does not count them twice).
    pub exchange_bytes_out: u64,
    /// Exchanges this shard sent (one per neighbour); the networked shell counts the bus
    /// messages they took instead (an exchange larger than a message travels in frames).
    pub exchange_messages_out: u32,
}

/// A shard has restored its piece for `epoch` and listens: the leader starts the epoch's first
/// tick once every shard of the plan said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardReady {
    pub epoch: u64,
    pub shard: ShardId,
    /// The registered process that runs it.
    pub member: u32,
    /// The tick its world stands at.
    pub tick: u64,
}

/// A shard stored its piece of the checkpoint of `tick` (blob
/// [`crate::plan::piece_blob_name`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceStored {
    pub epoch: u64,
    pub tick: u64,
    pub shard: ShardId,
    pub bytes: u64,
    /// Ships in the piece.
    pub ships: u64,
}

/// What shards report to the leader, on one subject in one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShardReport {
    Ready(ShardReady),
    Done(TickDone),
    Stored(PieceStored),
}

impl ShardReport {
    pub fn epoch(&self) -> u64 {
        match self {
            Self::Ready(r) => r.epoch,
            Self::Done(d) => d.epoch,
            Self::Stored(s) => s.epoch,
        }
    }
}

/// A finished tick as the leader publishes it, for status pages, tools and tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickReport {
    pub epoch: u64,
    pub tick: u64,
    /// The world's state hash (all parts at checkpoint ticks and when asked, else the cheap
    /// ones), as `astroboids sim` prints it.
    pub state_hash: u64,
    pub full_hash: bool,
    pub ships: u64,
    /// From the start's publication to the last shard's report: the tick as the cluster
    /// ran it, barrier included.
    pub tick_us: u64,
    /// (shard, ships it holds, what the tick cost it), in shard order.
    pub shards: Vec<(ShardId, u64, ShardFigures)>,
    /// Each of the tick's inputs' verdicts, in order.
    pub verdicts: Vec<InputVerdict>,
    /// Each input's position in the input log, in the same order (0: setup).
    #[serde(default)]
    pub positions: Vec<u64>,
}
