//! The replay view's layout and input: the file bar (what is open, open another), the timeline
//! (play, step, speed, scrub, the re-run's divergences marked), the ship panel on the right
//! (`ship_panel`), the map in the rest, the open form and the keys.

use egui::{Color32, RichText, ScrollArea, Sense, Stroke, Ui, vec2};

use crate::app::FAULT;
use crate::map::{BACKGROUND, SELECTED};

use super::timeline::Ticks;
use super::{OpenForm, Session};

pub const SHIP_PANEL_POINTS: f32 = 360.0;
/// Height of the strip under the slider marking the re-run's differing ticks.
const STRIP_POINTS: f32 = 10.0;

const KEYS: [(&str, &str); 10] = [
    ("Space", "play or pause"),
    ("Left / Right", "step one tick (Shift: ten)"),
    ("Home / End", "first / last tick"),
    ("[ / ]", "slower / faster"),
    ("D", "go to the re-run's first divergence"),
    ("N", "select the next ship"),
    ("F", "follow the selected ship"),
    ("drag, wheel", "pan, zoom the map"),
    ("click", "select a ship"),
    ("H", "show or hide this"),
];

/// The form shown when no file is open (and above an open file, to open another).
pub fn open_form(ui: &mut Ui, form: &mut OpenForm) {
    ui.heading("Replay");
    ui.label(
        "Open a recording (.abreplay from `astroboids sim --record FILE` or a server's \
         live-*.abreplay) or a ship's trace (JSON from `astroboids replay export`).",
    );
    path_row(ui, form);
}

fn path_row(ui: &mut Ui, form: &mut OpenForm) {
    ui.horizontal(|ui| {
        let label = ui.label("Replay file");
        let field = ui
            .add(egui::TextEdit::singleline(&mut form.path).desired_width(420.0))
            .labelled_by(label.id);
        let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let busy = form.opening.is_some();
        let clicked = ui.add_enabled(!busy, egui::Button::new("Open")).clicked();
        if (clicked || entered) && !busy {
            let path = form.path.trim();
            if path.is_empty() {
                form.error = Some("type the path of a .abreplay or trace file".into());
            } else {
                form.requested = Some(path.into());
            }
        }
        if let Some((path, _)) = &form.opening {
            ui.spinner();
            ui.label(format!("opening {}…", path.display()));
        }
    });
    if let Some(error) = &form.error {
        ui.label(RichText::new(error).color(FAULT));
    }
}

