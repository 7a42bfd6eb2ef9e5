//! A shard process: registers itself, waits for a plan that names it, restores its shard
//! for the plan (the world's start, or the plan's checkpoint from the blob store), says it is
//! ready, then runs every tick the leader starts under that plan, storing its piece at
//! checkpoint ticks (beside the ticks that follow: only the copy holds up the loop). A newer
//! plan (a shard was lost, sectors moved) makes it restore again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use astroboids_cluster::checkpoint::{self, PendingPiece};
use astroboids_cluster::frames::{self, ExchangeFrame, Reassembly};
use astroboids_cluster::live::{self, ShipQuery};
use astroboids_cluster::messages::{
    Exchange, PieceStored, ShardReady, ShardReport, TickDone, TickStart,
};
use astroboids_cluster::plan::{self, Plan, Registration, WorldSpec};
use astroboids_cluster::scripts;
use astroboids_cluster::shard_node::{Phase, ShardError, ShardNode};
use astroboids_sim::SimOptions;

use super::{
    ProcessError, REPORT_SUBJECT, START_SUBJECT, decode, encode, exchange_subject, forward,
    metrics, query_subject, registration, views_subject,
};
use crate::bus::{Delivered, LiveMessage, StartAt, TickBus};
use crate::coordination::{Coordination, KeyChange, ShardInfo};
use crate::error::NetError;

/// What a shard process is given.
pub struct ShardProcess<'a> {
    pub coordination: &'a Coordination,
    pub bus: &'a TickBus,
    /// The id it registers under (a plan names processes by it).
    pub member: u32,
    /// Each restored shard's sim options (script workers, artifact cache).
    pub options: &'a dyn Fn() -> SimOptions,
    /// The largest exchange frame to publish (`None`: as large as the bus allows). An
    /// exchange larger than this travels as several frames.
    pub frame_limit: Option<usize>,
}

/// Why a shard process's run ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardExit {
    /// The world reached its last tick and this shard stored its piece of it.
    Finished { tick: u64 },
    /// Asked to stop.
    Stopped,
}

enum EpochEnd {
    NewPlan(Plan),
    Exit(ShardExit),
}

/// Runs the shard process until the world finishes, `stop` completes, or an error.
pub async fn run_shard_process(
    process: ShardProcess<'_>,
    stop: impl Future<Output = ()>,
) -> Result<ShardExit, ProcessError> {
    let (coordination, member) = (process.coordination, process.member);
    coordination
        .register_shard(member, &ShardInfo::this_process())
        .await?;
    // A plan that names this member id for an earlier registration (a process that had the
    // id before this one) is not this process's: the leader makes a new one.
    let registration = registration(coordination.lease_id());
    info!(
        member,
        world = %coordination.world(),
        lease = coordination.lease_id(),
        lease_ttl_s = coordination.lease_ttl_s(),
        "registered"
    );
    let spec = coordination
        .get_json::<WorldSpec>(plan::keys::SPEC)
        .await?
        .ok_or(ProcessError::NoSpec {
            key: plan::keys::SPEC,
        })?
        .value
        .validated()?;
    debug!(
        member,
        shards = spec.shards(),
        seed = spec.seed,
        tick_ms = spec.tick_ms,
        checkpoint_every = spec.checkpoint_every,
        last_tick = ?spec.last_tick,
        "world spec read"
    );
    // Watch first, then read: no plan written between the two is missed.
    let mut plans = forward::key_watch(coordination.watch_json::<Plan>(plan::keys::PLAN, 0).await?);
    let mut latest = coordination
        .get_json::<Plan>(plan::keys::PLAN)
        .await?
        .map(|v| v.value);
    tokio::pin!(stop);
    let lease_lost = coordination.lease_lost();
    tokio::pin!(lease_lost);
    let mut ran_epoch = 0;
    // The last plan not for this process that was logged.
    let mut noted_epoch = 0;
    loop {
        let plan = match latest.take() {
            Some(plan)
                if plan.epoch > ran_epoch && plan.shard_of(member, registration).is_some() =>
            {
                plan
            }
            other => {
                latest = other;
                if let Some(plan) = &latest
                    && plan.epoch != noted_epoch
                    && plan.shard_of(member, registration).is_none()
                {
                    noted_epoch = plan.epoch;
                    if plan.shard_of_member(member).is_some() {
                        info!(
                            member,
                            epoch = plan.epoch,
                            "the plan names an earlier process under this member id: waiting \
                             for the leader's next"
                        );
                    } else {
                        debug!(member, epoch = plan.epoch, "a plan without this process");
                    }
                }
                tokio::select! {
                    () = &mut stop => {
                        info!(member, "stopping");
                        return Ok(ShardExit::Stopped);
                    }
                    () = &mut lease_lost => return Err(lease_error(coordination)),
                    change = plans.recv() => {
                        latest = newer(latest.take(), change)?;
                        continue;
                    }
                }
            }
        };
        info!(
            member,
            epoch = plan.epoch,
            shard = plan.shard_of(member, registration),
            from_tick = plan.from_tick(),
            shards = plan.members.len(),
            fence = plan.fence,
            "plan received"
        );
        ran_epoch = plan.epoch;
        let end = run_epoch(
            &process,
            &spec,
            plan,
            registration,
            &mut plans,
            &mut stop,
            &mut lease_lost,
        )
        .await?;
        match end {
            EpochEnd::NewPlan(plan) => latest = Some(plan),
            EpochEnd::Exit(exit) => {
                if exit == ShardExit::Stopped {
                    let _ = coordination.deregister_shard(member).await;
                }
                return Ok(exit);
            }
        }
    }
}

