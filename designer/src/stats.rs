//! Distribution tables over a generated region, alone or two side by side.

use std::fmt::Write as _;

use serde::Serialize;

use astroboids_engine::stats::nearest_rank;

use crate::region::RegionSummary;

/// How a per-sector quantity is distributed over a region (nearest-rank percentiles).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Distribution {
    pub min: f64,
    pub p10: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Distribution {
    /// Of `values` (sorted here).
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let rank = |q: f64| nearest_rank(&values, q).unwrap_or(0.0);
        Self {
            min: values.first().copied().unwrap_or(0.0),
            p10: rank(0.10),
            p25: rank(0.25),
            p50: rank(0.50),
            p75: rank(0.75),
            p90: rank(0.90),
            p99: rank(0.99),
            max: values.last().copied().unwrap_or(0.0),
            mean: values.iter().sum::<f64>() / values.len().max(1) as f64,
        }
    }
}

/// What a designer reads off a region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionStats {
    pub sectors: u64,
    pub generator_version: u32,
    /// Hash of every sector's full contents (changes with any change to generation).
    pub region_hash: String,
    pub asteroids_per_sector: Distribution,
    pub ore_per_sector: Distribution,
    pub total_asteroids: u64,
    pub total_ore: u64,
    /// Share of sectors without asteroids.
    pub empty_share: f64,
    /// Share of sectors with at least one nebula.
    pub nebula_sector_share: f64,
    /// Share of the region's area inside nebulae.
    pub nebula_area_share: f64,
    /// Share of sectors with a hazard.
    pub hazard_share: f64,
}

impl RegionStats {
    pub fn of(summary: &RegionSummary) -> Self {
        let sectors = &summary.sectors;
        let n = sectors.len().max(1) as f64;
        let share = |hit: usize| hit as f64 / n;
        Self {
            sectors: sectors.len() as u64,
            generator_version: summary.generator_version,
            region_hash: format!("{:016x}", summary.hash),
            asteroids_per_sector: Distribution::of(
                sectors.iter().map(|s| f64::from(s.asteroids)).collect(),
            ),
            ore_per_sector: Distribution::of(sectors.iter().map(|s| s.ore as f64).collect()),
            total_asteroids: sectors.iter().map(|s| u64::from(s.asteroids)).sum(),
            total_ore: sectors.iter().map(|s| s.ore).sum(),
            empty_share: share(sectors.iter().filter(|s| s.asteroids == 0).count()),
            nebula_sector_share: share(sectors.iter().filter(|s| s.nebula_coverage > 0.0).count()),
            nebula_area_share: sectors
                .iter()
                .map(|s| f64::from(s.nebula_coverage))
                .sum::<f64>()
                / n,
            hazard_share: share(sectors.iter().filter(|s| s.hazards > 0).count()),
        }
    }

    /// The rows of the table: (label, value as text, value as a number for comparisons).
    fn rows(&self) -> Vec<(String, String, f64)> {
        let mut rows = vec![
            (
                "sectors".to_string(),
                thousands(self.sectors as f64),
                self.sectors as f64,
            ),
            (
                "asteroids (total)".into(),
                thousands(self.total_asteroids as f64),
                self.total_asteroids as f64,
            ),
            (
                "ore (total)".into(),
                thousands(self.total_ore as f64),
                self.total_ore as f64,
            ),
            (
                "empty sectors".into(),
                percent(self.empty_share),
                self.empty_share,
            ),
            (
                "sectors with nebulae".into(),
                percent(self.nebula_sector_share),
                self.nebula_sector_share,
            ),
            (
                "area in nebulae".into(),
                percent(self.nebula_area_share),
                self.nebula_area_share,
            ),
            (
                "sectors with a hazard".into(),
                percent(self.hazard_share),
                self.hazard_share,
            ),
        ];
        for (name, d) in [
            ("asteroids per sector", &self.asteroids_per_sector),
            ("ore per sector", &self.ore_per_sector),
        ] {
            for (label, v) in [
                ("min", d.min),
                ("p10", d.p10),
                ("p25", d.p25),
                ("p50", d.p50),
                ("p75", d.p75),
                ("p90", d.p90),
                ("p99", d.p99),
                ("max", d.max),
                ("mean", d.mean),
            ] {
                let text = if label == "mean" {
                    format!("{v:.1}")
                } else {
                    thousands(v)
                };
                rows.push((format!("{name} {label}"), text, v));
            }
        }
        rows
    }

    /// The key figures on one line (what `render` prints under each map it writes).
    pub fn headline(&self) -> String {
        format!(
            "asteroids per sector p50 {} p99 {}, ore per sector p50 {}, empty {}, nebula area {}, hazards {}",
            thousands(self.asteroids_per_sector.p50),
            thousands(self.asteroids_per_sector.p99),
            thousands(self.ore_per_sector.p50),
            percent(self.empty_share),
            percent(self.nebula_area_share),
            percent(self.hazard_share)
        )
    }

    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for (label, value, _) in self.rows() {
            let _ = writeln!(out, "  {label:<26} {value:>14}");
        }
        let _ = writeln!(
            out,
            "  {:<26} {:>14}",
            "generator version", self.generator_version
        );
        let _ = writeln!(out, "  {:<26} {:>14}", "region hash", self.region_hash);
        out
    }

    /// Two regions' tables side by side (columns A and B), with the change from A to B.
    pub fn compare_table(a: &Self, b: &Self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "  {:<26} {:>14} {:>14} {:>10}", "", "A", "B", "change");
        for ((label, va, na), (_, vb, nb)) in a.rows().into_iter().zip(b.rows()) {
            let change = if na == nb {
                "=".to_string()
            } else if na == 0.0 {
                "new".to_string()
            } else {
                format!("{:+.1}%", (nb - na) / na * 100.0)
            };
            let _ = writeln!(out, "  {label:<26} {va:>14} {vb:>14} {change:>10}");
        }
        let _ = writeln!(
            out,
            "  {:<26} {:>14} {:>14}",
            "generator version", a.generator_version, b.generator_version
        );
        let _ = writeln!(
            out,
            "  {:<26} {:>14} {:>14}",
            "region hash", a.region_hash, b.region_hash
        );
        out
    }
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// Whole numbers with thousands separators (1,234,567); others with one decimal.
fn thousands(v: f64) -> String {
    if v.fract() != 0.0 {
        return format!("{v:.1}");
    }
    let digits = format!("{}", v.abs() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Distribution::of((1..=100).map(f64::from).rev().collect());
        assert_eq!(
            (d.min, d.p10, d.p50, d.p99, d.max),
            (1.0, 10.0, 50.0, 99.0, 100.0)
        );
        assert_eq!(d.mean, 50.5);
        let empty = Distribution::of(Vec::new());
        assert_eq!((empty.min, empty.p50, empty.mean), (0.0, 0.0, 0.0));
    }

    #[test]
    fn numbers_read_easily() {
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(12.5), "12.5");
        assert_eq!(percent(0.1234), "12.3%");
    }
}
