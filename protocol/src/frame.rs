//! Framing on a QUIC stream: each message is `[length u32 LE][postcard payload]`.
//!
//! The decoder is fed whatever bytes arrive, in any split, and yields whole payloads. A length
//! above the limit is refused before anything is buffered, so a peer cannot make us allocate
//! more than one frame's worth.

/// Bytes of the length prefix.
pub const LENGTH_BYTES: usize = 4;

/// Why a stream's bytes cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("empty frame")]
    Empty,
}

/// Prefixes `payload` with its length.
///
/// # Panics
/// When `payload` is longer than `u32::MAX` (callers cap message sizes far below that).
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frames are capped far below 4 GiB");
    let mut out = Vec::with_capacity(LENGTH_BYTES + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reassembles frames from a byte stream.
#[derive(Debug)]
pub struct FrameDecoder {
    limit: usize,
    buffer: Vec<u8>,
}

impl FrameDecoder {
    /// `limit`: the largest payload accepted.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            buffer: Vec::new(),
        }
    }

    /// Adds received bytes; returns every payload now complete, in order. After an error the
    /// stream cannot be resynchronized: the caller closes it.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        self.buffer.extend_from_slice(bytes);
        let mut frames = Vec::new();
        let mut at = 0;
        loop {
            let rest = &self.buffer[at..];
            if rest.len() < LENGTH_BYTES {
                break;
            }
            let len =
                u32::from_le_bytes(rest[..LENGTH_BYTES].try_into().expect("4 bytes")) as usize;
            if len > self.limit {
                return Err(FrameError::TooLarge {
                    len,
                    limit: self.limit,
                });
            }
            if len == 0 {
                return Err(FrameError::Empty);
            }
            if rest.len() < LENGTH_BYTES + len {
                break;
            }
            frames.push(rest[LENGTH_BYTES..LENGTH_BYTES + len].to_vec());
            at += LENGTH_BYTES + len;
        }
        self.buffer.drain(..at);
        Ok(frames)
    }

    /// Bytes received but not yet part of a whole frame.
    pub fn pending_bytes(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_come_out_whole_and_in_order() {
        let stream: Vec<u8> = [b"alpha".as_slice(), b"b", &[7u8; 300]]
            .iter()
            .flat_map(|p| encode_frame(p))
            .collect();
        for split in [1, 2, 3, 5, 7, 64, stream.len()] {
            let mut decoder = FrameDecoder::new(1024);
            let mut out = Vec::new();
            for chunk in stream.chunks(split) {
                out.extend(decoder.push(chunk).unwrap());
            }
            assert_eq!(out, vec![b"alpha".to_vec(), b"b".to_vec(), vec![7u8; 300]]);
            assert_eq!(decoder.pending_bytes(), 0);
        }
    }

    #[test]
    fn an_oversized_or_empty_frame_is_refused_before_buffering() {
        let mut decoder = FrameDecoder::new(100);
        let err = decoder.push(&(1u32 << 30).to_le_bytes()).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: 1 << 30,
                limit: 100
            }
        );
        let mut decoder = FrameDecoder::new(100);
        assert_eq!(decoder.push(&[0, 0, 0, 0]).unwrap_err(), FrameError::Empty);
    }
}
