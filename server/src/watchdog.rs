//! The backstop behind fuel: suspends a script whose runs keep taking far longer, in wall-clock
//! time, than any run may.
//!
//! Fuel bounds the CPU a run can cause (every instruction class is priced by what it costs),
//! so on a healthy machine a run never comes near `run_wall_ms_max`. Should some class of work
//! still slip past the prices, the watchdog catches it: each tick it reads the runs the script
//! workers measured over the bound (`sim::scripts::SlowScripts`, never simulation state), and a
//! script that is over it `strikes_to_suspend` times within `strike_window_ticks` is suspended
//! through a `WorldInput::SuspendScript`: logged like any input, so replays reproduce the
//! suspension tick for tick without the clock, and its owner sees the reason as a fault.
//! Several strikes, not one: a shared machine can pause any thread now and then.
//!
//! I/O-free: ticks and measurements come in, inputs to submit come out.

use std::collections::BTreeMap;

use astroboids_engine::NetId;
use astroboids_sim::inputs::WorldInput;

/// When the watchdog acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogRules {
    /// A run longer than this is a strike.
    pub run_wall_ms_max: u64,
    pub strikes_to_suspend: u32,
    /// Strikes older than this many ticks are forgotten.
    pub strike_window_ticks: u64,
    /// Ships tracked at once (each with strikes in the window); beyond it, new strikes of
    /// untracked ships wait until old ones expire. Bounds the watchdog's memory.
    pub tracked_ships_max: usize,
}

impl Default for WatchdogRules {
    fn default() -> Self {
        Self {
            // A whole burst at the worst measured price is a few milliseconds (see
            // docs/scripting-abi.md); fifty is far beyond any honest run.
            run_wall_ms_max: 50,
            strikes_to_suspend: 3,
            strike_window_ticks: 600,
            tracked_ships_max: 10_000,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Strikes {
    /// Ticks of the strikes still in the window, oldest first.
    ticks: Vec<u64>,
    longest_ns: u64,
    fuel_of_longest: u64,
}

/// Strike counts per ship.
#[derive(Debug, Clone, Default)]
pub struct ScriptWatchdog {
    rules: WatchdogRules,
    strikes: BTreeMap<NetId, Strikes>,
}

impl ScriptWatchdog {
    pub fn new(rules: WatchdogRules) -> Self {
        Self {
            rules,
            strikes: BTreeMap::new(),
        }
    }

    pub fn rules(&self) -> &WatchdogRules {
        &self.rules
    }

    /// The bound the sim should report runs over, in nanoseconds.
    pub fn run_wall_ns_max(&self) -> u64 {
        self.rules.run_wall_ms_max.saturating_mul(1_000_000)
    }

    /// Takes tick `tick`'s slow runs, (ship, wall ns, fuel used), and returns the suspensions
    /// to submit, in ship order.
    pub fn observe(&mut self, tick: u64, slow_runs: &[(NetId, u64, u64)]) -> Vec<WorldInput> {
        let window_start = tick.saturating_sub(self.rules.strike_window_ticks);
        self.strikes.retain(|_, s| {
            s.ticks.retain(|&t| t > window_start);
            !s.ticks.is_empty()
        });
        let mut suspend = Vec::new();
        for &(ship, wall_ns, fuel) in slow_runs {
            if wall_ns <= self.run_wall_ns_max() {
                continue;
            }
            if !self.strikes.contains_key(&ship)
                && self.strikes.len() >= self.rules.tracked_ships_max
            {
                continue;
            }
            let strikes = self.strikes.entry(ship).or_default();
            strikes.ticks.push(tick);
            if wall_ns > strikes.longest_ns {
                strikes.longest_ns = wall_ns;
                strikes.fuel_of_longest = fuel;
            }
            if strikes.ticks.len() >= self.rules.strikes_to_suspend as usize {
                let reason = format!(
                    "{} of its runs within {} ticks took over {} ms (the longest {:.1} ms for \
                     {} fuel): far longer than their fuel allows",
                    strikes.ticks.len(),
                    self.rules.strike_window_ticks,
                    self.rules.run_wall_ms_max,
                    strikes.longest_ns as f64 / 1e6,
                    strikes.fuel_of_longest
                );
                self.strikes.remove(&ship);
                suspend.push(WorldInput::SuspendScript {
                    ship: ship.0,
                    reason,
                });
            }
        }
        suspend
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> WatchdogRules {
        WatchdogRules {
            run_wall_ms_max: 10,
            strikes_to_suspend: 3,
            strike_window_ticks: 100,
            tracked_ships_max: 2,
        }
    }

    const SLOW: u64 = 20_000_000;

    #[test]
    fn a_script_over_the_bound_again_and_again_is_suspended_with_the_reason() {
        let mut dog = ScriptWatchdog::new(rules());
        let ship = NetId(7);
        assert!(dog.observe(1, &[(ship, SLOW, 500)]).is_empty());
        assert!(
            dog.observe(2, &[(ship, 9_000_000, 500)]).is_empty(),
            "under the bound"
        );
        assert!(dog.observe(3, &[(ship, SLOW + 5_000_000, 900)]).is_empty());
        let inputs = dog.observe(4, &[(ship, SLOW, 500)]);
        assert_eq!(
            inputs,
            vec![WorldInput::SuspendScript {
                ship: 7,
                reason: "3 of its runs within 100 ticks took over 10 ms (the longest 25.0 ms \
                         for 900 fuel): far longer than their fuel allows"
                    .into()
            }]
        );
        assert!(
            dog.observe(5, &[(ship, SLOW, 500)]).is_empty(),
            "counting starts over"
        );
    }

    #[test]
    fn strikes_spread_wider_than_the_window_are_forgiven() {
        let mut dog = ScriptWatchdog::new(rules());
        let ship = NetId(1);
        for tick in [1, 150, 300, 450] {
            assert!(
                dog.observe(tick, &[(ship, SLOW, 1)]).is_empty(),
                "tick {tick}"
            );
        }
    }

    #[test]
    fn tracking_is_bounded() {
        let mut dog = ScriptWatchdog::new(rules());
        let slow: Vec<_> = (0..5).map(|i| (NetId(i), SLOW, 1)).collect();
        for tick in 1..=3 {
            let suspended = dog.observe(tick, &slow);
            if tick == 3 {
                let ships: Vec<u64> = suspended
                    .iter()
                    .map(|i| match i {
                        WorldInput::SuspendScript { ship, .. } => *ship,
                        _ => unreachable!(),
                    })
                    .collect();
                assert_eq!(ships, vec![0, 1], "only the tracked ships");
            }
        }
        assert!(dog.strikes.len() <= 2);
    }
}
