//! The one error type of the transport: each variant names what failed and where (the server's
//! URL, the key, the subject, the blob), so a shard's log line says what to look at without a
//! backtrace. Timeouts are their own variants: every await that talks to a server is bounded
//! by a named constant of [`crate::coordination`] or [`crate::bus`], and the error says which
//! call gave up after how long.

use std::time::Duration;

/// A boxed error from a client library (async-nats' errors are generic over a kind enum; a box
/// keeps this enum independent of their exact types).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`NetError`].
pub type Result<T, E = NetError> = std::result::Result<T, E>;

/// What failed in the cluster's transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A world name that cannot be a NATS subject token, stream, bucket and etcd key segment.
    #[error(
        "invalid world name {world:?}: use 1 to {max} characters of A-Z, a-z, 0-9, '_' and '-'",
        max = crate::MAX_WORLD_NAME_LEN
    )]
    InvalidWorld { world: String },

    /// A name given to the API (subject suffix, durable name, config key, blob name) is not
    /// usable.
    #[error("invalid {what} {name:?}: {why}")]
    InvalidName {
        what: &'static str,
        name: String,
        why: &'static str,
    },

    // ---- etcd ----
    /// etcd did not answer the first request (the lease grant) at any of the endpoints.
    #[error("cannot reach etcd at {endpoints:?}: {why}")]
    EtcdUnreachable { endpoints: Vec<String>, why: String },

    /// An etcd request failed.
    #[error("etcd {what} failed: {source}")]
    Etcd {
        what: String,
        #[source]
        source: etcd_client::Error,
    },

    /// An etcd request got no answer in time.
    #[error("etcd {what} timed out after {after:?}")]
    EtcdTimeout { what: String, after: Duration },

    /// etcd answered, but not as its API promises.
    #[error("etcd {what}: unexpected answer: {why}")]
    EtcdUnexpected { what: String, why: String },

    /// This process's lease was not renewed within its TTL (or was revoked): every key bound
    /// to it (its shard registration, its election key) is gone, and so is any leadership.
    #[error(
        "the etcd lease {lease_id:x} is lost (not renewed within its {ttl_s} s TTL, or revoked): \
         this process's registration and leadership are gone"
    )]
    LeaseLost { lease_id: i64, ttl_s: i64 },

    /// Another live process holds this shard id (its key is bound to another lease).
    #[error(
        "shard {shard} is already registered by another process (lease {holder_lease:x}): {holder}"
    )]
    ShardIdTaken {
        shard: u32,
        holder_lease: i64,
        holder: String,
    },

    /// A leader-only write was refused: the election key with this fence no longer exists, so
    /// another leader may have been elected since.
    #[error("not the leader any more: the election key with fence {fence} is gone")]
    NotLeader { fence: u64 },

    /// An etcd watch stopped (etcd went away, or the start revision was compacted).
    #[error("etcd watch on {prefix} ended: {why}")]
    WatchEnded { prefix: String, why: String },

    /// A value under a key is not the JSON expected (or a value could not be encoded).
    #[error("JSON at etcd key {key}: {source}")]
    Json {
        key: String,
        #[source]
        source: serde_json::Error,
    },

    // ---- NATS ----
    /// nats-server did not accept a connection.
    #[error("cannot reach nats-server at {url}: {source}")]
    NatsUnreachable {
        url: String,
        #[source]
        source: BoxError,
    },

    /// A JetStream API call (stream, consumer or bucket management) failed.
    #[error("JetStream {what} failed: {source}")]
    JetStream {
        what: String,
        #[source]
        source: BoxError,
    },

    /// The server has too little JetStream storage left for a world's stream or blob bucket.
    /// JetStream reserves a stream's whole byte limit when the stream is made, however little
    /// it then holds.
    #[error(
        "nats-server at {url} has too little JetStream storage left for {what}, which reserves \
         {reserved_bytes} bytes of it: raise `max_file_store` in the server's `jetstream` block \
         (left unset, it is 75% of the disk that was free when the server started) or free disk \
         where the server keeps its store"
    )]
    JetStreamStorageFull {
        url: String,
        what: String,
        reserved_bytes: i64,
    },

    /// A JetStream API call got no answer in time.
    #[error("JetStream {what} timed out after {after:?}")]
    NatsTimeout { what: String, after: Duration },

    /// A message is over a size limit: the bus's own [`crate::bus::MAX_MESSAGE_BYTES`] or the
    /// connected server's `max_payload`, whichever is smaller.
    #[error(
        "message {msg_id:?} on {subject} is {size} bytes, over the limit of {limit} bytes ({which})"
    )]
    MessageTooLarge {
        subject: String,
        msg_id: String,
        size: usize,
        limit: usize,
        which: String,
    },

    /// The stream did not acknowledge a publish in time: it may or may not be stored;
    /// publishing again with the same message id is safe (deduplicated).
    #[error(
        "publish of {msg_id:?} on {subject} was not acknowledged within {after:?} \
         (publish it again with the same id: duplicates are dropped)"
    )]
    PublishAckTimeout {
        subject: String,
        msg_id: String,
        after: Duration,
    },

    /// A publish was refused or could not be sent.
    #[error("publish of {msg_id:?} on {subject} failed: {source}")]
    Publish {
        subject: String,
        msg_id: String,
        #[source]
        source: BoxError,
    },

    /// A durable consumer of this name exists with another filter subject.
    #[error("durable consumer {durable} exists on subject {existing}, not {wanted}")]
    DurableMismatch {
        durable: String,
        existing: String,
        wanted: String,
    },

    /// Receiving from a subscription failed.
    #[error("receiving on {subject}: {source}")]
    Receive {
        subject: String,
        #[source]
        source: BoxError,
    },

    /// The subscription's message stream ended (the connection closed).
    #[error("the subscription on {subject} ended")]
    SubscriptionEnded { subject: String },

    /// A blob over [`crate::bus::MAX_BLOB_BYTES`].
    #[error("blob {name:?} is {size} bytes, over the limit of {limit} bytes (bus::MAX_BLOB_BYTES)")]
    BlobTooLarge {
        name: String,
        size: usize,
        limit: usize,
    },

    /// An object store operation failed.
    #[error("blob store {bucket}: {what} {name:?} failed: {source}")]
    Blob {
        bucket: String,
        what: &'static str,
        name: String,
        #[source]
        source: BoxError,
    },
}
