//! Driving the tick schedule: as fast as possible, or paced against a caller-supplied clock.
//!
//! Architecture invariant: nothing in the tick schedule reads the wall clock. Pacing lives
//! here, outside the schedule, and takes the current time as an argument so it can be tested
//! with a simulated clock.

use std::time::Duration;

use bevy_app::App;
use bevy_ecs::prelude::*;

use crate::hash::{StateHash, StateHashExt};
use crate::schedule::{Tick, TickRate, TickSchedule};

/// A built world plus its tick schedule.
pub struct Simulation {
    app: App,
}

impl Simulation {
    /// Finishes plugin setup. The app must contain [`crate::EnginePlugin`].
    ///
    /// # Panics
    /// When the engine plugin is missing or the tick schedule has unordered conflicting systems
    /// (bevy's ambiguity detection is set to error for [`TickSchedule`]).
    pub fn new(mut app: App) -> Self {
        app.finish();
        app.cleanup();
        assert!(
            app.world().contains_resource::<Tick>(),
            "Simulation::new: the app has no EnginePlugin"
        );
        // Build the schedule now so ordering errors surface at startup, not on the first tick.
        app.world_mut()
            .schedule_scope(TickSchedule, |world, schedule| {
                schedule
                    .initialize(world)
                    .unwrap_or_else(|e| panic!("the tick schedule is not fully ordered: {e}"));
            });
        Self { app }
    }

    pub fn world(&self) -> &World {
        self.app.world()
    }

    pub fn world_mut(&mut self) -> &mut World {
        self.app.world_mut()
    }

    pub fn tick(&self) -> u64 {
        self.world().resource::<Tick>().0
    }

    pub fn tick_rate(&self) -> TickRate {
        *self.world().resource::<TickRate>()
    }

    /// Advances exactly one tick.
    pub fn step(&mut self) {
        let world = self.app.world_mut();
        world.resource_mut::<Tick>().0 += 1;
        world.run_schedule(TickSchedule);
    }

    /// Advances `ticks` ticks as fast as possible (headless runs, replays).
    pub fn run_ticks(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.step();
        }
    }

    pub fn state_hash(&mut self) -> StateHash {
        self.app.world_mut().state_hash()
    }

    /// The state hash without its heavy parts (script memory): see [`crate::hash::HashCost`].
    pub fn quick_state_hash(&mut self) -> StateHash {
        self.app.world_mut().quick_state_hash()
    }
}

/// Decides how many ticks are due at a given time, for running at the configured tick rate.
///
/// When the server falls behind by more than `max_catch_up` ticks, the backlog is dropped
/// rather than run in a burst: a slow tick should slow the world down, not make it stutter.
#[derive(Debug, Clone)]
pub struct Pacer {
    period: Duration,
    next_due: Duration,
    max_catch_up: u32,
    dropped_ticks: u64,
    /// Ticks found due and not yet handed out by `wait_for_tick`.
    owed: u32,
}

impl Pacer {
    /// `start` is the clock reading at which the first tick is due.
    pub fn new(rate: TickRate, start: Duration, max_catch_up: u32) -> Self {
        assert!(
            max_catch_up >= 1,
            "max_catch_up must allow at least one tick"
        );
        Self {
            period: Duration::from_secs(1) / rate.hz,
            next_due: start,
            max_catch_up,
            dropped_ticks: 0,
            owed: 0,
        }
    }

    /// The number of ticks to run now, given the clock reading `now`.
    pub fn ticks_due(&mut self, now: Duration) -> u32 {
        if now < self.next_due {
            return 0;
        }
        let behind = (now - self.next_due).as_nanos() / self.period.as_nanos() + 1;
        let due = behind.min(u128::from(self.max_catch_up)) as u32;
        self.dropped_ticks += (behind - u128::from(due)) as u64;
        self.next_due = if behind > u128::from(due) {
            now + self.period
        } else {
            self.next_due + self.period * due
        };
        due
    }

    /// How long until the next tick is due (zero when one is due now).
    pub fn wait(&self, now: Duration) -> Duration {
        self.next_due.saturating_sub(now)
    }

