//! The client's end: one [`ClientSession`] per client run, across all of its connections.
//!
//! It numbers requests, matches responses (dropping duplicates, so each request is answered
//! once), decides when an unanswered request is sent again, queues tick events up to a cap,
//! decodes snapshots and says when to acknowledge them, and resumes after a reconnect: it
//! greets with the same client instance, re-authenticates with the token it last logged in
//! with, and only then re-sends what was not answered, under the original ids (the server
//! answers those from the account session's cache instead of carrying them out twice).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::frame::{FrameDecoder, encode_frame};
use crate::live_view::LiveView;
use crate::messages::{
    ClientMessage, PROTOCOL_VERSION, Request, Response, ServerMessage, TickEvents, Token,
};
use crate::snapshot::{SnapshotDecoder, SnapshotLimits, encode_ack};

/// Tick events kept for the caller between reads; past this the oldest go (counted in the next
/// one's `dropped_before`), so a caller that stops reading cannot grow memory.
pub const MAX_PENDING_EVENTS: usize = 256;

/// How long a client waits for an answer (or anything else from the server) before it gives
/// up on the connection.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a client waits for a new connection's handshake before it tries the next address
/// (or reports the server unreachable).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client waits before each attempt to replace a lost connection; after the last
/// attempt fails the loss is reported to the caller (about 8 s in all: long enough to ride out
/// a server restart, short enough for a person waiting on a command).
pub const RECONNECT_DELAYS: [Duration; 6] = [
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// What the client learned from received bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    Welcome {
        server: String,
        tick_rate_hz: u32,
    },
    Response {
        id: u64,
        response: Response,
    },
    /// The server closed the connection, saying why.
    Refused {
        reason: String,
    },
    /// The server's bytes could not be read (a broken or foreign server).
    Broken {
        reason: String,
    },
    /// A tick's events arrived; take them with [`ClientSession::next_events`].
    Events,
    /// Frames to send now (re-sent requests once a resumed session is authenticated again).
    Send(Vec<Vec<u8>>),
    /// Re-authenticating after a reconnect failed (the session expired or was revoked): the
    /// requests still unanswered are answered with this error.
    ResumeFailed {
        response: Response,
    },
}

/// A completed snapshot, from [`ClientSession::datagram`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatagramOutcome {
    /// The acknowledgement datagram to send, when the datagram completed a snapshot.
    pub ack: Option<[u8; 5]>,
    /// The tick now shown by [`ClientSession::live`], when a snapshot completed.
    pub snapshot_tick: Option<u64>,
}

/// An unanswered request.
#[derive(Debug)]
struct Outstanding {
    frame: Vec<u8>,
    sent_at: Duration,
    /// Held back until the resumed session is authenticated again.
    held: bool,
}

/// The client's view of its requests, across reconnects.
#[derive(Debug)]
pub struct ClientSession {
    decoder: FrameDecoder,
    max_frame_bytes: usize,
    next_id: u64,
    retry_after: Duration,
    instance: u64,
    outstanding: BTreeMap<u64, Outstanding>,
    /// Authentication requests in flight: the token each would bind (`None`: a login, whose
    /// token comes in the answer).
    authenticating: BTreeMap<u64, Option<Token>>,
    /// The token of the last successful login or authentication (for resuming).
    token: Option<Token>,
    /// The re-authentication sent after a reconnect, while it is unanswered.
    resuming: Option<u64>,
    events: VecDeque<TickEvents>,
    snapshots: Option<(SnapshotDecoder, LiveView)>,
    /// The datagram size the last subscription asked for (the decoder's bound).
    subscribe_datagram_bytes: usize,
}

impl ClientSession {
    /// `retry_after`: how long to wait for an answer before sending a request again on the
    /// same connection. `instance`: names this client run across its connections (random,
    /// nonzero; chosen by the shell, which has the random source).
    pub fn new(max_frame_bytes: usize, retry_after: Duration, instance: u64) -> Self {
        Self {
            decoder: FrameDecoder::new(max_frame_bytes),
            max_frame_bytes,
            next_id: 1,
            retry_after,
            instance,
            outstanding: BTreeMap::new(),
            authenticating: BTreeMap::new(),
            token: None,
            resuming: None,
            events: VecDeque::new(),
            snapshots: None,
            subscribe_datagram_bytes: 0,
        }
    }

    /// The first frame to send on a new connection.
    pub fn hello(&self, client: &str) -> Vec<u8> {
        encode(&ClientMessage::Greeting {
            protocol_version: PROTOCOL_VERSION,
            client: client.to_string(),
            instance: self.instance,
        })
    }

