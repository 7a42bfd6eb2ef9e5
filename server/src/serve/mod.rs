//! `astroboids serve`: the persistent world on a tick thread, players on QUIC; the shells
//! around the I/O-free [`crate::core::ServerCore`].
//!
//! The tick thread ([`tick_thread`]) owns the core and so the world: it runs ticks when the
//! core says one is due and, while it waits, feeds it requests in arrival order, carrying out
//! the effects it returns. A tokio runtime runs the quinn endpoint, one task per connection
//! ([`connection`]): each feeds stream bytes to its I/O-free
//! [`ServerSession`](astroboids_protocol::session::ServerSession), forwards
//! requests to the tick thread and writes the answers back. Password workers ([`passwords`])
//! and a trace runner take the slow jobs. Limits here: connections in all and per address and
//! requests queued for the tick thread (past it a client is told the server is busy); the rest
//! are the core's and the session's.
//!
//! Shutdown (Ctrl-C or [`RunningServer::stop`]): new connections are refused, the world runs
//! unpaced to its next checkpoint tick (where stopping changes nothing a replay would see),
//! writes that checkpoint, finishes the live recording, and the endpoint closes.

mod connection;
mod passwords;
mod tick_thread;
mod tick_times;

pub use tick_times::{TICK_SAMPLES, TickTimes};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use astroboids_host::PersistentWorld;
use astroboids_host::persistent::{HostError, OpenReport, WorldRequest};
use astroboids_net::quic::{CLOSE_REFUSED, Fingerprint, QuicError, server_config};
use astroboids_protocol::messages::Response;
use astroboids_protocol::resume::ResumeLimits;
use astroboids_protocol::session::SessionLimits;
use astroboids_scripting::ScriptEngine;
use astroboids_sim::scripts::ScriptLibrary;
use tracing::info;

use crate::core::{CoreRules, ServerCore};
use crate::monitoring;
use crate::requests::{ServerRules, WorldServer};
use crate::tls::{IdentityError, ServerIdentity};
use tick_thread::{TickEvent, TickThread};
use tick_times::TickSamples;

/// Limits of the network shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRules {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Requests waiting for the tick thread, all connections together.
    pub max_queued_requests: usize,
    pub session: SessionLimits,
    /// A connection that says nothing this long is closed.
    pub idle_timeout: Duration,
    /// Registrations and logins one address may have waiting for the password workers, so
    /// that a few addresses cannot keep everyone else's logins busy.
    pub password_jobs_per_ip: usize,
    /// What is remembered of each client instance's answers for resuming after a reconnect.
    pub resume: ResumeLimits,
    /// Faults to inject (tests only; none by default).
    pub faults: Faults,
    /// Whether the metrics endpoint may listen on a non-loopback address
    /// (`--metrics-public`; off by default).
    pub metrics_public: bool,
}

/// Faults injected into the connection shell, for tests of what the server promises when the
/// network fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// The connection is dropped instead of writing a `ShipSpawned` answer, this many times
    /// (the spawn was carried out; the client never reads its answer).
    pub lose_connection_before_spawn_answers: u32,
}

/// The faults still to inject.
struct FaultsLeft {
    spawn_answers: AtomicU32,
}

impl FaultsLeft {
    /// Whether the connection must be lost instead of writing `response`.
    fn lose_connection_before(&self, response: &Response) -> bool {
        matches!(response, Response::ShipSpawned { .. })
            && self
                .spawn_answers
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
    }
}

impl Default for NetRules {
    fn default() -> Self {
        Self {
            max_connections: 2_000,
            max_connections_per_ip: 64,
            max_queued_requests: 4_096,
            session: SessionLimits::default(),
            idle_timeout: Duration::from_secs(30),
            password_jobs_per_ip: 8,
            resume: ResumeLimits::default(),
            faults: Faults::default(),
            metrics_public: false,
        }
    }
}

/// What `astroboids serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub data: PathBuf,
    pub listen: SocketAddr,
    /// The Prometheus endpoint (loopback only, unless `net.metrics_public`); `None`: not
    /// served.
    pub metrics_listen: Option<SocketAddr>,
    pub world: WorldRequest,
    pub rules: ServerRules,
    pub net: NetRules,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Quic(#[from] QuicError),
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: SocketAddr, error: String },
    #[error("the tick thread stopped unexpectedly: {0}")]
    TickThread(String),
}

/// How the server stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct ShutdownReport {
    pub tick: u64,
    /// Ticks run unpaced to reach the checkpoint tick.
    pub ticks_to_checkpoint: u64,
    pub replay_finished: Option<PathBuf>,
    /// Paced ticks' durations since the last [`RunningServer::take_tick_times`] (at most the
    /// last [`TICK_SAMPLES`]).
    pub tick_ms: TickTimes,
}

