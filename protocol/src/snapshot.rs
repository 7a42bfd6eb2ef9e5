//! Fog-of-war delta snapshots (issue #6, the codec): what one client may see of the world,
//! sent each tick as datagrams that each decode on their own, as a delta against the newest
//! snapshot the client acknowledged.
//!
//! The server keeps, per client, a [`SnapshotEncoder`]: the snapshots it sent (what the client
//! has if all of a snapshot's datagrams arrive) and the newest one acknowledged. Each tick it
//! carries that baseline forward (dead reckoning: every entity keeps moving as it moved between
//! the last two snapshots it was sent in, in integer steps both ends compute alike) and diffs
//! the client's filtered view against the prediction: entities where the prediction holds
//! (still asteroids, cruising ships) are omitted, the rest carry only residuals, vanished ones
//! an explicit removal. Without a usable baseline (nothing acked yet, or the acked one has left
//! the history) it sends everything: a resync. A byte budget per tick takes entities in
//! priority order (the caller's: own ships, then near contacts); what does not fit is left at
//! its predicted state and goes out in a later tick.
//!
//! The client's [`SnapshotDecoder`] rebuilds each snapshot on its baseline the same way,
//! acknowledges it once all its datagrams arrived, and shows the newest complete one.
//!
//! Wire format of a datagram: `[FORMAT u8][seq varint][tick varint][baseline varint: 0 = none,
//! else seq + 1][part u8][parts u8]` then records, each `varint(id_gap << 4 | flags)` (in 128
//! bits: ids use all 64) with the id gap from the previous record's (last) id in this datagram. flags 0 = removal; 8 = a whole
//! entity follows (motion reset); 9 = a run: `varint(n)` then n entries of 12 bits (4-bit
//! residuals x, y, heading) for this entity and the next n - 1 moving entities of the
//! baseline, in id order; else bit 0 = position residual (two zigzag varints), bit 1 = heading
//! residual (u8), bit 2 = hull (u8). A ship steering smoothly costs 1.5 bytes, one moving as
//! predicted nothing.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// The snapshot datagram format this build speaks.
pub const SNAPSHOT_FORMAT: u8 = 3;

/// Positions are quantized to 1/16 m inside a sector (u16: sectors up to 4,096 m).
pub const POSITION_STEPS_PER_METRE: f32 = 16.0;

/// Entity kinds in a view (what [`ViewEntity::kind`] holds).
pub const KIND_OWN_SHIP: u8 = 0;
/// Another ship with no owner (another player's carries its owner's colour: [`owned_ship_kind`]).
pub const KIND_SHIP: u8 = 1;
/// An asteroid's `hull` byte carries its radius in metres.
pub const KIND_ASTEROID: u8 = 2;
/// A nebula (sensors reach less far inside): its `hull` byte carries its radius in steps of
/// [`AREA_RADIUS_STEP_METRES`].
pub const KIND_NEBULA: u8 = 3;
/// A hazard (it damages hulls inside): radius as a nebula's.
pub const KIND_HAZARD: u8 = 4;
/// Nebula and hazard radii go up to a quarter of a sector (1,024 m at most): 4 m steps fit a byte.
pub const AREA_RADIUS_STEP_METRES: f32 = 4.0;
/// Other players' ships are `KIND_OWNED_SHIP_FIRST + slot`, the slot one of [`OWNER_SLOTS`]
/// picked from the owner's name, so a client colours each owner's ships alike (and owners
/// apart, as far as the palette goes) without learning anyone's name.
pub const KIND_OWNED_SHIP_FIRST: u8 = 16;
pub const OWNER_SLOTS: u8 = 6;

/// Asteroid ids have the top bit set (ship ids never do); below it the sector's y and x (the
/// low 23 bits of each) and the asteroid's index there. Asteroids of one sector thus get
/// neighbouring ids and neighbouring sectors near ones, which keeps the id gaps in snapshots
/// small (a hashed id cost up to 10 bytes per record). Sectors 2^23 apart share ids; no view
/// spans more than a few sectors, so no client can see both. The live views and the replay
/// viewer name asteroids alike with it.
pub const ASTEROID_ID_BIT: u64 = 1 << 63;

/// The id of asteroid `index` of `sector` (see [`ASTEROID_ID_BIT`]).
pub fn asteroid_id(sector: (i32, i32), index: u16) -> u64 {
    const COORD_MASK: u64 = (1 << 23) - 1;
    let x = u64::from(sector.0 as u32) & COORD_MASK;
    let y = u64::from(sector.1 as u32) & COORD_MASK;
    ASTEROID_ID_BIT | y << 39 | x << 16 | u64::from(index)
}

/// The kind of a ship of `owner` as another player sees it.
pub fn owned_ship_kind(owner: &str) -> u8 {
    // FNV-1a: stable across builds and platforms, which a std hasher does not promise.
    let hash = owner.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    KIND_OWNED_SHIP_FIRST + (hash % u64::from(OWNER_SLOTS)) as u8
}

