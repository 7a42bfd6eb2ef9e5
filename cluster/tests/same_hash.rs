//! The cluster's promise: the same seed and inputs give the same state hash, tick for tick,
//! whether the world runs in one process or spread over shards, under any sector assignment.

use astroboids_cluster::SectorAssignment;
use astroboids_cluster::local::LocalCluster;
use astroboids_engine::{StateHash, StateHashExt};
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::{WorldInput, apply_input};
use astroboids_sim::{SimOptions, build_simulation_with};
use astroboids_test_kit::{COMMAND_PTR, SENSOR_PTR, WatBot};

const SEED: u64 = 77;

/// A world of `ships` autopilot ships and `scripted` chasers, spawned before the first tick.
fn setup(ships: u32, scripted: u32) -> Vec<WorldInput> {
    let wasm = WatBot::chaser().wasm();
    let script = astroboids_scripting::module_hash(&wasm);
    vec![
        WorldInput::AddScript { wasm },
        WorldInput::SpawnFleet {
            count: ships - scripted,
            script: None,
        },
        WorldInput::SpawnFleet {
            count: scripted,
            script: Some(script),
        },
    ]
}

fn options() -> SimOptions {
    SimOptions {
        script_workers: 2,
        ..SimOptions::default()
    }
}

/// Per-tick cheap hashes of the world in one process (the full hash at the last tick).
fn single_process(config: &UniverseConfig, inputs: &[WorldInput], ticks: u64) -> Vec<StateHash> {
    let scheduled: Vec<(u64, WorldInput)> = inputs.iter().map(|i| (1, i.clone())).collect();
    single_process_with(config, &scheduled, ticks)
}

/// [`single_process`] with each input applied before the tick it names.
fn single_process_with(
    config: &UniverseConfig,
    inputs: &[(u64, WorldInput)],
    ticks: u64,
) -> Vec<StateHash> {
    let mut sim = build_simulation_with(config.clone(), SEED, options());
    (1..=ticks)
        .map(|tick| {
            for (_, input) in inputs.iter().filter(|(at, _)| *at == tick) {
                apply_input(sim.world_mut(), input).expect("input accepted");
            }
            sim.step();
            if tick == ticks {
                sim.world_mut().state_hash()
            } else {
                sim.world_mut().quick_state_hash()
            }
        })
        .collect()
}

/// A fresh cluster under `assignment` with `inputs` queued for its first tick.
fn started(
    config: &UniverseConfig,
    assignment: SectorAssignment,
    inputs: &[WorldInput],
) -> LocalCluster {
    let mut cluster = LocalCluster::new(config.clone(), SEED, assignment, options);
    for input in inputs {
        cluster.submit(input.clone()).unwrap();
    }
    cluster
}

fn cluster(
    config: &UniverseConfig,
    inputs: &[WorldInput],
    ticks: u64,
    assignment: SectorAssignment,
) -> (Vec<StateHash>, u64) {
    let mut cluster = started(config, assignment, inputs);
    let mut handoffs = 0u64;
    let hashes = (1..=ticks)
        .map(|tick| {
            let outcome = cluster.step(tick == ticks).expect("tick runs");
            if tick == 1 {
                assert!(
                    outcome.verdicts.iter().all(Result::is_ok),
                    "{:?}",
                    outcome.verdicts
                );
            }
            handoffs += outcome
                .shards
                .iter()
                .map(|s| u64::from(s.2.handoffs_out))
                .sum::<u64>();
            outcome.hash
        })
        .collect();
    (hashes, handoffs)
}

fn assert_same(expected: &[StateHash], got: &[StateHash], what: &str) {
    for (tick, (e, g)) in expected.iter().zip(got).enumerate() {
        assert_eq!(
            e,
            g,
            "{what}: first divergence at tick {} in parts {:?}",
            tick + 1,
            e.differing_parts(g)
        );
    }
    assert_eq!(expected.len(), got.len());
}

