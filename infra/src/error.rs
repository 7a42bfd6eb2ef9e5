//! Why a server could not be started.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::binary::is_bare_name;

/// Why a server could not be started.
#[derive(Debug)]
#[non_exhaustive]
pub enum InfraError {
    /// The binary does not exist (not on `PATH`, or not at the path given).
    MissingBinary {
        /// `nats-server`, `etcd`, `postgres` or `initdb`.
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
    /// The server refuses to run as root, this process is root, and the user it would run as
    /// instead does not exist.
    NoServerUser {
        /// `postgres`.
        name: &'static str,
        /// The user looked for.
        user: &'static str,
        /// How to get that user.
        install: &'static str,
    },
    /// The binary exists but could not be run (permissions, not an executable...).
    Spawn { binary: PathBuf, source: io::Error },
    /// Preparing the server's directory, configuration or log, or picking a port, failed.
    Io { what: String, source: io::Error },
    /// The server ran but did not answer as it should within
    /// [`READY_TIMEOUT`](crate::READY_TIMEOUT), or exited.
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
                "{name} at {} is version {version}, AstroBoids needs {minimum} or newer: {install}",
                binary.display()
            ),
            Self::NoServerUser {
                name,
                user,
                install,
            } => write!(
                f,
                "{name} refuses to run as root, and there is no `{user}` user to run it as: \
                 {install}, or run as another user than root"
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
