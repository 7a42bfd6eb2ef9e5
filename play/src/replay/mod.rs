//! The replay view, for script authors: "what did my ship sense at tick 4,210 and what did it
//! decide?". It opens a `.abreplay` recording or a ship's trace (JSON) and shows the world at a
//! tick on a map, a timeline to play, step and scrub, the selected ship's script run (its
//! contacts, command, fuel, logs, faults and inputs), and `replay rerun` with another script
//! side by side with the recording.
//!
//! - [`timeline`]: playback, requests and the frame cache, decided with time passed in (no
//!   clock, no thread).
//! - [`worker`]: the thread that re-simulates to the tick asked for and answers with frames
//!   ([`frame`]); the view never waits for it.
//! - [`rerun`]: re-runs on a thread of their own.
//! - [`map`], `panels` and `ship_panel`: drawing and input.
//! - [`source`]: opening files and script modules.

pub mod frame;
pub mod map;
mod panels;
pub mod rerun;
mod ship_panel;
pub mod source;
pub mod timeline;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError, channel};

use frame::Frame;
use map::MapView;
use rerun::{RerunJob, RerunResult};
use source::Source;
use timeline::{FrameCache, FrameKey, Requests, Timeline};
use worker::{Reply, Worker};

/// Frames kept for going back without re-simulating.
const CACHED_FRAMES: usize = 32;

/// The replay view: the open form until a file is open, then the file on a timeline.
pub struct ReplayView {
    form: OpenForm,
    session: Option<Session>,
}

/// The path field and what became of the last attempt to open.
#[derive(Default)]
struct OpenForm {
    path: String,
    error: Option<String>,
    /// A file being read on a thread (the Open button), with its path.
    opening: Option<(PathBuf, Receiver<Result<Source, String>>)>,
    /// The path the Open button asked for, not yet being read.
    requested: Option<PathBuf>,
}

/// An open file.
struct Session {
    path: PathBuf,
    source: Source,
    summary: String,
    timeline: Timeline,
    selected: Option<u64>,
    /// A ship was chosen (a click, the list, [`ReplayView::select`]): the worker's default
    /// ship does not replace it.
    chose_ship: bool,
    /// A tick was asked for before the worker said where to start: it stays.
    chose_tick: bool,
    /// The worker said where to start; until then nothing is asked of it.
    started: bool,
    worker: Worker,
    requests: Requests,
    cache: FrameCache<Result<Arc<Frame>, String>>,
    /// The newest frame shown (kept on screen while the next one is made).
    shown: Option<Arc<Frame>>,
    map: MapView,
    rerun_path: String,
    rerun_from_shown_tick: bool,
    rerun_job: Option<RerunJob>,
    rerun: Option<Result<RerunResult, String>>,
    help: bool,
    /// The last seek or re-run refused, shown in the timeline bar.
    notice: Option<String>,
}

impl ReplayView {
    /// No file yet: the open form.
    pub fn empty() -> Self {
        Self {
            form: OpenForm::default(),
            session: None,
        }
    }

    /// Opens a .abreplay or a trace JSON (errors name the file and what is wrong).
    pub fn open(path: &Path) -> Result<Self, String> {
        let source = Source::open(path)?;
        let session = Session::new(path, source)?;
        Ok(Self {
            form: OpenForm {
                path: path.display().to_string(),
                ..OpenForm::default()
            },
            session: Some(session),
        })
    }

