//! The server's end of one connection: bytes in, events out.
//!
//! [`ServerSession`] checks the handshake, decodes frames into requests, answers repeated
//! request ids of this connection from a bounded cache (so a client's retry never acts twice)
//! and counts malformed input: past a limit it tells the shell to close the connection.
//! Retries on a *new* connection are recognised one level up, by the client instance the
//! greeting names (see [`crate::resume`]).

use std::collections::VecDeque;

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
    /// The client instance the greeting named (0: none, the session cannot be resumed).
    instance: u64,
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
            instance: 0,
        }
    }

    /// The client instance named in the greeting (0 before it, or for a client that named
    /// none): requests of one instance keep their ids across connections.
    pub fn instance(&self) -> u64 {
        self.instance
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
                // The greeting of protocol version 1, which had no client instance.
                let reason = format!(
                    "protocol version {protocol_version} is not supported; this server \
                     speaks version {PROTOCOL_VERSION} (update the client)"
                );
                self.close(events, reason);
            }
            (
                ServerState::AwaitingHello,
                ClientMessage::Greeting {
                    protocol_version,
                    instance,
                    ..
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
                self.instance = instance;
                events.push(send(&ServerMessage::Welcome {
                    protocol_version: PROTOCOL_VERSION,
                    server: self.server_name.clone(),
                    tick_rate_hz: self.tick_rate_hz,
                }));
            }
            (ServerState::AwaitingHello, ClientMessage::Request { .. }) => {
                self.close(events, "the first message must be Hello".into());
            }
            (ServerState::Open, ClientMessage::Hello { .. } | ClientMessage::Greeting { .. }) => {
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
