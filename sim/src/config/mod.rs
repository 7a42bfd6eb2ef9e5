//! The universe configuration: parsed from TOML text (the caller reads the file; the sim does
//! no I/O) and validated field by field, so a designer's typo becomes an error naming the
//! file, the field and the reason.
//!
//! Code map: this file holds the tables and reads them; `generation` the `[generation]`
//! fields' ranges and access by name, `validation` the checks, `retired` the fields older
//! configurations may still have.

mod generation;
mod retired;
mod validation;

pub use generation::{GenerationFieldKind, GenerationRange, generation_ranges};
pub use retired::migrate_stored_config;

use bevy_ecs::prelude::*;
use retired::retired_field;
use serde::{Deserialize, Serialize};

/// The configuration compiled into the binary: `assets/universe.toml`.
pub const EMBEDDED_CONFIG_TOML: &str = include_str!("../../../assets/universe.toml");
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

impl Default for UniverseConfig {
    fn default() -> Self {
        Self::from_toml_str(EMBEDDED_CONFIG_TOML, EMBEDDED_CONFIG_ORIGIN)
            .expect("the embedded assets/universe.toml is valid (checked by a test)")
    }
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
