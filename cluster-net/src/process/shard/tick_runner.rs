//! One epoch's ticks on a shard process: what arrives is handed to the shard in protocol
//! order, what it returns is published, and checkpoint pieces are stored beside the ticks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use astroboids_cluster::checkpoint::{self, PendingPiece};
use astroboids_cluster::frames::{self, Reassembly};
use astroboids_cluster::live::{self, ShipQuery};
use astroboids_cluster::messages::{Exchange, PieceStored, ShardReport, TickDone, TickStart};
use astroboids_cluster::plan::{self, WorldSpec};
use astroboids_cluster::scripts;
use astroboids_cluster::shard_node::{Phase, ShardError, ShardNode};

use super::ShardExit;
use crate::bus::{LiveMessage, TickBus};
use crate::process::{
    ProcessError, REPORT_SUBJECT, decode, encode, exchange_subject, metrics, views_subject,
};

/// One epoch's ticks: what arrives is handed to the shard in protocol order, what it returns
/// is published.
pub(super) struct TickRunner<'a> {
    pub(super) bus: &'a TickBus,
    pub(super) spec: &'a WorldSpec,
    pub(super) epoch: u64,
    /// The most payload bytes one exchange frame carries.
    pub(super) frame_bytes: usize,
    pub(super) reassembly: Reassembly,
    /// Script modules fetched from the blob store, by hash.
    pub(super) modules: HashMap<u128, Vec<u8>>,
    /// Exchanges for the next tick that came before its start reached this shard.
    pub(super) early: Vec<Exchange>,
    pub(super) began: Instant,
    pub(super) ran_us: u64,
    pub(super) bytes_out: u64,
    /// Bus messages this tick's exchanges took (frames).
    pub(super) frames_out: u32,
    /// Shards in the plan (what players' view pieces say makes a tick whole).
    pub(super) shards: u32,
    /// The checkpoint piece being finished, compressed and stored beside the ticks: at most
    /// one (see [`TickRunner::report`]).
    pub(super) storing: Option<JoinHandle<Result<(), ProcessError>>>,
    /// Where every piece is serialized before compression (see
    /// `checkpoint::encode_piece_reusing`).
    pub(super) piece_scratch: Arc<Mutex<Vec<u8>>>,
}

