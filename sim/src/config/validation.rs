//! Validation: every field's range and the relations between fields, the first failure
//! reported with the file, the field and the reason.

use super::{
    ConfigError, GENERATOR_VERSION_SUPPORTED, GenerationFieldKind, UniverseConfig,
    generation_ranges,
};

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

impl UniverseConfig {
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
