//! The client's live world: the two newest complete snapshots and positions interpolated
//! between them, for drawing between ticks. No I/O; time is passed in as a
//! fractional tick.

use crate::snapshot::{View, ViewEntity};

/// Where an entity is drawn at a moment between two ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drawn {
    pub id: u64,
    pub entity: ViewEntity,
    /// Sector and position in it (metres), interpolated.
    pub sector: (i32, i32),
    pub local: (f32, f32),
    /// Radians, interpolated the short way round.
    pub heading: f32,
}

/// The reconstructed world of one client.
#[derive(Debug, Clone, Default)]
pub struct LiveView {
    sector_size: f32,
    previous: Option<(u64, View)>,
    latest: Option<(u64, View)>,
}

impl LiveView {
    pub fn new(sector_size: f32) -> Self {
        Self {
            sector_size,
            previous: None,
            latest: None,
        }
    }

    /// Takes a complete snapshot of `tick` (older or repeated ones change nothing).
    pub fn update(&mut self, tick: u64, view: &View) {
        match &self.latest {
            Some((latest, _)) if tick <= *latest => {}
            _ => {
                self.previous = self.latest.take();
                self.latest = Some((tick, view.clone()));
            }
        }
    }

    pub fn sector_size(&self) -> f32 {
        self.sector_size
    }

    /// The newest tick seen.
    pub fn tick(&self) -> Option<u64> {
        self.latest.as_ref().map(|(t, _)| *t)
    }

    /// The newest snapshot as it is.
    pub fn latest(&self) -> Option<&View> {
        self.latest.as_ref().map(|(_, v)| v)
    }

    /// Every entity of the newest snapshot, placed at fractional tick `at` between the two
    /// newest snapshots (clamped to them). Entities new in the newest snapshot are drawn
    /// where it has them; ones it removed are gone.
    pub fn at(&self, at: f64) -> Vec<Drawn> {
        let Some((latest_tick, latest)) = &self.latest else {
            return Vec::new();
        };
        let (from_tick, from) = match &self.previous {
            Some((t, v)) => (*t, Some(v)),
            None => (*latest_tick, None),
        };
        let span = (*latest_tick - from_tick) as f64;
        let t = if span > 0.0 {
            ((at - from_tick as f64) / span).clamp(0.0, 1.0) as f32
        } else {
            1.0
        };
        latest
            .iter()
            .map(|(&id, now)| {
                let before = from.and_then(|f| f.get(&id)).unwrap_or(now);
                self.interpolate(id, before, now, t)
            })
            .collect()
    }

    fn interpolate(&self, id: u64, a: &ViewEntity, b: &ViewEntity, t: f32) -> Drawn {
        // In universe metres relative to b's sector, so a border crossing interpolates
        // smoothly (sector steps are small integers between two ticks).
        let size = self.sector_size;
        let (ax, ay) = a.local();
        let (bx, by) = b.local();
        let ax = ax + (a.sector.0 - b.sector.0) as f32 * size;
        let ay = ay + (a.sector.1 - b.sector.1) as f32 * size;
        let x = ax + (bx - ax) * t;
        let y = ay + (by - ay) * t;
        let (sx, lx) = wrap(b.sector.0, x, size);
        let (sy, ly) = wrap(b.sector.1, y, size);
        let turn = |h: u8| f32::from(h) / 256.0 * std::f32::consts::TAU;
        let (ha, hb) = (turn(a.heading), turn(b.heading));
        let mut delta = hb - ha;
        if delta > std::f32::consts::PI {
            delta -= std::f32::consts::TAU;
        } else if delta < -std::f32::consts::PI {
            delta += std::f32::consts::TAU;
        }
        let heading = (ha + delta * t).rem_euclid(std::f32::consts::TAU);
        Drawn {
            id,
            entity: *b,
            sector: (sx, sy),
            local: (lx, ly),
            heading,
        }
    }
}

/// A coordinate relative to `sector`, possibly outside it, as (sector, 0..size).
fn wrap(sector: i32, v: f32, size: f32) -> (i32, f32) {
    let steps = (v / size).floor();
    (sector + steps as i32, v - steps * size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ship(sector: (i32, i32), local: (f32, f32), heading: f32) -> ViewEntity {
        ViewEntity::quantize(1, sector, local, heading, 100.0)
    }

    #[test]
    fn positions_and_headings_are_interpolated_between_the_two_newest_ticks() {
        let mut live = LiveView::new(1000.0);
        live.update(10, &View::from([(1, ship((0, 0), (100.0, 100.0), 0.1))]));
        live.update(11, &View::from([(1, ship((0, 0), (110.0, 90.0), 6.2))]));
        let mid = live.at(10.5)[0];
        assert!((mid.local.0 - 105.0).abs() < 0.1, "{mid:?}");
        assert!((mid.local.1 - 95.0).abs() < 0.1, "{mid:?}");
        // 0.1 rad to 6.2 rad goes the short way, through 0.
        assert!(mid.heading < 0.1 || mid.heading > 6.2, "{mid:?}");
        // Clamped to the newest tick, and stale snapshots ignored.
        assert_eq!(live.at(20.0)[0].local, (110.0, 90.0));
        live.update(9, &View::new());
        assert_eq!(live.tick(), Some(11));
        assert_eq!(live.at(11.0).len(), 1);
    }

    #[test]
    fn a_sector_border_crossing_interpolates_smoothly() {
        let mut live = LiveView::new(1000.0);
        live.update(1, &View::from([(7, ship((0, 0), (998.0, 500.0), 0.0))]));
        live.update(2, &View::from([(7, ship((1, 0), (2.0, 500.0), 0.0))]));
        let mid = live.at(1.5)[0];
        assert_eq!(mid.sector, (1, 0));
        assert!(mid.local.0.abs() < 0.1, "{mid:?}");
        let early = live.at(1.25)[0];
        assert_eq!(early.sector, (0, 0));
        assert!((early.local.0 - 999.0).abs() < 0.1, "{early:?}");
    }

    #[test]
    fn new_entities_appear_in_place_and_removed_ones_are_gone() {
        let mut live = LiveView::new(1000.0);
        live.update(1, &View::from([(1, ship((0, 0), (10.0, 10.0), 0.0))]));
        live.update(2, &View::from([(2, ship((0, 0), (50.0, 50.0), 0.0))]));
        let drawn = live.at(1.5);
        assert_eq!(drawn.len(), 1);
        assert_eq!(drawn[0].id, 2);
        assert_eq!(drawn[0].local, (50.0, 50.0));
    }
}
