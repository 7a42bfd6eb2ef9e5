//! The online world under load, over real QUIC on loopback, printing figures:
//! - status and upload requests per second (1 client sequential; 16 clients concurrent);
//! - tick duration p50/p99 with 100 players' scripted ships idle, then while those 100
//!   clients each send a status request and a move command every 100 ms (side by side).
//!
//! Run: `cargo bench -p astroboids-benches --bench online`. Rate limits are lifted for the
//! measurement (they would otherwise be what is measured).

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use astroboids_host::WorldRequest;
use astroboids_net::calls::{self, Call};
use astroboids_net::client::Client;
use astroboids_net::messages::MoveCommand;
use astroboids_server::limits::RateRules;
use astroboids_server::requests::ServerRules;
use astroboids_server::serve::{NetRules, RunningServer, ServeOptions, TickTimes};

const PLAYERS: usize = 100;

fn circler(variant: u32) -> Vec<u8> {
    let wat = format!(
        r#"(module
        (import "astroboids" "log" (func $log (param i32 i32)))
        (memory (export "memory") 1 1)
        (data (i32.const 200) "circling {variant:08}")
        (func (export "astroboids_abi") (result i32) i32.const 1)
        (func (export "sensor_ptr") (result i32) i32.const 1024)
        (func (export "command_ptr") (result i32) i32.const 4096)
        (func (export "tick")
          (call $log (i32.const 200) (i32.const 17))
          (f32.store (i32.const 4096) (f32.const 1))
          (f32.store (i32.const 4100) (f32.const 0.25))))"#
    );
    wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned()
}

fn options(dir: &Path) -> ServeOptions {
    let n = |v| NonZeroU32::new(v).unwrap();
    ServeOptions {
        data: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        world: WorldRequest {
            seed: Some(1),
            config: None,
            script_workers: 2,
        },
        rules: ServerRules {
            rates: RateRules {
                per_ip_per_s: n(1_000_000),
                per_ip_burst: n(1_000_000),
                per_account_per_s: n(1_000_000),
                per_account_burst: n(1_000_000),
            },
            ..ServerRules::default()
        },
        net: NetRules {
            max_connections_per_ip: 1_000,
            password_jobs_per_ip: 1_000,
            ..NetRules::default()
        },
    }
}

async fn login(server: &RunningServer, user: &str) -> Client {
    let mut client = Client::connect(server.addr, server.fingerprint, "bench")
        .await
        .unwrap();
    let password = format!("{user} password");
    client
        .call(calls::Register {
            user: user.into(),
            password: password.clone(),
        })
        .await
        .unwrap();
    client
        .call(calls::Login {
            user: user.into(),
            password,
        })
        .await
        .unwrap();
    client
}

/// Requests per second over `duration` with `clients` each sending `make(i)` back to back;
/// every one must be answered as asked, or the figure would count refusals.
async fn throughput<C>(
    clients: Vec<Client>,
    duration: Duration,
    make: impl Fn(u64) -> C + Send + Sync + 'static,
) -> (f64, Vec<Client>)
where
    C: Call + Send + 'static,
    C::Answer: Send,
{
    let make = Arc::new(make);
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut client in clients {
        let (make, done, count) = (make.clone(), done.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let i = count.fetch_add(1, Ordering::Relaxed);
                client.call(make(i)).await.unwrap();
            }
            client
        }));
    }
    tokio::time::sleep(duration).await;
    done.store(true, Ordering::Relaxed);
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    let n = count.load(Ordering::Relaxed) as f64;
    (n / started.elapsed().as_secs_f64(), clients)
}

fn print_ticks(label: &str, t: TickTimes) {
    println!(
        "{label}: {} ticks (10 Hz), duration p50 {:.2} ms p99 {:.2} ms max {:.2} ms; start to start p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
        t.ticks, t.p50, t.p99, t.max, t.interval_p50, t.interval_p99, t.interval_max
    );
}

fn main() {
    let dir = std::env::temp_dir().join(format!("astroboids-bench-online-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = RunningServer::start(options(&dir)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("online bench: server at {}, {} Hz", server.addr, 10);

    rt.block_on(async {
        // Requests per second, one client.
        let mut first = login(&server, "p0").await;
        let ship = first.call(calls::SpawnShip).await.unwrap();
        let measure = Duration::from_secs(5);
        let (status_1, clients) = throughput(vec![first], measure, move |_| calls::ShipStatus {
            ship: Some(ship),
        })
        .await;
        let (upload_1, clients) = throughput(clients, measure, |i| calls::UploadScript {
            name: "circler".into(),
            wasm: circler(i as u32),
        })
        .await;
        println!(
            "1 client:   status {status_1:.0} req/s, upload (distinct ~300 B modules, each validated and compiled) {upload_1:.0} req/s"
        );
        let mut clients = clients;
        for i in 1..16 {
            clients.push(login(&server, &format!("p{i}")).await);
        }
        server.take_tick_times();
        let (status_16, clients) = throughput(clients, measure, |_| calls::ShipStatus { ship: None }).await;
        let status_ticks = server.take_tick_times();
        let (upload_16, mut clients) = throughput(clients, measure, |i| calls::UploadScript {
            name: "circler".into(),
            wasm: circler(1_000_000 + i as u32),
        })
        .await;
        let upload_ticks = server.take_tick_times();
        println!("16 clients: status {status_16:.0} req/s, upload {upload_16:.0} req/s");
        print_ticks("  ticks during the 16-client status phase", status_ticks);
        print_ticks("  ticks during the 16-client upload phase", upload_ticks);

        // 100 players, a scripted ship each.
        for i in 16..PLAYERS {
            clients.push(login(&server, &format!("p{i}")).await);
        }
        let mut ships = Vec::new();
        for client in &mut clients {
            client
                .call(calls::UploadScript {
                    name: "circler".into(),
                    wasm: circler(7),
                })
                .await
                .unwrap();
            let ship = client.call(calls::SpawnShip).await.unwrap();
            client
                .call(calls::AssignScript {
                    ship,
                    name: "circler".into(),
                })
                .await
                .unwrap();
            ships.push(ship);
        }
        let measure = Duration::from_secs(10);
        tokio::time::sleep(Duration::from_secs(1)).await;
        server.take_tick_times();
        tokio::time::sleep(measure).await;
        let idle = server.take_tick_times();

        let done = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for (mut client, ship) in clients.into_iter().zip(ships) {
            let (done, requests) = (done.clone(), requests.clone());
            tasks.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(100));
                while !done.load(Ordering::Relaxed) {
                    every.tick().await;
                    client.call(calls::ShipStatus { ship: Some(ship) }).await.unwrap();
                    client
                        .call(calls::MoveShip {
                            ship,
                            command: MoveCommand {
                                thrust: 0.5,
                                turn: 0.1,
                                mine: false,
                                stop: false,
                            },
                        })
                        .await
                        .unwrap();
                    requests.fetch_add(2, Ordering::Relaxed);
                }
            }));
        }
        let started = Instant::now();
        tokio::time::sleep(measure).await;
        let loaded = server.take_tick_times();
        done.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
        let rate = requests.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        print_ticks(&format!("{PLAYERS} scripted player ships, clients idle"), idle);
        print_ticks(
            &format!("same world, {PLAYERS} clients requesting ({rate:.0} req/s)"),
            loaded,
        );
    });
    let report = server.stop().unwrap();
    println!("stopped at tick {}", report.tick);
    let _ = std::fs::remove_dir_all(&dir);
}
