//! The tick thread: owns the [`ServerCore`] (and so the world), feeds it what the connection
//! tasks and workers report, runs ticks when it says they are due, and carries out its
//! effects. It reads the clock and moves messages; it decides nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use astroboids_host::persistent::HostError;
use astroboids_protocol::messages::{Response, TickEvents};
use tracing::{info, warn};

use super::passwords::PasswordWorkers;
use super::tick_times::TickSamples;
use super::{Shared, ShutdownReport};
use crate::core::{ConnId, Effect, Event, ServerCore};

/// What the network tasks and workers tell the tick thread.
pub(super) enum TickEvent {
    Connected {
        conn: ConnId,
        ip: IpAddr,
        to_conn: tokio::sync::mpsc::UnboundedSender<ToConnection>,
        live: LiveChannel,
    },
    Core(Event),
}

/// What the tick thread tells a connection task.
pub(super) enum ToConnection {
    Answer { id: u64, response: Response },
    Close { reason: String },
}

/// A subscribed client's live stream, from the tick thread.
pub(super) enum LiveUpdate {
    Datagrams(Vec<Vec<u8>>),
    Events(TickEvents),
}

/// Live updates waiting for a connection task: past this they are dropped (a client that
/// does not keep up gets newer snapshots, and a count of the events it missed).
pub(super) const LIVE_QUEUE: usize = 32;

/// The tick thread's end of a connection's live stream.
pub(super) struct LiveChannel {
    pub(super) updates: tokio::sync::mpsc::Sender<LiveUpdate>,
    /// The newest snapshot the client acknowledged (0: none), written by the connection task
    /// as acknowledgement datagrams arrive, read before each tick.
    pub(super) acked: Arc<AtomicU32>,
    pub(super) max_datagram_bytes: usize,
}

/// A connection as the tick thread reaches it.
struct ConnectionHandle {
    to_conn: tokio::sync::mpsc::UnboundedSender<ToConnection>,
    live: LiveChannel,
    /// The acknowledgement last given to the core.
    acked_told: u32,
    /// Tick events the live queue could not take since the last that went through.
    events_dropped: u32,
}

pub(super) struct TickThread {
    core: ServerCore,
    shared: Arc<Shared>,
    connections: HashMap<ConnId, ConnectionHandle>,
    passwords: PasswordWorkers,
    started: Instant,
    /// The world's tick, as of the last tick run (for log events).
    tick: u64,
}

/// Ticks over their budget are logged at most this often (with how many there were).
const OVERRUN_LOG_EVERY: Duration = Duration::from_secs(10);

impl TickThread {
    pub(super) fn new(core: ServerCore, shared: Arc<Shared>) -> Self {
        let passwords = PasswordWorkers::start(&shared.tick_tx);
        Self {
            core,
            shared,
            connections: HashMap::new(),
            passwords,
            started: Instant::now(),
            tick: 0,
        }
    }

    /// The core's clock: time since the thread started.
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub(super) fn run(
        mut self,
        events: mpsc::Receiver<TickEvent>,
    ) -> Result<ShutdownReport, HostError> {
        self.record_vitals();
        info!(
            tick = self.tick,
            tick_rate_hz = self.shared.tick_rate_hz,
            "ticking"
        );
        let budget = Duration::from_secs(1) / self.shared.tick_rate_hz.max(1);
        let mut overruns = Overruns::default();
        let mut previous_start: Option<Instant> = None;
        while !self.core.is_shutting_down() {
            self.handle_events_until(&events, self.core.next_due());
            if self.core.is_shutting_down() {
                break;
            }
            self.feed_acks();
            let started = Instant::now();
            let now = self.now();
            let effects = self.core.tick(now)?;
            let Some(effects) = effects else {
                continue; // Woken early: not due yet.
            };
            let took = started.elapsed();
            metrics::histogram!("astroboids_tick_duration_seconds").record(took.as_secs_f64());
            self.record_vitals();
            if took > budget {
                overruns.count(self.tick, took, budget);
            }
            self.carry_out(effects);
            let mut samples = self.shared.tick_samples.lock().expect("not poisoned");
            TickSamples::push(&mut samples.durations_ms, took.as_secs_f64() * 1000.0);
            if let Some(previous) = previous_start {
                TickSamples::push(
                    &mut samples.intervals_ms,
                    (started - previous).as_secs_f64() * 1000.0,
                );
            }
            previous_start = Some(started);
        }
        let tick_ms = self.shared.take_tick_times();
        // Stopping: requests still queued are answered that the server is shutting down.
        while let Ok(event) = events.try_recv() {
            self.handle_event(event);
        }
        let now = self.now();
        let Self {
            core, connections, ..
        } = self;
        let done = core.shut_down(now)?;
        let mut connections = connections;
        for effect in done.effects {
            carry_out_io(&mut connections, effect, done.tick);
        }
        info!(
            tick = done.tick,
            ticks_to_checkpoint = done.ticks_to_checkpoint,
            replay = done
                .replay_finished
                .as_ref()
                .map(|p| p.display().to_string()),
            "stopped at a checkpoint tick; checkpoint written"
        );
        Ok(ShutdownReport {
            tick: done.tick,
            ticks_to_checkpoint: done.ticks_to_checkpoint,
            replay_finished: done.replay_finished,
            tick_ms,
        })
    }

