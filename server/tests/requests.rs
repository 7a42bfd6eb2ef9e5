//! Players' requests against a persistent world, without sockets: register -> upload ->
//! spawn -> assign -> the ship flies its script; nobody acts on another player's ships;
//! bad uploads and missing logins get clear errors; a restart keeps accounts, scripts, ships.

mod common;

use common::{circler, fresh_dir};

use std::path::Path;

use astroboids_host::{PersistentWorld, WorldRequest};
use astroboids_net::messages::{MoveCommand, Request, RequestError, Response};
use astroboids_server::accounts::{AccountRules, Accounts, Role};
use astroboids_server::requests::{Connection, ServerRules, WorldServer};
use astroboids_server::watchdog::WatchdogRules;

const NOW: u64 = 1_800_000_000;

fn open(dir: &Path) -> WorldServer {
    open_with(dir, ServerRules::default().watchdog)
}

fn open_with(dir: &Path, watchdog: WatchdogRules) -> WorldServer {
    let (world, _) = PersistentWorld::open(
        dir,
        WorldRequest {
            seed: Some(5),
            config: None,
            script_workers: 1,
        },
    )
    .unwrap();
    WorldServer::new(
        world,
        ServerRules {
            max_ships_per_account: 2,
            watchdog,
            ..ServerRules::default()
        },
    )
}

fn ok(server: &mut WorldServer, connection: &mut Connection, request: Request) -> Response {
    let response = server.handle(connection, request.clone(), NOW);
    assert!(
        !matches!(response, Response::Error(_)),
        "{request:?} -> {response:?}"
    );
    response
}

