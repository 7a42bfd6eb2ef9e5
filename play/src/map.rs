//! The map: the sector grid with coordinates, nebulae and hazards as translucent discs,
//! asteroids sized by their radius, ships as hulls pointing where they head (the player's own
//! highlighted, other players' in their owner's colour, the selected one ringed with its
//! sensor range around it), placed between the two newest snapshots. Drag pans, the wheel (or
//! a pinch) zooms about the pointer, a click selects the nearest ship. Colours are from the
//! Okabe-Ito palette, which readers with the common colour-vision deficiencies tell apart.

use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Shape, Stroke, Ui, vec2};

use astroboids_net::live_view::Drawn;
use astroboids_net::snapshot::{
    KIND_ASTEROID, KIND_HAZARD, KIND_NEBULA, KIND_OWN_SHIP, OWNER_SLOTS, is_area, is_ship,
    owner_slot,
};

use crate::camera::Camera;
use crate::model::PlayModel;

pub const BACKGROUND: Color32 = Color32::from_rgb(8, 12, 24);
pub const GRID: Color32 = Color32::from_rgb(45, 55, 75);
pub const GRID_TEXT: Color32 = Color32::from_rgb(110, 120, 140);
/// Okabe-Ito orange.
pub const OWN_SHIP: Color32 = Color32::from_rgb(230, 159, 0);
/// Okabe-Ito sky blue.
pub const OTHER_SHIP: Color32 = Color32::from_rgb(86, 180, 233);
pub const ASTEROID: Color32 = Color32::from_rgb(150, 140, 128);
/// Okabe-Ito yellow.
pub const SELECTED: Color32 = Color32::from_rgb(240, 228, 66);
/// Other players' ships, by their owner's slot: the rest of the Okabe-Ito palette (orange is
/// the player's own, yellow the selection) and a light grey.
pub const OWNER_COLOURS: [Color32; OWNER_SLOTS as usize] = [
    OTHER_SHIP,
    Color32::from_rgb(0, 158, 115),
    Color32::from_rgb(204, 121, 167),
    Color32::from_rgb(0, 114, 178),
    Color32::from_rgb(213, 94, 0),
    Color32::from_rgb(200, 200, 200),
];
/// Unowned ships.
pub const UNOWNED_SHIP: Color32 = Color32::from_rgb(160, 160, 160);
/// Nebulae (sensors reach less far inside): a faint bluish green, under everything else.
pub const NEBULA: Color32 = Color32::from_rgba_premultiplied(0, 40, 29, 64);
pub const NEBULA_EDGE: Color32 = Color32::from_rgb(0, 158, 115);
/// Hazards (they damage hulls): a faint vermillion with a dashed edge.
pub const HAZARD: Color32 = Color32::from_rgba_premultiplied(53, 23, 0, 64);
pub const HAZARD_EDGE: Color32 = Color32::from_rgb(213, 94, 0);
pub const SENSOR_RANGE: Color32 = Color32::from_rgb(90, 110, 140);

/// A ship's hull on the map, metres nose to tail (drawn at least [`MIN_SHIP_POINTS`]).
const SHIP_METRES: f32 = 14.0;
const MIN_SHIP_POINTS: f32 = 9.0;
/// A click selects the nearest ship within this many points.
const PICK_POINTS: f32 = 18.0;
/// Sector coordinates are written only when a sector is at least this wide on screen.
const LABEL_MIN_SECTOR_POINTS: f32 = 60.0;
/// Grid lines are drawn only while at most this many sectors are visible across.
const MAX_GRID_SECTORS: i32 = 200;

/// One thing drawn, where (kept for tests, selection and the screenshot's report).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrawnEntity {
    pub id: u64,
    pub kind: u8,
    pub at: Pos2,
    /// Half its size on screen, points.
    pub radius: f32,
}

/// What the map drew last.
#[derive(Debug, Clone, PartialEq)]
pub struct MapDrawn {
    pub rect: Rect,
    pub entities: Vec<DrawnEntity>,
}

impl Default for MapDrawn {
    fn default() -> Self {
        Self {
            rect: Rect::NOTHING,
            entities: Vec::new(),
        }
    }
}

impl MapDrawn {
    pub fn entity(&self, id: u64) -> Option<&DrawnEntity> {
        self.entities.iter().find(|e| e.id == id)
    }

