//! A rectangle of sectors, generated and summarized sector by sector.

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;

use astroboids_engine::StateHasher;
use astroboids_sim::sectors::{SectorContents, SectorGenerator, contents_hash};
use astroboids_sim::space::{SectorCoord, Vec2};

/// Most sectors one region may hold (2,000 x 2,000; a summary is 24 bytes, so ~100 MB).
pub const MAX_REGION_SECTORS: u64 = 4_000_000;

/// Why a region or coordinate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    #[error("{0:?} is not a sector coordinate: expected X,Y (two integers, e.g. -10,25)")]
    Coord(String),
    #[error("--from {from} lies after --to {to}: from must be the smaller x and y")]
    Reversed { from: Coord, to: Coord },
    #[error(
        "the region {from} to {to} holds {sectors} sectors; at most {MAX_REGION_SECTORS} (2,000 x 2,000)"
    )]
    TooLarge {
        from: Coord,
        to: Coord,
        sectors: u64,
    },
}

/// A sector coordinate as typed on a command line: `X,Y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coord(pub SectorCoord);

impl FromStr for Coord {
    type Err = RegionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || RegionError::Coord(text.to_string());
        let (x, y) = text.split_once(',').ok_or_else(bad)?;
        let x = x.trim().parse().map_err(|_| bad())?;
        let y = y.trim().parse().map_err(|_| bad())?;
        Ok(Self(SectorCoord::new(x, y)))
    }
}

impl fmt::Display for Coord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.0.x, self.0.y)
    }
}

/// Sectors `from` to `to`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub from: SectorCoord,
    pub to: SectorCoord,
}

impl Region {
    pub fn new(from: Coord, to: Coord) -> Result<Self, RegionError> {
        if from.0.x > to.0.x || from.0.y > to.0.y {
            return Err(RegionError::Reversed { from, to });
        }
        // Counted in 64 bits before anything is cast: the whole i32 grid is 2^32 wide.
        let side = |a: i32, b: i32| (i64::from(b) - i64::from(a) + 1) as u64;
        let sectors = side(from.0.x, to.0.x).saturating_mul(side(from.0.y, to.0.y));
        if sectors > MAX_REGION_SECTORS {
            return Err(RegionError::TooLarge { from, to, sectors });
        }
        Ok(Self {
            from: from.0,
            to: to.0,
        })
    }

    /// Sectors per row.
    pub fn width(&self) -> u32 {
        (i64::from(self.to.x) - i64::from(self.from.x) + 1) as u32
    }

    /// Rows.
    pub fn height(&self) -> u32 {
        (i64::from(self.to.y) - i64::from(self.from.y) + 1) as u32
    }

    pub fn sectors(&self) -> u64 {
        u64::from(self.width()) * u64::from(self.height())
    }

    /// The sector in column `column`, row `row` (row 0 is `from.y`).
    pub fn at(&self, column: u32, row: u32) -> SectorCoord {
        SectorCoord::new(
            (i64::from(self.from.x) + i64::from(column)) as i32,
            (i64::from(self.from.y) + i64::from(row)) as i32,
        )
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sectors ({},{}) to ({},{}), {} x {}",
            self.from.x,
            self.from.y,
            self.to.x,
            self.to.y,
            self.width(),
            self.height()
        )
    }
}

/// What a designer measures of one sector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SectorSummary {
    pub asteroids: u16,
    pub ore: u64,
    /// Share of the sector's area inside at least one nebula (sampled on a 16 x 16 grid).
    pub nebula_coverage: f32,
    pub hazards: u8,
}

/// Points per side of the grid that samples nebula coverage.
const COVERAGE_GRID: u32 = 16;

impl SectorSummary {
    pub fn of(contents: &SectorContents, sector_size: f32) -> Self {
        let covered = if contents.nebulae.is_empty() {
            0
        } else {
            let step = sector_size / COVERAGE_GRID as f32;
            (0..COVERAGE_GRID * COVERAGE_GRID)
                .filter(|i| {
                    let x = ((i % COVERAGE_GRID) as f32 + 0.5) * step;
                    let y = ((i / COVERAGE_GRID) as f32 + 0.5) * step;
                    contents.in_nebula(Vec2::new(x, y))
                })
                .count()
        };
        Self {
            asteroids: contents.asteroids.len() as u16,
            ore: contents.total_ore(),
            nebula_coverage: covered as f32 / (COVERAGE_GRID * COVERAGE_GRID) as f32,
            hazards: contents.hazards.len() as u8,
        }
    }
}

