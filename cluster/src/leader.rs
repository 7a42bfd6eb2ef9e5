//! The leader's side of the tick protocol, without I/O: it sequences world inputs into ticks,
//! starts each tick, and folds the shards' reports into the world's hash.

use std::collections::{BTreeMap, VecDeque};

use astroboids_engine::StateHash;
use astroboids_engine::hash::{HashShares, MergeError};
use astroboids_sim::inputs::WorldInput;

use crate::assignment::{SectorAssignment, ShardId};
use crate::messages::{InputVerdict, ShardFigures, TickDone, TickStart};

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
    pub verdicts: Vec<InputVerdict>,
    /// Each input's position in the input log, in the same order.
    pub positions: Vec<u64>,
    /// (shard, ships it holds, what the tick cost it), in shard order.
    pub shards: Vec<(ShardId, u64, ShardFigures)>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LeaderError {
    #[error("tick {got} reported while tick {expected} runs")]
    WrongTick { expected: u64, got: u64 },
    #[error("a report from shard {0}, which this cluster does not have")]
    UnknownShard(ShardId),
    #[error("a report of epoch {got} while epoch {expected} runs")]
    WrongEpoch { expected: u64, got: u64 },
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
    /// The plan the shards run under; a rewind starts a new one.
    epoch: u64,
    /// The last tick every shard finished.
    tick: u64,
    ships_alive: u64,
    /// Inputs waiting for a tick, with their positions in the input log.
    queued: VecDeque<(u64, WorldInput)>,
    /// The position of the last input put in a start (or queued).
    inputs_through: u64,
    last_queued: u64,
    running: Option<Running>,
    /// The starts of every tick since the last complete checkpoint: what a rewind re-runs.
    log: Vec<Logged>,
    /// Logged starts to run again after a rewind, in tick order, before any new input.
    replay: VecDeque<Logged>,
}

/// A start and where the shell published it (its position in the start log; 0 when the
/// shell does not publish, as in the in-process cluster).
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub start: TickStart,
    pub seq: u64,
}

#[derive(Debug)]
struct Running {
    start: TickStart,
    seq: u64,
    done: BTreeMap<ShardId, TickDone>,
}

/// What a newly elected leader learns from the start log to carry on where the last one
/// stopped, without skipping or repeating a tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Takeover {
    pub assignment: SectorAssignment,
    /// The new leader's election revision.
    pub fence: u64,
    /// The current plan's epoch.
    pub epoch: u64,
    /// The tick the plan started from and the ships alive then.
    pub from_tick: u64,
    pub from_ships: u64,
    /// One start per tick after `from_tick` (the newest epoch's), in tick order, with where
    /// each was published.
    pub log: Vec<Logged>,
    /// The last tick started under `epoch`, if any: running, or finished without the next
    /// one started.
    pub last_started: Option<u64>,
    /// The last input position any start carried.
    pub inputs_through: u64,
}

impl Leader {
    /// A leader elected with `fence` (its election revision) over a world whose last finished
    /// tick is `tick`, holding `ships_alive` ships.
    pub fn new(assignment: SectorAssignment, fence: u64, tick: u64, ships_alive: u64) -> Self {
        Self {
            assignment,
            fence,
            epoch: 1,
            tick,
            ships_alive,
            queued: VecDeque::new(),
            inputs_through: 0,
            last_queued: 0,
            running: None,
            log: Vec::new(),
            replay: VecDeque::new(),
        }
    }

    /// A leader carrying on a world another leader ran: the last tick started under the
    /// current epoch is running again (its shards' reports finish it), and the logged ticks
    /// after it (a re-run the last leader had not finished) run next.
    pub fn take_over(t: Takeover) -> Self {
        let mut log: Vec<Logged> = t.log;
        log.sort_by_key(|l| l.start.tick);
        let running_tick = t.last_started;
        let tick = running_tick.map_or(t.from_tick, |r| r - 1);
        let running = running_tick.and_then(|r| {
            log.iter().find(|l| l.start.tick == r).map(|l| Running {
                start: l.start.clone(),
                seq: l.seq,
                done: BTreeMap::new(),
            })
        });
        let ships_alive = running
            .as_ref()
            .map_or(t.from_ships, |r| r.start.ships_alive);
        let replay = log
            .iter()
            .filter(|l| l.start.tick > running_tick.unwrap_or(t.from_tick))
            .cloned()
            .collect();
        log.retain(|l| l.start.tick <= tick);
        Self {
            assignment: t.assignment,
            fence: t.fence,
            epoch: t.epoch,
            tick,
            ships_alive,
            queued: VecDeque::new(),
            inputs_through: t.inputs_through,
            last_queued: t.inputs_through,
            running,
            log,
            replay,
        }
    }

