//! A leader process: campaigns, and once elected carries out what the [`Conductor`] decides.
//! A newly elected leader of a running world reads the current plan, the last checkpoint and
//! the start log, and goes on from the last tick started: no tick is skipped or run twice.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use astroboids_cluster::conductor::{Action, Conductor, Micros};
use astroboids_cluster::leader::{Logged, Takeover};
use astroboids_cluster::messages::{ShardReport, TickReport, TickStart};
use astroboids_cluster::plan::{self, CheckpointRecord, Plan, Registration, WorldSpec};
use astroboids_cluster::scripts;
use astroboids_sim::inputs::WorldInput;
use tracing::{debug, info, warn};

use super::metrics::{self, PlanWhy};
use super::{
    INPUT_SUBJECT, OUTCOME_SUBJECT, ProcessError, REPORT_SUBJECT, START_SUBJECT, decode, encode,
    forward, registration, world_spec,
};
use crate::bus::{StartAt, TickBus};
use crate::coordination::{Coordination, Leadership, ShardEvent};
use crate::error::NetError;

/// What a leader process is given.
pub struct LeaderProcess<'a> {
    pub coordination: &'a Coordination,
    pub bus: &'a TickBus,
    /// Its name in the election (shown by status pages).
    pub name: &'a str,
}

/// How a leader's run ended without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderExit {
    /// The world reached its last tick; its last checkpoint is complete.
    Finished { tick: u64 },
    /// Asked to stop (leadership resigned).
    Stopped,
}

