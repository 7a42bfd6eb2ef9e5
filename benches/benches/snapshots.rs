//! Snapshot sizes and encode/decode time for one client's view:
//! bytes per moving visible entity per tick, per unchanged entity, bytes/s for a client seeing
//! 200 moving entities at 10 Hz, and the ratio to sending full snapshots of the same view,
//! for ships flown with inertia (steering) and for a no-inertia worst case (jittery).
//! Sizes are printed first (they are counts, not timings); criterion then times the codec.
//!
//! Run: `cargo bench -p astroboids-benches --bench snapshots`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use astroboids_net::snapshot::{
    KIND_SHIP, SnapshotDecoder, SnapshotEncoder, SnapshotLimits, View, ViewEntity,
};

const ENTITIES: u64 = 200;
const TICKS: u64 = 600;

/// How the crowd moves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Motion {
    /// Every tick a fresh random turn (up to 0.1 rad) and 3 m along the new heading: no
    /// inertia, the worst case for prediction.
    Jittery,
    /// Ships with inertia, as the simulation flies them: speed up to 3 m per tick, thrust
    /// and turn rate change a little every tick.
    Steering,
}

/// Ships that all move every tick and turn.
struct Crowd {
    rng: ChaCha8Rng,
    motion: Motion,
    ships: Vec<Ship>,
}

struct Ship {
    id: u64,
    position: (f32, f32),
    heading: f32,
    /// Metres per tick.
    velocity: (f32, f32),
    /// Radians per tick.
    turn: f32,
}

impl Crowd {
    fn new(motion: Motion) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let ships = (0..ENTITIES)
            .map(|i| {
                let heading: f32 = rng.random_range(0.0..std::f32::consts::TAU);
                Ship {
                    id: 1_000 + i * 7,
                    position: (
                        rng.random_range(100.0..900.0),
                        rng.random_range(100.0..900.0),
                    ),
                    heading,
                    velocity: (2.0 * heading.cos(), 2.0 * heading.sin()),
                    turn: rng.random_range(-0.03..0.03),
                }
            })
            .collect();
        Self { rng, motion, ships }
    }

    fn step(&mut self) {
        for Ship {
            position: (x, y),
            heading,
            velocity,
            turn,
            ..
        } in &mut self.ships
        {
            match self.motion {
                Motion::Jittery => {
                    *heading += self.rng.random_range(-0.1..0.1);
                    *velocity = (3.0 * heading.cos(), 3.0 * heading.sin());
                }
                Motion::Steering => {
                    *turn = (*turn + self.rng.random_range(-0.005..0.005)).clamp(-0.05, 0.05);
                    *heading += *turn;
                    let thrust = self.rng.random_range(-0.1..0.15);
                    velocity.0 += thrust * heading.cos();
                    velocity.1 += thrust * heading.sin();
                    let speed = velocity.0.hypot(velocity.1);
                    if speed > 3.0 {
                        *velocity = (velocity.0 * 3.0 / speed, velocity.1 * 3.0 / speed);
                    }
                }
            }
            // Ships turn back at the edges rather than pile up there.
            let bounce_x = !(1.0..=999.0).contains(&(*x + velocity.0));
            let bounce_y = !(1.0..=999.0).contains(&(*y + velocity.1));
            if bounce_x {
                velocity.0 = -velocity.0;
            }
            if bounce_y {
                velocity.1 = -velocity.1;
            }
            if bounce_x || bounce_y {
                *heading = velocity.1.atan2(velocity.0);
            }
            *x += velocity.0;
            *y += velocity.1;
        }
    }

    fn view(&self) -> View {
        self.ships
            .iter()
            .map(|ship| {
                let e = ViewEntity::quantize(KIND_SHIP, (0, 0), ship.position, ship.heading, 100.0);
                (ship.id, e)
            })
            .collect()
    }
}

/// What an unquantized full snapshot would carry per entity (postcard-encoded): the naive
/// baseline a delta codec is measured against.
#[derive(serde::Serialize)]
struct RawEntity {
    id: u64,
    kind: u8,
    sector: (i32, i32),
    local: (f32, f32),
    heading: f32,
    hull: f32,
}

/// Bytes of one unquantized full snapshot of the crowd.
fn raw_snapshot_bytes(crowd: &Crowd) -> usize {
    let raw: Vec<RawEntity> = crowd
        .ships
        .iter()
        .map(|ship| RawEntity {
            id: ship.id,
            kind: KIND_SHIP,
            sector: (0, 0),
            local: ship.position,
            heading: ship.heading,
            hull: 100.0,
        })
        .collect();
    postcard::to_allocvec(&raw).expect("plain data").len()
}

