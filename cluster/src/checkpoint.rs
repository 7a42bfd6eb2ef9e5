//! Checkpoints of a sharded world: each shard captures its piece at the same checkpoint tick;
//! the pieces merge into the whole world's checkpoint (the single-process format), and any
//! assignment's shards can be restored from that. Recovery after a shard dies and moving
//! sectors between shards (rebalancing) both go through here, so neither changes a result.

use std::collections::BTreeMap;

use astroboids_sim::SimOptions;
use astroboids_sim::checkpoint::{self, CheckpointError, PendingCheckpoint, WorldCheckpoint};
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::shard::{self, HaloShip};
use astroboids_sim::space::SectorCoord;

use crate::assignment::{SectorAssignment, ShardId};
use crate::shard_node::{Phase, ShardNode, record_pos};

/// Why pieces do not make a world.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    #[error("no pieces to merge")]
    Empty,
    #[error("pieces of different ticks ({0} and {1})")]
    Ticks(u64, u64),
    #[error("pieces disagree on {0}, which every shard holds a copy of")]
    Replicated(&'static str),
    #[error("{got} pieces for {assignment}: one per shard is needed")]
    Count {
        got: usize,
        assignment: SectorAssignment,
    },
    #[error("ship #{0} is in two pieces")]
    DuplicateShip(u64),
    #[error("piece of shard {got} where shard {expected} was expected ({assignment})")]
    Pieces {
        expected: ShardId,
        got: ShardId,
        assignment: SectorAssignment,
    },
}

/// One shard's piece of the world at a checkpoint tick.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShardCheckpoint {
    pub shard: ShardId,
    pub assignment: SectorAssignment,
    pub world: WorldCheckpoint,
}

/// The most bytes a stored piece may decompress to (a damaged or hostile blob must not make a
/// shard allocate without bound).
pub const MAX_PIECE_BYTES: usize = 4 * 1024 * 1024 * 1024;
/// zstd level for pieces: compressed beside the shard's ticks on machines of few cores, so
/// speed first (script memory is mostly zero pages and compresses to almost nothing at any
/// level).
const PIECE_ZSTD_LEVEL: i32 = 1;

/// A piece as stored in the blob store: postcard, then zstd.
pub fn encode_piece(piece: &ShardCheckpoint) -> Vec<u8> {
    encode_piece_reusing(piece, &mut Vec::new())
}

/// As [`encode_piece`], serializing into `scratch` (emptied first) on the way. A shard keeps
/// one scratch buffer for all its pieces: a piece of 5k scripted ships serializes to up to
/// ~80 MB before compression, and memory new to the process costs the kernel a zeroed page per
/// 4 KiB, every checkpoint, on the cores the ticks need.
pub fn encode_piece_reusing(piece: &ShardCheckpoint, scratch: &mut Vec<u8>) -> Vec<u8> {
    checkpoint::postcard_into(piece, scratch);
    zstd::bulk::compress(scratch, PIECE_ZSTD_LEVEL)
        .expect("compressing into a growable buffer cannot fail")
}

/// A piece that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint piece {name} does not decode: {why}")]
pub struct PieceError {
    pub name: String,
    pub why: String,
}

