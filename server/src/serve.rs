//! `astroboids serve`: the persistent world on a tick thread, players on QUIC.
//!
//! Two halves meet through one channel. The tick thread owns the [`WorldServer`]: it runs
//! ticks paced at the tick rate and, while it waits for the next one, carries out requests in
//! arrival order; nothing else touches the world. A tokio runtime runs the quinn endpoint,
//! one task per connection: each feeds stream bytes to its I/O-free
//! [`ServerSession`], forwards requests to the tick thread and writes the answers back.
//! Limits: connections in all and per address, requests queued for the tick thread (past
//! it a client is told the server is busy), frame sizes and protocol errors in the session.
//!
//! Shutdown (Ctrl-C or [`RunningServer::stop`]): new connections are refused, the world runs
//! unpaced to its next checkpoint tick (where stopping changes nothing a replay would see),
//! writes that checkpoint, finishes the live recording, and the endpoint closes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use astroboids_engine::Pacer;
use astroboids_host::PersistentWorld;
use astroboids_host::persistent::{HostError, OpenReport, WorldRequest};
use astroboids_net::messages::{Request, RequestError, Response, TickEvents};
use astroboids_net::quic::{CLOSE_REFUSED, Fingerprint, QuicError, server_config};
use astroboids_net::session::{ServerEvent, ServerSession, SessionLimits};
use astroboids_net::snapshot::{SnapshotEncoder, SnapshotLimits, decode_ack};

use astroboids_scripting::ScriptEngine;
use astroboids_sim::scripts::ScriptLibrary;

use crate::accounts::prepare_stand_in_hash;
use crate::monitoring;
use crate::requests::{
    Connection, PasswordChecked, PasswordJob, ServerRules, WorldServer, count_request,
};
use crate::tls::{IdentityError, ServerIdentity};

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
        }
    }
}

/// What `astroboids serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub data: PathBuf,
    pub listen: SocketAddr,
    /// The Prometheus endpoint (loopback only); `None`: not served.
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

/// Tick durations kept for the shutdown report.
pub const TICK_SAMPLES: usize = 100_000;

/// Percentiles of paced ticks, in milliseconds: how long a tick ran, and the interval from
/// one tick's start to the next (the tick period when the world keeps time; requests carried
/// out between ticks lengthen it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TickTimes {
    pub ticks: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub interval_p50: f64,
    pub interval_p99: f64,
    pub interval_max: f64,
}

/// (p50, p99, max) of `samples` (nearest rank); zeros when empty.
fn percentiles(samples: &[f64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank =
        |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    (rank(0.5), rank(0.99), sorted[sorted.len() - 1])
}

impl TickTimes {
    /// Percentiles of tick durations and start-to-start intervals.
    pub fn of(durations_ms: &[f64], intervals_ms: &[f64]) -> Self {
        let (p50, p99, max) = percentiles(durations_ms);
        let (interval_p50, interval_p99, interval_max) = percentiles(intervals_ms);
        Self {
            ticks: durations_ms.len(),
            p50,
            p99,
            max,
            interval_p50,
            interval_p99,
            interval_max,
        }
    }
}

/// Recent paced ticks: (duration, interval since the previous tick's start) in ms.
#[derive(Debug, Default)]
struct TickSamples {
    durations_ms: std::collections::VecDeque<f64>,
    intervals_ms: std::collections::VecDeque<f64>,
}

impl TickSamples {
    fn push(queue: &mut std::collections::VecDeque<f64>, value: f64) {
        if queue.len() == TICK_SAMPLES {
            queue.pop_front();
        }
        queue.push_back(value);
    }
}

/// What the network tasks tell the tick thread.
enum TickEvent {
    Connected {
        conn: u64,
        ip: IpAddr,
        to_conn: tokio::sync::mpsc::UnboundedSender<ToConnection>,
        live: LiveChannel,
    },
    Request {
        conn: u64,
        id: u64,
        request: Request,
    },
    Disconnected {
        conn: u64,
    },
    /// A password worker finished a registration's or login's argon2.
    PasswordChecked {
        conn: u64,
        ip: IpAddr,
        id: u64,
        checked: PasswordChecked,
    },
    Shutdown,
}

/// What the tick thread tells a connection task.
enum ToConnection {
    Answer { id: u64, response: Response },
    Close { reason: String },
}

/// A subscribed client's live stream, from the tick thread.
enum LiveUpdate {
    Datagrams(Vec<Vec<u8>>),
    Events(TickEvents),
}

/// Live updates waiting for a connection task: past this they are dropped (a client that
/// does not keep up gets newer snapshots, and a count of the events it missed).
const LIVE_QUEUE: usize = 32;

/// The tick thread's end of a connection's live stream.
struct LiveChannel {
    updates: tokio::sync::mpsc::Sender<LiveUpdate>,
    /// The newest snapshot the client acknowledged (0: none), written by the connection task
    /// as acknowledgement datagrams arrive.
    acked: Arc<AtomicU32>,
    /// The datagram size the path carries, from the connection (0: no datagrams).
    max_datagram_bytes: usize,
}

/// A subscribed connection's snapshot state.
struct Subscription {
    encoder: SnapshotEncoder,
    events_dropped: u32,
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
        self.0.shutting_down.store(true, Ordering::SeqCst);
        self.0.send(TickEvent::Shutdown);
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
                TickLoop::new(server, shared).run(tick_rx).map(Some)
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
                    .block_on(monitoring::bind_metrics(metrics_listen))
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
        });
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
                tokio::spawn(serve_connection(incoming, accept_shared.clone()));
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

