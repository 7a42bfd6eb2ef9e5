//! Sensors: each ship sees the ships and asteroids within its range, nearest first, at most
//! `limits.max_contacts` of them.
//!
//! A uniform grid (cell side >= the sensor range, cells aligned to sectors) is rebuilt each
//! tick, so a ship only looks at the 3x3 cells around it: cost grows linearly with ships.
//! Ships are sensed in parallel; each result depends only on the grid and is sorted by
//! (distance, id), so neither insertion order nor thread count can change it.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use astroboids_engine::{NetId, TickSchedule};

use crate::SimSet;
use crate::config::UniverseConfig;
use crate::scope::HaloShips;
use crate::sectors::{SectorContents, Sectors};
use crate::ships::{Ship, Velocity};
use crate::space::{SectorCoord, SpacePos, Vec2, sector_offset};

/// What a contact is. Ordered, so it breaks distance ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContactTarget {
    Ship(NetId),
    Asteroid { sector: SectorCoord, index: u16 },
}

impl ContactTarget {
    /// A 96-bit number that orders targets exactly like `Ord` does: ships (by id) before
    /// asteroids (by sector x, sector y, index). Lets a sort compare integers, not enums.
    pub fn rank(&self) -> u128 {
        match *self {
            ContactTarget::Ship(id) => u128::from(id.0),
            ContactTarget::Asteroid { sector, index } => {
                let biased = |v: i32| u128::from((v as u32) ^ 0x8000_0000);
                (1 << 95) | (biased(sector.x) << 48) | (biased(sector.y) << 16) | u128::from(index)
            }
        }
    }
}

/// One sensed thing, relative to the sensing ship.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contact {
    pub target: ContactTarget,
    /// From the sensing ship to the contact.
    pub offset: Vec2,
    pub velocity: Vec2,
    pub distance: f32,
    pub radius: f32,
}

/// The ship's contacts this tick, nearest first, and the range it sensed with.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct Sensors {
    pub range: f32,
    pub in_nebula: bool,
    pub contacts: Vec<Contact>,
}

#[derive(Debug, Clone, Copy)]
struct GridEntry {
    target: ContactTarget,
    pos: SpacePos,
    velocity: Vec2,
    radius: f32,
}

/// Uniform grid over the universe; cells never straddle a sector border.
pub struct SensorGrid {
    cells_per_sector: i64,
    cell_size: f32,
    sector_size: f32,
    /// Local positions, split from the rest so the distance scan reads 8 bytes per entry.
    locals: Vec<Vec2>,
    entries: Vec<GridEntry>,
    /// Cell -> range in `entries` (entries are sorted by cell). Only looked up, never iterated.
    cells: FxHashMap<(i64, i64), (u32, u32)>,
    /// For each sector holding a ship: the ranges of its cells plus a one-cell ring from the
    /// neighbouring sectors, `(cells_per_sector + 2)^2` slots, so a ship finds its 3x3 cells
    /// with one lookup instead of nine. Empty cells are `(0, 0)`.
    sector_tables: FxHashMap<SectorCoord, Box<[(u32, u32)]>>,
}

/// How many grid cells span a sector on each axis: as many as fit with a side of at least
/// `max_range`.
pub fn cells_per_sector(max_range: f32, sector_size: f32) -> i64 {
    ((sector_size / max_range) as i64).max(1)
}

impl SensorGrid {
    fn cell_of(&self, pos: &SpacePos) -> (i64, i64) {
        let cx = ((pos.local.x / self.cell_size) as i64).min(self.cells_per_sector - 1);
        let cy = ((pos.local.y / self.cell_size) as i64).min(self.cells_per_sector - 1);
        (
            i64::from(pos.sector.x) * self.cells_per_sector + cx,
            i64::from(pos.sector.y) * self.cells_per_sector + cy,
        )
    }

