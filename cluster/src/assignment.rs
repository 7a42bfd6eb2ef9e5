//! Which shard holds which sector.
//!
//! The universe is infinite, so an assignment is a rule, not a table: every sector, including
//! ones no ship has reached yet, has exactly one holder. The rule is part of the cluster's
//! state (it changes only at checkpoint ticks, when sectors move between shards), and it never
//! changes a result: the same seed and inputs give the same state hash under any assignment.

use serde::{Deserialize, Serialize};

use astroboids_sim::space::SectorCoord;

/// A shard's number, `0..shards`.
pub type ShardId = u32;

/// The most shards one world may be spread over (a bound on every per-shard table and fan-out).
pub const MAX_SHARDS: u32 = 256;

/// How far (in sectors, along each axis) a shard's tick can reach into sectors it does not
/// hold. A ship moves less than a sector per tick and a sensor reads only the sectors around
/// its own, so one sector is what sensing and handoffs need; but a handed-off ship's halo is
/// sent by the shard it left (its new holder gets it only at the end of the tick), and the
/// sectors sensing it lie up to one more sector beyond its new one.
pub const EXCHANGE_REACH: u32 = 2;

/// How sectors are spread over `shards` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SectorAssignment {
    /// Vertical stripes `width` sectors wide, dealt out in turn: sector x belongs to
    /// `floor(x / width) mod shards`. Borders are straight lines, so traffic between shards
    /// grows with the world's height.
    Stripes { shards: u32, width: u32 },
    /// Square blocks `side` sectors wide, dealt out along a diagonal so that neighbouring
    /// blocks belong to different shards when there are three or more.
    Blocks { shards: u32, side: u32 },
}

/// A rejected assignment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    #[error("a cluster has 1 to {MAX_SHARDS} shards, got {0}")]
    Shards(u32),
    #[error("a stripe or block is 1 to 1,000,000 sectors wide, got {0}")]
    Width(u32),
    #[error("unknown assignment {0:?}: expected stripes:WIDTH or blocks:SIDE")]
    Unknown(String),
}

impl SectorAssignment {
    /// Checks the numbers (a decoded or parsed assignment is checked before use).
    pub fn validated(self) -> Result<Self, AssignmentError> {
        let (shards, width) = match self {
            Self::Stripes { shards, width } => (shards, width),
            Self::Blocks { shards, side } => (shards, side),
        };
        if !(1..=MAX_SHARDS).contains(&shards) {
            return Err(AssignmentError::Shards(shards));
        }
        if !(1..=1_000_000).contains(&width) {
            return Err(AssignmentError::Width(width));
        }
        Ok(self)
    }

    /// Parses `stripes:WIDTH` or `blocks:SIDE` for `shards` shards (the CLI's `--assignment`).
    pub fn parse(text: &str, shards: u32) -> Result<Self, AssignmentError> {
        let (kind, number) = text
            .split_once(':')
            .ok_or_else(|| AssignmentError::Unknown(text.to_owned()))?;
        let number: u32 = number
            .trim()
            .parse()
            .map_err(|_| AssignmentError::Unknown(text.to_owned()))?;
        match kind.trim() {
            "stripes" => Self::Stripes {
                shards,
                width: number,
            },
            "blocks" => Self::Blocks {
                shards,
                side: number,
            },
            _ => return Err(AssignmentError::Unknown(text.to_owned())),
        }
        .validated()
    }

    pub fn shards(&self) -> u32 {
        match *self {
            Self::Stripes { shards, .. } | Self::Blocks { shards, .. } => shards,
        }
    }

    /// The shard that holds `sector`.
    pub fn shard_of(&self, sector: SectorCoord) -> ShardId {
        match *self {
            Self::Stripes { shards, width } => {
                let stripe = i64::from(sector.x).div_euclid(i64::from(width));
                stripe.rem_euclid(i64::from(shards)) as ShardId
            }
            Self::Blocks { shards, side } => {
                let bx = i64::from(sector.x).div_euclid(i64::from(side));
                let by = i64::from(sector.y).div_euclid(i64::from(side));
                // Along a diagonal: (bx + 2 by) makes the four blocks around any block
                // differ from it for three or more shards.
                (bx + 2 * by).rem_euclid(i64::from(shards)) as ShardId
            }
        }
    }

    /// The shards holding a sector within [`EXCHANGE_REACH`] sectors of one of `shard`'s,
    /// sorted, `shard` itself left out: the only shards it exchanges with. The relation is
    /// symmetric and holds for the whole infinite grid (the rule repeats).
    pub fn neighbours(&self, shard: ShardId) -> Vec<ShardId> {
        let n = i64::from(self.shards());
        // How many stripes or blocks away the reach gets.
        let steps = |size: u32| i64::from(EXCHANGE_REACH.div_ceil(size));
        let mut near: Vec<ShardId> = match *self {
            Self::Stripes { width, .. } => {
                let k = steps(width);
                (-k..=k)
                    .map(|d| (i64::from(shard) + d).rem_euclid(n) as ShardId)
                    .collect()
            }
            // A block at (dx, dy) blocks away is (dx + 2 dy) shards away.
            Self::Blocks { side, .. } => {
                let k = steps(side);
                (-k..=k)
                    .flat_map(|dx| (-k..=k).map(move |dy| dx + 2 * dy))
                    .map(|d| (i64::from(shard) + d).rem_euclid(n) as ShardId)
                    .collect()
            }
        };
        near.retain(|s| *s != shard);
        near.sort_unstable();
        near.dedup();
        near
    }

