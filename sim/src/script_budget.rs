//! How a tick's fuel is shared, so that budgets add up.
//!
//! A ship's own bucket says what it may ask for (`FuelPolicy::earn`); this module decides what
//! it gets. Fuel is shared per sector: the scripted ships in one sector (where they are at the
//! Behaviour stage) share that sector's fuel, and nothing outside the sector changes what they
//! get. A sector's contents and the rules that touch them must not depend on anything outside
//! it, so that a world spread over several shards, each owning some sectors, gives the same
//! results whatever the split.
//!
//! In each sector three caps hold at once: a ship's burst, its account's
//! `account_fuel_per_tick_max` (for that account's ships in this sector; the same account's
//! ships elsewhere count against the other sectors' caps) and the sector's
//! `sector_fuel_per_tick_max`. Instance starts count against the sector's cap at their full
//! `start_fuel`, and take at most half of it in one tick; and at most
//! [`INSTANCE_STARTS_PER_SECTOR_PER_TICK`] instances start in one sector in one tick (at least
//! one start per sector). When a
//! cap binds it is shared by water-filling (everyone gets the same ceiling; small requests are
//! met in full), first among accounts, then among one account's ships. All of it is integer
//! arithmetic over inputs in a fixed order (sectors by coordinates, ships by id), so every
//! machine grants the same fuel.

use std::collections::BTreeMap;

use astroboids_scripting::budget::water_fill;

/// The most instances one sector starts in one tick. A start costs the host work fuel does
/// not meter (the start function's first page faults, the first run's; the instance itself is
/// made between ticks, see `ScriptWorkers::prepare`), so starts are bounded by count as well
/// as by fuel: 10,000 fresh miners over 389 sectors start over 7 ticks instead of all in the
/// first one. A ship given a script in a sector where few others start starts at once. Per
/// sector, like fuel, so a world split over shards starts the same ships at the same ticks.
pub(crate) const INSTANCE_STARTS_PER_SECTOR_PER_TICK: usize = 4;

/// One ship's request for this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FuelClaim<'a> {
    /// The owning account; `None` counts as an account of its own.
    pub account: Option<&'a str>,
    pub request: u64,
}

/// The fuel caps of one sector for one tick (the same for every sector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FuelCaps {
    /// What one account's ships in the sector may use together.
    pub account_max: u64,
    /// What all runs and starts in the sector may use together.
    pub sector_max: u64,
    pub start_fuel: u64,
}

impl FuelCaps {
    /// How many of a sector's `pending` instance starts (taken in ship-id order) begin this
    /// tick: as many as fit in half the sector's fuel, at most
    /// [`INSTANCE_STARTS_PER_SECTOR_PER_TICK`], and always at least one, so every start
    /// happens.
    pub(crate) fn admitted_starts(&self, pending: usize) -> usize {
        let fit = (self.sector_max / 2) / self.start_fuel.max(1);
        let fit = usize::try_from(fit).unwrap_or(usize::MAX);
        fit.clamp(1, INSTANCE_STARTS_PER_SECTOR_PER_TICK)
            .min(pending)
    }

    /// The fuel left for a sector's runs after its `starts` instance starts.
    pub(crate) fn run_fuel(&self, starts: usize) -> u64 {
        self.sector_max
            .saturating_sub(self.start_fuel.saturating_mul(starts as u64))
    }
}

/// What each claim of one sector is granted (same order as `claims`), within `account_max` per
/// account and `sector_fuel` in all. Grants never exceed requests.
pub(crate) fn grant_fuel(claims: &[FuelClaim], account_max: u64, sector_fuel: u64) -> Vec<u64> {
    // Accounts in name order, then ownerless ships in claim order.
    let mut owned: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (index, claim) in claims.iter().enumerate() {
        match claim.account {
            Some(account) => owned.entry(account).or_default().push(index),
            None => groups.push(vec![index]),
        }
    }
    let mut ordered: Vec<Vec<usize>> = owned.into_values().collect();
    ordered.append(&mut groups);

    let requests_of =
        |group: &[usize]| -> Vec<u64> { group.iter().map(|&i| claims[i].request).collect() };
    let account_requests: Vec<u64> = ordered
        .iter()
        .map(|group| {
            requests_of(group)
                .into_iter()
                .fold(0u64, u64::saturating_add)
                .min(account_max)
        })
        .collect();
    let account_shares = water_fill(&account_requests, sector_fuel);

    let mut grants = vec![0; claims.len()];
    for (group, share) in ordered.iter().zip(account_shares) {
        for (&index, grant) in group.iter().zip(water_fill(&requests_of(group), share)) {
            grants[index] = grant;
        }
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(account: Option<&str>, request: u64) -> FuelClaim<'_> {
        FuelClaim { account, request }
    }

    #[test]
    fn requests_within_every_cap_are_granted_whole() {
        let claims = [
            claim(Some("ada"), 100),
            claim(None, 50),
            claim(Some("bo"), 10),
        ];
        assert_eq!(grant_fuel(&claims, 1_000, 10_000), vec![100, 50, 10]);
    }

    #[test]
    fn an_account_with_many_ships_shares_its_cap_and_cannot_crowd_out_others() {
        let mut claims: Vec<_> = (0..100).map(|_| claim(Some("swarm"), 500)).collect();
        claims.push(claim(Some("solo"), 400));
        let grants = grant_fuel(&claims, 10_000, 1_000_000);
        assert_eq!(grants[..100].iter().sum::<u64>(), 10_000, "the account cap");
        assert!(grants[..100].iter().all(|&g| g == 100));
        assert_eq!(grants[100], 400, "another account is untouched");
    }

    #[test]
    fn the_sector_cap_is_shared_evenly_among_accounts_first() {
        let mut claims: Vec<_> = (0..10).map(|_| claim(Some("many"), 1_000)).collect();
        claims.push(claim(Some("one"), 1_000));
        claims.push(claim(None, 1_000));
        let grants = grant_fuel(&claims, 1_000_000, 3_000);
        assert_eq!(
            grants.iter().sum::<u64>(),
            3_000,
            "never more than the sector cap"
        );
        assert_eq!(grants[10], 1_000, "an account of one ship gets a third");
        assert_eq!(grants[11], 1_000, "an ownerless ship counts as an account");
        assert_eq!(grants[..10].iter().sum::<u64>(), 1_000);
    }

    #[test]
    fn starts_take_at_most_half_the_sector_and_a_few_per_tick_but_at_least_one() {
        // Fuel for 80 starts in half the sector: the count bounds them.
        let caps = FuelCaps {
            account_max: 10,
            sector_max: 40_000_000,
            start_fuel: 250_000,
        };
        assert_eq!(
            caps.admitted_starts(100),
            INSTANCE_STARTS_PER_SECTOR_PER_TICK
        );
        assert_eq!(caps.admitted_starts(1), 1);
        assert_eq!(caps.run_fuel(2), 39_500_000);
        let huge = FuelCaps {
            start_fuel: 30_000_000,
            ..caps
        };
        assert_eq!(
            huge.admitted_starts(100),
            1,
            "progress even when one start is over half"
        );
        assert_eq!(huge.run_fuel(1), 10_000_000);
    }
}
