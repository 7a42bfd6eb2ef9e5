//! The client's snapshot decoder fed a sequence of datagrams, and the server's ack decoder.
//!
//! Input: `[limits selector u8]` then datagrams in `split_records` layout. Besides "no panic":
//! a refused datagram changes nothing the client shows (the decoder reads every record before
//! applying any), a completed snapshot's acknowledgement decodes to its sequence number, and
//! the view shown is always the newest complete snapshot's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::snapshot::{SnapshotDecoder, SnapshotLimits, decode_ack, encode_ack};

fuzz_target!(|data: &[u8]| {
    let [selector, rest @ ..] = data else {
        return;
    };
    // Small histories and part counts reach the eviction paths within a short input.
    let limits = SnapshotLimits {
        history: 1 + usize::from(selector & 0x0f),
        max_parts: (selector >> 4).max(1),
        ..SnapshotLimits::default()
    };
    let mut decoder = SnapshotDecoder::new(limits);
    let mut newest: Option<u32> = None;
    for datagram in astroboids_fuzz::split_records(rest) {
        // The server reads every datagram a client sends as a possible ack.
        if let Some(seq) = decode_ack(datagram) {
            assert_eq!(encode_ack(seq).as_slice(), datagram);
        }
        let before = decoder.view().map(|(tick, view)| (tick, view.clone()));
        match decoder.receive(datagram) {
            Ok(Some(seq)) => {
                assert_eq!(decode_ack(&encode_ack(seq)), Some(seq));
                newest = newest.max(Some(seq));
                assert!(decoder.view().is_some(), "a completed snapshot is shown");
            }
            Ok(None) => {}
            Err(_) => {
                let after = decoder.view().map(|(tick, view)| (tick, view.clone()));
                assert_eq!(before, after, "a refused datagram changed the view");
            }
        }
    }
});
