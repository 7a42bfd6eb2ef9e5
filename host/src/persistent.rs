//! A world that nothing is lost from: the sim plus a [`WorldStore`] in a data directory.
//!
//! The protocol, which a crash at any moment must survive:
//! - An input is applied to the in-memory world first (so a refused input is never logged),
//!   then [`PersistentWorld::commit`] appends all inputs for the next tick to the write-ahead
//!   log in one transaction and flushes. Only then is an input acknowledged. A tick never runs
//!   with unlogged inputs: [`PersistentWorld::step`] commits first.
//! - After every checkpoint tick (`persistence.checkpoint_every_ticks`) the world is captured
//!   on the tick thread; a writer thread (see [`crate::checkpoint_writer`]) compresses and
//!   stores it with its "latest" marker in one transaction, flushes, and only then prunes older
//!   checkpoints and the inputs it covers, while the next ticks run.
//! - Opening restores the latest checkpoint (or the empty world), re-applies the logged inputs
//!   tick by tick, and re-runs the ticks after them up to the last tick the world is noted to
//!   have reached (noted every tick, durable with the next flush; a clean close flushes it).
//!   That is the same world, with the same state hash, that an uninterrupted run has at that
//!   tick: the re-run ticks had no other inputs, so they give what they gave before.
//!
//! A world written by an older build is migrated when it opens, never misread: a format-1
//! world's logged inputs are decoded in their old layout, its format-3 checkpoint is accepted
//! when its configuration digest still matches (see `astroboids_sim::checkpoint::restore`),
//! and the description then records where the old inputs end; the next checkpoint is written
//! in the current format and prunes them. Whatever cannot be migrated is refused with a
//! message saying how to proceed.
//!
//! The checkpoint schedule is a function of the tick only, and every run (persisted or not)
//! rebuilds its physics caches at those ticks, so a persisted run, a resumed one and a plain
//! `astroboids sim` with the same seed, configuration and inputs have the same hash.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use astroboids_engine::{Simulation, StateHash};
use astroboids_scripting::ArtifactDir;
use astroboids_sim::checkpoint::{self, CheckpointError, config_digest};
use astroboids_sim::config::{
    ConfigError, EMBEDDED_CONFIG_ORIGIN, EMBEDDED_CONFIG_TOML, migrate_stored_config,
};
use astroboids_sim::inputs::{InputOutcome, WorldInput, WorldInputError, apply_input};
use astroboids_sim::physics::is_checkpoint_tick;
use astroboids_sim::scripts::ScriptHost;
use astroboids_sim::{SimOptions, UniverseConfig, build_simulation_with};
use astroboids_storage::{StorageError, StoreLimits, WorldStore};

use crate::checkpoint_writer::{CheckpointWriter, StoredCheckpoint, WriterError};
use crate::compress;
use crate::world_info::{
    InfoError, WORLD_INFO_FORMAT, WORLD_INFO_FORMAT_V1, WorldInfo, decode_logged,
    migrate_world_info, read_world_info,
};

/// The universe seed of a world created without one.
pub const DEFAULT_SEED: u64 = 1;

/// Largest checkpoint we decompress (a bound against damaged data, far above real worlds).
const MAX_CHECKPOINT_BYTES: usize = 8 << 30;

/// What the caller asks for. On an existing world, anything given must match what the world
/// was created with; anything omitted is taken from it.
#[derive(Debug, Clone, Default)]
pub struct WorldRequest {
    pub seed: Option<u64>,
    /// (TOML text, where it came from for messages).
    pub config: Option<(String, String)>,
    /// Threads running player scripts (results do not depend on it).
    pub script_workers: usize,
}

