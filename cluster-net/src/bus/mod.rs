//! NATS JetStream: the world's tick log and its blobs.
//!
//! Layout, for a world `W`:
//!
//! | what | name | notes |
//! | --- | --- | --- |
//! | subjects | `astroboids.W.<suffix>` | the caller picks suffixes (`tick`, `exchange.3`, `done`...) |
//! | stream | `ASTROBOIDS_W` over `astroboids.W.>` | file storage, [`DUPLICATE_WINDOW`], [`MAX_STREAM_BYTES`], [`MAX_STREAM_AGE`], messages up to [`MAX_MESSAGE_BYTES`] |
//! | object store | bucket `astroboids-W-blobs` | checkpoints and scripts, each up to [`MAX_BLOB_BYTES`], [`MAX_BLOB_STORE_BYTES`] in all |
//!
//! **One stream per world, many subjects.** Every message of a world has one sequence number
//! in one log, so a restarting shard re-reads exactly what it missed: it subscribes with
//! [`StartAt::Sequence`] from the sequence after its checkpoint. A subscription reads one
//! subject (or a wildcard of them) of that log, in stream order, through one consumer made
//! once: nothing is created per message.
//!
//! **Message ids.** [`TickBus::publish`] sends every message with a `Nats-Msg-Id` header, and the
//! stream drops a second message with an id it has seen within [`DUPLICATE_WINDOW`] (the
//! publish is acknowledged with the first one's sequence). So a publisher that did not get its
//! ack (a timeout, a reconnect, a restarted leader re-sending its last tick) simply publishes
//! again with the same id: redelivery is harmless. Ids should name what the message is, e.g.
//! `tick-1200-start` or `tick-1200-exchange-3`, never a random nonce.
//!
//! **Limits.** A message larger than [`MAX_MESSAGE_BYTES`] (handoffs carry script memory) or
//! than the connected server's `max_payload` (nats-server's default is 1 MiB; set
//! `max_payload: 8MB` in its config to carry full-size handoffs) is refused before it is sent,
//! with both sizes in the error. The stream keeps at most [`MAX_STREAM_BYTES`] and
//! [`MAX_STREAM_AGE`] of log, dropping the oldest first: enough to replay from the last
//! checkpoint, which is far more recent (checkpoints live in the object store, not in the
//! log). The stream and the bucket reserve their whole limits in the server's JetStream
//! storage when they are made; a server with less left (its `max_file_store`, by default 75%
//! of the disk free when it started) refuses the world with
//! [`NetError::JetStreamStorageFull`], which names what to change.
//!
//! **Timeouts.** Connecting is bounded by [`NATS_CONNECT_TIMEOUT`], every JetStream API call
//! and publish ack by [`NATS_REQUEST_TIMEOUT`], blob transfers by [`BLOB_TIMEOUT`].
//! [`Subscription::next`] waits for the next message by design; the server's idle heartbeats
//! turn a dead server into an error there (durable: every [`IDLE_HEARTBEAT`]), or, for a
//! subscription that is not durable, into its consumer made again from the last sequence
//! seen, while the client reconnects.
//!
//! **Reading the log's end.** [`TickBus::last_message`] reads the last message the stream
//! holds on one subject (the last tick start, say, for a new leader that must go on from it),
//! and [`TickBus::last_seq`] the stream's last sequence, both asked of the server at the call.
//!
//! The code, by concern: this file connects (making the stream and bucket) and holds the
//! names and limits; `publish` writes the log and reads its end; `subscription` reads it in
//! order; `blobs` is the object store.

use std::time::Duration;

use async_nats::jetstream::context::{CreateStreamError, CreateStreamErrorKind};
use async_nats::jetstream::object_store::{self, ObjectStore};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::jetstream::{self, Context, ErrorCode};
use async_nats::{Client, ConnectOptions, HeaderMap};
use tokio::time::timeout;

use crate::error::{BoxError, NetError, Result};

mod blobs;
mod live;

pub use live::{LiveMessage, LiveSubscription};
mod publish;
mod subscription;

pub use subscription::Subscription;

