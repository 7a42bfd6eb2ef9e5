//! The snapshot codec without sockets: over a link that drops, duplicates and reorders
//! datagrams (and acks), every snapshot the client completes equals the server's filtered
//! truth at that tick; unchanged entities cost nothing, moving ones at most 4 bytes; an old
//! baseline forces a resync; the byte budget serves priorities first and catches up.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use astroboids_protocol::snapshot::{
    SNAPSHOT_FORMAT, SnapshotDecoder, SnapshotEncoder, SnapshotError, SnapshotLimits, View,
    ViewEntity,
};

const SECTOR: f32 = 1000.0;

/// One entity: where it is and how it moves.
#[derive(Clone, Copy)]
struct Body {
    sector: (i32, i32),
    local: (f32, f32),
    heading: f32,
    /// Metres per tick.
    velocity: (f32, f32),
    /// Radians per tick.
    turn: f32,
}

/// Entity ids as a server hands them out: small ones (ships) and ones with the top bit set and
/// the rest a hash (asteroids), so gaps between neighbours reach 2^63.
fn spread(n: u64) -> u64 {
    if n.is_multiple_of(2) {
        n
    } else {
        1 << 63 | n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 1
    }
}

/// A world of entities: some sit still, most cruise and steer (smoothly, as ships with
/// inertia do), now and then one jumps, crosses a sector border, appears or vanishes.
struct World {
    rng: ChaCha8Rng,
    entities: BTreeMap<u64, Body>,
    next_id: u64,
    /// Ids of every size (see [`spread`]), not only small ones.
    wide_ids: bool,
}

impl World {
    /// Entities with ids from 2^63 up among small ones: every bit of an id must survive.
    fn with_wide_ids(seed: u64, n: u64) -> Self {
        let mut world = Self::new(seed, n);
        world.entities = std::mem::take(&mut world.entities)
            .into_iter()
            .map(|(id, body)| (spread(id), body))
            .collect();
        world.wide_ids = true;
        world
    }

    fn new(seed: u64, n: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let entities = (1..=n)
            .map(|id| {
                let moving = !rng.random_bool(0.3);
                let speed = if moving {
                    rng.random_range(-3.0..3.0)
                } else {
                    0.0
                };
                let body = Body {
                    sector: (0, 0),
                    local: (rng.random_range(0.0..SECTOR), rng.random_range(0.0..SECTOR)),
                    heading: rng.random_range(0.0..std::f32::consts::TAU),
                    velocity: (speed, rng.random_range(-1.0..1.0) * speed),
                    turn: if moving {
                        rng.random_range(-0.1..0.1)
                    } else {
                        0.0
                    },
                };
                (id * 3, body)
            })
            .collect();
        Self {
            rng,
            entities,
            next_id: n * 3 + 1,
            wide_ids: false,
        }
    }

    fn step(&mut self) {
        for body in self.entities.values_mut() {
            if body.velocity == (0.0, 0.0) {
                continue; // Still entities stay still.
            }
            body.velocity.0 += self.rng.random_range(-0.05..0.05);
            body.velocity.1 += self.rng.random_range(-0.05..0.05);
            body.heading += body.turn;
            body.local.0 += body.velocity.0;
            body.local.1 += body.velocity.1;
            if self.rng.random_bool(0.05) {
                body.local.0 += self.rng.random_range(-30.0..30.0); // A jump.
            }
            if body.local.0 < 0.0 {
                body.local.0 += SECTOR;
                body.sector.0 -= 1;
            }
            if body.local.0 >= SECTOR {
                body.local.0 -= SECTOR;
                body.sector.0 += 1;
            }
            body.local.1 = body.local.1.clamp(0.0, SECTOR - 1.0);
        }
        if self.rng.random_bool(0.2) {
            let id = if self.wide_ids {
                spread(self.next_id)
            } else {
                self.next_id
            };
            self.next_id += 1;
            let body = Body {
                sector: (0, 0),
                local: (500.0, 500.0),
                heading: 0.0,
                velocity: (1.0, 0.5),
                turn: 0.02,
            };
            self.entities.insert(id, body);
        }
        if self.rng.random_bool(0.2) && !self.entities.is_empty() {
            let victim = *self
                .entities
                .keys()
                .nth(self.rng.random_range(0..self.entities.len()))
                .unwrap();
            self.entities.remove(&victim);
        }
    }

