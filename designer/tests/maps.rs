//! What designers read off the tools: statistics that agree with the generated sectors, and
//! maps that put each sector's ore, nebulae and hazards where they are.

use astroboids_designer::render::{
    DETAIL_PIXELS_PER_SECTOR, HAZARD, SPACE, TEXT, map_origins, png_bytes, render,
};
use astroboids_designer::{Coord, MapSource, MapStyle, Region, RegionStats, RegionSummary, Shade};
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::sectors::SectorGenerator;
use astroboids_sim::space::Vec2;

fn region(from: &str, to: &str) -> Region {
    Region::new(from.parse::<Coord>().unwrap(), to.parse().unwrap()).unwrap()
}

struct World {
    config: UniverseConfig,
    generator: SectorGenerator,
}

fn world() -> World {
    let config = UniverseConfig::default();
    let generator = SectorGenerator::new(&config, 1);
    World { config, generator }
}

impl World {
    /// One map of `summary`, as `render` takes it.
    fn map_of<'a>(&'a self, summary: &'a RegionSummary) -> [MapSource<'a>; 1] {
        [MapSource {
            summary,
            generator: &self.generator,
            caption: String::new(),
        }]
    }

    fn summary(&self, region: Region) -> RegionSummary {
        RegionSummary::generate(
            &self.generator,
            self.config.simulation.sector_size,
            region,
            &|_| {},
        )
    }
}

#[test]
fn statistics_agree_with_the_generated_sectors() {
    let w = world();
    let region = region("-10,-10", "9,9");
    let progress = std::sync::atomic::AtomicU64::new(0);
    let summary = RegionSummary::generate(
        &w.generator,
        w.config.simulation.sector_size,
        region,
        &|n| {
            progress.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        },
    );
    assert_eq!(progress.into_inner(), 400, "progress covers every sector");
    let stats = RegionStats::of(&summary);
    let (mut asteroids, mut ore, mut empty, mut hazards, mut nebulae) = (0, 0, 0, 0, 0);
    let mut counts = Vec::new();
    for row in 0..region.height() {
        for column in 0..region.width() {
            let s = w.generator.generate(region.at(column, row));
            asteroids += s.asteroids.len() as u64;
            ore += s.total_ore();
            empty += usize::from(s.asteroids.is_empty());
            hazards += usize::from(!s.hazards.is_empty());
            nebulae += usize::from(!s.nebulae.is_empty());
            counts.push(s.asteroids.len());
        }
    }
    counts.sort_unstable();
    assert_eq!(stats.sectors, 400);
    assert_eq!(stats.total_asteroids, asteroids);
    assert_eq!(stats.total_ore, ore);
    assert_eq!(stats.empty_share, empty as f64 / 400.0);
    assert_eq!(stats.hazard_share, hazards as f64 / 400.0);
    assert_eq!(stats.nebula_sector_share, nebulae as f64 / 400.0);
    assert_eq!(stats.asteroids_per_sector.p50, counts[199] as f64);
    assert_eq!(stats.asteroids_per_sector.max, counts[399] as f64);
    assert!(stats.nebula_area_share > 0.0 && stats.nebula_area_share < stats.nebula_sector_share);
    assert!(
        stats.empty_share > 0.0 && stats.empty_share < 1.0,
        "a varied region"
    );
}

/// The first sector of `summary` (column, row) that `wanted` picks.
fn find(
    summary: &RegionSummary,
    wanted: impl Fn(&astroboids_designer::region::SectorSummary) -> bool,
) -> (u32, u32) {
    let r = summary.region;
    (0..r.height())
        .flat_map(|row| (0..r.width()).map(move |column| (column, row)))
        .find(|&(c, row)| wanted(summary.get(c, row)))
        .expect("the region has such a sector")
}

