//! The session thread: it connects to any of the servers, authenticates with the saved token,
//! subscribes, asks for the fleet's status every second, and tells the window what it hears
//! ([`NetUpdate`], waking the window for each). A lost connection is replaced (the client
//! resumes its session); a refused login ends the thread with the reason shown.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use astroboids_net::calls::{self, Call, CallError};
use astroboids_net::client::{Client, ClientError, Update};
use astroboids_net::messages::{RequestError, Token};
use astroboids_net::quic::Fingerprint;

use crate::login::Credentials;
use crate::model::{Command, NetUpdate};

const STATUS_EVERY: Duration = Duration::from_secs(1);
const RETRY_EVERY: Duration = Duration::from_secs(2);
const CLIENT_NAME: &str = concat!("astroboids-play ", env!("CARGO_PKG_VERSION"));

/// Where to play and as whom (what `astroboids client login` saved).
#[derive(Debug, Clone)]
pub struct Target {
    pub servers: Vec<SocketAddr>,
    pub fingerprint: Fingerprint,
    pub user: String,
    pub token: Token,
}

impl Target {
    fn servers_text(&self) -> String {
        let addrs: Vec<String> = self.servers.iter().map(SocketAddr::to_string).collect();
        addrs.join(",")
    }
}

/// Logs in (registering first when asked) on a thread of its own; the answer comes on the
/// returned channel: where to play and as whom, or why not.
pub fn log_in(
    credentials: Credentials,
    wake: impl Fn() + Send + 'static,
) -> std::io::Result<mpsc::Receiver<Result<Target, String>>> {
    let (tx, rx) = mpsc::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("astroboids-play-login".into())
        .spawn(move || {
            let answer = runtime.block_on(login_session(credentials));
            let _ = tx.send(answer);
            wake();
        })?;
    Ok(rx)
}

async fn login_session(c: Credentials) -> Result<Target, String> {
    let mut client = Client::connect_any(&c.servers, c.fingerprint, CLIENT_NAME)
        .await
        .map_err(|e| e.to_string())?;
    if c.register {
        client
            .call(calls::Register {
                user: c.user.clone(),
                password: c.password.clone(),
            })
            .await
            .map_err(|e| format!("register: {e}"))?;
    }
    let logged_in = client
        .call(calls::Login {
            user: c.user.clone(),
            password: c.password,
        })
        .await
        .map_err(|e| format!("log in: {e}"))?;
    client.close().await;
    Ok(Target {
        servers: c.servers,
        fingerprint: c.fingerprint,
        user: c.user,
        token: logged_in.token,
    })
}

/// The window's ends of a session thread.
pub struct Session {
    pub updates: mpsc::Receiver<NetUpdate>,
    /// Commands to carry out (each answered with a [`NetUpdate::Answer`]).
    pub commands: tokio::sync::mpsc::UnboundedSender<Command>,
}

