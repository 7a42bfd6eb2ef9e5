//! The leader process's core ([`Conductor`]) driving real shards in one process, through a
//! tiny shell: a `Vec` as the start log, another as the report subject, a `HashMap` as the
//! blob store, shards made for each plan from the stored pieces, and time that passes only
//! when the test says so. What a user relies on: plans go to the right processes, no tick
//! starts before every shard is ready, checkpoints complete, a lost process or a new leader
//! changes no result, and no tick is skipped or started twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use astroboids_cluster::SectorAssignment;
use astroboids_cluster::checkpoint::{self, ShardCheckpoint};
use astroboids_cluster::conductor::{Action, Conductor, Micros, Stage};
use astroboids_cluster::leader::{Logged, Takeover};
use astroboids_cluster::messages::{PieceStored, ShardReady, ShardReport, TickReport, TickStart};
use astroboids_cluster::plan::{CheckpointRecord, Plan, Registration, WorldSpec, piece_blob_name};
use astroboids_cluster::shard_node::ShardNode;
use astroboids_engine::StateHashExt;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::{WorldInput, apply_input};
use astroboids_sim::ships::ShipIndex;
use astroboids_sim::{SimOptions, build_simulation_with};
use astroboids_test_kit::WatBot;

const SEED: u64 = 77;
/// Ticks between checkpoints (the spec's, and the config's: the world drops its physics
/// caches at the config's checkpoint ticks, so a piece captured there restores exactly).
const EVERY: u64 = 10;
const TICK_MS: u64 = 50;
const SHIPS: u32 = 300;
const SCRIPTED: u32 = 30;

/// The world's first inputs: the script, autopilot ships and chasers.
fn setup() -> Vec<WorldInput> {
    let wasm = WatBot::chaser().wasm();
    let script = astroboids_scripting::module_hash(&wasm);
    vec![
        WorldInput::AddScript { wasm },
        WorldInput::SpawnFleet {
            count: SHIPS - SCRIPTED,
            script: None,
        },
        WorldInput::SpawnFleet {
            count: SCRIPTED,
            script: Some(script),
        },
    ]
}

/// An input sent while the world runs.
fn late_ship(x: i32, owner: &str) -> WorldInput {
    WorldInput::SpawnShip {
        sector: (x, 0),
        local: (500.0, 500.0),
        heading: 1.0,
        autopilot: true,
        owner: Some(owner.into()),
    }
}

fn options() -> SimOptions {
    SimOptions {
        script_workers: 1,
        ..SimOptions::default()
    }
}

fn spec(last_tick: u64) -> WorldSpec {
    let mut config = UniverseConfig::default();
    config.persistence.checkpoint_every_ticks = EVERY;
    WorldSpec {
        seed: SEED,
        config,
        assignment: SectorAssignment::Stripes {
            shards: 3,
            width: 1,
        },
        checkpoint_every: EVERY,
        tick_ms: TICK_MS,
        last_tick: Some(last_tick),
        setup: Vec::new(),
    }
    .validated()
    .unwrap()
}

/// One tick of the world in one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expected {
    /// What a `TickReport` carries: every part at checkpoint ticks, the cheap ones elsewhere.
    hash: u64,
    ships: u64,
}

/// The world in one process with each input applied before the tick it names: index
/// `tick - 1` is tick `tick`.
fn reference(spec: &WorldSpec, inputs: &[(u64, WorldInput)]) -> Vec<Expected> {
    let last = spec.last_tick.expect("a world that stops");
    let mut sim = build_simulation_with(spec.config.clone(), spec.seed, options());
    (1..=last)
        .map(|tick| {
            for (_, input) in inputs.iter().filter(|(at, _)| *at == tick) {
                apply_input(sim.world_mut(), input).expect("input accepted");
            }
            sim.step();
            let hash = if spec.is_checkpoint_tick(tick) {
                sim.world_mut().state_hash()
            } else {
                sim.world_mut().quick_state_hash()
            };
            Expected {
                hash: hash.total,
                ships: sim.world().resource::<ShipIndex>().len() as u64,
            }
        })
        .collect()
}

/// The setup inputs at tick 1, then `later`.
fn scheduled(later: &[(u64, WorldInput)]) -> Vec<(u64, WorldInput)> {
    setup()
        .into_iter()
        .map(|i| (1, i))
        .chain(later.iter().cloned())
        .collect()
}

/// The shell around a conductor: everything the networked one does with NATS and etcd, done
/// with vectors and maps, in one fixed order.
struct Shell {
    spec: WorldSpec,
    conductor: Conductor,
    now: Micros,
    /// The start log: the start at index `i` was published at position `i + 1`.
    starts: Vec<TickStart>,
    /// The report subject: every report any shard sent, in order.
    bus: Vec<ShardReport>,
    /// How much of `bus` the conductor has read.
    read: usize,
    /// The input log: the input at index `i` is at position `i + 1`.
    inputs: Vec<WorldInput>,
    blobs: HashMap<String, Vec<u8>>,
    /// Registered processes (member id -> registration), and the shard each runs under the
    /// plan it last restored for.
    live: BTreeMap<u32, Registration>,
    nodes: BTreeMap<u32, ShardNode>,
    /// The last registration given: each registration gets a new one.
    registrations: Registration,
    /// Pieces stored after a tick wait for the next start before they are reported (a store
    /// slower than the tick barrier).
    slow_store: bool,
    stored_later: Vec<ShardReport>,
    /// The plans as written (with `bus_seq` stamped) and every action carried out, in order.
    plans: Vec<Plan>,
    actions: Vec<Action>,
    reports: Vec<TickReport>,
    checkpoints: Vec<CheckpointRecord>,
    finished: bool,
}

impl Shell {
    /// A shell with the world's setup submitted and processes 1, 2 and 3 registered.
    fn started(spec: WorldSpec) -> Self {
        let mut shell = Self::new(spec);
        for input in setup() {
            shell.submit(input);
        }
        for member in [1, 2, 3] {
            shell.register(member);
        }
        shell
    }

