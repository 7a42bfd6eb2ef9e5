//! Physics with rapier2d, one rapier world per sector where ships are near something.
//!
//! Ships far from everything fly free (see [`free_flight`]): nothing can touch them within the
//! tick, so they move by rapier's own integration without a body. Each sector where some ship
//! is near another ship or an asteroid gets its own [`SectorWorld`] holding bodies for those
//! ships. Sectors are stepped in parallel (rayon) and their results merged in sector order, so
//! results do not depend on the thread count. A ship that leaves its sector is handed off
//! explicitly, in (source sector, id) order: its body (if any) leaves the old world now, and
//! the new sector decides at the next physics stage whether it needs one. A world is dropped
//! as soon as no ship of its sector needs it, so a sector without bodies is always in its
//! canonical (freshly built) state.
//!
//! Known simplification: bodies in different sectors do not touch. A ship on a sector border
//! meets an asteroid or ship across the border only once its centre crosses over.

mod free_flight;
mod sector_world;

use std::collections::BTreeMap;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use astroboids_engine::{NetId, Tick, TickRate, TickSchedule};

use crate::config::UniverseConfig;
use crate::sectors::Sectors;
use crate::ships::{Hull, ShipIndex, Velocity};
use crate::space::{Rehomed, SectorCoord, SpacePos, Vec2, rehome};
use crate::{SimSet, SimTotals, TickReport};

use free_flight::Motion;
pub use sector_world::SectorWorld;
use sector_world::{SectorShip, ShipParams, StepOutcome, step_sector};

/// The rapier worlds of the sectors where some ship is near something.
#[derive(Resource, Default)]
pub struct SectorWorlds {
    // Boxed: a rapier world is several kilobytes, and the physics stage moves each one out to
    // its sector's job and back every tick.
    worlds: BTreeMap<SectorCoord, Box<SectorWorld>>,
}

impl SectorWorlds {
    /// Drops every world (checkpoints canonicalize physics this way).
    fn clear(&mut self) {
        self.worlds.clear();
    }

    pub fn get(&self, sector: SectorCoord) -> Option<&SectorWorld> {
        self.worlds.get(&sector).map(|w| &**w)
    }

    /// The worlds, in sector order.
    pub fn iter(&self) -> impl Iterator<Item = (SectorCoord, &SectorWorld)> {
        self.worlds
            .iter()
            .map(|(sector, world)| (*sector, &**world))
    }

    pub fn len(&self) -> usize {
        self.worlds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.worlds.is_empty()
    }

    /// Whether any world holds a body for `id`.
    pub fn contains_ship(&self, id: NetId) -> bool {
        self.worlds.values().any(|w| w.contains_ship(id))
    }

    /// Removes a ship's body, if it has one (a ship destroyed or leaving the shard).
    pub(crate) fn remove_ship(&mut self, sector: SectorCoord, id: NetId) {
        if let Some(world) = self.worlds.get_mut(&sector) {
            world.remove_ship(id);
            if world.is_empty() {
                self.worlds.remove(&sector);
            }
        }
    }
}

/// Asteroids used up this tick; their colliders go at the next physics stage.
#[derive(Resource, Default)]
pub struct DepletedAsteroids(pub Vec<(SectorCoord, u16)>);

#[derive(Debug, Clone, Default)]
pub struct PhysicsPlugin;

impl Plugin for PhysicsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<SectorWorlds>()
            .init_resource::<DepletedAsteroids>()
            .add_systems(TickSchedule, step_physics.in_set(SimSet::Physics))
            .add_systems(
                TickSchedule,
                drop_physics_caches_at_checkpoints.in_set(SimSet::Checkpoint),
            );
    }
}

/// Whether `tick` is a checkpoint tick (`persistence.checkpoint_every_ticks`).
pub fn is_checkpoint_tick(config: &UniverseConfig, tick: u64) -> bool {
    tick.is_multiple_of(config.persistence.checkpoint_every_ticks)
}

/// Rapier keeps caches the ECS state does not hold (contact warm-starting, sleeping, its BVH),
/// so a world rebuilt from a checkpoint would drift from the live one. Every run drops them at
/// checkpoint ticks instead, persisted or not: the live world and any world restored from that
/// tick's checkpoint then rebuild identical rapier worlds at the next tick.
fn drop_physics_caches_at_checkpoints(world: &mut World) {
    let tick = world.resource::<Tick>().0;
    if is_checkpoint_tick(world.resource::<UniverseConfig>(), tick) {
        drop_physics_caches(world);
    }
}

/// Drops every sector's rapier world; the next physics stage rebuilds what it needs from ECS
/// state.
pub fn drop_physics_caches(world: &mut World) {
    world.resource_mut::<SectorWorlds>().clear();
}

type MovingShips<'w, 's> = Query<
    'w,
    's,
    (
        Entity,
        &'static NetId,
        &'static mut SpacePos,
        &'static mut Velocity,
        &'static mut Hull,
    ),
>;

