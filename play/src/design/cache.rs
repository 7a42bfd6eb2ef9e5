//! Generated sectors kept for reuse. Generation is a pure function of the configuration's
//! generation inputs, the seed and the sector, so a sector generated once for a configuration
//! is never generated again while it is kept: panning back, or a slider moved back, costs
//! nothing. The cache is bounded by (roughly counted) memory; the sectors looked at longest
//! ago go first.

use std::collections::HashMap;

use astroboids_designer::region::SectorSummary;
use astroboids_engine::StateHasher;
use astroboids_sim::config::{UniverseConfig, generation_ranges};
use astroboids_sim::sectors::{Asteroid, Hazard, Nebula, SectorContents, contents_hash};
use astroboids_sim::space::SectorCoord;

/// What sector generation depends on, as one digest: the `[generation]` section, the
/// generator version, the sector size and the seed (nothing else in a configuration changes
/// what a sector holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfigKey(u64);

impl ConfigKey {
    pub fn of(config: &UniverseConfig, seed: u64) -> Self {
        let mut hasher = StateHasher::default();
        let size = config.simulation.sector_size;
        for range in generation_ranges(size) {
            let value = config.generation.get(range.field);
            hasher.write_u64(value.expect("the table names generation fields").to_bits());
        }
        hasher.write_u32(config.generator_version);
        hasher.write_f32(size);
        hasher.write_u64(seed);
        Self(hasher.finish())
    }
}

/// One generated sector: what the designer tools measure of it (shaded zoomed out, summed
/// into statistics), its feature counts, the hash of its contents (for the region hash the
/// statistics show) and, when it was generated to be drawn feature by feature, its contents.
/// Zoomed out, contents are not kept: tens of thousands of sectors of up to 256 asteroids
/// each would take hundreds of megabytes.
#[derive(Debug, Clone)]
pub struct GeneratedSector {
    pub summary: SectorSummary,
    pub nebulae: usize,
    pub contents_hash: u64,
    pub contents: Option<SectorContents>,
}

impl GeneratedSector {
    /// Measures `contents` (sectors of side `sector_size`), keeping them if asked to.
    pub fn of(contents: SectorContents, sector_size: f32, keep_contents: bool) -> Self {
        Self {
            summary: SectorSummary::of(&contents, sector_size),
            nebulae: contents.nebulae.len(),
            contents_hash: contents_hash(&contents),
            contents: keep_contents.then_some(contents),
        }
    }

    /// Roughly the bytes it holds in the cache, with the map's own share.
    fn bytes(&self) -> usize {
        let contents = self.contents.as_ref().map_or(0, |c| {
            size_of::<Asteroid>() * c.asteroids.len()
                + size_of::<Nebula>() * c.nebulae.len()
                + size_of::<Hazard>() * c.hazards.len()
        });
        // A hash map holds its entries in a table kept at most 7/8 full, keys included.
        2 * size_of::<((ConfigKey, SectorCoord), Entry)>() + contents
    }
}

#[derive(Debug)]
struct Entry {
    sector: GeneratedSector,
    /// The pass in which it was last looked at or stored.
    last_pass: u64,
}

#[derive(Debug)]
pub struct SectorCache {
    entries: HashMap<(ConfigKey, SectorCoord), Entry>,
    budget_bytes: usize,
    bytes: usize,
    pass: u64,
    /// Bumped by every store: what was complete may no longer be (an eviction), and what
    /// was drawn from the cache may be out of date.
    version: u64,
}