fn lease_error(coordination: &Coordination) -> ProcessError {
    ProcessError::Net(NetError::LeaseLost {
        lease_id: coordination.lease_id(),
        ttl_s: coordination.lease_ttl_s(),
    })
}

/// The newer of two plans.
fn newer(
    current: Option<Plan>,
    change: Option<Result<KeyChange<Plan>, NetError>>,
) -> Result<Option<Plan>, ProcessError> {
    match change {
        None => Err(ProcessError::Ended { what: "plan watch" }),
        Some(Err(NetError::Json { .. })) => Ok(current), // not a plan: keep the last good one
        Some(Err(e)) => Err(e.into()),
        Some(Ok(KeyChange::Deleted { .. })) => Ok(current),
        Some(Ok(KeyChange::Put(v))) => Ok(match current {
            Some(c) if c.epoch >= v.value.epoch => Some(c),
            _ => Some(v.value),
        }),
    }
}

/// Restores this process's shard for `plan` and runs its ticks until the plan changes or the
/// process is to exit.
async fn run_epoch(
    process: &ShardProcess<'_>,
    spec: &WorldSpec,
    plan: Plan,
    registration: Registration,
    plans: &mut mpsc::Receiver<Result<KeyChange<Plan>, NetError>>,
    stop: &mut (impl Future<Output = ()> + Unpin),
    lease_lost: &mut (impl Future<Output = ()> + Unpin),
) -> Result<EpochEnd, ProcessError> {
    let bus = process.bus;
    let epoch = plan.epoch;
    let shard = plan
        .shard_of(process.member, registration)
        .expect("the caller checked the plan names this process");
    let mut pieces = Vec::new();
    if let Some(record) = &plan.from {
        for name in record.piece_names() {
            let bytes = bus
                .get_blob(&name)
                .await?
                .ok_or_else(|| ProcessError::MissingPiece { name: name.clone() })?;
            pieces.push(checkpoint::decode_piece(&name, &bytes)?);
        }
    }
    let restoring = Instant::now();
    let mut node = checkpoint::shard_for_plan(spec, &plan, shard, &pieces, (process.options)())?;
    drop(pieces);
    info!(
        member = process.member,
        epoch,
        shard,
        tick = node.sim().tick(),
        ships = node.ships(),
        took_ms = restoring.elapsed().as_millis() as u64,
        "restored"
    );
    metrics::shard_restored(epoch, shard, node.sim().tick(), node.ships());
    // Subscribed before saying ready: the leader starts the epoch only after every shard's
    // ready, and a shard sends exchanges only after a start.
    let mut starts = forward::subscription(bus.subscribe(START_SUBJECT, None, StartAt::New).await?);
    let mut exchanges = forward::subscription(
        bus.subscribe(&exchange_subject(epoch, shard), None, StartAt::New)
            .await?,
    );
    let mut queries = bus.subscribe_live(&query_subject(shard)).await?;
    let ready = ShardReport::Ready(ShardReady {
        epoch,
        shard,
        member: process.member,
        tick: node.sim().tick(),
    });
    bus.publish(
        REPORT_SUBJECT,
        &format!("ready-{epoch}-{shard}"),
        encode(&ready),
    )
    .await?;
    debug!(member = process.member, epoch, shard, "ready");
    let message_bytes = process
        .frame_limit
        .map_or(bus.max_payload(), |limit| limit.min(bus.max_payload()));
    let mut runner = TickRunner {
        bus,
        spec,
        epoch,
        frame_bytes: frames::frame_payload(message_bytes),
        reassembly: Reassembly::default(),
        modules: HashMap::new(),
        early: Vec::new(),
        began: Instant::now(),
        ran_us: 0,
        bytes_out: 0,
        frames_out: 0,
        shards: plan.assignment.shards(),
        storing: None,
        piece_scratch: Arc::default(),
    };
    let end = loop {
        tokio::select! {
            biased;
            () = &mut *stop => {
                info!(member = process.member, epoch, shard, "stopping");
                break EpochEnd::Exit(ShardExit::Stopped);
            }
            () = &mut *lease_lost => return Err(lease_error(process.coordination)),
            // A failed store fails the process now, not at the next checkpoint.
            stored = async { runner.storing.as_mut().expect("guarded").await },
                if runner.storing.is_some() =>
            {
                runner.storing = None;
                joined(stored)?;
            }
            change = plans.recv() => {
                if let Some(newer) = newer(None, change)?.filter(|p| p.epoch > epoch) {
                    info!(
                        member = process.member,
                        epoch,
                        shard,
                        tick = node.sim().tick(),
                        new_epoch = newer.epoch,
                        "a newer plan: leaving this epoch"
                    );
                    break EpochEnd::NewPlan(newer);
                }
            }
            message = starts.recv() => {
                let start: TickStart = decode("start", &received(message, "start")?.payload)?;
                if let Some(exit) = runner.on_start(&mut node, start).await? {
                    break EpochEnd::Exit(exit);
                }
            }
            message = queries.next() => {
                let message = message?;
                runner.on_query(&mut node, message).await?;
            }
            message = exchanges.recv() => {
                let frame: ExchangeFrame =
                    decode("exchange frame", &received(message, "exchange")?.payload)?;
                if let Some(exchange) = runner.reassembly.push(frame)?
                    && let Some(exit) = runner.on_exchange(&mut node, exchange).await?
                {
                    break EpochEnd::Exit(exit);
                }
            }
        }
    };
    // A piece being stored is finished first, whatever ends the epoch: leaving (a stop, a new
    // plan) does not drop a checkpoint half-way.
    runner.finish_storing().await?;
    Ok(end)
}

