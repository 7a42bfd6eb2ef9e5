//! The world's config keys (`astroboids/W/config/<key>`): JSON values, written plainly or by
//! compare-and-swap, read, and watched.

use std::collections::VecDeque;
use std::marker::PhantomData;

use etcd_client::{
    Compare, CompareOp, EventType, KeyValue, Txn, TxnOp, TxnOpResponse, WatchStream,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    Coordination, ETCD_REQUEST_TIMEOUT, MAX_CONFIG_KEY_LEN, etcd_call, next_watch_response,
    revision_of, to_i64,
};
use crate::error::{NetError, Result};

/// A config value with the revision it was last written at (for
/// [`Coordination::put_json_if_revision`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub mod_revision: u64,
}

/// What a compare-and-swap did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// Written; the key's new mod revision.
    Written { revision: u64 },
    /// Not written: the key's mod revision was not the expected one. `current_revision` is
    /// what it is (0: the key does not exist).
    Stale { current_revision: u64 },
}

impl Coordination {
    /// Writes `value` as JSON at `astroboids/W/config/<key>`; returns its new mod revision.
    pub async fn put_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<u64> {
        let full = self.config_key(key)?;
        let json = to_json(&full, value)?;
        let mut kv = self.client.kv_client();
        let response = etcd_call(
            || format!("put of {full}"),
            ETCD_REQUEST_TIMEOUT,
            kv.put(full.clone(), json, None),
        )
        .await?;
        Ok(revision_of(response.header()))
    }

    /// Reads the JSON at `astroboids/W/config/<key>`; `None` if there is none.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>> {
        let full = self.config_key(key)?;
        let mut kv = self.client.kv_client();
        let response = etcd_call(
            || format!("get of {full}"),
            ETCD_REQUEST_TIMEOUT,
            kv.get(full.clone(), None),
        )
        .await?;
        response
            .kvs()
            .first()
            .map(|kv| {
                Ok(Versioned {
                    value: from_json(kv)?,
                    mod_revision: u64::try_from(kv.mod_revision()).unwrap_or(0),
                })
            })
            .transpose()
    }

    /// Writes `value` only if the key's mod revision is `expected_mod_revision` (0: only if the
    /// key does not exist), in one etcd transaction.
    pub async fn put_json_if_revision<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        expected_mod_revision: u64,
    ) -> Result<CasOutcome> {
        let full = self.config_key(key)?;
        let json = to_json(&full, value)?;
        let txn = Txn::new()
            .when([Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                to_i64(expected_mod_revision),
            )])
            .and_then([TxnOp::put(full.clone(), json, None)])
            .or_else([TxnOp::get(full.clone(), None)]);
        let mut kv = self.client.kv_client();
        let response = etcd_call(
            || format!("compare-and-swap of {full} at revision {expected_mod_revision}"),
            ETCD_REQUEST_TIMEOUT,
            kv.txn(txn),
        )
        .await?;
        if response.succeeded() {
            return Ok(CasOutcome::Written {
                revision: revision_of(response.header()),
            });
        }
        let current_revision = match response.op_responses().first() {
            Some(TxnOpResponse::Get(get)) => get
                .kvs()
                .first()
                .map_or(0, |kv| u64::try_from(kv.mod_revision()).unwrap_or(0)),
            _ => 0,
        };
        Ok(CasOutcome::Stale { current_revision })
    }

    /// Follows `astroboids/W/config/<key>` from just after `after_revision` (0: from now):
    /// every put (by [`Self::put_json`], a compare-and-swap, a leader's fenced put...) and
    /// delete, in etcd's order.
    ///
    /// To miss nothing after a read, pass the [`Versioned::mod_revision`] read: no change to the
    /// key lies between it and the read. A key read absent has no revision to pass: watch from
    /// now first, then read it (a change may then come both ways; its revision tells).
    pub async fn watch_json<T: DeserializeOwned>(
        &self,
        key: &str,
        after_revision: u64,
    ) -> Result<KeyWatch<T>> {
        let full = self.config_key(key)?;
        let stream = self.open_watch(&full, false, after_revision).await?;
        Ok(KeyWatch {
            stream,
            key: full,
            pending: VecDeque::new(),
            value: PhantomData,
        })
    }
}

