//! The state hash: one 64-bit digest over all sim state, in stable-id order, floats
//! canonicalized. Each plugin registers a named contribution; the parts are kept separate so
//! a mismatch can be narrowed down to the plugin whose state diverged.

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
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

/// A function that feeds one plugin's replicated state into the hasher, in stable order.
pub type HashContribution = fn(&mut World, &mut StateHasher);

/// A function that feeds one plugin's state into one hasher per partition (see
/// [`PartitionHashers`]).
pub type PartitionedContribution = fn(&mut World, &mut PartitionHashers);

/// A function that reports counters whose hash is taken over their sums (see [`HashScope`]).
pub type SummedContribution = fn(&World) -> Vec<u64>;

/// How expensive a hash part is to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashCost {
    /// Proportional to the number of entities: fine to hash every tick.
    Cheap,
    /// Proportional to bulk data (script memory): hashed at checkpoint ticks by recorders,
    /// always by [`StateHashExt::state_hash`].
    Heavy,
}

/// How a part's digest is formed, so that a world split over several processes (each holding
/// some partitions) yields the same hash as the whole world in one process: each process
/// computes its [`HashShares`], and [`HashShares::merge`] combines them.
#[derive(Debug, Clone, Copy)]
pub enum HashScope {
    /// State every process holds a full copy of (the tick, the seed, the id allocator): the
    /// shares must agree.
    Replicated(HashContribution),
    /// Counters each process keeps for its own partitions: the digest is taken over their sums.
    Summed(SummedContribution),
    /// State that lives in exactly one partition (the caller's choice of key, e.g. a sector):
    /// the digest folds the partitions' digests in key order.
    Partitioned(PartitionedContribution),
}

/// One hasher per partition key, created on first use. A partition nobody writes to leaves
/// no trace, so an empty partition hashes the same whether a process holds it or not.
#[derive(Default)]
pub struct PartitionHashers {
    hashers: BTreeMap<u64, StateHasher>,
}

impl PartitionHashers {
    /// The hasher of partition `key`.
    pub fn partition(&mut self, key: u64) -> &mut StateHasher {
        self.hashers.entry(key).or_default()
    }

    fn finish(&self) -> BTreeMap<u64, u64> {
        self.hashers.iter().map(|(k, h)| (*k, h.finish())).collect()
    }
}

/// The registered contributions, kept in registration order (plugins are added in a fixed
/// order, so this order is stable too).
#[derive(Resource, Default)]
pub struct StateHashRegistry {
    parts: Vec<(&'static str, HashScope, HashCost)>,
}

impl StateHashRegistry {
    /// Registers a [`HashCost::Cheap`], [`HashScope::Replicated`] part.
    ///
    /// # Panics
    /// When `name` is registered twice: two plugins would be indistinguishable in a diff.
    pub fn register(&mut self, name: &'static str, contribution: HashContribution) {
        self.register_scoped(name, HashScope::Replicated(contribution), HashCost::Cheap);
    }

    /// Registers a part of any scope and cost.
    ///
    /// # Panics
    /// When `name` is registered twice.
    pub fn register_scoped(&mut self, name: &'static str, scope: HashScope, cost: HashCost) {
        assert!(
            self.parts.iter().all(|(existing, ..)| *existing != name),
            "state hash part {name:?} registered twice"
        );
        self.parts.push((name, scope, cost));
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

/// One process's contribution to the hash of one part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartShare {
    Replicated(u64),
    Summed(Vec<u64>),
    /// Digest per partition key, in key order.
    Partitioned(BTreeMap<u64, u64>),
}

/// What one process knows of the world's hash: every part's share, in registration order.
/// The shares of processes holding disjoint partitions of one world merge into the shares of
/// the whole world, and [`HashShares::finish`] gives its [`StateHash`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashShares {
    pub parts: Vec<(String, PartShare)>,
}

/// Why shares cannot be merged: they do not come from disjoint pieces of one world.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("no shares to merge")]
    Empty,
    #[error("the shares have different parts ({0:?} vs {1:?})")]
    Parts(Vec<String>, Vec<String>),
    #[error("replicated part {part:?} differs between shares ({a:016x} vs {b:016x})")]
    Replicated { part: String, a: u64, b: u64 },
    #[error("summed part {part:?} has {a} counters in one share and {b} in another")]
    Counters { part: String, a: usize, b: usize },
    #[error("part {part:?} has a different scope in another share")]
    Scope { part: String },
    #[error("partition {key:#x} of part {part:?} is in two shares")]
    Overlap { part: String, key: u64 },
}

