//! One slider per `[generation]` field. Each moves within the range the sim's validation
//! allows the field (`generation_ranges`, the table validation itself checks against),
//! narrowed by the rules that tie fields together, so no position of any slider makes a
//! configuration validation refuses. Every range validation allows is bounded, so no slider
//! needs a made-up maximum; the very wide ones move on a logarithmic scale.

use std::ops::RangeInclusive;

use egui::{RichText, Slider, Ui};

use astroboids_sim::config::{GenerationFieldKind, UniverseConfig, generation_ranges};

/// A range whose ends differ by this factor or more moves logarithmically (frequencies from
/// 1e-6 to 10; ore from 0 to a million): linearly, most of the useful values would share the
/// first pixel.
const LOGARITHMIC_FROM_RATIO: f64 = 1_000.0;

/// The field the ships' top speed ties to: validation refuses a smallest asteroid a ship could
/// pass through in one tick (continuous collision detection is off).
const ASTEROID_RADIUS_MIN: &str = "generation.asteroid_radius_min";

/// One field's slider.
#[derive(Debug, Clone, PartialEq)]
pub struct SliderSpec {
    /// Its full name: `generation.belt_frequency`.
    pub field: &'static str,
    pub kind: GenerationFieldKind,
    /// Where it moves now (within validation's range, given the other fields).
    pub range: RangeInclusive<f64>,
    pub logarithmic: bool,
}

impl SliderSpec {
    /// The name shown beside it: the field without its section.
    pub fn name(&self) -> &'static str {
        self.field.strip_prefix("generation.").unwrap_or(self.field)
    }
}

/// Every generation field's slider for `config` (valid), in the configuration's order.
pub fn slider_specs(config: &UniverseConfig) -> Vec<SliderSpec> {
    let g = &config.generation;
    let value = |field: &str| g.get(field).expect("the table names generation fields");
    let ranges = generation_ranges(config.simulation.sector_size);
    ranges
        .iter()
        .map(|r| {
            let (mut low, mut high) = (r.min, r.max);
            // A `_max` stays at or above its `_min` and a `_min` at or below its `_max`.
            if let Some(lower) = r.not_below {
                low = low.max(value(lower));
            }
            if let Some(upper) = ranges.iter().find(|o| o.not_below == Some(r.field)) {
                high = high.min(value(upper.field));
            }
            if r.field == ASTEROID_RADIUS_MIN {
                low = low.max(f64::from(smallest_asteroid_radius_min(config)));
            }
            let logarithmic = if r.min > 0.0 {
                r.max / r.min >= LOGARITHMIC_FROM_RATIO
            } else {
                r.max >= LOGARITHMIC_FROM_RATIO
            };
            SliderSpec {
                field: r.field,
                kind: r.kind,
                range: low..=high,
                logarithmic,
            }
        })
        .collect()
}

/// Half of what a ship moves in one tick at top speed, computed as validation computes it (in
/// f32), so that twice it is exactly the step validation compares with.
fn smallest_asteroid_radius_min(config: &UniverseConfig) -> f32 {
    let step_max = config.ships.max_speed / config.simulation.tick_rate_hz as f32;
    step_max / 2.0
}

/// Sets `field` to `value` if the configuration stays valid: whether it changed, or
/// validation's reason (naming the field) if not, leaving `config` as it was.
pub fn apply(
    config: &mut UniverseConfig,
    field: &str,
    value: f64,
    origin: &str,
) -> Result<bool, String> {
    let mut changed = config.clone();
    if !changed.generation.set(field, value) {
        return Err(format!("{origin}: no generation field `{field}`"));
    }
    if changed == *config {
        return Ok(false);
    }
    changed.validate(origin).map_err(|e| e.to_string())?;
    *config = changed;
    Ok(true)
}

/// Draws the sliders; the fields moved, with their new values (not yet applied).
pub fn show(ui: &mut Ui, config: &UniverseConfig) -> Vec<(&'static str, f64)> {
    let mut moved = Vec::new();
    for spec in slider_specs(config) {
        let current = config
            .generation
            .get(spec.field)
            .expect("the table names generation fields");
        let mut value = current;
        let (low, high) = (*spec.range.start(), *spec.range.end());
        let mut slider = Slider::new(&mut value, spec.range.clone())
            .text(spec.name())
            .logarithmic(spec.logarithmic);
        if spec.kind == GenerationFieldKind::U32 {
            slider = slider.integer();
        }
        let response = ui
            .add(slider)
            .on_hover_text(format!("{}: from {low} to {high}", spec.field));
        if response.changed() && value != current {
            moved.push((spec.field, value));
        }
    }
    if moved.is_empty() {
        ui.label(RichText::new("drag a slider: the map follows").weak());
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_min_cannot_pass_its_max_nor_a_max_its_min() {
        let config = UniverseConfig::default();
        let specs = slider_specs(&config);
        let spec = |field: &str| specs.iter().find(|s| s.field == field).unwrap().clone();
        assert_eq!(spec("generation.nebula_radius_min").range, 1.0..=220.0);
        assert_eq!(spec("generation.nebula_radius_max").range, 60.0..=250.0);
        // The default ships (30 m/s at 10 Hz) move 3 m a tick: asteroids at least 1.5 m.
        assert_eq!(spec(ASTEROID_RADIUS_MIN).range, 1.5..=16.0);
        assert_eq!(spec("generation.belt_threshold").range, -1.0..=1.0);
        assert!(spec("generation.belt_frequency").logarithmic);
        assert!(spec("generation.ore_per_asteroid_max").logarithmic);
        assert!(!spec("generation.hazard_chance").logarithmic);
        assert_eq!(
            spec("generation.max_asteroids_per_sector").name(),
            "max_asteroids_per_sector"
        );
    }

    #[test]
    fn an_invalid_value_is_refused_naming_the_field_and_changes_nothing() {
        let mut config = UniverseConfig::default();
        let before = config.clone();
        let err = apply(&mut config, "generation.hazard_chance", 1.5, "mine.toml").unwrap_err();
        assert!(
            err.starts_with("mine.toml: field `generation.hazard_chance`"),
            "{err}"
        );
        assert_eq!(config, before);
        assert_eq!(
            apply(&mut config, "generation.hazard_chance", 0.05, "x"),
            Ok(false)
        );
        assert_eq!(
            apply(&mut config, "generation.hazard_chance", 0.5, "x"),
            Ok(true)
        );
        assert_eq!(config.generation.hazard_chance, 0.5);
        assert!(apply(&mut config, "generation.nope", 1.0, "x").is_err());
    }
}
