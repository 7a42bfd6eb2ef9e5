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

/// Steers towards its nearest contact (turning by the sign of its dy), mines, and sums the
/// ids it has seen into its memory: its commands and its memory depend on every contact it is
/// given, neighbours' ships across a shard border included.
fn chaser() -> Vec<u8> {
    let contact = SENSOR_PTR + 64;
    WatBot::new()
        .tick(format!(
            "(if (i32.gt_u (i32.load (i32.const {count})) (i32.const 0))
               (then
                 (f32.store (i32.const {COMMAND_PTR}) (f32.const 1))
                 (f32.store (i32.const {turn})
                   (f32.copysign (f32.const 1) (f32.load (i32.const {dy}))))
                 (i32.store (i32.const {flags}) (i32.const 1))
                 (i64.store (i32.const 8192)
                   (i64.add (i64.load (i32.const 8192)) (i64.load (i32.const {id}))))))",
            count = SENSOR_PTR + 60,
            turn = COMMAND_PTR + 4,
            flags = COMMAND_PTR + 8,
            dy = contact + 20,
            id = contact + 8,
        ))
        .wasm()
}

/// A world of `ships` autopilot ships and `scripted` chasers, spawned before the first tick.
fn setup(ships: u32, scripted: u32) -> Vec<WorldInput> {
    let wasm = chaser();
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
    let mut sim = build_simulation_with(config.clone(), SEED, options());
    for input in inputs {
        apply_input(sim.world_mut(), input).expect("setup input accepted");
    }
    (1..=ticks)
        .map(|tick| {
            sim.step();
            if tick == ticks {
                sim.world_mut().state_hash()
            } else {
                sim.world_mut().quick_state_hash()
            }
        })
        .collect()
}

fn cluster(
    config: &UniverseConfig,
    inputs: &[WorldInput],
    ticks: u64,
    assignment: SectorAssignment,
) -> (Vec<StateHash>, u64) {
    let mut cluster = LocalCluster::new(config.clone(), SEED, assignment, options);
    for input in inputs {
        cluster.submit(input.clone()).unwrap();
    }
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

#[test]
fn shards_give_the_single_process_hash_tick_for_tick() {
    let config = UniverseConfig::default();
    let (ships, scripted, ticks) = (3_000, 300, 500);
    let inputs = setup(ships, scripted);
    let expected = single_process(&config, &inputs, ticks);
    for assignment in [
        SectorAssignment::Stripes {
            shards: 1,
            width: 1,
        },
        SectorAssignment::Stripes {
            shards: 2,
            width: 1,
        },
        SectorAssignment::Blocks { shards: 2, side: 2 },
        SectorAssignment::Stripes {
            shards: 3,
            width: 2,
        },
        SectorAssignment::Blocks { shards: 3, side: 1 },
        SectorAssignment::Blocks { shards: 4, side: 1 },
        SectorAssignment::Stripes {
            shards: 4,
            width: 3,
        },
    ] {
        let (hashes, handoffs) = cluster(&config, &inputs, ticks, assignment);
        assert_same(&expected, &hashes, &assignment.to_string());
        if assignment.shards() > 1 {
            assert!(handoffs > 100, "{assignment}: ships crossed shard borders ({handoffs})");
        }
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
