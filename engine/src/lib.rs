//! The AstroBoids tick driver.
//!
//! This crate knows nothing about ships or sectors. It provides what every deterministic
//! simulation needs and nothing more:
//! - [`TickSchedule`]: a bevy schedule that runs exactly once per tick with a constant `dt`,
//!   single-threaded, with ambiguity detection set to error so every system is ordered;
//! - [`Tick`] and [`TickRate`]: the tick counter and the fixed step;
//! - [`NetId`]: the stable id of every simulated thing (bevy's `Entity` is not stable);
//! - [`rng`]: seeded, named random streams derived from (universe seed, stream, keys);
//! - [`hash`]: the state hash, built from per-plugin contributions in stable order;
//! - [`driver`]: [`driver::Simulation`] runs ticks as fast as possible or paced against a clock
//!   that the caller passes in; the sim itself never reads the wall clock;
//! - [`stats`]: nearest-rank percentiles, for whatever measures or reports (never the tick).

pub mod driver;
pub mod hash;
pub mod ids;
pub mod rng;
pub mod schedule;
pub mod stats;

pub use driver::{Pacer, Simulation};
pub use hash::{HashCost, StateHash, StateHashExt, StateHasher};
pub use ids::{NetId, NetIdAllocator};
pub use rng::{RngStream, UniverseSeed};
pub use schedule::{EnginePlugin, Tick, TickRate, TickSchedule};
