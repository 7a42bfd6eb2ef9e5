//! A shard process: registers itself, waits for a plan that names it, restores its shard
//! for the plan (the world's start, or the plan's checkpoint from the blob store), says it is
//! ready, then runs every tick the leader starts under that plan, storing its piece at
//! checkpoint ticks (beside the ticks that follow: only the copy holds up the loop). A newer
//! plan (a shard was lost, sectors moved) makes it restore again.
//!
//! Code map: this file is the process's life (registration, plans, epochs); `tick_runner`
//! runs one epoch's ticks and stores its checkpoint pieces.

mod tick_runner;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::{debug, info};

use astroboids_cluster::checkpoint::{self};
use astroboids_cluster::frames::{self, ExchangeFrame, Reassembly};
use astroboids_cluster::messages::{ShardReady, ShardReport, TickStart};
use astroboids_cluster::plan::{self, Plan, Registration, WorldSpec};
use astroboids_sim::SimOptions;

use super::{
    ProcessError, REPORT_SUBJECT, START_SUBJECT, decode, encode, exchange_subject, forward,
    metrics, query_subject, registration, world_spec,
};
use crate::bus::{Delivered, StartAt, TickBus};
use crate::coordination::{Coordination, KeyChange, ShardInfo};
use crate::error::NetError;

use tick_runner::{TickRunner, joined};

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
    let spec = world_spec(coordination).await?;
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
