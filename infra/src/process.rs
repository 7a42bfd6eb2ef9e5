//! What the servers share: a child process with its own directory and log, started (as another
//! user if need be), checked for exit, stopped (gracefully or not) and killed on drop; free
//! ports; a TCP connection with timeouts for the readiness checks.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::binary;
use crate::error::InfraError;

/// How long `start`, `start_on` and `restart` wait for a server to answer before giving up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `stop` waits after its signal (SIGTERM; SIGINT for PostgreSQL) before it kills the
/// server (SIGKILL).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(10);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
const READ_TIMEOUT: Duration = Duration::from_secs(1);
const LOG_TAIL_LINES: usize = 30;
const LOG_TAIL_BYTES: u64 = 8 * 1024;

/// How a server ended when it was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running (never started, killed, stopped already, or it failed to restart).
    NotRunning,
    /// It exited by itself: after the stop signal, or before it was asked to. After SIGTERM the
    /// status need not be a success: etcd, its shutdown done, ends by the signal it was sent.
    Exited(ExitStatus),
    /// It did not exit within the time it was given and was killed (SIGKILL).
    Killed,
}

/// A server binary: its name in messages, how to install it, how to ask it to stop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Program {
    pub name: &'static str,
    pub install: &'static str,
    pub stop_signal: StopSignal,
    /// Whether killing the server kills its child processes too (PostgreSQL's backends and
    /// workers, which would otherwise outlive it until they notice, holding its shared memory).
    pub kill_children: bool,
}

/// The signal that asks a server to shut down cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopSignal {
    /// SIGTERM.
    Terminate,
    /// SIGINT (PostgreSQL's "fast" shutdown; SIGTERM is its "smart" one, which waits for every
    /// client to disconnect).
    Interrupt,
}

/// A child process with its directory and log; killed and waited for on drop.
#[derive(Debug)]
pub(crate) struct Process {
    pub program: Program,
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
    /// The user and group id to run as instead of this process's own (PostgreSQL, started by
    /// root).
    pub run_as: Option<(u32, u32)>,
}

impl Process {
    /// Checks that the binary exists and makes the server's own directory inside `parent`
    /// (`NAME-1`, `NAME-2`, ...: the first not taken).
    pub fn in_new_dir(program: Program, binary: &Path, parent: &Path) -> Result<Self, InfraError> {
        check_exists(program, binary)?;
        let dir = make_own_dir(parent, program.name)?;
        Ok(Self::new(program, binary, dir))
    }

    /// Checks that the binary exists and makes `dir` the server's directory: created with its
    /// parents if missing, used as it is (data included) if not.
    pub fn in_dir(program: Program, binary: &Path, dir: &Path) -> Result<Self, InfraError> {
        check_exists(program, binary)?;
        fs::create_dir_all(dir).map_err(|source| InfraError::Io {
            what: format!("cannot create {}", dir.display()),
            source,
        })?;
        Ok(Self::new(program, binary, dir.to_owned()))
    }

    fn new(program: Program, binary: &Path, dir: PathBuf) -> Self {
        // Absolute: the server runs in it, and is handed paths inside it.
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        let log = dir.join(format!("{}.log", program.name));
        // A path with a directory part would be looked up from the server's directory.
        let binary = if binary::is_bare_name(binary) {
            binary.to_owned()
        } else {
            std::path::absolute(binary).unwrap_or_else(|_| binary.to_owned())
        };
        Self {
            program,
            binary,
            dir,
            log,
            child: None,
            run_as: None,
        }
    }

    /// Starts the binary with `args`, stdout and stderr appended to the log; returns when.
    pub fn spawn(&mut self, args: &[OsString]) -> Result<Instant, InfraError> {
        let command = self.command(&self.binary, args)?;
        self.spawn_command(command)
    }

