//! The replay's map: the world at the tick shown, drawn as the live map draws it (the same
//! camera, grid and palette), scripted ships in the player's orange and the others in blue, and
//! the selected ship's contacts: a line from where it sensed to each contact, a ring on each.
//! Drag pans, the wheel zooms about the pointer, a click selects the nearest ship.

use egui::{Pos2, Rect, Sense, Stroke, Ui};

use astroboids_net::snapshot::KIND_ASTEROID;

use crate::camera::Camera;
use crate::map::{self, ASTEROID, BACKGROUND, DrawnEntity, OTHER_SHIP, OWN_SHIP, SELECTED};

use super::frame::{Frame, Sensed, WorldEntity};

/// A ship's hull on the map, metres nose to tail (drawn at least [`MIN_SHIP_POINTS`]), as on
/// the live map.
const SHIP_METRES: f32 = 14.0;
const MIN_SHIP_POINTS: f32 = 9.0;
/// A click selects the nearest ship within this many points.
const PICK_POINTS: f32 = 18.0;
/// A contact's ring is at least this wide, so small asteroids' rings show.
const MIN_CONTACT_POINTS: f32 = 5.0;

/// What the map drew last: its rect, the entities and the selected ship's contacts (for
/// clicks, tests and the screenshot's report).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayMapDrawn {
    pub rect: Rect,
    pub entities: Vec<DrawnEntity>,
    pub contacts: Vec<DrawnEntity>,
}

impl Default for ReplayMapDrawn {
    fn default() -> Self {
        Self {
            rect: Rect::NOTHING,
            entities: Vec::new(),
            contacts: Vec::new(),
        }
    }
}

impl ReplayMapDrawn {
    pub fn entity(&self, id: u64) -> Option<&DrawnEntity> {
        self.entities.iter().find(|e| e.id == id)
    }

    /// The ship nearest `at` within the pick distance.
    pub fn pick(&self, at: Pos2) -> Option<u64> {
        self.entities
            .iter()
            .filter(|e| e.kind != KIND_ASTEROID)
            .map(|e| (e.id, e.at.distance(at)))
            .filter(|(_, d)| *d <= PICK_POINTS)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(id, _)| id)
    }
}

/// Where the map looks and what it does with input.
#[derive(Debug, Clone, PartialEq)]
pub struct MapView {
    pub camera: Camera,
    /// Keep the selected ship at the centre.
    pub follow: bool,
    pub sector_size: f32,
    pub drawn: ReplayMapDrawn,
}

impl MapView {
    pub fn new(sector_size: f32) -> Self {
        Self {
            camera: Camera::default(),
            follow: true,
            sector_size,
            drawn: ReplayMapDrawn::default(),
        }
    }

    /// Draws `frame` in the rest of `ui` and takes the map's input; returns the ship clicked.
    pub fn show(
        &mut self,
        ui: &mut Ui,
        frame: Option<&Frame>,
        selected: Option<u64>,
    ) -> Option<u64> {
        let (response, painter) = ui.allocate_painter(ui.available_size(), Sense::click_and_drag());
        let rect = response.rect;
        let size = self.sector_size;
        if response.dragged() {
            self.camera.pan(response.drag_delta(), size);
            self.follow = false;
        }
        if let Some(pointer) = response.hover_pos() {
            let (zoom, scroll) = ui.input(|i| (i.zoom_delta(), i.smooth_scroll_delta().y));
            let factor = zoom * (scroll / 300.0).exp();
            if factor != 1.0 {
                self.camera.zoom_about(rect, pointer, factor, size);
            }
        }
        let clicked = if response.clicked() {
            response
                .interact_pointer_pos()
                .and_then(|at| self.drawn.pick(at))
        } else {
            None
        };
        if self.follow
            && let Some(ship) = selected.and_then(|id| frame?.entity(id))
        {
            self.camera.look_at(ship.sector, ship.local);
        }
        let painter = painter.with_clip_rect(rect);
        painter.rect_filled(rect, 0.0, BACKGROUND);
        map::grid(&painter, &self.camera, rect, size);
        let mut drawn = ReplayMapDrawn {
            rect,
            entities: Vec::new(),
            contacts: Vec::new(),
        };
        if let Some(frame) = frame {
            self.entities(&painter, rect, frame, selected, &mut drawn);
            if let Some(run) = frame.details().and_then(|d| d.run.as_ref()) {
                self.contacts(&painter, rect, &run.sensed, &mut drawn);
            }
        }
        self.drawn = drawn;
        clicked
    }

    fn entities(
        &self,
        painter: &egui::Painter,
        rect: Rect,
        frame: &Frame,
        selected: Option<u64>,
        out: &mut ReplayMapDrawn,
    ) {
        let ppm = self.camera.points_per_metre;
        // Asteroids under ships.
        for e in frame.entities.iter().filter(|e| e.kind == KIND_ASTEROID) {
            let at = self.to_screen(rect, e.sector, e.local);
            let radius = (e.radius * ppm).max(2.0);
            if rect.expand(radius).contains(at) {
                painter.circle_filled(at, radius, ASTEROID);
                out.entities.push(drawn(e, at, radius));
            }
        }
        let length = (SHIP_METRES * ppm).max(MIN_SHIP_POINTS);
        for e in frame.entities.iter().filter(|e| e.kind != KIND_ASTEROID) {
            let at = self.to_screen(rect, e.sector, e.local);
            if rect.expand(length).contains(at) {
                hull(painter, e, at, length, selected == Some(e.id));
                out.entities.push(drawn(e, at, length / 2.0));
            }
        }
    }

    fn contacts(
        &self,
        painter: &egui::Painter,
        rect: Rect,
        sensed: &Sensed,
        out: &mut ReplayMapDrawn,
    ) {
        let ppm = self.camera.points_per_metre;
        let from = self.to_screen(rect, sensed.sector, sensed.local);
        painter.circle_stroke(
            from,
            sensed.sensor_range * ppm,
            Stroke::new(1.0, SELECTED.gamma_multiply(0.35)),
        );
        for c in &sensed.contacts {
            let at = self.to_screen(rect, sensed.sector, sensed.contact_local(c));
            let radius = (c.given.radius * ppm).max(MIN_CONTACT_POINTS) + 3.0;
            painter.line_segment([from, at], Stroke::new(1.0, SELECTED.gamma_multiply(0.7)));
            painter.circle_stroke(at, radius, Stroke::new(1.5, SELECTED));
            out.contacts.push(DrawnEntity {
                id: c.id,
                kind: c.kind,
                at,
                radius,
            });
        }
    }

    fn to_screen(&self, rect: Rect, sector: (i32, i32), local: (f32, f32)) -> Pos2 {
        self.camera.to_screen(rect, sector, local, self.sector_size)
    }
}

fn drawn(e: &WorldEntity, at: Pos2, radius: f32) -> DrawnEntity {
    DrawnEntity {
        id: e.id,
        kind: e.kind,
        at,
        radius,
    }
}

fn hull(painter: &egui::Painter, e: &WorldEntity, at: Pos2, length: f32, selected: bool) {
    let fill = if e.scripted { OWN_SHIP } else { OTHER_SHIP };
    map::hull(painter, at, e.heading, length, fill, selected);
}
