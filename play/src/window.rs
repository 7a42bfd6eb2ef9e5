//! The eframe shell: a window (glow renderer) showing the login form until the player is
//! logged in (unless a saved login is given), then [`PlayApp`], fed by the session thread.
//! With a screenshot path it waits for the given number of ticks after the first snapshot,
//! freezes the map on the newest snapshot, captures what the window shows (egui's own
//! screenshot), writes it as a PNG, prints where each ship and asteroid was drawn, and exits.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::app::PlayApp;
use crate::login::LoginForm;
use crate::model::{NetUpdate, PlayModel};
use crate::net::{self, Target};

/// Frames to wait for a requested screenshot before giving up.
const SCREENSHOT_FRAMES_MAX: u64 = 600;
/// Frames drawn before a benchmark starts timing (fonts, textures, first layouts).
const BENCH_WARMUP_FRAMES: usize = 20;

#[derive(Debug, Clone)]
pub struct WindowOptions {
    pub width: f32,
    pub height: f32,
    /// Write what the window shows here and exit.
    pub screenshot: Option<PathBuf>,
    /// Ticks after the first snapshot before the screenshot.
    pub after_ticks: u64,
}

/// A frame-time benchmark: no server, a synthetic world of `entities` in sight.
#[derive(Debug, Clone, Copy)]
pub struct Bench {
    pub entities: usize,
    pub frames: usize,
}

type Shot = Arc<Mutex<Option<Arc<egui::ColorImage>>>>;

/// Keeps a login for next time (the caller's settings file); its error is shown in the form.
pub type SaveLogin = Box<dyn FnMut(&Target) -> Result<(), String> + Send>;

/// How the window starts.
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

struct Window {
    app: PlayApp,
    login: Option<Login>,
    updates: Option<mpsc::Receiver<NetUpdate>>,
    commands: Option<tokio::sync::mpsc::UnboundedSender<crate::model::Command>>,
    bench: Option<(Bench, Vec<Instant>)>,
    options: WindowOptions,
    started: Instant,
    first_tick: Option<u64>,
    shot: Shot,
    requested_at_frame: Option<u64>,
    frame: u64,
    outcome: Arc<Mutex<Result<(), String>>>,
}

/// Opens the window and plays until it is closed (or the screenshot is written).
pub fn run(start: Start, options: WindowOptions) -> Result<(), String> {
    let user = match &start {
        Start::Saved(target) => target.user.clone(),
        Start::Form { form, .. } => form.user.clone(),
    };
    let mut native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("AstroBoids")
            .with_inner_size([options.width, options.height]),
        renderer: eframe::Renderer::Glow,
        // Exact colours (dithering moves anti-aliased edges by one step).
        dithering: false,
        ..Default::default()
    };
    if options.screenshot.is_some() {
        native.glow_options.vsync = false;
    }
    let outcome = Arc::new(Mutex::new(Ok(())));
    let result = outcome.clone();
    let model = PlayModel::new(&user, 1_000.0);
    eframe::run_native(
        "astroboids-play",
        native,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let (session, login) = match start {
                Start::Saved(target) => (
                    Some(net::spawn(target, move || ctx.request_repaint())?),
                    None,
                ),
                Start::Form { form, save } => (
                    None,
                    Some(Login {
                        form,
                        pending: None,
                        save,
                    }),
                ),
            };
            let (updates, commands) = match session {
                Some(s) => (Some(s.updates), Some(s.commands)),
                None => (None, None),
            };
            Ok(Box::new(Window {
                app: PlayApp::new(model),
                login,
                updates,
                commands,
                bench: None,
                options,
                started: Instant::now(),
                first_tick: None,
                shot: Arc::new(Mutex::new(None)),
                requested_at_frame: None,
                frame: 0,
                outcome,
            }))
        }),
    )
    .map_err(|e| format!("the window: {e}"))?;
    result.lock().expect("not poisoned").clone()
}

/// Draws a synthetic world of `bench.entities` (ships and asteroids in a square around the
/// followed ship, moving between two snapshots) for `bench.frames` frames as fast as the
/// renderer goes, and prints the frame times.
pub fn bench(bench: Bench, width: f32, height: f32) -> Result<(), String> {
    let mut native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("AstroBoids: frame-time benchmark")
            .with_inner_size([width, height]),
        renderer: eframe::Renderer::Glow,
        dithering: false,
        ..Default::default()
    };
    native.glow_options.vsync = false;
    let outcome = Arc::new(Mutex::new(Ok(())));
    let result = outcome.clone();
    let (_tx, updates) = mpsc::channel();
    eframe::run_native(
        "astroboids-play-bench",
        native,
        Box::new(move |_cc| {
            Ok(Box::new(Window {
                app: PlayApp::new(synthetic_world(bench.entities)),
                login: None,
                updates: Some(updates),
                commands: None,
                bench: Some((
                    bench,
                    Vec::with_capacity(bench.frames + BENCH_WARMUP_FRAMES),
                )),
                options: WindowOptions {
                    width,
                    height,
                    screenshot: None,
                    after_ticks: 0,
                },
                started: Instant::now(),
                first_tick: None,
                shot: Arc::new(Mutex::new(None)),
                requested_at_frame: None,
                frame: 0,
                outcome,
            }))
        }),
    )
    .map_err(|e| format!("the window: {e}"))?;
    result.lock().expect("not poisoned").clone()
}

