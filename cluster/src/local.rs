//! A whole cluster in one process: a leader and N shards passing the protocol's messages by
//! value, in a fixed order. Same rules and messages as the networked cluster, none of the
//! I/O: what the tests compare a single-process world against, and the reference the
//! networked shell must agree with.

use astroboids_sim::SimOptions;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::WorldInput;

use astroboids_sim::checkpoint::{CheckpointError, WorldCheckpoint};

use crate::assignment::SectorAssignment;
use crate::checkpoint::{self, ShardCheckpoint};
use crate::leader::{Leader, LeaderError, TickOutcome};
use crate::messages::TickDone;
use crate::shard_node::{ShardError, ShardNode};

#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    #[error(transparent)]
    Leader(#[from] LeaderError),
    #[error(transparent)]
    Shard(#[from] ShardError),
    #[error("tick {0} ended without every shard's report")]
    Incomplete(u64),
}

/// A leader and its shards in one process.
pub struct LocalCluster {
    leader: Leader,
    shards: Vec<ShardNode>,
}

impl LocalCluster {
    /// A fresh world (tick 0) spread over `assignment`'s shards; `options` gives each shard's
    /// script workers.
    pub fn new(
        config: UniverseConfig,
        seed: u64,
        assignment: SectorAssignment,
        options: impl Fn() -> SimOptions,
    ) -> Self {
        let shards = (0..assignment.shards())
            .map(|id| ShardNode::new(id, assignment, config.clone(), seed, options()))
            .collect();
        Self {
            leader: Leader::new(assignment, 1, 0, 0),
            shards,
        }
    }

    /// A cluster of `assignment`'s shards restored from the whole world's checkpoint, led by a
    /// leader elected with `fence`.
    pub fn restore(
        config: &UniverseConfig,
        world: &WorldCheckpoint,
        assignment: SectorAssignment,
        fence: u64,
        options: impl Fn() -> SimOptions,
    ) -> Result<Self, CheckpointError> {
        Ok(Self {
            leader: Leader::new(assignment, fence, world.tick, world.ships.len() as u64),
            shards: restore_shards(config, world, assignment, options)?,
        })
    }

    /// Recovers from a lost shard (or moves sectors): every shard is restored from the
    /// whole world's checkpoint `world` under `assignment`, and the leader, re-elected with
    /// `fence`, re-runs the logged ticks after it. `world` must be the last complete
    /// checkpoint the leader was told of, or newer.
    pub fn recover(
        &mut self,
        config: &UniverseConfig,
        world: &WorldCheckpoint,
        assignment: SectorAssignment,
        fence: u64,
        options: impl Fn() -> SimOptions,
    ) -> Result<(), CheckpointError> {
        let shards = restore_shards(config, world, assignment, options)?;
        let epoch = self
            .leader
            .rewind(world.tick, assignment, world.ships.len() as u64, fence);
        self.shards = shards.into_iter().map(|s| s.with_epoch(epoch)).collect();
        Ok(())
    }

    /// Tells the leader every shard's piece of `tick` is stored.
    pub fn checkpoint_complete(&mut self, tick: u64) {
        self.leader.checkpoint_complete(tick);
    }

    /// Drops a shard, as a crash would (its piece of the world is gone).
    pub fn lose_shard(&mut self, shard: u32) {
        self.shards.retain(|s| s.id() != shard);
    }

    /// Every shard's piece, between ticks.
    pub fn capture(&mut self) -> Vec<ShardCheckpoint> {
        self.shards.iter_mut().map(checkpoint::capture).collect()
    }

    pub fn submit(&mut self, input: WorldInput) -> Result<(), LeaderError> {
        self.leader.submit(input)
    }

    pub fn shards(&self) -> &[ShardNode] {
        &self.shards
    }

    pub fn shards_mut(&mut self) -> &mut [ShardNode] {
        &mut self.shards
    }

    /// Runs one tick across all shards.
    pub fn step(&mut self, full_hash: bool) -> Result<TickOutcome, LocalClusterError> {
        let start = self.leader.start_next(full_hash)?;
        let tick = start.tick;
        let mut mail = Vec::new();
        // What each shard's exchanges would take on the wire (this shell passes them by value,
        // so it encodes only to count).
        let mut bytes_out = std::collections::BTreeMap::new();
        for shard in &mut self.shards {
            let outgoing = shard.start_tick(start.clone())?;
            let bytes: u64 = outgoing
                .iter()
                .map(|(_, e)| postcard::to_allocvec(e).map_or(0, |b| b.len() as u64))
                .sum();
            bytes_out.insert(shard.id(), bytes);
            mail.extend(outgoing);
        }
        let mut outcome = None;
        let mut report =
            |mut done: TickDone, leader: &mut Leader| -> Result<(), LocalClusterError> {
                done.figures.exchange_bytes_out = bytes_out.get(&done.shard).copied().unwrap_or(0);
                if let Some(o) = leader.on_done(done)? {
                    outcome = Some(o);
                }
                Ok(())
            };
        for shard in &mut self.shards {
            if let Some(done) = shard.finish_alone()? {
                report(done, &mut self.leader)?;
            }
        }
        for (to, exchange) in mail {
            let shard = self
                .shards
                .iter_mut()
                .find(|s| s.id() == to)
                .ok_or(LocalClusterError::Incomplete(tick))?;
            if let Some(done) = shard.receive(exchange)? {
                report(done, &mut self.leader)?;
            }
        }
        outcome.ok_or(LocalClusterError::Incomplete(tick))
    }
}

/// Every shard of `assignment`, restored from the whole world's checkpoint.
fn restore_shards(
    config: &UniverseConfig,
    world: &WorldCheckpoint,
    assignment: SectorAssignment,
    options: impl Fn() -> SimOptions,
) -> Result<Vec<ShardNode>, CheckpointError> {
    (0..assignment.shards())
        .map(|id| checkpoint::restore_shard(config, world, assignment, id, options()))
        .collect()
}
