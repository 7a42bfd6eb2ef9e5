//! Playing on a cluster: `cluster up` starts PostgreSQL, the servers, leaders, shards and two
//! gateways and prints what `serve` prints; a player plays through either gateway exactly as
//! on the single server (same client, same requests, same answers); a request whose gateway
//! is killed mid-way is carried out once; a shard killed under a watching player costs a gap
//! in the snapshots, not the connection, and no acknowledged input.

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use astroboids_client::loadgen::bot_script;
use astroboids_cluster_net::TickBus;
use astroboids_cluster_net::process::INPUT_SUBJECT;
use astroboids_net::client::{Client, Update};
use astroboids_net::messages::{MoveCommand, Request, RequestError, Response, Token};
use astroboids_net::quic::Fingerprint;
use astroboids_net::snapshot::KIND_OWN_SHIP;
use astroboids_pgstore::{PgStore, StoreConfig};

use common::fresh_dir;

/// A local cluster run by `astroboids cluster up`, stopped (SIGTERM) when dropped.
struct Cluster {
    child: Child,
    nats: String,
    etcd: String,
    postgres: String,
    gateways: Vec<SocketAddr>,
    fingerprint: Fingerprint,
    pids: BTreeMap<String, u32>,
    printed: Vec<String>,
    /// Its data directory (the gateways' identity is in `gateway/`).
    data: std::path::PathBuf,
}

