//! Stable ids. bevy's `Entity` is reused and differs between runs, so everything that is
//! hashed, persisted, sent or sorted uses a [`NetId`] handed out by a counter in the world.

use bevy_ecs::prelude::*;

/// Stable id of a simulated thing. Allocated in a deterministic order, never reused.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetId(pub u64);

impl std::fmt::Display for NetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Hands out [`NetId`]s in increasing order; part of the state hash.
#[derive(Resource, Debug, Clone)]
pub struct NetIdAllocator {
    next: u64,
}

impl Default for NetIdAllocator {
    fn default() -> Self {
        // 0 is left out so that a zeroed buffer never names a real thing.
        Self { next: 1 }
    }
}

impl NetIdAllocator {
    pub fn allocate(&mut self) -> NetId {
        let id = NetId(self.next);
        self.next = self
            .next
            .checked_add(1)
            .expect("NetId space exhausted (2^64 ids)");
        id
    }

    /// An allocator whose next id is `next` (restoring a checkpoint).
    pub fn starting_at(next: NetId) -> Self {
        Self {
            next: next.0.max(1),
        }
    }

    /// The id the next call to [`Self::allocate`] returns.
    pub fn peek_next(&self) -> NetId {
        NetId(self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_increasing_and_never_zero() {
        let mut ids = NetIdAllocator::default();
        let a = ids.allocate();
        let b = ids.allocate();
        assert_eq!(a, NetId(1));
        assert!(b > a);
        assert_eq!(ids.peek_next(), NetId(3));
    }
}
