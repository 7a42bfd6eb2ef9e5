//! Both ends' session state machines driven by `arbitrary` sequences of operations: the
//! client's requests, retries, reconnects, snapshot datagrams and event reads; the server's
//! answers, tick events and refusals; frames piped between the two, and raw or well-framed
//! arbitrary bytes injected into either stream.
//!
//! Checked besides "no panic":
//! - everything the server sends is readable by a client (frames of `ServerMessage`), and
//!   everything the client sends by a server;
//! - the server never hands out a request id that is still being carried out, never has more
//!   in flight than its limit, answers only pending ids, and after `Close` says nothing more;
//! - the client reports each request answered at most once, only for ids it issued, and never
//!   calls an honest server's stream broken;
//! - a snapshot acknowledgement the client emits decodes to a sequence number.
#![no_main]

use std::collections::BTreeSet;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use protocol::frame::{FrameDecoder, encode_frame};
use protocol::messages::{
    ClientMessage, MoveCommand, PROTOCOL_VERSION, Request, RequestError, Response, ServerMessage,
    TickEvents, Token,
};
use protocol::session::{ClientEvent, ClientSession, ServerEvent, ServerSession, SessionLimits};
use protocol::snapshot::decode_ack;

#[derive(Debug, Arbitrary)]
struct Scenario {
    max_strikes: u8,
    answered_cache: u8,
    max_in_flight: u8,
    retry_after_ms: u16,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// The client numbers a request and sends it.
    ClientRequest(u8),
    /// Time passes; the client re-sends what is due.
    Advance(u16),
    /// The connection is replaced: a new server session, the client's reconnect frames.
    Reconnect,
    /// Bytes in flight are delivered (client to server, server to client).
    PipeToServer,
    PipeToClient,
    /// The server answers one of its pending requests.
    ServerRespond {
        which: u8,
        kind: u8,
    },
    ServerEvents {
        tick: u64,
        lines: u8,
    },
    ServerRefuse,
    /// Bytes that did not come from an honest peer: raw stream bytes, or a payload framed
    /// correctly (so that only message decoding can fail).
    RawToServer(Vec<u8>),
    FramedToServer(Vec<u8>),
    RawToClient(Vec<u8>),
    FramedToClient(Vec<u8>),
    /// Well-formed messages an honest peer might not send at that moment.
    GreetingToServer {
        right_version: bool,
        instance: u64,
    },
    RequestToServer {
        id: u8,
        kind: u8,
    },
    ResponseToClient {
        id: u8,
        kind: u8,
    },
    /// A snapshot datagram reaches the client.
    Datagram(Vec<u8>),
    ClientReadEvents,
    ClientDraw(u16),
}

fn request(kind: u8) -> Request {
    match kind % 12 {
        0 => Request::Login {
            user: "pilot".into(),
            password: "correct horse".into(),
        },
        1 => Request::Authenticate {
            token: Token(format!("token-{kind}")),
        },
        2 => Request::Logout,
        3 => Request::ListScripts,
        4 => Request::SpawnShip,
        5 => Request::ShipStatus { ship: None },
        6 => Request::MoveShip {
            ship: 1,
            command: MoveCommand {
                thrust: 1.0,
                turn: -0.5,
                mine: false,
                stop: false,
            },
        },
        7 => Request::Subscribe {
            max_datagram_bytes: u32::from(kind) * 8,
        },
        8 => Request::Unsubscribe,
        9 => Request::UploadScript {
            name: "bot".into(),
            wasm: b"\0asm\x01\0\0\0".to_vec(),
        },
        10 => Request::ShipLogs {
            ship: u64::from(kind),
        },
        _ => Request::Register {
            user: "pilot".into(),
            password: "correct horse".into(),
        },
    }
}

fn response(kind: u8) -> Response {
    match kind % 10 {
        0 => Response::LoggedIn {
            token: Token(format!("token-{kind}")),
            expires_in_s: 3600,
        },
        1 => Response::Authenticated {
            user: "pilot".into(),
            admin: kind > 128,
        },
        2 => Response::LoggedOut,
        3 => Response::Subscribed {
            // Sector sizes a hostile server might name: zero, negative, huge, NaN.
            sector_size: [1000.0, 0.0, -1.0, f32::MAX, f32::NAN][usize::from(kind) % 5],
            tick_rate_hz: u32::from(kind),
            sensor_range: [300.0, 0.0, -1.0, f32::INFINITY, f32::NAN][usize::from(kind) % 5],
            nebula_range_factor: 0.5,
        },
        4 => Response::Unsubscribed,
        5 => Response::Error(RequestError::Invalid("no".into())),
        6 => Response::ShipSpawned { ship: 1 },
        7 => Response::MoveQueued { tick: 9 },
        8 => Response::Scripts(Vec::new()),
        _ => Response::Registered,
    }
}