    /// Numbers `request` and returns its id and frame (sent at `now`).
    pub fn request(&mut self, request: Request, now: Duration) -> (u64, Vec<u8>) {
        match &request {
            Request::Authenticate { token } => {
                self.authenticating
                    .insert(self.next_id, Some(token.clone()));
            }
            Request::Login { .. } => {
                self.authenticating.insert(self.next_id, None);
            }
            Request::Subscribe { max_datagram_bytes } => {
                self.subscribe_datagram_bytes = *max_datagram_bytes as usize;
            }
            _ => {}
        }
        let (id, frame) = self.number(request);
        // While resuming, new requests wait behind the re-authentication like the old ones.
        let held = self.resuming.is_some();
        self.outstanding.insert(
            id,
            Outstanding {
                frame: frame.clone(),
                sent_at: now,
                held,
            },
        );
        if held {
            return (id, Vec::new());
        }
        (id, frame)
    }

    fn number(&mut self, request: Request) -> (u64, Vec<u8>) {
        let id = self.next_id;
        self.next_id += 1;
        (id, encode(&ClientMessage::Request { id, request }))
    }

    /// Requests still waiting for an answer.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Whether `id` is still waiting for an answer.
    pub fn is_outstanding(&self, id: u64) -> bool {
        self.outstanding.contains_key(&id)
    }

    /// When the next unanswered request is due to be sent again (`None`: nothing waits).
    pub fn next_resend_at(&self) -> Option<Duration> {
        self.outstanding
            .values()
            .filter(|o| !o.held)
            .map(|o| o.sent_at + self.retry_after)
            .min()
    }

    /// Frames of requests unanswered for `retry_after`, to send again (same ids).
    pub fn resend_due(&mut self, now: Duration) -> Vec<Vec<u8>> {
        let mut due = Vec::new();
        for o in self.outstanding.values_mut().filter(|o| !o.held) {
            if now.saturating_sub(o.sent_at) >= self.retry_after {
                o.sent_at = now;
                due.push(o.frame.clone());
            }
        }
        due
    }

    /// A new connection replaces the lost one: the frames to send on it, in order. The
    /// greeting; then, when the client was logged in, a re-authentication with its token, with
    /// every unanswered request held until that is answered ([`ClientEvent::Send`] carries
    /// them); otherwise every unanswered request at once. Partial frames of the old
    /// connection are dropped, and the live view starts over (snapshots resume after
    /// subscribing again).
    pub fn reconnected(&mut self, client: &str, now: Duration) -> Vec<Vec<u8>> {
        self.decoder = FrameDecoder::new(self.max_frame_bytes);
        self.snapshots = None;
        let mut frames = vec![self.hello(client)];
        // A re-authentication lost with the old connection is replaced by a new one.
        if let Some(old) = self.resuming.take() {
            self.outstanding.remove(&old);
            self.authenticating.remove(&old);
        }
        match self.token.clone() {
            Some(token) => {
                for o in self.outstanding.values_mut() {
                    o.held = true;
                }
                let (id, frame) = self.number(Request::Authenticate {
                    token: token.clone(),
                });
                self.authenticating.insert(id, Some(token));
                self.resuming = Some(id);
                self.outstanding.insert(
                    id,
                    Outstanding {
                        frame: frame.clone(),
                        sent_at: now,
                        held: false,
                    },
                );
                frames.push(frame);
            }
            None => {
                for o in self.outstanding.values_mut() {
                    o.sent_at = now;
                    frames.push(o.frame.clone());
                }
            }
        }
        frames
    }

    /// Feeds received stream bytes; a response to a request already answered (or never made)
    /// is dropped, so each request is answered exactly once.
    pub fn receive(&mut self, bytes: &[u8], now: Duration) -> Vec<ClientEvent> {
        let frames = match self.decoder.push(bytes) {
            Ok(frames) => frames,
            Err(e) => {
                return vec![ClientEvent::Broken {
                    reason: e.to_string(),
                }];
            }
        };
        let mut events = Vec::new();
        for frame in frames {
            match postcard::from_bytes::<ServerMessage>(&frame) {
                Ok(ServerMessage::Welcome {
                    server,
                    tick_rate_hz,
                    ..
                }) => events.push(ClientEvent::Welcome {
                    server,
                    tick_rate_hz,
                }),
                Ok(ServerMessage::Refused { reason }) => {
                    events.push(ClientEvent::Refused { reason })
                }
                Ok(ServerMessage::Response { id, response }) => {
                    self.answered(id, response, now, &mut events)
                }
                Ok(ServerMessage::Events(tick_events)) => {
                    self.queue_events(tick_events);
                    events.push(ClientEvent::Events);
                }
                Err(e) => events.push(ClientEvent::Broken {
                    reason: format!("unreadable message from the server: {e}"),
                }),
            }
        }
        events
    }

