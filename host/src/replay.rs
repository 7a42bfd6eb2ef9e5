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

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use astroboids_engine::{HashCost, Simulation};
use astroboids_sim::checkpoint::{self, WorldCheckpoint};
use astroboids_sim::inputs::{WorldInput, apply_input};
use astroboids_sim::physics::is_checkpoint_tick;
use astroboids_sim::scripts::ScriptHost;
use astroboids_sim::{SIM_VERSION, SimOptions, UniverseConfig};

use crate::compress;

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

// --- writing -------------------------------------------------------------------------------

/// Appends chunks to a temporary file; [`ReplayWriter::finish`] renames it over the target.
struct ReplayWriter {
    path: PathBuf,
    temp: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    bytes: u64,
}

impl ReplayWriter {
    fn create(path: &Path) -> Result<Self, ReplayError> {
        let io = |error| ReplayError::Io {
            path: path.to_path_buf(),
            error,
        };
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        let temp = path.with_file_name(name);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&temp).map_err(io)?);
        file.write_all(REPLAY_MAGIC).map_err(io)?;
        file.write_all(&REPLAY_FORMAT.to_le_bytes()).map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            temp,
            file,
            bytes: 12,
        })
    }

    fn io(&self, error: std::io::Error) -> ReplayError {
        ReplayError::Io {
            path: self.temp.clone(),
            error,
        }
    }

    /// Appends `chunk`; returns the bytes it took in the file.
    fn write(&mut self, chunk: &Chunk) -> Result<u64, ReplayError> {
        let payload = compress::pack(
            &postcard::to_allocvec(chunk).expect("plain data"),
            compress::REPLAY_LEVEL,
        );
        let len = u32::try_from(payload.len()).map_err(|_| ReplayError::Invalid {
            path: self.path.clone(),
            what: format!("a chunk of {} bytes is too large", payload.len()),
        })?;
        let mut frame = Vec::with_capacity(12);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&xxh3_64(&payload).to_le_bytes());
        self.file
            .write_all(&frame)
            .and_then(|()| self.file.write_all(&payload))
            .map_err(|e| self.io(e))?;
        self.bytes += 12 + payload.len() as u64;
        Ok(12 + payload.len() as u64)
    }

    fn finish(mut self) -> Result<u64, ReplayError> {
        self.file.flush().map_err(|e| self.io(e))?;
        self.file.get_ref().sync_all().map_err(|e| self.io(e))?;
        std::fs::rename(&self.temp, &self.path).map_err(|error| ReplayError::Io {
            path: self.path.clone(),
            error,
        })?;
        Ok(self.bytes)
    }
}

/// Sizes of a finished recording.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordingStats {
    pub ticks: u64,
    pub keyframes: u64,
    pub file_bytes: u64,
    /// Postcard bytes of all inputs (before compression).
    pub input_bytes: u64,
    /// File bytes of the per-tick records (inputs and hashes, compressed).
    pub tick_record_bytes: u64,
    /// File bytes of the keyframes (compressed), the start included.
    pub keyframe_bytes: u64,
}

/// Records a running world: call [`Recorder::before_tick`] with the inputs applied before each
/// tick and [`Recorder::after_tick`] after it.
pub struct Recorder {
    writer: ReplayWriter,
    heavy_names: Vec<&'static str>,
    config: UniverseConfig,
    keyframe_every_checkpoints: u64,
    checkpoints_seen: u64,
    pending_inputs: Vec<WorldInput>,
    ticks: Vec<TickRecord>,
    stats: RecordingStats,
    last_keyframe: u64,
}

