//! The gateway's shell: the QUIC endpoint and one task per connection (bytes through the
//! connection's I/O-free `ServerSession`, requests to the connection's worker, answers and
//! live updates back), and the bus listeners (tick reports for the inputs waiting on them,
//! shards' view pieces for the subscribers, kicks from other gateways). It decides nothing:
//! the requests module and the I/O-free merger and viewers do.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use astroboids_cluster::live::{ShardViews, ViewMerger};
use astroboids_cluster::messages::TickReport;
use astroboids_cluster::plan::{self, WorldSpec};
use astroboids_cluster_net::coordination::{GatewayInfo, ShardInfo};
use astroboids_cluster_net::process::{ALL_VIEWS_SUBJECT, OUTCOME_SUBJECT};
use astroboids_cluster_net::{Coordination, NetError, StartAt, TickBus};
use astroboids_net::quic::{CLOSE_REFUSED, Fingerprint, QuicError, server_config};
use astroboids_pgstore::{PgStore, StoreConfig, StoreError};
use astroboids_protocol::messages::{Request, RequestError, Response};
use astroboids_protocol::session::{ServerEvent, ServerSession};
use astroboids_protocol::snapshot::decode_ack;
use astroboids_scripting::{CompilerKind, ScriptEngine};
use astroboids_server::monitoring;
use astroboids_server::serve::NetRules;
use astroboids_server::tls::{IdentityError, ServerIdentity};

use crate::requests::{ConnState, Gateway, WorldFacts};
use crate::viewers::{ConnId, LiveOut};
use crate::{GatewayRules, KICK_SUBJECT};

/// Live updates waiting for a slow connection; past it, updates are dropped (the snapshot
/// encoder resends what the client did not acknowledge).
const LIVE_QUEUE: usize = 8;

/// What `astroboids gateway` runs.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Its name (in logs and in the store's record of who waits for an answer).
    pub name: String,
    pub listen: SocketAddr,
    /// Where the TLS identity every gateway of the cluster shares is kept (made there on
    /// first start when missing; `cluster up` makes it before starting gateways).
    pub identity: PathBuf,
    pub postgres: String,
    pub nats: String,
    pub etcd: String,
    pub world: String,
    pub lease_ttl_s: i64,
    pub metrics_listen: Option<SocketAddr>,
    pub metrics_public: bool,
    pub rules: GatewayRules,
    pub net: NetRules,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("PostgreSQL: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Quic(#[from] QuicError),
    #[error(
        "the world {world:?} has no spec at etcd key {key:?}: start its cluster first (`astroboids cluster up`)"
    )]
    NoWorld { world: String, key: &'static str },
    #[error("the world's spec is invalid: {0}")]
    Spec(String),
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: SocketAddr, error: String },
}

/// State the shell's tasks share.
struct Shared {
    gateway: Arc<Gateway>,
    net: NetRules,
    next_conn: AtomicU64,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Each connection's live queue.
    live: Mutex<HashMap<ConnId, mpsc::Sender<LiveOut>>>,
    tick_rate_hz: u32,
}

