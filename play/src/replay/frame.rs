//! What the view shows of one tick: the world drawn (or, for a trace, the one ship and what it
//! sensed) and the selected ship's script run in words. Built on the worker thread from a
//! re-simulated world or a trace's tick, then only read.

use astroboids_engine::Simulation;
use astroboids_host::inspect::{ShipAtTick, describe_run, describe_sensors};
use astroboids_host::trace::{ShipTrace, TraceTick};
use astroboids_net::snapshot::{KIND_ASTEROID, KIND_OWN_SHIP, KIND_SHIP, asteroid_id};
use astroboids_net::text::escape_control;
use astroboids_scripting::blocks::{ContactKind, SensedContact, SensorSnapshot};
use astroboids_sim::checkpoint::ShipRecord;
use astroboids_sim::scripts::ShipScript;
use astroboids_sim::sectors::Sectors;
use astroboids_sim::ships::{Heading, ShipIndex};
use astroboids_sim::space::SpacePos;

/// A frame holds at most this many entities (a world of ten thousand ships and their sectors'
/// asteroids fits; the rest are counted, not drawn).
pub const MAX_FRAME_ENTITIES: usize = 50_000;
/// Log lines kept per run (a script may log more than a panel can show).
pub const MAX_LOG_LINES: usize = 100;
/// Input descriptions are cut to this many bytes (an input can carry a whole module).
const MAX_INPUT_TEXT: usize = 200;

/// One thing in the world at a tick, where it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorldEntity {
    pub id: u64,
    /// `KIND_SHIP` or `KIND_ASTEROID` (a trace's own ship is `KIND_OWN_SHIP`).
    pub kind: u8,
    pub sector: (i32, i32),
    pub local: (f32, f32),
    pub heading: f32,
    /// Metres; asteroids only (ships are drawn at a fixed size).
    pub radius: f32,
    /// A ship flown by a script.
    pub scripted: bool,
}

/// One tick as the view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub tick: u64,
    pub entities: Vec<WorldEntity>,
    /// Entities left out past [`MAX_FRAME_ENTITIES`].
    pub omitted: usize,
    /// The selected ship at this tick (`None`: none selected), or why it cannot be shown.
    pub ship: Option<Result<ShipDetails, String>>,
}

impl Frame {
    pub fn details(&self) -> Option<&ShipDetails> {
        self.ship.as_ref().and_then(|s| s.as_ref().ok())
    }

    pub fn entity(&self, id: u64) -> Option<&WorldEntity> {
        self.entities.iter().find(|e| e.id == id)
    }
}

/// A ship at a tick, as `astroboids replay inspect --tick T --ship S` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShipDetails {
    pub ship: u64,
    /// Its state after the tick, a few lines.
    pub state: Vec<String>,
    /// Its script's run in that tick; `None` when it did not run.
    pub run: Option<RunSeen>,
    pub faults: Vec<String>,
    /// Recorded inputs applied to it before the tick, described.
    pub inputs: Vec<String>,
}

/// A script run: what it was given and what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSeen {
    pub budget: u64,
    pub random_seed: u64,
    pub sensed: Sensed,
    /// The sensors as the CLI prints them.
    pub sensor_lines: Vec<String>,
    /// The command returned, in words ("thrust 1 turn 0 mine false stop false").
    pub command: String,
    pub fuel_used: u64,
    /// At most [`MAX_LOG_LINES`], control characters escaped.
    pub logs: Vec<String>,
    /// Lines the run logged beyond those kept.
    pub logs_dropped: u64,
}

/// Where the ship was when it sensed, and its contacts, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensed {
    pub sector: (i32, i32),
    pub local: (f32, f32),
    pub heading: f32,
    pub sensor_range: f32,
    pub contacts: Vec<ContactSeen>,
}

/// One contact as the script got it, with the id and kind the map draws it under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContactSeen {
    /// The ship's id, or the asteroid's id on the map (the live map's: see `asteroid_id`).
    pub id: u64,
    pub kind: u8,
    /// What the script's sensor block held.
    pub given: SensedContact,
}

impl Sensed {
    /// Where a contact was, in the sensing ship's sector (its local part may leave
    /// `[0, sector_size)`: the camera places it all the same).
    pub fn contact_local(&self, c: &ContactSeen) -> (f32, f32) {
        (self.local.0 + c.given.dx, self.local.1 + c.given.dy)
    }
}

