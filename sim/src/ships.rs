//! Ships: their state, the per-tick command input, spawning and movement.
//!
//! [`ShipInputs`] is the single entry point for commands from outside the tick (network,
//! replays); in-tick behaviours (the native autopilot, later scripts) write [`ShipCommand`]
//! directly in [`SimSet::Behaviour`]. External inputs are applied after behaviours, so a manual
//! command overrides the autopilot for that tick.

use std::collections::{BTreeMap, BTreeSet};

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use rayon::prelude::*;

use astroboids_engine::hash::{HashScope, PartitionHashers};
use astroboids_engine::{HashCost, NetId, NetIdAllocator, TickRate, TickSchedule};

use crate::config::UniverseConfig;
use crate::space::{SectorCoord, SpacePos, Vec2};
use crate::{SimSet, SimTotals};

/// What a ship does this tick. Values are clamped on the way in ([`ShipCommand::sanitized`]).
#[derive(Component, Debug, Clone, Copy, Default, PartialEq)]
pub struct ShipCommand {
    /// Forward thrust, 0..=1 of the ship's acceleration.
    pub thrust: f32,
    /// Turn rate, -1..=1 of the ship's turn rate (positive: counter-clockwise).
    pub turn: f32,
    /// Mine the nearest asteroid within reach.
    pub mine: bool,
    /// Brake.
    pub stop: bool,
}

impl ShipCommand {
    /// NaN becomes 0; values are clamped to their ranges.
    pub fn sanitized(self) -> Self {
        let clean = |v: f32, lo: f32, hi: f32| if v.is_nan() { 0.0 } else { v.clamp(lo, hi) };
        Self {
            thrust: clean(self.thrust, 0.0, 1.0),
            turn: clean(self.turn, -1.0, 1.0),
            mine: self.mine,
            stop: self.stop,
        }
    }
}

/// Velocity in units per second.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq)]
pub struct Velocity(pub Vec2);

/// Facing, in radians in `[-pi, pi)`.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq)]
pub struct Heading(pub f32);

#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct Hull(pub f32);

#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct Energy(pub f32);

#[derive(Component, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cargo {
    pub ore: u32,
}

/// The account a ship belongs to (absent: nobody's, e.g. headless fleets). Only its owner (or
/// an admin) may command it; set by [`crate::inputs::WorldInput::SetOwner`].
#[derive(Component, Debug, Clone, PartialEq, Eq)]
pub struct Owner(pub String);

/// Marks a ship; holds nothing so queries can filter on it.
#[derive(Component, Debug, Clone, Copy, Default)]
pub struct Ship;

/// Where each ship is, by id and by sector. Kept in step by spawning, sector handoffs and
/// destruction; sector streaming and physics read it.
#[derive(Resource, Debug, Default)]
pub struct ShipIndex {
    entities: BTreeMap<NetId, Entity>,
    by_sector: BTreeMap<SectorCoord, BTreeSet<NetId>>,
}

impl ShipIndex {
    pub fn entity(&self, id: NetId) -> Option<Entity> {
        self.entities.get(&id).copied()
    }

    pub fn len(&self) -> usize {
        self.entities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Ships in id order.
    pub fn ids(&self) -> impl Iterator<Item = NetId> + '_ {
        self.entities.keys().copied()
    }

    /// Sectors holding at least one ship, in coordinate order.
    pub fn occupied_sectors(&self) -> impl Iterator<Item = SectorCoord> + '_ {
        self.by_sector.keys().copied()
    }

    /// Ships in `sector`, in id order.
    pub fn in_sector(&self, sector: SectorCoord) -> impl Iterator<Item = NetId> + '_ {
        self.by_sector.get(&sector).into_iter().flatten().copied()
    }

    pub fn contains(&self, id: NetId) -> bool {
        self.entities.contains_key(&id)
    }

    pub(crate) fn insert(&mut self, id: NetId, entity: Entity, sector: SectorCoord) {
        self.entities.insert(id, entity);
        self.by_sector.entry(sector).or_default().insert(id);
    }

    pub(crate) fn relocate(&mut self, id: NetId, from: SectorCoord, to: SectorCoord) {
        self.remove_from_sector(id, from);
        self.by_sector.entry(to).or_default().insert(id);
    }

    pub(crate) fn remove(&mut self, id: NetId, sector: SectorCoord) {
        self.entities.remove(&id);
        self.remove_from_sector(id, sector);
    }

    fn remove_from_sector(&mut self, id: NetId, sector: SectorCoord) {
        if let Some(set) = self.by_sector.get_mut(&sector) {
            set.remove(&id);
            if set.is_empty() {
                self.by_sector.remove(&sector);
            }
        }
    }
}

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("input queue is full ({limit} inputs per tick)")]
    QueueFull { limit: usize },
}

