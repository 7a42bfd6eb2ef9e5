//! The world's persistent store: an embedded sled database in a data directory, with a schema
//! version, holding scripts (content-addressed, with each owner's named versions), world
//! checkpoints and the write-ahead input log.
//!
//! Payloads (checkpoints, inputs) are opaque bytes here: the sim encodes them. What this layer
//! guarantees is that a directory is recognised as ours (a foreign or newer one is refused with
//! a clear error, never reset), that everything it returns is what was written (checksums and
//! content hashes are verified on read), that a checkpoint and its "latest" marker change
//! together, and that `flush` makes everything written so far durable.
//!
//! Architecture invariant: storage knows nothing of ships, sectors or scripts' meaning; it
//! stores bytes under keys. Accounts and sessions are two more trees of opaque records.
//!
//! Code map: this file opens and checks a store and keeps its world markers; `accounts`,
//! `scripts` and `world_log` (the input log and checkpoints) each add their trees' methods.

mod accounts;
mod scripts;
mod world_log;

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_128;

/// The layout this build reads and writes. Bump it (and add a migration) when a tree's keys or
/// values change meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// Marks a sled database as an AstroBoids world.
const FORMAT: &[u8] = b"astroboids-world";

const META_FORMAT: &[u8] = b"format";
const META_SCHEMA: &[u8] = b"schema_version";
const META_LATEST_CHECKPOINT: &[u8] = b"latest_checkpoint";
const META_NEXT_INPUT_SEQ: &[u8] = b"next_input_seq";
const META_WORLD_INFO: &[u8] = b"world_info";
const META_TICK_REACHED: &[u8] = b"tick_reached";

/// Size limits on what the store accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLimits {
    pub max_script_bytes: usize,
    pub max_input_bytes: usize,
    pub max_checkpoint_bytes: usize,
    /// Owner and script names: 1 to this many bytes of `[A-Za-z0-9_.-]`.
    pub max_name_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_script_bytes: 256 * 1024,
            max_input_bytes: 64 * 1024,
            max_checkpoint_bytes: 1 << 30,
            max_name_bytes: 64,
        }
    }
}

/// What went wrong, naming the data directory.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: not an AstroBoids data directory: {reason}")]
    Foreign { path: PathBuf, reason: String },
    #[error(
        "{path}: the data has schema version {found}; this build reads version {supported}{hint}"
    )]
    SchemaVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
        hint: &'static str,
    },
    #[error("{path}: corrupt data: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("{path}: storage error: {error}")]
    Sled { path: PathBuf, error: sled::Error },
    #[error("{what} is {bytes} bytes; the limit is {limit}")]
    TooLarge {
        what: &'static str,
        bytes: usize,
        limit: usize,
    },
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("no script {0:032x} in the store")]
    UnknownScript(u128),
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// One version of an owner's named script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptVersion {
    /// 1, 2, 3, ... per (owner, name).
    pub version: u32,
    pub hash: u128,
}

/// An accepted input, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedInput {
    pub tick: u64,
    /// Global order of acceptance.
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// A world store in a data directory.
pub struct WorldStore {
    path: PathBuf,
    limits: StoreLimits,
    db: sled::Db,
    meta: sled::Tree,
    scripts: sled::Tree,
    script_names: sled::Tree,
    inputs: sled::Tree,
    checkpoints: sled::Tree,
    accounts: sled::Tree,
    sessions: sled::Tree,
}

impl std::fmt::Debug for WorldStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Files sled keeps at the top of its directory; a non-empty directory without them is not a
/// store of ours.
const SLED_FILES: [&str; 2] = ["conf", "db"];