/// State the connection tasks share.
struct Shared {
    tick_tx: mpsc::Sender<TickEvent>,
    queued: AtomicUsize,
    next_conn: AtomicU64,
    shutting_down: AtomicBool,
    connections: Mutex<HashMap<IpAddr, usize>>,
    net: NetRules,
    tick_rate_hz: u32,
    /// Paced ticks not yet taken.
    tick_samples: Mutex<TickSamples>,
    /// The world's script engine: uploads are compiled here first, off the tick thread, so
    /// the tick thread's own validation finds them in the engine's cache.
    script_engine: Arc<ScriptEngine>,
    /// Compiles at once (one: a core stays free for the tick thread and its script workers).
    compile_slots: tokio::sync::Semaphore,
    faults: FaultsLeft,
}

impl Shared {
    fn take_tick_times(&self) -> TickTimes {
        let mut samples = self.tick_samples.lock().expect("not poisoned");
        let samples = std::mem::take(&mut *samples);
        TickTimes::of(
            &Vec::from(samples.durations_ms),
            &Vec::from(samples.intervals_ms),
        )
    }

    fn send(&self, event: TickEvent) -> bool {
        self.tick_tx.send(event).is_ok()
    }

    /// Counts a new connection from `ip`, or says why it is refused.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, String> {
        let mut connections = self.connections.lock().expect("not poisoned");
        let total: usize = connections.values().sum();
        if total >= self.net.max_connections {
            return Err(format!(
                "the server has {total} connections, its limit; try again later"
            ));
        }
        let from_ip = connections.entry(ip).or_default();
        if *from_ip >= self.net.max_connections_per_ip {
            return Err(format!(
                "{ip} already has {from_ip} connections, the most one address may have"
            ));
        }
        *from_ip += 1;
        metrics::gauge!("astroboids_connections").set((total + 1) as f64);
        Ok(ConnectionSlot {
            shared: self.clone(),
            ip,
        })
    }
}

/// A counted connection; dropping it frees the slot.
struct ConnectionSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut connections = self.shared.connections.lock().expect("not poisoned");
        if let Some(n) = connections.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                connections.remove(&self.ip);
            }
        }
        let total: usize = connections.values().sum();
        metrics::gauge!("astroboids_connections").set(total as f64);
    }
}

/// A server that is running.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub fingerprint: Fingerprint,
    /// The certificate was made on this start.
    pub identity_created: bool,
    pub opened: OpenReport,
    shared: Arc<Shared>,
    tick_thread: std::thread::JoinHandle<Result<Option<ShutdownReport>, HostError>>,
    endpoint: quinn::Endpoint,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Asks a running server to stop (from a signal handler or another thread).
#[derive(Clone)]
pub struct ShutdownHandle(Arc<Shared>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        if !self.0.shutting_down.load(Ordering::SeqCst) {
            info!("shutting down: running to the next checkpoint tick");
        }
        self.0.shutting_down.store(true, Ordering::SeqCst);
        self.0.send(TickEvent::Core(crate::core::Event::Shutdown));
    }
}