/// [`Sensed`] from the sensor block a script was given.
fn sensed_from(s: &SensorSnapshot) -> Sensed {
    let contacts = s
        .contacts
        .iter()
        .map(|c| {
            let (id, kind) = match c.kind {
                ContactKind::Asteroid => {
                    // The packed sector: x in the high half, y in the low one; sectors hold
                    // asteroids by u16 index.
                    let sector = ((c.id >> 32) as u32 as i32, c.id as u32 as i32);
                    (asteroid_id(sector, c.index as u16), KIND_ASTEROID)
                }
                ContactKind::Ship => (c.id, KIND_SHIP),
            };
            ContactSeen {
                id,
                kind,
                given: *c,
            }
        })
        .collect();
    Sensed {
        sector: (s.sector_x, s.sector_y),
        local: (s.x, s.y),
        heading: s.heading,
        sensor_range: s.sensor_range,
        contacts,
    }
}

/// The ships and the loaded sectors' asteroids of a world between ticks.
pub fn world_entities(sim: &Simulation) -> (Vec<WorldEntity>, usize) {
    let world = sim.world();
    let index = world.resource::<ShipIndex>();
    let mut out = Vec::new();
    let mut omitted = 0;
    let mut push = |entity: WorldEntity| {
        if out.len() < MAX_FRAME_ENTITIES {
            out.push(entity);
        } else {
            omitted += 1;
        }
    };
    for id in index.ids() {
        let Some(entity) = index.entity(id) else {
            continue;
        };
        let Some(pos) = world.get::<SpacePos>(entity) else {
            continue;
        };
        push(WorldEntity {
            id: id.0,
            kind: KIND_SHIP,
            sector: (pos.sector.x, pos.sector.y),
            local: (pos.local.x, pos.local.y),
            heading: world.get::<Heading>(entity).map_or(0.0, |h| h.0),
            radius: 0.0,
            scripted: world.get::<ShipScript>(entity).is_some(),
        });
    }
    for (coord, sector) in world.resource::<Sectors>().loaded() {
        for a in &sector.contents.asteroids {
            let at = (coord.x, coord.y);
            push(WorldEntity {
                id: asteroid_id(at, a.index),
                kind: KIND_ASTEROID,
                sector: at,
                local: (a.local.x, a.local.y),
                heading: 0.0,
                radius: a.radius,
                scripted: false,
            });
        }
    }
    (out, omitted)
}

/// A re-simulated ship at a tick, as the view shows it.
pub fn ship_details(seen: &ShipAtTick) -> ShipDetails {
    let run = seen.run.as_ref().map(|r| {
        let report = &r.report;
        let (logs, logs_dropped) = bounded_logs(&report.logs, u64::from(report.logs_dropped));
        RunSeen {
            budget: r.job.budget,
            random_seed: r.job.random_seed,
            sensed: sensed_from(&r.job.sensors),
            sensor_lines: describe_sensors(&r.job.sensors),
            command: escape_control(&describe_run(report)).into_owned(),
            fuel_used: report.fuel_used,
            logs,
            logs_dropped,
        }
    });
    ShipDetails {
        ship: seen.state.id,
        state: state_lines(&seen.state),
        run,
        faults: seen
            .faults
            .iter()
            .map(|f| escape_control(f).into_owned())
            .collect(),
        inputs: seen
            .inputs
            .iter()
            .map(|i| shorten(format!("{i:?}")))
            .collect(),
    }
}

/// A trace's tick: its ship where it sensed, and its contacts as the sensors placed them.
pub fn trace_frame(trace: &ShipTrace, tick: &TraceTick, ship: Option<u64>) -> Frame {
    let sensed = sensed_from(&tick.sensors);
    let mut entities = vec![WorldEntity {
        id: trace.ship,
        kind: KIND_OWN_SHIP,
        sector: sensed.sector,
        local: sensed.local,
        heading: sensed.heading,
        radius: 0.0,
        scripted: true,
    }];
    for c in &sensed.contacts {
        entities.push(WorldEntity {
            id: c.id,
            kind: c.kind,
            sector: sensed.sector,
            local: sensed.contact_local(c),
            // A trace has no other ship's heading: its velocity points the hull.
            heading: c.given.vy.atan2(c.given.vx),
            radius: c.given.radius,
            scripted: false,
        });
    }
    let details = match ship {
        None => None,
        Some(s) if s != trace.ship => Some(Err(format!(
            "a trace holds ship {} only, not ship {s}",
            trace.ship
        ))),
        Some(_) => Some(Ok(trace_details(trace.ship, tick, sensed))),
    };
    Frame {
        tick: tick.tick,
        entities,
        omitted: 0,
        ship: details,
    }
}

