//! Scripts: modules by content (XXH3-128 of their bytes, as in the world store) and each
//! owner's named versions, numbered 1, 2, 3, ... per (owner, name).

use xxhash_rust::xxh3::xxh3_128;

use crate::PgStore;
use crate::checks::{self, to_i64};
use crate::error::{Doing, Result, StoreError, Violation, violated};

/// One version of an owner's named script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptVersion {
    /// 1, 2, 3, ... per (owner, name).
    pub version: u32,
    pub hash: u128,
    pub uploaded_unix_s: u64,
}

/// An owner's script: its name and newest version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptListing {
    pub name: String,
    pub latest: ScriptVersion,
}

fn version_from(row: &tokio_postgres::Row, first: usize) -> Result<ScriptVersion> {
    let version: i32 = row.get(first);
    Ok(ScriptVersion {
        version: version.max(0) as u32,
        hash: hash_from(row.get(first + 1))?,
        uploaded_unix_s: checks::from_i64("uploaded_unix_s", row.get(first + 2))?,
    })
}

fn hash_from(bytes: &[u8]) -> Result<u128> {
    <[u8; 16]>::try_from(bytes)
        .map(u128::from_be_bytes)
        .map_err(|_| StoreError::Damaged(format!("a script hash of {} bytes", bytes.len())))
}

/// What an upload's transaction does after the module is stored.
const NAME_SCRIPT: [&str; 2] = [
    // The counter row is locked by the upsert, so concurrent namings queue here.
    "INSERT INTO script_names (owner, name, latest_version) VALUES ($1, $2, 1)
     ON CONFLICT (owner, name) DO UPDATE SET latest_version = script_names.latest_version + 1
     RETURNING latest_version",
    "INSERT INTO script_versions (owner, name, version, hash, uploaded_unix_s)
     VALUES ($1, $2, $3, $4, $5)",
];

impl PgStore {
    /// Stores `wasm` under its XXH3-128 hash (the same bytes twice: stored once); returns the
    /// hash.
    pub async fn put_script(&self, wasm: &[u8], now_unix_s: u64) -> Result<u128> {
        checks::size("script", wasm.len(), self.limits.max_script_bytes)?;
        let now = to_i64("time", now_unix_s)?;
        let hash = xxh3_128(wasm);
        let client = self.client("storing a script").await?;
        client
            .execute(
                "INSERT INTO script_modules (hash, wasm, stored_unix_s) VALUES ($1, $2, $3)
                 ON CONFLICT (hash) DO NOTHING",
                &[&hash.to_be_bytes().as_slice(), &wasm, &now],
            )
            .await
            .doing("storing a script")?;
        Ok(hash)
    }

    /// The module stored under `hash`, checked against its hash.
    pub async fn script(&self, hash: u128) -> Result<Option<Vec<u8>>> {
        let client = self.client("reading a script").await?;
        let Some(row) = client
            .query_opt(
                "SELECT wasm FROM script_modules WHERE hash = $1",
                &[&hash.to_be_bytes().as_slice()],
            )
            .await
            .doing("reading a script")?
        else {
            return Ok(None);
        };
        let wasm: Vec<u8> = row.get(0);
        if xxh3_128(&wasm) != hash {
            return Err(StoreError::Damaged(format!(
                "script {hash:032x} does not match its hash"
            )));
        }
        Ok(Some(wasm))
    }

    /// Records the stored module `hash` as the next version of `owner`'s script `name`;
    /// returns the version. Two gateways naming one script at once get consecutive versions.
    pub async fn name_script(
        &self,
        owner: &str,
        name: &str,
        hash: u128,
        now_unix_s: u64,
    ) -> Result<u32> {
        checks::name("owner", owner)?;
        checks::name("script name", name)?;
        let now = to_i64("time", now_unix_s)?;
        let mut client = self.client("naming a script").await?;
        let tx = client.transaction().await.doing("naming a script")?;
        let version = name_in(&tx, owner, name, hash, now).await?;
        tx.commit().await.doing("naming a script")?;
        Ok(version)
    }

