//! What each player may see (fog of war): their own ships and everything those ships' sensors
//! picked up this tick, quantized for the snapshot codec, with a priority for the byte
//! budget (own ships first, then contacts nearest to one of them).
//!
//! Reads the world between ticks; the sensors stage already did the spatial work, so a view
//! costs the player's ships times their contacts. Other players' ships carry their owner's
//! colour slot in their kind; nebulae and hazards reached by an own ship's sensor range come
//! from the sectors around it (they lie wholly inside their sector, and a ship's sensors reach
//! no farther than the neighbouring sectors). The single server builds each subscribed
//! player's view from its whole world; a shard of a cluster builds the pieces of every
//! player's view that its own ships sensed, showing ships held by a neighbour from the halo
//! it was just sent (their end-of-tick state), and the gateway merges the pieces
//! ([`PlayerView::merge`]) into what the single server would have built.
//!
//! Architecture invariant: a player's view holds nothing their own ships did not sense this
//! tick (ships and asteroids come from the sensors' contacts, never from a wider query; areas
//! from within an own ship's sensor range).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use bevy_ecs::prelude::*;

use astroboids_engine::NetId;
use astroboids_protocol::messages::TickEvents;
use astroboids_protocol::snapshot::{View, ViewEntity};
use astroboids_sim::scripts::{ScriptFaults, ScriptLog};
use astroboids_sim::sectors::Sectors;
use astroboids_sim::sensors::{Contact, ContactTarget, Sensors};
use astroboids_sim::shard::HaloShips;
use astroboids_sim::ships::{Heading, Hull, Owner, ShipIndex};
use astroboids_sim::space::{SectorCoord, SpacePos};

pub use astroboids_protocol::snapshot::{
    KIND_ASTEROID, KIND_HAZARD, KIND_NEBULA, KIND_OWN_SHIP, KIND_SHIP, is_other_ship,
    owned_ship_kind,
};

pub use astroboids_protocol::snapshot::ASTEROID_ID_BIT;

/// The snapshot id of asteroid `index` of `sector` (the protocol's [`ASTEROID_ID_BIT`] scheme).
pub fn asteroid_id(sector: SectorCoord, index: u16) -> u64 {
    astroboids_protocol::snapshot::asteroid_id((sector.x, sector.y), index)
}

/// Nebula and hazard ids: an asteroid id (same sector bits) with an index above any
/// asteroid's (sectors hold at most 256 asteroids and 16 nebulae).
const NEBULA_INDEX_FIRST: u16 = 0xF000;
const HAZARD_INDEX_FIRST: u16 = 0xF800;

pub fn nebula_id(sector: SectorCoord, index: usize) -> u64 {
    asteroid_id(sector, NEBULA_INDEX_FIRST + index as u16)
}

pub fn hazard_id(sector: SectorCoord, index: usize) -> u64 {
    asteroid_id(sector, HAZARD_INDEX_FIRST + index as u16)
}

/// A player's view and the budget priority of each entity in it (lower goes first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlayerView {
    pub view: View,
    pub priority: BTreeMap<u64, u64>,
}

impl PlayerView {
    /// Puts `id` in the view: an own ship stays an own ship when another of the player's
    /// ships also senses it, and the priority is the lowest any sighting gave.
    pub fn insert(&mut self, id: u64, entity: ViewEntity, priority: u64) {
        let keep = self.view.get(&id).is_some_and(|e| e.kind == KIND_OWN_SHIP);
        if !keep {
            self.view.insert(id, entity);
        }
        let p = self.priority.entry(id).or_insert(priority);
        *p = (*p).min(priority);
    }

    /// Adds another piece of the same player's view of the same tick (a cluster's shards
    /// each build the part their ships sensed): the result is the view one process holding
    /// every ship would have built, whatever the order the pieces come in.
    pub fn merge(&mut self, other: PlayerView) {
        for (id, entity) in other.view {
            let priority = other.priority.get(&id).copied().unwrap_or(u64::MAX);
            self.insert(id, entity, priority);
        }
    }
}

