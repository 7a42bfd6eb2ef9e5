//! `astroboids watch`: the player's terminal view. [`WatchApp`] is the state (what the server
//! sent, what the player selected), [`WatchApp::render`] draws it into any ratatui backend
//! and [`WatchApp::key`] applies a key press; neither does I/O, so both are tested with a
//! backend that captures the frame. The loop that feeds them lives in `run`.

use std::collections::VecDeque;

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, Paragraph, Wrap};

use astroboids_net::live_view::{Drawn, LiveView};
use astroboids_net::messages::{ShipStatusReport, TickEvents};
use astroboids_net::snapshot::{KIND_ASTEROID, KIND_HAZARD, KIND_NEBULA, KIND_OWN_SHIP};
use astroboids_net::text::escape_control;

/// Log lines kept for the log panel.
pub const LOG_LINES_KEPT: usize = 500;

/// Map zoom levels: metres per terminal cell (a cell is about twice as tall as wide, so rows
/// count double).
pub const ZOOM_LEVELS_M: [f32; 7] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0];

/// Why the view cannot show the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// The server does not answer (address, reason); the client retries.
    Unreachable { server: String, reason: String },
    /// The session is gone: the player must log in again.
    LoginExpired,
}

/// What a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    None,
    Quit,
}

/// A key the view knows (the loop maps terminal keys to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Tab,
    BackTab,
    Up,
    Down,
    Left,
    Right,
    Esc,
}

/// Everything the terminal view shows.
#[derive(Debug, Clone)]
pub struct WatchApp {
    pub server: String,
    pub user: String,
    pub live: LiveView,
    /// The player's ships as last reported (hull, energy, cargo, fuel, what flies them).
    pub ships: Vec<ShipStatusReport>,
    pub selected: usize,
    pub zoom: usize,
    /// Map centre offset from the selected ship, in metres.
    pub pan: (f32, f32),
    pub show_logs: bool,
    pub show_help: bool,
    pub logs: VecDeque<(u64, u64, String)>,
    pub faults: VecDeque<(u64, u64, String)>,
    pub events_dropped: u64,
    pub trouble: Option<Trouble>,
}

impl WatchApp {
    pub fn new(server: &str, user: &str, sector_size: f32) -> Self {
        Self {
            server: server.to_string(),
            user: user.to_string(),
            live: LiveView::new(sector_size),
            ships: Vec::new(),
            selected: 0,
            zoom: 3,
            pan: (0.0, 0.0),
            show_logs: true,
            show_help: false,
            logs: VecDeque::new(),
            faults: VecDeque::new(),
            events_dropped: 0,
            trouble: None,
        }
    }

    /// Takes a tick's events of the player's ships.
    pub fn events(&mut self, events: &TickEvents) {
        self.events_dropped += u64::from(events.dropped_before);
        for (ship, line) in &events.logs {
            if self.logs.len() >= LOG_LINES_KEPT {
                self.logs.pop_front();
            }
            self.logs.push_back((events.tick, *ship, line.clone()));
        }
        for (ship, fault) in &events.faults {
            if self.faults.len() >= LOG_LINES_KEPT {
                self.faults.pop_front();
            }
            self.faults.push_back((events.tick, *ship, fault.clone()));
        }
    }

    /// Takes a status report of the player's ships (keeps the selection on the same ship).
    pub fn status(&mut self, mut ships: Vec<ShipStatusReport>) {
        let selected = self.selected_ship();
        ships.sort_by_key(|s| s.ship);
        self.ships = ships;
        self.selected = selected
            .and_then(|id| self.ships.iter().position(|s| s.ship == id))
            .unwrap_or(0);
    }

    pub fn selected_ship(&self) -> Option<u64> {
        self.ships.get(self.selected).map(|s| s.ship)
    }

    pub fn key(&mut self, key: Key) -> KeyAction {
        let step = ZOOM_LEVELS_M[self.zoom] * 5.0;
        match key {
            Key::Char('q') | Key::Esc => return KeyAction::Quit,
            Key::Tab | Key::Char('n') if !self.ships.is_empty() => {
                self.selected = (self.selected + 1) % self.ships.len();
                self.pan = (0.0, 0.0);
            }
            Key::BackTab | Key::Char('p') if !self.ships.is_empty() => {
                self.selected = (self.selected + self.ships.len() - 1) % self.ships.len();
                self.pan = (0.0, 0.0);
            }
            Key::Char('+') | Key::Char('=') => self.zoom = self.zoom.saturating_sub(1),
            Key::Char('-') => self.zoom = (self.zoom + 1).min(ZOOM_LEVELS_M.len() - 1),
            Key::Left | Key::Char('h') => self.pan.0 -= step,
            Key::Right | Key::Char('l') => self.pan.0 += step,
            Key::Up | Key::Char('k') => self.pan.1 += step,
            Key::Down | Key::Char('j') => self.pan.1 -= step,
            Key::Char('c') => self.pan = (0.0, 0.0),
            Key::Char('L') => self.show_logs = !self.show_logs,
            Key::Char('?') => self.show_help = !self.show_help,
            _ => {}
        }
        KeyAction::None
    }

