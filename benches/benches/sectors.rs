//! Sector generation on one core: sectors per second for a 32 x 32 region, near the origin
//! and far from it.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use astroboids_sim::config::UniverseConfig;
use astroboids_sim::sectors::SectorGenerator;
use astroboids_sim::space::SectorCoord;

fn generate(c: &mut Criterion) {
    let generator = SectorGenerator::new(&UniverseConfig::default(), 42);
    let mut group = c.benchmark_group("sector_generation");
    group.throughput(Throughput::Elements(32 * 32));
    for (name, base) in [("origin", (0, 0)), ("far", (1_000_000, -1_000_000))] {
        group.bench_function(format!("32x32_{name}"), |b| {
            b.iter(|| {
                let mut asteroids = 0usize;
                for x in 0..32 {
                    for y in 0..32 {
                        let s = generator.generate(SectorCoord::new(base.0 + x, base.1 + y));
                        asteroids += s.asteroids.len();
                    }
                }
                asteroids
            })
        });
    }
    group.finish();
}

criterion_group!(benches, generate);
criterion_main!(benches);