/// The ships of some owners, found in one pass per tick for all the views built after it.
#[derive(Debug, Default)]
pub struct Owners {
    ships: HashMap<String, Vec<Entity>>,
    halo: HashMap<u64, ViewEntity>,
}

impl Owners {
    /// The ships of `users` (only theirs: no name is copied for anyone else's ship).
    pub fn of(world: &mut World, users: &[&str]) -> Self {
        let mut ships: HashMap<String, Vec<Entity>> =
            users.iter().map(|u| (u.to_string(), Vec::new())).collect();
        let mut query = world.query::<(Entity, &Owner)>();
        for (entity, owner) in query.iter(world) {
            if let Some(list) = ships.get_mut(owner.0.as_str()) {
                list.push(entity);
            }
        }
        let halo = halo_entities(world);
        Self { ships, halo }
    }

    /// The ships of every owner (a shard builds every player's piece: it cannot know who
    /// watches).
    pub fn all(world: &mut World) -> Self {
        let mut ships: HashMap<String, Vec<Entity>> = HashMap::new();
        let mut query = world.query::<(Entity, &Owner)>();
        for (entity, owner) in query.iter(world) {
            ships.entry(owner.0.clone()).or_default().push(entity);
        }
        let halo = halo_entities(world);
        Self { ships, halo }
    }

    /// The owners found, in name order.
    pub fn users(&self) -> Vec<&str> {
        let mut users: Vec<&str> = self
            .ships
            .iter()
            .filter(|(_, ships)| !ships.is_empty())
            .map(|(u, _)| u.as_str())
            .collect();
        users.sort_unstable();
        users
    }

    /// `user`'s ships.
    pub fn ships(&self, user: &str) -> &[Entity] {
        self.ships.get(user).map_or(&[], Vec::as_slice)
    }

    /// What `user` sees now.
    pub fn view(&self, world: &World, user: &str) -> PlayerView {
        self.view_with(world, user, &[])
    }

    /// What `user` sees now, with `extra` contacts sensed this tick by ships of theirs no
    /// longer here (a shard keeps what its departing ships sensed: their new holder has the
    /// ships but not their contacts).
    pub fn view_with(&self, world: &World, user: &str, extra: &[Contact]) -> PlayerView {
        let mut out = PlayerView::default();
        let own = self.ships(user);
        for &entity in own {
            if let Some((id, e)) = ship_entity(world, entity, KIND_OWN_SHIP) {
                out.insert(id, e, 0);
            }
        }
        let index = world.resource::<ShipIndex>();
        let sectors = world.resource::<Sectors>();
        for &entity in own {
            if let (Some(pos), Some(sensors)) =
                (world.get::<SpacePos>(entity), world.get::<Sensors>(entity))
            {
                areas_in_range(sectors, *pos, sensors.range, &mut out);
            }
        }
        let sensed = own
            .iter()
            .filter_map(|&entity| world.get::<Sensors>(entity))
            .flat_map(|sensors| sensors.contacts.iter())
            .chain(extra);
        for contact in sensed {
            let priority = 1 + contact.distance.max(0.0) as u64;
            match contact.target {
                ContactTarget::Ship(id) => {
                    // In a shard, ships a neighbour holds are known from the halo it just
                    // sent (their end-of-tick state, as a local ship's).
                    let seen = index
                        .entity(id)
                        .and_then(|e| {
                            let kind = world
                                .get::<Owner>(e)
                                .map_or(KIND_SHIP, |o| owned_ship_kind(&o.0));
                            ship_entity(world, e, kind)
                        })
                        .or_else(|| self.halo.get(&id.0).map(|e| (id.0, *e)));
                    if let Some((id, e)) = seen {
                        out.insert(id, e, priority);
                    }
                }
                ContactTarget::Asteroid { sector, index: i } => {
                    let asteroid = sectors.get(sector).and_then(|s| {
                        s.asteroids
                            .binary_search_by_key(&i, |a| a.index)
                            .ok()
                            .map(|at| &s.asteroids[at])
                    });
                    // Contacts come from loaded sectors only; a missing one is skipped.
                    let Some(a) = asteroid else {
                        continue;
                    };
                    let entity = ViewEntity::quantize(
                        KIND_ASTEROID,
                        (sector.x, sector.y),
                        (a.local.x, a.local.y),
                        0.0,
                        a.radius,
                    );
                    out.insert(asteroid_id(sector, i), entity, priority);
                }
            }
        }
        out
    }
}

