//! Recording a running world to replay files, as [`crate::runner::WorldRunner`] steps it:
//! one file for a whole run (`astroboids sim --record`), or one file per stretch of ticks with
//! the oldest deleted (the live server). Recordings start and end at checkpoint ticks, where
//! capturing changes nothing a replay would see.

use std::path::{Path, PathBuf};

use astroboids_engine::Simulation;
use astroboids_sim::UniverseConfig;
use astroboids_sim::inputs::WorldInput;
use astroboids_sim::physics::is_checkpoint_tick;

use crate::replay::{Recorder, RecordingStats};

/// Files of a long-running world: `live-FIRST-LAST.abreplay` in `dir`, one per stretch of
/// ticks, the oldest deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRules {
    pub dir: PathBuf,
    /// A file is finished at the first checkpoint tick this many ticks after its start.
    pub ticks_per_file: u64,
    /// Finished files kept (bounds disk use).
    pub keep_files: usize,
    pub keyframe_every_checkpoints: u64,
}

impl ReplayRules {
    /// The defaults under a data directory: `DATA/replays`, 3,000 ticks (5 minutes at 10 Hz)
    /// per file, the last 48 kept.
    pub fn in_data_dir(data: &Path) -> Self {
        Self {
            dir: data.join("replays"),
            ticks_per_file: 3_000,
            keep_files: 48,
            keyframe_every_checkpoints: 10,
        }
    }
}

/// What is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingPlan {
    /// Nothing.
    Off,
    /// One file at `path`, from the run's first checkpoint tick to its end.
    File {
        path: PathBuf,
        recorded_by: String,
        keyframe_every_checkpoints: u64,
    },
    /// Rotating files (see [`ReplayRules`]).
    Rotating(ReplayRules),
}

/// A finished file of a rotating recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedFile {
    pub name: String,
    /// Ticks a trace may be cut from (the recording's first tick is its starting state).
    pub first_tick: u64,
    pub last_tick: u64,
    pub bytes: u64,
}

/// A file written when a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    pub start_tick: u64,
    pub stats: RecordingStats,
}

/// What a tick did to the recording.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotation {
    /// A file finished.
    pub finished: Option<Written>,
    /// The recording stopped (a rotating one starts again at the next checkpoint tick).
    pub error: Option<String>,
}

/// The recording in progress.
struct Live {
    recorder: Recorder,
    path: PathBuf,
    start_tick: u64,
}

/// A world's recording.
pub struct Recording {
    plan: RecordingPlan,
    live: Option<Live>,
    /// A one-file recording ran (it is not started twice).
    started_once: bool,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("plan", &self.plan)
            .field("recording", &self.live.is_some())
            .finish()
    }
}

impl Recording {
    /// A recording by `plan`; it starts at the first checkpoint tick it is given (call
    /// [`Self::after_tick`] with the world as it is now to start at once when it is at one).
    pub fn new(plan: RecordingPlan) -> Self {
        Self {
            plan,
            live: None,
            started_once: false,
        }
    }

    /// Whether a file is being written now.
    pub fn is_recording(&self) -> bool {
        self.live.is_some()
    }

    /// Keeps an input applied for the next tick.
    pub fn input(&mut self, input: &WorldInput) {
        if let Some(live) = &mut self.live {
            live.recorder.input(input);
        }
    }

    /// After a tick (or at the start): records it, and at a checkpoint tick starts a file, or
    /// finishes a rotating file that is long enough and starts the next.
    pub fn after_tick(&mut self, sim: &mut Simulation) -> Rotation {
        let mut rotation = Rotation::default();
        if let Some(live) = &mut self.live
            && let Err(e) = live.recorder.after_tick(sim)
        {
            rotation.error = Some(e.to_string());
            self.live = None;
        }
        if is_checkpoint_tick(sim.world().resource::<UniverseConfig>(), sim.tick()) {
            self.at_checkpoint_tick(sim, &mut rotation);
        }
        rotation
    }

