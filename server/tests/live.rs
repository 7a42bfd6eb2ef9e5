//! Live snapshots over real QUIC on loopback: two players whose ships start close together
//! each see the other's ship (and only as a foreign ship), get their own ships' script events
//! on the stream, and see the other ship removed once it has flown out of sensor range.

mod common;

use common::fresh_dir;

use std::path::Path;
use std::time::{Duration, Instant};

use astroboids_host::WorldRequest;
use astroboids_net::client::{Client, Update};
use astroboids_net::messages::{Request, Response};
use astroboids_server::requests::{ServerRules, spawn_point};
use astroboids_server::serve::{NetRules, RunningServer, ServeOptions};
use astroboids_server::views::{KIND_OWN_SHIP, owned_ship_kind};
use astroboids_sim::config::EMBEDDED_CONFIG_TOML;

const SENSOR_RANGE: f32 = 60.0;

fn options(dir: &Path) -> ServeOptions {
    let config = EMBEDDED_CONFIG_TOML
        .replace("tick_rate_hz = 10", "tick_rate_hz = 20")
        .replace("range = 200.0", &format!("range = {SENSOR_RANGE:.1}"));
    ServeOptions {
        data: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        world: WorldRequest {
            seed: Some(3),
            config: Some((config, "test config".into())),
            script_workers: 1,
        },
        rules: ServerRules::default(),
        net: NetRules::default(),
    }
}

/// Two account names whose first ships spawn in one sector, 10 to 40 m apart.
fn neighbours() -> (String, String) {
    let names: Vec<String> = (0..400).map(|i| format!("pilot{i}")).collect();
    for a in &names {
        for b in &names {
            let (sa, la) = spawn_point(a, 0, 1000.0);
            let (sb, lb) = spawn_point(b, 0, 1000.0);
            let d = ((la.0 - lb.0).powi(2) + (la.1 - lb.1).powi(2)).sqrt();
            if a != b && sa == sb && (10.0..40.0).contains(&d) {
                return (a.clone(), b.clone());
            }
        }
    }
    panic!("no neighbouring names among 400");
}

/// Flies straight ahead at full thrust, logging as it goes.
fn runner() -> Vec<u8> {
    let wat = r#"(module
        (import "astroboids" "log" (func $log (param i32 i32)))
        (memory (export "memory") 1 1)
        (data (i32.const 200) "running")
        (func (export "astroboids_abi") (result i32) i32.const 1)
        (func (export "sensor_ptr") (result i32) i32.const 1024)
        (func (export "command_ptr") (result i32) i32.const 4096)
        (func (export "tick")
          (call $log (i32.const 200) (i32.const 7))
          (f32.store (i32.const 4096) (f32.const 1))
          (f32.store (i32.const 4100) (f32.const 0))))"#;
    wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned()
}

async fn player(server: &RunningServer, name: &str) -> (Client, u64) {
    let mut client = Client::connect(server.addr, server.fingerprint, "test")
        .await
        .unwrap();
    for request in [
        Request::Register {
            user: name.into(),
            password: "long enough".into(),
        },
        Request::Login {
            user: name.into(),
            password: "long enough".into(),
        },
    ] {
        let response = client.request(request).await.unwrap();
        assert!(!matches!(response, Response::Error(_)), "{response:?}");
    }
    let Response::ShipSpawned { ship } = client.request(Request::SpawnShip).await.unwrap() else {
        panic!("spawn")
    };
    (client, ship)
}

/// Reads updates until `done` holds for the client's live view (or events), or panics.
async fn until(client: &mut Client, what: &str, mut done: impl FnMut(&Client, &Update) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        let update = tokio::time::timeout(Duration::from_secs(10), client.next_update())
            .await
            .unwrap_or_else(|_| panic!("no update while waiting for {what}"))
            .unwrap();
        if done(client, &update) {
            return;
        }
    }
}