    /// The ship nearest `at` within the pick distance.
    fn pick(&self, at: Pos2) -> Option<u64> {
        self.entities
            .iter()
            .filter(|e| is_ship(e.kind))
            .map(|e| (e.id, e.at.distance(at)))
            .filter(|(_, d)| *d <= PICK_POINTS)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(id, _)| id)
    }
}

/// Draws the map in the rest of `ui` at `now` seconds and takes its input.
pub fn show(ui: &mut Ui, model: &mut PlayModel, now: f64, last: &MapDrawn) -> MapDrawn {
    let (response, painter) = ui.allocate_painter(ui.available_size(), Sense::click_and_drag());
    let rect = response.rect;
    let size = model.sector_size();
    if response.dragged() {
        model.camera.pan(response.drag_delta(), size);
        model.follow = false;
    }
    if let Some(pointer) = response.hover_pos() {
        let (zoom, scroll) = ui.input(|i| (i.zoom_delta(), i.smooth_scroll_delta().y));
        let factor = zoom * (scroll / 300.0).exp();
        if factor != 1.0 {
            model.camera.zoom_about(rect, pointer, factor, size);
        }
    }
    if response.clicked()
        && let Some(at) = response.interact_pointer_pos()
    {
        model.selected = last.pick(at);
        model.follow = model.selected.is_some();
    }
    let drawn = model.live.at(model.draw_tick(now));
    if model.follow
        && let Some(ship) = model
            .selected
            .and_then(|id| drawn.iter().find(|d| d.id == id))
    {
        model.camera.look_at(ship.sector, ship.local);
    }
    let painter = painter.with_clip_rect(rect);
    painter.rect_filled(rect, 0.0, BACKGROUND);
    grid(&painter, &model.camera, rect, size);
    let mut out = MapDrawn {
        rect,
        entities: Vec::with_capacity(drawn.len()),
    };
    // Areas under asteroids, asteroids under ships.
    for d in drawn.iter().filter(|d| is_area(d.entity.kind)) {
        let at = model.camera.to_screen(rect, d.sector, d.local, size);
        let radius = d.entity.area_radius() * model.camera.points_per_metre;
        if !rect.expand(radius).contains(at) {
            continue;
        }
        area(&painter, d.entity.kind, at, radius);
        out.entities.push(DrawnEntity {
            id: d.id,
            kind: d.entity.kind,
            at,
            radius,
        });
    }
    if let Some(ship) = model.selected.and_then(|id| {
        drawn
            .iter()
            .find(|d| d.id == id && d.entity.kind == KIND_OWN_SHIP)
    }) {
        sensor_range(&painter, model, rect, ship, &drawn);
    }
    for d in drawn.iter().filter(|d| d.entity.kind == KIND_ASTEROID) {
        let at = model.camera.to_screen(rect, d.sector, d.local, size);
        let radius = (f32::from(d.entity.hull) * model.camera.points_per_metre).max(2.0);
        if rect.expand(radius).contains(at) {
            painter.circle_filled(at, radius, ASTEROID);
            out.entities.push(DrawnEntity {
                id: d.id,
                kind: d.entity.kind,
                at,
                radius,
            });
        }
    }
    for d in drawn.iter().filter(|d| is_ship(d.entity.kind)) {
        let at = model.camera.to_screen(rect, d.sector, d.local, size);
        let length = (SHIP_METRES * model.camera.points_per_metre).max(MIN_SHIP_POINTS);
        if !rect.expand(length).contains(at) {
            continue;
        }
        ship(&painter, d, at, length, model.selected == Some(d.id));
        out.entities.push(DrawnEntity {
            id: d.id,
            kind: d.entity.kind,
            at,
            radius: length / 2.0,
        });
    }
    out
}

/// A ship's fill: the player's own, its owner's colour, or the unowned grey.
pub fn ship_colour(kind: u8) -> Color32 {
    match (kind, owner_slot(kind)) {
        (KIND_OWN_SHIP, _) => OWN_SHIP,
        (_, Some(slot)) => OWNER_COLOURS[usize::from(slot)],
        _ => UNOWNED_SHIP,
    }
}

