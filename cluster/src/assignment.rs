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
