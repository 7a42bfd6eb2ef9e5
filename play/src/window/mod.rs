//! The eframe shell: one window, three modes. Play shows the login form until the player is
//! logged in (unless a saved login is given), then [`PlayApp`], fed by the session thread;
//! Replay shows [`ReplayView`], Design [`DesignView`]. With a screenshot path it waits until
//! the mode shows what was asked for (ticks after the first snapshot, the replay's tick, the
//! generated map), captures what the window shows (egui's own screenshot), writes it as a PNG,
//! prints what it drew in pixels, and exits.

mod bench;
mod shot;

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::app::PlayApp;
use crate::design::DesignView;
use crate::login::LoginForm;
use crate::model::{Command, NetUpdate, PlayModel};
use crate::net::{self, Target};
use crate::replay::ReplayView;

pub use bench::Bench;
use bench::BenchRun;
use shot::{ShotStep, ShotTaker};

/// Script files being read or compiled at once (each on its own thread).
const MAX_SCRIPT_LOADS: usize = 2;

/// The mode the window opens in.
#[derive(Debug, Clone, PartialEq)]
pub enum OpenMode {
    Play,
    /// A replay or trace file, at a tick and with a ship selected (the view's own choice when
    /// `None`).
    Replay {
        file: Option<PathBuf>,
        tick: Option<u64>,
        ship: Option<u64>,
    },
    /// A universe config's text (`None`: the embedded default), named `label`.
    Design {
        config: Option<String>,
        label: String,
    },
}

#[derive(Debug, Clone)]
pub struct WindowOptions {
    pub width: f32,
    pub height: f32,
    /// Write what the window shows here and exit.
    pub screenshot: Option<PathBuf>,
    /// Play: ticks after the first snapshot before the screenshot.
    pub after_ticks: u64,
    pub mode: OpenMode,
}

/// Reads a script file into a module's bytes (a .ts file compiled first): the caller's, since
/// the compiler lives with the command line. Called off the UI thread.
pub type ScriptLoader = Arc<dyn Fn(&std::path::Path) -> Result<Vec<u8>, String> + Send + Sync>;

/// Keeps a login for next time (the caller's settings file); its error is shown in the form.
pub type SaveLogin = Box<dyn FnMut(&Target) -> Result<(), String> + Send>;

/// How the play mode starts.
pub enum Start {
    /// With a saved login: straight to the game.
    Saved(Target),
    /// With the login form, filled with what is known.
    Form { form: LoginForm, save: SaveLogin },
}

/// The login form while it is shown.
struct Login {
    form: LoginForm,
    pending: Option<mpsc::Receiver<Result<Target, String>>>,
    save: SaveLogin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Play,
    Replay,
    Design,
}

struct Window {
    mode: Mode,
    app: PlayApp,
    login: Option<Login>,
    updates: Option<mpsc::Receiver<NetUpdate>>,
    commands: Option<tokio::sync::mpsc::UnboundedSender<Command>>,
    load_script: Option<ScriptLoader>,
    loads: Vec<mpsc::Receiver<Result<Command, String>>>,
    replay: Option<ReplayView>,
    design: Option<Result<DesignView, String>>,
    bench: Option<BenchRun>,
    after_ticks: u64,
    shot: Option<ShotTaker>,
    started: Instant,
    first_tick: Option<u64>,
    frame: u64,
    outcome: Arc<Mutex<Result<(), String>>>,
}

impl Window {
    fn new(app: PlayApp, mode: Mode, options: &WindowOptions) -> Self {
        Self {
            mode,
            app,
            login: None,
            updates: None,
            commands: None,
            load_script: None,
            loads: Vec::new(),
            replay: None,
            design: None,
            bench: None,
            after_ticks: options.after_ticks,
            shot: options.screenshot.clone().map(ShotTaker::new),
            started: Instant::now(),
            first_tick: None,
            frame: 0,
            outcome: Arc::new(Mutex::new(Ok(()))),
        }
    }
}

