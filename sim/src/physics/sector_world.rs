//! One sector's physics for one tick: the ships near something get a body in the sector's
//! rapier world and are stepped there; the others fly free (see [`super::free_flight`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use bevy_ecs::prelude::*;
use rapier2d::prelude::*;

use astroboids_engine::NetId;

use super::free_flight::{Motion, fly_free, near_something};
use crate::sectors::SectorContents;
use crate::space::Vec2;

/// Collider user data: the top bit marks a ship (the rest is its id), else an asteroid index.
const SHIP_TAG: u128 = 1 << 127;

/// What the physics stage needs of the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShipParams {
    pub radius: f32,
    pub restitution: f32,
    pub solver_iterations: usize,
    pub dt: f32,
}

/// A rapier world for one sector: its asteroids, and bodies for the ships near something.
pub struct SectorWorld {
    physics: PhysicsWorld,
    ships: BTreeMap<NetId, RigidBodyHandle>,
    asteroids: BTreeMap<u16, ColliderHandle>,
}

/// One ship of a sector, as the physics stage moves it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SectorShip {
    pub id: NetId,
    pub entity: Entity,
    pub motion: Motion,
}

/// What one sector's tick produced.
pub(crate) struct StepOutcome {
    /// (ship entity, new local position, new velocity) for every ship, in id order.
    pub moved: Vec<(Entity, Vec2, Vec2)>,
    /// (ship, contact impulse), in rapier's report order.
    pub impulses: Vec<(NetId, f32)>,
    /// The world, if any ship of the sector is still near something.
    pub world: Option<Box<SectorWorld>>,
}

