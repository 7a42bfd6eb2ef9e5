//! Hazard damage and the destruction of ships whose hull is gone.
//!
//! A destroyed ship leaves every index: the ECS, [`ShipIndex`], its sector's physics world and
//! any pending input. Its cargo is counted in `ore_lost_in_wrecks` so ore stays accounted for.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use rayon::prelude::*;

use astroboids_engine::{NetId, TickRate, TickSchedule};

use crate::physics::SectorWorlds;
use crate::sectors::Sectors;
use crate::ships::{Cargo, Hull, ShipIndex};
use crate::space::SpacePos;
use crate::{SimSet, SimTotals, TickReport};

#[derive(Debug, Clone, Default)]
pub struct DamagePlugin;

impl Plugin for DamagePlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(TickSchedule, hazard_damage.in_set(SimSet::Hazards))
            .add_systems(TickSchedule, destroy_wrecks.in_set(SimSet::Destruction));
    }
}

fn hazard_damage(
    rate: Res<TickRate>,
    sectors: Res<Sectors>,
    mut ships: Query<(&SpacePos, &mut Hull)>,
) {
    let mut work: Vec<_> = ships.iter_mut().collect();
    work.par_iter_mut().for_each(|(pos, hull)| {
        let Some(sector) = sectors.get(pos.sector) else {
            return;
        };
        for hazard in &sector.hazards {
            if (pos.local - hazard.local).length_squared() <= hazard.radius * hazard.radius {
                hull.0 -= hazard.damage_per_s * rate.dt_s;
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
fn destroy_wrecks(
    mut commands: Commands,
    mut index: ResMut<ShipIndex>,
    mut worlds: ResMut<SectorWorlds>,
    mut totals: ResMut<SimTotals>,
    mut report: ResMut<TickReport>,
    ships: Query<(Entity, &NetId, &SpacePos, &Hull, &Cargo)>,
) {
    let mut wrecks: Vec<_> = ships
        .iter()
        .filter(|(.., hull, _)| hull.0 <= 0.0 || hull.0.is_nan())
        .collect();
    wrecks.sort_unstable_by_key(|w| *w.1);
    for (entity, id, pos, _, cargo) in wrecks {
        worlds.remove_ship(pos.sector, *id);
        index.remove(*id, pos.sector);
        totals.ships_destroyed += 1;
        totals.ore_lost_in_wrecks += u64::from(cargo.ore);
        report.destroyed.push(*id);
        commands.entity(entity).despawn();
    }
}
