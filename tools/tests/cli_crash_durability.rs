//! `astroboids serve` killed with SIGKILL right after it answered a player: whatever it
//! answered survives the restart. A spawned ship ("ship N spawned") is still there and still
//! the player's, its id is never handed out again, and a move ("queued for tick T") still
//! took effect. Black box: a real server process, the `astroboids client` commands a player
//! runs, and `Child::kill` (SIGKILL on Unix) the moment the client has printed its answer.

mod common;

use common::{astroboids, fresh_dir, repo};

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Kill-and-restart rounds; each kills the server twice (after a spawn, after a move).
const ROUNDS: usize = 4;

/// How long any one client command or server start may take before the test gives up: far
/// above the fraction of a second each takes, so only a hang trips it.
const DEADLINE: Duration = Duration::from_secs(60);

const USER: &str = "ada";

/// A script that commands nothing: the ship it flies keeps its heading, so the one turn a
/// manual move makes is the only change to it, and is visible in `client status`.
const IDLE_SCRIPT: &str = r#"(module
  (memory (export "memory") 1 1)
  (func (export "astroboids_abi") (result i32) i32.const 1)
  (func (export "sensor_ptr") (result i32) i32.const 1024)
  (func (export "command_ptr") (result i32) i32.const 4096)
  (func (export "tick")))"#;

/// Runs a command to its end, giving up (and killing it) after [`DEADLINE`].
fn run(config_dir: &Path, args: &[&str]) -> Output {
    let child = astroboids(config_dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run astroboids");
    let pid = child.id();
    // Waited for on a thread so a hung client cannot hang the test; the answer comes back
    // the moment the process exits, so the server is killed right after it.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.expect("wait for astroboids"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("astroboids {args:?} did not finish within {DEADLINE:?}");
        }
    }
}

fn succeed(config_dir: &Path, args: &[&str]) -> String {
    let out = run(config_dir, args);
    assert!(
        out.status.success(),
        "astroboids {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Lines a child prints, read on a thread so the test can wait with a deadline (and so the
/// server never blocks on a full pipe).
fn lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running `astroboids serve`; killed when dropped, so a failing test leaves no server.
struct Server {
    child: Child,
    out: mpsc::Receiver<String>,
    addr: String,
    fingerprint: String,
    /// What it said about the world it opened ("world: ... resumed at tick ...").
    world_line: String,
}

impl Server {
    fn start(data: &Path, config: &Path) -> Self {
        let mut child = astroboids(data)
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--no-metrics", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start astroboids serve");
        let out = lines(child.stdout.take().unwrap());
        let deadline = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        let (mut world_line, mut fingerprint) = (None, None);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = out.recv_timeout(left) else {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "astroboids serve printed no `listening:` line ({status:?}); it printed:\n{}",
                    seen.join("\n")
                );
            };
            seen.push(line.clone());
            if line.starts_with("world: ") {
                world_line = Some(line);
            } else if let Some(hex) = line.strip_prefix("fingerprint: ") {
                fingerprint = Some(hex.to_string());
            } else if let Some(rest) = line.strip_prefix("listening: ") {
                break rest.split(' ').next().unwrap().to_string();
            }
        };
        let missing = || {
            format!(
                "before `listening:`, astroboids serve printed:\n{}",
                seen.join("\n")
            )
        };
        Self {
            world_line: world_line.unwrap_or_else(|| panic!("no `world:` line; {}", missing())),
            fingerprint: fingerprint
                .unwrap_or_else(|| panic!("no `fingerprint:` line; {}", missing())),
            child,
            out,
            addr,
        }
    }

    /// SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().unwrap();
    }

    /// One Ctrl-C: the server runs to its next checkpoint tick, saves it and exits. Returns
    /// what it printed from then on.
    fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(status.success(), "kill -INT {pid}");
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "astroboids serve did not stop within {DEADLINE:?} of one Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "astroboids serve stopped with {status}");
        // Up to the end of its output (the reader sees the pipe close after the exit).
        let mut said = Vec::new();
        while let Ok(line) = self.out.recv_timeout(DEADLINE) {
            said.push(line);
        }
        said
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Restarts the server on the same data dir and points the client at it: the address is
/// new, the certificate (kept in the data dir) is the same one.
fn restart(data: &Path, config: &Path, config_dir: &Path, fingerprint: &str) -> Server {
    let server = Server::start(data, config);
    assert_eq!(
        server.fingerprint, fingerprint,
        "the restarted server has another certificate"
    );
    let out = succeed(
        config_dir,
        &[
            "client",
            "login",
            "--server",
            &server.addr,
            "--fingerprint",
            &server.fingerprint,
            "--user",
            USER,
        ],
    );
    assert!(out.contains(&format!("logged in as {USER}")), "{out}");
    server
}

