//! `replay rerun` in the view: the selected ship's ticks re-run with another script on a thread
//! of their own, and the recorded and re-run commands kept side by side per tick (the ticks
//! where they differ; every other compared tick answered the same).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, channel};

use astroboids_engine::NetId;
use astroboids_host::rerun::{RerunRequest, rerun_with};
use astroboids_host::trace::replay_trace_with;
use astroboids_sim::SimOptions;

use super::source::{Source, check_script_path, load_script};

/// Differing ticks kept for the side by side view; the count goes on past it.
pub const MAX_KEPT_DIFFERENCES: usize = 10_000;

/// A finished re-run.
#[derive(Debug, Clone, PartialEq)]
pub struct RerunResult {
    pub script: PathBuf,
    pub ship: u64,
    pub from: u64,
    pub to: u64,
    /// The first tick the commands differ.
    pub first_difference: Option<u64>,
    /// Recorded and re-run commands at differing ticks, the first [`MAX_KEPT_DIFFERENCES`].
    pub differences: BTreeMap<u64, (String, String)>,
    pub differing_ticks: u64,
    /// What else the host found (ship and world departures, refused inputs), a line each.
    pub notes: Vec<String>,
}

/// The two commands at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compared<'a> {
    /// The tick was not re-run.
    Outside,
    Same,
    Differ {
        recorded: &'a str,
        rerun: &'a str,
    },
    /// They differ or not: past the differences kept.
    NotKept,
}

impl RerunResult {
    pub fn at(&self, tick: u64) -> Compared<'_> {
        if tick < self.from || tick > self.to {
            return Compared::Outside;
        }
        if let Some((recorded, rerun)) = self.differences.get(&tick) {
            return Compared::Differ { recorded, rerun };
        }
        let all_kept = self.differences.len() as u64 == self.differing_ticks;
        match self.differences.keys().next_back() {
            Some(&last_kept) if !all_kept && tick > last_kept => Compared::NotKept,
            _ => Compared::Same,
        }
    }
}

/// Collects every tick's commands, keeping the differing ones.
#[derive(Debug, Default)]
struct Collector {
    differences: BTreeMap<u64, (String, String)>,
    differing_ticks: u64,
}

impl Collector {
    fn tick(&mut self, tick: u64, recorded: &str, rerun: &str) {
        if recorded == rerun {
            return;
        }
        self.differing_ticks += 1;
        if self.differences.len() < MAX_KEPT_DIFFERENCES {
            self.differences
                .insert(tick, (recorded.to_string(), rerun.to_string()));
        }
    }
}

/// A re-run in progress.
pub struct RerunJob {
    pub script: PathBuf,
    answer: Receiver<Result<RerunResult, String>>,
    /// The last tick re-run so far.
    progress: Arc<AtomicU64>,
    pub from: u64,
    pub to: u64,
}

impl RerunJob {
    /// Starts re-running `ship`'s ticks of `source` with the module at `script` (the first tick
    /// to run it: `from`, else the recording's first). Refuses at once what cannot run.
    pub fn start(
        source: &Source,
        ship: u64,
        script: &Path,
        from: Option<u64>,
        repaint: Option<egui::Context>,
    ) -> Result<Self, String> {
        check_script_path(script)?;
        // A trace holds one ship, whichever is selected on its map.
        let ship = match source {
            Source::Trace(trace) => trace.ship,
            Source::Replay(_) => ship,
        };
        let ticks = source.ticks();
        let (first, to) = (from.unwrap_or(ticks.first()), ticks.last());
        let (tx, answer) = channel();
        let progress = Arc::new(AtomicU64::new(first.saturating_sub(1)));
        let (source, path, seen) = (source.clone(), script.to_path_buf(), progress.clone());
        std::thread::Builder::new()
            .name("replay-rerun".into())
            .spawn(move || {
                let result = run(&source, ship, &path, from, &seen);
                let _ = tx.send(result);
                if let Some(ctx) = repaint {
                    ctx.request_repaint();
                }
            })
            .map_err(|e| format!("cannot start the re-run: {e}"))?;
        Ok(Self {
            script: script.to_path_buf(),
            answer,
            progress,
            from: first,
            to,
        })
    }

