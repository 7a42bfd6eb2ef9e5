//! Operations of the server processes, through the `astroboids` binary: with `--log-format
//! json` every line a shard, leader or `serve` process writes on stderr is one JSON object
//! (timestamp, level, target, message, fields), and says what happened (registered, plan
//! received, restored, leadership won, new plan, checkpoints, stopped); with `--metrics ADDR`
//! a shard and a leader serve Prometheus figures that move while the world runs.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use astroboids_cluster::SectorAssignment;
use astroboids_cluster::plan::{self, WorldSpec};
use astroboids_cluster_net::Coordination;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::WorldInput;
use astroboids_test_kit::{Etcd, NatsServer};
use serde_json::Value;

use common::{astroboids, fresh_dir};

const WORLD: &str = "ops";
const SHIPS: u32 = 40;
const CHECKPOINT_EVERY: u64 = 25;

/// A one-shard world paced at 20 ms a tick, running until stopped.
fn spec() -> WorldSpec {
    let mut config = UniverseConfig::default();
    config.persistence.checkpoint_every_ticks = CHECKPOINT_EVERY;
    WorldSpec {
        seed: 3,
        config,
        assignment: SectorAssignment::Stripes {
            shards: 1,
            width: 4,
        },
        checkpoint_every: CHECKPOINT_EVERY,
        tick_ms: 20,
        last_tick: None,
        setup: vec![WorldInput::SpawnFleet {
            count: SHIPS,
            script: None,
        }],
    }
}

/// A process whose stdout and stderr go to files of their own.
struct Proc {
    child: Child,
    stderr: PathBuf,
    stdout: PathBuf,
}

impl Proc {
    fn start(dir: &Path, name: &str, args: &[&str]) -> Self {
        Self::start_with_env(dir, name, args, &[])
    }

    fn start_with_env(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let stderr = dir.join(format!("{name}.stderr"));
        let stdout = dir.join(format!("{name}.stdout"));
        let child = Command::new(env!("CARGO_BIN_EXE_astroboids"))
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("ASTROBOIDS_LOG_FORMAT")
            .env_remove("ASTROBOIDS_METRICS_PUBLIC")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            stderr,
            stdout,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Every line of its log, each a JSON object with the fields of a log line.
    fn json_lines(&self) -> Vec<Value> {
        json_lines(&self.log())
    }

    /// Waits for the first event with `message` (fails with the log after a while).
    fn wait_for_event(&mut self, message: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(event) = self
                .json_lines()
                .into_iter()
                .find(|e| e["message"] == message)
            {
                return event;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited ({status}) before {message:?}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {message:?} event:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (as `cluster up` and process managers stop it); waits for a clean exit.
    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exited with {status}:\n{}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "did not stop:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses every line as a log object: fails on a line that is not one.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\nin:\n{text}"));
            for key in ["timestamp", "level", "target", "message"] {
                assert!(value[key].is_string(), "no {key} in {line}");
            }
            assert!(value["fields"].is_object(), "no fields in {line}");
            assert!(
                ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
                    .contains(&value["level"].as_str().unwrap()),
                "{line}"
            );
            value
        })
        .collect()
}

fn event<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|e| e["message"] == message)
        .unwrap_or_else(|| panic!("no {message:?} event in {lines:#?}"))
}

/// `GET /metrics`: the Prometheus text.
fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap()
}

/// The value of a sample (`name` with its labels, as written), if shown.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse().unwrap())
        })
}

fn metrics_addr(process: &mut Proc) -> String {
    let serving = process.wait_for_event("serving metrics");
    serving["fields"]["addr"].as_str().unwrap().to_owned()
}

