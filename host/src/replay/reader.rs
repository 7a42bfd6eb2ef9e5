//! A replay file read into memory and checked, and the worlds it holds: restored at a
//! keyframe and stepped on with the recorded inputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use astroboids_engine::Simulation;
use astroboids_sim::checkpoint::{self, WorldCheckpoint};
use astroboids_sim::inputs::apply_input;
use astroboids_sim::{SIM_VERSION, SimOptions, UniverseConfig};

use crate::compress;

use super::writer::ReplayWriter;
use super::{
    Chunk, MAX_CHUNK_BYTES, REPLAY_FORMAT, REPLAY_MAGIC, ReplayError, ReplayHeader,
    TICKS_PER_CHUNK, TickRecord,
};

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