fn area(painter: &egui::Painter, kind: u8, at: Pos2, radius: f32) {
    if kind == KIND_NEBULA {
        painter.circle(at, radius, NEBULA, Stroke::new(1.0, NEBULA_EDGE));
        return;
    }
    debug_assert_eq!(kind, KIND_HAZARD);
    painter.circle_filled(at, radius, HAZARD);
    // Dashed, so a hazard differs from a nebula by more than its hue.
    let dashes = ((radius * std::f32::consts::TAU / 12.0) as usize).clamp(8, 256);
    for i in (0..dashes).step_by(2) {
        let angle = |k: usize| k as f32 / dashes as f32 * std::f32::consts::TAU;
        let point = |a: f32| at + vec2(a.cos(), a.sin()) * radius;
        painter.line_segment(
            [point(angle(i)), point(angle(i + 1))],
            Stroke::new(1.5, HAZARD_EDGE),
        );
    }
}

/// The selected own ship's sensor range (shortened inside a nebula it is in).
fn sensor_range(
    painter: &egui::Painter,
    model: &PlayModel,
    rect: Rect,
    ship: &Drawn,
    drawn: &[Drawn],
) {
    if model.sensor_range <= 0.0 {
        return;
    }
    let size = model.sector_size();
    let inside_nebula = drawn
        .iter()
        .filter(|d| d.entity.kind == KIND_NEBULA)
        .any(|n| {
            let dx = (n.sector.0 - ship.sector.0) as f32 * size + n.local.0 - ship.local.0;
            let dy = (n.sector.1 - ship.sector.1) as f32 * size + n.local.1 - ship.local.1;
            dx.hypot(dy) <= n.entity.area_radius()
        });
    let range = if inside_nebula {
        model.sensor_range * model.nebula_range_factor
    } else {
        model.sensor_range
    };
    let at = model.camera.to_screen(rect, ship.sector, ship.local, size);
    painter.circle_stroke(
        at,
        range * model.camera.points_per_metre,
        Stroke::new(1.0, SENSOR_RANGE),
    );
}

fn ship(painter: &egui::Painter, d: &Drawn, at: Pos2, length: f32, selected: bool) {
    hull(
        painter,
        at,
        d.heading,
        length,
        ship_colour(d.entity.kind),
        selected,
    );
}

/// A ship's hull: a triangle `length` points nose to tail pointing along `heading`, ringed
/// when selected (the replay view draws its ships with it too).
pub fn hull(
    painter: &egui::Painter,
    at: Pos2,
    heading: f32,
    length: f32,
    fill: Color32,
    selected: bool,
) {
    let (sin, cos) = heading.sin_cos();
    let forward = vec2(cos, sin);
    let side = vec2(-sin, cos);
    let nose = at + forward * (length * 0.6);
    let back = at - forward * (length * 0.4);
    let points = vec![
        nose,
        back + side * (length * 0.35),
        back - side * (length * 0.35),
    ];
    painter.add(Shape::convex_polygon(points, fill, Stroke::NONE));
    if selected {
        painter.circle_stroke(at, length * 0.9, Stroke::new(2.0, SELECTED));
    }
}

/// The sector grid with coordinates (when sectors are wide enough to label) as `camera` sees
/// it in `rect`; nothing when too many sectors are in sight.
pub fn grid(painter: &egui::Painter, camera: &Camera, rect: Rect, size: f32) {
    let (min, max) = camera.visible_sectors(rect, size);
    if max.0 - min.0 > MAX_GRID_SECTORS || max.1 - min.1 > MAX_GRID_SECTORS {
        return;
    }
    let stroke = Stroke::new(1.0, GRID);
    for x in min.0..=max.0.saturating_add(1) {
        let px = camera.sector_corner(rect, (x, min.1), size).x;
        painter.line_segment(
            [Pos2::new(px, rect.top()), Pos2::new(px, rect.bottom())],
            stroke,
        );
    }
    for y in min.1..=max.1.saturating_add(1) {
        let py = camera.sector_corner(rect, (min.0, y), size).y;
        painter.line_segment(
            [Pos2::new(rect.left(), py), Pos2::new(rect.right(), py)],
            stroke,
        );
    }
    if size * camera.points_per_metre < LABEL_MIN_SECTOR_POINTS {
        return;
    }
    for x in min.0..=max.0 {
        for y in min.1..=max.1 {
            let corner = camera.sector_corner(rect, (x, y), size);
            painter.text(
                corner + vec2(4.0, 3.0),
                Align2::LEFT_TOP,
                format!("{x},{y}"),
                FontId::proportional(11.0),
                GRID_TEXT,
            );
        }
    }
}