/// The owner's colour slot of another player's ship, if `kind` is one.
pub fn owner_slot(kind: u8) -> Option<u8> {
    (KIND_OWNED_SHIP_FIRST..KIND_OWNED_SHIP_FIRST + OWNER_SLOTS)
        .contains(&kind)
        .then(|| kind - KIND_OWNED_SHIP_FIRST)
}

/// Whether `kind` is a ship (the player's own, or anyone else's).
pub fn is_ship(kind: u8) -> bool {
    kind == KIND_OWN_SHIP || kind == KIND_SHIP || owner_slot(kind).is_some()
}

/// Whether `kind` is another player's or an unowned ship.
pub fn is_other_ship(kind: u8) -> bool {
    kind == KIND_SHIP || owner_slot(kind).is_some()
}

/// Whether `kind` is an area (nebula or hazard).
pub fn is_area(kind: u8) -> bool {
    kind == KIND_NEBULA || kind == KIND_HAZARD
}

/// What a client sees of one entity, quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewEntity {
    /// What it is (ship, own ship, asteroid...), as the caller numbers them.
    pub kind: u8,
    pub sector: (i32, i32),
    /// Position in the sector, in 1/16 m.
    pub x: u16,
    pub y: u16,
    /// Heading in 1/256 turns.
    pub heading: u8,
    pub hull: u8,
}

impl ViewEntity {
    /// Quantizes a position in a sector (metres), a heading (radians) and a hull (0-255).
    pub fn quantize(
        kind: u8,
        sector: (i32, i32),
        local: (f32, f32),
        heading: f32,
        hull: f32,
    ) -> Self {
        let q = |v: f32| (v * POSITION_STEPS_PER_METRE).round().clamp(0.0, 65_535.0) as u16;
        let turns = heading / std::f32::consts::TAU;
        Self {
            kind,
            sector,
            x: q(local.0),
            y: q(local.1),
            heading: ((turns - turns.floor()) * 256.0).round() as u32 as u8,
            hull: hull.round().clamp(0.0, 255.0) as u8,
        }
    }

    /// A nebula or hazard of `radius` metres centred at `local` in `sector`.
    pub fn area(kind: u8, sector: (i32, i32), local: (f32, f32), radius: f32) -> Self {
        debug_assert!(is_area(kind));
        Self::quantize(
            kind,
            sector,
            local,
            0.0,
            (radius / AREA_RADIUS_STEP_METRES).ceil(),
        )
    }

    /// An area's radius in metres (rounded up to the step, so the disc drawn covers it).
    pub fn area_radius(&self) -> f32 {
        f32::from(self.hull) * AREA_RADIUS_STEP_METRES
    }

    /// The position in the sector, in metres.
    pub fn local(&self) -> (f32, f32) {
        (
            f32::from(self.x) / POSITION_STEPS_PER_METRE,
            f32::from(self.y) / POSITION_STEPS_PER_METRE,
        )
    }
}

/// Everything one client sees, by entity id.
pub type View = BTreeMap<u64, ViewEntity>;

/// Bounds on one client's snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotLimits {
    /// Largest datagram (quinn's `max_datagram_size()`, about 1,200 bytes).
    pub max_datagram_bytes: usize,
    /// Record bytes per snapshot (the bandwidth budget; 800 B at 10 Hz = 8 KB/s).
    pub budget_bytes: usize,
    /// Snapshots kept as possible baselines, both ends.
    pub history: usize,
    /// Datagrams one snapshot may take.
    pub max_parts: u8,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        Self {
            max_datagram_bytes: 1_150,
            budget_bytes: 800,
            history: 32,
            max_parts: 16,
        }
    }
}

/// First byte of a client's acknowledgement datagram: `[ACK_TAG][seq u32 LE]`.
pub const ACK_TAG: u8 = 0xA1;

/// The datagram acknowledging snapshot `seq`.
pub fn encode_ack(seq: u32) -> [u8; 5] {
    let s = seq.to_le_bytes();
    [ACK_TAG, s[0], s[1], s[2], s[3]]
}

