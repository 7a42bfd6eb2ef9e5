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
//! stores bytes under keys. Accounts join later as another tree.

use std::path::{Path, PathBuf};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
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

    // --- accounts and sessions -------------------------------------------------------------

    /// Stores `record` as `user`'s account unless the name is taken; returns whether it was
    /// stored. Atomic: two registrations of one name cannot both succeed.
    pub fn create_account(&self, user: &str, record: &[u8]) -> Result<bool> {
        self.check_name("user name", user)?;
        check_size("account record", record.len(), self.limits.max_input_bytes)?;
        let swapped = self
            .accounts
            .compare_and_swap(user.as_bytes(), None as Option<&[u8]>, Some(record))
            .map_err(|e| self.sled(e))?;
        Ok(swapped.is_ok())
    }

    /// Replaces an existing account's record.
    pub fn update_account(&self, user: &str, record: &[u8]) -> Result<()> {
        self.check_name("user name", user)?;
        check_size("account record", record.len(), self.limits.max_input_bytes)?;
        self.accounts
            .insert(user.as_bytes(), record)
            .map(|_| ())
            .map_err(|e| self.sled(e))
    }

    pub fn account(&self, user: &str) -> Result<Option<Vec<u8>>> {
        self.accounts
            .get(user.as_bytes())
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.sled(e))
    }

    /// Every account, in name order.
    pub fn accounts(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.accounts
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(|e| self.sled(e))?;
                let name = String::from_utf8(key.to_vec())
                    .map_err(|_| self.corrupt("an account name is not UTF-8"))?;
                Ok((name, value.to_vec()))
            })
            .collect()
    }

    /// Stores a session under `key` (the host's digest of the token; tokens themselves are
    /// never stored).
    pub fn put_session(&self, key: &[u8], record: &[u8]) -> Result<()> {
        check_size("session record", record.len(), self.limits.max_input_bytes)?;
        self.sessions
            .insert(key, record)
            .map(|_| ())
            .map_err(|e| self.sled(e))
    }

    pub fn session(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.sessions
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.sled(e))
    }

    pub fn remove_session(&self, key: &[u8]) -> Result<()> {
        self.sessions
            .remove(key)
            .map(|_| ())
            .map_err(|e| self.sled(e))
    }

    /// Every session as (key, record), for expiry sweeps and revocation.
    pub fn sessions(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.sessions
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(|e| self.sled(e))?;
                Ok((key.to_vec(), value.to_vec()))
            })
            .collect()
    }

    // --- scripts ---------------------------------------------------------------------------

    /// Stores `wasm` under its XXH3-128 hash (storing the same bytes twice is a no-op).
    pub fn put_script(&self, wasm: &[u8]) -> Result<u128> {
        check_size("script", wasm.len(), self.limits.max_script_bytes)?;
        let hash = xxh3_128(wasm);
        self.scripts
            .insert(hash.to_be_bytes(), wasm)
            .map_err(|e| self.sled(e))?;
        Ok(hash)
    }

    /// The module stored under `hash`, checked against its hash.
    pub fn script(&self, hash: u128) -> Result<Option<Vec<u8>>> {
        let Some(bytes) = self
            .scripts
            .get(hash.to_be_bytes())
            .map_err(|e| self.sled(e))?
        else {
            return Ok(None);
        };
        if xxh3_128(&bytes) != hash {
            return Err(self.corrupt(&format!("script {hash:032x} does not match its hash")));
        }
        Ok(Some(bytes.to_vec()))
    }

    /// Records `hash` as the next version of `owner`'s script `name`; returns the version.
    pub fn name_script(&self, owner: &str, name: &str, hash: u128) -> Result<u32> {
        self.check_name("owner", owner)?;
        self.check_name("script name", name)?;
        if !self
            .scripts
            .contains_key(hash.to_be_bytes())
            .map_err(|e| self.sled(e))?
        {
            return Err(StorageError::UnknownScript(hash));
        }
        let prefix = name_prefix(owner, name);
        // The version count lives under `owner/name` (no trailing slash), beside the versions.
        let count_key = &prefix[..prefix.len() - 1];
        let result = self.script_names.transaction(|names| {
            let version = names
                .get(count_key)?
                .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
                .map_or(0, u32::from_be_bytes)
                + 1;
            names.insert(count_key, &version.to_be_bytes())?;
            names.insert(version_key(&prefix, version), &hash.to_be_bytes())?;
            Ok::<_, ConflictableTransactionError<()>>(version)
        });
        result.map_err(|e| match e {
            TransactionError::Storage(e) => self.sled(e),
            TransactionError::Abort(()) => self.corrupt("naming a script was aborted"),
        })
    }

    /// The names of `owner`'s scripts, in order.
    pub fn script_names(&self, owner: &str) -> Result<Vec<String>> {
        self.check_name("owner", owner)?;
        let prefix = format!("{owner}/");
        let mut names = Vec::new();
        for entry in self.script_names.scan_prefix(prefix.as_bytes()).keys() {
            let key = entry.map_err(|e| self.sled(e))?;
            let rest = &key[prefix.len()..];
            // Count keys are `owner/name`; version keys continue with `/` and the version.
            if !rest.contains(&b'/') {
                names.push(
                    String::from_utf8(rest.to_vec())
                        .map_err(|_| self.corrupt("a script name is not UTF-8"))?,
                );
            }
        }
        Ok(names)
    }

    /// Every version of `owner`'s script `name`, oldest first.
    pub fn script_versions(&self, owner: &str, name: &str) -> Result<Vec<ScriptVersion>> {
        self.check_name("owner", owner)?;
        self.check_name("script name", name)?;
        let prefix = name_prefix(owner, name);
        self.script_names
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, value) = entry.map_err(|e| self.sled(e))?;
                let version = key[prefix.len()..]
                    .try_into()
                    .map(u32::from_be_bytes)
                    .map_err(|_| self.corrupt("a script version key is malformed"))?;
                let hash = value
                    .as_ref()
                    .try_into()
                    .map(u128::from_be_bytes)
                    .map_err(|_| self.corrupt("a script version value is malformed"))?;
                Ok(ScriptVersion { version, hash })
            })
            .collect()
    }

    // --- input log -------------------------------------------------------------------------

    /// Appends an accepted input for `tick`; returns its sequence number. Durable (and so
    /// acknowledged) after the next [`Self::flush`].
    pub fn append_input(&self, tick: u64, payload: &[u8]) -> Result<u64> {
        check_size("input", payload.len(), self.limits.max_input_bytes)?;
        let result = (&self.inputs, &self.meta).transaction(|(inputs, meta)| {
            let seq = meta
                .get(META_NEXT_INPUT_SEQ)?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map_or(0, u64::from_be_bytes);
            meta.insert(META_NEXT_INPUT_SEQ, &(seq + 1).to_be_bytes())?;
            inputs.insert(&input_key(tick, seq)[..], payload)?;
            Ok::<_, ConflictableTransactionError<()>>(seq)
        });
        result.map_err(|e| match e {
            TransactionError::Storage(e) => self.sled(e),
            TransactionError::Abort(()) => self.corrupt("appending an input was aborted"),
        })
    }

    /// Appends the inputs accepted for `tick`, in order, in one transaction: after a crash
    /// either all of them are in the log or none. Returns the first one's sequence number.
    pub fn append_inputs(&self, tick: u64, payloads: &[Vec<u8>]) -> Result<u64> {
        for payload in payloads {
            check_size("input", payload.len(), self.limits.max_input_bytes)?;
        }
        let result = (&self.inputs, &self.meta).transaction(|(inputs, meta)| {
            let first = meta
                .get(META_NEXT_INPUT_SEQ)?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map_or(0, u64::from_be_bytes);
            for (seq, payload) in (first..).zip(payloads) {
                inputs.insert(&input_key(tick, seq)[..], payload.as_slice())?;
            }
            meta.insert(
                META_NEXT_INPUT_SEQ,
                &(first + payloads.len() as u64).to_be_bytes(),
            )?;
            Ok::<_, ConflictableTransactionError<()>>(first)
        });
        result.map_err(|e| match e {
            TransactionError::Storage(e) => self.sled(e),
            TransactionError::Abort(()) => self.corrupt("appending inputs was aborted"),
        })
    }

    /// Logged inputs for ticks `>= from_tick`, in (tick, acceptance) order.
    pub fn inputs_from(&self, from_tick: u64) -> Result<Vec<LoggedInput>> {
        self.inputs
            .range(input_key(from_tick, 0)..)
            .map(|entry| {
                let (key, payload) = entry.map_err(|e| self.sled(e))?;
                let key: [u8; 16] = key
                    .as_ref()
                    .try_into()
                    .map_err(|_| self.corrupt("an input key is malformed"))?;
                let (tick, seq) = key.split_at(8);
                Ok(LoggedInput {
                    tick: u64::from_be_bytes(tick.try_into().expect("8 bytes")),
                    seq: u64::from_be_bytes(seq.try_into().expect("8 bytes")),
                    payload: payload.to_vec(),
                })
            })
            .collect()
    }

    // --- checkpoints -----------------------------------------------------------------------

    /// Stores the checkpoint taken after `tick` and makes it the latest, atomically: a crash
    /// leaves either the previous latest checkpoint or this one.
    pub fn put_checkpoint(&self, tick: u64, payload: &[u8]) -> Result<()> {
        check_size(
            "checkpoint",
            payload.len(),
            self.limits.max_checkpoint_bytes,
        )?;
        let mut record = Vec::with_capacity(payload.len() + 16);
        record.extend_from_slice(&xxh3_128(payload).to_be_bytes());
        record.extend_from_slice(payload);
        let result = (&self.checkpoints, &self.meta).transaction(|(checkpoints, meta)| {
            checkpoints.insert(&tick.to_be_bytes(), record.as_slice())?;
            meta.insert(META_LATEST_CHECKPOINT, &tick.to_be_bytes())?;
            Ok::<_, ConflictableTransactionError<()>>(())
        });
        result.map_err(|e| match e {
            TransactionError::Storage(e) => self.sled(e),
            TransactionError::Abort(()) => self.corrupt("writing a checkpoint was aborted"),
        })
    }

    /// The latest checkpoint as (tick, payload), verified against its checksum.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let Some(tick) = self
            .meta
            .get(META_LATEST_CHECKPOINT)
            .map_err(|e| self.sled(e))?
        else {
            return Ok(None);
        };
        let tick = <[u8; 8]>::try_from(tick.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| self.corrupt("the latest-checkpoint marker is malformed"))?;
        let record = self
            .checkpoints
            .get(tick.to_be_bytes())
            .map_err(|e| self.sled(e))?
            .ok_or_else(|| {
                self.corrupt(&format!("the latest checkpoint (tick {tick}) is missing"))
            })?;
        if record.len() < 16 {
            return Err(self.corrupt(&format!("checkpoint {tick} is truncated")));
        }
        let (checksum, payload) = record.split_at(16);
        if u128::from_be_bytes(checksum.try_into().expect("16 bytes")) != xxh3_128(payload) {
            return Err(self.corrupt(&format!("checkpoint {tick} fails its checksum")));
        }
        Ok(Some((tick, payload.to_vec())))
    }

    /// Drops checkpoints older than `tick` and inputs for ticks up to and including `tick`: a
    /// restart from the checkpoint at `tick` needs neither.
    pub fn prune_through(&self, tick: u64) -> Result<()> {
        for key in self.checkpoints.range(..tick.to_be_bytes()).keys() {
            let key = key.map_err(|e| self.sled(e))?;
            self.checkpoints.remove(key).map_err(|e| self.sled(e))?;
        }
        let end = input_key(tick.saturating_add(1), 0);
        for key in self.inputs.range(..end).keys() {
            let key = key.map_err(|e| self.sled(e))?;
            self.inputs.remove(key).map_err(|e| self.sled(e))?;
        }
        Ok(())
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

/// `owner/name/`: names are restricted to `[A-Za-z0-9_.-]`, so `/` separates unambiguously.
fn name_prefix(owner: &str, name: &str) -> Vec<u8> {
    format!("{owner}/{name}/").into_bytes()
}

fn version_key(prefix: &[u8], version: u32) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// Big-endian (tick, seq): sled's byte order is log order.
fn input_key(tick: u64, seq: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&tick.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}