fn server_frame(message: &ServerMessage) -> Vec<u8> {
    encode_frame(&postcard::to_allocvec(message).unwrap())
}

fn client_frame(message: &ClientMessage) -> Vec<u8> {
    encode_frame(&postcard::to_allocvec(message).unwrap())
}

/// Asserts that `bytes` are whole frames of `T` (what an honest peer sends).
fn assert_frames<T: serde::de::DeserializeOwned>(bytes: &[u8], who: &str) {
    let mut decoder = FrameDecoder::new(usize::MAX);
    let frames = decoder.push(bytes).expect("frames are well formed");
    assert_eq!(decoder.pending_bytes(), 0, "{who} sent a partial frame");
    for frame in frames {
        assert!(
            postcard::from_bytes::<T>(&frame).is_ok(),
            "{who} sent a frame its peer cannot decode"
        );
    }
}

struct Link {
    server: ServerSession,
    limits: SessionLimits,
    /// Bytes on their way to each end.
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    /// Ids the server handed out and has not answered.
    server_pending: Vec<u64>,
    server_closed: bool,
    /// Whether the client's stream of this connection carried bytes no honest server sent.
    client_stream_tainted: bool,
}

impl Link {
    fn new(limits: &SessionLimits) -> Self {
        Self {
            server: ServerSession::new(limits.clone(), "fuzz", 10),
            limits: limits.clone(),
            to_server: Vec::new(),
            to_client: Vec::new(),
            server_pending: Vec::new(),
            server_closed: false,
            client_stream_tainted: false,
        }
    }

    fn server_receive(&mut self, bytes: &[u8]) {
        let events = self.server.receive(bytes);
        if self.server_closed {
            assert!(events.is_empty(), "a closed session still speaks");
        }
        for (i, event) in events.iter().enumerate() {
            match event {
                ServerEvent::Send(bytes) => {
                    assert_frames::<ServerMessage>(bytes, "the server");
                    self.to_client.extend_from_slice(bytes);
                }
                ServerEvent::Request { id, .. } => {
                    assert!(
                        !self.server_pending.contains(id),
                        "request {id} handed out twice"
                    );
                    self.server_pending.push(*id);
                    assert!(
                        self.server_pending.len() <= self.limits.max_in_flight,
                        "more requests in flight than allowed"
                    );
                }
                ServerEvent::Close { .. } => {
                    assert_eq!(i, events.len() - 1, "events after Close");
                    self.server_closed = true;
                    assert!(self.server.is_closed());
                }
            }
        }
    }
}