    /// Returns when the next tick is due by `clock`, waiting with `sleep` until then. Call it
    /// before each tick: a short backlog is handed out without waiting.
    pub fn wait_for_tick(&mut self, clock: impl Fn() -> Duration, mut sleep: impl FnMut(Duration)) {
        while self.owed == 0 {
            self.owed = self.ticks_due(clock());
            if self.owed == 0 {
                sleep(self.wait(clock()));
            }
        }
        self.owed -= 1;
    }

    /// When the next tick is due (on the clock `start` was read from).
    pub fn next_due(&self) -> Duration {
        self.next_due
    }

    /// Ticks skipped because the world fell too far behind.
    pub fn dropped_ticks(&self) -> u64 {
        self.dropped_ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EnginePlugin;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn pacer_runs_one_tick_per_period() {
        let mut pacer = Pacer::new(TickRate::new(10), ms(0), 4);
        assert_eq!(pacer.ticks_due(ms(0)), 1);
        assert_eq!(pacer.ticks_due(ms(50)), 0);
        assert_eq!(pacer.wait(ms(50)), ms(50));
        assert_eq!(pacer.ticks_due(ms(100)), 1);
        assert_eq!(pacer.ticks_due(ms(350)), 2, "catches up a short backlog");
        assert_eq!(pacer.ticks_due(ms(399)), 0);
        assert_eq!(pacer.dropped_ticks(), 0);
    }

    #[test]
    fn pacer_drops_a_long_backlog_instead_of_bursting() {
        let mut pacer = Pacer::new(TickRate::new(10), ms(0), 4);
        assert_eq!(pacer.ticks_due(ms(0)), 1);
        assert_eq!(pacer.ticks_due(ms(2_000)), 4);
        assert_eq!(pacer.dropped_ticks(), 16);
        assert_eq!(pacer.ticks_due(ms(2_050)), 0);
        assert_eq!(pacer.ticks_due(ms(2_100)), 1);
    }

    #[test]
    fn waiting_for_ticks_with_a_simulated_clock_keeps_the_rate() {
        let now = std::cell::Cell::new(Duration::ZERO);
        let mut pacer = Pacer::new(TickRate::new(10), now.get(), 4);
        let mut ticks_at = Vec::new();
        for _ in 0..20 {
            pacer.wait_for_tick(|| now.get(), |d| now.set(now.get() + d));
            ticks_at.push(now.get());
        }
        // 20 ticks at 10 Hz: the 20th is due at 1.9 s.
        assert_eq!(now.get(), ms(1_900));
        assert_eq!(ticks_at[1], ms(100));
        // A slow tick (350 ms) leaves a backlog: the ticks due at 2.0, 2.1 and 2.2 s are
        // handed out without sleeping, the next one waits for 2.3 s.
        now.set(now.get() + ms(350));
        for _ in 0..3 {
            pacer.wait_for_tick(|| now.get(), |d| now.set(now.get() + d));
        }
        assert_eq!(now.get(), ms(2_250), "no waiting while ticks are owed");
        pacer.wait_for_tick(|| now.get(), |d| now.set(now.get() + d));
        assert_eq!(now.get(), ms(2_300));
    }

    #[test]
    #[should_panic(expected = "the tick schedule is not fully ordered")]
    fn unordered_conflicting_systems_are_rejected_at_startup() {
        #[derive(Resource, Default)]
        struct Shared(u32);
        fn add_one(mut s: ResMut<Shared>) {
            s.0 += 1;
        }
        fn double(mut s: ResMut<Shared>) {
            s.0 *= 2;
        }
        let mut app = App::empty();
        app.add_plugins(EnginePlugin {
            universe_seed: 1,
            tick_rate_hz: 10,
        });
        app.init_resource::<Shared>()
            .add_systems(crate::TickSchedule, (add_one, double));
        Simulation::new(app);
    }

    #[test]
    fn step_advances_the_tick_counter_and_the_hash() {
        let mut app = App::empty();
        app.add_plugins(EnginePlugin {
            universe_seed: 1,
            tick_rate_hz: 10,
        });
        let mut sim = Simulation::new(app);
        let h0 = sim.state_hash();
        sim.run_ticks(3);
        assert_eq!(sim.tick(), 3);
        assert_ne!(sim.state_hash(), h0);
    }
}