    fn answered(
        &mut self,
        id: u64,
        response: Response,
        now: Duration,
        events: &mut Vec<ClientEvent>,
    ) {
        if id == 0 {
            // A protocol error the server could not tie to a request.
            events.push(ClientEvent::Response { id, response });
            return;
        }
        if self.outstanding.remove(&id).is_none() {
            return; // A duplicate, or never asked.
        }
        if let Some(token) = self.authenticating.remove(&id) {
            match (&response, token) {
                (Response::Authenticated { .. }, Some(token)) => self.token = Some(token),
                (Response::LoggedIn { token, .. }, None) => self.token = Some(token.clone()),
                _ => {}
            }
        }
        if matches!(response, Response::LoggedOut) {
            self.token = None;
        }
        if let Response::Subscribed { sector_size, .. } = &response {
            let limits = SnapshotLimits {
                max_datagram_bytes: self.subscribe_datagram_bytes,
                ..SnapshotLimits::default()
            };
            self.snapshots = Some((SnapshotDecoder::new(limits), LiveView::new(*sector_size)));
        }
        if self.resuming == Some(id) {
            self.resuming = None;
            if matches!(response, Response::Authenticated { .. }) {
                let mut frames = Vec::new();
                for o in self.outstanding.values_mut() {
                    o.held = false;
                    o.sent_at = now;
                    frames.push(o.frame.clone());
                }
                if !frames.is_empty() {
                    events.push(ClientEvent::Send(frames));
                }
            } else {
                // The session is gone: nothing held can be carried out under it any more.
                self.token = None;
                let held: Vec<u64> = self.outstanding.keys().copied().collect();
                self.outstanding.clear();
                self.authenticating.clear();
                for held_id in held {
                    events.push(ClientEvent::Response {
                        id: held_id,
                        response: response.clone(),
                    });
                }
                events.push(ClientEvent::ResumeFailed { response });
            }
            return;
        }
        events.push(ClientEvent::Response { id, response });
    }

    /// Keeps a tick's events for [`Self::next_events`]; past [`MAX_PENDING_EVENTS`] the
    /// oldest go, counted in the next one's `dropped_before`.
    fn queue_events(&mut self, events: TickEvents) {
        if self.events.len() >= MAX_PENDING_EVENTS
            && let Some(oldest) = self.events.pop_front()
            && let Some(next) = self.events.front_mut()
        {
            next.dropped_before = next
                .dropped_before
                .saturating_add(oldest.dropped_before)
                .saturating_add(1);
        }
        self.events.push_back(events);
    }

    /// The oldest tick events not yet taken.
    pub fn next_events(&mut self) -> Option<TickEvents> {
        self.events.pop_front()
    }

    /// A snapshot datagram arrived: decoded into the live view; when it completes a snapshot,
    /// the acknowledgement to send (the server encodes the next snapshot against the newest
    /// one acknowledged). Datagrams that cannot be used are dropped (a newer one follows).
    pub fn datagram(&mut self, datagram: &[u8]) -> DatagramOutcome {
        let mut outcome = DatagramOutcome {
            ack: None,
            snapshot_tick: None,
        };
        let Some((decoder, live)) = &mut self.snapshots else {
            return outcome;
        };
        if let Ok(Some(seq)) = decoder.receive(datagram) {
            outcome.ack = Some(encode_ack(seq));
            if let Some((tick, view)) = decoder.view() {
                live.update(tick, view);
                outcome.snapshot_tick = Some(tick);
            }
        }
        outcome
    }

    /// The reconstructed world (after a successful subscribe).
    pub fn live(&self) -> Option<&LiveView> {
        self.snapshots.as_ref().map(|(_, live)| live)
    }

    /// Whether a subscription is active on this connection.
    pub fn is_subscribed(&self) -> bool {
        self.snapshots.is_some()
    }
}

fn encode(message: &ClientMessage) -> Vec<u8> {
    encode_frame(&postcard::to_allocvec(message).expect("plain data"))
}
