//! Carrying out one player's request on the cluster: the same requests and answers as the
//! single server (`astroboids_server::requests`), with the world's state behind the store,
//! the input log and the shards. Each connection's requests run one after another (answers
//! keep the order of requests), each bounded by the rules' timeouts.
//!
//! Requests that write, from a client instance with a session, are claimed in PostgreSQL
//! first and their answers stored there ([`Gateway::handle`]): a request re-sent after a
//! reconnect, to any gateway, gets the stored answer, or waits for the gateway carrying it
//! out, and is never carried out twice (world inputs are also deduplicated by the log, under
//! a message id made from the request's key, should a claim expire with its gateway).

mod accounts;
mod scripts;
mod ships;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc};
use tracing::warn;

use astroboids_cluster_net::TickBus;
use astroboids_pgstore::{Begin, Finish, PgStore, ResumeKey, Role, Session, StoreError, TokenHash};
use astroboids_protocol::messages::{Request, RequestError, Response, Token};
use astroboids_scripting::ScriptEngine;
use astroboids_server::limits::RateLimits;
use astroboids_sim::inputs::WorldInput;

use crate::inputs::WorldInputs;
use crate::outcomes::Outcome;
use crate::viewers::{ConnId, Viewers};
use crate::{GatewayRules, unix_now_s};

/// What a gateway knows of the world it fronts (from the world's spec).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorldFacts {
    pub sector_size: f32,
    pub tick_rate_hz: u32,
    pub sensor_range: f32,
    pub nebula_range_factor: f32,
    pub max_module_bytes: usize,
}

/// One connection's side: where it comes from and whose session it is bound to.
pub struct ConnState {
    pub conn: ConnId,
    pub ip: IpAddr,
    /// The largest datagram the connection carries (0: none, so no snapshots).
    pub max_datagram_bytes: usize,
    /// The newest snapshot its client acknowledged (the connection task writes it).
    pub acked: Arc<AtomicU32>,
    session: Option<(Token, TokenHash)>,
    /// The user of the session, for rate limits (checked against the store per request).
    user: Option<String>,
}

impl ConnState {
    pub fn new(conn: ConnId, ip: IpAddr, max_datagram_bytes: usize) -> Self {
        Self {
            conn,
            ip,
            max_datagram_bytes,
            acked: Arc::new(AtomicU32::new(0)),
            session: None,
            user: None,
        }
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
}

/// A connection's link for closing it from elsewhere (an admin's kick).
struct ConnLink {
    user: Option<String>,
    close: mpsc::UnboundedSender<String>,
}

/// Everything the request handlers share (one per gateway process).
pub struct Gateway {
    pub(crate) name: String,
    pub(crate) store: PgStore,
    pub(crate) bus: Arc<TickBus>,
    pub(crate) inputs: WorldInputs,
    pub(crate) rules: GatewayRules,
    pub(crate) world: WorldFacts,
    pub(crate) engine: Arc<ScriptEngine>,
    pub(crate) viewers: Mutex<Viewers>,
    compile_slots: Semaphore,
    password_slots: Semaphore,
    limits: Mutex<RateLimits>,
    /// Modules this gateway already put in the world (adding again is harmless, but costs a
    /// blob and a log entry).
    added_scripts: Mutex<HashSet<u128>>,
    links: Mutex<HashMap<ConnId, ConnLink>>,
    started: Instant,
}

/// Which request an input belongs to: its message ids on the input log, the same each time
/// the request is carried out (a request submits at most one input of each kind).
pub(crate) struct InputIds {
    base: String,
    /// Who asked (the session's user), for the durable copy of the log.
    submitter: String,
}

impl InputIds {
    fn for_input(&self, input: &WorldInput) -> String {
        format!("{}-{}", self.base, input.kind().replace(' ', "-"))
    }
}

impl Gateway {
    pub fn new(
        name: String,
        store: PgStore,
        bus: Arc<TickBus>,
        rules: GatewayRules,
        world: WorldFacts,
        engine: Arc<ScriptEngine>,
    ) -> Self {
        Self {
            inputs: WorldInputs::new(bus.clone(), store.clone(), rules.input_timeout),
            compile_slots: Semaphore::new(1),
            password_slots: Semaphore::new(rules.password_workers.max(1)),
            limits: Mutex::new(RateLimits::new(&rules.rates)),
            name,
            store,
            bus,
            rules,
            world,
            engine,
            viewers: Mutex::new(Viewers::default()),
            added_scripts: Mutex::new(HashSet::new()),
            links: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }
    }

    pub fn inputs(&self) -> &WorldInputs {
        &self.inputs
    }

    pub fn viewers(&self) -> &Mutex<Viewers> {
        &self.viewers
    }

    pub fn world(&self) -> WorldFacts {
        self.world
    }

    /// A connection opened: `close` closes it with a reason (an admin's kick).
    pub fn connection_opened(&self, conn: ConnId, close: mpsc::UnboundedSender<String>) {
        self.links
            .lock()
            .expect("not poisoned")
            .insert(conn, ConnLink { user: None, close });
    }