impl Cluster {
    fn up(name: &str, shards: u32, gateways: u32) -> Self {
        let dir = fresh_dir(name);
        let mut child = Command::new(env!("CARGO_BIN_EXE_astroboids"))
            .args(["cluster", "up", "--shards", &shards.to_string()])
            .args(["--gateways", &gateways.to_string()])
            .args([
                "--nats-port",
                "0",
                "--etcd-port",
                "0",
                "--postgres-port",
                "0",
            ])
            .args(["--gateway-port", "0", "--tick-ms", "50"])
            .args(["--data", dir.join("data").to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cluster up starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut cluster = Cluster {
            child,
            nats: String::new(),
            etcd: String::new(),
            postgres: String::new(),
            gateways: Vec::new(),
            fingerprint: Fingerprint([0; 32]),
            pids: BTreeMap::new(),
            printed: Vec::new(),
            data: dir.join("data"),
        };
        for line in lines.by_ref() {
            let line = line.unwrap();
            cluster.printed.push(line.clone());
            if let Some(url) = line.strip_prefix("nats: ") {
                cluster.nats = url.to_owned();
            } else if let Some(url) = line.strip_prefix("etcd: ") {
                cluster.etcd = url.to_owned();
            } else if let Some(url) = line.strip_prefix("postgres: ") {
                cluster.postgres = url.to_owned();
            } else if let Some(rest) = line.strip_prefix("listening: ") {
                let addr = rest.split_whitespace().next().unwrap();
                cluster.gateways.push(addr.parse().unwrap());
            } else if let Some(hex) = line.strip_prefix("fingerprint: ") {
                cluster.fingerprint = hex.parse().unwrap();
            } else if let Some((role, rest)) = line.split_once(": pid ") {
                let pid = rest.split(',').next().unwrap().parse().unwrap();
                cluster.pids.insert(role.to_owned(), pid);
            } else if line.starts_with("running;") {
                break;
            }
        }
        assert_eq!(
            cluster.gateways.len(),
            gateways as usize,
            "cluster up printed a listening line per gateway: {:?}",
            cluster.printed
        );
        // Keep the pipe drained.
        std::thread::spawn(move || for _ in lines {});
        cluster
    }

    fn pid(&self, role: &str) -> u32 {
        self.pids[role]
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        signal("TERM", self.child.id());
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn ask(client: &mut Client, request: Request) -> Response {
    let kind = request.kind();
    client
        .request(request)
        .await
        .unwrap_or_else(|e| panic!("{kind}: {e}"))
}

/// A registered, logged-in player on `addrs` (the first that answers; the others are where
/// the client goes when its gateway is lost). Returns the client and the session token.
async fn player(addrs: &[SocketAddr], pin: Fingerprint, user: &str) -> (Client, Token) {
    let mut client = Client::connect_any(addrs, pin, &format!("test-{user}"))
        .await
        .unwrap();
    let password = "correct horse battery".to_owned();
    let registered = ask(
        &mut client,
        Request::Register {
            user: user.into(),
            password: password.clone(),
        },
    )
    .await;
    assert_eq!(registered, Response::Registered);
    let Response::LoggedIn { token, .. } = ask(
        &mut client,
        Request::Login {
            user: user.into(),
            password,
        },
    )
    .await
    else {
        panic!("logged in");
    };
    (client, token)
}

async fn spawn(client: &mut Client) -> u64 {
    match ask(client, Request::SpawnShip).await {
        Response::ShipSpawned { ship } => ship,
        other => panic!("spawn: {other:?}"),
    }
}

async fn ships(client: &mut Client) -> Vec<astroboids_net::messages::ShipStatusReport> {
    match ask(client, Request::ShipStatus { ship: None }).await {
        Response::Ships(ships) => ships,
        other => panic!("status: {other:?}"),
    }
}

fn refused(response: Response) -> RequestError {
    match response {
        Response::Error(e) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Waits for a snapshot (and returns the live view's newest tick), up to `within`.
async fn next_snapshot(client: &mut Client, within: Duration) -> u64 {
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, client.next_update()).await {
            Ok(Ok(Update::Snapshot { tick })) => return tick,
            Ok(Ok(Update::Events(_))) => {}
            Ok(Err(e)) => panic!("live updates: {e}"),
            Err(_) => panic!("no snapshot within {within:?}"),
        }
    }
}

#[test]
fn players_play_on_a_cluster_through_either_gateway() {
    let cluster = Cluster::up("gateway-play", 2, 2);
    let (a, b) = (cluster.gateways[0], cluster.gateways[1]);
    let pin = cluster.fingerprint;
    // Both gateways are registered for status pages, with what players need to reach them.
    let status = Command::new(env!("CARGO_BIN_EXE_astroboids"))
        .args(["cluster", "status", "--json", "--nats", &cluster.nats])
        .args(["--etcd", &cluster.etcd])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let mut listed: Vec<String> = status["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            assert_eq!(g["fingerprint"].as_str().unwrap(), pin.to_string());
            g["addr"].as_str().unwrap().to_owned()
        })
        .collect();
    listed.sort();
    let mut expected = vec![a.to_string(), b.to_string()];
    expected.sort();
    assert_eq!(listed, expected);
    runtime().block_on(async {
        let (mut ada, token) = player(&[a], pin, "ada").await;
        assert!(
            ada.server.starts_with("astroboids-gateway"),
            "{}",
            ada.server
        );
        let uploaded = ask(
            &mut ada,
            Request::UploadScript {
                name: "bot".into(),
                wasm: bot_script(),
            },
        )
        .await;
        assert!(
            matches!(&uploaded, Response::ScriptUploaded { name, version: 1, .. } if name == "bot"),
            "{uploaded:?}"
        );
        let broken = ask(
            &mut ada,
            Request::UploadScript {
                name: "broken".into(),
                wasm: b"not wasm".to_vec(),
            },
        )
        .await;
        assert!(
            matches!(refused(broken), RequestError::Rejected(m) if m.contains("script rejected")),
        );
        let (s1, s2) = (spawn(&mut ada).await, spawn(&mut ada).await);
        assert_ne!(s1, s2);
        let assigned = ask(
            &mut ada,
            Request::AssignScript {
                ship: s1,
                name: "bot".into(),
            },
        )
        .await;
        assert_eq!(
            assigned,
            Response::ScriptAssigned {
                ship: s1,
                name: "bot".into(),
                version: 1
            }
        );
        let moved = ask(
            &mut ada,
            Request::MoveShip {
                ship: s2,
                command: MoveCommand {
                    thrust: 1.0,
                    turn: 0.0,
                    mine: false,
                    stop: false,
                },
            },
        )
        .await;
        assert!(
            matches!(moved, Response::MoveQueued { tick } if tick > 0),
            "{moved:?}"
        );
        let status = ships(&mut ada).await;
        let ids: Vec<u64> = status.iter().map(|s| s.ship).collect();
        assert_eq!(ids, vec![s1, s2]);
        assert_eq!(status[0].flown_by, "script bot v1");
        assert_eq!(status[1].flown_by, "autopilot");

        // Live: snapshots of ada's own ships, and the bot's log line (every 50 ticks).
        let subscribed = ada.subscribe().await.unwrap();
        assert!(
            matches!(subscribed, Response::Subscribed { sector_size, .. } if sector_size > 0.0)
        );
        let first = next_snapshot(&mut ada, Duration::from_secs(20)).await;
        let view = ada.live().unwrap().latest().unwrap().clone();
        for ship in [s1, s2] {
            assert_eq!(view[&ship].kind, KIND_OWN_SHIP, "tick {first}: ship {ship}");
            assert_eq!(view[&ship].sector, status[0].sector);
        }
        let until = Instant::now() + Duration::from_secs(30);
        let logged = loop {
            assert!(Instant::now() < until, "no log line from the bot");
            match tokio::time::timeout(Duration::from_secs(10), ada.next_update()).await {
                Ok(Ok(Update::Events(events))) if !events.logs.is_empty() => break events,
                Ok(Ok(_)) => {}
                other => panic!("live updates: {other:?}"),
            }
        };
        assert_eq!(logged.logs[0], (s1, "bot".to_owned()));
        let Response::Logs { lines, .. } = ask(&mut ada, Request::ShipLogs { ship: s1 }).await
        else {
            panic!("logs");
        };
        assert!(lines.iter().any(|(_, line)| line == "bot"), "{lines:?}");

        // The same session on the other gateway.
        let mut elsewhere = Client::connect(b, pin, "test-ada-2").await.unwrap();
        let authenticated = ask(&mut elsewhere, Request::Authenticate { token }).await;
        assert_eq!(
            authenticated,
            Response::Authenticated {
                user: "ada".into(),
                admin: false
            }
        );
        let seen: Vec<u64> = ships(&mut elsewhere).await.iter().map(|s| s.ship).collect();
        assert_eq!(seen, vec![s1, s2]);

        // Another player may not touch ada's ships; names are checked.
        let (mut bob, _) = player(&[b], pin, "bob").await;
        let forbidden = ask(&mut bob, Request::ShipLogs { ship: s1 }).await;
        assert!(
            matches!(refused(forbidden), RequestError::Forbidden(m) if m.contains("not yours"))
        );
        let taken = ask(
            &mut bob,
            Request::Register {
                user: "ada".into(),
                password: "another password".into(),
            },
        )
        .await;
        assert!(matches!(refused(taken), RequestError::Rejected(m) if m.contains("taken")));
        let no_script = ask(
            &mut ada,
            Request::AssignScript {
                ship: s2,
                name: "nope".into(),
            },
        )
        .await;
        assert!(matches!(refused(no_script), RequestError::Rejected(m) if m.contains("\"nope\"")));

        // An admin (made in the store) limits ada's ships and closes her sessions.
        let store = PgStore::connect(StoreConfig::new(cluster.postgres.clone()))
            .await
            .unwrap();
        let (mut root, _) = player(&[b], pin, "root").await;
        let made = Command::new(env!("CARGO_BIN_EXE_astroboids"))
            .args([
                "admin",
                "--postgres",
                &cluster.postgres,
                "set-role",
                "root",
                "admin",
            ])
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&made.stdout).trim(),
            "root is now admin"
        );
        let listed = Command::new(env!("CARGO_BIN_EXE_astroboids"))
            .args(["admin", "--postgres", &cluster.postgres, "accounts"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with("root") && l.contains(" admin ")),
            "{listed}"
        );
        let unknown = Command::new(env!("CARGO_BIN_EXE_astroboids"))
            .args(["admin", "--postgres", &cluster.postgres, "revoke", "nobody"])
            .output()
            .unwrap();
        assert!(!unknown.status.success());
        assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user \"nobody\""));
        let limited = ask(
            &mut root,
            Request::AdminSetShipLimit {
                user: "ada".into(),
                max_ships: Some(2),
            },
        )
        .await;
        assert_eq!(
            limited,
            Response::ShipLimitSet {
                user: "ada".into(),
                max_ships: 2
            }
        );
        let capped = ask(&mut ada, Request::SpawnShip).await;
        assert!(
            matches!(refused(capped), RequestError::Rejected(m) if m.contains("you own 2 ships")),
        );
        // The store keeps the durable copy of the world's input log: ada's inputs, by their
        // log positions, as the world applied them.
        let logged = store.inputs("main", 1, 1_000).await.unwrap();
        let ada_inputs: Vec<astroboids_sim::inputs::WorldInput> = logged
            .iter()
            .filter(|i| i.submitted_by.as_deref() == Some("ada"))
            .map(|i| postcard::from_bytes(&i.input).unwrap())
            .collect();
        let kinds: Vec<&str> = ada_inputs.iter().map(|i| i.kind()).collect();
        assert_eq!(
            kinds,
            [
                "spawn ship",
                "spawn ship",
                "add script",
                "assign script",
                "command"
            ],
            "{kinds:?}"
        );
        let kicked = ask(&mut root, Request::AdminKick { user: "ada".into() }).await;
        assert!(matches!(kicked, Response::Kicked { .. }), "{kicked:?}");
        // Both of ada's connections (one per gateway) are closed or logged out.
        let after = elsewhere.request(Request::ShipStatus { ship: None }).await;
        assert!(
            !matches!(after, Ok(Response::Ships(_))),
            "a kicked session is refused: {after:?}"
        );
    });
}

