//! The replay view as script authors use it, driven with `egui_kittest` (no window) over a
//! small recording made here: sixteen ships, twelve flown by a WAT bot that steers at its
//! nearest contact and logs, sixty ticks, a keyframe every twenty. What the view shows of the
//! selected ship at a tick is what `astroboids replay inspect` (host::inspect::inspect_ship)
//! says; a re-run with a changed script marks the tick the commands first differ.

use std::path::{Path, PathBuf};

use egui::vec2;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use astroboids_engine::NetId;
use astroboids_host::inspect::{ShipAtTick, describe_run, inspect_ship};
use astroboids_host::replay::{Recorder, Replay};
use astroboids_host::rerun::{RerunRequest, rerun};
use astroboids_host::trace::export;
use astroboids_play::replay::ReplayView;
use astroboids_sim::config::EMBEDDED_CONFIG_TOML;
use astroboids_sim::inputs::{InputOutcome, WorldInput, apply_input};
use astroboids_sim::{SimOptions, UniverseConfig, build_simulation_with};
use astroboids_test_kit::{COMMAND_PTR, SENSOR_PTR, TempDir, WatBot};

const TICKS: u64 = 60;
/// The changed bot throttles back after this tick: its commands differ from the next one on.
const CHANGED_AFTER: u64 = 30;
/// Frames a test waits for the worker before giving up.
const MAX_WAIT_FRAMES: usize = 3_000;

type View = Harness<'static, (ReplayView, f64)>;