fn received(
    message: Option<Result<Delivered, NetError>>,
    what: &'static str,
) -> Result<Delivered, ProcessError> {
    Ok(message.ok_or(ProcessError::Ended { what })??)
}

/// One epoch's ticks: what arrives is handed to the shard in protocol order, what it returns
/// is published.
struct TickRunner<'a> {
    bus: &'a TickBus,
    spec: &'a WorldSpec,
    epoch: u64,
    /// The most payload bytes one exchange frame carries.
    frame_bytes: usize,
    reassembly: Reassembly,
    /// Script modules fetched from the blob store, by hash.
    modules: HashMap<u128, Vec<u8>>,
    /// Exchanges for the next tick that came before its start reached this shard.
    early: Vec<Exchange>,
    began: Instant,
    ran_us: u64,
    bytes_out: u64,
    /// Bus messages this tick's exchanges took (frames).
    frames_out: u32,
    /// Shards in the plan (what players' view pieces say makes a tick whole).
    shards: u32,
    /// The checkpoint piece being finished, compressed and stored beside the ticks: at most
    /// one (see [`TickRunner::report`]).
    storing: Option<JoinHandle<Result<(), ProcessError>>>,
    /// Where every piece is serialized before compression (see
    /// `checkpoint::encode_piece_reusing`).
    piece_scratch: Arc<Mutex<Vec<u8>>>,
}