/// The snapshot an acknowledgement datagram names (`None` for anything else).
pub fn decode_ack(datagram: &[u8]) -> Option<u32> {
    match datagram {
        [ACK_TAG, a, b, c, d] => Some(u32::from_le_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Most datagrams one snapshot may take (the client tracks parts in a 32-bit set).
pub const MAX_PARTS: u8 = 32;

/// Why a datagram was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot format {0} is not supported (this build reads {SNAPSHOT_FORMAT})")]
    Format(u8),
    #[error("truncated or malformed snapshot datagram")]
    Malformed,
    #[error("snapshot {seq} is based on snapshot {baseline}, which this client does not have")]
    UnknownBaseline { seq: u32, baseline: u32 },
    #[error("snapshot datagram part {part} of {parts} is out of range")]
    BadPart { part: u8, parts: u8 },
}

// --- byte helpers ------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A record's head: `varint(id_gap << 4 | flags)`, computed in 128 bits so that no gap loses
/// bits (asteroid ids have the top bit set: gaps of 2^60 and more are common).
fn put_head(out: &mut Vec<u8>, gap: u64, flags: u64) {
    let mut v = u128::from(gap) << 4 | u128::from(flags);
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        let b = *self.bytes.get(self.at).ok_or(SnapshotError::Malformed)?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, SnapshotError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(SnapshotError::Malformed)
    }

    /// A record's head: (id gap, flags).
    fn head(&mut self) -> Result<(u64, u64), SnapshotError> {
        let mut v = 0u128;
        // 68 bits at most: ten bytes of seven.
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            v |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                let gap = u64::try_from(v >> 4).map_err(|_| SnapshotError::Malformed)?;
                return Ok((gap, (v & 0xf) as u64));
            }
        }
        Err(SnapshotError::Malformed)
    }

    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

const FLAG_POSITION: u64 = 1;
const FLAG_HEADING: u64 = 2;
const FLAG_HULL: u64 = 4;
const FLAG_WHOLE: u64 = 8;
/// The flags of a run record (bit 3 with bit 0; a whole entity has bits 0-2 clear).
const FLAG_RUN: u64 = FLAG_WHOLE | 1;
/// Longest run: 3 + 96 bytes, so a run always fits an empty datagram.
const MAX_RUN: usize = 64;
/// What one 4-bit residual of a run can hold.
const NIBBLE: std::ops::RangeInclusive<i64> = -8..=7;
/// Predictions reach at most this many ticks ahead (positions are clamped long before).
const MAX_PREDICTED_TICKS: i64 = 1 << 20;

/// How an entity moved per tick (position steps, heading steps) as both ends last saw it:
/// what both ends predict it keeps doing. Entities without one are predicted to stay put.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Motion {
    x: i16,
    y: i16,
    heading: i8,
}

/// A snapshot as both ends hold it: the view at its tick and each moving entity's motion.
#[derive(Debug, Clone, Default)]
struct Conveyed {
    tick: u64,
    view: View,
    motion: BTreeMap<u64, Motion>,
}

/// Ticks from a baseline to the snapshot built on it (at least one, bounded).
fn elapsed(from: u64, to: u64) -> i64 {
    i64::try_from(to.saturating_sub(from))
        .unwrap_or(MAX_PREDICTED_TICKS)
        .clamp(1, MAX_PREDICTED_TICKS)
}

/// Where `e` is expected after `ticks` more ticks of `motion`. Integer arithmetic only: both
/// ends must predict bit for bit the same.
fn predict(e: &ViewEntity, motion: Option<&Motion>, ticks: i64) -> ViewEntity {
    let Some(m) = motion else { return *e };
    let step = |v: u16, d: i16| (i64::from(v) + i64::from(d) * ticks).clamp(0, 65_535) as u16;
    ViewEntity {
        x: step(e.x, m.x),
        y: step(e.y, m.y),
        heading: (i64::from(e.heading) + i64::from(m.heading) * ticks).rem_euclid(256) as u8,
        ..*e
    }
}

/// The motion seen between a baseline state and the state `ticks` later (`None`: still).
fn motion_between(before: &ViewEntity, after: &ViewEntity, ticks: i64) -> Option<Motion> {
    let per_tick = |d: i64| (d / ticks).clamp(i16::MIN.into(), i16::MAX.into()) as i16;
    let turned = i64::from(after.heading.wrapping_sub(before.heading) as i8);
    let m = Motion {
        x: per_tick(i64::from(after.x) - i64::from(before.x)),
        y: per_tick(i64::from(after.y) - i64::from(before.y)),
        heading: (turned / ticks) as i8,
    };
    (m != Motion::default()).then_some(m)
}

/// The baseline carried forward to `tick`: what the client shows for entities a snapshot
/// does not mention.
fn carried_forward(base: &Conveyed, tick: u64) -> Conveyed {
    let ticks = elapsed(base.tick, tick);
    Conveyed {
        tick,
        view: base
            .view
            .iter()
            .map(|(&id, e)| (id, predict(e, base.motion.get(&id), ticks)))
            .collect(),
        motion: base.motion.clone(),
    }
}

/// Records `entity` (now `after`, was `before` at the baseline) in `state`.
fn apply(state: &mut Conveyed, id: u64, change: &Change, before: Option<&ViewEntity>, ticks: i64) {
    match change {
        Change::Remove => {
            state.view.remove(&id);
            state.motion.remove(&id);
        }
        Change::Whole(e) => {
            state.view.insert(id, *e);
            state.motion.remove(&id);
        }
        Change::Delta(e) => {
            state.view.insert(id, *e);
            match before.and_then(|b| motion_between(b, e, ticks)) {
                Some(m) => state.motion.insert(id, m),
                None => state.motion.remove(&id),
            };
        }
    }
}

