//! What the fuzz targets (`fuzz_targets/`) and the seed generator (`src/bin/make_seeds.rs`)
//! share: the byte layouts that carry several pieces in one fuzz input, and the replay
//! container. A seed written with [`join_records`] is read back by [`split_records`], so the
//! checked-in corpora are real encodings in exactly the layout the targets expect.
//!
//! Inputs are plain byte layouts rather than `arbitrary` structures wherever a target takes a
//! list of byte strings: libFuzzer's mutations (insert, erase, copy a run of bytes) then act on
//! the encoded payloads themselves, and a seed is a real datagram or chunk, not an
//! `arbitrary`-shaped blob that no encoder produced.

use std::path::PathBuf;

/// Splits `data` into records, each `[length u16 LE][bytes]`. A length running past the end
/// takes what is left, so every input is usable (no early exit on a malformed layout).
pub fn split_records(mut data: &[u8]) -> Vec<&[u8]> {
    let mut records = Vec::new();
    while data.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([data[0], data[1]]));
        let rest = &data[2..];
        let len = len.min(rest.len());
        records.push(&rest[..len]);
        data = &rest[len..];
    }
    records
}

/// The layout [`split_records`] reads.
///
/// # Panics
/// When a record is longer than `u16::MAX` (seeds are small by design).
pub fn join_records<R: AsRef<[u8]>>(records: &[R]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        let record = record.as_ref();
        let len = u16::try_from(record.len()).expect("seed records are under 64 KiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(record);
    }
    out
}

/// Like [`split_records`] with u32 lengths: replay chunks (keyframes) exceed 64 KiB.
pub fn split_large_records(mut data: &[u8]) -> Vec<&[u8]> {
    let mut records = Vec::new();
    while data.len() >= 4 {
        let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let rest = &data[4..];
        let len = len.min(rest.len());
        records.push(&rest[..len]);
        data = &rest[len..];
    }
    records
}

/// The layout [`split_large_records`] reads.
pub fn join_large_records<R: AsRef<[u8]>>(records: &[R]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        let record = record.as_ref();
        let len = u32::try_from(record.len()).expect("records are under 4 GiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(record);
    }
    out
}

/// A replay file around `chunks` (each an uncompressed postcard `Chunk`): magic, format, and
/// each chunk compressed with its checksum, as `host::replay` writes them. Fuzzing the chunks
/// through this reaches the chunk decoder and the replay's consistency checks, which raw file
/// mutations almost never do (any change to a compressed payload fails its checksum).
pub fn replay_file(chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = astroboids_host::replay::REPLAY_MAGIC.to_vec();
    out.extend_from_slice(&astroboids_host::replay::REPLAY_FORMAT.to_le_bytes());
    for chunk in chunks {
        // Level 1: the reader does not care how hard the writer tried, and this runs per input.
        let payload = astroboids_host::compress::pack(chunk, 1);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
    }
    out
}

/// The uncompressed chunks of a well-formed replay file (the inverse of [`replay_file`]), for
/// making seeds from recorded replays; `None` when the container is damaged.
pub fn replay_chunks(file: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut at = 12;
    let mut chunks = Vec::new();
    while at < file.len() {
        let len = u32::from_le_bytes(file.get(at..at + 4)?.try_into().ok()?) as usize;
        let payload = file.get(at + 12..at + 12 + len)?;
        chunks.push(astroboids_host::compress::unpack(payload, 1 << 30).ok()?);
        at += 12 + len;
    }
    Some(chunks)
}

/// A fresh directory for one input's files, removed on drop. Under /dev/shm when there is one:
/// the store target opens a sled database per input, and tmpfs keeps that off the disk.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(what: &str) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = match std::path::Path::new("/dev/shm") {
            shm if shm.is_dir() => shm.to_path_buf(),
            _ => std::env::temp_dir(),
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("astroboids-fuzz-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory can be created");
        Self(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The sled trees of a world store, by the index a store-target record names them with
/// (`meta` first). Kept in step with `storage/src/lib.rs`: a tree missing here is one the
/// target cannot plant records in.
pub const STORE_TREES: [&str; 7] = [
    "meta",
    "scripts",
    "script_names",
    "inputs",
    "checkpoints",
    "accounts",
    "sessions",
];

/// One raw record for the store target: `[tree index u8][key length u8][key][value]`.
pub fn store_record(tree: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![tree, u8::try_from(key.len()).expect("keys are short")];
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}