fn shutting_down() -> Response {
    Response::Error(RequestError::Unavailable(
        "the server is shutting down".into(),
    ))
}

fn unix_now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The tick thread: the world, and the connections' login state.
struct TickLoop {
    server: WorldServer,
    shared: Arc<Shared>,
    connections: HashMap<u64, ConnectionState>,
    trace_busy: Arc<AtomicBool>,
    passwords: PasswordWorkers,
    /// Password jobs queued or running, per address.
    password_jobs: HashMap<IpAddr, usize>,
    shutdown: bool,
}

/// Registrations and logins waiting for a password worker; beyond this they are refused as
/// busy (a login storm must not grow memory without bound).
const PASSWORD_QUEUE: usize = 256;
/// A job for the password workers: (connection, its address, request id, the job).
type PasswordTask = (u64, IpAddr, u64, PasswordJob);

/// Threads that hash and verify passwords (argon2: tens of milliseconds each, which the tick
/// thread cannot spare: 1,000 bots logging in held ticks back by seconds when it did this).
/// Results come back to the tick thread as [`TickEvent::PasswordChecked`].
struct PasswordWorkers {
    jobs: mpsc::SyncSender<PasswordTask>,
}

impl PasswordWorkers {
    /// Half the cores (at least one): the other half stays with the tick thread and scripts.
    fn start(tick_tx: &mpsc::Sender<TickEvent>) -> Self {
        let (jobs, queue) = mpsc::sync_channel::<PasswordTask>(PASSWORD_QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        let workers = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
        for worker in 0..workers {
            let queue = Arc::clone(&queue);
            let tick_tx = tick_tx.clone();
            // Ends when the tick loop (the only sender) is gone.
            std::thread::Builder::new()
                .name("astroboids-passwords".into())
                .spawn(move || {
                    if worker == 0 {
                        prepare_stand_in_hash();
                    }
                    loop {
                        let next = queue.lock().expect("not poisoned").recv();
                        let Ok((conn, ip, id, job)) = next else { break };
                        let checked = job.run();
                        let done = TickEvent::PasswordChecked {
                            conn,
                            ip,
                            id,
                            checked,
                        };
                        if tick_tx.send(done).is_err() {
                            break;
                        }
                    }
                })
                .expect("the OS starts a password worker thread");
        }
        Self { jobs }
    }

    /// Queues a job; `false` when the queue is full (or no worker runs).
    fn submit(&self, task: PasswordTask) -> bool {
        self.jobs.try_send(task).is_ok()
    }
}

struct ConnectionState {
    connection: Connection,
    to_conn: tokio::sync::mpsc::UnboundedSender<ToConnection>,
    live: LiveChannel,
    subscription: Option<Subscription>,
    /// A registration or login of this connection is with the password workers: its later
    /// requests wait in `held`, so they are carried out (and answered) in the order sent. The
    /// session's in-flight cap bounds `held`.
    password_pending: bool,
    held: std::collections::VecDeque<(u64, Request)>,
}

impl TickLoop {
    fn new(server: WorldServer, shared: Arc<Shared>) -> Self {
        let passwords = PasswordWorkers::start(&shared.tick_tx);
        Self {
            server,
            shared,
            connections: HashMap::new(),
            trace_busy: Arc::new(AtomicBool::new(false)),
            passwords,
            password_jobs: HashMap::new(),
            shutdown: false,
        }
    }