/// Why a persistent world could not open or go on.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {what}")]
    Mismatch { path: PathBuf, what: String },
    #[error("{path}: the latest checkpoint cannot be restored: {error}")]
    Checkpoint {
        path: PathBuf,
        error: CheckpointError,
    },
    #[error("{path}: corrupt data: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("input refused: {0}")]
    Input(#[from] WorldInputError),
    #[error(transparent)]
    Checkpoints(#[from] WriterError),
}

/// How a world was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// The directory was empty and a new world was made.
    pub created: bool,
    pub universe_seed: u64,
    /// The checkpoint restored, if any.
    pub checkpoint_tick: Option<u64>,
    /// Logged inputs re-applied after it.
    pub replayed_inputs: usize,
    /// The last tick inputs were logged for, if any are in the log: a caller re-sending its
    /// inputs skips those up to this tick (they are already in the world).
    pub inputs_logged_through: Option<u64>,
    /// The world's tick now (the last tick that ran).
    pub tick: u64,
}

/// A running world that persists every input and checkpoint to its data directory.
pub struct PersistentWorld {
    path: PathBuf,
    store: Arc<WorldStore>,
    sim: Simulation,
    config: UniverseConfig,
    unlogged: Vec<WorldInput>,
    /// Encodes, compresses and stores checkpoints off the tick thread.
    writer: CheckpointWriter,
    last_checkpoint: Option<StoredCheckpoint>,
}

impl std::fmt::Debug for PersistentWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentWorld")
            .field("path", &self.path)
            .field("tick", &self.sim.tick())
            .finish_non_exhaustive()
    }
}