/// The in-process reference on two layouts; the same world on 1 to 4 shards under two
/// assignments, over real nats-server and etcd, is cluster-net's
/// `three_thousand_ships_on_one_to_four_shards_under_two_assignments`.
#[test]
fn shards_give_the_single_process_hash_tick_for_tick() {
    let config = UniverseConfig::default();
    let (ships, scripted, ticks) = (3_000, 300, 500);
    let inputs = setup(ships, scripted);
    let expected = single_process(&config, &inputs, ticks);
    for assignment in [
        SectorAssignment::Stripes {
            shards: 3,
            width: 2,
        },
        SectorAssignment::Blocks { shards: 4, side: 1 },
    ] {
        let (hashes, handoffs) = cluster(&config, &inputs, ticks, assignment);
        assert_same(&expected, &hashes, &assignment.to_string());
        assert!(
            handoffs > 100,
            "{assignment}: ships crossed shard borders ({handoffs})"
        );
    }
}

#[test]
fn a_small_world_across_a_checkpoint_tick_on_two_and_three_shards() {
    let config = UniverseConfig::default();
    let inputs = setup(400, 100);
    let ticks = config.persistence.checkpoint_every_ticks + 20;
    let expected = single_process(&config, &inputs, ticks);
    for assignment in [
        SectorAssignment::Stripes {
            shards: 2,
            width: 1,
        },
        SectorAssignment::Blocks { shards: 3, side: 1 },
    ] {
        let (hashes, _) = cluster(&config, &inputs, ticks, assignment);
        assert_same(&expected, &hashes, &assignment.to_string());
    }
}

#[test]
fn moving_sectors_between_shards_at_a_checkpoint_changes_no_result() {
    let config = UniverseConfig::default();
    let inputs = setup(600, 150);
    let every = config.persistence.checkpoint_every_ticks;
    let ticks = every + 40;
    let expected = single_process(&config, &inputs, ticks);

    let before = SectorAssignment::Stripes {
        shards: 2,
        width: 1,
    };
    let mut cluster = started(&config, before, &inputs);
    let mut hashes = Vec::new();
    for _ in 1..=every {
        hashes.push(cluster.step(false).unwrap().hash);
    }
    let pieces = cluster.capture();
    let world = astroboids_cluster::checkpoint::merge(&pieces).unwrap();
    assert_eq!(world.ships.len(), 600);
    drop(cluster);

    // Three shards in blocks now: every sector may have moved.
    let after = SectorAssignment::Blocks { shards: 3, side: 1 };
    let mut cluster = LocalCluster::restore(&config, &world, after, 2, options).unwrap();
    for tick in every + 1..=ticks {
        hashes.push(cluster.step(tick == ticks).unwrap().hash);
    }
    assert_same(
        &expected,
        &hashes,
        "2 stripes, then 3 blocks from the checkpoint",
    );
}

/// A shard process stores its piece beside the ticks that follow the checkpoint: the piece it
/// finishes later is the one of the checkpoint tick, script states included.
/// A shard process serializes all its pieces through one scratch buffer: what it stores is
/// what a fresh encoding gives, whatever the buffer held before (a larger or smaller piece).
#[test]
fn a_piece_encoded_through_a_used_buffer_is_a_fresh_encoding() {
    use astroboids_cluster::checkpoint::{decode_piece, encode_piece, encode_piece_reusing};
    let config = UniverseConfig::default();
    let inputs = setup(400, 100);
    let assignment = SectorAssignment::Stripes {
        shards: 2,
        width: 1,
    };
    let mut cluster = started(&config, assignment, &inputs);
    for _ in 0..3 {
        cluster.step(false).unwrap();
    }
    let pieces = cluster.capture();
    let mut scratch = vec![7u8; 1 << 20];
    for piece in pieces.iter().chain(pieces.iter().rev()) {
        let stored = encode_piece_reusing(piece, &mut scratch);
        assert_eq!(stored, encode_piece(piece));
        assert_eq!(&decode_piece("piece", &stored).unwrap(), piece);
    }
}

