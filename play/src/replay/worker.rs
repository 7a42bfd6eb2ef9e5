//! The frame worker: a thread owning the opened file and a re-simulated world, taking "show
//! tick T (ship S)" requests and answering with frames. Only the newest request matters: a
//! request replaces the one waiting, and a long run forward is abandoned as soon as a newer one
//! comes. Going forward it steps the world it has; going back it restores the nearest keyframe.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use astroboids_engine::{NetId, Simulation};
use astroboids_host::inspect::{ShipAtTick, input_ship, trace_ships};
use astroboids_host::replay::Replay;
use astroboids_host::trace::ShipTrace;
use astroboids_sim::SimOptions;
use astroboids_sim::checkpoint::capture_ship;
use astroboids_sim::scripts::{ScriptFaults, ScriptTrace, ScriptTraceRecord};
use astroboids_sim::ships::ShipIndex;

use super::frame::{Frame, ship_details, trace_frame, world_entities};
use super::source::Source;
use super::timeline::FrameKey;

/// Answers waiting for the view; the worker waits when the view does not take them.
const REPLY_QUEUE: usize = 8;
/// How far the opening looks for a first script run before settling for the first tick.
const FIRST_RUN_SCAN_TICKS: u64 = 2_000;

/// What the worker tells the view.
#[derive(Debug)]
pub enum Reply {
    /// Where to start: the first tick a script ran and the first ship it ran for (the first
    /// tick and ship when none ran soon enough).
    Start { tick: u64, ship: Option<u64> },
    /// A requested frame, or why it cannot be made.
    Frame(FrameKey, Result<Arc<Frame>, String>),
}

/// The view's handle on the worker thread; dropping it lets the thread end at its next check.
pub struct Worker {
    shared: Arc<Shared>,
    replies: Receiver<Reply>,
}

struct Shared {
    slot: Mutex<Slot>,
    wake: Condvar,
    /// Asked to draw again when an answer comes (set by the view's first frame).
    repaint: OnceLock<egui::Context>,
}

#[derive(Default)]
struct Slot {
    /// The newest request not yet taken.
    want: Option<FrameKey>,
    closed: bool,
}

impl Shared {
    /// The next request, waiting for one; `None` once the view is gone.
    fn take(&self) -> Option<FrameKey> {
        let mut slot = self.slot.lock().expect("not poisoned");
        loop {
            if slot.closed {
                return None;
            }
            if let Some(want) = slot.want.take() {
                return Some(want);
            }
            slot = self.wake.wait(slot).expect("not poisoned");
        }
    }

    /// A newer request (or the end) is waiting: the current work is wasted.
    fn superseded(&self) -> bool {
        let slot = self.slot.lock().expect("not poisoned");
        slot.closed || slot.want.is_some()
    }

    fn send(&self, replies: &SyncSender<Reply>, reply: Reply) -> bool {
        let sent = replies.send(reply).is_ok();
        if let Some(ctx) = self.repaint.get() {
            ctx.request_repaint();
        }
        sent
    }
}

impl Worker {
    pub fn spawn(source: Source) -> Result<Self, String> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::default()),
            wake: Condvar::new(),
            repaint: OnceLock::new(),
        });
        let (tx, replies) = sync_channel(REPLY_QUEUE);
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("replay-frames".into())
            .spawn(move || run(source, &thread_shared, &tx))
            .map_err(|e| format!("cannot start the replay worker: {e}"))?;
        Ok(Self { shared, replies })
    }

    /// Asks for `key`, replacing any request not yet taken.
    pub fn ask(&self, key: FrameKey) {
        self.shared.slot.lock().expect("not poisoned").want = Some(key);
        self.shared.wake.notify_one();
    }

    pub fn try_reply(&self) -> Option<Reply> {
        self.replies.try_recv().ok()
    }

    pub fn wake_on_reply(&self, ctx: &egui::Context) {
        if self.shared.repaint.get().is_none() {
            let _ = self.shared.repaint.set(ctx.clone());
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shared.slot.lock().expect("not poisoned").closed = true;
        self.shared.wake.notify_one();
    }
}