/// Every ship grouped by sector: sectors in coordinate order, ships in id order within each.
fn ships_by_sector(ships: &MovingShips) -> Vec<(SectorCoord, Vec<SectorShip>)> {
    let mut slots: FxHashMap<SectorCoord, usize> = FxHashMap::default();
    let mut groups: Vec<(SectorCoord, Vec<SectorShip>)> = Vec::new();
    let mut last: Option<(SectorCoord, usize)> = None;
    for (entity, id, pos, velocity, _) in ships.iter() {
        let ship = SectorShip {
            id: *id,
            entity,
            motion: Motion {
                local: pos.local,
                velocity: velocity.0,
            },
        };
        // Ships of a sector mostly sit together in the ECS tables: skip the map for runs.
        let slot = match last {
            Some((sector, slot)) if sector == pos.sector => slot,
            _ => *slots.entry(pos.sector).or_insert_with(|| {
                groups.push((pos.sector, Vec::new()));
                groups.len() - 1
            }),
        };
        last = Some((pos.sector, slot));
        groups[slot].1.push(ship);
    }
    // The order comes from the keys alone, not from the tables' iteration order.
    groups.sort_unstable_by_key(|g| g.0);
    for (_, group) in &mut groups {
        group.sort_unstable_by_key(|s| s.id);
    }
    groups
}

#[allow(clippy::too_many_arguments)]
fn step_physics(
    config: Res<UniverseConfig>,
    rate: Res<TickRate>,
    sectors: Res<Sectors>,
    mut worlds: ResMut<SectorWorlds>,
    mut depleted: ResMut<DepletedAsteroids>,
    mut index: ResMut<ShipIndex>,
    mut ships: MovingShips,
    mut totals: ResMut<SimTotals>,
    mut report: ResMut<TickReport>,
) {
    let params = ShipParams {
        radius: config.ships.radius,
        restitution: config.physics.restitution,
        solver_iterations: config.physics.solver_iterations as usize,
        dt: rate.dt_s,
    };
    let size = config.simulation.sector_size;
    let worlds = &mut worlds.worlds;

    // Asteroids mined out this tick leave their sector's world.
    for (sector, asteroid) in depleted.0.drain(..) {
        if let Some(world) = worlds.get_mut(&sector) {
            world.remove_asteroid(asteroid);
        }
    }

    // Step every sector in parallel, each with its own world (if it has one).
    let jobs: Vec<_> = ships_by_sector(&ships)
        .into_iter()
        .map(|(sector, group)| {
            let world = worlds.remove(&sector);
            (sector, group, world)
        })
        .collect();
    // (A world whose sector has no ship left has nothing to step.)
    worlds.clear();
    let outcomes: Vec<(SectorCoord, StepOutcome)> = jobs
        .into_par_iter()
        .map(|(sector, group, world)| {
            let contents = sectors
                .get(sector)
                .expect("streaming loads occupied sectors");
            (sector, step_sector(&group, world, contents, &params))
        })
        .collect();

    // Write back, in sector order; collect ships that left their sector.
    let mut handoffs: Vec<(SectorCoord, NetId, Entity)> = Vec::new();
    let mut impulses: Vec<(NetId, f32)> = Vec::new();
    for (sector, outcome) in outcomes {
        for &(entity, local, v) in &outcome.moved {
            let (_, id, mut pos, mut velocity, _) = ships.get_mut(entity).expect("live ship");
            pos.local = local;
            velocity.0 = v;
            if !(0.0..size).contains(&local.x) || !(0.0..size).contains(&local.y) {
                handoffs.push((pos.sector, *id, entity));
            }
        }
        impulses.extend(outcome.impulses);
        if let Some(world) = outcome.world {
            worlds.insert(sector, world);
        }
    }

    // Handoffs, in (source sector, id) order: the explicit, ordered crossing of a sector
    // border. The ship's body (if it has one) leaves its old sector's world now; its new
    // sector decides at the next physics stage whether it needs one. Nothing here touches the
    // destination's world, so a sector held by another shard is not touched either: the
    // shard hands the ship over at the end of the tick (see `shard`), and the result is the
    // same.
    handoffs.sort_unstable_by_key(|&(from, id, _)| (from, id));
    for (_, id, entity) in handoffs {
        let (_, _, mut pos, mut velocity, _) = ships.get_mut(entity).expect("live ship");
        let from = pos.sector;
        let new_pos = match rehome(*pos, size) {
            Rehomed::Same => continue,
            Rehomed::Moved(p) => p,
            Rehomed::AtEdge(p) => {
                velocity.0 = Vec2::ZERO;
                p
            }
        };
        // (A ship stopped at the edge of the universe stays in its sector, but its body is
        // rebuilt the same way at its clamped position.)
        if let Some(world) = worlds.get_mut(&from) {
            world.remove_ship(id);
        }
        *pos = new_pos;
        if from != new_pos.sector {
            index.relocate(id, from, new_pos.sector);
            report.handoffs += 1;
        }
    }
    worlds.retain(|_, w| !w.is_empty());

    // Collision damage, in sector order then rapier's order within the sector.
    let damage_per_impulse = config.physics.collision_damage_per_impulse;
    for (id, impulse) in impulses {
        if impulse <= 0.0 {
            continue;
        }
        totals.collision_contacts += 1;
        if let Some(entity) = index.entity(id)
            && let Ok((.., mut hull)) = ships.get_mut(entity)
        {
            hull.0 -= impulse * damage_per_impulse;
        }
    }
}
