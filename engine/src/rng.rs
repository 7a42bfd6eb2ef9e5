//! Seeded, named random streams (determinism rule 8).
//!
//! A generator is never stored in the world: it is derived on the spot from
//! (universe seed, stream, keys) — e.g. (seed, Autopilot, ship id, tick). That makes every
//! random draw reproducible from state the world already hashes and persists, with no
//! generator state to checkpoint.

use bevy_ecs::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The universe seed every stream is derived from.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniverseSeed(pub u64);

/// Named streams: adding a variant never changes the draws of the existing ones, because the
/// discriminant is fixed explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum RngStream {
    SectorGeneration = 1,
    Spawn = 2,
    Autopilot = 3,
    /// `astroboids.random` of a ship's script, keyed by (ship, tick).
    Script = 4,
    /// For tests and tools that need their own reproducible stream.
    Test = 99,
}

/// SplitMix64 finalizer: a bijective mix so nearby keys give unrelated seeds.
const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit seed for (universe seed, stream, keys). Stable across platforms and
/// releases: changing it changes every generated universe, so it is pinned by a test.
pub fn derive_seed(universe_seed: u64, stream: RngStream, keys: &[u64]) -> u64 {
    let mut acc = mix64(universe_seed ^ 0x9e37_79b9_7f4a_7c15);
    acc = mix64(acc ^ (stream as u64));
    for &key in keys {
        acc = mix64(acc.wrapping_add(0x9e37_79b9_7f4a_7c15) ^ key);
    }
    acc
}

/// A ChaCha8 generator for (universe seed, stream, keys).
pub fn stream_rng(universe_seed: u64, stream: RngStream, keys: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(universe_seed, stream, keys))
}

/// Packs a signed coordinate into a key without collisions between x and y.
pub fn coord_key(x: i32, y: i32) -> u64 {
    ((x as u32 as u64) << 32) | (y as u32 as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn derived_seeds_are_pinned() {
        // Golden values: if this changes, every universe changes; bump the generator version.
        let golden = derive_seed(7, RngStream::Test, &[1, 2, 3]);
        assert_eq!(golden, derive_seed(7, RngStream::Test, &[1, 2, 3]));
        assert_eq!(format!("{golden:016x}"), "8639c070770557a9");
    }

    #[test]
    fn streams_keys_and_seeds_are_independent() {
        let a = derive_seed(1, RngStream::Autopilot, &[5, 9]);
        assert_ne!(a, derive_seed(2, RngStream::Autopilot, &[5, 9]));
        assert_ne!(a, derive_seed(1, RngStream::Spawn, &[5, 9]));
        assert_ne!(a, derive_seed(1, RngStream::Autopilot, &[9, 5]));
        assert_ne!(coord_key(1, -1), coord_key(-1, 1));
    }

    #[test]
    fn stream_rng_is_reproducible() {
        let mut a = stream_rng(3, RngStream::Test, &[4]);
        let mut b = stream_rng(3, RngStream::Test, &[4]);
        let xs: Vec<u32> = (0..8).map(|_| a.random()).collect();
        let ys: Vec<u32> = (0..8).map(|_| b.random()).collect();
        assert_eq!(xs, ys);
    }
}
