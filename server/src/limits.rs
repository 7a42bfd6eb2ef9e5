//! Request rate limits per IP address and per account (governor's GCRA), on a clock the
//! caller advances: time is passed in, so limits are tested without waiting.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, FakeRelativeClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use astroboids_net::messages::RequestError;

/// Sustained rates and bursts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateRules {
    pub per_ip_per_s: NonZeroU32,
    pub per_ip_burst: NonZeroU32,
    pub per_account_per_s: NonZeroU32,
    pub per_account_burst: NonZeroU32,
}

impl Default for RateRules {
    fn default() -> Self {
        let n = |v| NonZeroU32::new(v).expect("non-zero");
        Self {
            per_ip_per_s: n(50),
            per_ip_burst: n(100),
            per_account_per_s: n(20),
            per_account_burst: n(40),
        }
    }
}

type Keyed<K> = RateLimiter<
    K,
    HashMapStateStore<K>,
    FakeRelativeClock,
    NoOpMiddleware<<FakeRelativeClock as Clock>::Instant>,
>;

/// Keys whose state is dropped once they are idle (bounds memory under a flood of new keys).
const SWEEP_EVERY_CHECKS: u32 = 4096;

pub struct RateLimits {
    clock: FakeRelativeClock,
    now: Duration,
    ips: Keyed<IpAddr>,
    accounts: Keyed<String>,
    checks: u32,
}

impl RateLimits {
    pub fn new(rules: &RateRules) -> Self {
        let clock = FakeRelativeClock::default();
        let quota = |rate, burst| Quota::per_second(rate).allow_burst(burst);
        Self {
            ips: RateLimiter::new(
                quota(rules.per_ip_per_s, rules.per_ip_burst),
                HashMapStateStore::default(),
                clock.clone(),
            ),
            accounts: RateLimiter::new(
                quota(rules.per_account_per_s, rules.per_account_burst),
                HashMapStateStore::default(),
                clock.clone(),
            ),
            clock,
            now: Duration::ZERO,
            checks: 0,
        }
    }

    /// Counts one request from `ip` (and `account`, when logged in) at `now` (any monotonic
    /// reading, e.g. time since the server started); refuses it when either is over its rate.
    pub fn check(
        &mut self,
        ip: IpAddr,
        account: Option<&str>,
        now: Duration,
    ) -> Result<(), RequestError> {
        if now > self.now {
            self.clock.advance(now - self.now);
            self.now = now;
        }
        self.checks += 1;
        if self.checks >= SWEEP_EVERY_CHECKS {
            self.checks = 0;
            self.ips.retain_recent();
            self.accounts.retain_recent();
        }
        if self.ips.check_key(&ip).is_err() {
            return Err(RequestError::RateLimited(format!(
                "too many requests from {ip}; slow down"
            )));
        }
        if let Some(account) = account
            && self.accounts.check_key(&account.to_string()).is_err()
        {
            return Err(RequestError::RateLimited(format!(
                "too many requests for account {account}; slow down"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RateRules {
        let n = |v| NonZeroU32::new(v).unwrap();
        RateRules {
            per_ip_per_s: n(10),
            per_ip_burst: n(5),
            per_account_per_s: n(2),
            per_account_burst: n(3),
        }
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds_per_ip() {
        let mut limits = RateLimits::new(&rules());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Duration::from_secs(1);
        for _ in 0..5 {
            limits.check(ip, None, t0).unwrap();
        }
        let err = limits.check(ip, None, t0).unwrap_err();
        assert!(err.to_string().contains("from 127.0.0.1"), "{err}");
        limits
            .check(other, None, t0)
            .expect("another address has its own budget");
        // 10 per second: one more after 100 ms.
        limits
            .check(ip, None, t0 + Duration::from_millis(100))
            .unwrap();
        assert!(
            limits
                .check(ip, None, t0 + Duration::from_millis(100))
                .is_err()
        );
    }

    #[test]
    fn an_account_is_limited_across_addresses() {
        let mut limits = RateLimits::new(&rules());
        let t0 = Duration::from_secs(1);
        for i in 1..=3u8 {
            let ip = IpAddr::from([10, 0, 0, i]);
            limits.check(ip, Some("ada"), t0).unwrap();
        }
        let err = limits
            .check(IpAddr::from([10, 0, 0, 9]), Some("ada"), t0)
            .unwrap_err();
        assert!(err.to_string().contains("account ada"), "{err}");
        limits
            .check(IpAddr::from([10, 0, 0, 9]), Some("bob"), t0)
            .expect("bob is not ada");
        limits
            .check(
                IpAddr::from([10, 0, 0, 9]),
                Some("ada"),
                t0 + Duration::from_millis(500),
            )
            .expect("2 per second: one more after 500 ms");
    }
}
