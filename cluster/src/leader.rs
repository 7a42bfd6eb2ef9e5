//! The leader's side of the tick protocol, without I/O: it sequences world inputs into ticks,
//! starts each tick, and folds the shards' reports into the world's hash.

use std::collections::{BTreeMap, VecDeque};

use astroboids_engine::StateHash;
use astroboids_engine::hash::{HashShares, MergeError};
use astroboids_sim::inputs::WorldInput;

use crate::assignment::{SectorAssignment, ShardId};
use crate::messages::{ShardFigures, TickDone, TickStart};

/// The most inputs one tick carries; more wait for the next tick (a bound on the start
/// message and on the work a tick takes before it runs).
pub const MAX_INPUTS_PER_TICK: usize = 1_024;
/// The most inputs waiting for a tick; a submission past it is refused.
pub const MAX_QUEUED_INPUTS: usize = 16_384;

/// A finished tick, as the whole cluster ran it.
#[derive(Debug, Clone, PartialEq)]
pub struct TickOutcome {
    pub tick: u64,
    /// The whole world's hash (all parts when the start asked for them, else the cheap ones).
    pub hash: StateHash,
    pub ships: u64,
    /// Each input's verdict, in order: from the shard that could judge it.
    pub verdicts: Vec<Result<(), String>>,
    /// (shard, ships it holds, what the tick cost it), in shard order.
    pub shards: Vec<(ShardId, u64, ShardFigures)>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LeaderError {
    #[error("tick {got} reported while tick {expected} runs")]
    WrongTick { expected: u64, got: u64 },
    #[error("a report from shard {0}, which this cluster does not have")]
    UnknownShard(ShardId),
    #[error("no tick is running")]
    Idle,
    #[error("a tick is already running (tick {0})")]
    Busy(u64),
    #[error("the input queue is full ({MAX_QUEUED_INPUTS} inputs)")]
    QueueFull,
    #[error("the shards' hash shares do not fit together: {0}")]
    Shares(#[from] MergeError),
}

/// The leader of one world.
#[derive(Debug)]
pub struct Leader {
    assignment: SectorAssignment,
    fence: u64,
    /// The last tick every shard finished.
    tick: u64,
    ships_alive: u64,
    queued: Vec<WorldInput>,
    running: Option<Running>,
    /// The starts of every tick since the last complete checkpoint: what a rewind re-runs.
    log: Vec<TickStart>,
    /// Logged starts to run again after a rewind, in tick order, before any new input.
    replay: VecDeque<TickStart>,
}

#[derive(Debug)]
struct Running {
    start: TickStart,
    done: BTreeMap<ShardId, TickDone>,
}

impl Leader {
    /// A leader elected with `fence` (its election revision) over a world whose last finished
    /// tick is `tick`, holding `ships_alive` ships.
    pub fn new(assignment: SectorAssignment, fence: u64, tick: u64, ships_alive: u64) -> Self {
        Self {
            assignment,
            fence,
            tick,
            ships_alive,
            queued: Vec::new(),
            running: None,
            log: Vec::new(),
            replay: VecDeque::new(),
        }
    }

    pub fn tick(&self) -> u64 {
        self.tick
    }

    pub fn assignment(&self) -> SectorAssignment {
        self.assignment
    }

    /// Queues an input for the next tick that has room.
    pub fn submit(&mut self, input: WorldInput) -> Result<(), LeaderError> {
        if self.queued.len() >= MAX_QUEUED_INPUTS {
            return Err(LeaderError::QueueFull);
        }
        self.queued.push(input);
        Ok(())
    }

    /// Starts the next tick: after a rewind, the logged tick with its logged inputs; else
    /// with the queued inputs (at most [`MAX_INPUTS_PER_TICK`]).
    pub fn start_next(&mut self, full_hash: bool) -> Result<TickStart, LeaderError> {
        if let Some(running) = &self.running {
            return Err(LeaderError::Busy(running.start.tick));
        }
        let start = match self.replay.pop_front() {
            Some(logged) => TickStart {
                fence: self.fence,
                ships_alive: self.ships_alive,
                full_hash,
                ..logged
            },
            None => {
                let take = self.queued.len().min(MAX_INPUTS_PER_TICK);
                TickStart {
                    tick: self.tick + 1,
                    fence: self.fence,
                    ships_alive: self.ships_alive,
                    inputs: self.queued.drain(..take).collect(),
                    full_hash,
                }
            }
        };
        self.running = Some(Running {
            start: start.clone(),
            done: BTreeMap::new(),
        });
        Ok(start)
    }

    /// Every shard has stored its piece of tick `tick`: the log before it is not needed to
    /// recover any more.
    pub fn checkpoint_complete(&mut self, tick: u64) {
        self.log.retain(|start| start.tick > tick);
    }

    /// Goes back to the checkpoint of `tick` (after a shard was lost, or to move sectors):
    /// the cluster's shards were restored from it under `assignment`, holding `ships_alive`
    /// ships, and this leader, elected with `fence`, re-runs every logged tick after it with
    /// the same inputs before taking new ones.
    ///
    /// # Panics
    /// When `tick` is older than the last [`Self::checkpoint_complete`] (its log is gone) or
    /// newer than the last finished tick.
    pub fn rewind(
        &mut self,
        tick: u64,
        assignment: SectorAssignment,
        ships_alive: u64,
        fence: u64,
    ) {
        assert!(tick <= self.tick, "a rewind goes back, not forward");
        let first_logged = self.log.first().map_or(self.tick + 1, |l| l.tick);
        assert!(
            tick + 1 >= first_logged,
            "tick {tick} is before the logged ticks (from {first_logged})"
        );
        self.replay = self
            .log
            .iter()
            .filter(|start| start.tick > tick)
            .cloned()
            .collect();
        self.running = None;
        self.tick = tick;
        self.assignment = assignment;
        self.ships_alive = ships_alive;
        self.fence = fence;
    }

    /// Takes a shard's report; when the last one is in, the tick's outcome.
    pub fn on_done(&mut self, done: TickDone) -> Result<Option<TickOutcome>, LeaderError> {
        let running = self.running.as_mut().ok_or(LeaderError::Idle)?;
        if done.tick != running.start.tick {
            return Err(LeaderError::WrongTick {
                expected: running.start.tick,
                got: done.tick,
            });
        }
        if done.shard >= self.assignment.shards() {
            return Err(LeaderError::UnknownShard(done.shard));
        }
        // A repeated report (redelivery) changes nothing: the first copy stands.
        running.done.entry(done.shard).or_insert(done);
        if running.done.len() < self.assignment.shards() as usize {
            return Ok(None);
        }
        let running = self.running.take().expect("checked above");
        let hash = HashShares::merge(running.done.values().map(|d| &d.hash))?.finish();
        let ships = running.done.values().map(|d| d.ships).sum();
        let verdicts = (0..running.start.inputs.len())
            .map(|i| {
                running
                    .done
                    .values()
                    .find_map(|d| d.verdicts.get(i).cloned().flatten())
                    .unwrap_or_else(|| Err(unknown_ship(&running.start.inputs[i])))
            })
            .collect();
        self.tick = running.start.tick;
        self.ships_alive = ships;
        if self.log.last().is_none_or(|l| l.tick < self.tick) {
            self.log.push(running.start.clone());
        }
        Ok(Some(TickOutcome {
            tick: self.tick,
            hash,
            ships,
            verdicts,
            shards: running
                .done
                .values()
                .map(|d| (d.shard, d.ships, d.figures))
                .collect(),
        }))
    }
}

/// The verdict for an input no shard could judge: its ship is nowhere.
fn unknown_ship(input: &WorldInput) -> String {
    let ship = match input {
        WorldInput::Command { ship, .. }
        | WorldInput::AssignScript { ship, .. }
        | WorldInput::SetOwner { ship, .. }
        | WorldInput::Scrap { ship }
        | WorldInput::SuspendScript { ship, .. } => *ship,
        _ => return format!("no shard judged the {} input", input.kind()),
    };
    astroboids_sim::inputs::WorldInputError::UnknownShip(astroboids_engine::NetId(ship)).to_string()
}