/// A running gateway.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub fingerprint: Fingerprint,
    pub identity_created: bool,
    pub metrics_addr: Option<SocketAddr>,
    endpoint: quinn::Endpoint,
    stop: watch::Sender<bool>,
    coordination: Coordination,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningGateway {
    /// Connects to the store, the coordination service and the bus, reads the world's spec,
    /// binds the endpoint and starts serving (in the caller's tokio runtime).
    pub async fn start(options: GatewayOptions) -> Result<Self, GatewayError> {
        let (identity, identity_created) = ServerIdentity::load_or_create(&options.identity)?;
        let store = PgStore::connect(StoreConfig::new(options.postgres.clone())).await?;
        let coordination = Coordination::connect(
            std::slice::from_ref(&options.etcd),
            &options.world,
            options.lease_ttl_s,
        )
        .await?;
        let spec = coordination
            .get_json::<WorldSpec>(plan::keys::SPEC)
            .await?
            .ok_or_else(|| GatewayError::NoWorld {
                world: options.world.clone(),
                key: plan::keys::SPEC,
            })?
            .value
            .validated()
            .map_err(|e| GatewayError::Spec(e.to_string()))?;
        let bus = Arc::new(TickBus::connect(&options.nats, &options.world).await?);
        let world = WorldFacts {
            sector_size: spec.config.simulation.sector_size,
            tick_rate_hz: spec.config.simulation.tick_rate_hz,
            max_module_bytes: spec.config.scripts.max_module_bytes as usize,
        };
        let engine = Arc::new(ScriptEngine::new(
            spec.config.scripts.limits(),
            CompilerKind::Cranelift,
        ));
        let gateway = Arc::new(Gateway::new(
            options.name.clone(),
            store,
            bus.clone(),
            options.rules.clone(),
            world,
            engine,
        ));
        monitoring::recorder();
        describe_metrics();
        let metrics_addr = match options.metrics_listen {
            Some(addr) => {
                let listener = monitoring::bind_metrics(addr, options.metrics_public)
                    .await
                    .map_err(|e| GatewayError::Bind {
                        addr,
                        error: e.to_string(),
                    })?;
                let bound = listener.local_addr().ok();
                tokio::spawn(monitoring::serve_metrics(listener));
                bound
            }
            None => None,
        };
        let config = server_config(
            &identity.cert_der,
            &identity.key_pkcs8_der,
            options.net.idle_timeout,
        )?;
        let endpoint =
            quinn::Endpoint::server(config, options.listen).map_err(|e| GatewayError::Bind {
                addr: options.listen,
                error: e.to_string(),
            })?;
        let addr = endpoint.local_addr().map_err(|e| GatewayError::Bind {
            addr: options.listen,
            error: e.to_string(),
        })?;
        let shared = Arc::new(Shared {
            gateway,
            net: options.net.clone(),
            next_conn: AtomicU64::new(1),
            per_ip: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            tick_rate_hz: world.tick_rate_hz,
        });
        let (stop, stopped) = watch::channel(false);
        // Listeners first: a report or a view that comes before a request is still seen.
        let reports = bus.subscribe(OUTCOME_SUBJECT, None, StartAt::New).await?;
        let views = bus.subscribe_live(ALL_VIEWS_SUBJECT).await?;
        let kicks = bus.subscribe_live(KICK_SUBJECT).await?;
        let tasks = vec![
            tokio::spawn(listen_reports(shared.clone(), reports)),
            tokio::spawn(listen_views(shared.clone(), views)),
            tokio::spawn(listen_kicks(shared.clone(), kicks)),
            tokio::spawn(accept(endpoint.clone(), shared.clone(), stopped)),
        ];
        coordination
            .register_gateway(&GatewayInfo {
                name: options.name.clone(),
                addr: addr.to_string(),
                fingerprint: identity.fingerprint().to_string(),
                pid: std::process::id(),
                host: ShardInfo::this_process().host,
                started_at_unix_ms: ShardInfo::this_process().started_at_unix_ms,
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .await?;
        info!(
            name = %options.name,
            addr = %addr,
            fingerprint = %identity.fingerprint(),
            world = %options.world,
            metrics = metrics_addr.map(|a| a.to_string()),
            "gateway listening"
        );
        Ok(Self {
            addr,
            fingerprint: identity.fingerprint(),
            identity_created,
            metrics_addr,
            endpoint,
            stop,
            coordination,
            tasks,
        })
    }

    /// Stops: refuses new connections, closes every open one saying why, and waits briefly
    /// for the closes to reach the clients.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.endpoint
            .close(CLOSE_REFUSED.into(), b"the gateway is shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        for task in self.tasks {
            task.abort();
        }
        let _ = self.coordination.close().await;
    }
}

fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "astroboids_gateway_requests_total",
        Unit::Count,
        "Requests carried out, by kind and outcome."
    );
    describe_histogram!(
        "astroboids_gateway_request_seconds",
        Unit::Seconds,
        "From a request's arrival at its connection's worker to its answer, by kind."
    );
    describe_counter!(
        "astroboids_gateway_requests_resumed_total",
        Unit::Count,
        "Requests answered from the store's copy of an earlier answer (re-sent after a reconnect)."
    );
    describe_gauge!(
        "astroboids_gateway_connections",
        Unit::Count,
        "Open player connections."
    );
    describe_histogram!(
        "astroboids_gateway_input_seconds",
        Unit::Seconds,
        "From publishing a world input to its tick's verdict."
    );
    describe_histogram!(
        "astroboids_gateway_input_publish_seconds",
        Unit::Seconds,
        "Publishing a world input until the log stored it."
    );
    describe_histogram!(
        "astroboids_gateway_view_gap_seconds",
        Unit::Seconds,
        "Time between two merged ticks of players' views (a lost shard's recovery shows here)."
    );
    describe_gauge!(
        "astroboids_gateway_view_tick",
        Unit::Count,
        "The last tick whose views every shard sent."
    );
    describe_counter!(
        "astroboids_gateway_view_ticks_dropped_total",
        Unit::Count,
        "Ticks whose views never completed (a shard lost mid-tick, or a piece lost)."
    );
    describe_counter!(
        "astroboids_gateway_snapshot_bytes_total",
        Unit::Bytes,
        "Snapshot datagram bytes sent to players."
    );
    describe_counter!(
        "astroboids_gateway_live_dropped_total",
        Unit::Count,
        "Live updates dropped because a connection could not take them in time."
    );
}