impl TickRunner<'_> {
    async fn on_start(
        &mut self,
        node: &mut ShardNode,
        start: TickStart,
    ) -> Result<Option<ShardExit>, ProcessError> {
        let Phase::Idle { next } = node.phase() else {
            return Ok(None); // a repeat of the running tick's start
        };
        if start.epoch != self.epoch || start.tick < next {
            return Ok(None); // another plan's, or already run
        }
        let tick = start.tick;
        for hash in scripts::missing_scripts(&start, &self.modules) {
            let name = scripts::script_blob_name(hash);
            if let Some(wasm) = self.bus.get_blob(&name).await? {
                self.modules.insert(hash, wasm);
            }
        }
        let start = scripts::attach_scripts(start, &self.modules)?;
        let fence = start.fence;
        self.began = Instant::now();
        let outgoing = match node.start_tick(start) {
            Ok(outgoing) => outgoing,
            // A deposed leader that has not noticed yet: its starts are not obeyed.
            Err(ShardError::Fenced { .. }) => {
                debug!(
                    epoch = self.epoch,
                    tick, fence, "a start from a deposed leader: not obeyed"
                );
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        self.ran_us = self.began.elapsed().as_micros() as u64;
        self.bytes_out = 0;
        self.frames_out = 0;
        let from = node.id();
        for (to, exchange) in &outgoing {
            let subject = exchange_subject(self.epoch, *to);
            for frame in frames::split(exchange, self.frame_bytes)? {
                let payload = encode(&frame);
                self.bytes_out += payload.len() as u64;
                self.frames_out += 1;
                let id = format!("x-{}-{tick}-{from}-{to}-{}", self.epoch, frame.index);
                self.bus.publish(&subject, &id, payload).await?;
            }
        }
        if let Some(done) = node.finish_alone()? {
            return self.report(node, done).await;
        }
        for exchange in std::mem::take(&mut self.early) {
            if let Some(exit) = self.on_exchange(node, exchange).await? {
                return Ok(Some(exit));
            }
        }
        Ok(None)
    }

    async fn on_exchange(
        &mut self,
        node: &mut ShardNode,
        exchange: Exchange,
    ) -> Result<Option<ShardExit>, ProcessError> {
        match node.phase() {
            Phase::Idle { next } if exchange.tick == next => {
                self.early.push(exchange);
                Ok(None)
            }
            Phase::Exchanging { tick } if exchange.tick == tick => match node.receive(exchange)? {
                Some(done) => self.report(node, done).await,
                None => Ok(None),
            },
            _ => Ok(None), // a repeat of an exchange already taken in
        }
    }

    /// A gateway's question about ships: answered from the world as it stands (between
    /// ticks, or mid-exchange, when ships that just left are elsewhere). A query that does
    /// not decode is answered with nothing and logged: the asker's timeout says the rest.
    async fn on_query(
        &mut self,
        node: &mut ShardNode,
        message: LiveMessage,
    ) -> Result<(), ProcessError> {
        let Some(reply) = message.reply else {
            return Ok(());
        };
        let query: ShipQuery = match decode("ship query", &message.payload) {
            Ok(query) => query,
            Err(e) => {
                warn!(error = %e, "a ship query that does not decode: ignored");
                return Ok(());
            }
        };
        let facts = live::answer_query(node, &query);
        metrics::shard_query_answered();
        self.bus.reply_live(&reply, encode(&facts)).await?;
        Ok(())
    }

    /// Every player's piece of the finished tick, for the gateways (live: not in the log;
    /// a gateway that is away misses it).
    async fn publish_views(&mut self, node: &mut ShardNode) -> Result<(), ProcessError> {
        let began = Instant::now();
        let views = live::shard_views(node, self.epoch, self.shards);
        let (tick, shard, players) = (views.tick, views.shard, views.players.len());
        let (parts, left_out) = live::split_views(views, self.bus.live_max_payload());
        if left_out > 0 {
            warn!(
                tick,
                shard, left_out, "player views too large for a message: left out"
            );
        }
        let subject = views_subject(shard);
        let mut bytes = 0;
        for part in &parts {
            let payload = encode(part);
            bytes += payload.len() as u64;
            self.bus.publish_live(&subject, payload).await?;
        }
        metrics::shard_views_published(
            players,
            bytes,
            left_out,
            began.elapsed().as_micros() as u64,
        );
        Ok(())
    }

    /// Reports a finished tick, and stores this shard's piece at checkpoint ticks.
    async fn report(
        &mut self,
        node: &mut ShardNode,
        mut done: TickDone,
    ) -> Result<Option<ShardExit>, ProcessError> {
        let (epoch, tick, shard) = (self.epoch, done.tick, node.id());
        self.reassembly.forget_before(tick + 1);
        done.figures.tick_us = self.ran_us;
        done.figures.exchange_bytes_out = self.bytes_out;
        done.figures.exchange_messages_out = self.frames_out;
        done.figures.exchange_us =
            (self.began.elapsed().as_micros() as u64).saturating_sub(self.ran_us);
        metrics::shard_tick_done(&done);
        debug!(
            epoch,
            tick,
            shard,
            ships = done.ships,
            tick_us = done.figures.tick_us,
            exchange_us = done.figures.exchange_us,
            handoffs_out = done.figures.handoffs_out,
            halo_out = done.figures.halo_out,
            exchange_bytes_out = done.figures.exchange_bytes_out,
            exchange_frames_out = done.figures.exchange_messages_out,
            "tick done"
        );
        let report = ShardReport::Done(done);
        self.bus
            .publish(
                REPORT_SUBJECT,
                &format!("done-{epoch}-{tick}-{shard}"),
                encode(&report),
            )
            .await?;
        self.publish_views(node).await?;
        if !self.spec.is_checkpoint_tick(tick) {
            return Ok(None);
        }
        // One piece in flight at most: a store slower than the checkpoint interval holds up
        // this tick rather than piling pieces up in memory.
        self.finish_storing().await?;
        // Only the copy is the loop's: the script states, compression and upload go on while
        // the next ticks run, and the leader counts the checkpoint when every shard's
        // "stored" report is in.
        let began = Instant::now();
        let piece = checkpoint::capture_later(node);
        let copied_us = began.elapsed().as_micros() as u64;
        let bus = self.bus.clone();
        self.storing = Some(tokio::spawn(store_piece(
            bus,
            epoch,
            piece,
            self.piece_scratch.clone(),
            began,
            copied_us,
        )));
        if self.spec.last_tick == Some(tick) {
            // The world's end: finished means stored.
            self.finish_storing().await?;
            return Ok(Some(ShardExit::Finished { tick }));
        }
        Ok(None)
    }

    /// Waits for the piece being stored, if any; its error is this process's.
    async fn finish_storing(&mut self) -> Result<(), ProcessError> {
        match self.storing.take() {
            Some(task) => joined(task.await),
            None => Ok(()),
        }
    }
}

/// A finished task's output; a panic in it goes on here.
fn joined<T>(result: Result<T, tokio::task::JoinError>) -> T {
    match result {
        Ok(output) => output,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("a checkpoint store task was cancelled, which nothing does: {e}"),
        },
    }
}

