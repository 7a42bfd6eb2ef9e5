//! The state hash: one 64-bit digest over all sim state, in stable-id order, floats
//! canonicalized. Each plugin registers a named contribution; the parts are kept separate so
//! a mismatch can be narrowed down to the plugin whose state diverged.

use bevy_ecs::prelude::*;
use xxhash_rust::xxh3::Xxh3;

/// Feeds sim state into a stable hash (XXH3-64: a fixed, documented algorithm, unlike std's
/// `DefaultHasher`, whose output may change between Rust releases).
pub struct StateHasher {
    inner: Xxh3,
}

impl Default for StateHasher {
    fn default() -> Self {
        Self { inner: Xxh3::new() }
    }
}

impl StateHasher {
    pub fn write_u64(&mut self, v: u64) {
        self.inner.update(&v.to_le_bytes());
    }
    pub fn write_u32(&mut self, v: u32) {
        self.inner.update(&v.to_le_bytes());
    }
    pub fn write_i32(&mut self, v: i32) {
        self.inner.update(&v.to_le_bytes());
    }
    /// Length-prefixed, so ("ab", "c") and ("a", "bc") hash differently.
    pub fn write_bytes(&mut self, v: &[u8]) {
        self.write_u64(v.len() as u64);
        self.inner.update(v);
    }
    pub fn write_bool(&mut self, v: bool) {
        self.inner.update(&[v as u8]);
    }
    /// Determinism rule 7: -0.0 hashes as 0.0 and every NaN as the one canonical NaN.
    pub fn write_f32(&mut self, v: f32) {
        self.write_u32(canonical_f32_bits(v));
    }
    pub fn finish(&self) -> u64 {
        self.inner.digest()
    }
}

/// The bits of `v` with -0.0 folded into 0.0 and all NaNs into one.
pub fn canonical_f32_bits(v: f32) -> u32 {
    if v.is_nan() {
        f32::NAN.to_bits()
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

/// A function that feeds one plugin's state into the hasher, in stable order.
pub type HashContribution = fn(&mut World, &mut StateHasher);

/// How expensive a hash part is to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashCost {
    /// Proportional to the number of entities: fine to hash every tick.
    Cheap,
    /// Proportional to bulk data (script memory): hashed at checkpoint ticks by recorders,
    /// always by [`StateHashExt::state_hash`].
    Heavy,
}

/// The registered contributions, kept in registration order (plugins are added in a fixed
/// order, so this order is stable too).
#[derive(Resource, Default)]
pub struct StateHashRegistry {
    parts: Vec<(&'static str, HashContribution, HashCost)>,
}

impl StateHashRegistry {
    /// Registers a [`HashCost::Cheap`] part.
    ///
    /// # Panics
    /// When `name` is registered twice: two plugins would be indistinguishable in a diff.
    pub fn register(&mut self, name: &'static str, contribution: HashContribution) {
        self.register_with_cost(name, contribution, HashCost::Cheap);
    }

    /// Registers a [`HashCost::Heavy`] part.
    pub fn register_heavy(&mut self, name: &'static str, contribution: HashContribution) {
        self.register_with_cost(name, contribution, HashCost::Heavy);
    }

    fn register_with_cost(
        &mut self,
        name: &'static str,
        contribution: HashContribution,
        cost: HashCost,
    ) {
        assert!(
            self.parts.iter().all(|(existing, ..)| *existing != name),
            "state hash part {name:?} registered twice"
        );
        self.parts.push((name, contribution, cost));
    }

    /// Part names of the given cost, in order.
    pub fn names(&self, cost: HashCost) -> Vec<&'static str> {
        self.parts
            .iter()
            .filter(|p| p.2 == cost)
            .map(|p| p.0)
            .collect()
    }
}

/// The digest of a world, with the digest of each part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateHash {
    pub total: u64,
    pub parts: Vec<(&'static str, u64)>,
}

impl StateHash {
    pub fn hex(&self) -> String {
        format!("{:016x}", self.total)
    }

    /// Names of the parts whose digest differs from `other`'s.
    pub fn differing_parts(&self, other: &StateHash) -> Vec<&'static str> {
        self.parts
            .iter()
            .zip(&other.parts)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.0)
            .collect()
    }
}

