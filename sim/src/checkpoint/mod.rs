//! World checkpoints: everything a world needs to continue exactly, as one serializable value.
//!
//! [`capture`] is taken between ticks; [`restore`] builds a new world from it that continues
//! with the same state hash, tick for tick, as the world it was taken from.
//!
//! Physics is the subtle part: rapier keeps caches (contact warm-starting, sleeping, its BVH)
//! that the ECS state does not hold. Every run drops them at checkpoint ticks (multiples of
//! `persistence.checkpoint_every_ticks`, see [`crate::physics`]), so a checkpoint captured at
//! such a tick restores into a world identical to the live one. Capturing at any other tick
//! drops the live world's caches too (so the two still agree), but then the live run departs
//! from an uninterrupted run that did not capture: persistence and replays capture only at
//! checkpoint ticks.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use astroboids_engine::{NetId, NetIdAllocator, Simulation, Tick};
use astroboids_scripting::MemoryImage;
use astroboids_scripting::budget::{FaultStreak, FuelBucket};

use crate::autopilot::Autopilot;
use crate::config::UniverseConfig;
use crate::scripts::{
    InstanceStatus, LogLine, ScriptFault, ScriptFaultKind, ScriptFaults, ScriptId, ScriptLog,
    ScriptRuntime, ShipScript,
};
use crate::sectors::{SectorDelta, Sectors};
use crate::ships::{
    Cargo, Energy, Heading, Hull, Owner, ShipCommand, ShipInputs, Velocity, spawn_ship_as,
};
use crate::space::{SectorCoord, SpacePos, Vec2};
use crate::{SimOptions, SimTotals, build_simulation_with};

mod capture;
mod layout;

pub use capture::{PendingCheckpoint, capture, capture_later, capture_ship};
pub use layout::WholeMemory;

/// Bump when the checkpoint layout or meaning changes (the encoding behind [`config_digest`]
/// included).
pub const CHECKPOINT_FORMAT: u32 = 5;

/// The last format that stored each script memory whole (every byte, zeros included). Later
/// formats store only its non-zero chunks ([`astroboids_scripting::MemoryImage`]); a checkpoint
/// of this format or older is read into the same values and written back in its own layout.
pub const WHOLE_MEMORY_FORMAT: u32 = 4;

/// Format 4's layout, but its `config_digest` hashed the configuration's derived `Debug` text. [`restore`] still reads it when that digest, computed by this build,
/// matches, and the next [`capture`] writes the current format.
pub const LEGACY_DEBUG_DIGEST_FORMAT: u32 = 3;

