//! The one way hosts run worlds: what is submitted through a `WorldRunner` is applied and
//! recorded (a refusal is neither), a one-file recording covers the run from its first
//! checkpoint tick, and a rotating recording keeps files of the stretch asked for, the oldest
//! deleted, each one a replay that verifies.

mod common;

use astroboids_host::recording::{RecordingPlan, ReplayRules};
use astroboids_host::replay::{Replay, verify};
use astroboids_host::runner::WorldRunner;
use astroboids_sim::SimOptions;
use astroboids_sim::build_simulation_with;
use astroboids_sim::inputs::WorldInput;
use astroboids_test_kit::TempDir;
use common::*;

#[test]
fn what_is_submitted_is_applied_and_recorded_and_a_refusal_is_neither() {
    let dir = TempDir::new("runner-file");
    let path = dir.join("run.abreplay");
    let sim = build_simulation_with(config(), SEED, options());
    let (mut runner, started) = WorldRunner::new(
        sim,
        RecordingPlan::File {
            path: path.clone(),
            recorded_by: "host tests".into(),
            keyframe_every_checkpoints: 1,
        },
    );
    assert_eq!(started.error, None);
    assert!(
        runner.recording().is_recording(),
        "tick 0 is a checkpoint tick"
    );
    let mut applied = 0;
    for tick in 1..=30 {
        for input in inputs_for(tick) {
            runner.submit(input).unwrap();
            applied += 1;
        }
        if tick == 5 {
            let refused = runner.submit(WorldInput::Scrap { ship: 999_999 });
            assert!(refused.is_err(), "no ship 999999");
        }
        let stepped = runner.step().unwrap();
        assert_eq!(stepped.recording.error, None);
    }
    let hash = runner.sim_mut().quick_state_hash().total;
    let (_, written) = runner.finish();
    let written = written.unwrap().expect("a file was written");
    assert_eq!((written.start_tick, written.stats.ticks), (0, 30));
    let replay = Replay::open(&path).unwrap();
    let recorded: usize = replay.ticks.iter().map(|t| t.inputs.len()).sum();
    assert_eq!(
        recorded, applied,
        "every applied input, and not the refused one"
    );
    assert_eq!(replay.ticks.last().unwrap().hash, hash);
    let report = verify(&replay, SimOptions::default(), |_| {}).unwrap();
    assert!(report.divergence.is_none(), "{:?}", report.divergence);
}

#[test]
fn a_rotating_recording_keeps_the_newest_files_each_a_verifying_replay() {
    let dir = TempDir::new("runner-rotating");
    let rules = ReplayRules {
        dir: dir.join("replays"),
        // A checkpoint every 20 ticks (the shared config): a file per checkpoint.
        ticks_per_file: 20,
        keep_files: 2,
        keyframe_every_checkpoints: 1,
    };
    let sim = build_simulation_with(config(), SEED, options());
    let (mut runner, _) = WorldRunner::new(sim, RecordingPlan::Rotating(rules));
    let mut finished = Vec::new();
    for tick in 1..=100 {
        for input in inputs_for(tick) {
            runner.submit(input).unwrap();
        }
        if let Some(written) = runner.step().unwrap().recording.finished {
            finished.push(written.path);
        }
    }
    assert_eq!(
        finished.len(),
        5,
        "files for ticks 0-20, 20-40, ..., 80-100"
    );
    let kept = runner.recording().finished_files();
    let ranges: Vec<(u64, u64)> = kept.iter().map(|f| (f.first_tick, f.last_tick)).collect();
    assert_eq!(ranges, vec![(61, 80), (81, 100)], "the oldest deleted");
    for file in &kept {
        let replay = Replay::open(&dir.join("replays").join(&file.name)).unwrap();
        let report = verify(&replay, SimOptions::default(), |_| {}).unwrap();
        assert!(
            report.divergence.is_none(),
            "{}: {:?}",
            file.name,
            report.divergence
        );
        assert_eq!(report.ticks_checked, 20);
    }
}