impl Recorder {
    /// Starts recording `sim`, which must be between ticks at a checkpoint tick (or tick 0):
    /// capturing anywhere else would change the run (see `astroboids_sim::checkpoint`).
    pub fn start(
        sim: &mut Simulation,
        path: &Path,
        recorded_by: &str,
        keyframe_every_checkpoints: u64,
    ) -> Result<Self, ReplayError> {
        let config = sim.world().resource::<UniverseConfig>().clone();
        let start_tick = sim.tick();
        if !is_checkpoint_tick(&config, start_tick) {
            return Err(ReplayError::Invalid {
                path: path.to_path_buf(),
                what: format!(
                    "a recording starts at a checkpoint tick; tick {start_tick} is not one"
                ),
            });
        }
        // Every checkpoint tick from here on asks for the full hash, and some for a keyframe.
        sim.world()
            .resource::<ScriptHost>()
            .take_states_at_checkpoint_ticks(true);
        let hash = sim.quick_state_hash();
        let heavy_names = sim
            .world()
            .resource::<astroboids_engine::hash::StateHashRegistry>()
            .names(HashCost::Heavy);
        let start = checkpoint::capture(sim);
        let header = ReplayHeader {
            engine_version: env!("CARGO_PKG_VERSION").to_string(),
            sim_version: SIM_VERSION,
            generator_version: config.generator_version,
            checkpoint_format: checkpoint::CHECKPOINT_FORMAT,
            universe_seed: start.universe_seed,
            config_toml: config.to_toml_string(),
            start_tick,
            hash_parts: hash.parts.iter().map(|(n, _)| n.to_string()).collect(),
            heavy_hash_parts: heavy_names.iter().map(|n| n.to_string()).collect(),
            keyframe_every_checkpoints: keyframe_every_checkpoints.max(1),
            recorded_by: recorded_by.to_string(),
        };
        let mut writer = ReplayWriter::create(path)?;
        writer.write(&Chunk::Header(header))?;
        let keyframe_bytes = writer.write(&Chunk::Keyframe {
            tick: start_tick,
            checkpoint: checkpoint::encode(&start),
        })?;
        Ok(Self {
            writer,
            heavy_names,
            config,
            keyframe_every_checkpoints: keyframe_every_checkpoints.max(1),
            checkpoints_seen: 0,
            pending_inputs: Vec::new(),
            ticks: Vec::new(),
            stats: RecordingStats {
                keyframes: 1,
                keyframe_bytes,
                ..RecordingStats::default()
            },
            last_keyframe: start_tick,
        })
    }

    /// Notes an input applied (accepted) before the next tick.
    pub fn input(&mut self, input: &WorldInput) {
        self.stats.input_bytes += postcard::to_allocvec(input).map_or(0, |b| b.len() as u64);
        self.pending_inputs.push(input.clone());
    }

    /// Records the tick that just ran.
    pub fn after_tick(&mut self, sim: &mut Simulation) -> Result<(), ReplayError> {
        let checkpoint_tick = is_checkpoint_tick(&self.config, sim.tick());
        let heavy = if checkpoint_tick {
            let full = sim.state_hash();
            self.heavy_names
                .iter()
                .map(|name| {
                    full.parts
                        .iter()
                        .find(|(n, _)| n == name)
                        .map_or(0, |(_, d)| *d)
                })
                .collect()
        } else {
            Vec::new()
        };
        let hash = sim.quick_state_hash();
        self.ticks.push(TickRecord {
            tick: sim.tick(),
            inputs: std::mem::take(&mut self.pending_inputs),
            hash: hash.total,
            parts: hash.parts.iter().map(|(_, d)| *d).collect(),
            heavy,
        });
        self.stats.ticks += 1;
        if self.ticks.len() >= TICKS_PER_CHUNK {
            self.flush_ticks()?;
        }
        if checkpoint_tick {
            self.checkpoints_seen += 1;
            if self
                .checkpoints_seen
                .is_multiple_of(self.keyframe_every_checkpoints)
            {
                self.keyframe(sim)?;
            }
        }
        Ok(())
    }

    fn flush_ticks(&mut self) -> Result<(), ReplayError> {
        if !self.ticks.is_empty() {
            let ticks = std::mem::take(&mut self.ticks);
            self.stats.tick_record_bytes += self.writer.write(&Chunk::Ticks(ticks))?;
        }
        Ok(())
    }

    fn keyframe(&mut self, sim: &mut Simulation) -> Result<(), ReplayError> {
        self.flush_ticks()?;
        self.stats.keyframe_bytes += self.writer.write(&Chunk::Keyframe {
            tick: sim.tick(),
            checkpoint: checkpoint::encode(&checkpoint::capture(sim)),
        })?;
        self.stats.keyframes += 1;
        self.last_keyframe = sim.tick();
        Ok(())
    }

