//! What the window shows, without I/O: the connection's state, the live world from snapshots,
//! the fleet's status, recent log lines and faults, the selected ship and the camera. The
//! network thread's [`NetUpdate`]s come in through [`PlayModel::apply`], with the time (in
//! seconds on any steady clock) passed in.

use std::collections::VecDeque;

use astroboids_net::live_view::LiveView;
use astroboids_net::messages::{ShipStatusReport, TickEvents};

use crate::camera::Camera;

/// Log lines and faults kept for the log panel (oldest dropped first).
pub const MAX_LOG_LINES: usize = 500;

/// What the network thread tells the window.
#[derive(Debug, Clone)]
pub enum NetUpdate {
    /// Connected and subscribed.
    Connected {
        server: String,
        tick_rate_hz: u32,
        /// How far ships sense, metres (times `nebula_range_factor` inside a nebula).
        sensor_range: f32,
        nebula_range_factor: f32,
    },
    /// A new complete snapshot: the client's live view after it.
    Snapshot(LiveView),
    Events(TickEvents),
    /// The fleet's status (asked every second).
    Status(Vec<ShipStatusReport>),
    /// The connection is lost or refused, and why; the thread tries again unless the login
    /// has expired.
    Trouble(String),
    /// What became of a command: the server's answer, or its refusal (which names what was
    /// wrong).
    Answer(Result<String, String>),
}

/// What the player asks of the server from the window.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A new ship in the player's home sector.
    Spawn,
    /// A manual command for the ship's next tick.
    Move {
        ship: u64,
        thrust: f32,
        turn: f32,
        stop: bool,
    },
    /// The latest version of one of the player's scripts flies the ship.
    Assign { ship: u64, script: String },
    /// Read (a .ts file compiled) and upload a script file as `name`: the window reads it,
    /// then hands the session an [`Command::Upload`].
    UploadFile {
        path: std::path::PathBuf,
        name: String,
    },
    /// A new version of the player's script `name`.
    Upload { name: String, wasm: Vec<u8> },
}

/// The connection as the title bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Live { server: String },
    Trouble(String),
}

/// One line of the log panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub tick: u64,
    pub ship: u64,
    pub text: String,
    pub fault: bool,
}

/// Everything the window draws (see the module docs).
#[derive(Debug, Clone)]
pub struct PlayModel {
    pub user: String,
    pub connection: Connection,
    pub live: LiveView,
    pub tick_rate_hz: u32,
    /// Sensor range in metres and its factor inside a nebula (0 until connected: no circle).
    pub sensor_range: f32,
    pub nebula_range_factor: f32,
    /// When the newest snapshot came (seconds on the caller's clock).
    pub snapshot_at: f64,
    /// Draw the newest snapshot as it is, not between the two newest (screenshots).
    pub frozen: bool,
    pub ships: Vec<ShipStatusReport>,
    pub logs: VecDeque<LogLine>,
    /// Show only this ship's lines in the log panel.
    pub log_filter: Option<u64>,
    pub selected: Option<u64>,
    /// Keep the selected ship at the centre of the map.
    pub follow: bool,
    pub camera: Camera,
    /// Commands the window asked for, not yet handed to the session thread.
    pub outbox: Vec<Command>,
    /// The answer to the last command.
    pub answer: Option<Result<String, String>>,
}

impl PlayModel {
    pub fn new(user: &str, sector_size: f32) -> Self {
        Self {
            user: user.to_owned(),
            connection: Connection::Connecting,
            live: LiveView::new(sector_size),
            tick_rate_hz: 10,
            sensor_range: 0.0,
            nebula_range_factor: 1.0,
            snapshot_at: 0.0,
            frozen: false,
            ships: Vec::new(),
            logs: VecDeque::new(),
            log_filter: None,
            selected: None,
            follow: true,
            camera: Camera::default(),
            outbox: Vec::new(),
            answer: None,
        }
    }

    pub fn sector_size(&self) -> f32 {
        self.live.sector_size()
    }

    /// Takes what the network thread heard, at `now` seconds.
    pub fn apply(&mut self, update: NetUpdate, now: f64) {
        match update {
            NetUpdate::Connected {
                server,
                tick_rate_hz,
                sensor_range,
                nebula_range_factor,
            } => {
                self.connection = Connection::Live { server };
                self.tick_rate_hz = tick_rate_hz.max(1);
                // A server's odd numbers must not become an odd circle: finite and non-negative.
                let finite =
                    |v: f32, otherwise: f32| if v.is_finite() { v.max(0.0) } else { otherwise };
                self.sensor_range = finite(sensor_range, 0.0);
                self.nebula_range_factor = finite(nebula_range_factor, 1.0);
            }
            NetUpdate::Snapshot(live) => {
                let first = self.live.tick().is_none();
                self.live = live;
                self.snapshot_at = now;
                if first && self.selected.is_none() {
                    // Something to look at from the start: the player's first ship.
                    self.selected = self.own_ships().first().copied();
                }
            }
            NetUpdate::Events(events) => {
                let lines = events
                    .logs
                    .into_iter()
                    .map(|(ship, text)| (ship, text, false));
                let faults = events
                    .faults
                    .into_iter()
                    .map(|(ship, text)| (ship, text, true));
                for (ship, text, fault) in lines.chain(faults) {
                    self.logs.push_back(LogLine {
                        tick: events.tick,
                        ship,
                        text,
                        fault,
                    });
                }
                while self.logs.len() > MAX_LOG_LINES {
                    self.logs.pop_front();
                }
            }
            NetUpdate::Status(ships) => self.ships = ships,
            NetUpdate::Trouble(reason) => self.connection = Connection::Trouble(reason),
            NetUpdate::Answer(answer) => self.answer = Some(answer),
        }
    }

    /// The player's ships in the newest snapshot, by id.
    pub fn own_ships(&self) -> Vec<u64> {
        self.live.latest().map_or_else(Vec::new, |view| {
            view.iter()
                .filter(|(_, e)| e.kind == astroboids_net::snapshot::KIND_OWN_SHIP)
                .map(|(id, _)| *id)
                .collect()
        })
    }

    /// The fractional tick to draw at `now`: between the two newest snapshots, one tick
    /// behind the newest plus the time since it came (smooth at any frame rate).
    pub fn draw_tick(&self, now: f64) -> f64 {
        let Some(tick) = self.live.tick() else {
            return 0.0;
        };
        if self.frozen {
            return tick as f64;
        }
        let period = 1.0 / f64::from(self.tick_rate_hz.max(1));
        (tick as f64 - 1.0) + ((now - self.snapshot_at) / period).clamp(0.0, 1.0)
    }

    /// The log lines the panel shows (all, or the filtered ship's), newest last.
    pub fn visible_logs(&self) -> impl Iterator<Item = &LogLine> {
        self.logs
            .iter()
            .filter(move |l| self.log_filter.is_none_or(|s| l.ship == s))
    }
}
