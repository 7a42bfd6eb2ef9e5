//! A script's memory as checkpoints hold it: its size and only the chunks that are not all zero.
//!
//! Every instance has at least one 64 KiB page, and a typical ship script touches a few KiB of
//! it (the example miner: 4 of its 16 4-KiB pages). Copying whole memories made a checkpoint of
//! 10,000 scripted ships copy 655 MB on the tick thread; skipping zero chunks copies what the
//! scripts actually use. The image serializes exactly as the whole memory's bytes would (one
//! byte string), so stored checkpoints and replays keep their format.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::image_buffers;

/// Granularity of the zero test: small enough that a few live bytes do not keep much zero
/// around, large enough that the index stays a small fraction of the image.
pub const IMAGE_CHUNK_BYTES: usize = 1024;

/// A memory's contents: `len` bytes, of which only the chunks in `chunks` are not all zero.
/// Canonical (the same contents always give the same image), so equality is content equality.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MemoryImage {
    len: u64,
    /// Indexes of the stored chunks, ascending.
    chunks: Vec<u32>,
    /// The stored chunks back to back (the last chunk of the memory may be short).
    bytes: Vec<u8>,
}

impl MemoryImage {
    /// The image of `memory`.
    pub fn of(memory: &[u8]) -> Self {
        Self::of_skipping(memory, |_| false)
    }

    /// The image of `memory`, not reading the chunks `known_zero` vouches for (pages never
    /// touched: see `untouched_pages.rs`). The same image as [`Self::of`] whenever those chunks
    /// are indeed zero.
    pub(crate) fn of_skipping(memory: &[u8], known_zero: impl Fn(Range<usize>) -> bool) -> Self {
        // Which chunks first, then one allocation of the exact size: growing the bytes as
        // chunks are found reallocates and copies them several times, and at thousands of
        // scripts a checkpoint's copy is bound by memory traffic. The second read finds the
        // chunks in cache.
        let chunks: Vec<u32> = nonzero_chunks(memory, known_zero)
            .map(|(index, _)| index)
            .collect();
        let stored = chunks
            .iter()
            .map(|&index| chunk_range(memory.len(), index).len())
            .sum();
        let mut bytes = image_buffers::take(stored);
        for &index in &chunks {
            bytes.extend_from_slice(&memory[chunk_range(memory.len(), index)]);
        }
        Self {
            len: memory.len() as u64,
            chunks,
            bytes,
        }
    }

    /// How many bytes [`Self::of_skipping`] would store for `memory`: its non-zero chunks, read
    /// but not copied.
    pub(crate) fn stored_bytes_of_skipping(
        memory: &[u8],
        known_zero: impl Fn(Range<usize>) -> bool,
    ) -> usize {
        nonzero_chunks(memory, known_zero)
            .map(|(_, chunk)| chunk.len())
            .sum()
    }

    /// Each stored chunk's index and bytes, in order: what [`nonzero_chunks`] gave.
    pub(crate) fn indexed_chunks(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.chunks
            .iter()
            .zip(self.stored_chunks())
            .map(|(&index, (_, bytes))| (index, bytes))
    }

    /// The memory's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes actually held (the non-zero chunks).
    pub fn stored_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The whole memory.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut memory = vec![0; self.len as usize];
        self.copy_chunks_into(&mut memory);
        memory
    }

    /// Makes `memory` (exactly [`Self::len`] bytes) hold this image: stored chunks copied,
    /// everything else zeroed.
    pub fn write_to(&self, memory: &mut [u8]) {
        self.write_to_skipping(memory, |_| false);
    }

    /// As [`Self::write_to`], leaving alone the zero ranges `known_zero` vouches for (pages
    /// never touched stay untouched, so later captures need not read them either).
    pub(crate) fn write_to_skipping(
        &self,
        memory: &mut [u8],
        known_zero: impl Fn(Range<usize>) -> bool,
    ) {
        assert_eq!(
            memory.len() as u64,
            self.len,
            "an image is written to a memory of its own size"
        );
        let mut zero_from = 0;
        let zero_gap = |memory: &mut [u8], gap: Range<usize>| {
            // Chunk by chunk, so that untouched pages inside a gap stay untouched.
            let mut start = gap.start;
            while start < gap.end {
                let end = (start + IMAGE_CHUNK_BYTES).min(gap.end);
                if !known_zero(start..end) {
                    memory[start..end].fill(0);
                }
                start = end;
            }
        };
        for (range, _) in self.stored_chunks() {
            zero_gap(memory, zero_from..range.start);
            zero_from = range.end;
        }
        zero_gap(memory, zero_from..memory.len());
        self.copy_chunks_into(memory);
    }

    fn copy_chunks_into(&self, memory: &mut [u8]) {
        for (range, bytes) in self.stored_chunks() {
            memory[range].copy_from_slice(bytes);
        }
    }

    /// Each stored chunk: where it lies in the memory, and its bytes.
    fn stored_chunks(&self) -> impl Iterator<Item = (Range<usize>, &[u8])> {
        let mut stored = 0;
        self.chunks.iter().map(move |&index| {
            let range = chunk_range(self.len as usize, index);
            let bytes = &self.bytes[stored..stored + range.len()];
            stored += range.len();
            (range, bytes)
        })
    }
}