/// Scrapes until `name` is at least `at_least`.
fn wait_for_sample(addr: &str, name: &str, at_least: f64) -> (String, f64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = scrape(addr);
        if let Some(value) = sample(&text, name)
            && value >= at_least
        {
            return (text, value);
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {at_least}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn shard_and_leader_log_json_lines_and_serve_metrics_that_move() {
    let dir = fresh_dir("cli-logging-cluster");
    let nats_server = NatsServer::start(&dir).unwrap();
    let etcd_server = Etcd::start(&dir).unwrap();
    let (nats, etcd) = (nats_server.url(), etcd_server.endpoint());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let coordination = Coordination::connect(std::slice::from_ref(&etcd), WORLD, 5)
            .await
            .unwrap();
        coordination
            .put_json(plan::keys::SPEC, &spec())
            .await
            .unwrap();
        coordination.close().await.unwrap();
    });
    let common = [
        "--nats",
        &nats,
        "--etcd",
        &etcd,
        "--world",
        WORLD,
        "--lease-ttl",
        "1",
        "--log-format",
        "json",
        "--log-level",
        "info",
        "--metrics",
        "127.0.0.1:0",
    ];
    let mut shard = Proc::start(
        &dir,
        "shard",
        &[&["shard", "--member", "0", "--threads", "1"][..], &common].concat(),
    );
    let mut leader = Proc::start(
        &dir,
        "leader",
        &[&["leader", "--name", "ops-leader"][..], &common].concat(),
    );

    // The shard's figures move while the world runs.
    let shard_metrics = metrics_addr(&mut shard);
    let (first_text, first) = wait_for_sample(&shard_metrics, "astroboids_shard_ticks_total", 1.0);
    for described in [
        "# HELP astroboids_shard_ticks_total",
        "# HELP astroboids_shard_tick_seconds",
        "# HELP astroboids_shard_exchange_wait_seconds",
        "# HELP astroboids_shard_checkpoint_pieces_stored_total",
        "# TYPE astroboids_shard_tick_seconds histogram",
    ] {
        assert!(first_text.contains(described), "{described}:\n{first_text}");
    }
    assert_eq!(
        sample(&first_text, "astroboids_shard_epoch"),
        Some(1.0),
        "{first_text}"
    );
    assert_eq!(
        sample(&first_text, "astroboids_shard_ships"),
        Some(f64::from(SHIPS)),
        "one shard holds every ship:\n{first_text}"
    );
    // Past a checkpoint tick: a piece stored, and more ticks run.
    let (second_text, second) = wait_for_sample(
        &shard_metrics,
        "astroboids_shard_ticks_total",
        (first + 5.0).max(CHECKPOINT_EVERY as f64 + 1.0),
    );
    assert!(second > first);
    assert!(
        sample(&second_text, "astroboids_shard_tick_seconds_count").unwrap() >= second - 1.0,
        "every tick's time is recorded:\n{second_text}"
    );
    assert!(
        sample(
            &second_text,
            "astroboids_shard_checkpoint_pieces_stored_total"
        )
        .unwrap()
            >= 1.0,
        "{second_text}"
    );
    assert!(
        sample(
            &second_text,
            "astroboids_shard_checkpoint_piece_bytes_total"
        )
        .unwrap()
            > 0.0,
        "{second_text}"
    );

    // The leader's: it leads, and ticks finish under it.
    let leader_metrics = metrics_addr(&mut leader);
    let (leader_first, ticks) =
        wait_for_sample(&leader_metrics, "astroboids_leader_ticks_total", 1.0);
    assert_eq!(
        sample(&leader_first, "astroboids_leader_leading"),
        Some(1.0),
        "{leader_first}"
    );
    assert_eq!(
        sample(
            &leader_first,
            "astroboids_leader_plans_total{why=\"start\"}"
        ),
        Some(1.0),
        "{leader_first}"
    );
    let (leader_later, _) = wait_for_sample(
        &leader_metrics,
        "astroboids_leader_ticks_total",
        ticks + 5.0,
    );
    assert!(
        sample(&leader_later, "astroboids_leader_tick_seconds_count").unwrap() >= ticks + 5.0,
        "{leader_later}"
    );
    assert!(
        sample(&leader_later, "astroboids_leader_checkpoints_total").unwrap() >= 1.0,
        "{leader_later}"
    );
    assert_eq!(
        sample(&leader_later, "astroboids_leader_ships"),
        Some(f64::from(SHIPS)),
        "{leader_later}"
    );

    leader.terminate();
    shard.terminate();

    let lines = shard.json_lines();
    let registered = event(&lines, "registered");
    assert_eq!(registered["level"], "INFO");
    assert_eq!(registered["fields"]["member"], 0);
    assert_eq!(registered["fields"]["world"], WORLD);
    let plan = event(&lines, "plan received");
    assert_eq!(plan["fields"]["epoch"], 1);
    assert_eq!(plan["fields"]["shard"], 0);
    assert_eq!(plan["fields"]["from_tick"], 0);
    let restored = event(&lines, "restored");
    assert_eq!(restored["fields"]["tick"], 0);
    let stored = event(&lines, "checkpoint piece stored");
    assert_eq!(stored["fields"]["tick"], CHECKPOINT_EVERY);
    assert!(stored["fields"]["bytes"].as_u64().unwrap() > 0);
    event(&lines, "stopped");
    assert!(
        lines.iter().any(|e| e["target"]
            .as_str()
            .unwrap()
            .starts_with("astroboids_cluster_net")),
        "{lines:#?}"
    );

    let lines = leader.json_lines();
    let won = event(&lines, "leadership won");
    assert_eq!(won["fields"]["leader"], "ops-leader");
    assert!(won["fields"]["fence"].as_u64().unwrap() > 0);
    let new_plan = event(&lines, "new plan");
    assert_eq!(new_plan["fields"]["why"], "start");
    assert_eq!(new_plan["fields"]["epoch"], 1);
    let checkpoint = event(&lines, "checkpoint complete");
    assert_eq!(checkpoint["fields"]["tick"], CHECKPOINT_EVERY);
    assert_eq!(checkpoint["fields"]["ships"], SHIPS);
    event(&lines, "stopped");

    // The logs are on stderr; stdout has nothing of them.
    for process in [&shard, &leader] {
        let stdout = std::fs::read_to_string(&process.stdout).unwrap();
        assert!(stdout.trim().is_empty(), "{stdout}");
    }
}