/// The nebulae and hazards within `range` of `pos` (their edge, not their centre), from the 3x3
/// sectors around it that are loaded (a shard has every sector its ships' sensors reach).
fn areas_in_range(sectors: &Sectors, pos: SpacePos, range: f32, out: &mut PlayerView) {
    let size = sectors.generator().sector_size();
    for dx in -1..=1 {
        for dy in -1..=1 {
            let coord = SectorCoord::new(pos.sector.x + dx, pos.sector.y + dy);
            let Some(contents) = sectors.get(coord) else {
                continue;
            };
            let reach = |local: astroboids_sim::space::Vec2, radius: f32| {
                let x = dx as f32 * size + local.x - pos.local.x;
                let y = dy as f32 * size + local.y - pos.local.y;
                let edge = (x.hypot(y) - radius).max(0.0);
                (edge <= range).then_some(1 + edge as u64)
            };
            let nebulae = contents
                .nebulae
                .iter()
                .map(|n| (KIND_NEBULA, n.local, n.radius));
            let hazards = contents
                .hazards
                .iter()
                .map(|h| (KIND_HAZARD, h.local, h.radius));
            let (mut n, mut h) = (0, 0);
            for (kind, local, radius) in nebulae.chain(hazards) {
                let id = if kind == KIND_NEBULA {
                    n += 1;
                    nebula_id(coord, n - 1)
                } else {
                    h += 1;
                    hazard_id(coord, h - 1)
                };
                if let Some(priority) = reach(local, radius) {
                    let entity =
                        ViewEntity::area(kind, (coord.x, coord.y), (local.x, local.y), radius);
                    out.insert(id, entity, priority);
                }
            }
        }
    }
}

fn ship_entity(world: &World, entity: Entity, kind: u8) -> Option<(u64, ViewEntity)> {
    let id = world.get::<NetId>(entity)?;
    let pos = world.get::<SpacePos>(entity)?;
    let heading = world.get::<Heading>(entity).map_or(0.0, |h| h.0);
    let hull = world.get::<Hull>(entity).map_or(0.0, |h| h.0);
    Some((
        id.0,
        ViewEntity::quantize(
            kind,
            (pos.sector.x, pos.sector.y),
            (pos.local.x, pos.local.y),
            heading,
            hull,
        ),
    ))
}

/// Ships a neighbouring shard holds, as its halo has them (empty in a whole world).
fn halo_entities(world: &World) -> HashMap<u64, ViewEntity> {
    world
        .get_resource::<HaloShips>()
        .map(|h| {
            h.0.iter()
                .map(|s| {
                    let kind = s.owner.as_deref().map_or(KIND_SHIP, owned_ship_kind);
                    let entity = ViewEntity::quantize(kind, s.sector, s.local, s.heading, s.hull);
                    (s.id, entity)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// This tick's log lines and faults of `user`'s ships, in ship order as [`Owners`] found them.
pub fn player_events(world: &World, owners: &Owners, user: &str) -> TickEvents {
    let tick = world.resource::<astroboids_engine::Tick>().0;
    let mut events = TickEvents {
        tick,
        logs: Vec::new(),
        faults: Vec::new(),
        dropped_before: 0,
    };
    let faults = &world.resource::<ScriptFaults>().recent;
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
                .filter(|f| f.tick == tick && f.ship == *id)
                .map(|f| (id.0, f.message.clone())),
        );
    }
    events
}