    pub fn tick(&self) -> u64 {
        self.tick
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn fence(&self) -> u64 {
        self.fence
    }

    pub fn ships_alive(&self) -> u64 {
        self.ships_alive
    }

    /// The tick running now, if one is.
    /// Whether the next start re-runs a logged tick (after a rewind) rather than a new one.
    pub fn replaying(&self) -> bool {
        !self.replay.is_empty()
    }

    pub fn running(&self) -> Option<u64> {
        self.running.as_ref().map(|r| r.start.tick)
    }

    /// The last input position taken (in a start or the queue): the input log is read on
    /// from just after it.
    pub fn last_input_taken(&self) -> u64 {
        self.last_queued
    }

    /// The earliest start-log position a re-run from the last complete checkpoint needs
    /// (`None` when nothing is logged).
    pub fn log_floor(&self) -> Option<u64> {
        self.log
            .iter()
            .chain(&self.replay)
            .map(|l| l.seq)
            .chain(self.running.as_ref().map(|r| r.seq))
            .filter(|seq| *seq > 0)
            .min()
    }

    /// The shell published the running start at `seq` of the start log.
    pub fn start_published(&mut self, seq: u64) {
        if let Some(running) = &mut self.running {
            running.seq = seq;
        }
    }

    pub fn assignment(&self) -> SectorAssignment {
        self.assignment
    }

    /// Whether an input submitted now would be queued (the queue has room).
    pub fn has_room(&self) -> bool {
        self.queued.len() < MAX_QUEUED_INPUTS
    }

    /// Queues inputs that come from no input log (a new world's setup): they go into the
    /// next start, ahead of anything submitted later.
    pub fn queue_setup(&mut self, inputs: impl IntoIterator<Item = WorldInput>) {
        self.queued
            .extend(inputs.into_iter().map(|input| (0, input)));
    }

    /// Queues an input for the next tick that has room.
    pub fn submit(&mut self, input: WorldInput) -> Result<(), LeaderError> {
        let position = self.last_queued + 1;
        self.submit_at(position, input).map(|_| ())
    }

    /// Queues the input at `position` of the input log. An input at or before a position
    /// already taken is a repeat (a redelivery, or one a previous leader sequenced): it is
    /// dropped, and `Ok(false)` says so.
    pub fn submit_at(&mut self, position: u64, input: WorldInput) -> Result<bool, LeaderError> {
        if position <= self.last_queued {
            return Ok(false);
        }
        if self.queued.len() >= MAX_QUEUED_INPUTS {
            return Err(LeaderError::QueueFull);
        }
        self.queued.push_back((position, input));
        self.last_queued = position;
        Ok(true)
    }

    /// Starts the next tick: after a rewind, the logged tick with its logged inputs; else
    /// with the queued inputs (at most [`MAX_INPUTS_PER_TICK`]).
    pub fn start_next(&mut self, full_hash: bool) -> Result<TickStart, LeaderError> {
        if let Some(running) = &self.running {
            return Err(LeaderError::Busy(running.start.tick));
        }
        let (start, seq) = match self.replay.pop_front() {
            Some(logged) => (
                TickStart {
                    epoch: self.epoch,
                    fence: self.fence,
                    ships_alive: self.ships_alive,
                    full_hash,
                    ..logged.start
                },
                logged.seq,
            ),
            None => {
                let take = self.queued.len().min(MAX_INPUTS_PER_TICK);
                let taken: Vec<(u64, WorldInput)> = self.queued.drain(..take).collect();
                if let Some(position) = taken.iter().map(|(p, _)| *p).max() {
                    self.inputs_through = self.inputs_through.max(position);
                }
                let start = TickStart {
                    epoch: self.epoch,
                    tick: self.tick + 1,
                    fence: self.fence,
                    ships_alive: self.ships_alive,
                    positions: taken.iter().map(|(p, _)| *p).collect(),
                    inputs: taken.into_iter().map(|(_, input)| input).collect(),
                    inputs_through: self.inputs_through,
                    full_hash,
                    scripts: Vec::new(),
                };
                (start, 0)
            }
        };
        self.running = Some(Running {
            start: start.clone(),
            seq,
            done: BTreeMap::new(),
        });
        Ok(start)
    }

    /// Every shard has stored its piece of tick `tick`: the log before it is not needed to
    /// recover any more.
    pub fn checkpoint_complete(&mut self, tick: u64) {
        self.log.retain(|l| l.start.tick > tick);
    }

    /// Goes back to the checkpoint of `tick` (after a shard was lost, or to move sectors)
    /// under a new epoch, which it returns: the cluster's shards are restored from it under
    /// `assignment`, holding `ships_alive` ships, and this leader, elected with `fence`,
    /// re-runs every logged tick after it with the same inputs before taking new ones.
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
    ) -> u64 {
        assert!(tick <= self.tick, "a rewind goes back, not forward");
        let first_logged = self.log.first().map_or(self.tick + 1, |l| l.start.tick);
        assert!(
            tick + 1 >= first_logged,
            "tick {tick} is before the logged ticks (from {first_logged})"
        );
        // Logged ticks, the one that was running (its inputs are sequenced already), then
        // what a previous rewind had still to re-run.
        let pending = std::mem::take(&mut self.replay);
        let running = self.running.take().map(|r| Logged {
            start: r.start,
            seq: r.seq,
        });
        let mut replay: Vec<Logged> = self
            .log
            .iter()
            .filter(|l| l.start.tick > tick)
            .cloned()
            .chain(running)
            .chain(pending)
            .collect();
        // A rewind during a re-run finds the re-run's ticks both logged (from their first
        // run) and running or pending: each is re-run once, with the same inputs.
        replay.sort_by_key(|l| l.start.tick);
        replay.dedup_by_key(|l| l.start.tick);
        self.replay = replay.into();
        self.tick = tick;
        self.assignment = assignment;
        self.ships_alive = ships_alive;
        self.fence = fence;
        self.epoch += 1;
        self.epoch
    }