    /// An upload: stores `wasm` and records it as the next version of `owner`'s `name`, in one
    /// transaction; returns (hash, version).
    pub async fn upload_script(
        &self,
        owner: &str,
        name: &str,
        wasm: &[u8],
        now_unix_s: u64,
    ) -> Result<(u128, u32)> {
        checks::name("owner", owner)?;
        checks::name("script name", name)?;
        checks::size("script", wasm.len(), self.limits.max_script_bytes)?;
        let now = to_i64("time", now_unix_s)?;
        let hash = xxh3_128(wasm);
        let mut client = self.client("uploading a script").await?;
        let tx = client.transaction().await.doing("uploading a script")?;
        tx.execute(
            "INSERT INTO script_modules (hash, wasm, stored_unix_s) VALUES ($1, $2, $3)
             ON CONFLICT (hash) DO NOTHING",
            &[&hash.to_be_bytes().as_slice(), &wasm, &now],
        )
        .await
        .doing("uploading a script")?;
        let version = name_in(&tx, owner, name, hash, now).await?;
        tx.commit().await.doing("uploading a script")?;
        Ok((hash, version))
    }

    /// The newest version of `owner`'s `name` (what an assignment flies).
    pub async fn latest_script(&self, owner: &str, name: &str) -> Result<Option<ScriptVersion>> {
        checks::name("owner", owner)?;
        checks::name("script name", name)?;
        let client = self.client("reading a script version").await?;
        let row = client
            .query_opt(
                "SELECT v.version, v.hash, v.uploaded_unix_s
                 FROM script_names n JOIN script_versions v
                   ON v.owner = n.owner AND v.name = n.name AND v.version = n.latest_version
                 WHERE n.owner = $1 AND n.name = $2",
                &[&owner, &name],
            )
            .await
            .doing("reading a script version")?;
        row.as_ref().map(|r| version_from(r, 0)).transpose()
    }

    /// Versions of `owner`'s `name`, oldest first: the newest `Limits::max_rows` of them.
    pub async fn script_versions(&self, owner: &str, name: &str) -> Result<Vec<ScriptVersion>> {
        checks::name("owner", owner)?;
        checks::name("script name", name)?;
        let client = self.client("listing script versions").await?;
        let rows = client
            .query(
                "SELECT version, hash, uploaded_unix_s FROM (
                     SELECT version, hash, uploaded_unix_s FROM script_versions
                     WHERE owner = $1 AND name = $2 ORDER BY version DESC LIMIT $3) newest
                 ORDER BY version",
                &[&owner, &name, &(self.limits.max_rows as i64)],
            )
            .await
            .doing("listing script versions")?;
        rows.iter().map(|r| version_from(r, 0)).collect()
    }

    /// `owner`'s scripts with their newest versions, by name (at most `Limits::max_rows`).
    pub async fn list_scripts(&self, owner: &str) -> Result<Vec<ScriptListing>> {
        checks::name("owner", owner)?;
        let client = self.client("listing scripts").await?;
        let rows = client
            .query(
                "SELECT n.name, v.version, v.hash, v.uploaded_unix_s
                 FROM script_names n JOIN script_versions v
                   ON v.owner = n.owner AND v.name = n.name AND v.version = n.latest_version
                 WHERE n.owner = $1 ORDER BY n.name LIMIT $2",
                &[&owner, &(self.limits.max_rows as i64)],
            )
            .await
            .doing("listing scripts")?;
        rows.iter()
            .map(|r| {
                Ok(ScriptListing {
                    name: r.get(0),
                    latest: version_from(r, 1)?,
                })
            })
            .collect()
    }
}

/// Names `hash` as the next version inside a transaction.
async fn name_in(
    tx: &deadpool_postgres::Transaction<'_>,
    owner: &str,
    name: &str,
    hash: u128,
    now: i64,
) -> Result<u32> {
    let row = tx
        .query_one(NAME_SCRIPT[0], &[&owner, &name])
        .await
        .doing("numbering a script version")
        .map_err(|e| match violated(&e) {
            Some((Violation::ForeignKey, _)) => StoreError::UnknownUser(owner.to_string()),
            _ => e,
        })?;
    let version: i32 = row.get(0);
    tx.execute(
        NAME_SCRIPT[1],
        &[
            &owner,
            &name,
            &version,
            &hash.to_be_bytes().as_slice(),
            &now,
        ],
    )
    .await
    .doing("recording a script version")
    .map_err(|e| match violated(&e) {
        Some((Violation::ForeignKey, "script_versions_hash_fkey")) => {
            StoreError::UnknownScript(hash)
        }
        _ => e,
    })?;
    Ok(version.max(0) as u32)
}