    /// Ends the recording with a keyframe of the final world (capturing it changes the
    /// world's physics caches: stop running `sim` afterwards, or finish at a checkpoint tick).
    pub fn finish(mut self, sim: &mut Simulation) -> Result<RecordingStats, ReplayError> {
        if self.last_keyframe != sim.tick() {
            self.keyframe(sim)?;
        }
        self.flush_ticks()?;
        self.writer.write(&Chunk::End {
            last_tick: sim.tick(),
        })?;
        self.stats.file_bytes = self.writer.finish()?;
        Ok(self.stats)
    }
}

// --- reading -------------------------------------------------------------------------------

/// A replay read into memory and checked: every chunk's checksum, the order of chunks, ticks
/// contiguous from the start, an end marker.
#[derive(Debug, Clone)]
pub struct Replay {
    pub path: PathBuf,
    pub header: ReplayHeader,
    pub config: UniverseConfig,
    /// Encoded checkpoints by tick; the first is the start.
    keyframes: BTreeMap<u64, Vec<u8>>,
    /// Ticks `start_tick + 1 ..= last_tick`, in order.
    pub ticks: Vec<TickRecord>,
    pub file_bytes: u64,
}

impl Replay {
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        let bytes = std::fs::read(path).map_err(|error| ReplayError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(path, &bytes)
    }

    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, ReplayError> {
        let path = path.to_path_buf();
        let truncated = |what: String| ReplayError::Truncated {
            path: path.clone(),
            what,
        };
        let damaged = |what: String| ReplayError::Damaged {
            path: path.clone(),
            what,
        };
        let invalid = |what: String| ReplayError::Invalid {
            path: path.clone(),
            what,
        };
        if bytes.len() < 12 || &bytes[..8] != REPLAY_MAGIC {
            return Err(ReplayError::NotAReplay { path });
        }
        let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if format != REPLAY_FORMAT {
            return Err(ReplayError::Format {
                path,
                found: format,
                supported: REPLAY_FORMAT,
            });
        }
        let mut at = 12usize;
        let mut chunks = Vec::new();
        let mut ended = false;
        while at < bytes.len() {
            let index = chunks.len();
            if ended {
                return Err(damaged(format!(
                    "{} bytes after the end marker (at byte {at})",
                    bytes.len() - at
                )));
            }
            if bytes.len() - at < 12 {
                return Err(truncated(format!(
                    "chunk {index} header cut off at byte {at}"
                )));
            }
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
            let sum = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().expect("8"));
            let start = at + 12;
            if bytes.len() - start < len {
                return Err(truncated(format!(
                    "chunk {index} (at byte {at}) needs {len} bytes, {} remain",
                    bytes.len() - start
                )));
            }
            let payload = &bytes[start..start + len];
            if xxh3_64(payload) != sum {
                return Err(damaged(format!(
                    "chunk {index} (bytes {at}..{}) fails its checksum: the file was modified \
                     or corrupted",
                    start + len
                )));
            }
            let raw = compress::unpack(payload, MAX_CHUNK_BYTES)
                .map_err(|e| damaged(format!("chunk {index}: {e}")))?;
            let chunk: Chunk = postcard::from_bytes(&raw)
                .map_err(|e| damaged(format!("chunk {index} cannot be decoded: {e}")))?;
            ended = matches!(chunk, Chunk::End { .. });
            chunks.push(chunk);
            at = start + len;
        }