#[test]
fn a_map_shows_ore_nebulae_hazards_and_empty_space_where_they_are() {
    let w = world();
    let summary = w.summary(region("-20,-20", "19,19"));
    let style = MapStyle {
        pixels_per_sector: 8,
        shade: Shade::Ore,
        ore_scale: 10_000,
        asteroid_scale: 20,
    };
    let maps = w.map_of(&summary);
    let image = render(&maps, &style, "test map").unwrap();
    let (left, top) = map_origins(&maps, 8)[0];
    let pixel = |(column, row): (u32, u32), dx: u32, dy: u32| {
        image
            .get_pixel(left + column * 8 + dx, top + row * 8 + dy)
            .0
    };
    let empty = find(&summary, |s| {
        s.asteroids == 0 && s.nebula_coverage == 0.0 && s.hazards == 0
    });
    assert_eq!(pixel(empty, 4, 4), SPACE);
    let hazard = find(&summary, |s| s.hazards > 0);
    assert_eq!(pixel(hazard, 4, 7), HAZARD, "a hazard outlines its sector");
    let rich = find(&summary, |s| s.ore > 8_000 && s.nebula_coverage == 0.0);
    let [r, g, b] = pixel(rich, 4, 4);
    assert!(
        r > 150 && r > b + 80 && g > b,
        "rich sectors glow amber: {r},{g},{b}"
    );
    let cloudy = find(&summary, |s| s.nebula_coverage > 0.0 && s.ore == 0);
    let [r, _, b] = pixel(cloudy, 4, 4);
    assert!(b > r + 30, "nebulae tint purple: {r},{b}");
    // The legend and title are drawn (text pixels below the map and above it).
    let map_bottom = top + summary.region.height() * 8;
    let has_text = |rows: std::ops::Range<u32>| {
        rows.flat_map(|y| (0..image.width()).map(move |x| (x, y)))
            .any(|(x, y)| image.get_pixel(x, y).0 == TEXT)
    };
    assert!(has_text(0..top), "title");
    assert!(has_text(map_bottom..image.height()), "legend");
    // A valid PNG of the same size.
    let png = png_bytes(&image).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

#[test]
fn zoomed_in_each_asteroid_is_drawn_where_it_lies() {
    let w = world();
    let summary = w.summary(region("0,0", "3,3"));
    let pps = 128;
    assert!(pps >= DETAIL_PIXELS_PER_SECTOR);
    let style = MapStyle {
        pixels_per_sector: pps,
        shade: Shade::Ore,
        ore_scale: 10_000,
        asteroid_scale: 20,
    };
    let maps = w.map_of(&summary);
    let image = render(&maps, &style, "zoomed").unwrap();
    let (left, top) = map_origins(&maps, pps)[0];
    let size = w.config.simulation.sector_size;
    let (column, row) = find(&summary, |s| s.asteroids > 0 && s.nebula_coverage == 0.0);
    let contents = w.generator.generate(summary.region.at(column, row));
    let to_pixel = |p: Vec2| {
        (
            left + column * pps + (p.x / size * pps as f32) as u32,
            top + row * pps + (p.y / size * pps as f32) as u32,
        )
    };
    let rock = &contents.asteroids[0];
    let (x, y) = to_pixel(rock.local);
    assert_ne!(
        image.get_pixel(x, y).0,
        SPACE,
        "asteroid at {:?}",
        rock.local
    );
    // A point of that sector far from every feature is empty space.
    let clear = (1..16)
        .flat_map(|i| {
            (1..16).map(move |j| Vec2::new(i as f32 * size / 16.0, j as f32 * size / 16.0))
        })
        .find(|p| {
            let far = |c: Vec2, r: f32| (*p - c).length() > r + size / pps as f32 * 2.0;
            contents.asteroids.iter().all(|a| far(a.local, a.radius))
                && contents.hazards.iter().all(|z| far(z.local, z.radius))
        })
        .expect("a clear point");
    let (x, y) = to_pixel(clear);
    assert_eq!(image.get_pixel(x, y).0, SPACE);
}

#[test]
fn two_maps_go_side_by_side_and_oversized_maps_are_refused() {
    let w = world();
    let a = w.summary(region("0,0", "29,19"));
    let other = SectorGenerator::new(&w.config, 2);
    let b = RegionSummary::generate(&other, 1000.0, a.region, &|_| {});
    let style = MapStyle::auto(&[&a, &b], Shade::Ore);
    let maps = [
        MapSource {
            summary: &a,
            generator: &w.generator,
            caption: "A: seed 1".into(),
        },
        MapSource {
            summary: &b,
            generator: &other,
            caption: "B: seed 2".into(),
        },
    ];
    let image = render(&maps, &style, "compare").unwrap();
    let origins = map_origins(&maps, style.pixels_per_sector);
    assert_eq!(origins[0].1, origins[1].1, "side by side");
    assert!(origins[1].0 >= origins[0].0 + 30 * style.pixels_per_sector);
    assert!(image.width() >= origins[1].0 + 30 * style.pixels_per_sector);
    let huge = MapStyle {
        pixels_per_sector: 300,
        ..MapStyle::auto(&[&a], Shade::Ore)
    };
    let e = render(&maps, &huge, "too big").unwrap_err().to_string();
    assert!(
        e.contains("9000-pixel map") && e.contains("at most 8192"),
        "{e}"
    );
}

#[test]
fn shaded_by_asteroids_the_densest_sectors_are_brightest() {
    let w = world();
    let summary = w.summary(region("-20,-20", "19,19"));
    let style = MapStyle {
        pixels_per_sector: 8,
        ..MapStyle::auto(&[&summary], Shade::Asteroids)
    };
    let densest = summary.sectors.iter().map(|s| s.asteroids).max().unwrap();
    assert!(u64::from(densest) <= style.asteroid_scale * 2);
    let maps = w.map_of(&summary);
    let image = render(&maps, &style, "density").unwrap();
    let (left, top) = map_origins(&maps, 8)[0];
    let brightness = |(column, row): (u32, u32)| {
        let p = image.get_pixel(left + column * 8 + 4, top + row * 8 + 4).0;
        p.iter().map(|&v| u32::from(v)).sum::<u32>()
    };
    let plain = |s: &astroboids_designer::region::SectorSummary| s.nebula_coverage == 0.0;
    let dense = find(&summary, |s| s.asteroids == densest && plain(s));
    let sparse = find(&summary, |s| s.asteroids == 1 && plain(s));
    assert!(brightness(dense) > brightness(sparse) + 150);
}
