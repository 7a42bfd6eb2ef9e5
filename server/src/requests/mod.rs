//! Carrying out players' requests against the persistent world, between ticks, by family:
//! [`sessions`] (accounts, logins), [`scripts`], [`ships`], [`admin`], [`replays`] (recordings
//! and traces).
//!
//! Everything that changes the world becomes a `WorldInput` submitted to the
//! [`PersistentWorld`] (so it is logged and replayable); account and script changes are
//! written to the store. Nothing is durable until [`WorldServer::commit`]: the caller releases
//! answers to requests that write only after it (see `crate::core`). Reads look at the world
//! as it stands between ticks. A player acts only on their own ships and scripts; an admin on
//! any ship.

mod admin;
mod replays;
mod scripts;
mod sessions;
mod ships;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use astroboids_host::PersistentWorld;
use astroboids_host::persistent::HostError;
use astroboids_host::recording::RecordingPlan;
use astroboids_host::runner::WorldRunner;
use astroboids_protocol::messages::{Request, RequestError, Response, TickEvents, Token};
use astroboids_sim::SimTotals;
use astroboids_sim::inputs::{InputOutcome, WorldInput};
use astroboids_sim::physics::is_checkpoint_tick;
use astroboids_sim::scripts::SlowScripts;
use astroboids_sim::ships::ShipIndex;
use astroboids_storage::StorageError;

pub use self::replays::{MAX_TRACE_BYTES, TraceJob};
pub use self::sessions::{PasswordChecked, PasswordJob};
pub use self::ships::{spawn_point, status_report};
use crate::accounts::{AccountError, AccountRules, Accounts, Session};
use crate::limits::{RateLimits, RateRules};

use crate::watchdog::{ScriptWatchdog, WatchdogRules};
pub use astroboids_host::recording::ReplayRules;
use astroboids_views::{Owners, PlayerView, player_events};
use tracing::warn;

/// Limits on what players may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRules {
    pub accounts: AccountRules,
    pub rates: RateRules,
    /// Ships one player may own.
    pub max_ships_per_account: usize,
    /// Ticks one downloaded trace may cover.
    pub max_trace_ticks: u64,
    /// Recording of the live world; `None`: not recorded.
    pub replays: Option<ReplayRules>,
    /// When a script whose runs take far too long is suspended.
    pub watchdog: WatchdogRules,
}

impl Default for ServerRules {
    fn default() -> Self {
        Self {
            accounts: AccountRules::default(),
            rates: RateRules::default(),
            max_ships_per_account: 50,
            max_trace_ticks: 1_000,
            replays: None,
            watchdog: WatchdogRules::default(),
        }
    }
}

/// What happened in one tick, for the shell's log and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    pub checkpoint_written: bool,
    /// A recording that could not be written (the world goes on unrecorded until the next
    /// checkpoint tick, when a new file is started).
    pub recording_error: Option<String>,
    /// A replay file finished this tick.
    pub replay_finished: Option<PathBuf>,
    /// Scripts the watchdog suspended after this tick.
    pub scripts_suspended: u32,
}

/// Figures for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vitals {
    pub tick: u64,
    pub ships: usize,
    pub script_fuel_used_total: u64,
    pub script_faults_total: u64,
}

/// A connection: where it comes from and its login state.
#[derive(Debug, Clone)]
pub struct Connection {
    ip: IpAddr,
    session: Option<(Token, Session)>,
}

impl Default for Connection {
    /// A local connection (tests, tools on the server machine).
    fn default() -> Self {
        Self::from_ip(IpAddr::from([127, 0, 0, 1]))
    }
}

impl Connection {
    pub fn from_ip(ip: IpAddr) -> Self {
        Self { ip, session: None }
    }

    /// The session token the connection authenticated with.
    pub fn token(&self) -> Option<&Token> {
        self.session.as_ref().map(|(token, _)| token)
    }

