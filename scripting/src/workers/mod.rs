//! Script instances spread over worker threads.
//!
//! wasmer's `Store` is not `Send`, so an instance is created on, and stays on, one worker:
//! ship `id` lives on worker `id % workers`. A tick sends every worker the jobs of its ships,
//! waits for all replies, and returns results sorted by ship id, so the outcome does not depend
//! on the number of workers or on which finishes first.
//!
//! A worker can also make an instance ahead of its start ([`ScriptWorkers::prepare`]): the
//! host asks when a script is assigned, between ticks, and the start in the next tick's script
//! stage only runs the start function. A prepared instance has run no script code, so starting
//! from it gives exactly what starting from scratch gives.
//!
//! Code map: this file is the pool's side (the handle the tick thread calls); `thread` is a
//! worker's side: the requests it takes, the replies it sends and its loop.

mod thread;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use crate::blocks::SensorSnapshot;
use crate::compiled::CompiledScript;
use crate::error::ScriptError;
use crate::instance::{InstanceState, RunReport};

use thread::{AfterRuns, Prepares, Reply, Request, serve};

/// One ship's run this tick.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptJob {
    pub ship: u64,
    pub budget: u64,
    pub random_seed: u64,
    /// What the ship senses; written into the script's sensor block before the call.
    pub sensors: SensorSnapshot,
}

/// What a job produced (the command, if any, is in the report).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptResult {
    pub ship: u64,
    pub report: RunReport,
    /// Wall-clock time the run took on its worker, in nanoseconds. Observability only, for the
    /// host's watchdog: it differs run to run and must never reach simulation state.
    pub wall_ns: u64,
}

/// Script states the workers are taking (see [`ScriptWorkers::states_later`]).
#[derive(Debug)]
pub struct PendingStates {
    states: Receiver<Vec<(u64, InstanceState)>>,
    workers_asked: usize,
}

impl PendingStates {
    /// Waits for every worker's part; the states in ship order.
    ///
    /// # Panics
    /// When a worker died (panicked) before answering.
    pub fn wait(self) -> Vec<(u64, InstanceState)> {
        let mut states = Vec::new();
        for _ in 0..self.workers_asked {
            let mut part = self.states.recv().expect("script worker alive");
            states.append(&mut part);
        }
        states.sort_unstable_by_key(|(ship, _)| *ship);
        states
    }
}

/// Lines a start function logged; what a successful start returns.
pub type StartLogs = Vec<String>;

/// Prepared instances one worker keeps at most (each holds its memory, 64 KiB and up); asks
/// beyond it are dropped, and those ships start from scratch. A prepared instance waits for
/// its ship's start however many ticks that takes (a crowded sector starts a few a tick), and
/// goes when its ship no longer waits ([`ScriptWorkers::forget_prepared_except`]).
pub const PREPARED_PER_WORKER_MAX: usize = 4_096;

/// Every `count`th ship, from `index` on (by id): `count` slices with indexes `0..count` hold
/// every ship once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShipSlice {
    pub index: u64,
    pub count: u64,
}

impl ShipSlice {
    pub fn holds(&self, ship: u64) -> bool {
        self.count > 0 && ship % self.count == self.index
    }
}

struct Worker {
    /// `None` once the pool is dropped: closing the channel ends the worker's loop.
    requests: Option<SyncSender<Request>>,
    replies: Receiver<Reply>,
    thread: Option<JoinHandle<()>>,
    /// Prepares not yet handed to the worker because it was busy; they go before the next
    /// request (or with the next prepare, if the worker is free by then).
    unsent_prepares: RefCell<Prepares>,
}

/// Why the pool could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    #[error("ship {0} already has a script")]
    AlreadyAttached(u64),
    #[error("ship {0} has no script")]
    NotAttached(u64),
    #[error("ship {ship} is listed twice in one tick")]
    DuplicateJob { ship: u64 },
    #[error(transparent)]
    Script(#[from] ScriptError),
}

/// A fixed set of worker threads owning script instances.
pub struct ScriptWorkers {
    workers: Vec<Worker>,
    /// Ships with an instance, for cheap checks on this side.
    attached: BTreeSet<u64>,
    /// Ships an instance was prepared for and that have not started since (some may have been
    /// refused by the worker's cap; forgetting those is harmless).
    prepared: RefCell<BTreeSet<u64>>,
}

