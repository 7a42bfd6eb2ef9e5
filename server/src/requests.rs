//! Carrying out players' requests against the persistent world, between ticks.
//!
//! Everything that changes the world becomes a `WorldInput` submitted to the
//! [`PersistentWorld`] (so it is logged, acknowledged with the next commit, and replayable);
//! reads look at the world as it stands between ticks. A player acts only on their own ships
//! and scripts; an admin on any ship.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use astroboids_engine::NetId;
use astroboids_host::PersistentWorld;
use astroboids_host::persistent::HostError;
use astroboids_host::replay::{Recorder, Replay};
use astroboids_net::messages::{
    MoveCommand, ReplayListing, Request, RequestError, Response, ScriptListing, ShipStatusReport,
    TickEvents, Token,
};
use astroboids_sim::checkpoint::{CommandRecord, capture_ship};
use astroboids_sim::inputs::{InputOutcome, WorldInput};
use astroboids_sim::physics::is_checkpoint_tick;
use astroboids_sim::scripts::{
    ScriptFault, ScriptFaults, ScriptId, ScriptLibrary, ScriptLog, SlowScripts,
};
use astroboids_sim::ships::{Owner, ShipIndex};
use astroboids_sim::{SimOptions, SimTotals};
use astroboids_storage::StorageError;

use crate::accounts::{
    AccountError, AccountRules, Accounts, Role, Session, hash_password, verify_password,
};
use crate::limits::{RateLimits, RateRules};
use crate::views::{Owners, PlayerView};
use crate::watchdog::{ScriptWatchdog, WatchdogRules};

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

/// How the live world is recorded: one replay file per stretch of ticks, the oldest deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRules {
    pub dir: PathBuf,
    /// A file is finished at the first checkpoint tick this many ticks after its start.
    pub ticks_per_file: u64,
    /// Finished files kept (bounds disk use).
    pub keep_files: usize,
    pub keyframe_every_checkpoints: u64,
}

impl ReplayRules {
    /// The defaults under a data directory: `DATA/replays`, 3,000 ticks (5 minutes at 10 Hz)
    /// per file, the last 48 kept.
    pub fn in_data_dir(data: &Path) -> Self {
        Self {
            dir: data.join("replays"),
            ticks_per_file: 3_000,
            keep_files: 48,
            keyframe_every_checkpoints: 10,
        }
    }
}

/// The recording in progress.
struct LiveRecording {
    recorder: Recorder,
    start_tick: u64,
}

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

    pub fn user(&self) -> Option<&str> {
        self.session.as_ref().map(|(_, s)| s.user.as_str())
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

/// The persistent world with the rules for players.
pub struct WorldServer {
    world: PersistentWorld,
    rules: ServerRules,
    limits: RateLimits,
    recording: Option<LiveRecording>,
    /// Users kicked since the shell last asked (it closes their connections).
    kicked: Vec<String>,
    watchdog: ScriptWatchdog,
}

type Answer = Result<Response, RequestError>;

/// A password to hash (registration) or verify (login), away from the tick thread.
pub struct PasswordJob {
    rules: AccountRules,
    user: String,
    password: String,
    work: PasswordWork,
}

enum PasswordWork {
    Register,
    /// The stored hash (`None`: no such user; verified against a stand-in all the same).
    Login {
        stored: Option<String>,
    },
}

impl PasswordJob {
    /// Hashes or verifies (tens of milliseconds of argon2).
    pub fn run(self) -> PasswordChecked {
        let outcome = match self.work {
            PasswordWork::Register => {
                PasswordOutcome::Hashed(hash_password(&self.rules, &self.password))
            }
            PasswordWork::Login { stored } => {
                PasswordOutcome::Verified(verify_password(stored.as_deref(), &self.password))
            }
        };
        PasswordChecked {
            user: self.user,
            outcome,
        }
    }
}

/// What a [`PasswordJob`] found, for [`WorldServer::finish_password`].
pub struct PasswordChecked {
    user: String,
    outcome: PasswordOutcome,
}

enum PasswordOutcome {
    Hashed(Result<String, AccountError>),
    Verified(Result<(), AccountError>),
}

impl PasswordChecked {
    /// The request kind ("register", "login"), for metrics.
    pub fn kind(&self) -> &'static str {
        match self.outcome {
            PasswordOutcome::Hashed(_) => "register",
            PasswordOutcome::Verified(_) => "login",
        }
    }
}