/// Starts the session thread; `wake` is called after each update is sent.
pub fn spawn(target: Target, wake: impl Fn() + Send + 'static) -> std::io::Result<Session> {
    let (tx, rx) = mpsc::channel();
    // Bounded in use: the window sends one per button press.
    let (commands, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("astroboids-play-net".into())
        .spawn(move || {
            let send = |update| {
                let sent = tx.send(update).is_ok();
                wake();
                sent
            };
            runtime.block_on(sessions(&target, &send, &mut inbox));
        })?;
    Ok(Session {
        updates: rx,
        commands,
    })
}

/// Sessions until the window is gone or the login is refused.
async fn sessions(target: &Target, send: &impl Fn(NetUpdate) -> bool, inbox: &mut Inbox) {
    loop {
        match session(target, send, inbox).await {
            Ended::WindowGone | Ended::LoginRefused => return,
            Ended::Lost(reason) => {
                if !send(NetUpdate::Trouble(format!(
                    "{}: {reason}; trying again",
                    target.servers_text()
                ))) {
                    return;
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
}

enum Ended {
    WindowGone,
    LoginRefused,
    Lost(String),
}

type Inbox = tokio::sync::mpsc::UnboundedReceiver<Command>;

async fn session(target: &Target, send: &impl Fn(NetUpdate) -> bool, inbox: &mut Inbox) -> Ended {
    let mut client =
        match Client::connect_any(&target.servers, target.fingerprint, CLIENT_NAME).await {
            Ok(client) => client,
            Err(e) => return Ended::Lost(e.to_string()),
        };
    let authenticate = calls::Authenticate {
        token: target.token.clone(),
    };
    match client.call(authenticate).await {
        Ok(_) => {}
        Err(ClientError::Call(CallError::Refused(RequestError::NotAuthenticated))) => {
            send(NetUpdate::Trouble(
                "the saved login has expired: run `astroboids client login` again".into(),
            ));
            return Ended::LoginRefused;
        }
        Err(e) => return Ended::Lost(e.to_string()),
    }
    let subscribed = match client.subscribe().await.map(calls::Subscribe::answer) {
        Ok(Ok(subscribed)) => subscribed,
        Ok(Err(e)) => return Ended::Lost(format!("the server refused live snapshots: {e}")),
        Err(e) => return Ended::Lost(e.to_string()),
    };
    if !send(NetUpdate::Connected {
        server: client.server.clone(),
        tick_rate_hz: client.tick_rate_hz,
        sensor_range: subscribed.sensor_range,
        nebula_range_factor: subscribed.nebula_range_factor,
    }) {
        return Ended::WindowGone;
    }
    let mut status = tokio::time::interval(STATUS_EVERY);
    loop {
        let update = tokio::select! {
            update = client.next_update() => match update {
                Ok(Update::Snapshot { .. }) => match client.live() {
                    Some(live) => NetUpdate::Snapshot(live.clone()),
                    None => continue,
                },
                Ok(Update::Events(events)) => NetUpdate::Events(events),
                Err(e) => return Ended::Lost(e.to_string()),
            },
            command = inbox.recv() => match command {
                Some(command) => match carry_out(&mut client, command).await {
                    Ok(answer) => answer,
                    Err(lost) => return Ended::Lost(lost),
                },
                None => return Ended::WindowGone,
            },
            _ = status.tick() => match client.call(calls::ShipStatus { ship: None }).await {
                Ok(ships) => NetUpdate::Status(ships),
                Err(ClientError::Call(CallError::Refused(RequestError::NotAuthenticated))) => {
                    send(NetUpdate::Trouble(
                        "the session ended (logged out elsewhere, or kicked): run \
                         `astroboids client login` again"
                            .into(),
                    ));
                    return Ended::LoginRefused;
                }
                // Another refusal (rate limited, say) keeps the last status on screen.
                Err(ClientError::Call(_)) => continue,
                Err(ClientError::Quic(e)) => return Ended::Lost(e.to_string()),
            },
        };
        if !send(update) {
            return Ended::WindowGone;
        }
    }
}

/// Carries out a command: its answer for the window, or the lost connection's reason.
async fn carry_out(client: &mut Client, command: Command) -> Result<NetUpdate, String> {
    let answer = match command {
        Command::Spawn => client
            .call(calls::SpawnShip)
            .await
            .map(|ship| format!("ship {ship} spawned")),
        Command::Move {
            ship,
            thrust,
            turn,
            stop,
        } => client
            .call(calls::MoveShip {
                ship,
                command: astroboids_net::messages::MoveCommand {
                    thrust,
                    turn,
                    mine: false,
                    stop,
                },
            })
            .await
            .map(|tick| format!("ship {ship}: command queued for tick {tick}")),
        Command::Assign { ship, script } => client
            .call(calls::AssignScript { ship, name: script })
            .await
            .map(|a| format!("ship {} now flies {} v{}", a.ship, a.name, a.version)),
        Command::Upload { name, wasm } => {
            let bytes = wasm.len();
            client
                .call(calls::UploadScript { name, wasm })
                .await
                .map(|u| format!("uploaded {} v{} ({bytes} bytes)", u.name, u.version))
        }
        Command::UploadFile { path, .. } => {
            return Ok(NetUpdate::Answer(Err(format!(
                "{}: the window reads script files before they are sent",
                path.display()
            ))));
        }
    };
    match answer {
        Ok(text) => Ok(NetUpdate::Answer(Ok(text))),
        Err(ClientError::Call(refusal)) => Ok(NetUpdate::Answer(Err(refusal.to_string()))),
        Err(ClientError::Quic(e)) => Err(e.to_string()),
    }
}
