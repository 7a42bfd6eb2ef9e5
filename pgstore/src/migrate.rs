//! Versioned schema migrations, kept in `pgstore/migrations/V{n}__{name}.sql` and compiled in.
//!
//! At connect, on a connection of its own: take an advisory lock (so of several processes
//! connecting at once, one migrates and the others wait, then find nothing to do), make
//! `schema_migrations` if missing, compare what the database has applied with this build's
//! list, and apply each missing migration in a transaction of its own together with its row in
//! `schema_migrations`. A database migrated further than this build knows, or whose applied
//! migrations differ from this build's (another name or checksum), is refused before anything
//! is changed. The connection is closed afterwards, which releases the lock even if a
//! migration failed half-way.

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, Config, NoTls};

use crate::error::{Doing, Result, StoreError};

/// One migration: `migrations/V{version}__{name}.sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the SQL text, hex: what `schema_migrations.checksum` holds.
    pub fn checksum(&self) -> String {
        Sha256::digest(self.sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Every migration this build knows, in order: versions 1, 2, 3, ... without gaps (a unit test
/// checks this list against the files in `migrations/`).
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "initial",
    sql: include_str!("../migrations/V1__initial.sql"),
}];

/// The schema this build reads and writes: the last migration's version.
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The advisory lock migrations are applied under ("astroboi" in ASCII).
pub const MIGRATION_LOCK: i64 = 0x6173_7472_6f62_6f69;

/// How long a process waits for another one's migrations before giving up.
const LOCK_TIMEOUT: &str = "120s";

/// A migration the database has applied, as `schema_migrations` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub version: u32,
    pub name: String,
    pub checksum: String,
}

/// Brings the database at `config` to [`SCHEMA_VERSION`]; returns the versions applied now.
pub(crate) async fn run(config: &Config, at: &str) -> Result<Vec<u32>> {
    let (mut client, connection) =
        config
            .connect(NoTls)
            .await
            .map_err(|source| StoreError::Connect {
                at: at.to_string(),
                source,
            })?;
    let driver = tokio::spawn(connection);
    let result = migrate(&mut client).await;
    // Closing the connection releases the advisory lock, whatever happened above.
    drop(client);
    let _ = driver.await;
    result
}

async fn migrate(client: &mut Client) -> Result<Vec<u32>> {
    client
        .batch_execute(&format!("SET lock_timeout = '{LOCK_TIMEOUT}'"))
        .await
        .doing("setting the migration lock's timeout")?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .doing("waiting for the migration lock")?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version     INTEGER PRIMARY KEY CHECK (version > 0),
                name        TEXT NOT NULL,
                checksum    TEXT NOT NULL,
                -- Informational only: the database server's clock.
                applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .doing("creating schema_migrations")?;
    let applied = client
        .query(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .doing("reading schema_migrations")?
        .iter()
        .map(|row| {
            let version: i32 = row.get(0);
            Ok(Applied {
                version: u32::try_from(version).map_err(|_| {
                    StoreError::Damaged(format!("schema_migrations has version {version}"))
                })?,
                name: row.get(1),
                checksum: row.get(2),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let pending = pending(&applied, MIGRATIONS)?;
    let mut done = Vec::new();
    for migration in pending {
        apply(client, migration).await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied a schema migration"
        );
        done.push(migration.version);
    }
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .doing("releasing the migration lock")?;
    Ok(done)
}

async fn apply(client: &mut Client, migration: &Migration) -> Result<()> {
    let failed = |source| StoreError::Migration {
        version: migration.version,
        name: migration.name,
        source,
    };
    let tx = client.transaction().await.map_err(failed)?;
    tx.batch_execute(migration.sql).await.map_err(failed)?;
    tx.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
        &[
            &(migration.version as i32),
            &migration.name,
            &migration.checksum(),
        ],
    )
    .await
    .map_err(failed)?;
    tx.commit().await.map_err(failed)
}

/// The migrations of `known` still to apply after `applied`, or why the database is refused.
pub(crate) fn pending<'a>(applied: &[Applied], known: &'a [Migration]) -> Result<&'a [Migration]> {
    let newest_known = known.last().map_or(0, |m| m.version);
    if let Some(newest) = applied.last()
        && newest.version > newest_known
    {
        return Err(StoreError::SchemaTooNew {
            found: newest.version,
            known: newest_known,
        });
    }
    let label = |name: &str, checksum: &str| {
        format!(
            "{name}, checksum {}",
            checksum.get(..12).unwrap_or(checksum)
        )
    };
    for (i, found) in applied.iter().enumerate() {
        if found.version as usize != i + 1 {
            return Err(StoreError::Damaged(format!(
                "schema_migrations skips from version {i} to {}",
                found.version
            )));
        }
        let expected = &known[i];
        if found.name != expected.name || found.checksum != expected.checksum() {
            return Err(StoreError::MigrationMismatch {
                version: found.version,
                applied: label(&found.name, &found.checksum),
                expected: label(expected.name, &expected.checksum()),
            });
        }
    }
    Ok(&known[applied.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(m: &Migration) -> Applied {
        Applied {
            version: m.version,
            name: m.name.to_string(),
            checksum: m.checksum(),
        }
    }

    const KNOWN: &[Migration] = &[
        Migration {
            version: 1,
            name: "one",
            sql: "SELECT 1",
        },
        Migration {
            version: 2,
            name: "two",
            sql: "SELECT 2",
        },
    ];

    #[test]
    fn the_list_matches_the_files_in_migrations() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort_by_key(|f| {
            f.trim_start_matches('V')
                .split("__")
                .next()
                .and_then(|v| v.parse::<u32>().ok())
        });
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("V{}__{}.sql", m.version, m.name))
            .collect();
        assert_eq!(files, listed, "pgstore/migrations/ and MIGRATIONS differ");
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "versions go 1, 2, 3, ...");
            let on_disk = std::fs::read_to_string(dir.join(&listed[i])).unwrap();
            assert_eq!(on_disk, m.sql);
        }
    }

    #[test]
    fn pending_migrations_follow_the_applied_ones() {
        assert_eq!(pending(&[], KNOWN).unwrap().len(), 2);
        assert_eq!(pending(&[applied(&KNOWN[0])], KNOWN).unwrap(), &KNOWN[1..]);
        let all = [applied(&KNOWN[0]), applied(&KNOWN[1])];
        assert!(pending(&all, KNOWN).unwrap().is_empty());
    }

    #[test]
    fn a_newer_or_different_schema_is_refused() {
        let newer = [applied(&KNOWN[0])];
        let e = pending(&newer, &KNOWN[..0]).unwrap_err();
        assert!(
            matches!(e, StoreError::SchemaTooNew { found: 1, known: 0 }),
            "{e}"
        );
        let mut changed = applied(&KNOWN[0]);
        changed.checksum = "0".repeat(64);
        let e = pending(&[changed], KNOWN).unwrap_err();
        assert!(
            matches!(e, StoreError::MigrationMismatch { version: 1, .. }),
            "{e}"
        );
        let gap = [applied(&KNOWN[1])];
        assert!(matches!(
            pending(&gap, KNOWN).unwrap_err(),
            StoreError::Damaged(_)
        ));
    }
}