    fn build(max_range: f32, sector_size: f32, items: Vec<GridEntry>) -> Self {
        let cells_per_sector = cells_per_sector(max_range, sector_size);
        let mut grid = Self {
            cells_per_sector,
            cell_size: sector_size / cells_per_sector as f32,
            sector_size,
            locals: Vec::new(),
            entries: Vec::new(),
            cells: FxHashMap::default(),
            sector_tables: FxHashMap::default(),
        };
        // Cells and item indexes are sorted, not the entries: a third of the bytes to move in
        // every pass of the sort, then one pass to gather the entries in cell order.
        let mut keyed: Vec<((i64, i64), u32)> = items
            .iter()
            .enumerate()
            .map(|(i, e)| (grid.cell_of(&e.pos), i as u32))
            .collect();
        // Order inside a cell does not matter: every query sorts its result completely.
        keyed.par_sort_unstable_by_key(|(cell, _)| *cell);
        grid.entries.reserve(keyed.len());
        grid.locals.reserve(keyed.len());
        let mut start = 0u32;
        for (i, (cell, item)) in keyed.iter().enumerate() {
            let entry = &items[*item as usize];
            grid.entries.push(*entry);
            grid.locals.push(entry.pos.local);
            let next_differs = keyed.get(i + 1).is_none_or(|(c, _)| c != cell);
            if next_differs {
                let end = i as u32 + 1;
                grid.cells.insert(*cell, (start, end));
                start = end;
            }
        }
        // Entries in cell order come in runs of one sector: keeping one per run leaves the sort
        // a fraction of the ships to order (sorting them all was 1.5% of a 100k-ship tick).
        let mut ship_sectors: Vec<SectorCoord> = Vec::new();
        for entry in &grid.entries {
            if matches!(entry.target, ContactTarget::Ship(_))
                && ship_sectors.last() != Some(&entry.pos.sector)
            {
                ship_sectors.push(entry.pos.sector);
            }
        }
        ship_sectors.sort_unstable();
        ship_sectors.dedup();
        let tables: Vec<_> = ship_sectors
            .par_iter()
            .map(|&sector| (sector, grid.padded_table(sector)))
            .collect();
        grid.sector_tables.extend(tables);
        grid
    }

    /// Width of a padded sector table: the sector's cells plus one on each side.
    fn table_width(&self) -> i64 {
        self.cells_per_sector + 2
    }

    fn padded_table(&self, sector: SectorCoord) -> Box<[(u32, u32)]> {
        let (cps, w) = (self.cells_per_sector, self.table_width());
        let (x0, y0) = (i64::from(sector.x) * cps, i64::from(sector.y) * cps);
        (0..w * w)
            .map(|slot| {
                let (lx, ly) = (slot / w - 1, slot % w - 1);
                self.cells
                    .get(&(x0 + lx, y0 + ly))
                    .copied()
                    .unwrap_or((0, 0))
            })
            .collect()
    }

    /// The entry ranges of the 3x3 cells around `pos`.
    fn neighbourhood(&self, pos: &SpacePos) -> [(u32, u32); 9] {
        let (cx, cy) = self.cell_of(pos);
        let mut ranges = [(0, 0); 9];
        if let Some(table) = self.sector_tables.get(&pos.sector) {
            let cps = self.cells_per_sector;
            let (lx, ly) = (
                cx - i64::from(pos.sector.x) * cps,
                cy - i64::from(pos.sector.y) * cps,
            );
            let w = self.table_width();
            for (i, range) in ranges.iter_mut().enumerate() {
                let (dx, dy) = (i as i64 / 3, i as i64 % 3);
                *range = table[((lx + dx) * w + (ly + dy)) as usize];
            }
        } else {
            // A position no ship is in (tools, tests): look the cells up one by one.
            for (i, range) in ranges.iter_mut().enumerate() {
                let (dx, dy) = (i as i64 / 3 - 1, i as i64 % 3 - 1);
                *range = self
                    .cells
                    .get(&(cx + dx, cy + dy))
                    .copied()
                    .unwrap_or((0, 0));
            }
        }
        ranges
    }

    /// Everything within `range` of `pos`, nearest first, at most `limit`; `sensing_ship`, the
    /// ship standing at `pos` if one is asking, is left out of its own answer.
    pub fn sense(
        &self,
        pos: &SpacePos,
        range: f32,
        sensing_ship: Option<NetId>,
        limit: usize,
    ) -> Vec<Contact> {
        let mut out = Vec::new();
        self.sense_into(pos, range, sensing_ship, limit, &mut out);
        out
    }

