//! Which sectors a world holds when it is one shard of a bigger world, and the neighbours'
//! ships it senses (see `shard` for the protocol around them). Kept apart from `shard` so that
//! spawning, sensing and hashing can ask "is this sector here?" without depending on the
//! handoff machinery.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::space::{SectorCoord, SpacePos, Vec2};

/// Which sectors this process holds, and how many ships live in the rest of the world. Absent
/// from a world that runs whole.
#[derive(Resource, Clone)]
pub struct ShardScope {
    owns: Arc<dyn Fn(SectorCoord) -> bool + Send + Sync>,
    /// Ships alive in sectors held elsewhere: with the local ones, what world-wide limits
    /// (`limits.max_ships`) count. Set by the cluster at each tick start; kept in step here
    /// by spawns into other shards' sectors and by handoffs.
    pub remote_ships: u64,
}

impl ShardScope {
    pub fn new(owns: impl Fn(SectorCoord) -> bool + Send + Sync + 'static) -> Self {
        Self {
            owns: Arc::new(owns),
            remote_ships: 0,
        }
    }

    pub fn owns(&self, sector: SectorCoord) -> bool {
        (self.owns)(sector)
    }
}

impl std::fmt::Debug for ShardScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardScope")
            .field("remote_ships", &self.remote_ships)
            .finish_non_exhaustive()
    }
}

/// Whether `world` holds `sector` (a whole world holds every sector).
pub fn holds(world: &World, sector: SectorCoord) -> bool {
    world
        .get_resource::<ShardScope>()
        .is_none_or(|s| s.owns(sector))
}

/// A ship held by a neighbouring shard, as this shard's sensors see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaloShip {
    pub id: u64,
    pub sector: (i32, i32),
    pub local: (f32, f32),
    pub velocity: (f32, f32),
    /// Heading and hull are not sensed; they travel so that a player's view of a ship held
    /// elsewhere shows it as the single process would.
    pub heading: f32,
    pub hull: f32,
    /// Its owner's name: views show other players' ships in their owner's colour.
    pub owner: Option<String>,
}

impl HaloShip {
    pub fn pos(&self) -> SpacePos {
        SpacePos::new(
            SectorCoord::new(self.sector.0, self.sector.1),
            Vec2::new(self.local.0, self.local.1),
        )
    }
}

/// The neighbours' border ships for the next sensor stage.
#[derive(Resource, Debug, Clone, Default)]
pub struct HaloShips(pub Vec<HaloShip>);

/// A ship spawned (by an input every shard applies) into a sector held elsewhere: counted, and
/// put in the halo of the next tick at once (its holder's first halo would come a tick late;
/// a new ship's state is known to everyone). Every such ship goes in: one that no local ship
/// can reach costs a grid entry and changes nothing, since sensing looks only at the 3x3 cells
/// around each local ship.
pub(crate) fn note_remote_spawn(
    world: &mut World,
    id: u64,
    pos: SpacePos,
    heading: f32,
    hull: f32,
) {
    let Some(mut scope) = world.get_resource_mut::<ShardScope>() else {
        return;
    };
    scope.remote_ships += 1;
    let ship = HaloShip {
        id,
        sector: (pos.sector.x, pos.sector.y),
        local: (pos.local.x, pos.local.y),
        velocity: (0.0, 0.0),
        heading,
        hull,
        // Set by the spawn input right after (see `set_remote_owner`).
        owner: None,
    };
    let mut halo = world.resource_mut::<HaloShips>();
    halo.0.push(ship);
    halo.0.sort_unstable_by_key(|h| h.id);
}

/// Sets the owner of a ship in this tick's halo (a ship just spawned in a sector held elsewhere,
/// or a `SetOwner` for one): whether it was there.
pub(crate) fn set_remote_owner(world: &mut World, id: u64, owner: Option<&str>) -> bool {
    let Some(mut halo) = world.get_resource_mut::<HaloShips>() else {
        return false;
    };
    match halo.0.iter_mut().find(|h| h.id == id) {
        Some(ship) => {
            ship.owner = owner.map(str::to_owned);
            true
        }
        None => false,
    }
}
