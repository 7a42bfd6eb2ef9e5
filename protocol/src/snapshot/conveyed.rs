//! What both ends of a snapshot stream hold: each snapshot's view and the motion of its moving
//! entities, carried forward by dead reckoning in integer steps, so that the server's
//! prediction and the client's agree bit for bit.

use super::{View, ViewEntity};
use std::collections::BTreeMap;

/// Predictions reach at most this many ticks ahead (positions are clamped long before).
pub(super) const MAX_PREDICTED_TICKS: i64 = 1 << 20;

/// How an entity moved per tick (position steps, heading steps) as both ends last saw it:
/// what both ends predict it keeps doing. Entities without one are predicted to stay put.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Motion {
    pub(super) x: i16,
    pub(super) y: i16,
    pub(super) heading: i8,
}

/// A snapshot as both ends hold it: the view at its tick and each moving entity's motion.
#[derive(Debug, Clone, Default)]
pub(super) struct Conveyed {
    pub(super) tick: u64,
    pub(super) view: View,
    pub(super) motion: BTreeMap<u64, Motion>,
}

/// Ticks from a baseline to the snapshot built on it (at least one, bounded).
pub(super) fn elapsed(from: u64, to: u64) -> i64 {
    i64::try_from(to.saturating_sub(from))
        .unwrap_or(MAX_PREDICTED_TICKS)
        .clamp(1, MAX_PREDICTED_TICKS)
}

/// Where `e` is expected after `ticks` more ticks of `motion`. Integer arithmetic only: both
/// ends must predict bit for bit the same.
pub(super) fn predict(e: &ViewEntity, motion: Option<&Motion>, ticks: i64) -> ViewEntity {
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
pub(super) fn motion_between(
    before: &ViewEntity,
    after: &ViewEntity,
    ticks: i64,
) -> Option<Motion> {
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
pub(super) fn carried_forward(base: &Conveyed, tick: u64) -> Conveyed {
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
pub(super) fn apply(
    state: &mut Conveyed,
    id: u64,
    change: &Change,
    before: Option<&ViewEntity>,
    ticks: i64,
) {
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
pub(super) enum Change {
    Remove,
    /// New to the client, or changed kind or sector: every field.
    Whole(ViewEntity),
    /// Changed in place: residuals against the prediction.
    Delta(ViewEntity),
}