#[test]
fn a_request_whose_gateway_dies_mid_way_is_carried_out_once() {
    let cluster = Cluster::up("gateway-once", 1, 2);
    let pin = cluster.fingerprint;
    let (a, b) = (cluster.gateways[0], cluster.gateways[1]);
    runtime().block_on(async {
        let (mut ada, _) = player(&[a, b], pin, "ada").await;
        let before = spawn(&mut ada).await;
        let bus = TickBus::connect(&cluster.nats, "main").await.unwrap();
        let inputs_before = bus.last_seq().await.unwrap();
        // Hold the world still (its leaders), so the spawn is stored in the input log but
        // not judged while its gateway dies.
        let leaders = [cluster.pid("leader-0"), cluster.pid("leader-1")];
        for pid in leaders {
            signal("STOP", pid);
        }
        let spawning = tokio::spawn(async move {
            let ship = spawn(&mut ada).await;
            (ada, ship)
        });
        let mut watch = bus
            .subscribe(
                INPUT_SUBJECT,
                None,
                astroboids_cluster_net::StartAt::Sequence(inputs_before + 1),
            )
            .await
            .unwrap();
        let published = tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .expect("the gateway published the spawn")
            .unwrap();
        signal("KILL", cluster.pid("gateway-0"));
        for pid in leaders {
            signal("CONT", pid);
        }
        let (mut ada, ship) = tokio::time::timeout(Duration::from_secs(90), spawning)
            .await
            .expect("the spawn is answered through the other gateway")
            .unwrap();
        assert!(ada.reconnects() >= 1);
        let owned: Vec<u64> = ships(&mut ada).await.iter().map(|s| s.ship).collect();
        assert_eq!(owned, vec![before, ship], "one ship for one spawn request");
        // The request was not published again as a new input: the log holds it once.
        let mut all = bus
            .subscribe(
                INPUT_SUBJECT,
                None,
                astroboids_cluster_net::StartAt::Sequence(published.seq),
            )
            .await
            .unwrap();
        let first = all.next().await.unwrap();
        assert_eq!(first.msg_id, published.msg_id);
        let more = tokio::time::timeout(Duration::from_secs(2), all.next()).await;
        assert!(
            more.is_err(),
            "no second input after the one the dead gateway published: {:?}",
            more.map(|m| m.map(|m| m.msg_id))
        );
    });
}

