//! Fog of war: a player's view holds their own ships and what those ships sensed, never
//! anything more.

mod common;

use common::fresh_dir;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use astroboids_engine::NetId;
use astroboids_host::{PersistentWorld, WorldRequest};
use astroboids_server::views::{
    ASTEROID_ID_BIT, KIND_ASTEROID, KIND_HAZARD, KIND_NEBULA, KIND_OWN_SHIP, Owners, asteroid_id,
    is_other_ship, owned_ship_kind,
};
use astroboids_sim::UniverseConfig;
use astroboids_sim::inputs::{InputOutcome, WorldInput};
use astroboids_sim::ships::{Owner, ShipIndex};
use astroboids_sim::space::{SectorCoord, SpacePos};

fn spawn(
    world: &mut PersistentWorld,
    sector: (i32, i32),
    local: (f32, f32),
    owner: Option<&str>,
) -> u64 {
    let InputOutcome::Spawned(ids) = world
        .submit(WorldInput::SpawnShip {
            sector,
            local,
            heading: 0.0,
            autopilot: true,
            owner: owner.map(str::to_string),
        })
        .unwrap()
    else {
        panic!("a spawn spawns")
    };
    ids[0].0
}

#[test]
fn players_see_their_ships_and_what_those_sensed_and_nothing_more() {
    let dir = fresh_dir("views-fog");
    let (mut world, _) = PersistentWorld::open(
        &dir,
        WorldRequest {
            seed: Some(21),
            config: None,
            script_workers: 1,
        },
    )
    .unwrap();
    let ada = spawn(&mut world, (0, 0), (100.0, 100.0), Some("ada"));
    let bob_near = spawn(&mut world, (0, 0), (150.0, 100.0), Some("bob"));
    let bob_far = spawn(&mut world, (0, 0), (800.0, 800.0), Some("bob"));
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for _ in 0..60 {
        let owner = ["ada", "bob", "cy"][rng.random_range(0..3)];
        spawn(
            &mut world,
            (rng.random_range(-1..2), rng.random_range(-1..2)),
            (rng.random_range(0.0..1000.0), rng.random_range(0.0..1000.0)),
            Some(owner),
        );
    }
    world.step().unwrap();

    let owners = Owners::of(world.sim_mut().world_mut(), &["ada", "bob", "cy"]);
    let ada_view = owners.view(world.sim().world(), "ada");
    assert_eq!(ada_view.view[&ada].kind, KIND_OWN_SHIP);
    assert_eq!(
        ada_view.view[&bob_near].kind,
        owned_ship_kind("bob"),
        "bob's ship is 50 m away, in bob's colour"
    );
    assert!(
        !ada_view.view.contains_key(&bob_far),
        "bob's other ship is 990 m away"
    );
    let bob_view = owners.view(world.sim().world(), "bob");
    assert_eq!(bob_view.view[&bob_near].kind, KIND_OWN_SHIP);
    assert_eq!(bob_view.view[&bob_far].kind, KIND_OWN_SHIP);
    assert_eq!(bob_view.view[&ada].kind, owned_ship_kind("ada"));
    assert!(owners.view(world.sim().world(), "nobody").view.is_empty());

    // Over many ticks of a crowded world: nothing in a view is out of its owner's reach.
    for _ in 0..30 {
        world.step().unwrap();
        let owners = Owners::of(world.sim_mut().world_mut(), &["ada", "bob", "cy"]);
        let w = world.sim().world();
        let config = w.resource::<UniverseConfig>();
        let (range, size) = (config.sensors.range, config.simulation.sector_size);
        let index = w.resource::<ShipIndex>();
        for user in ["ada", "bob", "cy"] {
            let own: Vec<SpacePos> = index
                .ids()
                .filter_map(|id| index.entity(id))
                .filter(|&e| w.get::<Owner>(e).is_some_and(|o| o.0 == user))
                .map(|e| *w.get::<SpacePos>(e).unwrap())
                .collect();
            let view = owners.view(w, user);
            assert!(!view.view.is_empty());
            for (&id, entity) in &view.view {
                let pos = SpacePos::new(
                    astroboids_sim::space::SectorCoord {
                        x: entity.sector.0,
                        y: entity.sector.1,
                    },
                    astroboids_sim::space::Vec2::new(entity.local().0, entity.local().1),
                );
                match entity.kind {
                    KIND_OWN_SHIP => {
                        let e = index.entity(NetId(id)).unwrap();
                        assert_eq!(w.get::<Owner>(e).unwrap().0, user);
                        assert_eq!(view.priority[&id], 0);
                    }
                    KIND_NEBULA | KIND_HAZARD => {
                        assert_ne!(id & ASTEROID_ID_BIT, 0, "areas share the asteroids' id bit");
                        let nearest_edge = own
                            .iter()
                            .map(|o| {
                                let d = o.offset_to(&pos, size);
                                (d.x * d.x + d.y * d.y).sqrt() - entity.area_radius()
                            })
                            .fold(f32::INFINITY, f32::min);
                        assert!(nearest_edge <= range + 1.0, "{user} sees area {id}");
                    }
                    kind if is_other_ship(kind) || kind == KIND_ASTEROID => {
                        assert_eq!(entity.kind == KIND_ASTEROID, id & ASTEROID_ID_BIT != 0);
                        if kind != KIND_ASTEROID {
                            let e = index.entity(NetId(id)).unwrap();
                            let owner = w.get::<Owner>(e).map(|o| o.0.as_str());
                            assert_eq!(Some(kind), owner.map(owned_ship_kind));
                        }
                        let nearest = own
                            .iter()
                            .map(|o| {
                                let d = o.offset_to(&pos, size);
                                (d.x * d.x + d.y * d.y).sqrt()
                            })
                            .fold(f32::INFINITY, f32::min);
                        // Quantization (1/16 m) and contact radii aside, within range.
                        assert!(nearest <= range + 1.0, "{user} sees {id} at {nearest} m");
                    }
                    other => panic!("unknown kind {other}"),
                }
            }
        }
    }
}

