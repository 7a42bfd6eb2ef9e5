//! Carrying out players' requests against the persistent world, between ticks.
//!
//! Everything that changes the world becomes a `WorldInput` submitted to the
//! [`PersistentWorld`] (so it is logged, acknowledged with the next commit, and replayable);
//! reads look at the world as it stands between ticks. A player acts only on their own ships
//! and scripts; an admin on any ship.

use std::net::IpAddr;
use std::time::Duration;

use astroboids_engine::NetId;
use astroboids_host::PersistentWorld;
use astroboids_host::persistent::HostError;
use astroboids_net::messages::{
    MoveCommand, Request, RequestError, Response, ScriptListing, ShipStatusReport, Token,
};
use astroboids_sim::checkpoint::{CommandRecord, capture_ship};
use astroboids_sim::inputs::{InputOutcome, WorldInput};
use astroboids_sim::scripts::{ScriptFaults, ScriptId, ScriptLibrary};
use astroboids_sim::ships::{Owner, ShipIndex};
use astroboids_storage::StorageError;

use crate::accounts::{AccountError, AccountRules, Accounts, Role, Session};
use crate::limits::{RateLimits, RateRules};

/// Limits on what players may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRules {
    pub accounts: AccountRules,
    pub rates: RateRules,
    /// Ships one player may own.
    pub max_ships_per_account: usize,
}

impl Default for ServerRules {
    fn default() -> Self {
        Self {
            accounts: AccountRules::default(),
            rates: RateRules::default(),
            max_ships_per_account: 50,
        }
    }
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
}

/// The persistent world with the rules for players.
pub struct WorldServer {
    world: PersistentWorld,
    rules: ServerRules,
    limits: RateLimits,
}

type Answer = Result<Response, RequestError>;

impl WorldServer {
    pub fn new(world: PersistentWorld, rules: ServerRules) -> Self {
        let limits = RateLimits::new(&rules.rates);
        Self {
            world,
            rules,
            limits,
        }
    }

    pub fn world(&self) -> &PersistentWorld {
        &self.world
    }

    /// Runs one tick: inputs accepted since the last one are logged (acknowledged) first.
    pub fn step(&mut self) -> Result<(), HostError> {
        self.world.step().map(|_| ())
    }

    /// Makes everything durable (a clean shutdown).
    pub fn close(self) -> Result<(), HostError> {
        self.world.close()
    }

    /// Carries out `request` for `connection` at `now` (Unix seconds) after the rate limits
    /// of its address and account; never panics on what a client sends.
    pub fn handle(&mut self, connection: &mut Connection, request: Request, now: u64) -> Response {
        if let Err(limited) =
            self.limits
                .check(connection.ip, connection.user(), Duration::from_secs(now))
        {
            return Response::Error(limited);
        }
        self.answer(connection, request, now)
            .unwrap_or_else(Response::Error)
    }

    fn accounts(&self) -> Accounts<'_> {
        Accounts::new(self.world.store(), self.rules.accounts.clone())
    }

    fn answer(&mut self, connection: &mut Connection, request: Request, now: u64) -> Answer {
        match request {
            Request::Register { user, password } => {
                self.accounts()
                    .register(&user, &password, Role::Player, now)
                    .map_err(account_error)?;
                Ok(Response::Registered)
            }
            Request::Login { user, password } => {
                let (token, session) = self
                    .accounts()
                    .login(&user, &password, now)
                    .map_err(account_error)?;
                let expires_in_s = session.expires_unix_s.saturating_sub(now);
                connection.session = Some((token.clone(), session));
                Ok(Response::LoggedIn {
                    token,
                    expires_in_s,
                })
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
                let session = live_session(connection, now)?;
                self.answer_player(&session, request)
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
            Request::Register { .. }
            | Request::Login { .. }
            | Request::Authenticate { .. }
            | Request::Logout => unreachable!("answered before the session check"),
        }
    }

    fn submit(&mut self, input: WorldInput) -> Result<InputOutcome, RequestError> {
        self.world.submit(input).map_err(|e| match e {
            HostError::Input(refused) => RequestError::Rejected(refused.to_string()),
            other => RequestError::Unavailable(other.to_string()),
        })
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
        let compiled = world
            .resource::<ScriptLibrary>()
            .engine()
            .load(wasm)
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
        let owned = self.owned_ships(user).len();
        if owned >= self.rules.max_ships_per_account {
            return Err(RequestError::Rejected(format!(
                "you own {owned} ships, the most an account may ({})",
                self.rules.max_ships_per_account
            )));
        }
        // A home sector per account near the origin, ships spread inside it: deterministic
        // from the request, so the logged input is all a replay needs.
        let home = xxhash_rust::xxh3::xxh3_64(user.as_bytes());
        let sector = ((home % 9) as i32 - 4, ((home >> 8) % 9) as i32 - 4);
        let size = self
            .world
            .sim()
            .world()
            .resource::<astroboids_sim::UniverseConfig>()
            .simulation
            .sector_size;
        let slot = owned as f32;
        let local = (
            size * (0.2 + 0.06 * (slot % 10.0)),
            size * (0.2 + 0.06 * (slot / 10.0).floor()),
        );
        let outcome = self.submit(WorldInput::SpawnShip {
            sector,
            local,
            heading: 0.0,
            autopilot: true,
        })?;
        let InputOutcome::Spawned(ids) = outcome else {
            unreachable!("a spawn spawns");
        };
        let ship = ids[0].0;
        self.submit(WorldInput::SetOwner {
            ship,
            owner: Some(user.to_string()),
        })?;
        Ok(Response::ShipSpawned { ship })
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

/// The connection's session, if it is still live at `now`.
fn live_session(connection: &mut Connection, now: u64) -> Result<Session, RequestError> {
    match &connection.session {
        None => Err(RequestError::NotAuthenticated),
        Some((_, session)) if now >= session.expires_unix_s => {
            connection.session = None;
            Err(RequestError::NotAuthenticated)
        }
        Some((_, session)) => Ok(session.clone()),
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
