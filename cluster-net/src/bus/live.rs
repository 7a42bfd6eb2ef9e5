//! Live messages: plain NATS subjects outside the world's stream, for what is worth nothing a
//! moment later and must not fill the log (players' view pieces each tick) or is a question
//! with an answer (a gateway asking a shard about a ship). Nothing here is stored, ordered
//! with the log, or redelivered: a subscriber that is away misses it, which is what their
//! users want (the next tick's pieces replace a lost one; a query that gets no answer in time
//! is asked again or answered with an error).
//!
//! Subjects are `astroboids-live.W.<suffix>`, so the world's stream (`astroboids.W.>`) never
//! captures them.

use std::time::Duration;

use async_nats::Subscriber;
use futures_util::StreamExt;
use tokio::time::timeout;

use super::{MAX_MESSAGE_BYTES, TickBus, validate_subject_suffix};
use crate::error::{NetError, Result};

/// A live message as a subscriber gets it.
#[derive(Debug)]
pub struct LiveMessage {
    /// The subject suffix (after `astroboids-live.W.`).
    pub subject: String,
    pub payload: Vec<u8>,
    /// Where an answer goes, for a request.
    pub reply: Option<String>,
}

/// A subscription to live subjects.
#[derive(Debug)]
pub struct LiveSubscription {
    prefix: String,
    subject: String,
    subscriber: Subscriber,
}

impl LiveSubscription {
    /// The next message; an error when the connection is closed for good.
    pub async fn next(&mut self) -> Result<LiveMessage> {
        let message = self
            .subscriber
            .next()
            .await
            .ok_or_else(|| NetError::SubscriptionEnded {
                subject: self.subject.clone(),
            })?;
        Ok(LiveMessage {
            subject: message
                .subject
                .as_str()
                .strip_prefix(&self.prefix)
                .unwrap_or(message.subject.as_str())
                .to_owned(),
            payload: message.payload.to_vec(),
            reply: message.reply.map(|r| r.to_string()),
        })
    }
}

impl TickBus {
    fn live_prefix(&self) -> String {
        format!("astroboids-live.{}.", self.world)
    }

    /// The most payload one live message carries (the server's `max_payload` or the bus's own
    /// limit, whichever is smaller).
    pub fn live_max_payload(&self) -> usize {
        self.client.max_payload().min(MAX_MESSAGE_BYTES)
    }

    fn check_live_size(&self, subject: &str, size: usize) -> Result<()> {
        let limit = self.live_max_payload();
        if size > limit {
            return Err(NetError::MessageTooLarge {
                subject: subject.to_owned(),
                msg_id: String::new(),
                size,
                limit,
                which: "live messages: the smaller of bus::MAX_MESSAGE_BYTES and max_payload"
                    .into(),
            });
        }
        Ok(())
    }

    /// Sends `payload` to whoever listens on `astroboids-live.W.<suffix>` now.
    pub async fn publish_live(&self, suffix: &str, payload: Vec<u8>) -> Result<()> {
        validate_subject_suffix(suffix, false)?;
        let subject = format!("{}{suffix}", self.live_prefix());
        self.check_live_size(&subject, payload.len())?;
        self.client
            .publish(subject.clone(), payload.into())
            .await
            .map_err(|e| NetError::Publish {
                subject,
                msg_id: String::new(),
                source: e.into(),
            })
    }

    /// Answers a request (the `reply` of a [`LiveMessage`]).
    pub async fn reply_live(&self, reply: &str, payload: Vec<u8>) -> Result<()> {
        self.check_live_size(reply, payload.len())?;
        self.client
            .publish(reply.to_owned(), payload.into())
            .await
            .map_err(|e| NetError::Publish {
                subject: reply.to_owned(),
                msg_id: String::new(),
                source: e.into(),
            })
    }

    /// Listens on `astroboids-live.W.<suffix>` (wildcards allowed) from now on.
    pub async fn subscribe_live(&self, suffix: &str) -> Result<LiveSubscription> {
        validate_subject_suffix(suffix, true)?;
        let prefix = self.live_prefix();
        let subject = format!("{prefix}{suffix}");
        let subscriber =
            self.client
                .subscribe(subject.clone())
                .await
                .map_err(|e| NetError::Receive {
                    subject: subject.clone(),
                    source: e.into(),
                })?;
        Ok(LiveSubscription {
            prefix,
            subject,
            subscriber,
        })
    }

    /// Asks whoever answers on `astroboids-live.W.<suffix>` and waits up to `within` for the
    /// answer.
    pub async fn request_live(
        &self,
        suffix: &str,
        payload: Vec<u8>,
        within: Duration,
    ) -> Result<Vec<u8>> {
        validate_subject_suffix(suffix, false)?;
        let subject = format!("{}{suffix}", self.live_prefix());
        self.check_live_size(&subject, payload.len())?;
        let request = self.client.request(subject.clone(), payload.into());
        match timeout(within, request).await {
            Ok(Ok(message)) => Ok(message.payload.to_vec()),
            Ok(Err(e)) => Err(NetError::Receive {
                subject,
                source: e.into(),
            }),
            Err(_) => Err(NetError::NatsTimeout {
                what: format!("request on {subject}"),
                after: within,
            }),
        }
    }
}
