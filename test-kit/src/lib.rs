//! What tests across the AstroBoids crates share, so that each does not keep its own copy:
//!
//! - [`TempDir`]: a directory of its own for a test, removed with everything in it when
//!   dropped (stores, artifact caches, replay files);
//! - [`WatBot`] (feature `wat`, on by default): a script module with the ABI exports the host
//!   requires, built from the parts a test cares about (imports, fields, the tick body);
//! - [`ManualClock`]: time that passes only when a test says so, for code that is handed a
//!   clock (the engine's `Pacer`, the server's rate limits and sessions).
//!
//! A dev-dependency only: nothing here is compiled into a shipped crate.

mod clock;
mod dir;
pub mod infra;
#[cfg(feature = "wat")]
mod wat;

pub use clock::ManualClock;
pub use dir::TempDir;
pub use infra::{Etcd, InfraError, NatsServer};
#[cfg(feature = "wat")]
pub use wat::{COMMAND_PTR, SENSOR_PTR, WatBot, wasm};
