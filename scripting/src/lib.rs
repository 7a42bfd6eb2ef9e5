//! Player scripts: WebAssembly modules run sandboxed, metered and deterministic.
//!
//! - [`ScriptEngine`] validates and compiles modules (one metering middleware per module, as
//!   wasmer requires) and caches them by content hash, so a script shared by many ships compiles
//!   once.
//! - [`ScriptInstance`] is one ship's instance: its memory persists across ticks; each call
//!   gets a fuel budget counted in WebAssembly instructions, never in wall-clock time, so costs
//!   are identical on every machine and replayable.
//! - [`abi`] describes what a module may import and must export; every rejection names the
//!   exact problem.
//!
//! Architecture invariant: this crate knows nothing of ships, sectors or ECS; it runs modules.
//! Architecture invariant: no clock, no entropy, no WASI reaches a script; randomness comes
//! from a host function seeded by the caller.
//! Architecture invariant: `unsafe` exists only in `tunables.rs` (delegation required by
//! wasmer's trait), `artifacts.rs` (loading artifacts this host serialized) and
//! `linear_memory.rs` (a script's memory lent as a slice while its store is borrowed).

pub mod abi;
mod artifacts;
pub mod blocks;
pub mod budget;
mod compiled;
mod deferred_start;
mod engine;
mod error;
mod image_buffers;
mod instance;
mod limits;
mod linear_memory;
mod memory_image;
pub mod metering;
mod state_globals;
mod structure;
mod tunables;
mod untouched_pages;
mod workers;

pub use artifacts::ArtifactDir;
pub use compiled::{CompiledScript, ModuleSummary};
pub use engine::{CompilerKind, LoadStats, ScriptEngine, module_hash};
pub use error::{Fault, FaultKind, ScriptError};
pub use instance::{InstanceState, PreparedInstance, RunReport, ScriptInstance, escape_control};
pub use limits::ScriptLimits;
pub use memory_image::{IMAGE_CHUNK_BYTES, MemoryImage};
pub use structure::StructureLimits;
pub use workers::{
    PREPARED_PER_WORKER_MAX, PendingStates, ScriptJob, ScriptResult, ScriptWorkers, ShipSlice,
    StartLogs, WorkerError,
};