/// Totals over a run of TICKS ticks.
#[derive(Default)]
struct Totals {
    bytes: u64,
    record_bytes: u64,
    /// Record bytes after the first snapshot.
    later_record_bytes: u64,
    changes: u64,
}

/// Runs TICKS ticks; every snapshot is acknowledged unless `full_every_tick` (then every
/// snapshot is a full one).
fn stream(motion: Motion, limits: SnapshotLimits, full_every_tick: bool, still: bool) -> Totals {
    let mut crowd = Crowd::new(motion);
    let mut encoder = SnapshotEncoder::new(limits.clone());
    let mut decoder = SnapshotDecoder::new(limits);
    let mut totals = Totals::default();
    for tick in 1..=TICKS {
        if !still {
            crowd.step();
        }
        let view = crowd.view();
        let encoded = encoder.encode(tick, &view, |_, _| 0);
        totals.bytes += encoded
            .datagrams
            .iter()
            .map(|d| d.len() as u64)
            .sum::<u64>();
        totals.record_bytes += encoded.record_bytes as u64;
        if tick > 1 {
            totals.later_record_bytes += encoded.record_bytes as u64;
            totals.changes += encoded.changes_sent as u64;
        }
        for d in &encoded.datagrams {
            if let Ok(Some(seq)) = decoder.receive(d)
                && !full_every_tick
            {
                encoder.ack(seq);
            }
        }
    }
    totals
}

fn print_sizes(motion: Motion) {
    let unlimited = SnapshotLimits {
        budget_bytes: usize::MAX,
        ..SnapshotLimits::default()
    };
    let moving = stream(motion, unlimited.clone(), false, false);
    let full = stream(motion, unlimited.clone(), true, false);
    let still = stream(motion, unlimited, false, true);
    let budget = stream(motion, SnapshotLimits::default(), false, false);
    let per_second = |t: &Totals| t.bytes as f64 / TICKS as f64 * 10.0;
    let raw_per_second = raw_snapshot_bytes(&Crowd::new(motion)) as f64 * 10.0;
    println!(
        "{motion:?}: one client's view of {ENTITIES} ships that all move (up to 3 m) and turn every tick, {TICKS} ticks at 10 Hz, all acknowledged:"
    );
    println!(
        "  bytes per moving entity per tick (records): {:.2}  (goal <= 4)",
        moving.later_record_bytes as f64 / (ENTITIES * (TICKS - 1)) as f64
    );
    println!(
        "  entities with a record per tick (the rest moved as predicted): {:.1} of {ENTITIES}",
        moving.changes as f64 / (TICKS - 1) as f64
    );
    println!(
        "  bytes per unchanged entity per tick (records), same view held still: {:.3}  (goal 0; each tick is a {:.1}-byte header)",
        still.later_record_bytes as f64 / (ENTITIES * (TICKS - 1)) as f64,
        (still.bytes - still.record_bytes) as f64 / TICKS as f64
    );
    println!(
        "  bytes/s with deltas, no budget: {:.0}  (goal <= 8,000)",
        per_second(&moving)
    );
    println!(
        "  bytes/s with deltas, default 800 B/tick budget: {:.0} ({:.1}% of the changes sent in their own tick)",
        per_second(&budget),
        100.0 * budget.changes as f64 / moving.changes.max(1) as f64
    );
    println!(
        "  bytes/s with a full quantized snapshot every tick: {:.0}; full / delta: {:.1}x",
        per_second(&full),
        full.bytes as f64 / moving.bytes.max(1) as f64
    );
    println!(
        "  bytes/s with a full unquantized snapshot every tick (postcard of id, kind, sector, f32 position, heading, hull): {:.0}; raw / delta: {:.1}x  (goal >= 10x)",
        raw_per_second,
        raw_per_second / per_second(&moving)
    );
}

fn bench(c: &mut Criterion) {
    print_sizes(Motion::Steering);
    print_sizes(Motion::Jittery);
    let mut crowd = Crowd::new(Motion::Steering);
    let limits = SnapshotLimits::default();
    let mut encoder = SnapshotEncoder::new(limits.clone());
    let mut decoder = SnapshotDecoder::new(limits);
    let mut tick = 0;
    c.bench_function("encode+decode 200 steering ships, acked", |b| {
        b.iter(|| {
            tick += 1;
            crowd.step();
            let view = crowd.view();
            let encoded = encoder.encode(tick, black_box(&view), |_, _| 0);
            for d in &encoded.datagrams {
                if let Ok(Some(seq)) = decoder.receive(d) {
                    encoder.ack(seq);
                }
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
