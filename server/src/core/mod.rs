//! The server's I/O-free core, as quinn-proto is to quinn: [`ServerCore::handle`] takes what
//! happened (a connection opened or closed, a request, an acknowledgement, a password checked,
//! a trace ready) at an explicit time and returns [`Effect`]s for the shell to carry out;
//! [`ServerCore::tick`] runs the world when [`ServerCore::next_due`] says a tick is due.
//!
//! Promises kept here, so that every shell (the single server, a cluster gateway) keeps them:
//! - An answer to a request that writes is released only after the commit that makes its
//!   change durable: held answers go out after the group commit that starts each tick (one
//!   flush for all of them).
//! - Exactly once across reconnects: requests of an authenticated client instance are looked
//!   up in the [`ResumeCache`] by (session token, instance, id) before anything is done.
//! - Bounded: password jobs in all and per address, one trace at a time, live updates per
//!   connection (the shell drops what a slow client cannot take).

mod events;
mod live;
mod passwords;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use astroboids_engine::Pacer;
use astroboids_host::persistent::HostError;
use astroboids_protocol::messages::{Request, RequestError, Response};
use astroboids_protocol::resume::{Begin, ResumeCache, ResumeKey};

pub use self::events::{ConnId, CoreRules, Effect, Event};
use crate::requests::{Connection, StepReport, WorldServer};
use live::Subscription;

/// How often remembered answers past their time are forgotten.
const RESUME_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// An answer waiting for the next commit.
struct HeldAnswer {
    conn: ConnId,
    id: u64,
    response: Response,
    resume: Option<ResumeKey>,
}

/// One open connection.
struct ConnectionState {
    connection: Connection,
    max_datagram_bytes: usize,
    subscription: Option<Subscription>,
    /// A registration or login of this connection is with the password workers: its later
    /// requests wait in `waiting`, so they are carried out (and answered) in the order sent.
    /// The session's in-flight cap bounds `waiting`.
    password_pending: bool,
    waiting: VecDeque<(u64, u64, Request)>,
}

/// The world, the connections' state, and the rules between them (see the module docs).
pub struct ServerCore {
    server: WorldServer,
    rules: CoreRules,
    connections: BTreeMap<ConnId, ConnectionState>,
    resume: ResumeCache,
    held: Vec<HeldAnswer>,
    /// Connections with a held answer: their later answers queue behind it, so each
    /// connection's answers keep the order of its requests.
    holding: HashSet<ConnId>,
    /// When the resume cache was last swept of expired answers.
    resume_expired_at: Duration,
    /// Password jobs out, per address.
    password_jobs: HashMap<IpAddr, usize>,
    /// The trace being made (one at a time: it re-simulates).
    trace: Option<(ConnId, u64, Option<ResumeKey>)>,
    pacer: Pacer,
    /// Ticks found due and not yet run.
    owed: u32,
    /// Unix time (s) at `now` = 0: accounts and sessions expire in wall time.
    unix_at_start_s: u64,
    shutting_down: bool,
}

impl ServerCore {
    /// A core over `server`, with `now` = 0 at Unix time `unix_at_start_s`: the first tick is
    /// due at once.
    pub fn new(server: WorldServer, rules: CoreRules, unix_at_start_s: u64) -> Self {
        let rate = server.world().sim().tick_rate();
        Self {
            server,
            resume: ResumeCache::new(rules.resume.clone()),
            rules,
            connections: BTreeMap::new(),
            held: Vec::new(),
            holding: HashSet::new(),
            resume_expired_at: Duration::ZERO,
            password_jobs: HashMap::new(),
            trace: None,
            pacer: Pacer::new(rate, Duration::ZERO, 4),
            owed: 0,
            unix_at_start_s,
            shutting_down: false,
        }
    }

    pub fn server(&self) -> &WorldServer {
        &self.server
    }

