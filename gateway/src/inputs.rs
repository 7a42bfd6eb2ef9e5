//! World inputs from players: published on the world's input log under a message id that
//! names the request, then answered from the tick report that judged them.
//!
//! Why an answer means "durable and carried out once": the publish returns only once the log
//! stored the input (file storage), and the answer waits for the verdict of the tick that
//! applied it. A request re-sent after a reconnect (to this gateway or another) publishes the
//! same message id; the log keeps the first and acknowledges the repeat with the first one's
//! position, whose verdict is the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{debug, warn};

use astroboids_cluster::messages::TickReport;
use astroboids_cluster_net::process::{INPUT_SUBJECT, OUTCOME_SUBJECT};
use astroboids_cluster_net::{StartAt, TickBus};
use astroboids_pgstore::{NewInput, PgStore};
use astroboids_protocol::messages::RequestError;
use astroboids_sim::inputs::WorldInput;

use crate::outcomes::{Outcome, Outcomes};

/// Stored tick reports read at most when looking for an input judged before this gateway
/// listened (a re-sent request of a gateway lost long ago).
const MAX_REPORTS_SEARCHED: usize = 20_000;

#[derive(Default)]
struct State {
    outcomes: Outcomes,
    waiters: HashMap<u64, Vec<oneshot::Sender<Outcome>>>,
}

/// The gateway's side of the input log (see the module docs).
pub struct WorldInputs {
    bus: Arc<TickBus>,
    /// Where the durable copy of the input log goes.
    store: PgStore,
    state: Mutex<State>,
    timeout: Duration,
}

impl WorldInputs {
    pub fn new(bus: Arc<TickBus>, store: PgStore, timeout: Duration) -> Self {
        Self {
            bus,
            store,
            state: Mutex::new(State::default()),
            timeout,
        }
    }

    /// A tick report from the leader: wakes whoever waits for the inputs it judged.
    pub fn on_report(&self, report: &TickReport) {
        let mut state = self.state.lock().expect("not poisoned");
        for position in state.outcomes.on_report(report) {
            if let Some(waiters) = state.waiters.remove(&position) {
                let outcome = state
                    .outcomes
                    .get(position)
                    .cloned()
                    .expect("just recorded");
                for waiter in waiters {
                    let _ = waiter.send(outcome.clone());
                }
            }
        }
    }

    /// Publishes `input` under `msg_id` and waits for its verdict: the tick that judged it, or
    /// the world's refusal (as `Rejected`), or `Unavailable` when the log or the leader does
    /// not answer in time.
    pub async fn submit(
        &self,
        input: &WorldInput,
        msg_id: &str,
        submitter: &str,
    ) -> Result<Outcome, RequestError> {
        let payload = postcard::to_allocvec(input).expect("inputs are plain data");
        let began = Instant::now();
        let position = self
            .bus
            .publish(INPUT_SUBJECT, msg_id, payload.clone())
            .await
            .map_err(|e| {
                RequestError::Unavailable(format!("the world's input log did not take it: {e}"))
            })?;
        // The durable copy, by the same position (a re-sent request writes the same row: no
        // change). The answer waits for it, so what a player was told of is in both.
        self.store
            .append_inputs(
                self.bus.world(),
                &[NewInput {
                    position,
                    input: &payload,
                    submitted_by: Some(submitter),
                    at_unix_s: crate::unix_now_s(),
                }],
            )
            .await
            .map_err(|e| {
                RequestError::Unavailable(format!(
                    "the input is in the world's log (position {position}) but its copy in the \
                     store failed: {e}; re-send the same request"
                ))
            })?;
        metrics::histogram!("astroboids_gateway_input_publish_seconds")
            .record(began.elapsed().as_secs_f64());
        let outcome = self.outcome(position).await?;
        metrics::histogram!("astroboids_gateway_input_seconds")
            .record(began.elapsed().as_secs_f64());
        match &outcome.verdict {
            Ok(_) => Ok(outcome),
            Err(reason) => Err(RequestError::Rejected(reason.clone())),
        }
    }

    async fn outcome(&self, position: u64) -> Result<Outcome, RequestError> {
        let (waiter, passed) = {
            let mut state = self.state.lock().expect("not poisoned");
            if let Some(outcome) = state.outcomes.get(position) {
                return Ok(outcome.clone());
            }
            let passed = state.outcomes.passed(position);
            let (tx, rx) = oneshot::channel();
            if !passed {
                state.waiters.entry(position).or_default().push(tx);
            }
            (rx, passed)
        };
        if passed {
            return self.search_reports(position).await;
        }
        match tokio::time::timeout(self.timeout, waiter).await {
            Ok(Ok(outcome)) => Ok(outcome),
            _ => {
                self.state
                    .lock()
                    .expect("not poisoned")
                    .waiters
                    .remove(&position);
                Err(RequestError::Unavailable(format!(
                    "the world has not taken the input within {:?} (is a leader running?); \
                     re-send the same request to learn what became of it",
                    self.timeout
                )))
            }
        }
    }

    /// Reads the stored tick reports from the input's position on until one judged it.
    async fn search_reports(&self, position: u64) -> Result<Outcome, RequestError> {
        debug!(
            position,
            "looking for an input's verdict in the stored reports"
        );
        let unavailable = |why: String| {
            RequestError::Unavailable(format!("cannot find what became of the input: {why}"))
        };
        let search = async {
            let mut reports = self
                .bus
                .subscribe(OUTCOME_SUBJECT, None, StartAt::Sequence(position))
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            for _ in 0..MAX_REPORTS_SEARCHED {
                let message = reports
                    .next()
                    .await
                    .map_err(|e| unavailable(e.to_string()))?;
                let Ok(report) = postcard::from_bytes::<TickReport>(&message.payload) else {
                    warn!(
                        seq = message.seq,
                        "a tick report that does not decode: skipped"
                    );
                    continue;
                };
                if let Some(i) = report.positions.iter().position(|&p| p == position) {
                    return Ok(Outcome {
                        tick: report.tick,
                        verdict: report.verdicts[i].clone(),
                    });
                }
            }
            Err(unavailable(format!(
                "no report among the {MAX_REPORTS_SEARCHED} after it names it"
            )))
        };
        let outcome = tokio::time::timeout(self.timeout, search)
            .await
            .map_err(|_| unavailable(format!("no report within {:?}", self.timeout)))??;
        match &outcome.verdict {
            Ok(_) => Ok(outcome),
            Err(reason) => Err(RequestError::Rejected(reason.clone())),
        }
    }
}