    /// Draws the view at fractional tick `at` (positions interpolated between snapshots).
    pub fn render(&self, frame: &mut Frame, at: f64) {
        let area = frame.area();
        if let Some(trouble) = &self.trouble {
            self.render_trouble(frame, area, trouble);
            return;
        }
        let rows = Layout::default()
            .direction(Direction::Vertical)
            .constraints(if self.show_logs {
                vec![
                    Constraint::Length(1),
                    Constraint::Min(8),
                    Constraint::Length(8),
                ]
            } else {
                vec![Constraint::Length(1), Constraint::Min(8)]
            })
            .split(area);
        let tick = self
            .live
            .tick()
            .map_or("waiting for the first snapshot".to_string(), |t| {
                format!("tick {t}")
            });
        let title = Line::from(vec![
            Span::styled(
                " astroboids watch ",
                Style::default().add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("{}@{} | {tick} | ", self.user, self.server)),
            Span::styled(
                "Tab ship  +/- zoom  arrows pan  c centre  L logs  ? help  q quit",
                Style::default().fg(Color::DarkGray),
            ),
        ]);
        frame.render_widget(Paragraph::new(title), rows[0]);

        let middle = Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Length(30), Constraint::Min(20)])
            .split(rows[1]);
        self.render_ships(frame, middle[0]);
        self.render_map(frame, middle[1], at);
        if self.show_logs {
            self.render_logs(frame, rows[2]);
        }
        if self.show_help {
            self.render_help(frame, area);
        }
    }

    fn render_trouble(&self, frame: &mut Frame, area: Rect, trouble: &Trouble) {
        let (title, text) = match trouble {
            Trouble::Unreachable { server, reason } => (
                " server unreachable ",
                format!(
                    "Cannot reach the server at {server}:\n{reason}\n\nRetrying every few seconds. q quits."
                ),
            ),
            Trouble::LoginExpired => (
                " login expired ",
                "Your session expired or was revoked.\n\nLog in again with\n  astroboids client login --user NAME\nthen restart astroboids watch. q quits.".to_string(),
            ),
        };
        frame.render_widget(Clear, area);
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: false })
                .block(Block::default().borders(Borders::ALL).title(title)),
            area,
        );
    }

    fn render_ships(&self, frame: &mut Frame, area: Rect) {
        let rows = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Min(3), Constraint::Length(9)])
            .split(area);
        let items: Vec<ListItem> = self
            .ships
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let style = if i == self.selected {
                    Style::default().add_modifier(Modifier::REVERSED)
                } else {
                    Style::default()
                };
                ListItem::new(format!("ship {} hull {:.0}", s.ship, s.hull)).style(style)
            })
            .collect();
        let empty = items.is_empty();
        let list =
            List::new(items).block(Block::default().borders(Borders::ALL).title(" your ships "));
        frame.render_widget(list, rows[0]);
        if empty {
            let hint = Paragraph::new("none yet:\nastroboids client spawn");
            frame.render_widget(hint, inner(rows[0]));
        }
        let details = match self.ships.get(self.selected) {
            Some(s) => format!(
                "sector ({}, {})\nat ({:.0}, {:.0})\nhull {:.0}  energy {:.0}\ncargo {}\n{}\nfuel {}  faults {}",
                s.sector.0,
                s.sector.1,
                s.local.0,
                s.local.1,
                s.hull,
                s.energy,
                s.cargo,
                s.flown_by,
                s.script_fuel_used_last,
                s.script_faults_total
            ),
            None => String::new(),
        };
        frame.render_widget(
            Paragraph::new(details)
                .block(Block::default().borders(Borders::ALL).title(" selected ")),
            rows[1],
        );
    }

    /// The selected ship's surroundings: `@` own ships, `S` other ships, `o` asteroids,
    /// `+` the map centre.
    fn render_map(&self, frame: &mut Frame, area: Rect, at: f64) {
        let metres = ZOOM_LEVELS_M[self.zoom];
        let block = Block::default().borders(Borders::ALL).title(format!(
            " map: {metres} m per column, {} m across ",
            (f32::from(area.width.saturating_sub(2)) * metres) as u32
        ));
        let map = block.inner(area);
        frame.render_widget(block, area);
        let drawn = self.live.at(at);
        let centre = self
            .selected_ship()
            .and_then(|id| drawn.iter().find(|d| d.id == id).copied())
            .or_else(|| {
                drawn
                    .iter()
                    .find(|d| d.entity.kind == KIND_OWN_SHIP)
                    .copied()
            });
        let Some(centre) = centre else {
            frame.render_widget(Paragraph::new("no snapshot of your ships yet"), map);
            return;
        };
        let size = self.live.sector_size();
        let buffer = frame.buffer_mut();
        let (cx, cy) = (map.x + map.width / 2, map.y + map.height / 2);
        // Nebulae and hazards (their centres), asteroids, other ships, own ships, the
        // selected one last: what matters most is drawn on top.
        let rank = |d: &Drawn| match d.entity.kind {
            _ if d.id == centre.id => 4,
            KIND_OWN_SHIP => 3,
            KIND_ASTEROID => 1,
            KIND_NEBULA | KIND_HAZARD => 0,
            _ => 2,
        };
        let mut order: Vec<&Drawn> = drawn.iter().collect();
        order.sort_by_key(|d| (rank(d), d.id));
        for d in order {
            let dx = (d.sector.0 - centre.sector.0) as f32 * size + d.local.0
                - centre.local.0
                - self.pan.0;
            let dy = (d.sector.1 - centre.sector.1) as f32 * size + d.local.1
                - centre.local.1
                - self.pan.1;
            let col = (dx / metres).round();
            let row = (-dy / (2.0 * metres)).round(); // north up; cells are tall
            let (x, y) = (f32::from(cx) + col, f32::from(cy) + row);
            if x < f32::from(map.x)
                || y < f32::from(map.y)
                || x >= f32::from(map.x + map.width)
                || y >= f32::from(map.y + map.height)
            {
                continue;
            }
            let (symbol, style) = match d.entity.kind {
                KIND_OWN_SHIP if d.id == centre.id => (
                    "@",
                    Style::default()
                        .fg(Color::Yellow)
                        .add_modifier(Modifier::BOLD),
                ),
                KIND_OWN_SHIP => ("@", Style::default().fg(Color::Green)),
                KIND_ASTEROID => ("o", Style::default().fg(Color::DarkGray)),
                KIND_NEBULA => ("~", Style::default().fg(Color::Cyan)),
                KIND_HAZARD => ("!", Style::default().fg(Color::Magenta)),
                _ => ("S", Style::default().fg(Color::Red)),
            };
            if let Some(cell) = buffer.cell_mut((x as u16, y as u16)) {
                cell.set_symbol(symbol).set_style(style);
            }
        }
        if self.pan != (0.0, 0.0)
            && let Some(cell) = buffer.cell_mut((cx, cy))
            && cell.symbol() == " "
        {
            cell.set_symbol("+");
        }
    }

    fn render_logs(&self, frame: &mut Frame, area: Rect) {
        let height = area.height.saturating_sub(2) as usize;
        let mut lines: Vec<(u64, Line)> = self
            .logs
            .iter()
            .map(|(tick, ship, text)| {
                (
                    *tick,
                    Line::from(format!("tick {tick} ship {ship}: {}", escape_control(text))),
                )
            })
            .chain(self.faults.iter().map(|(tick, ship, text)| {
                (
                    *tick,
                    Line::from(Span::styled(
                        format!("tick {tick} ship {ship}: FAULT {}", escape_control(text)),
                        Style::default().fg(Color::Red),
                    )),
                )
            }))
            .collect();
        lines.sort_by_key(|(tick, _)| *tick);
        let shown: Vec<Line> = lines
            .into_iter()
            .rev()
            .take(height)
            .rev()
            .map(|(_, l)| l)
            .collect();
        let title = if self.events_dropped > 0 {
            format!(
                " script logs and faults ({} ticks of events dropped) ",
                self.events_dropped
            )
        } else {
            " script logs and faults ".to_string()
        };
        frame.render_widget(
            Paragraph::new(shown).block(Block::default().borders(Borders::ALL).title(title)),
            area,
        );
    }

    fn render_help(&self, frame: &mut Frame, area: Rect) {
        let w = area.width.min(50);
        let h = area.height.min(12);
        let popup = Rect::new(
            area.x + (area.width - w) / 2,
            area.y + (area.height - h) / 2,
            w,
            h,
        );
        frame.render_widget(Clear, popup);
        frame.render_widget(
            Paragraph::new(
                "Tab / n, Shift-Tab / p  next, previous ship\n+ / -  zoom in, out\narrows / hjkl  pan\nc  centre on the ship\nL  log panel\n?  this help\nq / Esc  quit\n\n@ your ships  S others  o asteroids",
            )
            .block(Block::default().borders(Borders::ALL).title(" keys ")),
            popup,
        );
    }
}

fn inner(area: Rect) -> Rect {
    Block::default().borders(Borders::ALL).inner(area)
}