impl HashShares {
    /// The names of the parts, in order.
    pub fn names(&self) -> Vec<String> {
        self.parts.iter().map(|p| p.0.clone()).collect()
    }

    /// Combines the shares of processes that hold disjoint partitions of one world.
    pub fn merge<'a>(shares: impl IntoIterator<Item = &'a HashShares>) -> Result<Self, MergeError> {
        let mut shares = shares.into_iter();
        let mut merged = shares.next().ok_or(MergeError::Empty)?.clone();
        for share in shares {
            if share.names() != merged.names() {
                return Err(MergeError::Parts(merged.names(), share.names()));
            }
            for ((name, into), (_, from)) in merged.parts.iter_mut().zip(&share.parts) {
                match (into, from) {
                    (PartShare::Replicated(a), PartShare::Replicated(b)) => {
                        if a != b {
                            return Err(MergeError::Replicated {
                                part: name.clone(),
                                a: *a,
                                b: *b,
                            });
                        }
                    }
                    (PartShare::Summed(a), PartShare::Summed(b)) => {
                        if a.len() != b.len() {
                            return Err(MergeError::Counters {
                                part: name.clone(),
                                a: a.len(),
                                b: b.len(),
                            });
                        }
                        for (x, y) in a.iter_mut().zip(b) {
                            *x = x.wrapping_add(*y);
                        }
                    }
                    (PartShare::Partitioned(a), PartShare::Partitioned(b)) => {
                        for (key, digest) in b {
                            if a.insert(*key, *digest).is_some() {
                                return Err(MergeError::Overlap {
                                    part: name.clone(),
                                    key: *key,
                                });
                            }
                        }
                    }
                    _ => return Err(MergeError::Scope { part: name.clone() }),
                }
            }
        }
        Ok(merged)
    }

    /// The state hash these shares describe (of the whole world once merged).
    pub fn finish(&self) -> StateHash {
        let mut total = StateHasher::default();
        let mut digests = Vec::with_capacity(self.parts.len());
        for (name, share) in &self.parts {
            let mut part = StateHasher::default();
            match share {
                PartShare::Replicated(digest) => part.write_u64(*digest),
                PartShare::Summed(values) => {
                    for v in values {
                        part.write_u64(*v);
                    }
                }
                PartShare::Partitioned(digests) => {
                    part.write_u64(digests.len() as u64);
                    for (key, digest) in digests {
                        part.write_u64(*key);
                        part.write_u64(*digest);
                    }
                }
            }
            let digest = part.finish();
            total.inner.update(name.as_bytes());
            total.write_u64(digest);
            digests.push((intern(name), digest));
        }
        StateHash {
            total: total.finish(),
            parts: digests,
        }
    }
}

/// Part names are `&'static str` in [`StateHash`]; shares carry them as owned strings (they
/// cross processes). The set of names is fixed by the registered plugins, so leaking each
/// distinct name once is bounded.
fn intern(name: &str) -> &'static str {
    use std::sync::Mutex;
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.iter().find(|n| **n == name) {
        return known;
    }
    assert!(
        names.len() < 1024,
        "more than 1024 distinct state hash part names"
    );
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.push(leaked);
    leaked
}

/// `world.state_hash()`.
pub trait StateHashExt {
    /// Every part: the world's identity.
    fn state_hash(&mut self) -> StateHash;
    /// Only the [`HashCost::Cheap`] parts (their own total): what replays check every tick.
    fn quick_state_hash(&mut self) -> StateHash;
    /// This process's shares of every part (or only the cheap ones), to be merged with the
    /// shares of the processes holding the rest of the world.
    fn hash_shares(&mut self, cost: Option<HashCost>) -> HashShares;
}

impl StateHashExt for World {
    fn state_hash(&mut self) -> StateHash {
        self.hash_shares(None).finish()
    }

    fn quick_state_hash(&mut self) -> StateHash {
        self.hash_shares(Some(HashCost::Cheap)).finish()
    }

