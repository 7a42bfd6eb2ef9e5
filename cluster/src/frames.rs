//! Exchanges cut to fit the bus: an encoded exchange larger than one message may be (many
//! scripted ships crossing at once carry their memory with them) travels as several frames,
//! and the receiver puts it back together before the shard sees it. The shard's core works
//! with whole exchanges only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::assignment::ShardId;
use crate::messages::Exchange;

/// The most frames one exchange may be cut into (a bound on what a receiver buffers).
pub const MAX_FRAMES: u32 = 4_096;

/// The most exchanges waiting for frames at once: a shard hears from its neighbours about one
/// tick at a time (and the next one's may start early), so more means a sender gone wrong.
pub const MAX_PENDING_EXCHANGES: usize = 2 * crate::assignment::MAX_SHARDS as usize;

/// One piece of an encoded exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeFrame {
    pub epoch: u64,
    pub tick: u64,
    pub from: ShardId,
    /// This frame's index, `0..count`.
    pub index: u32,
    pub count: u32,
    pub bytes: Vec<u8>,
}

/// An exchange that does not travel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "an exchange of {bytes} bytes from shard {from} at tick {tick} needs more than \
         {MAX_FRAMES} frames of {frame_bytes} bytes"
    )]
    TooLarge {
        from: ShardId,
        tick: u64,
        bytes: usize,
        frame_bytes: usize,
    },
    #[error("frame {index} of {count} from shard {from} at tick {tick} does not fit the others")]
    Inconsistent {
        from: ShardId,
        tick: u64,
        index: u32,
        count: u32,
    },
    #[error(
        "frame from shard {from} at tick {tick}: {MAX_PENDING_EXCHANGES} exchanges already wait \
         for frames"
    )]
    TooManyPending { from: ShardId, tick: u64 },
    #[error("the exchange from shard {from} at tick {tick} does not decode: {why}")]
    Decode {
        from: ShardId,
        tick: u64,
        why: String,
    },
}

/// How many bytes of payload a frame may carry so that the encoded frame stays within
/// `message_bytes` (room left for the frame's own fields).
pub fn frame_payload(message_bytes: usize) -> usize {
    message_bytes.saturating_sub(64).max(1)
}

/// `exchange` encoded and cut into frames of at most `frame_bytes` of payload each.
pub fn split(exchange: &Exchange, frame_bytes: usize) -> Result<Vec<ExchangeFrame>, FrameError> {
    let bytes = postcard::to_allocvec(exchange).expect("protocol messages are plain data");
    let frame_bytes = frame_bytes.max(1);
    let count = bytes.len().div_ceil(frame_bytes).max(1);
    if count > MAX_FRAMES as usize {
        return Err(FrameError::TooLarge {
            from: exchange.from,
            tick: exchange.tick,
            bytes: bytes.len(),
            frame_bytes,
        });
    }
    let frame = |index: usize, bytes: Vec<u8>| ExchangeFrame {
        epoch: exchange.epoch,
        tick: exchange.tick,
        from: exchange.from,
        index: index as u32,
        count: count as u32,
        bytes,
    };
    if count == 1 {
        return Ok(vec![frame(0, bytes)]);
    }
    Ok(bytes
        .chunks(frame_bytes)
        .enumerate()
        .map(|(i, chunk)| frame(i, chunk.to_vec()))
        .collect())
}

/// (epoch, tick, sender): one exchange.
type ExchangeKey = (u64, u64, ShardId);
/// An exchange's frames received so far, by index.
type Slots = Vec<Option<Vec<u8>>>;

/// Frames received, put back into exchanges as each one completes. A repeated frame (a
/// redelivery) changes nothing.
#[derive(Debug, Default)]
pub struct Reassembly {
    partial: BTreeMap<ExchangeKey, Slots>,
}