    /// [`Self::sense`] into a reused buffer: the per-tick pass allocates nothing per ship.
    pub fn sense_into(
        &self,
        pos: &SpacePos,
        range: f32,
        sensing_ship: Option<NetId>,
        limit: usize,
        out: &mut Vec<Contact>,
    ) {
        CANDIDATES.with_borrow_mut(|candidates| {
            self.candidates_in_range(pos, range, candidates);
            if let Some(id) = sensing_ship {
                // The ship's own entry is at distance 0 (same position, same float
                // operations): only entries there are looked at.
                let itself = ContactTarget::Ship(id);
                if let Some(at) = candidates.iter().position(|c| {
                    c.squared_distance_bits == 0 && self.entries[c.entry as usize].target == itself
                }) {
                    candidates.swap_remove(at);
                }
            }
            self.nearest_first(candidates, limit);
            out.clear();
            out.extend(candidates.iter().map(|c| {
                let e = &self.entries[c.entry as usize];
                Contact {
                    target: e.target,
                    offset: pos.offset_to(&e.pos, self.sector_size),
                    velocity: e.velocity,
                    distance: f32::from_bits(c.squared_distance_bits).sqrt(),
                    radius: e.radius,
                }
            }));
        });
    }

    /// Every entry of the 3x3 cells around `pos` within `range`, as (squared distance, entry)
    /// pairs in no particular order. Only the 8-byte local positions are read: a neighbourhood
    /// holds several times more entries than a ship keeps contacts, and building whole
    /// contacts for all of them was most of the sensor pass.
    fn candidates_in_range(&self, pos: &SpacePos, range: f32, candidates: &mut Vec<Candidate>) {
        candidates.clear();
        let range_sq = range * range;
        for (start, end) in self.neighbourhood(pos) {
            if start == end {
                continue;
            }
            // A cell lies in one sector: the sector part of the offset is the same for all its
            // entries. The float operations are `SpacePos::offset_to`'s, which builds the kept
            // contacts' offsets: same bits.
            let base = sector_offset(
                pos.sector,
                self.entries[start as usize].pos.sector,
                self.sector_size,
            );
            // Without branches: every entry is written to the next free slot, and the slot only
            // advances when the entry is in range. About a third of a neighbourhood is, in no
            // pattern a branch predictor could learn.
            let mut kept = candidates.len();
            candidates.resize(kept + (end - start) as usize, Candidate::default());
            for (entry, local) in (start..end).zip(&self.locals[start as usize..end as usize]) {
                let offset = Vec2::new(
                    base.x + (local.x - pos.local.x),
                    base.y + (local.y - pos.local.y),
                );
                let d2 = offset.length_squared();
                candidates[kept] = Candidate {
                    squared_distance_bits: d2.to_bits(),
                    entry,
                };
                kept += usize::from(d2 <= range_sq);
            }
            candidates.truncate(kept);
        }
    }

    /// Sorts candidates nearest first, ties broken by target, and keeps the first `limit`.
    fn nearest_first(&self, candidates: &mut Vec<Candidate>, limit: usize) {
        keep_nearest(
            candidates,
            limit,
            |c| c.squared_distance_bits,
            |c| self.entries[c.entry as usize].target.rank(),
        );
    }
}

/// An entry of the grid within range of the sensing ship, before it becomes a [`Contact`].
#[derive(Debug, Clone, Copy, Default)]
struct Candidate {
    /// The squared distance's bits: for non-negative floats they order like the values.
    squared_distance_bits: u32,
    /// Index into the grid's `entries` and `locals`.
    entry: u32,
}