impl ScriptWorkers {
    /// # Panics
    /// When `count` is 0 or a thread cannot be started.
    pub fn new(count: usize) -> Self {
        assert!(count > 0, "at least one script worker");
        let workers = (0..count)
            .map(|i| {
                // One request in flight per worker: the channels never hold more than that.
                let (requests, request_rx) = sync_channel::<Request>(1);
                let (reply_tx, replies) = sync_channel::<Reply>(1);
                let thread = std::thread::Builder::new()
                    .name(format!("script-worker-{i}"))
                    .spawn(move || serve(request_rx, reply_tx))
                    .expect("start a script worker thread");
                Worker {
                    requests: Some(requests),
                    replies,
                    thread: Some(thread),
                    unsent_prepares: RefCell::new(Vec::new()),
                }
            })
            .collect();
        Self {
            workers,
            attached: BTreeSet::new(),
            prepared: RefCell::new(BTreeSet::new()),
        }
    }

    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    fn worker_index(&self, ship: u64) -> usize {
        (ship % self.workers.len() as u64) as usize
    }

    fn worker(&self, ship: u64) -> &Worker {
        &self.workers[self.worker_index(ship)]
    }

    /// Sends each worker its request (`None`: nothing for it), all before waiting, so the
    /// workers run in parallel; then collects the replies.
    fn scatter(&self, requests: impl IntoIterator<Item = Option<Request>>) -> Vec<Reply> {
        let busy: Vec<&Worker> = self
            .workers
            .iter()
            .zip(requests)
            .filter_map(|(worker, request)| {
                worker.send(request?);
                Some(worker)
            })
            .collect();
        busy.into_iter()
            .map(|worker| worker.replies.recv().expect("script worker alive"))
            .collect()
    }

    fn ask(&self, ship: u64, request: Request) -> Reply {
        let worker = self.worker(ship);
        worker.send(request);
        worker.replies.recv().expect("script worker alive")
    }

    /// Asks `ship`'s worker to make an instance of `script` now, so that the ship's start (at
    /// the next script stage) only has to run the start function. Does not wait: the worker
    /// does it between other requests. Starting never depends on it: a start whose prepared
    /// instance is missing or of another script makes one from scratch, with the same result.
    pub fn prepare(&self, ship: u64, script: &Arc<CompiledScript>) {
        let worker = self.worker(ship);
        {
            // Bounded like the worker's own store: more could never be kept anyway.
            let mut unsent = worker.unsent_prepares.borrow_mut();
            if unsent.len() >= PREPARED_PER_WORKER_MAX {
                return;
            }
            unsent.push((ship, Arc::clone(script)));
        }
        self.prepared.borrow_mut().insert(ship);
        worker.try_send_prepares();
    }

    /// Whether any ship has a prepared instance it has not started yet.
    pub fn has_prepared(&self) -> bool {
        !self.prepared.borrow().is_empty()
    }

    /// Drops the prepared instances of every ship not in `waiting` (ascending): ships that
    /// were destroyed or lost their script before starting.
    pub fn forget_prepared_except(&self, waiting: &[u64]) {
        let mut prepared = self.prepared.borrow_mut();
        let mut waiting = waiting.iter().peekable();
        let stale: Vec<u64> = prepared
            .iter()
            .copied()
            .filter(|&ship| {
                while waiting.next_if(|&&w| w < ship).is_some() {}
                waiting.peek() != Some(&&ship)
            })
            .collect();
        let mut per_worker: Vec<Vec<u64>> = vec![Vec::new(); self.workers.len()];
        for ship in stale {
            prepared.remove(&ship);
            per_worker[self.worker_index(ship)].push(ship);
        }
        for (worker, ships) in self.workers.iter().zip(per_worker) {
            if !ships.is_empty() {
                worker.send(Request::Unprepare(ships));
            }
        }
    }

    /// Waits until every worker has done everything asked of it so far (prepares included).
    pub fn settle(&self) {
        let requests = self.workers.iter().map(|_| Some(Request::Settle));
        for reply in self.scatter(requests) {
            assert!(
                matches!(reply, Reply::Settled),
                "workers answer settle with Settled"
            );
        }
    }

    /// Instantiates `script` for `ship` on its worker (running the start function).
    pub fn attach(
        &mut self,
        ship: u64,
        script: &Arc<CompiledScript>,
        random_seed: u64,
    ) -> Result<(), WorkerError> {
        let mut results = self.attach_many(vec![(ship, Arc::clone(script), random_seed)]);
        results.pop().expect("one result per start").1.map(drop)
    }

