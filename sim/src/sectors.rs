//! The infinite grid of procedurally generated sectors.
//!
//! A sector's contents are a pure function of (universe seed, coordinates, generator version,
//! generation config). Only deviations from that function — asteroids mined down or used up —
//! are stored ([`SectorDelta`]), so a sector can be dropped from memory when no ship is near and
//! regenerated later, equal to one that was never unloaded.
//!
//! Architecture invariant: every feature of a sector (asteroid, nebula, hazard) lies wholly
//! inside it, so a sector's state is self-contained and can later live on another server.

use std::collections::BTreeMap;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use noise::{Fbm, MultiFractal, NoiseFn, Perlin};
use rand::Rng;
use rayon::prelude::*;

use astroboids_engine::hash::{HashScope, PartitionHashers};
use astroboids_engine::rng::{coord_key, derive_seed, stream_rng};
use astroboids_engine::{HashCost, RngStream, StateHasher, TickSchedule};

use crate::config::{GenerationConfig, UniverseConfig};
use crate::ships::ShipIndex;
use crate::space::{SectorCoord, Vec2};
use crate::{SimSet, SimTotals};

/// An asteroid: a fixed body holding ore. `index` is its stable id within the sector.
#[derive(Debug, Clone, PartialEq)]
pub struct Asteroid {
    pub index: u16,
    pub local: Vec2,
    pub radius: f32,
    pub ore: u32,
}

/// A gas cloud that shortens the sensor range of ships inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Nebula {
    pub local: Vec2,
    pub radius: f32,
}

/// A radiation zone that damages the hull of ships inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hazard {
    pub local: Vec2,
    pub radius: f32,
    pub damage_per_s: f32,
}

/// What a sector holds.
#[derive(Debug, Clone, PartialEq)]
pub struct SectorContents {
    pub coord: SectorCoord,
    pub generator_version: u32,
    /// Sorted by `index`; depleted asteroids are absent.
    pub asteroids: Vec<Asteroid>,
    pub nebulae: Vec<Nebula>,
    pub hazards: Vec<Hazard>,
}

impl SectorContents {
    pub fn asteroid(&self, index: u16) -> Option<&Asteroid> {
        self.asteroids
            .binary_search_by_key(&index, |a| a.index)
            .ok()
            .map(|i| &self.asteroids[i])
    }

    pub fn total_ore(&self) -> u64 {
        self.asteroids.iter().map(|a| u64::from(a.ore)).sum()
    }

    pub fn in_nebula(&self, local: Vec2) -> bool {
        self.nebulae
            .iter()
            .any(|n| (local - n.local).length_squared() <= n.radius * n.radius)
    }

    pub(crate) fn hash_into(&self, h: &mut StateHasher) {
        h.write_i32(self.coord.x);
        h.write_i32(self.coord.y);
        h.write_u32(self.generator_version);
        h.write_u64(self.asteroids.len() as u64);
        for a in &self.asteroids {
            h.write_u32(u32::from(a.index));
            h.write_f32(a.local.x);
            h.write_f32(a.local.y);
            h.write_f32(a.radius);
            h.write_u32(a.ore);
        }
        for n in &self.nebulae {
            h.write_f32(n.local.x);
            h.write_f32(n.local.y);
            h.write_f32(n.radius);
        }
        for z in &self.hazards {
            h.write_f32(z.local.x);
            h.write_f32(z.local.y);
            h.write_f32(z.radius);
            h.write_f32(z.damage_per_s);
        }
    }
}

/// Generates sector contents. Cheap to share: the noise fields are built once per universe.
pub struct SectorGenerator {
    config: GenerationConfig,
    version: u32,
    sector_size: f32,
    seed: u64,
    belt: Fbm<Perlin>,
    nebula: Fbm<Perlin>,
}

impl SectorGenerator {
    pub fn new(config: &UniverseConfig, universe_seed: u64) -> Self {
        let g = &config.generation;
        // noise seeds are u32: take them from our own named stream.
        let noise_seed =
            |field: u64| derive_seed(universe_seed, RngStream::SectorGeneration, &[field]) as u32;
        Self {
            config: g.clone(),
            version: config.generator_version,
            sector_size: config.simulation.sector_size,
            seed: universe_seed,
            belt: Fbm::<Perlin>::new(noise_seed(1))
                .set_octaves(3)
                .set_frequency(g.belt_frequency),
            nebula: Fbm::<Perlin>::new(noise_seed(2))
                .set_octaves(2)
                .set_frequency(g.nebula_frequency),
        }
    }