    pub fn user(&self) -> Option<&str> {
        self.session.as_ref().map(|(_, s)| s.user.as_str())
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

/// The persistent world with the rules for players.
pub struct WorldServer {
    /// The world, persisted, and its live recording.
    world: WorldRunner<PersistentWorld>,
    rules: ServerRules,
    limits: RateLimits,
    /// Users kicked since the shell last asked (it closes their connections).
    kicked: Vec<String>,
    watchdog: ScriptWatchdog,
}

type Answer = Result<Response, RequestError>;

impl WorldServer {
    pub fn new(mut world: PersistentWorld, rules: ServerRules) -> Self {
        let limits = RateLimits::new(&rules.rates);
        let watchdog = ScriptWatchdog::new(rules.watchdog);
        world
            .sim_mut()
            .world_mut()
            .resource_mut::<SlowScripts>()
            .run_wall_ns_max = Some(watchdog.run_wall_ns_max());
        let plan = rules
            .replays
            .clone()
            .map_or(RecordingPlan::Off, RecordingPlan::Rotating);
        // A world opened at a checkpoint tick starts recording at once.
        let (world, started) = WorldRunner::new(world, plan);
        if let Some(error) = started.error {
            warn!(
                tick = world.tick(),
                %error,
                "the live recording did not start; the world runs on without it"
            );
        }
        Self {
            world,
            rules,
            limits,
            kicked: Vec::new(),
            watchdog,
        }
    }

    pub fn world(&self) -> &PersistentWorld {
        self.world.world()
    }

    pub fn vitals(&self) -> Vitals {
        let world = self.world.sim().world();
        let totals = world.resource::<SimTotals>();
        Vitals {
            tick: self.world.tick(),
            ships: world.resource::<ShipIndex>().ids().count(),
            script_fuel_used_total: totals.script_fuel_used,
            script_faults_total: totals.script_faults,
        }
    }

    /// Makes everything carried out so far durable: the inputs for the next tick are logged
    /// and the store (accounts, sessions, scripts) flushed, in one flush. Answers to requests
    /// that wrote are released only after this (a group commit: one per tick, not one per
    /// request).
    pub fn commit(&mut self) -> Result<(), HostError> {
        if self.world.commit()?.is_none() {
            self.world.world().store().flush()?;
        }
        Ok(())
    }

    /// Runs one tick: inputs accepted since the last one are logged first; the tick is
    /// recorded, and at checkpoint ticks the replay file may rotate. Then the watchdog's
    /// suspensions for this tick are submitted (logged with the next tick).
    pub fn step(&mut self) -> Result<StepReport, HostError> {
        let stepped = self.world.step()?;
        let mut report = StepReport {
            checkpoint_written: stepped.checkpoint_written,
            replay_finished: stepped.recording.finished.map(|written| written.path),
            recording_error: stepped.recording.error,
            ..StepReport::default()
        };
        let slow = std::mem::take(
            &mut self
                .world
                .sim_mut()
                .world_mut()
                .resource_mut::<SlowScripts>()
                .runs,
        );
        for suspension in self.watchdog.observe(self.world.tick(), &slow) {
            // Refused only when the ship is gone or already runs no script: nothing to do.
            if self.submit(suspension).is_ok() {
                report.scripts_suspended += 1;
            }
        }
        Ok(report)
    }

    /// Whether the world is at a tick where it can stop without changing its future: a
    /// checkpoint tick (see [`Self::close`]).
    pub fn at_checkpoint_tick(&self) -> bool {
        is_checkpoint_tick(self.world.world().config(), self.world.tick())
    }

    /// A clean shutdown: finishes the recording and makes everything durable. Called at a
    /// checkpoint tick (the shell runs the world to one first), the checkpoint written there
    /// is what a restart resumes from and the recording ends on a tick any replay reaches.
    pub fn close(self) -> Result<Option<PathBuf>, HostError> {
        let (world, finished) = self.world.finish();
        world.close()?;
        Ok(finished.ok().flatten().map(|written| written.path))
    }

    /// What each of `users` sees now and what happened to their ships this tick (for the
    /// live snapshots of subscribed clients).
    pub fn player_updates<'a>(
        &mut self,
        users: impl IntoIterator<Item = &'a str>,
    ) -> HashMap<String, (PlayerView, TickEvents)> {
        let users: Vec<&str> = users.into_iter().collect();
        let owners = Owners::of(self.world.sim_mut().world_mut(), &users);
        let world = self.world.sim().world();
        users
            .into_iter()
            .map(|user| {
                let view = owners.view(world, user);
                (
                    user.to_string(),
                    (view, player_events(world, &owners, user)),
                )
            })
            .collect()
    }

    /// Users kicked by an admin since the last call (their connections are to be closed).
    pub fn take_kicked(&mut self) -> Vec<String> {
        std::mem::take(&mut self.kicked)
    }

    /// Carries out `request` for `connection` at `now` (Unix seconds) after the rate limits
    /// of its address and account; never panics on what a client sends.
    pub fn handle(&mut self, connection: &mut Connection, request: Request, now: u64) -> Response {
        let kind = request.kind();
        let response =
            match self
                .limits
                .check(connection.ip, connection.user(), Duration::from_secs(now))
            {
                Err(limited) => Response::Error(limited),
                Ok(()) => self
                    .answer(connection, request, now)
                    .unwrap_or_else(Response::Error),
            };
        count_response(kind, &response);
        response
    }

    fn accounts(&self) -> Accounts<'_> {
        Accounts::new(self.world.world().store(), self.rules.accounts.clone())
    }