impl Session {
    pub(super) fn ui(&mut self, ui: &mut Ui, form: &mut OpenForm) {
        self.keys(ui);
        egui::Panel::top("replay-file").show(ui, |ui| {
            ui.label(RichText::new(format!("{}", self.path.display())).strong());
            ui.label(&self.summary);
            path_row(ui, form);
        });
        egui::Panel::bottom("replay-timeline")
            .resizable(false)
            .show(ui, |ui| self.timeline_bar(ui));
        egui::Panel::right("replay-ship")
            .resizable(false)
            .exact_size(SHIP_PANEL_POINTS)
            .show(ui, |ui| {
                ScrollArea::vertical().show(ui, |ui| {
                    self.ship_panel(ui);
                    ui.separator();
                    self.rerun_panel(ui);
                });
            });
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE.fill(BACKGROUND))
            .show(ui, |ui| {
                let frame = self.shown.clone();
                if let Some(ship) = self.map.show(ui, frame.as_deref(), self.selected) {
                    self.select(ship);
                }
                if self.help {
                    help(ui);
                }
            });
    }

    fn keys(&mut self, ui: &Ui) {
        use egui::Key;
        if ui.ctx().egui_wants_keyboard_input() {
            return;
        }
        let (shift, pressed): (bool, Vec<Key>) = ui.input(|i| {
            let keys = [
                Key::Space,
                Key::ArrowLeft,
                Key::ArrowRight,
                Key::Home,
                Key::End,
                Key::OpenBracket,
                Key::CloseBracket,
                Key::D,
                Key::N,
                Key::F,
                Key::H,
            ];
            let down = keys.into_iter().filter(|&k| i.key_pressed(k)).collect();
            (i.modifiers.shift, down)
        });
        let stride = if shift { 10 } else { 1 };
        for key in pressed {
            match key {
                Key::Space => self.timeline.toggle(),
                Key::ArrowLeft => self.timeline.step(-stride),
                Key::ArrowRight => self.timeline.step(stride),
                Key::Home => self.timeline.step(i64::MIN),
                Key::End => self.timeline.step(i64::MAX),
                Key::OpenBracket => self.timeline.slower(),
                Key::CloseBracket => self.timeline.faster(),
                Key::D => self.go_to_first_divergence(),
                Key::N => self.select_next_ship(),
                Key::F => self.map.follow = !self.map.follow,
                Key::H => self.help = !self.help,
                _ => {}
            }
        }
    }

    fn go_to_first_divergence(&mut self) {
        let first = self
            .rerun
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .and_then(|r| r.first_difference);
        if let Some(tick) = first {
            self.timeline.pause();
            self.notice = self.timeline.seek(tick).err();
        }
    }

    pub(super) fn select_next_ship(&mut self) {
        let Some(frame) = &self.shown else {
            return;
        };
        let mut ships: Vec<u64> = frame
            .entities
            .iter()
            .filter(|e| e.kind != astroboids_net::snapshot::KIND_ASTEROID)
            .map(|e| e.id)
            .collect();
        ships.sort_unstable();
        let next = match self.selected {
            Some(s) => ships.iter().find(|&&id| id > s).or(ships.first()),
            None => ships.first(),
        };
        if let Some(&ship) = next {
            self.select(ship);
        }
    }

    fn timeline_bar(&mut self, ui: &mut Ui) {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            let play = if self.timeline.playing() {
                "Pause"
            } else {
                "Play"
            };
            if ui.button(play).clicked() {
                self.timeline.toggle();
            }
            if ui.button("< Step").clicked() {
                self.timeline.step(-1);
            }
            if ui.button("Step >").clicked() {
                self.timeline.step(1);
            }
            ui.separator();
            if ui.button("Slower").clicked() {
                self.timeline.slower();
            }
            ui.label(format!("{}x", self.timeline.speed()));
            if ui.button("Faster").clicked() {
                self.timeline.faster();
            }
            ui.separator();
            let tick = self.timeline.tick();
            ui.label(RichText::new(format!("tick {tick}")).strong().monospace());
            match self.current() {
                None => {
                    ui.spinner();
                    ui.label(format!("loading tick {tick}…"));
                }
                Some(Err(e)) => {
                    ui.label(RichText::new(e).color(FAULT));
                }
                Some(Ok(_)) => {}
            }
            if let Some(notice) = &self.notice {
                ui.label(RichText::new(notice).color(FAULT));
            }
        });
        self.scrubber(ui);
        self.divergence_strip(ui);
        ui.horizontal_wrapped(|ui| {
            let legend: Vec<String> = KEYS[..7].iter().map(|(k, w)| format!("{k}: {w}")).collect();
            ui.small(format!("{}   (H: all keys)", legend.join(" · ")));
        });
        ui.add_space(2.0);
    }

    fn scrubber(&mut self, ui: &mut Ui) {
        let width = (ui.available_width() - 120.0).max(100.0);
        ui.spacing_mut().slider_width = width;
        match self.timeline.ticks().clone() {
            Ticks::Range { first, last } => {
                let mut tick = self.timeline.tick();
                let slider = egui::Slider::new(&mut tick, first..=last)
                    .text("tick")
                    .smart_aim(false);
                if ui.add(slider).changed() {
                    self.notice = self.timeline.seek(tick).err();
                }
            }
            Ticks::List(list) => {
                let mut index = self.timeline.index();
                let slider = egui::Slider::new(&mut index, 0..=list.len() - 1)
                    .text("run")
                    .custom_formatter(|i, _| format!("tick {}", list[i as usize]))
                    .smart_aim(false);
                if ui.add(slider).changed() {
                    self.timeline.seek_index(index);
                }
            }
        }
    }

    /// Marks the re-run's differing ticks (the first one brighter) along the recording; a
    /// click goes to the tick under it.
    fn divergence_strip(&mut self, ui: &mut Ui) {
        let Some(Ok(result)) = &self.rerun else {
            return;
        };
        let width = ui.spacing().slider_width;
        let (rect, response) = ui.allocate_exact_size(vec2(width, STRIP_POINTS), Sense::click());
        let response = response.on_hover_text("ticks where the re-run's commands differ");
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 2.0, Color32::from_gray(40));
        let ticks = self.timeline.ticks();
        let (first, last) = (ticks.first(), ticks.last());
        let span = (last - first).max(1) as f32;
        let x_of =
            |tick: u64| rect.left() + (tick.saturating_sub(first)) as f32 / span * rect.width();
        let mut last_x = f32::NEG_INFINITY;
        for &tick in result.differences.keys() {
            let x = x_of(tick);
            // One mark per point column is enough.
            if x - last_x >= 1.0 {
                painter.vline(
                    x,
                    rect.y_range(),
                    Stroke::new(1.0, FAULT.gamma_multiply(0.6)),
                );
                last_x = x;
            }
        }
        if let Some(tick) = result.first_difference {
            painter.vline(x_of(tick), rect.y_range(), Stroke::new(3.0, FAULT));
        }
        painter.vline(
            x_of(self.timeline.tick()),
            rect.y_range(),
            Stroke::new(1.5, SELECTED),
        );
        if response.clicked()
            && let Some(at) = response.interact_pointer_pos()
        {
            let fraction = ((at.x - rect.left()) / rect.width()).clamp(0.0, 1.0);
            let tick = first + (fraction * span).round() as u64;
            self.notice = self.timeline.seek(tick).err();
        }
    }
}

fn help(ui: &mut Ui) {
    egui::Window::new("Replay keys")
        .collapsible(false)
        .resizable(false)
        .show(ui.ctx(), |ui| {
            for (key, what) in KEYS {
                ui.label(format!("{key:<14} {what}"));
            }
            ui.label("Contacts are drawn where the ship sensed them, at the start of the tick;");
            ui.label("ships where they are after it. Orange: scripted ships; blue: the others.");
        });
}