    fn run(mut self, events: mpsc::Receiver<TickEvent>) -> Result<ShutdownReport, HostError> {
        let started = Instant::now();
        let clock = || started.elapsed();
        let rate = self.server.world().sim().tick_rate();
        let mut pacer = Pacer::new(rate, clock(), 4);
        self.record_vitals();
        let mut previous_start: Option<Instant> = None;
        while !self.shutdown {
            pacer.wait_for_tick(clock, |wait| self.handle_events_for(&events, wait));
            if self.shutdown {
                break;
            }
            let started = Instant::now();
            self.step()?;
            self.send_live_updates();
            let mut samples = self.shared.tick_samples.lock().expect("not poisoned");
            TickSamples::push(
                &mut samples.durations_ms,
                started.elapsed().as_secs_f64() * 1000.0,
            );
            if let Some(previous) = previous_start {
                TickSamples::push(
                    &mut samples.intervals_ms,
                    (started - previous).as_secs_f64() * 1000.0,
                );
            }
            previous_start = Some(started);
        }
        let tick_ms = self.shared.take_tick_times();
        // Stopping: no more requests; run to the next checkpoint tick and close there.
        while let Ok(event) = events.try_recv() {
            self.refuse_event(event);
        }
        let mut ticks_to_checkpoint = 0;
        while !self.server.at_checkpoint_tick() {
            self.step()?;
            ticks_to_checkpoint += 1;
        }
        let tick = self.server.world().tick();
        for state in self.connections.values() {
            let _ = state.to_conn.send(ToConnection::Close {
                reason: "the server is shutting down".into(),
            });
        }
        let replay_finished = self.server.close()?;
        Ok(ShutdownReport {
            tick,
            ticks_to_checkpoint,
            replay_finished,
            tick_ms,
        })
    }

    fn step(&mut self) -> Result<(), HostError> {
        let started = Instant::now();
        let report = self.server.step()?;
        metrics::histogram!("astroboids_tick_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        if report.checkpoint_written {
            metrics::counter!("astroboids_checkpoints_written_total").increment(1);
        }
        if let Some(path) = &report.replay_finished {
            metrics::counter!("astroboids_replay_files_finished_total").increment(1);
            eprintln!("replay written: {}", path.display());
        }
        if let Some(error) = &report.recording_error {
            eprintln!("warning: the live recording stopped: {error}");
        }
        if report.scripts_suspended > 0 {
            metrics::counter!("astroboids_scripts_suspended_total")
                .increment(u64::from(report.scripts_suspended));
        }
        self.record_vitals();
        Ok(())
    }

    fn record_vitals(&self) {
        let vitals = self.server.vitals();
        metrics::gauge!("astroboids_tick").set(vitals.tick as f64);
        metrics::gauge!("astroboids_ships").set(vitals.ships as f64);
        metrics::counter!("astroboids_script_fuel_used_total")
            .absolute(vitals.script_fuel_used_total);
        metrics::counter!("astroboids_script_faults_total").absolute(vitals.script_faults_total);
    }

    /// After a tick: each subscribed client's snapshot (datagrams) and its ships' events.
    fn send_live_updates(&mut self) {
        let users: std::collections::BTreeSet<String> = self
            .connections
            .values()
            .filter(|c| c.subscription.is_some())
            .filter_map(|c| c.connection.user().map(str::to_string))
            .collect();
        if users.is_empty() {
            return;
        }
        let updates = self.server.player_updates(users.iter().map(String::as_str));
        let tick = self.server.world().tick();
        for state in self.connections.values_mut() {
            let (Some(subscription), Some(user)) =
                (&mut state.subscription, state.connection.user())
            else {
                continue;
            };
            let Some((view, events)) = updates.get(user) else {
                continue;
            };
            let acked = state.live.acked.load(Ordering::Relaxed);
            if acked > 0 {
                subscription.encoder.ack(acked);
            }
            let encoded = subscription.encoder.encode(tick, &view.view, |id, _| {
                view.priority.get(&id).copied().unwrap_or(u64::MAX)
            });
            let bytes: usize = encoded.datagrams.iter().map(Vec::len).sum();
            metrics::counter!("astroboids_snapshot_bytes_total").increment(bytes as u64);
            // A full queue means the client is behind: this snapshot is skipped (the next
            // one is a delta against what it acknowledged, so nothing is lost for good).
            let _ = state
                .live
                .updates
                .try_send(LiveUpdate::Datagrams(encoded.datagrams));
            if !events.logs.is_empty() || !events.faults.is_empty() {
                let mut events = events.clone();
                events.dropped_before = subscription.events_dropped;
                match state.live.updates.try_send(LiveUpdate::Events(events)) {
                    Ok(()) => subscription.events_dropped = 0,
                    Err(_) => subscription.events_dropped += 1,
                }
            }
        }
    }

