//! The window's content on an `egui::Ui`: the title bar (connection, tick, player), the fleet
//! panel (every ship's status, the selected one in full), the log panel (script lines and
//! faults, for all ships or the selected one) and the map. Keys: F follows the selected ship,
//! Tab selects the next ship, + and - zoom, H shows the keys.

use egui::{Color32, RichText, ScrollArea, Ui};

use crate::map::{self, MapDrawn};
use crate::model::{Command, Connection, PlayModel};

/// Okabe-Ito vermillion: faults and trouble.
pub const FAULT: Color32 = Color32::from_rgb(213, 94, 0);
pub const FLEET_PANEL_POINTS: f32 = 280.0;
pub const LOG_PANEL_POINTS: f32 = 150.0;

/// The window's state: the model and what the map drew last.
pub struct PlayApp {
    pub model: PlayModel,
    pub map: MapDrawn,
    pub help: bool,
    /// The script name typed in the commands panel.
    pub script: String,
    /// The script file and name typed in the upload form.
    pub upload_path: String,
    pub upload_name: String,
}

impl PlayApp {
    pub fn new(model: PlayModel) -> Self {
        Self {
            model,
            map: MapDrawn::default(),
            help: false,
            script: String::new(),
            upload_path: String::new(),
            upload_name: String::new(),
        }
    }

    /// Draws everything at `now` seconds and takes the input.
    pub fn ui(&mut self, ui: &mut Ui, now: f64) {
        self.keys(ui);
        egui::Panel::top("status").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("fleet")
            .resizable(false)
            .exact_size(FLEET_PANEL_POINTS)
            .show(ui, |ui| self.fleet(ui));
        egui::Panel::bottom("logs")
            .resizable(false)
            .exact_size(LOG_PANEL_POINTS)
            .show(ui, |ui| self.logs(ui));
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE.fill(map::BACKGROUND))
            .show(ui, |ui| {
                self.map = map::show(ui, &mut self.model, now, &self.map);
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
        let pressed = |key| ui.input(|i| i.key_pressed(key));
        if pressed(Key::F) {
            self.model.follow = !self.model.follow;
        }
        if pressed(Key::H) {
            self.help = !self.help;
        }
        if pressed(Key::Tab) {
            let ships: Vec<u64> = self.model.ships.iter().map(|s| s.ship).collect();
            let next = match self
                .model
                .selected
                .and_then(|s| ships.iter().position(|&i| i == s))
            {
                Some(i) => ships.get((i + 1) % ships.len().max(1)).copied(),
                None => ships.first().copied(),
            };
            self.model.selected = next;
            self.model.follow = next.is_some();
        }
        let size = self.model.sector_size();
        let centre = self.map.rect.center();
        if pressed(Key::Plus) || pressed(Key::Equals) {
            self.model
                .camera
                .zoom_about(self.map.rect, centre, 1.5, size);
        }
        if pressed(Key::Minus) {
            self.model
                .camera
                .zoom_about(self.map.rect, centre, 1.0 / 1.5, size);
        }
    }

    fn status_bar(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            match &self.model.connection {
                Connection::Connecting => {
                    ui.label("connecting...");
                }
                Connection::Live { server } => {
                    ui.label(format!("live on {server}"));
                }
                Connection::Trouble(reason) => {
                    ui.label(RichText::new(reason).color(FAULT));
                }
            }
            ui.separator();
            match self.model.live.tick() {
                Some(tick) => ui.label(format!("tick {tick}")),
                None => ui.label("no snapshot yet"),
            };
            ui.separator();
            ui.label(format!("player {}", self.model.user));
            ui.separator();
            ui.label("H: keys");
        });
    }

    fn fleet(&mut self, ui: &mut Ui) {
        ui.heading("Fleet");
        if self.model.ships.is_empty() {
            ui.label("no ships yet: `astroboids client spawn`");
        }
        let mut clicked = None;
        for s in &self.model.ships {
            let selected = self.model.selected == Some(s.ship);
            let text = format!("ship {}  hull {:.0}  {}", s.ship, s.hull, s.flown_by);
            if ui.selectable_label(selected, text).clicked() {
                clicked = Some(s.ship);
            }
        }
        if let Some(ship) = clicked {
            self.model.selected = Some(ship);
            self.model.follow = true;
        }
        ui.separator();
        let selected = self
            .model
            .selected
            .and_then(|id| self.model.ships.iter().find(|s| s.ship == id));
        if let Some(s) = selected {
            ui.label(RichText::new(format!("ship {}", s.ship)).strong());
            ui.label(format!(
                "sector {},{} at ({:.0}, {:.0})",
                s.sector.0, s.sector.1, s.local.0, s.local.1
            ));
            ui.label(format!(
                "velocity ({:.1}, {:.1})",
                s.velocity.0, s.velocity.1
            ));
            ui.label(format!(
                "hull {:.0}  energy {:.0}  cargo {}",
                s.hull, s.energy, s.cargo
            ));
            ui.label(format!("flown by {}", s.flown_by));
            ui.label(format!(
                "script fuel {} last tick, {} faults",
                s.script_fuel_used_last, s.script_faults_total
            ));
        }
        ui.checkbox(&mut self.model.follow, "follow the selected ship (F)");
        ui.separator();
        self.commands(ui);
    }

    /// Spawning, manual commands for the selected ship and giving it a script.
    fn commands(&mut self, ui: &mut Ui) {
        ui.label(RichText::new("Commands").strong());
        if ui.button("Spawn a ship").clicked() {
            self.model.outbox.push(Command::Spawn);
        }
        if let Some(ship) = self
            .model
            .selected
            .filter(|s| self.model.own_ships().contains(s))
        {
            ui.horizontal(|ui| {
                let moves = [
                    ("Thrust", 1.0, 0.0, false),
                    ("Left", 0.5, -1.0, false),
                    ("Right", 0.5, 1.0, false),
                    ("Stop", 0.0, 0.0, true),
                ];
                for (name, thrust, turn, stop) in moves {
                    if ui.button(name).clicked() {
                        self.model.outbox.push(Command::Move {
                            ship,
                            thrust,
                            turn,
                            stop,
                        });
                    }
                }
            });
            ui.horizontal(|ui| {
                let label = ui.label("Script");
                ui.add(egui::TextEdit::singleline(&mut self.script).desired_width(120.0))
                    .labelled_by(label.id);
                if ui.button("Assign").clicked() && !self.script.trim().is_empty() {
                    self.model.outbox.push(Command::Assign {
                        ship,
                        script: self.script.trim().to_owned(),
                    });
                }
            });
        }
        self.upload(ui);
        match &self.model.answer {
            Some(Ok(text)) => {
                ui.label(text);
            }
            Some(Err(why)) => {
                ui.label(RichText::new(why).color(FAULT));
            }
            None => {}
        }
    }

    /// A script file (.ts, .wasm or .wat) uploaded as a new version of a script of the
    /// player's; the name defaults to the file's.
    fn upload(&mut self, ui: &mut Ui) {
        ui.separator();
        ui.label(RichText::new("Upload a script").strong());
        egui::Grid::new("upload").num_columns(2).show(ui, |ui| {
            let label = ui.label("File");
            ui.add(egui::TextEdit::singleline(&mut self.upload_path).desired_width(170.0))
                .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Name");
            ui.add(
                egui::TextEdit::singleline(&mut self.upload_name)
                    .desired_width(170.0)
                    .hint_text("the file's name"),
            )
            .labelled_by(label.id);
            ui.end_row();
        });
        if ui.button("Upload").clicked() {
            match upload_command(&self.upload_path, &self.upload_name) {
                Ok(command) => self.model.outbox.push(command),
                Err(why) => self.model.answer = Some(Err(why)),
            }
        }
    }

    fn logs(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.label(RichText::new("Logs").strong());
            let all = self.model.log_filter.is_none();
            if ui.selectable_label(all, "all ships").clicked() {
                self.model.log_filter = None;
            }
            if let Some(ship) = self.model.selected
                && ui
                    .selectable_label(self.model.log_filter == Some(ship), format!("ship {ship}"))
                    .clicked()
            {
                self.model.log_filter = Some(ship);
            }
        });
        ScrollArea::vertical().stick_to_bottom(true).show(ui, |ui| {
            for line in self.model.visible_logs() {
                let text = format!("{:>7}  ship {:<5} {}", line.tick, line.ship, line.text);
                let text = RichText::new(text).monospace();
                ui.label(if line.fault { text.color(FAULT) } else { text });
            }
        });
    }
}

