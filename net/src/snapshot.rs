//! Fog-of-war delta snapshots (issue #6, the codec): what one client may see of the world,
//! sent each tick as datagrams that each decode on their own, as a delta against the newest
//! snapshot the client acknowledged.
//!
//! The server keeps, per client, a [`SnapshotEncoder`]: the snapshots it sent (what the client
//! has if all of a snapshot's datagrams arrive) and the newest one acknowledged. Each tick it
//! diffs the client's filtered view against that baseline: unchanged entities are omitted,
//! changed ones carry only what changed (positions as small quantized deltas), vanished ones an
//! explicit removal. Without a usable baseline (nothing acked yet, or the acked one has left
//! the history) it sends everything: a resync. A byte budget per tick takes entities in
//! priority order (the caller's: own ships, then near contacts); what does not fit is left at
//! its baseline state and goes out in a later tick.
//!
//! The client's [`SnapshotDecoder`] rebuilds each snapshot on its baseline, acknowledges it
//! once all its datagrams arrived, and shows the newest complete one.
//!
//! Wire format of a datagram: `[FORMAT u8][seq varint][tick varint][baseline varint: 0 = none,
//! else seq + 1][part u8][parts u8]` then records, each `varint(id_gap << 4 | flags)` with the
//! id gap from the previous record's id in this datagram. flags 0 = removal; bit 3 = a whole
//! entity follows; else bit 0 = position delta (two zigzag varints), bit 1 = heading (u8),
//! bit 2 = hull (u8). A ship moving up to 4 m per tick and turning costs 4 bytes.

use std::collections::{BTreeMap, VecDeque};

/// The snapshot datagram format this build speaks.
pub const SNAPSHOT_FORMAT: u8 = 1;

/// Positions are quantized to 1/16 m inside a sector (u16: sectors up to 4,096 m).
pub const POSITION_STEPS_PER_METRE: f32 = 16.0;

/// Entity kinds in a view (what [`ViewEntity::kind`] holds).
pub const KIND_OWN_SHIP: u8 = 0;
pub const KIND_SHIP: u8 = 1;
/// An asteroid's `hull` byte carries its radius in metres.
pub const KIND_ASTEROID: u8 = 2;

/// What a client sees of one entity, quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

const FLAG_POSITION: u64 = 1;
const FLAG_HEADING: u64 = 2;
const FLAG_HULL: u64 = 4;
const FLAG_WHOLE: u64 = 8;

/// One entity's record against its baseline state (`None`: new to the client), or `None`
/// when nothing changed.
fn encode_record(out: &mut Vec<u8>, gap: u64, now: &ViewEntity, before: Option<&ViewEntity>) {
    let whole = match before {
        None => true,
        Some(b) => b.kind != now.kind || b.sector != now.sector,
    };
    if whole {
        put_varint(out, gap << 4 | FLAG_WHOLE);
        out.push(now.kind);
        put_varint(out, zigzag(i64::from(now.sector.0)));
        put_varint(out, zigzag(i64::from(now.sector.1)));
        put_varint(out, u64::from(now.x));
        put_varint(out, u64::from(now.y));
        out.push(now.heading);
        out.push(now.hull);
        return;
    }
    let b = before.expect("not whole");
    let mut flags = 0;
    if (b.x, b.y) != (now.x, now.y) {
        flags |= FLAG_POSITION;
    }
    if b.heading != now.heading {
        flags |= FLAG_HEADING;
    }
    if b.hull != now.hull {
        flags |= FLAG_HULL;
    }
    debug_assert!(flags != 0, "unchanged entities are omitted");
    put_varint(out, gap << 4 | flags);
    if flags & FLAG_POSITION != 0 {
        put_varint(out, zigzag(i64::from(now.x) - i64::from(b.x)));
        put_varint(out, zigzag(i64::from(now.y) - i64::from(b.y)));
    }
    if flags & FLAG_HEADING != 0 {
        out.push(now.heading);
    }
    if flags & FLAG_HULL != 0 {
        out.push(now.hull);
    }
}

/// A change to send: an entity's new state, or its removal.
#[derive(Debug, Clone, Copy)]
enum Change {
    Update(ViewEntity),
    Remove,
}

