//! The loop behind `astroboids watch`: connects (and reconnects), subscribes, feeds
//! snapshots, events and status reports into a [`WatchApp`], reads keys and redraws at
//! 20 frames per second with positions interpolated between ticks.

use std::fmt::Display;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use astroboids_net::calls::{self, Call, CallError};
use astroboids_net::client::{Client, ClientError, Update};
use astroboids_net::messages::{RequestError, Token};
use astroboids_net::quic::Fingerprint;

use crate::watch::{Key, KeyAction, Trouble, WatchApp};

/// Where and who.
#[derive(Debug, Clone)]
pub struct WatchTarget {
    /// One address, or the gateways of a cluster (the first that answers is used).
    pub servers: Vec<SocketAddr>,
    pub fingerprint: Fingerprint,
    pub user: String,
    pub token: Token,
}

impl WatchTarget {
    /// The addresses as `--server` takes them.
    fn servers_text(&self) -> String {
        let addrs: Vec<String> = self.servers.iter().map(SocketAddr::to_string).collect();
        addrs.join(",")
    }
}

const CLIENT_NAME: &str = concat!("astroboids-watch ", env!("CARGO_PKG_VERSION"));
const FRAME: Duration = Duration::from_millis(50);
const STATUS_EVERY: Duration = Duration::from_secs(1);
const RETRY_EVERY: Duration = Duration::from_secs(3);

/// Runs the terminal view until the player quits.
pub fn run(target: WatchTarget) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut terminal = ratatui::init();
    let (keys_tx, keys) = tokio::sync::mpsc::unbounded_channel();
    // Terminal input blocks; a thread turns it into a channel the loop can select on.
    std::thread::spawn(move || {
        loop {
            match event::read() {
                Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => {
                    let key = match k.code {
                        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                            Key::Esc
                        }
                        KeyCode::Char(c) => Key::Char(c),
                        KeyCode::Tab => Key::Tab,
                        KeyCode::BackTab => Key::BackTab,
                        KeyCode::Up => Key::Up,
                        KeyCode::Down => Key::Down,
                        KeyCode::Left => Key::Left,
                        KeyCode::Right => Key::Right,
                        KeyCode::Esc => Key::Esc,
                        _ => continue,
                    };
                    if keys_tx.send(key).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let result = runtime.block_on(watch(&target, &mut terminal, keys));
    ratatui::restore();
    result
}

enum Outcome {
    Quit,
    Reconnect,
}

async fn watch(
    target: &WatchTarget,
    terminal: &mut ratatui::DefaultTerminal,
    mut keys: tokio::sync::mpsc::UnboundedReceiver<Key>,
) -> std::io::Result<()> {
    let mut app = WatchApp::new(&target.servers_text(), &target.user, 1000.0);
    loop {
        match session(target, &mut app, terminal, &mut keys).await? {
            Outcome::Quit => return Ok(()),
            Outcome::Reconnect => {
                // Show the trouble and wait (keys still work) before trying again.
                let until = Instant::now() + RETRY_EVERY;
                while Instant::now() < until {
                    terminal.draw(|f| app.render(f, 0.0))?;
                    tokio::select! {
                        key = keys.recv() => {
                            if key.is_none_or(|k| app.key(k) == KeyAction::Quit) {
                                return Ok(());
                            }
                        }
                        _ = tokio::time::sleep(FRAME) => {}
                    }
                }
            }
        }
    }
}

fn unreachable(target: &WatchTarget, e: &impl Display) -> Trouble {
    Trouble::Unreachable {
        server: target.servers_text(),
        reason: e.to_string(),
    }
}

/// One connection's life: returns when the player quits or the connection is lost.
async fn session(
    target: &WatchTarget,
    app: &mut WatchApp,
    terminal: &mut ratatui::DefaultTerminal,
    keys: &mut tokio::sync::mpsc::UnboundedReceiver<Key>,
) -> std::io::Result<Outcome> {
    let connected = Client::connect_any(&target.servers, target.fingerprint, CLIENT_NAME).await;
    let mut client = match connected {
        Ok(client) => client,
        Err(e) => {
            app.trouble = Some(unreachable(target, &e));
            return Ok(Outcome::Reconnect);
        }
    };
    let authenticate = calls::Authenticate {
        token: target.token.clone(),
    };
    match client.call(authenticate).await {
        Ok(_) => {}
        Err(ClientError::Call(CallError::Refused(RequestError::NotAuthenticated))) => {
            app.trouble = Some(Trouble::LoginExpired);
            return wait_for_quit(app, terminal, keys).await;
        }
        // Any other refusal (the server busy or its storage failing) passes: try again later.
        Err(e) => {
            app.trouble = Some(unreachable(target, &e));
            return Ok(Outcome::Reconnect);
        }
    }
    match client.subscribe().await.map(calls::Subscribe::answer) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            app.trouble = Some(Trouble::Unreachable {
                server: target.servers_text(),
                reason: format!("the server refused live snapshots: {e}"),
            });
            return Ok(Outcome::Reconnect);
        }
        Err(e) => {
            app.trouble = Some(unreachable(target, &e));
            return Ok(Outcome::Reconnect);
        }
    }
    app.trouble = None;
    let period = Duration::from_secs(1) / client.tick_rate_hz.max(1);
    let mut last_snapshot = Instant::now();
    let mut frame = tokio::time::interval(FRAME);
    let mut status = tokio::time::interval(STATUS_EVERY);
    loop {
        tokio::select! {
            update = client.next_update() => match update {
                Ok(Update::Snapshot { .. }) => {
                    if let Some(live) = client.live() {
                        app.live = live.clone();
                    }
                    last_snapshot = Instant::now();
                }
                Ok(Update::Events(events)) => app.events(&events),
                Err(e) => {
                    app.trouble = Some(unreachable(target, &e));
                    return Ok(Outcome::Reconnect);
                }
            },
            key = keys.recv() => {
                if key.is_none_or(|k| app.key(k) == KeyAction::Quit) {
                    return Ok(Outcome::Quit);
                }
            }
            _ = status.tick() => match client.call(calls::ShipStatus { ship: None }).await {
                Ok(ships) => app.status(ships),
                Err(ClientError::Call(CallError::Refused(RequestError::NotAuthenticated))) => {
                    app.trouble = Some(Trouble::LoginExpired);
                    return wait_for_quit(app, terminal, keys).await;
                }
                // Another refusal (rate limited, say) keeps the last status on screen; the
                // next one is asked for a second later.
                Err(ClientError::Call(_)) => {}
                Err(ClientError::Quic(e)) => {
                    app.trouble = Some(unreachable(target, &e));
                    return Ok(Outcome::Reconnect);
                }
            },
            _ = frame.tick() => {
                // Draw between the two newest snapshots: one tick behind the newest, plus
                // the time since it came.
                let at = app.live.tick().map_or(0.0, |t| {
                    (t as f64 - 1.0) + (last_snapshot.elapsed().as_secs_f64() / period.as_secs_f64()).min(1.0)
                });
                terminal.draw(|f| app.render(f, at))?;
            }
        }
    }
}

async fn wait_for_quit(
    app: &mut WatchApp,
    terminal: &mut ratatui::DefaultTerminal,
    keys: &mut tokio::sync::mpsc::UnboundedReceiver<Key>,
) -> std::io::Result<Outcome> {
    loop {
        terminal.draw(|f| app.render(f, 0.0))?;
        match keys.recv().await {
            None => return Ok(Outcome::Quit),
            Some(k) if app.key(k) == KeyAction::Quit => return Ok(Outcome::Quit),
            Some(_) => {}
        }
    }
}
