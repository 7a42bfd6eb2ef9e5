//! A small native behaviour so a headless world has life before scripts exist: ships fly to
//! the nearest asteroid and mine it until their hold is full, and wander otherwise.
//!
//! Randomness comes from the stateless stream (universe seed, Autopilot, ship id, tick).

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use rayon::prelude::*;

use astroboids_engine::rng::derive_seed;
use astroboids_engine::{NetId, RngStream, Tick, TickSchedule, UniverseSeed};

use crate::SimSet;
use crate::config::UniverseConfig;
use crate::sensors::{ContactTarget, Sensors};
use crate::ships::{Cargo, Heading, ShipCommand, Velocity, wrap_angle};

/// Ships with this component are flown by the native autopilot.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Autopilot;

#[derive(Debug, Clone, Default)]
pub struct AutopilotPlugin;

impl Plugin for AutopilotPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(TickSchedule, fly.in_set(SimSet::Behaviour));
    }
}

/// Chance per tick that a wandering ship picks a new turn.
const WANDER_TURN_CHANCE: u64 = 8; // out of 100

/// What the autopilot reads of a ship, and the command it writes.
type PilotedShip = (
    &'static NetId,
    &'static Sensors,
    &'static Cargo,
    &'static Heading,
    &'static Velocity,
    &'static mut ShipCommand,
);

fn fly(
    config: Res<UniverseConfig>,
    tick: Res<Tick>,
    seed: Res<UniverseSeed>,
    mut ships: Query<PilotedShip, With<Autopilot>>,
) {
    let reach = config.mining.reach + config.ships.radius;
    let capacity = config.ships.cargo_capacity;
    let max_speed = config.ships.max_speed;
    // Each ship decides from its own state only: decide in parallel.
    let mut work: Vec<_> = ships.iter_mut().collect();
    work.par_iter_mut()
        .for_each(|(id, sensors, cargo, heading, velocity, command)| {
            let target = (cargo.ore < capacity)
                .then(|| {
                    sensors
                        .contacts
                        .iter()
                        .find(|c| matches!(c.target, ContactTarget::Asteroid { .. }))
                })
                .flatten();
            **command = match target {
                Some(asteroid) => {
                    let gap = asteroid.distance - asteroid.radius;
                    let turn = steer_towards(heading.0, asteroid.offset.x, asteroid.offset.y);
                    if gap <= reach {
                        ShipCommand {
                            thrust: 0.0,
                            turn,
                            mine: true,
                            stop: true,
                        }
                    } else {
                        // Approach fast when far, slow down when close.
                        let speed = velocity.0.length();
                        let wanted = (gap * 0.5).min(max_speed);
                        ShipCommand {
                            thrust: if speed < wanted && turn.abs() < 0.5 {
                                1.0
                            } else {
                                0.0
                            },
                            turn,
                            mine: false,
                            stop: speed > wanted,
                        }
                    }
                }
                None => {
                    let roll = derive_seed(seed.0, RngStream::Autopilot, &[id.0, tick.0]);
                    let turn = if roll % 100 < WANDER_TURN_CHANCE {
                        // Upper bits: a turn in -1..=1 in steps of 1/8.
                        ((roll >> 32) % 17) as f32 / 8.0 - 1.0
                    } else {
                        0.0
                    };
                    ShipCommand {
                        thrust: 0.6,
                        turn,
                        mine: false,
                        stop: false,
                    }
                }
            };
        });
}

/// Turn command (-1..=1) that points the heading at (x, y).
fn steer_towards(heading: f32, x: f32, y: f32) -> f32 {
    let wanted = libm::atan2f(y, x);
    let diff = wrap_angle(wanted - heading);
    (diff * 4.0).clamp(-1.0, 1.0)
}