    fn view(&self) -> View {
        self.entities
            .iter()
            .map(|(&id, b)| {
                let e = ViewEntity::quantize(1, b.sector, b.local, b.heading, 100.0);
                (id, e)
            })
            .collect()
    }
}

/// Datagrams in flight: dropped, duplicated and delayed at random.
struct Link {
    rng: ChaCha8Rng,
    in_flight: Vec<(u64, Vec<u8>)>,
    loss: f64,
}

impl Link {
    fn send(&mut self, now: u64, datagram: Vec<u8>) {
        if self.rng.random_bool(self.loss) {
            return;
        }
        let copies = if self.rng.random_bool(0.1) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.rng.random_range(0..4);
            self.in_flight.push((now + delay, datagram.clone()));
        }
    }

    fn deliver(&mut self, now: u64) -> Vec<Vec<u8>> {
        let (due, later): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|(t, _)| *t <= now);
        self.in_flight = later;
        let mut due: Vec<Vec<u8>> = due.into_iter().map(|(_, d)| d).collect();
        due.shuffle(&mut self.rng);
        due
    }
}

fn unlimited() -> SnapshotLimits {
    SnapshotLimits {
        budget_bytes: usize::MAX,
        ..SnapshotLimits::default()
    }
}

#[test]
fn every_completed_snapshot_equals_the_truth_despite_loss_duplication_and_reordering() {
    for seed in 0..20 {
        let mut world = World::with_wide_ids(seed, 80);
        let mut encoder = SnapshotEncoder::new(unlimited());
        let mut decoder = SnapshotDecoder::new(unlimited());
        let mut down = Link {
            rng: ChaCha8Rng::seed_from_u64(seed + 100),
            in_flight: Vec::new(),
            loss: 0.3,
        };
        let mut up = Link {
            rng: ChaCha8Rng::seed_from_u64(seed + 200),
            in_flight: Vec::new(),
            loss: 0.3,
        };
        let mut truth_at: BTreeMap<u64, View> = BTreeMap::new();
        let mut completed = 0;
        for tick in 1..=300u64 {
            world.step();
            let truth = world.view();
            truth_at.insert(tick, truth.clone());
            let encoded = encoder.encode(tick, &truth, |_, _| 0);
            for d in encoded.datagrams {
                down.send(tick, d);
            }
            for d in down.deliver(tick) {
                match decoder.receive(&d) {
                    Ok(Some(seq)) => {
                        completed += 1;
                        up.send(tick, seq.to_le_bytes().to_vec());
                        let (at, view) = decoder.view().unwrap();
                        // The newest complete view is exactly the truth of its tick.
                        assert_eq!(view, &truth_at[&at], "seed {seed}, tick {at}");
                    }
                    Ok(None) => {}
                    // A datagram whose baseline the client never completed is unusable;
                    // the server moves on to a newer baseline once acks arrive.
                    Err(SnapshotError::UnknownBaseline { .. }) => {}
                    Err(e) => panic!("seed {seed}: {e}"),
                }
            }
            for ack in up.deliver(tick) {
                encoder.ack(u32::from_le_bytes(ack.try_into().unwrap()));
            }
        }
        assert!(
            completed > 100,
            "seed {seed}: only {completed} snapshots completed"
        );
        // Once datagrams get through, the client's view is the current truth.
        down.loss = 0.0;
        up.loss = 0.0;
        for tick in 301..=310u64 {
            let truth = world.view();
            let encoded = encoder.encode(tick, &truth, |_, _| 0);
            for d in encoded.datagrams {
                if let Ok(Some(seq)) = decoder.receive(&d) {
                    encoder.ack(seq);
                }
            }
            assert_eq!(
                decoder.view().unwrap().1,
                &truth,
                "seed {seed}, tick {tick}"
            );
        }
    }
}