thread_local! {
    /// Each sensing thread's candidate list, reused from ship to ship and tick to tick.
    static CANDIDATES: std::cell::RefCell<Vec<Candidate>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The canonical contact order: sorts `items` nearest first by the bits of their squared
/// distance (>= 0, so the bits order like the values), ties broken by target rank, and keeps
/// the first `limit`.
fn keep_nearest<T>(
    items: &mut Vec<T>,
    limit: usize,
    squared_distance_bits: impl Fn(&T) -> u32,
    rank: impl Fn(&T) -> u128,
) {
    // Distances almost never tie, so targets are only ranked when they do: a comparison is
    // then two loads and an integer compare (a key function would run on every comparison).
    let order = |a: &T, b: &T| {
        squared_distance_bits(a)
            .cmp(&squared_distance_bits(b))
            .then_with(|| rank(a).cmp(&rank(b)))
    };
    if items.len() > limit {
        items.select_nth_unstable_by(limit, order);
        items.truncate(limit);
    }
    items.sort_unstable_by(order);
}

/// The canonical contact order, for reference implementations: nearest first by squared
/// distance (recomputed from `offset`, exactly as the sensor pass computes it), ties broken by
/// target; keeps the first `limit`.
pub fn sort_and_truncate(contacts: &mut Vec<Contact>, limit: usize) {
    for c in contacts.iter_mut() {
        c.distance = c.offset.length_squared();
    }
    keep_nearest(
        contacts,
        limit,
        |c| c.distance.to_bits(),
        |c| c.target.rank(),
    );
    for c in contacts.iter_mut() {
        c.distance = c.distance.sqrt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_orders_targets_like_ord() {
        let targets = [
            ContactTarget::Ship(NetId(1)),
            ContactTarget::Ship(NetId(u64::MAX)),
            ContactTarget::Asteroid {
                sector: SectorCoord::new(i32::MIN, 5),
                index: 9,
            },
            ContactTarget::Asteroid {
                sector: SectorCoord::new(-1, i32::MAX),
                index: 0,
            },
            ContactTarget::Asteroid {
                sector: SectorCoord::new(-1, i32::MAX),
                index: u16::MAX,
            },
            ContactTarget::Asteroid {
                sector: SectorCoord::new(0, i32::MIN),
                index: 3,
            },
            ContactTarget::Asteroid {
                sector: SectorCoord::new(i32::MAX, -1),
                index: 1,
            },
        ];
        for a in &targets {
            for b in &targets {
                assert_eq!(a.cmp(b), a.rank().cmp(&b.rank()), "{a:?} vs {b:?}");
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SensorsPlugin;

impl Plugin for SensorsPlugin {
    fn build(&self, app: &mut App) {
        // Every ship carries its contact buffer from spawning on; the stage reuses it.
        app.register_required_components::<Ship, Sensors>()
            .add_systems(TickSchedule, sense.in_set(SimSet::Sensors));
    }
}

/// Builds the grid from every ship and every asteroid of the loaded sectors.
pub fn build_grid(
    config: &UniverseConfig,
    sectors: &Sectors,
    ships: impl Iterator<Item = (NetId, SpacePos, Vec2)>,
) -> SensorGrid {
    let radius = config.ships.radius;
    let mut items: Vec<GridEntry> = ships
        .map(|(id, pos, velocity)| GridEntry {
            target: ContactTarget::Ship(id),
            pos,
            velocity,
            radius,
        })
        .collect();
    for (&sector, loaded) in sectors.loaded() {
        items.extend(loaded.contents.asteroids.iter().map(|a| GridEntry {
            target: ContactTarget::Asteroid {
                sector,
                index: a.index,
            },
            pos: SpacePos::new(sector, a.local),
            velocity: Vec2::ZERO,
            radius: a.radius,
        }));
    }
    SensorGrid::build(config.sensors.range, config.simulation.sector_size, items)
}

fn sense(
    config: Res<UniverseConfig>,
    sectors: Res<Sectors>,
    halo: Option<Res<HaloShips>>,
    mut ships: Query<(&NetId, &SpacePos, &Velocity, &mut Sensors)>,
) {
    // A shard's grid also holds its neighbours' border ships: they are sensed, never sense.
    let halo = halo.iter().flat_map(|h| h.0.iter()).map(|s| {
        let (vx, vy) = s.velocity;
        (NetId(s.id), s.pos(), Vec2::new(vx, vy))
    });
    let grid = build_grid(
        &config,
        &sectors,
        ships
            .iter()
            .map(|(id, pos, v, _)| (*id, *pos, v.0))
            .chain(halo),
    );
    let limit = config.limits.max_contacts as usize;
    let (range, nebula_factor) = (config.sensors.range, config.sensors.nebula_range_factor);
    // Ships look their sector up in a small map of the sectors that have nebulae, not in
    // every loaded sector.
    let cloudy: FxHashMap<SectorCoord, &SectorContents> = sectors
        .loaded()
        .filter(|(_, s)| !s.contents.nebulae.is_empty())
        .map(|(coord, s)| (*coord, &s.contents))
        .collect();
    let mut work: Vec<_> = ships.iter_mut().collect();
    work.par_iter_mut().for_each(|(id, pos, _, sensors)| {
        let in_nebula = cloudy
            .get(&pos.sector)
            .is_some_and(|s| s.in_nebula(pos.local));
        let effective = if in_nebula {
            range * nebula_factor
        } else {
            range
        };
        let sensors = &mut **sensors;
        sensors.range = effective;
        sensors.in_nebula = in_nebula;
        grid.sense_into(pos, effective, Some(**id), limit, &mut sensors.contacts);
    });
}
