//! Snapshot sizes and encode/decode time for one client's view (issue #6 goals):
//! bytes per moving visible entity per tick, per unchanged entity, bytes/s for a client seeing
//! 200 moving entities at 10 Hz, and the ratio to sending full snapshots of the same view.
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

/// Ships that all move every tick (up to 3 m per axis: 30 m/s at 10 Hz) and turn.
struct Crowd {
    rng: ChaCha8Rng,
    ships: Vec<(u64, (f32, f32), f32)>,
}

impl Crowd {
    fn new() -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let ships = (0..ENTITIES)
            .map(|i| {
                (
                    1_000 + i * 7,
                    (
                        rng.random_range(100.0..900.0),
                        rng.random_range(100.0..900.0),
                    ),
                    rng.random_range(0.0..std::f32::consts::TAU),
                )
            })
            .collect();
        Self { rng, ships }
    }

    fn step(&mut self) {
        for (_, (x, y), heading) in &mut self.ships {
            *heading += self.rng.random_range(-0.1..0.1);
            *x = (*x + 3.0 * heading.cos()).clamp(1.0, 999.0);
            *y = (*y + 3.0 * heading.sin()).clamp(1.0, 999.0);
        }
    }

    fn view(&self) -> View {
        self.ships
            .iter()
            .map(|&(id, local, heading)| {
                (
                    id,
                    ViewEntity::quantize(KIND_SHIP, (0, 0), local, heading, 100.0),
                )
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
        .map(|&(id, local, heading)| RawEntity {
            id,
            kind: KIND_SHIP,
            sector: (0, 0),
            local,
            heading,
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
fn stream(limits: SnapshotLimits, full_every_tick: bool, still: bool) -> Totals {
    let mut crowd = Crowd::new();
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

fn print_sizes() {
    let unlimited = SnapshotLimits {
        budget_bytes: usize::MAX,
        ..SnapshotLimits::default()
    };
    let moving = stream(unlimited.clone(), false, false);
    let full = stream(unlimited.clone(), true, false);
    let still = stream(unlimited, false, true);
    let budget = stream(SnapshotLimits::default(), false, false);
    let per_second = |t: &Totals| t.bytes as f64 / TICKS as f64 * 10.0;
    let raw_per_second = raw_snapshot_bytes(&Crowd::new()) as f64 * 10.0;
    println!(
        "snapshots of one client's view of {ENTITIES} ships that all move (3 m) and turn every tick, {TICKS} ticks at 10 Hz, all acknowledged:"
    );
    println!(
        "  bytes per moving entity per tick (records): {:.2}  (goal <= 4)",
        moving.later_record_bytes as f64 / moving.changes.max(1) as f64
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
    print_sizes();
    let mut crowd = Crowd::new();
    let limits = SnapshotLimits::default();
    let mut encoder = SnapshotEncoder::new(limits.clone());
    let mut decoder = SnapshotDecoder::new(limits);
    let mut tick = 0;
    c.bench_function("encode+decode 200 moving ships, acked", |b| {
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
