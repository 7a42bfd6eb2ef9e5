//! One AstroBoids world spread over several shard processes, with the same state hash, tick
//! for tick, as the world in one process.
//!
//! - [`assignment`]: which shard holds which sector (a rule over the infinite grid).
//! - [`messages`]: what the leader and the shards say each tick.
//! - [`shard_node`]: one shard's piece of the world and its side of the tick protocol, with no
//!   I/O (the shell passes messages in and carries out what comes back).
//! - [`checkpoint`]: shards' pieces of a checkpoint, merged into the whole world's and split
//!   again under any assignment (recovery and rebalancing).
//! - [`leader`]: the leader's side: sequences inputs, starts ticks, folds the shards' hash
//!   shares into the world's hash.
//! - [`plan`]: what a networked cluster agrees on outside the tick: the world's spec, which
//!   process runs which shard (each change an epoch), the last complete checkpoint.
//! - [`conductor`]: the leader process's decisions (plans, readiness, tick starts,
//!   checkpoints, lost shards) as an I/O-free state machine driven with explicit time.
//! - [`scripts`]: script modules travel through the blob store by content hash, not in
//!   starts.
//! - [`frames`]: an exchange larger than one bus message, cut into frames and put back
//!   together.
//! - [`local`]: a whole cluster in one process, messages passed by value: the reference the
//!   networked shell is tested against, and the quickest way to check that a rule is
//!   shard-safe.

pub mod assignment;
pub mod checkpoint;
pub mod conductor;
pub mod frames;
pub mod leader;
pub mod live;
pub mod local;
pub mod messages;
pub mod plan;
pub mod scripts;
pub mod shard_node;

pub use assignment::{SectorAssignment, ShardId};
