//! A client given several servers that share one certificate (the gateways of a cluster)
//! goes on through another when its server is killed (kill -9): the connection is replaced
//! and the request in flight is answered by the other server. Two `astroboids serve`
//! processes stand in for the gateways; they share the identity but not a world, so what is
//! asked of the second needs nothing the first knew (a registration).

mod common;

use common::{astroboids, fresh_dir};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use astroboids_net::calls;
use astroboids_net::client::Client;
use astroboids_net::quic::Fingerprint;

struct Server {
    child: Child,
    data: PathBuf,
    addr: SocketAddr,
    fingerprint: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `astroboids serve` on a free port; its address and fingerprint as it prints them.
fn start_server(data: &Path) -> Server {
    let mut child = astroboids(data)
        .args(["serve", "--data"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--no-metrics", "--no-record"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start astroboids serve");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut fingerprint, mut addr) = (None, None);
    while fingerprint.is_none() || addr.is_none() {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the server prints its fingerprint and address");
        if let Some(rest) = line.strip_prefix("fingerprint: ") {
            fingerprint = Some(rest.to_string());
        }
        if let Some(rest) = line.strip_prefix("listening: ") {
            addr = Some(rest.split(' ').next().unwrap().parse().unwrap());
        }
    }
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    Server {
        child,
        data: data.to_path_buf(),
        addr: addr.unwrap(),
        fingerprint: fingerprint.unwrap(),
    }
}

fn run_ok(config_dir: &Path, args: &[&str]) -> String {
    let out = astroboids(config_dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "astroboids {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two servers with one identity (one fingerprint) under `root`.
fn two_servers(root: &Path) -> (Server, Server) {
    let (data_a, data_b) = (root.join("a"), root.join("b"));
    let a = start_server(&data_a);
    // The second server gets the first one's identity (one fingerprint for both): its
    // world is made on a first start, then its certificate replaced.
    drop(start_server(&data_b));
    for file in ["cert.der", "key.der"] {
        std::fs::copy(data_a.join("tls").join(file), data_b.join("tls").join(file)).unwrap();
    }
    let b = start_server(&data_b);
    assert_eq!(a.fingerprint, b.fingerprint, "one identity");
    (a, b)
}

#[test]
fn a_client_goes_on_through_another_server_when_its_server_is_killed() {
    let root = fresh_dir("cli-failover");
    let (mut a, b) = two_servers(&root);
    let pin: Fingerprint = a.fingerprint.parse().unwrap();
    let servers = format!("{},{}", a.addr, b.addr);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = runtime.block_on(async {
        let mut client = Client::connect_any(&[a.addr, b.addr], pin, "test")
            .await
            .unwrap();
        assert_eq!(client.remote(), a.addr, "the first address that answers");
        client
            .call(calls::Register {
                user: "ada".into(),
                password: "ada secret".into(),
            })
            .await
            .unwrap();
        client
    });

    // kill -9: the server says nothing more; the client finds out when the connection times
    // out, then reconnects to the other server.
    a.child.kill().unwrap();
    a.child.wait().unwrap();

    // Meanwhile the command line, given both (and remembering both), skips the dead one.
    let config_dir = root.join("cli");
    let cli = {
        let (config_dir, servers, fingerprint) =
            (config_dir.clone(), servers.clone(), a.fingerprint.clone());
        std::thread::spawn(move || {
            let out = run_ok(
                &config_dir,
                &[
                    "client",
                    "register",
                    "--server",
                    &servers,
                    "--fingerprint",
                    &fingerprint,
                    "--user",
                    "carol",
                ],
            );
            assert!(out.contains("logged in as carol"), "{out}");
            let saved = std::fs::read_to_string(config_dir.join("client.toml")).unwrap();
            assert!(saved.contains(&servers), "both servers remembered: {saved}");
            // Saved settings only: the list is used again.
            let out = run_ok(&config_dir, &["client", "spawn"]);
            assert!(out.contains("ship"), "{out}");
        })
    };

    runtime.block_on(async {
        client
            .call(calls::Register {
                user: "bob".into(),
                password: "bob secret".into(),
            })
            .await
            .unwrap();
        assert_eq!(client.remote(), b.addr, "answered by the other server");
        assert_eq!(client.reconnects(), 1);
        // The session goes on there.
        client
            .call(calls::Login {
                user: "bob".into(),
                password: "bob secret".into(),
            })
            .await
            .unwrap();
        assert_eq!(client.reconnects(), 1);
        client.close().await;
    });
    cli.join().expect("the command line failed over too");
}

/// `loadgen` over two servers: the bots are spread over both and report how long they went
/// without a snapshot.
#[test]
fn loadgen_spreads_bots_over_several_servers_and_reports_gaps() {
    let root = fresh_dir("cli-failover-loadgen");
    let (a, b) = two_servers(&root);
    let servers = format!("{},{}", a.addr, b.addr);
    let out = run_ok(
        &root,
        &[
            "loadgen",
            "--server",
            &servers,
            "--fingerprint",
            &a.fingerprint,
            "--clients",
            "4",
            "--seconds",
            "3",
            "--json",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["reconnects"], 0, "{report}");
    // 10 Hz: a snapshot every 100 ms, a few slower on a busy machine; never a second.
    let (max, p99) = (
        report["snapshot_gap_ms_max"].as_f64().unwrap(),
        report["snapshot_gap_ms_p99"].as_f64().unwrap(),
    );
    assert!(p99 > 0.0 && p99 <= max && max < 1_000.0, "{report}");
    // Round robin: bots 0 and 2 on the first server, 1 and 3 on the second.
    let (data_a, data_b) = (a.data.clone(), b.data.clone());
    drop((a, b));
    for (data, mine) in [(data_a, ["x0 ", "x2 "]), (data_b, ["x1 ", "x3 "])] {
        let out = run_ok(
            &root,
            &["admin", "--data", data.to_str().unwrap(), "accounts"],
        );
        let bots: Vec<&str> = out.lines().filter(|l| l.starts_with("bot")).collect();
        assert_eq!(bots.len(), 2, "{out}");
        for (bot, suffix) in bots.iter().zip(mine) {
            assert!(bot.contains(suffix), "{out}");
        }
    }
}