async fn listen_reports(shared: Arc<Shared>, mut reports: astroboids_cluster_net::Subscription) {
    loop {
        match reports.next().await {
            Ok(message) => match postcard::from_bytes::<TickReport>(&message.payload) {
                Ok(report) => {
                    metrics::gauge!("astroboids_gateway_world_tick").set(report.tick as f64);
                    shared.gateway.inputs().on_report(&report);
                }
                Err(e) => {
                    warn!(seq = message.seq, error = %e, "a tick report that does not decode")
                }
            },
            Err(e) => {
                warn!(error = %e, "tick reports: the subscription failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn listen_views(
    shared: Arc<Shared>,
    mut views: astroboids_cluster_net::bus::LiveSubscription,
) {
    let mut merger = ViewMerger::default();
    let mut last_merged: Option<Instant> = None;
    let mut dropped = 0;
    loop {
        let message = match views.next().await {
            Ok(message) => message,
            Err(e) => {
                warn!(error = %e, "view pieces: the subscription ended");
                return;
            }
        };
        let pieces: ShardViews = match postcard::from_bytes(&message.payload) {
            Ok(pieces) => pieces,
            Err(e) => {
                warn!(subject = %message.subject, error = %e, "view pieces that do not decode");
                continue;
            }
        };
        let Some(merged) = merger.push(pieces) else {
            continue;
        };
        let now = Instant::now();
        if let Some(before) = last_merged.replace(now) {
            metrics::histogram!("astroboids_gateway_view_gap_seconds")
                .record((now - before).as_secs_f64());
        }
        metrics::gauge!("astroboids_gateway_view_tick").set(merged.tick as f64);
        if merger.dropped() > dropped {
            metrics::counter!("astroboids_gateway_view_ticks_dropped_total")
                .increment(merger.dropped() - dropped);
            dropped = merger.dropped();
        }
        let outs = shared
            .gateway
            .viewers()
            .lock()
            .expect("not poisoned")
            .on_tick(&merged);
        let live = shared.live.lock().expect("not poisoned");
        for out in outs {
            let bytes: usize = out.datagrams.iter().map(Vec::len).sum();
            if let Some(queue) = live.get(&out.conn) {
                if queue.try_send(out).is_ok() {
                    metrics::counter!("astroboids_gateway_snapshot_bytes_total")
                        .increment(bytes as u64);
                } else {
                    metrics::counter!("astroboids_gateway_live_dropped_total").increment(1);
                }
            }
        }
    }
}

async fn listen_kicks(
    shared: Arc<Shared>,
    mut kicks: astroboids_cluster_net::bus::LiveSubscription,
) {
    while let Ok(message) = kicks.next().await {
        let user = String::from_utf8_lossy(&message.payload).into_owned();
        let closed = shared
            .gateway
            .close_user(&user, "an admin closed your session; log in again");
        if closed > 0 {
            info!(user, closed, "kicked");
        }
    }
}

async fn accept(endpoint: quinn::Endpoint, shared: Arc<Shared>, stopped: watch::Receiver<bool>) {
    while let Some(incoming) = endpoint.accept().await {
        if *stopped.borrow() {
            incoming.refuse();
            continue;
        }
        tokio::spawn(serve_connection(incoming, shared.clone()));
    }
}

/// Counts a connection from `ip`, or says why it is refused; `Some(ip)` to release.
fn admit(shared: &Shared, ip: IpAddr) -> Result<(), String> {
    let mut per_ip = shared.per_ip.lock().expect("not poisoned");
    let total: usize = per_ip.values().sum();
    if total >= shared.net.max_connections {
        return Err(format!(
            "the gateway has {total} connections, its limit; try again later"
        ));
    }
    let from_ip = per_ip.entry(ip).or_default();
    if *from_ip >= shared.net.max_connections_per_ip {
        return Err(format!(
            "{ip} already has {from_ip} connections, the most one address may have"
        ));
    }
    *from_ip += 1;
    metrics::gauge!("astroboids_gateway_connections").set((total + 1) as f64);
    Ok(())
}

fn release(shared: &Shared, ip: IpAddr) {
    let mut per_ip = shared.per_ip.lock().expect("not poisoned");
    if let Some(n) = per_ip.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            per_ip.remove(&ip);
        }
    }
    let total: usize = per_ip.values().sum();
    metrics::gauge!("astroboids_gateway_connections").set(total as f64);
}

async fn serve_connection(incoming: quinn::Incoming, shared: Arc<Shared>) {
    let peer = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            debug!(%peer, %error, "handshake failed");
            return;
        }
    };
    let ip = connection.remote_address().ip();
    if let Err(reason) = admit(&shared, ip) {
        warn!(%peer, %reason, "connection refused");
        connection.close(CLOSE_REFUSED.into(), reason.as_bytes());
        return;
    }
    let conn = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    run_connection(&shared, connection, conn, ip).await;
    shared.live.lock().expect("not poisoned").remove(&conn);
    shared.gateway.connection_closed(conn);
    release(&shared, ip);
    debug!(conn, %peer, "connection closed");
}

