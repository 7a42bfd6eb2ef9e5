//! etcd: who is alive, who leads, and the few small facts the cluster agrees on.
//!
//! Key layout, for a world `W` (everything of a world under `astroboids/W/`, so several worlds
//! share one etcd and `etcdctl get --prefix astroboids/W/` shows one world):
//!
//! | key | value | bound to the lease | why |
//! | --- | --- | --- | --- |
//! | `astroboids/W/shards/<id>` | [`ShardInfo`] as JSON | yes | a shard that dies (or hangs past its TTL) disappears by itself; the leader watches the prefix |
//! | `astroboids/W/leader/<lease hex>` | the candidate's name | yes | etcd's election API: the key with the lowest create revision leads |
//! | `astroboids/W/config/<key>` | JSON | no | the sector assignment, the last complete checkpoint tick...: outlive every process |
//!
//! **The lease.** [`Coordination::connect`] grants one lease per process and renews it in a
//! background task every TTL/3. A renewal that fails is retried until the lease would have
//! run out on the server (counted from the last renewal the server confirmed, from when its
//! request was sent, so the client never believes in a lease the server has dropped); then the
//! lease is reported lost ([`Coordination::lease_alive`], [`Coordination::lease_lost`]). A shard
//! whose lease is lost is no longer registered and must stop: the leader has noticed it gone
//! and may already have handed its sectors to another shard.
//!
//! **The fence.** A leader's fence ([`Leadership::fence`]) is the create revision of its
//! election key. etcd revisions only grow and the election picks the lowest create revision
//! among the candidates' keys, so each new leader's fence is strictly larger than every
//! earlier leader's. A leader stamps the fence on what it sends (tick starts, assignments);
//! shards and writes that have seen a larger fence refuse a smaller one, so a stale leader (one
//! paused past its TTL, still believing it leads) cannot act after its successor has. Its etcd
//! writes are fenced the same way: [`Leadership::put_json_if_leader`] writes only while its
//! election key still exists.
//!
//! **Timeouts.** Every request is bounded by [`ETCD_REQUEST_TIMEOUT`] (the first, the lease
//! grant, by [`ETCD_CONNECT_TIMEOUT`]), except the two that wait by design:
//! [`Coordination::campaign`] (until elected, or the lease is lost) and
//! [`ShardWatch::next`] (until something changes; the gRPC keep-alive pings of
//! [`GRPC_KEEP_ALIVE_INTERVAL`] turn a dead etcd into an error there).

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, LeaderKey,
    LeaseClient, LeaseKeepAliveStream, LeaseKeeper, PutOptions, ResignOptions, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions, WatchStream,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};

use crate::error::{NetError, Result};

/// How long the first request (the lease grant) may take before etcd counts as unreachable.
pub const ETCD_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long any other etcd request may take (puts, gets, transactions, one lease renewal).
pub const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest interval between lease renewals, whatever the TTL.
pub const MIN_KEEP_ALIVE_PERIOD: Duration = Duration::from_millis(100);
/// HTTP/2 pings on the etcd connection, so a watch or a campaign on a dead etcd fails instead
/// of waiting forever. Not below etcd's default `--grpc-keepalive-min-time` (5 s), which would
/// make the server close the connection for pinging too often.
pub const GRPC_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a ping may go unanswered before the connection counts as dead.
pub const GRPC_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest config key name (after `astroboids/W/config/`).
pub const MAX_CONFIG_KEY_LEN: usize = 200;

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
    pub revision: u64,
}

/// A change to the set of live shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardEvent {
    /// A shard registered, or updated its info.
    Joined {
        shard: u32,
        info: ShardInfo,
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

/// One process's connection to etcd for one world, with its lease.
///
/// Dropping it stops renewing the lease without revoking it: its keys go when the TTL runs
/// out, as when the process dies. [`Coordination::close`] revokes it for a clean exit.
pub struct Coordination {
    client: Client,
    world: String,
    lease_id: i64,
    ttl_s: i64,
    lost: watch::Receiver<bool>,
    /// Marks the lease lost when this is dropped or closed (the task's own sender goes only
    /// when the aborted task is next polled).
    lost_tx: watch::Sender<bool>,
    keep_alive: JoinHandle<()>,
}

impl std::fmt::Debug for Coordination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordination")
            .field("world", &self.world)
            .field("lease_id", &format_args!("{:x}", self.lease_id))
            .field("ttl_s", &self.ttl_s)
            .field("lease_alive", &self.lease_alive())
            .finish()
    }
}

impl Drop for Coordination {
    fn drop(&mut self) {
        self.keep_alive.abort();
        self.lost_tx.send_replace(true);
    }
}

