//! `--screenshot FILE`: once the mode shows what was asked for, egui's own screenshot of the
//! next frame, written as a PNG, then what it shows printed in pixels (the tests read those
//! lines to find things in the picture).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::app::PlayApp;

/// Frames to wait for a requested screenshot before giving up.
const SCREENSHOT_FRAMES_MAX: u64 = 600;

type Slot = Arc<Mutex<Option<Arc<egui::ColorImage>>>>;

/// Where a screenshot stands.
pub(super) enum ShotStep {
    /// The view is not ready yet, or the picture is on its way.
    Waiting,
    /// Just asked for: hold everything still for the captured frame.
    Requested,
    /// Written (or failed): close the window.
    Done(Result<Arc<egui::ColorImage>, String>),
}

pub(super) struct ShotTaker {
    pub path: PathBuf,
    slot: Slot,
    requested_at_frame: Option<u64>,
}

impl ShotTaker {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            slot: Arc::new(Mutex::new(None)),
            requested_at_frame: None,
        }
    }

    pub fn requested(&self) -> bool {
        self.requested_at_frame.is_some()
    }

    /// One frame's step: `ready` says the view shows what the screenshot is for.
    pub fn step(&mut self, ctx: &egui::Context, frame: u64, ready: bool) -> ShotStep {
        ctx.request_repaint();
        if let Some(image) = self.slot.lock().expect("not poisoned").take() {
            return ShotStep::Done(write_png(&image, &self.path).map(|()| image));
        }
        match self.requested_at_frame {
            Some(at) if frame > at + SCREENSHOT_FRAMES_MAX => ShotStep::Done(Err(format!(
                "no screenshot came within {SCREENSHOT_FRAMES_MAX} frames"
            ))),
            Some(_) => ShotStep::Waiting,
            None if ready => {
                self.requested_at_frame = Some(frame);
                let slot = self.slot.clone();
                let wake = ctx.clone();
                ctx.request_screenshot(move |image| {
                    *slot.lock().expect("not poisoned") = Some(image);
                    wake.request_repaint();
                });
                ShotStep::Requested
            }
            None => ShotStep::Waiting,
        }
    }
}

fn write_png(image: &egui::ColorImage, path: &Path) -> Result<(), String> {
    let [w, h] = image.size;
    let buffer = image::RgbaImage::from_raw(w as u32, h as u32, image.as_raw().to_vec())
        .ok_or_else(|| "the screenshot's size does not match its pixels".to_string())?;
    buffer
        .save(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// What the play view shows, in pixels: one line per thing drawn, then the log lines.
pub(super) fn play_report(app: &PlayApp, pixels_per_point: f32) -> Vec<String> {
    let mut lines = vec![format!("tick: {}", app.model.live.tick().unwrap_or(0))];
    for e in &app.map.entities {
        lines.push(format!(
            "drawn: {} kind {} at {:.0} {:.0} radius {:.1}",
            e.id,
            e.kind,
            e.at.x * pixels_per_point,
            e.at.y * pixels_per_point,
            e.radius * pixels_per_point
        ));
    }
    for line in app.model.visible_logs() {
        lines.push(format!(
            "log: {} ship {} {}",
            line.tick, line.ship, line.text
        ));
    }
    lines
}
