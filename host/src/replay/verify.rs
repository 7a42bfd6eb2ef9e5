//! Re-simulating a whole recording against its hashes, and naming what departed: the hash
//! parts at the first differing tick, and the entities and components at the next keyframe.

use std::collections::BTreeMap;

use xxhash_rust::xxh3::xxh3_64;

use astroboids_sim::SimOptions;
use astroboids_sim::checkpoint::{self, WorldCheckpoint};

use super::{Replay, ReplayError, differing_parts};

/// Where a re-simulation first departed from the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    pub tick: u64,
    /// Hash parts that differ at that tick.
    pub parts: Vec<String>,
    /// The keyframe the worlds were compared at (the first at or after `tick`), if any.
    pub compared_at: Option<u64>,
    /// Entities and components that differ there, one line each.
    pub differences: Vec<String>,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    pub ticks_checked: u64,
    pub divergence: Option<Divergence>,
}

/// Re-simulates the whole recording from its start and compares every tick's hash. On the
/// first mismatch, runs on to the next keyframe and lists what differs there.
pub fn verify(
    replay: &Replay,
    options: SimOptions,
    mut progress: impl FnMut(u64),
) -> Result<VerifyReport, ReplayError> {
    let mut sim = replay.world_at(replay.start_tick(), options)?;
    let mut checked = 0;
    while sim.tick() < replay.last_tick() {
        replay.step(&mut sim)?;
        let tick = sim.tick();
        let record = replay.record(tick).expect("in range");
        checked += 1;
        progress(tick);
        let parts = differing_parts(&replay.header, record, &mut sim);
        if !parts.is_empty() {
            let compared_at = replay.keyframe_ticks().find(|&k| k >= tick);
            let mut differences = Vec::new();
            if let Some(at) = compared_at {
                while sim.tick() < at {
                    replay.step(&mut sim)?;
                }
                let recorded = replay.keyframe(at)?.expect("listed");
                differences = diff_worlds(&recorded, &checkpoint::capture(&mut sim));
            }
            return Ok(VerifyReport {
                ticks_checked: checked,
                divergence: Some(Divergence {
                    tick,
                    parts,
                    compared_at,
                    differences,
                }),
            });
        }
    }
    Ok(VerifyReport {
        ticks_checked: checked,
        divergence: None,
    })
}

/// At most this many differences are listed.
const MAX_DIFFERENCES: usize = 20;

/// What differs between a recorded world and a re-simulated one, entity by entity and
/// component by component ("recorded -> now").
pub fn diff_worlds(recorded: &WorldCheckpoint, now: &WorldCheckpoint) -> Vec<String> {
    let mut out = Vec::new();
    let ships_now: BTreeMap<u64, _> = now.ships.iter().map(|s| (s.id, s)).collect();
    let ships_then: BTreeMap<u64, _> = recorded.ships.iter().map(|s| (s.id, s)).collect();
    for (id, then) in &ships_then {
        let Some(now) = ships_now.get(id) else {
            out.push(format!("ship {id}: recorded alive, now missing"));
            continue;
        };
        let mut field = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("ship {id} {name}: {a} -> {b}"));
            }
        };
        field(
            "position",
            format!("{:?} {:?}", then.sector, then.local),
            format!("{:?} {:?}", now.sector, now.local),
        );
        field(
            "velocity",
            format!("{:?}", then.velocity),
            format!("{:?}", now.velocity),
        );
        field(
            "heading",
            format!("{}", then.heading),
            format!("{}", now.heading),
        );
        field("hull", format!("{}", then.hull), format!("{}", now.hull));
        field(
            "energy",
            format!("{}", then.energy),
            format!("{}", now.energy),
        );
        field("cargo", format!("{}", then.cargo), format!("{}", now.cargo));
        field(
            "autopilot",
            format!("{}", then.autopilot),
            format!("{}", now.autopilot),
        );
        match (&then.script, &now.script) {
            (Some(a), Some(b)) => {
                field(
                    "script",
                    format!("{:032x}", a.script),
                    format!("{:032x}", b.script),
                );
                field(
                    "script fuel used",
                    format!("{}", a.fuel_used_total),
                    format!("{}", b.fuel_used_total),
                );
                field(
                    "script faults",
                    format!("{}", a.faults_total),
                    format!("{}", b.faults_total),
                );
                field(
                    "script memory",
                    format!("digest {:016x}", xxh3_64(&a.memory.to_vec())),
                    format!("digest {:016x}", xxh3_64(&b.memory.to_vec())),
                );
                field(
                    "script globals",
                    format!("{:?}", a.globals),
                    format!("{:?}", b.globals),
                );
                field("script log", format!("{:?}", a.log), format!("{:?}", b.log));
            }
            (a, b) if a.is_some() != b.is_some() => field(
                "script",
                format!("{}", a.is_some()),
                format!("{}", b.is_some()),
            ),
            _ => {}
        }
    }
    for id in ships_now.keys().filter(|id| !ships_then.contains_key(id)) {
        out.push(format!("ship {id}: recorded missing, now alive"));
    }
    let mut world = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name}: {a} -> {b}"));
        }
    };
    world(
        "totals",
        format!("{:?}", recorded.totals.values),
        format!("{:?}", now.totals.values),
    );
    world(
        "loaded sectors",
        format!("{:?}", recorded.loaded_sectors),
        format!("{:?}", now.loaded_sectors),
    );
    world(
        "mined asteroids",
        format!("{:?}", recorded.sector_deltas),
        format!("{:?}", now.sector_deltas),
    );
    world(
        "next ship id",
        recorded.next_net_id.to_string(),
        now.next_net_id.to_string(),
    );
    if out.len() > MAX_DIFFERENCES {
        let more = out.len() - MAX_DIFFERENCES;
        out.truncate(MAX_DIFFERENCES);
        out.push(format!("... and {more} more"));
    }
    out
}