impl SectorCache {
    /// A cache holding about `budget_bytes`.
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            entries: HashMap::new(),
            budget_bytes,
            bytes: 0,
            pass: 0,
            version: 0,
        }
    }

    pub fn get(&self, key: ConfigKey, coord: SectorCoord) -> Option<&GeneratedSector> {
        self.entries.get(&(key, coord)).map(|e| &e.sector)
    }

    /// Starts a pass over what is on screen: sectors looked at from now on are kept longer
    /// than any looked at before.
    pub fn begin_pass(&mut self) {
        self.pass += 1;
    }

    /// Whether the sector is cached (with its contents, if `with_contents`), marking it as
    /// looked at in this pass.
    pub fn touch(&mut self, key: ConfigKey, coord: SectorCoord, with_contents: bool) -> bool {
        match self.entries.get_mut(&(key, coord)) {
            Some(entry) => {
                entry.last_pass = self.pass;
                !with_contents || entry.sector.contents.is_some()
            }
            None => false,
        }
    }

    pub fn insert(&mut self, key: ConfigKey, coord: SectorCoord, sector: GeneratedSector) {
        self.bytes += sector.bytes();
        let entry = Entry {
            sector,
            last_pass: self.pass,
        };
        if let Some(replaced) = self.entries.insert((key, coord), entry) {
            self.bytes -= replaced.sector.bytes();
        }
        self.version += 1;
        if self.bytes > self.budget_bytes {
            self.evict();
        }
    }

    /// Drops the least recently looked-at entries down to three quarters of the budget, so
    /// that evicting (a sort) happens once per many stores, not on every one.
    fn evict(&mut self) {
        let mut by_age: Vec<(u64, (ConfigKey, SectorCoord), usize)> = self
            .entries
            .iter()
            .map(|(k, e)| (e.last_pass, *k, e.sector.bytes()))
            .collect();
        by_age.sort_unstable_by_key(|(pass, ..)| *pass);
        let target = self.budget_bytes / 4 * 3;
        for (_, key, bytes) in by_age {
            if self.bytes <= target {
                break;
            }
            self.entries.remove(&key);
            self.bytes -= bytes;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Roughly the bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn version(&self) -> u64 {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use astroboids_sim::sectors::SectorGenerator;

    #[test]
    fn keys_differ_by_generation_inputs_and_seed_only() {
        let config = UniverseConfig::default();
        let key = ConfigKey::of(&config, 1);
        assert_eq!(ConfigKey::of(&config.clone(), 1), key);
        assert_ne!(ConfigKey::of(&config, 2), key);
        let mut other = config.clone();
        other.generation.hazard_chance = 0.06;
        assert_ne!(ConfigKey::of(&other, 1), key);
        let mut unrelated = config.clone();
        unrelated.ships.hull = 1.0;
        assert_eq!(
            ConfigKey::of(&unrelated, 1),
            key,
            "ships do not change sectors"
        );
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_what_was_looked_at_last() {
        let config = UniverseConfig::default();
        let generator = SectorGenerator::new(&config, 1);
        let key = ConfigKey::of(&config, 1);
        let sector =
            |x| GeneratedSector::of(generator.generate(SectorCoord::new(x, 0)), 1e3, false);
        let one = sector(0).bytes();
        // Room for eight summaries (no contents kept).
        let mut cache = SectorCache::new(8 * one);
        for x in 0..8 {
            cache.insert(key, SectorCoord::new(x, 0), sector(x));
        }
        assert_eq!(cache.bytes(), 8 * one);
        cache.begin_pass();
        for x in [1, 3] {
            assert!(cache.touch(key, SectorCoord::new(x, 0), false));
        }
        cache.insert(key, SectorCoord::new(8, 0), sector(8));
        assert_eq!(cache.len(), 6, "down to three quarters of the budget");
        assert_eq!(cache.bytes(), 6 * one);
        for x in [1, 3, 8] {
            assert!(cache.get(key, SectorCoord::new(x, 0)).is_some(), "{x} kept");
        }
        assert!(!cache.touch(ConfigKey::of(&config, 2), SectorCoord::new(1, 0), false));
        assert_eq!(cache.version(), 9);
    }

    #[test]
    fn a_sector_kept_without_contents_is_missing_for_drawing_it_in_detail() {
        let config = UniverseConfig::default();
        let generator = SectorGenerator::new(&config, 1);
        let key = ConfigKey::of(&config, 1);
        let coord = SectorCoord::new(2, 3);
        let mut cache = SectorCache::new(1 << 20);
        let contents = generator.generate(coord);
        let summary_only = GeneratedSector::of(contents.clone(), 1e3, false);
        cache.insert(key, coord, summary_only.clone());
        assert!(cache.touch(key, coord, false));
        assert!(!cache.touch(key, coord, true));
        let full = GeneratedSector::of(contents.clone(), 1e3, true);
        assert!(full.bytes() > summary_only.bytes() || contents.asteroids.is_empty());
        cache.insert(key, coord, full.clone());
        assert!(cache.touch(key, coord, true));
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.bytes(),
            full.bytes(),
            "the replaced entry no longer counts"
        );
    }
}