#[test]
fn unchanged_entities_cost_nothing_and_a_moving_turning_ship_at_most_four_bytes() {
    let mut world = World::new(7, 200);
    let mut encoder = SnapshotEncoder::new(unlimited());
    let mut decoder = SnapshotDecoder::new(unlimited());
    let first = encoder.encode(1, &world.view(), |_, _| 0);
    for d in &first.datagrams {
        if let Ok(Some(seq)) = decoder.receive(d) {
            encoder.ack(seq);
        }
    }
    // Nothing changed: a header only.
    let still = encoder.encode(2, &world.view(), |_, _| 0);
    assert_eq!(still.datagrams.len(), 1);
    assert_eq!(still.changes_sent, 0);
    let header = still.datagrams[0].len();
    assert!(header <= 8, "header {header} bytes");
    for d in &still.datagrams {
        if let Ok(Some(seq)) = decoder.receive(d) {
            encoder.ack(seq);
        }
    }
    // Everyone moves up to 3 m and turns.
    for body in world.entities.values_mut() {
        body.local.0 = (body.local.0 + 2.9).min(SECTOR - 1.0);
        body.local.1 = (body.local.1 - 2.9).max(0.0);
        body.heading += 0.1;
    }
    let moved = encoder.encode(3, &world.view(), |_, _| 0);
    let bytes: usize =
        moved.datagrams.iter().map(Vec::len).sum::<usize>() - moved.datagrams.len() * header;
    let per_entity = bytes as f64 / moved.changes_sent as f64;
    assert!(moved.changes_sent >= 190, "{} changed", moved.changes_sent);
    assert!(per_entity <= 4.0, "{per_entity:.2} bytes per moving entity");
    for d in &moved.datagrams {
        assert!(d.len() <= SnapshotLimits::default().max_datagram_bytes);
        decoder.receive(d).unwrap();
    }
    assert_eq!(decoder.view().unwrap().1, &world.view());
}

/// Encodes `world` at `tick`, delivers every datagram, acknowledges; returns the snapshot.
fn send_all(
    encoder: &mut SnapshotEncoder,
    decoder: &mut SnapshotDecoder,
    tick: u64,
    world: &World,
) -> astroboids_protocol::snapshot::EncodedSnapshot {
    let encoded = encoder.encode(tick, &world.view(), |_, _| 0);
    for d in &encoded.datagrams {
        if let Some(seq) = decoder.receive(d).unwrap() {
            encoder.ack(seq);
        }
    }
    assert_eq!(
        decoder.view().unwrap(),
        (tick, &world.view()),
        "tick {tick}"
    );
    encoded
}

#[test]
fn ships_moving_as_predicted_cost_nothing_and_steering_ones_two_bytes() {
    let mut world = World::new(13, 100);
    for (i, body) in world.entities.values_mut().enumerate() {
        // 2.5 m and 2/256 of a turn per tick: whole quantization steps, so a prediction
        // from the last two snapshots is exact.
        body.local = (100.0 + i as f32 * 5.0, 900.0);
        body.heading = 0.0;
        body.velocity = (2.5, -1.25);
        body.turn = std::f32::consts::TAU * 2.0 / 256.0;
    }
    let advance = |world: &mut World| {
        for body in world.entities.values_mut() {
            body.local.0 += body.velocity.0;
            body.local.1 += body.velocity.1;
            body.heading += body.turn;
        }
    };
    let mut encoder = SnapshotEncoder::new(unlimited());
    let mut decoder = SnapshotDecoder::new(unlimited());
    send_all(&mut encoder, &mut decoder, 1, &world);
    advance(&mut world);
    let learning = send_all(&mut encoder, &mut decoder, 2, &world);
    assert_eq!(learning.changes_sent, 100, "the first move is news");
    for tick in 3..=20 {
        advance(&mut world);
        let cruising = send_all(&mut encoder, &mut decoder, tick, &world);
        assert_eq!(
            cruising.changes_sent, 0,
            "tick {tick}: cruising costs nothing"
        );
        assert_eq!(cruising.record_bytes, 0);
    }
    // They steer: velocity and turn rate drift a little each tick.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for tick in 21..=40 {
        for body in world.entities.values_mut() {
            body.velocity.0 += rng.random_range(-0.15..0.15);
            body.velocity.1 += rng.random_range(-0.15..0.15);
            body.turn += rng.random_range(-0.01..0.01);
        }
        advance(&mut world);
        let steering = send_all(&mut encoder, &mut decoder, tick, &world);
        let per_entity = steering.record_bytes as f64 / steering.changes_sent.max(1) as f64;
        assert!(
            per_entity <= 2.0,
            "tick {tick}: {per_entity:.2} bytes per steering ship"
        );
    }
    // They stop dead: the prediction is wrong once, then right again.
    for body in world.entities.values_mut() {
        body.velocity = (0.0, 0.0);
        body.turn = 0.0;
    }
    let stopped = send_all(&mut encoder, &mut decoder, 41, &world);
    assert_eq!(stopped.changes_sent, 100);
    let still = send_all(&mut encoder, &mut decoder, 42, &world);
    assert_eq!(still.changes_sent, 0);
}

