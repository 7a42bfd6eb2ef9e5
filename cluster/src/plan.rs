//! What a networked cluster agrees on outside the tick: the world's definition, which
//! process runs which shard (the plan), and the last checkpoint every shard stored. The leader
//! writes these to the coordination store; shards and tools read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::WorldInput;

use crate::assignment::{SectorAssignment, ShardId};

/// The most ticks between checkpoints (a bound on the log a recovery re-runs).
pub const MAX_CHECKPOINT_EVERY: u64 = 100_000;

/// A world as created: fixed for its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldSpec {
    pub seed: u64,
    pub config: UniverseConfig,
    /// The rule and the number of shards the world is meant to run on (fewer run it while
    /// some are lost).
    pub assignment: SectorAssignment,
    /// Every shard stores its piece at ticks that are multiples of this: a multiple of the
    /// configuration's `persistence.checkpoint_every_ticks`, where the world canonicalizes its
    /// physics (capturing anywhere else would change the run).
    pub checkpoint_every: u64,
    /// The tick period in milliseconds; 0 runs ticks back to back (benchmarks, `cluster sim`).
    pub tick_ms: u64,
    /// The last tick to run, if the world is to stop (`cluster sim`).
    pub last_tick: Option<u64>,
    /// Inputs applied before the first tick, in order (scripts and fleets of a new world):
    /// the first leader puts them in tick 1's start, whenever the input log's first entries
    /// reach it.
    #[serde(default)]
    pub setup: Vec<WorldInput>,
}

/// A world specification that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("checkpoint_every must be 1 to {MAX_CHECKPOINT_EVERY} ticks, got {0}")]
    CheckpointEvery(u64),
    #[error(
        "checkpoint_every ({every}) must be a multiple of the configuration's \
         persistence.checkpoint_every_ticks ({world}): the world canonicalizes its physics at \
         those ticks, and a checkpoint taken anywhere else would change the run"
    )]
    OffCheckpointTick { every: u64, world: u64 },
    #[error(transparent)]
    Assignment(#[from] crate::assignment::AssignmentError),
}

impl WorldSpec {
    /// Checks the numbers (a spec read from the store is checked before use).
    pub fn validated(self) -> Result<Self, SpecError> {
        if !(1..=MAX_CHECKPOINT_EVERY).contains(&self.checkpoint_every) {
            return Err(SpecError::CheckpointEvery(self.checkpoint_every));
        }
        let world = self.config.persistence.checkpoint_every_ticks;
        if !self.checkpoint_every.is_multiple_of(world) {
            return Err(SpecError::OffCheckpointTick {
                every: self.checkpoint_every,
                world,
            });
        }
        self.assignment.validated()?;
        Ok(self)
    }

    /// Whether every shard stores its piece after `tick`: every `checkpoint_every` ticks and
    /// at the last tick, where the world stops (tick 0 is the world's start, which needs no
    /// checkpoint: the seed rebuilds it).
    pub fn is_checkpoint_tick(&self, tick: u64) -> bool {
        tick > 0 && (tick.is_multiple_of(self.checkpoint_every) || self.last_tick == Some(tick))
    }

    /// The number of shards the world is meant to run on.
    pub fn shards(&self) -> u32 {
        self.assignment.shards()
    }
}

/// What tells one registration of a member id from another: a process that registers
/// anew under an id gets a new one (the networked shell uses the etcd lease its key is bound
/// to, one per process).
pub type Registration = u64;

