//! World inputs: every change that comes from outside the tick (a player's manual command, a
//! spawn, an uploaded or assigned script), as one serializable type.
//!
//! Inputs are applied between ticks, before the tick they are logged for, in acceptance order.
//! Applying is deterministic and all-or-nothing: an input either changes the world completely
//! or returns an error and changes nothing. That is what lets a host apply an input first and
//! log it only when it was accepted, and lets a replay or a restart re-apply the log and reach
//! exactly the same world.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use astroboids_engine::NetId;

use crate::autopilot::Autopilot;
use crate::checkpoint::CommandRecord;
use crate::config::UniverseConfig;
use crate::scripts::{ScriptAssignError, ScriptId, add_script, assign_script};
use crate::ships::{InputError, Owner, ShipCommand, ShipIndex, ShipInputs, SpawnError, spawn_ship};
use crate::space::{SectorCoord, SpacePos, Vec2};
use crate::spawn::spawn_fleet;

/// One change from outside the tick. New variants go at the end: the variant index is part of
/// the encoding in logs and replays. Changing a variant's fields changes that encoding too:
/// bump the replay format and the persistent world's format in astroboids-host, which must
/// go on reading (or clearly refuse) what older builds wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WorldInput {
    /// A manual command for `ship`'s next tick (overrides its autopilot or script that tick).
    Command { ship: u64, command: CommandRecord },
    /// One ship at a position, flown by the autopilot when `autopilot` is set, owned by
    /// `owner` when given. Spawning and owning are one input so that no crash or refusal can
    /// leave a player's ship without its owner.
    SpawnShip {
        sector: (i32, i32),
        local: (f32, f32),
        heading: f32,
        autopilot: bool,
        owner: Option<String>,
    },
    /// `count` ships spread around the origin (headless runs and load tests), flown by the
    /// autopilot, or by `script` (already in the library) when given.
    SpawnFleet { count: u32, script: Option<u128> },
    /// Adds a script module to the world's library (content-addressed: adding twice is a no-op).
    AddScript { wasm: Vec<u8> },
    /// Gives `ship` a library script, replacing its autopilot or previous script.
    AssignScript { ship: u64, script: u128 },
    /// Gives `ship` to an account (`None`: to nobody).
    SetOwner { ship: u64, owner: Option<String> },
    /// Removes `ship`: its hull drops to zero and the next tick's damage stage destroys it as
    /// any wreck (an operator's tool; new variants go last, the index is in the encoding).
    Scrap { ship: u64 },
    /// Stops `ship`'s script (the host's watchdog: its runs took far longer than their fuel
    /// allows). The ship idles and its owner sees `reason` as a fault, until it is given a
    /// script again. Logged like any input, so a replay suspends it at the same tick.
    SuspendScript { ship: u64, reason: String },
}

impl WorldInput {
    /// The inputs that set up a headless world: `wasm` added to the library when given, then
    /// `count` ships flown by it (or by the autopilot without one).
    pub fn fleet_setup(count: u32, wasm: Option<Vec<u8>>) -> Vec<WorldInput> {
        let mut setup = Vec::new();
        let script = wasm.map(|wasm| {
            let id = astroboids_scripting::module_hash(&wasm);
            setup.push(WorldInput::AddScript { wasm });
            id
        });
        setup.push(WorldInput::SpawnFleet { count, script });
        setup
    }

    /// A short name for messages and summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Command { .. } => "command",
            Self::SpawnShip { .. } => "spawn ship",
            Self::SpawnFleet { .. } => "spawn fleet",
            Self::AddScript { .. } => "add script",
            Self::AssignScript { .. } => "assign script",
            Self::SetOwner { .. } => "set owner",
            Self::Scrap { .. } => "scrap",
            Self::SuspendScript { .. } => "suspend script",
        }
    }
}

/// What an accepted input did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputOutcome {
    /// The command waits for the next tick.
    Queued,
    /// Ships spawned, in id order.
    Spawned(Vec<NetId>),
    ScriptAdded(ScriptId),
    ScriptAssigned,
    OwnerSet,
    Scrapped,
    ScriptSuspended,
}

/// Why an input was refused (the world is unchanged).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorldInputError {
    #[error("no ship {0}")]
    UnknownShip(NetId),
    #[error(transparent)]
    Queue(#[from] InputError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Script(#[from] ScriptAssignError),
    #[error("spawning {count} ships would exceed limits.max_ships ({limit}); {alive} alive")]
    FleetTooLarge {
        count: u32,
        alive: usize,
        limit: u32,
    },
    #[error("owner {0:?}: an account name is 1 to {MAX_OWNER_BYTES} of A-Z a-z 0-9 _ . -")]
    InvalidOwner(String),
    #[error("ship {0} runs no script")]
    NotScripted(NetId),
    #[error("a suspension reason is 1 to {MAX_REASON_BYTES} bytes, got {0}")]
    InvalidReason(usize),
}

/// Longest reason a suspension may carry (it is logged and shown to the owner).
pub const MAX_REASON_BYTES: usize = 256;

/// Longest account name an owner may have.
pub const MAX_OWNER_BYTES: usize = 64;