/// Finishes a captured piece (its script states), compresses and stores it, then reports it
/// stored.
async fn store_piece(
    bus: TickBus,
    epoch: u64,
    piece: PendingPiece,
    scratch: Arc<Mutex<Vec<u8>>>,
    began: Instant,
    copied_us: u64,
) -> Result<(), ProcessError> {
    let (tick, shard) = (piece.tick(), piece.shard());
    // Waiting for the script workers and compressing are CPU work, not for the async threads.
    let encoded = tokio::task::spawn_blocking(move || {
        let piece = piece.finish();
        let ships = piece.world.ships.len() as u64;
        // One piece is in flight at a time, so the lock is never waited for.
        let mut scratch = scratch.lock().unwrap_or_else(|e| e.into_inner());
        (
            checkpoint::encode_piece_reusing(&piece, &mut scratch),
            ships,
        )
    })
    .await;
    let (bytes, ships) = joined(encoded);
    bus.put_blob(&plan::piece_blob_name(epoch, tick, shard), &bytes)
        .await?;
    metrics::shard_piece_timed(copied_us, began.elapsed().as_micros() as u64);
    let stored = ShardReport::Stored(PieceStored {
        epoch,
        tick,
        shard,
        bytes: bytes.len() as u64,
        ships,
    });
    bus.publish(
        REPORT_SUBJECT,
        &format!("stored-{epoch}-{tick}-{shard}"),
        encode(&stored),
    )
    .await?;
    metrics::shard_piece_stored(bytes.len() as u64);
    info!(
        epoch,
        tick,
        shard,
        ships,
        bytes = bytes.len() as u64,
        "checkpoint piece stored"
    );
    Ok(())
}