#[test]
fn a_piece_finished_after_its_shard_ran_on_is_the_piece_of_its_tick() {
    let config = UniverseConfig::default();
    let inputs = setup(400, 100);
    let every = config.persistence.checkpoint_every_ticks;
    let assignment = SectorAssignment::Stripes {
        shards: 2,
        width: 1,
    };
    let (mut deferred, mut at_once) = (
        started(&config, assignment, &inputs),
        started(&config, assignment, &inputs),
    );
    for _ in 1..=every {
        deferred.step(false).unwrap();
        at_once.step(false).unwrap();
    }
    let pending: Vec<_> = deferred
        .shards_mut()
        .iter_mut()
        .map(astroboids_cluster::checkpoint::capture_later)
        .collect();
    for _ in 0..5 {
        deferred.step(false).unwrap();
    }
    let finished: Vec<_> = pending.into_iter().map(|p| p.finish()).collect();
    let expected = at_once.capture();
    assert_eq!(finished.len(), 2);
    assert!(finished.iter().all(|p| p.world.tick == every));
    let scripted = |pieces: &[astroboids_cluster::checkpoint::ShardCheckpoint]| {
        pieces
            .iter()
            .flat_map(|p| &p.world.ships)
            .filter(|s| s.script.is_some())
            .count()
    };
    assert_eq!(scripted(&finished), 100);
    assert!(
        finished == expected,
        "the finished pieces differ from a capture at their tick"
    );
    // ... while the shards ran on: their pieces now are of another tick and other states.
    let now = deferred.capture();
    assert!(now.iter().all(|p| p.world.tick == every + 5));
    let memories = |pieces: &[astroboids_cluster::checkpoint::ShardCheckpoint]| {
        let mut scripts: Vec<_> = pieces
            .iter()
            .flat_map(|p| &p.world.ships)
            .filter_map(|s| Some((s.id, s.script.as_ref()?.memory.clone())))
            .collect();
        scripts.sort_by_key(|(id, _)| *id);
        scripts
    };
    assert_ne!(memories(&finished), memories(&now));
}

/// Turns towards +x while in sector x = 0 and towards -x elsewhere, at full thrust: it
/// crosses the border between sectors 0 and 1 (or -1 and 0) again and again.
fn border_bouncer() -> Vec<u8> {
    WatBot::new()
        .tick(format!(
            "(local $heading f32)
             (local.set $heading (f32.load (i32.const {heading})))
             (f32.store (i32.const {COMMAND_PTR}) (f32.const 1))
             (f32.store (i32.const {turn})
               (if (result f32) (i32.eqz (i32.load (i32.const {sector_x})))
                 (then (f32.neg (f32.copysign (f32.const 1) (local.get $heading))))
                 (else (f32.copysign (f32.const 1) (local.get $heading)))))",
            heading = SENSOR_PTR + 40,
            sector_x = SENSOR_PTR + 16,
            turn = COMMAND_PTR + 4,
        ))
        .wasm()
}

#[test]
fn a_ship_bouncing_across_a_shard_border_is_never_lost_or_duplicated() {
    let config = UniverseConfig::default();
    let wasm = border_bouncer();
    let script = astroboids_scripting::module_hash(&wasm);
    let size = config.simulation.sector_size;
    let inputs = vec![
        WorldInput::AddScript { wasm },
        WorldInput::SpawnShip {
            sector: (0, 0),
            local: (size - 5.0, size / 2.0),
            heading: 0.0,
            autopilot: false,
            owner: None,
        },
        WorldInput::AssignScript { ship: 1, script },
    ];
    let ticks = 400;
    let expected = single_process(&config, &inputs, ticks);
    let assignment = SectorAssignment::Stripes {
        shards: 2,
        width: 1,
    };
    let mut cluster = started(&config, assignment, &inputs);
    let mut hashes = Vec::new();
    let mut crossings = 0;
    for tick in 1..=ticks {
        let outcome = cluster.step(tick == ticks).unwrap();
        let holders: Vec<u64> = outcome.shards.iter().map(|s| s.1).collect();
        assert_eq!(outcome.ships, 1, "tick {tick}: one ship in the world");
        assert_eq!(
            holders.iter().filter(|&&n| n == 1).count(),
            1,
            "tick {tick}: exactly one shard holds it ({holders:?})"
        );
        crossings += outcome.shards.iter().map(|s| s.2.handoffs_out).sum::<u32>();
        hashes.push(outcome.hash);
    }
    assert!(crossings >= 6, "it bounced ({crossings} handoffs)");
    assert_same(&expected, &hashes, "the bouncing ship");
}