/// `client status --json`: one row per ship the user owns.
fn status(config_dir: &Path) -> Vec<serde_json::Value> {
    let text = succeed(config_dir, &["client", "status", "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status is not JSON ({e}): {text}"))
}

fn owned_ids(rows: &[serde_json::Value]) -> BTreeSet<u64> {
    rows.iter().map(|r| r["ship"].as_u64().unwrap()).collect()
}

/// (tick, heading) of `ship` as status reports it.
fn heading_of(rows: &[serde_json::Value], ship: u64) -> Option<(u64, f64)> {
    rows.iter()
        .find(|r| r["ship"] == ship)
        .map(|r| (r["tick"].as_u64().unwrap(), r["heading"].as_f64().unwrap()))
}

/// The difference of two headings, in (-pi, pi].
fn angle_between(from: f64, to: f64) -> f64 {
    use std::f64::consts::{PI, TAU};
    let d = (to - from).rem_euclid(TAU);
    if d > PI { d - TAU } else { d }
}

/// "ship N spawned" -> N.
fn spawned_id(out: &str) -> u64 {
    out.strip_prefix("ship ")
        .and_then(|rest| rest.strip_suffix(" spawned"))
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("`client spawn` printed no ship id: {out:?}"))
}

/// "ship N: command queued for tick T" -> T.
fn queued_tick(out: &str) -> u64 {
    out.rsplit_once("queued for tick ")
        .and_then(|(_, tick)| tick.parse().ok())
        .unwrap_or_else(|| panic!("`client move` printed no tick: {out:?}"))
}

