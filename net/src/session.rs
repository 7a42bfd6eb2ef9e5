//! Per-connection protocol state, both ends, with no I/O: bytes in, bytes out, time passed in.
//!
//! [`ServerSession`] checks the handshake, decodes frames into requests, answers repeated
//! request ids from a bounded cache (so a client's retry never acts twice) and counts
//! malformed input: past a limit it tells the shell to close the connection.
//! [`ClientSession`] numbers requests, matches responses, ignores duplicates and re-sends what
//! was not answered in time.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::frame::{FrameDecoder, encode_frame};
use crate::messages::{
    ClientMessage, PROTOCOL_VERSION, Request, RequestError, Response, ServerMessage, TickEvents,
};

/// Bounds on what one connection may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLimits {
    /// Largest frame accepted (a script upload is the largest request).
    pub max_frame_bytes: usize,
    /// Malformed or out-of-order messages tolerated before the connection is closed.
    pub max_strikes: u32,
    /// Answered request ids remembered for retries.
    pub answered_cache: usize,
    /// Requests a client may have unanswered at once.
    pub max_in_flight: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 320 * 1024,
            max_strikes: 3,
            answered_cache: 64,
            max_in_flight: 32,
        }
    }
}

/// What the server shell must do after feeding bytes in.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// Bytes to write to the stream.
    Send(Vec<u8>),
    /// A new request to carry out; answer it with [`ServerSession::respond`].
    Request { id: u64, request: Request },
    /// Close the connection (after sending what came before).
    Close { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    AwaitingHello,
    Open,
    Closed,
}

/// The server's view of one connection.
#[derive(Debug)]
pub struct ServerSession {
    limits: SessionLimits,
    decoder: FrameDecoder,
    state: ServerState,
    strikes: u32,
    server_name: String,
    tick_rate_hz: u32,
    /// Ids being carried out, and answered ids with their response (oldest first).
    in_progress: Vec<u64>,
    answered: VecDeque<(u64, Response)>,
}

impl ServerSession {
    pub fn new(limits: SessionLimits, server_name: &str, tick_rate_hz: u32) -> Self {
        Self {
            decoder: FrameDecoder::new(limits.max_frame_bytes),
            limits,
            state: ServerState::AwaitingHello,
            strikes: 0,
            server_name: server_name.to_string(),
            tick_rate_hz,
            in_progress: Vec::new(),
            answered: VecDeque::new(),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.state == ServerState::Closed
    }

    /// Feeds received stream bytes; returns what to do, in order.
    pub fn receive(&mut self, bytes: &[u8]) -> Vec<ServerEvent> {
        let mut events = Vec::new();
        if self.is_closed() {
            return events;
        }
        let frames = match self.decoder.push(bytes) {
            Ok(frames) => frames,
            Err(e) => {
                // A broken length prefix cannot be skipped: the stream is lost.
                self.close(&mut events, format!("unreadable stream: {e}"));
                return events;
            }
        };
        for frame in frames {
            if self.is_closed() {
                break;
            }
            match postcard::from_bytes::<ClientMessage>(&frame) {
                Ok(message) => self.handle(message, &mut events),
                Err(e) => self.strike(&mut events, format!("malformed message: {e}")),
            }
        }
        events
    }

    fn handle(&mut self, message: ClientMessage, events: &mut Vec<ServerEvent>) {
        match (self.state, message) {
            (
                ServerState::AwaitingHello,
                ClientMessage::Hello {
                    protocol_version, ..
                },
            ) => {
                if protocol_version != PROTOCOL_VERSION {
                    let reason = format!(
                        "protocol version {protocol_version} is not supported; this server \
                         speaks version {PROTOCOL_VERSION}"
                    );
                    self.close(events, reason);
                    return;
                }
                self.state = ServerState::Open;
                events.push(send(&ServerMessage::Welcome {
                    protocol_version: PROTOCOL_VERSION,
                    server: self.server_name.clone(),
                    tick_rate_hz: self.tick_rate_hz,
                }));
            }
            (ServerState::AwaitingHello, ClientMessage::Request { .. }) => {
                self.close(events, "the first message must be Hello".into());
            }
            (ServerState::Open, ClientMessage::Hello { .. }) => {
                self.strike(events, "Hello sent twice".into());
            }
            (ServerState::Open, ClientMessage::Request { id, request }) => {
                if let Some((_, response)) = self.answered.iter().find(|(a, _)| *a == id) {
                    // A retry of an answered request: the same answer, nothing done twice.
                    events.push(send(&ServerMessage::Response {
                        id,
                        response: response.clone(),
                    }));
                } else if self.in_progress.contains(&id) {
                    // A retry of a request still being carried out: its answer will come.
                } else if self.in_progress.len() >= self.limits.max_in_flight {
                    let error = RequestError::RateLimited(format!(
                        "more than {} requests waiting for an answer",
                        self.limits.max_in_flight
                    ));
                    events.push(send(&ServerMessage::Response {
                        id,
                        response: Response::Error(error),
                    }));
                } else {
                    self.in_progress.push(id);
                    events.push(ServerEvent::Request { id, request });
                }
            }
            (ServerState::Closed, _) => {}
        }
    }

    /// The answer to request `id`: the bytes to send (none if `id` was not pending).
    pub fn respond(&mut self, id: u64, response: Response) -> Option<Vec<u8>> {
        let index = self.in_progress.iter().position(|&p| p == id)?;
        self.in_progress.swap_remove(index);
        if self.answered.len() >= self.limits.answered_cache {
            self.answered.pop_front();
        }
        self.answered.push_back((id, response.clone()));
        match send(&ServerMessage::Response { id, response }) {
            ServerEvent::Send(bytes) => Some(bytes),
            _ => unreachable!("send makes Send"),
        }
    }

    /// The frame carrying one tick's events (none once the connection is closed).
    pub fn events(&self, events: TickEvents) -> Option<Vec<u8>> {
        if self.state != ServerState::Open {
            return None;
        }
        match send(&ServerMessage::Events(events)) {
            ServerEvent::Send(bytes) => Some(bytes),
            _ => unreachable!("send makes Send"),
        }
    }

    /// Ends the connection from the server's side (kicked, shutting down): the `Refused`
    /// frame to send before closing.
    pub fn refuse(&mut self, reason: &str) -> Vec<u8> {
        self.state = ServerState::Closed;
        match send(&ServerMessage::Refused {
            reason: reason.to_string(),
        }) {
            ServerEvent::Send(bytes) => bytes,
            _ => unreachable!("send makes Send"),
        }
    }

    fn strike(&mut self, events: &mut Vec<ServerEvent>, what: String) {
        self.strikes += 1;
        if self.strikes >= self.limits.max_strikes {
            self.close(
                events,
                format!("{what} ({} protocol errors: closing)", self.strikes),
            );
        } else {
            events.push(send(&ServerMessage::Response {
                id: 0,
                response: Response::Error(RequestError::Invalid(what)),
            }));
        }
    }

    fn close(&mut self, events: &mut Vec<ServerEvent>, reason: String) {
        self.state = ServerState::Closed;
        events.push(send(&ServerMessage::Refused {
            reason: reason.clone(),
        }));
        events.push(ServerEvent::Close { reason });
    }
}

fn send(message: &ServerMessage) -> ServerEvent {
    ServerEvent::Send(encode_frame(
        &postcard::to_allocvec(message).expect("plain data"),
    ))
}

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
    /// A tick's events for a subscribed client.
    Events(TickEvents),
}