    pub fn connection_closed(&self, conn: ConnId) {
        self.links.lock().expect("not poisoned").remove(&conn);
        self.viewers.lock().expect("not poisoned").unsubscribe(conn);
    }

    /// Closes every connection of `user` on this gateway; returns how many.
    pub fn close_user(&self, user: &str, reason: &str) -> u32 {
        let links = self.links.lock().expect("not poisoned");
        let mut closed = 0;
        for link in links.values() {
            if link.user.as_deref() == Some(user) && link.close.send(reason.to_owned()).is_ok() {
                closed += 1;
            }
        }
        closed
    }

    fn bind_user(&self, state: &mut ConnState, token: Token, user: &str) {
        let hash = token_hash(&token);
        state.session = Some((token, hash));
        state.user = Some(user.to_owned());
        if let Some(link) = self
            .links
            .lock()
            .expect("not poisoned")
            .get_mut(&state.conn)
        {
            link.user = Some(user.to_owned());
        }
    }

    fn unbind_user(&self, state: &mut ConnState) {
        state.session = None;
        state.user = None;
        if let Some(link) = self
            .links
            .lock()
            .expect("not poisoned")
            .get_mut(&state.conn)
        {
            link.user = None;
        }
        self.viewers
            .lock()
            .expect("not poisoned")
            .unsubscribe(state.conn);
    }

