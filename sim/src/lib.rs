//! AstroBoids game rules, as bevy plugins in a fully ordered tick schedule.
//!
//! Tick order ([`SimSet`]): Begin -> Streaming (load/unload sectors) -> Sensors ->
//! Behaviour (autopilot, player scripts) -> Inputs (external commands) -> Mining -> Movement ->
//! Physics (step, handoffs, collision damage) -> Hazards -> Destruction.
//!
//! Architecture invariant: no I/O and no wall-clock time here. Configuration arrives as text
//! or as a [`config::UniverseConfig`] value; time is the tick counter.

pub mod autopilot;
pub mod checkpoint;
pub mod config;
pub mod damage;
pub mod inputs;
pub mod mining;
pub mod physics;
pub mod scope;
mod script_budget;
mod script_stage;
pub mod scripts;
pub mod sectors;
pub mod sensors;
pub mod shard;
pub mod ships;
pub mod space;
pub mod spawn;

use bevy_app::{App, Plugin, PluginGroup, PluginGroupBuilder};
use bevy_ecs::prelude::*;

use astroboids_engine::hash::HashScope;
use astroboids_engine::{EnginePlugin, HashCost, TickSchedule};

pub use config::UniverseConfig;

/// The version of the simulation's results. Bump it with any change that alters what a world
/// does with the same seed, configuration and inputs (its state hash, tick by tick): replays
/// record it, and one recorded under another version is refused instead of failing
/// mysteriously. The golden replays in replays/ catch a change that forgot to bump it.
pub const SIM_VERSION: u32 = 6;

/// The stages of a tick, run in this order.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimSet {
    Begin,
    Streaming,
    Sensors,
    Behaviour,
    Inputs,
    Mining,
    Movement,
    Physics,
    Hazards,
    Destruction,
    /// Last: at checkpoint ticks, rebuilding physics caches (see [`physics`]).
    Checkpoint,
}

/// What happened in the last tick (reset at the start of each tick).
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct TickReport {
    pub handoffs: u32,
    pub ore_mined: u32,
    pub destroyed: Vec<astroboids_engine::NetId>,
}

/// Running totals since the world began; part of the state hash.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct SimTotals {
    pub ore_mined: u64,
    /// Ore that was in the cargo of ships when they were destroyed.
    pub ore_lost_in_wrecks: u64,
    pub ships_destroyed: u64,
    pub collision_contacts: u64,
    pub sectors_generated: u64,
    pub sectors_unloaded: u64,
    pub inputs_for_unknown_ships: u64,
    /// Fuel (wasm instructions) every script has used.
    pub script_fuel_used: u64,
    pub script_faults: u64,
}

/// Shared resources and the stage order.
#[derive(Debug, Clone)]
pub struct CorePlugin {
    pub config: UniverseConfig,
}

impl Plugin for CorePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(self.config.clone())
            .init_resource::<TickReport>()
            .init_resource::<SimTotals>()
            .configure_sets(
                TickSchedule,
                (
                    SimSet::Begin,
                    SimSet::Streaming,
                    SimSet::Sensors,
                    SimSet::Behaviour,
                    SimSet::Inputs,
                    SimSet::Mining,
                    SimSet::Movement,
                    SimSet::Physics,
                    SimSet::Hazards,
                    SimSet::Destruction,
                    SimSet::Checkpoint,
                )
                    .chain(),
            )
            .add_systems(TickSchedule, begin_tick.in_set(SimSet::Begin));
        app.world_mut()
            .resource_mut::<astroboids_engine::hash::StateHashRegistry>()
            .register_scoped("totals", HashScope::Summed(hashed_totals), HashCost::Cheap);
    }
}

fn begin_tick(mut report: ResMut<TickReport>) {
    *report = TickReport::default();
}

/// The counters that say what happened in the world, summed over shards. Sector generation
/// and unloading are left out: they count cache work, which differs with how the world is
/// split (a shard also loads its neighbours' border sectors).
fn hashed_totals(world: &World) -> Vec<u64> {
    let t = world.resource::<SimTotals>();
    vec![
        t.ore_mined,
        t.ore_lost_in_wrecks,
        t.ships_destroyed,
        t.collision_contacts,
        t.inputs_for_unknown_ships,
        t.script_fuel_used,
        t.script_faults,
    ]
}

