//! Tick timings of the paced server: how long ticks ran and how far apart they started.

use std::collections::VecDeque;

/// Tick durations kept for the shutdown report.
pub const TICK_SAMPLES: usize = 100_000;

/// Percentiles of paced ticks, in milliseconds: how long a tick ran, and the interval from
/// one tick's start to the next (the tick period when the world keeps time; requests carried
/// out between ticks lengthen it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TickTimes {
    pub ticks: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub interval_p50: f64,
    pub interval_p99: f64,
    pub interval_max: f64,
}

/// (p50, p99, max) of `samples` (nearest rank); zeros when empty.
fn percentiles(samples: &[f64]) -> (f64, f64, f64) {
    let [p50, p99, max] =
        astroboids_engine::stats::percentiles(samples, [0.5, 0.99, 1.0]).unwrap_or_default();
    (p50, p99, max)
}

impl TickTimes {
    /// Percentiles of tick durations and start-to-start intervals.
    pub fn of(durations_ms: &[f64], intervals_ms: &[f64]) -> Self {
        let (p50, p99, max) = percentiles(durations_ms);
        let (interval_p50, interval_p99, interval_max) = percentiles(intervals_ms);
        Self {
            ticks: durations_ms.len(),
            p50,
            p99,
            max,
            interval_p50,
            interval_p99,
            interval_max,
        }
    }
}

/// Recent paced ticks: (duration, interval since the previous tick's start) in ms.
#[derive(Debug, Default)]
pub(super) struct TickSamples {
    pub(super) durations_ms: VecDeque<f64>,
    pub(super) intervals_ms: VecDeque<f64>,
}

impl TickSamples {
    pub(super) fn push(queue: &mut VecDeque<f64>, value: f64) {
        if queue.len() == TICK_SAMPLES {
            queue.pop_front();
        }
        queue.push_back(value);
    }
}
