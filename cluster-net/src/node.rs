//! The shard and leader loops over the [`TickBus`]: they carry the cluster core's messages
//! (`astroboids_cluster::{ShardNode, Leader}`) and decide nothing themselves.
//!
//! Subjects (after `astroboids.W.`), each message published with an id so that a repeat
//! (a retry, a redelivery, a new leader re-publishing) is stored once:
//!
//! | subject | from -> to | message | id |
//! | --- | --- | --- | --- |
//! | `start` | leader -> shards | `TickStart` | `start-<tick>` |
//! | `xchg.<to>` | shard -> shard | `Exchange` | `x-<tick>-<from>-<to>` |
//! | `done` | shards -> leader | `TickDone` | `done-<tick>-<shard>` |
//!
//! The `start` subject is also the world's sequenced input log: every start carries the
//! inputs of its tick, in order, so re-reading it from a checkpoint's tick re-runs the world.
//! A shard skips what it has already seen (ticks at or before its own), so reading a subject
//! from its beginning is always safe.

use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;

use astroboids_cluster::leader::{Leader, TickOutcome};
use astroboids_cluster::messages::{Exchange, TickDone, TickStart};
use astroboids_cluster::shard_node::{Phase, ShardNode};

use crate::bus::{StartAt, TickBus};
use crate::error::NetError;

/// Why a loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("a {what} message on the bus does not decode: {error}")]
    Decode { what: &'static str, error: String },
    #[error(transparent)]
    Shard(#[from] astroboids_cluster::shard_node::ShardError),
    #[error(transparent)]
    Leader(#[from] astroboids_cluster::leader::LeaderError),
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("protocol messages are plain data")
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, NodeError> {
    postcard::from_bytes(bytes).map_err(|e| NodeError::Decode {
        what,
        error: e.to_string(),
    })
}

/// Runs `node` through every tick the leader starts, up to and including `last_tick`, and
/// returns it. The sim's work runs on the calling task's thread: give each shard a thread of
/// its own (see [`run_shard_blocking`]).
pub async fn run_shard(
    bus: &TickBus,
    mut node: ShardNode,
    last_tick: u64,
) -> Result<ShardNode, NodeError> {
    let id = node.id();
    let mut starts = bus.subscribe("start", None, StartAt::All).await?;
    let mut exchanges = bus
        .subscribe(&format!("xchg.{id}"), None, StartAt::All)
        .await?;
    loop {
        let Phase::Idle { next } = node.phase() else {
            unreachable!("a shard is idle between ticks")
        };
        if next > last_tick {
            return Ok(node);
        }
        let start: TickStart = decode("start", &starts.next().await?.payload)?;
        if start.tick < next {
            continue; // already run (a re-read log)
        }
        let tick = start.tick;
        let began = Instant::now();
        let outgoing = node.start_tick(start)?;
        let ran = began.elapsed();
        let mut bytes_out = 0u64;
        for (to, exchange) in &outgoing {
            let payload = encode(exchange);
            bytes_out += payload.len() as u64;
            bus.publish(
                &format!("xchg.{to}"),
                &format!("x-{tick}-{id}-{to}"),
                payload,
            )
            .await?;
        }
        let mut done = node.finish_alone()?;
        while done.is_none() {
            let exchange: Exchange = decode("exchange", &exchanges.next().await?.payload)?;
            if exchange.tick < tick {
                continue;
            }
            done = node.receive(exchange)?;
        }
        let mut done: TickDone = done.expect("the loop ends with a report");
        done.figures.tick_us = ran.as_micros() as u64;
        done.figures.exchange_bytes_out = bytes_out;
        done.figures.exchange_us = (began.elapsed() - ran).as_micros() as u64;
        bus.publish("done", &format!("done-{tick}-{id}"), encode(&done))
            .await?;
    }
}

/// Where a shard stood when its loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardEnd {
    pub tick: u64,
    pub ships: u64,
}

/// [`run_shard`] on a thread of its own with its own runtime (the sim's tick blocks it). The
/// world is built on that thread (`make_node`): a bevy app does not move between threads.
pub fn run_shard_blocking(
    bus: TickBus,
    make_node: impl FnOnce() -> ShardNode + Send + 'static,
    last_tick: u64,
) -> std::thread::JoinHandle<Result<ShardEnd, NodeError>> {
    std::thread::spawn(move || {
        let node = make_node();
        let node = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(run_shard(&bus, node, last_tick))?;
        Ok(ShardEnd {
            tick: node.sim().tick(),
            ships: node.ships(),
        })
    })
}

/// Leads ticks until `last_tick`: publishes each start, gathers the shards' reports, and
/// returns every tick's outcome. `full_hash(tick)` says which ticks report every hash part.
pub async fn run_leader(
    bus: &TickBus,
    leader: &mut Leader,
    last_tick: u64,
    full_hash: impl Fn(u64) -> bool,
) -> Result<Vec<TickOutcome>, NodeError> {
    let mut reports = bus.subscribe("done", None, StartAt::All).await?;
    let mut outcomes = Vec::new();
    while leader.tick() < last_tick {
        let start = leader.start_next(full_hash(leader.tick() + 1))?;
        let tick = start.tick;
        bus.publish("start", &format!("start-{tick}"), encode(&start))
            .await?;
        loop {
            let done: TickDone = decode("done", &reports.next().await?.payload)?;
            if done.tick < tick {
                continue;
            }
            if let Some(outcome) = leader.on_done(done)? {
                outcomes.push(outcome);
                break;
            }
        }
    }
    Ok(outcomes)
}
