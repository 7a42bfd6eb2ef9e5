//! The sensor pass at 10k ships: grid build plus every ship's query, on 1 and on 2 threads.

use criterion::{Criterion, criterion_group, criterion_main};
use rayon::prelude::*;

use astroboids_engine::NetId;
use astroboids_sim::build_simulation;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::sectors::Sectors;
use astroboids_sim::sensors::build_grid;
use astroboids_sim::ships::Velocity;
use astroboids_sim::space::SpacePos;
use astroboids_sim::spawn::spawn_fleet;

fn sensors(c: &mut Criterion) {
    let config = UniverseConfig::default();
    let mut sim = build_simulation(config.clone(), 1);
    spawn_fleet(sim.world_mut(), 10_000).expect("fleet");
    sim.run_ticks(20);
    let world = sim.world_mut();
    let mut q = world.query::<(&NetId, &SpacePos, &Velocity)>();
    let ships: Vec<(NetId, SpacePos, astroboids_sim::space::Vec2)> =
        q.iter(world).map(|(id, p, v)| (*id, *p, v.0)).collect();
    let sectors = world.resource::<Sectors>();
    let limit = config.limits.max_contacts as usize;
    let range = config.sensors.range;

    let mut group = c.benchmark_group("sensor_pass");
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        group.bench_function(format!("10k_ships_{threads}_threads"), |b| {
            b.iter(|| {
                pool.install(|| {
                    let grid = build_grid(&config, sectors, ships.iter().copied());
                    ships
                        .par_iter()
                        .map(|(id, pos, _)| grid.sense(pos, range, Some(*id), limit).len())
                        .sum::<usize>()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sensors);
criterion_main!(benches);