    /// Answers held until the next commit.
    pub fn held_answers(&self) -> usize {
        self.held.len()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// When the next tick is due (on the `now` scale of [`Self::handle`]); a tick owed from a
    /// backlog is due at once.
    pub fn next_due(&self) -> Duration {
        if self.owed > 0 {
            Duration::ZERO
        } else {
            self.pacer.next_due()
        }
    }

    fn unix_s(&self, now: Duration) -> u64 {
        self.unix_at_start_s + now.as_secs()
    }

    /// Takes `event` at `now`; returns what to do.
    pub fn handle(&mut self, event: Event, now: Duration) -> Vec<Effect> {
        let mut effects = Vec::new();
        match event {
            Event::Opened {
                conn,
                ip,
                max_datagram_bytes,
            } => {
                self.connections.insert(
                    conn,
                    ConnectionState {
                        connection: Connection::from_ip(ip),
                        max_datagram_bytes,
                        subscription: None,
                        password_pending: false,
                        waiting: VecDeque::new(),
                    },
                );
            }
            Event::Closed { conn } => {
                self.connections.remove(&conn);
            }
            Event::Acked { conn, seq } => {
                if let Some(subscription) = self
                    .connections
                    .get_mut(&conn)
                    .and_then(|c| c.subscription.as_mut())
                {
                    subscription.acked(seq);
                }
            }
            Event::Request {
                conn,
                instance,
                id,
                request,
            } => match self.connections.get_mut(&conn) {
                Some(state) if state.password_pending => {
                    state.waiting.push_back((instance, id, request))
                }
                Some(_) => self.request(conn, instance, id, request, now, &mut effects),
                None => {} // The connection is gone; nobody is waiting for the answer.
            },
            Event::PasswordChecked {
                conn,
                ip,
                id,
                checked,
            } => self.password_checked(conn, ip, id, checked, now, &mut effects),
            Event::TraceReady { conn, id, response } => {
                let resume = match self.trace.take() {
                    Some((c, i, resume)) if (c, i) == (conn, id) => resume,
                    other => {
                        self.trace = other;
                        None
                    }
                };
                self.answer(conn, id, response, resume, false, now, &mut effects);
            }
            Event::Shutdown => self.shutting_down = true,
        }
        effects
    }

    fn request(
        &mut self,
        conn: ConnId,
        instance: u64,
        id: u64,
        request: Request,
        now: Duration,
        effects: &mut Vec<Effect>,
    ) {
        if self.shutting_down {
            effects.push(Effect::Answer {
                conn,
                id,
                response: shutting_down(),
            });
            return;
        }
        let unix_now = self.unix_s(now);
        let state = self
            .connections
            .get_mut(&conn)
            .expect("checked by the caller");
        // Requests that bind or change a session are not resumed: they have no session yet
        // (or change it), and their answers carry credentials.
        let resume = match (&state.connection.token(), &request) {
            (
                _,
                Request::Register { .. } | Request::Login { .. } | Request::Authenticate { .. },
            ) => None,
            (Some(token), _) if instance != 0 => Some(ResumeKey {
                token: (*token).clone(),
                instance,
            }),
            _ => None,
        };
        if let Some(key) = &resume {
            match self.resume.begin(key, id, conn, now) {
                Begin::Answered(response) => {
                    metrics::counter!("astroboids_requests_resumed_total").increment(1);
                    effects.push(Effect::Answer { conn, id, response });
                    return;
                }
                // Its answer goes to this connection when it is ready.
                Begin::InProgress => return,
                Begin::New => {}
            }
        }
        let writes = request.writes();
        let response = match request {
            Request::DownloadTrace {
                ship,
                from_tick,
                to_tick,
            } => {
                match self.server.prepare_trace(
                    &mut state.connection,
                    ship,
                    from_tick,
                    to_tick,
                    unix_now,
                ) {
                    Err(e) => Response::Error(e),
                    Ok(_) if self.trace.is_some() => Response::Error(RequestError::Unavailable(
                        "another trace is being prepared; try again in a moment".into(),
                    )),
                    Ok(job) => {
                        self.trace = Some((conn, id, resume));
                        effects.push(Effect::RunTrace { conn, id, job });
                        return;
                    }
                }
            }
            request @ (Request::Register { .. } | Request::Login { .. }) => {
                // A refusal wrote nothing: it need not wait for a commit.
                if let Some(refusal) = self.password_request(conn, id, request, unix_now, effects) {
                    self.answer(conn, id, refusal, resume, false, now, effects);
                }
                return;
            }
            request => self.server.handle(&mut state.connection, request, unix_now),
        };
        let response = self.after_request(conn, response, effects);
        self.answer(conn, id, response, resume, writes, now, effects);
    }

    /// What a carried-out request changes in the core: subscriptions, kicked connections.
    fn after_request(
        &mut self,
        conn: ConnId,
        mut response: Response,
        effects: &mut Vec<Effect>,
    ) -> Response {
        let state = self
            .connections
            .get_mut(&conn)
            .expect("checked by the caller");
        match &response {
            Response::Subscribed { .. } if state.max_datagram_bytes == 0 => {
                response = Response::Error(RequestError::Unavailable(
                    "this connection carries no datagrams, which snapshots need".into(),
                ));
            }
            Response::Subscribed { .. } => {
                state.subscription = Some(Subscription::new(state.max_datagram_bytes));
            }
            Response::Unsubscribed => state.subscription = None,
            _ => {}
        }
        let kicked = self.server.take_kicked();
        if !kicked.is_empty() {
            let mut closed = 0;
            for (&other, state) in &self.connections {
                if state
                    .connection
                    .user()
                    .is_some_and(|u| kicked.iter().any(|k| k == u))
                {
                    closed += 1;
                    effects.push(Effect::Close {
                        conn: other,
                        reason: "an admin closed your session; log in again".into(),
                    });
                }
            }
            if let Response::Kicked { connections, .. } = &mut response {
                *connections = closed;
            }
        }
        response
    }

    /// Sends `response` now, or holds it until the next commit when the request wrote (or an
    /// earlier answer of the connection is held).
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        conn: ConnId,
        id: u64,
        response: Response,
        resume: Option<ResumeKey>,
        writes: bool,
        now: Duration,
        effects: &mut Vec<Effect>,
    ) {
        if writes || self.holding.contains(&conn) {
            self.holding.insert(conn);
            self.held.push(HeldAnswer {
                conn,
                id,
                response,
                resume,
            });
        } else {
            self.release(conn, id, response, resume, now, effects);
        }
    }

