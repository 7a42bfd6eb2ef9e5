//! The server's side of one client's snapshot stream: the changes against the client's
//! acknowledged baseline, chosen within the byte budget and packed into datagrams.

use super::conveyed::{Change, Conveyed, apply, carried_forward, elapsed};
use super::wire::{Header, MAX_RUN, encode_record, encode_run, run_residuals};
use super::{MAX_PARTS, SnapshotLimits, View, ViewEntity};
use std::collections::VecDeque;

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
            Header {
                seq,
                tick,
                baseline: baseline_seq,
                part,
                parts,
            }
            .encode()
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
