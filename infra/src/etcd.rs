//! A single-member etcd cluster.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::binary::binary_from_env;
use crate::error::InfraError;
use crate::process::{
    POLL_INTERVAL, Process, Program, READY_TIMEOUT, STOP_TIMEOUT, StopSignal, Stopped, connect,
    free_ports,
};

/// Names the etcd binary to run instead of `etcd` on `PATH`.
pub const ETCD_ENV: &str = "ASTROBOIDS_ETCD";

/// The member name of an etcd started with [`Etcd::start_on`]: the same in every run, as the
/// data it finds was written under it.
pub const ETCD_MEMBER_NAME: &str = "astroboids";

const ETCD: Program = Program {
    name: "etcd",
    install: "install it with `apt-get install etcd-server`, or run `.ci/run` as root",
    stop_signal: StopSignal::Terminate,
    kill_children: false,
};

/// Tries at free ports for etcd, which is handed its ports and may lose one to another process
/// between our picking and its binding.
const ETCD_ATTEMPTS: u32 = 3;

/// A single-member etcd cluster, client and peer URLs on 127.0.0.1.
///
/// Its raft timings are short (heartbeat 10 ms, election timeout 100 ms) so that it elects
/// itself leader in tens of milliseconds instead of ~0.6 s; with one member nothing else
/// depends on them. Its smallest lease TTL is 1 s.
///
/// Its directory holds the data (`data/`) and the log (`etcd.log`).
#[derive(Debug)]
pub struct Etcd {
    process: Process,
    name: String,
    client_port: u16,
    peer_port: u16,
}

impl Etcd {
    /// Starts `etcd` (or `$ASTROBOIDS_ETCD`) with its data and log in a new directory inside
    /// `parent` (`etcd-1`, `etcd-2`, ...), on free ports (tried again on new ones if a port is
    /// taken before etcd binds it), and waits until `/health` says it is healthy. Its member
    /// name is unique among the etcds this process starts.
    pub fn start(parent: &Path) -> Result<Self, InfraError> {
        Self::start_with_binary(&binary_from_env(ETCD_ENV, "etcd"), parent)
    }

    /// [`Self::start`] with the given binary: a path, or a bare name looked up on `PATH`.
    pub fn start_with_binary(binary: &Path, parent: &Path) -> Result<Self, InfraError> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let process = Process::in_new_dir(ETCD, binary, parent)?;
        let name = format!(
            "astroboids-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self::launched(process, name, 0, 0)
    }

    /// Starts `etcd` (or `$ASTROBOIDS_ETCD`) in `dir` itself, created if missing, with client
    /// URL http://127.0.0.1:`client_port` and peer URL http://127.0.0.1:`peer_port` (0: a free
    /// port, tried again on another if it is taken before etcd binds it), and waits until it is
    /// healthy. Starting again on the same `dir` (after [`Self::stop`], or in another run of
    /// the program) finds the keys where the last run left them. The member is named
    /// [`ETCD_MEMBER_NAME`].
    pub fn start_on(dir: &Path, client_port: u16, peer_port: u16) -> Result<Self, InfraError> {
        Self::start_on_with_binary(
            &binary_from_env(ETCD_ENV, "etcd"),
            dir,
            client_port,
            peer_port,
        )
    }

    /// [`Self::start_on`] with the given binary: a path, or a bare name looked up on `PATH`.
    pub fn start_on_with_binary(
        binary: &Path,
        dir: &Path,
        client_port: u16,
        peer_port: u16,
    ) -> Result<Self, InfraError> {
        let process = Process::in_dir(ETCD, binary, dir)?;
        Self::launched(process, ETCD_MEMBER_NAME.into(), client_port, peer_port)
    }

    /// Launches on the given ports, picking free ones for zeros (and picking again, up to
    /// [`ETCD_ATTEMPTS`] times, when one of those was taken before etcd bound it).
    fn launched(
        process: Process,
        name: String,
        client_port: u16,
        peer_port: u16,
    ) -> Result<Self, InfraError> {
        let mut etcd = Self {
            process,
            name,
            client_port: 0,
            peer_port: 0,
        };
        let data = etcd.data_dir();
        let had_data = data.exists();
        let picked = client_port == 0 || peer_port == 0;
        for attempt in 1..=ETCD_ATTEMPTS {
            let [free_client, free_peer] = free_ports()?;
            let client = if client_port == 0 {
                free_client
            } else {
                client_port
            };
            let peer = if peer_port == 0 { free_peer } else { peer_port };
            match etcd.launch(client, peer) {
                Err(Launch::PortTaken(_)) if picked && attempt < ETCD_ATTEMPTS => {
                    // A failed first start may have made a data directory: not a member yet.
                    if !had_data {
                        let _ = fs::remove_dir_all(&data);
                    }
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

    /// The member's `--name`.
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
        self.process.pid()
    }

    /// Kills etcd (SIGKILL, no clean shutdown) and waits for it to exit: its ports refuse
    /// connections when this returns. Does nothing if it is not running.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Stops etcd cleanly: SIGTERM, then SIGKILL if it has not exited after
    /// [`STOP_TIMEOUT`]. Its ports refuse connections when this returns.
    pub fn stop(&mut self) -> Stopped {
        self.process.stop(STOP_TIMEOUT)
    }

    /// [`Self::stop`], waiting `timeout` before the SIGKILL.
    pub fn stop_within(&mut self, timeout: Duration) -> Stopped {
        self.process.stop(timeout)
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

    fn data_dir(&self) -> std::path::PathBuf {
        self.process.dir.join("data")
    }

    fn launch(&mut self, client: u16, peer: u16) -> Result<(), Launch> {
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut args: Vec<OsString> = vec!["--name".into(), self.name.clone().into()];
        args.extend(["--data-dir".into(), self.data_dir().into_os_string()]);
        // The --initial-* flags make the member on a first start; etcd ignores them when it
        // finds its data.
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