    /// The same rule for a different number of shards (a rebalance at a checkpoint tick).
    pub fn with_shards(self, shards: u32) -> Self {
        match self {
            Self::Stripes { width, .. } => Self::Stripes { shards, width },
            Self::Blocks { side, .. } => Self::Blocks { shards, side },
        }
    }
}

impl std::fmt::Display for SectorAssignment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stripes { shards, width } => write!(f, "stripes:{width} over {shards} shards"),
            Self::Blocks { shards, side } => write!(f, "blocks:{side} over {shards} shards"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force over a window of the grid: every pair of sectors within the reach, held by
    /// two different shards, is a pair of neighbours, and nothing else is.
    #[test]
    fn neighbours_are_exactly_the_shards_across_a_border() {
        for assignment in [
            SectorAssignment::Stripes {
                shards: 1,
                width: 3,
            },
            SectorAssignment::Stripes {
                shards: 2,
                width: 1,
            },
            SectorAssignment::Stripes {
                shards: 5,
                width: 2,
            },
            SectorAssignment::Stripes {
                shards: 7,
                width: 1,
            },
            SectorAssignment::Blocks { shards: 2, side: 1 },
            SectorAssignment::Blocks { shards: 4, side: 2 },
            SectorAssignment::Blocks { shards: 9, side: 1 },
            SectorAssignment::Blocks {
                shards: 13,
                side: 3,
            },
        ] {
            let n = assignment.shards();
            let mut touching = vec![std::collections::BTreeSet::new(); n as usize];
            for x in -60..60 {
                for y in -60..60 {
                    let here = assignment.shard_of(SectorCoord::new(x, y));
                    let r = EXCHANGE_REACH as i32;
                    for (dx, dy) in (-r..=r).flat_map(|dx| (-r..=r).map(move |dy| (dx, dy))) {
                        let there = assignment.shard_of(SectorCoord::new(x + dx, y + dy));
                        if there != here {
                            touching[here as usize].insert(there);
                            touching[there as usize].insert(here);
                        }
                    }
                }
            }
            for shard in 0..n {
                let expected: Vec<ShardId> = touching[shard as usize].iter().copied().collect();
                assert_eq!(
                    assignment.neighbours(shard),
                    expected,
                    "{assignment}, shard {shard}"
                );
            }
        }
    }

    #[test]
    fn every_sector_has_one_holder_in_range_even_far_out() {
        for assignment in [
            SectorAssignment::Stripes {
                shards: 3,
                width: 2,
            },
            SectorAssignment::Blocks { shards: 4, side: 3 },
        ] {
            for (x, y) in [(0, 0), (-1, -1), (i32::MIN, i32::MAX), (i32::MAX, i32::MIN)] {
                assert!(assignment.shard_of(SectorCoord::new(x, y)) < assignment.shards());
            }
        }
    }

    #[test]
    fn stripes_deal_columns_in_turn_across_zero() {
        let a = SectorAssignment::Stripes {
            shards: 2,
            width: 2,
        };
        let of = |x| a.shard_of(SectorCoord::new(x, 7));
        assert_eq!(
            [of(-3), of(-2), of(-1), of(0), of(1), of(2)],
            [0, 1, 1, 0, 0, 1]
        );
    }

    #[test]
    fn neighbouring_blocks_differ_with_three_shards() {
        let a = SectorAssignment::Blocks { shards: 3, side: 1 };
        for x in -5..5 {
            for y in -5..5 {
                let here = a.shard_of(SectorCoord::new(x, y));
                assert_ne!(here, a.shard_of(SectorCoord::new(x + 1, y)));
                assert_ne!(here, a.shard_of(SectorCoord::new(x, y + 1)));
            }
        }
    }

    #[test]
    fn parse_names_what_is_wrong() {
        assert_eq!(
            SectorAssignment::parse("blocks:4", 2),
            Ok(SectorAssignment::Blocks { shards: 2, side: 4 })
        );
        assert_eq!(
            SectorAssignment::parse("rings:4", 2),
            Err(AssignmentError::Unknown("rings:4".into()))
        );
        assert_eq!(
            SectorAssignment::parse("stripes:0", 2),
            Err(AssignmentError::Width(0))
        );
        assert_eq!(
            SectorAssignment::parse("stripes:1", 0),
            Err(AssignmentError::Shards(0))
        );
    }
}
