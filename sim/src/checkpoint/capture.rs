//! Capturing a world into a [`WorldCheckpoint`], between ticks.

use bevy_ecs::prelude::*;

use astroboids_engine::{NetId, NetIdAllocator, Simulation, Tick, UniverseSeed};
use astroboids_scripting::PendingStates;

use super::{
    CHECKPOINT_FORMAT, CommandRecord, FaultRecord, ScriptRecord, SectorDeltaRecord, ShipRecord,
    TotalsRecord, WorldCheckpoint, config_digest,
};
use crate::SimTotals;
use crate::autopilot::Autopilot;
use crate::config::UniverseConfig;
use crate::physics::drop_physics_caches;
use crate::scripts::{
    InstanceStatus, ScriptFaultKind, ScriptFaults, ScriptHost, ScriptLibrary, ScriptLog,
    ScriptRuntime, ShipScript, running_script_ships,
};
use crate::sectors::Sectors;
use crate::ships::{Owner, ShipInputs, ShipState};

/// What a ship record is made of.
type ShipRecordQuery = (
    ShipState,
    Has<Autopilot>,
    Option<(
        &'static ShipScript,
        &'static ScriptRuntime,
        &'static ScriptLog,
    )>,
    Option<&'static Owner>,
);

fn ship_record(
    ((id, pos, velocity, heading, hull, energy, cargo), autopilot, script, owner): bevy_ecs::query::QueryItem<
        '_,
        '_,
        ShipRecordQuery,
    >,
    mut state: Option<astroboids_scripting::InstanceState>,
) -> ShipRecord {
    ShipRecord {
        id: id.0,
        sector: (pos.sector.x, pos.sector.y),
        local: (pos.local.x, pos.local.y),
        velocity: (velocity.0.x, velocity.0.y),
        heading: heading.0,
        hull: hull.0,
        energy: energy.0,
        cargo: cargo.ore,
        autopilot,
        script: script.map(|(script, runtime, log)| ScriptRecord {
            script: script.0.0,
            status: match runtime.status {
                InstanceStatus::Pending => 0,
                InstanceStatus::Running => 1,
                InstanceStatus::Failed => 2,
                InstanceStatus::Suspended => 3,
            },
            fuel_stored: runtime.fuel.stored,
            faults: runtime.streak.faults,
            clean_runs: runtime.streak.clean_runs,
            resume_at_tick: runtime.streak.resume_at_tick,
            fuel_used_last: runtime.fuel_used_last,
            fuel_used_total: runtime.fuel_used_total,
            faults_total: runtime.faults_total,
            log: log.lines.iter().map(|l| (l.tick, l.text.clone())).collect(),
            log_dropped: log.dropped,
            memory: state
                .as_mut()
                .map(|s| std::mem::take(&mut s.memory))
                .unwrap_or_default(),
            globals: state
                .as_mut()
                .map(|s| std::mem::take(&mut s.globals))
                .unwrap_or_default(),
        }),
        owner: owner.map(|o| o.0.clone()),
    }
}

/// One ship as a checkpoint records it (script memory and globals included), read without
/// capturing the world; `None` when there is no such ship.
pub fn capture_ship(world: &mut World, id: NetId) -> Option<ShipRecord> {
    let entity = world.resource::<crate::ships::ShipIndex>().entity(id)?;
    let state = world.resource::<ScriptHost>().instance_state(id);
    let mut query = world.query::<ShipRecordQuery>();
    let item = query.get(world, entity).ok()?;
    Some(ship_record(item, state))
}

/// Captures the world between ticks and canonicalizes its physics (see the module docs).
pub fn capture(sim: &mut Simulation) -> WorldCheckpoint {
    capture_later(sim).finish()
}

/// A checkpoint captured between ticks whose script states the script workers are still
/// taking; everything else is copied already. The world may run on meanwhile: each worker
/// takes its states before the next tick's runs (see `ScriptWorkers::states_later`).
#[derive(Debug)]
pub struct PendingCheckpoint {
    checkpoint: WorldCheckpoint,
    script_states: PendingStates,
}

