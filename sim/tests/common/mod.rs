//! Helpers shared by the integration tests.
#![allow(dead_code)]

use astroboids_engine::{NetId, Simulation};
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::spawn::spawn_fleet;
use astroboids_sim::{SimTotals, build_simulation};
use astroboids_test_kit::WatBot;

/// A world with `ships` autopilot ships.
pub fn fleet_world(config: UniverseConfig, seed: u64, ships: u32) -> (Simulation, Vec<NetId>) {
    let mut sim = build_simulation(config, seed);
    let ids = spawn_fleet(sim.world_mut(), ships).expect("fleet fits the limits");
    (sim, ids)
}

/// Runs `ticks` ticks and returns the state hash after each one.
pub fn hashes(sim: &mut Simulation, ticks: u64) -> Vec<u64> {
    (0..ticks)
        .map(|_| {
            sim.step();
            sim.state_hash().total
        })
        .collect()
}

/// Runs `f` on a rayon pool with `threads` workers.
pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
        .install(f)
}

pub fn totals(sim: &Simulation) -> SimTotals {
    sim.world().resource::<SimTotals>().clone()
}

/// A universe with nothing in it: no asteroids, nebulae or hazards.
pub fn empty_universe() -> UniverseConfig {
    let mut config = UniverseConfig::default();
    config.generation.max_asteroids_per_sector = 0;
    config.generation.max_nebulae_per_sector = 0;
    config.generation.hazard_chance = 0.0;
    config
}

/// A script module: imports `astroboids.random` and `astroboids.log`, "hello" at address 200,
/// sensor block at 1024 (the tick number is its first 8 bytes), command block at 4096;
/// `extra` adds fields, `tick` is the tick body.
pub fn script(extra: &str, tick: &str) -> Vec<u8> {
    WatBot::new()
        .import_random()
        .import_log()
        .field(r#"(data (i32.const 200) "hello")"#)
        .field(extra)
        .tick(tick)
        .wasm()
}
