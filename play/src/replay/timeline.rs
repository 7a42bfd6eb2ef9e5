//! The timeline's decisions, with no clock, no thread and no I/O: which tick is asked for
//! (play, pause, step, seek, speed, time passed in as `now` seconds), which request the worker
//! must be sent, and the bounded cache of frames it answered.

use std::collections::VecDeque;

/// Playback speeds, times the recording's tick rate.
pub const SPEEDS: [f64; 7] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];
const NORMAL_SPEED: usize = 2;
/// A frame longer than this (a stall, a window in the background) advances playback as if it
/// were this long: playback resumes where it was instead of leaping ahead.
const MAX_FRAME_SECONDS: f64 = 0.25;

/// The ticks there are to show: every recorded tick of a replay, or the ticks a trace's script
/// ran (a ship backing off after faults skips ticks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ticks {
    Range {
        first: u64,
        last: u64,
    },
    /// Ascending, not empty.
    List(Vec<u64>),
}

impl Ticks {
    pub fn len(&self) -> usize {
        match self {
            Ticks::Range { first, last } => usize::try_from(last - first + 1).unwrap_or(usize::MAX),
            Ticks::List(list) => list.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn first(&self) -> u64 {
        self.at(0)
    }

    pub fn last(&self) -> u64 {
        self.at(self.len() - 1)
    }

    /// The tick at `index` (the last one past the end).
    pub fn at(&self, index: usize) -> u64 {
        match self {
            Ticks::Range { first, last } => first.saturating_add(index as u64).min(*last),
            Ticks::List(list) => list[index.min(list.len() - 1)],
        }
    }

    /// The index of `tick`, or of the latest tick before it; `None` outside the first..=last.
    pub fn index_of(&self, tick: u64) -> Option<usize> {
        if tick < self.first() || tick > self.last() {
            return None;
        }
        Some(match self {
            Ticks::Range { first, .. } => (tick - first) as usize,
            Ticks::List(list) => list.partition_point(|&t| t <= tick) - 1,
        })
    }

    /// "ticks 1..=90", for messages.
    pub fn describe(&self) -> String {
        match self {
            Ticks::Range { first, last } => format!("ticks {first}..={last}"),
            Ticks::List(list) => format!(
                "{} script runs in ticks {}..={}",
                list.len(),
                self.first(),
                self.last()
            ),
        }
    }
}

/// Where playback is and how fast it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    ticks: Ticks,
    index: usize,
    playing: bool,
    speed: usize,
    tick_rate_hz: f64,
    /// Ticks earned but not yet shown (playback moves whole ticks).
    carried: f64,
    /// When playback last advanced; `None` when paused (time paused does not count).
    last_frame: Option<f64>,
}

impl Timeline {
    /// A paused timeline at the first tick; `ticks` must not be empty.
    pub fn new(ticks: Ticks, tick_rate_hz: u32) -> Self {
        assert!(!ticks.is_empty(), "a timeline needs a tick");
        Self {
            ticks,
            index: 0,
            playing: false,
            speed: NORMAL_SPEED,
            tick_rate_hz: f64::from(tick_rate_hz.max(1)),
            carried: 0.0,
            last_frame: None,
        }
    }

    pub fn ticks(&self) -> &Ticks {
        &self.ticks
    }

