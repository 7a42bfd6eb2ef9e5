//! A ship far from the origin behaves exactly like one at the origin: positions are kept per
//! sector, so no precision is lost at sector (1_000_000, -1_000_000).

mod common;

use astroboids_engine::{NetId, Simulation};
use astroboids_sim::build_simulation;
use astroboids_sim::ships::{Heading, ShipCommand, ShipIndex, ShipInputs, Velocity, spawn_ship};
use astroboids_sim::space::{SectorCoord, SpacePos, Vec2};
use common::empty_universe;

/// Two ships flying at each other across a sector border, with a scripted input sequence.
fn scenario(origin: SectorCoord) -> (Simulation, [NetId; 2]) {
    let mut sim = build_simulation(empty_universe(), 99);
    let w = sim.world_mut();
    let a = spawn_ship(w, SpacePos::new(origin, Vec2::new(900.0, 500.0)), 0.0).unwrap();
    let east = origin.offset(1, 0).unwrap();
    let b = spawn_ship(
        w,
        SpacePos::new(east, Vec2::new(150.0, 501.0)),
        std::f32::consts::PI,
    )
    .unwrap();
    (sim, [a, b])
}

fn input(tick: u64, ship: usize) -> ShipCommand {
    ShipCommand {
        thrust: if tick < 60 { 1.0 } else { 0.3 },
        turn: if tick % 40 < 5 {
            0.5 - ship as f32
        } else {
            0.0
        },
        mine: false,
        stop: tick > 150 && tick < 160,
    }
}

/// Per ship per tick: (sector relative to the start, local x/y, velocity, heading) as bits.
type Trace = Vec<(i64, i64, [u32; 5])>;

fn trace(origin: SectorCoord, ticks: u64) -> Trace {
    let (mut sim, ids) = scenario(origin);
    let mut out = Vec::new();
    for tick in 0..ticks {
        for (i, id) in ids.iter().enumerate() {
            sim.world_mut()
                .resource_mut::<ShipInputs>()
                .submit(*id, input(tick, i))
                .unwrap();
        }
        sim.step();
        for id in ids {
            let world = sim.world_mut();
            let entity = world.resource::<ShipIndex>().entity(id).expect("alive");
            let e = world.entity(entity);
            let pos = e.get::<SpacePos>().unwrap();
            let v = e.get::<Velocity>().unwrap().0;
            let h = e.get::<Heading>().unwrap().0;
            out.push((
                i64::from(pos.sector.x) - i64::from(origin.x),
                i64::from(pos.sector.y) - i64::from(origin.y),
                [
                    pos.local.x.to_bits(),
                    pos.local.y.to_bits(),
                    v.x.to_bits(),
                    v.y.to_bits(),
                    h.to_bits(),
                ],
            ));
        }
    }
    out
}

#[test]
fn ship_far_from_origin_behaves_bit_for_bit_like_one_at_origin() {
    let near = trace(SectorCoord::new(0, 0), 240);
    let far = trace(SectorCoord::new(1_000_000, -1_000_000), 240);
    // The scenario must cross sector borders, or it would not test the handoff path.
    let sectors_visited: std::collections::BTreeSet<_> =
        near.iter().map(|(x, y, _)| (*x, *y)).collect();
    assert!(
        sectors_visited.len() >= 2,
        "ships crossed borders: {sectors_visited:?}"
    );
    assert_eq!(near.len(), far.len());
    for (i, (a, b)) in near.iter().zip(&far).enumerate() {
        assert_eq!(
            a,
            b,
            "ship state differs at tick {}, ship {}",
            i / 2 + 1,
            i % 2
        );
    }
}

#[test]
fn ships_at_the_edge_of_the_grid_stop_instead_of_wrapping() {
    let mut sim = build_simulation(empty_universe(), 5);
    let corner = SectorCoord::new(i32::MAX, 0);
    let id = spawn_ship(
        sim.world_mut(),
        SpacePos::new(corner, Vec2::new(990.0, 500.0)),
        0.0,
    )
    .unwrap();
    for _ in 0..50 {
        sim.world_mut()
            .resource_mut::<ShipInputs>()
            .submit(
                id,
                ShipCommand {
                    thrust: 1.0,
                    ..Default::default()
                },
            )
            .unwrap();
        sim.step();
    }
    let world = sim.world_mut();
    let entity = world.resource::<ShipIndex>().entity(id).unwrap();
    let pos = *world.entity(entity).get::<SpacePos>().unwrap();
    assert_eq!(pos.sector, corner);
    assert!(pos.local.x < 1000.0 && pos.local.x > 990.0, "{pos:?}");
}