#[test]
fn an_old_baseline_forces_a_resync_that_a_fresh_client_can_decode() {
    let mut world = World::new(3, 50);
    let limits = unlimited();
    let mut encoder = SnapshotEncoder::new(limits.clone());
    let first = encoder.encode(1, &world.view(), |_, _| 0);
    assert_eq!(first.baseline, None);
    encoder.ack(first.seq);
    let second = encoder.encode(2, &world.view(), |_, _| 0);
    assert_eq!(second.baseline, Some(first.seq));
    // No acks for longer than the history: the acked snapshot is forgotten.
    for tick in 3..(3 + limits.history as u64) {
        world.step();
        encoder.encode(tick, &world.view(), |_, _| 0);
    }
    let resync = encoder.encode(100, &world.view(), |_, _| 0);
    assert_eq!(
        resync.baseline, None,
        "too old a baseline means a full snapshot"
    );
    let mut fresh = SnapshotDecoder::new(limits);
    let mut done = None;
    for d in &resync.datagrams {
        done = fresh.receive(d).unwrap().or(done);
    }
    assert_eq!(done, Some(resync.seq));
    assert_eq!(fresh.view().unwrap(), (100, &world.view()));
}

/// Moving entities whose neighbours need no record cannot share a run and cost a whole
/// record each: the budget still holds (it once priced them as run entries, 2 bytes, and
/// sent half again as much as it allowed).
#[test]
fn the_budget_holds_when_moving_entities_cannot_share_runs() {
    let mut world = World::new(21, 200);
    for (i, body) in world.entities.values_mut().enumerate() {
        // 1 m (16 steps) per tick: a prediction from two snapshots is exact.
        body.local = (100.0 + i as f32 * 4.0, 500.0);
        body.heading = 0.0;
        body.velocity = (1.0, 0.0);
        body.turn = 0.0;
    }
    let cruise = |world: &mut World| {
        for body in world.entities.values_mut() {
            body.local.0 += body.velocity.0;
        }
    };
    let budget = 100;
    let limits = SnapshotLimits {
        budget_bytes: budget,
        ..SnapshotLimits::default()
    };
    let mut encoder = SnapshotEncoder::new(limits.clone());
    let mut decoder = SnapshotDecoder::new(limits);
    let mut step = |world: &World, tick: u64| {
        let encoded = encoder.encode(tick, &world.view(), |id, _| id);
        assert!(
            encoded.record_bytes <= budget,
            "tick {tick}: {} record bytes over a {budget}-byte budget",
            encoded.record_bytes
        );
        for d in &encoded.datagrams {
            if let Some(seq) = decoder.receive(d).unwrap() {
                encoder.ack(seq);
            }
        }
        (
            encoded.changes_sent,
            decoder.view().unwrap().1 == &world.view(),
        )
    };
    // Until the client has everything and every motion: nothing left to send.
    let mut tick = 0;
    loop {
        tick += 1;
        assert!(tick < 200, "the view never settled");
        cruise(&mut world);
        if step(&world, tick) == (0, true) {
            break;
        }
    }
    // Every other entity shifts 1/16 m sideways: 100 changes, none next to another.
    for (i, body) in world.entities.values_mut().enumerate() {
        if i % 2 == 0 {
            body.local.1 += 1.0 / 16.0;
        }
    }
    let mut sent = 0;
    let settled_at = tick + 60;
    loop {
        tick += 1;
        assert!(tick < settled_at, "the view never caught up");
        cruise(&mut world);
        let (changes, caught_up) = step(&world, tick);
        sent += changes;
        if caught_up && changes == 0 {
            break;
        }
    }
    assert!(sent >= 100, "{sent} changes went out");
}

