use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A clock that moves only when advanced: readings are `Duration`s since an arbitrary start,
/// the form every clock-taking API of the workspace uses (`Pacer`, rate limits, sessions).
///
/// Clones share one time, so a test can hand a clone (or [`Self::reader`]) to the code under
/// test, even on another thread, and advance it from outside.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<Mutex<Duration>>);

impl ManualClock {
    /// A clock reading zero.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn starting_at(now: Duration) -> Self {
        Self(Arc::new(Mutex::new(now)))
    }

    pub fn now(&self) -> Duration {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves time forward by `by`; time never runs backwards.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }

    /// A clock function reading this clock (`Pacer::wait_for_tick`'s `clock`).
    pub fn reader(&self) -> impl Fn() -> Duration + Clone + Send + Sync + 'static {
        let clock = self.clone();
        move || clock.now()
    }

    /// A sleep function that returns at once, having advanced this clock by what it was asked
    /// to wait (`Pacer::wait_for_tick`'s `sleep`): a paced loop runs without real waiting.
    pub fn sleeper(&self) -> impl FnMut(Duration) + Send + 'static {
        let clock = self.clone();
        move |d| clock.advance(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use astroboids_engine::{Pacer, TickRate};

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn clones_and_readers_share_one_time() {
        let clock = ManualClock::starting_at(ms(5));
        let (other, read) = (clock.clone(), clock.reader());
        other.advance(ms(10));
        assert_eq!((clock.now(), read()), (ms(15), ms(15)));
        std::thread::spawn(move || other.advance(ms(1)))
            .join()
            .unwrap();
        assert_eq!(read(), ms(16));
    }

    #[test]
    fn a_pacer_driven_by_it_runs_at_its_rate_without_real_waiting() {
        let clock = ManualClock::new();
        let mut pacer = Pacer::new(TickRate::new(10), clock.now(), 4);
        let mut ticks_at = Vec::new();
        for _ in 0..5 {
            pacer.wait_for_tick(clock.reader(), clock.sleeper());
            ticks_at.push(clock.now());
        }
        assert_eq!(ticks_at, [ms(0), ms(100), ms(200), ms(300), ms(400)]);
        // A tick that took 250 ms: the two ticks it made late run at once.
        clock.advance(ms(250));
        pacer.wait_for_tick(clock.reader(), clock.sleeper());
        pacer.wait_for_tick(clock.reader(), clock.sleeper());
        assert_eq!(clock.now(), ms(650));
        pacer.wait_for_tick(clock.reader(), clock.sleeper());
        assert_eq!(clock.now(), ms(700));
    }
}
