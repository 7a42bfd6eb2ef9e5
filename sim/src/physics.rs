//! Physics with rapier2d, one rapier world per occupied sector.
//!
//! Each sector that holds a ship gets its own [`SectorWorld`]; the worlds are stepped in
//! parallel (rayon) and their events merged in sector order, so results do not depend on the
//! thread count. A ship that leaves its sector is handed off explicitly, in (source sector,
//! id) order: removed from the old world now, given a body in the new one (local position
//! shifted) at the next physics stage, with every other new ship, in id order. A world is
//! dropped as soon as its last ship leaves, so an empty sector's physics is always in its
//! canonical (freshly built) state.
//!
//! Known simplification: bodies in different sectors do not touch. A ship on a sector border
//! meets an asteroid or ship across the border only once its centre crosses over.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use rapier2d::prelude::*;
use rayon::prelude::*;

use astroboids_engine::{NetId, Tick, TickRate, TickSchedule};

use crate::config::UniverseConfig;
use crate::sectors::{SectorContents, Sectors};
use crate::ships::{Hull, Ship, ShipIndex, Velocity};
use crate::space::{Rehomed, SectorCoord, SpacePos, Vec2, rehome};
use crate::{SimSet, SimTotals, TickReport};

/// The ship's rigid body in its sector's world; `None` until the next physics stage adds it.
#[derive(Component, Debug, Clone, Copy, Default)]
pub struct ShipBody(pub Option<RigidBodyHandle>);

/// Collider user data: the top bit marks a ship (the rest is its id), else an asteroid index.
const SHIP_TAG: u128 = 1 << 127;

/// A ship's body in a sector world, with its entity so the parallel step can read its state.
#[derive(Debug, Clone, Copy)]
struct ShipSlot {
    handle: RigidBodyHandle,
    entity: Entity,
}

/// A rapier world for one sector.
pub struct SectorWorld {
    physics: PhysicsWorld,
    ships: BTreeMap<NetId, ShipSlot>,
    asteroids: BTreeMap<u16, ColliderHandle>,
}

/// What stepping one sector produced.
struct StepOutcome {
    /// (ship entity, new local position, new velocity), in id order.
    moved: Vec<(Entity, Vec2, Vec2)>,
    /// (ship, contact impulse), in rapier's report order.
    impulses: Vec<(NetId, f32)>,
}

impl SectorWorld {
    /// A fresh world holding the sector's asteroids, inserted in index order.
    fn new(contents: &SectorContents, dt: f32, params: &ShipParams) -> Self {
        let mut physics = PhysicsWorld::new();
        physics.gravity = Vec2::ZERO;
        physics.integration_parameters.dt = dt;
        physics.integration_parameters.num_solver_iterations = params.solver_iterations;
        // No CCD: the config loader checks that a ship moves less than the smallest asteroid's
        // diameter per tick.
        physics.integration_parameters.max_ccd_substeps = 0;
        let mut asteroids = BTreeMap::new();
        for a in &contents.asteroids {
            let collider = ColliderBuilder::ball(a.radius)
                .translation(a.local)
                .restitution(params.restitution)
                .user_data(u128::from(a.index))
                .build();
            asteroids.insert(a.index, physics.insert_collider(collider, None));
        }
        Self {
            physics,
            ships: BTreeMap::new(),
            asteroids,
        }
    }

    fn insert_ship(
        &mut self,
        id: NetId,
        entity: Entity,
        local: Vec2,
        velocity: Vec2,
        params: &ShipParams,
    ) -> RigidBodyHandle {
        let body = RigidBodyBuilder::dynamic()
            .translation(local)
            .linvel(velocity)
            .lock_rotations()
            .build();
        let collider = ColliderBuilder::ball(params.radius)
            .restitution(params.restitution)
            .active_events(ActiveEvents::CONTACT_FORCE_EVENTS)
            .contact_force_event_threshold(0.0)
            .user_data(SHIP_TAG | u128::from(id.0))
            .build();
        let (handle, _) = self.physics.insert(body, collider);
        self.ships.insert(id, ShipSlot { handle, entity });
        handle
    }

    fn remove_ship(&mut self, id: NetId) {
        if let Some(slot) = self.ships.remove(&id) {
            self.physics.remove_body(slot.handle);
        }
    }