    fn answer(&mut self, connection: &mut Connection, request: Request, now: u64) -> Answer {
        match request {
            request @ (Request::Register { .. } | Request::Login { .. }) => {
                // Here, hashing in line (tests, tools); the server's shell runs the job on a
                // worker instead (`prepare_password`, `finish_password`).
                let job = self.password_job(request)?;
                self.finish_password_job(connection, job.run(), now)
            }
            Request::Authenticate { token } => self.authenticate(connection, token, now),
            Request::Logout => self.logout(connection),
            request => {
                let session = self.live_session(connection, now)?;
                self.answer_player(&session, request)
            }
        }
    }

    fn answer_player(&mut self, session: &Session, request: Request) -> Answer {
        if let Some(answer) = self.answer_admin(session, &request) {
            return answer;
        }
        let user = session.user.as_str();
        match request {
            Request::UploadScript { name, wasm } => self.upload(user, &name, &wasm),
            Request::ListScripts => self.list_scripts(user),
            Request::AssignScript { ship, name } => {
                self.check_owner(session, ship)?;
                self.assign(user, ship, &name)
            }
            Request::SpawnShip => self.spawn(user),
            Request::ShipStatus { ship } => self.status(session, ship),
            Request::MoveShip { ship, command } => self.move_ship(session, ship, command),
            Request::ShipLogs { ship } => {
                self.check_owner(session, ship)?;
                self.logs(ship)
            }
            Request::ListReplays => Ok(Response::Replays(self.replays())),
            Request::DownloadTrace { .. } => Err(RequestError::Unavailable(
                "traces are prepared by the server shell (WorldServer::prepare_trace)".into(),
            )),
            Request::Subscribe { .. } => {
                // The core keeps the subscription; here it is only allowed.
                let config = self.world.world().config();
                Ok(Response::Subscribed {
                    sector_size: config.simulation.sector_size,
                    tick_rate_hz: self.world.sim().tick_rate().hz,
                    sensor_range: config.sensors.range,
                    nebula_range_factor: config.sensors.nebula_range_factor,
                })
            }
            Request::Unsubscribe => Ok(Response::Unsubscribed),
            Request::AdminSetShipLimit { .. }
            | Request::AdminSpawn { .. }
            | Request::AdminDespawn { .. }
            | Request::AdminKick { .. }
            | Request::Register { .. }
            | Request::Login { .. }
            | Request::Authenticate { .. }
            | Request::Logout => unreachable!("answered before"),
        }
    }

    /// Applies `input` for the next tick (logged with the next commit, and recorded).
    fn submit(&mut self, input: WorldInput) -> Result<InputOutcome, RequestError> {
        self.world.submit(input).map_err(|e| match e {
            HostError::Input(refused) => RequestError::Rejected(refused.to_string()),
            other => RequestError::Unavailable(other.to_string()),
        })
    }
}

/// Counts a request by kind, and a refused one (`error`) by why.
/// Counts a request by the response it got.
fn count_response(kind: &'static str, response: &Response) {
    count_request(
        kind,
        match response {
            Response::Error(e) => Some(e),
            _ => None,
        },
    );
}

pub(crate) fn count_request(kind: &'static str, error: Option<&RequestError>) {
    metrics::counter!("astroboids_requests_total", "kind" => kind).increment(1);
    if let Some(e) = error {
        let reason = match e {
            RequestError::NotAuthenticated => "not_authenticated",
            RequestError::Forbidden(_) => "forbidden",
            RequestError::Invalid(_) => "invalid",
            RequestError::RateLimited(_) => "rate_limited",
            RequestError::Rejected(_) => "rejected",
            RequestError::Unavailable(_) => "unavailable",
        };
        metrics::counter!("astroboids_requests_rejected_total", "kind" => kind, "reason" => reason)
            .increment(1);
    }
}

fn account_error(e: AccountError) -> RequestError {
    match e {
        AccountError::Storage(StorageError::InvalidName { .. }) => {
            RequestError::Invalid(e.to_string())
        }
        AccountError::Storage(_) | AccountError::Damaged(_) => {
            RequestError::Unavailable(e.to_string())
        }
        _ => RequestError::Rejected(e.to_string()),
    }
}

fn storage_error(e: StorageError) -> RequestError {
    match e {
        StorageError::InvalidName { .. } | StorageError::TooLarge { .. } => {
            RequestError::Invalid(e.to_string())
        }
        other => RequestError::Unavailable(other.to_string()),
    }
}
