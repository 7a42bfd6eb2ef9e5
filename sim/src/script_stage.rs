//! The script stage of a tick: start pending instances, share the tick's fuel sector by sector,
//! run every scripted ship's job on the workers, and apply what came back in ship-id order (see
//! the `scripts` module for the components and resources it works on, `script_budget` for how
//! fuel is shared).

use std::collections::BTreeMap;
use std::sync::Arc;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use astroboids_engine::rng::derive_seed;
use astroboids_engine::{NetId, RngStream, Tick, TickSchedule, UniverseSeed};
use astroboids_scripting::blocks::{ContactKind, ScriptCommand, SensedContact, SensorSnapshot};
use astroboids_scripting::{FaultKind, ScriptJob, ScriptWorkers, ShipSlice};

use crate::autopilot::Autopilot;
use crate::config::UniverseConfig;
use crate::physics::is_checkpoint_tick;
use crate::script_budget::{FuelClaim, grant_fuel};
use crate::scripts::{
    FaultLog, InstanceStatus, LogLine, ScriptFaultKind, ScriptFaults, ScriptHost, ScriptLibrary,
    ScriptLog, ScriptRuntime, ScriptTickReport, ScriptTrace, ScriptTraceRecord, ShipScript,
    SlowScripts,
};
use crate::sensors::{ContactTarget, Sensors};
use crate::ships::{Cargo, Energy, Heading, Hull, Owner, ShipCommand, Velocity};
use crate::space::{SectorCoord, SpacePos};
use crate::{SimSet, SimTotals};

/// Runs player scripts in the Behaviour stage, on what `ScriptsPlugin` installs (the library,
/// the workers, the faults and reports); add it right after that plugin.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScriptStagePlugin;

impl Plugin for ScriptStagePlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(TickSchedule, run_scripts.in_set(SimSet::Behaviour));
    }
}

/// What the script stage reads and writes of a scripted ship.
type ScriptedShip = (
    &'static NetId,
    (&'static ShipScript, Option<&'static Owner>),
    &'static mut ScriptRuntime,
    &'static mut ScriptLog,
    &'static mut ShipCommand,
    (
        &'static Sensors,
        &'static SpacePos,
        &'static Velocity,
        &'static Heading,
        &'static Hull,
        &'static Energy,
        &'static Cargo,
    ),
);

/// Key that separates the random stream of a script's start function from its first tick's.
const START_KEY: u64 = u64::MAX;

/// Ticks before the first checkpoint whose states a world takes over which the script workers
/// warm the image buffers that checkpoint will copy the memories into (see
/// `ScriptWorkers::run_warming_image_buffers`): one slice of the ships per tick, so each tick
/// bears a fiftieth of the cost (at 10k miners, a twentieth made the slowest warming tick a few
/// ms slower than the slowest tick without).
pub(crate) const IMAGE_WARMING_TICKS: u64 = 50;

