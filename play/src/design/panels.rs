//! The design view's side panels: the controls on the left (progress, preset, seed, A/B
//! comparison, the generation sliders) and the keys and statistics on the right.

use egui::{Color32, DragValue, ProgressBar, RichText, ScrollArea, Ui, vec2};

use super::{DesignView, Wanted, plan, sliders};

pub const CONTROLS_POINTS: f32 = 360.0;
/// Wide enough for one statistics table in the small monospace font, and for two.
pub const STATS_POINTS: f32 = 300.0;
pub const COMPARE_STATS_POINTS: f32 = 460.0;
const TABLE_FONT_POINTS: f32 = 10.5;
/// Okabe-Ito vermillion, as the play view shows trouble.
const REFUSED: Color32 = crate::app::FAULT;

pub(super) fn controls(view: &mut DesignView, ui: &mut Ui, now: f64) {
    egui::Panel::left("design-controls")
        .resizable(false)
        .exact_size(CONTROLS_POINTS)
        .show(ui, |ui| {
            ui.heading("Sector design");
            let changed =
                view.edited.config != view.opened.config || view.edited.seed != view.opened.seed;
            ui.label(format!(
                "{}{}",
                view.edited.caption(),
                if changed { " (edited)" } else { "" }
            ));
            progress(view, ui, now);
            ui.separator();
            preset_and_seed(view, ui);
            compare(view, ui, changed);
            if let Some(refusal) = &view.refusal {
                ui.label(RichText::new(refusal).color(REFUSED));
            }
            ui.separator();
            ScrollArea::vertical().show(ui, |ui| {
                ui.spacing_mut().slider_width = 110.0;
                for (field, value) in sliders::show(ui, &view.edited.config) {
                    // A refusal is kept in the view and shown above.
                    let _ = view.set_field(field, value);
                }
            });
        });
}

/// One bar, whether generating or done, so that nothing below it moves when it finishes.
fn progress(view: &DesignView, ui: &mut Ui, now: f64) {
    let (done, total) = view.progress;
    let text = match (done < total, view.generating_since, view.last_took) {
        (true, Some(since), _) => {
            format!("generating {done}/{total} sectors ({:.1} s)", now - since)
        }
        (true, None, _) => format!("generating {done}/{total} sectors"),
        (false, _, Some(took)) => format!("{total} sectors generated in {took:.2} s"),
        (false, _, None) => format!("{total} sectors generated"),
    };
    ui.add(ProgressBar::new(done as f32 / total.max(1) as f32).text(text));
}

fn preset_and_seed(view: &mut DesignView, ui: &mut Ui) {
    let current = view
        .presets
        .iter()
        .find(|p| p.config == view.edited.config)
        .map_or("custom", |p| p.name.as_str())
        .to_string();
    let mut chosen = None;
    egui::ComboBox::from_label("Preset")
        .selected_text(&current)
        .width(180.0)
        .show_ui(ui, |ui| {
            for preset in &view.presets {
                let selected = preset.name == current;
                let response = ui
                    .selectable_label(selected, &preset.name)
                    .on_hover_text(preset.summary);
                if response.clicked() {
                    chosen = Some(preset.name.clone());
                }
            }
        });
    if let Some(name) = chosen
        && let Err(reason) = view.choose(&name)
    {
        view.refusal = Some(reason);
    }
    ui.horizontal(|ui| {
        let label = ui.label("Seed");
        let mut seed = view.edited.seed;
        if ui
            .add(DragValue::new(&mut seed))
            .labelled_by(label.id)
            .changed()
        {
            view.set_seed(seed);
        }
    });
}