#[test]
fn a_lost_shard_is_recovered_from_the_last_checkpoint_and_the_logged_inputs() {
    let config = UniverseConfig::default();
    let inputs = setup(500, 100);
    let every = config.persistence.checkpoint_every_ticks;
    let lost_at = every + 30;
    let ticks = every + 60;
    // An input after the checkpoint: the re-run must apply it at the same tick.
    let late = WorldInput::SpawnShip {
        sector: (0, 0),
        local: (500.0, 500.0),
        heading: 1.0,
        autopilot: true,
        owner: Some("late".into()),
    };
    let mut scheduled: Vec<(u64, WorldInput)> = inputs.iter().map(|i| (1, i.clone())).collect();
    scheduled.push((every + 11, late.clone()));
    let expected = single_process_with(&config, &scheduled, ticks);

    let three = SectorAssignment::Stripes {
        shards: 3,
        width: 1,
    };
    let mut cluster = started(&config, three, &inputs);
    let mut hashes = Vec::new();
    let mut stored = None;
    for tick in 1..=lost_at {
        hashes.push(cluster.step(false).unwrap().hash);
        if tick == every {
            stored = Some(astroboids_cluster::checkpoint::merge(&cluster.capture()).unwrap());
            cluster.checkpoint_complete(tick);
        }
        if tick == every + 10 {
            cluster.submit(late.clone()).unwrap();
        }
    }
    assert_same(&expected[..lost_at as usize], &hashes, "before the loss");

    // Shard 1 dies. The survivors take its sectors: two shards now, back at the checkpoint,
    // re-running ticks 101..=130 with the logged inputs, then on to new ticks.
    cluster.lose_shard(1);
    let two = SectorAssignment::Stripes {
        shards: 2,
        width: 1,
    };
    cluster
        .recover(&config, stored.as_ref().unwrap(), two, 2, options)
        .unwrap();
    let mut rerun = Vec::new();
    for tick in every + 1..=ticks {
        rerun.push(cluster.step(tick == ticks).unwrap().hash);
    }
    assert_same(
        &expected[every as usize..],
        &rerun,
        "re-run after losing shard 1",
    );
}

#[test]
fn each_input_is_judged_by_the_shard_holding_its_ship() {
    let config = UniverseConfig::default();
    let wasm = WatBot::chaser().wasm();
    let script = astroboids_scripting::module_hash(&wasm);
    let assignment = SectorAssignment::Stripes {
        shards: 2,
        width: 1,
    };
    let mut cluster = LocalCluster::new(config, SEED, assignment, options);
    let spawn = |x| WorldInput::SpawnShip {
        sector: (x, 0),
        local: (500.0, 500.0),
        heading: 0.0,
        autopilot: false,
        owner: None,
    };
    let inputs = [
        WorldInput::AddScript { wasm },
        spawn(0),
        spawn(1),
        WorldInput::AssignScript { ship: 1, script },
        WorldInput::AssignScript { ship: 2, script },
        WorldInput::AssignScript { ship: 99, script },
        WorldInput::SetOwner {
            ship: 2,
            owner: Some("not a valid name!".into()),
        },
    ];
    for input in inputs {
        cluster.submit(input).unwrap();
    }
    let outcome = cluster.step(false).unwrap();
    assert_eq!(outcome.ships, 2);
    let holders: Vec<u64> = outcome.shards.iter().map(|s| s.1).collect();
    assert_eq!(holders, vec![1, 1], "one ship on each shard");
    let verdicts = outcome.verdicts;
    // Spawns answer with the ids they made (every shard allocates them alike), so that a
    // gateway can tell the player which ship is theirs.
    let none = Vec::new;
    assert_eq!(
        verdicts[..5],
        [Ok(none()), Ok(vec![1]), Ok(vec![2]), Ok(none()), Ok(none())]
    );
    assert_eq!(outcome.positions, (1..=7).collect::<Vec<u64>>());
    assert_eq!(verdicts[5], Err("no ship #99".to_string()));
    assert!(
        verdicts[6]
            .as_ref()
            .is_err_and(|e| e.contains("account name")),
        "{:?}",
        verdicts[6]
    );
}
