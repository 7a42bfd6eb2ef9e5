//! The real nats-server and etcd that test-kit's `infra` starts: they answer, JetStream is on,
//! and a killed server's port refuses connections. These need the binaries (`.ci/run`
//! installs them) and fail, with how to install them, where they are missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use astroboids_test_kit::TempDir;
use astroboids_test_kit::infra::{Etcd, NatsServer};

const TIMEOUT: Duration = Duration::from_secs(5);

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    Ok(stream)
}

/// Sends `PING` on a raw connection and returns the server's `INFO` greeting and its answer.
fn nats_ping(port: u16) -> (String, String) {
    let mut stream = connect(port).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut info = String::new();
    reader.read_line(&mut info).unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut answer = String::new();
    reader.read_line(&mut answer).unwrap();
    (info, answer)
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = connect(port).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn assert_refused(port: u16, what: &str) {
    let result = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), TIMEOUT);
    assert!(
        result.is_err(),
        "{what}: port {port} still accepts connections after kill()"
    );
}

#[test]
fn nats_answers_ping_with_jetstream_on_until_killed() {
    let dir = TempDir::new("infra-nats");
    let started = Instant::now();
    let mut nats = NatsServer::start(&dir).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "nats-server up in {:?} at {}",
        started.elapsed(),
        nats.url()
    );
    let port = nats.port();
    assert_eq!(nats.url(), format!("nats://127.0.0.1:{port}"));

    let (info, pong) = nats_ping(port);
    assert!(info.starts_with("INFO {"), "{info}");
    assert!(
        info.contains("\"jetstream\":true"),
        "JetStream is off: {info}"
    );
    assert!(info.contains("\"host\":\"127.0.0.1\""), "{info}");
    assert_eq!(pong, "PONG\r\n");
    assert!(nats.dir().starts_with(&*dir) && nats.dir().join("jetstream").is_dir());
    let log = std::fs::read_to_string(nats.log_path()).unwrap();
    assert!(
        log.contains("Server is ready"),
        "the server's output goes to its log: {log}"
    );

    nats.kill();
    assert_eq!(nats.pid(), None);
    assert_refused(port, "nats-server");
    nats.kill(); // again: nothing to do

    // Back on the same port with the same store.
    nats.restart().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(nats.port(), port);
    assert_eq!(nats_ping(port).1, "PONG\r\n");
}

#[test]
fn etcd_is_healthy_until_killed() {
    let dir = TempDir::new("infra-etcd");
    let started = Instant::now();
    let mut etcd = Etcd::start(&dir).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("etcd up in {:?} at {}", started.elapsed(), etcd.endpoint());
    let port = etcd.port();
    assert_eq!(etcd.endpoint(), format!("http://127.0.0.1:{port}"));
    assert_ne!(port, etcd.peer_port());

    let health = http_get(port, "/health");
    assert!(health.starts_with("HTTP/1.0 200"), "{health}");
    assert!(health.contains("\"health\":\"true\""), "{health}");
    assert!(etcd.dir().join("data").is_dir());
    assert!(
        std::fs::read_to_string(etcd.log_path())
            .unwrap()
            .contains(etcd.name())
    );

    etcd.kill();
    assert_refused(port, "etcd client");
    assert_refused(etcd.peer_port(), "etcd peer");

    etcd.restart().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(etcd.port(), port);
    assert!(http_get(port, "/health").contains("\"health\":\"true\""));
}

#[test]
fn servers_share_a_directory_and_drop_kills_them() {
    let dir = TempDir::new("infra-both");
    let nats = || NatsServer::start(&dir).unwrap_or_else(|e| panic!("{e}"));
    let etcd = || Etcd::start(&dir).unwrap_or_else(|e| panic!("{e}"));
    let (nats_a, nats_b, etcd_a, etcd_b) = (nats(), nats(), etcd(), etcd());
    assert_ne!(nats_a.port(), nats_b.port());
    assert_ne!(nats_a.dir(), nats_b.dir());
    assert_ne!(etcd_a.name(), etcd_b.name());
    assert_ne!(etcd_a.dir(), etcd_b.dir());
    let ports = [nats_a.port(), nats_b.port(), etcd_a.port(), etcd_b.port()];
    for port in ports {
        connect(port).unwrap();
    }
    drop((nats_a, nats_b, etcd_a, etcd_b));
    for port in ports {
        assert_refused(port, "dropped server");
    }
}
