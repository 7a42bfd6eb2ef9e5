//! Fuel accounting and fault back-off, per ship. Pure, deterministic bookkeeping: the state is
//! small integers that the world hashes and persists with the ship.
//!
//! Fuel works like Screeps' CPU bucket, but counted in instructions: every tick a ship earns
//! `per_tick` fuel into its bucket (capped at `bucket_max`); a run may spend up to
//! `burst_max` of what is in the bucket. Quiet ticks save up for busy ones.
//!
//! Faults (traps, running out of fuel) put a script in back-off: after
//! `faults_before_backoff` faults in a row it skips ticks, twice as many after each further
//! fault, up to `max_skip_ticks`. One clean run clears the streak.

/// Fuel limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuelPolicy {
    pub per_tick: u64,
    pub bucket_max: u64,
    pub burst_max: u64,
}

impl Default for FuelPolicy {
    fn default() -> Self {
        Self {
            per_tick: 100_000,
            bucket_max: 2_000_000,
            burst_max: 500_000,
        }
    }
}

/// A ship's saved fuel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FuelBucket {
    pub stored: u64,
}

impl FuelPolicy {
    /// Adds this tick's fuel to the bucket; returns the budget for this tick's run.
    pub fn earn(&self, bucket: &mut FuelBucket) -> u64 {
        bucket.stored = bucket
            .stored
            .saturating_add(self.per_tick)
            .min(self.bucket_max);
        bucket.stored.min(self.burst_max)
    }

    /// Takes what a run used out of the bucket.
    pub fn spend(&self, bucket: &mut FuelBucket, used: u64) {
        bucket.stored -= used.min(bucket.stored);
    }
}

/// Back-off limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub faults_before_backoff: u32,
    pub first_skip_ticks: u64,
    pub max_skip_ticks: u64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            faults_before_backoff: 3,
            first_skip_ticks: 2,
            max_skip_ticks: 600,
        }
    }
}

/// A ship's fault streak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStreak {
    pub consecutive: u32,
    /// The script does not run before this tick.
    pub resume_at_tick: u64,
}

impl BackoffPolicy {
    pub fn may_run(&self, streak: &FaultStreak, tick: u64) -> bool {
        tick >= streak.resume_at_tick
    }

    /// Records the outcome of the run at `tick`.
    pub fn record(&self, streak: &mut FaultStreak, tick: u64, faulted: bool) {
        if !faulted {
            streak.consecutive = 0;
            return;
        }
        streak.consecutive = streak.consecutive.saturating_add(1);
        if streak.consecutive >= self.faults_before_backoff {
            let doublings = (streak.consecutive - self.faults_before_backoff).min(32);
            let skip = self
                .first_skip_ticks
                .saturating_mul(1u64 << doublings)
                .min(self.max_skip_ticks);
            streak.resume_at_tick = tick.saturating_add(1).saturating_add(skip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_fuel_accrues_up_to_the_cap_and_bursts_are_limited() {
        let p = FuelPolicy {
            per_tick: 100,
            bucket_max: 1_000,
            burst_max: 300,
        };
        let mut b = FuelBucket::default();
        assert_eq!(p.earn(&mut b), 100);
        p.spend(&mut b, 0);
        assert_eq!(p.earn(&mut b), 200, "saved fuel is available");
        p.spend(&mut b, 0);
        assert_eq!(p.earn(&mut b), 300, "capped by the burst");
        for _ in 0..20 {
            p.earn(&mut b);
        }
        assert_eq!(b.stored, 1_000, "capped by the bucket");
        p.spend(&mut b, 300);
        assert_eq!(b.stored, 700);
        p.spend(&mut b, 10_000);
        assert_eq!(b.stored, 0, "never negative");
    }

    #[test]
    fn repeated_faults_back_off_exponentially_and_a_clean_run_resets() {
        let p = BackoffPolicy {
            faults_before_backoff: 2,
            first_skip_ticks: 2,
            max_skip_ticks: 10,
        };
        let mut s = FaultStreak::default();
        p.record(&mut s, 1, true);
        assert!(p.may_run(&s, 2), "one fault is forgiven");
        p.record(&mut s, 2, true);
        assert!(!p.may_run(&s, 3) && !p.may_run(&s, 4));
        assert!(p.may_run(&s, 5), "skips 2 ticks");
        p.record(&mut s, 5, true);
        assert_eq!(s.resume_at_tick, 5 + 1 + 4, "then 4");
        p.record(&mut s, 10, true);
        p.record(&mut s, 30, true);
        assert_eq!(s.resume_at_tick, 30 + 1 + 10, "capped");
        p.record(&mut s, 41, false);
        assert_eq!(s.consecutive, 0);
        p.record(&mut s, 42, true);
        assert!(p.may_run(&s, 43), "the streak starts over");
    }
}
