//! A real PostgreSQL for the tests of one test binary, and a database of its own per test.
//!
//! The server is started by the first test that needs it and shared by the tests running
//! alongside; the last one to finish drops it (stopping the server and removing its
//! directory), so no server outlives the test binary. A missing PostgreSQL fails the test
//! with the launcher's message saying how to install it: nothing is skipped.

#![allow(dead_code)]

use std::sync::{Arc, Mutex, Weak};

use astroboids_pgstore::{Limits, PgStore, StoreConfig, TokenHash};
use astroboids_test_kit::{Postgres, TempDir};

struct Server {
    postgres: Postgres,
    // Dropped after `postgres`, which stops the server first.
    _dir: TempDir,
}

static SHARED: Mutex<Weak<Server>> = Mutex::new(Weak::new());

fn server() -> Arc<Server> {
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = shared.upgrade() {
        return server;
    }
    let dir = TempDir::new("pgstore");
    let postgres = Postgres::start(&dir).unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    let server = Arc::new(Server {
        postgres,
        _dir: dir,
    });
    *shared = Arc::downgrade(&server);
    server
}

/// An empty database of a test's own on the shared server.
pub struct Db {
    server: Arc<Server>,
    pub name: String,
}

impl Db {
    /// Creates database `name` (a test's name: unique within its binary).
    pub async fn new(name: &str) -> Self {
        let server = tokio::task::spawn_blocking(server).await.unwrap();
        let (client, connection) =
            tokio_postgres::connect(&server.postgres.url(), tokio_postgres::NoTls)
                .await
                .expect("connecting to the test server");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e:?}"));
        drop(client);
        let _ = driver.await;
        Self {
            server,
            name: name.to_string(),
        }
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.server.postgres.port(),
            self.name
        )
    }

    pub fn config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(self.url());
        config.pool_size = 4;
        config
    }

    /// A store on this database with the default limits.
    pub async fn store(&self) -> PgStore {
        PgStore::connect(self.config())
            .await
            .expect("connecting the store")
    }

    /// A store with other limits.
    pub async fn store_with(&self, limits: Limits) -> PgStore {
        let mut config = self.config();
        config.limits = limits;
        PgStore::connect(config)
            .await
            .expect("connecting the store")
    }

    /// A plain connection, to look at or tamper with the tables.
    pub async fn raw(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connecting to the test database");
        tokio::spawn(connection);
        client
    }
}

/// A well-formed PHC string (the store checks only the shape; argon2 is the caller's).
pub const PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo";

/// A token hash made from a small number.
pub fn token(n: u8) -> TokenHash {
    TokenHash([n; 32])
}

/// An account `name` with a session under `token(n)` lasting until `expires`.
pub async fn user_with_session(store: &PgStore, name: &str, n: u8, expires: u64) -> TokenHash {
    store
        .create_account(name, PHC, astroboids_pgstore::Role::Player, 0)
        .await
        .unwrap();
    store
        .open_session(&token(n), name, 0, expires)
        .await
        .unwrap();
    token(n)
}

/// Player accounts with these names (a stand-in password hash).
pub async fn players(store: &PgStore, names: &[&str]) {
    for name in names {
        store
            .create_account(name, PHC, astroboids_pgstore::Role::Player, 0)
            .await
            .unwrap();
    }
}