fn error(server: &mut WorldServer, connection: &mut Connection, request: Request) -> RequestError {
    match server.handle(connection, request, NOW) {
        Response::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn player(server: &mut WorldServer, name: &str) -> Connection {
    let mut connection = Connection::default();
    ok(
        server,
        &mut connection,
        Request::Register {
            user: name.into(),
            password: format!("{name} password"),
        },
    );
    ok(
        server,
        &mut connection,
        Request::Login {
            user: name.into(),
            password: format!("{name} password"),
        },
    );
    connection
}

#[test]
fn a_player_uploads_spawns_assigns_and_the_ship_flies_its_script() {
    let dir = fresh_dir("requests-flow");
    let mut server = open(&dir);
    let mut anonymous = Connection::default();
    assert_eq!(
        error(&mut server, &mut anonymous, Request::SpawnShip),
        RequestError::NotAuthenticated
    );
    let mut ada = player(&mut server, "ada");
    let Response::ScriptUploaded { version, .. } = ok(
        &mut server,
        &mut ada,
        Request::UploadScript {
            name: "circler".into(),
            wasm: circler(),
        },
    ) else {
        panic!()
    };
    assert_eq!(version, 1);
    let Response::ShipSpawned { ship } = ok(&mut server, &mut ada, Request::SpawnShip) else {
        panic!()
    };
    ok(
        &mut server,
        &mut ada,
        Request::AssignScript {
            ship,
            name: "circler".into(),
        },
    );
    for _ in 0..5 {
        server.step().unwrap();
    }
    let Response::Ships(ships) = ok(&mut server, &mut ada, Request::ShipStatus { ship: None })
    else {
        panic!()
    };
    assert_eq!(ships.len(), 1);
    assert_eq!(ships[0].flown_by, "script circler v1");
    assert!(ships[0].script_fuel_used_last > 0);
    assert!(ships[0].velocity.0 != 0.0 || ships[0].velocity.1 != 0.0);
    let Response::Logs { lines, .. } = ok(&mut server, &mut ada, Request::ShipLogs { ship }) else {
        panic!()
    };
    assert!(
        lines.iter().any(|(_, text)| text == "circling"),
        "{lines:?}"
    );
    let Response::MoveQueued { tick } = ok(
        &mut server,
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
    ) else {
        panic!()
    };
    assert_eq!(tick, server.world().tick() + 1);

    // Another player cannot touch ada's ship.
    let mut bob = player(&mut server, "bob");
    for request in [
        Request::MoveShip {
            ship,
            command: MoveCommand {
                thrust: 1.0,
                turn: 0.0,
                mine: false,
                stop: false,
            },
        },
        Request::ShipLogs { ship },
        Request::ShipStatus { ship: Some(ship) },
        Request::AssignScript {
            ship,
            name: "circler".into(),
        },
    ] {
        assert_eq!(
            error(&mut server, &mut bob, request),
            RequestError::Forbidden(format!("ship {ship} is not yours"))
        );
    }
    let Response::Ships(bobs) = ok(&mut server, &mut bob, Request::ShipStatus { ship: None })
    else {
        panic!()
    };
    assert!(bobs.is_empty());
    // ...nor use her scripts.
    let Response::ShipSpawned { ship: bobs_ship } = ok(&mut server, &mut bob, Request::SpawnShip)
    else {
        panic!()
    };
    assert!(matches!(
        error(&mut server, &mut bob, Request::AssignScript { ship: bobs_ship, name: "circler".into() }),
        RequestError::Rejected(m) if m.contains("no script named \"circler\"")
    ));
}

#[test]
fn bad_uploads_limits_and_logins_are_refused_clearly() {
    let dir = fresh_dir("requests-refusals");
    let mut server = open(&dir);
    let mut ada = player(&mut server, "ada");
    assert!(matches!(
        error(&mut server, &mut ada, Request::UploadScript { name: "x".into(), wasm: b"not wasm".to_vec() }),
        RequestError::Rejected(m) if m.starts_with("script rejected")
    ));
    assert!(matches!(
        error(&mut server, &mut ada, Request::UploadScript { name: "x".into(), wasm: vec![0; 10 << 20] }),
        RequestError::Invalid(m) if m.contains("limit")
    ));
    assert!(matches!(
        error(&mut server, &mut ada, Request::UploadScript { name: "../etc".into(), wasm: circler() }),
        RequestError::Invalid(m) if m.contains("script name")
    ));
    ok(&mut server, &mut ada, Request::SpawnShip);
    ok(&mut server, &mut ada, Request::SpawnShip);
    assert!(matches!(
        error(&mut server, &mut ada, Request::SpawnShip),
        RequestError::Rejected(m) if m.contains("the most an account may (2)")
    ));
    // Limits are an admin's to change, per account.
    assert!(matches!(
        error(&mut server, &mut ada, Request::AdminSetShipLimit { user: "ada".into(), max_ships: Some(9) }),
        RequestError::Forbidden(m) if m.contains("only an admin")
    ));
    {
        let accounts = Accounts::new(server.world().store(), AccountRules::default());
        accounts
            .register("root", "root password", Role::Admin, NOW)
            .unwrap();
    }
    let mut root = Connection::default();
    ok(
        &mut server,
        &mut root,
        Request::Login {
            user: "root".into(),
            password: "root password".into(),
        },
    );
    assert_eq!(
        ok(
            &mut server,
            &mut root,
            Request::AdminSetShipLimit {
                user: "ada".into(),
                max_ships: Some(3)
            }
        ),
        Response::ShipLimitSet {
            user: "ada".into(),
            max_ships: 3
        }
    );
    ok(&mut server, &mut ada, Request::SpawnShip);
    assert!(matches!(
        error(&mut server, &mut ada, Request::SpawnShip),
        RequestError::Rejected(m) if m.contains("the most an account may (3)")
    ));
    assert!(matches!(
        error(&mut server, &mut root, Request::AdminSetShipLimit { user: "nobody".into(), max_ships: None }),
        RequestError::Rejected(m) if m.contains("no user \"nobody\"")
    ));
    let mut stranger = Connection::default();
    assert!(matches!(
        error(&mut server, &mut stranger, Request::Login { user: "ada".into(), password: "guess".into() }),
        RequestError::Rejected(m) if m.contains("unknown user or wrong password")
    ));
    assert!(matches!(
        error(&mut server, &mut stranger, Request::Authenticate { token: astroboids_net::messages::Token("forged".into()) }),
        RequestError::Rejected(m) if m.contains("log in again")
    ));
}

#[test]
fn the_watchdog_suspends_a_slow_script_through_the_log_and_its_owner_sees_why() {
    let dir = fresh_dir("requests-watchdog");
    // Every run counts as too slow (any run takes more than 0 ms): the watchdog's path without
    // depending on how fast this machine is.
    let strict = WatchdogRules {
        run_wall_ms_max: 0,
        strikes_to_suspend: 3,
        ..WatchdogRules::default()
    };
    let ship = {
        let mut server = open_with(&dir, strict);
        let mut ada = player(&mut server, "ada");
        let upload = Request::UploadScript {
            name: "circler".into(),
            wasm: circler(),
        };
        ok(&mut server, &mut ada, upload);
        let Response::ShipSpawned { ship } = ok(&mut server, &mut ada, Request::SpawnShip) else {
            panic!()
        };
        let assign = Request::AssignScript {
            ship,
            name: "circler".into(),
        };
        ok(&mut server, &mut ada, assign);
        let mut suspended = 0;
        for _ in 0..6 {
            suspended += server.step().unwrap().scripts_suspended;
        }
        assert_eq!(suspended, 1, "suspended once, after three slow runs");
        let Response::Logs { faults, .. } = ok(&mut server, &mut ada, Request::ShipLogs { ship })
        else {
            panic!()
        };
        let (_, reason) = faults.last().expect("the owner sees a fault");
        assert!(
            reason.starts_with("suspended: 3 of its runs within 600 ticks took over 0 ms"),
            "{reason}"
        );
        let Response::Ships(ships) = ok(&mut server, &mut ada, Request::ShipStatus { ship: None })
        else {
            panic!()
        };
        let fuel = ships[0].script_fuel_used_last;
        server.step().unwrap();
        let Response::Ships(after) = ok(&mut server, &mut ada, Request::ShipStatus { ship: None })
        else {
            panic!()
        };
        assert_eq!(
            after[0].script_fuel_used_last, fuel,
            "the script no longer runs"
        );
        server.close().unwrap();
        ship
    };
    // The suspension is a logged input: after a restart (with a lenient watchdog) it holds.
    let mut server = open(&dir);
    let mut ada = Connection::default();
    ok(
        &mut server,
        &mut ada,
        Request::Login {
            user: "ada".into(),
            password: "ada password".into(),
        },
    );
    let Response::Logs { faults, .. } = ok(&mut server, &mut ada, Request::ShipLogs { ship })
    else {
        panic!()
    };
    assert!(
        faults.iter().any(|(_, f)| f.starts_with("suspended:")),
        "{faults:?}"
    );
}

#[test]
fn a_restart_keeps_accounts_scripts_and_ships() {
    let dir = fresh_dir("requests-restart");
    let token = {
        let mut server = open(&dir);
        let mut ada = player(&mut server, "ada");
        ok(
            &mut server,
            &mut ada,
            Request::UploadScript {
                name: "circler".into(),
                wasm: circler(),
            },
        );
        let Response::ShipSpawned { ship } = ok(&mut server, &mut ada, Request::SpawnShip) else {
            panic!()
        };
        ok(
            &mut server,
            &mut ada,
            Request::AssignScript {
                ship,
                name: "circler".into(),
            },
        );
        server.step().unwrap();
        let Response::LoggedIn { token, .. } = ok(
            &mut server,
            &mut Connection::default(),
            Request::Login {
                user: "ada".into(),
                password: "ada password".into(),
            },
        ) else {
            panic!()
        };
        server.close().unwrap();
        token
    };
    let mut server = open(&dir);
    let mut ada = Connection::default();
    ok(&mut server, &mut ada, Request::Authenticate { token });
    let Response::Ships(ships) = ok(&mut server, &mut ada, Request::ShipStatus { ship: None })
    else {
        panic!()
    };
    assert_eq!(ships.len(), 1);
    assert_eq!(ships[0].flown_by, "script circler v1");
    let Response::Scripts(scripts) = ok(&mut server, &mut ada, Request::ListScripts) else {
        panic!()
    };
    assert_eq!(scripts.len(), 1);
    assert_eq!(
        (scripts[0].name.as_str(), scripts[0].version),
        ("circler", 1)
    );
}

#[test]
fn a_flooding_account_is_rate_limited_and_others_are_not() {
    let dir = fresh_dir("requests-rates");
    let mut server = open(&dir);
    let mut ada = player(&mut server, "ada");
    let refusals: Vec<String> = (0..200)
        .filter_map(
            |_| match server.handle(&mut ada, Request::ListScripts, NOW) {
                Response::Error(RequestError::RateLimited(m)) => Some(m),
                _ => None,
            },
        )
        .collect();
    assert!(
        refusals.len() > 100,
        "most of a 200-request burst in one second is refused: {}",
        refusals.len()
    );
    assert!(refusals[0].contains("account ada"), "{}", refusals[0]);
    assert!(
        refusals.last().unwrap().contains("from 127.0.0.1"),
        "the address's budget runs out too"
    );
    let mut bob = Connection::from_ip("10.1.2.3".parse().unwrap());
    ok(
        &mut server,
        &mut bob,
        Request::Register {
            user: "bob".into(),
            password: "bob password".into(),
        },
    );
    // A second later ada has budget again.
    assert!(matches!(
        server.handle(&mut ada, Request::ListScripts, NOW + 1),
        Response::Scripts(_)
    ));
}
