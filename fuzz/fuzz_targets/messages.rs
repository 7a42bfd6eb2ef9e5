//! Client and server messages as postcard decodes them from a frame (what `ServerSession` and
//! `ClientSession` do with every frame a peer sends).
//!
//! Input: `[selector u8][payload]`: an even selector decodes a `ClientMessage`, an odd one a
//! `ServerMessage`. Whatever decodes must encode again and decode to the same bytes (the
//! encoding of a decoded message is canonical), and the message's helpers must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::messages::{ClientMessage, ServerMessage};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Decodes, re-encodes and decodes again: the second encoding must equal the first.
fn round_trip<T: Serialize + DeserializeOwned>(payload: &[u8]) -> Option<T> {
    let message: T = postcard::from_bytes(payload).ok()?;
    let encoded = postcard::to_allocvec(&message).expect("a decoded message encodes");
    let again: T = postcard::from_bytes(&encoded).expect("an encoded message decodes");
    assert_eq!(
        postcard::to_allocvec(&again).expect("encodes"),
        encoded,
        "re-encoding changed the message"
    );
    Some(message)
}

fuzz_target!(|data: &[u8]| {
    let [selector, payload @ ..] = data else {
        return;
    };
    if selector % 2 == 0 {
        if let Some(ClientMessage::Request { request, .. }) = round_trip::<ClientMessage>(payload) {
            let _ = request.kind();
        }
    } else if let Some(ServerMessage::Response { response, .. }) =
        round_trip::<ServerMessage>(payload)
    {
        if let protocol::messages::Response::Error(e) = response {
            let _ = e.to_string();
        }
    }
});
