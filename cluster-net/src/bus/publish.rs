//! Writing the world's tick log, and reading its end.

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use tokio::time::timeout;

use super::{
    Delivered, MAX_MESSAGE_BYTES, NATS_REQUEST_TIMEOUT, TickBus, delivered, js_call,
    msg_id_header_len, stream_name, validate_msg_id, validate_subject_suffix,
};
use crate::error::{BoxError, NetError, Result};

impl TickBus {
    /// Publishes `payload` on `astroboids.W.<subject_suffix>` with `msg_id` as its
    /// `Nats-Msg-Id` and waits for the stream's ack. Returns the message's stream sequence;
    /// for a duplicate id (within [`DUPLICATE_WINDOW`](super::DUPLICATE_WINDOW)) nothing is
    /// stored and the first message's sequence is returned.
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

    /// The last message the stream holds on exactly `astroboids.W.<subject_suffix>` (no
    /// wildcards), read from the stream's leader now; `None` if it holds none there (nothing
    /// was published on it, or what was has aged out of the stream).
    ///
    /// For a process taking over a role: the new leader reads the last tick start to go on
    /// from it, and subscribes with [`super::StartAt::Sequence`] after its `seq` to miss
    /// nothing that follows.
    pub async fn last_message(&self, subject_suffix: &str) -> Result<Option<Delivered>> {
        validate_subject_suffix(subject_suffix, false)?;
        let subject = self.subject(subject_suffix);
        let what = || format!("read of the last message on {subject}");
        let get = self.stream.get_last_raw_message_by_subject(&subject);
        match timeout(NATS_REQUEST_TIMEOUT, get).await {
            Ok(Ok(message)) => Ok(Some(delivered(
                &self.subject_prefix(),
                message.sequence,
                message.subject.as_str(),
                Some(&message.headers),
                &message.payload,
            ))),
            Ok(Err(e)) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Ok(Err(source)) => Err(NetError::JetStream {
                what: what(),
                source: source.into(),
            }),
            Err(_) => Err(NetError::NatsTimeout {
                what: what(),
                after: NATS_REQUEST_TIMEOUT,
            }),
        }
    }

    /// The stream's last sequence (0 while it is empty), asked of the server now: the
    /// sequence of the last message stored on any subject of the world. (Sequences are not
    /// reused: once messages age out, it stays where it was.)
    pub async fn last_seq(&self) -> Result<u64> {
        let info = js_call(
            || format!("lookup of stream {}", stream_name(&self.world)),
            NATS_REQUEST_TIMEOUT,
            self.stream.get_info(),
        )
        .await?;
        Ok(info.state.last_sequence)
    }
}