fn compare(view: &mut DesignView, ui: &mut Ui, changed: bool) {
    ui.horizontal(|ui| {
        if view.kept.is_none() {
            if ui
                .button("Keep as A and compare")
                .on_hover_text("the sliders then edit B; both maps and their statistics show")
                .clicked()
            {
                view.set_comparing(true);
            }
        } else if ui.button("Stop comparing").clicked() {
            view.set_comparing(false);
        }
        if changed
            && ui
                .button(format!("Back to {}", view.opened.label))
                .clicked()
        {
            view.reset();
        }
    });
    if let Some(kept) = &view.kept {
        ui.label(format!("A: {}; the sliders edit B", kept.caption()));
    }
}

pub(super) fn statistics(view: &DesignView, ui: &mut Ui) {
    let width = if view.kept.is_some() {
        COMPARE_STATS_POINTS
    } else {
        STATS_POINTS
    };
    egui::Panel::right("design-stats")
        .resizable(false)
        .exact_size(width)
        .show(ui, |ui| {
            legend(ui);
            ui.separator();
            ui.strong("Statistics of the sectors on screen");
            let current = view
                .drawn
                .as_ref()
                .map(|d| Wanted::new(d.region, d.detail, &view.generations));
            match &view.stats {
                Some((wanted, stats)) => {
                    ui.label(wanted.region.to_string());
                    if Some(*wanted) != current {
                        ui.label(RichText::new("of an earlier view: updating").weak());
                    }
                    ScrollArea::vertical().show(ui, |ui| {
                        ui.label(
                            RichText::new(stats.table())
                                .monospace()
                                .size(TABLE_FONT_POINTS),
                        );
                    });
                }
                None => {
                    ui.label(RichText::new("once the sectors on screen are generated").weak());
                }
            }
        });
}

fn legend(ui: &mut Ui) {
    ui.strong("Keys");
    for line in [
        "drag: pan   wheel: zoom about the pointer",
        "+ / -: zoom   arrows: pan   Home: sector 0,0",
        "C: keep as A and compare (again: stop)",
        "R: back to the configuration opened",
    ] {
        ui.label(RichText::new(line).small());
    }
    ui.horizontal_wrapped(|ui| {
        ui.label(
            RichText::new("asteroids")
                .small()
                .color(crate::map::ASTEROID),
        );
        ui.label(RichText::new("nebulae").small().color(super::map::NEBULA));
        ui.label(RichText::new("hazards").small().color(super::map::HAZARD));
        ui.label(
            RichText::new("not generated yet")
                .small()
                .color(Color32::GRAY),
        );
    });
}

/// Keys act on the view unless a text field is being typed into.
pub(super) fn keys(view: &mut DesignView, ui: &Ui) {
    use egui::Key;
    if ui.ctx().egui_wants_keyboard_input() {
        return;
    }
    let pressed = |key| ui.input(|i| i.key_pressed(key));
    let size = view.edited.config.simulation.sector_size;
    if let Some(rect) = view.map_rect() {
        let centre = rect.center();
        if pressed(Key::Plus) || pressed(Key::Equals) {
            plan::zoom_about(&mut view.camera, rect, centre, 1.5, size);
        }
        if pressed(Key::Minus) {
            plan::zoom_about(&mut view.camera, rect, centre, 1.0 / 1.5, size);
        }
        // Arrows move a focused slider; the map only when nothing has focus.
        if ui.memory(|m| m.focused().is_none()) {
            let step = rect.size() / 4.0;
            for (key, delta) in [
                (Key::ArrowLeft, vec2(step.x, 0.0)),
                (Key::ArrowRight, vec2(-step.x, 0.0)),
                (Key::ArrowUp, vec2(0.0, step.y)),
                (Key::ArrowDown, vec2(0.0, -step.y)),
            ] {
                if pressed(key) {
                    view.camera.pan(delta, size);
                }
            }
        }
    }
    if pressed(Key::Home) {
        view.camera.look_at((0, 0), (size / 2.0, size / 2.0));
    }
    if pressed(Key::C) {
        view.set_comparing(view.kept.is_none());
    }
    if pressed(Key::R) {
        view.reset();
    }
}
