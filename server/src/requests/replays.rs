//! Recordings and traces: listing the finished recordings, and cutting a ship's trace out of
//! one (re-simulated off the tick thread by [`TraceJob`]).

use std::path::PathBuf;

use astroboids_engine::NetId;
use astroboids_host::replay::Replay;
use astroboids_protocol::messages::{ReplayListing, RequestError, Response};
use astroboids_sim::SimOptions;

use std::time::Duration;

use super::{Connection, WorldServer, count_request};

/// Largest trace sent (JSON), below the client's frame limit with room for the envelope.
pub const MAX_TRACE_BYTES: usize = astroboids_net::client::CLIENT_MAX_FRAME_BYTES - 64 * 1024;

/// A trace to cut from a finished recording, off the tick thread (it re-simulates).
#[derive(Debug, Clone)]
pub struct TraceJob {
    pub replay: PathBuf,
    pub ship: u64,
    pub from_tick: u64,
    pub to_tick: u64,
}

impl TraceJob {
    /// Re-simulates the recording and cuts the ship's trace out of it.
    pub fn run(&self) -> Response {
        let result = Replay::open(&self.replay)
            .and_then(|replay| {
                astroboids_host::trace::export(
                    &replay,
                    NetId(self.ship),
                    Some(self.from_tick),
                    Some(self.to_tick),
                    SimOptions::default(),
                )
            })
            .map_err(|e| RequestError::Unavailable(format!("the trace cannot be made: {e}")))
            .and_then(|trace| {
                serde_json::to_vec(&trace)
                    .map_err(|e| RequestError::Unavailable(format!("the trace: {e}")))
            })
            .and_then(|json| {
                // It must fit in one response frame the client accepts.
                if json.len() > MAX_TRACE_BYTES {
                    Err(RequestError::Rejected(format!(
                        "the trace of ticks {}..={} is {} bytes, over the {MAX_TRACE_BYTES} a \
                         response may carry: ask for fewer ticks",
                        self.from_tick,
                        self.to_tick,
                        json.len()
                    )))
                } else {
                    Ok(json)
                }
            });
        match result {
            Ok(json) => Response::Trace {
                ship: self.ship,
                from_tick: self.from_tick,
                to_tick: self.to_tick,
                json,
            },
            Err(e) => Response::Error(e),
        }
    }
}

impl WorldServer {
    /// A trace request: checked here (rate limits, login, ownership, range), carried out by
    /// the caller off the tick thread with [`TraceJob::run`].
    pub fn prepare_trace(
        &mut self,
        connection: &mut Connection,
        ship: u64,
        from_tick: u64,
        to_tick: u64,
        now: u64,
    ) -> Result<TraceJob, RequestError> {
        let result = self.check_trace(connection, ship, from_tick, to_tick, now);
        count_request("download_trace", result.as_ref().err());
        result
    }

    pub(super) fn check_trace(
        &mut self,
        connection: &mut Connection,
        ship: u64,
        from_tick: u64,
        to_tick: u64,
        now: u64,
    ) -> Result<TraceJob, RequestError> {
        self.limits
            .check(connection.ip, connection.user(), Duration::from_secs(now))?;
        let session = self.live_session(connection, now)?;
        self.check_owner(&session, ship)?;
        if from_tick > to_tick || to_tick - from_tick >= self.rules.max_trace_ticks {
            return Err(RequestError::Invalid(format!(
                "ticks {from_tick}..={to_tick}: a trace covers 1 to {} ticks, from <= to",
                self.rules.max_trace_ticks
            )));
        }
        let replays = self.replays();
        let covering = replays
            .iter()
            .find(|r| r.first_tick <= from_tick && to_tick <= r.last_tick)
            .ok_or_else(|| {
                let ranges: Vec<String> = replays
                    .iter()
                    .map(|r| format!("{}..={}", r.first_tick, r.last_tick))
                    .collect();
                RequestError::Rejected(format!(
                    "no finished recording covers ticks {from_tick}..={to_tick}; recorded: {}",
                    if ranges.is_empty() {
                        "none yet".to_string()
                    } else {
                        ranges.join(", ")
                    }
                ))
            })?;
        let dir = &self.rules.replays.as_ref().expect("listed replays").dir;
        Ok(TraceJob {
            replay: dir.join(&covering.name),
            ship,
            from_tick,
            to_tick,
        })
    }

    /// Finished recordings, oldest first.
    pub(super) fn replays(&self) -> Vec<ReplayListing> {
        self.world
            .recording()
            .finished_files()
            .into_iter()
            .map(|f| ReplayListing {
                name: f.name,
                first_tick: f.first_tick,
                last_tick: f.last_tick,
                bytes: f.bytes,
            })
            .collect()
    }
}