fn native_options(title: &str, width: f32, height: f32, vsync: bool) -> eframe::NativeOptions {
    let mut native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(title)
            .with_inner_size([width, height]),
        renderer: eframe::Renderer::Glow,
        // Exact colours (dithering moves anti-aliased edges by one step).
        dithering: false,
        ..Default::default()
    };
    native.glow_options.vsync = vsync;
    native
}

/// Opens the window and runs until it is closed (or the screenshot is written).
pub fn run(start: Start, options: WindowOptions, load_script: ScriptLoader) -> Result<(), String> {
    let user = match &start {
        Start::Saved(target) => target.user.clone(),
        Start::Form { form, .. } => form.user.clone(),
    };
    let (mode, replay, design) = match &options.mode {
        OpenMode::Play => (Mode::Play, None, None),
        OpenMode::Replay { file, tick, ship } => {
            let view = match file {
                Some(path) => {
                    let mut view = ReplayView::open(path)?;
                    if let Some(tick) = tick {
                        view.seek(*tick)?;
                    }
                    if let Some(ship) = ship {
                        view.select(*ship);
                    }
                    view
                }
                None => ReplayView::empty(),
            };
            (Mode::Replay, Some(view), None)
        }
        OpenMode::Design { config, label } => (
            Mode::Design,
            None,
            Some(DesignView::new(config.as_deref(), label)),
        ),
    };
    if let Some(Err(why)) = &design {
        return Err(why.clone());
    }
    // Play's screenshot needs the game; the other modes' do not.
    let play_needed = mode == Mode::Play || options.screenshot.is_none();
    let native = native_options(
        "AstroBoids",
        options.width,
        options.height,
        options.screenshot.is_none(),
    );
    let mut window = Window::new(PlayApp::new(PlayModel::new(&user, 1_000.0)), mode, &options);
    window.replay = replay;
    window.design = design;
    window.load_script = Some(load_script);
    let result = window.outcome.clone();
    eframe::run_native(
        "astroboids-play",
        native,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            match start {
                Start::Saved(target) if play_needed => {
                    let session = net::spawn(target, move || ctx.request_repaint())?;
                    window.updates = Some(session.updates);
                    window.commands = Some(session.commands);
                }
                Start::Saved(_) => {}
                Start::Form { form, save } => {
                    window.login = Some(Login {
                        form,
                        pending: None,
                        save,
                    });
                }
            }
            Ok(Box::new(window))
        }),
    )
    .map_err(|e| format!("the window: {e}"))?;
    result.lock().expect("not poisoned").clone()
}

/// Draws a synthetic world of `bench.entities` (ships, nebulae and asteroids in a square
/// around the origin, moving between two snapshots) for `bench.frames` frames as fast as the
/// renderer goes, and prints the frame times.
pub fn bench(bench: Bench, width: f32, height: f32) -> Result<(), String> {
    let native = native_options("AstroBoids: frame-time benchmark", width, height, false);
    let options = WindowOptions {
        width,
        height,
        screenshot: None,
        after_ticks: 0,
        mode: OpenMode::Play,
    };
    let mut window = Window::new(
        PlayApp::new(bench::synthetic_world(bench.entities)),
        Mode::Play,
        &options,
    );
    window.bench = Some(BenchRun::new(bench));
    let result = window.outcome.clone();
    eframe::run_native(
        "astroboids-play-bench",
        native,
        Box::new(move |_cc| Ok(Box::new(window))),
    )
    .map_err(|e| format!("the window: {e}"))?;
    result.lock().expect("not poisoned").clone()
}

