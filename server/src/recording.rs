//! Recording the live world: one replay file per stretch of ticks, started and finished at
//! checkpoint ticks (where capturing changes nothing), the oldest files deleted. All of the
//! server's replay file I/O is here.

use std::path::{Path, PathBuf};

use astroboids_host::replay::Recorder;
use astroboids_protocol::messages::ReplayListing;
use astroboids_sim::inputs::WorldInput;
use astroboids_sim::physics::is_checkpoint_tick;

/// How the live world is recorded: one replay file per stretch of ticks, the oldest deleted.
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

/// The recording in progress.
struct LiveRecording {
    recorder: Recorder,
    start_tick: u64,
}

/// What a checkpoint tick did to the recording.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotation {
    /// A file finished.
    pub finished: Option<PathBuf>,
    /// The recording stopped (it starts again at the next checkpoint tick).
    pub error: Option<String>,
}

/// The live world's recording (none when the rules say not to record).
pub struct LiveRecorder {
    rules: Option<ReplayRules>,
    live: Option<LiveRecording>,
}

impl LiveRecorder {
    pub fn new(rules: Option<ReplayRules>) -> Self {
        Self { rules, live: None }
    }

    /// Keeps an input applied for the next tick.
    pub fn input(&mut self, input: &WorldInput) {
        if let Some(live) = &mut self.live {
            live.recorder.input(input);
        }
    }

    /// After a tick: records it; at a checkpoint tick, finishes the file when it is long
    /// enough and starts the next.
    pub fn after_tick(&mut self, sim: &mut astroboids_engine::Simulation) -> Rotation {
        let mut rotation = Rotation::default();
        if let Some(live) = &mut self.live
            && let Err(e) = live.recorder.after_tick(sim)
        {
            rotation.error = Some(e.to_string());
            self.live = None;
        }
        self.rotate(sim, &mut rotation);
        rotation
    }

    /// At a checkpoint tick: finishes the recording when it is long enough and starts the
    /// next (recordings start and end at checkpoint ticks, where capturing changes nothing).
    pub fn rotate(&mut self, sim: &mut astroboids_engine::Simulation, rotation: &mut Rotation) {
        let Some(rules) = self.rules.clone() else {
            return;
        };
        let tick = sim.tick();
        let config = sim.world().resource::<astroboids_sim::UniverseConfig>();
        if !is_checkpoint_tick(config, tick) {
            return;
        }
        if let Some(live) = &self.live
            && tick - live.start_tick < rules.ticks_per_file
        {
            return;
        }
        if let Some(live) = self.live.take() {
            match finish_recording(live, sim, &rules) {
                Ok(path) => rotation.finished = Some(path),
                Err(e) => rotation.error = Some(e),
            }
            prune_replays(&rules);
        }
        if let Err(e) = std::fs::create_dir_all(&rules.dir) {
            rotation.error = Some(format!("{}: {e}", rules.dir.display()));
            return;
        }
        let path = rules.dir.join(format!("live-{tick:012}.abreplay"));
        match Recorder::start(
            sim,
            &path,
            "astroboids serve",
            rules.keyframe_every_checkpoints,
        ) {
            Ok(recorder) => {
                self.live = Some(LiveRecording {
                    recorder,
                    start_tick: tick,
                })
            }
            Err(e) => rotation.error = Some(e.to_string()),
        }
    }

    /// A clean shutdown at a checkpoint tick: finishes the recording.
    pub fn close(&mut self, sim: &mut astroboids_engine::Simulation) -> Option<PathBuf> {
        let (live, rules) = (self.live.take()?, self.rules.clone()?);
        let finished = finish_recording(live, sim, &rules).ok();
        prune_replays(&rules);
        finished
    }

    /// Finished recordings, oldest first.
    pub fn finished(&self) -> Vec<ReplayListing> {
        self.rules
            .as_ref()
            .map(|rules| finished_replays(&rules.dir))
            .unwrap_or_default()
    }

    /// Where recordings are written (`None`: not recorded).
    pub fn dir(&self) -> Option<&Path> {
        self.rules.as_ref().map(|rules| rules.dir.as_path())
    }
}

/// Finishes a recording and names it by its tick range: `live-FIRST-LAST.abreplay`.
fn finish_recording(
    live: LiveRecording,
    sim: &mut astroboids_engine::Simulation,
    rules: &ReplayRules,
) -> Result<PathBuf, String> {
    let started = rules
        .dir
        .join(format!("live-{:012}.abreplay", live.start_tick));
    live.recorder.finish(sim).map_err(|e| e.to_string())?;
    let finished = rules.dir.join(format!(
        "live-{:012}-{:012}.abreplay",
        live.start_tick,
        sim.tick()
    ));
    std::fs::rename(&started, &finished)
        .map_err(|e| format!("{} -> {}: {e}", started.display(), finished.display()))?;
    Ok(finished)
}

/// Finished recordings in `dir`, oldest first (read from their names).
fn finished_replays(dir: &Path) -> Vec<ReplayListing> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<ReplayListing> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let range = name.strip_prefix("live-")?.strip_suffix(".abreplay")?;
            let (start, last) = range.split_once('-')?;
            Some(ReplayListing {
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

/// Deletes the oldest finished recordings beyond `keep_files`.
fn prune_replays(rules: &ReplayRules) {
    let finished = finished_replays(&rules.dir);
    let excess = finished.len().saturating_sub(rules.keep_files);
    for old in &finished[..excess] {
        let _ = std::fs::remove_file(rules.dir.join(&old.name));
    }
}