    fn new(spec: WorldSpec) -> Self {
        Self {
            conductor: Conductor::new_world(spec.clone(), 1),
            spec,
            now: 1_000_000,
            starts: Vec::new(),
            bus: Vec::new(),
            read: 0,
            inputs: Vec::new(),
            blobs: HashMap::new(),
            live: BTreeMap::new(),
            nodes: BTreeMap::new(),
            registrations: 0,
            slow_store: false,
            stored_later: Vec::new(),
            plans: Vec::new(),
            actions: Vec::new(),
            reports: Vec::new(),
            checkpoints: Vec::new(),
            finished: false,
        }
    }

    /// A process registers under `member` (a new process: a new registration).
    fn register(&mut self, member: u32) {
        self.join(member);
        self.conductor.members_changed(self.live.clone());
    }

    /// A new process registers under `member` without the conductor hearing of it (yet): any
    /// earlier process under the id is gone, and its shard with it.
    fn join(&mut self, member: u32) {
        self.registrations += 1;
        self.live.insert(member, self.registrations);
        self.nodes.remove(&member);
    }

    /// A process dies: its shard (and its piece of the running tick) is gone.
    fn kill(&mut self, member: u32) {
        self.live.remove(&member);
        self.nodes.remove(&member);
        self.conductor.members_changed(self.live.clone());
    }

    /// A client appends an input to the input log; the leader reads it.
    fn submit(&mut self, input: WorldInput) -> bool {
        self.inputs.push(input.clone());
        let position = self.inputs.len() as u64;
        self.conductor.submit(position, input).expect("queued")
    }

    /// The conductor reads up to `n` unread reports.
    fn deliver(&mut self, n: usize) {
        let end = self.read.saturating_add(n).min(self.bus.len());
        for report in &self.bus[self.read..end] {
            self.conductor
                .on_report(report.clone(), self.now)
                .expect("a report the conductor takes");
        }
        self.read = end;
    }

    fn deliver_all(&mut self) {
        self.deliver(usize::MAX);
    }

    /// Carries out the conductor's next action, if it has one now.
    fn act(&mut self) -> Option<Action> {
        let action = self.conductor.poll(self.now).expect("poll")?;
        self.carry_out(action.clone());
        Some(action)
    }

    /// Reads every report, then does the next thing there is to do, waiting for the next
    /// deadline if it must; `false` when nothing can happen any more.
    fn step(&mut self) -> bool {
        loop {
            self.deliver_all();
            if self.act().is_some() {
                return true;
            }
            match self.conductor.next_deadline() {
                Some(at) => {
                    assert!(at > self.now, "poll at a deadline that passed did nothing");
                    self.now = at;
                }
                None if !self.stored_later.is_empty() => {
                    self.bus.append(&mut self.stored_later);
                }
                None => return false,
            }
        }
    }

