//! Replay files: a stretch of ticks recorded so it can be re-simulated bit for bit, inspected,
//! or re-run with a changed script.
//!
//! A replay holds a versioned header (engine, simulation and generator versions, universe seed
//! and configuration), a starting checkpoint, every tick's inputs and state hash (with the
//! digest of each hash part, to name what diverged), and keyframes: checkpoints at some
//! checkpoint ticks, so a reader can start near any tick and compare whole worlds.
//!
//! File layout: `ABREPLAY`, the container format (u32 LE), then chunks, each
//! `[payload length u32 LE][XXH3-64 of payload u64 LE][payload]`, where the payload is a
//! zstd-compressed postcard [`Chunk`]. The first chunk is the header, the second the starting
//! keyframe, the last an end marker; a file without it did not finish recording. Chunks are
//! appended as the run goes, into a temporary file renamed over the target when recording
//! finishes, so an existing file is never left half-written.
//!
//! Code map: `writer` appends checksummed chunks to a file renamed into place at the end,
//! `recorder` records a running world, `reader` reads and checks a file and steps through it,
//! `verify` re-simulates a recording and names what departed.

mod reader;
mod recorder;
mod verify;
mod writer;

pub use reader::Replay;
pub use recorder::{Recorder, RecordingStats};
pub use verify::{Divergence, VerifyReport, diff_worlds, verify};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use astroboids_engine::Simulation;
use astroboids_sim::inputs::WorldInput;

pub const REPLAY_MAGIC: &[u8; 8] = b"ABREPLAY";
/// Bump when the chunk layout or a chunk's fields change (the encoding of a [`WorldInput`]
/// included: ticks record them).
///
/// 2: `SpawnShip` inputs carry their owner.
pub const REPLAY_FORMAT: u32 = 2;
/// Tick records per chunk (compressed together).
const TICKS_PER_CHUNK: usize = 100;
/// Largest chunk we read, compressed and decompressed (keyframes of big worlds included).
const MAX_CHUNK_BYTES: usize = 4 << 30;

/// What a replay is a recording of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayHeader {
    /// The astroboids version that recorded it.
    pub engine_version: String,
    /// [`SIM_VERSION`] at recording: a replay re-simulates only under the same version.
    pub sim_version: u32,
    pub generator_version: u32,
    pub checkpoint_format: u32,
    pub universe_seed: u64,
    /// The universe configuration, as TOML.
    pub config_toml: String,
    /// The tick of the starting checkpoint; the first recorded tick is the next one.
    pub start_tick: u64,
    /// Names of the cheap state hash parts, in the order of [`TickRecord::parts`].
    pub hash_parts: Vec<String>,
    /// Names of the heavy parts (script memory), in the order of [`TickRecord::heavy`].
    pub heavy_hash_parts: Vec<String>,
    /// Keyframes are written every this many checkpoint ticks (plus the first and last).
    pub keyframe_every_checkpoints: u64,
    /// What recorded it (e.g. "astroboids sim --seed 1 --ships 100").
    pub recorded_by: String,
}

/// One recorded tick: the inputs applied before it, and the state hash after it.
///
/// Every tick records the quick hash (all cheap parts: ships, sectors, script runtimes, ...);
/// checkpoint ticks also record the heavy parts (every script instance's memory), which would
/// cost more than the tick itself to hash every tick at 1,000 scripted ships. A script whose
/// memory departs shows up in its fuel, faults or commands (cheap parts) as soon as it acts on
/// it, and in the heavy parts at the next checkpoint tick in any case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickRecord {
    pub tick: u64,
    pub inputs: Vec<WorldInput>,
    /// The quick state hash's total.
    pub hash: u64,
    /// Digests of the cheap parts, in header order.
    pub parts: Vec<u64>,
    /// Digests of the heavy parts at checkpoint ticks; empty at other ticks.
    pub heavy: Vec<u64>,
}

/// The hash parts of `sim` that differ from `record` (cheap parts always, heavy parts when the
/// record has them).
pub fn differing_parts(
    header: &ReplayHeader,
    record: &TickRecord,
    sim: &mut Simulation,
) -> Vec<String> {
    let quick = sim.quick_state_hash();
    let mut differing: Vec<String> = if quick.total == record.hash {
        Vec::new()
    } else {
        let mut names: Vec<String> = header
            .hash_parts
            .iter()
            .zip(&record.parts)
            .zip(&quick.parts)
            .filter(|((_, recorded), (_, now))| *recorded != now)
            .map(|((name, _), _)| name.clone())
            .collect();
        if names.is_empty() {
            // Same parts, another total: the set of parts itself changed.
            names.push("(hash layout)".into());
        }
        names
    };
    if !record.heavy.is_empty() {
        let full = sim.state_hash();
        for (name, recorded) in header.heavy_hash_parts.iter().zip(&record.heavy) {
            let now = full.parts.iter().find(|(n, _)| n == name).map(|(_, d)| *d);
            if now != Some(*recorded) {
                differing.push(name.clone());
            }
        }
    }
    differing
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Chunk {
    Header(ReplayHeader),
    /// An encoded [`WorldCheckpoint`] taken after `tick`.
    Keyframe {
        tick: u64,
        #[serde(with = "serde_bytes")]
        checkpoint: Vec<u8>,
    },
    Ticks(Vec<TickRecord>),
    End {
        last_tick: u64,
    },
}

/// What is wrong with a replay file, or with re-simulating it.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not an AstroBoids replay (it does not start with {REPLAY_MAGIC:?})")]
    NotAReplay { path: PathBuf },
    #[error(
        "{path}: replay format {found}; this build reads format {supported}: {}",
        format_hint(.found, .supported)
    )]
    Format {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path}: truncated: {what}")]
    Truncated { path: PathBuf, what: String },
    #[error("{path}: damaged: {what}")]
    Damaged { path: PathBuf, what: String },
    #[error(
        "{path}: recorded with simulation version {recorded} (astroboids {engine}); this build \
         simulates version {supported}, so it cannot reproduce it: re-record it"
    )]
    SimVersion {
        path: PathBuf,
        recorded: u32,
        supported: u32,
        engine: String,
    },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
}

/// How to proceed with a replay of another format.
fn format_hint(found: &u32, supported: &u32) -> &'static str {
    if found > supported {
        "it was recorded by a newer astroboids; read it with that release or a later one"
    } else {
        "read it with the astroboids release that recorded it, or record the run again with \
         this one"
    }
}
