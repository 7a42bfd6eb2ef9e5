//! Reading the world's tick log in order: [`TickBus::subscribe`] and [`Subscription`].

use async_nats::jetstream;
use async_nats::jetstream::consumer::pull::{self, OrderedConfig};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use futures_util::StreamExt;
use tokio::time::timeout;

use super::{
    ACK_WAIT, Delivered, IDLE_HEARTBEAT, NATS_REQUEST_TIMEOUT, StartAt, TickBus, delivered,
    js_call, validate_durable, validate_subject_suffix,
};
use crate::error::{BoxError, NetError, Result};

impl TickBus {
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
            prefix: self.subject_prefix(),
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
                DeliverPolicy::New => Ok(DeliverPolicy::ByStartSequence {
                    start_sequence: self.last_seq().await? + 1,
                }),
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
            let delivered = delivered(
                &self.prefix,
                seq,
                message.subject.as_str(),
                message.headers.as_ref(),
                &message.payload,
            );
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