    /// Carries out events until `wait` has passed (or a shutdown is asked for).
    fn handle_events_for(&mut self, events: &mpsc::Receiver<TickEvent>, wait: Duration) {
        let deadline = Instant::now() + wait;
        while !self.shutdown {
            // Checked before each event, not only when the channel is empty: a steady stream
            // of requests must not hold the next tick back.
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            match events.recv_timeout(deadline - now) {
                Ok(event) => self.handle_event(event),
                Err(mpsc::RecvTimeoutError::Timeout) => return,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(deadline - now);
                    return;
                }
            }
        }
    }

    fn handle_event(&mut self, event: TickEvent) {
        match event {
            TickEvent::Connected {
                conn,
                ip,
                to_conn,
                live,
            } => {
                self.connections.insert(
                    conn,
                    ConnectionState {
                        connection: Connection::from_ip(ip),
                        to_conn,
                        live,
                        subscription: None,
                        password_pending: false,
                        held: std::collections::VecDeque::new(),
                    },
                );
            }
            TickEvent::Disconnected { conn } => {
                self.connections.remove(&conn);
            }
            TickEvent::Request { conn, id, request } => {
                self.shared.queued.fetch_sub(1, Ordering::SeqCst);
                match self.connections.get_mut(&conn) {
                    Some(state) if state.password_pending => state.held.push_back((id, request)),
                    _ => self.handle_request(conn, id, request),
                }
            }
            TickEvent::PasswordChecked {
                conn,
                ip,
                id,
                checked,
            } => {
                if let Some(jobs) = self.password_jobs.get_mut(&ip) {
                    *jobs -= 1;
                    if *jobs == 0 {
                        self.password_jobs.remove(&ip);
                    }
                }
                let Some(state) = self.connections.get_mut(&conn) else {
                    // Nobody is waiting for the answer; counted all the same.
                    let gone = RequestError::Unavailable("the connection closed".into());
                    count_request(checked.kind(), Some(&gone));
                    return;
                };
                let response =
                    self.server
                        .finish_password(&mut state.connection, checked, unix_now_s());
                state.password_pending = false;
                let _ = state.to_conn.send(ToConnection::Answer { id, response });
                self.release_held(conn);
            }
            TickEvent::Shutdown => self.shutdown = true,
        }
    }

    fn refuse_event(&mut self, event: TickEvent) {
        match event {
            TickEvent::Request { conn, id, .. } => {
                self.shared.queued.fetch_sub(1, Ordering::SeqCst);
                self.answer(conn, id, shutting_down());
            }
            other => self.handle_event(other),
        }
    }

    /// Carries out the requests a connection sent while its password job ran, in order, until
    /// one of them is another registration or login.
    fn release_held(&mut self, conn: u64) {
        loop {
            let next = match self.connections.get_mut(&conn) {
                Some(state) if !state.password_pending => state.held.pop_front(),
                _ => None,
            };
            let Some((id, request)) = next else { return };
            if self.shutdown {
                self.answer(conn, id, shutting_down());
            } else {
                self.handle_request(conn, id, request);
            }
        }
    }

    fn answer(&self, conn: u64, id: u64, response: Response) {
        if let Some(state) = self.connections.get(&conn) {
            let _ = state.to_conn.send(ToConnection::Answer { id, response });
        }
    }

