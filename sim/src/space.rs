//! Positions in the infinite grid of sectors.
//!
//! A position is (sector x, sector y, local offset), with the local offset an f32 in
//! `[0, sector_size)`. Local math never sees large numbers, so a ship at sector
//! (1_000_000, -1_000_000) moves with exactly the same bits as one at (0, 0). Distances between
//! things in neighbouring sectors are computed from the small sector difference plus the local
//! offsets, never from absolute coordinates.

use bevy_ecs::prelude::*;

/// 2D vector for local, sector-relative math (glam's `Vec2`, as used by rapier).
pub type Vec2 = rapier2d::math::Vector;

/// A sector's coordinates in the infinite grid. Ordered (x, then y) for stable iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SectorCoord {
    pub x: i32,
    pub y: i32,
}

impl SectorCoord {
    pub const fn new(x: i32, y: i32) -> Self {
        Self { x, y }
    }

    /// The sector `(dx, dy)` steps away, or `None` past the edge of the i32 grid.
    pub fn offset(self, dx: i32, dy: i32) -> Option<Self> {
        Some(Self {
            x: self.x.checked_add(dx)?,
            y: self.y.checked_add(dy)?,
        })
    }

    /// Sectors within `radius` steps (Chebyshev), in (x, y) order; cut at the grid's edge.
    pub fn neighbourhood(self, radius: i32) -> impl Iterator<Item = SectorCoord> {
        (-radius..=radius)
            .flat_map(move |dx| (-radius..=radius).map(move |dy| (dx, dy)))
            .filter_map(move |(dx, dy)| self.offset(dx, dy))
    }

    /// The sector as a state-hash partition key: keys order exactly like coordinates do
    /// (x, then y), so a hash folded in key order is folded in sector order.
    pub const fn partition_key(self) -> u64 {
        (((self.x as u32 ^ 0x8000_0000) as u64) << 32) | (self.y as u32 ^ 0x8000_0000) as u64
    }

    /// The inverse of [`Self::partition_key`].
    pub const fn from_partition_key(key: u64) -> Self {
        Self::new(
            ((key >> 32) as u32 ^ 0x8000_0000) as i32,
            (key as u32 ^ 0x8000_0000) as i32,
        )
    }
}

impl std::fmt::Display for SectorCoord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {})", self.x, self.y)
    }
}

/// Where a thing is: its sector and its offset inside it.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct SpacePos {
    pub sector: SectorCoord,
    pub local: Vec2,
}

impl SpacePos {
    pub fn new(sector: SectorCoord, local: Vec2) -> Self {
        Self { sector, local }
    }

    /// The vector from `self` to `other`. Exact for things in the same or adjacent sectors
    /// (the sector difference is a small integer times the sector size); callers only ask
    /// about such pairs.
    pub fn offset_to(&self, other: &SpacePos, sector_size: f32) -> Vec2 {
        let base = sector_offset(self.sector, other.sector, sector_size);
        Vec2::new(
            base.x + (other.local.x - self.local.x),
            base.y + (other.local.y - self.local.y),
        )
    }
}

/// The vector from the corner of sector `from` to the corner of sector `to`.
pub fn sector_offset(from: SectorCoord, to: SectorCoord, sector_size: f32) -> Vec2 {
    let dx = (i64::from(to.x) - i64::from(from.x)) as f32;
    let dy = (i64::from(to.y) - i64::from(from.y)) as f32;
    Vec2::new(dx * sector_size, dy * sector_size)
}

/// Result of moving a local offset back inside its sector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rehomed {
    /// Still inside the same sector.
    Same,
    /// Moved to another sector: the new position.
    Moved(SpacePos),
    /// Would leave the i32 grid (or was not a finite position): clamped, velocity must be
    /// cancelled.
    AtEdge(SpacePos),
}