    /// The answer goes to the connection waiting for it (after a reconnect, the new one), and
    /// into the resume cache.
    fn release(
        &mut self,
        conn: ConnId,
        id: u64,
        response: Response,
        resume: Option<ResumeKey>,
        now: Duration,
        effects: &mut Vec<Effect>,
    ) {
        let waiting = match &resume {
            Some(key) => self.resume.finish(key, id, &response, now).unwrap_or(conn),
            None => conn,
        };
        if self.connections.contains_key(&waiting) {
            effects.push(Effect::Answer {
                conn: waiting,
                id,
                response,
            });
        }
    }

    /// The group commit: everything carried out so far becomes durable in one flush, then the
    /// answers held for it are released.
    fn commit(&mut self, now: Duration, effects: &mut Vec<Effect>) -> Result<(), HostError> {
        if self.held.is_empty() {
            return Ok(());
        }
        self.server.commit()?;
        self.holding.clear();
        for held in std::mem::take(&mut self.held) {
            self.release(held.conn, held.id, held.response, held.resume, now, effects);
        }
        Ok(())
    }

    /// Runs a tick when one is due at `now`: the group commit (releasing held answers), the
    /// tick, then each subscribed client's snapshot and events. `None` when no tick is due.
    pub fn tick(&mut self, now: Duration) -> Result<Option<Vec<Effect>>, HostError> {
        let mut effects = Vec::new();
        if self.owed == 0 {
            self.owed = self.pacer.ticks_due(now);
        }
        if self.owed == 0 {
            return Ok(None);
        }
        self.owed -= 1;
        self.commit(now, &mut effects)?;
        let report = self.server.step()?;
        report_step(&report, &mut effects);
        self.live_updates(&mut effects);
        // Answers are kept for minutes: a sweep every few seconds is enough, and keeps a walk
        // over every remembered client instance off most ticks.
        if now.saturating_sub(self.resume_expired_at) >= RESUME_SWEEP_EVERY {
            self.resume.expire(now);
            self.resume_expired_at = now;
        }
        Ok(Some(effects))
    }

    /// Stops (after [`Event::Shutdown`]): runs the world unpaced to its next checkpoint tick,
    /// where stopping changes nothing a replay would see, releases every held answer once
    /// durable, closes every connection and the world. Returns the effects, the tick reached,
    /// the ticks run to get there and the recording finished.
    pub fn shut_down(mut self, now: Duration) -> Result<ShutDown, HostError> {
        let mut effects = Vec::new();
        let mut ticks_to_checkpoint = 0;
        while !self.server.at_checkpoint_tick() {
            self.commit(now, &mut effects)?;
            let report = self.server.step()?;
            report_step(&report, &mut effects);
            ticks_to_checkpoint += 1;
        }
        self.commit(now, &mut effects)?;
        for &conn in self.connections.keys() {
            effects.push(Effect::Close {
                conn,
                reason: "the server is shutting down".into(),
            });
        }
        let tick = self.server.world().tick();
        let replay_finished = self.server.close()?;
        Ok(ShutDown {
            effects,
            tick,
            ticks_to_checkpoint,
            replay_finished,
        })
    }
}

/// How [`ServerCore::shut_down`] ended.
#[derive(Debug)]
pub struct ShutDown {
    pub effects: Vec<Effect>,
    pub tick: u64,
    pub ticks_to_checkpoint: u64,
    pub replay_finished: Option<std::path::PathBuf>,
}

fn shutting_down() -> Response {
    Response::Error(RequestError::Unavailable(
        "the server is shutting down".into(),
    ))
}

/// Metrics and log lines for a tick.
fn report_step(report: &StepReport, effects: &mut Vec<Effect>) {
    if report.checkpoint_written {
        metrics::counter!("astroboids_checkpoints_written_total").increment(1);
    }
    if let Some(path) = &report.replay_finished {
        metrics::counter!("astroboids_replay_files_finished_total").increment(1);
        effects.push(Effect::Notice(format!(
            "replay written: {}",
            path.display()
        )));
    }
    if let Some(error) = &report.recording_error {
        effects.push(Effect::Notice(format!(
            "warning: the live recording stopped: {error}"
        )));
    }
    if report.scripts_suspended > 0 {
        metrics::counter!("astroboids_scripts_suspended_total")
            .increment(u64::from(report.scripts_suspended));
    }
}