fn run(source: Source, shared: &Shared, replies: &SyncSender<Reply>) {
    let mut frames: Box<dyn Frames> = match source {
        Source::Replay(replay) => Box::new(ReplayFrames {
            replay,
            sim: None,
            options: SimOptions::default(),
        }),
        Source::Trace(trace) => Box::new(TraceFrames { trace }),
    };
    let (start, first) = frames.start();
    if !shared.send(replies, start) {
        return;
    }
    if let Some((key, frame)) = first
        && !shared.send(replies, Reply::Frame(key, frame.map(Arc::new)))
    {
        return;
    }
    while let Some(want) = shared.take() {
        let answer = match frames.frame(want, &|| shared.superseded()) {
            Ok(Some(frame)) => Ok(Arc::new(frame)),
            // Superseded: the newer request is taken next.
            Ok(None) => continue,
            Err(e) => Err(e),
        };
        if !shared.send(replies, Reply::Frame(want, answer)) {
            return;
        }
    }
}

/// The frame of the start tick, when finding the start made it.
type FirstFrame = Option<(FrameKey, Result<Frame, String>)>;

/// Where frames come from.
trait Frames {
    /// Where the view starts, and that tick's frame if it was made on the way.
    fn start(&mut self) -> (Reply, FirstFrame);
    /// The frame for `want`; `Ok(None)` when `superseded` said to stop.
    fn frame(
        &mut self,
        want: FrameKey,
        superseded: &dyn Fn() -> bool,
    ) -> Result<Option<Frame>, String>;
}

/// Frames of a replay: its world re-simulated to the tick asked for.
struct ReplayFrames {
    replay: Arc<Replay>,
    /// The world between ticks, where the last request left it.
    sim: Option<Simulation>,
    options: SimOptions,
}

impl ReplayFrames {
    /// Runs the next tick with `ship`'s script traced; its run, if it ran.
    fn step_traced(&mut self, ship: Option<NetId>) -> Result<Option<ScriptTraceRecord>, String> {
        let sim = self.sim.as_mut().expect("a world");
        trace_ships(sim, &ship.into_iter().collect::<Vec<_>>());
        self.replay.step(sim).map_err(|e| e.to_string())?;
        let tick = sim.tick();
        let records = std::mem::take(&mut sim.world_mut().resource_mut::<ScriptTrace>().records);
        Ok(records
            .into_iter()
            .rfind(|r| r.tick == tick && Some(r.job.ship) == ship.map(|s| s.0)))
    }

