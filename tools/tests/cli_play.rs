//! The windowed client against a real `astroboids serve`, under Xvfb with Mesa's software
//! OpenGL: `astroboids play --screenshot` writes what the window shows, and the picture has the
//! player's ships where it says it drew them (in the own-ship colour), an asteroid where one
//! is, and the log line the player's script wrote.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use astroboids_net::snapshot::{KIND_HAZARD, KIND_NEBULA};
use astroboids_play::map::{ASTEROID, BACKGROUND, OWN_SHIP};

use common::{astroboids, fresh_dir};

/// An X server with no screen, on a display it picks itself (`-displayfd`), killed when
/// dropped. Xvfb is installed by .ci/run (Debian's `xvfb`); without it the test fails saying so.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Self {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start Xvfb ({e}): install it (`apt-get install xvfb`, as .ci/run does)"
                )
            });
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let number = line.trim();
        assert!(!number.is_empty(), "Xvfb printed no display number");
        Self {
            child,
            display: format!(":{number}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed when dropped (a failed assertion leaves no server running).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `astroboids play ARGS --screenshot SHOT` in its own Xvfb (at scale 1, so points are
/// pixels) and returns what it printed; fails the test with its errors if it failed.
fn screenshot(config: &Path, args: &[&str], shot: &Path) -> String {
    let xvfb = Xvfb::start();
    let play = astroboids(config)
        .arg("play")
        .args(args)
        .arg("--screenshot")
        .arg(shot)
        .env("DISPLAY", &xvfb.display)
        .env("WINIT_X11_SCALE_FACTOR", "1")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&play.stdout).into_owned();
    assert!(
        play.status.success(),
        "play {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&play.stderr)
    );
    stdout
}

/// With `ASTROBOIDS_DOC_SCREENSHOTS=DIR` set, a copy of a screenshot goes there as `name`
/// (the docs' pictures are made by these tests, not by hand: see docs/play.md).
fn keep_for_docs(shot: &Path, name: &str) {
    if let Some(dir) = std::env::var_os("ASTROBOIDS_DOC_SCREENSHOTS") {
        // Relative to the workspace (tests run in their package's directory).
        let dir = common::repo().join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(shot, dir.join(name)).unwrap();
    }
}

fn succeed(config: &Path, args: &[&str]) -> String {
    let out = astroboids(config).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bot that logs every tick and idles near its spawn point.
const BOT: &str = r#"(module
  (import "astroboids" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 200) "hello from the bot")
  (func (export "astroboids_abi") (result i32) i32.const 1)
  (func (export "sensor_ptr") (result i32) i32.const 1024)
  (func (export "command_ptr") (result i32) i32.const 4096)
  (func (export "tick") (call $log (i32.const 200) (i32.const 18))))"#;