/// How long connecting to nats-server may take.
pub const NATS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a JetStream API call (stream, consumer, bucket management) or a publish ack may
/// take.
pub const NATS_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long storing or fetching one blob may take (up to [`MAX_BLOB_BYTES`] of chunks).
pub const BLOB_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest message payload: a handoff carries a ship's script memory (wasm pages), so
/// this is generous. The connected server's `max_payload` may be lower (see the module docs).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// Room for headers on top of [`MAX_MESSAGE_BYTES`] in the stream's per-message limit (the
/// server counts headers and payload together).
pub const MAX_HEADER_BYTES: usize = 4 * 1024;
/// The longest message id.
pub const MAX_MSG_ID_LEN: usize = 256;
/// How long the stream remembers message ids to drop duplicates: longer than any retry of a
/// publish (a leader restarting and re-sending its last tick included).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(5 * 60);
/// The most log a world's stream keeps; the oldest messages go first.
pub const MAX_STREAM_BYTES: i64 = 4 * 1024 * 1024 * 1024;
/// The oldest message a world's stream keeps. Replays start at the last checkpoint, minutes
/// old; a day leaves room for a cluster stopped overnight.
pub const MAX_STREAM_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// The largest blob (a checkpoint or a script).
pub const MAX_BLOB_BYTES: usize = 256 * 1024 * 1024;
/// The most the blob bucket of a world holds.
pub const MAX_BLOB_STORE_BYTES: i64 = 4 * 1024 * 1024 * 1024;
/// How long a durable subscription's delivered message may stay unacknowledged before the
/// server sends it again (a redelivery is dropped by [`Subscription::next`], which never goes
/// backwards).
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// The server's heartbeat to an idle subscription; missing two of them is an error.
pub const IDLE_HEARTBEAT: Duration = Duration::from_secs(5);
/// The longest durable consumer name.
pub const MAX_DURABLE_NAME_LEN: usize = 64;
/// The longest blob name.
pub const MAX_BLOB_NAME_LEN: usize = 255;

/// Where a new subscription starts reading its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Only messages published after it is made.
    New,
    /// Every message the stream still holds.
    All,
    /// The first message at or after this stream sequence (0 reads as 1).
    Sequence(u64),
}

/// One message received on a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Its sequence in the world's stream.
    pub seq: u64,
    /// The subject suffix it was published on (after `astroboids.W.`).
    pub subject: String,
    /// Its `Nats-Msg-Id` (empty if the publisher gave none; [`TickBus::publish`] always does).
    pub msg_id: String,
    pub payload: Vec<u8>,
}

/// A stored blob's name and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub name: String,
    pub size: usize,
}

/// One process's connection to a world's stream and blob bucket. Cheap to clone.
#[derive(Clone)]
pub struct TickBus {
    client: Client,
    js: Context,
    url: String,
    world: String,
    stream: stream::Stream,
    blobs: ObjectStore,
    bucket: String,
}

impl std::fmt::Debug for TickBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TickBus")
            .field("url", &self.url)
            .field("world", &self.world)
            .field("stream", &stream_name(&self.world))
            .field("bucket", &self.bucket)
            .finish()
    }
}
impl TickBus {
    /// Connects to nats-server at `url` and makes (if absent) the world's stream and blob
    /// bucket; an existing stream is brought to this version's limits.
    pub async fn connect(url: &str, world: &str) -> Result<Self> {
        crate::validate_world(world)?;
        let unreachable = |source: BoxError| NetError::NatsUnreachable {
            url: url.to_owned(),
            source,
        };
        let options = ConnectOptions::new()
            .name(format!("astroboids-{world}-{}", std::process::id()))
            .connection_timeout(NATS_CONNECT_TIMEOUT)
            .request_timeout(Some(NATS_REQUEST_TIMEOUT));
        let client = match timeout(NATS_CONNECT_TIMEOUT, options.connect(url)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(unreachable(e.into())),
            Err(_) => {
                return Err(unreachable(
                    format!("no connection within {NATS_CONNECT_TIMEOUT:?}").into(),
                ));
            }
        };
        let js = jetstream::ContextBuilder::new()
            .timeout(NATS_REQUEST_TIMEOUT)
            .build(client.clone());

        let name = stream_name(world);
        let config = stream::Config {
            name: name.clone(),
            description: Some(format!("AstroBoids world {world}: the tick log")),
            subjects: vec![format!("astroboids.{world}.>")],
            storage: StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            max_bytes: MAX_STREAM_BYTES,
            max_age: MAX_STREAM_AGE,
            max_message_size: i32::try_from(MAX_MESSAGE_BYTES + MAX_HEADER_BYTES)
                .unwrap_or(i32::MAX),
            discard: DiscardPolicy::Old,
            ..Default::default()
        };
        let what = || format!("creation of stream {name}");
        js_call(
            what,
            NATS_REQUEST_TIMEOUT,
            js.create_or_update_stream(config),
        )
        .await
        .map_err(|e| storage_full_named(e, url, format!("stream {name}"), MAX_STREAM_BYTES))?;
        let stream = js_call(
            || format!("lookup of stream {name}"),
            NATS_REQUEST_TIMEOUT,
            js.get_stream(&name),
        )
        .await?;

        let bucket = format!("astroboids-{world}-blobs");
        let blob_config = object_store::Config {
            bucket: bucket.clone(),
            description: Some(format!("AstroBoids world {world}: checkpoints and scripts")),
            max_bytes: MAX_BLOB_STORE_BYTES,
            storage: StorageType::File,
            ..Default::default()
        };
        let blobs = match timeout(NATS_REQUEST_TIMEOUT, js.create_object_store(blob_config)).await {
            Ok(Ok(blobs)) => blobs,
            // It exists with another configuration (another version's limits, or the server
            // refusing to reserve them again when it is full): use it.
            Ok(Err(create)) => {
                let storage_full = is_storage_full(&create);
                js_call(
                    || format!("creation of object store {bucket} ({create})"),
                    NATS_REQUEST_TIMEOUT,
                    js.get_object_store(&bucket),
                )
                .await
                .map_err(|e| {
                    if storage_full {
                        NetError::JetStreamStorageFull {
                            url: url.to_owned(),
                            what: format!("object store {bucket}"),
                            reserved_bytes: MAX_BLOB_STORE_BYTES,
                        }
                    } else {
                        e
                    }
                })?
            }
            Err(_) => {
                return Err(NetError::NatsTimeout {
                    what: format!("creation of object store {bucket}"),
                    after: NATS_REQUEST_TIMEOUT,
                });
            }
        };
        Ok(Self {
            client,
            js,
            url: url.to_owned(),
            world: world.to_owned(),
            stream,
            blobs,
            bucket,
        })
    }

