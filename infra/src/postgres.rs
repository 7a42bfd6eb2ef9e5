//! A PostgreSQL server of its own: `initdb` once, then `postgres` on 127.0.0.1 and a unix socket
//! in its directory.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::binary::find_on_path;
use crate::error::InfraError;
use crate::process::{
    POLL_INTERVAL, Process, Program, READY_TIMEOUT, STOP_TIMEOUT, StopSignal, Stopped, connect,
    free_ports,
};
use crate::user;

/// Names the directory holding PostgreSQL's server binaries (`postgres` and `initdb`) to use
/// instead of the ones found on `PATH` or in `/usr/lib/postgresql/VERSION/bin`.
pub const POSTGRES_BIN_ENV: &str = "ASTROBOIDS_POSTGRES_BIN";

/// The database superuser `initdb` makes and [`Postgres::url`] names: trusted without a password
/// on 127.0.0.1 and on the unix socket.
pub const POSTGRES_USER: &str = "postgres";

/// The system user a root caller runs PostgreSQL as, since it refuses to run as root; Debian's
/// `postgresql` package creates it.
pub const POSTGRES_OS_USER: &str = "postgres";

/// Where Debian puts each major version's server binaries (`15/bin`, ...), off `PATH`.
const DEBIAN_LIB: &str = "/usr/lib/postgresql";

const POSTGRES: Program = Program {
    name: "postgres",
    install: "install it with `apt-get install postgresql` (Debian's server binaries, in \
              /usr/lib/postgresql/VERSION/bin, are looked for there too), or run `.ci/run` as \
              root, or name the directory holding `postgres` and `initdb` in \
              ASTROBOIDS_POSTGRES_BIN",
    stop_signal: StopSignal::Interrupt,
    kill_children: true,
};

/// How long `initdb` may take (~0.5 s without syncing, a few seconds with).
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);

/// Tries at free ports: PostgreSQL is handed its port, which another process may take between
/// our picking and its binding.
const PORT_ATTEMPTS: u32 = 3;

/// How long to wait before trying again when the processes of a killed server still hold its
/// shared memory (killed with it, they may still be exiting; where they could not be found,
/// they exit once they notice the postmaster's death, a busy backend only when it next checks).
const BUSY_RETRY: Duration = Duration::from_millis(50);

/// The longest path a unix socket can have (Linux: 108 bytes, the closing NUL included).
const MAX_SOCKET_PATH: usize = 107;

/// A PostgreSQL server, listening on 127.0.0.1 and on a unix socket in its directory, trusting
/// every local connection (no passwords) as any user; the superuser is [`POSTGRES_USER`].
///
/// Its directory holds the cluster made by `initdb` (`data/`), the socket's directory
/// (`socket/`) and the log (`postgres.log`: `initdb`'s output and the server's).
#[derive(Debug)]
pub struct Postgres {
    process: Process,
    bin_dir: PathBuf,
    port: u16,
    /// A test's server, started by `start`: `initdb --no-sync` and `fsync=off` (data survives
    /// a killed server, not a crashed machine).
    throwaway: bool,
}

impl Postgres {
    /// Starts a new PostgreSQL cluster in a new directory inside `parent` (`postgres-1`,
    /// `postgres-2`, ...) on a free port (tried again on another if it is taken before the
    /// server binds it), and waits until it accepts connections. Made to be thrown away: its
    /// writes are not synced to disk.
    ///
    /// The binaries are those in `$ASTROBOIDS_POSTGRES_BIN`, else `postgres`'s directory on
    /// `PATH` (symlinks followed), else the newest `/usr/lib/postgresql/VERSION/bin` (Debian's).
    pub fn start(parent: &Path) -> Result<Self, InfraError> {
        Self::start_with_bin_dir(&bin_dir()?, parent)
    }

    /// [`Self::start`] with the binaries in `bin_dir`.
    pub fn start_with_bin_dir(bin_dir: &Path, parent: &Path) -> Result<Self, InfraError> {
        check_initdb(bin_dir)?;
        let process = Process::in_new_dir(POSTGRES, &bin_dir.join("postgres"), parent)?;
        Self::launched(process, bin_dir, 0, true)
    }

    /// Starts PostgreSQL in `dir` itself, created if missing, on 127.0.0.1:`port` (0: a free
    /// port, tried again on another if it is taken before the server binds it), and waits
    /// until it accepts connections. The cluster is made (`initdb`) only when `dir/data` has
    /// none (no `PG_VERSION`): starting again on the same `dir` (after [`Self::stop`], or in
    /// another run of the program) finds the databases where the last run left them.
    pub fn start_on(dir: &Path, port: u16) -> Result<Self, InfraError> {
        Self::start_on_with_bin_dir(&bin_dir()?, dir, port)
    }

