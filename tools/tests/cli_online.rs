//! `astroboids serve`, `client` and `admin` as players and operators use them, over loopback:
//! the server prints its address and fingerprint; a player registers (the token is kept in
//! the config dir), spawns, and `client sync` compiles and uploads a TypeScript script and
//! picks up edits (a broken edit is reported, the last good version keeps flying); the admin
//! tools refuse a data dir in use and work once the server stopped with Ctrl-C.
//!
//! Needs Node.js and the SDK's packages (`npm ci --prefix scripting/sdk`, part of the README's
//! test command) for the TypeScript compile.

mod common;

use common::{astroboids, fresh_dir, repo};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn run(config_dir: &Path, args: &[&str]) -> Output {
    astroboids(config_dir)
        .args(args)
        .output()
        .expect("run astroboids")
}

fn succeed(config_dir: &Path, args: &[&str]) -> String {
    let out = run(config_dir, args);
    assert!(
        out.status.success(),
        "astroboids {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fail(config_dir: &Path, args: &[&str]) -> String {
    let out = run(config_dir, args);
    assert!(!out.status.success(), "astroboids {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Lines a child prints, read on a thread so the test can wait with a deadline.
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

/// Waits for a line containing `needle`; returns it (and everything seen, on failure).
fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(_) => panic!("no line with {needle:?}; saw:\n{}", seen.join("\n")),
        }
    }
}

struct Server {
    child: Child,
    out: mpsc::Receiver<String>,
    seen: Vec<String>,
    addr: String,
    fingerprint: String,
}

fn start_server(data: &Path, config: &Path) -> Server {
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
    let mut seen = Vec::new();
    let fingerprint = wait_for_line(&out, "fingerprint: ", &mut seen)
        .trim_start_matches("fingerprint: ")
        .to_string();
    let addr = wait_for_line(&out, "listening: ", &mut seen)
        .trim_start_matches("listening: ")
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    Server {
        child,
        out,
        seen,
        addr,
        fingerprint,
    }
}

