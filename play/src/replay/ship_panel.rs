//! The right-hand panel: the selected ship at the tick shown, as `astroboids replay inspect`
//! prints it (state, inputs, sensors and contacts, command, fuel, logs, faults), and the re-run
//! form with the recorded and re-run commands side by side and the differing ticks listed.

use egui::{RichText, Ui};

use crate::app::FAULT;

use super::Session;
use super::rerun::{Compared, RerunJob};

/// Differences listed under the re-run (all are marked on the timeline).
const LISTED_DIFFERENCES: usize = 20;

impl Session {
    pub(super) fn ship_panel(&mut self, ui: &mut Ui) {
        let tick = self.timeline.tick();
        ui.horizontal(|ui| {
            match self.selected {
                Some(ship) => ui.heading(format!("Ship {ship} at tick {tick}")),
                None => ui.heading("No ship selected"),
            };
        });
        ui.horizontal(|ui| {
            if ui.button("Next ship").clicked() {
                self.select_next_ship();
            }
            ui.checkbox(&mut self.map.follow, "follow it");
        });
        let Some(frame) = self.shown.clone() else {
            return;
        };
        if frame.tick != tick {
            ui.label(format!(
                "(showing tick {} until tick {tick} is ready)",
                frame.tick
            ));
        }
        if frame.omitted > 0 {
            ui.label(format!("{} entities not drawn (too many)", frame.omitted));
        }
        let details = match &frame.ship {
            None => {
                ui.label("Click a ship on the map to see what its script sensed and decided.");
                return;
            }
            Some(Err(e)) => {
                ui.label(RichText::new(e).color(FAULT));
                return;
            }
            Some(Ok(details)) => details,
        };
        for line in &details.state {
            ui.label(line);
        }
        if !details.inputs.is_empty() {
            ui.label(RichText::new("Inputs before this tick").strong());
            for input in &details.inputs {
                ui.label(RichText::new(input).monospace().small());
            }
        }
        ui.separator();
        let Some(run) = &details.run else {
            ui.label("Its script did not run this tick (no script, starting, or backing off).");
            faults(ui, &details.faults);
            return;
        };
        ui.label(RichText::new("Returned").strong());
        let command = RichText::new(&run.command).monospace();
        ui.label(if run.command.starts_with("fault") {
            command.color(FAULT)
        } else {
            command
        });
        ui.label(format!(
            "fuel used {} of {} (random seed {:#018x})",
            run.fuel_used, run.budget, run.random_seed
        ));
        ui.label(RichText::new("Sensed").strong());
        for line in &run.sensor_lines {
            ui.label(RichText::new(line).monospace().small());
        }
        ui.label(RichText::new(format!("Log ({} lines)", run.logs.len())).strong());
        for line in &run.logs {
            ui.label(RichText::new(line).monospace());
        }
        if run.logs_dropped > 0 {
            ui.label(format!("{} more lines not kept", run.logs_dropped));
        }
        faults(ui, &details.faults);
    }

    pub(super) fn rerun_panel(&mut self, ui: &mut Ui) {
        ui.label(RichText::new("Re-run with another script").strong());
        ui.horizontal(|ui| {
            let label = ui.label("Script");
            ui.add(egui::TextEdit::singleline(&mut self.rerun_path).desired_width(200.0))
                .labelled_by(label.id);
            let running = self.rerun_job.is_some();
            if ui
                .add_enabled(!running, egui::Button::new("Re-run"))
                .clicked()
            {
                self.start_rerun(ui.ctx());
            }
        });
        ui.checkbox(
            &mut self.rerun_from_shown_tick,
            "start the new script at the tick shown (else at the first)",
        );
        if let Some(job) = &self.rerun_job {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!(
                    "re-running {} (tick {} of {}..={})…",
                    job.script.display(),
                    job.progress(),
                    job.from,
                    job.to
                ));
            });
        }
        let result = match &self.rerun {
            None => return,
            Some(Err(e)) => {
                ui.label(RichText::new(e).color(FAULT));
                return;
            }
            Some(Ok(result)) => result,
        };
        ui.label(format!(
            "ship {} with {}, ticks {}..={}",
            result.ship,
            result.script.display(),
            result.from,
            result.to
        ));
        let mut go_to = None;
        match result.first_difference {
            None => {
                ui.label("no divergence: every command matches the recording");
            }
            Some(tick) => {
                ui.label(
                    RichText::new(format!(
                        "first divergence at tick {tick} ({} ticks differ)",
                        result.differing_ticks
                    ))
                    .color(FAULT),
                );
                if ui.button(format!("Go to tick {tick}")).clicked() {
                    go_to = Some(tick);
                }
            }
        }
        for note in &result.notes {
            ui.label(RichText::new(note).small());
        }
        let tick = self.timeline.tick();
        ui.label(RichText::new(format!("Commands at tick {tick}")).strong());
        let recorded_now = self
            .shown
            .as_ref()
            .filter(|f| f.tick == tick)
            .and_then(|f| f.details())
            .filter(|d| Some(d.ship) == Some(result.ship))
            .and_then(|d| d.run.as_ref())
            .map(|r| r.command.clone());
        let (recorded, rerun, differ) = match result.at(tick) {
            Compared::Outside => ("-".to_string(), "not re-run".to_string(), false),
            Compared::Same => {
                let same = recorded_now.unwrap_or_else(|| "(as recorded)".into());
                (same.clone(), same, false)
            }
            Compared::Differ { recorded, rerun } => (recorded.to_string(), rerun.to_string(), true),
            Compared::NotKept => (
                recorded_now.unwrap_or_else(|| "-".into()),
                "not kept (past the differences kept)".into(),
                false,
            ),
        };
        egui::Grid::new("replay-rerun-side-by-side")
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("recorded");
                ui.label(RichText::new(recorded).monospace());
                ui.end_row();
                ui.label("re-run");
                let text = RichText::new(rerun).monospace();
                ui.label(if differ { text.color(FAULT) } else { text });
                ui.end_row();
            });
        if !result.differences.is_empty() {
            ui.label(RichText::new("Differing ticks (recorded -> re-run)").strong());
        }
        for (&t, (a, b)) in result.differences.iter().take(LISTED_DIFFERENCES) {
            let line = RichText::new(format!("{t}: {a} -> {b}"))
                .monospace()
                .small();
            if ui.selectable_label(t == tick, line).clicked() {
                go_to = Some(t);
            }
        }
        if let Some(tick) = go_to {
            self.timeline.pause();
            self.notice = self.timeline.seek(tick).err();
        }
    }

    fn start_rerun(&mut self, ctx: &egui::Context) {
        let path = self.rerun_path.trim();
        if path.is_empty() {
            self.rerun = Some(Err("type the path of a .wasm or .wat script".into()));
            return;
        }
        let Some(ship) = self.selected else {
            self.rerun = Some(Err("select a ship to re-run first".into()));
            return;
        };
        let from = self.rerun_from_shown_tick.then(|| self.timeline.tick());
        match RerunJob::start(
            &self.source,
            ship,
            std::path::Path::new(path),
            from,
            Some(ctx.clone()),
        ) {
            Ok(job) => {
                self.rerun_job = Some(job);
                self.rerun = None;
            }
            Err(e) => self.rerun = Some(Err(e)),
        }
    }
}

fn faults(ui: &mut Ui, faults: &[String]) {
    if faults.is_empty() {
        return;
    }
    ui.label(RichText::new("Faults").strong().color(FAULT));
    for fault in faults {
        ui.label(RichText::new(fault).color(FAULT));
    }
}