    fn handle_request(&mut self, conn: u64, id: u64, request: Request) {
        let Some(state) = self.connections.get_mut(&conn) else {
            return; // The connection is gone; nobody is waiting for the answer.
        };
        let now = unix_now_s();
        let mut response = match request {
            Request::DownloadTrace {
                ship,
                from_tick,
                to_tick,
            } => {
                match self.server.prepare_trace(
                    &mut state.connection,
                    ship,
                    from_tick,
                    to_tick,
                    now,
                ) {
                    Err(e) => Response::Error(e),
                    Ok(_) if self.trace_busy.swap(true, Ordering::SeqCst) => {
                        Response::Error(RequestError::Unavailable(
                            "another trace is being prepared; try again in a moment".into(),
                        ))
                    }
                    Ok(job) => {
                        // Re-simulating takes a while: off the tick thread, one at a time.
                        let to_conn = state.to_conn.clone();
                        let busy = self.trace_busy.clone();
                        std::thread::spawn(move || {
                            let response = job.run();
                            busy.store(false, Ordering::SeqCst);
                            let _ = to_conn.send(ToConnection::Answer { id, response });
                        });
                        return;
                    }
                }
            }
            request @ (Request::Register { .. } | Request::Login { .. }) => {
                let kind = request.kind();
                let ip = state.connection.ip();
                let from_ip = self.password_jobs.get(&ip).copied().unwrap_or(0);
                match self
                    .server
                    .prepare_password(&state.connection, request, now)
                {
                    Err(e) => Response::Error(e),
                    Ok(_) if from_ip >= self.shared.net.password_jobs_per_ip => {
                        let busy = RequestError::Unavailable(format!(
                            "{from_ip} logins from your address are being checked; try again in a moment"
                        ));
                        count_request(kind, Some(&busy));
                        Response::Error(busy)
                    }
                    Ok(job) => {
                        if self.passwords.submit((conn, ip, id, job)) {
                            *self.password_jobs.entry(ip).or_default() += 1;
                            state.password_pending = true;
                            return;
                        }
                        let busy = RequestError::Unavailable(
                            "the server is busy checking passwords; try again in a moment".into(),
                        );
                        count_request(kind, Some(&busy));
                        Response::Error(busy)
                    }
                }
            }
            request => self.server.handle(&mut state.connection, request, now),
        };
        match &response {
            Response::Subscribed { .. } if state.live.max_datagram_bytes == 0 => {
                response = Response::Error(RequestError::Unavailable(
                    "this connection carries no datagrams, which snapshots need".into(),
                ));
            }
            Response::Subscribed { .. } => {
                state.subscription = Some(Subscription {
                    encoder: SnapshotEncoder::new(SnapshotLimits {
                        max_datagram_bytes: state.live.max_datagram_bytes,
                        ..SnapshotLimits::default()
                    }),
                    events_dropped: 0,
                });
            }
            Response::Unsubscribed => state.subscription = None,
            _ => {}
        }
        let kicked = self.server.take_kicked();
        if !kicked.is_empty() {
            let mut closed = 0;
            for state in self.connections.values() {
                if state
                    .connection
                    .user()
                    .is_some_and(|u| kicked.iter().any(|k| k == u))
                {
                    closed += 1;
                    let _ = state.to_conn.send(ToConnection::Close {
                        reason: "an admin closed your session; log in again".into(),
                    });
                }
            }
            if let Response::Kicked { connections, .. } = &mut response {
                *connections = closed;
            }
        }
        if let Some(state) = self.connections.get(&conn) {
            let _ = state.to_conn.send(ToConnection::Answer { id, response });
        }
    }
}

