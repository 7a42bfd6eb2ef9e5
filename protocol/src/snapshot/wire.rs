//! The bytes of a snapshot datagram: varints, record heads, whole, delta and run records
//! (the format is described in the module above).

use super::conveyed::{Change, Conveyed, predict};
use super::{SNAPSHOT_FORMAT, SnapshotError, ViewEntity};

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A record's head: `varint(id_gap << 4 | flags)`, computed in 128 bits so that no gap loses
/// bits (asteroid ids have the top bit set: gaps of 2^60 and more are common).
pub(super) fn put_head(out: &mut Vec<u8>, gap: u64, flags: u64) {
    let mut v = u128::from(gap) << 4 | u128::from(flags);
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// The header, its format checked first.
    pub(super) fn header(&mut self) -> Result<Header, SnapshotError> {
        let format = self.u8()?;
        if format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format(format));
        }
        let seq = u32::try_from(self.varint()?).map_err(|_| SnapshotError::Malformed)?;
        let tick = self.varint()?;
        let baseline = match self.varint()? {
            0 => None,
            b => Some(u32::try_from(b - 1).map_err(|_| SnapshotError::Malformed)?),
        };
        Ok(Header {
            seq,
            tick,
            baseline,
            part: self.u8()?,
            parts: self.u8()?,
        })
    }

    pub(super) fn u8(&mut self) -> Result<u8, SnapshotError> {
        let b = *self.bytes.get(self.at).ok_or(SnapshotError::Malformed)?;
        self.at += 1;
        Ok(b)
    }

    pub(super) fn varint(&mut self) -> Result<u64, SnapshotError> {
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
    pub(super) fn head(&mut self) -> Result<(u64, u64), SnapshotError> {
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

    pub(super) fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

pub(super) const FLAG_POSITION: u64 = 1;
pub(super) const FLAG_HEADING: u64 = 2;
pub(super) const FLAG_HULL: u64 = 4;
pub(super) const FLAG_WHOLE: u64 = 8;
/// The flags of a run record (bit 3 with bit 0; a whole entity has bits 0-2 clear).
pub(super) const FLAG_RUN: u64 = FLAG_WHOLE | 1;
/// Longest run: 3 + 96 bytes, so a run always fits an empty datagram.
pub(super) const MAX_RUN: usize = 64;
/// What one 4-bit residual of a run can hold.
pub(super) const NIBBLE: std::ops::RangeInclusive<i64> = -8..=7;

/// The residuals of `now` against its prediction, when they fit a run entry.
pub(super) fn run_residuals(now: &ViewEntity, predicted: &ViewEntity) -> Option<[i64; 3]> {
    let r = [
        i64::from(now.x) - i64::from(predicted.x),
        i64::from(now.y) - i64::from(predicted.y),
        i64::from(now.heading.wrapping_sub(predicted.heading) as i8),
    ];
    (now.hull == predicted.hull && r.iter().all(|v| NIBBLE.contains(v))).then_some(r)
}

/// One record: `change` of the entity `gap` ids after the previous record.
pub(super) fn encode_record(
    out: &mut Vec<u8>,
    gap: u64,
    change: &Change,
    predicted: Option<&ViewEntity>,
) {
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
pub(super) fn encode_run(out: &mut Vec<u8>, gap: u64, residuals: &[[i64; 3]]) {
    put_head(out, gap, FLAG_RUN);
    put_varint(out, residuals.len() as u64);
    let mut nibbles = residuals.iter().flatten().map(|&r| (r & 0xf) as u8);
    while let Some(high) = nibbles.next() {
        out.push(high << 4 | nibbles.next().unwrap_or(0));
    }
}

/// Bytes of a run of `n` entities (without its head).
pub(super) fn run_body_bytes(n: usize) -> usize {
    (n * 12).div_ceil(8)
}

/// A datagram's header: `[FORMAT u8][seq varint][tick varint][baseline varint: 0 = none, else
/// seq + 1][part u8][parts u8]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) seq: u32,
    pub(super) tick: u64,
    pub(super) baseline: Option<u32>,
    pub(super) part: u8,
    pub(super) parts: u8,
}

impl Header {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = vec![SNAPSHOT_FORMAT];
        put_varint(&mut out, u64::from(self.seq));
        put_varint(&mut out, self.tick);
        put_varint(&mut out, self.baseline.map_or(0, |b| u64::from(b) + 1));
        out.push(self.part);
        out.push(self.parts);
        out
    }
}

/// Every record of a datagram body, as changes against `base` carried forward `ticks` ticks.
/// Nothing is applied here, so a malformed record anywhere leaves the caller's state as it was.
pub(super) fn read_records(
    r: &mut Reader,
    base: &Conveyed,
    ticks: i64,
) -> Result<Vec<(u64, Change)>, SnapshotError> {
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
            let sx = i32::try_from(unzigzag(r.varint()?)).map_err(|_| SnapshotError::Malformed)?;
            let sy = i32::try_from(unzigzag(r.varint()?)).map_err(|_| SnapshotError::Malformed)?;
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
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

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
