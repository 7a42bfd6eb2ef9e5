//! What players see of a world spread over shards, without I/O: after each tick every shard
//! builds the pieces of every player's view that its own ships sensed ([`shard_views`]); a
//! gateway merges one tick's pieces from every shard of the plan ([`ViewMerger`]) into what
//! the single server would have built, and asks the shard holding a ship about it
//! ([`ShipQuery`], answered by [`answer_query`]).
//!
//! Pieces are not part of the tick protocol: they travel outside the world's log, a lost one
//! costs its players that tick's snapshot (the next complete tick replaces it), and a shard
//! never waits for a gateway.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use astroboids_engine::NetId;
use astroboids_protocol::messages::TickEvents;
use astroboids_sim::checkpoint::{ShipRecord, capture_ship};
use astroboids_sim::scripts::ScriptFaults;
use astroboids_views::{Owners, PlayerView, player_events};

use crate::assignment::ShardId;
use crate::shard_node::ShardNode;

/// Ticks whose pieces a merger keeps waiting for the rest: a tick still incomplete when this
/// many newer ones wait will not complete (a shard was lost, or a piece was) and is dropped.
pub const MAX_PENDING_TICKS: usize = 32;

/// Ships one query may name.
pub const MAX_QUERY_SHIPS: usize = 1_024;

/// One player's piece of a tick's view, from one shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerPiece {
    pub user: String,
    pub view: PlayerView,
    /// Log lines and faults of the player's ships this shard holds.
    pub events: TickEvents,
    /// The player's ships this shard holds, in id order.
    pub ships: Vec<u64>,
}

/// Every player's piece of one tick from one shard (empty or not: it also says "this shard
/// is done with the tick", which is how a gateway knows a tick is complete).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardViews {
    pub epoch: u64,
    pub tick: u64,
    pub shard: ShardId,
    /// Shards in the plan: pieces from this many make the tick complete.
    pub shards: u32,
    /// A shard's pieces too large for one message travel in `parts` parts (see
    /// [`split_views`]), numbered from 0.
    pub part: u32,
    pub parts: u32,
    pub players: Vec<PlayerPiece>,
}

/// Cuts `views` into parts of at most `max_bytes` encoded (postcard) each, players whole. A
/// player whose piece alone is larger is left out (their view of this tick is lost, and
/// counted in the second value): a shard never sends what the bus would refuse.
pub fn split_views(mut views: ShardViews, max_bytes: usize) -> (Vec<ShardViews>, usize) {
    const HEADER_BYTES: usize = 64;
    let budget = max_bytes.saturating_sub(HEADER_BYTES);
    let mut parts: Vec<Vec<PlayerPiece>> = vec![Vec::new()];
    let (mut used, mut left_out) = (0, 0);
    for piece in std::mem::take(&mut views.players) {
        let size = postcard::to_allocvec(&piece).map_or(usize::MAX, |b| b.len());
        if size > budget {
            left_out += 1;
            continue;
        }
        if used + size > budget {
            parts.push(Vec::new());
            used = 0;
        }
        used += size;
        parts.last_mut().expect("one part at least").push(piece);
    }
    let count = parts.len() as u32;
    let out = parts
        .into_iter()
        .enumerate()
        .map(|(i, players)| ShardViews {
            part: i as u32,
            parts: count,
            players,
            ..views.clone_header()
        })
        .collect();
    (out, left_out)
}

impl ShardViews {
    fn clone_header(&self) -> ShardViews {
        ShardViews {
            epoch: self.epoch,
            tick: self.tick,
            shard: self.shard,
            shards: self.shards,
            part: 0,
            parts: 1,
            players: Vec::new(),
        }
    }
}

/// The pieces of every player with ships on `node`, after its tick finished (exchange taken
/// in: ships held by neighbours show as their halo has them at the end of the tick).
pub fn shard_views(node: &mut ShardNode, epoch: u64, shards: u32) -> ShardViews {
    let shard = node.id();
    let tick = node.sim().tick();
    let (world, sightings) = node.world_and_departed_sightings();
    let owners = Owners::all(world);
    let world = &*world;
    let mut users: BTreeSet<&str> = owners.users().into_iter().collect();
    users.extend(sightings.keys().map(String::as_str));
    let players = users
        .into_iter()
        .map(|user| {
            let extra = sightings.get(user).map_or(&[][..], Vec::as_slice);
            let mut ships: Vec<u64> = owners
                .ships(user)
                .iter()
                .filter_map(|&e| world.get::<NetId>(e).map(|id| id.0))
                .collect();
            ships.sort_unstable();
            PlayerPiece {
                user: user.to_owned(),
                view: owners.view_with(world, user, extra),
                events: player_events(world, &owners, user),
                ships,
            }
        })
        .collect();
    ShardViews {
        epoch,
        tick,
        shard,
        shards,
        part: 0,
        parts: 1,
        players,
    }
}

/// A player's whole view of one tick.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MergedPlayer {
    pub view: PlayerView,
    /// Log lines and faults in ship order.
    pub events: TickEvents,
    /// Where each of the player's ships is held: (ship, shard), in ship order.
    pub ships: Vec<(u64, ShardId)>,
}

/// One tick as every shard saw it, by player.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedTick {
    pub epoch: u64,
    pub tick: u64,
    /// Shards in the tick's plan (where a ship query may have to look).
    pub shards: u32,
    pub players: BTreeMap<String, MergedPlayer>,
}