/// A change to send, against the baseline carried forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Remove,
    /// New to the client, or changed kind or sector: every field.
    Whole(ViewEntity),
    /// Changed in place: residuals against the prediction.
    Delta(ViewEntity),
}

/// The residuals of `now` against its prediction, when they fit a run entry.
fn run_residuals(now: &ViewEntity, predicted: &ViewEntity) -> Option<[i64; 3]> {
    let r = [
        i64::from(now.x) - i64::from(predicted.x),
        i64::from(now.y) - i64::from(predicted.y),
        i64::from(now.heading.wrapping_sub(predicted.heading) as i8),
    ];
    (now.hull == predicted.hull && r.iter().all(|v| NIBBLE.contains(v))).then_some(r)
}

/// One record: `change` of the entity `gap` ids after the previous record.
fn encode_record(out: &mut Vec<u8>, gap: u64, change: &Change, predicted: Option<&ViewEntity>) {
    let now = match change {
        Change::Remove => return put_head(out, gap, 0),
        Change::Whole(now) => {
            put_head(out, gap, FLAG_WHOLE);
            out.push(now.kind);
            put_varint(out, zigzag(i64::from(now.sector.0)));
            put_varint(out, zigzag(i64::from(now.sector.1)));
            put_varint(out, u64::from(now.x));
            put_varint(out, u64::from(now.y));
            out.push(now.heading);
            out.push(now.hull);
            return;
        }
        Change::Delta(now) => now,
    };
    let p = predicted.expect("a delta has a predicted state");
    let mut flags = 0;
    if (p.x, p.y) != (now.x, now.y) {
        flags |= FLAG_POSITION;
    }
    if p.heading != now.heading {
        flags |= FLAG_HEADING;
    }
    if p.hull != now.hull {
        flags |= FLAG_HULL;
    }
    debug_assert!(flags != 0, "entities as predicted are omitted");
    put_head(out, gap, flags);
    if flags & FLAG_POSITION != 0 {
        put_varint(out, zigzag(i64::from(now.x) - i64::from(p.x)));
        put_varint(out, zigzag(i64::from(now.y) - i64::from(p.y)));
    }
    if flags & FLAG_HEADING != 0 {
        out.push(now.heading.wrapping_sub(p.heading));
    }
    if flags & FLAG_HULL != 0 {
        out.push(now.hull);
    }
}

/// A run record: residuals of consecutive moving entities, 12 bits each.
fn encode_run(out: &mut Vec<u8>, gap: u64, residuals: &[[i64; 3]]) {
    put_head(out, gap, FLAG_RUN);
    put_varint(out, residuals.len() as u64);
    let mut nibbles = residuals.iter().flatten().map(|&r| (r & 0xf) as u8);
    while let Some(high) = nibbles.next() {
        out.push(high << 4 | nibbles.next().unwrap_or(0));
    }
}

/// Bytes of a run of `n` entities (without its head).
fn run_body_bytes(n: usize) -> usize {
    (n * 12).div_ceil(8)
}

/// What goes into datagrams: single records, or runs of moving entities.
enum Unit {
    Record(u64, Change),
    /// (id, residuals) of entities that follow each other among the baseline's movers.
    Run(Vec<(u64, [i64; 3])>),
}

impl Unit {
    fn ids(&self) -> Vec<u64> {
        match self {
            Unit::Record(id, _) => vec![*id],
            Unit::Run(members) => members.iter().map(|&(id, _)| id).collect(),
        }
    }

    fn encode(&self, out: &mut Vec<u8>, gap: u64, predicted: &View) {
        match self {
            Unit::Record(id, change) => encode_record(out, gap, change, predicted.get(id)),
            Unit::Run(members) => {
                let residuals: Vec<[i64; 3]> = members.iter().map(|&(_, r)| r).collect();
                encode_run(out, gap, &residuals);
            }
        }
    }
}

/// Records and runs for `chosen` (sorted by id): runs of consecutive movers of the baseline
/// (the decoder walks the same list), a lone runnable change as a record.
fn pack_units(
    chosen: &[(u64, Change, Option<[i64; 3]>)],
    base: &Conveyed,
    truth: &View,
) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    let mut run: Vec<(u64, [i64; 3])> = Vec::new();
    let flush = |run: &mut Vec<(u64, [i64; 3])>, units: &mut Vec<Unit>| match run.len() {
        0 => {}
        1 => {
            let (id, _) = run[0];
            units.push(Unit::Record(id, Change::Delta(truth[&id])));
            run.clear();
        }
        _ => units.push(Unit::Run(std::mem::take(run))),
    };
    for &(id, change, residuals) in chosen {
        match residuals {
            Some(r) => {
                let follows = run.last().is_some_and(|&(last, _)| {
                    run.len() < MAX_RUN && base.motion.range(last + 1..id).next().is_none()
                });
                if !follows {
                    flush(&mut run, &mut units);
                }
                run.push((id, r));
            }
            None => {
                flush(&mut run, &mut units);
                units.push(Unit::Record(id, change));
            }
        }
    }
    flush(&mut run, &mut units);
    units
}

