//! The grid-based sensor pass matches a brute-force reference on randomized worlds.

use proptest::prelude::*;

use astroboids_engine::NetId;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::sectors::{SectorGenerator, Sectors};
use astroboids_sim::sensors::{Contact, ContactTarget, build_grid, sort_and_truncate};
use astroboids_sim::space::{SectorCoord, SpacePos, Vec2};

/// Every ship and loaded asteroid within `range`, nearest first: O(n) per ship, no grid.
fn brute_force(
    me: (NetId, SpacePos),
    ships: &[(NetId, SpacePos, Vec2)],
    sectors: &Sectors,
    config: &UniverseConfig,
    range: f32,
    limit: usize,
) -> Vec<Contact> {
    let size = config.simulation.sector_size;
    let mut all = Vec::new();
    let mut consider = |target, pos: SpacePos, velocity, radius| {
        let offset = me.1.offset_to(&pos, size);
        let d2 = offset.length_squared();
        if d2 <= range * range {
            all.push(Contact {
                target,
                offset,
                velocity,
                distance: d2.sqrt(),
                radius,
            });
        }
    };
    for (id, pos, v) in ships {
        if *id != me.0 {
            consider(ContactTarget::Ship(*id), *pos, *v, config.ships.radius);
        }
    }
    for (&sector, loaded) in sectors.loaded() {
        for a in &loaded.contents.asteroids {
            consider(
                ContactTarget::Asteroid {
                    sector,
                    index: a.index,
                },
                SpacePos::new(sector, a.local),
                Vec2::ZERO,
                a.radius,
            );
        }
    }
    sort_and_truncate(&mut all, limit);
    all
}

fn ship_strategy(base: (i32, i32)) -> impl Strategy<Value = (i32, i32, f32, f32, f32, f32)> {
    (
        base.0 - 1..=base.0 + 1,
        base.1 - 1..=base.1 + 1,
        0.0f32..1000.0,
        0.0f32..1000.0,
        -30.0f32..30.0,
        -30.0f32..30.0,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn grid_sensors_match_brute_force(
        base in prop_oneof![Just((0, 0)), Just((1_000_000, -1_000_000)), Just((-7, 40))],
        seed in 0u64..1000,
        raw_ships in prop::collection::vec(ship_strategy((0, 0)), 1..120),
        clustered in any::<bool>(),
        lattice in any::<bool>(),
        range_share in 0.05f32..1.0,
        limit in 1usize..40,
        probes in prop::collection::vec((-1i32..=1, -1i32..=1, 0.0f32..1000.0, 0.0f32..1000.0), 0..8),
    ) {
        let config = UniverseConfig::default();
        let mut sectors = Sectors::new(SectorGenerator::new(&config, seed));
        let ships: Vec<(NetId, SpacePos, Vec2)> = raw_ships
            .iter()
            .enumerate()
            .map(|(i, &(x, y, lx, ly, vx, vy))| {
                // Clustered worlds pack ships into a corner of one sector, so contacts overflow
                // the limit. Lattice worlds put ships on whole metres, so many are exactly as
                // far from a ship as others: distance ties, at the limit's cut too, are ordered
                // by target.
                let (sector, local) = if clustered {
                    (SectorCoord::new(base.0, base.1), Vec2::new(lx / 20.0, ly / 20.0))
                } else {
                    (SectorCoord::new(base.0 + x, base.1 + y), Vec2::new(lx, ly))
                };
                let local = if lattice {
                    Vec2::new(local.x.round(), local.y.round())
                } else {
                    local
                };
                (NetId(i as u64 + 1), SpacePos::new(sector, local), Vec2::new(vx, vy))
            })
            .collect();
        for (_, pos, _) in &ships {
            for c in pos.sector.neighbourhood(1) {
                sectors.load(c);
            }
        }
        let grid = build_grid(&config, &sectors, ships.iter().copied());
        let range = config.sensors.range * range_share;
        for &(id, pos, _) in &ships {
            let fast = grid.sense(&pos, range, Some(id), limit);
            let slow = brute_force((id, pos), &ships, &sectors, &config, range, limit);
            prop_assert_eq!(&fast, &slow, "ship {:?} at {:?}", id, pos);
        }
        // Points where no ship is (as tools ask): nothing excluded, the same answer.
        for &(x, y, lx, ly) in &probes {
            let pos = SpacePos::new(SectorCoord::new(base.0 + x, base.1 + y), Vec2::new(lx, ly));
            let fast = grid.sense(&pos, range, None, limit);
            let slow = brute_force((NetId(0), pos), &ships, &sectors, &config, range, limit);
            prop_assert_eq!(&fast, &slow, "probe at {:?}", pos);
        }
    }
}

/// The middle of the origin sector, where the hand-placed ships of the tests below sit.
const MIDDLE_OF_ORIGIN: SpacePos = SpacePos {
    sector: SectorCoord { x: 0, y: 0 },
    local: Vec2::new(500.0, 500.0),
};

/// The ships `sensing` sees from `pos` among `ships` (asteroids left out: the default
/// universe may have some near these points), nearest first.
fn ships_seen(
    ships: &[(NetId, SpacePos, Vec2)],
    sensing: NetId,
    pos: SpacePos,
    range: f32,
    limit: usize,
) -> Vec<NetId> {
    let config = UniverseConfig::default();
    let mut sectors = Sectors::new(SectorGenerator::new(&config, 1));
    sectors.load(pos.sector);
    build_grid(&config, &sectors, ships.iter().copied())
        .sense(&pos, range, Some(sensing), limit)
        .iter()
        .filter_map(|c| match c.target {
            ContactTarget::Ship(id) => Some(id),
            ContactTarget::Asteroid { .. } => None,
        })
        .collect()
}

#[test]
fn equal_distances_are_ordered_by_id() {
    let center = MIDDLE_OF_ORIGIN;
    let ring = [
        (NetId(9), 10.0, 0.0),
        (NetId(3), -10.0, 0.0),
        (NetId(5), 0.0, 10.0),
    ];
    let mut ships = vec![(NetId(1), center, Vec2::ZERO)];
    for (id, dx, dy) in ring {
        ships.push((
            id,
            SpacePos::new(center.sector, center.local + Vec2::new(dx, dy)),
            Vec2::ZERO,
        ));
    }
    assert_eq!(
        ships_seen(&ships, NetId(1), center, 11.0, 2),
        vec![NetId(3), NetId(5)]
    );
}

#[test]
fn ships_at_the_same_spot_see_each_other_but_not_themselves() {
    let ships: Vec<(NetId, SpacePos, Vec2)> = [4, 2, 7]
        .into_iter()
        .map(|id| (NetId(id), MIDDLE_OF_ORIGIN, Vec2::ZERO))
        .collect();
    for &(id, pos, _) in &ships {
        let others: Vec<NetId> = [2, 4, 7]
            .into_iter()
            .filter(|&other| other != id.0)
            .map(NetId)
            .collect();
        assert_eq!(ships_seen(&ships, id, pos, 50.0, 8), others, "ship {id:?}");
    }
}
