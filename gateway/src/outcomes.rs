//! What became of world inputs, without I/O: the leader's tick reports name each input by
//! its position in the input log with its verdict; a gateway that submitted an input waits
//! for the report that carries its position. Reports of ticks re-run after a recovery carry
//! the same verdicts again (the world is deterministic), so the first one seen stands.

use std::collections::BTreeMap;

use astroboids_cluster::messages::{InputVerdict, TickReport};

/// Verdicts remembered, newest kept: enough for every input still waited for, and for a
/// request re-sent after its gateway was lost (the re-sent input is deduplicated by the log
/// and gets the first one's position, whose verdict is then found here).
pub const REMEMBERED_VERDICTS: usize = 65_536;

/// An input's fate: the tick that applied it (or refused it) and how it fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub tick: u64,
    pub verdict: InputVerdict,
}

/// Verdicts by input-log position, from tick reports.
#[derive(Debug, Default)]
pub struct Outcomes {
    by_position: BTreeMap<u64, Outcome>,
    /// The highest position any report carried: an input at or below it that is not
    /// remembered was judged before this gateway listened (or forgotten).
    through: u64,
}

impl Outcomes {
    /// Takes a tick report; returns the positions it judged for the first time.
    pub fn on_report(&mut self, report: &TickReport) -> Vec<u64> {
        let mut new = Vec::new();
        for (&position, verdict) in report.positions.iter().zip(&report.verdicts) {
            if position == 0 {
                continue; // a new world's setup: nobody waits for it
            }
            self.through = self.through.max(position);
            if let std::collections::btree_map::Entry::Vacant(entry) =
                self.by_position.entry(position)
            {
                entry.insert(Outcome {
                    tick: report.tick,
                    verdict: verdict.clone(),
                });
                new.push(position);
            }
        }
        while self.by_position.len() > REMEMBERED_VERDICTS {
            self.by_position.pop_first();
        }
        new
    }

    pub fn get(&self, position: u64) -> Option<&Outcome> {
        self.by_position.get(&position)
    }

    /// Whether reports already went past `position` without this gateway remembering it:
    /// its verdict must be looked for in the stored reports.
    pub fn passed(&self, position: u64) -> bool {
        position <= self.through && !self.by_position.contains_key(&position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(tick: u64, positions: Vec<u64>, verdicts: Vec<InputVerdict>) -> TickReport {
        TickReport {
            epoch: 1,
            tick,
            state_hash: 0,
            full_hash: false,
            ships: 0,
            tick_us: 0,
            shards: Vec::new(),
            verdicts,
            positions,
        }
    }

    #[test]
    fn the_first_report_of_a_position_stands_and_setup_is_skipped() {
        let mut outcomes = Outcomes::default();
        let first = report(
            5,
            vec![0, 7, 9],
            vec![Ok(vec![]), Ok(vec![3]), Err("no".into())],
        );
        assert_eq!(outcomes.on_report(&first), vec![7, 9]);
        assert_eq!(
            outcomes.get(7),
            Some(&Outcome {
                tick: 5,
                verdict: Ok(vec![3])
            })
        );
        // The same tick re-run under a new epoch: nothing new.
        assert!(
            outcomes
                .on_report(&report(5, vec![7], vec![Ok(vec![3])]))
                .is_empty()
        );
        assert!(outcomes.get(0).is_none());
        assert!(!outcomes.passed(7), "remembered");
        assert!(outcomes.passed(8), "judged before, not remembered");
        assert!(!outcomes.passed(10), "not judged yet");
    }

    #[test]
    fn memory_is_bounded() {
        let mut outcomes = Outcomes::default();
        let n = REMEMBERED_VERDICTS as u64 + 10;
        for p in 1..=n {
            outcomes.on_report(&report(p, vec![p], vec![Ok(vec![])]));
        }
        assert!(outcomes.get(1).is_none());
        assert!(outcomes.passed(1));
        assert!(outcomes.get(n).is_some());
    }
}
