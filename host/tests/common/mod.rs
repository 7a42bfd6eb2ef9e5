//! A scripted scenario shared by the host tests: the same world inputs at the same ticks, run
//! persisted, resumed, recorded, or plainly.
#![allow(dead_code)]

use astroboids_engine::Simulation;
use astroboids_sim::checkpoint::CommandRecord;
use astroboids_sim::config::EMBEDDED_CONFIG_TOML;
use astroboids_sim::inputs::{WorldInput, apply_input};
use astroboids_sim::{SimOptions, UniverseConfig, build_simulation_with};

pub const SEED: u64 = 77;

/// The embedded configuration with a checkpoint every 20 ticks (so tests cross several).
pub fn config_toml() -> String {
    let toml = EMBEDDED_CONFIG_TOML.replace(
        "checkpoint_every_ticks = 100",
        "checkpoint_every_ticks = 20",
    );
    assert_ne!(
        toml, EMBEDDED_CONFIG_TOML,
        "the embedded config names checkpoint_every_ticks"
    );
    toml
}

pub fn config() -> UniverseConfig {
    UniverseConfig::from_toml_str(&config_toml(), "test config").unwrap()
}

/// Random turns at full thrust, mining, a tick counter in memory and a running sum of random
/// draws in a global, a log line every 5 ticks.
pub fn wanderer() -> Vec<u8> {
    let wat = r#"(module
        (import "astroboids" "random" (func $random (result i32)))
        (import "astroboids" "log" (func $log (param i32 i32)))
        (memory (export "memory") 1 16)
        (data (i32.const 200) "tick")
        (global $draws (mut i64) (i64.const 0))
        (func (export "astroboids_abi") (result i32) i32.const 1)
        (func (export "sensor_ptr") (result i32) i32.const 1024)
        (func (export "command_ptr") (result i32) i32.const 4096)
        (func (export "tick")
          (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
          (if (i32.eqz (i32.rem_u (i32.load (i32.const 0)) (i32.const 5)))
            (then (call $log (i32.const 200) (i32.const 4))))
          (global.set $draws (i64.add (global.get $draws) (i64.extend_i32_u (call $random))))
          (f32.store (i32.const 4096) (f32.const 1))
          (f32.store (i32.const 4100)
            (f32.sub
              (f32.div (f32.convert_i32_u (i32.and (call $random) (i32.const 255)))
                       (f32.const 128))
              (f32.const 1)))
          (i32.store (i32.const 4104) (i32.const 1))))"#;
    wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned()
}

pub fn script_id() -> u128 {
    xxhash_rust::xxh3::xxh3_128(&wanderer())
}

/// The inputs accepted before `tick` runs: a fleet (some scripted) at tick 1, then manual
/// commands every few ticks.
pub fn inputs_for(tick: u64) -> Vec<WorldInput> {
    if tick == 1 {
        return vec![
            WorldInput::AddScript { wasm: wanderer() },
            WorldInput::SpawnFleet {
                count: 50,
                script: None,
            },
            WorldInput::SpawnFleet {
                count: 30,
                script: Some(script_id()),
            },
        ];
    }
    if tick % 7 == 3 {
        let ship = 1 + (tick * 13) % 80;
        let brake = CommandRecord {
            thrust: 0.0,
            turn: 0.5,
            mine: false,
            stop: true,
        };
        return vec![WorldInput::Command {
            ship,
            command: brake,
        }];
    }
    Vec::new()
}

/// The state hash after each tick `1..=ticks` of the scenario, run without persistence.
pub fn reference_hashes(ticks: u64) -> Vec<u64> {
    let mut sim = build_simulation_with(config(), SEED, options());
    (1..=ticks)
        .map(|tick| {
            step_with_inputs(&mut sim, tick);
            sim.state_hash().total
        })
        .collect()
}

pub fn step_with_inputs(sim: &mut Simulation, tick: u64) {
    assert_eq!(sim.tick() + 1, tick);
    for input in inputs_for(tick) {
        apply_input(sim.world_mut(), &input).unwrap();
    }
    sim.step();
}

pub fn options() -> SimOptions {
    SimOptions {
        script_workers: 2,
        script_artifacts: None,
    }
}