    /// Takes a shard's report; when the last one is in, the tick's outcome.
    pub fn on_done(&mut self, done: TickDone) -> Result<Option<TickOutcome>, LeaderError> {
        let running = self.running.as_mut().ok_or(LeaderError::Idle)?;
        if done.epoch != running.start.epoch {
            return Err(LeaderError::WrongEpoch {
                expected: running.start.epoch,
                got: done.epoch,
            });
        }
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
        if self.log.last().is_none_or(|l| l.start.tick < self.tick) {
            self.log.push(Logged {
                start: running.start.clone(),
                seq: running.seq,
            });
        }
        Ok(Some(TickOutcome {
            tick: self.tick,
            hash,
            ships,
            verdicts,
            positions: running.start.positions.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn input(i: u64) -> WorldInput {
        WorldInput::Scrap { ship: i }
    }

    #[test]
    fn a_full_queue_has_no_room_until_a_tick_takes_inputs() {
        let mut leader = Leader::new(
            SectorAssignment::Stripes {
                shards: 1,
                width: 1,
            },
            1,
            0,
            0,
        );
        for position in 1..=MAX_QUEUED_INPUTS as u64 {
            assert!(leader.submit_at(position, input(position)).unwrap());
        }
        assert!(!leader.has_room());
        let full = MAX_QUEUED_INPUTS as u64 + 1;
        assert_eq!(
            leader.submit_at(full, input(full)),
            Err(LeaderError::QueueFull)
        );
        // A repeat is still recognised as one, full or not.
        assert_eq!(leader.submit_at(3, input(3)), Ok(false));
        let start = leader.start_next(false).unwrap();
        assert_eq!(start.inputs.len(), MAX_INPUTS_PER_TICK);
        assert_eq!(start.inputs_through, MAX_INPUTS_PER_TICK as u64);
        assert!(leader.has_room());
    }
}