/// Status once the world has run `tick`: a restart may resume just before the tick a logged
/// command is for, with the command re-applied but not yet flown.
fn status_from_tick(config_dir: &Path, tick: u64) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let rows = status(config_dir);
        match rows.first().and_then(|r| r["tick"].as_u64()) {
            Some(now) if now < tick => {}
            _ => return rows,
        }
        assert!(
            Instant::now() < deadline,
            "the world never reached tick {tick}: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The embedded configuration with a checkpoint every 10 ticks (a clean stop runs to the
/// next one, so it takes about a second), and the heading one tick of full turn adds.
fn write_config(dir: &Path) -> (PathBuf, f64) {
    let text = std::fs::read_to_string(repo().join("assets/universe.toml"))
        .unwrap()
        .replace(
            "checkpoint_every_ticks = 100",
            "checkpoint_every_ticks = 10",
        );
    let parsed: toml::Table = text.parse().unwrap();
    let number = |table: &str, key: &str| {
        let v = &parsed[table][key];
        v.as_float()
            .or_else(|| v.as_integer().map(|i| i as f64))
            .unwrap()
    };
    let turn_per_tick = number("ships", "turn_rate") / number("simulation", "tick_rate_hz");
    let path = dir.join("universe.toml");
    std::fs::write(&path, text).unwrap();
    (path, turn_per_tick)
}

/// Polls status until `ship` flies the idle script and its heading stays the same across
/// ticks: from then on, only a manual turn changes it.
fn settled_heading(config_dir: &Path, ship: u64) -> f64 {
    let deadline = Instant::now() + DEADLINE;
    let mut last: Option<(u64, f64)> = None;
    loop {
        let rows = status(config_dir);
        let row = rows.iter().find(|r| r["ship"] == ship);
        let now = heading_of(&rows, ship);
        if let (Some(row), Some((tick, heading)), Some((last_tick, last_heading))) =
            (row, now, last)
            && row["flown_by"] == "script idle v1"
            && tick > last_tick
            && heading == last_heading
        {
            return heading;
        }
        assert!(
            Instant::now() < deadline,
            "ship {ship} never settled on the idle script: {rows:?}"
        );
        last = now;
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// Ctrl-C at any moment once the server says where it listens, also between the passes of
/// its wait for signals (every 200 ms it checks on its tick thread), stops it the first time
/// and saves its checkpoint: a process manager or a user sends one signal and waits.
#[test]
fn one_ctrl_c_at_any_moment_after_listening_stops_the_server_with_its_checkpoint() {
    let root = fresh_dir("cli-ctrl-c");
    let data = root.join("world");
    let (config, _) = write_config(&root);
    for delay_ms in [0, 41, 113, 199, 200, 263] {
        let server = Server::start(&data, &config);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let said = server.stop();
        assert!(
            said.iter()
                .any(|l| l.starts_with("stopped at tick") && l.contains("checkpoint written")),
            "Ctrl-C {delay_ms} ms after `listening:`; the server said:\n{}",
            said.join("\n")
        );
    }
}

#[test]
fn every_answered_spawn_and_move_survives_sigkill_of_the_server() {
    let root = fresh_dir("cli-crash-durability");
    let data = root.join("world");
    let config_dir = root.join("config");
    let (config, turn_per_tick) = write_config(&root);
    let idle = root.join("idle.wat");
    std::fs::write(&idle, IDLE_SCRIPT).unwrap();

    // Setup, made durable by a clean stop (which writes a checkpoint), not by what is under
    // test: an account, an idle script and a ship it flies, for the moves.
    let server = Server::start(&data, &config);
    let fingerprint = server.fingerprint.clone();
    let out = succeed(
        &config_dir,
        &[
            "client",
            "register",
            "--server",
            &server.addr,
            "--fingerprint",
            &fingerprint,
            "--user",
            USER,
        ],
    );
    assert!(out.contains(&format!("logged in as {USER}")), "{out}");
    succeed(
        &config_dir,
        &["client", "upload", idle.to_str().unwrap(), "--name", "idle"],
    );
    let pilot = spawned_id(&succeed(&config_dir, &["client", "spawn"]));
    let pilot_s = pilot.to_string();
    succeed(
        &config_dir,
        &["client", "assign", "--ship", &pilot_s, "--script", "idle"],
    );
    server.stop();
    let mut server = restart(&data, &config, &config_dir, &fingerprint);
    let mut heading = settled_heading(&config_dir, pilot);

    // Every ship id the server ever answered, with the answers that gave it.
    let mut answered: BTreeMap<u64, Vec<String>> = BTreeMap::from([(pilot, vec!["setup".into()])]);
    let mut failures: Vec<String> = Vec::new();
    let mut lost_spawns = 0;
    let mut lost_moves = 0;
    for round in 1..=ROUNDS {
        // A spawn, answered, then SIGKILL at once.
        let out = succeed(&config_dir, &["client", "spawn"]);
        let ship = spawned_id(&out);
        server.kill();
        if let Some(by) = answered.get(&ship) {
            failures.push(format!(
                "round {round}: `client spawn` answered {out:?}, an id already answered \
                 ({}): the earlier ship was forgotten and its id handed out again",
                by.join(", ")
            ));
        }
        answered
            .entry(ship)
            .or_default()
            .push(format!("round {round}'s spawn"));
        server = restart(&data, &config, &config_dir, &fingerprint);
        let found = owned_ids(&status(&config_dir));
        let missing: Vec<(&u64, &Vec<String>)> = answered
            .iter()
            .filter(|(id, _)| !found.contains(id))
            .collect();
        // Status lists only the user's own ships: listed means there and theirs.
        if !found.contains(&ship) {
            lost_spawns += 1;
        }
        if !missing.is_empty() {
            let why: Vec<String> = missing
                .iter()
                .map(|(id, by)| {
                    // Gone, or there but someone else's: the server says which.
                    let out = run(
                        &config_dir,
                        &["client", "status", "--ship", &id.to_string()],
                    );
                    format!(
                        "ship {id} (answered to {}): {}",
                        by.join(", "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    )
                })
                .collect();
            failures.push(format!(
                "round {round}: `client spawn` answered {out:?}; SIGKILL; after the restart \
                 ({}) {USER} owns ships {found:?}, missing: {}",
                server.world_line,
                why.join("; ")
            ));
        }

        // A move (one tick of full left turn), answered, then SIGKILL at once.
        let turn = succeed(
            &config_dir,
            &["client", "move", "--ship", &pilot_s, "--turn", "1"],
        );
        let queued_for = queued_tick(&turn);
        server.kill();
        server = restart(&data, &config, &config_dir, &fingerprint);
        let rows = status_from_tick(&config_dir, queued_for);
        let expected = angle_between(0.0, heading + turn_per_tick);
        match heading_of(&rows, pilot) {
            None => failures.push(format!(
                "round {round}: ship {pilot} (durable since the setup's clean stop) is gone \
                 after the restart ({}): {rows:?}",
                server.world_line
            )),
            Some((tick, after)) => {
                let turned = angle_between(heading, after);
                if (turned - turn_per_tick).abs() > 1e-3 {
                    lost_moves += 1;
                    failures.push(format!(
                        "round {round}: `client move --ship {pilot} --turn 1` answered \
                         {turn:?}; SIGKILL; after the restart ({}) ship {pilot}'s heading at \
                         tick {tick} is {after:.4}: turned by {turned:.4} from {heading:.4}, \
                         expected {turn_per_tick:.4} (to {expected:.4})",
                        server.world_line
                    ));
                }
                heading = after;
            }
        }
    }
    server.stop();
    assert!(
        failures.is_empty(),
        "answers that did not survive SIGKILL: {lost_spawns} of {ROUNDS} spawns and \
         {lost_moves} of {ROUNDS} moves lost\n{}",
        failures.join("\n")
    );
}
