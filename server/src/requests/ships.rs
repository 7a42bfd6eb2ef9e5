//! Ships: spawning (one all-or-nothing input), commands, status and logs, and who may act on
//! which ship.

use astroboids_engine::NetId;
use astroboids_protocol::messages::{MoveCommand, RequestError, Response, ShipStatusReport};
use astroboids_sim::checkpoint::{CommandRecord, ShipRecord, capture_ship};
use astroboids_sim::inputs::{InputOutcome, WorldInput};
use astroboids_sim::scripts::ScriptFaults;
use astroboids_sim::ships::{Owner, ShipIndex};

use super::{Answer, WorldServer, account_error};
use crate::accounts::{Role, Session};

impl WorldServer {
    /// `Ok` when `session` may act on `ship`.
    pub(super) fn check_owner(&self, session: &Session, ship: u64) -> Result<(), RequestError> {
        match self.owner_of(ship) {
            None => Err(RequestError::Rejected(format!("no ship {ship}"))),
            Some(_) if session.role == Role::Admin => Ok(()),
            Some(Some(owner)) if owner == session.user => Ok(()),
            Some(_) => Err(RequestError::Forbidden(format!("ship {ship} is not yours"))),
        }
    }

    /// `None`: no such ship; `Some(None)`: nobody's.
    pub(super) fn owner_of(&self, ship: u64) -> Option<Option<String>> {
        let world = self.world.sim().world();
        let entity = world.resource::<ShipIndex>().entity(NetId(ship))?;
        Some(world.get::<Owner>(entity).map(|o| o.0.clone()))
    }

    pub(super) fn owned_ships(&self, user: &str) -> Vec<u64> {
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

    pub(super) fn spawn(&mut self, user: &str) -> Answer {
        let cap = self
            .accounts()
            .ship_limit(user)
            .map_err(account_error)?
            .map_or(self.rules.max_ships_per_account, |n| n as usize);
        self.spawn_for(user, Some(cap))
    }

    /// A ship for `user` in their home sector; `cap`: ships they may own at most.
    pub(super) fn spawn_for(&mut self, user: &str, cap: Option<usize>) -> Answer {
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

    pub(super) fn status(&mut self, session: &Session, ship: Option<u64>) -> Answer {
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
            reports.push(status_report(&record, tick, &names));
        }
        Ok(Response::Ships(reports))
    }

    pub(super) fn logs(&mut self, ship: u64) -> Answer {
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

    /// Queues a command for the next tick.
    pub(super) fn move_ship(
        &mut self,
        session: &Session,
        ship: u64,
        command: MoveCommand,
    ) -> Answer {
        self.check_owner(session, ship)?;
        self.submit(WorldInput::Command {
            ship,
            command: command_record(command),
        })?;
        Ok(Response::MoveQueued {
            tick: self.world.tick() + 1,
        })
    }
}

/// A ship's status as a player sees it, from its record at `tick`; `labels` name the owner's
/// script versions by hash ("NAME vN").
pub fn status_report(
    record: &ShipRecord,
    tick: u64,
    labels: &[(u128, String)],
) -> ShipStatusReport {
    let flown_by = match (&record.script, record.autopilot) {
        (Some(script), _) => labels
            .iter()
            .find(|(hash, _)| *hash == script.script)
            .map_or(format!("script {:032x}", script.script), |(_, label)| {
                format!("script {label}")
            }),
        (None, true) => "autopilot".to_string(),
        (None, false) => "manual".to_string(),
    };
    ShipStatusReport {
        ship: record.id,
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

fn command_record(c: MoveCommand) -> CommandRecord {
    CommandRecord {
        thrust: c.thrust,
        turn: c.turn,
        mine: c.mine,
        stop: c.stop,
    }
}
