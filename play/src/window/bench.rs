//! `--bench-entities N`: frame times of a synthetic world, no server.

use std::time::Instant;

use astroboids_net::live_view::LiveView;
use astroboids_net::snapshot::{
    KIND_ASTEROID, KIND_NEBULA, KIND_OWN_SHIP, View, ViewEntity, owned_ship_kind,
};

use crate::model::{NetUpdate, PlayModel};

/// Frames drawn before a benchmark starts timing (fonts, textures, first layouts).
const WARMUP_FRAMES: usize = 20;

/// A frame-time benchmark: no server, a synthetic world of `entities` in sight.
#[derive(Debug, Clone, Copy)]
pub struct Bench {
    pub entities: usize,
    pub frames: usize,
}

/// The frames' start times while a benchmark runs.
pub(super) struct BenchRun {
    pub bench: Bench,
    times: Vec<Instant>,
}

impl BenchRun {
    pub fn new(bench: Bench) -> Self {
        Self {
            bench,
            times: Vec::with_capacity(bench.frames + WARMUP_FRAMES + 1),
        }
    }

    /// Notes a frame; the summary line once, when enough were timed (frames drawn while the
    /// window closes are not counted).
    pub fn frame(&mut self, now: Instant, in_sight: usize) -> Option<String> {
        let wanted = self.bench.frames + WARMUP_FRAMES + 1;
        if self.times.len() >= wanted {
            return None;
        }
        self.times.push(now);
        if self.times.len() < wanted {
            return None;
        }
        let mut ms: Vec<f64> = self.times[WARMUP_FRAMES..]
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
            .collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
        let mean = ms.iter().sum::<f64>() / ms.len() as f64;
        Some(format!(
            "frames: {} entities drawn ({in_sight} in sight), {} frames: mean {mean:.2} ms, p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
            self.bench.entities,
            ms.len(),
            at(0.5),
            at(0.95),
            at(1.0)
        ))
    }
}

/// `entities` in a square around the origin of sector (0, 0), all within the map at the
/// default zoom: 1% the player's, a third other players' ships (six owners), a few nebulae,
/// the rest asteroids; ships move 3 m between the two snapshots.
pub(super) fn synthetic_world(entities: usize) -> PlayModel {
    let size = 1_000.0;
    let side = (entities as f32).sqrt().ceil().max(1.0) as usize;
    let spacing = (1_100.0 / side as f32).min(40.0);
    let view = |shift: f32| -> View {
        (0..entities)
            .map(|i| {
                let (col, row) = ((i % side) as f32, (i / side) as f32);
                let kind = match i % 100 {
                    0 => KIND_OWN_SHIP,
                    1..=33 => owned_ship_kind(&format!("owner{}", i % 6)),
                    34 => KIND_NEBULA,
                    _ => KIND_ASTEROID,
                };
                let still = kind == KIND_ASTEROID || kind == KIND_NEBULA;
                let x = (col - side as f32 / 2.0) * spacing + if still { 0.0 } else { shift };
                let y = (row - side as f32 / 2.0) * spacing;
                let sector = ((x / size).floor() as i32, (y / size).floor() as i32);
                let local = (x.rem_euclid(size), y.rem_euclid(size));
                let entity = match kind {
                    KIND_NEBULA => ViewEntity::area(kind, sector, local, spacing * 2.0),
                    KIND_ASTEROID => ViewEntity::quantize(kind, sector, local, 0.0, 4.0),
                    _ => ViewEntity::quantize(kind, sector, local, 0.5, 100.0),
                };
                (i as u64 + 1, entity)
            })
            .collect()
    };
    let mut live = LiveView::new(size);
    live.update(1, &view(0.0));
    live.update(2, &view(3.0));
    let mut model = PlayModel::new("bench", size);
    model.apply(NetUpdate::Snapshot(live), 0.0);
    model.selected = None;
    model.follow = false;
    model.camera.look_at((0, 0), (0.0, 0.0));
    model
}