impl WorldStore {
    /// Opens the store in `dir`, creating it when `dir` is missing or empty.
    pub fn open(dir: &Path, limits: StoreLimits) -> Result<Self> {
        let path = dir.to_path_buf();
        let is_new = match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(StorageError::Foreign {
                    path,
                    reason: "it is a file, not a directory".into(),
                });
            }
            Err(e) => {
                return Err(StorageError::Foreign {
                    path,
                    reason: format!("cannot read it ({e})"),
                });
            }
        };
        if !is_new && !SLED_FILES.iter().all(|f| dir.join(f).is_file()) {
            return Err(StorageError::Foreign {
                path,
                reason: "it holds other files; use an empty or new directory".into(),
            });
        }
        let db = sled::Config::new().path(dir).open().map_err(|e| match e {
            sled::Error::Corruption { .. } | sled::Error::Unsupported(_) => StorageError::Corrupt {
                path: path.clone(),
                what: e.to_string(),
            },
            other => StorageError::Sled {
                path: path.clone(),
                error: other,
            },
        })?;
        let tree = |name: &str| {
            db.open_tree(name).map_err(|error| StorageError::Sled {
                path: path.clone(),
                error,
            })
        };
        let store = Self {
            meta: tree("meta")?,
            scripts: tree("scripts")?,
            script_names: tree("script_names")?,
            inputs: tree("inputs")?,
            checkpoints: tree("checkpoints")?,
            accounts: tree("accounts")?,
            sessions: tree("sessions")?,
            db,
            limits,
            path,
        };
        if is_new {
            store
                .meta
                .insert(META_FORMAT, FORMAT)
                .map_err(|e| store.sled(e))?;
            store
                .meta
                .insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())
                .map_err(|e| store.sled(e))?;
            store.flush()?;
        } else {
            store.check_identity()?;
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_identity(&self) -> Result<()> {
        match self.meta.get(META_FORMAT).map_err(|e| self.sled(e))? {
            Some(format) if format.as_ref() == FORMAT => {}
            _ => {
                return Err(StorageError::Foreign {
                    path: self.path.clone(),
                    reason: "a sled database, but not an AstroBoids world".into(),
                });
            }
        }
        let found = self
            .meta
            .get(META_SCHEMA)
            .map_err(|e| self.sled(e))?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| self.corrupt("the schema version is missing or malformed"))?;
        if found != SCHEMA_VERSION {
            return Err(StorageError::SchemaVersion {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
                hint: if found > SCHEMA_VERSION {
                    " (written by a newer build: upgrade astroboids)"
                } else {
                    " (no migration from that version exists)"
                },
            });
        }
        Ok(())
    }

    /// Makes everything written so far durable. Inputs count as acknowledged only after this.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| self.sled(e))
    }

    // --- world description -----------------------------------------------------------------

    /// Stores what the world is (the host's encoding: seed, configuration), checksummed.
    pub fn put_world_info(&self, payload: &[u8]) -> Result<()> {
        check_size("world info", payload.len(), self.limits.max_input_bytes)?;
        let mut record = xxh3_128(payload).to_be_bytes().to_vec();
        record.extend_from_slice(payload);
        self.meta
            .insert(META_WORLD_INFO, record)
            .map(|_| ())
            .map_err(|e| self.sled(e))
    }

    /// The world description, verified against its checksum; `None` before the first put.
    pub fn world_info(&self) -> Result<Option<Vec<u8>>> {
        let Some(record) = self.meta.get(META_WORLD_INFO).map_err(|e| self.sled(e))? else {
            return Ok(None);
        };
        if record.len() < 16 {
            return Err(self.corrupt("the world description is truncated"));
        }
        let (checksum, payload) = record.split_at(16);
        if u128::from_be_bytes(checksum.try_into().expect("16 bytes")) != xxh3_128(payload) {
            return Err(self.corrupt("the world description fails its checksum"));
        }
        Ok(Some(payload.to_vec()))
    }

    /// Notes the last tick the world ran. Not flushed by itself: after a crash it may be
    /// older than the truth, which only means re-running a few ticks on restart.
    pub fn note_tick_reached(&self, tick: u64) -> Result<()> {
        self.meta
            .insert(META_TICK_REACHED, &tick.to_be_bytes())
            .map(|_| ())
            .map_err(|e| self.sled(e))
    }

    /// The last tick noted by [`Self::note_tick_reached`], if any.
    pub fn tick_reached(&self) -> Result<Option<u64>> {
        let Some(v) = self.meta.get(META_TICK_REACHED).map_err(|e| self.sled(e))? else {
            return Ok(None);
        };
        <[u8; 8]>::try_from(v.as_ref())
            .map(|b| Some(u64::from_be_bytes(b)))
            .map_err(|_| self.corrupt("the tick-reached marker is malformed"))
    }

    // --- helpers ---------------------------------------------------------------------------

    fn sled(&self, error: sled::Error) -> StorageError {
        StorageError::Sled {
            path: self.path.clone(),
            error,
        }
    }

    fn corrupt(&self, what: &str) -> StorageError {
        StorageError::Corrupt {
            path: self.path.clone(),
            what: what.to_string(),
        }
    }

    fn check_name(&self, what: &'static str, value: &str) -> Result<()> {
        let reason = if value.is_empty() {
            Some("it is empty".to_string())
        } else if value.len() > self.limits.max_name_bytes {
            Some(format!(
                "it is {} bytes; the limit is {}",
                value.len(),
                self.limits.max_name_bytes
            ))
        } else {
            value
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
                .map(|c| format!("{c:?} is not allowed (use letters, digits, _ . -)"))
        };
        match reason {
            Some(reason) => Err(StorageError::InvalidName {
                what,
                value: value.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }
}

fn check_size(what: &'static str, bytes: usize, limit: usize) -> Result<()> {
    if bytes > limit {
        return Err(StorageError::TooLarge { what, bytes, limit });
    }
    Ok(())
}
