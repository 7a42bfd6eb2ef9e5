//! Sectors far from ships are unloaded and later regenerated with their deltas; the ships
//! cannot tell: a world that unloads aggressively evolves exactly like one that never unloads.

mod common;

use astroboids_engine::StateHashExt;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::sectors::Sectors;
use common::{fleet_world, totals};

#[test]
fn unloading_and_reloading_does_not_change_the_world() {
    // Small sectors, fast ships and small holds: ships mine a little, then wander across
    // many sectors, leaving changed sectors behind to be unloaded and revisited.
    let mut eager = UniverseConfig::default();
    eager.simulation.sector_size = 400.0;
    eager.sensors.range = 150.0;
    eager.ships.max_speed = 80.0;
    eager.generation.asteroid_radius_min = 8.0;
    eager.ships.acceleration = 80.0;
    eager.ships.cargo_capacity = 200;
    eager.ships.spawn_per_sector = 10;
    eager.mining.ore_per_tick = 50;
    eager.generation.nebula_radius_max = 90.0;
    eager.generation.hazard_radius_max = 90.0;
    eager.sectors.unload_after_ticks = 2;
    eager.validate("test").expect("valid test config");
    let mut lazy = eager.clone();
    lazy.sectors.unload_after_ticks = 1_000_000;

    let (mut a, _) = fleet_world(eager, 31, 60);
    let (mut b, _) = fleet_world(lazy, 31, 60);
    for tick in 1..=300 {
        a.step();
        b.step();
        let (ha, hb) = (a.world_mut().state_hash(), b.world_mut().state_hash());
        // Only the bookkeeping of which sectors are in memory (and the totals counting
        // unloads) may differ.
        assert_eq!(
            ha.differing_parts(&hb)
                .into_iter()
                .filter(|p| *p != "sectors" && *p != "totals")
                .collect::<Vec<_>>(),
            Vec::<&str>::new(),
            "tick {tick}"
        );
    }
    let (ta, tb) = (totals(&a), totals(&b));
    assert!(
        ta.sectors_unloaded > 0,
        "the eager world unloaded sectors: {ta:?}"
    );
    assert_eq!(tb.sectors_unloaded, 0);
    assert!(
        ta.sectors_generated > tb.sectors_generated,
        "and regenerated some"
    );
    assert_eq!(ta.ore_mined, tb.ore_mined);
    // Every sector loaded in both worlds has the same contents, deltas included.
    let (sa, sb) = (
        a.world().resource::<Sectors>(),
        b.world().resource::<Sectors>(),
    );
    assert_eq!(sa.deltas(), sb.deltas());
    let mut compared = 0;
    for (coord, loaded) in sa.loaded() {
        if let Some(other) = sb.get(*coord) {
            assert_eq!(&loaded.contents, other, "sector {coord}");
            compared += 1;
        }
    }
    assert!(compared > 0);
}