/// `units` encoded one after another as in a single datagram body, and where each ends. The
/// budget is checked on these bytes and the datagrams are cut from them (a unit that opens a
/// later datagram is encoded again: its id gap counts from zero there).
fn encode_units(units: &[Unit], predicted: &View) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut ends = Vec::with_capacity(units.len());
    let mut last_id = 0;
    for unit in units {
        let ids = unit.ids();
        unit.encode(&mut out, ids[0] - last_id, predicted);
        last_id = *ids.last().expect("a unit has an id");
        ends.push(out.len());
    }
    (out, ends)
}

// --- server side -------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct SentSnapshot {
    seq: u32,
    /// What the client has once every datagram of this snapshot arrived.
    state: Conveyed,
}

/// One client's snapshot stream, server side.
#[derive(Debug)]
pub struct SnapshotEncoder {
    limits: SnapshotLimits,
    next_seq: u32,
    sent: VecDeque<SentSnapshot>,
    acked: Option<u32>,
}

/// What [`SnapshotEncoder::encode`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSnapshot {
    pub seq: u32,
    /// `None`: a full snapshot (resync).
    pub baseline: Option<u32>,
    pub datagrams: Vec<Vec<u8>>,
    /// Entities changed (against the prediction), new or removed in this snapshot.
    pub changes_sent: usize,
    /// Changes left for a later tick by the budget.
    pub changes_deferred: usize,
    /// Bytes of records (the datagrams without their headers).
    pub record_bytes: usize,
}

impl SnapshotEncoder {
    pub fn new(mut limits: SnapshotLimits) -> Self {
        limits.max_parts = limits.max_parts.clamp(1, MAX_PARTS);
        Self {
            limits,
            next_seq: 1,
            sent: VecDeque::new(),
            acked: None,
        }
    }

    /// The client has every datagram of snapshot `seq` (acks may come late, twice or out of
    /// order; the newest counts).
    pub fn ack(&mut self, seq: u32) {
        if seq < self.next_seq && self.acked.is_none_or(|a| seq > a) {
            self.acked = Some(seq);
        }
    }

    /// The baseline the next snapshot is diffed against, if it is still in the history.
    fn baseline(&self) -> Option<&SentSnapshot> {
        let acked = self.acked?;
        self.sent.iter().find(|s| s.seq == acked)
    }