    fn hash_shares(&mut self, cost: Option<HashCost>) -> HashShares {
        let parts: Vec<(&'static str, HashScope)> = self
            .get_resource::<StateHashRegistry>()
            .map(|registry| {
                registry
                    .parts
                    .iter()
                    .filter(|p| cost.is_none_or(|c| c == p.2))
                    .map(|p| (p.0, p.1))
                    .collect()
            })
            .unwrap_or_default();
        let parts = parts
            .into_iter()
            .map(|(name, scope)| {
                let share = match scope {
                    HashScope::Replicated(contribution) => {
                        let mut h = StateHasher::default();
                        contribution(self, &mut h);
                        PartShare::Replicated(h.finish())
                    }
                    HashScope::Summed(counters) => PartShare::Summed(counters(self)),
                    HashScope::Partitioned(contribution) => {
                        let mut hashers = PartitionHashers::default();
                        contribution(self, &mut hashers);
                        PartShare::Partitioned(hashers.finish())
                    }
                };
                (name.to_owned(), share)
            })
            .collect();
        HashShares { parts }
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
        registry.register_scoped("bulk", HashScope::Replicated(bulk), HashCost::Heavy);
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

    /// A toy world split in two: items keyed by partition, a counter, a replicated value.
    #[derive(Resource, Clone)]
    struct Toy {
        items: Vec<(u64, u64)>,
        counter: u64,
        shared: u64,
    }

    fn toy_registry() -> StateHashRegistry {
        fn items(world: &mut World, h: &mut PartitionHashers) {
            for (key, value) in &world.resource::<Toy>().items {
                h.partition(*key).write_u64(*value);
            }
        }
        fn counter(world: &World) -> Vec<u64> {
            vec![world.resource::<Toy>().counter]
        }
        fn shared(world: &mut World, h: &mut StateHasher) {
            h.write_u64(world.resource::<Toy>().shared);
        }
        let mut registry = StateHashRegistry::default();
        registry.register("shared", shared);
        registry.register_scoped("counter", HashScope::Summed(counter), HashCost::Cheap);
        registry.register_scoped("items", HashScope::Partitioned(items), HashCost::Cheap);
        registry
    }

    fn toy_world(toy: Toy) -> World {
        let mut world = World::new();
        world.insert_resource(toy_registry());
        world.insert_resource(toy);
        world
    }

    #[test]
    fn shares_of_disjoint_pieces_merge_into_the_whole_worlds_hash() {
        let whole = Toy {
            items: vec![(1, 10), (2, 20), (2, 21), (7, 70)],
            counter: 5,
            shared: 99,
        };
        let left = Toy {
            items: vec![(2, 20), (2, 21)],
            counter: 3,
            ..whole.clone()
        };
        let right = Toy {
            items: vec![(1, 10), (7, 70)],
            counter: 2,
            ..whole.clone()
        };
        let expected = toy_world(whole).state_hash();
        let shares = [
            toy_world(left).hash_shares(None),
            toy_world(right).hash_shares(None),
        ];
        let merged = HashShares::merge(&shares).unwrap().finish();
        assert_eq!(merged, expected);
        let reversed = HashShares::merge(shares.iter().rev()).unwrap().finish();
        assert_eq!(reversed, expected, "merge order does not matter");
    }

    #[test]
    fn shares_that_cannot_come_from_one_world_are_refused_by_name() {
        let a = Toy {
            items: vec![(1, 10)],
            counter: 0,
            shared: 1,
        };
        let overlapping = toy_world(a.clone()).hash_shares(None);
        let err = HashShares::merge([&overlapping, &overlapping]).unwrap_err();
        assert_eq!(
            err,
            MergeError::Overlap {
                part: "items".into(),
                key: 1
            }
        );
        let other_shared = toy_world(Toy {
            items: vec![],
            shared: 2,
            ..a.clone()
        })
        .hash_shares(None);
        let err = HashShares::merge([&overlapping, &other_shared]).unwrap_err();
        assert!(matches!(err, MergeError::Replicated { ref part, .. } if part == "shared"));
        assert_eq!(HashShares::merge([]).unwrap_err(), MergeError::Empty);
    }

    #[test]
    fn an_empty_partition_leaves_no_trace() {
        let with_empty_key = |items| {
            toy_world(Toy {
                items,
                counter: 0,
                shared: 0,
            })
            .state_hash()
        };
        assert_ne!(with_empty_key(vec![(3, 0)]), with_empty_key(vec![]));
        assert_eq!(
            toy_world(Toy {
                items: vec![],
                counter: 0,
                shared: 0
            })
            .hash_shares(None)
            .parts[2]
                .1,
            PartShare::Partitioned(BTreeMap::new())
        );
    }
}