/// Polls `client status --json` until `check` holds for the first ship.
fn wait_for_status(config_dir: &Path, check: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = succeed(config_dir, &["client", "status", "--json"]);
        let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
        if check(&rows[0]) {
            return;
        }
        assert!(Instant::now() < deadline, "status never matched: {rows}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

const SCRIPT_V1: &str = r#"import { thrust, turn, log } from "astroboids";
export function tick(): void { thrust(1.0); turn(0.1); log("version one"); }
"#;
const SCRIPT_V2: &str = r#"import { thrust, turn, log } from "astroboids";
export function tick(): void { thrust(0.5); turn(-0.1); log("version two"); }
"#;
const SCRIPT_BROKEN: &str = r#"import { thrust } from "astroboids";
export function tick(): void { thrust(; }
"#;

#[test]
fn serve_register_sync_edit_and_admin() {
    let root = fresh_dir("cli-online");
    let data = root.join("world");
    let config_dir = root.join("config");
    let scripts = root.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    let config = root.join("fast.toml");
    std::fs::write(
        &config,
        std::fs::read_to_string(repo().join("assets/universe.toml"))
            .unwrap()
            .replace(
                "checkpoint_every_ticks = 100",
                "checkpoint_every_ticks = 10",
            ),
    )
    .unwrap();
    let mut server = start_server(&data, &config);
    assert_eq!(server.fingerprint.len(), 64, "{}", server.fingerprint);

    // Not logged in yet, and a wrong fingerprint: clear errors.
    let e = fail(&config_dir, &["client", "status"]);
    assert!(e.contains("not logged in"), "{e}");
    let e = fail(
        &config_dir,
        &[
            "client",
            "login",
            "--server",
            &server.addr,
            "--fingerprint",
            &"ab".repeat(32),
            "--user",
            "ada",
        ],
    );
    assert!(e.contains("fingerprint"), "{e}");

    let out = succeed(
        &config_dir,
        &[
            "client",
            "register",
            "--server",
            &server.addr,
            "--fingerprint",
            &server.fingerprint,
            "--user",
            "ada",
        ],
    );
    assert!(out.contains("logged in as ada"), "{out}");
    let saved = std::fs::read_to_string(config_dir.join("client.toml")).unwrap();
    assert!(saved.contains("token"), "{saved}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(config_dir.join("client.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the token file is readable by others: {mode:o}"
        );
    }
    let out = succeed(&config_dir, &["client", "spawn"]);
    assert!(out.contains("spawned"), "{out}");

    // The admin tools refuse a data dir the server holds.
    let e = fail(
        &config_dir,
        &["admin", "--data", data.to_str().unwrap(), "accounts"],
    );
    assert!(e.contains("in use"), "{e}");

    // sync: uploads and assigns the one script to every ship, then follows edits.
    let source = scripts.join("pilot.ts");
    std::fs::write(&source, SCRIPT_V1).unwrap();
    let mut sync = astroboids(&config_dir)
        .args(["client", "sync"])
        .arg(&scripts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sync_out = lines(sync.stdout.take().unwrap());
    let mut sync_seen = Vec::new();
    wait_for_line(&sync_out, "uploaded pilot v1", &mut sync_seen);
    wait_for_line(&sync_out, "now flies pilot v1", &mut sync_seen);
    wait_for_status(&config_dir, |s| {
        s["flown_by"] == "script pilot v1" && s["script_fuel_used_last"].as_u64() > Some(0)
    });

    // A broken edit is reported and not uploaded.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&source, SCRIPT_BROKEN).unwrap();
    wait_for_line(&sync_out, "pilot: not uploaded", &mut sync_seen);
    // The fixed edit goes up as v2 and flies.
    std::fs::write(&source, SCRIPT_V2).unwrap();
    wait_for_line(&sync_out, "uploaded pilot v2", &mut sync_seen);
    wait_for_line(&sync_out, "now flies pilot v2", &mut sync_seen);
    wait_for_status(&config_dir, |s| s["flown_by"] == "script pilot v2");
    let ship = {
        let text = succeed(&config_dir, &["client", "status", "--json"]);
        let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
        rows[0]["ship"].as_u64().unwrap().to_string()
    };
    // The new version's first log line comes with the next tick.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = succeed(&config_dir, &["client", "logs", "--ship", &ship]);
        if logs.contains("version two") {
            break;
        }
        assert!(Instant::now() < deadline, "no log line of v2: {logs}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = succeed(
        &config_dir,
        &["client", "move", "--ship", &ship, "--thrust", "-0.5"],
    );
    assert!(out.contains("queued for tick"), "{out}");
    let _ = sync.kill();
    let _ = sync.wait();

    // Ctrl-C: the server runs to a checkpoint tick, saves and exits cleanly.
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(status.success());
    wait_for_line(&server.out, "checkpoint written", &mut server.seen);
    assert!(server.child.wait().unwrap().success());

    // Offline admin: accounts, roles, the fingerprint clients pin.
    let data_arg = data.to_str().unwrap();
    let out = succeed(&config_dir, &["admin", "--data", data_arg, "accounts"]);
    assert!(out.contains("ada") && out.contains("player"), "{out}");
    succeed(
        &config_dir,
        &["admin", "--data", data_arg, "set-role", "ada", "admin"],
    );
    let out = succeed(&config_dir, &["admin", "--data", data_arg, "accounts"]);
    assert!(out.contains("admin"), "{out}");
    let out = succeed(&config_dir, &["admin", "--data", data_arg, "fingerprint"]);
    assert_eq!(out.trim(), server.fingerprint);
    let e = fail(
        &config_dir,
        &["admin", "--data", data_arg, "set-role", "nobody", "admin"],
    );
    assert!(e.contains("no user \"nobody\""), "{e}");
    let out = succeed(
        &config_dir,
        &["admin", "--data", data_arg, "ship-limit", "ada", "120"],
    );
    assert!(out.contains("ada may own 120 ships"), "{out}");
    let out = succeed(&config_dir, &["admin", "--data", data_arg, "accounts"]);
    assert!(out.contains("ships 120"), "{out}");
    let e = fail(
        &config_dir,
        &["admin", "--data", data_arg, "ship-limit", "ada", "lots"],
    );
    assert!(e.contains("a number of ships"), "{e}");
    let out = succeed(&config_dir, &["admin", "--data", data_arg, "revoke", "ada"]);
    assert!(out.contains("1 sessions revoked"), "{out}");
    let e = fail(
        &config_dir,
        &[
            "admin",
            "--data",
            root.join("nothing").to_str().unwrap(),
            "accounts",
        ],
    );
    assert!(e.contains("no world here"), "{e}");
}

#[test]
fn loadgen_runs_bots_against_a_server_of_its_own_and_reports() {
    let root = fresh_dir("cli-loadgen");
    let out = succeed(
        &root,
        &["loadgen", "--clients", "4", "--seconds", "2", "--json"],
    );
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["clients"], 4);
    assert_eq!(report["errors"], 0, "{report}");
    // 10 Hz for 2 s, 4 clients: most snapshots arrive.
    assert!(report["snapshots"].as_u64().unwrap() >= 40, "{report}");
    assert!(
        report["snapshot_bytes_per_s_per_client_mean"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        report["server_ticks"].as_str().unwrap().contains("paced"),
        "{report}"
    );
    let e = fail(&root, &["loadgen", "--clients", "0"]);
    assert!(e.contains("at least 1"), "{e}");
    let e = fail(&root, &["loadgen", "--drop-datagrams", "1.5"]);
    assert!(
        e.contains("--drop-datagrams") && e.contains("outside 0 to 1"),
        "{e}"
    );
}

#[test]
fn loadgen_bots_on_a_lossy_network_still_get_snapshots() {
    let root = fresh_dir("cli-loadgen-lossy");
    let out = succeed(
        &root,
        &[
            "loadgen",
            "--clients",
            "2",
            "--seconds",
            "2",
            "--drop-datagrams",
            "0.3",
            "--json",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["errors"], 0, "{report}");
    assert!(
        report["datagrams_dropped"].as_u64().unwrap() > 0,
        "{report}"
    );
    // 10 Hz for 2 s, 2 clients, 30% lost: snapshots keep completing on older baselines.
    assert!(report["snapshots"].as_u64().unwrap() >= 15, "{report}");
}
