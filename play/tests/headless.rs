//! The window's content without a window: `egui_kittest` drives `PlayApp::ui` on a bare egui
//! context. What a player sees and does: their fleet listed with its state, their ship at the
//! map's centre (followed), another ship and an asteroid where their positions map, a click
//! that selects, a drag that pans, log lines for the selected ship.

use egui::vec2;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use astroboids_net::live_view::LiveView;
use astroboids_net::messages::{ShipStatusReport, TickEvents};
use astroboids_net::snapshot::{
    KIND_ASTEROID, KIND_NEBULA, KIND_OWN_SHIP, View, ViewEntity, owned_ship_kind, owner_slot,
};
use astroboids_play::app::PlayApp;
use astroboids_play::{NetUpdate, PlayModel};

const SIZE: f32 = 1000.0;
const NEBULA_ID: u64 = 1 << 63 | 0xF000;

fn view(own_x: f32) -> View {
    let mut view = View::new();
    view.insert(
        1,
        ViewEntity::quantize(KIND_OWN_SHIP, (2, -3), (own_x, 500.0), 0.0, 100.0),
    );
    view.insert(
        2,
        ViewEntity::quantize(
            owned_ship_kind("bob"),
            (2, -3),
            (own_x + 40.0, 500.0),
            1.5,
            80.0,
        ),
    );
    view.insert(
        NEBULA_ID,
        ViewEntity::area(KIND_NEBULA, (2, -3), (300.0, 300.0), 120.0),
    );
    view.insert(
        1 << 63 | 7,
        ViewEntity::quantize(KIND_ASTEROID, (2, -3), (own_x - 60.0, 440.0), 0.0, 12.0),
    );
    view
}

fn status(ship: u64) -> ShipStatusReport {
    ShipStatusReport {
        ship,
        tick: 11,
        sector: (2, -3),
        local: (500.0, 500.0),
        velocity: (1.0, 0.0),
        heading: 0.0,
        hull: 100.0,
        energy: 90.0,
        cargo: 3,
        flown_by: "script miner v2".into(),
        script_fuel_used_last: 120,
        script_faults_total: 0,
    }
}

/// A model that heard what a session hears: connected, two snapshots, a status, events.
fn model() -> PlayModel {
    let mut model = PlayModel::new("ada", SIZE);
    model.apply(
        NetUpdate::Connected {
            server: "astroboids-server 0.1".into(),
            tick_rate_hz: 10,
            sensor_range: 300.0,
            nebula_range_factor: 0.5,
        },
        0.0,
    );
    let mut live = LiveView::new(SIZE);
    live.update(10, &view(496.0));
    live.update(11, &view(500.0));
    model.apply(NetUpdate::Snapshot(live), 0.0);
    model.apply(NetUpdate::Status(vec![status(1)]), 0.0);
    model.apply(
        NetUpdate::Events(TickEvents {
            tick: 11,
            logs: vec![(1, "hold full".into())],
            faults: vec![(1, "out of fuel".into())],
            dropped_before: 0,
        }),
        0.0,
    );
    // Drawn as the newest snapshot is (no interpolation), as a screenshot does.
    model.frozen = true;
    model
}

fn harness() -> Harness<'static, PlayApp> {
    Harness::builder()
        .with_size(vec2(1280.0, 800.0))
        .build_ui_state(
            |ui, app: &mut PlayApp| app.ui(ui, 0.0),
            PlayApp::new(model()),
        )
}

#[test]
fn the_fleet_its_state_and_its_logs_are_shown() {
    let harness = harness();
    assert!(
        harness
            .query_by_label_contains("live on astroboids-server")
            .is_some()
    );
    assert!(harness.query_by_label("tick 11").is_some());
    assert!(
        harness
            .query_by_label_contains("ship 1  hull 100  script miner v2")
            .is_some()
    );
    assert!(
        harness
            .query_by_label("hull 100  energy 90  cargo 3")
            .is_some()
    );
    assert!(harness.query_by_label_contains("hold full").is_some());
    assert!(harness.query_by_label_contains("out of fuel").is_some());
}

#[test]
fn the_followed_ship_is_at_the_centre_and_the_rest_where_their_positions_map() {
    let harness = harness();
    let app = harness.state();
    assert_eq!(
        app.model.selected,
        Some(1),
        "the first own ship is selected"
    );
    let map = &app.map;
    let own = map.entity(1).expect("own ship drawn");
    assert_eq!(own.kind, KIND_OWN_SHIP);
    assert!((own.at - map.rect.center()).length() < 0.01);
    // 0.5 points per metre by default: 40 m right, 60 m left and 60 m up.
    let other = map.entity(2).expect("the other ship");
    assert!((other.at - (own.at + vec2(20.0, 0.0))).length() < 0.1);
    let asteroid = map.entity(1 << 63 | 7).expect("the asteroid");
    assert!((asteroid.at - (own.at + vec2(-30.0, -30.0))).length() < 0.1);
    assert!(
        (asteroid.radius - 6.0).abs() < 0.01,
        "12 m at 0.5 points a metre"
    );
    let nebula = map.entity(NEBULA_ID).expect("the nebula");
    assert_eq!(nebula.kind, KIND_NEBULA);
    assert!((nebula.at - (own.at + vec2(-100.0, -100.0))).length() < 0.1);
    assert!(
        (nebula.radius - 60.0).abs() < 0.01,
        "120 m at 0.5 points a metre"
    );
}

