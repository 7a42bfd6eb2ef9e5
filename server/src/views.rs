//! What each player may see (fog of war): their own ships and everything those ships' sensors
//! picked up this tick, quantized for the snapshot codec, with a priority for the byte
//! budget (own ships first, then contacts nearest to one of them).
//!
//! Reads the world between ticks; the sensors stage already did the spatial work, so a view
//! costs the player's ships times their contacts.
//!
//! Architecture invariant: a player's view holds nothing their own ships did not sense this
//! tick (it is built from the sensors' contacts, never from a wider query).

use std::collections::{BTreeMap, HashMap};

use bevy_ecs::prelude::*;

use astroboids_engine::NetId;
use astroboids_net::snapshot::{View, ViewEntity};
use astroboids_sim::sectors::Sectors;
use astroboids_sim::sensors::{ContactTarget, Sensors};
use astroboids_sim::ships::{Heading, Hull, Owner, ShipIndex};
use astroboids_sim::space::{SectorCoord, SpacePos};

pub use astroboids_net::snapshot::{KIND_ASTEROID, KIND_OWN_SHIP, KIND_SHIP};

/// Asteroid ids have the top bit set (ship ids never do); below it the sector's y and x (the
/// low 23 bits of each) and the asteroid's index there. Asteroids of one sector thus get
/// neighbouring ids and neighbouring sectors near ones, which keeps the id gaps in snapshots
/// small (a hashed id cost up to 10 bytes per record). Sectors 2^23 apart share ids; no view
/// spans more than a few sectors, so no client can see both.
pub const ASTEROID_ID_BIT: u64 = 1 << 63;

pub fn asteroid_id(sector: SectorCoord, index: u16) -> u64 {
    const COORD_MASK: u64 = (1 << 23) - 1;
    let x = u64::from(sector.x as u32) & COORD_MASK;
    let y = u64::from(sector.y as u32) & COORD_MASK;
    ASTEROID_ID_BIT | y << 39 | x << 16 | u64::from(index)
}

/// A player's view and the budget priority of each entity in it (lower goes first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlayerView {
    pub view: View,
    pub priority: BTreeMap<u64, u64>,
}

/// The ships of some owners, found in one pass per tick for all the views built after it.
#[derive(Debug, Default)]
pub struct Owners {
    ships: HashMap<String, Vec<Entity>>,
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
        Self { ships }
    }

    /// `user`'s ships.
    pub fn ships(&self, user: &str) -> &[Entity] {
        self.ships.get(user).map_or(&[], Vec::as_slice)
    }

    /// What `user` sees now.
    pub fn view(&self, world: &World, user: &str) -> PlayerView {
        let mut out = PlayerView::default();
        let Some(own) = self.ships.get(user) else {
            return out;
        };
        let index = world.resource::<ShipIndex>();
        let sectors = world.resource::<Sectors>();
        let ship_entity = |entity: Entity, kind: u8| -> Option<(u64, ViewEntity)> {
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
        };
        let mut insert = |id: u64, entity: ViewEntity, priority: u64| {
            // Own ships stay own ships when another of the player's ships also senses them.
            let keep = out.view.get(&id).is_some_and(|e| e.kind == KIND_OWN_SHIP);
            if !keep {
                out.view.insert(id, entity);
            }
            let p = out.priority.entry(id).or_insert(priority);
            *p = (*p).min(priority);
        };
        for &entity in own {
            if let Some((id, e)) = ship_entity(entity, KIND_OWN_SHIP) {
                insert(id, e, 0);
            }
        }
        for &entity in own {
            let Some(sensors) = world.get::<Sensors>(entity) else {
                continue;
            };
            for contact in &sensors.contacts {
                let priority = 1 + contact.distance.max(0.0) as u64;
                match contact.target {
                    ContactTarget::Ship(id) => {
                        if let Some((id, e)) =
                            index.entity(id).and_then(|e| ship_entity(e, KIND_SHIP))
                        {
                            insert(id, e, priority);
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
                        let (local, radius) = ((a.local.x, a.local.y), a.radius);
                        insert(
                            asteroid_id(sector, i),
                            ViewEntity::quantize(
                                KIND_ASTEROID,
                                (sector.x, sector.y),
                                local,
                                0.0,
                                radius,
                            ),
                            priority,
                        );
                    }
                }
            }
        }
        out
    }
}