    /// The outcome once it is there.
    pub fn poll(&self) -> Option<Result<RerunResult, String>> {
        match self.answer.try_recv() {
            Ok(result) => Some(result),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err("the re-run stopped unexpectedly".into())),
        }
    }

    /// The last tick re-run so far.
    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }
}

fn run(
    source: &Source,
    ship: u64,
    script: &Path,
    from: Option<u64>,
    progress: &AtomicU64,
) -> Result<RerunResult, String> {
    let wasm = load_script(script)?;
    let mut kept = Collector::default();
    let mut each = |tick: u64, recorded: &str, rerun: &str| {
        progress.store(tick, Ordering::Relaxed);
        kept.tick(tick, recorded, rerun);
    };
    let (from, to, first_difference, notes) = match source {
        Source::Replay(replay) => {
            let request = RerunRequest {
                ship: NetId(ship),
                wasm,
                from,
                to: None,
            };
            let report = rerun_with(replay, &request, SimOptions::default(), &mut each)
                .map_err(|e| e.to_string())?;
            let mut notes = vec![if report.identical {
                "identical: every tick's state hash equals the recording".to_string()
            } else {
                "the world departs from the recording".to_string()
            }];
            if let Some(t) = report.first_ship_difference {
                notes.push(format!("the ship's state first differs at tick {t}"));
            }
            if let Some((t, parts)) = &report.first_world_difference {
                notes.push(format!(
                    "the world first differs at tick {t} ({})",
                    parts.join(", ")
                ));
            }
            notes.extend(report.refused_inputs.iter().take(10).cloned());
            (
                report.from,
                report.to,
                report.first_command_difference,
                notes,
            )
        }
        Source::Trace(trace) => {
            if from.is_some_and(|f| f != trace.ticks[0].tick) {
                return Err(
                    "a trace re-runs from its first tick: its script state is saved there only"
                        .into(),
                );
            }
            let report = replay_trace_with(trace, Some(&wasm), &mut each)
                .map_err(|e| format!("{}: {e}", script.display()))?;
            let note = if report.started_from_saved_state {
                "the same script: started from the traced instance state"
            } else {
                "started from a fresh instance, fed the traced sensors, budgets and seeds"
            };
            let last = trace.ticks.last().map_or(0, |t| t.tick);
            (
                trace.ticks[0].tick,
                last,
                report.first_difference.map(|d| d.tick),
                vec![note.to_string()],
            )
        }
    };
    Ok(RerunResult {
        script: script.to_path_buf(),
        ship,
        from,
        to,
        first_difference,
        differences: kept.differences,
        differing_ticks: kept.differing_ticks,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(differences: &[(u64, &str, &str)], differing_ticks: u64) -> RerunResult {
        RerunResult {
            script: PathBuf::from("new.wasm"),
            ship: 1,
            from: 10,
            to: 50,
            first_difference: differences.first().map(|d| d.0),
            differences: differences
                .iter()
                .map(|(t, a, b)| (*t, (a.to_string(), b.to_string())))
                .collect(),
            differing_ticks,
            notes: Vec::new(),
        }
    }

    #[test]
    fn each_tick_compares_as_kept() {
        let r = result(&[(20, "thrust 1", "thrust 0"), (22, "a", "b")], 2);
        assert_eq!(r.at(9), Compared::Outside);
        assert_eq!(r.at(51), Compared::Outside);
        assert_eq!(r.at(19), Compared::Same);
        assert_eq!(
            r.at(20),
            Compared::Differ {
                recorded: "thrust 1",
                rerun: "thrust 0"
            }
        );
        assert_eq!(r.at(40), Compared::Same, "every difference was kept");
        let cut = result(&[(20, "a", "b")], 5);
        assert_eq!(cut.at(21), Compared::NotKept);
        assert_eq!(cut.at(15), Compared::Same);
    }

    #[test]
    fn the_collector_keeps_differences_up_to_its_bound_and_counts_them_all() {
        let mut c = Collector::default();
        let total = MAX_KEPT_DIFFERENCES as u64 + 5;
        for tick in 0..total {
            c.tick(tick, "a", "b");
            c.tick(tick, "same", "same");
        }
        assert_eq!(c.differences.len(), MAX_KEPT_DIFFERENCES);
        assert_eq!(c.differing_ticks, total);
    }
}