    fn remove_asteroid(&mut self, index: u16) {
        if let Some(handle) = self.asteroids.remove(&index) {
            self.physics.remove_collider(handle);
        }
    }

    /// Feeds in the velocities chosen by movement (`velocity_of`), steps once and reads the
    /// bodies back. Runs on a worker thread; touches nothing but this sector.
    fn step(&mut self, velocity_of: impl Fn(Entity) -> Option<Vec2>) -> StepOutcome {
        for slot in self.ships.values() {
            let Some(velocity) = velocity_of(slot.entity) else {
                continue;
            };
            // An unchanged velocity is left alone so that resting ships can fall asleep, which
            // takes them out of the solver until something touches them.
            let body = &mut self.physics.bodies;
            if body[slot.handle].linvel() != velocity
                && let Some(rb) = body.get_mut(slot.handle)
            {
                rb.set_linvel(velocity, true);
            }
        }
        let collector = ImpulseCollector::default();
        self.physics.step_with_events(&(), &collector);
        let moved = self
            .ships
            .values()
            .map(|slot| {
                let rb = &self.physics.bodies[slot.handle];
                (slot.entity, rb.translation(), rb.linvel())
            })
            .collect();
        StepOutcome {
            moved,
            impulses: collector
                .hits
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
        }
    }

    pub fn ship_count(&self) -> usize {
        self.ships.len()
    }

    pub fn contains_ship(&self, id: NetId) -> bool {
        self.ships.contains_key(&id)
    }
}

/// Collects contact impulses per ship during one sector's step (called on that step's thread).
#[derive(Default)]
struct ImpulseCollector {
    hits: Mutex<Vec<(NetId, f32)>>,
}

impl EventHandler for ImpulseCollector {
    fn handle_collision_event(
        &self,
        _: &RigidBodySet,
        _: &ColliderSet,
        _: CollisionEvent,
        _: Option<&ContactPair>,
    ) {
    }

    fn handle_contact_force_event(
        &self,
        dt: f32,
        _: &RigidBodySet,
        colliders: &ColliderSet,
        pair: &ContactPair,
        total_force_magnitude: f32,
    ) {
        let impulse = total_force_magnitude * dt;
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        for handle in [pair.collider1, pair.collider2] {
            if let Some(data) = colliders.get(handle).map(|c| c.user_data)
                && data & SHIP_TAG != 0
            {
                hits.push((NetId((data & !SHIP_TAG) as u64), impulse));
            }
        }
    }

    fn handle_soft_body_tear_event(&self, _: &SoftBodySet, _: &SoftBodyTearEvent) {}
}

#[derive(Debug, Clone, Copy)]
struct ShipParams {
    radius: f32,
    restitution: f32,
    solver_iterations: usize,
}

/// The rapier worlds of all occupied sectors.
#[derive(Resource, Default)]
pub struct SectorWorlds {
    worlds: BTreeMap<SectorCoord, SectorWorld>,
}

impl SectorWorlds {
    /// Drops every world (checkpoints canonicalize physics this way).
    fn clear(&mut self) {
        self.worlds.clear();
    }