/// Whether `name` is a valid account name (the store's rule).
pub fn valid_owner(name: &str) -> bool {
    (1..=MAX_OWNER_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl From<ShipCommand> for CommandRecord {
    fn from(c: ShipCommand) -> Self {
        Self {
            thrust: c.thrust,
            turn: c.turn,
            mine: c.mine,
            stop: c.stop,
        }
    }
}

impl From<&CommandRecord> for ShipCommand {
    fn from(c: &CommandRecord) -> Self {
        ShipCommand {
            thrust: c.thrust,
            turn: c.turn,
            mine: c.mine,
            stop: c.stop,
        }
    }
}

/// Applies `input` to the world between ticks; all-or-nothing (see the module docs).
pub fn apply_input(world: &mut World, input: &WorldInput) -> Result<InputOutcome, WorldInputError> {
    match input {
        WorldInput::Command { ship, command } => {
            let ship = NetId(*ship);
            if !world.resource::<ShipIndex>().contains(ship) {
                return Err(WorldInputError::UnknownShip(ship));
            }
            world
                .resource_mut::<ShipInputs>()
                .submit(ship, ShipCommand::from(command))?;
            Ok(InputOutcome::Queued)
        }
        WorldInput::SpawnShip {
            sector,
            local,
            heading,
            autopilot,
            owner,
        } => {
            // The owner is checked before the spawn: a refused input must not leave a ship
            // (or use up an id).
            if let Some(name) = owner
                && !valid_owner(name)
            {
                return Err(WorldInputError::InvalidOwner(name.clone()));
            }
            let pos = SpacePos::new(
                SectorCoord::new(sector.0, sector.1),
                Vec2::new(local.0, local.1),
            );
            let id = spawn_ship(world, pos, *heading)?;
            // A shard that does not hold the sector only counts the ship.
            if let Some(entity) = world.resource::<ShipIndex>().entity(id) {
                let mut ship = world.entity_mut(entity);
                if *autopilot {
                    ship.insert(Autopilot);
                }
                if let Some(name) = owner {
                    ship.insert(Owner(name.clone()));
                }
            } else if owner.is_some() {
                crate::scope::set_remote_owner(world, id.0, owner.as_deref());
            }
            Ok(InputOutcome::Spawned(vec![id]))
        }
        WorldInput::SpawnFleet { count, script } => {
            let limit = world.resource::<UniverseConfig>().limits.max_ships;
            let alive = crate::ships::ships_alive(world) as usize;
            if alive.saturating_add(*count as usize) > limit as usize {
                return Err(WorldInputError::FleetTooLarge {
                    count: *count,
                    alive,
                    limit,
                });
            }
            if let Some(script) = script
                && !world
                    .resource::<crate::scripts::ScriptLibrary>()
                    .contains(ScriptId(*script))
            {
                return Err(ScriptAssignError::UnknownScript(ScriptId(*script)).into());
            }
            let ids = spawn_fleet(world, *count)?;
            if let Some(script) = script {
                for &ship in &ids {
                    if !world.resource::<ShipIndex>().contains(ship) {
                        continue; // held by another shard, which assigns it there
                    }
                    assign_script(world, ship, ScriptId(*script))
                        .expect("the script is in the library and the ship was just spawned");
                }
            }
            Ok(InputOutcome::Spawned(ids))
        }
        WorldInput::AddScript { wasm } => Ok(InputOutcome::ScriptAdded(add_script(world, wasm)?)),
        WorldInput::AssignScript { ship, script } => {
            assign_script(world, NetId(*ship), ScriptId(*script))?;
            Ok(InputOutcome::ScriptAssigned)
        }
        WorldInput::SetOwner { ship, owner } => {
            if let Some(name) = owner
                && !valid_owner(name)
            {
                return Err(WorldInputError::InvalidOwner(name.clone()));
            }
            let id = NetId(*ship);
            let Some(entity) = world.resource::<ShipIndex>().entity(id) else {
                // A shard's neighbour holds it: its halo entry shows the owner until the
                // neighbour's next halo carries it.
                return if crate::scope::set_remote_owner(world, id.0, owner.as_deref()) {
                    Ok(InputOutcome::OwnerSet)
                } else {
                    Err(WorldInputError::UnknownShip(id))
                };
            };
            let mut ship = world.entity_mut(entity);
            match owner {
                Some(name) => ship.insert(Owner(name.clone())),
                None => ship.remove::<Owner>(),
            };
            Ok(InputOutcome::OwnerSet)
        }
        WorldInput::Scrap { ship } => {
            let id = NetId(*ship);
            let entity = world
                .resource::<ShipIndex>()
                .entity(id)
                .ok_or(WorldInputError::UnknownShip(id))?;
            world
                .get_mut::<crate::ships::Hull>(entity)
                .ok_or(WorldInputError::UnknownShip(id))?
                .0 = 0.0;
            Ok(InputOutcome::Scrapped)
        }
        WorldInput::SuspendScript { ship, reason } => {
            if reason.is_empty() || reason.len() > MAX_REASON_BYTES {
                return Err(WorldInputError::InvalidReason(reason.len()));
            }
            crate::scripts::suspend_script(world, NetId(*ship), reason)?;
            Ok(InputOutcome::ScriptSuspended)
        }
    }
}
