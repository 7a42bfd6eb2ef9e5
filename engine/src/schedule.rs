//! The fixed-step tick schedule and the resources every tick reads.

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{LogLevel, ScheduleBuildSettings, ScheduleLabel};

use crate::hash::{StateHashRegistry, StateHasher};
use crate::ids::NetIdAllocator;
use crate::rng::UniverseSeed;

/// The schedule that advances the world by exactly one tick. Run it only through
/// [`crate::Simulation::step`], which advances [`Tick`] first.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct TickSchedule;

/// Number of the tick being simulated (1 for the first tick); after `n` steps it reads `n`.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tick(pub u64);

/// The constant step. `dt_s` is derived once from `hz` so every system uses the same bits.
#[derive(Resource, Debug, Clone, Copy, PartialEq)]
pub struct TickRate {
    pub hz: u32,
    pub dt_s: f32,
}

impl TickRate {
    /// # Panics
    /// When `hz` is zero: a tick rate is validated by the config loader before it gets here.
    pub fn new(hz: u32) -> Self {
        assert!(hz > 0, "tick rate must be at least 1 Hz");
        Self {
            hz,
            dt_s: 1.0 / hz as f32,
        }
    }
}

/// Installs the tick schedule and the engine resources.
///
/// Config as public fields, like bevy's own plugins.
#[derive(Debug, Clone)]
pub struct EnginePlugin {
    pub universe_seed: u64,
    pub tick_rate_hz: u32,
}

impl Plugin for EnginePlugin {
    fn build(&self, app: &mut App) {
        let mut schedule = Schedule::new(TickSchedule);
        // Determinism rule 5: every pair of systems with conflicting access must be ordered.
        schedule.set_build_settings(ScheduleBuildSettings {
            ambiguity_detection: LogLevel::Error,
            ..Default::default()
        });
        app.add_schedule(schedule)
            .insert_resource(Tick(0))
            .insert_resource(TickRate::new(self.tick_rate_hz))
            .insert_resource(UniverseSeed(self.universe_seed))
            .init_resource::<NetIdAllocator>()
            .init_resource::<StateHashRegistry>();
        app.world_mut()
            .resource_mut::<StateHashRegistry>()
            .register("engine", hash_engine_state);
    }
}

fn hash_engine_state(world: &mut World, hasher: &mut StateHasher) {
    hasher.write_u64(world.resource::<Tick>().0);
    hasher.write_u64(world.resource::<UniverseSeed>().0);
    hasher.write_u64(world.resource::<NetIdAllocator>().peek_next().0);
}
