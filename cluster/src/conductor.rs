//! The leader process's decisions, without I/O: when to make a plan (which registered process
//! runs which shard, from which checkpoint), when the shards are ready, when to start each
//! tick, when a checkpoint is complete, and what to do when a shard's process is lost. The
//! shell feeds it events with the time they happened and carries out the [`Action`]s it
//! returns; it decides nothing itself.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use astroboids_sim::inputs::WorldInput;

use crate::assignment::ShardId;
use crate::leader::{Leader, LeaderError, Takeover, TickOutcome};
use crate::messages::{ShardReport, TickReport, TickStart};
use crate::plan::{CheckpointRecord, Plan, Registration, WorldSpec};

/// Microseconds on the shell's monotonic clock.
pub type Micros = u64;

/// What the shell is to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write this plan (the shell stamps `bus_seq` with the bus position before writing).
    WritePlan(Plan),
    /// Publish this start, then call [`Conductor::start_published`] with its position.
    PublishStart(TickStart),
    /// Record this checkpoint as the last complete one (the shell fills in `log_from_seq`
    /// when it is 0: the next start's position), and delete the pieces of `superseded`.
    WriteCheckpoint {
        record: CheckpointRecord,
        superseded: Option<CheckpointRecord>,
    },
    /// Publish a finished tick.
    Report(TickReport),
    /// The world reached its last tick: stop.
    Finished,
}

/// Where the world stands, as a status page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Not enough registered processes for a plan.
    WaitingForShards {
        live: usize,
        needed: usize,
    },
    /// A plan is out; these shards have not said they are ready.
    Restoring {
        epoch: u64,
        waiting: Vec<ShardId>,
    },
    Running {
        epoch: u64,
    },
    Finished,
}

/// The leader process's core.
pub struct Conductor {
    spec: WorldSpec,
    leader: Leader,
    plan: Option<Plan>,
    /// The last complete checkpoint.
    checkpoint: Option<CheckpointRecord>,
    /// The registered processes: member id -> registration.
    live: BTreeMap<u32, Registration>,
    ready: BTreeSet<ShardId>,
    /// Pieces stored per checkpoint tick of the current epoch, with their ship counts.
    stored: BTreeMap<u64, BTreeMap<ShardId, u64>>,
    /// When the running start was published, and when the next may be.
    started_at: Option<Micros>,
    next_start_at: Micros,
    /// The running start re-runs a logged tick: it says nothing of the tick clock.
    rerunning: bool,
    finished: bool,
    actions: VecDeque<Action>,
}

impl Conductor {
    /// The leader of a new world (no plan was ever made), elected with `fence`.
    pub fn new_world(spec: WorldSpec, fence: u64) -> Self {
        let mut leader = Leader::new(spec.assignment, fence, 0, 0);
        leader.queue_setup(spec.setup.iter().cloned());
        Self::with(spec, leader, None, None)
    }

    /// The leader carrying on a world whose current plan is `plan`: the previous leader's
    /// log (see [`Takeover`]) says which tick runs and which come next.
    pub fn take_over(
        spec: WorldSpec,
        plan: Plan,
        checkpoint: Option<CheckpointRecord>,
        mut takeover: Takeover,
    ) -> Self {
        // A checkpoint completed since the plan was made: every tick up to it finished under
        // the plan, and the start log is read from its `log_from_seq` (the starts before it,
        // the last tick's included when nothing was started since, may be gone). The leader
        // carries on from it.
        let since_plan = checkpoint
            .as_ref()
            .filter(|c| c.tick > takeover.from_tick)
            .cloned();
        let running = takeover.last_started.is_some() || since_plan.is_some();
        if let Some(c) = &since_plan {
            takeover.from_tick = c.tick;
            takeover.from_ships = c.ships;
            takeover.log.retain(|l| l.start.tick > c.tick);
            takeover.last_started = takeover.last_started.filter(|t| *t > c.tick);
        }
        // No start of tick 1 was ever published: the world's setup is still to go in one.
        let fresh = takeover.from_tick == 0 && !takeover.log.iter().any(|l| l.start.tick == 1);
        let mut leader = Leader::take_over(takeover);
        if fresh {
            leader.queue_setup(spec.setup.iter().cloned());
        }
        let mut conductor = Self::with(spec, leader, Some(plan.clone()), checkpoint);
        if running {
            // The shards were ready: the epoch's ticks had begun.
            conductor.ready = (0..plan.assignment.shards()).collect();
        }
        if let Some(c) = since_plan
            && conductor.spec.last_tick == Some(c.tick)
        {
            // The last leader finished the world.
            conductor.finished = true;
            conductor.actions.push_back(Action::Finished);
        }
        conductor
    }

