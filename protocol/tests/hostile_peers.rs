//! Garbage, wrong versions and floods get a clear refusal and, if they go on, a closed
//! connection; they never panic the server.

use astroboids_protocol::PROTOCOL_VERSION;
use astroboids_protocol::frame::{FrameDecoder, encode_frame};
use astroboids_protocol::messages::{
    ClientMessage, Request, RequestError, Response, ServerMessage,
};
use astroboids_protocol::session::{ServerEvent, ServerSession, SessionLimits};

fn server() -> ServerSession {
    ServerSession::new(SessionLimits::default(), "test", 10)
}

fn decoded(events: &[ServerEvent]) -> Vec<ServerMessage> {
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut out = Vec::new();
    for event in events {
        if let ServerEvent::Send(bytes) = event {
            for frame in decoder
                .push(bytes)
                .expect("the server frames what it sends")
            {
                out.push(postcard::from_bytes(&frame).expect("the server sends messages"));
            }
        }
    }
    out
}

fn frame(message: &ClientMessage) -> Vec<u8> {
    encode_frame(&postcard::to_allocvec(message).unwrap())
}

#[test]
fn another_protocol_version_is_refused_naming_both() {
    let mut s = server();
    let events = s.receive(&frame(&ClientMessage::Greeting {
        protocol_version: 7,
        client: "future".into(),
        instance: 1,
    }));
    let messages = decoded(&events);
    let [ServerMessage::Refused { reason }] = &messages[..] else {
        panic!("{messages:?}");
    };
    assert!(
        reason.contains("version 7") && reason.contains(&format!("version {PROTOCOL_VERSION}")),
        "{reason}"
    );
    assert!(matches!(events.last(), Some(ServerEvent::Close { .. })));
    assert!(s.is_closed());
}

#[test]
fn a_version_1_client_is_told_to_update_not_that_its_bytes_are_garbage() {
    let mut s = server();
    let events = s.receive(&frame(&ClientMessage::Hello {
        protocol_version: 1,
        client: "old".into(),
    }));
    let messages = decoded(&events);
    let [ServerMessage::Refused { reason }] = &messages[..] else {
        panic!("{messages:?}");
    };
    assert!(
        reason.contains("version 1 is not supported") && reason.contains("update the client"),
        "{reason}"
    );
    assert!(s.is_closed());
}

#[test]
fn a_request_before_hello_or_an_oversized_frame_closes_the_connection() {
    let mut s = server();
    let events = s.receive(&frame(&ClientMessage::Request {
        id: 1,
        request: Request::ListScripts,
    }));
    assert!(
        matches!(events.last(), Some(ServerEvent::Close { reason }) if reason.contains("Hello"))
    );

    let mut s = server();
    let events = s.receive(&(10u32 << 20).to_le_bytes());
    assert!(
        matches!(events.last(), Some(ServerEvent::Close { reason }) if reason.contains("exceeds the limit")),
        "{events:?}"
    );
}

#[test]
fn garbage_messages_get_errors_then_a_disconnect() {
    let mut s = server();
    s.receive(&frame(&ClientMessage::Greeting {
        protocol_version: PROTOCOL_VERSION,
        client: "c".into(),
        instance: 1,
    }));
    let garbage = encode_frame(&[0xff, 0xfe, 0x00, 0x13, 0x37]);
    for strike in 1..=3 {
        let events = s.receive(&garbage);
        let messages = decoded(&events);
        if strike < 3 {
            assert!(
                matches!(&messages[..], [ServerMessage::Response { response: Response::Error(RequestError::Invalid(m)), .. }] if m.contains("malformed")),
                "{messages:?}"
            );
            assert!(!s.is_closed());
        } else {
            assert!(
                matches!(&messages[..], [ServerMessage::Refused { reason }] if reason.contains("3 protocol errors"))
            );
            assert!(s.is_closed());
        }
    }
    assert!(
        s.receive(&garbage).is_empty(),
        "a closed session ignores input"
    );
}

#[test]
fn too_many_unanswered_requests_are_refused_without_being_carried_out() {
    let limits = SessionLimits {
        max_in_flight: 2,
        ..SessionLimits::default()
    };
    let mut s = ServerSession::new(limits, "test", 10);
    s.receive(&frame(&ClientMessage::Greeting {
        protocol_version: PROTOCOL_VERSION,
        client: "c".into(),
        instance: 1,
    }));
    let mut carried = 0;
    let mut limited = 0;
    for id in 1..=4 {
        for event in s.receive(&frame(&ClientMessage::Request {
            id,
            request: Request::ListScripts,
        })) {
            match event {
                ServerEvent::Request { .. } => carried += 1,
                ServerEvent::Send(_) => limited += 1,
                ServerEvent::Close { .. } => panic!("a flood is refused, not fatal"),
            }
        }
    }
    assert_eq!((carried, limited), (2, 2));
}
