//! The real nats-server and etcd this crate starts: they answer, nats-server takes messages up
//! to 8 MiB with JetStream on, data outlives a stop in a launcher's directory, `stop` and
//! `kill` end the process and free its ports. These need the binaries (`.ci/run` installs
//! them) and fail, with how to install them, where they are missing: never skipped.
//!
//! NATS is spoken raw over TCP (the text protocol: INFO, CONNECT, SUB, PUB, MSG; JetStream's
//! API is request and reply on `$JS.API.*` subjects) and etcd through its JSON gateway, so
//! this crate needs no client library.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use astroboids_infra::{
    Etcd, InfraError, NATS_CONFIG_FILE, NATS_MAX_PAYLOAD, NatsServer, STOP_TIMEOUT, Stopped,
};

const TIMEOUT: Duration = Duration::from_secs(5);
const MIB: usize = 1024 * 1024;

/// The server, or a failure with why (a missing binary: how to install it).
#[track_caller]
fn started<T>(result: Result<T, InfraError>) -> T {
    match result {
        Ok(server) => server,
        Err(e) => panic!("{e}"),
    }
}

fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("astroboids-{name}-"))
        .tempdir()
        .unwrap()
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    Ok(stream)
}

fn assert_refused(port: u16, what: &str) {
    let result = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), TIMEOUT);
    assert!(
        result.is_err(),
        "{what}: port {port} still accepts connections"
    );
}

/// A NATS connection speaking the text protocol.
struct RawNats {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The server's `INFO {...}` greeting, the first line it sends.
    info: String,
    next_sid: u32,
}

impl RawNats {
    fn connect(port: u16) -> Self {
        let writer = connect(port).unwrap();
        let mut reader = BufReader::new(writer.try_clone().unwrap());
        let mut info = String::new();
        reader.read_line(&mut info).unwrap();
        assert!(info.starts_with("INFO {"), "{info}");
        let mut nats = Self {
            reader,
            writer,
            info,
            next_sid: 1,
        };
        nats.send(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n");
        assert_eq!(nats.line(), "PONG", "the server accepts the connection");
        nats
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// The next control line, without its CRLF; a server `PING` is answered on the way.
    fn line(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let line = line.trim_end().to_owned();
            assert!(!line.starts_with("-ERR"), "the server refused: {line}");
            if line == "PING" {
                self.send(b"PONG\r\n");
            } else if line != "+OK" {
                return line;
            }
        }
    }

    fn subscribe(&mut self, subject: &str) {
        let sid = self.next_sid;
        self.next_sid += 1;
        self.send(format!("SUB {subject} {sid}\r\n").as_bytes());
    }

    fn publish(&mut self, subject: &str, reply: Option<&str>, payload: &[u8]) {
        let reply = reply.map_or(String::new(), |r| format!(" {r}"));
        let mut frame = format!("PUB {subject}{reply} {}\r\n", payload.len()).into_bytes();
        frame.extend_from_slice(payload);
        frame.extend_from_slice(b"\r\n");
        self.send(&frame);
    }

    /// The next message: its subject and payload.
    fn next_message(&mut self) -> (String, Vec<u8>) {
        let line = self.line();
        let fields: Vec<&str> = line.split(' ').collect();
        assert!(fields[0] == "MSG" && fields.len() >= 4, "not a MSG: {line}");
        let len: usize = fields.last().unwrap().parse().unwrap();
        let mut payload = vec![0; len + 2];
        self.reader.read_exact(&mut payload).unwrap();
        assert_eq!(&payload[len..], b"\r\n");
        payload.truncate(len);
        (fields[1].to_owned(), payload)
    }

    /// Publishes with a reply subject of its own and returns the (first) answer, as text.
    fn request(&mut self, subject: &str, payload: &[u8]) -> String {
        let inbox = format!("_INBOX.launch.{}", self.next_sid);
        self.subscribe(&inbox);
        self.publish(subject, Some(&inbox), payload);
        let (to, answer) = self.next_message();
        assert_eq!(to, inbox);
        String::from_utf8(answer).unwrap()
    }
}

/// A JetStream API answer without an error.
fn assert_js_ok(answer: &str, what: &str) {
    assert!(!answer.contains("\"error\""), "{what}: {answer}");
}

/// Some bytes that are not all the same, so a mangled copy would not compare equal.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn nats_takes_a_message_over_1_mib_with_jetstream_on() {
    let dir = temp_dir("infra-payload");
    let nats = started(NatsServer::start(dir.path()));
    let mut client = RawNats::connect(nats.port());
    assert!(
        client
            .info
            .contains(&format!("\"max_payload\":{NATS_MAX_PAYLOAD},")),
        "{}",
        client.info
    );
    assert_eq!(NATS_MAX_PAYLOAD, 8 * 1024 * 1024);
    assert!(
        client.info.contains("\"jetstream\":true"),
        "{}",
        client.info
    );
    let config = std::fs::read_to_string(nats.config_path()).unwrap();
    assert_eq!(nats.config_path(), nats.dir().join(NATS_CONFIG_FILE));
    assert!(config.contains("max_payload: 8388608"), "{config}");