    fn run_until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        while !done(self) {
            assert!(
                self.step(),
                "stuck before {what}: {:?}",
                self.conductor.stage()
            );
        }
    }

    fn run_to_end(&mut self) {
        self.run_until("the end", |s| s.finished);
        assert!(!self.step(), "nothing happens after Finished");
    }

    /// Runs until tick `tick` is reported (and every action that came with it is carried
    /// out), without starting the next.
    fn run_to_tick(&mut self, tick: u64) {
        self.run_until(&format!("tick {tick}"), |s| {
            s.reports.last().is_some_and(|r| r.tick == tick)
        });
        // What came with it (a checkpoint, a plan), but not the next start.
        while self
            .conductor
            .next_deadline()
            .is_none_or(|at| self.now < at)
        {
            self.deliver_all();
            if self.act().is_none() {
                break;
            }
        }
        assert_eq!(self.conductor.tick(), tick);
    }

    /// Waits for the next start's deadline and publishes it (the shards run it at once).
    fn publish_next(&mut self) -> TickStart {
        self.deliver_all();
        if let Some(at) = self.conductor.next_deadline() {
            self.now = self.now.max(at);
        }
        match self.act() {
            Some(Action::PublishStart(start)) => start,
            other => panic!("expected a start, got {other:?}"),
        }
    }

    fn carry_out(&mut self, action: Action) {
        self.actions.push(action.clone());
        match action {
            Action::WritePlan(mut plan) => {
                plan.bus_seq = self.bus.len() as u64;
                self.apply_plan(&plan);
                self.plans.push(plan);
            }
            Action::PublishStart(start) => {
                self.bus.append(&mut self.stored_later);
                self.starts.push(start.clone());
                let seq = self.starts.len() as u64;
                self.conductor.start_published(seq, self.now);
                self.run_shards(start);
            }
            Action::WriteCheckpoint {
                mut record,
                superseded,
            } => {
                if record.log_from_seq == 0 {
                    record.log_from_seq = self.starts.len() as u64 + 1;
                }
                if let Some(old) = superseded {
                    for name in old.piece_names() {
                        assert!(self.blobs.remove(&name).is_some(), "{name} was stored");
                    }
                }
                self.checkpoints.push(record);
            }
            Action::Report(report) => self.reports.push(report),
            Action::Finished => {
                assert!(!self.finished, "finished twice");
                self.finished = true;
            }
        }
    }

    /// Every live member of `plan` restores its shard from the plan's checkpoint and says it
    /// is ready; members not in the plan drop theirs, and so does a process registered
    /// under a member's id after the plan was made (the plan is not for it).
    fn apply_plan(&mut self, plan: &Plan) {
        let pieces: Vec<ShardCheckpoint> = plan.from.as_ref().map_or_else(Vec::new, |c| {
            c.piece_names()
                .iter()
                .map(|name| {
                    let bytes = self.blobs.get(name).unwrap_or_else(|| panic!("{name}"));
                    checkpoint::decode_piece(name, bytes).expect("a piece decodes")
                })
                .collect()
        });
        self.nodes.clear();
        for (shard, member) in plan.members.iter().enumerate() {
            let shard = shard as u32;
            let ours = self
                .live
                .get(member)
                .is_some_and(|r| plan.shard_of(*member, *r) == Some(shard));
            if !ours {
                continue;
            }
            let node = checkpoint::shard_for_plan(&self.spec, plan, shard, &pieces, options())
                .expect("a shard for the plan");
            assert_eq!(node.epoch(), plan.epoch);
            self.bus.push(ShardReport::Ready(ShardReady {
                epoch: plan.epoch,
                shard,
                member: *member,
                tick: node.sim().tick(),
            }));
            self.nodes.insert(*member, node);
        }
    }

    /// Every shard runs `start` and exchanges with its neighbours (in `LocalCluster::step`'s
    /// order); each reports its tick, and stores its piece at checkpoint ticks.
    fn run_shards(&mut self, start: TickStart) {
        let tick = start.tick;
        let mut mail = Vec::new();
        for node in self.nodes.values_mut() {
            mail.extend(
                node.start_tick(start.clone())
                    .expect("the shard runs the start"),
            );
        }
        let mut finished = Vec::new();
        for node in self.nodes.values_mut() {
            finished.extend(node.finish_alone().expect("finish"));
        }
        for (to, exchange) in mail {
            // Mail to a shard whose process is gone is lost.
            if let Some(node) = self.nodes.values_mut().find(|n| n.id() == to) {
                finished.extend(node.receive(exchange).expect("an exchange the shard takes"));
            }
        }
        for done in finished {
            let shard = done.shard;
            self.bus.push(ShardReport::Done(done));
            if self.spec.is_checkpoint_tick(tick) {
                let node = self.nodes.values_mut().find(|n| n.id() == shard).unwrap();
                let stored = store_piece(&mut self.blobs, node, tick);
                if self.slow_store {
                    self.stored_later.push(stored);
                } else {
                    self.bus.push(stored);
                }
            }
        }
    }

    /// What a new leader learns from the start log (read from the last checkpoint's
    /// `log_from_seq`) and the coordination store: the current plan, the last complete
    /// checkpoint, and where the last leader stopped.
    fn takeover(&self, fence: u64) -> (Plan, Option<CheckpointRecord>, Takeover) {
        let plan = self.plans.last().expect("a plan").clone();
        let checkpoint = self.checkpoints.last().cloned();
        let from_seq = checkpoint.as_ref().map_or(1, |c| c.log_from_seq);
        // One start per tick after the plan's, the newest epoch's (a re-run's over the run
        // it replaced).
        let mut log: BTreeMap<u64, Logged> = BTreeMap::new();
        for (i, start) in self.starts.iter().enumerate() {
            let seq = i as u64 + 1;
            if seq < from_seq || start.tick <= plan.from_tick() || start.epoch > plan.epoch {
                continue;
            }
            if log
                .get(&start.tick)
                .is_none_or(|l| l.start.epoch <= start.epoch)
            {
                let logged = Logged {
                    start: start.clone(),
                    seq,
                };
                log.insert(start.tick, logged);
            }
        }
        let last_started = self
            .starts
            .iter()
            .filter(|s| s.epoch == plan.epoch)
            .map(|s| s.tick)
            .max();
        let takeover = Takeover {
            assignment: plan.assignment,
            fence,
            epoch: plan.epoch,
            from_tick: plan.from_tick(),
            from_ships: plan.from.as_ref().map_or(0, |c| c.ships),
            log: log.into_values().collect(),
            last_started,
            inputs_through: self
                .starts
                .iter()
                .map(|s| s.inputs_through)
                .max()
                .unwrap_or(0),
        };
        (plan, checkpoint, takeover)
    }

    /// The reports of `epoch`, by tick.
    fn reports_of(&self, epoch: u64) -> BTreeMap<u64, &TickReport> {
        let mut by_tick = BTreeMap::new();
        for report in self.reports.iter().filter(|r| r.epoch == epoch) {
            let earlier = by_tick.insert(report.tick, report);
            assert!(earlier.is_none(), "tick {} reported twice", report.tick);
        }
        by_tick
    }

    /// The ticks started under `epoch`, in order; panics on a tick started twice.
    fn started_ticks(&self, epoch: u64) -> Vec<u64> {
        let ticks: Vec<u64> = self
            .starts
            .iter()
            .filter(|s| s.epoch == epoch)
            .map(|s| s.tick)
            .collect();
        let distinct: BTreeSet<u64> = ticks.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            ticks.len(),
            "epoch {epoch} started {ticks:?}"
        );
        ticks
    }
}

/// A shard captures its piece of the checkpoint of `tick`, stores it and says so.
fn store_piece(
    blobs: &mut HashMap<String, Vec<u8>>,
    node: &mut ShardNode,
    tick: u64,
) -> ShardReport {
    let piece = checkpoint::capture(node);
    assert_eq!(piece.world.tick, tick);
    // Stored as the shard process stores it.
    let bytes = checkpoint::encode_piece(&piece);
    let stored = PieceStored {
        epoch: node.epoch(),
        tick,
        shard: node.id(),
        bytes: bytes.len() as u64,
        ships: piece.world.ships.len() as u64,
    };
    blobs.insert(piece_blob_name(node.epoch(), tick, node.id()), bytes);
    ShardReport::Stored(stored)
}

/// Every report matches the world in one process; `ticks` are the ticks that must be
/// reported.
fn assert_reports_match(
    reports: &BTreeMap<u64, &TickReport>,
    expected: &[Expected],
    ticks: std::ops::RangeInclusive<u64>,
    what: &str,
) {
    let reported: Vec<u64> = reports.keys().copied().collect();
    assert_eq!(
        reported,
        ticks.collect::<Vec<_>>(),
        "{what}: ticks reported"
    );
    for (tick, report) in reports {
        let e = expected[*tick as usize - 1];
        assert_eq!(
            report.full_hash,
            *tick % EVERY == 0 || *tick == expected.len() as u64,
            "{what}: tick {tick}'s hash parts"
        );
        assert_eq!(
            (report.state_hash, report.ships),
            (e.hash, e.ships),
            "{what}: tick {tick} differs from the world in one process"
        );
    }
}

/// Ships handed from one shard to another over these ticks.
fn handoffs(reports: &BTreeMap<u64, &TickReport>) -> u32 {
    reports
        .values()
        .flat_map(|r| &r.shards)
        .map(|s| s.2.handoffs_out)
        .sum()
}

