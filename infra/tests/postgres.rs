//! The real PostgreSQL this crate starts: it accepts connections (`pg_isready`, `psql` over TCP
//! and over its unix socket), keeps its databases across a stop in a launcher's directory and
//! across a kill, `stop` ends it quickly even with a client connected, and two run side by side.
//! These need PostgreSQL's binaries (`.ci/run` installs Debian's `postgresql`) and fail, with
//! how to install them, where they are missing: never skipped. Run as root (as CI does), the
//! server runs as the `postgres` user.
//!
//! The clients are the ones next to the server (Debian's bin directory holds `psql`,
//! `createdb` and `pg_isready`), so this crate needs no client library.

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use astroboids_infra::{InfraError, POSTGRES_USER, Postgres, STOP_TIMEOUT, Stopped};

const TIMEOUT: Duration = Duration::from_secs(5);

/// The server, or a failure with why (missing binaries: how to install them).
#[track_caller]
fn started(result: Result<Postgres, InfraError>) -> Postgres {
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

/// `program` from the server's bin directory with `args`, connecting to it over TCP as the
/// superuser; its stdout, after a check that it succeeded.
#[track_caller]
fn client(postgres: &Postgres, program: &str, args: &[&str]) -> String {
    let port = postgres.port().to_string();
    let mut all = vec!["-h", "127.0.0.1", "-p", &port, "-U", POSTGRES_USER];
    all.extend_from_slice(args);
    run(postgres, program, &all)
}

#[track_caller]
fn run(postgres: &Postgres, program: &str, args: &[&str]) -> String {
    let binary = postgres.bin_dir().join(program);
    let output = Command::new(&binary)
        .args(args)
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// One SQL statement through `psql`, its rows unaligned.
#[track_caller]
fn sql(postgres: &Postgres, database: &str, statement: &str) -> String {
    client(
        postgres,
        "psql",
        &[
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
            "-c",
            statement,
        ],
    )
    .trim_end()
    .to_owned()
}

fn databases(postgres: &Postgres) -> Vec<String> {
    let names = sql(
        postgres,
        "postgres",
        "SELECT datname FROM pg_database ORDER BY 1",
    );
    names.lines().map(str::to_owned).collect()
}

/// `psql` running `statement` in the background (output dropped), once the server shows it
/// running (`statement` must be told apart from the query that looks for it by `marker`).
fn running_session(postgres: &Postgres, statement: &str, marker: &str) -> Child {
    let session = Command::new(postgres.bin_dir().join("psql"))
        .args(["-X", &postgres.url(), "-c", statement])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let running = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
         AND query LIKE '%{marker}%' AND pid <> pg_backend_pid()"
    );
    while sql(postgres, "postgres", &running) != "1" {
        assert!(Instant::now() < deadline, "{statement:?} never ran");
        thread::sleep(Duration::from_millis(20));
    }
    session
}

fn assert_refused(port: u16, what: &str) {
    let result = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), TIMEOUT);
    assert!(
        result.is_err(),
        "{what}: port {port} still accepts connections"
    );
}

/// No process `pid` any more (it has been waited for, so the pid is free; Linux's /proc).
fn assert_process_gone(pid: u32) {
    let proc = Path::new("/proc");
    if proc.join("self").exists() {
        // A reused pid would be another program's.
        let cmdline = fs::read(proc.join(format!("{pid}/cmdline"))).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(
            !cmdline.contains("postgres"),
            "process {pid} still runs: {cmdline}"
        );
    }
}