    /// Instantiates many ships at once, each on its worker, all workers in parallel: starting
    /// a fleet costs one round trip instead of one per ship. `starts` holds (ship, script,
    /// random seed); results (the lines each start function logged, or why it failed) come
    /// back in ship order.
    pub fn attach_many(
        &mut self,
        starts: Vec<(u64, Arc<CompiledScript>, u64)>,
    ) -> Vec<(u64, Result<StartLogs, WorkerError>)> {
        let mut results = Vec::with_capacity(starts.len());
        let mut per_worker: Vec<Vec<_>> = vec![Vec::new(); self.workers.len()];
        let mut seen = BTreeSet::new();
        for start in starts {
            let ship = start.0;
            if self.attached.contains(&ship) || !seen.insert(ship) {
                results.push((ship, Err(WorkerError::AlreadyAttached(ship))));
            } else {
                per_worker[self.worker_index(ship)].push(start);
            }
        }
        let requests = per_worker
            .into_iter()
            .map(|starts| (!starts.is_empty()).then_some(Request::AttachMany(starts)));
        for reply in self.scatter(requests) {
            match reply {
                Reply::AttachedMany(done) => {
                    for (ship, result) in done {
                        self.prepared.borrow_mut().remove(&ship);
                        if result.is_ok() {
                            self.attached.insert(ship);
                        }
                        results.push((ship, result.map_err(WorkerError::from)));
                    }
                }
                _ => unreachable!("workers answer attach-many with AttachedMany"),
            }
        }
        results.sort_by_key(|(ship, _)| *ship);
        results
    }

    /// Gives `ship` an instance of `script` whose state is `state` (from a checkpoint), as if
    /// it had been running all along.
    pub fn restore(
        &mut self,
        ship: u64,
        script: &Arc<CompiledScript>,
        state: InstanceState,
    ) -> Result<(), WorkerError> {
        if self.attached.contains(&ship) {
            return Err(WorkerError::AlreadyAttached(ship));
        }
        let request = Request::Restore {
            ship,
            script: Arc::clone(script),
            state: Box::new(state),
        };
        match self.ask(ship, request) {
            Reply::Attached(Ok(())) => {
                self.attached.insert(ship);
                Ok(())
            }
            Reply::Attached(Err(e)) => Err(e.into()),
            _ => unreachable!("workers answer restore with Attached"),
        }
    }

    /// Drops `ship`'s instance.
    pub fn detach(&mut self, ship: u64) -> Result<(), WorkerError> {
        if !self.attached.remove(&ship) {
            return Err(WorkerError::NotAttached(ship));
        }
        match self.ask(ship, Request::Detach { ship }) {
            Reply::Detached(true) => Ok(()),
            _ => Err(WorkerError::NotAttached(ship)),
        }
    }