#[test]
fn a_shard_killed_under_a_watching_player_costs_a_gap_not_the_connection() {
    let cluster = Cluster::up("gateway-shard-lost", 2, 1);
    let pin = cluster.fingerprint;
    runtime().block_on(async {
        let (mut ada, _) = player(&cluster.gateways, pin, "ada").await;
        let first = spawn(&mut ada).await;
        let uploaded = ask(
            &mut ada,
            Request::UploadScript {
                name: "bot".into(),
                wasm: bot_script(),
            },
        )
        .await;
        assert!(matches!(uploaded, Response::ScriptUploaded { .. }));
        ada.subscribe().await.unwrap();
        // Past the first checkpoint (tick 100 at 50 ms a tick), so the kill re-runs ticks.
        let mut last = next_snapshot(&mut ada, Duration::from_secs(20)).await;
        while last < 110 {
            last = next_snapshot(&mut ada, Duration::from_secs(20)).await;
        }
        // Inputs acknowledged after that checkpoint: the re-run must apply them again.
        let second = spawn(&mut ada).await;
        let assigned = ask(
            &mut ada,
            Request::AssignScript {
                ship: first,
                name: "bot".into(),
            },
        )
        .await;
        assert!(
            matches!(assigned, Response::ScriptAssigned { .. }),
            "{assigned:?}"
        );
        let last_before = next_snapshot(&mut ada, Duration::from_secs(20)).await;
        signal("KILL", cluster.pid("shard-1"));
        let killed_at = Instant::now();
        let (mut gap, mut at, mut last) = (Duration::ZERO, Instant::now(), last_before);
        // Snapshots pause, then come again, newer ticks only.
        for _ in 0..20 {
            let tick = next_snapshot(&mut ada, Duration::from_secs(60)).await;
            assert!(tick > last, "tick {tick} after {last}");
            last = tick;
            gap = gap.max(at.elapsed());
            at = Instant::now();
        }
        eprintln!(
            "shard-1 killed at tick {last_before}: longest gap between snapshots {:.2} s; \
             20 snapshots {:.2} s after the kill",
            gap.as_secs_f64(),
            killed_at.elapsed().as_secs_f64()
        );
        assert_eq!(ada.reconnects(), 0, "the player stayed connected");
        let status = ships(&mut ada).await;
        let ids: Vec<u64> = status.iter().map(|s| s.ship).collect();
        assert_eq!(ids, vec![first, second], "the acknowledged spawn stands");
        assert_eq!(
            status[0].flown_by, "script bot v1",
            "the acknowledged assignment stands"
        );
        assert!(status[0].tick > last_before);
    });
}

