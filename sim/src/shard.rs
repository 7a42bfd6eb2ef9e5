//! One world spread over several processes: what a shard's piece of the world needs from the
//! rules, so that the pieces together give exactly the results of the whole world in one
//! process.
//!
//! A shard owns some sectors ([`ShardScope`]); the world's other sectors live elsewhere. Every
//! shard applies every world input (so ids, the script library and the tick stay the same
//! everywhere) but keeps only the ships in its sectors. Between two ticks it trades three
//! things with the others:
//! - **Handoffs** ([`take_departures`], [`accept_arrivals`]): a ship that ended the tick in a
//!   sector owned elsewhere leaves as a [`ShipRecord`] (script instance included) and is
//!   restored there. The physics stage already treats every border crossing this way (the
//!   ship gets its new body at the next tick), so a handoff to another process changes
//!   nothing.
//! - **Halo** ([`border_ships`], [`set_halo`]): ships within sensor range of their sector's
//!   border, which neighbouring sectors' ships can sense. They enter the next tick's sensor
//!   grid and nothing else.
//! - **Sector deltas** ([`changed_deltas`], [`apply_deltas`]): ore mined this tick, so
//!   neighbours see depleted asteroids vanish. Only the owner's ships mine a sector.
//!
//! What the rules keep local for this to hold: mining takes ore only in the miner's own
//! sector, fuel is shared per sector, and the state hash folds per-sector parts (see
//! `astroboids_engine::hash::HashScope`).

use bevy_ecs::prelude::*;

use astroboids_engine::NetId;

use crate::checkpoint::{
    CheckpointError, SectorDeltaRecord, ShipRecord, capture_ship, restore_ship,
};
use crate::config::UniverseConfig;
use crate::physics::SectorWorlds;
pub use crate::scope::{HaloShip, HaloShips, ShardScope, holds};
use crate::scripts::ScriptHost;
use crate::sectors::{SectorDelta, Sectors};
use crate::ships::{Heading, Hull, ShipIndex, Velocity};
use crate::space::{SectorCoord, SpacePos};

/// Makes `world` the piece of a world that holds the sectors `scope` owns. Call it on a fresh
/// world (or one restored from the whole world's checkpoint, then [`keep_only_held`]).
pub fn install(world: &mut World, scope: ShardScope) {
    world.insert_resource(scope);
    world.init_resource::<HaloShips>();
}

/// Replaces the halo the next tick's sensors see.
pub fn set_halo(world: &mut World, ships: Vec<HaloShip>) {
    world.resource_mut::<HaloShips>().0 = ships;
}

/// Sets how many ships live elsewhere (the cluster's count at the start of a tick).
pub fn set_remote_ships(world: &mut World, count: u64) {
    world.resource_mut::<ShardScope>().remote_ships = count;
}

/// The sectors, other than its own, whose ships may sense a ship at `pos`: the neighbours on
/// the sides (and corners) where it sits in an edge cell of the sensor grid. The grid's cells
/// are at least a sensor range wide and a ship looks only at the 3x3 cells around it, so no
/// ship farther in can be sensed across a border. Using the grid's own cells (not a distance
/// with a margin) makes the rule exact: a halo holds precisely the ships another sector's grid
/// lookups can reach.
pub fn sensed_from(config: &UniverseConfig, pos: &SpacePos) -> Vec<SectorCoord> {
    let edges = EdgeCells::new(config);
    let (xs, ys) = (edges.steps(pos.local.x), edges.steps(pos.local.y));
    let mut out = Vec::new();
    for &dx in xs.iter().flatten() {
        for &dy in ys.iter().flatten() {
            if (dx, dy) != (0, 0)
                && let Some(sector) = pos.sector.offset(dx, dy)
            {
                out.push(sector);
            }
        }
    }
    out.sort_unstable();
    out
}

/// The sensor grid's cells along one axis of a sector (the same arithmetic as the grid's).
struct EdgeCells {
    cells: i64,
    cell: f32,
}

impl EdgeCells {
    fn new(config: &UniverseConfig) -> Self {
        let (size, range) = (config.simulation.sector_size, config.sensors.range);
        let cells = crate::sensors::cells_per_sector(range, size);
        Self {
            cells,
            cell: size / cells as f32,
        }
    }

    /// The sector steps along this axis from which a local coordinate `v` can be sensed:
    /// always 0, -1 in the first cell, +1 in the last.
    fn steps(&self, v: f32) -> [Option<i32>; 3] {
        let c = ((v / self.cell) as i64).min(self.cells - 1);
        [
            Some(0),
            (c == 0).then_some(-1),
            (c == self.cells - 1).then_some(1),
        ]
    }

    /// Whether `v` lies in an edge cell (some neighbour can sense it).
    fn on_edge(&self, v: f32) -> bool {
        let c = ((v / self.cell) as i64).min(self.cells - 1);
        c == 0 || c == self.cells - 1
    }
}

/// Local ships that some neighbouring sector's ships may sense ([`sensed_from`] is not empty),
/// in id order. Runs over every ship each tick, so it allocates only for the ships it keeps.
pub fn border_ships(world: &mut World) -> Vec<HaloShip> {
    let edges = EdgeCells::new(world.resource::<UniverseConfig>());
    let mut query = world.query::<(
        &NetId,
        &SpacePos,
        &Velocity,
        &Heading,
        &Hull,
        Option<&crate::ships::Owner>,
    )>();
    let mut ships: Vec<HaloShip> = query
        .iter(world)
        .filter(|(_, pos, ..)| edges.on_edge(pos.local.x) || edges.on_edge(pos.local.y))
        .map(|(id, pos, v, heading, hull, owner)| HaloShip {
            id: id.0,
            sector: (pos.sector.x, pos.sector.y),
            local: (pos.local.x, pos.local.y),
            velocity: (v.0.x, v.0.y),
            heading: heading.0,
            hull: hull.0,
            owner: owner.map(|o| o.0.clone()),
        })
        .collect();
    ships.sort_unstable_by_key(|s| s.id);
    ships
}