/// Commands from outside the tick, applied at the next tick in submission order (the last
/// command for a ship wins). Bounded: one tick holds at most `limit` inputs.
#[derive(Resource, Debug)]
pub struct ShipInputs {
    pending: Vec<(NetId, ShipCommand)>,
    limit: usize,
}

impl ShipInputs {
    pub fn new(limit: usize) -> Self {
        Self {
            pending: Vec::new(),
            limit,
        }
    }

    pub fn submit(&mut self, ship: NetId, command: ShipCommand) -> Result<(), InputError> {
        if self.pending.len() >= self.limit {
            return Err(InputError::QueueFull { limit: self.limit });
        }
        self.pending.push((ship, command.sanitized()));
        Ok(())
    }

    pub fn pending(&self) -> &[(NetId, ShipCommand)] {
        &self.pending
    }
}

/// Why a ship could not be spawned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpawnError {
    #[error("ship limit reached ({limit} ships, from limits.max_ships)")]
    ShipLimit { limit: u32 },
    #[error("local position {local:?} is outside the sector (0..{sector_size})")]
    OutsideSector { local: (f32, f32), sector_size: f32 },
}

/// Spawns one ship. Bodies are added to physics at the next tick, in id order. What other
/// stages keep per ship (its body handle, its sensor contacts) those plugins attach as
/// components required by [`Ship`], so spawning knows nothing of them.
///
/// In a shard ([`crate::scope::ShardScope`]) that does not hold `pos.sector`, the id is used
/// up and the ship counted as remote, but no entity is made: the shard that holds the sector
/// makes it under the same id.
pub fn spawn_ship(world: &mut World, pos: SpacePos, heading: f32) -> Result<NetId, SpawnError> {
    spawn_ship_as(world, None, pos, heading)
}

/// Spawns a ship under `id` (a checkpoint restore), or under a fresh id when `None`.
pub(crate) fn spawn_ship_as(
    world: &mut World,
    id: Option<NetId>,
    pos: SpacePos,
    heading: f32,
) -> Result<NetId, SpawnError> {
    let config = world.resource::<UniverseConfig>();
    let (limit, size) = (config.limits.max_ships, config.simulation.sector_size);
    let (hull, energy) = (config.ships.hull, config.ships.energy_max);
    if ships_alive(world) >= u64::from(limit) {
        return Err(SpawnError::ShipLimit { limit });
    }
    let inside = |v: f32| v.is_finite() && (0.0..size).contains(&v);
    if !(inside(pos.local.x) && inside(pos.local.y)) {
        return Err(SpawnError::OutsideSector {
            local: (pos.local.x, pos.local.y),
            sector_size: size,
        });
    }
    let id = id.unwrap_or_else(|| world.resource_mut::<NetIdAllocator>().allocate());
    if !crate::scope::holds(world, pos.sector) {
        // Another shard holds the sector: it spawns the ship under the same id (every shard
        // applies every input, so their allocators agree); here it only counts.
        crate::scope::note_remote_spawn(world, id.0, pos, wrap_angle(heading), hull);
        return Ok(id);
    }
    let entity = world
        .spawn((
            Ship,
            id,
            pos,
            Velocity::default(),
            Heading(wrap_angle(heading)),
            Hull(hull),
            Energy(energy),
            Cargo::default(),
            ShipCommand::default(),
        ))
        .id();
    world
        .resource_mut::<ShipIndex>()
        .insert(id, entity, pos.sector);
    Ok(id)
}

/// Ships alive in the whole world: this process's and, in a shard, everyone else's (what
/// world-wide limits count).
pub fn ships_alive(world: &World) -> u64 {
    let local = world.resource::<ShipIndex>().len() as u64;
    local
        + world
            .get_resource::<crate::scope::ShardScope>()
            .map_or(0, |s| s.remote_ships)
}

/// Wraps an angle into `[-pi, pi)` with exact float ops (no trigonometry).
pub fn wrap_angle(a: f32) -> f32 {
    use std::f32::consts::{PI, TAU};
    if a.is_nan() {
        return 0.0;
    }
    let w = (a + PI).rem_euclid(TAU) - PI;
    if w >= PI { -PI } else { w }
}

/// Ship state and movement.
#[derive(Debug, Clone, Default)]
pub struct ShipsPlugin;

impl Plugin for ShipsPlugin {
    fn build(&self, app: &mut App) {
        let limit = app.world().resource::<UniverseConfig>().limits.max_ships as usize;
        app.init_resource::<ShipIndex>()
            .insert_resource(ShipInputs::new(limit))
            .add_systems(TickSchedule, apply_inputs.in_set(SimSet::Inputs))
            .add_systems(TickSchedule, move_ships.in_set(SimSet::Movement));
        app.world_mut()
            .resource_mut::<astroboids_engine::hash::StateHashRegistry>()
            .register_scoped("ships", HashScope::Partitioned(hash_ships), HashCost::Cheap);
    }
}

