//! Full ticks (streaming, sensors, autopilot, mining, movement, physics, damage) at 1k, 10k
//! and 100k autopilot ships, no scripts.
//!
//! Every sample times the same stretch of a world's life: ticks 31 to 40 of a fresh fleet
//! (sectors loaded, ships busy mining and colliding), so the sizes are compared on the same
//! work per ship. Timing whatever tick a long benchmark run had reached instead would compare
//! a small fleet hundreds of ticks on (most holds full, ships wandering) with a large one a few
//! dozen ticks in. Building the world is not timed.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

use astroboids_engine::Simulation;
use astroboids_sim::build_simulation;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::spawn::spawn_fleet;

const WARMUP_TICKS: u64 = 30;
/// Ticks per sample; the reported time is for all of them.
const TIMED_TICKS: u64 = 10;

fn warmed_up(ships: u32) -> Simulation {
    let mut sim = build_simulation(UniverseConfig::default(), 1);
    spawn_fleet(sim.world_mut(), ships).expect("fleet");
    sim.run_ticks(WARMUP_TICKS);
    sim
}

fn tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("ten_ticks");
    group.sample_size(10);
    for ships in [1_000u32, 10_000, 100_000] {
        group.bench_function(format!("{ships}_ships"), |b| {
            b.iter_batched(
                || warmed_up(ships),
                |mut sim| {
                    sim.run_ticks(TIMED_TICKS);
                    sim
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, tick);
criterion_main!(benches);
