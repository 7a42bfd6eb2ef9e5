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
//! grant, by [`ETCD_CONNECT_TIMEOUT`]), except those that wait by design:
//! [`Coordination::campaign`] (until elected, or the lease is lost), [`ShardWatch::next`] and
//! [`KeyWatch::next`] (until something changes; the gRPC keep-alive pings of
//! [`GRPC_KEEP_ALIVE_INTERVAL`] turn a dead etcd into an error there).
//!
//! **Watching.** [`Coordination::watch_shards`] follows the shard registrations and
//! [`Coordination::watch_json`] one config key, each from just after a revision, in etcd's
//! order: read, then watch from the revision the read gave, and nothing in between is missed
//! (each says which revision to pass).
//!
//! The code, by concern: this file connects, keeps the lease and holds the key names; `shards`
//! registers and watches shards; `election` campaigns and leads ([`Leadership`]); `keys` reads,
//! writes (compare-and-swap included) and watches the JSON config keys.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, WatchOptions, WatchResponse, WatchStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use crate::error::{NetError, Result};

mod election;
mod gateways;
mod keys;
mod lease;
mod shards;

pub use election::Leadership;
pub use gateways::GatewayInfo;
pub use keys::{CasOutcome, KeyChange, KeyWatch, Versioned};
pub use shards::{ShardEvent, ShardInfo, ShardSet, ShardWatch};

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
        let keep_alive = tokio::spawn(lease::keep_lease_alive(
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
        keys::config_key(&self.config_prefix(), key)
    }

    /// Opens a watch on `key` (with `prefix`: on every key under it) from just after
    /// `after_revision` (0: from now). `what` names it in errors (`<prefix>*` for a prefix).
    async fn open_watch(
        &self,
        key: &str,
        prefix: bool,
        after_revision: u64,
    ) -> Result<WatchStream> {
        let mut options = WatchOptions::new();
        if prefix {
            options = options.with_prefix();
        }
        if after_revision > 0 {
            options = options.with_start_revision(to_i64(after_revision) + 1);
        }
        let mut watch = self.client.watch_client();
        etcd_call(
            || format!("watch of {key}{}", if prefix { "*" } else { "" }),
            ETCD_REQUEST_TIMEOUT,
            watch.watch(key, Some(options)),
        )
        .await
    }

    fn lease_lost_error(&self) -> NetError {
        NetError::LeaseLost {
            lease_id: self.lease_id,
            ttl_s: self.ttl_s,
        }
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

/// The next answer on a watch of `watched` (a key, or a prefix); an error, ending the watch,
/// once etcd closes the stream, fails, or cancels the watch (its start revision compacted).
async fn next_watch_response(stream: &mut WatchStream, watched: &str) -> Result<WatchResponse> {
    let ended = |why: String| NetError::WatchEnded {
        prefix: watched.to_owned(),
        why,
    };
    let response = match stream.message().await {
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
    Ok(response)
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> u64 {
    header.map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0))
}

fn to_i64(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}