/// Campaigns, then leads until the world finishes, `stop` completes, or an error (losing
/// leadership is one). `on_tick` sees every finished tick.
pub async fn run_leader_process(
    process: LeaderProcess<'_>,
    mut on_tick: impl FnMut(&TickReport),
    stop: impl Future<Output = ()>,
) -> Result<LeaderExit, ProcessError> {
    let LeaderProcess {
        coordination,
        bus,
        name,
    } = process;
    tokio::pin!(stop);
    let leadership = tokio::select! {
        () = &mut stop => return Ok(LeaderExit::Stopped),
        elected = coordination.campaign(name) => elected?,
    };
    let fence = leadership.fence();
    info!(leader = %name, fence, "leadership won");
    metrics::leader_elected(fence);
    let spec = world_spec(coordination).await?;
    let plan = coordination
        .get_json::<Plan>(plan::keys::PLAN)
        .await?
        .map(|v| v.value);
    let checkpoint = coordination
        .get_json::<CheckpointRecord>(plan::keys::CHECKPOINT)
        .await?
        .map(|v| v.value);
    // The last plan: what a new plan is told apart from in the log.
    let mut last_plan = plan.clone();
    let (mut conductor, reports_from) = match plan {
        None => {
            info!(leader = %name, fence, "a new world: no plan yet");
            (Conductor::new_world(spec, fence), 1)
        }
        Some(plan) => take_over(bus, spec, plan, checkpoint, fence).await?,
    };
    let mut reports = forward::subscription(
        bus.subscribe(REPORT_SUBJECT, None, StartAt::Sequence(reports_from))
            .await?,
    );
    let mut inputs = forward::subscription(
        bus.subscribe(
            INPUT_SUBJECT,
            None,
            StartAt::Sequence(conductor.inputs_through() + 1),
        )
        .await?,
    );
    let set = coordination.shards().await?;
    // Each registered process by member id, with its lease: a process registered anew under
    // an id (another lease) is another process, and the conductor treats the old one as lost.
    let mut live: BTreeMap<u32, Registration> = set
        .leases
        .iter()
        .map(|(member, lease)| (*member, registration(*lease)))
        .collect();
    info!(fence, processes = ?live, "registered shard processes (member: lease)");
    metrics::leader_shard_processes(live.len());
    let mut shard_events = forward::shard_watch(coordination.watch_shards(set.revision).await?);
    conductor.members_changed(live.clone());
    let deposed = leadership.lost();
    tokio::pin!(deposed);
    let clock = Instant::now();
    let now = || clock.elapsed().as_micros() as Micros;
    loop {
        while let Some(action) = conductor.poll(now())? {
            match action {
                Action::WritePlan(mut plan) => {
                    plan.bus_seq = bus.last_seq().await?;
                    write(&leadership, plan::keys::PLAN, &plan).await?;
                    let why = PlanWhy::of(last_plan.as_ref(), &plan);
                    info!(
                        fence,
                        epoch = plan.epoch,
                        why = why.as_str(),
                        from_tick = plan.from_tick(),
                        members = ?plan.members,
                        leases = ?plan.registrations,
                        bus_seq = plan.bus_seq,
                        "new plan"
                    );
                    metrics::leader_plan(plan.epoch, why);
                    last_plan = Some(plan);
                }
                Action::PublishStart(start) => {
                    let id = format!("start-{}-{}", start.epoch, start.tick);
                    let (published, modules) = scripts::detach_scripts(&start);
                    for (hash, wasm) in modules {
                        bus.put_blob(&scripts::script_blob_name(hash), &wasm)
                            .await?;
                    }
                    let seq = bus.publish(START_SUBJECT, &id, encode(&published)).await?;
                    debug!(
                        epoch = start.epoch,
                        tick = start.tick,
                        inputs = start.inputs.len(),
                        seq,
                        "start published"
                    );
                    conductor.start_published(seq, now());
                }
                Action::WriteCheckpoint {
                    mut record,
                    superseded,
                } => {
                    if record.log_from_seq == 0 {
                        record.log_from_seq = bus.last_seq().await? + 1;
                    }
                    write(&leadership, plan::keys::CHECKPOINT, &record).await?;
                    for name in superseded.iter().flat_map(CheckpointRecord::piece_names) {
                        bus.delete_blob(&name).await?;
                    }
                    // And pieces of checkpoints that never completed (a plan replaced
                    // before every shard stored its piece).
                    for blob in bus.list_blobs(plan::PIECE_BLOB_PREFIX).await? {
                        if plan::is_stale_piece(&blob.name, &record) {
                            bus.delete_blob(&blob.name).await?;
                        }
                    }
                    info!(
                        fence,
                        epoch = record.epoch,
                        tick = record.tick,
                        ships = record.ships,
                        log_from_seq = record.log_from_seq,
                        superseded_tick = superseded.as_ref().map(|c| c.tick),
                        "checkpoint complete"
                    );
                    metrics::leader_checkpoint();
                }
                Action::Report(report) => {
                    let id = format!("outcome-{}-{}", report.epoch, report.tick);
                    bus.publish(OUTCOME_SUBJECT, &id, encode(&report)).await?;
                    metrics::leader_tick(&report);
                    debug!(
                        epoch = report.epoch,
                        tick = report.tick,
                        ships = report.ships,
                        tick_us = report.tick_us,
                        state_hash = %format_args!("{:016x}", report.state_hash),
                        "tick finished"
                    );
                    on_tick(&report);
                }
                Action::Finished => {
                    info!(fence, tick = conductor.tick(), "the world finished");
                    metrics::leader_left();
                    return Ok(LeaderExit::Finished {
                        tick: conductor.tick(),
                    });
                }
            }
        }
        let deadline = conductor.next_deadline().map(|at| {
            let wait = Duration::from_micros(at.saturating_sub(now()));
            tokio::time::Instant::now() + wait
        });
        tokio::select! {
            biased;
            () = &mut stop => {
                info!(
                    leader = %name,
                    fence,
                    tick = conductor.tick(),
                    "stopping: resigning leadership"
                );
                metrics::leader_left();
                let _ = leadership.resign().await;
                return Ok(LeaderExit::Stopped);
            }
            () = &mut deposed => {
                warn!(leader = %name, fence, "deposed: another leader was elected");
                metrics::leader_left();
                return Err(ProcessError::Deposed { fence });
            }
            event = shard_events.recv() => {
                match event.ok_or(ProcessError::Ended { what: "shard watch" })?? {
                    ShardEvent::Joined { shard, lease, .. } => {
                        let lease = registration(lease);
                        let before = live.insert(shard, lease);
                        if before != Some(lease) {
                            info!(fence, member = shard, lease, "shard process registered");
                        }
                    }
                    ShardEvent::Left { shard, .. } => {
                        info!(fence, member = shard, "shard process gone");
                        live.remove(&shard);
                    }
                }
                metrics::leader_shard_processes(live.len());
                conductor.members_changed(live.clone());
            }
            message = reports.recv() => {
                let message = message.ok_or(ProcessError::Ended { what: "report" })??;
                let report: ShardReport = decode("report", &message.payload)?;
                conductor.on_report(report, now())?;
            }
            // A full queue: the rest waits in the stream (and the channel) until ticks take
            // some.
            message = inputs.recv(), if conductor.accepts_inputs() => {
                let message = message.ok_or(ProcessError::Ended { what: "input" })??;
                // An input that does not decode is refused here, once: it never reaches a
                // shard.
                if let Ok(input) = postcard::from_bytes::<WorldInput>(&message.payload) {
                    if conductor.submit(message.seq, input)? {
                        metrics::leader_input_sequenced();
                    }
                } else {
                    warn!(
                        seq = message.seq,
                        bytes = message.payload.len(),
                        "an input that does not decode: refused"
                    );
                }
            }
            () = sleep_until(deadline) => {}
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn write<T: serde::Serialize>(
    leadership: &Leadership,
    key: &str,
    value: &T,
) -> Result<(), ProcessError> {
    match leadership.put_json_if_leader(key, value).await {
        Ok(_) => Ok(()),
        Err(NetError::NotLeader { fence }) => Err(ProcessError::Deposed { fence }),
        Err(e) => Err(e.into()),
    }
}

/// What a leader elected over a running world needs: the start log since the checkpoint
/// the plan restored from, read back from the bus. Returns the conductor and the bus position
/// to read shards' reports from.
async fn take_over(
    bus: &TickBus,
    spec: WorldSpec,
    plan: Plan,
    checkpoint: Option<CheckpointRecord>,
    fence: u64,
) -> Result<(Conductor, u64), ProcessError> {
    let from_tick = plan.from_tick();
    let mut newest: BTreeMap<u64, Logged> = BTreeMap::new();
    let mut inputs_through = 0;
    let mut last_started: Option<(u64, u64)> = None; // (tick, seq) under the plan's epoch
    let last = bus.last_message(START_SUBJECT).await?;
    if let Some(last) = &last {
        // Every start carries the input position read through so far: the last one says
        // where the input log goes on, even when no start is read below.
        let start: TickStart = decode("start", &last.payload)?;
        inputs_through = start.inputs_through;
    }
    let from_seq = checkpoint.as_ref().map_or(1, |c| c.log_from_seq.max(1));
    // Nothing was started since the checkpoint when its log begins after the last start.
    if let Some(last) = last.filter(|last| last.seq >= from_seq) {
        let mut starts = bus
            .subscribe(START_SUBJECT, None, StartAt::Sequence(from_seq))
            .await?;
        loop {
            let message = starts.next().await?;
            let start: TickStart = decode("start", &message.payload)?;
            inputs_through = inputs_through.max(start.inputs_through);
            if start.tick > from_tick && start.epoch <= plan.epoch {
                if start.epoch == plan.epoch && last_started.is_none_or(|(t, _)| start.tick > t) {
                    last_started = Some((start.tick, message.seq));
                }
                let replace = newest
                    .get(&start.tick)
                    .is_none_or(|l| l.start.epoch <= start.epoch);
                if replace {
                    let seq = message.seq;
                    newest.insert(start.tick, Logged { start, seq });
                }
            }
            if message.seq >= last.seq {
                break;
            }
        }
    }
    let takeover = Takeover {
        assignment: plan.assignment,
        fence,
        epoch: plan.epoch,
        from_tick,
        from_ships: plan.from.as_ref().map_or(0, |c| c.ships),
        log: newest.into_values().collect(),
        last_started: last_started.map(|(tick, _)| tick),
        inputs_through,
    };
    let reports_from = last_started.map_or(plan.bus_seq + 1, |(_, seq)| seq + 1);
    info!(
        fence,
        epoch = plan.epoch,
        from_tick,
        last_started = takeover.last_started,
        starts_read = takeover.log.len(),
        inputs_through,
        reports_from,
        "took over"
    );
    Ok((
        Conductor::take_over(spec, plan, checkpoint, takeover),
        reports_from,
    ))
}

#[cfg(test)]
mod tests {
    use astroboids_cluster::SectorAssignment;
    use astroboids_cluster::plan::Plan;

    #[test]
    fn a_plan_written_before_registrations_were_recorded_reads_without_them() {
        let plan = Plan {
            epoch: 3,
            fence: 9,
            assignment: SectorAssignment::Stripes {
                shards: 2,
                width: 1,
            },
            members: vec![0, 1],
            registrations: vec![7, 8],
            from: None,
            bus_seq: 11,
        };
        let mut json = serde_json::to_value(&plan).unwrap();
        json.as_object_mut().unwrap().remove("registrations");
        let old: Plan = serde_json::from_value(json).unwrap();
        assert_eq!(
            old,
            Plan {
                registrations: Vec::new(),
                ..plan
            }
        );
        // Its members are told apart by id only.
        assert_eq!(old.shard_of(1, 99), Some(1));
    }
}