    /// Asks for `tick` (error names the recorded range when out of it).
    pub fn seek(&mut self, tick: u64) -> Result<(), String> {
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| "no replay is open".to_string())?;
        session.timeline.seek(tick)?;
        session.chose_tick = true;
        Ok(())
    }

    /// Selects a ship (whether it exists at the tick shown is told in the ship panel).
    pub fn select(&mut self, ship: u64) {
        if let Some(session) = &mut self.session {
            session.select(ship);
        }
    }

    /// Draws the whole view in `ui` (its own side/bottom panels inside, the map in the rest)
    /// at `now` seconds and takes input.
    pub fn ui(&mut self, ui: &mut egui::Ui, now: f64) {
        self.poll_opening();
        match &mut self.session {
            Some(session) => {
                session.update(ui.ctx(), now);
                session.ui(ui, &mut self.form);
                session.request(ui.ctx());
            }
            None => {
                egui::CentralPanel::default().show(ui, |ui| panels::open_form(ui, &mut self.form));
            }
        }
        if let Some(path) = self.form.take_request() {
            self.start_opening(path);
        }
        if self.form.opening.is_some() {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(50));
        }
    }

    /// True when the tick shown is the tick last asked for and no work is pending
    /// (screenshots wait for this).
    pub fn settled(&mut self) -> bool {
        self.poll_opening();
        if self.form.opening.is_some() {
            return false;
        }
        match &mut self.session {
            None => true,
            Some(session) => {
                session.drain();
                session.rerun_job.is_none() && session.current().is_some()
            }
        }
    }

    /// What the view shows, positions in pixels: the file and tick, each entity drawn, each
    /// contact of the selected ship, its command, log lines and faults at that tick.
    pub fn report(&self, pixels_per_point: f32) -> Vec<String> {
        let Some(session) = &self.session else {
            return vec!["replay: no file open".to_string()];
        };
        session.report(pixels_per_point)
    }

    /// The open file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.session.as_ref().map(|s| s.path.as_path())
    }

    /// The tick asked for.
    pub fn tick(&self) -> Option<u64> {
        self.session.as_ref().map(|s| s.timeline.tick())
    }

    /// The frame on screen (it may be an earlier tick's while the asked one is made).
    pub fn shown(&self) -> Option<&Frame> {
        self.session.as_ref().and_then(|s| s.shown.as_deref())
    }

    pub fn selected(&self) -> Option<u64> {
        self.session.as_ref().and_then(|s| s.selected)
    }

    pub fn playing(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.timeline.playing())
    }

    /// The last re-run's outcome.
    pub fn rerun_result(&self) -> Option<&Result<RerunResult, String>> {
        self.session.as_ref().and_then(|s| s.rerun.as_ref())
    }

    /// The error shown in the open form.
    pub fn open_error(&self) -> Option<&str> {
        self.form.error.as_deref()
    }

    /// What the map drew last.
    pub fn map(&self) -> Option<&map::ReplayMapDrawn> {
        self.session.as_ref().map(|s| &s.map.drawn)
    }

    fn start_opening(&mut self, path: PathBuf) {
        let (tx, rx) = channel();
        let reading = path.clone();
        let spawned = std::thread::Builder::new()
            .name("replay-open".into())
            .spawn(move || {
                let _ = tx.send(Source::open(&reading));
            });
        match spawned {
            Ok(_) => {
                self.form.error = None;
                self.form.opening = Some((path, rx));
            }
            Err(e) => self.form.error = Some(format!("cannot start reading the file: {e}")),
        }
    }

    fn poll_opening(&mut self) {
        let Some((path, rx)) = &self.form.opening else {
            return;
        };
        let outcome = match rx.try_recv() {
            Ok(outcome) => outcome,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => Err(format!(
                "{}: reading the file stopped unexpectedly",
                path.display()
            )),
        };
        let path = path.clone();
        self.form.opening = None;
        match outcome.and_then(|source| Session::new(&path, source)) {
            Ok(session) => {
                self.session = Some(session);
                self.form.error = None;
            }
            Err(e) => self.form.error = Some(e),
        }
    }
}

impl OpenForm {
    /// The path the Open button asked for, once.
    fn take_request(&mut self) -> Option<PathBuf> {
        self.requested.take()
    }
}

impl Session {
    fn new(path: &Path, source: Source) -> Result<Self, String> {
        let (tick_rate_hz, sector_size) = source.rates();
        let worker = Worker::spawn(source.clone())?;
        Ok(Self {
            path: path.to_path_buf(),
            summary: source.summary(),
            timeline: Timeline::new(source.ticks(), tick_rate_hz),
            source,
            selected: None,
            chose_ship: false,
            chose_tick: false,
            started: false,
            worker,
            requests: Requests::default(),
            cache: FrameCache::new(CACHED_FRAMES),
            shown: None,
            map: MapView::new(sector_size),
            rerun_path: String::new(),
            rerun_from_shown_tick: false,
            rerun_job: None,
            rerun: None,
            help: false,
            notice: None,
        })
    }

