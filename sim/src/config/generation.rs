//! The `[generation]` fields: the range validation allows each, and reading and writing them
//! by name (the designer's sliders and presets).

use super::GenerationConfig;

/// How a `[generation]` field is stored, which decides how it is checked (and shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationFieldKind {
    F64,
    F32,
    /// A whole number.
    U32,
}

/// The range validation allows one `[generation]` field. Bounds are widened to f64 exactly
/// (every f32 and u32 is an f64), so narrowing them back gives the field's own bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerationRange {
    /// Its full name, as errors name it: `generation.belt_frequency`.
    pub field: &'static str,
    pub kind: GenerationFieldKind,
    pub min: f64,
    pub max: f64,
    /// The field that must not exceed this one (a `_max` field's `_min`).
    pub not_below: Option<&'static str>,
}

/// Every `[generation]` field with its validated range, in the order validation checks them.
/// Some bounds depend on the sector's size, hence a function of it.
pub fn generation_ranges(sector_size: f32) -> [GenerationRange; 16] {
    use GenerationFieldKind::{F32, F64, U32};
    let range = |field, kind, min: f64, max: f64| GenerationRange {
        field,
        kind,
        min,
        max,
        not_below: None,
    };
    let at_least = |field, kind, min: f64, max: f64, lower| GenerationRange {
        not_below: Some(lower),
        ..range(field, kind, min, max)
    };
    // Every feature lies wholly inside its sector (sectors stay self-contained), so radii
    // are capped at a quarter of the sector.
    let quarter = f64::from(sector_size / 4.0);
    [
        range("generation.belt_frequency", F64, 1e-6, 10.0),
        range("generation.belt_threshold", F64, -1.0, 1.0),
        range("generation.max_asteroids_per_sector", U32, 0.0, 256.0),
        range("generation.asteroid_radius_min", F32, 0.5, quarter),
        at_least(
            "generation.asteroid_radius_max",
            F32,
            0.5,
            quarter,
            "generation.asteroid_radius_min",
        ),
        range("generation.ore_per_asteroid_min", U32, 0.0, 1_000_000.0),
        at_least(
            "generation.ore_per_asteroid_max",
            U32,
            0.0,
            1_000_000.0,
            "generation.ore_per_asteroid_min",
        ),
        range("generation.nebula_frequency", F64, 1e-6, 10.0),
        range("generation.nebula_threshold", F64, -1.0, 1.0),
        range("generation.max_nebulae_per_sector", U32, 0.0, 16.0),
        range("generation.nebula_radius_min", F32, 1.0, quarter),
        at_least(
            "generation.nebula_radius_max",
            F32,
            1.0,
            quarter,
            "generation.nebula_radius_min",
        ),
        range("generation.hazard_chance", F64, 0.0, 1.0),
        range("generation.hazard_radius_min", F32, 1.0, quarter),
        at_least(
            "generation.hazard_radius_max",
            F32,
            1.0,
            quarter,
            "generation.hazard_radius_min",
        ),
        range("generation.hazard_damage_per_s", F32, 0.0, 1e6),
    ]
}

/// Reads and writes `[generation]` fields by their full names (what [`generation_ranges`]
/// lists), for code that handles every field alike: validation and the design view.
macro_rules! generation_fields_by_name {
    ($($field:ident: $ty:ident),* $(,)?) => {
        impl GenerationConfig {
            /// The value of `field` (`generation.NAME`), widened to f64 (exactly); `None` for
            /// a name that is not a generation field.
            pub fn get(&self, field: &str) -> Option<f64> {
                match field.strip_prefix("generation.")? {
                    $(stringify!($field) => Some(f64::from(self.$field)),)*
                    _ => None,
                }
            }

            /// Sets `field` (`generation.NAME`) to `value` narrowed to the field's type (to
            /// the nearest f32, or the nearest whole number, saturating); false for a name
            /// that is not a generation field. Nothing is validated here.
            pub fn set(&mut self, field: &str, value: f64) -> bool {
                let Some(name) = field.strip_prefix("generation.") else {
                    return false;
                };
                match name {
                    $(stringify!($field) => {
                        self.$field = generation_fields_by_name!(@narrow $ty, value);
                    })*
                    _ => return false,
                }
                true
            }
        }
    };
    (@narrow f64, $value:expr) => { $value };
    (@narrow f32, $value:expr) => { $value as f32 };
    (@narrow u32, $value:expr) => { $value.round() as u32 };
}

generation_fields_by_name! {
    belt_frequency: f64,
    belt_threshold: f64,
    max_asteroids_per_sector: u32,
    asteroid_radius_min: f32,
    asteroid_radius_max: f32,
    ore_per_asteroid_min: u32,
    ore_per_asteroid_max: u32,
    nebula_frequency: f64,
    nebula_threshold: f64,
    max_nebulae_per_sector: u32,
    nebula_radius_min: f32,
    nebula_radius_max: f32,
    hazard_chance: f64,
    hazard_radius_min: f32,
    hazard_radius_max: f32,
    hazard_damage_per_s: f32,
}