        let mut chunks = chunks.into_iter();
        let header = match chunks.next() {
            Some(Chunk::Header(h)) => h,
            Some(_) => return Err(damaged("the first chunk is not the header".into())),
            None => return Err(truncated("no header".into())),
        };
        if header.sim_version != SIM_VERSION {
            return Err(ReplayError::SimVersion {
                path,
                recorded: header.sim_version,
                supported: SIM_VERSION,
                engine: header.engine_version,
            });
        }
        let config = UniverseConfig::from_toml_str(
            &header.config_toml,
            &format!("{} (its recorded configuration)", path.display()),
        )
        .map_err(|e| invalid(e.to_string()))?;
        let mut keyframes = BTreeMap::new();
        let mut ticks: Vec<TickRecord> = Vec::new();
        let mut last_tick = None;
        for chunk in chunks {
            match chunk {
                Chunk::Header(_) => return Err(damaged("a second header".into())),
                Chunk::Keyframe { tick, checkpoint } => {
                    let expected = header.start_tick + ticks.len() as u64;
                    if tick != expected {
                        return Err(damaged(format!(
                            "a keyframe for tick {tick} where tick {expected} was expected"
                        )));
                    }
                    keyframes.insert(tick, checkpoint);
                }
                Chunk::Ticks(records) => {
                    for record in records {
                        let expected = header.start_tick + ticks.len() as u64 + 1;
                        if record.tick != expected {
                            return Err(damaged(format!(
                                "tick {} recorded where tick {expected} was expected",
                                record.tick
                            )));
                        }
                        if !record.heavy.is_empty()
                            && record.heavy.len() != header.heavy_hash_parts.len()
                        {
                            return Err(damaged(format!(
                                "tick {} has {} heavy hash parts; the header names {}",
                                record.tick,
                                record.heavy.len(),
                                header.heavy_hash_parts.len()
                            )));
                        }
                        if record.parts.len() != header.hash_parts.len() {
                            return Err(damaged(format!(
                                "tick {} has {} hash parts; the header names {}",
                                record.tick,
                                record.parts.len(),
                                header.hash_parts.len()
                            )));
                        }
                        ticks.push(record);
                    }
                }
                Chunk::End { last_tick: t } => last_tick = Some(t),
            }
        }
        if !keyframes.contains_key(&header.start_tick) {
            return Err(damaged(format!(
                "no starting keyframe at tick {}",
                header.start_tick
            )));
        }
        let recorded_last = header.start_tick + ticks.len() as u64;
        match last_tick {
            None => {
                return Err(truncated(format!(
                    "the recording did not finish (no end marker; ticks {}..={} are present)",
                    header.start_tick + 1,
                    recorded_last
                )));
            }
            Some(t) if t != recorded_last => {
                return Err(damaged(format!(
                    "the end marker says tick {t}, the ticks end at {recorded_last}"
                )));
            }
            Some(_) => {}
        }
        Ok(Self {
            path,
            header,
            config,
            keyframes,
            ticks,
            file_bytes: bytes.len() as u64,
        })
    }

    /// Writes this replay (possibly edited) to `path`, in the same layout a recording has.
    pub fn save(&self, path: &Path) -> Result<u64, ReplayError> {
        let mut writer = ReplayWriter::create(path)?;
        writer.write(&Chunk::Header(self.header.clone()))?;
        let keyframe = |tick: u64| Chunk::Keyframe {
            tick,
            checkpoint: self.keyframes[&tick].clone(),
        };
        writer.write(&keyframe(self.start_tick()))?;
        let mut batch = Vec::new();
        for record in &self.ticks {
            batch.push(record.clone());
            let at_keyframe = self.keyframes.contains_key(&record.tick);
            if at_keyframe || batch.len() >= TICKS_PER_CHUNK {
                writer.write(&Chunk::Ticks(std::mem::take(&mut batch)))?;
            }
            if at_keyframe {
                writer.write(&keyframe(record.tick))?;
            }
        }
        if !batch.is_empty() {
            writer.write(&Chunk::Ticks(batch))?;
        }
        writer.write(&Chunk::End {
            last_tick: self.last_tick(),
        })?;
        writer.finish()
    }

    pub fn start_tick(&self) -> u64 {
        self.header.start_tick
    }

    pub fn last_tick(&self) -> u64 {
        self.header.start_tick + self.ticks.len() as u64
    }

    pub fn keyframe_ticks(&self) -> impl Iterator<Item = u64> + '_ {
        self.keyframes.keys().copied()
    }

    /// The recorded tick `tick` (`start_tick < tick <= last_tick`).
    pub fn record(&self, tick: u64) -> Option<&TickRecord> {
        let index = tick.checked_sub(self.header.start_tick + 1)?;
        self.ticks.get(usize::try_from(index).ok()?)
    }

    /// The recorded keyframe at `tick`, decoded.
    pub fn keyframe(&self, tick: u64) -> Result<Option<WorldCheckpoint>, ReplayError> {
        self.keyframes
            .get(&tick)
            .map(|bytes| {
                checkpoint::decode(bytes).map_err(|e| ReplayError::Damaged {
                    path: self.path.clone(),
                    what: format!("keyframe {tick}: {e}"),
                })
            })
            .transpose()
    }

    /// The recorded world after tick `tick`, restored from the nearest keyframe at or before
    /// it and re-simulated from there.
    pub fn world_at(&self, tick: u64, options: SimOptions) -> Result<Simulation, ReplayError> {
        let mut sim = self.restore_near(tick, options)?;
        while sim.tick() < tick {
            self.step(&mut sim)?;
        }
        Ok(sim)
    }

    /// The world at the nearest keyframe at or before `tick` (run it on with [`Self::step`]).
    pub fn restore_near(&self, tick: u64, options: SimOptions) -> Result<Simulation, ReplayError> {
        if tick < self.start_tick() || tick > self.last_tick() {
            return Err(self.invalid(format!(
                "tick {tick} is outside the recording (ticks {}..={})",
                self.start_tick(),
                self.last_tick()
            )));
        }
        let (&from, _) = self
            .keyframes
            .range(..=tick)
            .next_back()
            .expect("the start keyframe is at start_tick <= tick");
        let cp = self.keyframe(from)?.expect("listed");
        checkpoint::restore(self.config.clone(), &cp, options)
            .map_err(|e| self.invalid(format!("keyframe {from}: {e}")))
    }

    /// Applies the next tick's recorded inputs and runs it.
    pub fn step(&self, sim: &mut Simulation) -> Result<(), ReplayError> {
        self.apply_inputs(sim)?;
        sim.step();
        Ok(())
    }

    /// Applies the recorded inputs of the next tick (`sim.tick() + 1`), without running it.
    pub fn apply_inputs(&self, sim: &mut Simulation) -> Result<(), ReplayError> {
        let next = sim.tick() + 1;
        let record = self
            .record(next)
            .ok_or_else(|| self.invalid(format!("tick {next} is not in the recording")))?;
        for input in &record.inputs {
            apply_input(sim.world_mut(), input).map_err(|e| {
                self.invalid(format!(
                    "the recorded {} input for tick {next} is refused on replay: {e}",
                    input.kind()
                ))
            })?;
        }
        Ok(())
    }

    pub(crate) fn invalid(&self, what: String) -> ReplayError {
        ReplayError::Invalid {
            path: self.path.clone(),
            what,
        }
    }
}

