//! What players see of a cluster: each tick, the pieces every shard builds, merged, are the
//! views and events the single server builds from the whole world; ships near a shard border
//! are seen across it as they stand at the end of the tick.

use std::collections::BTreeMap;

use astroboids_cluster::SectorAssignment;
use astroboids_cluster::live::{ViewMerger, shard_views};
use astroboids_cluster::local::LocalCluster;
use astroboids_protocol::messages::TickEvents;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::{WorldInput, apply_input};
use astroboids_sim::{SimOptions, build_simulation_with};
use astroboids_test_kit::WatBot;
use astroboids_views::{
    KIND_OWN_SHIP, KIND_SHIP, Owners, PlayerView, is_other_ship, player_events,
};

const SEED: u64 = 5;
const USERS: [&str; 3] = ["ann", "bob", "cy"];

fn options() -> SimOptions {
    SimOptions {
        script_workers: 1,
        ..SimOptions::default()
    }
}

/// Ships of three players on both sides of the border between sectors 0 and 1 (shards 0 and
/// 1 under stripes of width 1), some flown by a script that logs every tick, flying across.
fn setup(size: f32) -> Vec<WorldInput> {
    let logger = WatBot::new()
        .import_log()
        .field(r#"(data (i32.const 9000) "hello")"#)
        .tick(
            "(f32.store (i32.const 4096) (f32.const 1))
             (call $log (i32.const 9000) (i32.const 5))",
        )
        .wasm();
    let script = astroboids_scripting::module_hash(&logger);
    let mut inputs = vec![WorldInput::AddScript { wasm: logger }];
    let mut ship = 0;
    for (u, user) in USERS.iter().enumerate() {
        for i in 0..6 {
            let (sector, x) = if i % 2 == 0 {
                ((0, 0), size - 30.0 - 10.0 * i as f32)
            } else {
                ((1, 0), 20.0 + 10.0 * i as f32)
            };
            inputs.push(WorldInput::SpawnShip {
                sector,
                local: (x, 300.0 + 40.0 * u as f32 + 7.0 * i as f32),
                heading: if i % 2 == 0 { 0.0 } else { 3.0 },
                autopilot: true,
                owner: Some((*user).to_owned()),
            });
            ship += 1;
            if i == 0 {
                inputs.push(WorldInput::AssignScript { ship, script });
            }
        }
    }
    inputs
}

fn sorted(mut events: TickEvents) -> TickEvents {
    events.logs.sort_by_key(|(ship, _)| *ship);
    events.faults.sort_by_key(|(ship, _)| *ship);
    events
}

#[test]
fn merged_shard_views_are_the_single_servers_views() {
    let config = UniverseConfig::default();
    let size = config.simulation.sector_size;
    let inputs = setup(size);
    let mut single = build_simulation_with(config.clone(), SEED, options());
    let assignment = SectorAssignment::Stripes {
        shards: 2,
        width: 1,
    };
    let mut cluster = LocalCluster::new(config, SEED, assignment, options);
    for input in &inputs {
        apply_input(single.world_mut(), input).expect("accepted");
        cluster.submit(input.clone()).unwrap();
    }
    let mut merger = ViewMerger::default();
    let (mut crossings, mut seen_across, mut logs) = (0, 0, 0);
    let mut holders_before: BTreeMap<u64, u32> = BTreeMap::new();
    for tick in 1..=80 {
        single.step();
        cluster.step(false).unwrap();
        let world = single.world_mut();
        let owners = Owners::of(world, &USERS);
        let expected: BTreeMap<&str, (PlayerView, TickEvents)> = USERS
            .iter()
            .map(|u| {
                let events = sorted(player_events(world, &owners, u));
                (*u, (owners.view(world, u), events))
            })
            .collect();
        // Pieces arrive in any order: the later shard first.
        let pieces: Vec<_> = cluster
            .shards_mut()
            .iter_mut()
            .map(|node| shard_views(node, 1, 2))
            .collect();
        assert_eq!(
            merger.push(pieces[1].clone()),
            None,
            "tick {tick}: half a tick"
        );
        let merged = merger
            .push(pieces[0].clone())
            .expect("every shard's piece is in");
        assert_eq!(merged.tick, tick);
        for user in USERS {
            let player = &merged.players[user];
            let (view, events) = &expected[user];
            assert_eq!(&player.view, view, "tick {tick}: {user}'s view");
            assert_eq!(&player.events, events, "tick {tick}: {user}'s events");
            logs += events.logs.len();
            for &(ship, shard) in &player.ships {
                if holders_before
                    .insert(ship, shard)
                    .is_some_and(|s| s != shard)
                {
                    crossings += 1;
                }
                // An own ship sensing a ship of the other shard's sectors.
                let own_sector = player.view.view[&ship].sector;
                seen_across += player
                    .view
                    .view
                    .values()
                    .filter(|e| is_other_ship(e.kind) && (e.sector.0 >= 1) != (own_sector.0 >= 1))
                    .count();
            }
            assert!(player.view.view.values().any(|e| e.kind == KIND_OWN_SHIP));
        }
        // A repeat of a piece already merged changes nothing.
        assert_eq!(merger.push(pieces[0].clone()), None);
    }
    assert!(crossings > 0, "some ship changed shards");
    assert!(seen_across > 0, "some ship was seen across the border");
    assert!(logs > 0, "scripts' log lines reached their owners");
}

#[test]
fn a_merger_hands_out_each_tick_once_and_gives_up_on_lost_pieces() {
    use astroboids_cluster::live::{MAX_PENDING_TICKS, ShardViews};
    let piece = |epoch, tick, shard| ShardViews {
        epoch,
        tick,
        shard,
        shards: 2,
        part: 0,
        parts: 1,
        players: Vec::new(),
    };
    let mut merger = ViewMerger::default();
    // Tick 1 loses shard 1's piece; tick 2 completes and tick 1 is given up.
    assert!(merger.push(piece(1, 1, 0)).is_none());
    assert!(merger.push(piece(1, 2, 1)).is_none());
    assert_eq!(merger.push(piece(1, 2, 0)).map(|t| t.tick), Some(2));
    assert_eq!(merger.dropped(), 1);
    assert!(
        merger.push(piece(1, 1, 1)).is_none(),
        "tick 1 is behind the players"
    );
    // A recovery re-runs ticks 1..=3 under epoch 2: only tick 3 is new to the players.
    for tick in 1..=2 {
        assert!(merger.push(piece(2, tick, 0)).is_none());
        assert!(merger.push(piece(2, tick, 1)).is_none());
    }
    assert!(merger.push(piece(2, 3, 1)).is_none());
    let third = merger.push(piece(2, 3, 0)).unwrap();
    assert_eq!((third.epoch, third.tick), (2, 3));
    // Pieces of ticks that never complete are bounded.
    for tick in 10..10 + 3 * MAX_PENDING_TICKS as u64 {
        assert!(merger.push(piece(2, tick, 0)).is_none());
    }
    assert_eq!(merger.last_tick(), Some(3));
    assert_eq!(merger.dropped(), 1 + 2 * MAX_PENDING_TICKS as u64);
    // A piece claiming a shard outside its plan is ignored.
    assert!(merger.push(piece(2, 200, 5)).is_none());
}

#[test]
fn large_pieces_travel_in_parts_that_merge_whole() {
    use astroboids_cluster::live::{PlayerPiece, ShardViews, split_views};
    use astroboids_protocol::snapshot::ViewEntity;
    let piece = |user: &str, entities: u64| {
        let mut view = PlayerView::default();
        for id in 0..entities {
            view.insert(
                id,
                ViewEntity::quantize(KIND_SHIP, (0, 0), (1.0, 1.0), 0.0, 1.0),
                id,
            );
        }
        PlayerPiece {
            user: user.to_owned(),
            view,
            events: TickEvents::default(),
            ships: vec![1],
        }
    };
    let views = |shard| ShardViews {
        epoch: 1,
        tick: 4,
        shard,
        shards: 2,
        part: 0,
        parts: 1,
        players: (0..40).map(|i| piece(&format!("p{i}"), 20)).collect(),
    };
    let whole_size = postcard::to_allocvec(&views(0)).unwrap().len();
    let (parts, left_out) = split_views(views(0), whole_size / 3);
    assert_eq!(left_out, 0);
    assert!(parts.len() >= 3, "{} parts", parts.len());
    for part in &parts {
        assert!(postcard::to_allocvec(part).unwrap().len() <= whole_size / 3);
    }
    let mut merger = ViewMerger::default();
    let (other, _) = split_views(views(1), usize::MAX);
    assert!(merger.push(other[0].clone()).is_none());
    // The parts in reverse order; the tick completes with the last one.
    let count = parts.len();
    let mut merged = None;
    for (i, part) in parts.into_iter().rev().enumerate() {
        merged = merger.push(part);
        assert_eq!(merged.is_some(), i + 1 == count);
    }
    assert_eq!(merged.unwrap().players.len(), 40);
    // A piece too large for any message is left out, and counted.
    let (parts, left_out) = split_views(views(0), 200);
    assert_eq!(left_out, 40);
    assert!(parts.iter().all(|p| p.players.is_empty()));
}