    /// The frame of the tick just run, for `ship` with its run `run` (as `inspect_ship` reports
    /// a ship).
    fn build(&mut self, ship: Option<u64>, run: Option<ScriptTraceRecord>) -> Frame {
        let sim = self.sim.as_mut().expect("a world");
        let tick = sim.tick();
        let (entities, omitted) = world_entities(sim);
        let details = ship.map(|ship| {
            let id = NetId(ship);
            let world = sim.world_mut();
            let state = capture_ship(world, id).ok_or_else(|| {
                format!("there is no ship {ship} after tick {tick} (never spawned, or destroyed)")
            })?;
            let faults = world
                .resource::<ScriptFaults>()
                .recent
                .iter()
                .filter(|f| f.tick == tick && f.ship == id)
                .map(|f| f.message.clone())
                .collect();
            let inputs = self
                .replay
                .record(tick)
                .map(|r| {
                    r.inputs
                        .iter()
                        .filter(|i| input_ship(i) == Some(ship))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            Ok(ship_details(&ShipAtTick {
                tick,
                state,
                run,
                faults,
                inputs,
            }))
        });
        Frame {
            tick,
            entities,
            omitted,
            ship: details,
        }
    }

    fn restore(&mut self, tick: u64) -> Result<(), String> {
        self.sim = None;
        self.sim = Some(
            self.replay
                .restore_near(tick, self.options.clone())
                .map_err(|e| e.to_string())?,
        );
        Ok(())
    }

    fn try_frame(
        &mut self,
        want: FrameKey,
        superseded: &dyn Fn() -> bool,
    ) -> Result<Option<Frame>, String> {
        let (first, last) = (self.replay.start_tick() + 1, self.replay.last_tick());
        if want.tick < first || want.tick > last {
            return Err(format!(
                "tick {} is outside the recording (ticks {first}..={last})",
                want.tick
            ));
        }
        let at = self.sim.as_ref().map(Simulation::tick);
        if at.is_none_or(|at| at >= want.tick) {
            self.restore(want.tick - 1)?;
        }
        while self.sim.as_ref().expect("a world").tick() + 1 < want.tick {
            if superseded() {
                return Ok(None);
            }
            self.step_traced(None)?;
        }
        let run = self.step_traced(want.ship.map(NetId))?;
        Ok(Some(self.build(want.ship, run)))
    }
}

impl Frames for ReplayFrames {
    fn start(&mut self) -> (Reply, FirstFrame) {
        let first = self.replay.start_tick() + 1;
        let fallback = Reply::Start {
            tick: first,
            ship: None,
        };
        if let Err(e) = self.restore(first - 1) {
            let key = FrameKey {
                tick: first,
                ship: None,
            };
            return (fallback, Some((key, Err(e))));
        }
        let last = self
            .replay
            .last_tick()
            .min(first - 1 + FIRST_RUN_SCAN_TICKS);
        let mut first_ship = None;
        while self.sim.as_ref().expect("a world").tick() < last {
            match self.step_all_traced() {
                Ok((_, Some(run))) => {
                    let (tick, ship) = (run.tick, run.job.ship);
                    let key = FrameKey {
                        tick,
                        ship: Some(ship),
                    };
                    let frame = self.build(Some(ship), Some(run));
                    let start = Reply::Start {
                        tick,
                        ship: Some(ship),
                    };
                    return (start, Some((key, Ok(frame))));
                }
                Ok((ship, None)) => first_ship = first_ship.or(ship),
                Err(e) => {
                    let key = FrameKey {
                        tick: self.sim.as_ref().map_or(first, |s| s.tick() + 1),
                        ship: None,
                    };
                    self.sim = None;
                    return (fallback, Some((key, Err(e))));
                }
            }
        }
        // No script ran soon: start at the first tick with the first ship there is.
        self.sim = None;
        let start = Reply::Start {
            tick: first,
            ship: first_ship,
        };
        (start, None)
    }

    fn frame(
        &mut self,
        want: FrameKey,
        superseded: &dyn Fn() -> bool,
    ) -> Result<Option<Frame>, String> {
        self.try_frame(want, superseded).inspect_err(|_| {
            // A failed step leaves the world between two ticks: start over next time.
            self.sim = None;
        })
    }
}

impl ReplayFrames {
    /// Runs the next tick with every ship traced: the first ship there is, and the run of the
    /// first ship (by id) whose script ran.
    fn step_all_traced(&mut self) -> Result<(Option<u64>, Option<ScriptTraceRecord>), String> {
        let sim = self.sim.as_mut().expect("a world");
        // The tick's inputs first: ships they spawn are traced too.
        self.replay.apply_inputs(sim).map_err(|e| e.to_string())?;
        let ships: Vec<NetId> = sim.world().resource::<ShipIndex>().ids().collect();
        trace_ships(sim, &ships);
        sim.step();
        let tick = sim.tick();
        let mut records =
            std::mem::take(&mut sim.world_mut().resource_mut::<ScriptTrace>().records);
        records.retain(|r| r.tick == tick);
        let run = records.into_iter().min_by_key(|r| r.job.ship);
        Ok((ships.first().map(|s| s.0), run))
    }
}

/// Frames of a trace: its ticks as recorded, no world.
struct TraceFrames {
    trace: Arc<ShipTrace>,
}

impl Frames for TraceFrames {
    fn start(&mut self) -> (Reply, FirstFrame) {
        let first = &self.trace.ticks[0];
        let key = FrameKey {
            tick: first.tick,
            ship: Some(self.trace.ship),
        };
        let frame = trace_frame(&self.trace, first, key.ship);
        let start = Reply::Start {
            tick: first.tick,
            ship: key.ship,
        };
        (start, Some((key, Ok(frame))))
    }

    fn frame(
        &mut self,
        want: FrameKey,
        _superseded: &dyn Fn() -> bool,
    ) -> Result<Option<Frame>, String> {
        let at = self
            .trace
            .ticks
            .binary_search_by_key(&want.tick, |t| t.tick)
            .map_err(|_| format!("the trace has no run at tick {}", want.tick))?;
        Ok(Some(trace_frame(
            &self.trace,
            &self.trace.ticks[at],
            want.ship,
        )))
    }
}
