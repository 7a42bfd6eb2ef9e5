//! Running AstroBoids worlds outside a test: a world that persists to a data directory and
//! resumes after a crash ([`persistent`]), the one way every host submits, commits, steps and
//! records a world ([`runner`], [`recording`]), and replay files that record a stretch of ticks
//! and re-simulate, inspect or re-run them ([`replay`]).
//!
//! Architecture invariant: the host knows files and the sled store, never sockets; it drives the
//! sim only through world inputs, `Simulation::step` and checkpoints, so everything it does is
//! reproducible by a replay. It reads no wall-clock time: callers time what they want to time.

pub mod checkpoint_writer;
pub mod compress;
pub mod inspect;
pub mod persistent;
pub mod recording;
pub mod replay;
pub mod rerun;
pub mod runner;
pub mod trace;
mod world_info;

pub use persistent::{HostError, OpenReport, PersistentWorld, WorldRequest};
