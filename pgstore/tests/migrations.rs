//! Schema migrations against a real PostgreSQL: applied once, idempotent, serialized between
//! processes connecting at once, and a newer or different schema refused untouched.

mod common;

use astroboids_pgstore::{MIGRATIONS, PgStore, SCHEMA_VERSION, StoreConfig, StoreError};
use common::Db;

async fn applied_versions(db: &Db) -> Vec<i32> {
    db.raw()
        .await
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_apply_once_and_again_changes_nothing() {
    let db = Db::new("apply_once").await;
    let store = db.store().await;
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    let all: Vec<i32> = MIGRATIONS.iter().map(|m| m.version as i32).collect();
    assert_eq!(applied_versions(&db).await, all);
    let checksum: String = db
        .raw()
        .await
        .query_one(
            "SELECT checksum FROM schema_migrations WHERE version = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(checksum, MIGRATIONS[0].checksum());

    // The tables are there and usable.
    store
        .create_account("ada", common::PHC, astroboids_pgstore::Role::Player, 1)
        .await
        .unwrap();

    // Connecting again (a restart, a second gateway) applies nothing and keeps the data.
    let again = db.store().await;
    assert_eq!(applied_versions(&db).await, all);
    assert!(again.account("ada").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn processes_connecting_at_once_migrate_once() {
    let db = Db::new("concurrent").await;
    // Four "gateways" connect to the fresh database at the same moment, each on its own task
    // (and so its own connection): one migrates under the advisory lock, the others wait and
    // find nothing to do.
    let tasks: Vec<_> = (0..4)
        .map(|_| tokio::spawn(PgStore::connect(db.config())))
        .collect();
    for task in tasks {
        let store = task.await.unwrap().expect("every connect succeeds");
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    }
    let all: Vec<i32> = MIGRATIONS.iter().map(|m| m.version as i32).collect();
    assert_eq!(
        applied_versions(&db).await,
        all,
        "each migration recorded once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_schema_is_refused_and_left_alone() {
    let db = Db::new("newer").await;
    db.store().await;
    let newer = SCHEMA_VERSION as i32 + 1;
    let raw = db.raw().await;
    raw.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, 'from_the_future', 'x')",
        &[&newer],
    )
    .await
    .unwrap();
    let error = PgStore::connect(db.config()).await.unwrap_err();
    assert!(
        matches!(error, StoreError::SchemaTooNew { found, known }
            if found == newer as u32 && known == SCHEMA_VERSION),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("schema version {newer}"))
            && message.contains("nothing was changed"),
        "{message}"
    );
    // Still there, untouched.
    let rows = raw
        .query(
            "SELECT name FROM schema_migrations WHERE version = $1",
            &[&newer],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_differently_migrated_database_is_refused() {
    let db = Db::new("changed").await;
    db.store().await;
    db.raw()
        .await
        .execute(
            "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1",
            &[],
        )
        .await
        .unwrap();
    let error = PgStore::connect(db.config()).await.unwrap_err();
    assert!(
        matches!(error, StoreError::MigrationMismatch { version: 1, .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_database_fails_in_the_migration_named() {
    let db = Db::new("foreign_db").await;
    // Somebody else's table where ours would go.
    db.raw()
        .await
        .batch_execute("CREATE TABLE accounts (id INTEGER)")
        .await
        .unwrap();
    let error = PgStore::connect(db.config()).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Migration { version: 1, .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("V1__initial") && message.contains("\"accounts\" already exists"),
        "{message}"
    );
    // Rolled back: nothing recorded, nothing half made.
    let recorded = db
        .raw()
        .await
        .query("SELECT 1 FROM schema_migrations", &[])
        .await
        .unwrap();
    assert!(recorded.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_urls_and_unreachable_servers_are_named() {
    let error = PgStore::connect(StoreConfig::new("postgres://x@host:notaport/db"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::BadUrl(_)), "{error}");

    // A port nobody listens on (bound, then freed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = StoreConfig::new(format!("postgres://postgres:secret@127.0.0.1:{port}/world"));
    config.connect_timeout = std::time::Duration::from_secs(2);
    let error = PgStore::connect(config).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StoreError::Connect { .. }), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{port}/world")),
        "{message}"
    );
    assert!(
        message.contains("refused"),
        "the reason is given: {message}"
    );
    assert!(!message.contains("secret"), "{message}");
}