    fn select(&mut self, ship: u64) {
        self.selected = Some(ship);
        self.chose_ship = true;
        self.map.follow = true;
    }

    /// The frame wanted now.
    fn want(&self) -> FrameKey {
        FrameKey {
            tick: self.timeline.tick(),
            ship: self.selected,
        }
    }

    /// The worker's answer for the frame wanted, once it is there.
    fn current(&self) -> Option<&Result<Arc<Frame>, String>> {
        if !self.started {
            return None;
        }
        self.cache.get(self.want())
    }

    /// Takes the worker's answers and a finished re-run.
    fn drain(&mut self) {
        while let Some(reply) = self.worker.try_reply() {
            match reply {
                Reply::Start { tick, ship } => {
                    self.started = true;
                    if !self.chose_ship {
                        self.selected = ship;
                    }
                    if !self.chose_tick {
                        // A start the worker found is in the recording.
                        let _ = self.timeline.seek(tick);
                    }
                }
                Reply::Frame(key, frame) => {
                    self.requests.answered(key);
                    self.cache.insert(key, frame);
                }
            }
        }
        if let Some(outcome) = self.rerun_job.as_ref().and_then(RerunJob::poll) {
            self.rerun_job = None;
            self.rerun = Some(outcome);
        }
    }

    /// Before drawing: advances playback, takes the worker's answers, shows the frame wanted
    /// if it is there.
    fn update(&mut self, ctx: &egui::Context, now: f64) {
        self.worker.wake_on_reply(ctx);
        self.timeline.advance(now);
        self.drain();
        if let Some(Ok(frame)) = self.current() {
            self.shown = Some(frame.clone());
        }
    }

    /// After drawing (which may have moved the timeline or the selection): asks the worker for
    /// what is wanted now, and says when to draw again.
    fn request(&mut self, ctx: &egui::Context) {
        let want = self.want();
        if self.started
            && let Some(key) = self.requests.next(want, self.cache.get(want).is_some())
        {
            self.worker.ask(key);
        }
        // Playback's next tick, and a fallback while answers are awaited (the worker wakes the
        // view when it answers).
        let pending = self.current().is_none() || self.rerun_job.is_some();
        let next = match (self.timeline.next_tick_in(), pending) {
            (Some(seconds), _) => Some(seconds.clamp(0.001, 0.1)),
            (None, true) => Some(0.05),
            (None, false) => None,
        };
        if let Some(seconds) = next {
            ctx.request_repaint_after(std::time::Duration::from_secs_f64(seconds));
        }
    }

    fn report(&self, pixels_per_point: f32) -> Vec<String> {
        let px = |v: f32| v * pixels_per_point;
        let tick = self.shown.as_ref().map_or(self.timeline.tick(), |f| f.tick);
        let mut lines = vec![format!("replay: {} tick {tick}", self.path.display())];
        for e in &self.map.drawn.entities {
            lines.push(format!(
                "drawn: {} kind {} at {:.0} {:.0} radius {:.1}",
                e.id,
                e.kind,
                px(e.at.x),
                px(e.at.y),
                px(e.radius)
            ));
        }
        for c in &self.map.drawn.contacts {
            lines.push(format!(
                "contact: {} kind {} at {:.0} {:.0}",
                c.id,
                c.kind,
                px(c.at.x),
                px(c.at.y)
            ));
        }
        let details = self.shown.as_ref().and_then(|f| f.details());
        if let Some(d) = details {
            match &d.run {
                Some(run) => {
                    lines.push(format!("command: ship {} {}", d.ship, run.command));
                    lines.extend(run.logs.iter().map(|l| format!("log: ship {} {l}", d.ship)));
                }
                None => lines.push(format!("command: ship {} script did not run", d.ship)),
            }
            lines.extend(
                d.faults
                    .iter()
                    .map(|f| format!("fault: ship {} {f}", d.ship)),
            );
        }
        lines
    }
}