    pub fn world(&self) -> &str {
        &self.world
    }

    /// The largest payload a message can carry on this connection: [`MAX_MESSAGE_BYTES`], or
    /// less if the server's `max_payload` is lower (less the room for the message id).
    pub fn max_payload(&self) -> usize {
        let server = self.client.max_payload();
        MAX_MESSAGE_BYTES.min(server.saturating_sub(msg_id_header_len(MAX_MSG_ID_LEN)))
    }

    /// `astroboids.W.`: what every subject of the world starts with.
    fn subject_prefix(&self) -> String {
        format!("astroboids.{}.", self.world)
    }

    fn subject(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.subject_prefix())
    }
}

/// `ASTROBOIDS_<world>`: the world name as it is (see the crate docs on world names).
pub fn stream_name(world: &str) -> String {
    format!("ASTROBOIDS_{world}")
}

/// Bytes the `Nats-Msg-Id` header adds to a message on the wire.
fn msg_id_header_len(id_len: usize) -> usize {
    "NATS/1.0\r\n".len() + "Nats-Msg-Id: ".len() + id_len + "\r\n\r\n".len()
}

async fn js_call<T, E>(
    what: impl FnOnce() -> String,
    after: Duration,
    call: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match timeout(after, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(NetError::JetStream {
            what: what(),
            source: source.into(),
        }),
        Err(_) => Err(NetError::NatsTimeout {
            what: what(),
            after,
        }),
    }
}

/// `error` as [`NetError::JetStreamStorageFull`] if it is the server refusing to reserve
/// `reserved_bytes` for `what`; otherwise unchanged.
fn storage_full_named(error: NetError, url: &str, what: String, reserved_bytes: i64) -> NetError {
    match error {
        NetError::JetStream { source, .. } if is_storage_full(source.as_ref()) => {
            NetError::JetStreamStorageFull {
                url: url.to_owned(),
                what,
                reserved_bytes,
            }
        }
        other => other,
    }
}

/// Whether `error`, or an error it wraps, is JetStream's answer that it has too little storage
/// left to make a stream (an object store is a stream too).
fn is_storage_full(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(create) = error.downcast_ref::<CreateStreamError>()
            && let CreateStreamErrorKind::JetStream(answer) = create.kind()
            && answer.error_code() == ErrorCode::STORAGE_RESOURCES_EXCEEDED
        {
            return true;
        }
        next = error.source();
    }
    false
}

/// A message read from the stream as the API hands it: its subject without the world's
/// `prefix` (`astroboids.W.`), its `Nats-Msg-Id` (empty if it has none).
fn delivered(
    prefix: &str,
    seq: u64,
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Delivered {
    Delivered {
        seq,
        subject: subject.strip_prefix(prefix).unwrap_or(subject).to_owned(),
        msg_id: headers
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        payload: payload.to_vec(),
    }
}

/// Dot-separated tokens of `A-Z a-z 0-9 _ -`; with `wildcards`, a token may be `*` and the last
/// may be `>`.
fn validate_subject_suffix(suffix: &str, wildcards: bool) -> Result<()> {
    let invalid = |why| NetError::InvalidName {
        what: "subject suffix",
        name: suffix.to_owned(),
        why,
    };
    let tokens: Vec<&str> = suffix.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        let wildcard = *token == "*" || (*token == ">" && i + 1 == tokens.len());
        if wildcard && !wildcards {
            return Err(invalid(
                "wildcards are for subscribing only: this names one subject",
            ));
        }
        if !wildcard && !crate::is_name(token, 128) {
            return Err(invalid(
                "use '.'-separated non-empty tokens of A-Z a-z 0-9 _ - (up to 128 each)",
            ));
        }
    }
    Ok(())
}