    /// Encodes `truth` (what the client may see now, at `tick`) as datagrams. `priority`
    /// ranks entities (lower first: own ships 0, then by distance) for the byte budget;
    /// removals go first.
    pub fn encode(
        &mut self,
        tick: u64,
        truth: &View,
        priority: impl Fn(u64, &ViewEntity) -> u64,
    ) -> EncodedSnapshot {
        let seq = self.next_seq;
        self.next_seq += 1;
        let empty = Conveyed::default();
        let (baseline_seq, base) = match self.baseline() {
            Some(b) => (Some(b.seq), &b.state),
            None => (None, &empty),
        };
        let ticks = elapsed(base.tick, tick);
        // What the client shows without records: the baseline carried forward. Entities
        // that move as predicted (cruising ships, still asteroids) need no record at all.
        let predicted = carried_forward(base, tick);

        // Every change against the prediction, removals first, then by priority.
        let removals = predicted
            .view
            .keys()
            .filter(|id| !truth.contains_key(id))
            .map(|&id| (0, id, Change::Remove));
        let mut updates: Vec<(u64, u64, Change)> = truth
            .iter()
            .filter(|(id, e)| predicted.view.get(id) != Some(e))
            .map(|(&id, e)| {
                let change = match base.view.get(&id) {
                    Some(b) if (b.kind, b.sector) == (e.kind, e.sector) => Change::Delta(*e),
                    _ => Change::Whole(*e),
                };
                (priority(id, e), id, change)
            })
            .collect();
        updates.sort_by_key(|&(p, id, _)| (p, id));

        // A delta of a moving entity whose residuals fit 4 bits can join a run.
        let runnable = |id: u64, change: &Change| match change {
            Change::Delta(e) if base.motion.contains_key(&id) => {
                run_residuals(e, &predicted.view[&id])
            }
            _ => None,
        };

        // Take changes while the budget lasts (sizes as encoded; a run entry is counted as
        // 2 bytes: 1.5 plus its share of the run's head).
        let mut chosen: Vec<(u64, Change, Option<[i64; 3]>)> = Vec::new();
        let mut spent = 0;
        let mut deferred = 0;
        let mut scratch = Vec::new();
        for (_, id, change) in removals.chain(updates) {
            let run = runnable(id, &change);
            let cost = if run.is_some() {
                2
            } else {
                scratch.clear();
                encode_record(&mut scratch, 0, &change, predicted.view.get(&id));
                scratch.len()
            };
            if spent + cost > self.limits.budget_bytes
                && !(baseline_seq.is_none() && chosen.is_empty())
            {
                deferred += 1;
                continue;
            }
            spent += cost;
            chosen.push((id, change, run));
        }
        // The run entries' price is a guess (a lone one goes out as a whole record): measure
        // the records as they will be packed, and give up the least urgent changes until the
        // snapshot fits the budget.
        let (chosen, units, encoded, ends) = loop {
            let mut sorted = chosen.clone();
            sorted.sort_by_key(|&(id, ..)| id);
            let units = pack_units(&sorted, base, truth);
            let (encoded, ends) = encode_units(&units, &predicted.view);
            let bytes = encoded.len();
            if bytes <= self.limits.budget_bytes || chosen.len() <= 1 {
                break (sorted, units, encoded, ends);
            }
            // A change given up saves at least a byte and a half.
            let drop = (bytes - self.limits.budget_bytes)
                .div_ceil(3)
                .clamp(1, chosen.len() - 1);
            chosen.truncate(chosen.len() - drop);
            deferred += drop;
        };

        // What the client will have: the prediction with the chosen changes.
        let mut conveyed = predicted.clone();
        for (id, change, _) in &chosen {
            apply(&mut conveyed, *id, change, base.view.get(id), ticks);
        }

        // Pack into datagrams, ids ascending, each datagram on its own.
        let header = |part: u8, parts: u8| {
            let mut out = vec![SNAPSHOT_FORMAT];
            put_varint(&mut out, u64::from(seq));
            put_varint(&mut out, tick);
            put_varint(&mut out, baseline_seq.map_or(0, |b| u64::from(b) + 1));
            out.push(part);
            out.push(parts);
            out
        };
        let header_bytes = header(0, 0).len();
        let mut bodies: Vec<Vec<u8>> = vec![Vec::new()];
        let mut cut_by_parts = 0;
        let mut reopened = Vec::new();
        for (index, unit) in units.iter().enumerate() {
            let start = index.checked_sub(1).map_or(0, |i| ends[i]);
            let mut record = &encoded[start..ends[index]];
            let body = bodies.last().expect("one body");
            if header_bytes + body.len() + record.len() > self.limits.max_datagram_bytes
                && !body.is_empty()
            {
                if bodies.len() >= usize::from(self.limits.max_parts) {
                    // Out of room: the rest waits (the conveyed view must not include it).
                    for i in units[index..].iter().flat_map(Unit::ids) {
                        match predicted.view.get(&i) {
                            Some(p) => conveyed.view.insert(i, *p),
                            None => conveyed.view.remove(&i),
                        };
                        match predicted.motion.get(&i) {
                            Some(m) => conveyed.motion.insert(i, *m),
                            None => conveyed.motion.remove(&i),
                        };
                        cut_by_parts += 1;
                    }
                    break;
                }
                bodies.push(Vec::new());
                reopened.clear();
                unit.encode(&mut reopened, unit.ids()[0], &predicted.view);
                record = &reopened;
            }
            bodies
                .last_mut()
                .expect("one body")
                .extend_from_slice(record);
        }
        let parts = bodies.len() as u8;
        let record_bytes = bodies.iter().map(Vec::len).sum();
        let datagrams = bodies
            .into_iter()
            .enumerate()
            .map(|(part, body)| {
                let mut d = header(part as u8, parts);
                d.extend_from_slice(&body);
                d
            })
            .collect();

        if self.sent.len() >= self.limits.history {
            self.sent.pop_front();
        }
        self.sent.push_back(SentSnapshot {
            seq,
            state: conveyed,
        });
        EncodedSnapshot {
            seq,
            baseline: baseline_seq,
            datagrams,
            changes_sent: chosen.len() - cut_by_parts,
            changes_deferred: deferred + cut_by_parts,
            record_bytes,
        }
    }
}

// --- client side -------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Building {
    seq: u32,
    state: Conveyed,
    parts: u8,
    seen: u32,
}

/// One client's reconstruction of what it sees.
#[derive(Debug)]
pub struct SnapshotDecoder {
    limits: SnapshotLimits,
    /// Complete snapshots (possible baselines), oldest first.
    complete: VecDeque<(u32, Conveyed)>,
    building: Vec<Building>,
}

impl SnapshotDecoder {
    pub fn new(mut limits: SnapshotLimits) -> Self {
        limits.max_parts = limits.max_parts.clamp(1, MAX_PARTS);
        Self {
            limits,
            complete: VecDeque::new(),
            building: Vec::new(),
        }
    }

    /// The newest complete view: (tick, entities).
    pub fn view(&self) -> Option<(u64, &View)> {
        self.complete
            .iter()
            .max_by_key(|(seq, _)| *seq)
            .map(|(_, state)| (state.tick, &state.view))
    }

