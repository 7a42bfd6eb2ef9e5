//! A worker thread's side of the pool: the requests it takes, what it replies, and its loop,
//! which owns the instances of its ships until the pool is dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender};

use crate::compiled::CompiledScript;
use crate::error::ScriptError;
use crate::instance::{InstanceState, PreparedInstance, ScriptInstance};

use super::{PREPARED_PER_WORKER_MAX, ScriptJob, ScriptResult, ShipSlice, StartLogs};

/// Ships and the scripts to prepare for them.
pub(super) type Prepares = Vec<(u64, Arc<CompiledScript>)>;

pub(super) enum Request {
    /// Make these instances ahead of their start; no reply.
    Prepare(Prepares),
    /// Drop the prepared instances of these ships; no reply.
    Unprepare(Vec<u64>),
    /// Answered once every earlier request is done.
    Settle,
    AttachMany(Vec<(u64, Arc<CompiledScript>, u64)>),
    Restore {
        ship: u64,
        script: Arc<CompiledScript>,
        state: Box<InstanceState>,
    },
    Detach {
        ship: u64,
    },
    Run {
        jobs: Vec<ScriptJob>,
        after: AfterRuns,
    },
    Snapshot {
        ship: u64,
    },
    /// The states of these ships (a checkpoint's capture), in the given order, sent to `to`;
    /// no reply.
    Snapshots {
        ships: Vec<u64>,
        to: Sender<Vec<(u64, InstanceState)>>,
    },
    Digests,
}

/// What a worker does for the instances that ran once it has answered their runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterRuns {
    Nothing,
    /// Take their states (see [`super::ScriptWorkers::run_keeping_states`]).
    KeepStates,
    /// Ready image buffers for those in the slice (see
    /// [`super::ScriptWorkers::run_warming_image_buffers`]).
    WarmImageBuffers(ShipSlice),
}

pub(super) enum Reply {
    Settled,
    Attached(Result<(), ScriptError>),
    AttachedMany(Vec<(u64, Result<StartLogs, ScriptError>)>),
    Detached(bool),
    Ran(Vec<ScriptResult>),
    Snapshot(Option<InstanceState>),
    Digests(Vec<(u64, u128)>),
}

/// A worker's loop: owns its ships' instances until the pool is dropped.
pub(super) fn serve(requests: Receiver<Request>, replies: SyncSender<Reply>) {
    let mut ships: BTreeMap<u64, ScriptInstance> = BTreeMap::new();
    let mut prepared: BTreeMap<u64, PreparedInstance> = BTreeMap::new();
    // States taken after answering runs (`run_keeping_states`), each equal to its instance's
    // current state: a request that changes an instance drops its entry, the next runs all.
    let mut kept: BTreeMap<u64, InstanceState> = BTreeMap::new();
    for request in requests {
        let reply = match request {
            Request::Prepare(asked) => {
                for (ship, script) in asked {
                    if prepared.len() >= PREPARED_PER_WORKER_MAX && !prepared.contains_key(&ship) {
                        continue;
                    }
                    // One that cannot be made is not kept: its start will fail the same way.
                    if let Ok(instance) = ScriptInstance::prepare(&script) {
                        prepared.insert(ship, instance);
                    }
                }
                continue;
            }
            Request::Unprepare(ships) => {
                for ship in ships {
                    prepared.remove(&ship);
                }
                continue;
            }
            Request::Settle => Reply::Settled,
            Request::AttachMany(starts) => {
                let started = starts
                    .into_iter()
                    .map(|(ship, script, random_seed)| {
                        let instance = match prepared.remove(&ship) {
                            Some(ready) if Arc::ptr_eq(ready.script(), &script) => {
                                ready.start(random_seed)
                            }
                            _ => ScriptInstance::new(&script, random_seed),
                        };
                        let started = instance.map(|mut instance| {
                            let logs = instance.take_start_logs();
                            kept.remove(&ship);
                            ships.insert(ship, instance);
                            logs
                        });
                        (ship, started)
                    })
                    .collect();
                Reply::AttachedMany(started)
            }
            Request::Restore {
                ship,
                script,
                state,
            } => Reply::Attached(
                // The start function's random draws are overwritten by the restored state.
                ScriptInstance::new(&script, 0).and_then(|mut instance| {
                    instance.restore_state(&state)?;
                    kept.remove(&ship);
                    ships.insert(ship, instance);
                    Ok(())
                }),
            ),
            Request::Detach { ship } => {
                kept.remove(&ship);
                Reply::Detached(ships.remove(&ship).is_some())
            }
            Request::Snapshot { ship } => {
                Reply::Snapshot(ships.get_mut(&ship).map(ScriptInstance::state))
            }
            Request::Snapshots { ships: wanted, to } => {
                // Sized up front: grown by doubling, a list of 5k states reallocated onto new
                // pages at every checkpoint.
                let mut states = Vec::with_capacity(wanted.len());
                states.extend(wanted.into_iter().filter_map(|ship| {
                    let instance = ships.get_mut(&ship)?;
                    Some((ship, kept.remove(&ship).unwrap_or_else(|| instance.state())))
                }));
                // Nobody waiting (a world dropped mid-checkpoint) is not an error here.
                let _ = to.send(states);
                continue;
            }
            Request::Digests => Reply::Digests(
                ships
                    .iter_mut()
                    .map(|(ship, instance)| {
                        let digest = match kept.get(ship) {
                            Some(state) => state.digest(),
                            None => instance.state_digest(),
                        };
                        (*ship, digest)
                    })
                    .collect(),
            ),
            Request::Run { jobs, after } => {
                kept.clear();
                let results: Vec<ScriptResult> = jobs
                    .into_iter()
                    .filter_map(|job| Some(run_job(ships.get_mut(&job.ship)?, job)))
                    .collect();
                let ran: Vec<u64> = match after {
                    AfterRuns::Nothing => Vec::new(),
                    AfterRuns::KeepStates => results.iter().map(|r| r.ship).collect(),
                    AfterRuns::WarmImageBuffers(slice) => results
                        .iter()
                        .map(|r| r.ship)
                        .filter(|&ship| slice.holds(ship))
                        .collect(),
                };
                if replies.send(Reply::Ran(results)).is_err() {
                    return;
                }
                // After the reply, so the tick goes on meanwhile; before any later request,
                // so kept states are those as of the runs.
                for ship in ran {
                    let Some(instance) = ships.get_mut(&ship) else {
                        continue;
                    };
                    if after == AfterRuns::KeepStates {
                        kept.insert(ship, instance.state());
                    } else {
                        instance.warm_image_buffer();
                    }
                }
                continue;
            }
        };
        if replies.send(reply).is_err() {
            return;
        }
    }
}

pub(super) fn run_job(instance: &mut ScriptInstance, job: ScriptJob) -> ScriptResult {
    let started = std::time::Instant::now();
    let report = instance.run_tick(job.budget, job.random_seed, &job.sensors);
    ScriptResult {
        ship: job.ship,
        report,
        wall_ns: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
    }
}