    /// Carries out `request` of `state`'s connection (see the module docs); never panics on
    /// what a client sends.
    pub async fn handle(
        &self,
        state: &mut ConnState,
        instance: u64,
        id: u64,
        request: Request,
    ) -> Response {
        let kind = request.kind();
        let began = Instant::now();
        let checked = self.limits.lock().expect("not poisoned").check(
            state.ip,
            state.user(),
            self.started.elapsed(),
        );
        let response = match checked {
            Err(e) => Response::Error(e),
            Ok(()) => self.route(state, instance, id, request).await,
        };
        let outcome = match &response {
            Response::Error(RequestError::NotAuthenticated) => "not_authenticated",
            Response::Error(RequestError::Forbidden(_)) => "forbidden",
            Response::Error(RequestError::Invalid(_)) => "invalid",
            Response::Error(RequestError::RateLimited(_)) => "rate_limited",
            Response::Error(RequestError::Rejected(_)) => "rejected",
            Response::Error(RequestError::Unavailable(_)) => "unavailable",
            _ => "ok",
        };
        metrics::counter!("astroboids_gateway_requests_total", "kind" => kind, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("astroboids_gateway_request_seconds", "kind" => kind)
            .record(began.elapsed().as_secs_f64());
        response
    }

    async fn route(
        &self,
        state: &mut ConnState,
        instance: u64,
        id: u64,
        request: Request,
    ) -> Response {
        let answer = match request {
            Request::Register { user, password } => self.register(&user, password).await,
            Request::Login { user, password } => self.login(state, &user, password).await,
            Request::Authenticate { token } => self.authenticate(state, token).await,
            Request::Logout => self.logout(state).await,
            request => match self.live_session(state).await {
                Err(e) => Err(e),
                Ok(session) if request.writes() && instance != 0 => {
                    return self.resumed(state, &session, instance, id, request).await;
                }
                Ok(session) => {
                    let mut ids = InputIds {
                        base: format!("in-{}", random_hex()),
                        submitter: session.user.clone(),
                    };
                    self.carry_out(state, &session, &mut ids, request).await
                }
            },
        };
        answer.unwrap_or_else(Response::Error)
    }

    /// A request that writes, from a resumable client instance: claimed in the store, carried
    /// out once, its answer stored for a re-send to find.
    async fn resumed(
        &self,
        state: &mut ConnState,
        session: &Session,
        instance: u64,
        id: u64,
        request: Request,
    ) -> Response {
        let Some((_, token)) = state.session else {
            return Response::Error(RequestError::NotAuthenticated);
        };
        let key = ResumeKey { token, instance };
        let waiting = format!("{}/{}", self.name, state.conn);
        let deadline = Instant::now() + self.rules.claim_wait;
        let claim = loop {
            match self
                .store
                .begin_request(&key, id, &waiting, unix_now_s())
                .await
            {
                Ok(Begin::New(claim)) => break claim,
                Ok(Begin::Answered(bytes)) => {
                    metrics::counter!("astroboids_gateway_requests_resumed_total").increment(1);
                    return postcard::from_bytes(&bytes).unwrap_or_else(|e| {
                        Response::Error(RequestError::Unavailable(format!(
                            "the stored answer does not decode: {e}"
                        )))
                    });
                }
                Ok(Begin::InFlight) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(Begin::InFlight) => {
                    return Response::Error(RequestError::Unavailable(
                        "this request is still being carried out; ask again in a moment".into(),
                    ));
                }
                Err(e) => return Response::Error(store_error(e)),
            }
        };
        let mut ids = InputIds {
            base: format!("in-{}-{instance:x}-{id:x}", hex(&token.0[..8])),
            submitter: session.user.clone(),
        };
        let response = self
            .carry_out(state, session, &mut ids, request)
            .await
            .unwrap_or_else(Response::Error);
        let bytes = postcard::to_allocvec(&response).expect("answers are plain data");
        match self
            .store
            .finish_request(&key, id, claim, &bytes, unix_now_s())
            .await
        {
            Ok(Finish::Stored { .. }) => {}
            Ok(Finish::Lost) => warn!(
                conn = state.conn,
                id, "a request's claim expired before its answer was stored"
            ),
            Err(e) => warn!(conn = state.conn, id, error = %e, "storing an answer failed"),
        }
        response
    }

    /// The requests that need a live session.
    async fn carry_out(
        &self,
        state: &mut ConnState,
        session: &Session,
        ids: &mut InputIds,
        request: Request,
    ) -> Result<Response, RequestError> {
        let admin = session.role == Role::Admin;
        let need_admin = || {
            if admin {
                Ok(())
            } else {
                Err(RequestError::Forbidden("admins only".into()))
            }
        };
        match request {
            Request::UploadScript { name, wasm } => self.upload(&session.user, &name, wasm).await,
            Request::ListScripts => self.list_scripts(&session.user).await,
            Request::AssignScript { ship, name } => {
                self.check_owner(session, ship).await?;
                self.assign(&session.user, ship, &name, ids).await
            }
            Request::SpawnShip => self.spawn(&session.user, true, ids).await,
            Request::ShipStatus { ship } => self.status(session, ship).await,
            Request::MoveShip { ship, command } => {
                self.check_owner(session, ship).await?;
                self.move_ship(ship, command, ids).await
            }
            Request::ShipLogs { ship } => {
                self.check_owner(session, ship).await?;
                self.logs(ship).await
            }
            Request::ListReplays | Request::DownloadTrace { .. } => Err(RequestError::Unavailable(
                "a cluster keeps no replay recordings yet: traces come from the recordings \
                     of `astroboids serve`"
                    .into(),
            )),
            Request::AdminSpawn { owner } => {
                need_admin()?;
                self.spawn(&owner, false, ids).await
            }
            Request::AdminDespawn { ship } => {
                need_admin()?;
                self.despawn(ship, ids).await
            }
            Request::AdminKick { user } => {
                need_admin()?;
                self.kick(&user).await
            }
            Request::AdminSetShipLimit { user, max_ships } => {
                need_admin()?;
                self.set_ship_limit(&user, max_ships).await
            }
            Request::Subscribe { .. } => {
                if state.max_datagram_bytes == 0 {
                    return Err(RequestError::Unavailable(
                        "this connection carries no datagrams, which snapshots need".into(),
                    ));
                }
                // As the single server: datagrams as large as the connection carries.
                self.viewers.lock().expect("not poisoned").subscribe(
                    state.conn,
                    &session.user,
                    state.max_datagram_bytes,
                    state.acked.clone(),
                );
                state.acked.store(0, Ordering::Relaxed);
                Ok(Response::Subscribed {
                    sector_size: self.world.sector_size,
                    tick_rate_hz: self.world.tick_rate_hz,
                    sensor_range: self.world.sensor_range,
                    nebula_range_factor: self.world.nebula_range_factor,
                })
            }
            Request::Unsubscribe => {
                self.viewers
                    .lock()
                    .expect("not poisoned")
                    .unsubscribe(state.conn);
                Ok(Response::Unsubscribed)
            }
            Request::Register { .. }
            | Request::Login { .. }
            | Request::Authenticate { .. }
            | Request::Logout => Err(RequestError::Invalid(
                "sessions are handled before this point".into(),
            )),
        }
    }

    /// Publishes `input` and waits for its verdict.
    pub(crate) async fn submit(
        &self,
        input: WorldInput,
        ids: &mut InputIds,
    ) -> Result<Outcome, RequestError> {
        let msg_id = ids.for_input(&input);
        self.inputs.submit(&input, &msg_id, &ids.submitter).await
    }
}

/// How a store failure reads to a player.
pub(crate) fn store_error(e: StoreError) -> RequestError {
    match e {
        StoreError::NameTaken(_)
        | StoreError::ShipCap { .. }
        | StoreError::ShipOwned { .. }
        | StoreError::UnknownUser(_)
        | StoreError::UnknownShip(_)
        | StoreError::UnknownScript(_) => RequestError::Rejected(e.to_string()),
        StoreError::InvalidName { .. }
        | StoreError::TooLarge { .. }
        | StoreError::OutOfRange { .. }
        | StoreError::Invalid { .. } => RequestError::Invalid(e.to_string()),
        StoreError::UnknownToken | StoreError::SessionExpired | StoreError::UnknownSession => {
            RequestError::NotAuthenticated
        }
        other => {
            warn!(error = %other, "the store failed");
            RequestError::Unavailable(format!("the account store failed: {other}"))
        }
    }
}

pub(crate) fn token_hash(token: &Token) -> TokenHash {
    TokenHash(Sha256::digest(token.0.as_bytes()).into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}
