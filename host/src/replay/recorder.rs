//! Recording a running world into a replay file: header and starting keyframe, the inputs
//! and hashes of every tick, keyframes at checkpoint ticks, an end marker.

use std::path::Path;

use astroboids_engine::{HashCost, Simulation};
use astroboids_sim::checkpoint;
use astroboids_sim::inputs::WorldInput;
use astroboids_sim::physics::is_checkpoint_tick;
use astroboids_sim::scripts::ScriptHost;
use astroboids_sim::{SIM_VERSION, UniverseConfig};

use super::writer::ReplayWriter;
use super::{Chunk, ReplayError, ReplayHeader, TICKS_PER_CHUNK, TickRecord};

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