fn trace_details(ship: u64, tick: &TraceTick, sensed: Sensed) -> ShipDetails {
    let s = &tick.sensors;
    let command = match (&tick.fault, &tick.command) {
        (Some(fault), _) => format!("fault: {fault} (commands discarded)"),
        (None, Some(c)) => format!(
            "thrust {} turn {} mine {} stop {}",
            c.thrust, c.turn, c.mine, c.stop
        ),
        (None, None) => "no command".to_string(),
    };
    let (logs, logs_dropped) = bounded_logs(&tick.logs, u64::from(tick.logs_dropped));
    ShipDetails {
        ship,
        state: vec![
            format!(
                "sensed in sector ({}, {}) at ({:.2}, {:.2}), before the tick",
                s.sector_x, s.sector_y, s.x, s.y
            ),
            format!(
                "velocity ({:.3}, {:.3}) heading {:.4}",
                s.vx, s.vy, s.heading
            ),
            format!("hull {}  energy {}  cargo {}", s.hull, s.energy, s.cargo),
        ],
        run: Some(RunSeen {
            budget: tick.budget,
            random_seed: tick.random_seed,
            sensed,
            sensor_lines: describe_sensors(s),
            command: escape_control(&command).into_owned(),
            fuel_used: tick.fuel_used,
            logs,
            logs_dropped,
        }),
        faults: tick
            .fault
            .iter()
            .map(|f| escape_control(f).into_owned())
            .collect(),
        inputs: Vec::new(),
    }
}

/// The ship after the tick, as `replay inspect` describes it.
fn state_lines(s: &ShipRecord) -> Vec<String> {
    let mut lines = vec![
        format!(
            "sector ({}, {}) at ({:.2}, {:.2})",
            s.sector.0, s.sector.1, s.local.0, s.local.1
        ),
        format!(
            "velocity ({:.3}, {:.3}) heading {:.4}",
            s.velocity.0, s.velocity.1, s.heading
        ),
        format!("hull {}  energy {}  cargo {}", s.hull, s.energy, s.cargo),
    ];
    lines.push(match &s.script {
        None if s.autopilot => "flown by the autopilot".into(),
        None => "flown by manual commands only".into(),
        Some(script) => {
            let status = ["starting", "running", "failed"]
                .get(script.status as usize)
                .copied()
                .unwrap_or("suspended");
            format!(
                "script {:032x} ({status}), {} fuel stored, {} used in all, {} faults in all",
                script.script, script.fuel_stored, script.fuel_used_total, script.faults_total
            )
        }
    });
    lines
}

fn bounded_logs(lines: &[String], dropped: u64) -> (Vec<String>, u64) {
    let kept = lines
        .iter()
        .take(MAX_LOG_LINES)
        .map(|l| escape_control(l).into_owned())
        .collect();
    let cut = lines.len().saturating_sub(MAX_LOG_LINES) as u64;
    (kept, dropped + cut)
}

/// Inputs can carry whole modules: keep their description readable.
fn shorten(text: String) -> String {
    if text.len() <= MAX_INPUT_TEXT {
        return text;
    }
    let cut = (0..=MAX_INPUT_TEXT)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}... ({} bytes)", &text[..cut], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_inputs_and_many_log_lines_are_cut_and_counted() {
        let text = "é".repeat(300);
        let short = shorten(text.clone());
        assert!(short.len() < 230, "{short}");
        assert!(short.ends_with("... (600 bytes)"), "{short}");
        let lines: Vec<String> = (0..150).map(|i| format!("line {i}")).collect();
        let (kept, dropped) = bounded_logs(&lines, 2);
        assert_eq!(kept.len(), MAX_LOG_LINES);
        assert_eq!(dropped, 52);
    }
}