/// Bob's ships in bob's colour, the player's own in orange: colours a player tells apart
/// with the common colour-vision deficiencies.
#[test]
fn ships_are_coloured_by_owner() {
    use astroboids_play::map::{OWN_SHIP, OWNER_COLOURS, ship_colour};
    let harness = harness();
    let other = harness.state().map.entity(2).unwrap();
    let slot = owner_slot(other.kind).expect("bob's ship carries bob's slot");
    assert_eq!(ship_colour(other.kind), OWNER_COLOURS[usize::from(slot)]);
    assert_eq!(ship_colour(KIND_OWN_SHIP), OWN_SHIP);
    assert!(!OWNER_COLOURS.contains(&OWN_SHIP), "no one else is orange");
}

#[test]
fn a_script_file_is_uploaded_under_its_name_and_a_wrong_file_is_named() {
    use astroboids_play::Command;
    let mut harness = harness();
    let file = harness.get_by_label("File");
    file.focus();
    file.type_text("scripts/miner.ts");
    harness.run();
    harness.get_by_label("Upload").click();
    harness.run();
    assert_eq!(
        harness.state().model.outbox,
        vec![Command::UploadFile {
            path: "scripts/miner.ts".into(),
            name: "miner".into()
        }]
    );
    harness.state_mut().model.outbox.clear();
    harness.state_mut().upload_path = "notes.txt".into();
    harness.get_by_label("Upload").click();
    harness.run();
    assert!(harness.state().model.outbox.is_empty());
    let why = "file: notes.txt is not a script: give a .ts, .wasm or .wat file";
    assert_eq!(harness.state().model.answer, Some(Err(why.into())));
    assert!(harness.query_by_label(why).is_some(), "shown in the panel");
}

#[test]
fn a_click_selects_a_ship_and_a_drag_pans_the_map() {
    let mut harness = harness();
    let other = harness.state().map.entity(2).unwrap().at;
    harness.hover_at(other);
    harness.drag_at(other);
    harness.drop_at(other);
    harness.run();
    assert_eq!(harness.state().model.selected, Some(2));
    // A drag stops following and moves the world with the pointer.
    let before = harness.state().map.entity(1).unwrap().at;
    let from = before + vec2(0.0, 80.0);
    harness.hover_at(from);
    harness.drag_at(from);
    harness.hover_at(from + vec2(50.0, 10.0));
    harness.run();
    harness.drop_at(from + vec2(50.0, 10.0));
    harness.run();
    let app = harness.state();
    assert!(!app.model.follow);
    let after = app.map.entity(1).unwrap().at;
    assert!(
        (after - (before + vec2(50.0, 10.0))).length() < 1.0,
        "{before:?} -> {after:?}"
    );
}

#[test]
fn the_login_form_names_what_is_wrong_before_connecting() {
    use astroboids_play::login::LoginForm;
    let mut harness = Harness::builder()
        .with_size(vec2(1280.0, 800.0))
        .build_ui_state(
            |ui, form: &mut (LoginForm, Option<bool>)| {
                if let Some(c) = form.0.ui(ui) {
                    form.1 = Some(c.register);
                }
            },
            (LoginForm::default(), None),
        );
    let type_into = |harness: &mut Harness<'_, (LoginForm, Option<bool>)>, field, text| {
        let node = harness.get_by_label(field);
        node.focus();
        node.type_text(text);
        harness.run();
    };
    type_into(&mut harness, "Server", "127.0.0.1:7777");
    type_into(&mut harness, "Fingerprint", "not hex");
    type_into(&mut harness, "User", "ada");
    type_into(&mut harness, "Password", "correct horse");
    harness.get_by_label("Log in").click();
    harness.run();
    assert_eq!(harness.state().1, None, "nothing is sent");
    let status = harness.state().0.status.clone().unwrap();
    assert!(status.starts_with("fingerprint: "), "{status}");
    assert!(
        harness.query_by_label(&status).is_some(),
        "shown under the form"
    );
    // Fixed, the form hands over its credentials and waits for the answer.
    harness.state_mut().0.fingerprint = "ab".repeat(32);
    harness.get_by_label("Register").click();
    harness.run();
    assert_eq!(harness.state().1, Some(true));
    assert!(harness.state().0.busy);
    assert!(harness.query_by_label("registering...").is_some());
}

#[test]
fn the_commands_panel_asks_the_server_and_shows_its_answer() {
    use astroboids_play::Command;
    let mut harness = harness();
    harness.get_by_label("Spawn a ship").click();
    harness.run();
    harness.get_by_label("Stop").click();
    harness.run();
    assert_eq!(
        harness.state().model.outbox,
        vec![
            Command::Spawn,
            Command::Move {
                ship: 1,
                thrust: 0.0,
                turn: 0.0,
                stop: true
            }
        ]
    );
    let refusal = "you own 2 ships, the most an account may (2)".to_owned();
    harness
        .state_mut()
        .model
        .apply(NetUpdate::Answer(Err(refusal.clone())), 0.0);
    harness.run();
    assert!(harness.query_by_label(&refusal).is_some());
}

/// H shows the keys and the map's colours, whole inside a 1280x800 window; H again hides them.
#[test]
fn the_help_overlay_lists_keys_and_colours_inside_the_window() {
    let mut harness = harness();
    harness.key_press(egui::Key::H);
    harness.run();
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, vec2(1280.0, 800.0));
    for text in [
        "select the next ship of the fleet",
        "play / replay / design",
        "your ships",
        "nebulae: sensors reach less far inside",
        "hazards: they damage hulls (dashed edge)",
    ] {
        let node = harness.get_by_label_contains(text);
        assert!(
            window.contains_rect(node.rect()),
            "{text:?} at {:?}",
            node.rect()
        );
    }
    harness.key_press(egui::Key::H);
    harness.run();
    assert!(
        harness
            .query_by_label_contains("play / replay / design")
            .is_none()
    );
}
