//! Shard registration (bound to the process's lease) and the watch on the live shards.

use std::collections::{BTreeMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchStream,
};
use serde::{Deserialize, Serialize};

use super::keys::{from_json, to_json};
use super::{Coordination, ETCD_REQUEST_TIMEOUT, etcd_call, next_watch_response, revision_of};
use crate::error::{NetError, Result};

/// What a shard says about itself when it registers (JSON in its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// The shard process's id on its host.
    pub pid: u32,
    /// The host it runs on (`$HOSTNAME`, or `/etc/hostname`).
    pub host: String,
    /// When the process started, Unix milliseconds: tells a restarted shard from the old one.
    pub started_at_unix_ms: u64,
    /// The version of the binary (a leader can refuse shards of another build).
    #[serde(default)]
    pub version: String,
}

impl ShardInfo {
    /// This process: its pid, host, the current time and this crate's version.
    pub fn this_process() -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            pid: std::process::id(),
            host,
            started_at_unix_ms: unix_ms_now(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The live shards at one etcd revision: watch from `revision` to miss nothing after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSet {
    pub shards: BTreeMap<u32, ShardInfo>,
    /// The lease each shard's key is bound to: its process's (one lease per process), so a
    /// process registered anew under an id holds another.
    pub leases: BTreeMap<u32, i64>,
    pub revision: u64,
}

/// A change to the set of live shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardEvent {
    /// A shard registered, or updated its info.
    Joined {
        shard: u32,
        info: ShardInfo,
        /// The lease its key is bound to (another than before: another process).
        lease: i64,
        revision: u64,
    },
    /// A shard's key went: its lease expired or was revoked, or it deregistered.
    Left { shard: u32, revision: u64 },
}

impl ShardEvent {
    pub fn shard(&self) -> u32 {
        match self {
            Self::Joined { shard, .. } | Self::Left { shard, .. } => *shard,
        }
    }

    pub fn revision(&self) -> u64 {
        match self {
            Self::Joined { revision, .. } | Self::Left { revision, .. } => *revision,
        }
    }
}

impl Coordination {
    /// Registers `shard_id` with `info`, bound to this process's lease. Refused with
    /// [`NetError::ShardIdTaken`] while another live process holds the id; registering again
    /// from the same process updates the info.
    pub async fn register_shard(&self, shard_id: u32, info: &ShardInfo) -> Result<()> {
        self.check_lease()?;
        let key = self.shard_key(shard_id);
        let value = to_json(&key, info)?;
        let put = || {
            TxnOp::put(
                key.clone(),
                value.clone(),
                Some(PutOptions::new().with_lease(self.lease_id)),
            )
        };
        // Absent: create it. Present and ours: update it. Otherwise: read who holds it.
        let ours = Txn::new()
            .when([Compare::lease(key.clone(), CompareOp::Equal, self.lease_id)])
            .and_then([put()]);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([put()])
            .or_else([TxnOp::txn(ours), TxnOp::get(key.clone(), None)]);
        let mut kv = self.client.kv_client();
        let response = etcd_call(
            || format!("registration of shard {shard_id} at {key}"),
            ETCD_REQUEST_TIMEOUT,
            kv.txn(txn),
        )
        .await?;
        if response.succeeded() {
            return Ok(());
        }
        let responses = response.op_responses();
        let nested_ok = matches!(responses.first(), Some(TxnOpResponse::Txn(t)) if t.succeeded());
        if nested_ok {
            return Ok(());
        }
        match responses.get(1) {
            Some(TxnOpResponse::Get(get)) if !get.kvs().is_empty() => {
                let holder = &get.kvs()[0];
                Err(NetError::ShardIdTaken {
                    shard: shard_id,
                    holder_lease: holder.lease(),
                    holder: String::from_utf8_lossy(holder.value()).into_owned(),
                })
            }
            // One transaction: the key existed for the first compare, so the read sees it.
            _ => Err(NetError::EtcdUnexpected {
                what: format!("registration of shard {shard_id} at {key}"),
                why: "the transaction failed but read no holder".into(),
            }),
        }
    }