/// Which registered process runs which shard, from which state: changed only by the leader,
/// and each change is a new epoch (shards restore themselves for it; messages of other
/// epochs are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub epoch: u64,
    /// The election revision of the leader that made it.
    pub fence: u64,
    pub assignment: SectorAssignment,
    /// `members[shard]` is the registered process that runs `shard`.
    pub members: Vec<u32>,
    /// `registrations[shard]` is the registration `members[shard]` had when the plan was made
    /// (the networked shell's: the etcd lease the member's key is bound to). A process that
    /// registers anew under a member id is another process, which has none of the old one's
    /// state: the plan's shard is lost with the old one. Empty in plans made before
    /// registrations were recorded: members are then told apart by id only.
    #[serde(default)]
    pub registrations: Vec<Registration>,
    /// The checkpoint the shards restore from; `None` for the world's start (tick 0).
    pub from: Option<CheckpointRecord>,
    /// The bus position when the plan was made: shards' reports for it come after it.
    pub bus_seq: u64,
}

impl Plan {
    /// The shard `member` runs under this plan, if any.
    pub fn shard_of_member(&self, member: u32) -> Option<ShardId> {
        self.members
            .iter()
            .position(|m| *m == member)
            .map(|s| s as ShardId)
    }

    /// The shard the process registered as `member` with `registration` runs under this
    /// plan, if any: none when the plan gave `member`'s shard to an earlier registration of
    /// the id (a process since gone, whose state went with it).
    pub fn shard_of(&self, member: u32, registration: Registration) -> Option<ShardId> {
        let shard = self.shard_of_member(member)?;
        self.registrations
            .get(shard as usize)
            .is_none_or(|r| *r == registration)
            .then_some(shard)
    }

    /// The members whose shard is lost: not registered any more, or registered anew (another
    /// process under the same id). `live` maps each registered member to its registration.
    pub fn lost_members(&self, live: &BTreeMap<u32, Registration>) -> Vec<u32> {
        self.members
            .iter()
            .copied()
            .filter(|m| live.get(m).is_none_or(|r| self.shard_of(*m, *r).is_none()))
            .collect()
    }

    /// The tick the plan's world starts from.
    pub fn from_tick(&self) -> u64 {
        self.from.as_ref().map_or(0, |c| c.tick)
    }
}

/// A checkpoint every shard of a plan stored: the state a recovery restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// The epoch whose shards stored it (its pieces are named after it).
    pub epoch: u64,
    pub tick: u64,
    /// The assignment the pieces were cut by (one piece per shard).
    pub assignment: SectorAssignment,
    /// Ships alive at `tick`.
    pub ships: u64,
    /// The start-log position from which every start a re-run from here needs can be read.
    pub log_from_seq: u64,
}

impl CheckpointRecord {
    /// The blob names of its pieces, in shard order.
    pub fn piece_names(&self) -> Vec<String> {
        (0..self.assignment.shards())
            .map(|shard| piece_blob_name(self.epoch, self.tick, shard))
            .collect()
    }
}

/// Where shard `shard` of `epoch` stores its piece of the checkpoint of `tick`.
pub fn piece_blob_name(epoch: u64, tick: u64, shard: ShardId) -> String {
    format!("{PIECE_BLOB_PREFIX}{epoch}-{tick}-{shard}")
}

/// The prefix every checkpoint piece's blob name starts with.
pub const PIECE_BLOB_PREFIX: &str = "ckpt-";

/// Whether the blob `name` is a checkpoint piece no recovery can need once `record` is the
/// last complete checkpoint: a piece of an older tick, or of the same tick from an older
/// epoch (a checkpoint that never completed). Pieces of newer ticks may belong to the next
/// checkpoint and are kept.
pub fn is_stale_piece(name: &str, record: &CheckpointRecord) -> bool {
    let Some(rest) = name.strip_prefix(PIECE_BLOB_PREFIX) else {
        return false;
    };
    let mut numbers = rest.split('-').map(str::parse::<u64>);
    match (
        numbers.next(),
        numbers.next(),
        numbers.next(),
        numbers.next(),
    ) {
        (Some(Ok(epoch)), Some(Ok(tick)), Some(Ok(_shard)), None) => {
            tick < record.tick || (tick == record.tick && epoch < record.epoch)
        }
        _ => false,
    }
}