// A script suspension refused for a ship that is missing or runs no script is an input error
// of the same name. The conversion is here, with the rest of the wiring between modules, and
// not in `scripts`: scripts sit below the input layer and know nothing of its errors.
impl From<scripts::SuspendError> for inputs::WorldInputError {
    fn from(e: scripts::SuspendError) -> Self {
        match e {
            scripts::SuspendError::UnknownShip(ship) => Self::UnknownShip(ship),
            scripts::SuspendError::NotScripted(ship) => Self::NotScripted(ship),
        }
    }
}

impl SimTotals {
    /// Every counter, in a fixed order (hashing and checkpoints).
    pub fn to_values(&self) -> Vec<u64> {
        vec![
            self.ore_mined,
            self.ore_lost_in_wrecks,
            self.ships_destroyed,
            self.collision_contacts,
            self.sectors_generated,
            self.sectors_unloaded,
            self.inputs_for_unknown_ships,
            self.script_fuel_used,
            self.script_faults,
        ]
    }

    /// The inverse of [`Self::to_values`]; `None` for a list of the wrong length.
    pub fn from_values(values: &[u64]) -> Option<Self> {
        let &[
            ore_mined,
            ore_lost_in_wrecks,
            ships_destroyed,
            collision_contacts,
            sectors_generated,
            sectors_unloaded,
            inputs_for_unknown_ships,
            script_fuel_used,
            script_faults,
        ] = values
        else {
            return None;
        };
        Some(Self {
            ore_mined,
            ore_lost_in_wrecks,
            ships_destroyed,
            collision_contacts,
            sectors_generated,
            sectors_unloaded,
            inputs_for_unknown_ships,
            script_fuel_used,
            script_faults,
        })
    }
}

/// Every game-rule plugin, in dependency order.
#[derive(Debug, Clone)]
pub struct SimPlugins {
    pub config: UniverseConfig,
    pub options: SimOptions,
}

/// How a world runs, as opposed to what it is: nothing here changes the state hash.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Threads running player scripts.
    pub script_workers: usize,
    /// Where compiled scripts are kept across restarts (none: compile on every start).
    pub script_artifacts: Option<astroboids_scripting::ArtifactDir>,
}

impl Default for SimOptions {
    /// As many script workers as the current rayon pool has threads; no artifact directory.
    fn default() -> Self {
        Self {
            script_workers: rayon::current_num_threads(),
            script_artifacts: None,
        }
    }
}

impl PluginGroup for SimPlugins {
    fn build(self) -> PluginGroupBuilder {
        PluginGroupBuilder::start::<Self>()
            .add(CorePlugin {
                config: self.config,
            })
            .add(ships::ShipsPlugin)
            .add(sectors::SectorsPlugin)
            .add(sensors::SensorsPlugin)
            .add(autopilot::AutopilotPlugin)
            .add(scripts::ScriptsPlugin {
                workers: self.options.script_workers,
                compiler: astroboids_scripting::CompilerKind::Cranelift,
                artifacts: self.options.script_artifacts,
            })
            .add(script_stage::ScriptStagePlugin)
            .add(mining::MiningPlugin)
            .add(physics::PhysicsPlugin)
            .add(damage::DamagePlugin)
    }
}

/// A ready-to-run world: engine + all game rules, no ships yet, with default [`SimOptions`].
pub fn build_simulation(
    config: UniverseConfig,
    universe_seed: u64,
) -> astroboids_engine::Simulation {
    build_simulation_with(config, universe_seed, SimOptions::default())
}

/// [`build_simulation`] with explicit options.
pub fn build_simulation_with(
    config: UniverseConfig,
    universe_seed: u64,
    options: SimOptions,
) -> astroboids_engine::Simulation {
    let mut app = App::empty();
    app.add_plugins(EnginePlugin {
        universe_seed,
        tick_rate_hz: config.simulation.tick_rate_hz,
    });
    app.add_plugins(SimPlugins { config, options });
    astroboids_engine::Simulation::new(app)
}