    /// [`Self::start_on`] with the binaries in `bin_dir`.
    pub fn start_on_with_bin_dir(
        bin_dir: &Path,
        dir: &Path,
        port: u16,
    ) -> Result<Self, InfraError> {
        check_initdb(bin_dir)?;
        let process = Process::in_dir(POSTGRES, &bin_dir.join("postgres"), dir)?;
        Self::launched(process, bin_dir, port, false)
    }

    fn launched(
        mut process: Process,
        bin_dir: &Path,
        port: u16,
        throwaway: bool,
    ) -> Result<Self, InfraError> {
        if user::is_root() {
            let ids = user::lookup(POSTGRES_OS_USER)
                .map_err(|source| InfraError::Io {
                    what: "cannot read /etc/passwd".into(),
                    source,
                })?
                .ok_or(InfraError::NoServerUser {
                    name: POSTGRES.name,
                    user: POSTGRES_OS_USER,
                    install: "`apt-get install postgresql` creates it",
                })?;
            user::let_through(&process.dir, ids)?;
            user::hand_over(&process.dir, ids)?;
            process.run_as = Some(ids);
        }
        let mut postgres = Self {
            process,
            bin_dir: std::path::absolute(bin_dir).unwrap_or_else(|_| bin_dir.to_owned()),
            port: 0,
            throwaway,
        };
        if let Some(socket_dir) = postgres.socket_dir() {
            fs::create_dir_all(&socket_dir).map_err(|source| InfraError::Io {
                what: format!("cannot create {}", socket_dir.display()),
                source,
            })?;
            if let Some(ids) = postgres.process.run_as {
                user::hand_over(&socket_dir, ids)?;
            }
        }
        if !postgres.data_dir().join("PG_VERSION").is_file() {
            postgres.initdb()?;
        }
        for attempt in 1..=PORT_ATTEMPTS {
            let [free] = free_ports()?;
            match postgres.launch(if port == 0 { free } else { port }) {
                Err(Launch::PortTaken(_)) if port == 0 && attempt < PORT_ATTEMPTS => {}
                Err(Launch::PortTaken(e) | Launch::Busy(e) | Launch::Failed(e)) => return Err(e),
                Ok(()) => return Ok(postgres),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`: the superuser, the default database.
    pub fn url(&self) -> String {
        format!(
            "postgres://{POSTGRES_USER}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// This server's own directory.
    pub fn dir(&self) -> &Path {
        &self.process.dir
    }

    /// The cluster's data directory (`data/` in [`Self::dir`]), `PGDATA`.
    pub fn data_dir(&self) -> PathBuf {
        self.process.dir.join("data")
    }

    /// The directory of the server's unix socket (`socket/` in [`Self::dir`]: a client's host
    /// when it starts with `/`), or `None` when the socket's path would be too long for one
    /// (the server then listens on 127.0.0.1 only).
    pub fn socket_dir(&self) -> Option<PathBuf> {
        let dir = self.process.dir.join("socket");
        let longest = dir.as_os_str().len() + "/.s.PGSQL.65535".len();
        (longest <= MAX_SOCKET_PATH).then_some(dir)
    }

    /// The directory of the binaries it runs; Debian's also holds the clients (`psql`,
    /// `createdb`, `pg_isready`...).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The server's stdout and stderr, after `initdb`'s.
    pub fn log_path(&self) -> &Path {
        &self.process.log
    }

    /// The process id of the server (the postmaster) while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Kills the server, as a crash would (SIGKILL, no clean shutdown: the next start recovers
    /// from its write-ahead log), and waits for the postmaster to exit: its port refuses
    /// connections when this returns. Its backends and workers are killed with it (Linux:
    /// found in /proc); elsewhere they exit once they notice, and [`Self::restart`] waits for
    /// them. Does nothing if it is not running.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Stops the server cleanly: SIGINT (PostgreSQL's "fast" shutdown: clients are
    /// disconnected, a checkpoint written), then SIGKILL if it has not exited after
    /// [`STOP_TIMEOUT`]. Its port refuses connections when this returns.
    pub fn stop(&mut self) -> Stopped {
        self.process.stop(STOP_TIMEOUT)
    }

    /// [`Self::stop`], waiting `timeout` before the SIGKILL.
    pub fn stop_within(&mut self, timeout: Duration) -> Stopped {
        self.process.stop(timeout)
    }

    /// Kills the server if it runs and starts it again on the same port with the same data
    /// (recovering from the kill, if it was killed); returns once it accepts connections.
    /// Fails if the port was taken meanwhile.
    pub fn restart(&mut self) -> Result<(), InfraError> {
        self.process.kill();
        match self.launch(self.port) {
            Ok(()) => Ok(()),
            Err(Launch::PortTaken(e) | Launch::Busy(e) | Launch::Failed(e)) => Err(e),
        }
    }

    /// Makes the cluster in [`Self::data_dir`]: trust authentication, superuser
    /// [`POSTGRES_USER`], UTF-8, the C locale (the same on every machine).
    fn initdb(&mut self) -> Result<(), InfraError> {
        let initdb = self.bin_dir.join("initdb");
        let mut args: Vec<OsString> = vec!["-D".into(), self.data_dir().into()];
        for arg in [
            "--auth=trust",
            &format!("--username={POSTGRES_USER}"),
            "--encoding=UTF8",
            "--no-locale",
        ] {
            args.push(arg.into());
        }
        if self.throwaway {
            args.push("--no-sync".into());
        }
        let mut command = self.process.command(&initdb, &args)?;
        command.env("LC_ALL", "C");
        let mut child = command
            .spawn()
            .map_err(|e| self.process.spawn_error(&initdb, e))?;
        let deadline = Instant::now() + INITDB_TIMEOUT;
        loop {
            let why = match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => format!("initdb exited with {status}"),
                Ok(None) if Instant::now() < deadline => {
                    thread::sleep(POLL_INTERVAL);
                    continue;
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let waited = INITDB_TIMEOUT.as_secs();
                    format!("initdb had not finished after {waited} s")
                }
                Err(e) => format!("cannot wait for initdb: {e}"),
            };
            return Err(self.process.not_ready(why));
        }
    }

    /// Starts the server on `port` and waits until it is ready; starts it again while a killed
    /// predecessor's processes still hold the data directory's shared memory.
    fn launch(&mut self, port: u16) -> Result<(), Launch> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.launch_once(port, deadline) {
                Err(Launch::Busy(_)) if Instant::now() + BUSY_RETRY < deadline => {
                    thread::sleep(BUSY_RETRY);
                }
                Err(Launch::Busy(e)) => return Err(Launch::Failed(e)),
                result => return result,
            }
        }
    }

    fn launch_once(&mut self, port: u16, deadline: Instant) -> Result<(), Launch> {
        let socket_dir = self.socket_dir().map(PathBuf::into_os_string);
        let mut args: Vec<OsString> = vec!["-D".into(), self.data_dir().into()];
        args.extend(["-p".into(), port.to_string().into()]);
        // An empty -k: no unix socket.
        args.extend(["-k".into(), socket_dir.unwrap_or_default()]);
        args.extend(["-c".into(), "listen_addresses=127.0.0.1".into()]);
        if self.throwaway {
            args.extend(["-c".into(), "fsync=off".into()]);
        }
        let binary = self.process.binary.clone();
        let mut command = self
            .process
            .command(&binary, &args)
            .map_err(Launch::Failed)?;
        command.env("LC_ALL", "C");
        let log_start = self.process.log_len();
        self.process
            .spawn_command(command)
            .map_err(Launch::Failed)?;
        let pid = self.pid().unwrap_or(0);
        let mut why = String::from("not tried yet");
        loop {
            if let Some(status) = self.process.exited().map_err(Launch::Failed)? {
                let e = self
                    .process
                    .not_ready(format!("exited with {status} ({why})"));
                let log = self.process.log_since(log_start);
                return Err(if log.contains("Address already in use") {
                    Launch::PortTaken(e)
                } else if log.contains("shared memory block") && log.contains("is still in use") {
                    Launch::Busy(e)
                } else {
                    Launch::Failed(e)
                });
            }
            match self.ready(pid, port) {
                Ok(()) => {
                    self.port = port;
                    return Ok(());
                }
                Err(e) => why = e.to_string(),
            }
            if Instant::now() >= deadline {
                let waited = READY_TIMEOUT.as_secs_f32();
                let e = self
                    .process
                    .not_ready(format!("not ready after {waited} s ({why})"));
                self.process.kill();
                return Err(Launch::Failed(e));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// `Ok` when the data directory's `postmaster.pid` names this postmaster, on `port`, as
    /// ready, and the server accepts a connection on 127.0.0.1:`port`.
    fn ready(&self, pid: u32, port: u16) -> io::Result<()> {
        // Lines: pid, data directory, start time, port, socket directory, listen address,
        // shared memory key, status ("starting", "ready", "stopping").
        let lock = fs::read_to_string(self.data_dir().join("postmaster.pid"))?;
        let lines: Vec<&str> = lock.lines().map(str::trim).collect();
        if lines.first() != Some(&pid.to_string().as_str())
            || lines.get(3) != Some(&port.to_string().as_str())
        {
            return Err(io::Error::other("postmaster.pid is not this server's yet"));
        }
        match lines.get(7) {
            Some(&"ready") => startup_handshake(port),
            status => Err(io::Error::other(format!("postmaster.pid says {status:?}"))),
        }
    }
}

enum Launch {
    /// The server exited because the port it was given was taken: worth another try.
    PortTaken(InfraError),
    /// The server exited because a killed server's processes still hold the data directory.
    Busy(InfraError),
    Failed(InfraError),
}

/// `$ASTROBOIDS_POSTGRES_BIN`, else the directory of `postgres` on `PATH` (of the file a
/// symlink there leads to), else the newest
/// Debian `/usr/lib/postgresql/VERSION/bin` with a `postgres` in it.
fn bin_dir() -> Result<PathBuf, InfraError> {
    if let Some(dir) = std::env::var_os(POSTGRES_BIN_ENV).filter(|dir| !dir.is_empty()) {
        return Ok(dir.into());
    }
    // Symlinks followed: a link on PATH (/usr/local/bin/postgres) leads to the real directory,
    // where initdb and the clients are.
    let on_path = find_on_path(Path::new("postgres")).and_then(|p| fs::canonicalize(p).ok());
    if let Some(dir) = on_path.and_then(|p| Some(p.parent()?.to_owned())) {
        return Ok(dir);
    }
    newest_bin_dir(Path::new(DEBIAN_LIB)).ok_or(InfraError::MissingBinary {
        name: POSTGRES.name,
        binary: PathBuf::from("postgres"),
        install: POSTGRES.install,
    })
}

/// The `VERSION/bin` in `lib` with a `postgres`, of the highest version (`17` over `9.6`).
fn newest_bin_dir(lib: &Path) -> Option<PathBuf> {
    fs::read_dir(lib)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let version: Vec<u32> = name
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

/// An error naming a missing `initdb` next to `postgres`.
fn check_initdb(bin_dir: &Path) -> Result<(), InfraError> {
    let initdb = bin_dir.join("initdb");
    if initdb.is_file() {
        Ok(())
    } else {
        Err(InfraError::MissingBinary {
            name: "initdb",
            binary: initdb,
            install: POSTGRES.install,
        })
    }
}

/// Opens a session as [`POSTGRES_USER`] on database `postgres` (the protocol's startup
/// message, version 3.0) and closes it: `Ok` when the server answers "authentication ok",
/// an error with the server's message otherwise ("the database system is starting up"...).
fn startup_handshake(port: u16) -> io::Result<()> {
    let mut stream = connect(port)?;
    let mut body = 196_608_u32.to_be_bytes().to_vec(); // 3 << 16: protocol 3.0
    for text in ["user", POSTGRES_USER, "database", "postgres", ""] {
        body.extend_from_slice(text.as_bytes());
        body.push(0);
    }
    let len = u32::try_from(body.len() + 4).map_err(io::Error::other)?;
    stream.write_all(&[&len.to_be_bytes()[..], &body].concat())?;
    let mut header = [0; 5];
    stream.read_exact(&mut header)?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let mut message = Vec::new();
    (&mut stream)
        .take(u64::from(len.saturating_sub(4)).min(64 * 1024))
        .read_to_end(&mut message)?;
    match header[0] {
        b'R' if message.starts_with(&[0, 0, 0, 0]) => {
            // Terminate: the session ends without a complaint in the server's log.
            stream.write_all(&[b'X', 0, 0, 0, 4])?;
            Ok(())
        }
        b'R' => Err(io::Error::other(
            "asks for a password: not trust authentication",
        )),
        b'E' => Err(io::Error::other(error_text(&message))),
        other => Err(io::Error::other(format!(
            "answered a message of type {:?}",
            char::from(other)
        ))),
    }
}

/// "57P03 the database system is starting up" from an ErrorResponse's fields (a type byte and
/// a NUL-terminated text each).
fn error_text(fields: &[u8]) -> String {
    let field = |kind: u8| {
        fields
            .split(|&b| b == 0)
            .find_map(|field| match field.split_first() {
                Some((&k, text)) if k == kind => Some(String::from_utf8_lossy(text).into_owned()),
                _ => None,
            })
            .unwrap_or_default()
    };
    format!("{} {}", field(b'C'), field(b'M'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_version_directory_wins() {
        let lib = tempfile::tempdir().unwrap();
        let lib = lib.path();
        assert_eq!(newest_bin_dir(lib), None);
        for version in ["9.6", "15", "17", "100-not-a-version"] {
            let bin = lib.join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            fs::write(bin.join("postgres"), "").unwrap();
        }
        // Without a postgres in it, 18 does not count.
        fs::create_dir_all(lib.join("18/bin")).unwrap();
        assert_eq!(newest_bin_dir(lib), Some(lib.join("17/bin")));
    }

    #[test]
    fn error_responses_read_as_code_and_message() {
        let fields = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0";
        assert_eq!(
            error_text(fields),
            "57P03 the database system is starting up"
        );
    }
}