    /// Ships with an instance, in id order.
    pub fn attached(&self) -> impl Iterator<Item = u64> + '_ {
        self.attached.iter().copied()
    }

    pub fn is_attached(&self, ship: u64) -> bool {
        self.attached.contains(&ship)
    }

    /// The state (memory and globals) of `ship`'s instance.
    pub fn state(&self, ship: u64) -> Result<InstanceState, WorkerError> {
        if !self.is_attached(ship) {
            return Err(WorkerError::NotAttached(ship));
        }
        match self.ask(ship, Request::Snapshot { ship }) {
            Reply::Snapshot(Some(bytes)) => Ok(bytes),
            _ => Err(WorkerError::NotAttached(ship)),
        }
    }

    /// The states of those of `ships` that have an instance, without waiting: one request per
    /// worker, all workers at once (a checkpoint of thousands of scripts asks once, not
    /// thousands of times). Each worker takes its ships' states before anything asked of it
    /// later (the next tick's runs), so they are the states as of now; the caller collects
    /// them, in ship order, from [`PendingStates::wait`] on any thread. A checkpoint's capture
    /// thus costs the tick thread nothing for scripts: when ticks are paced, the workers take
    /// the states in the idle time before the next tick.
    pub fn states_later(&self, ships: &[u64]) -> PendingStates {
        let mut per_worker: Vec<Vec<u64>> = vec![Vec::new(); self.workers.len()];
        for &ship in ships.iter().filter(|s| self.is_attached(**s)) {
            per_worker[self.worker_index(ship)].push(ship);
        }
        // Unbounded, but it carries one message per worker asked.
        let (to, states) = std::sync::mpsc::channel();
        let mut workers_asked = 0;
        for (worker, ships) in self.workers.iter().zip(per_worker) {
            if !ships.is_empty() {
                worker.send(Request::Snapshots {
                    ships,
                    to: to.clone(),
                });
                workers_asked += 1;
            }
        }
        PendingStates {
            states,
            workers_asked,
        }
    }

    /// A digest of every instance's state, in ship order; computed on all workers at once.
    pub fn state_digests(&self) -> Vec<(u64, u128)> {
        let mut digests = Vec::with_capacity(self.attached.len());
        for reply in self.scatter(self.workers.iter().map(|_| Some(Request::Digests))) {
            match reply {
                Reply::Digests(mut d) => digests.append(&mut d),
                _ => unreachable!("workers answer digests with Digests"),
            }
        }
        digests.sort_unstable_by_key(|(ship, _)| *ship);
        digests
    }

    /// Runs every job on its ship's worker, all workers at once; results in ship order.
    ///
    /// At thousands of ships this bookkeeping runs on the tick thread while the workers wait,
    /// so it is linear: jobs in ship order (as the script stage passes them; others are sorted
    /// first) are checked against the attached set in one walk, and each worker's results,
    /// already in ship order, are merged rather than sorted.
    pub fn run(&self, jobs: Vec<ScriptJob>) -> Result<Vec<ScriptResult>, WorkerError> {
        self.run_jobs(jobs, AfterRuns::Nothing)
    }

    /// As [`Self::run`], and then each worker takes the states of the instances that ran, for
    /// the states and digests asked before the next runs ([`Self::states_later`],
    /// [`Self::state_digests`]). For a tick whose states a checkpoint will take. The workers
    /// take them after answering, so the copy overlaps the rest of the tick and the capture
    /// instead of waiting for the capture's request: unpaced, that request comes as the next
    /// tick starts, and the whole copy (up to 160 MB at 10k scripts touching four 4-KiB pages
    /// each, as the example miner does) then delayed that tick's runs.
    ///
    /// A kept state is always the instance's current one: whatever changes an instance drops
    /// its kept state, and the next runs drop them all.
    pub fn run_keeping_states(
        &self,
        jobs: Vec<ScriptJob>,
    ) -> Result<Vec<ScriptResult>, WorkerError> {
        self.run_jobs(jobs, AfterRuns::KeepStates)
    }

    /// As [`Self::run`], and then each worker readies an image buffer for each instance in
    /// `slice` that ran, of the size its state would take now. For the ticks before a process's
    /// first checkpoint: memory new to the process costs the kernel a zeroed page per 4 KiB on
    /// first touch, and at 10k scripts the first checkpoint's copy spent most of its time there
    /// (the tick after it ran at 3-5x the median, against 2-2.5x after later ones). Warming one
    /// slice per tick spreads that cost over the ticks before it. States, hashes and results
    /// are the same either way.
    pub fn run_warming_image_buffers(
        &self,
        jobs: Vec<ScriptJob>,
        slice: ShipSlice,
    ) -> Result<Vec<ScriptResult>, WorkerError> {
        self.run_jobs(jobs, AfterRuns::WarmImageBuffers(slice))
    }

    fn run_jobs(
        &self,
        mut jobs: Vec<ScriptJob>,
        after: AfterRuns,
    ) -> Result<Vec<ScriptResult>, WorkerError> {
        if !jobs.is_sorted_by_key(|job| job.ship) {
            jobs.sort_by_key(|job| job.ship);
        }
        let mut attached = self.attached.iter().peekable();
        for (i, job) in jobs.iter().enumerate() {
            if i > 0 && jobs[i - 1].ship == job.ship {
                return Err(WorkerError::DuplicateJob { ship: job.ship });
            }
            while attached.next_if(|&&ship| ship < job.ship).is_some() {}
            if attached.peek() != Some(&&job.ship) {
                return Err(WorkerError::NotAttached(job.ship));
            }
        }
        let count = jobs.len();
        let share = count / self.workers.len() + 1;
        let mut per_worker: Vec<Vec<ScriptJob>> = (0..self.workers.len())
            .map(|_| Vec::with_capacity(share))
            .collect();
        for job in jobs {
            per_worker[self.worker_index(job.ship)].push(job);
        }
        let requests = per_worker
            .into_iter()
            .map(|jobs| (!jobs.is_empty()).then_some(Request::Run { jobs, after }));
        let mut results = Vec::with_capacity(count);
        for reply in self.scatter(requests) {
            match reply {
                Reply::Ran(mut r) => results.append(&mut r),
                _ => unreachable!("workers answer run with Ran"),
            }
        }
        // One ascending run per worker: the stable sort merges them in linear time.
        results.sort_by_key(|r| r.ship);
        Ok(results)
    }
}

impl Worker {
    fn channel(&self) -> &SyncSender<Request> {
        self.requests
            .as_ref()
            .expect("requests are open until the pool is dropped")
    }

    fn send(&self, request: Request) {
        let unsent = std::mem::take(&mut *self.unsent_prepares.borrow_mut());
        if !unsent.is_empty() {
            self.channel()
                .send(Request::Prepare(unsent))
                .expect("script worker alive");
        }
        self.channel().send(request).expect("script worker alive");
    }

    /// Hands the unsent prepares to the worker if it can take them without waiting.
    fn try_send_prepares(&self) {
        let unsent = std::mem::take(&mut *self.unsent_prepares.borrow_mut());
        match self.channel().try_send(Request::Prepare(unsent)) {
            Ok(()) => {}
            Err(TrySendError::Full(Request::Prepare(unsent))) => {
                *self.unsent_prepares.borrow_mut() = unsent;
            }
            Err(TrySendError::Full(_)) => unreachable!("the request sent was a prepare"),
            Err(TrySendError::Disconnected(_)) => panic!("script worker alive"),
        }
    }
}

impl Drop for ScriptWorkers {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            worker.requests = None;
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}