/// The halo entry of a ship record (a ship just handed over still shows in the halo of the
/// shard it left, if it stays near the border).
pub fn halo_of(record: &ShipRecord) -> HaloShip {
    HaloShip {
        id: record.id,
        sector: record.sector,
        local: record.local,
        velocity: record.velocity,
        heading: record.heading,
        hull: record.hull,
        owner: record.owner.clone(),
    }
}

/// Removes every ship that ended the tick in a sector held elsewhere and returns it as a
/// record (script memory included), in id order. The ships now count as remote.
pub fn take_departures(world: &mut World) -> Vec<ShipRecord> {
    let leaving: Vec<(NetId, SectorCoord)> = {
        let scope = world.resource::<ShardScope>().clone();
        let mut query = world.query::<(&NetId, &SpacePos)>();
        let mut leaving: Vec<_> = query
            .iter(world)
            .filter(|(_, pos)| !scope.owns(pos.sector))
            .map(|(id, pos)| (*id, pos.sector))
            .collect();
        leaving.sort_unstable_by_key(|l| l.0);
        leaving
    };
    let mut records = Vec::with_capacity(leaving.len());
    for (id, sector) in leaving {
        let record = capture_ship(world, id).expect("a listed ship exists");
        remove_ship(world, id, sector);
        records.push(record);
    }
    world.resource_mut::<ShardScope>().remote_ships += records.len() as u64;
    records
}

/// Drops a ship from every index without counting it as destroyed (it lives on elsewhere).
fn remove_ship(world: &mut World, id: NetId, sector: SectorCoord) {
    let entity = {
        let mut index = world.resource_mut::<ShipIndex>();
        let entity = index.entity(id).expect("a listed ship is indexed");
        index.remove(id, sector);
        entity
    };
    world.resource_mut::<SectorWorlds>().remove_ship(sector, id);
    let mut workers = world.resource::<ScriptHost>().workers();
    if workers.is_attached(id.0) {
        let _ = workers.detach(id.0);
    }
    drop(workers);
    world.despawn(entity);
}

/// Why an arrival was refused: the ship is not for this shard, or its record is damaged.
#[derive(Debug, thiserror::Error)]
pub enum ArrivalError {
    #[error("ship #{ship} arrived in sector ({}, {}), which this shard does not hold", .sector.0, .sector.1)]
    NotHeld { ship: u64, sector: (i32, i32) },
    #[error("ship #{0} arrived but is already here")]
    Duplicate(u64),
    #[error(transparent)]
    Record(#[from] CheckpointError),
}

/// Takes in ships handed over by other shards, in id order (each gets its body at the next
/// physics stage, like any ship that crossed a border). All-or-nothing: a refused batch leaves
/// the world unchanged.
pub fn accept_arrivals(world: &mut World, mut ships: Vec<ShipRecord>) -> Result<(), ArrivalError> {
    ships.sort_unstable_by_key(|s| s.id);
    {
        let scope = world.resource::<ShardScope>();
        let index = world.resource::<ShipIndex>();
        for ship in &ships {
            if !scope.owns(SectorCoord::new(ship.sector.0, ship.sector.1)) {
                return Err(ArrivalError::NotHeld {
                    ship: ship.id,
                    sector: ship.sector,
                });
            }
            if index.contains(NetId(ship.id)) {
                return Err(ArrivalError::Duplicate(ship.id));
            }
        }
        if let Some(pair) = ships.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(ArrivalError::Duplicate(pair[0].id));
        }
    }
    let count = ships.len() as u64;
    {
        let mut scope = world.resource_mut::<ShardScope>();
        scope.remote_ships = scope.remote_ships.saturating_sub(count);
    }
    for (done, ship) in ships.iter().enumerate() {
        if let Err(e) = restore_ship(world, ship) {
            // Undo the ones already in, so the batch is all-or-nothing.
            for undo in &ships[..=done] {
                let id = NetId(undo.id);
                if world.resource::<ShipIndex>().contains(id) {
                    remove_ship(world, id, SectorCoord::new(undo.sector.0, undo.sector.1));
                }
            }
            world.resource_mut::<ShardScope>().remote_ships += count;
            return Err(e.into());
        }
    }
    Ok(())
}

/// Sectors this shard holds whose ore changed this tick, with their deltas now.
pub fn changed_deltas(world: &World) -> Vec<SectorDeltaRecord> {
    let scope = world.resource::<ShardScope>();
    world
        .resource::<Sectors>()
        .changed_deltas()
        .into_iter()
        .filter(|(coord, _)| scope.owns(*coord))
        .map(|(coord, delta)| SectorDeltaRecord {
            x: coord.x,
            y: coord.y,
            remaining_ore: delta.remaining_ore.into_iter().collect(),
        })
        .collect()
}

/// Takes in neighbours' sector deltas (never for a sector this shard holds: its own copy is
/// the authority).
pub fn apply_deltas(world: &mut World, deltas: &[SectorDeltaRecord]) {
    let scope = world.resource::<ShardScope>().clone();
    let mut sectors = world.resource_mut::<Sectors>();
    for record in deltas {
        let coord = SectorCoord::new(record.x, record.y);
        if scope.owns(coord) {
            continue;
        }
        let delta = SectorDelta {
            remaining_ore: record.remaining_ore.iter().copied().collect(),
        };
        sectors.replace_delta(coord, delta);
    }
}