/// A stored piece read back (`name` is for the error).
pub fn decode_piece(name: &str, stored: &[u8]) -> Result<ShardCheckpoint, PieceError> {
    use std::io::Read;
    let fail = |why: String| PieceError {
        name: name.to_owned(),
        why,
    };
    let mut decoder = zstd::stream::read::Decoder::new(stored).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    (&mut decoder)
        .take(MAX_PIECE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot decompress: {e}")))?;
    if bytes.len() > MAX_PIECE_BYTES {
        return Err(fail(format!(
            "decompresses to more than {MAX_PIECE_BYTES} bytes"
        )));
    }
    postcard::from_bytes(&bytes).map_err(|e| fail(e.to_string()))
}

/// Captures a shard's piece between ticks.
///
/// # Panics
/// When the shard is in the middle of a tick (its exchange is not complete).
pub fn capture(node: &mut ShardNode) -> ShardCheckpoint {
    capture_later(node).finish()
}

/// A shard's piece whose script states are still being collected from the script workers
/// (see [`checkpoint::capture_later`]); the shard may run on meanwhile.
pub struct PendingPiece {
    shard: ShardId,
    assignment: SectorAssignment,
    world: PendingCheckpoint,
}

impl PendingPiece {
    /// The tick the piece is of.
    pub fn tick(&self) -> u64 {
        self.world.tick()
    }

    /// The shard it is of.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// Waits for the script states (on any thread): the piece as of its tick, whatever the
    /// shard ran since.
    pub fn finish(self) -> ShardCheckpoint {
        ShardCheckpoint {
            shard: self.shard,
            assignment: self.assignment,
            world: self.world.finish(),
        }
    }
}

/// Copies a shard's piece between ticks, all but its script states, which the script workers
/// hand over before their next runs: [`PendingPiece::finish`] collects them.
///
/// # Panics
/// When the shard is in the middle of a tick (its exchange is not complete).
pub fn capture_later(node: &mut ShardNode) -> PendingPiece {
    assert!(
        matches!(node.phase(), Phase::Idle { .. }),
        "a shard is captured between ticks"
    );
    PendingPiece {
        shard: node.id(),
        assignment: node.assignment(),
        world: checkpoint::capture_later(node.sim_mut()),
    }
}

/// The whole world from every shard's piece (one per shard of their common assignment).
pub fn merge(pieces: &[ShardCheckpoint]) -> Result<WorldCheckpoint, MergeError> {
    let first = pieces.first().ok_or(MergeError::Empty)?;
    let assignment = first.assignment;
    for (expected, piece) in pieces.iter().enumerate() {
        if piece.shard != expected as ShardId || piece.assignment != assignment {
            return Err(MergeError::Pieces {
                expected: expected as ShardId,
                got: piece.shard,
                assignment,
            });
        }
    }
    if pieces.len() != assignment.shards() as usize {
        return Err(MergeError::Count {
            got: pieces.len(),
            assignment,
        });
    }
    let base = &first.world;
    let mut world = WorldCheckpoint {
        ships: Vec::new(),
        loaded_sectors: Vec::new(),
        sector_deltas: Vec::new(),
        pending_inputs: Vec::new(),
        recent_faults: Vec::new(),
        ..base.clone()
    };
    let mut totals = vec![0u64; base.totals.values.len()];
    let mut loaded = BTreeMap::new();
    for piece in pieces {
        let w = &piece.world;
        if w.tick != base.tick {
            return Err(MergeError::Ticks(base.tick, w.tick));
        }
        for (what, same) in [
            ("the id allocator", w.next_net_id == base.next_net_id),
            ("the script library", w.scripts == base.scripts),
            ("the seed", w.universe_seed == base.universe_seed),
            ("the configuration", w.config_digest == base.config_digest),
            ("the totals' layout", w.totals.values.len() == totals.len()),
        ] {
            if !same {
                return Err(MergeError::Replicated(what));
            }
        }
        world.ships.extend(w.ships.iter().cloned());
        // Each sector's delta from its holder (the others hold copies that may lag).
        world.sector_deltas.extend(
            w.sector_deltas
                .iter()
                .filter(|d| assignment.shard_of(SectorCoord::new(d.x, d.y)) == piece.shard)
                .cloned(),
        );
        for &(x, y, idle) in &w.loaded_sectors {
            loaded.entry((x, y)).or_insert(idle);
        }
        for (sum, v) in totals.iter_mut().zip(&w.totals.values) {
            *sum = sum.wrapping_add(*v);
        }
        world
            .pending_inputs
            .extend(w.pending_inputs.iter().cloned());
        world.recent_faults.extend(w.recent_faults.iter().cloned());
    }
    world.ships.sort_unstable_by_key(|s| s.id);
    if let Some(pair) = world.ships.windows(2).find(|p| p[0].id == p[1].id) {
        return Err(MergeError::DuplicateShip(pair[0].id));
    }
    world.sector_deltas.sort_unstable_by_key(|d| (d.x, d.y));
    world.loaded_sectors = loaded.into_iter().map(|((x, y), i)| (x, y, i)).collect();
    world.totals.values = totals;
    world.recent_faults.sort_by_key(|f| f.tick);
    Ok(world)
}

/// The piece of `world` that `shard` holds under `assignment`: its ships, every sector delta
/// (it needs its neighbours' to sense across borders), and the world's running totals on
/// shard 0 only (the totals' hash is taken over their sum).
pub fn piece(
    world: &WorldCheckpoint,
    assignment: SectorAssignment,
    shard: ShardId,
) -> WorldCheckpoint {
    let holds =
        |sector: (i32, i32)| assignment.shard_of(SectorCoord::new(sector.0, sector.1)) == shard;
    let mut piece = world.clone();
    piece.ships.retain(|s| holds(s.sector));
    piece.pending_inputs.clear();
    if shard != 0 {
        piece.totals.values.iter_mut().for_each(|v| *v = 0);
        piece.recent_faults.clear();
    }
    piece
}

/// The ships of `world` held by other shards that `shard`'s sectors can sense: its halo for
/// the tick after the checkpoint.
pub fn halo_of(
    world: &WorldCheckpoint,
    config: &UniverseConfig,
    assignment: SectorAssignment,
    shard: ShardId,
) -> Vec<HaloShip> {
    let holder = |s: SectorCoord| assignment.shard_of(s);
    world
        .ships
        .iter()
        .filter(|s| {
            let pos = record_pos(s);
            holder(pos.sector) != shard
                && shard::sensed_from(config, &pos)
                    .into_iter()
                    .any(|sector| holder(sector) == shard)
        })
        .map(shard::halo_of)
        .collect()
}

/// `shard` of `assignment`, restored from the whole world's checkpoint: it continues exactly
/// as the world (or the shards it was captured from) would have.
pub fn restore_shard(
    config: &UniverseConfig,
    world: &WorldCheckpoint,
    assignment: SectorAssignment,
    shard: ShardId,
    options: SimOptions,
) -> Result<ShardNode, CheckpointError> {
    let piece = piece(world, assignment, shard);
    let sim = checkpoint::restore(config.clone(), &piece, options)?;
    let mut node = ShardNode::from_sim(shard, assignment, config.clone(), sim);
    let halo = halo_of(world, config, assignment, shard);
    shard::set_halo(node.sim_mut().world_mut(), halo);
    Ok(node)
}

/// Why a shard cannot be made for a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanRestoreError {
    #[error("the pieces of the checkpoint of tick {tick} do not merge: {source}")]
    Merge { tick: u64, source: MergeError },
    #[error("the checkpoint of tick {tick} does not restore: {source}")]
    Restore { tick: u64, source: CheckpointError },
    #[error("the checkpoint's pieces are of tick {got}, the plan restores tick {expected}")]
    WrongTick { expected: u64, got: u64 },
}

/// Shard `shard` of `plan`, ready for the plan's first tick: the world's start when the plan
/// starts from tick 0, else restored from `pieces` (every piece of the plan's checkpoint, in
/// shard order).
pub fn shard_for_plan(
    spec: &crate::plan::WorldSpec,
    plan: &crate::plan::Plan,
    shard: ShardId,
    pieces: &[ShardCheckpoint],
    options: SimOptions,
) -> Result<ShardNode, PlanRestoreError> {
    let node = match &plan.from {
        None => ShardNode::new(
            shard,
            plan.assignment,
            spec.config.clone(),
            spec.seed,
            options,
        ),
        Some(record) => {
            let world = merge(pieces).map_err(|source| PlanRestoreError::Merge {
                tick: record.tick,
                source,
            })?;
            if world.tick != record.tick {
                return Err(PlanRestoreError::WrongTick {
                    expected: record.tick,
                    got: world.tick,
                });
            }
            restore_shard(&spec.config, &world, plan.assignment, shard, options).map_err(
                |source| PlanRestoreError::Restore {
                    tick: record.tick,
                    source,
                },
            )?
        }
    };
    Ok(node.with_epoch(plan.epoch))
}
