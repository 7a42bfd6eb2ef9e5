//! Looking inside a replay: one ship at one tick, as its script saw and answered it.

use astroboids_engine::{NetId, Simulation};
use astroboids_scripting::RunReport;
use astroboids_scripting::blocks::SensorSnapshot;
use astroboids_sim::SimOptions;
use astroboids_sim::checkpoint::{ShipRecord, capture_ship};
use astroboids_sim::inputs::WorldInput;
use astroboids_sim::scripts::{ScriptFaults, ScriptTrace, ScriptTraceRecord};

use crate::replay::{Replay, ReplayError};

/// A ship at a recorded tick.
#[derive(Debug, Clone, PartialEq)]
pub struct ShipAtTick {
    pub tick: u64,
    /// Its state after the tick (script memory and globals included).
    pub state: ShipRecord,
    /// Its script run in that tick, if its script ran: what it was given and what it returned.
    pub run: Option<ScriptTraceRecord>,
    /// Faults its script had in that tick.
    pub faults: Vec<String>,
    /// Recorded inputs for it applied before the tick (manual commands, script assignments).
    pub inputs: Vec<WorldInput>,
}

/// Re-simulates up to `tick` with `ship`'s script traced and reports what happened to it.
pub fn inspect_ship(
    replay: &Replay,
    tick: u64,
    ship: NetId,
    options: SimOptions,
) -> Result<ShipAtTick, ReplayError> {
    if tick <= replay.start_tick() {
        return Err(replay.invalid(format!(
            "tick {tick} is the recording's start or earlier; recorded ticks are {}..={}",
            replay.start_tick() + 1,
            replay.last_tick()
        )));
    }
    let mut sim = replay.restore_near(tick - 1, options)?;
    trace_ships(&mut sim, &[ship]);
    while sim.tick() < tick {
        replay.step(&mut sim)?;
    }
    let world = sim.world_mut();
    let state = capture_ship(world, ship).ok_or_else(|| {
        replay.invalid(format!(
            "there is no ship {ship} after tick {tick} (never spawned, or destroyed)"
        ))
    })?;
    let run = world
        .resource_mut::<ScriptTrace>()
        .records
        .drain(..)
        .rfind(|r| r.tick == tick && r.job.ship == ship.0);
    let faults = world
        .resource::<ScriptFaults>()
        .recent
        .iter()
        .filter(|f| f.tick == tick && f.ship == ship)
        .map(|f| f.message.clone())
        .collect();
    let inputs = replay
        .record(tick)
        .map(|r| {
            r.inputs
                .iter()
                .filter(|i| input_ship(i) == Some(ship.0))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Ok(ShipAtTick {
        tick,
        state,
        run,
        faults,
        inputs,
    })
}

/// Turns on script tracing for `ships` (records accumulate in [`ScriptTrace`]).
pub fn trace_ships(sim: &mut Simulation, ships: &[NetId]) {
    sim.world_mut().insert_resource(ScriptTrace {
        ships: ships.iter().copied().collect(),
        records: Vec::new(),
    });
}

/// The ship an input is about, if it is about one.
pub fn input_ship(input: &WorldInput) -> Option<u64> {
    match input {
        WorldInput::Command { ship, .. }
        | WorldInput::AssignScript { ship, .. }
        | WorldInput::SetOwner { ship, .. }
        | WorldInput::Scrap { ship }
        | WorldInput::SuspendScript { ship, .. } => Some(*ship),
        WorldInput::SpawnShip { .. }
        | WorldInput::SpawnFleet { .. }
        | WorldInput::AddScript { .. } => None,
    }
}

/// A sensor snapshot in a few readable lines.
pub fn describe_sensors(s: &SensorSnapshot) -> Vec<String> {
    let mut lines = vec![format!(
        "tick {} ship {} sector ({}, {}) at ({:.2}, {:.2}) velocity ({:.3}, {:.3}) heading {:.4} \
         hull {} energy {} cargo {} sensor range {}",
        s.tick,
        s.ship,
        s.sector_x,
        s.sector_y,
        s.x,
        s.y,
        s.vx,
        s.vy,
        s.heading,
        s.hull,
        s.energy,
        s.cargo,
        s.sensor_range
    )];
    lines.push(format!("{} contacts (nearest first)", s.contacts.len()));
    for c in &s.contacts {
        lines.push(format!(
            "  {:?} id {} #{} at ({:.2}, {:.2}) distance {:.2} radius {:.2} velocity ({:.3}, {:.3})",
            c.kind, c.id, c.index, c.dx, c.dy, c.distance, c.radius, c.vx, c.vy
        ));
    }
    lines
}

/// A script's answer in one line.
pub fn describe_run(report: &RunReport) -> String {
    match (&report.fault, &report.command) {
        (Some(fault), _) => format!("fault: {fault} (commands discarded)"),
        (None, Some(c)) => format!(
            "thrust {} turn {} mine {} stop {}",
            c.thrust, c.turn, c.mine, c.stop
        ),
        (None, None) => "no command".to_string(),
    }
}