/// `world.state_hash()`.
pub trait StateHashExt {
    /// Every part: the world's identity.
    fn state_hash(&mut self) -> StateHash;
    /// Only the [`HashCost::Cheap`] parts (their own total): what replays check every tick.
    fn quick_state_hash(&mut self) -> StateHash;
}

impl StateHashExt for World {
    fn state_hash(&mut self) -> StateHash {
        hash_parts(self, |_| true)
    }

    fn quick_state_hash(&mut self) -> StateHash {
        hash_parts(self, |cost| cost == HashCost::Cheap)
    }
}

fn hash_parts(world: &mut World, include: impl Fn(HashCost) -> bool) -> StateHash {
    let parts: Vec<(&'static str, HashContribution)> = world
        .get_resource::<StateHashRegistry>()
        .map(|registry| {
            registry
                .parts
                .iter()
                .filter(|p| include(p.2))
                .map(|p| (p.0, p.1))
                .collect()
        })
        .unwrap_or_default();
    let mut total = StateHasher::default();
    let mut digests = Vec::with_capacity(parts.len());
    for (name, contribution) in parts {
        let mut part = StateHasher::default();
        contribution(world, &mut part);
        let digest = part.finish();
        total.inner.update(name.as_bytes());
        total.write_u64(digest);
        digests.push((name, digest));
    }
    StateHash {
        total: total.finish(),
        parts: digests,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_zero_and_nans_hash_like_their_canonical_forms() {
        assert_eq!(canonical_f32_bits(-0.0), canonical_f32_bits(0.0));
        let odd_nan = f32::from_bits(0x7fc0_1234);
        assert!(odd_nan.is_nan());
        assert_eq!(canonical_f32_bits(odd_nan), canonical_f32_bits(f32::NAN));
        assert_ne!(canonical_f32_bits(1.0), canonical_f32_bits(-1.0));
    }

    #[test]
    fn hash_names_the_part_that_differs() {
        #[derive(Resource)]
        struct Counter(u64);
        fn part_a(world: &mut World, h: &mut StateHasher) {
            h.write_u64(world.resource::<Counter>().0);
        }
        fn part_b(_: &mut World, h: &mut StateHasher) {
            h.write_u64(7);
        }
        let mut world = World::new();
        let mut registry = StateHashRegistry::default();
        registry.register("a", part_a);
        registry.register("b", part_b);
        world.insert_resource(registry);
        world.insert_resource(Counter(1));
        let before = world.state_hash();
        world.resource_mut::<Counter>().0 = 2;
        let after = world.state_hash();
        assert_ne!(before.total, after.total);
        assert_eq!(before.differing_parts(&after), vec!["a"]);
    }

    #[test]
    fn the_quick_hash_leaves_out_heavy_parts() {
        #[derive(Resource)]
        struct Bulk(u64);
        fn cheap(_: &mut World, h: &mut StateHasher) {
            h.write_u64(1);
        }
        fn bulk(world: &mut World, h: &mut StateHasher) {
            h.write_u64(world.resource::<Bulk>().0);
        }
        let mut world = World::new();
        let mut registry = StateHashRegistry::default();
        registry.register("cheap", cheap);
        registry.register_heavy("bulk", bulk);
        assert_eq!(registry.names(HashCost::Heavy), vec!["bulk"]);
        world.insert_resource(registry);
        world.insert_resource(Bulk(1));
        let (full, quick) = (world.state_hash(), world.quick_state_hash());
        world.resource_mut::<Bulk>().0 = 2;
        assert_eq!(
            world.quick_state_hash(),
            quick,
            "bulk is not in the quick hash"
        );
        assert_ne!(world.state_hash(), full);
        assert_eq!(quick.parts.len(), 1);
        assert_eq!(full.parts.len(), 2);
    }
}
