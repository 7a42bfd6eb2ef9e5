//! The client's side of a snapshot stream: datagrams applied on the baseline they name, a
//! snapshot complete (and acknowledged) once all its parts arrived.

use super::conveyed::{Conveyed, apply, carried_forward, elapsed};
use super::wire::{Header, Reader, read_records};
use super::{MAX_PARTS, SnapshotError, SnapshotLimits, View};
use std::collections::VecDeque;

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
        let mut r = Reader::new(datagram);
        let Header {
            seq,
            tick,
            baseline,
            part,
            parts,
        } = r.header()?;
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
        // Read every record before touching anything: a malformed datagram changes nothing.
        let changes = read_records(&mut r, base, ticks)?;
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