impl Coordination {
    /// Connects to etcd, grants a lease of `lease_ttl_s` seconds (etcd may grant a longer one;
    /// [`Self::lease_ttl_s`] says what it gave) and starts renewing it.
    pub async fn connect(endpoints: &[String], world: &str, lease_ttl_s: i64) -> Result<Self> {
        crate::validate_world(world)?;
        if lease_ttl_s < 1 {
            return Err(NetError::InvalidName {
                what: "lease TTL",
                name: lease_ttl_s.to_string(),
                why: "must be at least 1 second",
            });
        }
        let unreachable = |why: String| NetError::EtcdUnreachable {
            endpoints: endpoints.to_vec(),
            why,
        };
        let options = ConnectOptions::new()
            .with_connect_timeout(ETCD_CONNECT_TIMEOUT)
            .with_keep_alive(GRPC_KEEP_ALIVE_INTERVAL, GRPC_KEEP_ALIVE_TIMEOUT);
        let client = match timeout(
            ETCD_CONNECT_TIMEOUT,
            Client::connect(endpoints, Some(options)),
        )
        .await
        {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => {
                return Err(unreachable(format!(
                    "no connection within {ETCD_CONNECT_TIMEOUT:?}"
                )));
            }
        };
        // The channel connects lazily: the grant is the first real contact.
        let mut lease = client.lease_client();
        let asked_at = Instant::now();
        let grant = match timeout(ETCD_CONNECT_TIMEOUT, lease.grant(lease_ttl_s, None)).await {
            Ok(Ok(grant)) => grant,
            Ok(Err(e)) => return Err(unreachable(format!("lease grant: {e}"))),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer to a lease grant within {ETCD_CONNECT_TIMEOUT:?}"
                )));
            }
        };
        if !grant.error().is_empty() {
            return Err(unreachable(format!("lease grant: {}", grant.error())));
        }
        let (lease_id, ttl_s) = (grant.id(), grant.ttl());
        let (lost_tx, lost) = watch::channel(false);
        let ttl = Duration::from_secs(u64::try_from(ttl_s).unwrap_or(1));
        let keep_alive = tokio::spawn(keep_lease_alive(
            lease,
            lease_id,
            ttl,
            asked_at + ttl,
            lost_tx.clone(),
        ));
        Ok(Self {
            client,
            world: world.to_owned(),
            lease_id,
            ttl_s,
            lost,
            lost_tx,
            keep_alive,
        })
    }

    pub fn world(&self) -> &str {
        &self.world
    }

    /// This process's lease (its keys are bound to it).
    pub fn lease_id(&self) -> i64 {
        self.lease_id
    }

    /// The TTL etcd granted, seconds.
    pub fn lease_ttl_s(&self) -> i64 {
        self.ttl_s
    }

    /// Whether the lease is still renewed in time.
    pub fn lease_alive(&self) -> bool {
        lease_alive(&self.lost)
    }

    /// A receiver that turns `true` (or closes) when the lease is lost, for `select!` loops.
    pub fn lease_lost_receiver(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Resolves when the lease is lost (at once if it already is).
    pub fn lease_lost(&self) -> impl Future<Output = ()> + Send + 'static {
        wait_lost(self.lost.clone())
    }

    /// `Err(LeaseLost)` once the lease is lost.
    pub fn check_lease(&self) -> Result<()> {
        if self.lease_alive() {
            Ok(())
        } else {
            Err(self.lease_lost_error())
        }
    }

    /// Stops renewing and revokes the lease: this process's keys (registration, election key)
    /// go at once instead of after the TTL.
    pub async fn close(self) -> Result<()> {
        self.keep_alive.abort();
        self.lost_tx.send_replace(true);
        let mut lease = self.client.lease_client();
        let id = self.lease_id;
        etcd_call(
            || format!("revoke of lease {id:x}"),
            ETCD_REQUEST_TIMEOUT,
            lease.revoke(id),
        )
        .await?;
        Ok(())
    }

    // ---- shards ----

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
        for kv in response.kvs() {
            if let Some(shard) = parse_shard_key(&prefix, kv.key()) {
                shards.insert(shard, from_json(kv)?);
            }
        }
        Ok(ShardSet {
            shards,
            revision: revision_of(response.header()),
        })
    }

    /// Follows the shard registrations from just after `after_revision` (0: from now).
    pub async fn watch_shards(&self, after_revision: u64) -> Result<ShardWatch> {
        let prefix = self.shards_prefix();
        let mut options = WatchOptions::new().with_prefix();
        if after_revision > 0 {
            options = options.with_start_revision(to_i64(after_revision) + 1);
        }
        let mut watch = self.client.watch_client();
        let stream = etcd_call(
            || format!("watch of {prefix}*"),
            ETCD_REQUEST_TIMEOUT,
            watch.watch(prefix.clone(), Some(options)),
        )
        .await?;
        Ok(ShardWatch {
            stream,
            prefix,
            pending: VecDeque::new(),
        })
    }

    // ---- leader election ----

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

    // ---- config keys ----

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

    // ---- names ----

    fn world_prefix(&self) -> String {
        format!("astroboids/{}/", self.world)
    }

    fn shards_prefix(&self) -> String {
        format!("{}shards/", self.world_prefix())
    }

    fn shard_key(&self, shard: u32) -> String {
        format!("{}{shard}", self.shards_prefix())
    }

    /// The election's name; etcd puts candidates' keys at `<name>/<lease hex>`.
    fn election_name(&self) -> String {
        format!("{}leader", self.world_prefix())
    }

    fn config_prefix(&self) -> String {
        format!("{}config/", self.world_prefix())
    }

    fn config_key(&self, key: &str) -> Result<String> {
        config_key(&self.config_prefix(), key)
    }

    fn lease_lost_error(&self) -> NetError {
        NetError::LeaseLost {
            lease_id: self.lease_id,
            ttl_s: self.ttl_s,
        }
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
            let ended = |why: String| NetError::WatchEnded {
                prefix: self.prefix.clone(),
                why,
            };
            let response = match self.stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return Err(ended("etcd closed the watch stream".into())),
                Err(e) => return Err(ended(e.to_string())),
            };
            if response.canceled() {
                return Err(ended(format!(
                    "cancelled by etcd ({}; compacted at revision {})",
                    response.cancel_reason(),
                    response.compact_revision()
                )));
            }
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
                        revision,
                    },
                    EventType::Delete => ShardEvent::Left { shard, revision },
                });
            }
        }
    }
}

