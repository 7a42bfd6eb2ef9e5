//! Checkpoints written off the tick thread. The tick thread only captures the world (the copy
//! of its state, which must happen between ticks), and not even the scripts' part: the script
//! workers take their instances' states before their next runs, and the writer thread waits
//! for them. It then encodes, compresses, stores and flushes the checkpoint, and prunes what it
//! covers. What stays on the tick thread is the copy of the rest of the world: about a
//! millisecond at ten thousand ships (the `checkpoint` bench).
//!
//! One checkpoint is written at a time: a capture that comes while the previous one is still
//! being written waits for it (checkpoints are far apart, so this only happens when the disk
//! cannot keep up, and then slowing the world is right). Durability is unchanged: the inputs a
//! checkpoint covers are pruned only once it is flushed, so a crash before that resumes from
//! the previous checkpoint and the logged inputs, as before.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;

use astroboids_sim::checkpoint::{self, PendingCheckpoint};
use astroboids_storage::{StorageError, WorldStore};

use crate::compress;

/// Why a checkpoint could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("storing a checkpoint: {0}")]
    Storage(#[from] StorageError),
    #[error("cannot start the checkpoint writer thread: {0}")]
    Start(std::io::Error),
    #[error("the checkpoint writer thread stopped while writing a checkpoint (it panicked)")]
    Stopped,
}

/// A checkpoint stored by the writer: its tick and compressed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub tick: u64,
    pub bytes: usize,
}

struct Job {
    tick: u64,
    checkpoint: PendingCheckpoint,
}

/// The writer thread and the one checkpoint it may be working on.
pub(crate) struct CheckpointWriter {
    /// `None` once finished: closing the channel ends the thread.
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Result<StoredCheckpoint, WriterError>>,
    thread: Option<JoinHandle<()>>,
    in_flight: bool,
}

impl std::fmt::Debug for CheckpointWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointWriter")
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl CheckpointWriter {
    pub fn start(store: Arc<WorldStore>) -> Result<Self, WriterError> {
        // Capacity 1 each way: one job handed over, one result waiting.
        let (jobs, job_rx) = sync_channel::<Job>(1);
        let (done_tx, done) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("checkpoint-writer".into())
            .spawn(move || {
                // The lowest priority: on a busy machine encoding, compressing and storing a
                // checkpoint of 10,000 scripted ships otherwise takes cores from the ticks that
                // follow (their slowest doubled, measured); at low priority it runs in what
                // they leave idle. Lowering a priority needs no privilege; if the platform
                // refuses, it runs as before.
                let _ = thread_priority::set_current_thread_priority(
                    thread_priority::ThreadPriority::Min,
                );
                let mut buffers = Buffers::default();
                for job in job_rx {
                    let written = write(&store, job, &mut buffers);
                    if done_tx.send(written).is_err() {
                        return;
                    }
                }
            })
            .map_err(WriterError::Start)?;
        Ok(Self {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            in_flight: false,
        })
    }

    /// Hands a captured checkpoint to the writer, after waiting for the previous one; returns
    /// the previous one's outcome if it had not been collected.
    pub fn submit(
        &mut self,
        tick: u64,
        checkpoint: PendingCheckpoint,
    ) -> Result<Option<StoredCheckpoint>, WriterError> {
        let previous = self.wait()?;
        let jobs = self.jobs.as_ref().expect("the writer runs until finished");
        jobs.send(Job { tick, checkpoint })
            .map_err(|_| writer_gone())?;
        self.in_flight = true;
        Ok(previous)
    }

    /// The outcome of the checkpoint in flight if it is done, without waiting.
    pub fn poll(&mut self) -> Result<Option<StoredCheckpoint>, WriterError> {
        if !self.in_flight {
            return Ok(None);
        }
        match self.done.try_recv() {
            Ok(outcome) => {
                self.in_flight = false;
                outcome.map(Some)
            }
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(writer_gone()),
        }
    }

    /// Waits until the checkpoint in flight (if any) is stored; its outcome.
    pub fn wait(&mut self) -> Result<Option<StoredCheckpoint>, WriterError> {
        if !self.in_flight {
            return Ok(None);
        }
        self.in_flight = false;
        self.done.recv().map_err(|_| writer_gone())?.map(Some)
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        // A checkpoint being written is finished first: dropping the world must not leave a
        // half-written store behind a process that goes on.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Completes a checkpoint (waiting for the script workers' part), encodes, compresses, stores
/// and flushes it, then prunes what it covers.
fn write(
    store: &WorldStore,
    job: Job,
    buffers: &mut Buffers,
) -> Result<StoredCheckpoint, WriterError> {
    let captured = job.checkpoint.finish();
    checkpoint::encode_into(&captured, &mut buffers.encoded);
    drop(captured);
    compress::pack_into(
        &buffers.encoded,
        compress::CHECKPOINT_LEVEL,
        &mut buffers.packed,
    );
    let packed = &buffers.packed;
    store.put_checkpoint(job.tick, packed)?;
    store.flush()?;
    // Only once the checkpoint is durable may what it covers go.
    store.prune_through(job.tick)?;
    Ok(StoredCheckpoint {
        tick: job.tick,
        bytes: packed.len(),
    })
}

/// The writer's buffers, kept from one checkpoint to the next: at 10k scripted ships a
/// checkpoint holds up to 160 MB of script memory (the example miner touches four 4-KiB pages),
/// and memory new to the process costs the kernel a zeroed page per 4 KiB. Growing fresh buffers every time kept the writer busy with that for most of a
/// checkpoint's writing (perf: `clear_page_rep`), taking CPU the ticks needed.
#[derive(Default)]
struct Buffers {
    encoded: Vec<u8>,
    packed: Vec<u8>,
}

/// The writer thread ended without answering: it panicked (the panic message is on stderr).
fn writer_gone() -> WriterError {
    WriterError::Stopped
}