/// Applies external inputs, in submission order; inputs for unknown ships are dropped.
fn apply_inputs(
    mut inputs: ResMut<ShipInputs>,
    index: Res<ShipIndex>,
    mut commands: Query<&mut ShipCommand>,
    mut totals: ResMut<SimTotals>,
) {
    for (id, command) in inputs.pending.drain(..) {
        match index.entity(id).and_then(|e| commands.get_mut(e).ok()) {
            Some(mut current) => *current = command,
            None => totals.inputs_for_unknown_ships += 1,
        }
    }
}

/// Below this speed (units/s) a braking ship stops dead.
const STOPPED_SPEED: f32 = 0.05;

/// Turns, thrusts, brakes and charges energy; consumes this tick's command.
fn move_ships(
    config: Res<UniverseConfig>,
    rate: Res<TickRate>,
    mut ships: Query<(&mut ShipCommand, &mut Heading, &mut Velocity, &mut Energy)>,
) {
    let s = &config.ships;
    let dt = rate.dt_s;
    // powf once per tick through libm (not std) so the bits are the same on every platform.
    let brake_keep = libm::powf(s.brake_keep_per_s, dt);
    // Independent per ship: in parallel.
    let mut work: Vec<_> = ships.iter_mut().collect();
    work.par_iter_mut()
        .for_each(|(command, heading, velocity, energy)| {
            let cmd = std::mem::take(&mut **command);
            heading.0 = wrap_angle(heading.0 + cmd.turn * s.turn_rate * dt);

            let mut thrust = cmd.thrust;
            let cost = thrust * s.thrust_energy_per_s * dt;
            if cost > energy.0 {
                thrust *= energy.0 / cost;
            }
            energy.0 = (energy.0 - thrust * s.thrust_energy_per_s * dt).max(0.0);

            let (sin, cos) = libm::sincosf(heading.0);
            let mut v = velocity.0 + Vec2::new(cos, sin) * (thrust * s.acceleration * dt);
            if cmd.stop {
                v *= brake_keep;
                // Come to a real stop instead of creeping forever, so the body can sleep.
                if v.length_squared() < STOPPED_SPEED * STOPPED_SPEED {
                    v = Vec2::ZERO;
                }
            }
            let speed = v.length();
            if speed > s.max_speed {
                v *= s.max_speed / speed;
            }
            velocity.0 = v;
            energy.0 = (energy.0 + s.energy_regen_per_s * dt).min(s.energy_max);
        });
}

/// A ship's simulated state: what the state hash and checkpoints cover.
pub type ShipState = (
    &'static NetId,
    &'static SpacePos,
    &'static Velocity,
    &'static Heading,
    &'static Hull,
    &'static Energy,
    &'static Cargo,
);

/// Each ship in its sector's partition, in id order; a shard hashes only the ships it holds.
fn hash_ships(world: &mut World, h: &mut PartitionHashers) {
    let mut query = world.query::<(ShipState, Option<&Owner>)>();
    let mut ships: Vec<_> = query.iter(world).collect();
    ships.sort_unstable_by_key(|s| *s.0.0);
    for ((id, pos, vel, heading, hull, energy, cargo), owner) in ships {
        let h = h.partition(pos.sector.partition_key());
        h.write_u64(id.0);
        h.write_f32(pos.local.x);
        h.write_f32(pos.local.y);
        h.write_f32(vel.0.x);
        h.write_f32(vel.0.y);
        h.write_f32(heading.0);
        h.write_f32(hull.0);
        h.write_f32(energy.0);
        h.write_u32(cargo.ore);
        match owner {
            Some(owner) => h.write_bytes(owner.0.as_bytes()),
            None => h.write_u64(u64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_commands_are_clamped() {
        let c = ShipCommand {
            thrust: f32::NAN,
            turn: -7.0,
            mine: true,
            stop: false,
        }
        .sanitized();
        assert_eq!(c.thrust, 0.0);
        assert_eq!(c.turn, -1.0);
        let c = ShipCommand {
            thrust: f32::INFINITY,
            turn: f32::NEG_INFINITY,
            ..Default::default()
        }
        .sanitized();
        assert_eq!((c.thrust, c.turn), (1.0, -1.0));
    }

    #[test]
    fn angles_wrap_into_half_open_range() {
        use std::f32::consts::PI;
        assert_eq!(wrap_angle(PI), -PI);
        assert_eq!(wrap_angle(0.5), 0.5);
        assert!((wrap_angle(3.0 * PI + 0.25) - (-PI + 0.25)).abs() < 1e-5);
        assert_eq!(wrap_angle(f32::NAN), 0.0);
    }

    #[test]
    fn input_queue_is_bounded() {
        let mut inputs = ShipInputs::new(2);
        inputs.submit(NetId(1), ShipCommand::default()).unwrap();
        inputs.submit(NetId(1), ShipCommand::default()).unwrap();
        assert_eq!(
            inputs.submit(NetId(2), ShipCommand::default()),
            Err(InputError::QueueFull { limit: 2 })
        );
    }
}
