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
//! log).
//!
//! **Timeouts.** Connecting is bounded by [`NATS_CONNECT_TIMEOUT`], every JetStream API call
//! and publish ack by [`NATS_REQUEST_TIMEOUT`], blob transfers by [`BLOB_TIMEOUT`].
//! [`Subscription::next`] waits for the next message by design; the server's idle heartbeats
//! turn a dead server into an error there (durable: every [`IDLE_HEARTBEAT`]), or, for a
//! subscription that is not durable, into its consumer made again from the last sequence
//! seen, while the client reconnects.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, OrderedConfig};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::{ConsumerInfoErrorKind, PublishErrorKind};
use async_nats::jetstream::object_store::{self, GetErrorKind, ObjectStore};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use async_nats::{Client, ConnectOptions, HeaderMap};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

use crate::error::{BoxError, NetError, Result};

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
        .await?;
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
            // It exists with another configuration (another version's limits): use it.
            Ok(Err(create)) => {
                js_call(
                    || format!("creation of object store {bucket} ({create})"),
                    NATS_REQUEST_TIMEOUT,
                    js.get_object_store(&bucket),
                )
                .await?
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

    /// Publishes `payload` on `astroboids.W.<subject_suffix>` with `msg_id` as its
    /// `Nats-Msg-Id` and waits for the stream's ack. Returns the message's stream sequence;
    /// for a duplicate id (within [`DUPLICATE_WINDOW`]) nothing is stored and the first
    /// message's sequence is returned.
    pub async fn publish(
        &self,
        subject_suffix: &str,
        msg_id: &str,
        payload: Vec<u8>,
    ) -> Result<u64> {
        validate_subject_suffix(subject_suffix, false)?;
        validate_msg_id(msg_id)?;
        let subject = self.subject(subject_suffix);
        let too_large = |size: usize, limit: usize, which: String| NetError::MessageTooLarge {
            subject: subject.clone(),
            msg_id: msg_id.to_owned(),
            size,
            limit,
            which,
        };
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(too_large(
                payload.len(),
                MAX_MESSAGE_BYTES,
                "bus::MAX_MESSAGE_BYTES".into(),
            ));
        }
        let server_max = self.client.max_payload();
        let wire = payload.len() + msg_id_header_len(msg_id.len());
        if wire > server_max {
            return Err(too_large(
                wire,
                server_max,
                format!(
                    "max_payload of nats-server at {}, payload and headers counted",
                    self.url
                ),
            ));
        }
        let failed = |source: BoxError| NetError::Publish {
            subject: subject.clone(),
            msg_id: msg_id.to_owned(),
            source,
        };
        let timed_out = || NetError::PublishAckTimeout {
            subject: subject.clone(),
            msg_id: msg_id.to_owned(),
            after: NATS_REQUEST_TIMEOUT,
        };
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        let publish = async {
            let ack = self
                .js
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await?;
            ack.await
        };
        match timeout(NATS_REQUEST_TIMEOUT, publish).await {
            Ok(Ok(ack)) => Ok(ack.sequence),
            Ok(Err(e)) => match e.kind() {
                PublishErrorKind::TimedOut => Err(timed_out()),
                PublishErrorKind::MaxPayloadExceeded => Err(too_large(
                    wire,
                    self.client.max_payload(),
                    format!("max_payload of nats-server at {}: {e}", self.url),
                )),
                _ => Err(failed(e.into())),
            },
            Err(_) => Err(timed_out()),
        }
    }

    /// Reads `astroboids.W.<subject_suffix>` in stream order from `start`, through one consumer
    /// made now. The suffix may end in a wildcard (`exchange.*`, `>`).
    ///
    /// Without `durable`: an ordered ephemeral consumer (no acks; the client re-creates it
    /// from the last sequence it saw if a message is missed); it goes when the subscription
    /// is dropped. With `durable`: a named consumer that the server keeps, acknowledged up
    /// to each message when the next one is asked for (or by [`Subscription::ack`]), so a
    /// restarted process with the same name resumes after the last message it finished
    /// (at least once: the one handed last, and after a crash maybe a few more, come again
    /// unless [`Subscription::ack`] confirmed them; skip what is at or before the sequence
    /// already applied); `start` applies only when the durable is first made. A durable name belongs to one process at a time:
    /// subscribing with it again makes its consumer anew from its acknowledged position,
    /// ending the older subscription.
    pub async fn subscribe(
        &self,
        subject_suffix: &str,
        durable: Option<&str>,
        start: StartAt,
    ) -> Result<Subscription> {
        validate_subject_suffix(subject_suffix, true)?;
        let subject = self.subject(subject_suffix);
        let deliver_policy = match start {
            StartAt::New => DeliverPolicy::New,
            StartAt::All => DeliverPolicy::All,
            StartAt::Sequence(seq) => DeliverPolicy::ByStartSequence {
                start_sequence: seq.max(1),
            },
        };
        let what = || format!("creation of a consumer on {subject}");
        let inner = match durable {
            None => {
                let config = OrderedConfig {
                    filter_subject: subject.clone(),
                    deliver_policy,
                    ..Default::default()
                };
                let consumer = js_call(
                    what,
                    NATS_REQUEST_TIMEOUT,
                    self.stream.create_consumer(config),
                )
                .await?;
                let messages = js_call(what, NATS_REQUEST_TIMEOUT, consumer.messages()).await?;
                Inner::Ordered(messages)
            }
            Some(name) => {
                validate_durable(name)?;
                let deliver_policy = self.durable_start(name, &subject, deliver_policy).await?;
                let config = pull::Config {
                    durable_name: Some(name.to_owned()),
                    description: Some(format!("AstroBoids durable reader of {subject}")),
                    filter_subject: subject.clone(),
                    deliver_policy,
                    ack_policy: AckPolicy::All,
                    ack_wait: ACK_WAIT,
                    ..Default::default()
                };
                let consumer = js_call(
                    what,
                    NATS_REQUEST_TIMEOUT,
                    self.stream.create_consumer(config),
                )
                .await?;
                let messages = js_call(
                    what,
                    NATS_REQUEST_TIMEOUT,
                    consumer.stream().heartbeat(IDLE_HEARTBEAT).messages(),
                )
                .await?;
                Inner::Durable {
                    messages,
                    unacked: None,
                }
            }
        };
        Ok(Subscription {
            prefix: format!("astroboids.{}.", self.world),
            subject,
            inner,
            last_seq: 0,
        })
    }

    /// Where durable `name` starts: after its ack floor if it exists (it is then deleted, to
    /// be made again from there), else at `start`, with `New` pinned to the stream's next
    /// sequence so that a restart before the first ack still sees what came after.
    async fn durable_start(
        &self,
        name: &str,
        subject: &str,
        start: DeliverPolicy,
    ) -> Result<DeliverPolicy> {
        let lookup = || format!("lookup of consumer {name}");
        match timeout(NATS_REQUEST_TIMEOUT, self.stream.consumer_info(name)).await {
            Ok(Ok(info)) => {
                if info.config.filter_subject != subject {
                    return Err(NetError::DurableMismatch {
                        durable: name.to_owned(),
                        existing: info.config.filter_subject,
                        wanted: subject.to_owned(),
                    });
                }
                let floor = info.ack_floor.stream_sequence;
                js_call(
                    || format!("deletion of consumer {name} (to resume it)"),
                    NATS_REQUEST_TIMEOUT,
                    self.stream.delete_consumer(name),
                )
                .await?;
                Ok(if floor > 0 {
                    DeliverPolicy::ByStartSequence {
                        start_sequence: floor + 1,
                    }
                } else {
                    info.config.deliver_policy
                })
            }
            Ok(Err(e)) if matches!(e.kind(), ConsumerInfoErrorKind::NotFound) => match start {
                DeliverPolicy::New => {
                    let info = js_call(
                        || format!("lookup of stream {}", stream_name(&self.world)),
                        NATS_REQUEST_TIMEOUT,
                        self.stream.get_info(),
                    )
                    .await?;
                    Ok(DeliverPolicy::ByStartSequence {
                        start_sequence: info.state.last_sequence + 1,
                    })
                }
                other => Ok(other),
            },
            Ok(Err(source)) => Err(NetError::JetStream {
                what: lookup(),
                source: source.into(),
            }),
            Err(_) => Err(NetError::NatsTimeout {
                what: lookup(),
                after: NATS_REQUEST_TIMEOUT,
            }),
        }
    }

    // ---- blobs ----

    /// Stores `bytes` as blob `name`, replacing any blob of that name.
    pub async fn put_blob(&self, name: &str, bytes: &[u8]) -> Result<()> {
        validate_blob_name(name)?;
        if bytes.len() > MAX_BLOB_BYTES {
            return Err(NetError::BlobTooLarge {
                name: name.to_owned(),
                size: bytes.len(),
                limit: MAX_BLOB_BYTES,
            });
        }
        let mut reader = bytes;
        let put = self.blobs.put(name, &mut reader);
        match timeout(BLOB_TIMEOUT, put).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.blob_error("put", name, e.into())),
            Err(_) => Err(self.blob_timeout("put", name)),
        }
    }

    /// The blob `name`, or `None` if there is none.
    pub async fn get_blob(&self, name: &str) -> Result<Option<Vec<u8>>> {
        validate_blob_name(name)?;
        let get = async {
            let mut object = match self.blobs.get(name).await {
                Ok(object) => object,
                Err(e) if e.kind() == GetErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(self.blob_error("get", name, e.into())),
            };
            let size = object.info().size;
            if size > MAX_BLOB_BYTES {
                return Err(NetError::BlobTooLarge {
                    name: name.to_owned(),
                    size,
                    limit: MAX_BLOB_BYTES,
                });
            }
            let mut bytes = Vec::with_capacity(size);
            object
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| self.blob_error("read", name, e.into()))?;
            Ok(Some(bytes))
        };
        timeout(BLOB_TIMEOUT, get)
            .await
            .unwrap_or_else(|_| Err(self.blob_timeout("get", name)))
    }

    /// The blobs whose names start with `prefix`, sorted by name.
    pub async fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobInfo>> {
        let list = async {
            let mut list = self
                .blobs
                .list()
                .await
                .map_err(|e| self.blob_error("list", prefix, e.into()))?;
            let mut found = Vec::new();
            while let Some(info) = list.next().await {
                let info = info.map_err(|e| self.blob_error("list", prefix, e.into()))?;
                if !info.deleted && info.name.starts_with(prefix) {
                    found.push(BlobInfo {
                        name: info.name,
                        size: info.size,
                    });
                }
            }
            found.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(found)
        };
        timeout(NATS_REQUEST_TIMEOUT, list)
            .await
            .unwrap_or_else(|_| Err(self.blob_timeout("list", prefix)))
    }

    /// Deletes blob `name`; `false` if there was none.
    pub async fn delete_blob(&self, name: &str) -> Result<bool> {
        validate_blob_name(name)?;
        let delete = async {
            match self.blobs.info(name).await {
                Ok(info) if !info.deleted => {}
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(self.blob_error("delete", name, e.into())),
            }
            self.blobs
                .delete(name)
                .await
                .map_err(|e| self.blob_error("delete", name, e.into()))?;
            Ok(true)
        };
        timeout(NATS_REQUEST_TIMEOUT, delete)
            .await
            .unwrap_or_else(|_| Err(self.blob_timeout("delete", name)))
    }

    fn subject(&self, suffix: &str) -> String {
        format!("astroboids.{}.{suffix}", self.world)
    }

    fn blob_error(&self, what: &'static str, name: &str, source: BoxError) -> NetError {
        NetError::Blob {
            bucket: self.bucket.clone(),
            what,
            name: name.to_owned(),
            source,
        }
    }

    fn blob_timeout(&self, what: &str, name: &str) -> NetError {
        NetError::NatsTimeout {
            what: format!("{what} of blob {name:?} in {}", self.bucket),
            after: if what == "put" || what == "get" {
                BLOB_TIMEOUT
            } else {
                NATS_REQUEST_TIMEOUT
            },
        }
    }
}