#[derive(Debug, Default)]
struct Pending {
    shards: u32,
    /// Parts received, by shard and part; and how many parts each shard sends.
    pieces: BTreeMap<ShardId, BTreeMap<u32, Vec<PlayerPiece>>>,
    parts: BTreeMap<ShardId, u32>,
}

impl Pending {
    fn complete(&self) -> bool {
        self.pieces.len() >= self.shards as usize
            && self
                .pieces
                .iter()
                .all(|(shard, parts)| self.parts.get(shard) == Some(&(parts.len() as u32)))
    }
}

/// A gateway's side: takes shards' pieces in any order and hands out each tick once every
/// shard of its plan has sent one, never a tick at or before one already handed out (after a
/// lost shard the cluster re-runs ticks from a checkpoint: players keep the ticks they saw).
#[derive(Debug, Default)]
pub struct ViewMerger {
    /// By (tick, epoch).
    pending: BTreeMap<(u64, u64), Pending>,
    last: Option<u64>,
    dropped: u64,
}

impl ViewMerger {
    /// The last tick handed out.
    pub fn last_tick(&self) -> Option<u64> {
        self.last
    }

    /// Incomplete ticks given up on so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Takes one shard's pieces; returns the tick when they complete it.
    pub fn push(&mut self, views: ShardViews) -> Option<MergedTick> {
        if self.last.is_some_and(|last| views.tick <= last)
            || views.shard >= views.shards
            || views.part >= views.parts
        {
            return None;
        }
        let key = (views.tick, views.epoch);
        let pending = self.pending.entry(key).or_default();
        pending.shards = views.shards;
        pending.parts.insert(views.shard, views.parts);
        // A repeat changes nothing: the first copy stands.
        pending
            .pieces
            .entry(views.shard)
            .or_default()
            .entry(views.part)
            .or_insert(views.players);
        if !pending.complete() {
            while self.pending.len() > MAX_PENDING_TICKS {
                self.pending.pop_first();
                self.dropped += 1;
            }
            return None;
        }
        let pending = self.pending.remove(&key).expect("just filled");
        let older = self.pending.range(..(views.tick + 1, 0)).count() as u64;
        self.dropped += older;
        self.pending = self.pending.split_off(&(views.tick + 1, 0));
        self.last = Some(views.tick);
        Some(merge(views.epoch, views.tick, pending))
    }
}

fn merge(epoch: u64, tick: u64, pending: Pending) -> MergedTick {
    let shards = pending.shards;
    let mut players: BTreeMap<String, MergedPlayer> = BTreeMap::new();
    for (shard, parts) in pending.pieces {
        for piece in parts.into_values().flatten() {
            let player = players.entry(piece.user).or_insert_with(|| MergedPlayer {
                events: TickEvents {
                    tick,
                    logs: Vec::new(),
                    faults: Vec::new(),
                    dropped_before: 0,
                },
                ..MergedPlayer::default()
            });
            player.view.merge(piece.view);
            player.events.logs.extend(piece.events.logs);
            player.events.faults.extend(piece.events.faults);
            player
                .ships
                .extend(piece.ships.into_iter().map(|s| (s, shard)));
        }
    }
    for player in players.values_mut() {
        // Stable: a ship's lines keep their order.
        player.events.logs.sort_by_key(|(ship, _)| *ship);
        player.events.faults.sort_by_key(|(ship, _)| *ship);
        player.ships.sort_unstable();
    }
    MergedTick {
        epoch,
        tick,
        shards,
        players,
    }
}

/// A gateway's question to the shard holding some ships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipQuery {
    /// At most [`MAX_QUERY_SHIPS`].
    pub ships: Vec<u64>,
    /// Include the ships' recent script faults.
    pub faults: bool,
}

/// What a shard knows of the queried ships it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipFacts {
    pub shard: ShardId,
    /// The tick its world stands at.
    pub tick: u64,
    /// The queried ships it holds (script memory left out), in the order asked.
    pub ships: Vec<ShipRecord>,
    /// The queried ships it does not hold.
    pub elsewhere: Vec<u64>,
    /// (ship, tick, fault) of the held ships' recent faults, when asked.
    pub faults: Vec<(u64, u64, String)>,
}

/// Answers `query` from `node`'s world (between ticks).
pub fn answer_query(node: &mut ShardNode, query: &ShipQuery) -> ShipFacts {
    let shard = node.id();
    let tick = node.sim().tick();
    let world = node.sim_mut().world_mut();
    let mut facts = ShipFacts {
        shard,
        tick,
        ships: Vec::new(),
        elsewhere: Vec::new(),
        faults: Vec::new(),
    };
    for &ship in query.ships.iter().take(MAX_QUERY_SHIPS) {
        match capture_ship(world, NetId(ship)) {
            Some(mut record) => {
                if let Some(script) = &mut record.script {
                    script.memory = Default::default();
                    script.globals = Vec::new();
                }
                facts.ships.push(record);
            }
            None => facts.elsewhere.push(ship),
        }
    }
    if query.faults {
        let held: BTreeSet<u64> = facts.ships.iter().map(|s| s.id).collect();
        facts.faults = world
            .resource::<ScriptFaults>()
            .recent
            .iter()
            .filter(|f| held.contains(&f.ship.0))
            .map(|f| (f.ship.0, f.tick, f.message.clone()))
            .collect();
    }
    facts
}
