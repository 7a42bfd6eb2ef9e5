//! The windowed client against a real `astroboids serve`, under Xvfb with Mesa's software
//! OpenGL: `astroboids play --screenshot` writes what the window shows, and the picture has the
//! player's ships where it says it drew them (in the own-ship colour), an asteroid where one
//! is, and the log line the player's script wrote.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use astroboids_play::map::{ASTEROID, OWN_SHIP};

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
    let mut serve = astroboids(&config)
        .args(["serve", "--data"])
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
    drop(session);
    let xvfb = Xvfb::start();
    let shot = dir.join("play.png");
    let play = astroboids(&config)
        .args(["play", "--screenshot"])
        .arg(&shot)
        .args(["--after-ticks", "5"])
        .env("DISPLAY", &xvfb.display)
        .env("WINIT_X11_SCALE_FACTOR", "1")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    drop(serve);
    let stdout = String::from_utf8_lossy(&play.stdout);
    assert!(
        play.status.success(),
        "play failed: {}\n{stdout}",
        String::from_utf8_lossy(&play.stderr)
    );
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