// --- server side -------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct SentSnapshot {
    seq: u32,
    /// What the client has once every datagram of this snapshot arrived.
    view: View,
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
    /// Entities changed, new or removed in this snapshot.
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
        // Borrowed from the history (copied once, below, into what this snapshot conveys).
        let empty = View::new();
        let (baseline_seq, base_view) = match self.baseline() {
            Some(b) => (Some(b.seq), &b.view),
            None => (None, &empty),
        };

        // Every change against the baseline, removals first, then by priority.
        let mut removals: Vec<(u64, Change)> = base_view
            .keys()
            .filter(|id| !truth.contains_key(id))
            .map(|&id| (id, Change::Remove))
            .collect();
        let mut updates: Vec<(u64, u64, Change)> = truth
            .iter()
            .filter(|(id, e)| base_view.get(id) != Some(e))
            .map(|(&id, e)| (priority(id, e), id, Change::Update(*e)))
            .collect();
        updates.sort_by_key(|&(p, id, _)| (p, id));

        // Take changes while the budget lasts (a record is at most 26 bytes; sizes are
        // measured as encoded against the baseline).
        let mut chosen: Vec<(u64, Change)> = Vec::new();
        let mut spent = 0;
        let mut deferred = 0;
        let mut cut_by_parts = 0;
        let mut scratch = Vec::new();
        let all = removals
            .drain(..)
            .chain(updates.into_iter().map(|(_, id, c)| (id, c)));
        for (id, change) in all {
            scratch.clear();
            match change {
                Change::Remove => put_varint(&mut scratch, 0),
                Change::Update(e) => encode_record(&mut scratch, 0, &e, base_view.get(&id)),
            }
            if spent + scratch.len() > self.limits.budget_bytes
                && !(baseline_seq.is_none() && chosen.is_empty())
            {
                deferred += 1;
                continue;
            }
            spent += scratch.len();
            chosen.push((id, change));
        }
        chosen.sort_by_key(|&(id, _)| id);

        // What the client will have: the baseline with the chosen changes.
        let mut conveyed = base_view.clone();
        for &(id, change) in &chosen {
            match change {
                Change::Remove => {
                    conveyed.remove(&id);
                }
                Change::Update(e) => {
                    conveyed.insert(id, e);
                }
            }
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
        let mut last_id = 0;
        for &(id, change) in &chosen {
            let mut record = Vec::new();
            let body = bodies.last().expect("one body");
            let gap = if body.is_empty() { id } else { id - last_id };
            match change {
                Change::Remove => put_varint(&mut record, gap << 4),
                Change::Update(e) => encode_record(&mut record, gap, &e, base_view.get(&id)),
            }
            if header_bytes + body.len() + record.len() > self.limits.max_datagram_bytes
                && !body.is_empty()
            {
                if bodies.len() >= usize::from(self.limits.max_parts) {
                    // Out of room: the rest waits (the conveyed view must not include it).
                    let rest: Vec<u64> = chosen
                        .iter()
                        .map(|&(i, _)| i)
                        .filter(|&i| i >= id)
                        .collect();
                    for i in rest {
                        match base_view.get(&i) {
                            Some(b) => conveyed.insert(i, *b),
                            None => conveyed.remove(&i),
                        };
                        cut_by_parts += 1;
                    }
                    break;
                }
                bodies.push(Vec::new());
                record.clear();
                match change {
                    Change::Remove => put_varint(&mut record, id << 4),
                    Change::Update(e) => encode_record(&mut record, id, &e, base_view.get(&id)),
                }
            }
            bodies
                .last_mut()
                .expect("one body")
                .extend_from_slice(&record);
            last_id = id;
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
            view: conveyed,
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
    tick: u64,
    view: View,
    parts: u8,
    seen: u32,
}

/// One client's reconstruction of what it sees.
#[derive(Debug)]
pub struct SnapshotDecoder {
    limits: SnapshotLimits,
    /// Complete snapshots (possible baselines), oldest first.
    complete: VecDeque<(u32, u64, View)>,
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
            .max_by_key(|(seq, ..)| *seq)
            .map(|(_, tick, view)| (*tick, view))
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
        if self.complete.iter().any(|(s, ..)| *s == seq) {
            return Ok(None); // Already complete: a duplicate.
        }
        let empty = View::new();
        let base_view: &View = match baseline {
            None => &empty,
            Some(b) => self
                .complete
                .iter()
                .find(|(s, ..)| *s == b)
                .map(|(_, _, v)| v)
                .ok_or(SnapshotError::UnknownBaseline { seq, baseline: b })?,
        };
        // Read every record before touching anything: a malformed datagram changes nothing.
        let mut changes: Vec<(u64, Option<ViewEntity>)> = Vec::new();
        let mut id = 0u64;
        let mut first = true;
        while !r.done() {
            let head = r.varint()?;
            let gap = head >> 4;
            id = if first {
                gap
            } else {
                id.checked_add(gap).ok_or(SnapshotError::Malformed)?
            };
            first = false;
            let flags = head & 0xf;
            if flags == 0 {
                changes.push((id, None));
                continue;
            }
            if flags & FLAG_WHOLE != 0 {
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
                    Some(ViewEntity {
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
            let mut e = *base_view.get(&id).ok_or(SnapshotError::Malformed)?;
            if flags & FLAG_POSITION != 0 {
                let dx = unzigzag(r.varint()?);
                let dy = unzigzag(r.varint()?);
                // Checked: a peer's deltas must not overflow (or panic) anything.
                let moved = |v: u16, d: i64| {
                    i64::from(v)
                        .checked_add(d)
                        .and_then(|p| u16::try_from(p).ok())
                        .ok_or(SnapshotError::Malformed)
                };
                e.x = moved(e.x, dx)?;
                e.y = moved(e.y, dy)?;
            }
            if flags & FLAG_HEADING != 0 {
                e.heading = r.u8()?;
            }
            if flags & FLAG_HULL != 0 {
                e.hull = r.u8()?;
            }
            changes.push((id, Some(e)));
        }
        let index = match self.building.iter().position(|b| b.seq == seq) {
            Some(i) => i,
            None => {
                if self.building.len() >= self.limits.history {
                    self.building.remove(0);
                }
                self.building.push(Building {
                    seq,
                    tick,
                    view: base_view.clone(),
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
        for (id, change) in changes {
            match change {
                Some(e) => building.view.insert(id, e),
                None => building.view.remove(&id),
            };
        }
        building.seen |= 1 << part;
        if building.seen.count_ones() < u32::from(building.parts) {
            return Ok(None);
        }
        let done = self.building.remove(index);
        if self.complete.len() >= self.limits.history {
            self.complete.pop_front();
        }
        self.complete.push_back((done.seq, done.tick, done.view));
        Ok(Some(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