/// A change to one config key, from [`KeyWatch::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange<T> {
    /// Written (made or replaced): the new value, with the revision it was written at.
    Put(Versioned<T>),
    /// Deleted, at `revision`.
    Deleted { revision: u64 },
}

impl<T> KeyChange<T> {
    /// The revision of the change: watch again from it to go on after it.
    pub fn revision(&self) -> u64 {
        match self {
            Self::Put(versioned) => versioned.mod_revision,
            Self::Deleted { revision } => *revision,
        }
    }
}

/// Changes to one config key, in etcd's order, from [`Coordination::watch_json`].
pub struct KeyWatch<T> {
    stream: WatchStream,
    /// The full key, `astroboids/W/config/<key>`.
    key: String,
    /// Received, not handed yet: decoded only when handed, so that a value that does not
    /// decode is one error and the changes after it still come.
    pending: VecDeque<RawChange>,
    /// The watch hands out `T`s and holds none (`fn() -> T`: `Send` and `Sync` whatever `T`).
    value: PhantomData<fn() -> T>,
}

enum RawChange {
    Put { json: Vec<u8>, revision: u64 },
    Deleted { revision: u64 },
}

impl<T> std::fmt::Debug for KeyWatch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyWatch")
            .field("key", &self.key)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl<T> KeyWatch<T> {
    /// The full key watched (`astroboids/W/config/<key>`).
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl<T: DeserializeOwned> KeyWatch<T> {
    /// The next change; waits until there is one (no timeout: wrap it in one to poll).
    ///
    /// A value that does not decode as `T` is a [`NetError::Json`] naming the key; the watch
    /// goes on after it (call `next` again for the change after). Any other error
    /// ([`NetError::WatchEnded`]: etcd went away, or the start revision was compacted) ends
    /// the watch: read the key with [`Coordination::get_json`] and watch again from its
    /// revision.
    pub async fn next(&mut self) -> Result<KeyChange<T>> {
        loop {
            match self.pending.pop_front() {
                Some(RawChange::Put { json, revision }) => {
                    return Ok(KeyChange::Put(Versioned {
                        value: decode(&self.key, &json)?,
                        mod_revision: revision,
                    }));
                }
                Some(RawChange::Deleted { revision }) => {
                    return Ok(KeyChange::Deleted { revision });
                }
                None => {}
            }
            let response = next_watch_response(&mut self.stream, &self.key).await?;
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                if kv.key() != self.key.as_bytes() {
                    continue; // a watch on one key sees only it; this is a guard, not a filter
                }
                // A delete's key-value carries the revision of the delete.
                let revision = u64::try_from(kv.mod_revision()).unwrap_or(0);
                self.pending.push_back(match event.event_type() {
                    EventType::Put => RawChange::Put {
                        json: kv.value().to_vec(),
                        revision,
                    },
                    EventType::Delete => RawChange::Deleted { revision },
                });
            }
        }
    }
}

pub(super) fn config_key(prefix: &str, key: &str) -> Result<String> {
    let ok = !key.is_empty()
        && key.len() <= MAX_CONFIG_KEY_LEN
        && !key.starts_with('/')
        && !key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b));
    if ok {
        Ok(format!("{prefix}{key}"))
    } else {
        Err(NetError::InvalidName {
            what: "config key",
            name: key.to_owned(),
            why: "use up to 200 characters of A-Z a-z 0-9 _ - . in '/'-separated non-empty parts",
        })
    }
}

pub(super) fn to_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| NetError::Json {
        key: key.to_owned(),
        source,
    })
}

pub(super) fn from_json<T: DeserializeOwned>(kv: &KeyValue) -> Result<T> {
    decode(&String::from_utf8_lossy(kv.key()), kv.value())
}

fn decode<T: DeserializeOwned>(key: &str, json: &[u8]) -> Result<T> {
    serde_json::from_slice(json).map_err(|source| NetError::Json {
        key: key.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys() {
        let p = "astroboids/w/config/";
        assert_eq!(
            config_key(p, "assignment").unwrap(),
            "astroboids/w/config/assignment"
        );
        assert_eq!(
            config_key(p, "checkpoint/last-tick").unwrap(),
            "astroboids/w/config/checkpoint/last-tick"
        );
        for bad in ["", "/a", "a//b", "a/../b", "a b", "a/", &"k".repeat(201)] {
            assert!(config_key(p, bad).is_err(), "{bad:?}");
        }
    }
}