    /// A command for `binary` (the server's or a helper such as PostgreSQL's `initdb`) run like
    /// the server: in its directory, as [`Self::run_as`], without stdin, stdout and stderr
    /// appended to the log after a line with the command, without the caller's `ETCD_*` and
    /// `PG*` variables.
    pub fn command(&self, binary: &Path, args: &[OsString]) -> Result<Command, InfraError> {
        let io_error = |what: &str, source| InfraError::Io {
            what: format!("{what} {}", self.log.display()),
            source,
        };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| io_error("cannot open the log", e))?;
        let mut line = format!("=== {}", binary.display());
        for arg in args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        writeln!(log, "{line}").map_err(|e| io_error("cannot write to the log", e))?;
        let stderr = log
            .try_clone()
            .map_err(|e| io_error("cannot share the log", e))?;
        let mut command = Command::new(binary);
        command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        // etcd reads its flags from ETCD_* variables too, PostgreSQL its defaults from PG*
        // ones (PGDATA, PGPORT...): none of the caller's may leak in.
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("ETCD_") || key_text.starts_with("PG") {
                command.env_remove(key);
            }
        }
        #[cfg(unix)]
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt;
            // std drops the supplementary groups too when root changes the user.
            command.uid(uid).gid(gid);
        }
        Ok(command)
    }

    /// Spawns `command` (from [`Self::command`]) as the server's process; returns when.
    pub fn spawn_command(&mut self, mut command: Command) -> Result<Instant, InfraError> {
        let started = Instant::now();
        let child = command
            .spawn()
            .map_err(|source| self.spawn_error(Path::new(command.get_program()), source))?;
        self.child = Some(child);
        Ok(started)
    }

    /// Why `binary` could not be run: missing, or another reason.
    pub fn spawn_error(&self, binary: &Path, source: io::Error) -> InfraError {
        if source.kind() == io::ErrorKind::NotFound {
            missing(self.program, binary)
        } else {
            InfraError::Spawn {
                binary: binary.to_owned(),
                source,
            }
        }
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status if the child has exited (it is then forgotten), `None` if it runs.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>, InfraError> {
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
                what: format!("cannot wait for {}", self.program.name),
                source,
            }),
        }
    }

    /// SIGKILL (to its children too, for a program that has them), and waits for the exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.kill_child(&mut child);
        }
    }

    fn kill_child(&self, child: &mut Child) {
        #[cfg(unix)]
        if self.program.kill_children {
            kill_children_of(child);
        }
        // Fails only if it has exited already; wait reaps it either way.
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The program's stop signal, then waits up to `timeout` for the exit; SIGKILL if it does
    /// not come.
    pub fn stop(&mut self, timeout: Duration) -> Stopped {
        let Some(mut child) = self.child.take() else {
            return Stopped::NotRunning;
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Stopped::Exited(status);
        }
        // Not yet waited for, so its pid cannot have been reused by another process.
        terminate(&child, self.program.stop_signal);
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Stopped::Exited(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                _ => {
                    self.kill_child(&mut child);
                    return Stopped::Killed;
                }
            }
        }
    }

    pub fn not_ready(&self, why: String) -> InfraError {
        InfraError::NotReady {
            name: self.program.name,
            binary: self.binary.clone(),
            why,
            log: self.log.clone(),
            log_tail: log_tail(&self.log),
        }
    }

    pub fn log_len(&self) -> u64 {
        fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    pub fn log_since(&self, offset: u64) -> String {
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

#[cfg(unix)]
fn terminate(child: &Child, signal: StopSignal) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let signal = match signal {
        StopSignal::Terminate => Signal::SIGTERM,
        StopSignal::Interrupt => Signal::SIGINT,
    };
    if let Ok(pid) = i32::try_from(child.id()) {
        // Fails only if it has exited already, which the caller's wait then sees.
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// SIGKILL to every child of `child` (Linux: found in /proc), `child` itself stopped first
/// (SIGSTOP) so that it starts no new one meanwhile; the caller then kills it.
#[cfg(unix)]
fn kill_children_of(child: &Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    if kill(Pid::from_raw(pid), Signal::SIGSTOP).is_err() {
        return;
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let Some(candidate) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // "PID (COMM) STATE PPID ...", where COMM may hold spaces and parentheses.
        let ppid = stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<i32>().ok());
        if ppid == Some(pid) {
            let _ = kill(Pid::from_raw(candidate), Signal::SIGKILL);
        }
    }
}

/// No signals here: the wait that follows finds it still running and kills it.
#[cfg(not(unix))]
fn terminate(_child: &Child, _signal: StopSignal) {}

fn missing(program: Program, binary: &Path) -> InfraError {
    InfraError::MissingBinary {
        name: program.name,
        binary: binary.to_owned(),
        install: program.install,
    }
}

fn check_exists(program: Program, binary: &Path) -> Result<(), InfraError> {
    if binary::exists(binary) {
        Ok(())
    } else {
        Err(missing(program, binary))
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
pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N], InfraError> {
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

/// A connection to 127.0.0.1:`port` with short connect, read and write timeouts.
pub(crate) fn connect(port: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        CONNECT_TIMEOUT,
    )?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SH: Program = Program {
        name: "sh",
        install: "it comes with the system",
        stop_signal: StopSignal::Terminate,
        kill_children: false,
    };

    fn sh(dir: &Path, script: &str) -> Process {
        let mut process = Process::in_new_dir(SH, Path::new("sh"), dir).unwrap();
        process
            .spawn(&["-c".into(), script.into()])
            .unwrap_or_else(|e| panic!("{e}"));
        process
    }

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports().unwrap();
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn stop_terminates_and_kills_what_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        // Exits on SIGTERM (sleep is killed by the signal's default action).
        let mut polite = sh(dir.path(), "exec sleep 30");
        let started = Instant::now();
        let stopped = polite.stop(STOP_TIMEOUT);
        assert!(
            matches!(stopped, Stopped::Exited(status) if !status.success()),
            "{stopped:?}"
        );
        assert!(started.elapsed() < STOP_TIMEOUT, "{:?}", started.elapsed());
        assert_eq!(polite.pid(), None);
        assert_eq!(polite.stop(STOP_TIMEOUT), Stopped::NotRunning);

        // Ignores SIGTERM: killed once the time is up.
        let mut stubborn = sh(dir.path(), "trap '' TERM; echo trapped; exec sleep 30");
        let deadline = Instant::now() + READY_TIMEOUT;
        while !stubborn.log_since(0).contains("trapped\n") {
            assert!(Instant::now() < deadline, "{}", stubborn.log_since(0));
            thread::sleep(POLL_INTERVAL);
        }
        let started = Instant::now();
        assert_eq!(stubborn.stop(Duration::from_millis(200)), Stopped::Killed);
        assert!(started.elapsed() >= Duration::from_millis(200));

        // Exited before it was asked to.
        let mut quick = sh(dir.path(), "exit 3");
        thread::sleep(Duration::from_millis(200));
        let stopped = quick.stop(STOP_TIMEOUT);
        assert!(
            matches!(stopped, Stopped::Exited(status) if status.code() == Some(3)),
            "{stopped:?}"
        );
    }
}