impl TickRunner<'_> {
    pub(super) async fn on_start(
        &mut self,
        node: &mut ShardNode,
        start: TickStart,
    ) -> Result<Option<ShardExit>, ProcessError> {
        let Phase::Idle { next } = node.phase() else {
            return Ok(None); // a repeat of the running tick's start
        };
        if start.epoch != self.epoch || start.tick < next {
            return Ok(None); // another plan's, or already run
        }
        let tick = start.tick;
        for hash in scripts::missing_scripts(&start, &self.modules) {
            let name = scripts::script_blob_name(hash);
            if let Some(wasm) = self.bus.get_blob(&name).await? {
                self.modules.insert(hash, wasm);
            }
        }
        let start = scripts::attach_scripts(start, &self.modules)?;
        let fence = start.fence;
        self.began = Instant::now();
        let outgoing = match node.start_tick(start) {
            Ok(outgoing) => outgoing,
            // A deposed leader that has not noticed yet: its starts are not obeyed.
            Err(ShardError::Fenced { .. }) => {
                debug!(
                    epoch = self.epoch,
                    tick, fence, "a start from a deposed leader: not obeyed"
                );
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        self.ran_us = self.began.elapsed().as_micros() as u64;
        self.bytes_out = 0;
        self.frames_out = 0;
        let from = node.id();
        for (to, exchange) in &outgoing {
            let subject = exchange_subject(self.epoch, *to);
            for frame in frames::split(exchange, self.frame_bytes)? {
                let payload = encode(&frame);
                self.bytes_out += payload.len() as u64;
                self.frames_out += 1;
                let id = format!("x-{}-{tick}-{from}-{to}-{}", self.epoch, frame.index);
                self.bus.publish(&subject, &id, payload).await?;
            }
        }
        if let Some(done) = node.finish_alone()? {
            return self.report(node, done).await;
        }
        for exchange in std::mem::take(&mut self.early) {
            if let Some(exit) = self.on_exchange(node, exchange).await? {
                return Ok(Some(exit));
            }
        }
        Ok(None)
    }

    pub(super) async fn on_exchange(
        &mut self,
        node: &mut ShardNode,
        exchange: Exchange,
    ) -> Result<Option<ShardExit>, ProcessError> {
        match node.phase() {
            Phase::Idle { next } if exchange.tick == next => {
                self.early.push(exchange);
                Ok(None)
            }
            Phase::Exchanging { tick } if exchange.tick == tick => match node.receive(exchange)? {
                Some(done) => self.report(node, done).await,
                None => Ok(None),
            },
            _ => Ok(None), // a repeat of an exchange already taken in
        }
    }

    /// A gateway's question about ships: answered from the world as it stands (between
    /// ticks, or mid-exchange, when ships that just left are elsewhere). A query that does
    /// not decode is answered with nothing and logged: the asker's timeout says the rest.
    pub(super) async fn on_query(
        &mut self,
        node: &mut ShardNode,
        message: LiveMessage,
    ) -> Result<(), ProcessError> {
        let Some(reply) = message.reply else {
            return Ok(());
        };
        let query: ShipQuery = match decode("ship query", &message.payload) {
            Ok(query) => query,
            Err(e) => {
                warn!(error = %e, "a ship query that does not decode: ignored");
                return Ok(());
            }
        };
        let facts = live::answer_query(node, &query);
        metrics::shard_query_answered();
        self.bus.reply_live(&reply, encode(&facts)).await?;
        Ok(())
    }

    /// Every player's piece of the finished tick, for the gateways (live: not in the log;
    /// a gateway that is away misses it).
    async fn publish_views(&mut self, node: &mut ShardNode) -> Result<(), ProcessError> {
        let began = Instant::now();
        let views = live::shard_views(node, self.epoch, self.shards);
        let (tick, shard, players) = (views.tick, views.shard, views.players.len());
        let (parts, left_out) = live::split_views(views, self.bus.live_max_payload());
        if left_out > 0 {
            warn!(
                tick,
                shard, left_out, "player views too large for a message: left out"
            );
        }
        let subject = views_subject(shard);
        let mut bytes = 0;
        for part in &parts {
            let payload = encode(part);
            bytes += payload.len() as u64;
            self.bus.publish_live(&subject, payload).await?;
        }
        metrics::shard_views_published(
            players,
            bytes,
            left_out,
            began.elapsed().as_micros() as u64,
        );
        Ok(())
    }

    /// Reports a finished tick, and stores this shard's piece at checkpoint ticks.
    async fn report(
        &mut self,
        node: &mut ShardNode,
        mut done: TickDone,
    ) -> Result<Option<ShardExit>, ProcessError> {
        let (epoch, tick, shard) = (self.epoch, done.tick, node.id());
        self.reassembly.forget_before(tick + 1);
        done.figures.tick_us = self.ran_us;
        done.figures.exchange_bytes_out = self.bytes_out;
        done.figures.exchange_messages_out = self.frames_out;
        done.figures.exchange_us =
            (self.began.elapsed().as_micros() as u64).saturating_sub(self.ran_us);
        metrics::shard_tick_done(&done);
        debug!(
            epoch,
            tick,
            shard,
            ships = done.ships,
            tick_us = done.figures.tick_us,
            exchange_us = done.figures.exchange_us,
            handoffs_out = done.figures.handoffs_out,
            halo_out = done.figures.halo_out,
            exchange_bytes_out = done.figures.exchange_bytes_out,
            exchange_frames_out = done.figures.exchange_messages_out,
            "tick done"
        );
        let report = ShardReport::Done(done);
        self.bus
            .publish(
                REPORT_SUBJECT,
                &format!("done-{epoch}-{tick}-{shard}"),
                encode(&report),
            )
            .await?;
        self.publish_views(node).await?;
        if !self.spec.is_checkpoint_tick(tick) {
            return Ok(None);
        }
        // One piece in flight at most: a store slower than the checkpoint interval holds up
        // this tick rather than piling pieces up in memory.
        self.finish_storing().await?;
        // Only the copy is the loop's: the script states, compression and upload go on while
        // the next ticks run, and the leader counts the checkpoint when every shard's
        // "stored" report is in.
        let began = Instant::now();
        let piece = checkpoint::capture_later(node);
        let copied_us = began.elapsed().as_micros() as u64;
        let bus = self.bus.clone();
        self.storing = Some(tokio::spawn(store_piece(
            bus,
            epoch,
            piece,
            self.piece_scratch.clone(),
            began,
            copied_us,
        )));
        if self.spec.last_tick == Some(tick) {
            // The world's end: finished means stored.
            self.finish_storing().await?;
            return Ok(Some(ShardExit::Finished { tick }));
        }
        Ok(None)
    }

    /// Waits for the piece being stored, if any; its error is this process's.
    pub(super) async fn finish_storing(&mut self) -> Result<(), ProcessError> {
        match self.storing.take() {
            Some(task) => joined(task.await),
            None => Ok(()),
        }
    }
}

/// A finished task's output; a panic in it goes on here.
pub(super) fn joined<T>(result: Result<T, tokio::task::JoinError>) -> T {
    match result {
        Ok(output) => output,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("a checkpoint store task was cancelled, which nothing does: {e}"),
        },
    }
}

/// Finishes a captured piece (its script states), compresses and stores it, then reports it
/// stored.
async fn store_piece(
    bus: TickBus,
    epoch: u64,
    piece: PendingPiece,
    scratch: Arc<Mutex<Vec<u8>>>,
    began: Instant,
    copied_us: u64,
) -> Result<(), ProcessError> {
    let (tick, shard) = (piece.tick(), piece.shard());
    // Waiting for the script workers and compressing are CPU work, not for the async threads.
    let encoded = tokio::task::spawn_blocking(move || {
        let piece = piece.finish();
        let ships = piece.world.ships.len() as u64;
        // One piece is in flight at a time, so the lock is never waited for.
        let mut scratch = scratch.lock().unwrap_or_else(|e| e.into_inner());
        (
            checkpoint::encode_piece_reusing(&piece, &mut scratch),
            ships,
        )
    })
    .await;
    let (bytes, ships) = joined(encoded);
    bus.put_blob(&plan::piece_blob_name(epoch, tick, shard), &bytes)
        .await?;
    metrics::shard_piece_timed(copied_us, began.elapsed().as_micros() as u64);
    let stored = ShardReport::Stored(PieceStored {
        epoch,
        tick,
        shard,
        bytes: bytes.len() as u64,
        ships,
    });
    bus.publish(
        REPORT_SUBJECT,
        &format!("stored-{epoch}-{tick}-{shard}"),
        encode(&stored),
    )
    .await?;
    metrics::shard_piece_stored(bytes.len() as u64);
    info!(
        epoch,
        tick,
        shard,
        ships,
        bytes = bytes.len() as u64,
        "checkpoint piece stored"
    );
    Ok(())
}