/// The client's view of one connection (and of requests that outlive it: see
/// [`ClientSession::resend_all`]).
#[derive(Debug)]
pub struct ClientSession {
    decoder: FrameDecoder,
    next_id: u64,
    retry_after: Duration,
    /// Unanswered requests: (request, encoded frame, last sent at).
    outstanding: BTreeMap<u64, (Vec<u8>, Duration)>,
}

impl ClientSession {
    /// `retry_after`: how long to wait for an answer before sending a request again.
    pub fn new(max_frame_bytes: usize, retry_after: Duration) -> Self {
        Self {
            decoder: FrameDecoder::new(max_frame_bytes),
            next_id: 1,
            retry_after,
            outstanding: BTreeMap::new(),
        }
    }

    /// The first frame to send on a new connection.
    pub fn hello(&self, client: &str) -> Vec<u8> {
        encode_frame(
            &postcard::to_allocvec(&ClientMessage::Hello {
                protocol_version: PROTOCOL_VERSION,
                client: client.to_string(),
            })
            .expect("plain data"),
        )
    }

    /// Numbers `request` and returns its id and frame (sent at `now`).
    pub fn request(&mut self, request: Request, now: Duration) -> (u64, Vec<u8>) {
        let id = self.next_id;
        self.next_id += 1;
        let frame = encode_frame(
            &postcard::to_allocvec(&ClientMessage::Request { id, request }).expect("plain data"),
        );
        self.outstanding.insert(id, (frame.clone(), now));
        (id, frame)
    }

    /// Requests still waiting for an answer.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Frames of requests unanswered for `retry_after`, to send again (same ids).
    pub fn resend_due(&mut self, now: Duration) -> Vec<Vec<u8>> {
        let mut due = Vec::new();
        for (frame, sent_at) in self.outstanding.values_mut() {
            if now.saturating_sub(*sent_at) >= self.retry_after {
                *sent_at = now;
                due.push(frame.clone());
            }
        }
        due
    }

    /// Every unanswered request's frame, for a new connection after [`Self::reconnected`].
    pub fn resend_all(&mut self, now: Duration) -> Vec<Vec<u8>> {
        self.outstanding
            .values_mut()
            .map(|(frame, sent_at)| {
                *sent_at = now;
                frame.clone()
            })
            .collect()
    }

    /// Starts reading a new connection's stream (partial frames of the old one are dropped).
    pub fn reconnected(&mut self, max_frame_bytes: usize) {
        self.decoder = FrameDecoder::new(max_frame_bytes);
    }

    /// Feeds received bytes; a response to a request already answered (or never made) is
    /// dropped, so each request is answered exactly once.
    pub fn receive(&mut self, bytes: &[u8]) -> Vec<ClientEvent> {
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
                    if self.outstanding.remove(&id).is_some() || id == 0 {
                        events.push(ClientEvent::Response { id, response });
                    }
                }
                Ok(ServerMessage::Events(tick_events)) => {
                    events.push(ClientEvent::Events(tick_events))
                }
                Err(e) => events.push(ClientEvent::Broken {
                    reason: format!("unreadable message from the server: {e}"),
                }),
            }
        }
        events
    }
}