    fn with(
        spec: WorldSpec,
        leader: Leader,
        plan: Option<Plan>,
        checkpoint: Option<CheckpointRecord>,
    ) -> Self {
        Self {
            spec,
            leader,
            plan,
            checkpoint,
            live: BTreeMap::new(),
            ready: BTreeSet::new(),
            stored: BTreeMap::new(),
            started_at: None,
            next_start_at: 0,
            rerunning: false,
            finished: false,
            actions: VecDeque::new(),
        }
    }

    pub fn spec(&self) -> &WorldSpec {
        &self.spec
    }

    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    pub fn checkpoint(&self) -> Option<&CheckpointRecord> {
        self.checkpoint.as_ref()
    }

    /// The last tick every shard finished.
    pub fn tick(&self) -> u64 {
        self.leader.tick()
    }

    /// The last input position taken: the shell reads the input log from just after it.
    pub fn inputs_through(&self) -> u64 {
        self.leader.last_input_taken()
    }

    pub fn stage(&self) -> Stage {
        if self.finished {
            return Stage::Finished;
        }
        match &self.plan {
            None => Stage::WaitingForShards {
                live: self.live.len(),
                needed: self.spec.shards() as usize,
            },
            Some(plan) if self.ready.len() < plan.members.len() => Stage::Restoring {
                epoch: plan.epoch,
                waiting: (0..plan.members.len() as ShardId)
                    .filter(|s| !self.ready.contains(s))
                    .collect(),
            },
            Some(plan) => Stage::Running { epoch: plan.epoch },
        }
    }

    /// The registered processes now: each member id with its registration. A plan member
    /// that is gone, or registered anew (another process under its id: the one that held the
    /// plan's shard is gone with its state), makes a new plan from the last complete
    /// checkpoint over the processes registered; with none yet, the first plan is made once
    /// enough have registered. A new leader finding the plan's members registered anew (the
    /// whole cluster restarted) does the same.
    pub fn members_changed(&mut self, live: BTreeMap<u32, Registration>) {
        self.live = live;
        let lost = self
            .plan
            .as_ref()
            .is_some_and(|p| !p.lost_members(&self.live).is_empty());
        match &self.plan {
            None if self.live.len() >= self.spec.shards() as usize => self.replan(),
            Some(_) if lost && !self.live.is_empty() => self.replan(),
            _ => {}
        }
    }

    /// Whether the input queue has room: a shell stops reading the input log while it has
    /// none (the log keeps the rest), rather than refusing what is already durable.
    pub fn accepts_inputs(&self) -> bool {
        self.leader.has_room()
    }

    /// Queues an input at `position` of the input log (repeats are dropped).
    pub fn submit(&mut self, position: u64, input: WorldInput) -> Result<bool, LeaderError> {
        self.leader.submit_at(position, input)
    }

    /// A shard's report.
    pub fn on_report(&mut self, report: ShardReport, now: Micros) -> Result<(), LeaderError> {
        let Some(plan) = &self.plan else {
            return Ok(());
        };
        if report.epoch() != plan.epoch {
            return Ok(()); // from a plan that is gone
        }
        match report {
            ShardReport::Ready(ready) => {
                if ready.shard < plan.assignment.shards() {
                    self.ready.insert(ready.shard);
                }
            }
            ShardReport::Done(done) => {
                if self.leader.running() != Some(done.tick) {
                    return Ok(()); // a tick already finished (read again after a takeover)
                }
                if let Some(outcome) = self.leader.on_done(done)? {
                    self.finish_tick(outcome, now);
                }
            }
            ShardReport::Stored(stored) => {
                if stored.shard < plan.assignment.shards() && stored.tick > plan.from_tick() {
                    self.stored
                        .entry(stored.tick)
                        .or_default()
                        .insert(stored.shard, stored.ships);
                    self.check_checkpoints();
                }
            }
        }
        Ok(())
    }

    fn finish_tick(&mut self, outcome: TickOutcome, now: Micros) {
        let plan = self.plan.as_ref().expect("a tick runs under a plan");
        let tick_us = self.started_at.map_or(0, |at| now.saturating_sub(at));
        self.started_at = None;
        self.actions.push_back(Action::Report(TickReport {
            epoch: plan.epoch,
            tick: outcome.tick,
            state_hash: outcome.hash.total,
            full_hash: self.full_hash(outcome.tick),
            ships: outcome.ships,
            tick_us,
            shards: outcome.shards,
            verdicts: outcome.verdicts,
            positions: outcome.positions,
        }));
        self.check_checkpoints();
    }

    /// Whether tick `tick` reports every hash part: at checkpoint ticks (the last tick is
    /// one).
    fn full_hash(&self, tick: u64) -> bool {
        self.spec.is_checkpoint_tick(tick)
    }