// --- verifying -----------------------------------------------------------------------------

/// Where a re-simulation first departed from the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    pub tick: u64,
    /// Hash parts that differ at that tick.
    pub parts: Vec<String>,
    /// The keyframe the worlds were compared at (the first at or after `tick`), if any.
    pub compared_at: Option<u64>,
    /// Entities and components that differ there, one line each.
    pub differences: Vec<String>,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    pub ticks_checked: u64,
    pub divergence: Option<Divergence>,
}

/// Re-simulates the whole recording from its start and compares every tick's hash. On the
/// first mismatch, runs on to the next keyframe and lists what differs there.
pub fn verify(
    replay: &Replay,
    options: SimOptions,
    mut progress: impl FnMut(u64),
) -> Result<VerifyReport, ReplayError> {
    let mut sim = replay.world_at(replay.start_tick(), options)?;
    let mut checked = 0;
    while sim.tick() < replay.last_tick() {
        replay.step(&mut sim)?;
        let tick = sim.tick();
        let record = replay.record(tick).expect("in range");
        checked += 1;
        progress(tick);
        let parts = differing_parts(&replay.header, record, &mut sim);
        if !parts.is_empty() {
            let compared_at = replay.keyframe_ticks().find(|&k| k >= tick);
            let mut differences = Vec::new();
            if let Some(at) = compared_at {
                while sim.tick() < at {
                    replay.step(&mut sim)?;
                }
                let recorded = replay.keyframe(at)?.expect("listed");
                differences = diff_worlds(&recorded, &checkpoint::capture(&mut sim));
            }
            return Ok(VerifyReport {
                ticks_checked: checked,
                divergence: Some(Divergence {
                    tick,
                    parts,
                    compared_at,
                    differences,
                }),
            });
        }
    }
    Ok(VerifyReport {
        ticks_checked: checked,
        divergence: None,
    })
}