#[test]
fn players_see_each_other_within_sensor_range_and_a_removal_when_one_leaves() {
    let dir = fresh_dir("live-two-players");
    let server = RunningServer::start(options(&dir)).unwrap();
    let (name_a, name_b) = neighbours();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut a, ship_a) = player(&server, &name_a).await;
        let (mut b, ship_b) = player(&server, &name_b).await;
        for client in [&mut a, &mut b] {
            let response = client.subscribe().await.unwrap();
            assert!(
                matches!(response, Response::Subscribed { sector_size, .. } if sector_size == 1000.0),
                "{response:?}"
            );
        }
        until(&mut b, "b to see a's ship", |c, _| {
            let view = c.live().unwrap().latest().unwrap();
            view.get(&ship_b).is_some_and(|e| e.kind == KIND_OWN_SHIP)
                && view.get(&ship_a).is_some_and(|e| e.kind == owned_ship_kind(&name_a))
        })
        .await;
        until(&mut a, "a to see b's ship", |c, _| {
            let view = c.live().unwrap().latest().unwrap();
            view.get(&ship_a).is_some_and(|e| e.kind == KIND_OWN_SHIP)
                && view.get(&ship_b).is_some_and(|e| e.kind == owned_ship_kind(&name_b))
        })
        .await;

        // a's ship runs away on a script; a gets its log lines as events.
        for request in [
            Request::UploadScript {
                name: "runner".into(),
                wasm: runner(),
            },
            Request::AssignScript {
                ship: ship_a,
                name: "runner".into(),
            },
        ] {
            let response = a.request(request).await.unwrap();
            assert!(!matches!(response, Response::Error(_)), "{response:?}");
        }
        until(&mut a, "a's script events", |_, update| match update {
            Update::Events(events) => {
                assert!(events.logs.iter().all(|(ship, _)| *ship == ship_a));
                events.logs.iter().any(|(_, line)| line == "running")
            }
            Update::Snapshot { .. } => false,
        })
        .await;
        // b's view drops a's ship once it is out of range.
        until(&mut b, "a's ship to leave b's view", |c, _| {
            !c.live().unwrap().latest().unwrap().contains_key(&ship_a)
        })
        .await;
        let drawn = b.live().unwrap().at(b.live().unwrap().tick().unwrap() as f64);
        assert!(drawn.iter().any(|d| d.id == ship_b));
        assert!(drawn.iter().all(|d| d.id != ship_a));
    });
    server.stop().unwrap();
}

/// Collects the views of `snapshots` completed snapshots, by tick.
async fn views_by_tick(
    client: &mut Client,
    snapshots: usize,
) -> std::collections::BTreeMap<u64, astroboids_net::snapshot::View> {
    let mut views = std::collections::BTreeMap::new();
    while views.len() < snapshots {
        let update = tokio::time::timeout(Duration::from_secs(10), client.next_update())
            .await
            .expect("an update within 10 s")
            .unwrap();
        if let Update::Snapshot { tick } = update {
            views.insert(tick, client.live().unwrap().latest().unwrap().clone());
        }
    }
    views
}

#[test]
fn a_client_losing_30_percent_of_datagrams_sees_exactly_what_a_lossless_one_sees() {
    let dir = fresh_dir("live-lossy");
    let server = RunningServer::start(options(&dir)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Three ships flying on a script, so every snapshot carries changes.
        let (mut lossy, first) = player(&server, "wanderer").await;
        let mut ships = vec![first];
        for _ in 0..2 {
            let Response::ShipSpawned { ship } = lossy.request(Request::SpawnShip).await.unwrap()
            else {
                panic!("spawn")
            };
            ships.push(ship);
        }
        let upload = Request::UploadScript {
            name: "runner".into(),
            wasm: runner(),
        };
        assert!(!matches!(
            lossy.request(upload).await.unwrap(),
            Response::Error(_)
        ));
        for &ship in &ships {
            let assign = Request::AssignScript {
                ship,
                name: "runner".into(),
            };
            assert!(!matches!(
                lossy.request(assign).await.unwrap(),
                Response::Error(_)
            ));
        }
        // The same player on a second, lossless connection: the same view, tick for tick.
        let mut lossless = Client::connect(server.addr, server.fingerprint, "test")
            .await
            .unwrap();
        let login = Request::Login {
            user: "wanderer".into(),
            password: "long enough".into(),
        };
        assert!(!matches!(
            lossless.request(login).await.unwrap(),
            Response::Error(_)
        ));
        lossy.emulate_datagram_loss(0.3, 7);
        lossy.subscribe().await.unwrap();
        lossless.subscribe().await.unwrap();
        let (seen_lossy, seen_lossless) = tokio::join!(
            views_by_tick(&mut lossy, 40),
            views_by_tick(&mut lossless, 40)
        );
        assert!(lossy.datagrams_dropped() > 0, "nothing was dropped");
        let mut compared = 0;
        for (tick, view) in &seen_lossy {
            if let Some(truth) = seen_lossless.get(tick) {
                assert_eq!(view, truth, "tick {tick}");
                compared += 1;
            }
        }
        assert!(compared >= 10, "only {compared} ticks in common");
        assert!(
            seen_lossy
                .values()
                .all(|v| ships.iter().all(|s| v.contains_key(s))),
            "own ships missing from a view"
        );
    });
    server.stop().unwrap();
}