impl Reassembly {
    /// Takes a frame; returns the exchange it completes, if it does.
    pub fn push(&mut self, frame: ExchangeFrame) -> Result<Option<Exchange>, FrameError> {
        let ExchangeFrame {
            epoch,
            tick,
            from,
            index,
            count,
            bytes,
        } = frame;
        let inconsistent = FrameError::Inconsistent {
            from,
            tick,
            index,
            count,
        };
        if count == 0 || count > MAX_FRAMES || index >= count {
            return Err(inconsistent);
        }
        let key = (epoch, tick, from);
        if !self.partial.contains_key(&key) && self.partial.len() >= MAX_PENDING_EXCHANGES {
            return Err(FrameError::TooManyPending { from, tick });
        }
        let slots = self
            .partial
            .entry(key)
            .or_insert_with(|| vec![None; count as usize]);
        if slots.len() != count as usize {
            return Err(inconsistent);
        }
        slots[index as usize].get_or_insert(bytes);
        if slots.iter().any(Option::is_none) {
            return Ok(None);
        }
        let whole: Vec<u8> = self
            .partial
            .remove(&key)
            .expect("present")
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        postcard::from_bytes(&whole)
            .map(Some)
            .map_err(|e| FrameError::Decode {
                from,
                tick,
                why: e.to_string(),
            })
    }

    /// Forgets partial exchanges of ticks before `tick` (their senders moved on).
    pub fn forget_before(&mut self, tick: u64) {
        self.partial.retain(|(_, t, _), _| *t >= tick);
    }

    /// Exchanges waiting for frames.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use astroboids_sim::checkpoint::SectorDeltaRecord;

    fn exchange(deltas: usize) -> Exchange {
        Exchange {
            epoch: 2,
            tick: 9,
            from: 1,
            deltas: (0..deltas)
                .map(|i| SectorDeltaRecord {
                    x: i as i32,
                    y: -(i as i32),
                    remaining_ore: vec![(i as u16, 7)],
                })
                .collect(),
            ..Exchange::default()
        }
    }

    #[test]
    fn a_small_exchange_is_one_frame_and_a_large_one_many_in_any_order() {
        let small = exchange(1);
        let frames = split(&small, 1_000).unwrap();
        assert_eq!(frames.len(), 1);
        let mut r = Reassembly::default();
        assert_eq!(r.push(frames[0].clone()).unwrap(), Some(small));

        let large = exchange(400);
        let mut frames = split(&large, 100).unwrap();
        assert!(frames.len() > 10);
        assert!(frames.iter().all(|f| f.bytes.len() <= 100));
        frames.reverse();
        let repeat = frames[3].clone();
        let mut r = Reassembly::default();
        let mut done = None;
        for (i, frame) in frames.into_iter().enumerate() {
            if i == 5 {
                assert_eq!(
                    r.push(repeat.clone()).unwrap(),
                    None,
                    "a repeat changes nothing"
                );
            }
            if let Some(whole) = r.push(frame).unwrap() {
                done = Some(whole);
            }
        }
        assert_eq!(done, Some(large));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn frames_that_cannot_be_one_exchange_are_refused_by_name() {
        let mut r = Reassembly::default();
        let mut frames = split(&exchange(50), 40).unwrap();
        r.push(frames.remove(0)).unwrap();
        let mut odd = frames.remove(0);
        odd.count += 1;
        let e = r.push(odd).unwrap_err();
        assert!(e.to_string().contains("does not fit the others"), "{e}");
        let e = split(&exchange(2_000), 1).unwrap_err();
        assert!(matches!(e, FrameError::TooLarge { .. }), "{e}");
        r.forget_before(10);
        assert_eq!(r.pending(), 0);

        // Partial exchanges are bounded.
        for tick in 0..MAX_PENDING_EXCHANGES as u64 {
            let mut first = split(&exchange(50), 40).unwrap().remove(0);
            first.tick = tick;
            assert_eq!(r.push(first).unwrap(), None);
        }
        let mut one_more = split(&exchange(50), 40).unwrap().remove(0);
        one_more.tick = MAX_PENDING_EXCHANGES as u64;
        let e = r.push(one_more).unwrap_err();
        assert!(matches!(e, FrameError::TooManyPending { .. }), "{e}");
    }
}