    fn at_checkpoint_tick(&mut self, sim: &mut Simulation, rotation: &mut Rotation) {
        let tick = sim.tick();
        let (path, recorded_by, keyframes) = match &self.plan {
            RecordingPlan::Off => return,
            RecordingPlan::File {
                path,
                recorded_by,
                keyframe_every_checkpoints,
            } => {
                if self.started_once {
                    return;
                }
                (
                    path.clone(),
                    recorded_by.clone(),
                    *keyframe_every_checkpoints,
                )
            }
            RecordingPlan::Rotating(rules) => {
                if let Some(live) = &self.live
                    && tick - live.start_tick < rules.ticks_per_file
                {
                    return;
                }
                let rules = rules.clone();
                if let Some(live) = self.live.take() {
                    match finish_rotating(live, sim, &rules) {
                        Ok(written) => rotation.finished = Some(written),
                        Err(e) => rotation.error = Some(e),
                    }
                    prune(&rules);
                }
                if let Err(e) = std::fs::create_dir_all(&rules.dir) {
                    rotation.error = Some(format!("{}: {e}", rules.dir.display()));
                    return;
                }
                (
                    rules.dir.join(format!("live-{tick:012}.abreplay")),
                    "astroboids serve".to_string(),
                    rules.keyframe_every_checkpoints,
                )
            }
        };
        match Recorder::start(sim, &path, &recorded_by, keyframes) {
            Ok(recorder) => {
                self.started_once = true;
                self.live = Some(Live {
                    recorder,
                    path,
                    start_tick: tick,
                });
            }
            Err(e) => rotation.error = Some(e.to_string()),
        }
    }

    /// Ends the recording (a one-file recording at the end of the run; a rotating one at a
    /// clean shutdown, at a checkpoint tick). `Ok(None)`: nothing was being recorded.
    pub fn finish(&mut self, sim: &mut Simulation) -> Result<Option<Written>, String> {
        let Some(live) = self.live.take() else {
            return Ok(None);
        };
        match &self.plan {
            RecordingPlan::Rotating(rules) => {
                let rules = rules.clone();
                let written = finish_rotating(live, sim, &rules);
                prune(&rules);
                written.map(Some)
            }
            _ => {
                let stats = live.recorder.finish(sim).map_err(|e| e.to_string())?;
                Ok(Some(Written {
                    path: live.path,
                    start_tick: live.start_tick,
                    stats,
                }))
            }
        }
    }

    /// Finished files of a rotating recording, oldest first (none for other plans).
    pub fn finished_files(&self) -> Vec<FinishedFile> {
        match &self.plan {
            RecordingPlan::Rotating(rules) => finished_files(&rules.dir),
            _ => Vec::new(),
        }
    }

    /// Where a rotating recording writes.
    pub fn dir(&self) -> Option<&Path> {
        match &self.plan {
            RecordingPlan::Rotating(rules) => Some(&rules.dir),
            _ => None,
        }
    }
}

/// Finishes a rotating file and names it by its tick range: `live-FIRST-LAST.abreplay`.
fn finish_rotating(
    live: Live,
    sim: &mut Simulation,
    rules: &ReplayRules,
) -> Result<Written, String> {
    let stats = live.recorder.finish(sim).map_err(|e| e.to_string())?;
    let finished = rules.dir.join(format!(
        "live-{:012}-{:012}.abreplay",
        live.start_tick,
        sim.tick()
    ));
    std::fs::rename(&live.path, &finished)
        .map_err(|e| format!("{} -> {}: {e}", live.path.display(), finished.display()))?;
    Ok(Written {
        path: finished,
        start_tick: live.start_tick,
        stats,
    })
}

/// Finished rotating files in `dir`, oldest first (read from their names).
fn finished_files(dir: &Path) -> Vec<FinishedFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<FinishedFile> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let range = name.strip_prefix("live-")?.strip_suffix(".abreplay")?;
            let (start, last) = range.split_once('-')?;
            Some(FinishedFile {
                first_tick: start.parse::<u64>().ok()? + 1,
                last_tick: last.parse().ok()?,
                bytes: entry.metadata().ok()?.len(),
                name,
            })
        })
        .collect();
    out.sort_by_key(|r| r.first_tick);
    out
}

/// Deletes the oldest finished files beyond `keep_files`.
fn prune(rules: &ReplayRules) {
    let finished = finished_files(&rules.dir);
    let excess = finished.len().saturating_sub(rules.keep_files);
    for old in &finished[..excess] {
        let _ = std::fs::remove_file(rules.dir.join(&old.name));
    }
}
