//! Byte buffers of dropped memory images, kept for the next images.
//!
//! A checkpoint of thousands of scripts copies each one's memory into a new buffer (see
//! `memory_image.rs`), and the checkpoint writer drops them all once the checkpoint is stored.
//! Memory new to the process costs the kernel a zeroed page per 4 KiB on first touch, and the
//! allocator hands freed memory back to the kernel between checkpoints (a second or more
//! apart). Taking 10k states spent about two thirds of the script workers' time zeroing pages
//! (perf: `clear_page_rep`). Buffers kept here are reused as they are.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// The most bytes of buffers the process keeps: about the images of a checkpoint of 16k
/// scripts using 16 KiB each. Beyond it, dropped buffers are freed.
const KEPT_BYTES_MAX: usize = 256 << 20;

/// The buffers every image takes from and gives back to.
static SHARED: BufferPool = BufferPool::new(KEPT_BYTES_MAX);

/// An empty buffer that holds `len` bytes without growing (see [`BufferPool::take`]).
pub(crate) fn take(len: usize) -> Vec<u8> {
    SHARED.take(len)
}

/// Keeps `buffer` for a later [`take`] (see [`BufferPool::give_back`]).
pub(crate) fn give_back(buffer: Vec<u8>) {
    SHARED.give_back(buffer);
}

/// Readies a buffer for an image of `len` bytes (see [`BufferPool::warm`]).
pub(crate) fn warm(len: usize) {
    SHARED.warm(len);
}

/// Empty buffers by capacity, up to a total capacity.
struct BufferPool {
    kept: Mutex<Kept>,
    bytes_max: usize,
}

struct Kept {
    /// Never holds an empty list.
    by_capacity: BTreeMap<usize, Vec<Vec<u8>>>,
    bytes: usize,
}

impl BufferPool {
    const fn new(bytes_max: usize) -> Self {
        Self {
            kept: Mutex::new(Kept {
                by_capacity: BTreeMap::new(),
                bytes: 0,
            }),
            bytes_max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        // The lists stay consistent at every step, so a panic elsewhere left nothing broken.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty buffer that holds `len` bytes without growing: a kept one of at least that
    /// capacity and at most twice it (an image lives as long as a checkpoint; much more than
    /// it needs would be held that long), else a new one.
    fn take(&self, len: usize) -> Vec<u8> {
        if len == 0 {
            return Vec::new();
        }
        let mut kept = self.lock();
        let Some(capacity) = kept
            .by_capacity
            .range(len..=len.saturating_mul(2))
            .next()
            .map(|(capacity, _)| *capacity)
        else {
            drop(kept);
            return Vec::with_capacity(len);
        };
        let list = kept.by_capacity.get_mut(&capacity).expect("found above");
        let buffer = list.pop().expect("no list is kept empty");
        if list.is_empty() {
            kept.by_capacity.remove(&capacity);
        }
        kept.bytes -= capacity;
        buffer
    }

    /// Keeps `buffer`, emptied, for a later [`Self::take`], unless the pool is full.
    fn give_back(&self, mut buffer: Vec<u8>) {
        let capacity = buffer.capacity();
        if capacity == 0 {
            return;
        }
        let mut kept = self.lock();
        if kept.bytes + capacity > self.bytes_max {
            return;
        }
        buffer.clear();
        kept.bytes += capacity;
        kept.by_capacity.entry(capacity).or_default().push(buffer);
    }

    /// Keeps a new buffer of `len` bytes whose pages the kernel has already zeroed, unless the
    /// pool is full: the first checkpoint of a process then finds its images' buffers ready
    /// instead of paying for every page on that checkpoint's ticks. Never takes a kept buffer,
    /// so warming one image after another grows the pool.
    fn warm(&self, len: usize) {
        if len == 0 || self.lock().bytes + len > self.bytes_max {
            return;
        }
        let mut buffer = Vec::with_capacity(len);
        // Written, not just allocated: a page is only backed (and zeroed) once touched. Not
        // with zeros: `vec![0; len]` may hand out fresh, untouched memory the kernel will
        // zero on first touch, which is what warming is for.
        buffer.resize(len, 0xa5);
        self.give_back(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(len: usize) -> Vec<u8> {
        let mut buffer = Vec::with_capacity(len);
        buffer.resize(len, 7);
        buffer
    }

    /// Gives `pool` a used buffer of `len` bytes; returns where it lies.
    fn give_back_filled(pool: &BufferPool, len: usize) -> *const u8 {
        let buffer = filled(len);
        let address = buffer.as_ptr();
        pool.give_back(buffer);
        address
    }

    #[test]
    fn a_buffer_given_back_is_taken_again_empty_for_a_length_it_holds() {
        let pool = BufferPool::new(1 << 20);
        let address = give_back_filled(&pool, 16 << 10);
        let again = pool.take(12 << 10);
        assert_eq!(again.as_ptr(), address, "the same allocation");
        assert!(again.is_empty());
        assert!(again.capacity() >= 12 << 10);
        let other = pool.take(12 << 10);
        assert_ne!(other.as_ptr(), address, "taken once, it is no longer kept");
    }

    #[test]
    fn a_warmed_buffer_is_kept_and_taken_for_its_length_until_the_pool_is_full() {
        let pool = BufferPool::new(40 << 10);
        pool.warm(16 << 10);
        pool.warm(16 << 10);
        pool.warm(16 << 10);
        assert_eq!(pool.lock().bytes, 32 << 10, "the third does not fit");
        let (a, b) = (pool.take(16 << 10), pool.take(16 << 10));
        assert!(a.capacity() >= 16 << 10 && b.capacity() >= 16 << 10);
        assert_ne!(a.as_ptr(), b.as_ptr());
        assert_eq!(pool.lock().bytes, 0, "both were the warmed ones");
        pool.warm(0);
        assert_eq!(pool.lock().bytes, 0);
    }

    #[test]
    fn a_buffer_too_small_or_more_than_twice_too_large_is_not_taken() {
        let pool = BufferPool::new(1 << 20);
        let small_address = give_back_filled(&pool, 4 << 10);
        let big_address = give_back_filled(&pool, 64 << 10);
        let taken = pool.take(8 << 10);
        assert!(taken.as_ptr() != small_address && taken.as_ptr() != big_address);
        assert!(taken.capacity() >= 8 << 10);
        let (small, big) = (pool.take(4 << 10), pool.take(40 << 10));
        assert_eq!(small.as_ptr(), small_address);
        assert_eq!(big.as_ptr(), big_address);
    }

    #[test]
    fn the_pool_keeps_no_more_than_its_limit() {
        let pool = BufferPool::new(40 << 10);
        for _ in 0..3 {
            pool.give_back(filled(16 << 10));
        }
        assert_eq!(
            pool.lock().bytes,
            32 << 10,
            "two of 16 KiB fit in 40 KiB, the third was freed"
        );
        pool.take(16 << 10);
        pool.take(16 << 10);
        assert_eq!(pool.lock().bytes, 0, "both taken");
        assert!(pool.lock().by_capacity.is_empty(), "no empty list is kept");
    }
}