fuzz_target!(|scenario: Scenario| {
    let limits = SessionLimits {
        max_frame_bytes: 64 * 1024,
        max_strikes: u32::from(scenario.max_strikes % 8),
        answered_cache: usize::from(scenario.answered_cache % 16),
        max_in_flight: usize::from(scenario.max_in_flight % 16),
    };
    let retry_after = Duration::from_millis(u64::from(scenario.retry_after_ms));
    let mut client = ClientSession::new(64 * 1024, retry_after, 0x5eed);
    let mut now = Duration::ZERO;
    let mut link = Link::new(&limits);
    link.to_server.extend(client.hello("fuzz"));
    // Ids the client issued (the caller's requests), and ids reported answered.
    let mut issued: BTreeSet<u64> = BTreeSet::new();
    let mut answered: BTreeSet<u64> = BTreeSet::new();

    for op in scenario.ops.into_iter().take(256) {
        match op {
            Op::ClientRequest(kind) => {
                let (id, frame) = client.request(request(kind), now);
                assert!(issued.insert(id), "id {id} issued twice");
                assert!(client.is_outstanding(id));
                assert_frames::<ClientMessage>(&frame, "the client");
                link.to_server.extend(frame);
            }
            Op::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms));
                if let Some(at) = client.next_resend_at() {
                    let due = client.resend_due(now);
                    assert_eq!(due.is_empty(), at > now, "next_resend_at disagrees");
                } else {
                    assert!(client.resend_due(now).is_empty());
                }
            }
            Op::Reconnect => {
                link = Link::new(&limits);
                for frame in client.reconnected("fuzz", now) {
                    assert_frames::<ClientMessage>(&frame, "the client");
                    link.to_server.extend(frame);
                }
            }
            Op::PipeToServer => {
                let bytes = std::mem::take(&mut link.to_server);
                link.server_receive(&bytes);
            }
            Op::PipeToClient => {
                let bytes = std::mem::take(&mut link.to_client);
                for event in client.receive(&bytes, now) {
                    match event {
                        ClientEvent::Response { id, .. } if id != 0 => {
                            assert!(answered.insert(id), "request {id} answered twice");
                            assert!(issued.contains(&id), "an answer for {id}, never asked");
                            assert!(!client.is_outstanding(id));
                        }
                        ClientEvent::Broken { reason } => {
                            assert!(
                                link.client_stream_tainted,
                                "an honest server's stream is called broken: {reason}"
                            );
                        }
                        ClientEvent::Send(frames) => {
                            for frame in frames {
                                assert_frames::<ClientMessage>(&frame, "the client");
                                link.to_server.extend(frame);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Op::ServerRespond { which, kind } => {
                if link.server_pending.is_empty() {
                    // An id never handed out: nothing to send.
                    assert!(
                        link.server
                            .respond(u64::from(which) + 1_000, response(kind))
                            .is_none()
                    );
                    continue;
                }
                let index = usize::from(which) % link.server_pending.len();
                let id = link.server_pending.swap_remove(index);
                let bytes = link
                    .server
                    .respond(id, response(kind))
                    .expect("a pending id");
                assert_frames::<ServerMessage>(&bytes, "the server");
                link.to_client.extend(bytes);
            }
            Op::ServerEvents { tick, lines } => {
                let events = TickEvents {
                    tick,
                    logs: (0..u64::from(lines % 8))
                        .map(|i| (i, format!("line {i}")))
                        .collect(),
                    faults: Vec::new(),
                    dropped_before: 0,
                };
                let sent = link.server.events(events);
                if link.server.is_closed() {
                    assert!(sent.is_none(), "events sent on a closed connection");
                }
                if let Some(bytes) = sent {
                    link.to_client.extend(bytes);
                }
            }
            Op::ServerRefuse => {
                let bytes = link.server.refuse("shutting down");
                assert_frames::<ServerMessage>(&bytes, "the server");
                assert!(link.server.is_closed());
                link.server_closed = true;
                link.to_client.extend(bytes);
            }
            Op::RawToServer(bytes) => link.server_receive(&bytes),
            Op::FramedToServer(payload) => link.server_receive(&encode_frame(&payload)),
            Op::RawToClient(bytes) => {
                link.client_stream_tainted = true;
                link.to_client.extend(bytes);
            }
            Op::FramedToClient(payload) => {
                link.client_stream_tainted = true;
                link.to_client.extend(encode_frame(&payload));
            }
            Op::GreetingToServer {
                right_version,
                instance,
            } => {
                let protocol_version = if right_version { PROTOCOL_VERSION } else { 1 };
                link.server_receive(&client_frame(&ClientMessage::Greeting {
                    protocol_version,
                    client: "other".into(),
                    instance,
                }));
            }
            Op::RequestToServer { id, kind } => {
                link.server_receive(&client_frame(&ClientMessage::Request {
                    id: u64::from(id),
                    request: request(kind),
                }));
            }
            Op::ResponseToClient { id, kind } => {
                // A well-formed answer, possibly to an id never asked or answered before (the
                // client must drop those), from a server that behaves otherwise.
                link.to_client
                    .extend(server_frame(&ServerMessage::Response {
                        id: u64::from(id),
                        response: response(kind),
                    }));
            }
            Op::Datagram(bytes) => {
                let outcome = client.datagram(&bytes);
                if let Some(ack) = outcome.ack {
                    assert!(decode_ack(&ack).is_some(), "an ack that does not decode");
                    assert!(outcome.snapshot_tick.is_some());
                }
            }
            Op::ClientReadEvents => while client.next_events().is_some() {},
            Op::ClientDraw(at) => {
                if let Some(live) = client.live() {
                    let _ = live.at(f64::from(at) / 10.0);
                }
            }
        }
    }
});