/// One connection: handshake, then bytes <-> session <-> tick thread.
async fn serve_connection(incoming: quinn::Incoming, shared: Arc<Shared>) {
    let Ok(connection) = incoming.await else {
        return; // Handshake failed (wrong ALPN, unknown certificate...): quinn told the peer.
    };
    let ip = connection.remote_address().ip();
    let _slot = match shared.admit(ip) {
        Ok(slot) => slot,
        Err(reason) => {
            metrics::counter!("astroboids_connections_refused_total").increment(1);
            connection.close(CLOSE_REFUSED.into(), reason.as_bytes());
            return;
        }
    };
    let streams = tokio::time::timeout(Duration::from_secs(10), connection.accept_bi()).await;
    let Ok(Ok((mut send, mut recv))) = streams else {
        connection.close(
            CLOSE_REFUSED.into(),
            b"no request stream opened within 10 s",
        );
        return;
    };
    let conn = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    // Answers are bounded by the session's in-flight cap, plus one close.
    let (to_conn, mut from_tick) = tokio::sync::mpsc::unbounded_channel();
    let (live_tx, mut live_rx) = tokio::sync::mpsc::channel(LIVE_QUEUE);
    let acked = Arc::new(AtomicU32::new(0));
    let live = LiveChannel {
        updates: live_tx,
        acked: acked.clone(),
        max_datagram_bytes: connection.max_datagram_size().unwrap_or(0),
    };
    if !shared.send(TickEvent::Connected {
        conn,
        ip,
        to_conn,
        live,
    }) {
        connection.close(CLOSE_REFUSED.into(), b"the server is shutting down");
        return;
    }
    let mut session = ServerSession::new(
        shared.net.session.clone(),
        concat!("astroboids-server ", env!("CARGO_PKG_VERSION")),
        shared.tick_rate_hz,
    );
    let mut buf = vec![0u8; 64 * 1024];
    let mut close_reason: Option<String> = None;
    'connection: loop {
        tokio::select! {
            read = recv.read(&mut buf) => {
                let n = match read {
                    Ok(Some(n)) => n,
                    Ok(None) | Err(_) => break 'connection,
                };
                for event in session.receive(&buf[..n]) {
                    match event {
                        ServerEvent::Send(bytes) => {
                            if send.write_all(&bytes).await.is_err() {
                                break 'connection;
                            }
                        }
                        ServerEvent::Request { id, request } => {
                            if let Request::UploadScript { wasm, .. } = &request {
                                precompile(&shared, wasm).await;
                            }
                            let refusal = forward_request(&shared, &mut session, conn, id, request);
                            if let Some(bytes) = refusal
                                && send.write_all(&bytes).await.is_err()
                            {
                                break 'connection;
                            }
                        }
                        ServerEvent::Close { reason } => {
                            close_reason = Some(reason);
                            break 'connection;
                        }
                    }
                }
            }
            datagram = connection.read_datagram() => match datagram {
                // Acknowledgements only; anything else is ignored.
                Ok(datagram) => {
                    if let Some(seq) = decode_ack(&datagram) {
                        acked.fetch_max(seq, Ordering::Relaxed);
                    }
                }
                Err(_) => break 'connection,
            },
            update = live_rx.recv() => match update {
                Some(LiveUpdate::Datagrams(datagrams)) => {
                    for d in datagrams {
                        // Too large for the path now, or congested: dropped, like a lost
                        // datagram.
                        let _ = connection.send_datagram(d.into());
                    }
                }
                Some(LiveUpdate::Events(events)) => {
                    if let Some(bytes) = session.events(events)
                        && send.write_all(&bytes).await.is_err()
                    {
                        break 'connection;
                    }
                }
                None => break 'connection,
            },
            message = from_tick.recv() => match message {
                Some(ToConnection::Answer { id, response }) => {
                    if let Some(bytes) = session.respond(id, response)
                        && send.write_all(&bytes).await.is_err()
                    {
                        break 'connection;
                    }
                }
                Some(ToConnection::Close { reason }) => {
                    let _ = send.write_all(&session.refuse(&reason)).await;
                    close_reason = Some(reason);
                    break 'connection;
                }
                None => break 'connection,
            },
        }
    }
    shared.send(TickEvent::Disconnected { conn });
    if let Some(reason) = close_reason {
        // Let the Refused frame reach the client, then close saying the same.
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
        connection.close(CLOSE_REFUSED.into(), reason.as_bytes());
    }
}

/// Compiles an uploaded module on a blocking thread (one at a time) so that its validation on
/// the tick thread is a cache hit. The result is not used here: a module that fails is
/// rejected by the tick thread with the same error.
async fn precompile(shared: &Arc<Shared>, wasm: &[u8]) {
    if wasm.len() > shared.script_engine.limits().max_module_bytes {
        return; // Refused by size on the tick thread; nothing to compile.
    }
    let Ok(_permit) = shared.compile_slots.acquire().await else {
        return;
    };
    let engine = Arc::clone(&shared.script_engine);
    let wasm = wasm.to_vec();
    let _ = tokio::task::spawn_blocking(move || engine.load_for_upload(&wasm)).await;
}