/// `--metrics` on an address other than loopback (what a Prometheus outside the container
/// scrapes) only with `--metrics-public` or ASTROBOIDS_METRICS_PUBLIC: refused by name
/// otherwise. The endpoint is bound before the process connects anywhere.
#[test]
fn metrics_off_loopback_need_metrics_public() {
    let dir = fresh_dir("cli-logging-metrics-public");
    // An "etcd" that accepts connections and never answers: the processes wait for it (up to
    // the connect timeout) with their metrics served.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let etcd = format!("http://{}", silent.local_addr().unwrap());
    let nowhere = ["--nats", "nats://127.0.0.1:1", "--etcd", &etcd];
    for role in [&["shard", "--member", "0"][..], &["leader"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_astroboids"))
            .args(role)
            .args(nowhere)
            .args(["--metrics", "0.0.0.0:0"])
            .env_remove("ASTROBOIDS_METRICS_PUBLIC")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{role:?}: {stderr}");
        assert!(
            stderr.contains("--metrics-public") && stderr.contains("0.0.0.0:0"),
            "{role:?}: {stderr}"
        );
    }

    // With the flag (the shard) and with the variable (the leader): served on every address.
    let json = ["--log-format", "json", "--metrics", "0.0.0.0:0"];
    let mut shard = Proc::start(
        &dir,
        "shard",
        &[
            &["shard", "--member", "0", "--metrics-public"][..],
            &nowhere,
            &json,
        ]
        .concat(),
    );
    let mut leader = Proc::start_with_env(
        &dir,
        "leader",
        &[&["leader"][..], &nowhere, &json].concat(),
        &[("ASTROBOIDS_METRICS_PUBLIC", "true")],
    );
    for process in [&mut shard, &mut leader] {
        let addr: std::net::SocketAddr = metrics_addr(process).parse().unwrap();
        assert!(addr.ip().is_unspecified(), "{addr}");
        // Answered `200 OK` (scrape checks it).
        scrape(&format!("127.0.0.1:{}", addr.port()));
    }
}

#[test]
fn a_shard_names_a_log_filter_it_cannot_read() {
    let dir = fresh_dir("cli-logging-bad-filter");
    let out = astroboids(&dir)
        .args(["shard", "--member", "0", "--log-level", "info,[=oops"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--log-level"), "{stderr}");
}

/// `serve --log-format json`: stdout keeps what players and scripts read (`fingerprint:`,
/// `listening:`), stderr is JSON lines, from the world opened to the checkpoint written at
/// the stop.
#[test]
fn serve_logs_json_lines_and_keeps_its_stdout() {
    let dir = fresh_dir("cli-logging-serve");
    let data = dir.join("world");
    let stderr_path = dir.join("serve.stderr");
    let mut child = astroboids(&dir)
        .args(["serve", "--data"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--no-metrics", "--no-record"])
        .args(["--log-format", "json", "--log-level", "info"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("stop with Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let fingerprint = printed
        .iter()
        .find_map(|l| l.strip_prefix("fingerprint: "))
        .unwrap_or_else(|| panic!("{printed:?}"))
        .to_owned();
    let addr = printed
        .iter()
        .find_map(|l| l.strip_prefix("listening: "))
        .unwrap_or_else(|| panic!("{printed:?}"))
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(status.success(), "{status}:\n{log}");
    assert!(
        rest.iter().any(|l| l.starts_with("stopped at tick ")),
        "{rest:?}"
    );

    let events = json_lines(&log);
    let opened = event(&events, "world opened");
    assert_eq!(opened["fields"]["created"], true);
    let listening = event(&events, "listening");
    assert_eq!(listening["fields"]["addr"], addr.as_str());
    assert_eq!(listening["fields"]["fingerprint"], fingerprint.as_str());
    event(&events, "ticking");
    let stopped = event(&events, "stopped at a checkpoint tick; checkpoint written");
    assert!(stopped["fields"]["tick"].as_u64().unwrap() > 0, "{stopped}");
    assert!(
        events
            .iter()
            .all(|e| e["target"].as_str().is_some_and(|t| !t.is_empty())),
        "{events:#?}"
    );
}