impl Window {
    /// The login's answer: on success the login is kept and the game starts.
    fn logged_in(&mut self, ctx: &egui::Context) {
        let Some(login) = &mut self.login else {
            return;
        };
        let Some(answer) = login.pending.as_ref().and_then(|rx| rx.try_recv().ok()) else {
            return;
        };
        login.pending = None;
        login.form.busy = false;
        let target = match answer.and_then(|target| (login.save)(&target).map(|()| target)) {
            Ok(target) => target,
            Err(why) => {
                login.form.status = Some(why);
                return;
            }
        };
        let wake = ctx.clone();
        match net::spawn(target.clone(), move || wake.request_repaint()) {
            Ok(session) => {
                self.app.model.user = target.user;
                self.updates = Some(session.updates);
                self.commands = Some(session.commands);
                self.login = None;
            }
            Err(e) => login.form.status = Some(format!("cannot start the session: {e}")),
        }
    }

    /// Hands the window's commands to the session thread; script files are read (and
    /// compiled) on a thread of their own first, so the window never waits for a compiler.
    fn send_commands(&mut self, ctx: &egui::Context) {
        let commands: Vec<Command> = self.app.model.outbox.drain(..).collect();
        for command in commands {
            match command {
                Command::UploadFile { path, name } => self.load(ctx, path, name),
                command => self.send(command),
            }
        }
        let mut still = Vec::with_capacity(self.loads.len());
        for rx in std::mem::take(&mut self.loads) {
            match rx.try_recv() {
                Ok(Ok(command)) => self.send(command),
                Ok(Err(why)) => self.app.model.answer = Some(Err(why)),
                Err(mpsc::TryRecvError::Empty) => still.push(rx),
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.app.model.answer = Some(Err("reading the script failed".into()));
                }
            }
        }
        self.loads = still;
    }

    fn send(&mut self, command: Command) {
        match &self.commands {
            Some(commands) if commands.send(command).is_ok() => {}
            _ => self.app.model.answer = Some(Err("not connected".into())),
        }
    }

    fn load(&mut self, ctx: &egui::Context, path: PathBuf, name: String) {
        let Some(loader) = self.load_script.clone() else {
            self.app.model.answer = Some(Err("this window cannot read scripts".into()));
            return;
        };
        if self.loads.len() >= MAX_SCRIPT_LOADS {
            self.app.model.answer = Some(Err(format!(
                "{MAX_SCRIPT_LOADS} scripts are being read already: wait for their answers"
            )));
            return;
        }
        let (tx, rx) = mpsc::channel();
        let wake = ctx.clone();
        self.app.model.answer = Some(Ok(format!("reading {}...", path.display())));
        let spawned = std::thread::Builder::new()
            .name("astroboids-play-script".into())
            .spawn(move || {
                let loaded = loader(&path)
                    .map(|wasm| Command::Upload { name, wasm })
                    .map_err(|e| format!("{}: {e}", path.display()));
                let _ = tx.send(loaded);
                wake.request_repaint();
            });
        match spawned {
            Ok(_) => self.loads.push(rx),
            Err(e) => self.app.model.answer = Some(Err(format!("cannot read the script: {e}"))),
        }
    }

    /// Whether the mode shows what a screenshot was asked for.
    fn ready_for_screenshot(&mut self) -> bool {
        match self.mode {
            Mode::Play => {
                let (Some(first), Some(tick)) = (self.first_tick, self.app.model.live.tick())
                else {
                    return false;
                };
                tick >= first + self.after_ticks && !self.app.model.ships.is_empty()
            }
            Mode::Replay => self.replay.as_mut().is_some_and(ReplayView::settled),
            Mode::Design => match &mut self.design {
                Some(Ok(view)) => view.settled(),
                _ => false,
            },
        }
    }

    fn report(&self, pixels_per_point: f32) -> Vec<String> {
        match self.mode {
            Mode::Play => shot::play_report(&self.app, pixels_per_point),
            Mode::Replay => self
                .replay
                .as_ref()
                .map(|v| v.report(pixels_per_point))
                .unwrap_or_default(),
            Mode::Design => match &self.design {
                Some(Ok(view)) => view.report(pixels_per_point),
                _ => Vec::new(),
            },
        }
    }

    fn screenshot(&mut self, ctx: &egui::Context) {
        if self.shot.is_none() {
            return;
        }
        let ready = self.ready_for_screenshot();
        let Some(shot) = &mut self.shot else {
            return;
        };
        match shot.step(ctx, self.frame, ready) {
            ShotStep::Waiting => {}
            // The captured frame is drawn after this one: hold the map still for it.
            ShotStep::Requested => self.app.model.frozen = true,
            ShotStep::Done(done) => {
                let path = shot.path.clone();
                let written = done.map(|image| {
                    println!(
                        "screenshot: {} ({}x{})",
                        path.display(),
                        image.size[0],
                        image.size[1]
                    );
                    for line in self.report(ctx.pixels_per_point()) {
                        println!("{line}");
                    }
                });
                *self.outcome.lock().expect("not poisoned") = written;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
        }
    }

    /// The bar that switches modes (F1, F2, F3).
    fn mode_bar(&mut self, ui: &mut egui::Ui) {
        use egui::Key;
        if !ui.ctx().egui_wants_keyboard_input() {
            for (key, mode) in [
                (Key::F1, Mode::Play),
                (Key::F2, Mode::Replay),
                (Key::F3, Mode::Design),
            ] {
                if ui.input(|i| i.key_pressed(key)) {
                    self.mode = mode;
                }
            }
        }
        egui::Panel::top("modes").show(ui, |ui| {
            ui.horizontal(|ui| {
                for (label, mode) in [
                    ("Play (F1)", Mode::Play),
                    ("Replay (F2)", Mode::Replay),
                    ("Design (F3)", Mode::Design),
                ] {
                    if ui.selectable_label(self.mode == mode, label).clicked() {
                        self.mode = mode;
                    }
                }
            });
        });
    }
}