    /// Removes this process's registration of `shard_id` (only if it is this process's).
    pub async fn deregister_shard(&self, shard_id: u32) -> Result<()> {
        let key = self.shard_key(shard_id);
        let txn = Txn::new()
            .when([Compare::lease(key.clone(), CompareOp::Equal, self.lease_id)])
            .and_then([TxnOp::delete(key.clone(), None)]);
        let mut kv = self.client.kv_client();
        etcd_call(
            || format!("deregistration of shard {shard_id} at {key}"),
            ETCD_REQUEST_TIMEOUT,
            kv.txn(txn),
        )
        .await?;
        Ok(())
    }

    /// The registered shards.
    pub async fn live_shards(&self) -> Result<BTreeMap<u32, ShardInfo>> {
        Ok(self.shards().await?.shards)
    }

    /// The registered shards with the revision they were read at; pass the revision to
    /// [`Self::watch_shards`] to follow every change after it.
    pub async fn shards(&self) -> Result<ShardSet> {
        let prefix = self.shards_prefix();
        let mut kv = self.client.kv_client();
        let response = etcd_call(
            || format!("read of {prefix}*"),
            ETCD_REQUEST_TIMEOUT,
            kv.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
        )
        .await?;
        let mut shards = BTreeMap::new();
        let mut leases = BTreeMap::new();
        for kv in response.kvs() {
            if let Some(shard) = parse_shard_key(&prefix, kv.key()) {
                shards.insert(shard, from_json(kv)?);
                leases.insert(shard, kv.lease());
            }
        }
        Ok(ShardSet {
            shards,
            leases,
            revision: revision_of(response.header()),
        })
    }

    /// Follows the shard registrations from just after `after_revision` (0: from now).
    pub async fn watch_shards(&self, after_revision: u64) -> Result<ShardWatch> {
        let prefix = self.shards_prefix();
        let stream = self.open_watch(&prefix, true, after_revision).await?;
        Ok(ShardWatch {
            stream,
            prefix,
            pending: VecDeque::new(),
        })
    }
}

/// Changes to the set of live shards, in etcd's order, from [`Coordination::watch_shards`].
pub struct ShardWatch {
    stream: WatchStream,
    prefix: String,
    pending: VecDeque<ShardEvent>,
}

impl std::fmt::Debug for ShardWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardWatch")
            .field("prefix", &self.prefix)
            .field("pending", &self.pending)
            .finish()
    }
}

impl ShardWatch {
    /// The next change; waits until there is one (no timeout: wrap it in one to poll). An
    /// error ends the watch: read [`Coordination::shards`] and watch again from its revision.
    pub async fn next(&mut self) -> Result<ShardEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let response = next_watch_response(&mut self.stream, &self.prefix).await?;
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let Some(shard) = parse_shard_key(&self.prefix, kv.key()) else {
                    continue;
                };
                let revision = u64::try_from(kv.mod_revision()).unwrap_or(0);
                self.pending.push_back(match event.event_type() {
                    EventType::Put => ShardEvent::Joined {
                        shard,
                        info: from_json(kv)?,
                        lease: kv.lease(),
                        revision,
                    },
                    EventType::Delete => ShardEvent::Left { shard, revision },
                });
            }
        }
    }
}

fn parse_shard_key(prefix: &str, key: &[u8]) -> Option<u32> {
    std::str::from_utf8(key)
        .ok()?
        .strip_prefix(prefix)?
        .parse()
        .ok()
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_keys() {
        let p = "astroboids/w/shards/";
        assert_eq!(parse_shard_key(p, b"astroboids/w/shards/17"), Some(17));
        assert_eq!(parse_shard_key(p, b"astroboids/w/shards/x"), None);
        assert_eq!(parse_shard_key(p, b"astroboids/v/shards/1"), None);
    }
}
