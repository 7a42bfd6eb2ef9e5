//! What tests across the AstroBoids crates share, so that each does not keep its own copy:
//!
//! - [`TempDir`]: a directory of its own for a test, removed with everything in it when
//!   dropped (stores, artifact caches, replay files);
//! - [`WatBot`] (feature `wat`, on by default): a script module with the ABI exports the host
//!   requires, built from the parts a test cares about (imports, fields, the tick body);
//! - [`ManualClock`]: time that passes only when a test says so, for code that is handed a
//!   clock (the engine's `Pacer`, the server's rate limits and sessions);
//! - [`NatsServer`], [`Etcd`] and [`Postgres`]: real servers on free loopback ports, from
//!   `astroboids-infra` (re-exported whole as [`infra`]), started in a test's [`TempDir`].
//!
//! A dev-dependency only: nothing here is compiled into a shipped crate.

mod clock;
mod dir;
#[cfg(feature = "wat")]
mod wat;

/// The launchers of `astroboids-infra`: `astroboids_test_kit::infra::NatsServer` and the rest.
pub use astroboids_infra as infra;
pub use astroboids_infra::{Etcd, InfraError, NatsServer, Postgres};
pub use clock::ManualClock;
pub use dir::TempDir;
#[cfg(feature = "wat")]
pub use wat::{COMMAND_PTR, SENSOR_PTR, WatBot, wasm};