/// A whole world between two ticks. Serialized in the layout its `format` names (see the
/// `layout` module).
#[derive(Debug, Clone, PartialEq)]
pub struct WorldCheckpoint {
    pub format: u32,
    pub generator_version: u32,
    /// [`config_digest`] of the universe configuration it was taken with (it must be restored
    /// with the same one).
    pub config_digest: u64,
    pub universe_seed: u64,
    /// The last tick that ran.
    pub tick: u64,
    pub next_net_id: u64,
    /// In id order.
    pub ships: Vec<ShipRecord>,
    /// Loaded sectors and their idle ticks, in coordinate order.
    pub loaded_sectors: Vec<(i32, i32, u32)>,
    /// Remaining ore of every asteroid ever mined, in coordinate order.
    pub sector_deltas: Vec<SectorDeltaRecord>,
    pub totals: TotalsRecord,
    /// Inputs accepted for the next tick, in arrival order.
    pub pending_inputs: Vec<(u64, CommandRecord)>,
    /// Every script in the library: (id, module bytes), in id order.
    pub scripts: Vec<(u128, Vec<u8>)>,
    pub recent_faults: Vec<FaultRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorDeltaRecord {
    pub x: i32,
    pub y: i32,
    /// (asteroid index, ore left), in index order.
    pub remaining_ore: Vec<(u16, u32)>,
}

/// One ship; `M` is how its script's memory is stored ([`WholeMemory`] in old formats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipRecord<M = MemoryImage> {
    pub id: u64,
    pub sector: (i32, i32),
    pub local: (f32, f32),
    pub velocity: (f32, f32),
    pub heading: f32,
    pub hull: f32,
    pub energy: f32,
    pub cargo: u32,
    pub autopilot: bool,
    pub script: Option<ScriptRecord<M>>,
    /// The owning account, if any.
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptRecord<M = MemoryImage> {
    pub script: u128,
    /// 0 pending, 1 running, 2 failed.
    pub status: u8,
    pub fuel_stored: u64,
    /// Faults since the count was last cleared, and clean runs in a row since the last fault.
    pub faults: u32,
    pub clean_runs: u32,
    pub resume_at_tick: u64,
    pub fuel_used_last: u64,
    pub fuel_used_total: u64,
    pub faults_total: u64,
    pub log: Vec<(u64, String)>,
    pub log_dropped: u64,
    /// Memory and mutable globals of the running instance.
    pub memory: M,
    pub globals: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub thrust: f32,
    pub turn: f32,
    pub mine: bool,
    pub stop: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub ship: u64,
    pub tick: u64,
    /// 0 out of fuel, 1 trap, 2 start.
    pub kind: u8,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalsRecord {
    pub values: Vec<u64>,
}

/// Why a checkpoint cannot be restored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "checkpoint format {found}; this build reads format {supported} (and migrates formats \
         {LEGACY_DEBUG_DIGEST_FORMAT} and {WHOLE_MEMORY_FORMAT}): {}",
        format_hint(.found, .supported)
    )]
    Format { found: u32, supported: u32 },
    #[error(
        "checkpoint was taken with generator version {found}; the configuration has {configured}"
    )]
    GeneratorVersion { found: u32, configured: u32 },
    #[error("checkpoint was taken with a different universe configuration")]
    Config,
    /// A format-3 checkpoint whose configuration digest this build does not reproduce. That
    /// digest hashed Rust's derived `Debug` text, which a toolchain upgrade may change, so a
    /// mismatch cannot tell another configuration from another compiler.
    #[error(
        "checkpoint format {LEGACY_DEBUG_DIGEST_FORMAT} identifies its universe configuration by \
         a digest of Rust's Debug formatting, and under this build that digest does not match: \
         either the configuration differs or this build's Rust toolchain formats it differently. \
         To migrate the world, build this astroboids release with the Rust toolchain that built \
         the release that wrote the checkpoint, and run the world with that build past its next \
         checkpoint tick (a multiple of persistence.checkpoint_every_ticks = {every}): that \
         rewrites the checkpoint in format {CHECKPOINT_FORMAT}, which any build of this release \
         opens"
    )]
    LegacyConfig { every: u64 },
    #[error("checkpoint is damaged: {0}")]
    Damaged(String),
}

/// How to proceed with a checkpoint of an unreadable format.
fn format_hint(found: &u32, supported: &u32) -> &'static str {
    if found > supported {
        "it was written by a newer astroboids; open it with that release or a later one"
    } else {
        "no migration from it exists; open it with the astroboids release that wrote it"
    }
}

