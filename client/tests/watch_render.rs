//! The watch client renders what the player's ships see, into a backend that captures the
//! frame: ships and contacts placed on the map relative to the selected ship, the ship
//! panel, logs and faults; keys switch ships, zoom and hide panels; trouble screens say what
//! to do.

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use astroboids_client::watch::{Key, KeyAction, Trouble, WatchApp};
use astroboids_net::messages::{ShipStatusReport, TickEvents};
use astroboids_net::snapshot::{KIND_ASTEROID, KIND_OWN_SHIP, KIND_SHIP, View, ViewEntity};

fn report(ship: u64, hull: f32) -> ShipStatusReport {
    ShipStatusReport {
        ship,
        tick: 5,
        sector: (0, 0),
        local: (500.0, 500.0),
        velocity: (0.0, 0.0),
        heading: 0.0,
        hull,
        energy: 80.0,
        cargo: 12,
        flown_by: "script miner v3".into(),
        script_fuel_used_last: 1234,
        script_faults_total: 1,
    }
}

fn app() -> WatchApp {
    let mut app = WatchApp::new("127.0.0.1:4433", "ada", 1000.0);
    let view = View::from([
        (
            7,
            ViewEntity::quantize(KIND_OWN_SHIP, (0, 0), (500.0, 500.0), 0.0, 90.0),
        ),
        (
            9,
            ViewEntity::quantize(KIND_OWN_SHIP, (0, 0), (900.0, 100.0), 0.0, 40.0),
        ),
        (
            12,
            ViewEntity::quantize(KIND_SHIP, (0, 0), (520.0, 500.0), 0.0, 100.0),
        ),
        (
            1 << 63 | 5,
            ViewEntity::quantize(KIND_ASTEROID, (0, 0), (500.0, 540.0), 0.0, 6.0),
        ),
    ]);
    app.live.update(5, &view);
    app.status(vec![report(9, 40.0), report(7, 90.0)]);
    app.events(&TickEvents {
        tick: 5,
        logs: vec![(7, "found ore".into())],
        faults: vec![(9, "out of fuel".into())],
        dropped_before: 0,
    });
    app
}

fn draw(app: &WatchApp) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    terminal.draw(|frame| app.render(frame, 5.0)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect()
        })
        .collect()
}

fn find(screen: &[String], symbol: char) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (y, line) in screen.iter().enumerate() {
        for (x, c) in line.chars().enumerate() {
            if c == symbol {
                out.push((x, y));
            }
        }
    }
    out
}

fn text(screen: &[String]) -> String {
    screen.join("\n")
}

#[test]
fn the_map_places_contacts_around_the_selected_ship_and_the_panels_show_its_state() {
    let app = app();
    let screen = draw(&app);
    let all = text(&screen);
    assert!(all.contains("ada@127.0.0.1:4433"), "{all}");
    assert!(all.contains("tick 5"), "{all}");
    assert!(all.contains("ship 7 hull 90"), "{all}");
    assert!(all.contains("ship 9 hull 40"), "{all}");
    assert!(all.contains("script miner v3"), "{all}");
    assert!(all.contains("tick 5 ship 7: found ore"), "{all}");
    assert!(all.contains("tick 5 ship 9: FAULT out of fuel"), "{all}");
    assert!(all.contains("10 m per column"), "{all}");
    // Ship 7 is selected (lowest id first): at the map's centre; the other ship 20 m east is
    // two columns right, the asteroid 40 m north two rows up (cells are two columns tall).
    // (Row 0 is the title bar, whose "ada@server" has an @ too.)
    let ships: Vec<_> = find(&screen, '@')
        .into_iter()
        .filter(|&(_, y)| y > 0)
        .collect();
    let others = find(&screen, 'S');
    let rocks = find(&screen, 'o');
    let (x, y) = ships
        .iter()
        .copied()
        .find(|&(sx, sy)| others.contains(&(sx + 2, sy)))
        .unwrap_or_else(|| panic!("no @ with an S two columns east:\n{all}"));
    assert!(
        rocks.contains(&(x, y - 2)),
        "asteroid not 2 rows north of @ at ({x}, {y}):\n{all}"
    );
    // Ship 9 is 400 m east and 400 m south: off this map at 10 m per column.
    assert_eq!(
        ships.iter().filter(|&&(sx, sy)| (sx, sy) != (x, y)).count(),
        0,
        "{all}"
    );
}

#[test]
fn keys_switch_ships_zoom_and_toggle_the_log_panel() {
    let mut app = app();
    assert_eq!(app.selected_ship(), Some(7));
    assert_eq!(app.key(Key::Tab), KeyAction::None);
    assert_eq!(app.selected_ship(), Some(9));
    assert_eq!(app.key(Key::Tab), KeyAction::None);
    assert_eq!(app.selected_ship(), Some(7));
    app.key(Key::Char('-'));
    app.key(Key::Char('-'));
    let all = text(&draw(&app));
    assert!(all.contains("50 m per column"), "{all}");
    app.key(Key::Char('L'));
    let all = text(&draw(&app));
    assert!(!all.contains("found ore"), "{all}");
    // A status refresh keeps the selection on the same ship.
    app.key(Key::Tab);
    app.status(vec![report(3, 10.0), report(7, 90.0), report(9, 40.0)]);
    assert_eq!(app.selected_ship(), Some(9));
    assert_eq!(app.key(Key::Char('q')), KeyAction::Quit);
}

#[test]
fn an_unreachable_server_or_an_expired_login_gets_a_clear_screen() {
    let mut app = app();
    app.trouble = Some(Trouble::Unreachable {
        server: "127.0.0.1:4433".into(),
        reason: "no answer within 10 s".into(),
    });
    let all = text(&draw(&app));
    assert!(
        all.contains("Cannot reach the server at 127.0.0.1:4433"),
        "{all}"
    );
    assert!(all.contains("no answer within 10 s"), "{all}");
    assert!(!all.contains('@'), "{all}");
    app.trouble = Some(Trouble::LoginExpired);
    let all = text(&draw(&app));
    assert!(all.contains("astroboids client login"), "{all}");
}

#[test]
fn script_text_in_the_log_panel_is_shown_with_control_characters_escaped() {
    let mut app = app();
    app.events(&TickEvents {
        tick: 6,
        logs: vec![(7, "ok\x1b[2J\nforged".into())],
        faults: vec![(9, "abort: \u{9b}31mred".into())],
        dropped_before: 0,
    });
    let all = text(&draw(&app));
    assert!(all.contains(r"tick 6 ship 7: ok\x1b[2J\nforged"), "{all}");
    assert!(
        all.contains(r"tick 6 ship 9: FAULT abort: \u{9b}31mred"),
        "{all}"
    );
}