/// `entities` in a square around the origin of sector (0, 0), all within the map at the
/// default zoom: 1% the player's, a third other ships, the rest asteroids; ships move 3 m
/// between the two snapshots.
fn synthetic_world(entities: usize) -> PlayModel {
    use astroboids_net::live_view::LiveView;
    use astroboids_net::snapshot::{KIND_ASTEROID, KIND_OWN_SHIP, KIND_SHIP, View, ViewEntity};
    let size = 1_000.0;
    let side = (entities as f32).sqrt().ceil().max(1.0) as usize;
    let spacing = (1_100.0 / side as f32).min(40.0);
    let view = |shift: f32| -> View {
        (0..entities)
            .map(|i| {
                let (col, row) = ((i % side) as f32, (i / side) as f32);
                let kind = match i % 100 {
                    0 => KIND_OWN_SHIP,
                    1..=33 => KIND_SHIP,
                    _ => KIND_ASTEROID,
                };
                let moving = if kind == KIND_ASTEROID { 0.0 } else { shift };
                let x = (col - side as f32 / 2.0) * spacing + moving;
                let y = (row - side as f32 / 2.0) * spacing;
                let sector = ((x / size).floor() as i32, (y / size).floor() as i32);
                let local = (x.rem_euclid(size), y.rem_euclid(size));
                let hull = if kind == KIND_ASTEROID { 4.0 } else { 100.0 };
                (
                    i as u64 + 1,
                    ViewEntity::quantize(kind, sector, local, 0.5, hull),
                )
            })
            .collect()
    };
    let mut live = LiveView::new(size);
    live.update(1, &view(0.0));
    live.update(2, &view(3.0));
    let mut model = PlayModel::new("bench", size);
    model.apply(NetUpdate::Snapshot(live), 0.0);
    model.selected = None;
    model.follow = false;
    model.camera.look_at((0, 0), (0.0, 0.0));
    model
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

    /// Times frames; prints the figures and closes when done.
    fn bench(&mut self, ctx: &egui::Context) {
        let Some((bench, times)) = &mut self.bench else {
            return;
        };
        times.push(Instant::now());
        ctx.request_repaint();
        if times.len() < bench.frames + BENCH_WARMUP_FRAMES + 1 {
            return;
        }
        let mut ms: Vec<f64> = times[BENCH_WARMUP_FRAMES..]
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
            .collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
        let mean = ms.iter().sum::<f64>() / ms.len() as f64;
        println!(
            "frames: {} entities drawn ({} in sight), {} frames: mean {mean:.2} ms, p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
            bench.entities,
            self.app.map.entities.len(),
            ms.len(),
            at(0.5),
            at(0.95),
            at(1.0)
        );
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }

    fn screenshot(&mut self, ctx: &egui::Context) {
        let Some(path) = self.options.screenshot.clone() else {
            return;
        };
        ctx.request_repaint();
        if let Some(image) = self.shot.lock().expect("not poisoned").take() {
            let written = write_png(&image, &path).map(|()| report(&self.app, ctx, &path, &image));
            *self.outcome.lock().expect("not poisoned") = written;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        match self.requested_at_frame {
            Some(at) if self.frame > at + SCREENSHOT_FRAMES_MAX => {
                *self.outcome.lock().expect("not poisoned") = Err(format!(
                    "no screenshot came within {SCREENSHOT_FRAMES_MAX} frames"
                ));
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            Some(_) => {}
            None => {
                let (Some(first), Some(tick)) = (self.first_tick, self.app.model.live.tick())
                else {
                    return;
                };
                if tick >= first + self.options.after_ticks && !self.app.model.ships.is_empty() {
                    // The captured frame is drawn after this one: hold the map still for it.
                    self.app.model.frozen = true;
                    self.requested_at_frame = Some(self.frame);
                    let slot = self.shot.clone();
                    let wake = ctx.clone();
                    ctx.request_screenshot(move |image| {
                        *slot.lock().expect("not poisoned") = Some(image);
                        wake.request_repaint();
                    });
                }
            }
        }
    }
}

impl eframe::App for Window {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let now = self.started.elapsed().as_secs_f64();
        self.logged_in(ctx);
        let frozen = self.requested_at_frame.is_some();
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
        if let Some(commands) = &self.commands {
            for command in self.app.model.outbox.drain(..) {
                let _ = commands.send(command);
            }
        }
        self.screenshot(ctx);
        self.bench(ctx);
        // Smooth movement between snapshots.
        ctx.request_repaint();
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let now = self.started.elapsed().as_secs_f64();
        match &mut self.login {
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
        }
        self.frame += 1;
    }
}

fn write_png(image: &egui::ColorImage, path: &std::path::Path) -> Result<(), String> {
    let [w, h] = image.size;
    let buffer = image::RgbaImage::from_raw(w as u32, h as u32, image.as_raw().to_vec())
        .ok_or_else(|| "the screenshot's size does not match its pixels".to_string())?;
    buffer
        .save(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// What a screenshot shows, in pixels: one line per ship and asteroid drawn.
fn report(app: &PlayApp, ctx: &egui::Context, path: &std::path::Path, image: &egui::ColorImage) {
    let ppp = ctx.pixels_per_point();
    println!(
        "screenshot: {} ({}x{}, tick {})",
        path.display(),
        image.size[0],
        image.size[1],
        app.model.live.tick().unwrap_or(0)
    );
    for e in &app.map.entities {
        println!(
            "drawn: {} kind {} at {:.0} {:.0} radius {:.1}",
            e.id,
            e.kind,
            e.at.x * ppp,
            e.at.y * ppp,
            e.radius * ppp
        );
    }
    for line in app.model.visible_logs() {
        println!("log: {} ship {} {}", line.tick, line.ship, line.text);
    }
}
