//! The designer tools' statistics over the region on screen, from the sectors already
//! generated for the map (the region is not generated a second time).

use astroboids_designer::{Region, RegionStats, RegionSummary};

use super::cache::{ConfigKey, SectorCache};

/// The region's summary as `RegionSummary::generate` makes it, if every sector of it is
/// cached.
pub fn region_summary(
    cache: &SectorCache,
    key: ConfigKey,
    region: Region,
    generator_version: u32,
    sector_size: f32,
) -> Option<RegionSummary> {
    RegionSummary::from_sectors(region, generator_version, sector_size, |coord| {
        cache
            .get(key, coord)
            .map(|sector| (sector.summary, sector.contents_hash))
    })
}

/// What the statistics panel shows: one configuration's table, or A's and B's side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsShown {
    pub edited: RegionStats,
    pub kept: Option<RegionStats>,
}

impl StatsShown {
    /// The table as text (`compare_table` when comparing, A being the kept configuration).
    pub fn table(&self) -> String {
        match &self.kept {
            Some(kept) => RegionStats::compare_table(kept, &self.edited),
            None => self.edited.table(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::design::cache::GeneratedSector;
    use astroboids_designer::Coord;
    use astroboids_sim::config::UniverseConfig;
    use astroboids_sim::sectors::SectorGenerator;
    use astroboids_sim::space::SectorCoord;

    #[test]
    fn the_summary_from_the_cache_is_the_designer_tools_summary() {
        let config = UniverseConfig::default();
        let generator = SectorGenerator::new(&config, 5);
        let key = ConfigKey::of(&config, 5);
        let region = Region::new(
            Coord(SectorCoord::new(-3, 2)),
            Coord(SectorCoord::new(4, 7)),
        )
        .unwrap();
        let mut cache = SectorCache::new(1 << 20);
        assert!(region_summary(&cache, key, region, 1, 1000.0).is_none());
        for row in 0..region.height() {
            for column in 0..region.width() {
                let coord = region.at(column, row);
                let sector = GeneratedSector::of(generator.generate(coord), 1000.0, false);
                cache.insert(key, coord, sector);
            }
        }
        let ours = region_summary(&cache, key, region, 1, 1000.0).unwrap();
        let theirs = RegionSummary::generate(&generator, 1000.0, region, &|_| ());
        assert_eq!(ours.sectors, theirs.sectors);
        assert_eq!(ours.hash, theirs.hash);
        assert_eq!(RegionStats::of(&ours), RegionStats::of(&theirs));
    }
}