/// Each checkpoint record is of a checkpoint tick, holds the world's ships then, and its
/// pieces are the ones still stored (the superseded ones deleted).
fn assert_checkpoints(shell: &Shell, expected: &[Expected], ticks: &[u64]) {
    let got: Vec<u64> = shell.checkpoints.iter().map(|c| c.tick).collect();
    assert_eq!(got, ticks, "checkpoints written");
    for record in &shell.checkpoints {
        assert_eq!(
            record.ships,
            expected[record.tick as usize - 1].ships,
            "ships at the checkpoint of tick {}",
            record.tick
        );
        assert!(record.log_from_seq > 0, "{record:?}");
    }
    let last = shell.checkpoints.last().unwrap();
    let mut names: Vec<&String> = shell.blobs.keys().collect();
    names.sort();
    let kept: Vec<String> = last.piece_names();
    assert!(
        kept.iter().all(|n| shell.blobs.contains_key(n)),
        "the last checkpoint's pieces are kept: {names:?}"
    );
    let older: Vec<&String> = names
        .iter()
        .copied()
        .filter(|n| {
            shell.checkpoints[..shell.checkpoints.len() - 1]
                .iter()
                .any(|c| c.piece_names().contains(n))
        })
        .collect();
    assert!(older.is_empty(), "superseded pieces deleted: {older:?}");
}

#[test]
fn a_new_world_runs_to_its_last_tick_with_the_single_process_hashes() {
    let last = 55;
    let spec = spec(last);
    let expected = reference(&spec, &scheduled(&[]));
    let mut shell = Shell::new(spec);
    for input in setup() {
        assert!(shell.submit(input));
    }

    // Two processes are not enough for three shards.
    shell.register(7);
    shell.register(3);
    assert_eq!(
        shell.conductor.stage(),
        Stage::WaitingForShards { live: 2, needed: 3 }
    );
    assert_eq!(shell.act(), None);
    assert_eq!(shell.conductor.next_deadline(), None);

    // Four are: the plan takes the three lowest ids, in order.
    shell.join(9);
    shell.join(5);
    shell.conductor.members_changed(shell.live.clone());
    let Some(Action::WritePlan(plan)) = shell.act() else {
        panic!("a plan: {:?}", shell.actions);
    };
    assert_eq!(plan.epoch, 1);
    assert_eq!(plan.fence, 1);
    assert_eq!(plan.members, vec![3, 5, 7]);
    assert_eq!(
        plan.registrations,
        vec![shell.live[&3], shell.live[&5], shell.live[&7]]
    );
    assert_eq!(plan.from, None);
    assert_eq!(plan.assignment, shell.spec.assignment);
    assert_eq!(shell.nodes.len(), 3, "process 9 runs no shard");

    // No start until every shard said it is ready.
    for ready in 0..3 {
        assert_eq!(
            shell.conductor.stage(),
            Stage::Restoring {
                epoch: 1,
                waiting: (ready..3).collect()
            }
        );
        assert_eq!(shell.act(), None, "{ready} of 3 shards ready");
        assert_eq!(shell.conductor.next_deadline(), None);
        shell.deliver(1);
    }
    assert_eq!(shell.conductor.stage(), Stage::Running { epoch: 1 });
    let first = shell.publish_next();
    assert_eq!((first.epoch, first.tick, first.fence), (1, 1, 1));
    assert_eq!(
        first.inputs,
        setup(),
        "the queued inputs go in the first start"
    );
    assert_eq!(first.inputs_through, 3);

    // The next start waits for the tick's last report, and then for the tick period.
    shell.deliver(2);
    assert_eq!(shell.act(), None, "two of three shards reported tick 1");
    assert_eq!(shell.conductor.next_deadline(), None);
    let published = shell.now;
    shell.now += 1_234;
    shell.deliver(1);
    let Some(Action::Report(report)) = shell.act() else {
        panic!("tick 1's report");
    };
    assert_eq!(report.tick_us, 1_234);
    assert_eq!(report.shards.len(), 3);
    assert_eq!(report.shards.iter().map(|s| s.1).sum::<u64>(), report.ships);
    assert_eq!(
        shell.conductor.next_deadline(),
        Some(published + TICK_MS * 1_000)
    );
    assert_eq!(shell.act(), None, "not before the tick period");

    // Starts keep a fixed clock: one published late by the bus's latency does not push the
    // ones after it back.
    let due = published + TICK_MS * 1_000;
    shell.now = due + 700;
    let Some(Action::PublishStart(second)) = shell.act() else {
        panic!("tick 2's start");
    };
    assert_eq!(second.tick, 2);
    assert_eq!(shell.conductor.next_deadline(), None, "tick 2 runs");
    shell.deliver(3);
    assert!(matches!(shell.act(), Some(Action::Report(_))));
    assert_eq!(
        shell.conductor.next_deadline(),
        Some(due + TICK_MS * 1_000),
        "one period after tick 2 was due, not after it went out"
    );

    // A process running no shard may come and go.
    shell.run_to_tick(5);
    shell.kill(9);
    shell.run_to_tick(8);
    shell.register(9);
    shell.run_to_end();

    assert_eq!(shell.conductor.stage(), Stage::Finished);
    assert_eq!(shell.conductor.tick(), last);
    assert!(
        handoffs(&shell.reports_of(1)) > 0,
        "ships crossed shard borders"
    );
    assert_eq!(shell.started_ticks(1), (1..=last).collect::<Vec<_>>());
    assert_eq!(shell.plans.len(), 1, "one plan");
    assert_reports_match(&shell.reports_of(1), &expected, 1..=last, "one plan");
    assert_checkpoints(&shell, &expected, &[10, 20, 30, 40, 50, 55]);
    // Finished comes last, right after the last tick's checkpoint.
    let n = shell.actions.len();
    assert!(
        matches!(
            &shell.actions[n - 2..],
            [Action::WriteCheckpoint { record, .. }, Action::Finished] if record.tick == last
        ),
        "{:?}",
        &shell.actions[n - 3..]
    );
    for (i, action) in shell.actions.iter().enumerate() {
        if let Action::WriteCheckpoint { record, .. } = action {
            let reported = shell.actions[..i]
                .iter()
                .any(|a| matches!(a, Action::Report(r) if r.tick == record.tick));
            assert!(reported, "checkpoint {} after its tick", record.tick);
        }
    }
}