    /// The tick asked for.
    pub fn tick(&self) -> u64 {
        self.ticks.at(self.index)
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn playing(&self) -> bool {
        self.playing
    }

    /// Times the recording's tick rate.
    pub fn speed(&self) -> f64 {
        SPEEDS[self.speed]
    }

    /// Goes to `tick` (for a trace: the latest run at or before it); playing or not, as before.
    pub fn seek(&mut self, tick: u64) -> Result<(), String> {
        let index = self.ticks.index_of(tick).ok_or_else(|| {
            format!(
                "tick {tick} is outside the recording ({})",
                self.ticks.describe()
            )
        })?;
        self.seek_index(index);
        Ok(())
    }

    /// Goes to the `index`th tick (clamped), as the scrub slider does.
    pub fn seek_index(&mut self, index: usize) {
        self.index = index.min(self.ticks.len() - 1);
        self.carried = 0.0;
    }

    /// Moves `by` ticks (runs, for a trace) and pauses: stepping is for looking closely.
    pub fn step(&mut self, by: i64) {
        self.pause();
        let index = if by < 0 {
            self.index.saturating_sub(by.unsigned_abs() as usize)
        } else {
            self.index.saturating_add(by as usize)
        };
        self.seek_index(index);
    }

    pub fn pause(&mut self) {
        self.playing = false;
        self.last_frame = None;
        self.carried = 0.0;
    }

    /// Plays from here, or from the start when at the end.
    pub fn play(&mut self) {
        if self.index + 1 >= self.ticks.len() {
            self.index = 0;
        }
        self.playing = true;
        self.last_frame = None;
    }

    pub fn toggle(&mut self) {
        if self.playing {
            self.pause();
        } else {
            self.play();
        }
    }

    pub fn faster(&mut self) {
        self.speed = (self.speed + 1).min(SPEEDS.len() - 1);
    }

    pub fn slower(&mut self) {
        self.speed = self.speed.saturating_sub(1);
    }

    /// Advances playback to `now` seconds; true when the tick asked for changed. Playback
    /// stops at the last tick.
    pub fn advance(&mut self, now: f64) -> bool {
        if !self.playing {
            return false;
        }
        let elapsed = self
            .last_frame
            .map_or(0.0, |last| (now - last).clamp(0.0, MAX_FRAME_SECONDS));
        self.last_frame = Some(now);
        self.carried += elapsed * self.tick_rate_hz * self.speed();
        let whole = self.carried.floor();
        self.carried -= whole;
        let before = self.index;
        self.index = self
            .index
            .saturating_add(whole as usize)
            .min(self.ticks.len() - 1);
        if self.index + 1 >= self.ticks.len() {
            self.pause();
        }
        self.index != before
    }

    /// Seconds until playback reaches its next tick (`None` when paused): when to draw again.
    pub fn next_tick_in(&self) -> Option<f64> {
        self.playing
            .then(|| (1.0 - self.carried) / (self.tick_rate_hz * self.speed()))
    }
}

/// A frame of the view: a tick, and the ship whose script run it details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameKey {
    pub tick: u64,
    pub ship: Option<u64>,
}

/// Which request the worker is on: only the newest matters while scrubbing, and a frame at
/// hand is not asked for again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    sent: Option<FrameKey>,
}

impl Requests {
    /// What to ask the worker for, to show `want` (`None`: nothing new to ask).
    pub fn next(&mut self, want: FrameKey, at_hand: bool) -> Option<FrameKey> {
        if at_hand || self.sent == Some(want) {
            return None;
        }
        self.sent = Some(want);
        Some(want)
    }

    /// The worker answered `key`.
    pub fn answered(&mut self, key: FrameKey) {
        if self.sent == Some(key) {
            self.sent = None;
        }
    }

    /// The request the worker is on, if any.
    pub fn in_flight(&self) -> Option<FrameKey> {
        self.sent
    }
}

/// The last few frames the worker answered (or the errors it gave), newest last: stepping back
/// over ticks just played is instant, and memory stays bounded.
#[derive(Debug, Clone)]
pub struct FrameCache<F> {
    entries: VecDeque<(FrameKey, F)>,
    capacity: usize,
}

impl<F> FrameCache<F> {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    pub fn insert(&mut self, key: FrameKey, frame: F) {
        self.entries.retain(|(k, _)| *k != key);
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back((key, frame));
    }