    /// Carries out events until `due` (on the core's clock) or a shutdown.
    fn handle_events_until(&mut self, events: &mpsc::Receiver<TickEvent>, due: Duration) {
        let started = self.started;
        take_events_until(
            events,
            due,
            || started.elapsed(),
            |event| {
                self.handle_event(event);
                !self.core.is_shutting_down()
            },
        );
    }

    fn handle_event(&mut self, event: TickEvent) {
        let event = match event {
            TickEvent::Connected {
                conn,
                ip,
                to_conn,
                live,
            } => {
                let max_datagram_bytes = live.max_datagram_bytes;
                self.connections.insert(
                    conn,
                    ConnectionHandle {
                        to_conn,
                        live,
                        acked_told: 0,
                        events_dropped: 0,
                    },
                );
                Event::Opened {
                    conn,
                    ip,
                    max_datagram_bytes,
                }
            }
            TickEvent::Core(event) => {
                match &event {
                    Event::Request { .. } => {
                        self.shared.queued.fetch_sub(1, Ordering::SeqCst);
                    }
                    Event::Closed { conn } => {
                        self.connections.remove(conn);
                    }
                    _ => {}
                }
                event
            }
        };
        let now = self.now();
        let effects = self.core.handle(event, now);
        self.carry_out(effects);
    }

    /// Acknowledgements that arrived since the last tick, for the snapshot encoders.
    fn feed_acks(&mut self) {
        let now = self.now();
        let mut acks = Vec::new();
        for (&conn, handle) in &mut self.connections {
            let seq = handle.live.acked.load(Ordering::Relaxed);
            if seq != handle.acked_told {
                handle.acked_told = seq;
                acks.push(Event::Acked { conn, seq });
            }
        }
        for ack in acks {
            // Acknowledgements change no answers.
            let _ = self.core.handle(ack, now);
        }
    }

    fn carry_out(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::HashPassword { conn, ip, id, job } => {
                    self.passwords.submit(conn, ip, id, job)
                }
                Effect::RunTrace { conn, id, job } => {
                    // Re-simulating takes a while: off the tick thread (the core allows one
                    // at a time).
                    let tick_tx = self.shared.tick_tx.clone();
                    std::thread::spawn(move || {
                        let response = job.run();
                        let _ =
                            tick_tx.send(TickEvent::Core(Event::TraceReady { conn, id, response }));
                    });
                }
                other => carry_out_io(&mut self.connections, other, self.tick),
            }
        }
    }

    fn record_vitals(&mut self) {
        let vitals = self.core.server().vitals();
        self.tick = vitals.tick;
        metrics::gauge!("astroboids_tick").set(vitals.tick as f64);
        metrics::gauge!("astroboids_ships").set(vitals.ships as f64);
        metrics::counter!("astroboids_script_fuel_used_total")
            .absolute(vitals.script_fuel_used_total);
        metrics::counter!("astroboids_script_faults_total").absolute(vitals.script_faults_total);
    }
}