impl SectorWorld {
    /// A fresh world holding the sector's asteroids, inserted in index order.
    pub(crate) fn new(contents: &SectorContents, params: &ShipParams) -> Self {
        let mut physics = PhysicsWorld::new();
        physics.gravity = Vec2::ZERO;
        physics.integration_parameters.dt = params.dt;
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

    fn insert_ship(&mut self, id: NetId, motion: Motion, params: &ShipParams) {
        let body = RigidBodyBuilder::dynamic()
            .translation(motion.local)
            .linvel(motion.velocity)
            .lock_rotations()
            .build();
        let collider = ColliderBuilder::ball(params.radius)
            .restitution(params.restitution)
            .active_events(ActiveEvents::CONTACT_FORCE_EVENTS)
            .contact_force_event_threshold(0.0)
            .user_data(SHIP_TAG | u128::from(id.0))
            .build();
        let (handle, _) = self.physics.insert(body, collider);
        self.ships.insert(id, handle);
    }

    pub(crate) fn remove_ship(&mut self, id: NetId) {
        if let Some(handle) = self.ships.remove(&id) {
            self.physics.remove_body(handle);
        }
    }

    pub(crate) fn remove_asteroid(&mut self, index: u16) {
        if let Some(handle) = self.asteroids.remove(&index) {
            self.physics.remove_collider(handle);
        }
    }

    /// Ships with a body here.
    pub fn ship_count(&self) -> usize {
        self.ships.len()
    }

    pub fn contains_ship(&self, id: NetId) -> bool {
        self.ships.contains_key(&id)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ships.is_empty()
    }
}

/// Moves one sector's ships (`ships` in id order) through one tick. Ships near something go
/// through `world` (built when the first one needs it); bodies of ships that no longer are
/// leave it first, then the newly near get theirs, both in id order. Runs on a worker thread
/// and touches nothing but this sector.
pub(crate) fn step_sector(
    ships: &[SectorShip],
    world: Option<Box<SectorWorld>>,
    contents: &SectorContents,
    params: &ShipParams,
) -> StepOutcome {
    let motions: Vec<Motion> = ships.iter().map(|s| s.motion).collect();
    let near = near_something(&motions, &contents.asteroids, params.radius, params.dt);
    // Nothing near anything: the world goes, so the next one starts fresh (and a sector
    // without bodies is always in the same state, whatever happened there before).
    let (world, impulses) = if near.contains(&true) {
        let world = world.unwrap_or_else(|| Box::new(SectorWorld::new(contents, params)));
        let (world, impulses) = step_near_ships(world, ships, &near, params);
        (Some(world), impulses)
    } else {
        (None, Vec::new())
    };
    let moved = ships
        .iter()
        .zip(&near)
        .map(|(ship, &near)| match (&world, near) {
            (Some(world), true) => {
                let body = &world.physics.bodies[world.ships[&ship.id]];
                (ship.entity, body.translation(), body.linvel())
            }
            _ => (
                ship.entity,
                fly_free(ship.motion, params.dt),
                ship.motion.velocity,
            ),
        })
        .collect();
    StepOutcome {
        moved,
        impulses,
        world,
    }
}

/// Gives exactly the near ships (`near`, same order as `ships`) a body in `world` with this
/// tick's velocity, and steps it; returns the world and the contact impulses.
fn step_near_ships(
    mut world: Box<SectorWorld>,
    ships: &[SectorShip],
    near: &[bool],
    params: &ShipParams,
) -> (Box<SectorWorld>, Vec<(NetId, f32)>) {
    let near_ships: Vec<&SectorShip> = ships
        .iter()
        .zip(near)
        .filter_map(|(ship, near)| near.then_some(ship))
        .collect();
    // (Any body not of a near ship goes: ships that fly free now, and, defensively, any the
    // sector no longer holds.)
    let leaving: Vec<NetId> = world
        .ships
        .keys()
        .filter(|id| near_ships.binary_search_by_key(*id, |s| s.id).is_err())
        .copied()
        .collect();
    for id in leaving {
        world.remove_ship(id);
    }
    for ship in near_ships {
        match world.ships.get(&ship.id) {
            None => world.insert_ship(ship.id, ship.motion, params),
            Some(&handle) => {
                // An unchanged velocity is left alone so that resting ships can fall asleep,
                // which takes them out of the solver until something touches them.
                let body = &mut world.physics.bodies[handle];
                if body.linvel() != ship.motion.velocity {
                    body.set_linvel(ship.motion.velocity, true);
                }
            }
        }
    }
    let collector = ImpulseCollector::default();
    world.physics.step_with_events(&(), &collector);
    let impulses = collector
        .hits
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    (world, impulses)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sectors::Asteroid;
    use crate::space::SectorCoord;

    const PARAMS: ShipParams = ShipParams {
        radius: 2.0,
        restitution: 0.4,
        solver_iterations: 1,
        dt: 0.1,
    };

    fn sector(asteroids: Vec<Asteroid>) -> SectorContents {
        SectorContents {
            coord: SectorCoord::new(0, 0),
            generator_version: 1,
            asteroids,
            nebulae: Vec::new(),
            hazards: Vec::new(),
        }
    }

    fn ship(id: u64, x: f32, y: f32, vx: f32, vy: f32) -> SectorShip {
        SectorShip {
            id: NetId(id),
            entity: Entity::from_raw_u32(id as u32 + 1).expect("a valid index"),
            motion: Motion {
                local: Vec2::new(x, y),
                velocity: Vec2::new(vx, vy),
            },
        }
    }

    #[test]
    fn a_lone_ship_moves_the_same_in_rapier_and_in_free_flight() {
        // Speeds whose products with dt round, in every direction.
        for (vx, vy) in [(29.7, -13.3), (-0.37, 21.9), (3.0e-3, -29.99), (0.0, -17.1)] {
            let start = ship(1, 123.456, 789.012, vx, vy);
            let mut world = SectorWorld::new(&sector(Vec::new()), &PARAMS);
            world.insert_ship(start.id, start.motion, &PARAMS);
            let mut free = start.motion;
            for tick in 0..200 {
                world.physics.step_with_events(&(), &());
                free.local = fly_free(free, PARAMS.dt);
                let body = &world.physics.bodies[world.ships[&start.id]];
                assert_eq!(
                    (body.translation(), body.linvel()),
                    (free.local, free.velocity),
                    "velocity ({vx}, {vy}), tick {tick}: rapier and free flight agree to the bit"
                );
            }
        }
    }

    /// Several ships fly into two asteroids and into each other. Stepped with free flight,
    /// and stepped with every ship in rapier from the start, they move the same, to the bit:
    /// a body joins rapier before anything can touch it, and until then rapier would only
    /// have integrated it.
    #[test]
    fn ships_that_meet_move_as_if_every_ship_were_in_rapier() {
        let contents = sector(vec![
            Asteroid {
                index: 0,
                local: Vec2::new(300.0, 300.0),
                radius: 12.0,
                ore: 100,
            },
            Asteroid {
                index: 1,
                local: Vec2::new(420.0, 250.0),
                radius: 6.0,
                ore: 100,
            },
        ]);
        let mut ships = vec![
            // Into the big asteroid, head on and at a glancing angle.
            ship(1, 200.0, 300.0, 25.0, 0.0),
            ship(2, 300.0, 180.0, 1.5, 28.0),
            // Into each other.
            ship(3, 350.0, 100.0, 20.0, 0.0),
            ship(4, 450.0, 100.0, -20.0, 0.0),
            // Into the small asteroid from far away, and one that never meets anything.
            ship(5, 420.0, 600.0, 0.0, -29.0),
            ship(6, 800.0, 800.0, -10.0, 3.0),
        ];
        let mut reference = SectorWorld::new(&contents, &PARAMS);
        for s in &ships {
            reference.insert_ship(s.id, s.motion, &PARAMS);
        }
        let mut world = None;
        let (mut impulses, mut ticks_with_free_ships) = (0, 0);
        for tick in 0..150 {
            reference.physics.step_with_events(&(), &());
            let outcome = step_sector(&ships, world.take(), &contents, &PARAMS);
            impulses += outcome.impulses.len();
            let bodies = outcome.world.as_ref().map_or(0, |w| w.ship_count());
            if bodies < ships.len() {
                ticks_with_free_ships += 1;
            }
            world = outcome.world;
            for (s, &(_, local, velocity)) in ships.iter_mut().zip(&outcome.moved) {
                s.motion = Motion { local, velocity };
                let body = &reference.physics.bodies[reference.ships[&s.id]];
                assert_eq!(
                    (local, velocity),
                    (body.translation(), body.linvel()),
                    "ship {} at tick {tick}: with free flight, then with every ship in rapier",
                    s.id
                );
            }
        }
        assert!(impulses > 0, "the ships did collide");
        assert!(
            ticks_with_free_ships > 100,
            "most of the time some ships flew free ({ticks_with_free_ships} ticks)"
        );
    }
}