impl RunningServer {
    /// Opens (or creates) the world and its identity, binds the endpoint and starts ticking.
    pub fn start(options: ServeOptions) -> Result<Self, ServeError> {
        // The world lives on its own thread from the start (it is not `Send`): that thread
        // opens it, reports, and waits for the go-ahead once the endpoint is up.
        // Unbounded as a channel, bounded in use: requests by `max_queued_requests` (counted
        // in `queued`), connection events by the connection caps.
        let (tick_tx, tick_rx) = mpsc::channel();
        let (opened_tx, opened_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<Arc<Shared>>();
        let world_options = options.clone();
        let tick_thread = std::thread::Builder::new()
            .name("astroboids-tick".into())
            .spawn(move || {
                let opened = PersistentWorld::open(&world_options.data, world_options.world);
                let (world, report) = match opened {
                    Ok(opened) => opened,
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return Ok(None);
                    }
                };
                let tick_rate_hz = world.sim().tick_rate().hz;
                let engine = world
                    .sim()
                    .world()
                    .resource::<ScriptLibrary>()
                    .shared_engine();
                let _ = opened_tx.send(Ok((report, tick_rate_hz, engine)));
                let Ok(shared) = go_rx.recv() else {
                    world.close()?;
                    return Ok(None); // The endpoint could not start.
                };
                let server = WorldServer::new(world, world_options.rules);
                let rules = CoreRules {
                    password_jobs_per_ip: shared.net.password_jobs_per_ip,
                    resume: shared.net.resume.clone(),
                    ..CoreRules::default()
                };
                let core = ServerCore::new(server, rules, unix_now_s());
                TickThread::new(core, shared).run(tick_rx).map(Some)
            })
            .map_err(|e| ServeError::TickThread(e.to_string()))?;
        let (opened, tick_rate_hz, script_engine) = match opened_rx.recv() {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                let _ = tick_thread.join();
                return Err(e.into());
            }
            Err(_) => {
                return Err(ServeError::TickThread(
                    "it ended while opening the world".into(),
                ));
            }
        };
        info!(
            data = %options.data.display(),
            created = opened.created,
            universe_seed = opened.universe_seed,
            tick = opened.tick,
            checkpoint_tick = opened.checkpoint_tick,
            replayed_inputs = opened.replayed_inputs,
            "world opened"
        );
        let (identity, identity_created) = ServerIdentity::load_or_create(&options.data)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("astroboids-net")
            .enable_all()
            .build()
            .map_err(|e| ServeError::Bind {
                addr: options.listen,
                error: format!("cannot start the network runtime: {e}"),
            })?;
        monitoring::recorder();
        metrics::gauge!("astroboids_connections").set(0.0);
        let config = server_config(
            &identity.cert_der,
            &identity.key_pkcs8_der,
            options.net.idle_timeout,
        )?;
        let endpoint = {
            let _guard = runtime.enter();
            quinn::Endpoint::server(config, options.listen).map_err(|e| ServeError::Bind {
                addr: options.listen,
                error: e.to_string(),
            })?
        };
        let addr = endpoint.local_addr().map_err(|e| ServeError::Bind {
            addr: options.listen,
            error: e.to_string(),
        })?;
        let metrics_addr = match options.metrics_listen {
            Some(metrics_listen) => {
                let listener = runtime
                    .block_on(monitoring::bind_metrics(
                        metrics_listen,
                        options.net.metrics_public,
                    ))
                    .map_err(|e| ServeError::Bind {
                        addr: metrics_listen,
                        error: e.to_string(),
                    })?;
                let bound = listener.local_addr().ok();
                runtime.spawn(monitoring::serve_metrics(listener));
                bound
            }
            None => None,
        };

        let shared = Arc::new(Shared {
            tick_tx,
            queued: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            connections: Mutex::new(HashMap::new()),
            net: options.net.clone(),
            tick_rate_hz,
            tick_samples: Mutex::new(TickSamples::default()),
            script_engine,
            compile_slots: tokio::sync::Semaphore::new(1),
            faults: FaultsLeft {
                spawn_answers: AtomicU32::new(
                    options.net.faults.lose_connection_before_spawn_answers,
                ),
            },
        });
        info!(
            addr = %addr,
            fingerprint = %identity.fingerprint(),
            identity_created,
            metrics = metrics_addr.map(|a| a.to_string()),
            "listening"
        );
        go_tx
            .send(shared.clone())
            .map_err(|_| ServeError::TickThread("it ended before the world started".into()))?;

        let accept_endpoint = endpoint.clone();
        let accept_shared = shared.clone();
        runtime.spawn(async move {
            while let Some(incoming) = accept_endpoint.accept().await {
                if accept_shared.shutting_down.load(Ordering::SeqCst) {
                    incoming.refuse();
                    continue;
                }
                tokio::spawn(connection::serve_connection(
                    incoming,
                    accept_shared.clone(),
                ));
            }
        });
        Ok(Self {
            addr,
            metrics_addr,
            fingerprint: identity.fingerprint(),
            identity_created,
            opened,
            shared,
            tick_thread,
            endpoint,
            runtime,
        })
    }

    /// Durations of the ticks run since the last call (for benchmarks and reports).
    pub fn take_tick_times(&self) -> TickTimes {
        self.shared.take_tick_times()
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shared.clone())
    }

    /// Runs `future` (e.g. waiting for Ctrl-C) on the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Whether the tick thread has ended (after a shutdown, or on an error).
    pub fn is_finished(&self) -> bool {
        self.tick_thread.is_finished()
    }

    /// Stops the server gracefully (see the module docs) and reports how it ended.
    pub fn stop(self) -> Result<ShutdownReport, ServeError> {
        self.shutdown_handle().shutdown();
        self.join()
    }

    /// Waits for the tick thread to end (after [`ShutdownHandle::shutdown`] or an error),
    /// then closes the endpoint.
    pub fn join(self) -> Result<ShutdownReport, ServeError> {
        let result = match self.tick_thread.join() {
            Ok(Ok(Some(report))) => Ok(report),
            Ok(Ok(None)) => Err(ServeError::TickThread("the world never started".into())),
            Ok(Err(e)) => Err(ServeError::Host(e)),
            Err(_) => Err(ServeError::TickThread("it panicked".into())),
        };
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        self.endpoint
            .close(CLOSE_REFUSED.into(), b"the server is shutting down");
        let endpoint = self.endpoint.clone();
        self.runtime.block_on(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
        });
        self.runtime.shutdown_timeout(Duration::from_secs(1));
        result
    }
}

fn unix_now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
