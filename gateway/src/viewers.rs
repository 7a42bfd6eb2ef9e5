//! Who watches what, without I/O: the subscribed connections (each with its own delta
//! snapshot encoder, fed the newest sequence its client acknowledged) and where each
//! player's ships are held, both renewed by every merged tick.
//!
//! Each tick, a subscriber gets the snapshot and events of its user exactly as the single
//! server would send them (the merged view is the single server's view); a subscribed user
//! with no ships gets an empty snapshot, as there.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use astroboids_cluster::assignment::ShardId;
use astroboids_cluster::live::MergedTick;
use astroboids_protocol::messages::TickEvents;
use astroboids_protocol::snapshot::{SnapshotEncoder, SnapshotLimits, View};

/// A connection, as the gateway numbers them.
pub type ConnId = u64;

struct Viewer {
    user: String,
    encoder: SnapshotEncoder,
    /// The newest snapshot its client acknowledged (written by the connection's task).
    acked: Arc<AtomicU32>,
}

/// What one subscriber gets after a tick.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveOut {
    pub conn: ConnId,
    pub datagrams: Vec<Vec<u8>>,
    /// The user's ships' log lines and faults, when there are any.
    pub events: Option<TickEvents>,
}

/// Subscriptions and ship locations (see the module docs).
#[derive(Default)]
pub struct Viewers {
    viewers: BTreeMap<ConnId, Viewer>,
    /// Every owned ship's shard at the last merged tick.
    locations: HashMap<u64, ShardId>,
    shards: u32,
    tick: Option<u64>,
}

impl Viewers {
    pub fn subscribe(
        &mut self,
        conn: ConnId,
        user: &str,
        max_datagram_bytes: usize,
        acked: Arc<AtomicU32>,
    ) {
        let encoder = SnapshotEncoder::new(SnapshotLimits {
            max_datagram_bytes,
            ..SnapshotLimits::default()
        });
        self.viewers.insert(
            conn,
            Viewer {
                user: user.to_owned(),
                encoder,
                acked,
            },
        );
    }

    pub fn unsubscribe(&mut self, conn: ConnId) {
        self.viewers.remove(&conn);
    }

    pub fn subscribers(&self) -> usize {
        self.viewers.len()
    }

    /// The shard holding `ship` at the last merged tick (only owned ships are known).
    pub fn shard_of(&self, ship: u64) -> Option<ShardId> {
        self.locations.get(&ship).copied()
    }

    /// Shards of the last merged tick's plan (0 before the first).
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The last merged tick.
    pub fn tick(&self) -> Option<u64> {
        self.tick
    }

    /// Takes a merged tick: renews ship locations and returns each subscriber's snapshot and
    /// events.
    pub fn on_tick(&mut self, merged: &MergedTick) -> Vec<LiveOut> {
        self.tick = Some(merged.tick);
        self.locations.clear();
        for player in merged.players.values() {
            for &(ship, shard) in &player.ships {
                self.locations.insert(ship, shard);
            }
        }
        self.shards = merged.shards;
        let empty = View::new();
        let mut out = Vec::with_capacity(self.viewers.len());
        for (&conn, viewer) in &mut self.viewers {
            let acked = viewer.acked.load(Ordering::Relaxed);
            if acked > 0 {
                viewer.encoder.ack(acked);
            }
            let player = merged.players.get(&viewer.user);
            let (view, priority) = match player {
                Some(p) => (&p.view.view, Some(&p.view.priority)),
                None => (&empty, None),
            };
            let encoded = viewer.encoder.encode(merged.tick, view, |id, _| {
                priority
                    .and_then(|p| p.get(&id))
                    .copied()
                    .unwrap_or(u64::MAX)
            });
            let events = player
                .map(|p| &p.events)
                .filter(|e| !e.logs.is_empty() || !e.faults.is_empty())
                .cloned();
            out.push(LiveOut {
                conn,
                datagrams: encoded.datagrams,
                events,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use astroboids_cluster::live::MergedPlayer;
    use astroboids_protocol::snapshot::{SnapshotDecoder, ViewEntity};
    use astroboids_views::{KIND_OWN_SHIP, PlayerView};

    fn tick(tick: u64, ann_x: f32) -> MergedTick {
        let mut view = PlayerView::default();
        view.insert(
            7,
            ViewEntity::quantize(KIND_OWN_SHIP, (0, 0), (ann_x, 5.0), 0.0, 100.0),
            0,
        );
        let ann = MergedPlayer {
            view,
            events: TickEvents {
                tick,
                logs: vec![(7, "hi".into())],
                faults: Vec::new(),
                dropped_before: 0,
            },
            ships: vec![(7, 1)],
        };
        MergedTick {
            epoch: 1,
            tick,
            shards: 2,
            players: BTreeMap::from([("ann".to_owned(), ann)]),
        }
    }

    #[test]
    fn subscribers_get_their_users_view_and_events_and_ships_are_located() {
        let mut viewers = Viewers::default();
        let acked = Arc::new(AtomicU32::new(0));
        viewers.subscribe(1, "ann", 1200, acked.clone());
        viewers.subscribe(2, "bob", 1200, Arc::new(AtomicU32::new(0)));
        let out = viewers.on_tick(&tick(10, 3.0));
        assert_eq!(out.len(), 2);
        assert_eq!(viewers.shard_of(7), Some(1));
        assert_eq!(viewers.shard_of(8), None);
        assert_eq!(
            viewers.shards(),
            2,
            "the plan's shards, not only those holding ships"
        );
        let ann = &out[0];
        assert_eq!(ann.conn, 1);
        assert_eq!(
            ann.events.as_ref().unwrap().logs,
            vec![(7, "hi".to_owned())]
        );
        let mut decoder = SnapshotDecoder::new(SnapshotLimits::default());
        for d in &ann.datagrams {
            decoder.receive(d).unwrap();
        }
        let (at, view) = decoder.view().expect("a whole snapshot");
        assert_eq!(at, 10);
        assert!(view.contains_key(&7));
        // Bob has no ships: an empty snapshot, no events.
        assert!(out[1].events.is_none());
        assert!(!out[1].datagrams.is_empty());
        viewers.unsubscribe(2);
        assert_eq!(viewers.on_tick(&tick(11, 4.0)).len(), 1);
    }
}
