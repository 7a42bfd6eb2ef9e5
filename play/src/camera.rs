//! Where the map looks: a point of the universe (sector and metres in it) at the centre of the
//! map, and a zoom in screen points per metre. Positions are taken relative to the camera's
//! sector before they become floats, so the map is as precise at sector (1e6, -1e6) as at the
//! origin (the sim's rule for positions, kept on screen).

use egui::{Pos2, Rect, Vec2, vec2};

/// Closest zoom: a ship (a few metres) fills a good part of the screen.
pub const MAX_POINTS_PER_METRE: f32 = 20.0;
/// Farthest zoom: a few sectors of 1,000 m across on one screen.
pub const MIN_POINTS_PER_METRE: f32 = 0.02;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    pub sector: (i32, i32),
    pub local: (f32, f32),
    pub points_per_metre: f32,
}

impl Default for Camera {
    fn default() -> Self {
        Self {
            sector: (0, 0),
            local: (500.0, 500.0),
            points_per_metre: 0.5,
        }
    }
}

impl Camera {
    /// Looks at `local` in `sector`.
    pub fn look_at(&mut self, sector: (i32, i32), local: (f32, f32)) {
        self.sector = sector;
        self.local = local;
    }

    /// Metres from the camera to a point (x right, y down, as the sim's local axes).
    fn offset(&self, sector: (i32, i32), local: (f32, f32), sector_size: f32) -> Vec2 {
        // The sector difference is an integer first: no precision lost far from the origin.
        let sx = (i64::from(sector.0) - i64::from(self.sector.0)) as f32;
        let sy = (i64::from(sector.1) - i64::from(self.sector.1)) as f32;
        vec2(
            sx * sector_size + (local.0 - self.local.0),
            sy * sector_size + (local.1 - self.local.1),
        )
    }

    /// Where a point of the universe is on a map drawn in `rect`.
    pub fn to_screen(
        &self,
        rect: Rect,
        sector: (i32, i32),
        local: (f32, f32),
        sector_size: f32,
    ) -> Pos2 {
        rect.center() + self.offset(sector, local, sector_size) * self.points_per_metre
    }

    /// The point of the universe under a screen position.
    pub fn to_world(&self, rect: Rect, at: Pos2, sector_size: f32) -> ((i32, i32), (f32, f32)) {
        let metres = (at - rect.center()) / self.points_per_metre;
        normalise(
            self.sector,
            (self.local.0 + metres.x, self.local.1 + metres.y),
            sector_size,
        )
    }

    /// Moves the view by a drag of `delta` screen points (the world follows the pointer).
    pub fn pan(&mut self, delta: Vec2, sector_size: f32) {
        let metres = delta / self.points_per_metre;
        (self.sector, self.local) = normalise(
            self.sector,
            (self.local.0 - metres.x, self.local.1 - metres.y),
            sector_size,
        );
    }

    /// Zooms by `factor` keeping the point under `pointer` where it is on screen.
    pub fn zoom_about(&mut self, rect: Rect, pointer: Pos2, factor: f32, sector_size: f32) {
        let before = self.to_world(rect, pointer, sector_size);
        self.points_per_metre =
            (self.points_per_metre * factor).clamp(MIN_POINTS_PER_METRE, MAX_POINTS_PER_METRE);
        let drifted = self.to_screen(rect, before.0, before.1, sector_size);
        self.pan(pointer - drifted, sector_size);
    }

    /// The sectors the map shows (inclusive corners), for the grid.
    pub fn visible_sectors(&self, rect: Rect, sector_size: f32) -> ((i32, i32), (i32, i32)) {
        let (min, _) = self.to_world(rect, rect.min, sector_size);
        let (max, _) = self.to_world(rect, rect.max, sector_size);
        (min, max)
    }

    /// The screen position of a sector's top-left corner.
    pub fn sector_corner(&self, rect: Rect, sector: (i32, i32), sector_size: f32) -> Pos2 {
        self.to_screen(rect, sector, (0.0, 0.0), sector_size)
    }
}

/// A position with its local part carried into `[0, sector_size)`.
fn normalise(sector: (i32, i32), local: (f32, f32), size: f32) -> ((i32, i32), (f32, f32)) {
    let carry = |s: i32, l: f32| {
        let whole = (l / size).floor();
        let rest = l - whole * size;
        // A rest that rounds up to the size itself belongs to the next sector.
        let (whole, rest) = if rest >= size {
            (whole + 1.0, 0.0)
        } else {
            (whole, rest)
        };
        (s.saturating_add(whole as i32), rest)
    };
    let (sx, lx) = carry(sector.0, local.0);
    let (sy, ly) = carry(sector.1, local.1);
    ((sx, sy), (lx, ly))
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::pos2;

    const SIZE: f32 = 1000.0;

    fn rect() -> Rect {
        Rect::from_min_size(pos2(100.0, 50.0), vec2(800.0, 600.0))
    }

    #[test]
    fn the_camera_point_is_the_map_centre_and_metres_scale_by_zoom() {
        let camera = Camera {
            sector: (3, -2),
            local: (100.0, 900.0),
            points_per_metre: 0.5,
        };
        assert_eq!(
            camera.to_screen(rect(), (3, -2), (100.0, 900.0), SIZE),
            rect().center()
        );
        // 200 m right and one sector down (+1000 m), 100 m up: (100, 450) points.
        let p = camera.to_screen(rect(), (3, -1), (300.0, 800.0), SIZE);
        assert_eq!(p, rect().center() + vec2(100.0, 450.0));
        assert_eq!(camera.to_world(rect(), p, SIZE), ((3, -1), (300.0, 800.0)));
    }

    #[test]
    fn far_from_the_origin_positions_stay_exact() {
        let camera = Camera {
            sector: (1_000_000, -1_000_000),
            local: (0.5, 0.25),
            points_per_metre: 4.0,
        };
        let p = camera.to_screen(rect(), (1_000_000, -1_000_000), (1.5, 0.75), SIZE);
        assert_eq!(p, rect().center() + vec2(4.0, 2.0));
    }

    #[test]
    fn a_drag_moves_the_world_with_the_pointer_across_sectors() {
        let mut camera = Camera {
            sector: (0, 0),
            local: (10.0, 500.0),
            points_per_metre: 1.0,
        };
        camera.pan(vec2(30.0, 0.0), SIZE);
        assert_eq!(camera.sector, (-1, 0));
        assert_eq!(camera.local, (980.0, 500.0));
        camera.pan(vec2(-30.0, -600.0), SIZE);
        assert_eq!(camera.sector, (0, 1));
        assert_eq!(camera.local, (10.0, 100.0));
    }

    #[test]
    fn zooming_keeps_the_point_under_the_pointer() {
        let mut camera = Camera::default();
        let pointer = rect().center() + vec2(200.0, -100.0);
        let under = camera.to_world(rect(), pointer, SIZE);
        camera.zoom_about(rect(), pointer, 4.0, SIZE);
        assert_eq!(camera.points_per_metre, 2.0);
        let now = camera.to_screen(rect(), under.0, under.1, SIZE);
        assert!((now - pointer).length() < 0.01, "{now:?} vs {pointer:?}");
        camera.zoom_about(rect(), pointer, 1e6, SIZE);
        assert_eq!(camera.points_per_metre, MAX_POINTS_PER_METRE, "bounded");
    }
}
