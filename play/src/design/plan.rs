//! The view's decisions, free of threads, clocks and drawing: which region is on screen, how
//! far the map may zoom out, which sectors to ask the worker for and in what order, and which
//! of the worker's answers are stale.

use astroboids_designer::Region;
use astroboids_sim::space::SectorCoord;
use egui::Rect;

use crate::camera::{Camera, MAX_POINTS_PER_METRE};

/// Most sectors one map shows: zooming out stops here, which bounds the work (and memory) of
/// one view. A 250 x 250 region fits.
pub const MAX_VISIBLE_SECTORS: f32 = 62_500.0;
/// A sector is never drawn smaller than this many points across.
pub const MIN_POINTS_PER_SECTOR: f32 = 2.0;
/// Most sectors one request asks for: more wait for the next request, so that a request's
/// list (and the worker's queue) stays small and the nearest sectors come first.
pub const MAX_SECTORS_PER_REQUEST: usize = 8_192;

/// Which configuration a map shows: the one being edited (B), or the one kept to compare
/// against (A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Edited,
    Kept,
}

/// Generation numbers: every change to a side's configuration or seed gives it a new one, and
/// the worker's answers carry the number they were asked under. An answer whose number is no
/// side's current one was asked for a configuration no longer shown: it is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generations {
    last: u64,
    edited: u64,
    kept: Option<u64>,
}

impl Default for Generations {
    fn default() -> Self {
        Self {
            last: 1,
            edited: 1,
            kept: None,
        }
    }
}

impl Generations {
    /// The edited configuration changed: its new number.
    pub fn renew_edited(&mut self) -> u64 {
        self.last += 1;
        self.edited = self.last;
        self.edited
    }

    /// A configuration is kept to compare against (a new number), or none is.
    pub fn set_kept(&mut self, kept: bool) -> Option<u64> {
        self.kept = kept.then(|| {
            self.last += 1;
            self.last
        });
        self.kept
    }

    pub fn edited(&self) -> u64 {
        self.edited
    }

    pub fn kept(&self) -> Option<u64> {
        self.kept
    }

    pub fn of(&self, side: Side) -> Option<u64> {
        match side {
            Side::Edited => Some(self.edited),
            Side::Kept => self.kept,
        }
    }

    /// Whether an answer asked under `generation` is for a configuration still shown.
    pub fn is_current(&self, generation: u64) -> bool {
        generation == self.edited || Some(generation) == self.kept
    }
}

/// What the screen needs: a region of sectors for each shown configuration, with their
/// contents when they are drawn feature by feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub region: Region,
    pub detail: bool,
    pub edited: u64,
    pub kept: Option<u64>,
}

impl Wanted {
    pub fn new(region: Region, detail: bool, generations: &Generations) -> Self {
        Self {
            region,
            detail,
            edited: generations.edited(),
            kept: generations.kept(),
        }
    }
}

/// The request the worker is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Issued {
    id: u64,
    wanted: Wanted,
    outstanding: usize,
}

/// When to ask the worker again. A request replaces the worker's queue, so asking anew on
/// every frame would restart it; it is asked when the screen needs something else, or when
/// the last request is answered and sectors are still missing (more than one request held).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    last_id: u64,
    latest: Option<Issued>,
}

impl Requests {
    pub fn should_issue(&self, wanted: &Wanted) -> bool {
        match &self.latest {
            None => true,
            Some(issued) => issued.wanted != *wanted || issued.outstanding == 0,
        }
    }

    /// Records a request of `sectors` sectors for `wanted`; its id.
    pub fn issue(&mut self, wanted: Wanted, sectors: usize) -> u64 {
        self.last_id += 1;
        self.latest = Some(Issued {
            id: self.last_id,
            wanted,
            outstanding: sectors,
        });
        self.last_id
    }

    /// One sector of request `id` arrived.
    pub fn delivered(&mut self, id: u64) {
        if let Some(issued) = &mut self.latest
            && issued.id == id
        {
            issued.outstanding = issued.outstanding.saturating_sub(1);
        }
    }

    /// Sectors of the latest request still to come.
    pub fn outstanding(&self) -> usize {
        self.latest.map_or(0, |i| i.outstanding)
    }
}

/// The sectors of a region not generated yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// How many there are.
    pub count: usize,
    /// The nearest the region's centre first (what the designer looks at appears first), at
    /// most the cap asked for.
    pub nearest: Vec<SectorCoord>,
}

/// The sectors of `region` for which `is_missing` holds.
pub fn missing_sectors(
    region: Region,
    mut is_missing: impl FnMut(SectorCoord) -> bool,
    cap: usize,
) -> Missing {
    let mut missing: Vec<(u32, u32)> = (0..region.height())
        .flat_map(|row| (0..region.width()).map(move |column| (column, row)))
        .filter(|&(column, row)| is_missing(region.at(column, row)))
        .collect();
    let count = missing.len();
    // Doubled distances from the centre stay whole numbers.
    let (cx, cy) = (
        i64::from(region.width()) - 1,
        i64::from(region.height()) - 1,
    );
    // Ties in row order, so the order never depends on how the cap was applied.
    let distance = |&(column, row): &(u32, u32)| {
        let dx = 2 * i64::from(column) - cx;
        let dy = 2 * i64::from(row) - cy;
        (dx * dx + dy * dy, row, column)
    };
    if missing.len() > cap {
        missing.select_nth_unstable_by_key(cap, distance);
        missing.truncate(cap);
    }
    missing.sort_by_key(distance);
    Missing {
        count,
        nearest: missing
            .into_iter()
            .map(|(column, row)| region.at(column, row))
            .collect(),
    }
}