fn validate_msg_id(id: &str) -> Result<()> {
    if !id.is_empty() && id.len() <= MAX_MSG_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(NetError::InvalidName {
            what: "message id",
            name: id.to_owned(),
            why: "use 1 to 256 printable ASCII characters without spaces",
        })
    }
}

fn validate_durable(name: &str) -> Result<()> {
    if crate::is_name(name, MAX_DURABLE_NAME_LEN) {
        Ok(())
    } else {
        Err(NetError::InvalidName {
            what: "durable consumer name",
            name: name.to_owned(),
            why: "use 1 to 64 characters of A-Z a-z 0-9 _ -",
        })
    }
}

/// What the object store accepts: `- / _ = . A-Z a-z 0-9`, not starting or ending with `.`.
fn validate_blob_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_BLOB_NAME_LEN
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidName {
            what: "blob name",
            name: name.to_owned(),
            why: "use 1 to 255 characters of A-Z a-z 0-9 - / _ = . (not starting or ending with '.')",
        })
    }
}
#[cfg(test)]
mod tests {
    use async_nats::jetstream::context::{CreateKeyValueErrorKind, CreateObjectStoreError};

    use super::*;

    #[test]
    fn subject_suffixes() {
        for ok in ["tick", "exchange.3", "a-b.c_d"] {
            validate_subject_suffix(ok, false).unwrap();
        }
        for ok in ["exchange.*", ">", "a.>"] {
            validate_subject_suffix(ok, true).unwrap();
            assert!(validate_subject_suffix(ok, false).is_err(), "{ok}");
        }
        for bad in ["", ".", "a.", ".a", "a..b", "a b", "a.>.b", "é"] {
            assert!(validate_subject_suffix(bad, true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_and_names() {
        validate_msg_id("tick-12-start").unwrap();
        assert!(validate_msg_id("").is_err());
        assert!(validate_msg_id("a b").is_err());
        assert!(validate_msg_id(&"x".repeat(MAX_MSG_ID_LEN + 1)).is_err());
        validate_blob_name("checkpoints/000120.ckpt").unwrap();
        for bad in ["", ".a", "a.", "a b", "a:b"] {
            assert!(validate_blob_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(stream_name("alpha-1"), "ASTROBOIDS_alpha-1");
        assert_eq!(msg_id_header_len(3), 10 + 13 + 3 + 4);
    }

    /// The server's answer as the client hands it back, for a stream and for an object store
    /// (which wraps the stream's error).
    fn refused(err_code: u64) -> (CreateStreamError, CreateObjectStoreError) {
        let answer = || -> jetstream::Error {
            serde_json::from_str(&format!(
                r#"{{"code":500,"err_code":{err_code},"description":"refused"}}"#
            ))
            .unwrap()
        };
        let stream = CreateStreamError::new(CreateStreamErrorKind::JetStream(answer()));
        let bucket = CreateObjectStoreError::with_source(
            CreateKeyValueErrorKind::BucketCreate,
            CreateStreamError::new(CreateStreamErrorKind::JetStream(answer())),
        );
        (stream, bucket)
    }

    #[test]
    fn a_server_short_of_storage_is_told_apart_and_named_with_the_reservation() {
        let (stream, bucket) = refused(ErrorCode::STORAGE_RESOURCES_EXCEEDED.0);
        assert!(is_storage_full(&stream));
        assert!(is_storage_full(&bucket));
        let (stream, bucket) = refused(ErrorCode::STREAM_NOT_FOUND.0);
        assert!(!is_storage_full(&stream));
        assert!(!is_storage_full(&bucket));

        let (stream, _) = refused(ErrorCode::STORAGE_RESOURCES_EXCEEDED.0);
        let failed = NetError::JetStream {
            what: "creation of stream ASTROBOIDS_w".into(),
            source: stream.into(),
        };
        let named = storage_full_named(
            failed,
            "nats://127.0.0.1:4222",
            "stream ASTROBOIDS_w".into(),
            MAX_STREAM_BYTES,
        );
        let text = named.to_string();
        for part in [
            "nats://127.0.0.1:4222",
            "stream ASTROBOIDS_w",
            &MAX_STREAM_BYTES.to_string(),
            "max_file_store",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
        // Other failures keep their own error.
        let (other, _) = refused(ErrorCode::STREAM_NOT_FOUND.0);
        let failed = NetError::JetStream {
            what: "creation of stream ASTROBOIDS_w".into(),
            source: other.into(),
        };
        let kept = storage_full_named(failed, "u", "stream".into(), 1);
        assert!(matches!(kept, NetError::JetStream { .. }), "{kept}");
    }
}
