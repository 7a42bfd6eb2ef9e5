//! Ore is conserved under mining, and destroyed ships leave every index.

mod common;

use std::collections::BTreeSet;

use astroboids_engine::NetId;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::physics::SectorWorlds;
use astroboids_sim::sectors::Sectors;
use astroboids_sim::sensors::{ContactTarget, Sensors};
use astroboids_sim::ships::{Cargo, Hull, ShipIndex};
use astroboids_sim::{SimTotals, TickReport};
use common::{fleet_world, totals};

/// Ore taken from every changed sector, computed from generation and the stored deltas.
fn ore_taken_from_asteroids(sectors: &Sectors) -> u64 {
    sectors
        .deltas()
        .keys()
        .map(|&c| {
            let generated = sectors.generator().generate(c).total_ore();
            generated - sectors.current_contents(c).total_ore()
        })
        .sum()
}

fn ore_in_cargo(sim: &mut astroboids_engine::Simulation) -> u64 {
    let world = sim.world_mut();
    let mut q = world.query::<&Cargo>();
    q.iter(world).map(|c| u64::from(c.ore)).sum()
}

#[test]
fn ore_is_conserved_under_mining() {
    let mut config = UniverseConfig::default();
    // Fast mining: asteroids get used up; sectors unload as soon as ships leave them.
    config.mining.ore_per_tick = 40;
    config.sectors.unload_after_ticks = 1;
    let (mut sim, _) = fleet_world(config, 17, 300);
    for _ in 0..8 {
        sim.run_ticks(25);
        let t = totals(&sim);
        let taken = ore_taken_from_asteroids(sim.world().resource::<Sectors>());
        let held = ore_in_cargo(&mut sim);
        assert_eq!(taken, t.ore_mined, "asteroids lost exactly what was mined");
        assert_eq!(
            held + t.ore_lost_in_wrecks,
            t.ore_mined,
            "mined ore is in a hold or a wreck"
        );
    }
    let t = totals(&sim);
    assert!(t.ore_mined > 10_000, "the fleet mined: {t:?}");
}

/// Checks that `id` is nowhere: ECS, ship index, physics, other ships' sensors.
fn assert_gone(sim: &mut astroboids_engine::Simulation, id: NetId) {
    let world = sim.world_mut();
    assert!(
        !world.resource::<ShipIndex>().contains(id),
        "{id} still in the ship index"
    );
    let sectors: Vec<_> = world.resource::<ShipIndex>().occupied_sectors().collect();
    for s in sectors {
        let in_sector: Vec<_> = world.resource::<ShipIndex>().in_sector(s).collect();
        assert!(!in_sector.contains(&id), "{id} still listed in sector {s}");
    }
    assert!(
        !world.resource::<SectorWorlds>().contains_ship(id),
        "{id} still has a body"
    );
    let mut ids = world.query::<&NetId>();
    assert!(
        ids.iter(world).all(|x| *x != id),
        "{id} still has an entity"
    );
    let mut sensors = world.query::<&Sensors>();
    for s in sensors.iter(world) {
        assert!(
            s.contacts
                .iter()
                .all(|c| c.target != ContactTarget::Ship(id)),
            "{id} is still sensed by another ship"
        );
    }
}

#[test]
fn destroyed_ships_leave_every_index() {
    let (mut sim, ids) = fleet_world(UniverseConfig::default(), 23, 200);
    sim.run_ticks(5);
    // Knock out a few ships directly, then let collisions and hazards do the rest.
    let victims: Vec<NetId> = ids.iter().copied().step_by(17).collect();
    for id in &victims {
        let entity = sim.world().resource::<ShipIndex>().entity(*id).unwrap();
        sim.world_mut()
            .entity_mut(entity)
            .get_mut::<Hull>()
            .unwrap()
            .0 = 0.0;
    }
    sim.step();
    let destroyed: BTreeSet<NetId> = sim
        .world()
        .resource::<TickReport>()
        .destroyed
        .iter()
        .copied()
        .collect();
    assert_eq!(destroyed, victims.iter().copied().collect());
    // One more tick: sensors are rebuilt without them.
    sim.step();
    for id in &victims {
        assert_gone(&mut sim, *id);
    }

    let mut config = UniverseConfig::default();
    config.physics.collision_damage_per_impulse = 50.0;
    let (mut sim, ids) = fleet_world(config, 29, 300);
    sim.run_ticks(150);
    let t: SimTotals = totals(&sim);
    assert!(
        t.ships_destroyed > 0,
        "fragile ships die in collisions: {t:?}"
    );
    let alive = sim.world().resource::<ShipIndex>().len() as u64;
    assert_eq!(alive + t.ships_destroyed, ids.len() as u64);
    let dead: Vec<NetId> = ids
        .iter()
        .copied()
        .filter(|id| !sim.world().resource::<ShipIndex>().contains(*id))
        .collect();
    assert_eq!(dead.len() as u64, t.ships_destroyed);
    // Ships destroyed in the last tick were sensed at its start: one more tick rebuilds the
    // sensors without them.
    sim.step();
    for id in dead {
        assert_gone(&mut sim, id);
    }
    // Physics holds bodies only for living ships, each in its own sector's world; ships far
    // from everything fly free, without one.
    let world = sim.world();
    let index = world.resource::<ShipIndex>();
    let physics = world.resource::<SectorWorlds>();
    let mut with_body = 0;
    for (sector, sector_world) in physics.iter() {
        let living_here = index
            .in_sector(sector)
            .filter(|id| sector_world.contains_ship(*id))
            .count();
        assert_eq!(
            living_here,
            sector_world.ship_count(),
            "every body in {sector} belongs to a living ship of it"
        );
        with_body += living_here;
    }
    assert!(
        with_body > 0 && with_body < index.len(),
        "some ships are near something and some fly free: {with_body} of {}",
        index.len()
    );
}