/// Brings `local` back into `[0, sector_size)` on each axis, moving to the neighbouring sector.
pub fn rehome(pos: SpacePos, sector_size: f32) -> Rehomed {
    let mut sector = pos.sector;
    let mut local = pos.local;
    let mut at_edge = false;
    for axis in 0..2 {
        let value = local[axis];
        if !value.is_finite() {
            // Never expected from the physics; if it happens, park the ship instead of letting
            // a NaN spread into its sector's world.
            local[axis] = 0.0;
            at_edge = true;
            continue;
        }
        let steps = libm::floorf(value / sector_size);
        if steps == 0.0 {
            continue;
        }
        // A ship moves a few units per tick, so `steps` is -1 or 1 in practice; the arithmetic
        // is general anyway.
        let moved = if axis == 0 {
            sector.offset(steps as i32, 0)
        } else {
            sector.offset(0, steps as i32)
        };
        match moved {
            Some(next) => {
                sector = next;
                let mut wrapped = value - steps * sector_size;
                // Rounding can land exactly on the upper bound; keep the half-open interval.
                if wrapped >= sector_size {
                    wrapped = 0.0;
                }
                if wrapped < 0.0 {
                    wrapped = 0.0;
                }
                local[axis] = wrapped;
            }
            None => {
                at_edge = true;
                local[axis] = if steps < 0.0 {
                    0.0
                } else {
                    largest_below(sector_size)
                };
            }
        }
    }
    let new = SpacePos { sector, local };
    if at_edge {
        Rehomed::AtEdge(new)
    } else if new == pos {
        Rehomed::Same
    } else {
        Rehomed::Moved(new)
    }
}

fn largest_below(value: f32) -> f32 {
    f32::from_bits(value.to_bits() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_across_sector_borders_are_small_and_exact() {
        let a = SpacePos::new(
            SectorCoord::new(1_000_000, -1_000_000),
            Vec2::new(999.0, 5.0),
        );
        let b = SpacePos::new(
            SectorCoord::new(1_000_001, -1_000_001),
            Vec2::new(1.0, 995.0),
        );
        assert_eq!(a.offset_to(&b, 1000.0), Vec2::new(2.0, -10.0));
        assert_eq!(b.offset_to(&a, 1000.0), Vec2::new(-2.0, 10.0));
    }

    #[test]
    fn rehome_moves_to_the_neighbour_and_keeps_the_remainder() {
        let p = SpacePos::new(SectorCoord::new(0, 0), Vec2::new(1002.5, -0.5));
        assert_eq!(
            rehome(p, 1000.0),
            Rehomed::Moved(SpacePos::new(
                SectorCoord::new(1, -1),
                Vec2::new(2.5, 999.5)
            ))
        );
        let inside = SpacePos::new(SectorCoord::new(3, 3), Vec2::new(10.0, 999.0));
        assert_eq!(rehome(inside, 1000.0), Rehomed::Same);
    }

    #[test]
    fn rehome_clamps_at_the_edge_of_the_grid() {
        let p = SpacePos::new(
            SectorCoord::new(i32::MAX, i32::MIN),
            Vec2::new(1001.0, -3.0),
        );
        let Rehomed::AtEdge(clamped) = rehome(p, 1000.0) else {
            panic!("expected the edge")
        };
        assert_eq!(clamped.sector, SectorCoord::new(i32::MAX, i32::MIN));
        assert!(clamped.local.x < 1000.0 && clamped.local.x > 999.9);
        assert_eq!(clamped.local.y, 0.0);
    }

    #[test]
    fn rehome_parks_a_non_finite_position() {
        let p = SpacePos::new(SectorCoord::new(4, 4), Vec2::new(f32::NAN, 10.0));
        assert_eq!(
            rehome(p, 1000.0),
            Rehomed::AtEdge(SpacePos::new(SectorCoord::new(4, 4), Vec2::new(0.0, 10.0)))
        );
    }

    #[test]
    fn neighbourhood_is_ordered_and_cut_at_the_edge() {
        let all: Vec<_> = SectorCoord::new(0, 0).neighbourhood(1).collect();
        assert_eq!(all.len(), 9);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(SectorCoord::new(i32::MAX, 0).neighbourhood(1).count(), 6);
    }
}