fn help(ui: &mut Ui) {
    egui::Window::new("Keys")
        .collapsible(false)
        .resizable(false)
        .show(ui.ctx(), |ui| {
            for (key, what) in [
                ("drag", "pan the map"),
                ("wheel, + / -", "zoom"),
                ("click", "select a ship"),
                ("Tab", "select the next ship of the fleet"),
                ("F", "follow the selected ship"),
                ("H", "show or hide this"),
                ("F1 / F2 / F3", "play / replay / design"),
            ] {
                ui.label(format!("{key:<14} {what}"));
            }
            ui.separator();
            for (colour, what) in [
                (map::OWN_SHIP, "your ships"),
                (
                    map::OWNER_COLOURS[0],
                    "other players' ships: one colour per player",
                ),
                (map::ASTEROID, "asteroids"),
                (map::NEBULA_EDGE, "nebulae: sensors reach less far inside"),
                (map::HAZARD_EDGE, "hazards: they damage hulls (dashed edge)"),
                (map::SENSOR_RANGE, "the selected ship's sensor range"),
            ] {
                ui.horizontal(|ui| {
                    let (swatch, _) =
                        ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                    ui.painter().circle_filled(swatch.center(), 5.0, colour);
                    ui.label(what);
                });
            }
        });
}

/// The upload form's command, or what is wrong with the form.
pub fn upload_command(path: &str, name: &str) -> Result<Command, String> {
    let path = std::path::PathBuf::from(path.trim());
    let kind = path.extension().and_then(|e| e.to_str());
    if path.as_os_str().is_empty() {
        return Err("file: give a script file (.ts, .wasm or .wat)".into());
    }
    if !matches!(kind, Some("ts" | "wasm" | "wat")) {
        return Err(format!(
            "file: {} is not a script: give a .ts, .wasm or .wat file",
            path.display()
        ));
    }
    let name = match name.trim() {
        "" => path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned(),
        typed => typed.to_owned(),
    };
    Ok(Command::UploadFile { path, name })
}