impl PendingCheckpoint {
    /// The tick the checkpoint is of.
    pub fn tick(&self) -> u64 {
        self.checkpoint.tick
    }

    /// Waits for the script states (on any thread) and puts each into its ship's record.
    pub fn finish(self) -> WorldCheckpoint {
        let Self {
            mut checkpoint,
            script_states,
        } = self;
        // Both in ship order: one merging walk.
        let mut states = script_states.wait().into_iter().peekable();
        for ship in &mut checkpoint.ships {
            while states.next_if(|(id, _)| *id < ship.id).is_some() {}
            if let Some((_, state)) = states.next_if(|(id, _)| *id == ship.id)
                && let Some(script) = &mut ship.script
            {
                script.memory = state.memory;
                script.globals = state.globals;
            }
        }
        checkpoint
    }
}

/// As [`capture`], leaving the script states to the workers: the tick thread only copies the
/// rest of the world. [`PendingCheckpoint::finish`] completes it.
pub fn capture_later(sim: &mut Simulation) -> PendingCheckpoint {
    let world = sim.world_mut();
    drop_physics_caches(world);
    let config = world.resource::<UniverseConfig>().clone();
    // Every running script's state, asked of the workers now and collected by `finish`: at
    // thousands of scripts this is most of a capture, and it need not hold up the tick thread.
    let script_states = {
        let running: Vec<NetId> = running_script_ships(world)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        world
            .resource::<ScriptHost>()
            .instance_states_later(&running)
    };

    let mut query = world.query::<ShipRecordQuery>();
    let mut ships: Vec<ShipRecord> = query
        .iter(world)
        .map(|item| ship_record(item, None))
        .collect();
    ships.sort_unstable_by_key(|s| s.id);

    let sectors = world.resource::<Sectors>();
    let loaded_sectors = sectors
        .loaded()
        .map(|(c, s)| (c.x, c.y, s.idle_ticks))
        .collect();
    let sector_deltas = sectors
        .deltas()
        .iter()
        .map(|(c, d)| SectorDeltaRecord {
            x: c.x,
            y: c.y,
            remaining_ore: d.remaining_ore.iter().map(|(&i, &o)| (i, o)).collect(),
        })
        .collect();
    let library = world.resource::<ScriptLibrary>();
    let scripts = library
        .ids()
        .filter_map(|id| library.wasm(id).map(|w| (id.0, w.to_vec())))
        .collect();
    let recent_faults = world
        .resource::<ScriptFaults>()
        .recent
        .iter()
        .map(|f| FaultRecord {
            ship: f.ship.0,
            tick: f.tick,
            kind: match f.kind {
                ScriptFaultKind::OutOfFuel => 0,
                ScriptFaultKind::Trap => 1,
                ScriptFaultKind::Start => 2,
                ScriptFaultKind::Suspended => 3,
            },
            message: f.message.clone(),
        })
        .collect();
    let pending_inputs = world
        .resource::<ShipInputs>()
        .pending()
        .iter()
        .map(|(id, c)| (id.0, CommandRecord::from(*c)))
        .collect();
    let checkpoint = WorldCheckpoint {
        format: CHECKPOINT_FORMAT,
        generator_version: config.generator_version,
        config_digest: config_digest(&config),
        universe_seed: world.resource::<UniverseSeed>().0,
        tick: world.resource::<Tick>().0,
        next_net_id: world.resource::<NetIdAllocator>().peek_next().0,
        ships,
        loaded_sectors,
        sector_deltas,
        totals: TotalsRecord {
            values: world.resource::<SimTotals>().to_values(),
        },
        pending_inputs,
        scripts,
        recent_faults,
    };
    PendingCheckpoint {
        checkpoint,
        script_states,
    }
}