#[test]
fn the_window_shows_the_fleet_where_its_snapshots_put_it() {
    let dir = fresh_dir("play-screenshot");
    let config = dir.join("client");
    // A cloudy universe, so the picture has nebulae (and harmless hazards) near the fleet.
    let universe = std::fs::read_to_string(common::repo().join("assets/universe.toml"))
        .unwrap()
        .replace("nebula_threshold = 0.3", "nebula_threshold = -1.0")
        .replace("nebula_radius_min = 60.0", "nebula_radius_min = 200.0")
        .replace("nebula_radius_max = 220.0", "nebula_radius_max = 250.0")
        .replace("hazard_chance = 0.05", "hazard_chance = 1.0")
        .replace("hazard_damage_per_s = 4.0", "hazard_damage_per_s = 0.0");
    let universe_file = dir.join("cloudy.toml");
    std::fs::write(&universe_file, universe).unwrap();
    let mut serve = astroboids(&config)
        .args(["serve", "--seed", "2", "--config"])
        .arg(&universe_file)
        .arg("--data")
        .arg(dir.join("world"))
        .args(["--listen", "127.0.0.1:0", "--no-metrics", "--no-record"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(serve.stdout.take().unwrap()).lines();
    let serve = Killed(serve);
    let (mut addr, mut fingerprint) = (String::new(), String::new());
    for line in out.by_ref() {
        let line = line.unwrap();
        if let Some(f) = line.strip_prefix("fingerprint: ") {
            fingerprint = f.to_owned();
        }
        if let Some(a) = line.strip_prefix("listening: ") {
            addr = a.split(' ').next().unwrap().to_owned();
            break;
        }
    }
    std::thread::spawn(move || for _ in out {});
    // The window's login (its form's Register, then Log in) against the real server: a
    // session token, or the server's reason.
    let credentials = |user: &str, password: &str, register| astroboids_play::login::Credentials {
        servers: vec![addr.parse().unwrap()],
        fingerprint: fingerprint.parse().unwrap(),
        user: user.into(),
        password: password.into(),
        register,
    };
    let answer = |c| {
        astroboids_play::net::log_in(c, || {})
            .unwrap()
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap()
    };
    let bob = answer(credentials("bob", "correct horse battery", true)).unwrap();
    assert_eq!(bob.user, "bob");
    assert!(!bob.token.0.is_empty());
    let refused = answer(credentials("bob", "wrong password!", false)).unwrap_err();
    assert!(
        refused.contains("unknown user or wrong password"),
        "{refused}"
    );
    let bot = dir.join("bot.wat");
    std::fs::write(&bot, BOT).unwrap();
    succeed(
        &config,
        &[
            "client",
            "register",
            "--server",
            &addr,
            "--fingerprint",
            &fingerprint,
            "--user",
            "ada",
        ],
    );
    succeed(&config, &["client", "upload", bot.to_str().unwrap()]);
    succeed(&config, &["client", "spawn"]);
    succeed(&config, &["client", "spawn"]);
    succeed(
        &config,
        &["client", "assign", "--ship", "1", "--script", "bot"],
    );

    // The window's commands, through its session thread: answers and named refusals.
    let session = astroboids_play::net::spawn(bob, || {}).unwrap();
    let next_answer = |session: &astroboids_play::net::Session| loop {
        let update = session
            .updates
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap();
        if let astroboids_play::NetUpdate::Answer(answer) = update {
            return answer;
        }
    };
    session
        .commands
        .send(astroboids_play::Command::Spawn)
        .unwrap();
    let spawned = next_answer(&session).unwrap();
    assert!(spawned.ends_with("spawned"), "{spawned}");
    let ship: u64 = spawned.split_whitespace().nth(1).unwrap().parse().unwrap();
    let assign = astroboids_play::Command::Assign {
        ship,
        script: "nope".into(),
    };
    session.commands.send(assign).unwrap();
    let refusal = next_answer(&session).unwrap_err();
    assert!(refusal.contains("no script named \"nope\""), "{refusal}");
    // The upload form's module (the window reads the file; the session sends it).
    let wasm = wasmer::wat2wasm(BOT.as_bytes()).unwrap().to_vec();
    let upload = astroboids_play::Command::Upload {
        name: "bob-bot".into(),
        wasm,
    };
    session.commands.send(upload).unwrap();
    let uploaded = next_answer(&session).unwrap();
    assert!(uploaded.starts_with("uploaded bob-bot v1 ("), "{uploaded}");
    let broken = astroboids_play::Command::Upload {
        name: "bob-bot".into(),
        wasm: b"not a module".to_vec(),
    };
    session.commands.send(broken).unwrap();
    let refusal = next_answer(&session).unwrap_err();
    assert!(refusal.contains("module"), "{refusal}");
    drop(session);
    let shot = dir.join("play.png");
    let stdout = screenshot(&config, &["--after-ticks", "5"], &shot);
    drop(serve);
    keep_for_docs(&shot, "play.png");
    let image = image::open(&shot).unwrap().to_rgba8();
    assert_eq!(image.dimensions(), (1280, 800));
    let colour = |x: f32, y: f32| {
        let p = image.get_pixel(x.round() as u32, y.round() as u32);
        (p[0], p[1], p[2])
    };
    let expect = |c: [u8; 4]| (c[0], c[1], c[2]);
    // drawn: ID kind K at X Y radius R
    let drawn: Vec<(u64, u8, f32, f32)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("drawn: "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[0].parse().unwrap(),
                w[2].parse().unwrap(),
                w[4].parse().unwrap(),
                w[5].parse().unwrap(),
            )
        })
        .collect();
    let own: Vec<_> = drawn.iter().filter(|d| d.1 == 0).collect();
    assert_eq!(
        own.iter().map(|d| d.0).collect::<Vec<_>>(),
        vec![1, 2],
        "both of ada's ships drawn: {stdout}"
    );
    for (id, _, x, y) in &own {
        assert_eq!(
            colour(*x, *y),
            expect(OWN_SHIP.to_array()),
            "ship {id} at ({x}, {y})"
        );
    }
    // The followed ship is in the middle of the map (right of the fleet panel, between the
    // title bar and the log panel).
    let first = own[0];
    assert!((first.2 - (280.0 + 1000.0 / 2.0)).abs() <= 1.0, "{first:?}");
    let asteroid = drawn
        .iter()
        .find(|d| d.1 == 2)
        .expect("an asteroid in sight");
    assert_eq!(
        colour(asteroid.2, asteroid.3),
        expect(ASTEROID.to_array()),
        "{asteroid:?}"
    );
    // A nebula within the fleet's sensor range: a translucent bluish green over the map's
    // background at its centre, unless something else is drawn there.
    let nebula = drawn
        .iter()
        .find(|d| {
            d.1 == KIND_NEBULA
                && !drawn.iter().any(|o| {
                    o.1 != KIND_NEBULA && o.1 != KIND_HAZARD && (o.2 - d.2).hypot(o.3 - d.3) < 12.0
                })
        })
        .unwrap_or_else(|| panic!("a nebula in sight: {stdout}"));
    let (r, g, b) = colour(nebula.2, nebula.3);
    assert!(
        g > r + 20 && b > r + 20 && (r, g, b) != expect(BACKGROUND.to_array()),
        "nebula at ({}, {}) is ({r}, {g}, {b})",
        nebula.2,
        nebula.3
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("log: ") && l.ends_with("ship 1 hello from the bot")),
        "the script's log line is in the window's log panel: {stdout}"
    );
    // Nothing of the PNG is left undrawn: the title bar's text is there too.
    let mut bytes = Vec::new();
    std::fs::File::open(&shot)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    assert!(bytes.len() > 10_000, "a real picture, not an empty one");
}