/// Renews the lease every TTL/3 until it is lost; then says so on `lost` and ends.
///
/// `valid_until` is when the server drops the lease at the earliest, counted from when the last
/// confirmed renewal (first: the grant) was sent. A failed renewal (timeout, broken stream) is
/// retried on a new stream until then; a renewal answered with TTL 0 (the lease is gone:
/// expired or revoked) ends it at once.
async fn keep_lease_alive(
    mut lease: LeaseClient,
    id: i64,
    ttl: Duration,
    mut valid_until: Instant,
    lost: watch::Sender<bool>,
) {
    let period = (ttl / 3).max(MIN_KEEP_ALIVE_PERIOD);
    let mut channel: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
    loop {
        sleep_until((Instant::now() + period).min(valid_until)).await;
        let sent = Instant::now();
        let budget = valid_until
            .saturating_duration_since(sent)
            .min(ETCD_REQUEST_TIMEOUT);
        if budget.is_zero() {
            break;
        }
        match timeout(budget, renew(&mut lease, id, &mut channel, ttl)).await {
            Ok(Ok(Some(left))) => valid_until = sent + left,
            Ok(Ok(None)) => break,
            Ok(Err(_)) | Err(_) => channel = None,
        }
    }
    let _ = lost.send(true);
}

/// One renewal: `Some(ttl left)`, or `None` if the server says the lease is gone.
async fn renew(
    lease: &mut LeaseClient,
    id: i64,
    channel: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    granted: Duration,
) -> std::result::Result<Option<Duration>, etcd_client::Error> {
    let Some((keeper, stream)) = channel else {
        // Opening the stream sends a first renewal and reads its answer (and fails if the
        // lease is gone, which the next tries will keep saying until `valid_until`).
        *channel = Some(lease.keep_alive(id).await?);
        return Ok(Some(granted));
    };
    keeper.keep_alive().await?;
    match stream.message().await? {
        Some(answer) if answer.ttl() > 0 => Ok(Some(Duration::from_secs(
            u64::try_from(answer.ttl()).unwrap_or(0),
        ))),
        Some(_) => Ok(None),
        None => Err(etcd_client::Error::LeaseKeepAliveError(
            "the keep-alive stream closed".into(),
        )),
    }
}

fn lease_alive(lost: &watch::Receiver<bool>) -> bool {
    !*lost.borrow()
}

async fn wait_lost(mut lost: watch::Receiver<bool>) {
    let _ = lost.wait_for(|lost| *lost).await;
}

async fn etcd_call<T>(
    what: impl FnOnce() -> String,
    after: Duration,
    call: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> Result<T> {
    match timeout(after, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(NetError::Etcd {
            what: what(),
            source,
        }),
        Err(_) => Err(NetError::EtcdTimeout {
            what: what(),
            after,
        }),
    }
}

fn config_key(prefix: &str, key: &str) -> Result<String> {
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

fn parse_shard_key(prefix: &str, key: &[u8]) -> Option<u32> {
    std::str::from_utf8(key)
        .ok()?
        .strip_prefix(prefix)?
        .parse()
        .ok()
}

fn to_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| NetError::Json {
        key: key.to_owned(),
        source,
    })
}

fn from_json<T: DeserializeOwned>(kv: &KeyValue) -> Result<T> {
    serde_json::from_slice(kv.value()).map_err(|source| NetError::Json {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        source,
    })
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> u64 {
    header.map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0))
}

fn to_i64(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
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

    #[test]
    fn shard_keys() {
        let p = "astroboids/w/shards/";
        assert_eq!(parse_shard_key(p, b"astroboids/w/shards/17"), Some(17));
        assert_eq!(parse_shard_key(p, b"astroboids/w/shards/x"), None);
        assert_eq!(parse_shard_key(p, b"astroboids/v/shards/1"), None);
    }
}
