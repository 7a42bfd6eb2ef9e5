//! A data directory's world description ([`WorldInfo`]) and the layouts of data older builds
//! wrote, read for migration: format-1 descriptions and their logged inputs ([`InputV1`]).

use serde::{Deserialize, Serialize};

use astroboids_sim::checkpoint::CommandRecord;
use astroboids_sim::inputs::WorldInput;
use astroboids_storage::{StorageError, WorldStore};

/// Bump when [`WorldInfo`] or the meaning of the stored payloads changes, and keep reading
/// the previous format (or refuse it with a message saying how to proceed).
///
/// 2: `SpawnShip` inputs carry their owner, and [`WorldInfo::inputs_v1_before_seq`] marks
/// which logged inputs still have the format-1 layout.
pub(crate) const WORLD_INFO_FORMAT: u32 = 2;

/// Worlds whose logged inputs all have the [`InputV1`] layout. Opening one migrates it (see
/// [`PersistentWorld::open`]).
pub(crate) const WORLD_INFO_FORMAT_V1: u32 = 1;

/// What a data directory's world is, written once when it is created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorldInfo {
    pub(crate) format: u32,
    pub(crate) universe_seed: u64,
    pub(crate) config_toml: String,
    /// The astroboids version that created it (for messages).
    pub(crate) created_by: String,
    /// Logged inputs with a lower sequence number were written by a format-1 build and are
    /// read as [`InputV1`]; they last until the next checkpoint prunes them.
    pub(crate) inputs_v1_before_seq: u64,
}

/// [`WorldInfo`] as format-1 builds wrote it.
#[derive(Debug, Clone, Deserialize)]
struct WorldInfoV1 {
    format: u32,
    universe_seed: u64,
    config_toml: String,
    created_by: String,
}

/// The layout of logged inputs in format-1 worlds, frozen here: it must keep matching what
/// those builds wrote, whatever later happens to [`WorldInput`]. Variant order is part of it.
#[derive(Debug, Clone, Deserialize)]
enum InputV1 {
    Command {
        ship: u64,
        command: CommandV1,
    },
    SpawnShip {
        sector: (i32, i32),
        local: (f32, f32),
        heading: f32,
        autopilot: bool,
    },
    SpawnFleet {
        count: u32,
        script: Option<u128>,
    },
    AddScript {
        wasm: Vec<u8>,
    },
    AssignScript {
        ship: u64,
        script: u128,
    },
    SetOwner {
        ship: u64,
        owner: Option<String>,
    },
    Scrap {
        ship: u64,
    },
    SuspendScript {
        ship: u64,
        reason: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
struct CommandV1 {
    thrust: f32,
    turn: f32,
    mine: bool,
    stop: bool,
}

impl From<InputV1> for WorldInput {
    fn from(input: InputV1) -> Self {
        match input {
            InputV1::Command { ship, command } => WorldInput::Command {
                ship,
                command: CommandRecord {
                    thrust: command.thrust,
                    turn: command.turn,
                    mine: command.mine,
                    stop: command.stop,
                },
            },
            // Format-1 spawns were ownerless; an owner came as a separate SetOwner input,
            // which is in the log too.
            InputV1::SpawnShip {
                sector,
                local,
                heading,
                autopilot,
            } => WorldInput::SpawnShip {
                sector,
                local,
                heading,
                autopilot,
                owner: None,
            },
            InputV1::SpawnFleet { count, script } => WorldInput::SpawnFleet { count, script },
            InputV1::AddScript { wasm } => WorldInput::AddScript { wasm },
            InputV1::AssignScript { ship, script } => WorldInput::AssignScript { ship, script },
            InputV1::SetOwner { ship, owner } => WorldInput::SetOwner { ship, owner },
            InputV1::Scrap { ship } => WorldInput::Scrap { ship },
            InputV1::SuspendScript { ship, reason } => WorldInput::SuspendScript { ship, reason },
        }
    }
}

/// Reads the world description, format 1 included (as a [`WorldInfo`] still marked format 1,
/// all of whose logged inputs are [`InputV1`]).
pub(crate) fn read_world_info(bytes: &[u8]) -> Result<WorldInfo, InfoError> {
    let cannot = |e: postcard::Error| {
        InfoError::Corrupt(format!("the world description cannot be read: {e}"))
    };
    // Every format starts with its number.
    let (format, _) = postcard::take_from_bytes::<u32>(bytes).map_err(cannot)?;
    match format {
        WORLD_INFO_FORMAT => postcard::from_bytes(bytes).map_err(cannot),
        WORLD_INFO_FORMAT_V1 => {
            let v1: WorldInfoV1 = postcard::from_bytes(bytes).map_err(cannot)?;
            Ok(WorldInfo {
                format: v1.format,
                universe_seed: v1.universe_seed,
                config_toml: v1.config_toml,
                created_by: v1.created_by,
                inputs_v1_before_seq: u64::MAX,
            })
        }
        newer if newer > WORLD_INFO_FORMAT => Err(InfoError::Format(format!(
            "the world description has format {newer}; this build reads format \
             {WORLD_INFO_FORMAT} (and migrates format {WORLD_INFO_FORMAT_V1}): the world was \
             written by a newer astroboids, open it with that release or a later one"
        ))),
        older => Err(InfoError::Format(format!(
            "the world description has format {older}; this build reads format \
             {WORLD_INFO_FORMAT} and migrates only format {WORLD_INFO_FORMAT_V1}: open the \
             world with the astroboids release that wrote it"
        ))),
    }
}

/// Why a world description was not read.
pub(crate) enum InfoError {
    Corrupt(String),
    Format(String),
}

/// Decodes a logged input in the layout its sequence number says it was written in.
pub(crate) fn decode_logged(
    payload: &[u8],
    seq: u64,
    info: &WorldInfo,
) -> postcard::Result<WorldInput> {
    if seq < info.inputs_v1_before_seq {
        postcard::from_bytes::<InputV1>(payload).map(WorldInput::from)
    } else {
        postcard::from_bytes(payload)
    }
}

/// Finishes opening a format-1 world (its inputs were read as [`InputV1`], its checkpoint,
/// if format 3, was accepted by the sim): from now on inputs are logged in the current layout,
/// so the description records where the old ones end. Written before any new input is, and
/// flushed, so a crash before it leaves a format-1 world that migrates again.
pub(crate) fn migrate_world_info(store: &WorldStore, v1: &WorldInfo) -> Result<(), StorageError> {
    // All entries, including any a crash left behind before its checkpoint was pruned:
    // sequence numbers only grow, so every later input is at or above this.
    let inputs_v1_before_seq = store
        .inputs_from(0)?
        .iter()
        .map(|entry| entry.seq + 1)
        .max()
        .unwrap_or(0);
    let info = WorldInfo {
        format: WORLD_INFO_FORMAT,
        inputs_v1_before_seq,
        ..v1.clone()
    };
    store.put_world_info(&postcard::to_allocvec(&info).expect("plain data"))?;
    store.flush()?;
    Ok(())
}