/// A digest of the configuration, so a checkpoint is never restored under other rules.
///
/// It is XXH3-64 of the configuration's postcard encoding: fields in declaration order,
/// integers as varints, floats as their IEEE-754 bits. That encoding is specified (postcard's
/// wire format is stable across its 1.x releases) and depends on no compiler's formatting, so
/// a stored world keeps opening after a toolchain upgrade. Reordering, adding or retyping a
/// configuration field changes it: that needs a [`CHECKPOINT_FORMAT`] bump (a test pins the
/// digest of the embedded configuration to catch it).
pub fn config_digest(config: &UniverseConfig) -> u64 {
    let bytes = postcard::to_stdvec(config).expect("the configuration is plain numbers");
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// The digest format-3 checkpoints carry: XXH3-64 of the derived `Debug` text. Only for
/// reading them; that text is not stable across Rust releases.
fn legacy_config_digest(config: &UniverseConfig) -> u64 {
    xxhash_rust::xxh3::xxh3_64(format!("{config:?}").as_bytes())
}

/// A world that continues from `checkpoint` exactly as the captured one does.
pub fn restore(
    config: UniverseConfig,
    checkpoint: &WorldCheckpoint,
    options: SimOptions,
) -> Result<Simulation, CheckpointError> {
    let readable = [
        CHECKPOINT_FORMAT,
        WHOLE_MEMORY_FORMAT,
        LEGACY_DEBUG_DIGEST_FORMAT,
    ];
    if !readable.contains(&checkpoint.format) {
        return Err(CheckpointError::Format {
            found: checkpoint.format,
            supported: CHECKPOINT_FORMAT,
        });
    }
    if checkpoint.generator_version != config.generator_version {
        return Err(CheckpointError::GeneratorVersion {
            found: checkpoint.generator_version,
            configured: config.generator_version,
        });
    }
    if checkpoint.format == LEGACY_DEBUG_DIGEST_FORMAT {
        // Format 3 has format 4's layout; only the digest's meaning differs. A match
        // computed by this build proves the same configuration, so the checkpoint is safe to
        // restore and the world's next checkpoint is written in the current format.
        if checkpoint.config_digest != legacy_config_digest(&config) {
            return Err(CheckpointError::LegacyConfig {
                every: config.persistence.checkpoint_every_ticks,
            });
        }
    } else if checkpoint.config_digest != config_digest(&config) {
        return Err(CheckpointError::Config);
    }
    let damaged = |what: String| CheckpointError::Damaged(what);
    let mut sim = build_simulation_with(config, checkpoint.universe_seed, options);
    let world = sim.world_mut();
    world.resource_mut::<Tick>().0 = checkpoint.tick;
    *world.resource_mut::<NetIdAllocator>() =
        NetIdAllocator::starting_at(NetId(checkpoint.next_net_id));
    *world.resource_mut::<SimTotals>() = SimTotals::from_values(&checkpoint.totals.values)
        .ok_or_else(|| damaged("the totals have the wrong length".into()))?;

    {
        let mut sectors = world.resource_mut::<Sectors>();
        for record in &checkpoint.sector_deltas {
            let delta = SectorDelta {
                remaining_ore: record.remaining_ore.iter().copied().collect(),
            };
            sectors.set_delta(SectorCoord::new(record.x, record.y), delta);
        }
        for &(x, y, idle_ticks) in &checkpoint.loaded_sectors {
            let coord = SectorCoord::new(x, y);
            sectors.load(coord);
            if let Some(sector) = sectors.loaded_mut().get_mut(&coord) {
                sector.idle_ticks = idle_ticks;
            }
        }
    }

    for (id, wasm) in &checkpoint.scripts {
        let added = crate::scripts::add_script(world, wasm)
            .map_err(|e| damaged(format!("script {id:032x}: {e}")))?;
        if added.0 != *id {
            return Err(damaged(format!(
                "script {id:032x} does not match its bytes"
            )));
        }
    }

    for ship in &checkpoint.ships {
        restore_ship(world, ship)?;
    }

    {
        let mut inputs = world.resource_mut::<ShipInputs>();
        for (ship, c) in &checkpoint.pending_inputs {
            inputs
                .submit(NetId(*ship), ShipCommand::from(c))
                .map_err(|e| damaged(format!("pending input: {e}")))?;
        }
    }
    world.resource_mut::<ScriptFaults>().recent = checkpoint
        .recent_faults
        .iter()
        .map(|f| ScriptFault {
            ship: NetId(f.ship),
            tick: f.tick,
            kind: match f.kind {
                0 => ScriptFaultKind::OutOfFuel,
                1 => ScriptFaultKind::Trap,
                2 => ScriptFaultKind::Start,
                _ => ScriptFaultKind::Suspended,
            },
            message: f.message.clone(),
        })
        .collect();
    Ok(sim)
}

/// Puts one recorded ship (script instance included) into `world` under its own id: a
/// checkpoint's ships, or a ship handed over by another shard.
pub fn restore_ship(world: &mut World, ship: &ShipRecord) -> Result<(), CheckpointError> {
    let damaged = |what: String| CheckpointError::Damaged(what);
    let id = NetId(ship.id);
    let pos = SpacePos::new(
        SectorCoord::new(ship.sector.0, ship.sector.1),
        Vec2::new(ship.local.0, ship.local.1),
    );
    spawn_ship_as(world, Some(id), pos, ship.heading)
        .map_err(|e| damaged(format!("ship {id}: {e}")))?;
    let entity = world
        .resource::<crate::ships::ShipIndex>()
        .entity(id)
        .expect("just spawned");
    let mut e = world.entity_mut(entity);
    e.insert((
        Velocity(Vec2::new(ship.velocity.0, ship.velocity.1)),
        Heading(ship.heading),
        Hull(ship.hull),
        Energy(ship.energy),
        Cargo { ore: ship.cargo },
    ));
    if let Some(owner) = &ship.owner {
        e.insert(Owner(owner.clone()));
    }
    if ship.autopilot {
        e.insert(Autopilot);
    }
    if let Some(s) = &ship.script {
        let status = match s.status {
            0 => InstanceStatus::Pending,
            1 => InstanceStatus::Running,
            2 => InstanceStatus::Failed,
            3 => InstanceStatus::Suspended,
            other => return Err(damaged(format!("ship {id}: script status {other}"))),
        };
        e.insert((
            ShipScript(ScriptId(s.script)),
            ScriptRuntime {
                status: status.clone(),
                fuel: FuelBucket {
                    stored: s.fuel_stored,
                },
                streak: FaultStreak {
                    faults: s.faults,
                    clean_runs: s.clean_runs,
                    resume_at_tick: s.resume_at_tick,
                },
                fuel_used_last: s.fuel_used_last,
                fuel_used_total: s.fuel_used_total,
                faults_total: s.faults_total,
            },
            ScriptLog {
                lines: s
                    .log
                    .iter()
                    .map(|(tick, text)| LogLine {
                        tick: *tick,
                        text: text.clone(),
                    })
                    .collect(),
                dropped: s.log_dropped,
            },
        ));
        if status == InstanceStatus::Running {
            let state = astroboids_scripting::InstanceState {
                memory: s.memory.clone(),
                globals: s.globals.clone(),
            };
            crate::scripts::restore_instance(world, id, ScriptId(s.script), state)
                .map_err(|e| damaged(format!("ship {id}: {e}")))?;
        }
    }
    Ok(())
}

/// Encodes a checkpoint (postcard).
pub fn encode(checkpoint: &WorldCheckpoint) -> Vec<u8> {
    postcard::to_stdvec(checkpoint).expect("a checkpoint always serializes")
}

/// As [`encode`], into `encoded` (emptied first; the same bytes): a writer that keeps one
/// buffer for every checkpoint has the kernel zero its pages once, not at every checkpoint.
pub fn encode_into(checkpoint: &WorldCheckpoint, encoded: &mut Vec<u8>) {
    postcard_into(checkpoint, encoded);
}

/// `value`'s postcard bytes in `buffer` (emptied first), reusing its allocation: for the
/// checkpoints and cluster pieces whose writers keep one buffer.
pub fn postcard_into<T: serde::Serialize>(value: &T, buffer: &mut Vec<u8>) {
    buffer.clear();
    let reused = std::mem::take(buffer);
    *buffer = postcard::to_extend(value, reused).expect("checkpoints are plain data");
}

/// Decodes a checkpoint written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<WorldCheckpoint, CheckpointError> {
    postcard::from_bytes(bytes).map_err(|e| CheckpointError::Damaged(e.to_string()))
}
