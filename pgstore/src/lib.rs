//! The cluster's durable store on PostgreSQL, shared by any number of gateway processes:
//! accounts and sessions, scripts with their owners' named versions, ship ownership, the
//! durable copy of each world's input log, and exactly-once request answers across reconnects
//! (the database twin of `protocol::resume::ResumeCache`).
//!
//! [`PgStore::connect`] applies the schema migrations (`pgstore/migrations/`, see [`migrate`])
//! and opens a bounded pool of connections; a [`PgStore`] is cheap to clone and every method
//! takes `&self`. Every argument is checked before it is sent (names, sizes against
//! [`Limits`], numbers that must fit a BIGINT) and every refusal is a typed [`StoreError`]
//! naming what was wrong. No method reads a clock: times are unix seconds passed in.
//!
//! What stays with the caller: argon2 (hashing a new password, verifying a login against
//! [`Account::password_phc`], with a stand-in hash for unknown users) and making session
//! tokens; the store takes the PHC string and the token's SHA-256 ([`TokenHash`]), as
//! `server::accounts` computes them, and never sees a password or a token.

mod accounts;
mod checks;
mod error;
mod input_log;
pub mod migrate;
mod resume;
mod scripts;
mod ships;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

pub use accounts::{Account, Role, Session, TokenHash};
pub use checks::{MAX_NAME_BYTES, MAX_PASSWORD_PHC_BYTES};
pub use error::{Result, StoreError};
pub use input_log::{Appended, LoggedInput, NewInput};
pub use migrate::{MIGRATIONS, SCHEMA_VERSION};
pub use resume::{Begin, Claim, Finish, ResumeKey};
pub use scripts::{ScriptListing, ScriptVersion};

use error::Doing;

/// Bounds on what the store accepts and keeps, mirroring the single server's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A script module (the world store's `max_script_bytes`, the universe's
    /// `scripts.max_module_bytes`).
    pub max_script_bytes: usize,
    /// One encoded input of the log (the world store's `max_input_bytes`).
    pub max_input_bytes: usize,
    /// One stored request answer (a client accepts frames up to 16 MiB).
    pub max_answer_bytes: usize,
    /// Answers kept per (session, client instance), newest kept (`ResumeLimits`).
    pub answers_per_instance: usize,
    /// How long a request's answer is kept (`ResumeLimits`).
    pub resume_keep_s: u64,
    /// How long a claim on a request in flight holds: past it, another gateway may claim the
    /// request again (its gateway may be gone). Carrying a request out must take less; world
    /// inputs are deduplicated by the input log whatever happens, so a second claimant gets
    /// the first one's verdict.
    pub claim_ttl_s: u64,
    /// Who is waiting for an answer (a gateway's name for a connection), in bytes (the schema
    /// allows 256 at most).
    pub max_waiting_bytes: usize,
    /// Rows one call reads or writes at most (listings, log reads and batches, sweeps).
    pub max_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_script_bytes: 256 * 1024,
            // An input may carry a whole script module (`max_script_bytes`) and its encoding.
            max_input_bytes: 256 * 1024 + 1024,
            max_answer_bytes: 16 << 20,
            answers_per_instance: 64,
            resume_keep_s: 600,
            claim_ttl_s: 15,
            max_waiting_bytes: 256,
            max_rows: 10_000,
        }
    }
}

/// Where the database is and how many connections to keep.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `postgres://user[:password]@host:port/database` (or key=value pairs).
    pub url: String,
    /// Connections in the pool at most.
    pub pool_size: usize,
    /// How long a call waits for a free connection before failing.
    pub wait_timeout: Duration,
    /// How long making a connection may take.
    pub connect_timeout: Duration,
    pub limits: Limits,
}

impl StoreConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            wait_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            limits: Limits::default(),
        }
    }
}

/// A handle on the store: a pool of connections to one database. Clone it freely.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    limits: Limits,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool.status())
            .field("limits", &self.limits)
            .finish()
    }
}

impl PgStore {
    /// Connects, applies the migrations this build has and the database lacks (one process at
    /// a time), and refuses a database whose schema is newer than [`SCHEMA_VERSION`] or was
    /// migrated differently. Needs a tokio runtime.
    pub async fn connect(config: StoreConfig) -> Result<Self> {
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::BadUrl(e.to_string()))?;
        pg.connect_timeout(config.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("astroboids-pgstore");
        }
        let at_least_one = [
            ("pool size", config.pool_size),
            ("answers per instance", config.limits.answers_per_instance),
            ("rows per call", config.limits.max_rows),
            ("waiting connection bytes", config.limits.max_waiting_bytes),
        ];
        if let Some((what, _)) = at_least_one.iter().find(|(_, n)| *n == 0) {
            return Err(StoreError::Invalid {
                what,
                reason: "it must be at least 1".into(),
            });
        }
        let at = describe(&pg);
        migrate::run(&pg, &at).await?;
        let manager = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| StoreError::Invalid {
                what: "pool configuration",
                reason: e.to_string(),
            })?;
        let store = Self {
            pool,
            limits: config.limits,
        };
        // Fail here, not at the first request, if the pool cannot connect.
        drop(store.client("checking the pool").await?);
        Ok(store)
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The schema version the database is at (this build's, once connected).
    pub async fn schema_version(&self) -> Result<u32> {
        let client = self.client("reading the schema version").await?;
        let row = client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .doing("reading the schema version")?;
        let version: i32 = row.get(0);
        Ok(version.max(0) as u32)
    }

    /// Closes the pool: calls waiting for a connection fail, idle connections are closed.
    pub fn close(&self) {
        self.pool.close();
    }

    pub(crate) async fn client(&self, doing: &'static str) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.doing(doing)
    }
}

/// `host:port/database` for error messages (never the password).
fn describe(pg: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match pg.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let db = pg
        .get_dbname()
        .or(pg.get_user())
        .unwrap_or("(default database)");
    format!("{host}:{port}/{db}")
}