/// `GET /metrics`: the Prometheus text.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.split_once("\r\n\r\n").unwrap().1.to_owned()
}

#[test]
fn a_gateway_started_by_hand_joins_the_cluster_and_serves_its_metrics() {
    let cluster = Cluster::up("gateway-metrics", 1, 1);
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_astroboids"))
        .args(["gateway", "--name", "by-hand", "--listen", "127.0.0.1:0"])
        .args(["--metrics", "127.0.0.1:0", "--postgres", &cluster.postgres])
        .args(["--nats", &cluster.nats, "--etcd", &cluster.etcd])
        // The cluster's identity: one fingerprint for every gateway.
        .args(["--identity", cluster.data.join("gateway").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = gateway.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (mut addr, mut metrics, mut fingerprint) = (None, None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("listening: ") {
            addr = rest.split_whitespace().next().map(str::to_owned);
        } else if let Some(rest) = line.strip_prefix("fingerprint: ") {
            fingerprint = Some(rest.to_owned());
        } else if let Some(rest) = line.strip_prefix("metrics: http://") {
            metrics = rest.strip_suffix("/metrics").map(str::to_owned);
            break;
        }
    }
    assert_eq!(fingerprint, Some(cluster.fingerprint.to_string()));
    let addr: SocketAddr = addr.expect("a listening line").parse().unwrap();
    let metrics = metrics.expect("a metrics line");
    let rt = runtime();
    let mut ada = rt.block_on(async {
        let (mut ada, _) = player(&[addr, cluster.gateways[0]], cluster.fingerprint, "ada").await;
        spawn(&mut ada).await;
        ada.subscribe().await.unwrap();
        next_snapshot(&mut ada, Duration::from_secs(20)).await;
        ada
    });
    let text = scrape(&metrics);
    for expected in [
        "astroboids_gateway_requests_total{kind=\"register\",outcome=\"ok\"} 1",
        "astroboids_gateway_requests_total{kind=\"spawn_ship\",outcome=\"ok\"} 1",
        "astroboids_gateway_input_seconds",
        "astroboids_gateway_view_tick",
        "astroboids_gateway_snapshot_bytes_total",
        "astroboids_gateway_connections",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
    signal("TERM", gateway.id());
    let status = gateway.wait().unwrap();
    assert!(
        status.success(),
        "the gateway stops cleanly on SIGTERM: {status}"
    );
    std::thread::spawn(move || for _ in lines {});
    // A gateway that stops says "going away", not "refused": its players go on through
    // another gateway, with their session.
    rt.block_on(async {
        let owned = ships(&mut ada).await;
        assert_eq!(owned.len(), 1);
        assert_eq!(ada.reconnects(), 1);
        next_snapshot(&mut ada, Duration::from_secs(20)).await;
    });
}