/// Asteroid ids: distinct across any neighbourhood a view can span (also where coordinates
/// wrap), and neighbours within a sector, so snapshots carry them in few bytes.
#[test]
fn asteroid_ids_are_distinct_around_any_sector_and_close_within_one() {
    for (cx, cy) in [
        (0, 0),
        (-1, -1),
        (i32::MAX, i32::MIN),
        (8_388_607, -8_388_608),
    ] {
        let mut ids = std::collections::BTreeSet::new();
        for dx in -2..=2 {
            for dy in -2..=2 {
                let sector = SectorCoord::new(cx.wrapping_add(dx), cy.wrapping_add(dy));
                for index in [0, 1, 255, u16::MAX] {
                    let id = asteroid_id(sector, index);
                    assert!(id & ASTEROID_ID_BIT != 0);
                    assert!(ids.insert(id), "{sector:?} #{index} collides");
                }
            }
        }
    }
    let first = asteroid_id(SectorCoord::new(5, -5), 3);
    assert_eq!(asteroid_id(SectorCoord::new(5, -5), 4) - first, 1);
    assert!(asteroid_id(SectorCoord::new(6, -5), 3) - first < 1 << 17);
}

/// Nebulae and hazards within a ship's sensor range are in its owner's view, where they are
/// and as large as they are; the same areas are not in another player's view from afar.
#[test]
fn players_see_the_nebulae_and_hazards_their_ships_reach() {
    use astroboids_server::views::{hazard_id, nebula_id};
    use astroboids_sim::sectors::Sectors;
    let dir = fresh_dir("views-areas");
    let (mut world, _) = PersistentWorld::open(
        &dir,
        WorldRequest {
            seed: Some(5),
            config: None,
            script_workers: 1,
        },
    )
    .unwrap();
    let (cloudy, hot) = {
        let generator = world.sim().world().resource::<Sectors>().generator();
        let sector_with = |has: &dyn Fn(&astroboids_sim::sectors::SectorContents) -> bool| {
            (0..400)
                .map(|i| generator.generate(SectorCoord::new(i % 20, i / 20)))
                .find(|c| has(c))
                .expect("some sector of 400 has one")
        };
        (
            sector_with(&|c| !c.nebulae.is_empty()),
            sector_with(&|c| !c.hazards.is_empty()),
        )
    };
    let nebula = &cloudy.nebulae[0];
    let hazard = &hot.hazards[0];
    let coord = |c: SectorCoord| (c.x, c.y);
    let ada = spawn(
        &mut world,
        coord(cloudy.coord),
        (nebula.local.x, nebula.local.y),
        Some("ada"),
    );
    spawn(
        &mut world,
        coord(hot.coord),
        (hazard.local.x, hazard.local.y),
        Some("bob"),
    );
    world.step().unwrap();
    let owners = Owners::of(world.sim_mut().world_mut(), &["ada", "bob"]);
    let ada_view = owners.view(world.sim().world(), "ada");
    assert!(ada_view.view.contains_key(&ada));
    let seen = ada_view.view[&nebula_id(cloudy.coord, 0)];
    assert_eq!(seen.kind, KIND_NEBULA);
    assert_eq!(seen.sector, coord(cloudy.coord));
    assert!((seen.local().0 - nebula.local.x).abs() < 0.1);
    assert!((seen.local().1 - nebula.local.y).abs() < 0.1);
    assert!(
        seen.area_radius() >= nebula.radius && seen.area_radius() < nebula.radius + 4.0,
        "radius {} drawn for {}",
        seen.area_radius(),
        nebula.radius
    );
    let bob_view = owners.view(world.sim().world(), "bob");
    let seen = bob_view.view[&hazard_id(hot.coord, 0)];
    assert_eq!(seen.kind, KIND_HAZARD);
    assert!(seen.area_radius() >= hazard.radius);
}