/// The coordination keys (under the world's config prefix) the cluster keeps.
pub mod keys {
    /// The [`super::WorldSpec`].
    pub const SPEC: &str = "spec";
    /// The current [`super::Plan`].
    pub const PLAN: &str = "plan";
    /// The last complete [`super::CheckpointRecord`].
    pub const CHECKPOINT: &str = "checkpoint";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(every: u64) -> WorldSpec {
        WorldSpec {
            seed: 1,
            config: UniverseConfig::default(),
            assignment: SectorAssignment::Stripes {
                shards: 2,
                width: 4,
            },
            checkpoint_every: every,
            tick_ms: 0,
            last_tick: None,
            setup: Vec::new(),
        }
    }

    #[test]
    fn checkpoint_ticks_are_multiples_after_the_start() {
        let mut s = spec(50);
        s.config.persistence.checkpoint_every_ticks = 25;
        assert!(!s.is_checkpoint_tick(0));
        assert!(!s.is_checkpoint_tick(49));
        assert!(s.is_checkpoint_tick(50));
        assert!(s.is_checkpoint_tick(100));
        let e = spec(0).validated().unwrap_err();
        assert_eq!(e, SpecError::CheckpointEvery(0));
        assert!(e.to_string().contains("checkpoint_every"), "{e}");
        let e = spec(150).validated().unwrap_err();
        assert!(
            e.to_string()
                .contains("persistence.checkpoint_every_ticks (100)"),
            "{e}"
        );
        assert!(spec(200).validated().is_ok());
    }

    #[test]
    fn pieces_older_than_the_last_complete_checkpoint_are_stale() {
        let record = CheckpointRecord {
            epoch: 3,
            tick: 200,
            assignment: SectorAssignment::Stripes {
                shards: 2,
                width: 4,
            },
            ships: 10,
            log_from_seq: 1,
        };
        for name in record.piece_names() {
            assert!(!is_stale_piece(&name, &record), "{name}");
        }
        assert!(is_stale_piece(&piece_blob_name(3, 100, 0), &record));
        assert!(is_stale_piece(&piece_blob_name(2, 200, 1), &record));
        assert!(!is_stale_piece(&piece_blob_name(3, 300, 0), &record));
        assert!(!is_stale_piece("script-00ff", &record));
        assert!(!is_stale_piece("ckpt-1-2", &record));
    }

    #[test]
    fn a_plan_names_each_members_shard() {
        let plan = Plan {
            epoch: 3,
            fence: 9,
            assignment: SectorAssignment::Stripes {
                shards: 2,
                width: 4,
            },
            members: vec![4, 1],
            registrations: vec![40, 10],
            from: None,
            bus_seq: 0,
        };
        assert_eq!(plan.shard_of_member(4), Some(0));
        assert_eq!(plan.shard_of_member(1), Some(1));
        assert_eq!(plan.shard_of_member(2), None);
        assert_eq!(plan.from_tick(), 0);
        // A process registered anew under a member's id runs nothing of this plan.
        assert_eq!(plan.shard_of(4, 40), Some(0));
        assert_eq!(plan.shard_of(1, 10), Some(1));
        assert_eq!(plan.shard_of(1, 11), None);
        assert_eq!(plan.shard_of(2, 10), None);
        let live = |l: &[(u32, u64)]| l.iter().copied().collect::<BTreeMap<_, _>>();
        assert!(
            plan.lost_members(&live(&[(4, 40), (1, 10), (7, 70)]))
                .is_empty()
        );
        assert_eq!(plan.lost_members(&live(&[(4, 40), (1, 11)])), vec![1]);
        assert_eq!(plan.lost_members(&live(&[(1, 10)])), vec![4]);
        // A plan that recorded no registrations tells members apart by id only.
        let by_id = Plan {
            registrations: Vec::new(),
            ..plan
        };
        assert_eq!(by_id.shard_of(1, 11), Some(1));
        assert!(by_id.lost_members(&live(&[(4, 41), (1, 11)])).is_empty());
    }
}