/// Where chunk `index` lies in a memory of `len` bytes (the last chunk may be short).
fn chunk_range(len: usize, index: u32) -> Range<usize> {
    let start = index as usize * IMAGE_CHUNK_BYTES;
    start..(start + IMAGE_CHUNK_BYTES).min(len)
}

/// The chunks of `memory` that are not all zero, with their indexes, in order: what an image
/// stores. The chunks `known_zero` vouches for are not read.
pub(crate) fn nonzero_chunks(
    memory: &[u8],
    known_zero: impl Fn(Range<usize>) -> bool,
) -> impl Iterator<Item = (u32, &[u8])> {
    (0..memory.len().div_ceil(IMAGE_CHUNK_BYTES) as u32).filter_map(move |index| {
        let range = chunk_range(memory.len(), index);
        (!known_zero(range.clone()) && !is_zero(&memory[range.clone()]))
            .then(|| (index, &memory[range]))
    })
}

/// Whether `chunk` is all zero, as one OR over it: no early exit, so it compiles to wide vector
/// ORs (measured ~84 GB/s on cached data here, twice a fold over `u128` words).
fn is_zero(chunk: &[u8]) -> bool {
    chunk.iter().fold(0u8, |acc, &b| acc | b) == 0
}

/// A checkpoint's images are dropped together once it is stored; their buffers serve the next
/// checkpoint's (see `image_buffers.rs`).
impl Drop for MemoryImage {
    fn drop(&mut self) {
        image_buffers::give_back(std::mem::take(&mut self.bytes));
    }
}

impl fmt::Debug for MemoryImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryImage")
            .field("len", &self.len)
            .field("stored_chunks", &self.chunks.len())
            .finish()
    }
}

/// The serialized form: the size, the stored chunks' indexes and their bytes.
#[derive(Serialize)]
struct StoredImageRef<'a> {
    len: u64,
    chunks: &'a [u32],
    #[serde(with = "serde_bytes")]
    bytes: &'a [u8],
}

#[derive(Deserialize)]
struct StoredImage {
    len: u64,
    chunks: Vec<u32>,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

/// The largest memory a wasm32 module can have (65,536 pages of 64 KiB).
const MAX_IMAGE_LEN: u64 = 1 << 32;

impl Serialize for MemoryImage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredImageRef {
            len: self.len,
            chunks: &self.chunks,
            bytes: &self.bytes,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MemoryImage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = StoredImage::deserialize(deserializer)?;
        MemoryImage::from_stored(stored).map_err(de::Error::custom)
    }
}

