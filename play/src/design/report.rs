//! What the design view shows, as text: for `--screenshot` output and tests.

use astroboids_designer::Region;
use astroboids_sim::config::{GenerationFieldKind, UniverseConfig, generation_ranges};

use super::DesignView;

/// At most this many lines of each kind in a report (a zoomed-out map shows tens of
/// thousands of sectors); the rest is counted in one line.
const MAX_REPORTED_SECTORS: usize = 2_000;
const MAX_REPORTED_ITEMS: usize = 5_000;

impl DesignView {
    /// What the view shows, positions in pixels (points times `pixels_per_point`): the
    /// configuration and seed, each visible sector's contents, each feature drawn and the
    /// generation values; when comparing, configuration A and both configurations' key
    /// statistics. Sectors and features are listed up to a cap, the rest counted.
    pub fn report(&self, pixels_per_point: f32) -> Vec<String> {
        let mut out = vec![format!(
            "design: {} seed {}",
            self.edited.label, self.edited.seed
        )];
        if let Some(drawn) = &self.drawn {
            let points_per_sector =
                self.camera.points_per_metre * self.edited.config.simulation.sector_size;
            out.push(format!(
                "map: {}, {} pixels per sector, {}",
                drawn.region,
                points_per_sector * pixels_per_point,
                if drawn.detail { "detail" } else { "shaded" }
            ));
            out.extend(self.sector_lines(drawn.region));
            for item in drawn.items.iter().take(MAX_REPORTED_ITEMS) {
                out.push(format!(
                    "drawn: {} at {:.1} {:.1} radius {:.2}",
                    item.kind.name(),
                    item.at.x * pixels_per_point,
                    item.at.y * pixels_per_point,
                    item.radius * pixels_per_point
                ));
            }
            if drawn.items.len() > MAX_REPORTED_ITEMS {
                out.push(format!(
                    "drawn: {} more not listed",
                    drawn.items.len() - MAX_REPORTED_ITEMS
                ));
            }
        }
        out.extend(generation_lines(&self.edited.config, ""));
        if let Some(kept) = &self.kept {
            out.push(format!("compare: A {} seed {}", kept.label, kept.seed));
            out.extend(generation_lines(&kept.config, "A "));
        }
        if let Some((_, stats)) = &self.stats {
            if let Some(kept) = &stats.kept {
                out.push(format!("stats A: {}", kept.headline()));
            }
            out.push(format!("stats: {}", stats.edited.headline()));
        }
        out
    }

    /// One line per visible sector of the edited configuration, up to the cap.
    fn sector_lines(&self, region: Region) -> Vec<String> {
        let mut out = Vec::new();
        let total = region.sectors() as usize;
        'rows: for row in 0..region.height() {
            for column in 0..region.width() {
                if out.len() == MAX_REPORTED_SECTORS {
                    break 'rows;
                }
                let coord = region.at(column, row);
                out.push(match self.cache.get(self.edited.key, coord) {
                    Some(s) => format!(
                        "sector: {},{} asteroids {} nebulae {} hazards {}",
                        coord.x, coord.y, s.summary.asteroids, s.nebulae, s.summary.hazards
                    ),
                    None => format!("sector: {},{} not generated yet", coord.x, coord.y),
                });
            }
        }
        if total > out.len() {
            out.push(format!("sector: {} more not listed", total - out.len()));
        }
        out
    }
}

/// `generation.FIELD = V` for every field, each value written in its own type.
fn generation_lines(config: &UniverseConfig, prefix: &str) -> Vec<String> {
    generation_ranges(config.simulation.sector_size)
        .iter()
        .map(|r| {
            let value = config
                .generation
                .get(r.field)
                .expect("the table names generation fields");
            let value = match r.kind {
                GenerationFieldKind::F64 => value.to_string(),
                GenerationFieldKind::F32 => (value as f32).to_string(),
                GenerationFieldKind::U32 => (value as u32).to_string(),
            };
            format!("{prefix}{} = {value}", r.field)
        })
        .collect()
}