#[test]
fn the_budget_serves_priorities_first_and_catches_up() {
    let world = World::new(11, 300);
    let truth = world.view();
    let own: Vec<u64> = truth.keys().copied().take(5).collect();
    let limits = SnapshotLimits {
        budget_bytes: 300,
        ..SnapshotLimits::default()
    };
    let mut encoder = SnapshotEncoder::new(limits.clone());
    let mut decoder = SnapshotDecoder::new(limits);
    let priority = |id: u64, _: &ViewEntity| if own.contains(&id) { 0 } else { 1 + id };
    let first = encoder.encode(1, &truth, priority);
    assert!(
        first.changes_deferred > 0,
        "300 new entities do not fit 300 bytes"
    );
    for d in &first.datagrams {
        if let Ok(Some(seq)) = decoder.receive(d) {
            encoder.ack(seq);
        }
    }
    let seen = decoder.view().unwrap().1;
    assert!(
        own.iter().all(|id| seen.contains_key(id)),
        "own ships come first"
    );
    let mut ticks = 1;
    while decoder.view().unwrap().1 != &truth {
        ticks += 1;
        assert!(ticks < 100, "the view never caught up");
        let encoded = encoder.encode(ticks, &truth, priority);
        assert!(encoded.datagrams.iter().map(Vec::len).sum::<usize>() <= 300 + 64);
        for d in &encoded.datagrams {
            if let Ok(Some(seq)) = decoder.receive(d) {
                encoder.ack(seq);
            }
        }
    }
}

#[test]
fn malformed_datagrams_are_refused_and_change_nothing() {
    let world = World::new(5, 20);
    let mut encoder = SnapshotEncoder::new(unlimited());
    let mut decoder = SnapshotDecoder::new(unlimited());
    let first = encoder.encode(1, &world.view(), |_, _| 0);
    for d in &first.datagrams {
        decoder.receive(d).unwrap();
    }
    let before = decoder.view().unwrap().1.clone();
    assert!(matches!(
        decoder.receive(&[]),
        Err(SnapshotError::Malformed)
    ));
    assert!(matches!(
        decoder.receive(&[9, 1, 1, 0, 0, 1]),
        Err(SnapshotError::Format(9))
    ));
    assert!(matches!(
        decoder.receive(&[SNAPSHOT_FORMAT, 5, 5, 0, 3, 2]),
        Err(SnapshotError::BadPart { .. })
    ));
    let mut truncated = first.datagrams[0].clone();
    truncated[1] = 50; // another seq, so it is not a duplicate
    truncated.truncate(truncated.len() - 1);
    assert!(matches!(
        decoder.receive(&truncated),
        Err(SnapshotError::Malformed)
    ));
    assert!(matches!(
        decoder.receive(&[SNAPSHOT_FORMAT, 60, 60, 99, 0, 1]),
        Err(SnapshotError::UnknownBaseline { baseline: 98, .. })
    ));
    // Ids and position deltas that would overflow are refused, not a panic.
    // (17 removals, each 2^60 - 1 ids after the last: past u64::MAX.)
    let mut overflow = vec![SNAPSHOT_FORMAT, 70, 70, 0, 0, 1];
    for _ in 0..17 {
        overflow.extend_from_slice(&[0xF0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    }
    assert!(matches!(
        decoder.receive(&overflow),
        Err(SnapshotError::Malformed)
    ));
    // A run (residuals of moving entities) over entities that were never seen moving, or
    // longer than the movers there are, is refused: nothing to predict them from.
    let first_id = *before.keys().next().unwrap();
    let baseline = u8::try_from(first.seq + 1).unwrap();
    let run_head = u8::try_from(first_id << 4 | 9).unwrap();
    let run = [
        SNAPSHOT_FORMAT,
        80,
        80,
        baseline,
        0,
        1,
        run_head,
        2,
        0x12,
        0x34,
        0x56,
    ];
    assert!(matches!(
        decoder.receive(&run),
        Err(SnapshotError::Malformed)
    ));
    assert_eq!(decoder.view().unwrap().1, &before);
}