/// Takes events from `events` and hands them to `handle` (which says whether to go on) until
/// `due` by `clock`. The deadline is checked before each event, not only when the channel is
/// empty: a steady stream of requests must not hold the next tick back.
fn take_events_until<T>(
    events: &mpsc::Receiver<T>,
    due: Duration,
    clock: impl Fn() -> Duration,
    mut handle: impl FnMut(T) -> bool,
) {
    loop {
        let now = clock();
        if now >= due {
            return;
        }
        match events.recv_timeout(due - now) {
            Ok(event) => {
                if !handle(event) {
                    return;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => return,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(due - now);
                return;
            }
        }
    }
}

/// Ticks that took longer than their budget, logged at most every [`OVERRUN_LOG_EVERY`].
#[derive(Default)]
struct Overruns {
    since_logged: u64,
    logged_at: Option<Instant>,
}

impl Overruns {
    fn count(&mut self, tick: u64, took: Duration, budget: Duration) {
        self.since_logged += 1;
        if self
            .logged_at
            .is_some_and(|at| at.elapsed() < OVERRUN_LOG_EVERY)
        {
            return;
        }
        warn!(
            tick,
            took_ms = took.as_secs_f64() * 1e3,
            budget_ms = budget.as_secs_f64() * 1e3,
            overruns = self.since_logged,
            "ticks took longer than their budget"
        );
        self.since_logged = 0;
        self.logged_at = Some(Instant::now());
    }
}

/// A line of the core's for the operator's log, as a log event (`warning: ...` lines as
/// warnings).
fn notice(tick: u64, line: &str) {
    match line.strip_prefix("warning: ") {
        Some(warning) => warn!(tick, "{warning}"),
        None => info!(tick, "{line}"),
    }
}

/// Effects that go to a connection task, or to the operator's log (`tick`: the world's).
fn carry_out_io(connections: &mut HashMap<ConnId, ConnectionHandle>, effect: Effect, tick: u64) {
    match effect {
        Effect::Answer { conn, id, response } => {
            if let Some(handle) = connections.get(&conn) {
                let _ = handle.to_conn.send(ToConnection::Answer { id, response });
            }
        }
        Effect::Close { conn, reason } => {
            if let Some(handle) = connections.get(&conn) {
                let _ = handle.to_conn.send(ToConnection::Close { reason });
            }
        }
        Effect::Datagrams { conn, datagrams } => {
            if let Some(handle) = connections.get(&conn) {
                // A full queue means the client is behind: this snapshot is skipped (the next
                // one is a delta against what it acknowledged, so nothing is lost for good).
                let _ = handle
                    .live
                    .updates
                    .try_send(LiveUpdate::Datagrams(datagrams));
            }
        }
        Effect::Events { conn, mut events } => {
            if let Some(handle) = connections.get_mut(&conn) {
                events.dropped_before = handle.events_dropped;
                match handle.live.updates.try_send(LiveUpdate::Events(events)) {
                    Ok(()) => handle.events_dropped = 0,
                    Err(_) => handle.events_dropped += 1,
                }
            }
        }
        Effect::Notice(line) => notice(tick, &line),
        Effect::HashPassword { .. } | Effect::RunTrace { .. } => {
            unreachable!("jobs are started by the tick thread")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// A million events wait; the clock moves 1 µs per event carried out: the tick due in
    /// 1 ms comes after exactly 1,000 of them, not after the whole queue.
    #[test]
    fn a_full_queue_does_not_hold_the_next_tick_back() {
        let (tx, rx) = mpsc::channel();
        for i in 0..1_000_000u32 {
            tx.send(i).unwrap();
        }
        let now = Cell::new(Duration::ZERO);
        let mut taken = 0;
        take_events_until(
            &rx,
            Duration::from_millis(1),
            || now.get(),
            |_| {
                taken += 1;
                now.set(now.get() + Duration::from_micros(1));
                true
            },
        );
        assert_eq!(taken, 1_000);
        assert_eq!(
            rx.try_iter().count(),
            999_000,
            "the rest waits for the next turn"
        );
    }
}