    // 2 MiB, twice the server's default limit: published, delivered intact.
    let big = payload(2 * MIB);
    client.subscribe("big.core");
    client.publish("big.core", None, &big);
    let (subject, received) = client.next_message();
    assert_eq!(subject, "big.core");
    assert!(received == big, "the 2 MiB message came back changed");

    // Into a JetStream stream too (its limit is the server's max_payload).
    let created = client.request(
        "$JS.API.STREAM.CREATE.BIG",
        br#"{"name":"BIG","subjects":["big.js"],"storage":"file","num_replicas":1}"#,
    );
    assert_js_ok(&created, "create the stream");
    let ack = client.request("big.js", &big);
    assert!(
        ack.contains("\"stream\":\"BIG\"") && ack.contains("\"seq\":1"),
        "{ack}"
    );
}

#[test]
fn nats_answers_ping_with_jetstream_on_until_killed() {
    let dir = temp_dir("infra-nats");
    let begun = Instant::now();
    let mut nats = started(NatsServer::start(dir.path()));
    eprintln!("nats-server up in {:?} at {}", begun.elapsed(), nats.url());
    let port = nats.port();
    assert_eq!(nats.url(), format!("nats://127.0.0.1:{port}"));

    let client = RawNats::connect(port);
    assert!(
        client.info.contains("\"host\":\"127.0.0.1\""),
        "{}",
        client.info
    );
    drop(client);
    assert!(nats.dir().starts_with(dir.path()) && nats.dir().join("jetstream").is_dir());
    let log = std::fs::read_to_string(nats.log_path()).unwrap();
    assert!(
        log.contains("Server is ready"),
        "the server's output goes to its log: {log}"
    );

    nats.kill();
    assert_eq!(nats.pid(), None);
    assert_refused(port, "nats-server after kill()");
    nats.kill(); // again: nothing to do
    assert_eq!(nats.stop(), Stopped::NotRunning);

    // Back on the same port with the same store.
    started(nats.restart());
    assert_eq!(nats.port(), port);
    RawNats::connect(port);
}

#[test]
fn nats_keeps_its_streams_across_a_stop_in_a_launchers_directory() {
    let dir = temp_dir("infra-nats-on");
    let data = dir.path().join("world/nats");
    let mut nats = started(NatsServer::start_on(&data, 0));
    assert_eq!(nats.dir(), data);
    let port = nats.port();
    let mut client = RawNats::connect(port);
    let created = client.request(
        "$JS.API.STREAM.CREATE.KEPT",
        br#"{"name":"KEPT","subjects":["kept.>"],"storage":"file","num_replicas":1}"#,
    );
    assert_js_ok(&created, "create the stream");
    let ack = client.request("kept.one", &payload(2 * MIB));
    assert!(ack.contains("\"seq\":1"), "{ack}");
    drop(client);

    // A clean stop: SIGTERM, and the server shuts down by itself.
    let pid = nats.pid().unwrap();
    let begun = Instant::now();
    let stopped = nats.stop();
    assert!(matches!(stopped, Stopped::Exited(_)), "{stopped:?}");
    assert!(begun.elapsed() < STOP_TIMEOUT, "{:?}", begun.elapsed());
    assert_eq!(nats.pid(), None);
    assert_refused(port, "nats-server after stop()");
    assert_process_gone(pid);
    let log = std::fs::read_to_string(nats.log_path()).unwrap();
    assert!(log.contains("Server Exiting"), "a clean shutdown: {log}");
    assert_eq!(nats.stop(), Stopped::NotRunning);
    drop(nats);
    assert!(data.join("jetstream").is_dir());

    // Another run of the launcher: the chosen port, the same directory, the stream still there.
    let nats = started(NatsServer::start_on(&data, port));
    assert_eq!(nats.port(), port);
    let mut client = RawNats::connect(port);
    let info = client.request("$JS.API.STREAM.INFO.KEPT", b"");
    assert_js_ok(&info, "the stream after a restart");
    assert!(info.contains("\"messages\":1,"), "{info}");
    let log = std::fs::read_to_string(nats.log_path()).unwrap();
    assert_eq!(
        log.matches("Server is ready").count(),
        2,
        "one log across runs: {log}"
    );
}