    /// Applies one datagram. Returns the sequence number to acknowledge when it completed a
    /// snapshot. Datagrams may come in any order, twice, or not at all.
    pub fn receive(&mut self, datagram: &[u8]) -> Result<Option<u32>, SnapshotError> {
        let mut r = Reader {
            bytes: datagram,
            at: 0,
        };
        let format = r.u8()?;
        if format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format(format));
        }
        let seq = u32::try_from(r.varint()?).map_err(|_| SnapshotError::Malformed)?;
        let tick = r.varint()?;
        let baseline = match r.varint()? {
            0 => None,
            b => Some(u32::try_from(b - 1).map_err(|_| SnapshotError::Malformed)?),
        };
        let part = r.u8()?;
        let parts = r.u8()?;
        if parts == 0 || part >= parts || parts > self.limits.max_parts {
            return Err(SnapshotError::BadPart { part, parts });
        }
        if self.complete.iter().any(|(s, _)| *s == seq) {
            return Ok(None); // Already complete: a duplicate.
        }
        let empty = Conveyed::default();
        let base: &Conveyed = match baseline {
            None => &empty,
            Some(b) => self
                .complete
                .iter()
                .find(|(s, _)| *s == b)
                .map(|(_, state)| state)
                .ok_or(SnapshotError::UnknownBaseline { seq, baseline: b })?,
        };
        let ticks = elapsed(base.tick, tick);
        let predicted_of = |id: u64| {
            base.view
                .get(&id)
                .map(|b| predict(b, base.motion.get(&id), ticks))
                .ok_or(SnapshotError::Malformed)
        };
        // Checked: a peer's residuals must not overflow (or panic) anything.
        let moved = |v: u16, d: i64| {
            i64::from(v)
                .checked_add(d)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or(SnapshotError::Malformed)
        };

        // Read every record before touching anything: a malformed datagram changes nothing.
        let mut changes: Vec<(u64, Change)> = Vec::new();
        let mut id = 0u64;
        let mut first = true;
        while !r.done() {
            let (gap, flags) = r.head()?;
            id = if first {
                gap
            } else {
                id.checked_add(gap).ok_or(SnapshotError::Malformed)?
            };
            first = false;
            if flags == 0 {
                changes.push((id, Change::Remove));
                continue;
            }
            if flags == FLAG_WHOLE {
                let kind = r.u8()?;
                let sx =
                    i32::try_from(unzigzag(r.varint()?)).map_err(|_| SnapshotError::Malformed)?;
                let sy =
                    i32::try_from(unzigzag(r.varint()?)).map_err(|_| SnapshotError::Malformed)?;
                let x = u16::try_from(r.varint()?).map_err(|_| SnapshotError::Malformed)?;
                let y = u16::try_from(r.varint()?).map_err(|_| SnapshotError::Malformed)?;
                let heading = r.u8()?;
                let hull = r.u8()?;
                changes.push((
                    id,
                    Change::Whole(ViewEntity {
                        kind,
                        sector: (sx, sy),
                        x,
                        y,
                        heading,
                        hull,
                    }),
                ));
                continue;
            }
            if flags == FLAG_RUN {
                let n = usize::try_from(r.varint()?).map_err(|_| SnapshotError::Malformed)?;
                if !(2..=MAX_RUN).contains(&n) {
                    return Err(SnapshotError::Malformed);
                }
                let members: Vec<u64> = base.motion.range(id..).take(n).map(|(&k, _)| k).collect();
                if members.len() != n || members[0] != id {
                    return Err(SnapshotError::Malformed);
                }
                let mut nibbles = Vec::with_capacity(run_body_bytes(n) * 2);
                for _ in 0..run_body_bytes(n) {
                    let b = r.u8()?;
                    nibbles.extend([b >> 4, b & 0xf]);
                }
                let signed = |n: u8| i64::from((n << 4) as i8 >> 4);
                for (member, r3) in members.iter().zip(nibbles.chunks(3)) {
                    let mut e = predicted_of(*member)?;
                    e.x = moved(e.x, signed(r3[0]))?;
                    e.y = moved(e.y, signed(r3[1]))?;
                    e.heading = e.heading.wrapping_add(signed(r3[2]) as u8);
                    changes.push((*member, Change::Delta(e)));
                }
                id = *members.last().expect("n >= 2");
                continue;
            }
            if flags & FLAG_WHOLE != 0 {
                return Err(SnapshotError::Malformed);
            }
            let mut e = predicted_of(id)?;
            if flags & FLAG_POSITION != 0 {
                e.x = moved(e.x, unzigzag(r.varint()?))?;
                e.y = moved(e.y, unzigzag(r.varint()?))?;
            }
            if flags & FLAG_HEADING != 0 {
                e.heading = e.heading.wrapping_add(r.u8()?);
            }
            if flags & FLAG_HULL != 0 {
                e.hull = r.u8()?;
            }
            changes.push((id, Change::Delta(e)));
        }
        let index = match self.building.iter().position(|b| b.seq == seq) {
            Some(i) => i,
            None => {
                if self.building.len() >= self.limits.history {
                    self.building.remove(0);
                }
                self.building.push(Building {
                    seq,
                    state: carried_forward(base, tick),
                    parts,
                    seen: 0,
                });
                self.building.len() - 1
            }
        };
        if self.building[index].seen & (1 << part) != 0 {
            return Ok(None); // A duplicate part.
        }
        let building = &mut self.building[index];
        for (id, change) in &changes {
            apply(&mut building.state, *id, change, base.view.get(id), ticks);
        }
        building.seen |= 1 << part;
        if building.seen.count_ones() < u32::from(building.parts) {
            return Ok(None);
        }
        let done = self.building.remove(index);
        if self.complete.len() >= self.limits.history {
            self.complete.pop_front();
        }
        self.complete.push_back((done.seq, done.state));
        Ok(Some(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client colours every ship of one owner alike, across builds and platforms, and the
    /// slots spread owners over the palette.
    #[test]
    fn owners_get_stable_colour_slots_that_spread() {
        assert_eq!(owned_ship_kind("ada"), owned_ship_kind("ada"));
        // Pinned (FNV-1a of "ada" is 0xe70b_c019_0530_e13b): a change of hash would recolour everyone.
        assert_eq!(owned_ship_kind("ada"), KIND_OWNED_SHIP_FIRST + 1);
        let mut used = std::collections::BTreeSet::new();
        for i in 0..60 {
            let kind = owned_ship_kind(&format!("player{i}"));
            let slot = owner_slot(kind).expect("an owned ship's kind has a slot");
            assert!(slot < OWNER_SLOTS);
            assert!(is_ship(kind) && is_other_ship(kind) && !is_area(kind));
            used.insert(slot);
        }
        assert_eq!(
            used.len(),
            usize::from(OWNER_SLOTS),
            "60 names use every slot"
        );
        for kind in [KIND_OWN_SHIP, KIND_ASTEROID, KIND_NEBULA, KIND_HAZARD] {
            assert_eq!(owner_slot(kind), None);
        }
        assert!(is_ship(KIND_OWN_SHIP) && !is_other_ship(KIND_OWN_SHIP));
        assert!(is_other_ship(KIND_SHIP));
    }

    #[test]
    fn areas_keep_their_radius_to_the_step_above() {
        let nebula = ViewEntity::area(KIND_NEBULA, (3, -2), (500.0, 20.0), 101.0);
        assert_eq!(nebula.area_radius(), 104.0);
        assert_eq!(nebula.local(), (500.0, 20.0));
        let largest = ViewEntity::area(KIND_HAZARD, (0, 0), (0.0, 0.0), 1_020.0);
        assert_eq!(largest.area_radius(), 1_020.0);
    }

    #[test]
    fn quantization_wraps_headings_and_clamps_positions_and_hull() {
        let e = ViewEntity::quantize(
            2,
            (1, -1),
            (999.97, -5.0),
            -std::f32::consts::FRAC_PI_2,
            300.0,
        );
        assert_eq!(e.x, 16_000); // 999.97 m in 1/16 m
        assert_eq!(e.y, 0);
        assert_eq!(e.heading, 192); // -90 degrees = 3/4 turn
        assert_eq!(e.hull, 255);
        assert_eq!(e.local(), (1000.0, 0.0));
        let full_turn = ViewEntity::quantize(0, (0, 0), (0.0, 0.0), std::f32::consts::TAU, 0.0);
        assert_eq!(full_turn.heading, 0);
    }

    #[test]
    fn record_heads_keep_every_bit_of_any_id_gap() {
        for gap in [0, 1, 7, 1 << 59, 1 << 60, 1 << 63, u64::MAX] {
            for flags in [0, FLAG_WHOLE, FLAG_RUN, 7] {
                let mut out = Vec::new();
                put_head(&mut out, gap, flags);
                let mut r = Reader { bytes: &out, at: 0 };
                assert_eq!(r.head().unwrap(), (gap, flags));
                assert!(r.done());
            }
        }
        let mut small = Vec::new();
        put_head(&mut small, 7, FLAG_RUN);
        assert_eq!(small.len(), 1, "nearby ids take one byte");
        // 2^64 and beyond (eleven bytes, or a gap past u64) are refused.
        let mut r = Reader {
            bytes: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            at: 0,
        };
        assert_eq!(r.head(), Err(SnapshotError::Malformed));
    }

    #[test]
    fn varints_and_zigzag_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 64, 1 << 40, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, zigzag(v));
            let mut r = Reader { bytes: &out, at: 0 };
            assert_eq!(unzigzag(r.varint().unwrap()), v);
            assert!(r.done());
        }
        let mut small = Vec::new();
        put_varint(&mut small, zigzag(-64));
        assert_eq!(small.len(), 1, "moves under 4 m take one byte per axis");
    }
}