/// Hands a request to the tick thread; when it cannot take more, the answer (to send now)
/// says the server is busy.
fn forward_request(
    shared: &Shared,
    session: &mut ServerSession,
    conn: u64,
    id: u64,
    request: Request,
) -> Option<Vec<u8>> {
    let queued = shared.queued.fetch_add(1, Ordering::SeqCst);
    let refusal = if queued >= shared.net.max_queued_requests {
        Some("the server is busy; try again in a moment")
    } else if !shared.send(TickEvent::Request { conn, id, request }) {
        Some("the server is shutting down")
    } else {
        None
    };
    let reason = refusal?;
    shared.queued.fetch_sub(1, Ordering::SeqCst);
    metrics::counter!("astroboids_requests_rejected_total", "kind" => "any", "reason" => "busy")
        .increment(1);
    session.respond(
        id,
        Response::Error(RequestError::Unavailable(reason.to_string())),
    )
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::limits::RateRules;

    /// A tick loop over a fresh world in `name`, with the channel its events come on.
    fn tick_loop(
        name: &str,
        rules: ServerRules,
    ) -> (
        TickLoop,
        mpsc::Sender<TickEvent>,
        mpsc::Receiver<TickEvent>,
        PathBuf,
    ) {
        let dir = std::env::temp_dir().join(format!("astroboids-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (world, _) = PersistentWorld::open(&dir, WorldRequest::default()).unwrap();
        let script_engine = world
            .sim()
            .world()
            .resource::<ScriptLibrary>()
            .shared_engine();
        let (tick_tx, events) = mpsc::channel();
        let shared = Arc::new(Shared {
            tick_tx: tick_tx.clone(),
            queued: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            connections: Mutex::new(HashMap::new()),
            net: NetRules::default(),
            tick_rate_hz: 10,
            tick_samples: Mutex::new(TickSamples::default()),
            script_engine,
            compile_slots: tokio::sync::Semaphore::new(1),
        });
        let tick_loop = TickLoop::new(WorldServer::new(world, rules), shared);
        (tick_loop, tick_tx, events, dir)
    }

    /// The tick thread stops carrying out events when the next tick is due, however many are
    /// waiting (a steady stream of requests once held ticks back for seconds).
    #[test]
    fn a_full_queue_does_not_hold_the_next_tick_back() {
        let (mut tick_loop, tick_tx, events, dir) =
            tick_loop("serve-queue", ServerRules::default());
        // A million cheap events: far more than any machine carries out in the 1 ms wait.
        let waiting = 1_000_000;
        for conn in 0..waiting {
            tick_tx.send(TickEvent::Disconnected { conn }).unwrap();
        }
        tick_loop.handle_events_for(&events, Duration::from_millis(1));
        let left = events.try_iter().count();
        assert!(
            left > 0,
            "all {waiting} events were carried out before the tick"
        );
        assert!(
            left < waiting as usize,
            "none was carried out while waiting"
        );
        drop(tick_loop);
        let _ = std::fs::remove_dir_all(&dir);
    }
    fn unlimited_rates() -> ServerRules {
        let unlimited = NonZeroU32::new(1_000_000).unwrap();
        ServerRules {
            rates: RateRules {
                per_ip_per_s: unlimited,
                per_ip_burst: unlimited,
                per_account_per_s: unlimited,
                per_account_burst: unlimited,
            },
            ..ServerRules::default()
        }
    }

    type Answers = tokio::sync::mpsc::UnboundedReceiver<ToConnection>;

    /// Connects `conn` from `ip`, answering into the channel behind `answers`' sender.
    fn connect(
        tick_loop: &mut TickLoop,
        conn: u64,
        ip: IpAddr,
        to_conn: &tokio::sync::mpsc::UnboundedSender<ToConnection>,
    ) {
        let (updates, live) = tokio::sync::mpsc::channel(LIVE_QUEUE);
        std::mem::forget(live); // Snapshots are not read here.
        tick_loop.handle_event(TickEvent::Connected {
            conn,
            ip,
            to_conn: to_conn.clone(),
            live: LiveChannel {
                updates,
                acked: Arc::new(AtomicU32::new(0)),
                max_datagram_bytes: 0,
            },
        });
    }

    fn register(tick_loop: &mut TickLoop, conn: u64, id: u64, user: &str) {
        tick_loop.handle_event(TickEvent::Request {
            conn,
            id,
            request: Request::Register {
                user: user.into(),
                password: "correct horse".into(),
            },
        });
    }

    /// Answers received so far, in arrival order, each request answered once.
    fn take(answers: &mut Answers, seen: &mut Vec<(u64, Response)>) {
        while let Ok(answer) = answers.try_recv() {
            let ToConnection::Answer { id, response } = answer else {
                panic!("a connection was closed");
            };
            assert!(
                seen.iter().all(|(other, _)| *other != id),
                "request {id} answered twice"
            );
            seen.push((id, response));
        }
    }

    /// Lets the tick loop finish password jobs until `count` answers arrived.
    fn until_answered(
        tick_loop: &mut TickLoop,
        events: &mpsc::Receiver<TickEvent>,
        answers: &mut Answers,
        seen: &mut Vec<(u64, Response)>,
        count: usize,
    ) {
        take(answers, seen);
        while seen.len() < count {
            let event = events
                .recv_timeout(Duration::from_secs(120))
                .expect("a password worker answers");
            tick_loop.handle_event(event);
            take(answers, seen);
        }
    }

    fn busy(response: &Response, why: &str) -> bool {
        matches!(response, Response::Error(RequestError::Unavailable(r)) if r.contains(why))
    }

    /// Registrations and logins wait for a password worker, not the tick thread; beyond the
    /// worker queue they are refused as busy at once, and every request gets one answer.
    #[test]
    fn password_hashing_is_queued_for_workers_and_a_flood_is_refused_as_busy() {
        let (mut tick_loop, _tick_tx, events, dir) =
            tick_loop("serve-passwords", unlimited_rates());
        let (to_conn, mut answers) = tokio::sync::mpsc::unbounded_channel();
        // More registrations than the queue holds, from as many addresses, faster than any
        // worker hashes.
        let flood = 300u64;
        for c in 0..flood {
            let ip = IpAddr::from([10, 0, (c / 250) as u8, (c % 250) as u8]);
            connect(&mut tick_loop, c, ip, &to_conn);
            register(&mut tick_loop, c, c, &format!("pilot{c}"));
        }
        let mut seen = Vec::new();
        take(&mut answers, &mut seen);
        let refused = seen
            .iter()
            .filter(|(_, r)| busy(r, "busy checking passwords"))
            .count() as u64;
        assert!(
            refused >= flood - PASSWORD_QUEUE as u64 - 16,
            "only {refused} of {flood} refused as busy"
        );
        until_answered(
            &mut tick_loop,
            &events,
            &mut answers,
            &mut seen,
            flood as usize,
        );
        let registered = seen
            .iter()
            .filter(|(_, r)| matches!(r, Response::Registered))
            .count();
        assert_eq!(registered as u64 + refused, flood, "{seen:?}");
        assert!(registered >= PASSWORD_QUEUE, "{registered} registered");
        drop(tick_loop);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// One address gets at most `password_jobs_per_ip` jobs at once; a connection's requests
    /// sent behind its login wait for it and are answered in order (they see the session).
    #[test]
    fn one_address_is_capped_and_requests_behind_a_login_keep_their_order() {
        let (mut tick_loop, _tick_tx, events, dir) =
            tick_loop("serve-password-order", unlimited_rates());
        let (to_conn, mut answers) = tokio::sync::mpsc::unbounded_channel();
        let home = IpAddr::from([10, 1, 1, 1]);
        let tries = NetRules::default().password_jobs_per_ip as u64 + 2;
        for c in 0..tries {
            connect(&mut tick_loop, c, home, &to_conn);
            register(&mut tick_loop, c, c, &format!("pilot{c}"));
        }
        let mut seen = Vec::new();
        take(&mut answers, &mut seen);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen.iter()
                .all(|(_, r)| busy(r, "logins from your address are being checked")),
            "{seen:?}"
        );
        until_answered(
            &mut tick_loop,
            &events,
            &mut answers,
            &mut seen,
            tries as usize,
        );

        // Login, then at once a request that needs the session, a logout and a wrong login.
        let requests = [
            Request::Login {
                user: "pilot0".into(),
                password: "correct horse".into(),
            },
            Request::ListScripts,
            Request::Logout,
            Request::Login {
                user: "pilot0".into(),
                password: "wrong horse".into(),
            },
            Request::ListScripts,
        ];
        let first_id = 100;
        for (i, request) in requests.into_iter().enumerate() {
            tick_loop.handle_event(TickEvent::Request {
                conn: 0,
                id: first_id + i as u64,
                request,
            });
        }
        let mut ordered = Vec::new();
        until_answered(&mut tick_loop, &events, &mut answers, &mut ordered, 5);
        let ids: Vec<u64> = ordered.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [100, 101, 102, 103, 104], "answered in the order sent");
        assert!(
            matches!(ordered[0].1, Response::LoggedIn { .. }),
            "{ordered:?}"
        );
        assert!(matches!(ordered[1].1, Response::Scripts(_)), "{ordered:?}");
        assert!(matches!(ordered[2].1, Response::LoggedOut), "{ordered:?}");
        assert!(
            matches!(&ordered[3].1, Response::Error(RequestError::Rejected(r)) if r.contains("wrong password")),
            "{ordered:?}"
        );
        assert!(
            matches!(ordered[4].1, Response::Error(_)),
            "logged out: {ordered:?}"
        );
        drop(tick_loop);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
