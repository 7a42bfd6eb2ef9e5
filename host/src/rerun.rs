//! "What if my ship had run this script instead?": re-running a replay with one ship's script
//! replaced, side by side with the recording.

use astroboids_engine::{NetId, Simulation};
use astroboids_scripting::module_hash;
use astroboids_sim::SimOptions;
use astroboids_sim::checkpoint::{ShipRecord, capture_ship};
use astroboids_sim::inputs::{WorldInput, apply_input};
use astroboids_sim::scripts::ScriptTrace;

use crate::inspect::{describe_run, input_ship, trace_ships};
use crate::replay::{Replay, ReplayError, differing_parts};

/// What to re-run.
#[derive(Debug, Clone)]
pub struct RerunRequest {
    pub ship: NetId,
    /// The new script module.
    pub wasm: Vec<u8>,
    /// The first tick the new script runs (its instance starts then); default: the first
    /// recorded tick.
    pub from: Option<u64>,
    /// The last tick to run; default: the end of the recording.
    pub to: Option<u64>,
}

/// One tick where the ship's commands differ.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandDifference {
    pub tick: u64,
    pub recorded: String,
    pub rerun: String,
}

/// How the re-run departed from the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct RerunReport {
    pub from: u64,
    pub to: u64,
    pub script: u128,
    /// Every tick's state hash equals the recorded one.
    pub identical: bool,
    /// The first tick the ship's commands differ, if any.
    pub first_command_difference: Option<u64>,
    /// The first tick the ship's position, velocity, heading, hull, energy or cargo differ.
    pub first_ship_difference: Option<u64>,
    /// The first tick the world's state hash differs, with the hash parts that differ.
    pub first_world_difference: Option<(u64, Vec<String>)>,
    /// The first few ticks with different commands.
    pub command_differences: Vec<CommandDifference>,
    /// The ship at the last tick: recorded and re-run (`None`: destroyed).
    pub final_ship: (Option<ShipRecord>, Option<ShipRecord>),
    /// Recorded inputs the re-run world refused (e.g. commands for a ship it lost).
    pub refused_inputs: Vec<String>,
}

/// At most this many command differences are listed.
const MAX_LISTED: usize = 10;

pub fn rerun(
    replay: &Replay,
    request: &RerunRequest,
    options: SimOptions,
) -> Result<RerunReport, ReplayError> {
    rerun_with(replay, request, options, |_, _, _| {})
}

/// [`rerun`], telling `each_tick` every re-run tick's commands as it goes (the tick, the
/// recorded command, the re-run one; equal or not), for viewers that show the two side by side
/// past the first few differences the report lists.
pub fn rerun_with(
    replay: &Replay,
    request: &RerunRequest,
    options: SimOptions,
    mut each_tick: impl FnMut(u64, &str, &str),
) -> Result<RerunReport, ReplayError> {
    let first = replay.start_tick() + 1;
    let from = request.from.unwrap_or(first);
    let to = request.to.unwrap_or(replay.last_tick());
    if from < first || from > to || to > replay.last_tick() {
        return Err(replay.invalid(format!(
            "--from {from} --to {to}: the recording has ticks {first}..={}, and from <= to",
            replay.last_tick()
        )));
    }
    let ship = request.ship;
    let mut recorded = replay.world_at(from - 1, options.clone())?;
    let mut rerun = replay.world_at(from - 1, options)?;
    trace_ships(&mut recorded, &[ship]);
    trace_ships(&mut rerun, &[ship]);

    let script = module_hash(&request.wasm);
    let mut report = RerunReport {
        from,
        to,
        script,
        identical: true,
        first_command_difference: None,
        first_ship_difference: None,
        first_world_difference: None,
        command_differences: Vec::new(),
        final_ship: (None, None),
        refused_inputs: Vec::new(),
    };
    for tick in from..=to {
        replay.step(&mut recorded)?;
        let record = replay.record(tick).expect("in range");
        for input in &record.inputs {
            // The new script stays: recorded assignments to this ship are skipped, and so are
            // suspensions, which the host's watchdog decided about the old script.
            if matches!(
                input,
                WorldInput::AssignScript { .. } | WorldInput::SuspendScript { .. }
            ) && input_ship(input) == Some(ship.0)
            {
                continue;
            }
            if let Err(e) = apply_input(rerun.world_mut(), input) {
                report
                    .refused_inputs
                    .push(format!("tick {tick}: {} refused: {e}", input.kind()));
            }
        }
        if tick == from {
            apply_input(
                rerun.world_mut(),
                &WorldInput::AddScript {
                    wasm: request.wasm.clone(),
                },
            )
            .map_err(|e| replay.invalid(format!("the new script: {e}")))?;
            apply_input(
                rerun.world_mut(),
                &WorldInput::AssignScript {
                    ship: ship.0,
                    script,
                },
            )
            .map_err(|e| replay.invalid(format!("at tick {from}: {e}")))?;
        }
        rerun.step();

        let parts = differing_parts(&replay.header, record, &mut rerun);
        if !parts.is_empty() {
            report.identical = false;
            report.first_world_difference.get_or_insert((tick, parts));
        }
        let (a, b) = (
            ship_command(&mut recorded, tick),
            ship_command(&mut rerun, tick),
        );
        each_tick(tick, &a, &b);
        if a != b {
            report.first_command_difference.get_or_insert(tick);
            if report.command_differences.len() < MAX_LISTED {
                report.command_differences.push(CommandDifference {
                    tick,
                    recorded: a,
                    rerun: b,
                });
            }
        }
        if report.first_ship_difference.is_none()
            && kinematics(&mut recorded, ship) != kinematics(&mut rerun, ship)
        {
            report.first_ship_difference = Some(tick);
        }
    }
    report.final_ship = (
        capture_ship(recorded.world_mut(), ship),
        capture_ship(rerun.world_mut(), ship),
    );
    Ok(report)
}

/// What the ship's script answered this tick, in words ("did not run" when it did not).
fn ship_command(sim: &mut Simulation, tick: u64) -> String {
    let mut trace = sim.world_mut().resource_mut::<ScriptTrace>();
    let run = trace.records.drain(..).rfind(|r| r.tick == tick);
    run.map_or("script did not run".to_string(), |r| {
        describe_run(&r.report)
    })
}

/// The ship's physical state as comparable bits (`None`: no such ship).
fn kinematics(sim: &mut Simulation, ship: NetId) -> Option<[u32; 10]> {
    capture_ship(sim.world_mut(), ship).map(|s| {
        [
            s.sector.0 as u32,
            s.sector.1 as u32,
            s.local.0.to_bits(),
            s.local.1.to_bits(),
            s.velocity.0.to_bits(),
            s.velocity.1.to_bits(),
            s.heading.to_bits(),
            s.hull.to_bits(),
            s.energy.to_bits(),
            s.cargo,
        ]
    })
}