impl eframe::App for Window {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let now = self.started.elapsed().as_secs_f64();
        self.logged_in(ctx);
        let frozen = self.shot.as_ref().is_some_and(ShotTaker::requested);
        while let Some(update) = self.updates.as_ref().and_then(|rx| rx.try_recv().ok()) {
            // While a screenshot is taken, nothing changes under it.
            if frozen {
                continue;
            }
            self.app.model.apply(update, now);
        }
        if self.first_tick.is_none() {
            self.first_tick = self.app.model.live.tick();
        }
        self.send_commands(ctx);
        self.screenshot(ctx);
        if let Some(run) = &mut self.bench
            && let Some(figures) = run.frame(Instant::now(), self.app.map.entities.len())
        {
            println!("{figures}");
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        // Smooth movement between snapshots (and the replay's and designer's workers).
        ctx.request_repaint();
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let now = self.started.elapsed().as_secs_f64();
        if self.bench.is_none() {
            self.mode_bar(ui);
        }
        match self.mode {
            Mode::Play => match &mut self.login {
                Some(login) => {
                    let submitted = egui::CentralPanel::default()
                        .show(ui, |ui| login.form.ui(ui))
                        .inner;
                    if let Some(credentials) = submitted {
                        let wake = ui.ctx().clone();
                        match net::log_in(credentials, move || wake.request_repaint()) {
                            Ok(pending) => login.pending = Some(pending),
                            Err(e) => {
                                login.form.busy = false;
                                login.form.status = Some(format!("cannot start the login: {e}"));
                            }
                        }
                    }
                }
                None => self.app.ui(ui, now),
            },
            Mode::Replay => self
                .replay
                .get_or_insert_with(ReplayView::empty)
                .ui(ui, now),
            Mode::Design => {
                match self
                    .design
                    .get_or_insert_with(|| DesignView::new(None, "the default universe"))
                {
                    Ok(view) => view.ui(ui, now),
                    Err(why) => {
                        egui::CentralPanel::default().show(ui, |ui| {
                            ui.label(egui::RichText::new(why.as_str()).color(crate::app::FAULT));
                        });
                    }
                }
            }
        }
        self.frame += 1;
    }
}
