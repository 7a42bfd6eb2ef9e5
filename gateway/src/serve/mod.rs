//! The gateway's shell: the QUIC endpoint and one task per connection (bytes through the
//! connection's I/O-free `ServerSession`, requests to the connection's worker, answers and
//! live updates back), and the bus listeners (tick reports for the inputs waiting on them,
//! shards' view pieces for the subscribers, kicks from other gateways). It decides nothing:
//! the requests module and the I/O-free merger and viewers do.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::info;

use astroboids_cluster::plan::{self, WorldSpec};
use astroboids_cluster_net::coordination::{GatewayInfo, ShardInfo};
use astroboids_cluster_net::process::{ALL_VIEWS_SUBJECT, OUTCOME_SUBJECT};
use astroboids_cluster_net::{Coordination, NetError, StartAt, TickBus};
use astroboids_net::quic::{CLOSE_GOING_AWAY, Fingerprint, QuicError, server_config};
use astroboids_pgstore::{PgStore, StoreConfig, StoreError};
use astroboids_scripting::{CompilerKind, ScriptEngine};
use astroboids_server::monitoring;
use astroboids_server::serve::NetRules;
use astroboids_server::tls::{IdentityError, ServerIdentity};

use crate::requests::{Gateway, WorldFacts};
use crate::viewers::{ConnId, LiveOut};
use crate::{GatewayRules, KICK_SUBJECT};

mod connection;
mod listeners;

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
            sensor_range: spec.config.sensors.range,
            nebula_range_factor: spec.config.sensors.nebula_range_factor,
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
            tokio::spawn(listeners::reports(shared.clone(), reports)),
            tokio::spawn(listeners::views(shared.clone(), views)),
            tokio::spawn(listeners::kicks(shared.clone(), kicks)),
            tokio::spawn(connection::accept(
                endpoint.clone(),
                shared.clone(),
                stopped,
            )),
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
        // Not "refused": the players' clients go on through another gateway.
        self.endpoint
            .close(CLOSE_GOING_AWAY.into(), b"the gateway is shutting down");
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