/// A recorded run of bots opened in the replay view at a tick: the picture's report names the
/// contacts the selected ship's script was given at that tick, exactly those
/// `astroboids replay inspect` lists, drawn inside the map; the command it returned is shown.
#[test]
fn the_replay_view_shows_a_ticks_contacts() {
    let dir = fresh_dir("play-replay");
    let config = dir.join("client");
    let bot = dir.join("bot.wat");
    std::fs::write(&bot, BOT).unwrap();
    let replay = dir.join("run.abreplay");
    succeed(
        &config,
        &[
            "sim",
            "--seed",
            "5",
            "--ships",
            "40",
            "--ticks",
            "40",
            "--script",
            bot.to_str().unwrap(),
            "--record",
            replay.to_str().unwrap(),
        ],
    );
    // The ship with the most contacts at tick 30, by the command line's account.
    let inspect = |ship: u64| {
        succeed(
            &config,
            &[
                "replay",
                "inspect",
                replay.to_str().unwrap(),
                "--tick",
                "30",
                "--ship",
                &ship.to_string(),
            ],
        )
    };
    let contacts_of = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| l.contains(" id ") && l.contains(" distance "))
            .map(str::to_owned)
            .collect()
    };
    let (ship, listed) = (1..=40)
        .map(|ship| (ship, contacts_of(&inspect(ship))))
        .max_by_key(|(ship, c)| (c.len(), std::cmp::Reverse(*ship)))
        .unwrap();
    assert!(!listed.is_empty(), "some ship sensed something");
    let shot = dir.join("replay.png");
    let replay_arg = replay.to_str().unwrap();
    let ship_arg = ship.to_string();
    let stdout = screenshot(
        &config,
        &["--replay", replay_arg, "--tick", "30", "--ship", &ship_arg],
        &shot,
    );
    keep_for_docs(&shot, "replay.png");
    assert!(
        stdout.contains("tick 30"),
        "the view shows tick 30: {stdout}"
    );
    let shown: Vec<(u64, f32, f32)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("contact: "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[0].parse().unwrap(),
                w[4].parse().unwrap(),
                w[5].parse().unwrap(),
            )
        })
        .collect();
    // "Ship id 4 #0 at ..." or "Asteroid id 0 #3 at ...": ships by id, asteroids by their
    // index in the sector (the view's asteroid ids keep it in their low 16 bits).
    let mut listed_ids: Vec<u64> = listed
        .iter()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words[0] {
                "Asteroid" => words[3].trim_start_matches('#').parse::<u64>().unwrap() | 1 << 63,
                _ => words[2].parse().unwrap(),
            }
        })
        .collect();
    let mut shown_ids: Vec<u64> = shown
        .iter()
        .map(|c| match c.0 & 1 << 63 {
            0 => c.0,
            _ => c.0 & 0xFFFF | 1 << 63,
        })
        .collect();
    listed_ids.sort_unstable();
    shown_ids.sort_unstable();
    assert_eq!(shown_ids, listed_ids, "{stdout}\n{listed:#?}");
    let image = image::open(&shot).unwrap().to_rgba8();
    let (w, h) = image.dimensions();
    for (id, x, y) in &shown {
        assert!(
            *x >= 0.0 && *y >= 0.0 && (*x as u32) < w && (*y as u32) < h,
            "contact {id} at ({x}, {y}) is inside the picture"
        );
        let p = image.get_pixel(*x as u32, *y as u32);
        assert_ne!(
            (p[0], p[1], p[2]),
            {
                let b = BACKGROUND.to_array();
                (b[0], b[1], b[2])
            },
            "contact {id} is drawn at ({x}, {y})"
        );
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("command: ship {ship} "))),
        "the command the script returned: {stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("log: ship {ship} hello from the bot")),
        "the script's log line at that tick: {stdout}"
    );
}

