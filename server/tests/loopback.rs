//! The online world over real QUIC on loopback: a player's whole flow, refusals of hostile or
//! mistaken clients with clear errors, limits, admin powers, and a restart that keeps
//! everything. The server ticks throughout.

mod common;

use common::{circler, fresh_dir};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use astroboids_host::WorldRequest;
use astroboids_net::client::Client;
use astroboids_net::messages::{MoveCommand, Request, RequestError, Response, Token};
use astroboids_net::quic::{Fingerprint, QuicError, client_config_with_alpn};
use astroboids_net::session::ClientEvent;
use astroboids_server::accounts::{AccountRules, Accounts, Role};
use astroboids_server::limits::RateRules;
use astroboids_server::requests::{ReplayRules, ServerRules};
use astroboids_server::serve::{NetRules, RunningServer, ServeOptions};
use astroboids_sim::config::EMBEDDED_CONFIG_TOML;

/// A fast world: 20 Hz, a checkpoint (and possible replay rotation) every 10 ticks.
fn fast_config() -> String {
    EMBEDDED_CONFIG_TOML
        .replace("tick_rate_hz = 10", "tick_rate_hz = 20")
        .replace(
            "checkpoint_every_ticks = 100",
            "checkpoint_every_ticks = 10",
        )
}

fn options(dir: &Path) -> ServeOptions {
    ServeOptions {
        data: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        world: WorldRequest {
            seed: Some(11),
            config: Some((fast_config(), "test config".into())),
            script_workers: 1,
        },
        rules: ServerRules {
            max_ships_per_account: 3,
            replays: Some(ReplayRules {
                ticks_per_file: 20,
                ..ReplayRules::in_data_dir(dir)
            }),
            ..ServerRules::default()
        },
        net: NetRules::default(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(server: &RunningServer) -> Client {
    Client::connect(server.addr, server.fingerprint, "test")
        .await
        .unwrap()
}

async fn ok(client: &mut Client, request: Request) -> Response {
    let response = client.request(request.clone()).await.unwrap();
    assert!(
        !matches!(response, Response::Error(_)),
        "{request:?} -> {response:?}"
    );
    response
}

async fn refused(client: &mut Client, request: Request) -> RequestError {
    match client.request(request.clone()).await.unwrap() {
        Response::Error(e) => e,
        other => panic!("{request:?}: expected an error, got {other:?}"),
    }
}

/// Registers and logs in; returns the connection and the token.
async fn player(server: &RunningServer, name: &str) -> (Client, Token) {
    let mut client = connect(server).await;
    let password = format!("{name} secret");
    ok(
        &mut client,
        Request::Register {
            user: name.into(),
            password: password.clone(),
        },
    )
    .await;
    let Response::LoggedIn { token, .. } = ok(
        &mut client,
        Request::Login {
            user: name.into(),
            password,
        },
    )
    .await
    else {
        panic!("login answers LoggedIn")
    };
    (client, token)
}

async fn status(client: &mut Client, ship: u64) -> astroboids_net::messages::ShipStatusReport {
    let Response::Ships(mut ships) = ok(client, Request::ShipStatus { ship: Some(ship) }).await
    else {
        panic!("status answers Ships")
    };
    ships.remove(0)
}

/// Waits (polling status) until the world passes `tick`.
async fn wait_for_tick(client: &mut Client, ship: u64, tick: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(client, ship).await.tick < tick {
        assert!(Instant::now() < deadline, "the world stopped ticking");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics_text(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    text
}

#[test]
fn a_player_registers_uploads_assigns_and_the_ship_flies_its_script_across_a_restart() {
    let dir = fresh_dir("loopback-flow");
    let server = RunningServer::start(options(&dir)).unwrap();
    assert!(server.identity_created);
    let fingerprint = server.fingerprint;
    let rt = runtime();
    let (token, ship) = rt.block_on(async {
        let (mut ada, token) = player(&server, "ada").await;
        let Response::ScriptUploaded { version, .. } = ok(
            &mut ada,
            Request::UploadScript {
                name: "circler".into(),
                wasm: circler(),
            },
        )
        .await
        else {
            panic!()
        };
        assert_eq!(version, 1);
        let Response::ShipSpawned { ship } = ok(&mut ada, Request::SpawnShip).await else {
            panic!()
        };
        ok(
            &mut ada,
            Request::AssignScript {
                ship,
                name: "circler".into(),
            },
        )
        .await;
        let assigned_at = status(&mut ada, ship).await.tick;
        wait_for_tick(&mut ada, ship, assigned_at + 5).await;
        let report = status(&mut ada, ship).await;
        assert_eq!(report.flown_by, "script circler v1");
        assert!(report.script_fuel_used_last > 0, "{report:?}");
        assert!(report.velocity.0 != 0.0 || report.velocity.1 != 0.0);
        let Response::Logs { lines, faults } = ok(&mut ada, Request::ShipLogs { ship }).await
        else {
            panic!()
        };
        assert!(lines.iter().any(|(_, l)| l == "circling"), "{lines:?}");
        assert!(faults.is_empty());
        let Response::MoveQueued { tick } = ok(
            &mut ada,
            Request::MoveShip {
                ship,
                command: MoveCommand {
                    thrust: 0.0,
                    turn: 0.0,
                    mine: false,
                    stop: true,
                },
            },
        )
        .await
        else {
            panic!()
        };
        assert!(tick > assigned_at);

        let metrics = metrics_text(server.metrics_addr.unwrap()).await;
        for needle in [
            "astroboids_tick_duration_seconds_bucket",
            "astroboids_ships",
            "astroboids_script_fuel_used_total",
            "astroboids_connections",
            "astroboids_requests_total{kind=\"upload_script\"}",
        ] {
            assert!(
                metrics.contains(needle),
                "{needle} missing from:\n{metrics}"
            );
        }
        ada.close().await;
        (token, ship)
    });
    let stopped = server.stop().unwrap();
    assert_eq!(
        stopped.tick % 10,
        0,
        "stops at a checkpoint tick: {stopped:?}"
    );
    assert!(stopped.tick_ms.ticks > 0);
    // Every live recording (uploads, spawns, assignments and moves included) re-simulates
    // to the same state hashes.
    let recordings: Vec<PathBuf> = std::fs::read_dir(dir.join("replays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "abreplay"))
        .collect();
    assert!(recordings.contains(stopped.replay_finished.as_ref().unwrap()));
    let mut inputs_seen = 0;
    for path in &recordings {
        let replay = astroboids_host::replay::Replay::open(path).unwrap();
        inputs_seen += (replay.start_tick() + 1..=replay.last_tick())
            .map(|t| replay.record(t).unwrap().inputs.len())
            .sum::<usize>();
        let report =
            astroboids_host::replay::verify(&replay, astroboids_sim::SimOptions::default(), |_| {})
                .unwrap();
        assert!(
            report.divergence.is_none(),
            "{}: {report:?}",
            path.display()
        );
    }
    assert!(
        inputs_seen >= 4,
        "the players' inputs are in the recordings"
    );

    // A restart keeps the certificate, the account, the session, the script and the ship.
    let server = RunningServer::start(options(&dir)).unwrap();
    assert!(!server.identity_created);
    assert_eq!(server.fingerprint, fingerprint);
    assert_eq!(server.opened.checkpoint_tick, Some(stopped.tick));
    rt.block_on(async {
        let mut ada = connect(&server).await;
        let Response::Authenticated { user, admin } =
            ok(&mut ada, Request::Authenticate { token }).await
        else {
            panic!()
        };
        assert_eq!((user.as_str(), admin), ("ada", false));
        let Response::Scripts(scripts) = ok(&mut ada, Request::ListScripts).await else {
            panic!()
        };
        assert_eq!(scripts.len(), 1);
        let report = status(&mut ada, ship).await;
        assert_eq!(report.flown_by, "script circler v1");
        assert!(report.tick >= stopped.tick);
        ada.close().await;
    });
    server.stop().unwrap();
}

#[test]
fn mistaken_and_hostile_clients_get_clear_refusals_and_others_play_on() {
    let dir = fresh_dir("loopback-refusals");
    let mut opts = options(&dir);
    opts.rules.accounts = AccountRules {
        session_lifetime_s: 2,
        ..AccountRules::default()
    };
    let server = RunningServer::start(opts).unwrap();
    let rt = runtime();
    rt.block_on(async {
        // A client pinning another certificate does not connect.
        let wrong_pin = Fingerprint::of(b"some other certificate");
        let e = Client::connect(server.addr, wrong_pin, "test")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("fingerprint"), "{e}");
        // A client speaking another protocol is refused in the handshake.
        let config = client_config_with_alpn(server.fingerprint, b"http/3").unwrap();
        let e = Client::connect_with(server.addr, config, "test")
            .await
            .unwrap_err();
        assert!(
            matches!(e, QuicError::Connect { .. }),
            "wrong ALPN must not connect: {e}"
        );

        let (mut ada, _) = player(&server, "ada").await;
        let (mut bob, bob_token) = player(&server, "bob").await;
        let Response::ShipSpawned { ship: adas_ship } = ok(&mut ada, Request::SpawnShip).await
        else {
            panic!()
        };
        // Commanding someone else's ship.
        let e = refused(
            &mut bob,
            Request::MoveShip {
                ship: adas_ship,
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
            matches!(&e, RequestError::Forbidden(m) if m.contains("not yours")),
            "{e}"
        );
        // A forged token.
        let mut mallory = connect(&server).await;
        let e = refused(
            &mut mallory,
            Request::Authenticate {
                token: Token("forged".repeat(8)),
            },
        )
        .await;
        assert!(e.to_string().contains("unknown or revoked"), "{e}");
        assert_eq!(
            refused(&mut mallory, Request::SpawnShip).await,
            RequestError::NotAuthenticated
        );
        // An upload over the module limit (but within the frame limit).
        let e = refused(
            &mut ada,
            Request::UploadScript {
                name: "huge".into(),
                wasm: vec![0; 300 * 1024],
            },
        )
        .await;
        assert!(e.to_string().contains("limit is 262144"), "{e}");
        // A module that is not WebAssembly.
        let e = refused(
            &mut ada,
            Request::UploadScript {
                name: "junk".into(),
                wasm: b"not wasm at all".to_vec(),
            },
        )
        .await;
        assert!(e.to_string().contains("script rejected"), "{e}");
        // A frame over the connection's limit closes that connection, saying why.
        let mut big = connect(&server).await;
        big.send_raw(&(10u32 << 20).to_le_bytes()).await.unwrap();
        let e = big.next_events().await;
        let said = format!("{e:?}");
        assert!(said.contains("exceeds the limit"), "{said}");
        // Garbage frames: an error each, then a disconnect.
        let mut noisy = connect(&server).await;
        let garbage = [5u32.to_le_bytes().as_slice(), &[0xff; 5]].concat();
        let mut seen = Vec::new();
        for _ in 0..3 {
            noisy.send_raw(&garbage).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match noisy.next_events().await {
                Ok(events) => {
                    let done = events
                        .iter()
                        .any(|e| matches!(e, ClientEvent::Refused { .. }));
                    seen.extend(events);
                    if done {
                        break;
                    }
                }
                Err(e) => {
                    seen.push(ClientEvent::Broken {
                        reason: e.to_string(),
                    });
                    break;
                }
            }
        }
        let said = format!("{seen:?}");
        assert!(said.contains("malformed message"), "{said}");
        assert!(said.contains("protocol errors: closing"), "{said}");

        // The expired session: bob's token lapses after 2 s.
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let mut bob_again = connect(&server).await;
        let e = refused(&mut bob_again, Request::Authenticate { token: bob_token }).await;
        assert!(e.to_string().contains("expired"), "{e}");
        assert_eq!(
            refused(&mut bob, Request::ListScripts).await,
            RequestError::NotAuthenticated
        );

        // Meanwhile the world kept ticking and ada plays on (she logs in again: 2 s sessions).
        let (mut ada2, _) = {
            let mut c = connect(&server).await;
            let Response::LoggedIn { token, .. } = ok(
                &mut c,
                Request::Login {
                    user: "ada".into(),
                    password: "ada secret".into(),
                },
            )
            .await
            else {
                panic!()
            };
            (c, token)
        };
        let before = status(&mut ada2, adas_ship).await.tick;
        wait_for_tick(&mut ada2, adas_ship, before + 3).await;
    });
    server.stop().unwrap();
}

#[test]
fn rate_limits_connection_caps_and_admin_kicks() {
    let dir = fresh_dir("loopback-limits");
    let mut opts = options(&dir);
    let n = |v| std::num::NonZeroU32::new(v).unwrap();
    opts.rules.rates = RateRules {
        per_ip_per_s: n(1),
        per_ip_burst: n(1_000),
        per_account_per_s: n(1),
        per_account_burst: n(10),
    };
    opts.net.max_connections_per_ip = 4;
    // An admin made offline, as `astroboids admin create-user --admin` does.
    {
        let (world, _) = astroboids_host::PersistentWorld::open(&dir, opts.world.clone()).unwrap();
        Accounts::new(world.store(), AccountRules::default())
            .register("root", "root password", Role::Admin, 0)
            .unwrap();
        world.close().unwrap();
    }
    let server = RunningServer::start(opts).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let (mut ada, _) = player(&server, "ada").await;
        // ada's account allows a burst of 10 requests (login was the first).
        let mut limited = None;
        for _ in 0..20 {
            if let Response::Error(e) = ada.request(Request::ListScripts).await.unwrap() {
                limited = Some(e);
                break;
            }
        }
        let limited = limited.expect("the account's rate limit triggers");
        assert!(matches!(limited, RequestError::RateLimited(_)), "{limited}");

        // Connections per address: 4 (ada holds one).
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(connect(&server).await);
        }
        let e = Client::connect(server.addr, server.fingerprint, "test")
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("the most one address may have"),
            "{e}"
        );
        drop(held);
        tokio::time::sleep(Duration::from_millis(300)).await;

        // A player may not use admin powers; an admin kicks ada off.
        let mut root = connect(&server).await;
        ok(
            &mut root,
            Request::Login {
                user: "root".into(),
                password: "root password".into(),
            },
        )
        .await;
        let Response::ShipSpawned { ship } = ok(
            &mut root,
            Request::AdminSpawn {
                owner: "ada".into(),
            },
        )
        .await
        else {
            panic!()
        };
        let Response::Kicked { connections, .. } =
            ok(&mut root, Request::AdminKick { user: "ada".into() }).await
        else {
            panic!()
        };
        assert_eq!(connections, 1);
        let e = ada.request(Request::ListScripts).await.unwrap_err();
        assert!(
            e.to_string().contains("an admin closed your session"),
            "{e}"
        );
        ok(&mut root, Request::AdminDespawn { ship }).await;
        root.close().await;
    });
    server.stop().unwrap();
}

#[test]
fn players_download_traces_of_their_own_ships_from_live_recordings() {
    let dir = fresh_dir("loopback-trace");
    let server = RunningServer::start(options(&dir)).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let (mut ada, _) = player(&server, "ada").await;
        let (mut bob, _) = player(&server, "bob").await;
        ok(
            &mut ada,
            Request::UploadScript {
                name: "circler".into(),
                wasm: circler(),
            },
        )
        .await;
        let Response::ShipSpawned { ship } = ok(&mut ada, Request::SpawnShip).await else {
            panic!()
        };
        ok(
            &mut ada,
            Request::AssignScript {
                ship,
                name: "circler".into(),
            },
        )
        .await;
        let assigned_at = status(&mut ada, ship).await.tick;
        // Wait for a finished recording that covers some ticks after the assignment.
        let deadline = Instant::now() + Duration::from_secs(60);
        let listing = loop {
            let Response::Replays(replays) = ok(&mut ada, Request::ListReplays).await else {
                panic!()
            };
            if let Some(r) = replays.into_iter().find(|r| r.last_tick > assigned_at + 3) {
                break r;
            }
            assert!(Instant::now() < deadline, "no recording finished");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let from = listing.first_tick.max(assigned_at + 2);
        let to = listing.last_tick;
        let request = Request::DownloadTrace {
            ship,
            from_tick: from,
            to_tick: to,
        };
        let e = refused(&mut bob, request.clone()).await;
        assert!(matches!(e, RequestError::Forbidden(_)), "{e}");
        let Response::Trace { json, .. } = ok(&mut ada, request).await else {
            panic!()
        };
        let trace: astroboids_host::trace::ShipTrace = serde_json::from_slice(&json).unwrap();
        assert_eq!(trace.ship, ship);
        assert_eq!(trace.ticks.len() as u64, to - from + 1);
        assert!(trace.ticks.iter().all(|t| t.command.is_some()));
        let e = refused(
            &mut ada,
            Request::DownloadTrace {
                ship,
                from_tick: 1_000_000,
                to_tick: 1_000_010,
            },
        )
        .await;
        assert!(
            e.to_string().contains("no finished recording covers"),
            "{e}"
        );
    });
    server.stop().unwrap();
}

/// The connection drops after the server carried out a spawn and before the client read the
/// answer (a fault injected in the shell). The client reconnects by itself, resumes its
/// session and re-sends the spawn under its original id: the player gets the original answer
/// and has exactly one new ship.
#[test]
fn a_spawn_whose_answer_is_lost_with_the_connection_is_answered_after_the_reconnect_once() {
    let dir = fresh_dir("loopback-resume");
    let mut options = options(&dir);
    options.net.faults.lose_connection_before_spawn_answers = 1;
    let server = RunningServer::start(options).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let (mut ada, _) = player(&server, "ada").await;
        let Response::ShipSpawned { ship } = ok(&mut ada, Request::SpawnShip).await else {
            panic!("a spawn answer");
        };
        assert_eq!(ada.reconnects(), 1, "the answer came over a new connection");
        let Response::Ships(ships) = ok(&mut ada, Request::ShipStatus { ship: None }).await else {
            panic!("a status answer");
        };
        let ids: Vec<u64> = ships.iter().map(|s| s.ship).collect();
        assert_eq!(ids, vec![ship], "exactly one new ship, the one answered");
        // The next spawn is new work, and answered on the same connection.
        let Response::ShipSpawned { ship: second } = ok(&mut ada, Request::SpawnShip).await else {
            panic!("a spawn answer");
        };
        assert_ne!(second, ship);
        assert_eq!(ada.reconnects(), 1);
        ada.close().await;
    });
    server.stop().unwrap();
}