/// An in-order reader of one subject, from [`TickBus::subscribe`].
pub struct Subscription {
    prefix: String,
    subject: String,
    inner: Inner,
    last_seq: u64,
}

enum Inner {
    Ordered(pull::Ordered),
    Durable {
        messages: pull::Stream,
        /// Delivered to the caller, acknowledged when the next one is asked for.
        unacked: Option<jetstream::Message>,
    },
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("subject", &self.subject)
            .field("durable", &matches!(self.inner, Inner::Durable { .. }))
            .field("last_seq", &self.last_seq)
            .finish()
    }
}

impl Subscription {
    /// The full subject it reads.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The stream sequence of the last message delivered (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Acknowledges the message handed last and waits for the server to confirm it: a durable
    /// subscription made again after this starts after that message. ([`Self::next`]
    /// acknowledges it too before it reads on, but without waiting, so a crash right after
    /// may hand the last few again.) Nothing to do for a subscription that is not durable.
    pub async fn ack(&mut self) -> Result<()> {
        if let Inner::Durable { unacked, .. } = &mut self.inner
            && let Some(done) = unacked.take()
        {
            ack(&self.subject, &done, true).await?;
        }
        Ok(())
    }

    /// The next message, in stream order; waits for one (no timeout: wrap it to poll). Never
    /// goes backwards: a message at or before the last one delivered (a server redelivery) is
    /// skipped. A durable subscription first acknowledges the message delivered before.
    ///
    /// An error is not always the end: after a [`NetError::Receive`] (missed heartbeats while
    /// the server is away, say) `next` may be called again and goes on from where it was;
    /// after [`NetError::SubscriptionEnded`] nothing more comes.
    pub async fn next(&mut self) -> Result<Delivered> {
        loop {
            let received = match &mut self.inner {
                Inner::Ordered(messages) => {
                    messages.next().await.map(|r| r.map_err(BoxError::from))
                }
                Inner::Durable { messages, unacked } => {
                    if let Some(done) = unacked.take() {
                        ack(&self.subject, &done, false).await?;
                    }
                    messages.next().await.map(|r| r.map_err(BoxError::from))
                }
            };
            let message = match received {
                None => {
                    return Err(NetError::SubscriptionEnded {
                        subject: self.subject.clone(),
                    });
                }
                Some(Err(source)) => {
                    return Err(NetError::Receive {
                        subject: self.subject.clone(),
                        source,
                    });
                }
                Some(Ok(message)) => message,
            };
            let seq = message
                .info()
                .map_err(|source| NetError::Receive {
                    subject: self.subject.clone(),
                    source: format!("no JetStream metadata: {source}").into(),
                })?
                .stream_sequence;
            if seq <= self.last_seq {
                continue; // a redelivery: what it carries was delivered already
            }
            self.last_seq = seq;
            let subject = message.subject.as_str();
            let delivered = Delivered {
                seq,
                subject: subject
                    .strip_prefix(&self.prefix)
                    .unwrap_or(subject)
                    .to_owned(),
                msg_id: message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default(),
                payload: message.payload.to_vec(),
            };
            if let Inner::Durable { unacked, .. } = &mut self.inner {
                *unacked = Some(message);
            }
            return Ok(delivered);
        }
    }
}

/// Acknowledges `message` (and, with `AckPolicy::All`, every one before it), with a timeout;
/// `confirmed`: waits for the server to say it has it.
async fn ack(subject: &str, message: &jetstream::Message, confirmed: bool) -> Result<()> {
    let sent = async {
        if confirmed {
            message.double_ack().await
        } else {
            message.ack().await
        }
    };
    match timeout(NATS_REQUEST_TIMEOUT, sent).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(NetError::Receive {
            subject: subject.to_owned(),
            source: format!("ack: {source}").into(),
        }),
        Err(_) => Err(NetError::NatsTimeout {
            what: format!("ack on {subject}"),
            after: NATS_REQUEST_TIMEOUT,
        }),
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
            return Err(invalid("wildcards are for subscribing, not publishing"));
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
}
