//! The universe configuration: parsed from TOML text (the caller reads the file; the sim does
//! no I/O) and validated field by field, so a designer's typo becomes an error naming the
//! file, the field and the reason.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

/// The configuration compiled into the binary: `assets/universe.toml`.
pub const EMBEDDED_CONFIG_TOML: &str = include_str!("../../assets/universe.toml");
/// How the embedded default is named in error messages.
pub const EMBEDDED_CONFIG_ORIGIN: &str = "<embedded assets/universe.toml>";

/// A rejected configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: field `{field}`: {reason}")]
    Field {
        origin: String,
        field: &'static str,
        reason: String,
    },
}

#[derive(Resource, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniverseConfig {
    pub generator_version: u32,
    pub simulation: SimulationConfig,
    pub limits: LimitsConfig,
    pub ships: ShipsConfig,
    pub sensors: SensorsConfig,
    pub physics: PhysicsConfig,
    pub mining: MiningConfig,
    pub sectors: SectorsConfig,
    pub generation: GenerationConfig,
    pub scripts: ScriptsConfig,
    pub persistence: PersistenceConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationConfig {
    pub tick_rate_hz: u32,
    pub sector_size: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_ships: u32,
    pub max_contacts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipsConfig {
    pub radius: f32,
    pub hull: f32,
    pub max_speed: f32,
    pub acceleration: f32,
    pub turn_rate: f32,
    pub brake_keep_per_s: f32,
    pub energy_max: f32,
    pub energy_regen_per_s: f32,
    pub thrust_energy_per_s: f32,
    pub cargo_capacity: u32,
    pub spawn_per_sector: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorsConfig {
    pub range: f32,
    pub nebula_range_factor: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhysicsConfig {
    pub collision_damage_per_impulse: f32,
    pub restitution: f32,
    pub solver_iterations: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiningConfig {
    pub reach: f32,
    pub ore_per_tick: u32,
    pub energy_per_tick: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectorsConfig {
    pub load_radius: u32,
    pub unload_after_ticks: u32,
}

/// Player-script rules: fuel, back-off, sandbox limits. All of it shapes what scripts can do,
/// so all of it is part of the universe (and of what a replay must reproduce).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptsConfig {
    pub fuel_per_tick: u64,
    pub fuel_bucket_max: u64,
    pub fuel_burst_max: u64,
    /// What one account's ships in one sector may use per tick, together.
    pub account_fuel_per_tick_max: u64,
    /// What all scripts in one sector (runs and starts) may use per tick. Fuel is shared per
    /// sector so that no sector's results depend on anything outside it (see `script_budget`).
    pub sector_fuel_per_tick_max: u64,
    pub faults_before_backoff: u32,
    pub backoff_first_skip_ticks: u64,
    pub backoff_max_skip_ticks: u64,
    pub backoff_clean_runs_to_forgive: u32,
    pub max_module_bytes: u32,
    pub max_memory_pages: u32,
    pub max_table_elements: u32,
    pub stack_bytes: u32,
    pub start_fuel: u64,
    pub log_lines_per_tick: u32,
    pub log_line_bytes: u32,
    pub log_fuel: u64,
    pub log_ring_lines: u32,
    pub fault_log_max: u32,
    pub max_scripts: u32,
}

/// When worlds are checkpointed. Part of the simulation's result: at every checkpoint tick the
/// physics caches are rebuilt from ECS state (so a restored world is identical to the live one),
/// whether or not anything is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistenceConfig {
    pub checkpoint_every_ticks: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    pub belt_frequency: f64,
    pub belt_threshold: f64,
    pub max_asteroids_per_sector: u32,
    pub asteroid_radius_min: f32,
    pub asteroid_radius_max: f32,
    pub ore_per_asteroid_min: u32,
    pub ore_per_asteroid_max: u32,
    pub nebula_frequency: f64,
    pub nebula_threshold: f64,
    pub max_nebulae_per_sector: u32,
    pub nebula_radius_min: f32,
    pub nebula_radius_max: f32,
    pub hazard_chance: f64,
    pub hazard_radius_min: f32,
    pub hazard_radius_max: f32,
    pub hazard_damage_per_s: f32,
}

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

impl Default for UniverseConfig {
    fn default() -> Self {
        Self::from_toml_str(EMBEDDED_CONFIG_TOML, EMBEDDED_CONFIG_ORIGIN)
            .expect("the embedded assets/universe.toml is valid (checked by a test)")
    }
}

/// Collects field checks; the first failure is reported.
struct Check<'a> {
    origin: &'a str,
    error: Option<ConfigError>,
}

impl Check<'_> {
    fn fail(&mut self, field: &'static str, reason: String) {
        if self.error.is_none() {
            self.error = Some(ConfigError::Field {
                origin: self.origin.to_string(),
                field,
                reason,
            });
        }
    }

    fn range_f32(&mut self, field: &'static str, value: f32, min: f32, max: f32) {
        if !(value.is_finite() && value >= min && value <= max) {
            self.fail(
                field,
                format!("must be between {min} and {max}, got {value}"),
            );
        }
    }

    fn range_f64(&mut self, field: &'static str, value: f64, min: f64, max: f64) {
        if !(value.is_finite() && value >= min && value <= max) {
            self.fail(
                field,
                format!("must be between {min} and {max}, got {value}"),
            );
        }
    }

    fn range_u64(&mut self, field: &'static str, value: u64, min: u64, max: u64) {
        if !(min..=max).contains(&value) {
            self.fail(
                field,
                format!("must be between {min} and {max}, got {value}"),
            );
        }
    }

    fn range_u32(&mut self, field: &'static str, value: u32, min: u32, max: u32) {
        if !(min..=max).contains(&value) {
            self.fail(
                field,
                format!("must be between {min} and {max}, got {value}"),
            );
        }
    }

    fn ordered<T: PartialOrd + std::fmt::Display>(
        &mut self,
        min_field: &'static str,
        min: T,
        max_field: &'static str,
        max: T,
    ) {
        if min > max {
            self.fail(
                min_field,
                format!("must not exceed `{max_field}` ({max}), got {min}"),
            );
        }
    }
}

/// Fields older configurations may still have: (table, field, full name, why it is refused).
const RETIRED_FIELDS: &[(&str, &str, &str, &str)] = &[(
    "scripts",
    "world_fuel_per_tick_max",
    "scripts.world_fuel_per_tick_max",
    "replaced by `scripts.sector_fuel_per_tick_max` (per sector now): it caps the fuel of all \
     scripts in one sector per tick, no longer of the whole world",
)];

/// The first retired field `text` (which failed to parse) still has, as an error naming it.
fn retired_field(text: &str, origin: &str) -> Option<ConfigError> {
    let table: toml::Table = toml::from_str(text).ok()?;
    RETIRED_FIELDS
        .iter()
        .find(|(section, field, ..)| {
            table
                .get(*section)
                .and_then(toml::Value::as_table)
                .is_some_and(|t| t.contains_key(*field))
        })
        .map(|&(_, _, field, reason)| ConfigError::Field {
            origin: origin.to_string(),
            field,
            reason: reason.to_string(),
        })
}

/// The configuration text of a world stored by an older build, with every retired field that
/// has a same-typed successor renamed to it (`None` when there is nothing to rename). A stored
/// world keeps its numbers: its `world_fuel_per_tick_max` becomes its per-sector cap, which
/// lets every sector use what the whole world could before. The configuration digest is taken
/// over values in field order, not names, so the world's checkpoints still match.
pub fn migrate_stored_config(text: &str) -> Option<String> {
    const RENAMED: &[(&str, &str, &str)] = &[(
        "scripts",
        "world_fuel_per_tick_max",
        "sector_fuel_per_tick_max",
    )];
    let mut table: toml::Table = toml::from_str(text).ok()?;
    let mut changed = false;
    for (section, old, new) in RENAMED {
        let Some(section) = table.get_mut(*section).and_then(toml::Value::as_table_mut) else {
            continue;
        };
        if section.contains_key(*new) {
            continue;
        }
        if let Some(value) = section.remove(*old) {
            section.insert((*new).to_owned(), value);
            changed = true;
        }
    }
    changed.then(|| toml::to_string(&table).expect("a parsed table serializes"))
}

/// The highest generator version this build knows how to generate.
pub const GENERATOR_VERSION_SUPPORTED: u32 = 1;

impl UniverseConfig {
    /// The configuration as TOML (what `from_toml_str` reads back to an equal value).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).expect("the configuration is plain tables of numbers")
    }

    /// Parses and validates `text`; `origin` (usually the file path) prefixes every error.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: UniverseConfig = toml::from_str(text).map_err(|e| {
            // A field this build no longer reads is named with what replaced it, rather than
            // as an unknown field (or its replacement as a missing one).
            retired_field(text, origin).unwrap_or_else(|| ConfigError::Parse {
                origin: origin.to_string(),
                message: e.to_string().trim_end().to_string(),
            })
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks every field's range and the relations between fields.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let mut c = Check {
            origin,
            error: None,
        };
        let (s, l, sh, se, p, m, sc, g) = (
            &self.simulation,
            &self.limits,
            &self.ships,
            &self.sensors,
            &self.physics,
            &self.mining,
            &self.sectors,
            &self.generation,
        );
        c.range_u32(
            "generator_version",
            self.generator_version,
            1,
            GENERATOR_VERSION_SUPPORTED,
        );
        c.range_u32("simulation.tick_rate_hz", s.tick_rate_hz, 1, 120);
        c.range_f32("simulation.sector_size", s.sector_size, 100.0, 10_000.0);
        c.range_u32("limits.max_ships", l.max_ships, 1, 1_000_000);
        c.range_u32("limits.max_contacts", l.max_contacts, 1, 256);
        c.range_f32("ships.radius", sh.radius, 0.1, 50.0);
        c.range_f32("ships.hull", sh.hull, 1.0, 1e6);
        c.range_f32("ships.max_speed", sh.max_speed, 0.1, 1_000.0);
        c.range_f32("ships.acceleration", sh.acceleration, 0.0, 1_000.0);
        c.range_f32("ships.turn_rate", sh.turn_rate, 0.0, 50.0);
        c.range_f32("ships.brake_keep_per_s", sh.brake_keep_per_s, 0.0, 1.0);
        c.range_f32("ships.energy_max", sh.energy_max, 0.0, 1e6);
        c.range_f32("ships.energy_regen_per_s", sh.energy_regen_per_s, 0.0, 1e6);
        c.range_f32(
            "ships.thrust_energy_per_s",
            sh.thrust_energy_per_s,
            0.0,
            1e6,
        );
        c.range_u32("ships.cargo_capacity", sh.cargo_capacity, 0, 1_000_000_000);
        c.range_u32("ships.spawn_per_sector", sh.spawn_per_sector, 1, 10_000);
        // A sensor range above quarter a sector would need more than the 3x3 neighbourhood of
        // grid cells and sectors that the sensor pass and sector streaming look at.
        c.range_f32("sensors.range", se.range, 1.0, s.sector_size / 2.0);
        c.range_f32(
            "sensors.nebula_range_factor",
            se.nebula_range_factor,
            0.0,
            1.0,
        );
        c.range_f32(
            "physics.collision_damage_per_impulse",
            p.collision_damage_per_impulse,
            0.0,
            1e6,
        );
        c.range_f32("physics.restitution", p.restitution, 0.0, 1.0);
        c.range_u32("physics.solver_iterations", p.solver_iterations, 1, 8);
        // Continuous collision detection is off: a ship must not move further in one tick than
        // the smallest asteroid is wide, or it could pass through it.
        let step_max = sh.max_speed / s.tick_rate_hz as f32;
        if step_max > 2.0 * g.asteroid_radius_min {
            c.fail(
                "ships.max_speed",
                format!(
                    "a ship would move {step_max} units per tick, more than the smallest asteroid \
                     is wide (2 x generation.asteroid_radius_min = {}); lower it or raise the \
                     tick rate",
                    2.0 * g.asteroid_radius_min
                ),
            );
        }
        c.range_f32("mining.reach", m.reach, 0.0, se.range);
        c.range_u32("mining.ore_per_tick", m.ore_per_tick, 0, 1_000_000);
        c.range_f32("mining.energy_per_tick", m.energy_per_tick, 0.0, 1e6);
        c.range_u32("sectors.load_radius", sc.load_radius, 1, 4);
        c.range_u32(
            "sectors.unload_after_ticks",
            sc.unload_after_ticks,
            1,
            1_000_000,
        );
        // The generation fields from the same table the design view's sliders use, so the two
        // cannot disagree; each `_max` is checked against its `_min` right after its range.
        for range in generation_ranges(s.sector_size) {
            let value = g
                .get(range.field)
                .expect("the table names generation fields");
            let lower = range.not_below.map(|field| {
                (
                    field,
                    g.get(field).expect("the table names generation fields"),
                )
            });
            // Each field is checked in its own type, so errors print its value as written.
            match range.kind {
                GenerationFieldKind::F64 => {
                    c.range_f64(range.field, value, range.min, range.max);
                    if let Some((field, low)) = lower {
                        c.ordered(field, low, range.field, value);
                    }
                }
                GenerationFieldKind::F32 => {
                    c.range_f32(
                        range.field,
                        value as f32,
                        range.min as f32,
                        range.max as f32,
                    );
                    if let Some((field, low)) = lower {
                        c.ordered(field, low as f32, range.field, value as f32);
                    }
                }
                GenerationFieldKind::U32 => {
                    c.range_u32(
                        range.field,
                        value as u32,
                        range.min as u32,
                        range.max as u32,
                    );
                    if let Some((field, low)) = lower {
                        c.ordered(field, low as u32, range.field, value as u32);
                    }
                }
            }
        }
        let sp = &self.scripts;
        c.range_u64("scripts.fuel_per_tick", sp.fuel_per_tick, 1, 1_000_000_000);
        c.range_u64(
            "scripts.fuel_bucket_max",
            sp.fuel_bucket_max,
            1,
            1_000_000_000_000,
        );
        c.range_u64(
            "scripts.fuel_burst_max",
            sp.fuel_burst_max,
            1,
            1_000_000_000_000,
        );
        c.ordered(
            "scripts.fuel_per_tick",
            sp.fuel_per_tick,
            "scripts.fuel_bucket_max",
            sp.fuel_bucket_max,
        );
        c.range_u64(
            "scripts.account_fuel_per_tick_max",
            sp.account_fuel_per_tick_max,
            1,
            1_000_000_000_000,
        );
        c.range_u64(
            "scripts.sector_fuel_per_tick_max",
            sp.sector_fuel_per_tick_max,
            1,
            1_000_000_000_000,
        );
        c.ordered(
            "scripts.account_fuel_per_tick_max",
            sp.account_fuel_per_tick_max,
            "scripts.sector_fuel_per_tick_max",
            sp.sector_fuel_per_tick_max,
        );
        c.range_u32(
            "scripts.backoff_clean_runs_to_forgive",
            sp.backoff_clean_runs_to_forgive,
            1,
            1_000_000,
        );
        c.range_u32(
            "scripts.faults_before_backoff",
            sp.faults_before_backoff,
            1,
            1_000,
        );
        c.range_u64(
            "scripts.backoff_first_skip_ticks",
            sp.backoff_first_skip_ticks,
            1,
            1_000_000,
        );
        c.range_u64(
            "scripts.backoff_max_skip_ticks",
            sp.backoff_max_skip_ticks,
            1,
            10_000_000,
        );
        c.ordered(
            "scripts.backoff_first_skip_ticks",
            sp.backoff_first_skip_ticks,
            "scripts.backoff_max_skip_ticks",
            sp.backoff_max_skip_ticks,
        );
        c.range_u32(
            "scripts.max_module_bytes",
            sp.max_module_bytes,
            1_024,
            64 << 20,
        );
        // The sensor and command blocks must fit in the first page; 1 GiB is plenty.
        c.range_u32("scripts.max_memory_pages", sp.max_memory_pages, 1, 16_384);
        c.range_u32(
            "scripts.max_table_elements",
            sp.max_table_elements,
            0,
            10_000_000,
        );
        c.range_u32("scripts.stack_bytes", sp.stack_bytes, 16 << 10, 64 << 20);
        c.range_u64(
            "scripts.start_fuel",
            sp.start_fuel,
            1_000,
            1_000_000_000_000,
        );
        c.range_u32(
            "scripts.log_lines_per_tick",
            sp.log_lines_per_tick,
            0,
            1_000,
        );
        c.range_u32("scripts.log_line_bytes", sp.log_line_bytes, 1, 64 << 10);
        c.range_u64("scripts.log_fuel", sp.log_fuel, 0, 1_000_000_000);
        c.range_u32("scripts.log_ring_lines", sp.log_ring_lines, 0, 100_000);
        c.range_u32("scripts.fault_log_max", sp.fault_log_max, 0, 1_000_000);
        c.range_u32("scripts.max_scripts", sp.max_scripts, 1, 1_000_000);
        c.range_u64(
            "persistence.checkpoint_every_ticks",
            self.persistence.checkpoint_every_ticks,
            1,
            1_000_000,
        );
        match c.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_config_is_valid() {
        let config = UniverseConfig::default();
        assert_eq!(config.simulation.tick_rate_hz, 10);
    }

    #[test]
    fn written_toml_reads_back_to_the_same_configuration() {
        // Replays embed the configuration this way; floats must survive exactly.
        let mut config = UniverseConfig::default();
        config.ships.max_speed = 29.123_457;
        config.generation.belt_threshold = 0.1 + 0.2;
        let back = UniverseConfig::from_toml_str(&config.to_toml_string(), "written").unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn out_of_range_field_is_named_with_file_and_reason() {
        let text = EMBEDDED_CONFIG_TOML.replace("range = 200.0", "range = 900.0");
        let err = UniverseConfig::from_toml_str(&text, "my.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "my.toml: field `sensors.range`: must be between 1 and 500, got 900"
        );
    }

    #[test]
    fn min_above_max_is_rejected() {
        let text =
            EMBEDDED_CONFIG_TOML.replace("asteroid_radius_min = 4.0", "asteroid_radius_min = 20.0");
        let err = UniverseConfig::from_toml_str(&text, "a.toml").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("a.toml: field `generation.asteroid_radius_min`"),
            "{msg}"
        );
        assert!(
            msg.contains("must not exceed `generation.asteroid_radius_max`"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_and_mistyped_fields_are_rejected_with_their_names() {
        let text =
            EMBEDDED_CONFIG_TOML.replace("load_radius = 1", "load_radius = 1\nlaod_radius = 2");
        let msg = UniverseConfig::from_toml_str(&text, "b.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("b.toml: "), "{msg}");
        assert!(msg.contains("laod_radius"), "{msg}");

        let text = EMBEDDED_CONFIG_TOML.replace("tick_rate_hz = 10", "tick_rate_hz = \"fast\"");
        let msg = UniverseConfig::from_toml_str(&text, "c.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("c.toml: "), "{msg}");
        assert!(msg.contains("tick_rate_hz"), "{msg}");
    }

    #[test]
    fn the_retired_world_fuel_cap_is_refused_with_its_replacement() {
        // An old configuration: the world-wide cap under its old name.
        let text = EMBEDDED_CONFIG_TOML
            .replace("sector_fuel_per_tick_max = ", "world_fuel_per_tick_max = ");
        let err = UniverseConfig::from_toml_str(&text, "old.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "old.toml: field `scripts.world_fuel_per_tick_max`: replaced by \
             `scripts.sector_fuel_per_tick_max` (per sector now): it caps the fuel of all \
             scripts in one sector per tick, no longer of the whole world"
        );
        // With both fields, the old one is still refused by name.
        let text = EMBEDDED_CONFIG_TOML.replace(
            "sector_fuel_per_tick_max = ",
            "world_fuel_per_tick_max = 1\nsector_fuel_per_tick_max = ",
        );
        let err = UniverseConfig::from_toml_str(&text, "both.toml").unwrap_err();
        assert!(
            matches!(&err, ConfigError::Field { field, .. } if *field == "scripts.world_fuel_per_tick_max"),
            "{err}"
        );
    }

    #[test]
    fn the_generation_range_table_names_every_generation_field_once() {
        let written = toml::to_string(&UniverseConfig::default().generation).unwrap();
        let table: toml::Table = toml::from_str(&written).unwrap();
        let mut in_config: Vec<String> = table.keys().map(|k| format!("generation.{k}")).collect();
        let mut in_ranges: Vec<String> = generation_ranges(1000.0)
            .iter()
            .map(|r| r.field.to_string())
            .collect();
        in_config.sort();
        in_ranges.sort();
        assert_eq!(in_ranges, in_config);
    }

    #[test]
    fn generation_fields_read_and_write_by_name_and_validation_uses_the_table() {
        let config = UniverseConfig::default();
        assert_eq!(
            config.generation.get("generation.hazard_chance"),
            Some(0.05)
        );
        assert_eq!(config.generation.get("hazard_chance"), None);
        assert_eq!(config.generation.get("generation.nope"), None);
        for range in generation_ranges(config.simulation.sector_size) {
            let mut bad = config.clone();
            assert!(bad.generation.set(range.field, range.max + 1.0));
            let err = bad.validate("t.toml").unwrap_err();
            assert!(
                matches!(&err, ConfigError::Field { field, .. } if *field == range.field),
                "{}: {err}",
                range.field
            );
            let mut at_max = config.clone();
            at_max.generation.set(range.field, range.max);
            assert_eq!(at_max.generation.get(range.field), Some(range.max));
        }
        let mut g = config.generation.clone();
        assert!(g.set("generation.max_asteroids_per_sector", 7.6));
        assert_eq!(g.max_asteroids_per_sector, 8);
        assert!(!g.set("generation.nope", 1.0));
    }

    #[test]
    fn missing_field_is_named() {
        let text = EMBEDDED_CONFIG_TOML.replace("hazard_chance = 0.05\n", "");
        let msg = UniverseConfig::from_toml_str(&text, "d.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("hazard_chance"), "{msg}");
    }
}
