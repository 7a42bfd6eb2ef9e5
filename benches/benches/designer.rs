//! The designer loop: a map of 200 x 200 sectors (generate, summarize, draw,
//! encode the PNG: everything `astroboids sectors render` does after reading the config) and
//! statistics over 1,000 x 1,000 sectors. Goal: edit -> new image under 2 s for 200 x 200.
//!
//! Run: `cargo bench -p astroboids-benches --bench designer`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use astroboids_designer::render::{png_bytes, render};
use astroboids_designer::{Coord, MapSource, MapStyle, Region, RegionStats, RegionSummary, Shade};
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::sectors::SectorGenerator;

fn region(side: i32) -> Region {
    let half = side / 2;
    Region::new(
        Coord(astroboids_sim::space::SectorCoord::new(-half, -half)),
        Coord(astroboids_sim::space::SectorCoord::new(half - 1, half - 1)),
    )
    .expect("a valid region")
}

fn bench(c: &mut Criterion) {
    let config = UniverseConfig::default();
    let size = config.simulation.sector_size;
    let mut group = c.benchmark_group("designer");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("render 200x200 (config to PNG bytes)", |b| {
        b.iter(|| {
            let generator = SectorGenerator::new(&config, 1);
            let summary = RegionSummary::generate(&generator, size, region(200), &|_| {});
            let style = MapStyle::auto(&[&summary], Shade::Ore);
            let map = MapSource {
                summary: &summary,
                generator: &generator,
                caption: String::new(),
            };
            let image = render(&[map], &style, "bench").expect("renders");
            black_box(png_bytes(&image).expect("encodes"))
        })
    });
    group.bench_function("stats 1000x1000 (config to table)", |b| {
        b.iter(|| {
            let generator = SectorGenerator::new(&config, 1);
            let summary = RegionSummary::generate(&generator, size, region(1000), &|_| {});
            black_box(RegionStats::of(&summary).table())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