/// Full thrust, turning towards the nearest contact, a log line every tick; with
/// `throttle_after`, half thrust after that tick.
fn bot(throttle_after: Option<u64>) -> WatBot {
    let thrust = match throttle_after {
        None => "(f32.const 1)".to_string(),
        Some(t) => format!(
            "(select (f32.const 0.5) (f32.const 1) (i64.gt_u (i64.load (i32.const {SENSOR_PTR})) \
             (i64.const {t})))"
        ),
    };
    WatBot::new()
        .import_log()
        .field(r#"(data (i32.const 200) "steering")"#)
        .tick(format!(
            "(f32.store (i32.const {COMMAND_PTR}) {thrust})
             (if (i32.gt_u (i32.load (i32.const {count})) (i32.const 0))
               (then (f32.store (i32.const {turn})
                 (f32.copysign (f32.const 1) (f32.load (i32.const {dy}))))))
             (call $log (i32.const 200) (i32.const 8))",
            count = SENSOR_PTR + 60,
            turn = COMMAND_PTR + 4,
            dy = SENSOR_PTR + 64 + 20,
        ))
}

fn config() -> UniverseConfig {
    let toml = EMBEDDED_CONFIG_TOML.replace(
        "checkpoint_every_ticks = 100",
        "checkpoint_every_ticks = 20",
    );
    assert_ne!(toml, EMBEDDED_CONFIG_TOML);
    UniverseConfig::from_toml_str(&toml, "test config").unwrap()
}

fn options() -> SimOptions {
    SimOptions {
        script_workers: 2,
        script_artifacts: None,
    }
}

/// Records the scenario to `path`.
fn record(path: &Path) {
    let mut sim = build_simulation_with(config(), 5, options());
    let mut recorder = Recorder::start(&mut sim, path, "play tests", 1).unwrap();
    let mut apply = |sim: &mut astroboids_engine::Simulation, input: WorldInput| {
        let outcome = apply_input(sim.world_mut(), &input).unwrap();
        recorder.input(&input);
        outcome
    };
    let InputOutcome::ScriptAdded(script) = apply(
        &mut sim,
        WorldInput::AddScript {
            wasm: bot(None).wasm(),
        },
    ) else {
        panic!("the script is added");
    };
    apply(
        &mut sim,
        WorldInput::SpawnFleet {
            count: 12,
            script: Some(script.0),
        },
    );
    apply(
        &mut sim,
        WorldInput::SpawnFleet {
            count: 4,
            script: None,
        },
    );
    sim.step();
    recorder.after_tick(&mut sim).unwrap();
    for _ in 1..TICKS {
        sim.step();
        recorder.after_tick(&mut sim).unwrap();
    }
    recorder.finish(&mut sim).unwrap();
}

struct Scenario {
    dir: TempDir,
    path: PathBuf,
    replay: Replay,
}

fn scenario(name: &str) -> Scenario {
    let dir = TempDir::new(name);
    let path = dir.join("run.abreplay");
    record(&path);
    let replay = Replay::open(&path).unwrap();
    Scenario { dir, path, replay }
}

fn harness(view: ReplayView) -> View {
    Harness::builder()
        .with_size(vec2(1280.0, 800.0))
        // Frames a few milliseconds apart: the view's "draw again in 50 ms" while it waits for
        // its worker is a later frame, not this one.
        .with_step_dt(0.001)
        .build_ui_state(
            |ui, state: &mut (ReplayView, f64)| state.0.ui(ui, state.1),
            (view, 0.0),
        )
}

/// Draws until the view shows the tick asked for with nothing pending (bounded). Single steps
/// while waiting: a spinner turns meanwhile, so the ui never stops asking to be drawn.
fn settle(harness: &mut View) {
    for _ in 0..MAX_WAIT_FRAMES {
        harness.step();
        if harness.state_mut().0.settled() {
            // The frame that draws what settled.
            harness.run();
            return;
        }
        // A wait for the worker thread, not a measurement.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("the replay view did not settle");
}

fn inspect(replay: &Replay, tick: u64, ship: u64) -> ShipAtTick {
    inspect_ship(replay, tick, NetId(ship), options()).unwrap()
}

/// The contacts as the script got them: kind, id, index and where.
fn contacts_inspected(seen: &ShipAtTick) -> Vec<(u8, u64, u32, f32, f32)> {
    let run = seen.run.as_ref().expect("the script ran");
    run.job
        .sensors
        .contacts
        .iter()
        .map(|c| (c.kind as u8, c.id, c.index, c.dx, c.dy))
        .collect()
}

fn contacts_shown(view: &ReplayView) -> Vec<(u8, u64, u32, f32, f32)> {
    let details = view
        .shown()
        .and_then(|f| f.details())
        .expect("details shown");
    let run = details.run.as_ref().expect("a run shown");
    run.sensed
        .contacts
        .iter()
        .map(|c| {
            // The map draws asteroids under their own ids; the script got the packed sector.
            let kind = if c.kind == astroboids_net::snapshot::KIND_ASTEROID {
                2
            } else {
                1
            };
            (kind, c.given.id, c.given.index, c.given.dx, c.given.dy)
        })
        .collect()
}

/// The view shows `tick` of ship `ship` as `replay inspect` does.
fn assert_shows(harness: &View, replay: &Replay, tick: u64, ship: u64) {
    let view = &harness.state().0;
    let frame = view.shown().expect("a frame");
    assert_eq!(frame.tick, tick);
    assert_eq!(view.selected(), Some(ship));
    let seen = inspect(replay, tick, ship);
    assert_eq!(
        contacts_shown(view),
        contacts_inspected(&seen),
        "tick {tick}"
    );
    let run = frame.details().unwrap().run.as_ref().unwrap();
    assert_eq!(
        run.command,
        describe_run(&seen.run.as_ref().unwrap().report)
    );
    let report = view.report(1.0);
    assert_eq!(
        report[0],
        format!("replay: {} tick {tick}", view.path().unwrap().display())
    );
    let contact_lines = report.iter().filter(|l| l.starts_with("contact: ")).count();
    assert_eq!(contact_lines, contacts_inspected(&seen).len());
    assert!(
        report.contains(&format!("command: ship {ship} {}", run.command)),
        "{report:#?}"
    );
    assert!(harness.query_by_label(&format!("tick {tick}")).is_some());
}

#[test]
fn opening_shows_the_first_script_run_and_the_selected_ships_contacts() {
    let s = scenario("replay-view-open");
    let mut harness = harness(ReplayView::open(&s.path).unwrap());
    settle(&mut harness);
    // The scripted fleet spawned first: ship 1's script is the first to run.
    let first_run = (1..=TICKS)
        .find(|&t| inspect(&s.replay, t, 1).run.is_some())
        .expect("the script runs");
    assert_eq!(harness.state().0.tick(), Some(first_run));
    assert_shows(&harness, &s.replay, first_run, 1);
    let seen = inspect(&s.replay, first_run, 1);
    assert!(
        !contacts_inspected(&seen).is_empty(),
        "the scenario gives ship 1 contacts"
    );
    let view = &harness.state().0;
    let report = view.report(2.0);
    assert!(
        report.contains(&"log: ship 1 steering".to_string()),
        "{report:#?}"
    );
    // Every ship and loaded asteroid in sight is drawn where the camera puts it.
    let drawn = report.iter().filter(|l| l.starts_with("drawn: ")).count();
    assert_eq!(drawn, view.map().unwrap().entities.len());
    assert!(
        view.map().unwrap().entity(1).is_some(),
        "the selected ship is drawn"
    );
    let ship = view.map().unwrap().entity(1).unwrap();
    assert!(
        (ship.at - view.map().unwrap().rect.center()).length() < 0.5,
        "followed: at the map's centre"
    );
    assert!(harness.query_by_label_contains("steering").is_some());
}

#[test]
fn scrubbing_stepping_and_seeking_show_that_ticks_contacts() {
    let s = scenario("replay-view-seek");
    let mut harness = harness(ReplayView::open(&s.path).unwrap());
    settle(&mut harness);
    harness
        .get_by_role_and_label(egui::Role::Slider, "tick")
        .set_value_accesskit(40.0);
    settle(&mut harness);
    assert_shows(&harness, &s.replay, 40, 1);
    harness.key_press(egui::Key::ArrowRight);
    settle(&mut harness);
    assert_shows(&harness, &s.replay, 41, 1);
    harness.key_press(egui::Key::ArrowLeft);
    harness.key_press(egui::Key::ArrowLeft);
    settle(&mut harness);
    assert_shows(&harness, &s.replay, 39, 1);
    // Behind the world the worker holds: restored from a keyframe.
    harness.state_mut().0.seek(25).unwrap();
    settle(&mut harness);
    assert_shows(&harness, &s.replay, 25, 1);
    // Another ship at the same tick.
    harness.state_mut().0.select(7);
    settle(&mut harness);
    assert_shows(&harness, &s.replay, 25, 7);
    let err = harness.state_mut().0.seek(TICKS + 1).unwrap_err();
    assert_eq!(
        err,
        format!(
            "tick {} is outside the recording (ticks 1..={TICKS})",
            TICKS + 1
        )
    );
}

#[test]
fn play_advances_ticks_with_the_time_given_and_pauses() {
    let s = scenario("replay-view-play");
    let mut view = ReplayView::open(&s.path).unwrap();
    view.seek(10).unwrap();
    let mut harness = harness(view);
    settle(&mut harness);
    assert_eq!(harness.state().0.tick(), Some(10));
    // Single steps while playing: playback asks to be drawn again for its next tick.
    harness.get_by_label("Play").click();
    harness.step();
    assert!(harness.state().0.playing());
    harness.step();
    assert_eq!(harness.state().0.tick(), Some(10), "no time passed");
    // 0.2 s at 10 ticks/s is two ticks.
    harness.state_mut().1 = 0.2;
    harness.step();
    assert_eq!(harness.state().0.tick(), Some(12));
    harness.key_press(egui::Key::CloseBracket);
    harness.step();
    harness.state_mut().1 = 0.4;
    harness.step();
    assert_eq!(harness.state().0.tick(), Some(16), "twice as fast");
    harness.key_press(egui::Key::Space);
    harness.step();
    assert!(!harness.state().0.playing());
    harness.state_mut().1 = 10.0;
    harness.step();
    assert_eq!(harness.state().0.tick(), Some(16), "paused");
    settle(&mut harness);
    assert_shows(&harness, &s.replay, 16, 1);
    // The keys are listed.
    assert!(
        harness
            .query_by_label_contains("Space: play or pause")
            .is_some()
    );
}

fn rerun_in_view(harness: &mut View, script: &Path) {
    let field = harness.get_by_label("Script");
    field.focus();
    field.type_text(&script.display().to_string());
    harness.step();
    harness.get_by_label("Re-run").click();
    settle(harness);
}

#[test]
fn a_rerun_with_a_changed_script_marks_the_first_divergent_tick_and_goes_there() {
    let s = scenario("replay-view-rerun");
    let changed = s.dir.join("changed.wat");
    std::fs::write(&changed, bot(Some(CHANGED_AFTER)).wat()).unwrap();
    let mut harness = harness(ReplayView::open(&s.path).unwrap());
    settle(&mut harness);
    rerun_in_view(&mut harness, &changed);
    let expected = rerun(
        &s.replay,
        &RerunRequest {
            ship: NetId(1),
            wasm: bot(Some(CHANGED_AFTER)).wasm(),
            from: None,
            to: None,
        },
        options(),
    )
    .unwrap();
    assert_eq!(expected.first_command_difference, Some(CHANGED_AFTER + 1));
    let result = harness.state().0.rerun_result().unwrap().clone().unwrap();
    assert_eq!(result.first_difference, expected.first_command_difference);
    let first = CHANGED_AFTER + 1;
    let d = &expected.command_differences[0];
    assert_eq!(d.tick, first);
    assert_eq!(
        result.differences.get(&first),
        Some(&(d.recorded.clone(), d.rerun.clone()))
    );
    assert!(d.rerun.starts_with("thrust 0.5 "), "{}", d.rerun);
    assert!(
        harness
            .query_by_label_contains(&format!("first divergence at tick {first}"))
            .is_some()
    );
    harness.get_by_label(&format!("Go to tick {first}")).click();
    settle(&mut harness);
    assert_shows(&harness, &s.replay, first, 1);
    // Side by side: the recorded command and the re-run's.
    assert_eq!(
        harness.query_all_by_label(&d.recorded).count(),
        2,
        "the command returned, and the recorded side"
    );
    assert!(harness.query_by_label(&d.rerun).is_some(), "re-run side");
}

#[test]
fn a_rerun_with_the_recorded_script_finds_no_divergence() {
    let s = scenario("replay-view-rerun-same");
    let same = s.dir.join("same.wasm");
    std::fs::write(&same, bot(None).wasm()).unwrap();
    let mut harness = harness(ReplayView::open(&s.path).unwrap());
    settle(&mut harness);
    rerun_in_view(&mut harness, &same);
    let result = harness.state().0.rerun_result().unwrap().clone().unwrap();
    assert_eq!(result.first_difference, None);
    assert_eq!(result.differing_ticks, 0);
    assert!(
        harness
            .query_by_label("no divergence: every command matches the recording")
            .is_some()
    );
}

#[test]
fn a_typescript_script_is_refused_with_the_command_that_builds_it() {
    let s = scenario("replay-view-ts");
    let mut harness = harness(ReplayView::open(&s.path).unwrap());
    settle(&mut harness);
    let ts = s.dir.join("miner.ts");
    rerun_in_view(&mut harness, &ts);
    let err = harness
        .state()
        .0
        .rerun_result()
        .unwrap()
        .clone()
        .unwrap_err();
    assert!(err.contains("astroboids script build"), "{err}");
    assert!(err.contains("miner.ts"), "{err}");
    assert!(harness.query_by_label(&err).is_some(), "shown");
}

#[test]
fn a_missing_or_corrupt_file_is_refused_naming_it_and_what_is_wrong() {
    let s = scenario("replay-view-errors");
    let missing = s.dir.join("nowhere.abreplay");
    let err = ReplayView::open(&missing).err().unwrap();
    assert!(err.contains("nowhere.abreplay"), "{err}");
    let mut bytes = std::fs::read(&s.path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    let corrupt = s.dir.join("corrupt.abreplay");
    std::fs::write(&corrupt, &bytes).unwrap();
    let err = ReplayView::open(&corrupt).err().unwrap();
    assert!(err.contains("corrupt.abreplay"), "{err}");
    assert!(err.contains("fails its checksum"), "{err}");
    let text = s.dir.join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let err = ReplayView::open(&text).err().unwrap();
    assert!(
        err.contains("notes.txt: neither an AstroBoids replay"),
        "{err}"
    );

    // In the window: the open form shows the error under the path.
    let mut harness = harness(ReplayView::empty());
    harness.run();
    let field = harness.get_by_label("Replay file");
    field.focus();
    field.type_text(&corrupt.display().to_string());
    harness.step();
    harness.get_by_label("Open").click();
    settle(&mut harness);
    let shown = harness
        .state()
        .0
        .open_error()
        .expect("an error")
        .to_string();
    assert!(
        shown.contains("corrupt.abreplay") && shown.contains("checksum"),
        "{shown}"
    );
    assert!(harness.query_by_label(&shown).is_some());
    assert!(harness.state().0.path().is_none(), "nothing opened");

    // And opens a good file from the same form.
    harness.state_mut().0 = ReplayView::empty();
    harness.run();
    let field = harness.get_by_label("Replay file");
    field.focus();
    field.type_text(&s.path.display().to_string());
    harness.step();
    harness.get_by_label("Open").click();
    settle(&mut harness);
    assert_eq!(harness.state().0.path(), Some(s.path.as_path()));
    assert_eq!(harness.state().0.selected(), Some(1));
}

#[test]
fn a_trace_shows_its_ship_and_the_contacts_it_was_given() {
    let s = scenario("replay-view-trace");
    let trace = export(&s.replay, NetId(3), Some(5), Some(20), options()).unwrap();
    let path = s.dir.join("ship3.json");
    std::fs::write(&path, serde_json::to_string_pretty(&trace).unwrap()).unwrap();
    let mut harness = harness(ReplayView::open(&path).unwrap());
    settle(&mut harness);
    let view = &harness.state().0;
    let first = &trace.ticks[0];
    assert_eq!(view.tick(), Some(first.tick));
    assert_eq!(view.selected(), Some(3));
    let given: Vec<(u8, u64, u32, f32, f32)> = first
        .sensors
        .contacts
        .iter()
        .map(|c| (c.kind as u8, c.id, c.index, c.dx, c.dy))
        .collect();
    assert_eq!(contacts_shown(view), given);
    let map = view.map().unwrap();
    assert_eq!(map.contacts.len(), given.len());
    assert!(map.entity(3).is_some(), "the traced ship is drawn");
    // Stepping goes to its next run.
    harness.key_press(egui::Key::ArrowRight);
    settle(&mut harness);
    assert_eq!(harness.state().0.tick(), Some(trace.ticks[1].tick));
    // Re-run against the trace with the changed bot: its answers differ after the tick.
    let changed = s.dir.join("changed.wat");
    std::fs::write(&changed, bot(Some(10)).wat()).unwrap();
    rerun_in_view(&mut harness, &changed);
    let result = harness.state().0.rerun_result().unwrap().clone().unwrap();
    assert_eq!(result.first_difference, Some(11));
}
