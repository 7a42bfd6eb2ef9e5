//! The AstroBoids cluster's transport: the thin async layer the shard and leader processes
//! are built on, around the I/O-free core of `astroboids-cluster`.
//!
//! - [`coordination`]: etcd. A lease per process (kept alive in the background; losing it is
//!   reported), shard registration bound to it (a dead shard's key disappears within the TTL),
//!   leader election with a fence (the election key's create revision), and small JSON config
//!   keys with compare-and-swap.
//! - [`bus`]: NATS JetStream. One stream per world holding the tick log (publish with a message
//!   id, deduplicated; in-order subscriptions that can start at any sequence), and one object
//!   store bucket per world for checkpoints and scripts.
//! - [`process`]: the shard and leader processes, carrying `astroboids-cluster`'s messages
//!   over the bus and its records through etcd; they decide nothing themselves.
//!
//! Names, for a world `W` (see each module for why):
//!
//! | where | name |
//! | --- | --- |
//! | etcd | `astroboids/W/shards/<id>` (lease-bound), `astroboids/W/leader/<lease>` (election), `astroboids/W/config/<key>` |
//! | NATS subjects | `astroboids.W.<suffix>` |
//! | JetStream stream | `ASTROBOIDS_W` |
//! | object store bucket | `astroboids-W-blobs` |
//!
//! A world name is 1 to [`MAX_WORLD_NAME_LEN`] characters of `A-Z a-z 0-9 _ -`: it is then a
//! valid subject token, stream name, bucket name and key segment as it is, and two worlds never
//! map to one stream (which upper-casing or replacing characters could do). Other names are
//! refused, not rewritten.

pub mod bus;
pub mod coordination;
pub mod error;
pub mod process;

pub use bus::{BlobInfo, Delivered, StartAt, Subscription, TickBus};
pub use coordination::{
    CasOutcome, Coordination, KeyChange, KeyWatch, Leadership, ShardEvent, ShardInfo, ShardSet,
    ShardWatch, Versioned,
};
pub use error::{NetError, Result};

/// The longest world name accepted.
pub const MAX_WORLD_NAME_LEN: usize = 64;

/// Checks a world name (see the crate docs).
pub fn validate_world(world: &str) -> Result<()> {
    if is_name(world, MAX_WORLD_NAME_LEN) {
        Ok(())
    } else {
        Err(NetError::InvalidWorld {
            world: world.to_owned(),
        })
    }
}

/// 1 to `max` characters of `A-Z a-z 0-9 _ -`.
pub(crate) fn is_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_names() {
        for ok in ["alpha", "Alpha-2", "w_1", &"x".repeat(MAX_WORLD_NAME_LEN)] {
            assert!(validate_world(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a.b",
            "a b",
            "a*",
            "a>",
            "a/b",
            "é",
            &"x".repeat(MAX_WORLD_NAME_LEN + 1),
        ] {
            let e = validate_world(bad).unwrap_err();
            assert!(e.to_string().contains("invalid world name"), "{e}");
        }
    }
}
