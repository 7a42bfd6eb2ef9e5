//! One full tick (streaming, sensors, autopilot, mining, movement, physics, damage) at 1k, 10k
//! and 100k autopilot ships, no scripts. The world is warmed up first so sectors are loaded and
//! ships are busy mining and colliding: this is the steady state, not the first tick.

use criterion::{Criterion, criterion_group, criterion_main};

use astroboids_sim::build_simulation;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::spawn::spawn_fleet;

const WARMUP_TICKS: u64 = 30;

fn tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick");
    group.sample_size(10);
    for ships in [1_000u32, 10_000, 100_000] {
        let mut sim = build_simulation(UniverseConfig::default(), 1);
        spawn_fleet(sim.world_mut(), ships).expect("fleet");
        sim.run_ticks(WARMUP_TICKS);
        group.bench_function(format!("{ships}_ships"), |b| b.iter(|| sim.step()));
    }
    group.finish();
}

criterion_group!(benches, tick);
criterion_main!(benches);
