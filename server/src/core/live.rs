//! Live updates: after each tick, every subscribed connection's snapshot (delta-encoded
//! against what its client acknowledged) and its ships' events.

use std::collections::BTreeSet;

use astroboids_protocol::snapshot::{SnapshotEncoder, SnapshotLimits};

use super::{Effect, ServerCore};

/// A subscribed connection's snapshot state.
pub(super) struct Subscription {
    encoder: SnapshotEncoder,
    /// The newest snapshot the client acknowledged (0: none) not yet given to the encoder.
    acked: u32,
}

impl Subscription {
    pub(super) fn new(max_datagram_bytes: usize) -> Self {
        Self {
            encoder: SnapshotEncoder::new(SnapshotLimits {
                max_datagram_bytes,
                ..SnapshotLimits::default()
            }),
            acked: 0,
        }
    }

    pub(super) fn acked(&mut self, seq: u32) {
        self.acked = self.acked.max(seq);
    }
}

impl ServerCore {
    /// After a tick: each subscribed client's snapshot (datagrams) and its ships' events.
    pub(super) fn live_updates(&mut self, effects: &mut Vec<Effect>) {
        let users: BTreeSet<String> = self
            .connections
            .values()
            .filter(|c| c.subscription.is_some())
            .filter_map(|c| c.connection.user().map(str::to_string))
            .collect();
        if users.is_empty() {
            return;
        }
        let updates = self.server.player_updates(users.iter().map(String::as_str));
        let tick = self.server.world().tick();
        for (&conn, state) in &mut self.connections {
            let (Some(subscription), Some(user)) =
                (&mut state.subscription, state.connection.user())
            else {
                continue;
            };
            let Some((view, events)) = updates.get(user) else {
                continue;
            };
            if subscription.acked > 0 {
                subscription.encoder.ack(subscription.acked);
            }
            let encoded = subscription.encoder.encode(tick, &view.view, |id, _| {
                view.priority.get(&id).copied().unwrap_or(u64::MAX)
            });
            let bytes: usize = encoded.datagrams.iter().map(Vec::len).sum();
            metrics::counter!("astroboids_snapshot_bytes_total").increment(bytes as u64);
            effects.push(Effect::Datagrams {
                conn,
                datagrams: encoded.datagrams,
            });
            if !events.logs.is_empty() || !events.faults.is_empty() {
                effects.push(Effect::Events {
                    conn,
                    events: events.clone(),
                });
            }
        }
    }
}