impl MemoryImage {
    /// Checks what a file claims: a wasm32-sized memory, chunks ascending inside it, exactly
    /// their bytes, none of them all zero (so the image is canonical).
    fn from_stored(stored: StoredImage) -> Result<Self, String> {
        let StoredImage { len, chunks, bytes } = stored;
        if len > MAX_IMAGE_LEN {
            return Err(format!(
                "a script memory of {len} bytes is larger than wasm32 allows"
            ));
        }
        let chunk_count = len.div_ceil(IMAGE_CHUNK_BYTES as u64);
        if chunks.windows(2).any(|w| w[0] >= w[1]) {
            return Err("a script memory's chunks are not in ascending order".into());
        }
        if chunks
            .last()
            .is_some_and(|&last| u64::from(last) >= chunk_count)
        {
            return Err(format!(
                "a script memory's chunk lies beyond its {len} bytes"
            ));
        }
        let expected: usize = chunks
            .iter()
            .map(|&i| chunk_range(len as usize, i).len())
            .sum();
        if expected != bytes.len() {
            return Err(format!(
                "a script memory's chunks hold {} bytes, not the {expected} they need",
                bytes.len()
            ));
        }
        let image = Self { len, chunks, bytes };
        if image.stored_chunks().any(|(_, bytes)| is_zero(bytes)) {
            return Err("a script memory stores a chunk of zeros".into());
        }
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_with(len: usize, writes: &[(usize, u8)]) -> Vec<u8> {
        let mut memory = vec![0; len];
        for &(at, value) in writes {
            memory[at] = value;
        }
        memory
    }

    #[test]
    fn keeps_every_byte_and_stores_only_non_zero_chunks() {
        let memory = memory_with(65_536, &[(0, 1), (5_000, 2), (65_535, 3)]);
        let image = MemoryImage::of(&memory);
        assert_eq!(image.to_vec(), memory);
        assert_eq!(image.len(), 65_536);
        assert_eq!(image.stored_bytes(), 3 * IMAGE_CHUNK_BYTES);
        assert_eq!(MemoryImage::of(&vec![0; 65_536]).stored_bytes(), 0);
    }

    #[test]
    fn the_bytes_an_image_would_store_are_counted_without_copying() {
        let memory = memory_with(
            16 * IMAGE_CHUNK_BYTES + 5,
            &[
                (0, 1),
                (IMAGE_CHUNK_BYTES * 9 + 3, 2),
                (16 * IMAGE_CHUNK_BYTES + 4, 3),
            ],
        );
        let known_zero = |range: Range<usize>| range.start >= 12 * IMAGE_CHUNK_BYTES;
        for skip in [
            &(|_: Range<usize>| false) as &dyn Fn(Range<usize>) -> bool,
            &known_zero,
        ] {
            assert_eq!(
                MemoryImage::stored_bytes_of_skipping(&memory, skip),
                MemoryImage::of_skipping(&memory, skip).stored_bytes()
            );
        }
        assert_eq!(
            MemoryImage::stored_bytes_of_skipping(&memory, |_| false),
            2 * IMAGE_CHUNK_BYTES + 5
        );
    }

    #[test]
    fn a_short_last_chunk_round_trips() {
        let memory = memory_with(IMAGE_CHUNK_BYTES * 2 + 7, &[(IMAGE_CHUNK_BYTES * 2 + 6, 9)]);
        let image = MemoryImage::of(&memory);
        assert_eq!(image.stored_bytes(), 7);
        assert_eq!(image.to_vec(), memory);
    }

    #[test]
    fn writing_an_image_replaces_everything_in_the_memory() {
        let memory = memory_with(8 * IMAGE_CHUNK_BYTES, &[(3 * IMAGE_CHUNK_BYTES + 1, 4)]);
        let mut target = vec![0xaa; memory.len()];
        MemoryImage::of(&memory).write_to(&mut target);
        assert_eq!(target, memory);
    }

    #[test]
    fn equal_contents_are_equal_images() {
        let a = memory_with(4096, &[(10, 1)]);
        let mut b = a.clone();
        assert_eq!(MemoryImage::of(&a), MemoryImage::of(&b));
        b[4000] = 1;
        assert_ne!(MemoryImage::of(&a), MemoryImage::of(&b));
        assert_ne!(MemoryImage::of(&a), MemoryImage::of(&a[..2048]));
    }

    #[test]
    fn serializes_only_the_stored_chunks_and_reads_back_the_same() {
        let memory = memory_with(64 * IMAGE_CHUNK_BYTES, &[(1, 1), (2_500, 2)]);
        let image = MemoryImage::of(&memory);
        let encoded = postcard::to_allocvec(&image).unwrap();
        assert!(
            encoded.len() < 2 * IMAGE_CHUNK_BYTES + 16,
            "{}",
            encoded.len()
        );
        assert_eq!(
            postcard::from_bytes::<MemoryImage>(&encoded).unwrap(),
            image
        );
        let json = serde_json::to_string(&image).unwrap();
        assert_eq!(serde_json::from_str::<MemoryImage>(&json).unwrap(), image);
    }

    fn decoded(len: u64, chunks: Vec<u32>, bytes: Vec<u8>) -> Result<MemoryImage, String> {
        MemoryImage::from_stored(StoredImage { len, chunks, bytes })
    }

    #[test]
    fn a_damaged_image_is_refused_with_what_is_wrong() {
        let c = IMAGE_CHUNK_BYTES;
        let err = decoded(1 << 40, vec![], vec![]).unwrap_err();
        assert!(err.contains("larger than wasm32 allows"), "{err}");
        let err = decoded(4 * c as u64, vec![2, 1], vec![1; 2 * c]).unwrap_err();
        assert!(err.contains("ascending"), "{err}");
        let err = decoded(4 * c as u64, vec![4], vec![1; c]).unwrap_err();
        assert!(err.contains("beyond its"), "{err}");
        let err = decoded(4 * c as u64, vec![1], vec![1; c - 1]).unwrap_err();
        assert!(err.contains("not the 1024 they need"), "{err}");
        let err = decoded(4 * c as u64, vec![1], vec![0; c]).unwrap_err();
        assert!(err.contains("chunk of zeros"), "{err}");
        assert!(decoded(c as u64 + 3, vec![1], vec![1; 3]).is_ok());
    }
}