/// The ships whose image buffers are warmed after the runs of `tick`, when a checkpoint comes
/// every `checkpoint_every` ticks: one slice per tick over the last [`IMAGE_WARMING_TICKS`]
/// ticks before a checkpoint tick (fewer when checkpoints come more often), so that every ship
/// is in one of them. `None` on other ticks and on checkpoint ticks.
pub(crate) fn image_warming_slice(checkpoint_every: u64, tick: u64) -> Option<ShipSlice> {
    let slices = IMAGE_WARMING_TICKS.min(checkpoint_every.saturating_sub(1));
    let until_checkpoint = checkpoint_every - tick % checkpoint_every;
    (until_checkpoint <= slices).then(|| ShipSlice {
        index: until_checkpoint - 1,
        count: slices,
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_scripts(
    config: Res<UniverseConfig>,
    tick: Res<Tick>,
    seed: Res<UniverseSeed>,
    library: Res<ScriptLibrary>,
    host: Res<ScriptHost>,
    mut faults: ResMut<ScriptFaults>,
    mut report: ResMut<ScriptTickReport>,
    mut slow: ResMut<SlowScripts>,
    mut totals: ResMut<SimTotals>,
    mut trace: Option<ResMut<ScriptTrace>>,
    mut ships: Query<ScriptedShip, Without<Autopilot>>,
) {
    *report = ScriptTickReport::default();
    slow.runs.clear();
    let rules = &config.scripts;
    let (fuel_policy, backoff) = (rules.fuel_policy(), rules.backoff_policy());
    let caps = rules.fuel_caps();
    let tick = tick.0;
    let mut workers = host.workers();
    let mut faults_log = FaultLog {
        faults: &mut faults,
        limit: rules.fault_log_max as usize,
    };

    let mut scripted: Vec<_> = ships.iter_mut().collect();
    scripted.sort_unstable_by_key(|s| *s.0);
    let scripted_ids: Vec<u64> = scripted.iter().map(|s| s.0.0).collect();
    drop_orphans(&mut workers, &scripted_ids);
    if workers.has_prepared() {
        let waiting: Vec<u64> = scripted
            .iter()
            .filter(|s| s.2.status == InstanceStatus::Pending)
            .map(|s| s.0.0)
            .collect();
        workers.forget_prepared_except(&waiting);
    }

    // Fuel is shared per sector: what a ship's script gets depends only on the scripted ships
    // of its own sector (ships change sectors only in the physics stage), so a world spread
    // over several shards gives the same results. Sectors in coordinate order, each one's
    // ships in id order.
    let mut sectors: BTreeMap<SectorCoord, Vec<usize>> = BTreeMap::new();
    for (index, (.., (_, pos, ..))) in scripted.iter().enumerate() {
        sectors.entry(pos.sector).or_default().push(index);
    }

    // Start pending instances: in each sector, in id order, as many as the sector's start
    // share allows; then all sectors' starts in one batch, in id order (all workers in
    // parallel).
    let mut sector_starts = Vec::with_capacity(sectors.len());
    let mut starting = Vec::new();
    for ships in sectors.values() {
        let pending: Vec<usize> = ships
            .iter()
            .copied()
            .filter(|&i| scripted[i].2.status == InstanceStatus::Pending)
            .collect();
        let admitted = caps.admitted_starts(pending.len());
        report.starts_deferred += (pending.len() - admitted) as u32;
        starting.extend_from_slice(&pending[..admitted]);
        sector_starts.push(admitted);
    }
    starting.sort_unstable();
    let mut starts = Vec::with_capacity(starting.len());
    for &index in &starting {
        let (id, (script, _), ..) = &scripted[index];
        // A ship that got a new script drops its old instance first.
        if workers.is_attached(id.0) {
            let _ = workers.detach(id.0);
        }
        let compiled = library
            .compiled(script.0)
            .expect("assign_script only assigns scripts in the library");
        let random_seed = derive_seed(seed.0, RngStream::Script, &[id.0, tick, START_KEY]);
        starts.push((id.0, Arc::clone(compiled), random_seed));
    }
    for (ship, started) in workers.attach_many(starts) {
        let index = scripted_ids
            .binary_search(&ship)
            .expect("started ships are scripted ships");
        let (id, _, runtime, log, ..) = &mut scripted[index];
        match started {
            Ok(start_logs) => {
                runtime.status = InstanceStatus::Running;
                report.started += 1;
                append_logs(log, tick, start_logs, 0, rules.log_ring_lines as usize);
            }
            Err(error) => {
                runtime.status = InstanceStatus::Failed;
                runtime.faults_total += 1;
                report.start_failures += 1;
                faults_log.push(**id, tick, ScriptFaultKind::Start, error.to_string());
            }
        }
    }
    // Suspended scripts keep no instance.
    for (id, _, runtime, ..) in &scripted {
        if runtime.status == InstanceStatus::Suspended && workers.is_attached(id.0) {
            let _ = workers.detach(id.0);
        }
    }

    // Who runs, and what each asks for; then, sector by sector, the grants under the account
    // and sector caps: (request, grant) by index in `scripted`.
    let mut asks: Vec<Option<(u64, u64)>> = vec![None; scripted.len()];
    for (ships, &admitted) in sectors.values().zip(&sector_starts) {
        let mut running = Vec::with_capacity(ships.len());
        let mut claims = Vec::with_capacity(ships.len());
        for &index in ships {
            let (_, (_, owner), runtime, _, command, _) = &mut scripted[index];
            let owner: Option<&Owner> = *owner;
            **command = ShipCommand::default();
            if runtime.status != InstanceStatus::Running {
                continue;
            }
            if !backoff.may_run(&runtime.streak, tick) {
                report.skipped_in_backoff += 1;
                continue;
            }
            claims.push(FuelClaim {
                account: owner.map(|o| o.0.as_str()),
                request: fuel_policy.earn(&mut runtime.fuel),
            });
            running.push(index);
        }
        let grants = grant_fuel(&claims, caps.account_max, caps.run_fuel(admitted));
        for ((&index, claim), grant) in running.iter().zip(&claims).zip(grants) {
            asks[index] = Some((claim.request, grant));
        }
    }

    // Jobs in id order, as the workers return their results.
    let mut jobs = Vec::with_capacity(scripted.len());
    let mut ran = Vec::with_capacity(scripted.len());
    let mut traced_jobs = BTreeMap::new();
    for (index, ask) in asks.into_iter().enumerate() {
        let Some((request, budget)) = ask else {
            continue;
        };
        let cut = budget < request;
        if budget == 0 {
            report.budget_cut += 1;
            continue;
        }
        let (id, _, _, _, _, sensed) = &scripted[index];
        let job = ScriptJob {
            ship: id.0,
            budget,
            random_seed: derive_seed(seed.0, RngStream::Script, &[id.0, tick]),
            sensors: snapshot(tick, **id, sensed),
        };
        if trace.as_ref().is_some_and(|t| t.ships.contains(*id)) {
            traced_jobs.insert(index, job.clone());
        }
        jobs.push(job);
        ran.push((index, cut));
    }

    let results = if !host.takes_states_at_checkpoint_ticks() {
        workers.run(jobs)
    } else if is_checkpoint_tick(&config, tick) {
        host.note_checkpoint_states_taken();
        workers.run_keeping_states(jobs)
    } else if let Some(slice) = image_warming_slice(config.persistence.checkpoint_every_ticks, tick)
        .filter(|_| !host.checkpoint_states_taken())
    {
        workers.run_warming_image_buffers(jobs, slice)
    } else {
        workers.run(jobs)
    }
    .expect("jobs name attached ships, once each");
    for ((index, cut), result) in ran.into_iter().zip(results) {
        let (id, (script, _), runtime, log, command, _) = &mut scripted[index];
        if cut && result.report.fault.as_ref().map(|f| f.kind) == Some(FaultKind::OutOfFuel) {
            report.budget_cut += 1;
        }
        debug_assert_eq!(id.0, result.ship, "results come back in ship order");
        if slow.run_wall_ns_max.is_some_and(|max| result.wall_ns > max) {
            slow.runs
                .push((**id, result.wall_ns, result.report.fuel_used));
        }
        let run = result.report;
        if let (Some(trace), Some(job)) = (trace.as_mut(), traced_jobs.remove(&index)) {
            trace.records.push(ScriptTraceRecord {
                tick,
                script: script.0,
                job,
                report: run.clone(),
            });
        }
        fuel_policy.spend(&mut runtime.fuel, run.fuel_used);
        runtime.fuel_used_last = run.fuel_used;
        runtime.fuel_used_total = runtime.fuel_used_total.saturating_add(run.fuel_used);
        backoff.record(&mut runtime.streak, tick, run.fault.is_some());
        report.ran += 1;
        report.fuel_used += run.fuel_used;
        append_logs(
            log,
            tick,
            run.logs,
            run.logs_dropped,
            rules.log_ring_lines as usize,
        );
        match (run.fault, run.command) {
            (Some(fault), _) => {
                runtime.faults_total += 1;
                report.faults += 1;
                let kind = match fault.kind {
                    FaultKind::OutOfFuel => ScriptFaultKind::OutOfFuel,
                    FaultKind::Trap => ScriptFaultKind::Trap,
                };
                faults_log.push(**id, tick, kind, fault.to_string());
            }
            (None, Some(wanted)) => **command = to_ship_command(wanted),
            (None, None) => {}
        }
    }
    totals.script_fuel_used += report.fuel_used;
    totals.script_faults += u64::from(report.faults);
}

/// Instances whose ship is gone or no longer scripted are dropped (ships are destroyed after
/// the script stage, so this happens one tick later; until then they are no part of the
/// world's state: see `scripts::running_script_ships`). `scripted` is sorted.
fn drop_orphans(workers: &mut ScriptWorkers, scripted: &[u64]) {
    // Both lists ascend: one walk over them, not a search per ship.
    let mut scripted = scripted.iter().peekable();
    let orphans: Vec<u64> = workers
        .attached()
        .filter(|&ship| {
            while scripted.next_if(|&&s| s < ship).is_some() {}
            scripted.peek() != Some(&&ship)
        })
        .collect();
    for ship in orphans {
        let _ = workers.detach(ship);
    }
}

fn append_logs(log: &mut ScriptLog, tick: u64, lines: Vec<String>, dropped: u32, ring: usize) {
    log.dropped += u64::from(dropped);
    for text in lines {
        if ring == 0 {
            log.dropped += 1;
            continue;
        }
        if log.lines.len() >= ring {
            log.lines.pop_front();
            log.dropped += 1;
        }
        log.lines.push_back(LogLine { tick, text });
    }
}

fn to_ship_command(c: ScriptCommand) -> ShipCommand {
    ShipCommand {
        thrust: c.thrust,
        turn: c.turn,
        mine: c.mine,
        stop: c.stop,
    }
    .sanitized()
}

/// The sensor block of one ship for this tick.
fn snapshot(
    tick: u64,
    id: NetId,
    (sensors, pos, velocity, heading, hull, energy, cargo): &(
        &Sensors,
        &SpacePos,
        &Velocity,
        &Heading,
        &Hull,
        &Energy,
        &Cargo,
    ),
) -> SensorSnapshot {
    SensorSnapshot {
        tick,
        ship: id.0,
        sector_x: pos.sector.x,
        sector_y: pos.sector.y,
        x: pos.local.x,
        y: pos.local.y,
        vx: velocity.0.x,
        vy: velocity.0.y,
        heading: heading.0,
        hull: hull.0,
        energy: energy.0,
        cargo: cargo.ore,
        sensor_range: sensors.range,
        contacts: sensors
            .contacts
            .iter()
            .map(|c| {
                let (kind, id, index) = match c.target {
                    ContactTarget::Ship(ship) => (ContactKind::Ship, ship.0, 0),
                    ContactTarget::Asteroid { sector, index } => (
                        ContactKind::Asteroid,
                        (u64::from(sector.x as u32) << 32) | u64::from(sector.y as u32),
                        u32::from(index),
                    ),
                };
                SensedContact {
                    kind,
                    id,
                    index,
                    dx: c.offset.x,
                    dy: c.offset.y,
                    vx: c.velocity.x,
                    vy: c.velocity.y,
                    distance: c.distance,
                    radius: c.radius,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The warming slices of one checkpoint interval, by tick.
    fn slices_between_checkpoints(every: u64) -> Vec<(u64, ShipSlice)> {
        (every + 1..=2 * every)
            .filter_map(|tick| image_warming_slice(every, tick).map(|slice| (tick, slice)))
            .collect()
    }

    #[test]
    fn the_ticks_before_a_checkpoint_warm_every_ship_once() {
        for every in [2, 3, 10, 21, 50, 51, 100, 600] {
            let slices = slices_between_checkpoints(every);
            let expected = IMAGE_WARMING_TICKS.min(every - 1);
            assert_eq!(slices.len() as u64, expected, "every {every}");
            let ticks: Vec<u64> = slices.iter().map(|(tick, _)| *tick).collect();
            let last_ticks: Vec<u64> = (2 * every - expected..2 * every).collect();
            assert_eq!(ticks, last_ticks, "every {every}: the ticks just before");
            for ship in 0..500u64 {
                let holding = slices.iter().filter(|(_, s)| s.holds(ship)).count();
                assert_eq!(holding, 1, "every {every}: ship {ship}");
            }
        }
    }

    #[test]
    fn nothing_is_warmed_on_checkpoint_ticks_or_when_every_tick_is_one() {
        for every in [1, 2, 100] {
            assert_eq!(image_warming_slice(every, every), None);
            assert_eq!(image_warming_slice(every, 3 * every), None);
        }
        assert!((1..50).all(|tick| image_warming_slice(1, tick).is_none()));
    }
}
