//! The snapshot encoder and decoder together over a lossy, reordering link, driven by
//! `arbitrary`: worlds that change tick by tick (entities appearing, moving, turning, being
//! damaged, vanishing, changing sector), datagrams dropped, duplicated and delivered late, acks
//! lost. Checked: every snapshot the encoder sends without deferring anything reconstructs, on
//! the client, exactly the view it was made from; everything else must merely not panic.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use protocol::snapshot::{
    SnapshotDecoder, SnapshotEncoder, SnapshotLimits, View, ViewEntity, decode_ack, encode_ack,
};

#[derive(Debug, Arbitrary)]
struct Scenario {
    max_datagram_bytes: u16,
    budget_bytes: u16,
    history: u8,
    max_parts: u8,
    ticks: Vec<Tick>,
}

#[derive(Debug, Arbitrary)]
struct Tick {
    /// Ticks since the previous snapshot (0 repeats a tick number).
    advance: u8,
    changes: Vec<Change>,
    /// Per datagram of this tick's snapshot: what the link does with it.
    delivery: Vec<Delivery>,
    /// Whether the client's ack for what completes reaches the server.
    ack_arrives: bool,
    /// Deliver datagrams held back from earlier ticks.
    flush_late: bool,
}

#[derive(Debug, Arbitrary)]
enum Change {
    /// An entity with an id from a small set (collisions exercise updates) or the high half
    /// of the id space (asteroid ids: gaps of 2^60 and more).
    Put {
        id: u8,
        high: bool,
        entity: Entity,
    },
    /// Nudges an entity: a small move and turn, as steering ships do.
    Nudge {
        id: u8,
        high: bool,
        dx: i8,
        dy: i8,
        turn: i8,
    },
    Remove {
        id: u8,
        high: bool,
    },
}

#[derive(Debug, Arbitrary)]
struct Entity {
    kind: u8,
    sector: (i8, i8),
    x: u16,
    y: u16,
    heading: u8,
    hull: u8,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Delivery {
    Now,
    Lost,
    Twice,
    Late,
}

fn id(small: u8, high: bool) -> u64 {
    if high {
        (1 << 63) | (u64::from(small) << 56) | u64::from(small)
    } else {
        u64::from(small)
    }
}

fuzz_target!(|scenario: Scenario| {
    let limits = SnapshotLimits {
        max_datagram_bytes: usize::from(scenario.max_datagram_bytes % 1_400).max(64),
        budget_bytes: usize::from(scenario.budget_bytes % 2_000),
        history: usize::from(scenario.history % 40).max(1),
        max_parts: scenario.max_parts % 40,
    };
    let mut encoder = SnapshotEncoder::new(limits.clone());
    let mut decoder = SnapshotDecoder::new(limits);
    let mut world: View = BTreeMap::new();
    let mut tick = 0u64;
    let mut late: Vec<Vec<u8>> = Vec::new();
    // Views of snapshots sent with nothing deferred: what the client must show once complete.
    let mut exact: BTreeMap<u32, (u64, View)> = BTreeMap::new();
    // The newest snapshot completed so far: the one the client shows.
    let mut newest_complete: Option<u32> = None;

    for step in scenario.ticks.iter().take(64) {
        tick += u64::from(step.advance);
        for change in step.changes.iter().take(64) {
            match change {
                Change::Put {
                    id: i,
                    high,
                    entity: e,
                } => {
                    world.insert(
                        id(*i, *high),
                        ViewEntity {
                            kind: e.kind % 3,
                            sector: (i32::from(e.sector.0), i32::from(e.sector.1)),
                            x: e.x,
                            y: e.y,
                            heading: e.heading,
                            hull: e.hull,
                        },
                    );
                }
                Change::Nudge {
                    id: i,
                    high,
                    dx,
                    dy,
                    turn,
                } => {
                    if let Some(e) = world.get_mut(&id(*i, *high)) {
                        e.x = e.x.saturating_add_signed(i16::from(*dx));
                        e.y = e.y.saturating_add_signed(i16::from(*dy));
                        e.heading = e.heading.wrapping_add(*turn as u8);
                    }
                }
                Change::Remove { id: i, high } => {
                    world.remove(&id(*i, *high));
                }
            }
        }
        let sent = encoder.encode(tick, &world, |id, _| id % 7);
        assert!(
            sent.datagrams.len() <= usize::from(protocol::snapshot::MAX_PARTS),
            "a snapshot in more datagrams than a client can track"
        );
        if sent.changes_deferred == 0 {
            exact.insert(sent.seq, (tick, world.clone()));
        }

        let mut arriving: Vec<Vec<u8>> = Vec::new();
        if step.flush_late {
            arriving.append(&mut late);
        }
        for (i, datagram) in sent.datagrams.into_iter().enumerate() {
            match step.delivery.get(i).copied().unwrap_or(Delivery::Now) {
                Delivery::Now => arriving.push(datagram),
                Delivery::Lost => {}
                Delivery::Twice => {
                    arriving.push(datagram.clone());
                    arriving.push(datagram);
                }
                Delivery::Late => late.push(datagram),
            }
        }
        for datagram in arriving {
            // Datagrams an honest encoder made are never refused, except for a baseline the
            // client lost (not delivered, or dropped from its history).
            match decoder.receive(&datagram) {
                Ok(Some(seq)) => {
                    let ack = encode_ack(seq);
                    assert_eq!(decode_ack(&ack), Some(seq));
                    if step.ack_arrives {
                        encoder.ack(seq);
                    }
                    let shown = decoder.view().expect("a snapshot completed");
                    if newest_complete.is_none_or(|n| seq > n) {
                        newest_complete = Some(seq);
                        if let Some((sent_tick, view)) = exact.get(&seq) {
                            assert_eq!(shown.0, *sent_tick, "snapshot {seq} shows another tick");
                            assert_eq!(shown.1, view, "snapshot {seq} reconstructs another view");
                        }
                    }
                }
                Ok(None) => {}
                Err(protocol::snapshot::SnapshotError::UnknownBaseline { .. }) => {}
                Err(e) => panic!("the decoder refuses the encoder's datagram: {e}"),
            }
        }
    }
});
