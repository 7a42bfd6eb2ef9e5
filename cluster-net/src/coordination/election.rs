//! Leader election: [`Coordination::campaign`], and the [`Leadership`] it wins, fenced.

use std::future::Future;

use etcd_client::{
    Client, Compare, CompareOp, GetOptions, LeaderKey, ResignOptions, SortOrder, SortTarget, Txn,
    TxnOp,
};
use serde::Serialize;
use tokio::sync::watch;

use super::keys::{config_key, to_json};
use super::{
    Coordination, ETCD_REQUEST_TIMEOUT, etcd_call, lease_alive, revision_of, to_i64, wait_lost,
};
use crate::error::{NetError, Result};

impl Coordination {
    /// Campaigns for leadership of the world as `name` and waits until elected. Fails with
    /// [`NetError::LeaseLost`] if the lease is lost meanwhile. Dropping the future withdraws
    /// the candidacy (etcd deletes the candidate's key when the call is cancelled).
    pub async fn campaign(&self, name: &str) -> Result<Leadership> {
        self.check_lease()?;
        let election = self.election_name();
        let mut client = self.client.election_client();
        let response = tokio::select! {
            response = client.campaign(election.clone(), name, self.lease_id) => {
                response.map_err(|source| NetError::Etcd {
                    what: format!("campaign for {election} as {name:?}"),
                    source,
                })?
            }
            () = wait_lost(self.lost.clone()) => return Err(self.lease_lost_error()),
        };
        let key = response
            .leader()
            .cloned()
            .ok_or_else(|| NetError::EtcdUnexpected {
                what: format!("campaign for {election} as {name:?}"),
                why: "the answer holds no leader key".into(),
            })?;
        self.check_lease()?;
        let fence = u64::try_from(key.rev()).unwrap_or(0);
        Ok(Leadership {
            client: self.client.clone(),
            key,
            fence,
            name: name.to_owned(),
            config_prefix: self.config_prefix(),
            lost: self.lost.clone(),
            lease_id: self.lease_id,
            ttl_s: self.ttl_s,
        })
    }

    /// Who leads now, with its fence; `None` while nobody does.
    pub async fn leader(&self) -> Result<Option<(String, u64)>> {
        let prefix = format!("{}/", self.election_name());
        let mut kv = self.client.kv_client();
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Ascend)
            .with_limit(1);
        let response = etcd_call(
            || format!("read of the leader under {prefix}"),
            ETCD_REQUEST_TIMEOUT,
            kv.get(prefix.clone(), Some(options)),
        )
        .await?;
        Ok(response.kvs().first().map(|kv| {
            (
                String::from_utf8_lossy(kv.value()).into_owned(),
                u64::try_from(kv.create_revision()).unwrap_or(0),
            )
        }))
    }
}

/// Leadership of one world, won by [`Coordination::campaign`]. It lasts while the process's
/// lease does, until [`Self::resign`].
pub struct Leadership {
    client: Client,
    key: LeaderKey,
    fence: u64,
    name: String,
    config_prefix: String,
    lost: watch::Receiver<bool>,
    lease_id: i64,
    ttl_s: i64,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("name", &self.name)
            .field("fence", &self.fence)
            .field("key", &String::from_utf8_lossy(self.key.key()))
            .finish()
    }
}

impl Leadership {
    /// The fencing token: the election key's create revision, strictly larger for every later
    /// leader. Stamp it on what the leader sends.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// The name it campaigned as.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The election key (`astroboids/W/leader/<lease hex>`).
    pub fn key(&self) -> String {
        String::from_utf8_lossy(self.key.key()).into_owned()
    }

    /// Whether the lease holding the leadership is still renewed. When it is not, stop
    /// leading at once: a successor may be elected when the TTL runs out.
    pub fn lease_alive(&self) -> bool {
        lease_alive(&self.lost)
    }

    /// Resolves when the lease is lost.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        wait_lost(self.lost.clone())
    }

    /// Asks etcd whether this is still the leader (the election key exists with this fence).
    pub async fn is_current(&self) -> Result<bool> {
        let key = self.key.key().to_vec();
        let mut kv = self.client.kv_client();
        let response = etcd_call(
            || format!("read of the election key {}", self.key()),
            ETCD_REQUEST_TIMEOUT,
            kv.get(key, None),
        )
        .await?;
        Ok(response
            .kvs()
            .first()
            .is_some_and(|kv| u64::try_from(kv.create_revision()).ok() == Some(self.fence)))
    }

    /// [`Coordination::put_json`], fenced: written only if this is still the leader (its
    /// election key exists with this fence), in one transaction. Otherwise
    /// [`NetError::NotLeader`]. Returns the key's new mod revision.
    pub async fn put_json_if_leader<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<u64> {
        if !self.lease_alive() {
            return Err(NetError::LeaseLost {
                lease_id: self.lease_id,
                ttl_s: self.ttl_s,
            });
        }
        let full = config_key(&self.config_prefix, key)?;
        let json = to_json(&full, value)?;
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.key().to_vec(),
                CompareOp::Equal,
                to_i64(self.fence),
            )])
            .and_then([TxnOp::put(full.clone(), json, None)]);
        let mut kv = self.client.kv_client();
        let response = etcd_call(
            || format!("fenced put of {full} (fence {})", self.fence),
            ETCD_REQUEST_TIMEOUT,
            kv.txn(txn),
        )
        .await?;
        if response.succeeded() {
            Ok(revision_of(response.header()))
        } else {
            Err(NetError::NotLeader { fence: self.fence })
        }
    }

    /// Gives up the leadership: the election key is deleted and the next candidate is
    /// elected at once. The process's lease (and its shard registration) stays.
    pub async fn resign(self) -> Result<()> {
        let mut election = self.client.election_client();
        let key = self.key();
        etcd_call(
            || format!("resignation of {key}"),
            ETCD_REQUEST_TIMEOUT,
            election.resign(Some(ResignOptions::new().with_leader(self.key.clone()))),
        )
        .await?;
        Ok(())
    }
}
