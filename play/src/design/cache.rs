//! Generated sectors kept for reuse. Generation is a pure function of the configuration's
//! generation inputs, the seed and the sector, so a sector generated once for a configuration
//! is never generated again while it is kept: panning back, or a slider moved back, costs
//! nothing. The cache is bounded; the sectors looked at longest ago go first.

use std::collections::HashMap;

use astroboids_designer::region::SectorSummary;
use astroboids_engine::StateHasher;
use astroboids_sim::config::{UniverseConfig, generation_ranges};
use astroboids_sim::sectors::SectorContents;
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

/// One generated sector: its contents (drawn zoomed in), what the designer tools measure of
/// it (shaded zoomed out, summed into statistics) and the hash of its contents (for the
/// region hash the statistics show).
#[derive(Debug, Clone)]
pub struct GeneratedSector {
    pub contents: SectorContents,
    pub summary: SectorSummary,
    pub contents_hash: u64,
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
    capacity: usize,
    pass: u64,
    /// Bumped by every store: what was complete may no longer be (an eviction), and what
    /// was drawn from the cache may be out of date.
    version: u64,
}

impl SectorCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
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

    /// Whether the sector is cached, marking it as looked at in this pass.
    pub fn touch(&mut self, key: ConfigKey, coord: SectorCoord) -> bool {
        match self.entries.get_mut(&(key, coord)) {
            Some(entry) => {
                entry.last_pass = self.pass;
                true
            }
            None => false,
        }
    }

    pub fn insert(&mut self, key: ConfigKey, coord: SectorCoord, sector: GeneratedSector) {
        self.entries.insert(
            (key, coord),
            Entry {
                sector,
                last_pass: self.pass,
            },
        );
        self.version += 1;
        if self.entries.len() > self.capacity {
            self.evict();
        }
    }

    /// Drops the least recently looked-at entries down to three quarters of the capacity, so
    /// that evicting (a sort) happens once per many stores, not on every one.
    fn evict(&mut self) {
        let keep = self.capacity * 3 / 4;
        let mut passes: Vec<u64> = self.entries.values().map(|e| e.last_pass).collect();
        let drop = passes.len() - keep;
        let (_, &mut cutoff, _) = passes.select_nth_unstable(drop - 1);
        // Entries up to the cutoff pass go; with ties at the cutoff, only as many as needed.
        let mut to_drop = drop;
        self.entries.retain(|_, e| {
            if to_drop > 0 && e.last_pass <= cutoff {
                to_drop -= 1;
                false
            } else {
                true
            }
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn version(&self) -> u64 {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use astroboids_sim::sectors::SectorGenerator;

    fn sector(generator: &SectorGenerator, x: i32) -> GeneratedSector {
        let contents = generator.generate(SectorCoord::new(x, 0));
        GeneratedSector {
            summary: SectorSummary::of(&contents, 1000.0),
            contents_hash: 0,
            contents,
        }
    }

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
        let mut cache = SectorCache::new(8);
        for x in 0..8 {
            cache.insert(key, SectorCoord::new(x, 0), sector(&generator, x));
        }
        cache.begin_pass();
        for x in [1, 3] {
            assert!(cache.touch(key, SectorCoord::new(x, 0)));
        }
        cache.insert(key, SectorCoord::new(8, 0), sector(&generator, 8));
        assert_eq!(cache.len(), 6, "down to three quarters of 8");
        for x in [1, 3, 8] {
            assert!(cache.get(key, SectorCoord::new(x, 0)).is_some(), "{x} kept");
        }
        assert!(!cache.touch(ConfigKey::of(&config, 2), SectorCoord::new(1, 0)));
        assert_eq!(cache.version(), 9);
    }
}