async fn run_connection(
    shared: &Arc<Shared>,
    connection: quinn::Connection,
    conn: ConnId,
    ip: IpAddr,
) {
    let streams = tokio::time::timeout(Duration::from_secs(10), connection.accept_bi()).await;
    let Ok(Ok((mut send, mut recv))) = streams else {
        connection.close(
            CLOSE_REFUSED.into(),
            b"no request stream opened within 10 s",
        );
        return;
    };
    let (close_tx, mut close_rx) = mpsc::unbounded_channel();
    shared.gateway.connection_opened(conn, close_tx);
    let (live_tx, mut live_rx) = mpsc::channel(LIVE_QUEUE);
    shared
        .live
        .lock()
        .expect("not poisoned")
        .insert(conn, live_tx);
    let state = ConnState::new(conn, ip, connection.max_datagram_size().unwrap_or(0));
    let acked = state.acked.clone();
    // The worker carries out this connection's requests one after another; the session's
    // in-flight cap bounds what waits for it.
    let (request_tx, request_rx) = mpsc::channel(shared.net.session.max_in_flight + 1);
    let (answer_tx, mut answer_rx) = mpsc::unbounded_channel();
    let worker = tokio::spawn(work(shared.gateway.clone(), state, request_rx, answer_tx));
    let mut session = ServerSession::new(
        shared.net.session.clone(),
        concat!("astroboids-gateway ", env!("CARGO_PKG_VERSION")),
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
                            let instance = session.instance();
                            if request_tx.try_send((instance, id, request)).is_err() {
                                let busy = Response::Error(RequestError::Unavailable(
                                    "the gateway is busy; try again in a moment".into(),
                                ));
                                if let Some(bytes) = session.respond(id, busy)
                                    && send.write_all(&bytes).await.is_err()
                                {
                                    break 'connection;
                                }
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
                Ok(datagram) => {
                    if let Some(seq) = decode_ack(&datagram) {
                        acked.fetch_max(seq, Ordering::Relaxed);
                    }
                }
                Err(_) => break 'connection,
            },
            answer = answer_rx.recv() => match answer {
                Some((id, response)) => {
                    if let Some(bytes) = session.respond(id, response)
                        && send.write_all(&bytes).await.is_err()
                    {
                        break 'connection;
                    }
                }
                None => break 'connection,
            },
            update = live_rx.recv() => match update {
                Some(out) => {
                    for d in out.datagrams {
                        // Too large for the path now, or congested: dropped, like a lost one.
                        let _ = connection.send_datagram(d.into());
                    }
                    if let Some(events) = out.events
                        && let Some(bytes) = session.events(events)
                        && send.write_all(&bytes).await.is_err()
                    {
                        break 'connection;
                    }
                }
                None => break 'connection,
            },
            reason = close_rx.recv() => {
                if let Some(reason) = reason {
                    let _ = send.write_all(&session.refuse(&reason)).await;
                    close_reason = Some(reason);
                }
                break 'connection;
            }
        }
    }
    worker.abort();
    if let Some(reason) = close_reason {
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
        connection.close(CLOSE_REFUSED.into(), reason.as_bytes());
    }
}

/// One connection's requests, in order.
async fn work(
    gateway: Arc<Gateway>,
    mut state: ConnState,
    mut requests: mpsc::Receiver<(u64, u64, Request)>,
    answers: mpsc::UnboundedSender<(u64, Response)>,
) {
    while let Some((instance, id, request)) = requests.recv().await {
        let response = gateway.handle(&mut state, instance, id, request).await;
        if answers.send((id, response)).is_err() {
            return;
        }
    }
}