/// The design view of a preset: once the visible sectors are generated, the report lists them
/// with their contents, the picture has a nebula where it says it drew one, and the sliders'
/// values are the preset's.
#[test]
fn the_design_view_shows_a_presets_universe() {
    let dir = fresh_dir("play-design");
    let config = dir.join("client");
    let shot = dir.join("design.png");
    let stdout = screenshot(&config, &["--design", "preset:nebula-maze"], &shot);
    keep_for_docs(&shot, "design.png");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("design: preset:nebula-maze seed ")),
        "{stdout}"
    );
    let preset =
        std::fs::read_to_string(common::repo().join("assets/presets/nebula-maze.toml")).unwrap();
    let threshold = preset
        .lines()
        .find_map(|l| l.strip_prefix("nebula_threshold = "))
        .unwrap();
    let shown = stdout
        .lines()
        .find_map(|l| l.strip_prefix("generation.nebula_threshold = "))
        .unwrap_or_else(|| panic!("the sliders' values: {stdout}"));
    assert_eq!(
        shown.parse::<f64>().unwrap(),
        threshold.trim().parse::<f64>().unwrap()
    );
    let sectors = stdout
        .lines()
        .filter(|l| l.starts_with("sector: ") && l.contains(" asteroids "))
        .count();
    assert!(sectors > 0, "generated sectors listed: {stdout}");
    assert!(
        !stdout.lines().any(|l| l.ends_with("not generated yet")),
        "the screenshot waits for every visible sector: {stdout}"
    );
    let image = image::open(&shot).unwrap().to_rgba8();
    assert_eq!(image.dimensions(), (1280, 800));
    // "drawn: nebula at X Y radius R": a bluish-green disc there.
    let nebula = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("drawn: nebula at "))
        .map(|l| {
            let w: Vec<f32> = l
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            (w[0], w[1], w[2])
        })
        .filter(|(x, y, _)| *x >= 0.0 && *y >= 0.0 && *x < 1280.0 && *y < 800.0)
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .unwrap_or_else(|| panic!("a nebula in sight of nebula-maze: {stdout}"));
    let p = image.get_pixel(nebula.0 as u32, nebula.1 as u32);
    assert!(
        p[1] > p[0] + 10 && p[2] > p[0] + 10,
        "nebula at ({}, {}) is {:?}",
        nebula.0,
        nebula.1,
        p
    );
}
