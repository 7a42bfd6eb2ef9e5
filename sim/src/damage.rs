//! Hazard damage and the destruction of ships whose hull is gone.
//!
//! A destroyed ship leaves every index: the ECS, [`ShipIndex`], its sector's physics world and
//! any pending input. Its cargo is counted in `ore_lost_in_wrecks` so ore stays accounted for.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use astroboids_engine::{NetId, TickRate, TickSchedule};

use crate::physics::SectorWorlds;
use crate::sectors::{Hazard, Sectors};
use crate::ships::{Cargo, Hull, ShipIndex};
use crate::space::{SectorCoord, SpacePos};
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
    // Few sectors have hazards: look ships up in a small map of those instead of in every
    // loaded sector.
    let hazardous: FxHashMap<SectorCoord, &[Hazard]> = sectors
        .loaded()
        .filter(|(_, s)| !s.contents.hazards.is_empty())
        .map(|(coord, s)| (*coord, s.contents.hazards.as_slice()))
        .collect();
    if hazardous.is_empty() {
        return;
    }
    let mut work: Vec<_> = ships.iter_mut().collect();
    work.par_iter_mut().for_each(|(pos, hull)| {
        let Some(hazards) = hazardous.get(&pos.sector) else {
            return;
        };
        for hazard in *hazards {
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