    pub fn get(&self, key: FrameKey) -> Option<&F> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, f)| f)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline() -> Timeline {
        Timeline::new(Ticks::Range { first: 1, last: 90 }, 10)
    }

    #[test]
    fn playback_advances_whole_ticks_at_the_tick_rate_times_the_speed() {
        let mut t = timeline();
        assert!(!t.advance(5.0), "paused: time passes, the tick does not");
        t.play();
        assert!(!t.advance(10.0), "the first frame only starts the clock");
        assert!(!t.advance(10.0625), "0.625 of a tick at 10 Hz");
        assert!(t.advance(10.125));
        assert_eq!(t.tick(), 2, "1.25 ticks: one shown, a quarter carried");
        t.faster();
        t.faster();
        assert_eq!(t.speed(), 4.0);
        t.advance(10.25);
        assert_eq!(t.tick(), 7, "0.125 s at 40 ticks/s and the quarter carried");
        t.pause();
        assert!(!t.advance(20.0));
        t.play();
        t.advance(30.0);
        assert_eq!(t.tick(), 7, "paused time does not count");
        assert_eq!(t.next_tick_in(), Some(1.0 / 40.0));
    }

    #[test]
    fn a_long_frame_counts_as_a_short_one_and_playback_stops_at_the_end() {
        let mut t = timeline();
        t.play();
        t.advance(0.0);
        t.advance(100.0);
        assert_eq!(t.tick(), 1 + (MAX_FRAME_SECONDS * 10.0) as u64);
        for _ in 0..8 {
            t.faster();
        }
        assert_eq!(t.speed(), 16.0, "bounded");
        let mut now = 100.0;
        while t.playing() {
            now += 0.1;
            t.advance(now);
        }
        assert_eq!(t.tick(), 90);
        assert_eq!(t.next_tick_in(), None);
        t.play();
        assert_eq!(t.tick(), 1, "play at the end starts over");
        for _ in 0..10 {
            t.slower();
        }
        assert_eq!(t.speed(), 0.25);
    }

    #[test]
    fn stepping_pauses_and_stays_in_the_recording() {
        let mut t = timeline();
        t.play();
        t.step(1);
        assert!(!t.playing());
        assert_eq!(t.tick(), 2);
        t.step(-5);
        assert_eq!(t.tick(), 1);
        t.step(1_000);
        assert_eq!(t.tick(), 90);
    }

    #[test]
    fn seeking_outside_names_the_recorded_ticks() {
        let mut t = timeline();
        t.seek(42).unwrap();
        assert_eq!(t.tick(), 42);
        assert_eq!(
            t.seek(91).unwrap_err(),
            "tick 91 is outside the recording (ticks 1..=90)"
        );
        assert_eq!(
            t.seek(0).unwrap_err(),
            "tick 0 is outside the recording (ticks 1..=90)"
        );
        assert_eq!(t.tick(), 42, "unchanged");
    }

    #[test]
    fn a_trace_steps_over_the_ticks_its_script_ran() {
        let mut t = Timeline::new(Ticks::List(vec![5, 6, 9, 10]), 10);
        assert_eq!(t.tick(), 5);
        t.step(2);
        assert_eq!(t.tick(), 9);
        t.seek(8).unwrap();
        assert_eq!(t.tick(), 6, "the latest run at or before it");
        assert_eq!(
            t.seek(11).unwrap_err(),
            "tick 11 is outside the recording (4 script runs in ticks 5..=10)"
        );
        assert_eq!(t.ticks().index_of(10), Some(3));
        assert_eq!(t.ticks().index_of(4), None);
    }

    #[test]
    fn only_the_newest_request_is_sent_and_a_frame_at_hand_is_not_asked_for() {
        let mut r = Requests::default();
        let key = |tick| FrameKey {
            tick,
            ship: Some(3),
        };
        assert_eq!(r.next(key(10), false), Some(key(10)));
        assert_eq!(r.next(key(10), false), None, "already asked");
        // Scrubbing: each newer tick is sent once; the worker drops what was superseded.
        assert_eq!(r.next(key(11), false), Some(key(11)));
        assert_eq!(r.next(key(12), false), Some(key(12)));
        assert_eq!(r.in_flight(), Some(key(12)));
        r.answered(key(11));
        assert_eq!(
            r.in_flight(),
            Some(key(12)),
            "a stale answer is not the current one"
        );
        r.answered(key(12));
        assert_eq!(r.in_flight(), None);
        assert_eq!(r.next(key(12), true), None, "at hand");
        assert_eq!(
            r.next(
                FrameKey {
                    tick: 12,
                    ship: Some(4)
                },
                false
            ),
            Some(FrameKey {
                tick: 12,
                ship: Some(4)
            }),
            "another ship is another frame"
        );
    }

    #[test]
    fn the_cache_keeps_the_newest_frames_only() {
        let mut cache = FrameCache::new(3);
        let key = |tick| FrameKey { tick, ship: None };
        for tick in 1..=5 {
            cache.insert(key(tick), tick * 10);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(key(2)), None);
        assert_eq!(cache.get(key(5)), Some(&50));
        cache.insert(key(3), 31);
        cache.insert(key(6), 60);
        assert_eq!(cache.get(key(3)), Some(&31), "replaced, so newer than 4");
        assert_eq!(cache.get(key(4)), None);
        assert_eq!(cache.len(), 3);
    }
}