/// The sectors a map in `rect` shows (any part of).
pub fn visible_region(camera: &Camera, rect: Rect, sector_size: f32) -> Region {
    let ((x0, y0), (x1, y1)) = camera.visible_sectors(rect, sector_size);
    Region {
        from: SectorCoord::new(x0.min(x1), y0.min(y1)),
        to: SectorCoord::new(x0.max(x1), y0.max(y1)),
    }
}

/// The zoom range of a map of `size` points: out until it shows [`MAX_VISIBLE_SECTORS`] or
/// sectors [`MIN_POINTS_PER_SECTOR`] wide, in as far as the play view goes.
pub fn zoom_range(size: egui::Vec2, sector_size: f32) -> (f32, f32) {
    let area = size.x.max(1.0) * size.y.max(1.0);
    // Sectors of side p points: (w / p) * (h / p) <= MAX_VISIBLE_SECTORS.
    let points_per_sector = (area / MAX_VISIBLE_SECTORS)
        .sqrt()
        .max(MIN_POINTS_PER_SECTOR);
    let min = points_per_sector / sector_size;
    (min.min(MAX_POINTS_PER_METRE), MAX_POINTS_PER_METRE)
}

/// Zooms by `factor` keeping the point under `pointer` where it is, within [`zoom_range`]
/// (the play view's `Camera::zoom_about` stops at a few dozen sectors; a designer looks at
/// hundreds).
pub fn zoom_about(camera: &mut Camera, rect: Rect, pointer: egui::Pos2, factor: f32, size: f32) {
    let (min, max) = zoom_range(rect.size(), size);
    let (sector, local) = camera.to_world(rect, pointer, size);
    camera.points_per_metre = (camera.points_per_metre * factor).clamp(min, max);
    let drifted = camera.to_screen(rect, sector, local, size);
    camera.pan(pointer - drifted, size);
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::{pos2, vec2};

    fn region(x0: i32, y0: i32, x1: i32, y1: i32) -> Region {
        Region {
            from: SectorCoord::new(x0, y0),
            to: SectorCoord::new(x1, y1),
        }
    }

    #[test]
    fn answers_for_a_replaced_configuration_are_stale() {
        let mut generations = Generations::default();
        let first = generations.edited();
        assert!(generations.is_current(first));
        let second = generations.renew_edited();
        assert!(
            !generations.is_current(first),
            "superseded by a slider move"
        );
        assert!(generations.is_current(second));
        // Keeping a configuration to compare gives it its own number; both are current.
        let kept = generations.set_kept(true).unwrap();
        assert!(generations.is_current(kept) && generations.is_current(second));
        let third = generations.renew_edited();
        assert!(generations.is_current(kept) && generations.is_current(third));
        assert!(!generations.is_current(second));
        generations.set_kept(false);
        assert!(!generations.is_current(kept), "no longer compared");
        assert_eq!(generations.of(Side::Kept), None);
    }

    #[test]
    fn a_request_is_made_when_the_screen_needs_more_not_on_every_frame() {
        let generations = Generations::default();
        let here = Wanted::new(region(0, 0, 9, 9), false, &generations);
        let mut requests = Requests::default();
        assert!(requests.should_issue(&here));
        let id = requests.issue(here, 2);
        assert!(!requests.should_issue(&here), "in flight");
        requests.delivered(id);
        assert!(!requests.should_issue(&here));
        // An answer to an older request does not count for this one.
        requests.delivered(id - 1);
        assert_eq!(requests.outstanding(), 1);
        requests.delivered(id);
        assert!(
            requests.should_issue(&here),
            "answered: ask for what is left"
        );
        requests.issue(here, 5);
        let panned = Wanted::new(region(1, 0, 10, 9), false, &generations);
        assert!(requests.should_issue(&panned), "the screen moved");
        let closer = Wanted::new(here.region, true, &generations);
        assert!(requests.should_issue(&closer), "zoomed in: contents needed");
        let mut changed = generations.clone();
        changed.renew_edited();
        assert!(requests.should_issue(&Wanted::new(here.region, false, &changed)));
    }

    #[test]
    fn missing_sectors_come_nearest_the_centre_first_and_capped() {
        let r = region(-2, -2, 2, 2);
        let all = missing_sectors(r, |_| true, 100).nearest;
        assert_eq!(all.len(), 25);
        assert_eq!(all[0], SectorCoord::new(0, 0));
        assert!(all[1..5].iter().all(|c| c.x.abs() + c.y.abs() == 1));
        let capped = missing_sectors(r, |_| true, 5);
        assert_eq!(capped.count, 25);
        assert_eq!(capped.nearest, all[..5].to_vec());
        let some = missing_sectors(r, |c| c.x == 2, 100).nearest;
        assert_eq!(some.len(), 5);
        assert!(some.iter().all(|c| c.x == 2));
        assert_eq!(some[0], SectorCoord::new(2, 0));
    }

    #[test]
    fn zooming_out_stops_before_the_map_shows_too_many_sectors() {
        let rect = Rect::from_min_size(pos2(0.0, 0.0), vec2(1000.0, 800.0));
        let mut camera = Camera::default();
        zoom_about(&mut camera, rect, rect.center(), 1e-9, 1000.0);
        let shown = visible_region(&camera, rect, 1000.0);
        assert!(
            shown.sectors() as f32 <= MAX_VISIBLE_SECTORS * 1.05,
            "{shown}"
        );
        assert!(shown.width() >= 200, "a 200 x 200 region fits: {shown}");
        let pointer = pos2(700.0, 200.0);
        let under = camera.to_world(rect, pointer, 1000.0);
        zoom_about(&mut camera, rect, pointer, 8.0, 1000.0);
        let back = camera.to_screen(rect, under.0, under.1, 1000.0);
        assert!((back - pointer).length() < 0.5, "{back:?}");
    }
}