impl WorldServer {
    pub fn new(world: PersistentWorld, rules: ServerRules) -> Self {
        let limits = RateLimits::new(&rules.rates);
        let watchdog = ScriptWatchdog::new(rules.watchdog);
        let mut server = Self {
            world,
            rules,
            limits,
            recording: None,
            kicked: Vec::new(),
            watchdog,
        };
        server
            .world
            .sim_mut()
            .world_mut()
            .resource_mut::<SlowScripts>()
            .run_wall_ns_max = Some(server.watchdog.run_wall_ns_max());
        // A world opened at a checkpoint tick starts recording at once.
        server.rotate_recording(&mut StepReport::default());
        server
    }

    pub fn world(&self) -> &PersistentWorld {
        &self.world
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

    /// Runs one tick: inputs accepted since the last one are logged (acknowledged) first; the
    /// tick is recorded, and at checkpoint ticks the replay file may rotate. Then the
    /// watchdog's suspensions for this tick are submitted (logged with the next tick).
    pub fn step(&mut self) -> Result<StepReport, HostError> {
        let mut report = StepReport {
            checkpoint_written: self.world.step()?,
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
        if let Some(live) = &mut self.recording
            && let Err(e) = live.recorder.after_tick(self.world.sim_mut())
        {
            report.recording_error = Some(e.to_string());
            self.recording = None;
        }
        self.rotate_recording(&mut report);
        Ok(report)
    }

    /// At a checkpoint tick: finishes the recording when it is long enough and starts the
    /// next (recordings start and end at checkpoint ticks, where capturing changes nothing).
    fn rotate_recording(&mut self, report: &mut StepReport) {
        let Some(rules) = self.rules.replays.clone() else {
            return;
        };
        let tick = self.world.tick();
        if !is_checkpoint_tick(self.world.config(), tick) {
            return;
        }
        if let Some(live) = &self.recording
            && tick - live.start_tick < rules.ticks_per_file
        {
            return;
        }
        if let Some(live) = self.recording.take() {
            match finish_recording(live, self.world.sim_mut(), &rules) {
                Ok(path) => report.replay_finished = Some(path),
                Err(e) => report.recording_error = Some(e),
            }
            prune_replays(&rules);
        }
        if let Err(e) = std::fs::create_dir_all(&rules.dir) {
            report.recording_error = Some(format!("{}: {e}", rules.dir.display()));
            return;
        }
        let path = rules.dir.join(format!("live-{tick:012}.abreplay"));
        match Recorder::start(
            self.world.sim_mut(),
            &path,
            "astroboids serve",
            rules.keyframe_every_checkpoints,
        ) {
            Ok(recorder) => {
                self.recording = Some(LiveRecording {
                    recorder,
                    start_tick: tick,
                })
            }
            Err(e) => report.recording_error = Some(e.to_string()),
        }
    }

    /// Whether the world is at a tick where it can stop without changing its future: a
    /// checkpoint tick (see [`Self::close`]).
    pub fn at_checkpoint_tick(&self) -> bool {
        is_checkpoint_tick(self.world.config(), self.world.tick())
    }

    /// A clean shutdown: finishes the recording and makes everything durable. Called at a
    /// checkpoint tick (the shell runs the world to one first), the checkpoint written there
    /// is what a restart resumes from and the recording ends on a tick any replay reaches.
    pub fn close(mut self) -> Result<Option<PathBuf>, HostError> {
        let mut finished = None;
        if let (Some(live), Some(rules)) = (self.recording.take(), self.rules.replays.clone()) {
            finished = finish_recording(live, self.world.sim_mut(), &rules).ok();
            prune_replays(&rules);
        }
        self.world.close()?;
        Ok(finished)
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
        let tick = self.world.tick();
        let faults: Vec<&ScriptFault> = world
            .resource::<ScriptFaults>()
            .recent
            .iter()
            .filter(|f| f.tick == tick)
            .collect();
        let mut out = HashMap::new();
        for user in users {
            let view = owners.view(world, user);
            let mut events = TickEvents {
                tick,
                logs: Vec::new(),
                faults: Vec::new(),
                dropped_before: 0,
            };
            for &entity in owners.ships(user) {
                let Some(id) = world.get::<NetId>(entity) else {
                    continue;
                };
                if let Some(log) = world.get::<ScriptLog>(entity) {
                    events.logs.extend(
                        log.lines
                            .iter()
                            .filter(|l| l.tick == tick)
                            .map(|l| (id.0, l.text.clone())),
                    );
                }
                events.faults.extend(
                    faults
                        .iter()
                        .filter(|f| f.ship == *id)
                        .map(|f| (id.0, f.message.clone())),
                );
            }
            out.insert(user.to_string(), (view, events));
        }
        out
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

    /// A registration or login: checked here (rate limits, name, password rules), the
    /// password hashed or verified by the caller off the tick thread with [`PasswordJob::run`]
    /// (argon2 takes tens of milliseconds), then finished by [`WorldServer::finish_password`].
    pub fn prepare_password(
        &mut self,
        connection: &Connection,
        request: Request,
        now: u64,
    ) -> Result<PasswordJob, RequestError> {
        let kind = request.kind();
        let result = self
            .limits
            .check(connection.ip, connection.user(), Duration::from_secs(now))
            .and_then(|()| self.password_job(request));
        if let Err(e) = &result {
            count_request(kind, Some(e));
        }
        result
    }

    /// Creates the account or opens the session a [`PasswordJob`] checked the password for.
    pub fn finish_password(
        &mut self,
        connection: &mut Connection,
        checked: PasswordChecked,
        now: u64,
    ) -> Response {
        let kind = checked.kind();
        let response = self
            .finish_password_job(connection, checked, now)
            .unwrap_or_else(Response::Error);
        count_response(kind, &response);
        response
    }

    fn password_job(&self, request: Request) -> Result<PasswordJob, RequestError> {
        let accounts = self.accounts();
        let (user, password, work) = match request {
            Request::Register { user, password } => {
                accounts
                    .check_new_account(&user, &password)
                    .map_err(account_error)?;
                (user, password, PasswordWork::Register)
            }
            Request::Login { user, password } => {
                let stored = accounts
                    .stored_password(&user, &password)
                    .map_err(account_error)?;
                (user, password, PasswordWork::Login { stored })
            }
            other => {
                return Err(RequestError::Invalid(format!(
                    "{} is not a registration or login",
                    other.kind()
                )));
            }
        };
        Ok(PasswordJob {
            rules: self.rules.accounts.clone(),
            user,
            password,
            work,
        })
    }

    fn finish_password_job(
        &mut self,
        connection: &mut Connection,
        checked: PasswordChecked,
        now: u64,
    ) -> Answer {
        let accounts = self.accounts();
        match checked.outcome {
            PasswordOutcome::Hashed(phc) => {
                phc.and_then(|phc| accounts.create(&checked.user, phc, Role::Player, now))
                    .map_err(account_error)?;
                Ok(Response::Registered)
            }
            PasswordOutcome::Verified(verified) => {
                let (token, session) = verified
                    .and_then(|()| accounts.open_session(&checked.user, now))
                    .map_err(account_error)?;
                let expires_in_s = session.expires_unix_s.saturating_sub(now);
                connection.session = Some((token.clone(), session));
                Ok(Response::LoggedIn {
                    token,
                    expires_in_s,
                })
            }
        }
    }

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

    fn check_trace(
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
    fn replays(&self) -> Vec<ReplayListing> {
        self.rules
            .replays
            .as_ref()
            .map(|rules| finished_replays(&rules.dir))
            .unwrap_or_default()
    }

    fn accounts(&self) -> Accounts<'_> {
        Accounts::new(self.world.store(), self.rules.accounts.clone())
    }

    fn answer(&mut self, connection: &mut Connection, request: Request, now: u64) -> Answer {
        match request {
            request @ (Request::Register { .. } | Request::Login { .. }) => {
                // Here, hashing in line (tests, tools); the server's shell runs the job on a
                // worker instead (`prepare_password`, `finish_password`).
                let job = self.password_job(request)?;
                self.finish_password_job(connection, job.run(), now)
            }
            Request::Authenticate { token } => {
                let session = self
                    .accounts()
                    .authenticate(&token, now)
                    .map_err(account_error)?;
                let answer = Response::Authenticated {
                    user: session.user.clone(),
                    admin: session.role == Role::Admin,
                };
                connection.session = Some((token, session));
                Ok(answer)
            }
            Request::Logout => {
                let (token, _) = connection
                    .session
                    .take()
                    .ok_or(RequestError::NotAuthenticated)?;
                self.accounts().logout(&token).map_err(account_error)?;
                Ok(Response::LoggedOut)
            }
            request => {
                let session = self.live_session(connection, now)?;
                self.answer_player(&session, request)
            }
        }
    }

    /// The connection's session if its token is still valid at `now`: checked against the
    /// store on every request, so a logout elsewhere or a kick takes effect at once.
    fn live_session(&self, connection: &mut Connection, now: u64) -> Result<Session, RequestError> {
        let Some((token, _)) = &connection.session else {
            return Err(RequestError::NotAuthenticated);
        };
        match self.accounts().authenticate(token, now) {
            Ok(session) => Ok(session),
            Err(AccountError::Storage(e)) => Err(storage_error(e)),
            Err(_) => {
                connection.session = None;
                Err(RequestError::NotAuthenticated)
            }
        }
    }

    fn answer_player(&mut self, session: &Session, request: Request) -> Answer {
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
            Request::MoveShip { ship, command } => {
                self.check_owner(session, ship)?;
                self.submit(WorldInput::Command {
                    ship,
                    command: command_record(command),
                })?;
                Ok(Response::MoveQueued {
                    tick: self.world.tick() + 1,
                })
            }
            Request::ShipLogs { ship } => {
                self.check_owner(session, ship)?;
                self.logs(ship)
            }
            Request::ListReplays => Ok(Response::Replays(self.replays())),
            Request::DownloadTrace { .. } => Err(RequestError::Unavailable(
                "traces are prepared by the server shell (WorldServer::prepare_trace)".into(),
            )),
            Request::Subscribe { .. } => {
                // The shell keeps the subscription; here it is only allowed.
                let config = self.world.config();
                Ok(Response::Subscribed {
                    sector_size: config.simulation.sector_size,
                    tick_rate_hz: self.world.sim().tick_rate().hz,
                })
            }
            Request::Unsubscribe => Ok(Response::Unsubscribed),
            Request::AdminSetShipLimit { user, max_ships } => {
                require_admin(session)?;
                self.accounts()
                    .set_ship_limit(&user, max_ships)
                    .map_err(account_error)?;
                Ok(Response::ShipLimitSet {
                    max_ships: max_ships.unwrap_or(self.rules.max_ships_per_account as u32),
                    user,
                })
            }
            Request::AdminSpawn { owner } => {
                require_admin(session)?;
                self.accounts().role(&owner).map_err(account_error)?;
                self.spawn_for(&owner, None)
            }
            Request::AdminDespawn { ship } => {
                require_admin(session)?;
                self.submit(WorldInput::Scrap { ship })?;
                Ok(Response::Despawned { ship })
            }
            Request::AdminKick { user } => {
                require_admin(session)?;
                self.accounts().revoke_all(&user).map_err(account_error)?;
                self.kicked.push(user.clone());
                Ok(Response::Kicked {
                    user,
                    connections: 0,
                })
            }
            Request::Register { .. }
            | Request::Login { .. }
            | Request::Authenticate { .. }
            | Request::Logout => unreachable!("answered before the session check"),
        }
    }

    /// Applies `input` for the next tick (logged with the next commit, and recorded).
    fn submit(&mut self, input: WorldInput) -> Result<InputOutcome, RequestError> {
        let outcome = self.world.submit(input.clone()).map_err(|e| match e {
            HostError::Input(refused) => RequestError::Rejected(refused.to_string()),
            other => RequestError::Unavailable(other.to_string()),
        })?;
        if let Some(live) = &mut self.recording {
            live.recorder.input(&input);
        }
        Ok(outcome)
    }

    /// `Ok` when `session` may act on `ship`.
    fn check_owner(&self, session: &Session, ship: u64) -> Result<(), RequestError> {
        match self.owner_of(ship) {
            None => Err(RequestError::Rejected(format!("no ship {ship}"))),
            Some(_) if session.role == Role::Admin => Ok(()),
            Some(Some(owner)) if owner == session.user => Ok(()),
            Some(_) => Err(RequestError::Forbidden(format!("ship {ship} is not yours"))),
        }
    }

    /// `None`: no such ship; `Some(None)`: nobody's.
    fn owner_of(&self, ship: u64) -> Option<Option<String>> {
        let world = self.world.sim().world();
        let entity = world.resource::<ShipIndex>().entity(NetId(ship))?;
        Some(world.get::<Owner>(entity).map(|o| o.0.clone()))
    }

    fn owned_ships(&self, user: &str) -> Vec<u64> {
        let world = self.world.sim().world();
        let index = world.resource::<ShipIndex>();
        index
            .ids()
            .filter(|id| {
                index
                    .entity(*id)
                    .and_then(|e| world.get::<Owner>(e))
                    .is_some_and(|o| o.0 == user)
            })
            .map(|id| id.0)
            .collect()
    }

    fn upload(&mut self, user: &str, name: &str, wasm: &[u8]) -> Answer {
        let world = self.world.sim().world();
        let limit = world
            .resource::<astroboids_sim::UniverseConfig>()
            .scripts
            .max_module_bytes as usize;
        if wasm.len() > limit {
            return Err(RequestError::Invalid(format!(
                "the module is {} bytes; the limit is {limit}",
                wasm.len()
            )));
        }
        // A cache hit: the shell compiled it off the tick thread (`load_for_upload` there too,
        // so a module refused for compiling too long is refused here from the cache).
        let compiled = world
            .resource::<ScriptLibrary>()
            .engine()
            .load_for_upload(wasm)
            .map_err(|e| RequestError::Rejected(format!("script rejected: {e}")))?;
        let store = self.world.store();
        let hash = store.put_script(wasm).map_err(storage_error)?;
        debug_assert_eq!(hash, compiled.hash());
        let version = store.name_script(user, name, hash).map_err(storage_error)?;
        store.flush().map_err(storage_error)?;
        Ok(Response::ScriptUploaded {
            name: name.to_string(),
            version,
            hash: format!("{hash:032x}"),
        })
    }

    fn list_scripts(&self, user: &str) -> Answer {
        let store = self.world.store();
        let mut listings = Vec::new();
        for name in store.script_names(user).map_err(storage_error)? {
            if let Some(latest) = store
                .script_versions(user, &name)
                .map_err(storage_error)?
                .last()
            {
                listings.push(ScriptListing {
                    name,
                    version: latest.version,
                    hash: format!("{:032x}", latest.hash),
                });
            }
        }
        Ok(Response::Scripts(listings))
    }

    fn assign(&mut self, user: &str, ship: u64, name: &str) -> Answer {
        let store = self.world.store();
        let latest = store
            .script_versions(user, name)
            .map_err(storage_error)?
            .last()
            .copied()
            .ok_or_else(|| RequestError::Rejected(format!("you have no script named {name:?}")))?;
        let in_library = self
            .world
            .sim()
            .world()
            .resource::<ScriptLibrary>()
            .contains(ScriptId(latest.hash));
        if !in_library {
            let wasm = store
                .script(latest.hash)
                .map_err(storage_error)?
                .ok_or_else(|| {
                    RequestError::Unavailable("the script's module is missing".into())
                })?;
            self.submit(WorldInput::AddScript { wasm })?;
        }
        self.submit(WorldInput::AssignScript {
            ship,
            script: latest.hash,
        })?;
        Ok(Response::ScriptAssigned {
            ship,
            name: name.to_string(),
            version: latest.version,
        })
    }

    fn spawn(&mut self, user: &str) -> Answer {
        let cap = self
            .accounts()
            .ship_limit(user)
            .map_err(account_error)?
            .map_or(self.rules.max_ships_per_account, |n| n as usize);
        self.spawn_for(user, Some(cap))
    }

    /// A ship for `user` in their home sector; `cap`: ships they may own at most.
    fn spawn_for(&mut self, user: &str, cap: Option<usize>) -> Answer {
        let owned = self.owned_ships(user).len();
        if let Some(cap) = cap
            && owned >= cap
        {
            return Err(RequestError::Rejected(format!(
                "you own {owned} ships, the most an account may ({cap})"
            )));
        }
        let size = self
            .world
            .sim()
            .world()
            .resource::<astroboids_sim::UniverseConfig>()
            .simulation
            .sector_size;
        let (sector, local) = spawn_point(user, owned, size);
        // One input: the ship exists owned by `user`, or not at all.
        let outcome = self.submit(WorldInput::SpawnShip {
            sector,
            local,
            heading: 0.0,
            autopilot: true,
            owner: Some(user.to_string()),
        })?;
        let InputOutcome::Spawned(ids) = outcome else {
            unreachable!("a spawn spawns");
        };
        Ok(Response::ShipSpawned { ship: ids[0].0 })
    }

    fn status(&mut self, session: &Session, ship: Option<u64>) -> Answer {
        let ships = match ship {
            Some(ship) => {
                self.check_owner(session, ship)?;
                vec![ship]
            }
            None => self.owned_ships(&session.user),
        };
        let tick = self.world.tick();
        let names = self.script_names_by_hash(&session.user)?;
        let mut reports = Vec::with_capacity(ships.len());
        for ship in ships {
            let sim = self.world.sim_mut();
            let Some(record) = capture_ship(sim.world_mut(), NetId(ship)) else {
                continue;
            };
            let flown_by = match (&record.script, record.autopilot) {
                (Some(script), _) => names
                    .iter()
                    .find(|(hash, _)| *hash == script.script)
                    .map_or(format!("script {:032x}", script.script), |(_, label)| {
                        format!("script {label}")
                    }),
                (None, true) => "autopilot".to_string(),
                (None, false) => "manual".to_string(),
            };
            reports.push(ShipStatusReport {
                ship,
                tick,
                sector: record.sector,
                local: record.local,
                velocity: record.velocity,
                heading: record.heading,
                hull: record.hull,
                energy: record.energy,
                cargo: record.cargo,
                flown_by,
                script_fuel_used_last: record.script.as_ref().map_or(0, |s| s.fuel_used_last),
                script_faults_total: record.script.as_ref().map_or(0, |s| s.faults_total),
            });
        }
        Ok(Response::Ships(reports))
    }

    /// (hash, "NAME vN") of every version of `user`'s scripts.
    fn script_names_by_hash(&self, user: &str) -> Result<Vec<(u128, String)>, RequestError> {
        let store = self.world.store();
        let mut out = Vec::new();
        for name in store.script_names(user).map_err(storage_error)? {
            for v in store.script_versions(user, &name).map_err(storage_error)? {
                out.push((v.hash, format!("{name} v{}", v.version)));
            }
        }
        Ok(out)
    }

    fn logs(&mut self, ship: u64) -> Answer {
        let sim = self.world.sim_mut();
        let record = capture_ship(sim.world_mut(), NetId(ship))
            .ok_or_else(|| RequestError::Rejected(format!("no ship {ship}")))?;
        let faults = sim
            .world()
            .resource::<ScriptFaults>()
            .recent
            .iter()
            .filter(|f| f.ship == NetId(ship))
            .map(|f| (f.tick, f.message.clone()))
            .collect();
        Ok(Response::Logs {
            lines: record.script.map(|s| s.log).unwrap_or_default(),
            faults,
        })
    }
}

/// Where `user`'s ship number `slot` (0-based) spawns: a home sector near the origin and an
/// anchor inside it, both from a hash of the name, with the account's ships on a 30 m grid
/// from the anchor (for sectors of 300 m or more). Deterministic from the request, so the logged input is all a replay
/// needs; accounts sharing a home sector start at different anchors.
pub fn spawn_point(user: &str, slot: usize, sector_size: f32) -> ((i32, i32), (f32, f32)) {
    let h = xxhash_rust::xxh3::xxh3_64(user.as_bytes());
    let sector = ((h % 9) as i32 - 4, ((h >> 8) % 9) as i32 - 4);
    let fraction = |bits: u64| ((bits % 1000) as f32) / 1000.0;
    let anchor = (0.1 + 0.5 * fraction(h >> 16), 0.1 + 0.5 * fraction(h >> 32));
    // 10 columns of 30 m, rows below, wrapping inside the sector's middle 90% (300 ships
    // before two share a spot).
    let step = 30.0 / sector_size.max(300.0);
    let wrap = |v: f32| 0.05 + v.rem_euclid(0.9);
    let local = (
        sector_size * wrap(anchor.0 + step * (slot % 10) as f32),
        sector_size * wrap(anchor.1 + step * (slot / 10) as f32),
    );
    (sector, local)
}

fn require_admin(session: &Session) -> Result<(), RequestError> {
    if session.role == Role::Admin {
        Ok(())
    } else {
        Err(RequestError::Forbidden(
            "only an admin may do that (astroboids admin set-role)".into(),
        ))
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

/// Finishes a recording and names it by its tick range: `live-FIRST-LAST.abreplay`.
fn finish_recording(
    live: LiveRecording,
    sim: &mut astroboids_engine::Simulation,
    rules: &ReplayRules,
) -> Result<PathBuf, String> {
    let started = rules
        .dir
        .join(format!("live-{:012}.abreplay", live.start_tick));
    live.recorder.finish(sim).map_err(|e| e.to_string())?;
    let finished = rules.dir.join(format!(
        "live-{:012}-{:012}.abreplay",
        live.start_tick,
        sim.tick()
    ));
    std::fs::rename(&started, &finished)
        .map_err(|e| format!("{} -> {}: {e}", started.display(), finished.display()))?;
    Ok(finished)
}

/// Finished recordings in `dir`, oldest first (read from their names).
fn finished_replays(dir: &Path) -> Vec<ReplayListing> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<ReplayListing> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let range = name.strip_prefix("live-")?.strip_suffix(".abreplay")?;
            let (start, last) = range.split_once('-')?;
            Some(ReplayListing {
                first_tick: start.parse::<u64>().ok()? + 1,
                last_tick: last.parse().ok()?,
                bytes: entry.metadata().ok()?.len(),
                name,
            })
        })
        .collect();
    out.sort_by_key(|r| r.first_tick);
    out
}

/// Deletes the oldest finished recordings beyond `keep_files`.
fn prune_replays(rules: &ReplayRules) {
    let finished = finished_replays(&rules.dir);
    let excess = finished.len().saturating_sub(rules.keep_files);
    for old in &finished[..excess] {
        let _ = std::fs::remove_file(rules.dir.join(&old.name));
    }
}

fn command_record(c: MoveCommand) -> CommandRecord {
    CommandRecord {
        thrust: c.thrust,
        turn: c.turn,
        mine: c.mine,
        stop: c.stop,
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