/// At most this many differences are listed.
const MAX_DIFFERENCES: usize = 20;

/// What differs between a recorded world and a re-simulated one, entity by entity and
/// component by component ("recorded -> now").
pub fn diff_worlds(recorded: &WorldCheckpoint, now: &WorldCheckpoint) -> Vec<String> {
    let mut out = Vec::new();
    let ships_now: BTreeMap<u64, _> = now.ships.iter().map(|s| (s.id, s)).collect();
    let ships_then: BTreeMap<u64, _> = recorded.ships.iter().map(|s| (s.id, s)).collect();
    for (id, then) in &ships_then {
        let Some(now) = ships_now.get(id) else {
            out.push(format!("ship {id}: recorded alive, now missing"));
            continue;
        };
        let mut field = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("ship {id} {name}: {a} -> {b}"));
            }
        };
        field(
            "position",
            format!("{:?} {:?}", then.sector, then.local),
            format!("{:?} {:?}", now.sector, now.local),
        );
        field(
            "velocity",
            format!("{:?}", then.velocity),
            format!("{:?}", now.velocity),
        );
        field(
            "heading",
            format!("{}", then.heading),
            format!("{}", now.heading),
        );
        field("hull", format!("{}", then.hull), format!("{}", now.hull));
        field(
            "energy",
            format!("{}", then.energy),
            format!("{}", now.energy),
        );
        field("cargo", format!("{}", then.cargo), format!("{}", now.cargo));
        field(
            "autopilot",
            format!("{}", then.autopilot),
            format!("{}", now.autopilot),
        );
        match (&then.script, &now.script) {
            (Some(a), Some(b)) => {
                field(
                    "script",
                    format!("{:032x}", a.script),
                    format!("{:032x}", b.script),
                );
                field(
                    "script fuel used",
                    format!("{}", a.fuel_used_total),
                    format!("{}", b.fuel_used_total),
                );
                field(
                    "script faults",
                    format!("{}", a.faults_total),
                    format!("{}", b.faults_total),
                );
                field(
                    "script memory",
                    format!("digest {:016x}", xxh3_64(&a.memory.to_vec())),
                    format!("digest {:016x}", xxh3_64(&b.memory.to_vec())),
                );
                field(
                    "script globals",
                    format!("{:?}", a.globals),
                    format!("{:?}", b.globals),
                );
                field("script log", format!("{:?}", a.log), format!("{:?}", b.log));
            }
            (a, b) if a.is_some() != b.is_some() => field(
                "script",
                format!("{}", a.is_some()),
                format!("{}", b.is_some()),
            ),
            _ => {}
        }
    }
    for id in ships_now.keys().filter(|id| !ships_then.contains_key(id)) {
        out.push(format!("ship {id}: recorded missing, now alive"));
    }
    let mut world = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name}: {a} -> {b}"));
        }
    };
    world(
        "totals",
        format!("{:?}", recorded.totals.values),
        format!("{:?}", now.totals.values),
    );
    world(
        "loaded sectors",
        format!("{:?}", recorded.loaded_sectors),
        format!("{:?}", now.loaded_sectors),
    );
    world(
        "mined asteroids",
        format!("{:?}", recorded.sector_deltas),
        format!("{:?}", now.sector_deltas),
    );
    world(
        "next ship id",
        recorded.next_net_id.to_string(),
        now.next_net_id.to_string(),
    );
    if out.len() > MAX_DIFFERENCES {
        let more = out.len() - MAX_DIFFERENCES;
        out.truncate(MAX_DIFFERENCES);
        out.push(format!("... and {more} more"));
    }
    out
}