#[test]
fn a_lost_process_restores_the_others_from_the_last_checkpoint_and_reruns_its_ticks() {
    let last = 60;
    let spec = spec(last);
    let late = late_ship(1, "late");
    let expected = reference(&spec, &scheduled(&[(43, late.clone())]));
    let mut shell = Shell::started(spec);
    shell.run_to_tick(42);
    assert!(shell.submit(late.clone()));
    shell.run_to_tick(47);
    assert_eq!(shell.checkpoints.last().map(|c| c.tick), Some(40));

    // Tick 48 runs; process 2 (shard 1) dies before every report is in.
    let start = shell.publish_next();
    assert_eq!(start.tick, 48);
    shell.deliver(1);
    shell.kill(2);
    let Some(Action::WritePlan(plan)) = shell.act() else {
        panic!("a new plan: {:?}", shell.actions.last());
    };
    assert_eq!(plan.epoch, 2);
    assert_eq!(plan.members, vec![1, 3]);
    assert_eq!(plan.assignment.shards(), 2);
    let from = plan.from.as_ref().expect("from the checkpoint");
    assert_eq!((from.epoch, from.tick), (1, 40));
    assert_eq!(
        shell.conductor.stage(),
        Stage::Restoring {
            epoch: 2,
            waiting: vec![0, 1]
        }
    );
    let bus_seq = shell.plans.last().unwrap().bus_seq as usize;
    let ready: Vec<u64> = shell.bus[bus_seq..]
        .iter()
        .map(|r| match r {
            ShardReport::Ready(r) => r.tick,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ready, vec![40, 40], "both shards restored tick 40");

    // The re-run of ticks 41..=48 goes at once, start after start (players wait for the
    // world to be back where it was); tick 49 is new and waits for the tick clock.
    let rerun_began = shell.now;
    let mut rerun = Vec::new();
    while rerun.last() != Some(&48) {
        shell.deliver_all();
        match shell.act() {
            Some(Action::PublishStart(start)) => rerun.push(start.tick),
            Some(_) => {} // reports of the re-run ticks
            None => panic!("no re-run start at once after {rerun:?}"),
        }
    }
    assert_eq!(rerun, (41..=48).collect::<Vec<_>>());
    assert_eq!(shell.now, rerun_began, "no time passed for the re-run");
    shell.deliver_all();
    while let Some(action) = shell.act() {
        assert!(!matches!(action, Action::PublishStart(_)), "tick 49 waits");
    }
    assert_eq!(
        shell.conductor.next_deadline(),
        Some(shell.now + TICK_MS * 1_000),
        "one period after the re-run's last start, however many ticks it re-ran"
    );

    shell.run_to_end();

    // Ticks 41..=48 again under epoch 2, with the inputs they had; then new ones.
    assert_eq!(shell.started_ticks(1), (1..=48).collect::<Vec<_>>());
    assert_eq!(shell.started_ticks(2), (41..=last).collect::<Vec<_>>());
    let with_late: Vec<(u64, u64)> = shell
        .starts
        .iter()
        .filter(|s| s.inputs.contains(&late))
        .map(|s| (s.epoch, s.tick))
        .collect();
    assert_eq!(with_late, vec![(1, 43), (2, 43)]);
    for start in shell.starts.iter().filter(|s| s.epoch == 2) {
        assert_eq!(start.inputs_through, if start.tick >= 43 { 4 } else { 3 });
    }
    assert_reports_match(&shell.reports_of(1), &expected, 1..=47, "before the loss");
    assert_reports_match(&shell.reports_of(2), &expected, 41..=last, "the re-run");
    assert_checkpoints(&shell, &expected, &[10, 20, 30, 40, 50, 60]);
    assert!(
        handoffs(&shell.reports_of(2)) > 0,
        "ships crossed borders in the re-run"
    );
    assert_eq!(shell.checkpoints[4].epoch, 2);
    assert_eq!(shell.checkpoints[4].assignment.shards(), 2);
}

#[test]
fn a_new_leader_carries_on_without_skipping_or_repeating_a_tick() {
    let last = 60;
    let spec = spec(last);
    let sequenced = late_ship(0, "sequenced");
    let queued = late_ship(2, "queued");
    let expected = reference(
        &spec,
        &scheduled(&[(43, sequenced.clone()), (46, queued.clone())]),
    );
    let mut shell = Shell::started(spec.clone());
    shell.run_to_tick(42);
    assert!(shell.submit(sequenced.clone()));
    shell.run_to_tick(44);

    // Tick 45 is published; one shard's report reaches the old leader, which then dies with
    // an input queued that no start carried.
    assert_eq!(shell.publish_next().tick, 45);
    shell.deliver(1);
    assert!(shell.submit(queued.clone()));
    assert_eq!(shell.conductor.tick(), 44);

    let (plan, checkpoint, takeover) = shell.takeover(2);
    assert_eq!(takeover.last_started, Some(45));
    assert_eq!(takeover.inputs_through, 4);
    assert_eq!(checkpoint.as_ref().map(|c| c.tick), Some(40));
    let logged: Vec<u64> = takeover.log.iter().map(|l| l.start.tick).collect();
    assert_eq!(
        logged,
        (41..=45).collect::<Vec<_>>(),
        "read from the checkpoint on"
    );
    shell.conductor = Conductor::take_over(spec, plan.clone(), checkpoint, takeover);
    shell.conductor.members_changed(shell.live.clone());
    assert_eq!(shell.conductor.stage(), Stage::Running { epoch: 1 });
    assert_eq!(shell.conductor.tick(), 44);
    // The new leader reads the input log from the start: what a start carried is a repeat.
    for (position, input) in shell.inputs.clone().into_iter().enumerate() {
        let fresh = shell.conductor.submit(position as u64 + 1, input).unwrap();
        assert_eq!(fresh, position == 4, "input at position {}", position + 1);
    }
    assert_eq!(shell.conductor.inputs_through(), 5);
    // It reads the report subject from the plan's position: tick 45 finishes.
    shell.read = plan.bus_seq as usize;
    shell.run_to_tick(45);
    let report = shell.reports.last().unwrap();
    assert_eq!((report.epoch, report.tick), (1, 45));

    shell.run_to_end();

    assert_eq!(shell.plans.len(), 1, "no new plan");
    assert_eq!(shell.started_ticks(1), (1..=last).collect::<Vec<_>>());
    for start in &shell.starts {
        assert_eq!(start.fence, if start.tick <= 45 { 1 } else { 2 });
        let has = |input: &WorldInput| start.inputs.contains(input);
        assert_eq!(has(&sequenced), start.tick == 43, "tick {}", start.tick);
        assert_eq!(has(&queued), start.tick == 46, "tick {}", start.tick);
    }
    assert_reports_match(
        &shell.reports_of(1),
        &expected,
        1..=last,
        "across the takeover",
    );
    assert_checkpoints(&shell, &expected, &[10, 20, 30, 40, 50, 60]);
}

#[test]
fn a_process_that_registers_again_takes_a_shard_at_the_next_checkpoint() {
    let last = 70;
    let spec = spec(last);
    let late = late_ship(-1, "late");
    let expected = reference(&spec, &scheduled(&[(48, late.clone())]));
    let mut shell = Shell::new(spec);
    // Pieces are reported after the next start is out: the rebalance catches a tick running.
    shell.slow_store = true;
    for input in setup() {
        shell.submit(input);
    }
    for member in [1, 2, 3] {
        shell.register(member);
    }
    shell.run_to_tick(43);
    shell.kill(3);
    shell.run_to_tick(46);
    assert_eq!(shell.plans.len(), 2);
    assert_eq!(shell.plans[1].members, vec![1, 2]);

    // Process 3 is back: nothing moves until the next checkpoint is complete.
    shell.register(3);
    assert_eq!(shell.conductor.stage(), Stage::Running { epoch: 2 });
    shell.run_to_tick(47);
    assert!(shell.submit(late.clone()));
    shell.run_until("a third plan", |s| s.plans.len() == 3);
    let plan = shell.plans[2].clone();
    assert_eq!(plan.epoch, 3);
    assert_eq!(plan.members, vec![1, 2, 3]);
    assert_eq!(plan.assignment, shell.spec.assignment);
    let from = plan.from.as_ref().unwrap();
    assert_eq!((from.epoch, from.tick), (2, 50));
    assert_eq!(
        shell.started_ticks(2).last(),
        Some(&51),
        "tick 51 was running when the checkpoint completed"
    );

    shell.run_to_end();

    assert_eq!(shell.started_ticks(1), (1..=43).collect::<Vec<_>>());
    assert_eq!(shell.started_ticks(2), (41..=51).collect::<Vec<_>>());
    assert_eq!(shell.started_ticks(3), (51..=last).collect::<Vec<_>>());
    assert_reports_match(&shell.reports_of(1), &expected, 1..=43, "three shards");
    assert_reports_match(&shell.reports_of(2), &expected, 41..=50, "two shards");
    assert_reports_match(&shell.reports_of(3), &expected, 51..=last, "three again");
    assert_checkpoints(&shell, &expected, &[10, 20, 30, 40, 50, 60, 70]);
    let with_late: Vec<u64> = shell
        .starts
        .iter()
        .filter(|s| s.inputs.contains(&late))
        .map(|s| s.tick)
        .collect();
    assert_eq!(with_late, vec![48]);
    assert!(handoffs(&shell.reports_of(2)) > 0, "on two shards");
    assert!(handoffs(&shell.reports_of(3)) > 0, "on three again");
}

#[test]
fn a_second_process_lost_during_the_rerun_reruns_from_the_same_checkpoint() {
    let last = 60;
    let spec = spec(last);
    let late = late_ship(1, "late");
    let expected = reference(&spec, &scheduled(&[(43, late.clone())]));
    let mut shell = Shell::started(spec);
    shell.run_to_tick(42);
    assert!(shell.submit(late.clone()));
    shell.run_to_tick(47);
    assert_eq!(shell.publish_next().tick, 48);
    shell.kill(2);
    // Epoch 2 re-runs ticks 41..=48 on two shards; at tick 45 of the re-run, process 3 dies.
    shell.run_to_tick(44);
    let start = shell.publish_next();
    assert_eq!((start.epoch, start.tick), (2, 45));
    shell.deliver(1);
    shell.kill(3);
    shell.run_to_end();

    assert_eq!(shell.plans.len(), 3);
    let plan = &shell.plans[2];
    assert_eq!((plan.epoch, plan.members.clone()), (3, vec![1]));
    assert_eq!(plan.from.as_ref().map(|c| c.tick), Some(40));
    assert_eq!(shell.started_ticks(1), (1..=48).collect::<Vec<_>>());
    assert_eq!(shell.started_ticks(2), (41..=45).collect::<Vec<_>>());
    assert_eq!(shell.started_ticks(3), (41..=last).collect::<Vec<_>>());
    assert_reports_match(&shell.reports_of(2), &expected, 41..=44, "two shards");
    assert_reports_match(&shell.reports_of(3), &expected, 41..=last, "one shard");
    assert_checkpoints(&shell, &expected, &[10, 20, 30, 40, 50, 60]);
}

#[test]
fn a_new_leader_during_a_rerun_finishes_it_with_the_logged_inputs() {
    let last = 60;
    let spec = spec(last);
    let late = late_ship(1, "late");
    let expected = reference(&spec, &scheduled(&[(43, late.clone())]));
    let mut shell = Shell::started(spec.clone());
    shell.run_to_tick(42);
    assert!(shell.submit(late.clone()));
    shell.run_to_tick(47);
    assert_eq!(shell.publish_next().tick, 48);
    shell.kill(2);
    shell.run_to_tick(43);
    let start = shell.publish_next();
    assert_eq!((start.epoch, start.tick), (2, 44));
    shell.deliver(1);

    // The leader dies with epoch 2 at tick 44 of ticks 41..=48 to re-run.
    let (plan, checkpoint, takeover) = shell.takeover(2);
    assert_eq!((plan.epoch, takeover.last_started), (2, Some(44)));
    let logged: Vec<(u64, u64)> = takeover
        .log
        .iter()
        .map(|l| (l.start.epoch, l.start.tick))
        .collect();
    let mut want: Vec<(u64, u64)> = (41..=44).map(|t| (2, t)).collect();
    want.extend((45..=48).map(|t| (1, t)));
    assert_eq!(logged, want);
    shell.conductor = Conductor::take_over(spec, plan.clone(), checkpoint, takeover);
    shell.conductor.members_changed(shell.live.clone());
    for (position, input) in shell.inputs.clone().into_iter().enumerate() {
        assert!(!shell.conductor.submit(position as u64 + 1, input).unwrap());
    }
    shell.read = plan.bus_seq as usize;
    shell.run_to_end();

    assert_eq!(shell.plans.len(), 2, "no new plan");
    assert_eq!(shell.started_ticks(2), (41..=last).collect::<Vec<_>>());
    for start in shell.starts.iter().filter(|s| s.epoch == 2) {
        assert_eq!(start.fence, if start.tick <= 44 { 1 } else { 2 });
        assert_eq!(
            start.inputs.contains(&late),
            start.tick == 43,
            "tick {}",
            start.tick
        );
    }
    assert_reports_match(
        &shell.reports_of(2),
        &expected,
        41..=last,
        "across the takeover",
    );
    assert_checkpoints(&shell, &expected, &[10, 20, 30, 40, 50, 60]);
}

#[test]
fn a_new_leader_of_a_finished_world_says_it_is_finished() {
    let last = 12;
    let spec = spec(last);
    let mut shell = Shell::started(spec.clone());
    shell.run_to_end();
    let starts = shell.starts.len();

    let (plan, checkpoint, takeover) = shell.takeover(2);
    assert_eq!(checkpoint.as_ref().map(|c| c.tick), Some(last));
    shell.conductor = Conductor::take_over(spec, plan.clone(), checkpoint, takeover);
    shell.conductor.members_changed(shell.live.clone());
    shell.read = plan.bus_seq as usize;
    shell.finished = false;
    shell.run_to_end();
    assert_eq!(shell.conductor.stage(), Stage::Finished);
    assert_eq!(shell.starts.len(), starts, "no tick started");
}

#[test]
fn a_new_leader_elected_between_a_checkpoint_and_the_next_start_carries_on_after_it() {
    let last = 60;
    let spec = spec(last);
    let expected = reference(&spec, &scheduled(&[]));
    let mut shell = Shell::started(spec.clone());
    shell.run_to_tick(40);
    let checkpoint = shell.checkpoints.last().unwrap().clone();
    assert_eq!(checkpoint.tick, 40);
    assert_eq!(checkpoint.log_from_seq, 41, "the next start's position");

    // The start log read from the checkpoint's position holds nothing yet.
    let (plan, checkpoint, takeover) = shell.takeover(2);
    assert!(takeover.log.is_empty());
    assert_eq!(takeover.last_started, Some(40));
    // A shell that learns the last start only from the log it read knows none.
    let unaware = Takeover {
        last_started: None,
        ..takeover.clone()
    };
    let other = Conductor::take_over(spec.clone(), plan.clone(), checkpoint.clone(), unaware);
    shell.conductor = Conductor::take_over(spec, plan.clone(), checkpoint, takeover);
    for conductor in [&other, &shell.conductor] {
        assert_eq!(conductor.tick(), 40);
        assert_eq!(conductor.stage(), Stage::Running { epoch: 1 });
        assert_eq!(conductor.inputs_through(), 3);
    }
    shell.conductor.members_changed(shell.live.clone());
    shell.read = plan.bus_seq as usize;
    shell.run_to_end();

    assert_eq!(shell.started_ticks(1), (1..=last).collect::<Vec<_>>());
    assert_reports_match(
        &shell.reports_of(1),
        &expected,
        1..=last,
        "across the takeover",
    );
    assert_checkpoints(&shell, &expected, &[10, 20, 30, 40, 50, 60]);
}

#[test]
fn a_new_leader_elected_before_the_first_start_runs_the_worlds_setup() {
    let last = 15;
    let mut spec = spec(last);
    spec.setup = setup();
    let expected = reference(&spec, &scheduled(&[]));
    let mut shell = Shell::new(spec.clone());
    for member in [1, 2, 3] {
        shell.register(member);
    }
    assert!(matches!(shell.act(), Some(Action::WritePlan(_))));

    // The leader dies before any shard's Ready reached it.
    let (plan, checkpoint, takeover) = shell.takeover(2);
    assert_eq!((takeover.last_started, takeover.log.len()), (None, 0));
    shell.conductor = Conductor::take_over(spec, plan.clone(), checkpoint, takeover);
    shell.conductor.members_changed(shell.live.clone());
    shell.read = plan.bus_seq as usize;
    shell.run_to_end();

    assert_eq!(shell.starts[0].inputs, setup());
    assert_eq!(shell.started_ticks(1), (1..=last).collect::<Vec<_>>());
    assert_reports_match(&shell.reports_of(1), &expected, 1..=last, "new leader");
}

#[test]
fn a_process_registered_anew_under_a_members_id_is_a_lost_member() {
    let last = 60;
    let spec = spec(last);
    let late = late_ship(1, "late");
    let expected = reference(&spec, &scheduled(&[(43, late.clone())]));
    let mut shell = Shell::started(spec);
    shell.run_to_tick(42);
    assert!(shell.submit(late.clone()));
    shell.run_to_tick(47);
    assert_eq!(shell.checkpoints.last().map(|c| c.tick), Some(40));

    // Tick 48 runs; process 2 (shard 1) is restarted under the same id before the leader
    // noticed it gone: the new process registers anew and has none of shard 1's state.
    let start = shell.publish_next();
    assert_eq!(start.tick, 48);
    shell.deliver(1);
    let before = shell.live[&2];
    shell.register(2);
    assert_ne!(shell.live[&2], before);
    let Some(Action::WritePlan(plan)) = shell.act() else {
        panic!("a new plan: {:?}", shell.actions.last());
    };
    assert_eq!(plan.epoch, 2);
    assert_eq!(
        plan.members,
        vec![1, 2, 3],
        "the new process takes the shard"
    );
    assert_eq!(
        plan.registrations,
        vec![shell.live[&1], shell.live[&2], shell.live[&3]]
    );
    assert_eq!(plan.assignment, shell.spec.assignment);
    let from = plan.from.as_ref().expect("from the checkpoint");
    assert_eq!((from.epoch, from.tick), (1, 40));
    let bus_seq = shell.plans.last().unwrap().bus_seq as usize;
    let ready: Vec<(u32, u64)> = shell.bus[bus_seq..]
        .iter()
        .map(|r| match r {
            ShardReport::Ready(r) => (r.member, r.tick),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        ready,
        vec![(1, 40), (2, 40), (3, 40)],
        "every shard restored 40"
    );
    // Registering again changes nothing more.
    shell.conductor.members_changed(shell.live.clone());
    assert_eq!(shell.act(), None);

    shell.run_to_end();

    assert_eq!(shell.plans.len(), 2);
    assert_eq!(shell.started_ticks(1), (1..=48).collect::<Vec<_>>());
    assert_eq!(shell.started_ticks(2), (41..=last).collect::<Vec<_>>());
    let with_late: Vec<(u64, u64)> = shell
        .starts
        .iter()
        .filter(|s| s.inputs.contains(&late))
        .map(|s| (s.epoch, s.tick))
        .collect();
    assert_eq!(with_late, vec![(1, 43), (2, 43)]);
    assert_reports_match(
        &shell.reports_of(1),
        &expected,
        1..=47,
        "before the restart",
    );
    assert_reports_match(&shell.reports_of(2), &expected, 41..=last, "after it");
    assert_checkpoints(&shell, &expected, &[10, 20, 30, 40, 50, 60]);
}

#[test]
fn a_new_leader_finding_every_member_registered_anew_makes_a_new_plan() {
    let last = 60;
    let spec = spec(last);
    let late = late_ship(1, "late");
    let expected = reference(&spec, &scheduled(&[(43, late.clone())]));
    let mut shell = Shell::started(spec.clone());
    shell.run_to_tick(42);
    assert!(shell.submit(late.clone()));
    shell.run_to_tick(47);
    assert_eq!(shell.publish_next().tick, 48);
    shell.deliver(1);

    // The whole cluster stops with tick 48 running. New shard processes start under the
    // same member ids and register before a new leader is elected.
    let old = plan_registrations(&shell);
    for member in [1, 2, 3] {
        shell.join(member);
    }
    let (plan, checkpoint, takeover) = shell.takeover(2);
    assert_eq!(plan.registrations, old);
    assert_eq!(takeover.last_started, Some(48));
    shell.conductor = Conductor::take_over(spec, plan.clone(), checkpoint, takeover);
    shell.read = plan.bus_seq as usize;
    shell.conductor.members_changed(shell.live.clone());
    let Some(Action::WritePlan(new)) = shell.act() else {
        panic!("a new plan: {:?}", shell.actions.last());
    };
    assert_eq!((new.epoch, new.fence), (2, 2));
    assert_eq!(new.members, vec![1, 2, 3]);
    assert_eq!(
        new.registrations,
        vec![shell.live[&1], shell.live[&2], shell.live[&3]]
    );
    let from = new.from.as_ref().expect("from the checkpoint");
    assert_eq!((from.epoch, from.tick), (1, 40));
    // The new leader reads the input log from the start: everything is a repeat.
    for (position, input) in shell.inputs.clone().into_iter().enumerate() {
        assert!(!shell.conductor.submit(position as u64 + 1, input).unwrap());
    }

    shell.run_to_end();

    assert_eq!(shell.plans.len(), 2);
    assert_eq!(shell.started_ticks(1), (1..=48).collect::<Vec<_>>());
    assert_eq!(shell.started_ticks(2), (41..=last).collect::<Vec<_>>());
    for start in shell.starts.iter().filter(|s| s.epoch == 2) {
        assert_eq!(start.fence, 2);
        assert_eq!(start.inputs.contains(&late), start.tick == 43);
    }
    assert_reports_match(
        &shell.reports_of(1),
        &expected,
        1..=47,
        "before the restart",
    );
    assert_reports_match(&shell.reports_of(2), &expected, 41..=last, "after it");
    assert_checkpoints(&shell, &expected, &[10, 20, 30, 40, 50, 60]);
}

#[test]
fn a_new_leader_of_a_restarted_cluster_plans_as_the_new_processes_register() {
    let last = 60;
    let spec = spec(last);
    let expected = reference(&spec, &scheduled(&[]));
    let mut shell = Shell::started(spec.clone());
    shell.run_to_tick(46);
    assert_eq!(shell.publish_next().tick, 47);

    // The whole cluster stops; the new leader is elected before any new shard process
    // registers: it waits, tick 47 running under a plan nobody runs.
    shell.live.clear();
    shell.nodes.clear();
    let (plan, checkpoint, takeover) = shell.takeover(2);
    shell.conductor = Conductor::take_over(spec, plan.clone(), checkpoint, takeover);
    shell.read = plan.bus_seq as usize;
    shell.conductor.members_changed(shell.live.clone());
    assert_eq!(shell.act(), None);
    assert_eq!(shell.conductor.next_deadline(), None);

    // The first process back (under an old id) gets the world from the last checkpoint;
    // the others take shards at the next one.
    shell.register(2);
    let Some(Action::WritePlan(new)) = shell.act() else {
        panic!("a new plan: {:?}", shell.actions.last());
    };
    assert_eq!((new.epoch, new.members.clone()), (2, vec![2]));
    assert_eq!(new.from.as_ref().map(|c| c.tick), Some(40));
    shell.register(1);
    shell.register(3);
    assert_eq!(shell.act(), None, "no plan before the next checkpoint");

    shell.run_to_end();

    assert_eq!(shell.plans.len(), 3);
    let rebalanced = &shell.plans[2];
    assert_eq!(rebalanced.members, vec![1, 2, 3]);
    assert_eq!(rebalanced.from.as_ref().map(|c| c.tick), Some(50));
    assert_eq!(shell.started_ticks(1), (1..=47).collect::<Vec<_>>());
    assert_eq!(shell.started_ticks(3), (51..=last).collect::<Vec<_>>());
    assert_reports_match(
        &shell.reports_of(1),
        &expected,
        1..=46,
        "before the restart",
    );
    assert_reports_match(&shell.reports_of(2), &expected, 41..=50, "one process");
    assert_reports_match(&shell.reports_of(3), &expected, 51..=last, "three again");
    assert_checkpoints(&shell, &expected, &[10, 20, 30, 40, 50, 60]);
}

/// The registrations the current plan's members had.
fn plan_registrations(shell: &Shell) -> Vec<Registration> {
    shell.plans.last().expect("a plan").registrations.clone()
}