/// The real user id of process `pid` (Linux's /proc), if it can be read.
fn uid_of(pid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn postgres_starts_and_answers_over_tcp_and_its_socket() {
    let parent = temp_dir("postgres-answers");
    let postgres = started(Postgres::start(parent.path()));
    let port = postgres.port();
    assert_eq!(postgres.dir(), parent.path().join("postgres-1"));
    assert_eq!(
        postgres.url(),
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    );
    assert!(postgres.data_dir().join("PG_VERSION").is_file());

    let ready = client(&postgres, "pg_isready", &["-d", "postgres"]);
    assert!(ready.contains("accepting connections"), "{ready}");
    let url = postgres.url();
    let who = run(
        &postgres,
        "psql",
        &["-X", "-A", "-t", &url, "-c", "SELECT current_user"],
    );
    assert_eq!(who.trim(), "postgres");
    let socket_dir = postgres.socket_dir().expect("a short temporary path");
    let socket_dir = socket_dir.to_str().unwrap();
    let port_text = port.to_string();
    let over_socket = run(
        &postgres,
        "psql",
        &[
            "-X",
            "-A",
            "-t",
            "-h",
            socket_dir,
            "-p",
            &port_text,
            "-U",
            POSTGRES_USER,
            "-c",
            "SELECT 'over the socket'",
        ],
    );
    assert_eq!(over_socket.trim(), "over the socket");
    let answer = sql(&postgres, "postgres", "SHOW listen_addresses");
    assert_eq!(answer, "127.0.0.1");

    let log = fs::read_to_string(postgres.log_path()).unwrap();
    assert!(log.contains("ready to accept connections"), "{log}");
    // PostgreSQL refuses root: run by root, it runs as the postgres user.
    let ours = uid_of(std::process::id());
    let its = uid_of(postgres.pid().unwrap());
    if ours == Some(0) {
        assert!(its.is_some_and(|uid| uid != 0), "server uid {its:?}");
    } else {
        assert_eq!(its, ours);
    }
}

#[test]
fn postgres_keeps_its_databases_across_a_stop_in_a_launchers_directory() {
    let dir = temp_dir("postgres-keeps");
    let data = dir.path().join("world/postgres");
    let mut postgres = started(Postgres::start_on(&data, 0));
    assert_eq!(postgres.dir(), std::path::absolute(&data).unwrap());
    let port = postgres.port();
    client(&postgres, "createdb", &["accounts"]);
    sql(&postgres, "accounts", "CREATE TABLE pilots (name text)");
    sql(
        &postgres,
        "accounts",
        "INSERT INTO pilots VALUES ('ripley')",
    );
    let pid = postgres.pid().unwrap();

    let stopped = postgres.stop();
    assert!(
        matches!(stopped, Stopped::Exited(status) if status.success()),
        "{stopped:?}"
    );
    assert_eq!(postgres.pid(), None);
    assert_refused(port, "postgres after stop()");
    assert_process_gone(pid);
    assert!(
        !postgres.data_dir().join("postmaster.pid").exists(),
        "a clean shutdown removes its lock file"
    );
    assert_eq!(postgres.stop(), Stopped::NotRunning);
    drop(postgres);

    // Another run of the launcher: same directory, same port, no second initdb.
    let postgres = started(Postgres::start_on(&data, port));
    assert_eq!(postgres.port(), port);
    assert!(databases(&postgres).contains(&"accounts".to_owned()));
    assert_eq!(
        sql(&postgres, "accounts", "SELECT name FROM pilots"),
        "ripley"
    );
    let log = fs::read_to_string(postgres.log_path()).unwrap();
    assert_eq!(log.matches("/initdb -D").count(), 1, "{log}");
    assert_eq!(log.matches("/postgres -D").count(), 2, "{log}");
}

#[test]
fn postgres_recovers_its_databases_after_a_kill() {
    let parent = temp_dir("postgres-kill");
    let mut postgres = started(Postgres::start(parent.path()));
    let port = postgres.port();
    client(&postgres, "createdb", &["scripts"]);
    sql(&postgres, "scripts", "CREATE TABLE modules (id int)");
    sql(&postgres, "scripts", "INSERT INTO modules VALUES (7)");
    let pid = postgres.pid().unwrap();
    // A backend busy computing (a second or more) would not notice the postmaster's death
    // until it checks, and would keep the shared memory meanwhile: kill() kills it too.
    let mut busy = running_session(
        &postgres,
        "SELECT count(*) FROM generate_series(1, 40000000) AS busy_marker",
        "busy_marker",
    );

    postgres.kill();
    assert_eq!(postgres.pid(), None);
    assert_refused(port, "postgres after kill()");
    assert_process_gone(pid);
    assert_eq!(postgres.stop(), Stopped::NotRunning);

    // Started again at once (the killed processes may still be exiting).
    if let Err(e) = postgres.restart() {
        panic!("{e}");
    }
    assert_eq!(postgres.port(), port);
    assert!(databases(&postgres).contains(&"scripts".to_owned()));
    assert_eq!(sql(&postgres, "scripts", "SELECT id FROM modules"), "7");
    let log = fs::read_to_string(postgres.log_path()).unwrap();
    assert!(log.contains("not properly shut down"), "{log}");
    assert!(!busy.wait().unwrap().success(), "the busy session was cut");
}

#[test]
fn stop_ends_postgres_quickly_with_a_client_connected() {
    let parent = temp_dir("postgres-stop");
    let mut postgres = started(Postgres::start(parent.path()));
    let port = postgres.port();
    let pid = postgres.pid().unwrap();
    // A session that would keep a "smart" shutdown (SIGTERM) waiting for a minute.
    let mut sleeper = running_session(&postgres, "SELECT pg_sleep(60)", "pg_sleep(60)");

    let started_stop = Instant::now();
    let stopped = postgres.stop();
    let took = started_stop.elapsed();
    assert!(
        matches!(stopped, Stopped::Exited(status) if status.success()),
        "{stopped:?}"
    );
    assert!(took < STOP_TIMEOUT, "{took:?}");
    assert_refused(port, "postgres after stop()");
    assert_process_gone(pid);
    let session = sleeper.wait().unwrap();
    assert!(!session.success(), "the session was cut: {session}");
    let log = fs::read_to_string(postgres.log_path()).unwrap();
    assert!(log.contains("fast shutdown request"), "{log}");
}

#[test]
fn two_postgres_run_side_by_side_and_drop_kills_them() {
    let parent = temp_dir("postgres-two");
    let a = started(Postgres::start(parent.path()));
    let b = started(Postgres::start(parent.path()));
    assert_ne!(a.port(), b.port());
    assert_eq!(a.dir(), parent.path().join("postgres-1"));
    assert_eq!(b.dir(), parent.path().join("postgres-2"));
    client(&a, "createdb", &["only_in_a"]);
    assert!(databases(&a).contains(&"only_in_a".to_owned()));
    assert!(!databases(&b).contains(&"only_in_a".to_owned()));

    let ports = [a.port(), b.port()];
    let pids = [a.pid(), b.pid()].map(Option::unwrap);
    drop((a, b));
    for port in ports {
        assert_refused(port, "dropped postgres");
    }
    for pid in pids {
        assert_process_gone(pid);
    }
}

#[test]
fn missing_postgres_binaries_say_how_to_install_them() {
    let dir = temp_dir("postgres-missing");
    let nowhere = dir.path().join("no-such-bin");
    let e = Postgres::start_with_bin_dir(&nowhere, dir.path()).unwrap_err();
    assert!(
        matches!(e, InfraError::MissingBinary { name: "initdb", .. }),
        "{e:?}"
    );
    let message = e.to_string();
    for part in [
        "initdb not found",
        "does not exist",
        "apt-get install postgresql",
        "ASTROBOIDS_POSTGRES_BIN",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    // initdb without postgres.
    fs::create_dir(&nowhere).unwrap();
    fs::write(nowhere.join("initdb"), "").unwrap();
    let data = dir.path().join("world/postgres");
    let e = Postgres::start_on_with_bin_dir(&nowhere, &data, 0).unwrap_err();
    assert!(
        matches!(
            e,
            InfraError::MissingBinary {
                name: "postgres",
                ..
            }
        ),
        "{e:?}"
    );
    // Nothing was started, so nothing was made.
    assert!(!data.exists());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}
