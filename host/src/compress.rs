//! Compression for checkpoints and replay chunks (zstd). Checkpoints are mostly zero pages of
//! script memory and repeated ship records; replays are runs of similar tick records.

/// zstd level for checkpoints written while the world waits (speed first).
pub const CHECKPOINT_LEVEL: i32 = 1;
/// zstd level for replay chunks (written once, read many times).
pub const REPLAY_LEVEL: i32 = 6;

pub fn pack(bytes: &[u8], level: i32) -> Vec<u8> {
    zstd::bulk::compress(bytes, level).expect("compressing into a growable buffer cannot fail")
}

/// As [`pack`], into `packed` (emptied first): a writer that keeps one buffer for every
/// checkpoint has the kernel zero its pages once, not at every checkpoint.
pub fn pack_into(bytes: &[u8], level: i32, packed: &mut Vec<u8>) {
    packed.clear();
    packed.reserve(zstd::zstd_safe::compress_bound(bytes.len()));
    zstd::bulk::Compressor::new(level)
        .and_then(|mut compressor| compressor.compress_to_buffer(bytes, packed))
        .expect("the buffer holds zstd's bound for the input");
}

/// Decompresses `bytes`, refusing to produce more than `limit` bytes (a damaged or hostile
/// file must not make us allocate without bound).
pub fn unpack(bytes: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut decoder = zstd::stream::read::Decoder::new(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    (&mut decoder)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decompress: {e}"))?;
    if out.len() > limit {
        return Err(format!("decompresses to more than {limit} bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_into_a_used_buffer_gives_what_pack_gives() {
        let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let mut packed = vec![9u8; 100_000];
        pack_into(&bytes, CHECKPOINT_LEVEL, &mut packed);
        assert_eq!(packed, pack(&bytes, CHECKPOINT_LEVEL));
        pack_into(&bytes[..10], CHECKPOINT_LEVEL, &mut packed);
        assert_eq!(unpack(&packed, 10).unwrap(), &bytes[..10]);
    }

    #[test]
    fn round_trips_and_bounds_the_output() {
        let data = vec![0u8; 1 << 20];
        let packed = pack(&data, CHECKPOINT_LEVEL);
        assert!(packed.len() < 1024, "zero pages compress: {}", packed.len());
        assert_eq!(unpack(&packed, 1 << 20).unwrap(), data);
        let err = unpack(&packed, 1000).unwrap_err();
        assert!(err.contains("more than 1000 bytes"), "{err}");
        assert!(unpack(b"not zstd at all", 1000).is_err());
    }
}