    /// The side of a sector, metres.
    pub fn sector_size(&self) -> f32 {
        self.sector_size
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The contents of `coord` as generated, before any mining.
    pub fn generate(&self, coord: SectorCoord) -> SectorContents {
        let g = &self.config;
        let size = self.sector_size;
        let mut rng = stream_rng(
            self.seed,
            RngStream::SectorGeneration,
            &[coord_key(coord.x, coord.y), u64::from(self.version)],
        );
        let at = [f64::from(coord.x), f64::from(coord.y)];

        let belt = self.belt.get(at);
        let density = ((belt - g.belt_threshold) / (1.0 - g.belt_threshold)).clamp(0.0, 1.0);
        let count = (density * f64::from(g.max_asteroids_per_sector)) as u16;
        let asteroids = (0..count)
            .map(|index| {
                let radius = rng.random_range(g.asteroid_radius_min..=g.asteroid_radius_max);
                Asteroid {
                    index,
                    local: random_inside(&mut rng, size, radius),
                    radius,
                    ore: rng.random_range(g.ore_per_asteroid_min..=g.ore_per_asteroid_max),
                }
            })
            .collect();

        let cloud = self.nebula.get(at);
        let nebulae = if cloud > g.nebula_threshold && g.max_nebulae_per_sector > 0 {
            let share = (cloud - g.nebula_threshold) / (1.0 - g.nebula_threshold);
            let n = 1 + (share * f64::from(g.max_nebulae_per_sector - 1)) as u32;
            (0..n)
                .map(|_| {
                    let radius = rng.random_range(g.nebula_radius_min..=g.nebula_radius_max);
                    Nebula {
                        local: random_inside(&mut rng, size, radius),
                        radius,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };

        let hazards = if rng.random_bool(g.hazard_chance) {
            let radius = rng.random_range(g.hazard_radius_min..=g.hazard_radius_max);
            vec![Hazard {
                local: random_inside(&mut rng, size, radius),
                radius,
                damage_per_s: g.hazard_damage_per_s,
            }]
        } else {
            Vec::new()
        };

        SectorContents {
            coord,
            generator_version: self.version,
            asteroids,
            nebulae,
            hazards,
        }
    }
}

/// A point at which a circle of `radius` lies wholly inside a sector of side `size`.
fn random_inside(rng: &mut impl Rng, size: f32, radius: f32) -> Vec2 {
    Vec2::new(
        rng.random_range(radius..=size - radius),
        rng.random_range(radius..=size - radius),
    )
}

/// How a sector differs from its generated contents: the ore left in each asteroid that has
/// been mined (0 means used up and gone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SectorDelta {
    pub remaining_ore: BTreeMap<u16, u32>,
}

/// A sector in memory.
#[derive(Debug, Clone)]
pub struct LoadedSector {
    pub contents: SectorContents,
    /// Ticks since a ship was last within the load radius.
    pub idle_ticks: u32,
}

/// All sectors: the loaded ones and the deltas of every sector ever changed.
#[derive(Resource)]
pub struct Sectors {
    generator: SectorGenerator,
    loaded: BTreeMap<SectorCoord, LoadedSector>,
    deltas: BTreeMap<SectorCoord, SectorDelta>,
    /// Sectors whose delta changed since the start of the tick (what a shard tells the shards
    /// that see into them).
    changed: std::collections::BTreeSet<SectorCoord>,
}

/// Ore actually removed from an asteroid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OreTaken {
    pub amount: u32,
    /// The asteroid is now empty and gone.
    pub depleted: bool,
}

impl Sectors {
    pub fn new(generator: SectorGenerator) -> Self {
        Self {
            generator,
            loaded: BTreeMap::new(),
            deltas: BTreeMap::new(),
            changed: Default::default(),
        }
    }

    pub fn generator(&self) -> &SectorGenerator {
        &self.generator
    }

    pub fn get(&self, coord: SectorCoord) -> Option<&SectorContents> {
        self.loaded.get(&coord).map(|s| &s.contents)
    }

    pub fn loaded(&self) -> impl Iterator<Item = (&SectorCoord, &LoadedSector)> {
        self.loaded.iter()
    }

    pub fn loaded_count(&self) -> usize {
        self.loaded.len()
    }

    pub fn deltas(&self) -> &BTreeMap<SectorCoord, SectorDelta> {
        &self.deltas
    }

    /// A sector's contents now, whether loaded or not: generated contents with the stored
    /// delta applied.
    pub fn current_contents(&self, coord: SectorCoord) -> SectorContents {
        match self.get(coord) {
            Some(contents) => contents.clone(),
            None => self.materialize(coord),
        }
    }

    /// Generated contents with the stored delta applied.
    fn materialize(&self, coord: SectorCoord) -> SectorContents {
        let mut contents = self.generator.generate(coord);
        if let Some(delta) = self.deltas.get(&coord) {
            apply_delta(&mut contents, delta);
        }
        contents
    }

    /// Loads `coord` if it is not loaded yet. Returns whether it was generated now.
    pub fn load(&mut self, coord: SectorCoord) -> bool {
        if self.loaded.contains_key(&coord) {
            return false;
        }
        let contents = self.materialize(coord);
        self.loaded.insert(
            coord,
            LoadedSector {
                contents,
                idle_ticks: 0,
            },
        );
        true
    }

    /// Loads many sectors, generating them in parallel; inserted in coordinate order.
    pub fn load_many(&mut self, coords: &[SectorCoord]) -> usize {
        let missing: Vec<SectorCoord> = coords
            .iter()
            .copied()
            .filter(|c| !self.loaded.contains_key(c))
            .collect();
        let generated: Vec<SectorContents> =
            missing.par_iter().map(|&c| self.materialize(c)).collect();
        for contents in generated {
            self.loaded.insert(
                contents.coord,
                LoadedSector {
                    contents,
                    idle_ticks: 0,
                },
            );
        }
        missing.len()
    }

    /// Drops a sector from memory; its delta is kept.
    pub fn unload(&mut self, coord: SectorCoord) -> bool {
        self.loaded.remove(&coord).is_some()
    }

    /// Takes up to `max` ore from a loaded asteroid, recording the delta.
    pub fn take_ore(&mut self, coord: SectorCoord, index: u16, max: u32) -> OreTaken {
        let none = OreTaken {
            amount: 0,
            depleted: false,
        };
        let Some(sector) = self.loaded.get_mut(&coord) else {
            return none;
        };
        let asteroids = &mut sector.contents.asteroids;
        let Ok(i) = asteroids.binary_search_by_key(&index, |a| a.index) else {
            return none;
        };
        let amount = max.min(asteroids[i].ore);
        if amount == 0 {
            return none;
        }
        asteroids[i].ore -= amount;
        let remaining = asteroids[i].ore;
        self.changed.insert(coord);
        self.deltas
            .entry(coord)
            .or_default()
            .remaining_ore
            .insert(index, remaining);
        let depleted = remaining == 0;
        if depleted {
            asteroids.remove(i);
        }
        OreTaken { amount, depleted }
    }

    /// The sectors whose delta changed this tick, with their deltas now, in coordinate order.
    pub fn changed_deltas(&self) -> Vec<(SectorCoord, SectorDelta)> {
        self.changed
            .iter()
            .map(|c| (*c, self.deltas.get(c).cloned().unwrap_or_default()))
            .collect()
    }

    /// Replaces a sector's delta with its owner's copy (a shard hearing from a neighbour),
    /// refreshing the sector's contents if it is loaded.
    pub fn replace_delta(&mut self, coord: SectorCoord, delta: SectorDelta) {
        self.deltas.insert(coord, delta);
        if self.loaded.contains_key(&coord) {
            let contents = self.materialize(coord);
            if let Some(sector) = self.loaded.get_mut(&coord) {
                sector.contents = contents;
            }
        }
    }

    /// Sets a sector's delta (restoring a checkpoint; before the sector is loaded).
    pub(crate) fn set_delta(&mut self, coord: SectorCoord, delta: SectorDelta) {
        self.deltas.insert(coord, delta);
    }

    pub(crate) fn loaded_mut(&mut self) -> &mut BTreeMap<SectorCoord, LoadedSector> {
        &mut self.loaded
    }
}

fn apply_delta(contents: &mut SectorContents, delta: &SectorDelta) {
    for a in &mut contents.asteroids {
        if let Some(&left) = delta.remaining_ore.get(&a.index) {
            a.ore = left;
        }
    }
    contents
        .asteroids
        .retain(|a| a.ore > 0 || !delta.remaining_ore.contains_key(&a.index));
}

/// Loads sectors near ships, unloads those left alone for a while.
#[derive(Debug, Clone, Default)]
pub struct SectorsPlugin;

impl Plugin for SectorsPlugin {
    fn build(&self, app: &mut App) {
        let seed = app.world().resource::<astroboids_engine::UniverseSeed>().0;
        let config = app.world().resource::<UniverseConfig>().clone();
        app.insert_resource(Sectors::new(SectorGenerator::new(&config, seed)))
            .add_systems(TickSchedule, stream_sectors.in_set(SimSet::Streaming));
        app.world_mut()
            .resource_mut::<astroboids_engine::hash::StateHashRegistry>()
            .register_scoped(
                "sectors",
                HashScope::Partitioned(hash_sectors),
                HashCost::Cheap,
            );
    }
}

/// Keeps every sector within `load_radius` of a ship loaded; unloads sectors that have had no
/// ship within that radius for `unload_after_ticks`.
fn stream_sectors(
    mut sectors: ResMut<Sectors>,
    index: Res<ShipIndex>,
    config: Res<UniverseConfig>,
    mut totals: ResMut<SimTotals>,
) {
    sectors.changed.clear();
    let radius = config.sectors.load_radius as i32;
    let mut wanted: Vec<SectorCoord> = index
        .occupied_sectors()
        .flat_map(|c| c.neighbourhood(radius))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();

    totals.sectors_generated += sectors.load_many(&wanted) as u64;

    let unload_after = config.sectors.unload_after_ticks;
    let mut to_unload = Vec::new();
    // `wanted` and `loaded` are both sorted: walk them together.
    let mut wanted_iter = wanted.iter().peekable();
    for (coord, sector) in sectors.loaded_mut().iter_mut() {
        while wanted_iter.peek().is_some_and(|w| *w < coord) {
            wanted_iter.next();
        }
        if wanted_iter.peek() == Some(&coord) {
            sector.idle_ticks = 0;
        } else {
            sector.idle_ticks += 1;
            if sector.idle_ticks >= unload_after {
                to_unload.push(*coord);
            }
        }
    }
    for coord in to_unload {
        sectors.unload(coord);
        totals.sectors_unloaded += 1;
    }
}

/// Each sector's deltas in its own partition. Which sectors are loaded is a cache (contents
/// are a function of seed and coordinates, plus the deltas), so it is not hashed; a shard
/// hashes only the sectors it owns (it may hold copies of its neighbours').
fn hash_sectors(world: &mut World, h: &mut PartitionHashers) {
    let scope = world.get_resource::<crate::scope::ShardScope>();
    for (coord, delta) in &world.resource::<Sectors>().deltas {
        if scope.is_some_and(|s| !s.owns(*coord)) {
            continue;
        }
        let h = h.partition(coord.partition_key());
        for (&index, &left) in &delta.remaining_ore {
            h.write_u32(u32::from(index));
            h.write_u32(left);
        }
    }
}

/// The hash of a sector's contents, for golden tests and the designer tools.
pub fn contents_hash(contents: &SectorContents) -> u64 {
    let mut h = StateHasher::default();
    contents.hash_into(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(seed: u64) -> SectorGenerator {
        SectorGenerator::new(&UniverseConfig::default(), seed)
    }

    #[test]
    fn generation_is_pure() {
        let a = generator(42);
        let b = generator(42);
        for coord in [
            SectorCoord::new(0, 0),
            SectorCoord::new(-7, 13),
            SectorCoord::new(1_000_000, -1_000_000),
            SectorCoord::new(i32::MAX, i32::MIN),
        ] {
            assert_eq!(a.generate(coord), b.generate(coord));
            assert_eq!(a.generate(coord), a.generate(coord));
        }
    }

    #[test]
    fn different_seeds_give_different_universes() {
        let region = |g: &SectorGenerator| -> Vec<SectorContents> {
            (0..8)
                .flat_map(|x| (0..8).map(move |y| SectorCoord::new(x, y)))
                .map(|c| g.generate(c))
                .collect()
        };
        assert_ne!(region(&generator(1)), region(&generator(2)));
    }

    #[test]
    fn every_feature_lies_inside_its_sector() {
        let g = generator(9);
        let size = UniverseConfig::default().simulation.sector_size;
        let mut asteroids = 0;
        for x in -20..20 {
            for y in -20..20 {
                let s = g.generate(SectorCoord::new(x, y));
                let circles = s
                    .asteroids
                    .iter()
                    .map(|a| (a.local, a.radius))
                    .chain(s.nebulae.iter().map(|n| (n.local, n.radius)))
                    .chain(s.hazards.iter().map(|z| (z.local, z.radius)));
                for (c, r) in circles {
                    assert!(c.x - r >= 0.0 && c.x + r <= size, "{c:?} r={r} in {x},{y}");
                    assert!(c.y - r >= 0.0 && c.y + r <= size, "{c:?} r={r} in {x},{y}");
                }
                asteroids += s.asteroids.len();
            }
        }
        assert!(
            asteroids > 1000,
            "the default universe has asteroid belts ({asteroids})"
        );
    }

    #[test]
    fn generated_region_is_pinned() {
        // Golden value: an intended change to generation must bump `generator_version`.
        let g = generator(2026);
        let mut h = StateHasher::default();
        for x in -10..10 {
            for y in -10..10 {
                g.generate(SectorCoord::new(x, y)).hash_into(&mut h);
            }
        }
        assert_eq!(format!("{:016x}", h.finish()), "19c6ed098eeb8988");
    }

    #[test]
    fn unload_and_reload_with_deltas_equals_never_unloaded() {
        let mut kept = Sectors::new(generator(5));
        let mut cycled = Sectors::new(generator(5));
        // Find a sector with asteroids.
        let coord = (0..100)
            .map(|x| SectorCoord::new(x, 3))
            .find(|&c| kept.generator().generate(c).asteroids.len() >= 2)
            .expect("some sector in a row of 100 has asteroids");
        kept.load(coord);
        cycled.load(coord);
        let first = kept.get(coord).unwrap().asteroids[0].clone();
        let second = kept.get(coord).unwrap().asteroids[1].clone();
        for s in [&mut kept, &mut cycled] {
            // Use up the first asteroid, take part of the second.
            assert!(s.take_ore(coord, first.index, u32::MAX).depleted);
            let partial = s.take_ore(coord, second.index, 1);
            assert_eq!(partial.amount, 1);
        }
        assert!(cycled.unload(coord));
        assert!(cycled.get(coord).is_none());
        assert!(cycled.load(coord));
        assert_eq!(cycled.get(coord), kept.get(coord));
        let reloaded = cycled.get(coord).unwrap();
        assert!(
            reloaded.asteroid(first.index).is_none(),
            "used-up asteroid stays gone"
        );
        assert_eq!(reloaded.asteroid(second.index).unwrap().ore, second.ore - 1);
    }

    #[test]
    fn take_ore_never_creates_ore() {
        let mut s = Sectors::new(generator(11));
        let coord = (0..100)
            .map(|x| SectorCoord::new(x, -4))
            .find(|&c| !s.generator().generate(c).asteroids.is_empty())
            .unwrap();
        s.load(coord);
        let before = s.get(coord).unwrap().total_ore();
        let index = s.get(coord).unwrap().asteroids[0].index;
        let mut taken = 0u64;
        while s.get(coord).unwrap().asteroid(index).is_some() {
            taken += u64::from(s.take_ore(coord, index, 37).amount);
        }
        assert_eq!(s.get(coord).unwrap().total_ore() + taken, before);
        assert_eq!(
            s.take_ore(coord, index, 37).amount,
            0,
            "nothing from a used-up asteroid"
        );
    }
}