impl PersistentWorld {
    /// Opens the world in `dir`, creating it when `dir` is missing or empty, and resumes it
    /// (see the module docs).
    pub fn open(dir: &Path, request: WorldRequest) -> Result<(Self, OpenReport), HostError> {
        let path = dir.to_path_buf();
        let mismatch = |what: String| HostError::Mismatch {
            path: path.clone(),
            what,
        };
        let corrupt = |what: String| HostError::Corrupt {
            path: path.clone(),
            what,
        };
        let (config_text, config_origin) = request.config.clone().unwrap_or_else(|| {
            (
                EMBEDDED_CONFIG_TOML.to_string(),
                EMBEDDED_CONFIG_ORIGIN.to_string(),
            )
        });
        // Parse what was asked for before touching the directory: a bad config file must not
        // leave an empty world behind.
        let requested_config = UniverseConfig::from_toml_str(&config_text, &config_origin)?;
        let store = WorldStore::open(dir, store_limits(&requested_config))?;

        let (mut info, created) = match store.world_info()? {
            Some(bytes) => match read_world_info(&bytes) {
                Ok(info) => (info, false),
                Err(InfoError::Corrupt(what)) => return Err(corrupt(what)),
                Err(InfoError::Format(what)) => return Err(mismatch(what)),
            },
            None => {
                let info = WorldInfo {
                    format: WORLD_INFO_FORMAT,
                    universe_seed: request.seed.unwrap_or(DEFAULT_SEED),
                    config_toml: config_text.clone(),
                    created_by: env!("CARGO_PKG_VERSION").to_string(),
                    inputs_v1_before_seq: 0,
                };
                store.put_world_info(&postcard::to_allocvec(&info).expect("plain data"))?;
                store.flush()?;
                (info, true)
            }
        };
        if let Some(seed) = request.seed
            && seed != info.universe_seed
        {
            return Err(mismatch(format!(
                "this world has universe seed {}, not {seed} (omit --seed to resume it)",
                info.universe_seed
            )));
        }
        let stored_origin = format!("{} (the configuration stored in it)", path.display());
        let config = match UniverseConfig::from_toml_str(&info.config_toml, &stored_origin) {
            Ok(config) => config,
            // Written by an older build with a field since renamed: migrate the stored text
            // (same values, same digest) and keep the world.
            Err(refused) => {
                let Some(migrated) = migrate_stored_config(&info.config_toml) else {
                    return Err(refused.into());
                };
                let config = UniverseConfig::from_toml_str(&migrated, &stored_origin)?;
                info.config_toml = migrated;
                store.put_world_info(&postcard::to_allocvec(&info).expect("plain data"))?;
                store.flush()?;
                config
            }
        };
        if request.config.is_some() && config_digest(&config) != config_digest(&requested_config) {
            return Err(mismatch(format!(
                "this world was created with another universe configuration than {config_origin} \
                 (omit --config to resume it with its own)"
            )));
        }

        let artifacts = ArtifactDir::new(path.join("compiled-scripts")).ok();
        let options = SimOptions {
            script_workers: request.script_workers.max(1),
            script_artifacts: artifacts,
        };
        let (mut sim, checkpoint_tick) = match store.latest_checkpoint()? {
            Some((tick, packed)) => {
                let bytes = compress::unpack(&packed, MAX_CHECKPOINT_BYTES)
                    .map_err(|e| corrupt(format!("checkpoint {tick}: {e}")))?;
                let restore_error = |error| HostError::Checkpoint {
                    path: path.clone(),
                    error,
                };
                let cp = checkpoint::decode(&bytes).map_err(restore_error)?;
                if cp.universe_seed != info.universe_seed || cp.tick != tick {
                    return Err(corrupt(format!(
                        "checkpoint {tick} belongs to another world (seed {}, tick {})",
                        cp.universe_seed, cp.tick
                    )));
                }
                let sim =
                    checkpoint::restore(config.clone(), &cp, options).map_err(restore_error)?;
                (sim, Some(tick))
            }
            None => (
                build_simulation_with(config.clone(), info.universe_seed, options),
                None,
            ),
        };

        // Every checkpoint tick is captured from here on.
        sim.world()
            .resource::<ScriptHost>()
            .take_states_at_checkpoint_ticks(true);
        let logged = store.inputs_from(sim.tick() + 1)?;
        let replayed_inputs = logged.len();
        let inputs_logged_through = logged.last().map(|entry| entry.tick);
        for entry in logged {
            let input = decode_logged(&entry.payload, entry.seq, &info).map_err(|e| {
                corrupt(format!(
                    "logged input {} (tick {}) cannot be read: {e}",
                    entry.seq, entry.tick
                ))
            })?;
            while sim.tick() + 1 < entry.tick {
                sim.step();
                write_checkpoint_if_due(&store, &config, &mut sim)?;
            }
            apply_input(sim.world_mut(), &input).map_err(|e| {
                corrupt(format!(
                    "logged input {} ({} for tick {}) no longer applies: {e}",
                    entry.seq,
                    input.kind(),
                    entry.tick
                ))
            })?;
        }
        // Ticks after the last logged inputs had none: re-run them up to where the world got.
        let reached = store.tick_reached()?.unwrap_or(0);
        while sim.tick() < reached {
            sim.step();
            write_checkpoint_if_due(&store, &config, &mut sim)?;
        }
        if info.format == WORLD_INFO_FORMAT_V1 {
            migrate_world_info(&store, &info)?;
        }
        let store = Arc::new(store);
        let writer = CheckpointWriter::start(store.clone())?;
        let world = Self {
            path,
            store,
            sim,
            config,
            unlogged: Vec::new(),
            writer,
            last_checkpoint: None,
        };
        let report = OpenReport {
            created,
            universe_seed: info.universe_seed,
            checkpoint_tick,
            replayed_inputs,
            inputs_logged_through,
            tick: world.sim.tick(),
        };
        Ok((world, report))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn tick(&self) -> u64 {
        self.sim.tick()
    }

    /// The world's store (scripts, accounts, sessions live beside the world).
    pub fn store(&self) -> &WorldStore {
        &self.store
    }

    pub fn config(&self) -> &UniverseConfig {
        &self.config
    }

    /// The running world, read-only: changes go through [`Self::submit`].
    pub fn sim(&self) -> &Simulation {
        &self.sim
    }

    /// The running world, for observers that need `&mut` (hashing, recording at checkpoint
    /// ticks). Changing the world through it bypasses the log: use [`Self::submit`].
    pub fn sim_mut(&mut self) -> &mut Simulation {
        &mut self.sim
    }

    pub fn state_hash(&mut self) -> StateHash {
        self.sim.state_hash()
    }

    /// Compressed size of the last checkpoint known to be stored (checkpoints are stored by
    /// a writer thread: see [`Self::flush_checkpoints`]).
    pub fn last_checkpoint_bytes(&self) -> Option<usize> {
        self.last_checkpoint.map(|c| c.bytes)
    }

    /// The last checkpoint known to be stored.
    pub fn last_checkpoint(&self) -> Option<StoredCheckpoint> {
        self.last_checkpoint
    }

    /// Waits until the checkpoint being written (if any) is stored and flushed.
    pub fn flush_checkpoints(&mut self) -> Result<(), HostError> {
        if let Some(stored) = self.writer.wait()? {
            self.last_checkpoint = Some(stored);
        }
        Ok(())
    }

    /// Applies `input` for the next tick. It is acknowledged (durable) after [`Self::commit`];
    /// a refused input changes nothing and is not logged.
    pub fn submit(&mut self, input: WorldInput) -> Result<InputOutcome, HostError> {
        let outcome = apply_input(self.sim.world_mut(), &input)?;
        self.unlogged.push(input);
        Ok(outcome)
    }

    /// Logs every submitted input for the next tick and flushes; returns that tick, or `None`
    /// when there was nothing to log. Inputs are acknowledged once this returns.
    pub fn commit(&mut self) -> Result<Option<u64>, HostError> {
        if self.unlogged.is_empty() {
            return Ok(None);
        }
        let tick = self.sim.tick() + 1;
        let payloads: Vec<Vec<u8>> = self
            .unlogged
            .iter()
            .map(|i| postcard::to_allocvec(i).expect("plain data"))
            .collect();
        self.store.append_inputs(tick, &payloads)?;
        self.store.flush()?;
        self.unlogged.clear();
        Ok(Some(tick))
    }

    /// Runs one tick (committing pending inputs first) and, at a checkpoint tick, captures
    /// the world and hands it to the writer thread, which stores it while the next ticks run.
    /// Returns whether a checkpoint was taken. A failure to store the previous checkpoint is
    /// returned by the step after it.
    pub fn step(&mut self) -> Result<bool, HostError> {
        self.commit()?;
        if let Some(stored) = self.writer.poll()? {
            self.last_checkpoint = Some(stored);
        }
        self.sim.step();
        self.store.note_tick_reached(self.sim.tick())?;
        let tick = self.sim.tick();
        if !is_checkpoint_tick(&self.config, tick) {
            return Ok(false);
        }
        let captured = checkpoint::capture_later(&mut self.sim);
        if let Some(stored) = self.writer.submit(tick, captured)? {
            self.last_checkpoint = Some(stored);
        }
        Ok(true)
    }

    /// Makes everything durable (a clean shutdown): the logged inputs and the checkpoint being
    /// written.
    pub fn close(mut self) -> Result<(), HostError> {
        self.commit()?;
        self.flush_checkpoints()?;
        self.store.flush()?;
        Ok(())
    }
}

/// While a world is opened (re-running logged ticks, before any player waits on it): at a
/// checkpoint tick, captures, compresses and stores the world on this thread, then prunes what
/// the checkpoint covers.
fn write_checkpoint_if_due(
    store: &WorldStore,
    config: &UniverseConfig,
    sim: &mut Simulation,
) -> Result<Option<usize>, HostError> {
    let tick = sim.tick();
    if !is_checkpoint_tick(config, tick) {
        return Ok(None);
    }
    let packed = compress::pack(
        &checkpoint::encode(&checkpoint::capture(sim)),
        compress::CHECKPOINT_LEVEL,
    );
    store.put_checkpoint(tick, &packed)?;
    store.flush()?;
    // Only once the checkpoint is durable may what it covers go.
    store.prune_through(tick)?;
    Ok(Some(packed.len()))
}

/// Store limits from the configuration: an input may carry a whole script module.
fn store_limits(config: &UniverseConfig) -> StoreLimits {
    let script = config.scripts.max_module_bytes as usize;
    StoreLimits {
        max_script_bytes: script,
        max_input_bytes: script + 4096,
        ..StoreLimits::default()
    }
}