/// A generated region: one summary per sector, row by row, and the hash of every sector's
/// full contents (the golden value designers' presets are pinned to).
#[derive(Debug, Clone)]
pub struct RegionSummary {
    pub region: Region,
    pub generator_version: u32,
    pub sector_size: f32,
    /// Row-major: index `row * width + column`.
    pub sectors: Vec<SectorSummary>,
    pub hash: u64,
}

impl RegionSummary {
    /// Generates every sector of `region` (rows in parallel); `progress` is told how many
    /// sectors each finished row held.
    pub fn generate(
        generator: &SectorGenerator,
        sector_size: f32,
        region: Region,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Self {
        let rows: Vec<(Vec<SectorSummary>, u64)> = (0..region.height())
            .into_par_iter()
            .map(|row| {
                let generated = summarize_row(region.width(), |column| {
                    let contents = generator.generate(region.at(column, row));
                    Some((
                        SectorSummary::of(&contents, sector_size),
                        contents_hash(&contents),
                    ))
                })
                .expect("every sector is generated");
                progress(u64::from(region.width()));
                generated
            })
            .collect();
        Self::from_rows(region, generator.version(), sector_size, rows)
    }

    /// The summary of `region` from sectors summarized earlier (a designer's cache): each
    /// sector's summary and its contents' hash, `None` if some sector is missing. Equal to
    /// what [`RegionSummary::generate`] makes of the same sectors, hash included.
    pub fn from_sectors(
        region: Region,
        generator_version: u32,
        sector_size: f32,
        mut sector: impl FnMut(SectorCoord) -> Option<(SectorSummary, u64)>,
    ) -> Option<Self> {
        let rows = (0..region.height())
            .map(|row| summarize_row(region.width(), |column| sector(region.at(column, row))))
            .collect::<Option<Vec<_>>>()?;
        Some(Self::from_rows(
            region,
            generator_version,
            sector_size,
            rows,
        ))
    }

    /// Row results combined in row order: the same hash whatever the thread count.
    fn from_rows(
        region: Region,
        generator_version: u32,
        sector_size: f32,
        rows: Vec<(Vec<SectorSummary>, u64)>,
    ) -> Self {
        let mut hasher = StateHasher::default();
        hasher.write_u32(generator_version);
        hasher.write_i32(region.from.x);
        hasher.write_i32(region.from.y);
        hasher.write_u32(region.width());
        hasher.write_u32(region.height());
        let mut sectors = Vec::with_capacity(region.sectors() as usize);
        for (summaries, row_hash) in rows {
            hasher.write_u64(row_hash);
            sectors.extend(summaries);
        }
        Self {
            region,
            generator_version,
            sector_size,
            sectors,
            hash: hasher.finish(),
        }
    }

    pub fn get(&self, column: u32, row: u32) -> &SectorSummary {
        &self.sectors[(row * self.region.width() + column) as usize]
    }
}

/// One row's sector summaries and the hash of their contents' hashes, in column order.
fn summarize_row(
    width: u32,
    mut sector: impl FnMut(u32) -> Option<(SectorSummary, u64)>,
) -> Option<(Vec<SectorSummary>, u64)> {
    let mut hasher = StateHasher::default();
    let mut summaries = Vec::with_capacity(width as usize);
    for column in 0..width {
        let (summary, hash) = sector(column)?;
        hasher.write_u64(hash);
        summaries.push(summary);
    }
    Some((summaries, hasher.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_parse_and_bad_ones_are_named() {
        assert_eq!(
            "-10, 25".parse::<Coord>().unwrap().0,
            SectorCoord::new(-10, 25)
        );
        for bad in ["", "3", "3;4", "a,1", "1,2,3", "99999999999,0"] {
            let e = bad.parse::<Coord>().unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn regions_include_both_corners_and_refuse_reversed_or_huge_ones() {
        let c = |s: &str| s.parse::<Coord>().unwrap();
        let r = Region::new(c("-2,-1"), c("2,1")).unwrap();
        assert_eq!((r.width(), r.height(), r.sectors()), (5, 3, 15));
        assert_eq!(r.at(4, 2), SectorCoord::new(2, 1));
        let e = Region::new(c("1,0"), c("0,0")).unwrap_err();
        assert!(e.to_string().contains("from must be the smaller"), "{e}");
        let e = Region::new(c("0,0"), c("2000,2000")).unwrap_err();
        assert!(e.to_string().contains("4004001 sectors"), "{e}");
        // The whole i32 grid (2^32 x 2^32 sectors) does not overflow anything.
        let e = Region::new(c("-2147483648,0"), c("2147483647,0")).unwrap_err();
        assert!(matches!(e, RegionError::TooLarge { .. }));
        let e = Region::new(c("-2147483648,-2147483648"), c("2147483647,2147483647")).unwrap_err();
        assert!(matches!(e, RegionError::TooLarge { .. }), "{e}");
    }
}
