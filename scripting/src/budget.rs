//! Fuel accounting and fault back-off, per ship. Pure, deterministic bookkeeping: the state is
//! small integers that the world hashes and persists with the ship.
//!
//! Fuel works like Screeps' CPU bucket, but counted in instructions: every tick a ship earns
//! `per_tick` fuel into its bucket (capped at `bucket_max`); a run may spend up to
//! `burst_max` of what is in the bucket. Quiet ticks save up for busy ones.
//!
//! Faults (traps, running out of fuel) put a script in back-off: after
//! `faults_before_backoff` faults it skips ticks, twice as many after each further fault, up
//! to `max_skip_ticks`. Only `clean_runs_to_forgive` clean runs in a row clear the count, so a
//! script cannot dodge back-off by alternating a faulting tick with a clean one. Skipped ticks
//! earn no fuel: back-off must not save up a bigger burst for the next fault.
//!
//! Budgets add up: [`water_fill`] shares a cap among requests (the sim shares fuel per sector:
//! each account's ships in a sector share the account's cap, accounts share the sector's), so
//! every script of a sector bursting at once still fits the tick.

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
    /// Clean runs in a row that clear the fault count.
    pub clean_runs_to_forgive: u32,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            faults_before_backoff: 3,
            first_skip_ticks: 2,
            max_skip_ticks: 600,
            clean_runs_to_forgive: 20,
        }
    }
}

/// A ship's fault record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStreak {
    /// Faults since the count was last cleared.
    pub faults: u32,
    /// Clean runs in a row since the last fault.
    pub clean_runs: u32,
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
            streak.clean_runs = streak.clean_runs.saturating_add(1);
            if streak.clean_runs >= self.clean_runs_to_forgive {
                streak.faults = 0;
            }
            return;
        }
        streak.clean_runs = 0;
        streak.faults = streak.faults.saturating_add(1);
        if streak.faults >= self.faults_before_backoff {
            let doublings = (streak.faults - self.faults_before_backoff).min(32);
            let skip = self
                .first_skip_ticks
                .saturating_mul(1u64 << doublings)
                .min(self.max_skip_ticks);
            streak.resume_at_tick = tick.saturating_add(1).saturating_add(skip);
        }
    }
}

/// Shares `cap` among `requests`: when they fit, each gets what it asked; otherwise every
/// request gets `min(request, level)` for the highest level that fits, and the units left by
/// rounding go one each to the earliest requests still short. Deterministic integer math: the
/// same inputs give the same shares on every machine. The shares never sum past `cap`.
pub fn water_fill(requests: &[u64], cap: u64) -> Vec<u64> {
    let total = requests.iter().fold(0u64, |sum, r| sum.saturating_add(*r));
    if total <= cap {
        return requests.to_vec();
    }
    let mut sorted: Vec<u64> = requests.to_vec();
    sorted.sort_unstable();
    // Find the level: requests below it are granted whole, the rest share what remains.
    let mut left = cap;
    let mut level = 0;
    for (i, &r) in sorted.iter().enumerate() {
        let sharing = (sorted.len() - i) as u64;
        if r.saturating_mul(sharing) <= left {
            left -= r;
            level = r;
        } else {
            level = left / sharing;
            break;
        }
    }
    let mut shares: Vec<u64> = requests.iter().map(|&r| r.min(level)).collect();
    let mut spare = cap - shares.iter().sum::<u64>();
    for (share, &r) in shares.iter_mut().zip(requests) {
        if spare == 0 {
            break;
        }
        if *share < r {
            *share += 1;
            spare -= 1;
        }
    }
    shares
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
    fn repeated_faults_back_off_exponentially_and_clean_runs_reset() {
        let p = BackoffPolicy {
            faults_before_backoff: 2,
            first_skip_ticks: 2,
            max_skip_ticks: 10,
            clean_runs_to_forgive: 1,
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
        assert_eq!(s.faults, 0);
        p.record(&mut s, 42, true);
        assert!(p.may_run(&s, 43), "the streak starts over");
    }

    #[test]
    fn alternating_faults_and_clean_runs_still_back_off() {
        let p = BackoffPolicy::default();
        let mut s = FaultStreak::default();
        let mut tick = 0;
        let mut skipped = 0;
        for round in 0..40 {
            tick += 1;
            if !p.may_run(&s, tick) {
                skipped += 1;
                continue;
            }
            p.record(&mut s, tick, round % 2 == 0);
        }
        assert!(s.faults >= p.faults_before_backoff, "{s:?}");
        assert!(skipped > 0, "a fault every other run backs off");
        // Only a long enough clean stretch forgives.
        let mut s = FaultStreak::default();
        p.record(&mut s, 1, true);
        for t in 2..(1 + u64::from(p.clean_runs_to_forgive)) {
            p.record(&mut s, t, false);
        }
        assert_eq!(s.faults, 1, "one run short of forgiveness");
        p.record(&mut s, 100, false);
        assert_eq!(s.faults, 0);
    }

    #[test]
    fn water_fill_shares_a_cap_fairly_and_never_exceeds_it() {
        assert_eq!(water_fill(&[10, 20, 30], 100), vec![10, 20, 30], "fits");
        assert_eq!(water_fill(&[10, 500, 500], 100), vec![10, 45, 45]);
        assert_eq!(
            water_fill(&[100, 100, 100], 100),
            vec![34, 33, 33],
            "spare units go first"
        );
        assert_eq!(water_fill(&[], 100), Vec::<u64>::new());
        assert_eq!(water_fill(&[5, 5], 0), vec![0, 0]);
        let requests: Vec<u64> = (0..1000).map(|i| (i * 7919) % 500_000).collect();
        let shares = water_fill(&requests, 1_000_000);
        assert_eq!(shares.iter().sum::<u64>(), 1_000_000);
        assert!(shares.iter().zip(&requests).all(|(s, r)| s <= r));
        assert_eq!(
            water_fill(&[u64::MAX, u64::MAX], 10),
            vec![5, 5],
            "no overflow"
        );
    }
}
