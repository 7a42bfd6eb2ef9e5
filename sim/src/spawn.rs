//! Spawning a fleet for headless runs: ships spread over a square of sectors around the
//! origin, `ships.spawn_per_sector` to a sector, placed clear of asteroids.

use bevy_ecs::prelude::*;
use rand::Rng;

use astroboids_engine::rng::stream_rng;
use astroboids_engine::{NetId, NetIdAllocator, RngStream, UniverseSeed};

use crate::autopilot::Autopilot;
use crate::config::UniverseConfig;
use crate::sectors::Sectors;
use crate::ships::{SpawnError, spawn_ship};
use crate::space::{SectorCoord, SpacePos, Vec2};

/// Tries per ship to find a spot clear of asteroids before giving up and taking the last one.
const PLACEMENT_TRIES: u32 = 8;

/// Spawns `count` autopilot ships; returns their ids in spawn order.
pub fn spawn_fleet(world: &mut World, count: u32) -> Result<Vec<NetId>, SpawnError> {
    let config = world.resource::<UniverseConfig>().clone();
    let seed = world.resource::<UniverseSeed>().0;
    let limit = config.limits.max_ships;
    if count > limit {
        return Err(SpawnError::ShipLimit { limit });
    }
    let per_sector = config.ships.spawn_per_sector.max(1);
    let sectors_needed = count.div_ceil(per_sector).max(1);
    let side = (f64::from(sectors_needed).sqrt().ceil() as i32).max(1);
    let size = config.simulation.sector_size;
    let clearance = config.ships.radius * 3.0;
    // Keyed by the first id too, so a second fleet of the same size lands elsewhere.
    let first_id = world.resource::<NetIdAllocator>().peek_next().0;
    let mut rng = stream_rng(seed, RngStream::Spawn, &[u64::from(count), first_id]);
    let mut ids = Vec::with_capacity(count as usize);
    for i in 0..count {
        // Sector-major: a sector's ships are spawned one after another, so they sit next to
        // each other in the ECS tables and the per-ship passes walk memory in spatial order.
        let slot = (i / per_sector) as i32;
        let sector = SectorCoord::new(slot % side - side / 2, slot / side - side / 2);
        let contents = world.resource::<Sectors>().generator().generate(sector);
        let mut local = Vec2::ZERO;
        for _ in 0..PLACEMENT_TRIES {
            local = Vec2::new(
                rng.random_range(size * 0.05..size * 0.95),
                rng.random_range(size * 0.05..size * 0.95),
            );
            let clear = contents
                .asteroids
                .iter()
                .all(|a| (a.local - local).length() > a.radius + clearance);
            if clear {
                break;
            }
        }
        let heading = rng.random_range(-std::f32::consts::PI..std::f32::consts::PI);
        let id = spawn_ship(world, SpacePos::new(sector, local), heading)?;
        // (A shard that does not hold the sector only counts the ship.)
        if let Some(entity) = world.resource::<crate::ships::ShipIndex>().entity(id) {
            world.entity_mut(entity).insert(Autopilot);
        }
        ids.push(id);
    }
    Ok(ids)
}
