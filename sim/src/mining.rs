//! Mining: a ship commanded to mine takes ore from the nearest asteroid within reach.
//!
//! Ore is conserved: every unit leaving an asteroid lands in exactly one cargo hold. Ships mine
//! in id order, so when two ships empty the same asteroid the lower id is served first.
//!
//! A ship mines only asteroids of its own sector (one across the border is out of reach until
//! the ship crosses): every ship that can touch an asteroid then sits in the asteroid's
//! sector, so a sector's ore is changed by one shard only, in id order, whatever the split.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use astroboids_engine::{NetId, TickSchedule};

use crate::config::UniverseConfig;
use crate::physics::DepletedAsteroids;
use crate::sectors::Sectors;
use crate::sensors::{ContactTarget, Sensors};
use crate::ships::{Cargo, Energy, ShipCommand};
use crate::space::SpacePos;
use crate::{SimSet, SimTotals, TickReport};

#[derive(Debug, Clone, Default)]
pub struct MiningPlugin;

impl Plugin for MiningPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(TickSchedule, mine.in_set(SimSet::Mining));
    }
}

#[allow(clippy::too_many_arguments)]
fn mine(
    config: Res<UniverseConfig>,
    mut sectors: ResMut<Sectors>,
    mut depleted: ResMut<DepletedAsteroids>,
    mut totals: ResMut<SimTotals>,
    mut report: ResMut<TickReport>,
    mut ships: Query<(
        &NetId,
        &ShipCommand,
        &SpacePos,
        &Sensors,
        &mut Cargo,
        &mut Energy,
    )>,
) {
    let m = &config.mining;
    let (ship_radius, capacity) = (config.ships.radius, config.ships.cargo_capacity);
    let mut miners: Vec<_> = ships
        .iter_mut()
        .filter(|(_, command, ..)| command.mine)
        .collect();
    miners.sort_unstable_by_key(|(id, ..)| **id);
    for (_, _, pos, sensors, mut cargo, mut energy) in miners {
        let space = capacity.saturating_sub(cargo.ore).min(m.ore_per_tick);
        if space == 0 || energy.0 < m.energy_per_tick {
            continue;
        }
        // Contacts are nearest first: the first asteroid within reach that still has ore.
        for contact in &sensors.contacts {
            let ContactTarget::Asteroid { sector, index } = contact.target else {
                continue;
            };
            if contact.distance - contact.radius - ship_radius > m.reach {
                break;
            }
            if sector != pos.sector {
                continue;
            }
            let taken = sectors.take_ore(sector, index, space);
            if taken.amount == 0 {
                continue;
            }
            cargo.ore += taken.amount;
            energy.0 -= m.energy_per_tick;
            totals.ore_mined += u64::from(taken.amount);
            report.ore_mined += taken.amount;
            if taken.depleted {
                depleted.0.push((sector, index));
            }
            break;
        }
    }
}