    /// A checkpoint is complete when every shard stored its piece and the tick finished. The
    /// world is finished when its last tick's checkpoint is complete (what `cluster sim`
    /// summarises).
    fn check_checkpoints(&mut self) {
        let plan = self.plan.as_ref().expect("checked by the caller");
        let shards = plan.assignment.shards() as usize;
        let complete: Vec<u64> = self
            .stored
            .iter()
            .filter(|(tick, pieces)| pieces.len() == shards && **tick <= self.leader.tick())
            .map(|(tick, _)| *tick)
            .collect();
        let Some(&tick) = complete.last() else {
            return;
        };
        let ships = self.stored[&tick].values().sum();
        self.stored.retain(|t, _| *t > tick);
        if self.checkpoint.as_ref().is_some_and(|c| c.tick >= tick) {
            return;
        }
        self.leader.checkpoint_complete(tick);
        let record = CheckpointRecord {
            epoch: plan.epoch,
            tick,
            assignment: plan.assignment,
            ships,
            log_from_seq: self.leader.log_floor().unwrap_or(0),
        };
        let superseded = self.checkpoint.replace(record.clone());
        self.actions
            .push_back(Action::WriteCheckpoint { record, superseded });
        if self.spec.last_tick == Some(tick) {
            self.finished = true;
            self.actions.push_back(Action::Finished);
            return;
        }
        // Processes that joined since the plan was made take shards from here (a rebalance
        // at a checkpoint tick changes no result).
        let wanted = self.live.len().min(self.spec.shards() as usize);
        if wanted > plan.members.len() {
            self.replan();
        }
    }

    /// A new plan over the live processes (the lowest ids, up to the spec's shard count),
    /// from the last complete checkpoint.
    fn replan(&mut self) {
        let (members, registrations): (Vec<u32>, Vec<Registration>) = self
            .live
            .iter()
            .map(|(m, r)| (*m, *r))
            .take(self.spec.shards() as usize)
            .unzip();
        let assignment = self.spec.assignment.with_shards(members.len() as u32);
        let from = self.checkpoint.clone();
        let (from_tick, ships) = from.as_ref().map_or((0, 0), |c| (c.tick, c.ships));
        let epoch = match &self.plan {
            None => self.leader.epoch(),
            Some(_) => self
                .leader
                .rewind(from_tick, assignment, ships, self.leader.fence()),
        };
        let plan = Plan {
            epoch,
            fence: self.leader.fence(),
            assignment,
            members,
            registrations,
            from,
            bus_seq: 0,
        };
        self.ready.clear();
        self.stored.clear();
        self.started_at = None;
        self.plan = Some(plan.clone());
        self.actions.push_back(Action::WritePlan(plan));
    }

    /// The shell published the running start at `seq`, at `now`.
    pub fn start_published(&mut self, seq: u64, now: Micros) {
        self.leader.start_published(seq);
        self.started_at = Some(now);
        // Starts keep to a fixed clock (one period after the last one was due), so the
        // publish's own latency does not slow the world down tick after tick; a start that
        // went out more than a period late (a slow tick, a recovery) moves the clock to now
        // rather than letting the ticks after it rush to catch up.
        let period = self.spec.tick_ms * 1_000;
        let on_clock = self.next_start_at + period;
        self.next_start_at = if on_clock >= now && !self.rerunning {
            on_clock
        } else {
            // Late, or a re-run (which goes at once): the clock starts again from now, and
            // the first new tick after a re-run comes one period after its last start.
            now + period
        };
    }

    /// When the shell should call [`Self::poll`] next if nothing happens before (`None`:
    /// only an event can move the world on).
    pub fn next_deadline(&self) -> Option<Micros> {
        self.can_start().then_some(self.start_due())
    }

    /// When the next start is due: re-runs of logged ticks after a recovery go at once, one
    /// after another (their pace changes nothing, and players wait for the world to be back
    /// where it was), new ticks on the tick clock.
    fn start_due(&self) -> Micros {
        if self.leader.replaying() {
            0
        } else {
            self.next_start_at
        }
    }

    fn can_start(&self) -> bool {
        !self.finished
            && self.leader.running().is_none()
            && self
                .plan
                .as_ref()
                .is_some_and(|p| self.ready.len() == p.members.len())
            && self
                .spec
                .last_tick
                .is_none_or(|last| self.leader.tick() < last)
    }

    /// The next thing to do at `now`, if any.
    pub fn poll(&mut self, now: Micros) -> Result<Option<Action>, LeaderError> {
        if let Some(action) = self.actions.pop_front() {
            return Ok(Some(action));
        }
        if self.can_start() && now >= self.start_due() {
            let next = self.leader.tick() + 1;
            self.rerunning = self.leader.replaying();
            let start = self.leader.start_next(self.full_hash(next))?;
            return Ok(Some(Action::PublishStart(start)));
        }
        Ok(None)
    }
}