    pub fn get(&self, sector: SectorCoord) -> Option<&SectorWorld> {
        self.worlds.get(&sector)
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

    /// Removes a ship's body (used when a ship is destroyed).
    pub(crate) fn remove_ship(&mut self, sector: SectorCoord, id: NetId) {
        if let Some(world) = self.worlds.get_mut(&sector) {
            world.remove_ship(id);
            if world.ships.is_empty() {
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
        // Every ship gets an (empty) body handle where it is spawned; the physics stage fills
        // it in.
        app.register_required_components::<Ship, ShipBody>()
            .init_resource::<SectorWorlds>()
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

/// Drops every sector's rapier world; the next physics stage rebuilds them from ECS state.
pub fn drop_physics_caches(world: &mut World) {
    world.resource_mut::<SectorWorlds>().clear();
    let mut bodies = world.query::<&mut ShipBody>();
    for mut body in bodies.iter_mut(world) {
        body.0 = None;
    }
}

type ShipBodyQuery<'w, 's> = Query<
    'w,
    's,
    (
        Entity,
        &'static NetId,
        &'static mut ShipBody,
        &'static mut SpacePos,
        &'static mut Velocity,
        &'static mut Hull,
    ),
>;

#[allow(clippy::too_many_arguments)]
fn step_physics(
    config: Res<UniverseConfig>,
    rate: Res<TickRate>,
    sectors: Res<Sectors>,
    mut worlds: ResMut<SectorWorlds>,
    mut depleted: ResMut<DepletedAsteroids>,
    mut index: ResMut<ShipIndex>,
    mut ships: ShipBodyQuery,
    mut totals: ResMut<SimTotals>,
    mut report: ResMut<TickReport>,
) {
    let params = ShipParams {
        radius: config.ships.radius,
        restitution: config.physics.restitution,
        solver_iterations: config.physics.solver_iterations as usize,
    };
    let size = config.simulation.sector_size;
    let dt = rate.dt_s;
    let worlds = &mut worlds.worlds;

    // Asteroids mined out this tick leave their sector's world.
    for (sector, asteroid) in depleted.0.drain(..) {
        if let Some(world) = worlds.get_mut(&sector) {
            world.remove_asteroid(asteroid);
        }
    }

    // New ships get bodies, in id order (determinism rule 9).
    let mut new_ships: Vec<(NetId, Entity)> = ships
        .iter()
        .filter(|(_, _, body, ..)| body.0.is_none())
        .map(|(entity, id, ..)| (*id, entity))
        .collect();
    new_ships.sort_unstable_by_key(|s| s.0);
    for (id, entity) in new_ships {
        let (_, _, mut body, pos, velocity, _) = ships.get_mut(entity).expect("listed above");
        let world = worlds.entry(pos.sector).or_insert_with(|| {
            let contents = sectors
                .get(pos.sector)
                .expect("streaming loads occupied sectors");
            SectorWorld::new(contents, dt, &params)
        });
        body.0 = Some(world.insert_ship(id, entity, pos.local, velocity.0, &params));
    }

    // Step every sector in parallel; each reads its ships' velocities and reports back.
    let outcomes: Vec<StepOutcome> = {
        let ships = &ships;
        worlds
            .values_mut()
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|world| world.step(|e| ships.get(e).ok().map(|(.., v, _)| v.0)))
            .collect()
    };

    // Write back, in sector order; collect ships that left their sector.
    let mut handoffs: Vec<(SectorCoord, NetId, Entity)> = Vec::new();
    for outcome in &outcomes {
        for &(entity, local, v) in &outcome.moved {
            let (_, id, _, mut pos, mut velocity, _) = ships.get_mut(entity).expect("live ship");
            pos.local = local;
            velocity.0 = v;
            if !(0.0..size).contains(&local.x) || !(0.0..size).contains(&local.y) {
                handoffs.push((pos.sector, *id, entity));
            }
        }
    }

    // Handoffs, in (source sector, id) order: the explicit, ordered crossing of a sector
    // border. The ship leaves its old sector's world now and gets a body in its new sector at
    // the next physics stage, with the other new ships in id order. Nothing here touches the
    // destination's world, so a sector held by another shard is not touched either: the
    // shard hands the ship over at the end of the tick (see `shard`), and the result is the
    // same.
    handoffs.sort_unstable_by_key(|&(from, id, _)| (from, id));
    for (_, id, entity) in handoffs {
        let (_, _, mut body, mut pos, mut velocity, _) = ships.get_mut(entity).expect("live ship");
        let from = pos.sector;
        let new_pos = match rehome(*pos, size) {
            Rehomed::Same => continue,
            Rehomed::Moved(p) => p,
            Rehomed::AtEdge(p) => {
                velocity.0 = Vec2::ZERO;
                p
            }
        };
        if let Some(world) = worlds.get_mut(&from) {
            world.remove_ship(id);
        }
        // (A ship stopped at the edge of the universe stays in its sector, but is rebuilt the
        // same way at its clamped position.)
        body.0 = None;
        *pos = new_pos;
        if from != new_pos.sector {
            index.relocate(id, from, new_pos.sector);
            report.handoffs += 1;
        }
    }
    worlds.retain(|_, w| !w.ships.is_empty());

    // Collision damage, in sector order then rapier's order within the sector.
    let damage_per_impulse = config.physics.collision_damage_per_impulse;
    for &(id, impulse) in outcomes.iter().flat_map(|o| &o.impulses) {
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
