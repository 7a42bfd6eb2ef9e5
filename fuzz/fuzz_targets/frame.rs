//! The stream frame decoder, fed a byte stream cut into arbitrary chunks.
//!
//! Input: `[limit selector u8][cut count u8][cuts: one byte each][stream]`. Checked against a
//! one-pass reference reading of the whole stream: the same frames in the same order however
//! the stream is cut, the same error at the same frame, and never more than one frame's worth
//! of bytes buffered (the decoder's promise to the server).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::frame::{FrameDecoder, FrameError, LENGTH_BYTES, encode_frame};

/// Limits worth distinguishing: tiny (every frame too large), mid-size, the server's 320 KiB.
const LIMITS: [usize; 6] = [1, 3, 16, 255, 4096, 320 * 1024];

/// The whole stream read in one pass: the frames before the first error or the unfinished
/// tail, and that error.
fn reference(stream: &[u8], limit: usize) -> (Vec<&[u8]>, Option<FrameError>, usize) {
    let mut frames = Vec::new();
    let mut at = 0;
    while stream.len() - at >= LENGTH_BYTES {
        let len = u32::from_le_bytes(stream[at..at + 4].try_into().unwrap()) as usize;
        if len > limit {
            return (frames, Some(FrameError::TooLarge { len, limit }), at);
        }
        if len == 0 {
            return (frames, Some(FrameError::Empty), at);
        }
        if stream.len() - at - LENGTH_BYTES < len {
            break;
        }
        frames.push(&stream[at + 4..at + 4 + len]);
        at += 4 + len;
    }
    (frames, None, stream.len() - at)
}

fuzz_target!(|data: &[u8]| {
    let [selector, cut_count, rest @ ..] = data else {
        return;
    };
    let limit = LIMITS[usize::from(*selector) % LIMITS.len()];
    let cuts_len = usize::from(*cut_count).min(rest.len());
    let (cuts, stream) = rest.split_at(cuts_len);

    let (expected, expected_error, expected_pending) = reference(stream, limit);

    let mut decoder = FrameDecoder::new(limit);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut error = None;
    let mut at = 0;
    // Chunk sizes from the cuts (zero-length pushes included), then the rest in one push.
    let sizes = cuts
        .iter()
        .map(|&c| usize::from(c))
        .chain(std::iter::once(usize::MAX));
    for size in sizes {
        let end = at + size.min(stream.len() - at);
        match decoder.push(&stream[at..end]) {
            Ok(frames) => got.extend(frames),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        at = end;
        // Whatever is buffered is at most an unfinished frame within the limit.
        assert!(
            decoder.pending_bytes() < LENGTH_BYTES + limit,
            "{} bytes buffered with a limit of {limit}",
            decoder.pending_bytes()
        );
    }

    assert!(
        got.len() <= expected.len(),
        "more frames than the stream holds"
    );
    for (a, b) in got.iter().zip(&expected) {
        assert_eq!(a.as_slice(), *b, "a frame differs from the stream's");
    }
    match error {
        Some(e) => {
            // Frames completed in the chunk that also held the bad prefix are dropped with
            // it (the stream is closed anyway): only a prefix of the frames is required.
            assert_eq!(Some(e), expected_error, "an error the stream does not hold");
        }
        None => {
            assert_eq!(expected_error, None, "an error went unnoticed");
            assert_eq!(got.len(), expected.len(), "frames went missing");
            assert_eq!(decoder.pending_bytes(), expected_pending);
        }
    }
    for frame in &got {
        let framed = encode_frame(frame);
        assert_eq!(&framed[LENGTH_BYTES..], frame.as_slice());
    }
});