/// The server's own etcd gateway call: POST `path` with a JSON body, the answer's body.
fn etcd_post(port: u16, path: &str, body: &str) -> String {
    let mut stream = connect(port).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200"), "{path}: {response}");
    response.split_once("\r\n\r\n").unwrap().1.to_owned()
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

/// `astroboids/launch`, base64 as etcd's gateway wants keys and values.
const KEY: &str = "YXN0cm9ib2lkcy9sYXVuY2g=";
/// `kept across restarts`.
const VALUE: &str = "a2VwdCBhY3Jvc3MgcmVzdGFydHM=";

#[test]
fn etcd_is_healthy_until_killed() {
    let dir = temp_dir("infra-etcd");
    let begun = Instant::now();
    let mut etcd = started(Etcd::start(dir.path()));
    eprintln!("etcd up in {:?} at {}", begun.elapsed(), etcd.endpoint());
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
    assert_refused(port, "etcd client after kill()");
    assert_refused(etcd.peer_port(), "etcd peer after kill()");

    started(etcd.restart());
    assert_eq!(etcd.port(), port);
    assert!(http_get(port, "/health").contains("\"health\":\"true\""));
}

#[test]
fn etcd_keeps_its_keys_across_a_stop_in_a_launchers_directory() {
    let dir = temp_dir("infra-etcd-on");
    let data = dir.path().join("world/etcd");
    let mut etcd = started(Etcd::start_on(&data, 0, 0));
    assert_eq!(etcd.dir(), data);
    let (port, peer) = (etcd.port(), etcd.peer_port());
    etcd_post(
        port,
        "/v3/kv/put",
        &format!(r#"{{"key":"{KEY}","value":"{VALUE}"}}"#),
    );

    let pid = etcd.pid().unwrap();
    let begun = Instant::now();
    let stopped = etcd.stop();
    assert!(matches!(stopped, Stopped::Exited(_)), "{stopped:?}");
    assert!(begun.elapsed() < STOP_TIMEOUT, "{:?}", begun.elapsed());
    assert_eq!(etcd.pid(), None);
    assert_refused(port, "etcd client after stop()");
    assert_refused(peer, "etcd peer after stop()");
    assert_process_gone(pid);
    let log = std::fs::read_to_string(etcd.log_path()).unwrap();
    assert!(
        log.contains("received signal; shutting down"),
        "a clean shutdown: {log}"
    );
    drop(etcd);

    // Another run of the launcher on the chosen ports: the key is still there.
    let etcd = started(Etcd::start_on(&data, port, peer));
    assert_eq!((etcd.port(), etcd.peer_port()), (port, peer));
    let range = etcd_post(port, "/v3/kv/range", &format!(r#"{{"key":"{KEY}"}}"#));
    assert!(range.contains(&format!("\"value\":\"{VALUE}\"")), "{range}");
}

#[test]
fn servers_share_a_directory_and_drop_kills_them() {
    let dir = temp_dir("infra-both");
    let nats = || started(NatsServer::start(dir.path()));
    let etcd = || started(Etcd::start(dir.path()));
    let (nats_a, nats_b, etcd_a, etcd_b) = (nats(), nats(), etcd(), etcd());
    assert_ne!(nats_a.port(), nats_b.port());
    assert_ne!(nats_a.dir(), nats_b.dir());
    assert_ne!(etcd_a.name(), etcd_b.name());
    assert_ne!(etcd_a.dir(), etcd_b.dir());
    let ports = [nats_a.port(), nats_b.port(), etcd_a.port(), etcd_b.port()];
    let pids = [nats_a.pid(), nats_b.pid(), etcd_a.pid(), etcd_b.pid()].map(Option::unwrap);
    for port in ports {
        connect(port).unwrap();
    }
    drop((nats_a, nats_b, etcd_a, etcd_b));
    for port in ports {
        assert_refused(port, "dropped server");
    }
    for pid in pids {
        assert_process_gone(pid);
    }
}

/// No process `pid` any more (it has been waited for, so the pid is free; Linux's /proc).
fn assert_process_gone(pid: u32) {
    let proc = Path::new("/proc");
    if proc.join("self").exists() {
        // A reused pid would be another program's.
        let cmdline = std::fs::read(proc.join(format!("{pid}/cmdline"))).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(
            !cmdline.contains("nats-server") && !cmdline.contains("etcd"),
            "process {pid} still runs: {cmdline}"
        );
    }
}
