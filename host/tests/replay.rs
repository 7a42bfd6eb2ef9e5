//! Replay files as script authors rely on them: a recording verifies tick for tick; a modified
//! byte, a cut-off file or a foreign file is refused naming what is wrong; and a recording that
//! no longer matches the simulation names the first divergent tick and what differs.

mod common;

use std::path::Path;

use astroboids_engine::Simulation;
use astroboids_host::replay::{REPLAY_FORMAT, Recorder, Replay, ReplayError, verify};
use astroboids_sim::build_simulation_with;
use astroboids_sim::inputs::{WorldInput, apply_input};
use astroboids_test_kit::TempDir;
use common::*;

/// Records `ticks` ticks of the scenario to `path`, keyframes every 2nd checkpoint (40 ticks).
fn record(path: &Path, ticks: u64) -> (Vec<u64>, Simulation) {
    let mut sim = build_simulation_with(config(), SEED, options());
    let mut recorder = Recorder::start(&mut sim, path, "host tests", 2).unwrap();
    let mut hashes = Vec::new();
    for tick in 1..=ticks {
        for input in inputs_for(tick) {
            apply_input(sim.world_mut(), &input).unwrap();
            recorder.input(&input);
        }
        sim.step();
        recorder.after_tick(&mut sim).unwrap();
        hashes.push(sim.quick_state_hash().total);
    }
    let stats = recorder.finish(&mut sim).unwrap();
    assert_eq!(stats.ticks, ticks);
    assert!(!path.with_extension("abreplay.partial").exists());
    (hashes, sim)
}

#[test]
fn a_recording_verifies_and_matches_the_live_run() {
    let dir = TempDir::new("replay-verify");
    let path = dir.join("run.abreplay");
    let (hashes, mut sim_after) = record(&path, 90);
    let replay = Replay::open(&path).unwrap();
    assert_eq!((replay.start_tick(), replay.last_tick()), (0, 90));
    assert_eq!(
        replay.keyframe_ticks().collect::<Vec<_>>(),
        vec![0, 40, 80, 90],
        "start, every 2nd checkpoint, end"
    );
    assert_eq!(
        sim_after.state_hash().total,
        reference_hashes(90)[89],
        "recording changes nothing"
    );
    let heavy: Vec<u64> = replay
        .ticks
        .iter()
        .filter(|t| !t.heavy.is_empty())
        .map(|t| t.tick)
        .collect();
    assert_eq!(
        heavy,
        vec![20, 40, 60, 80],
        "script memory hashed at checkpoint ticks"
    );
    let recorded: Vec<u64> = replay.ticks.iter().map(|t| t.hash).collect();
    assert_eq!(recorded, hashes);
    let mut seen = 0;
    let report = verify(&replay, options(), |_| seen += 1).unwrap();
    assert_eq!((report.ticks_checked, seen), (90, 90));
    assert_eq!(report.divergence, None);

    // Starting from a keyframe in the middle gives the same world as running from the start.
    let mut mid = replay.world_at(57, options()).unwrap();
    assert_eq!(mid.quick_state_hash().total, hashes[56]);
}

#[test]
fn a_modified_byte_or_a_cut_off_file_is_refused_by_name() {
    let dir = TempDir::new("replay-tamper");
    let path = dir.join("run.abreplay");
    record(&path, 45);
    let good = std::fs::read(&path).unwrap();
    // Every byte past the magic and format is covered by a chunk checksum or a length.
    for offset in [20, good.len() / 2, good.len() - 3] {
        let mut bad = good.clone();
        bad[offset] ^= 0x40;
        let err = Replay::parse(&path, &bad).unwrap_err();
        assert!(
            matches!(
                err,
                ReplayError::Damaged { .. } | ReplayError::Truncated { .. }
            ),
            "byte {offset}: {err}"
        );
        let message = err.to_string();
        assert!(message.contains("run.abreplay"), "{message}");
        assert!(
            message.contains("fails its checksum") || message.contains("needs"),
            "byte {offset}: {message}"
        );
    }
    let err = Replay::parse(&path, &good[..good.len() - 40]).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    let err = Replay::parse(&path, b"PK\x03\x04 a zip file").unwrap_err();
    assert!(
        err.to_string().contains("not an AstroBoids replay"),
        "{err}"
    );
    let mut newer = good.clone();
    newer[8] = 9;
    let err = Replay::parse(&path, &newer).unwrap_err();
    assert!(err.to_string().contains("replay format 9"), "{err}");
    assert!(
        err.to_string()
            .ends_with("recorded by a newer astroboids; read it with that release or a later one"),
        "{err}"
    );
    let mut older = good.clone();
    older[8] = 1;
    let err = Replay::parse(&path, &older).unwrap_err();
    assert!(
        err.to_string().ends_with(&format!(
            "replay format 1; this build reads format {REPLAY_FORMAT}: read it with the \
             astroboids release that recorded it, or record the run again with this one"
        )),
        "{err}"
    );
}

#[test]
fn a_recording_that_no_longer_matches_names_the_first_divergent_tick_and_what_differs() {
    let dir = TempDir::new("replay-diverge");
    let path = dir.join("run.abreplay");
    record(&path, 90);
    let mut replay = Replay::open(&path).unwrap();
    let edited = dir.join("edited.abreplay");
    // Drop the input the world really had at tick 45 (tick % 7 == 3): replaying the edited
    // recording departs from the recorded hashes there.
    let record45 = replay.ticks.iter_mut().find(|t| t.tick == 45).unwrap();
    assert!(matches!(record45.inputs[..], [WorldInput::Command { .. }]));
    let ship = match &record45.inputs[0] {
        WorldInput::Command { ship, .. } => *ship,
        _ => unreachable!(),
    };
    record45.inputs.clear();
    replay.save(&edited).unwrap();

    let replay = Replay::open(&edited).unwrap();
    let report = verify(&replay, options(), |_| {}).unwrap();
    let divergence = report.divergence.expect("the edited recording diverges");
    assert_eq!(divergence.tick, 45);
    assert_eq!(report.ticks_checked, 45);
    assert!(
        divergence.parts.contains(&"ships".to_string()),
        "{divergence:?}"
    );
    assert_eq!(divergence.compared_at, Some(80));
    assert!(
        divergence
            .differences
            .iter()
            .any(|d| d.starts_with(&format!("ship {ship} "))),
        "the braking ship is named: {:?}",
        divergence.differences
    );
}

#[test]
fn script_memory_is_checked_at_checkpoint_ticks() {
    let dir = TempDir::new("replay-memory");
    let path = dir.join("run.abreplay");
    record(&path, 45);
    let mut replay = Replay::open(&path).unwrap();
    assert_eq!(
        replay.header.heavy_hash_parts,
        vec!["script_memory".to_string()]
    );
    // A recording whose script memory digest at checkpoint tick 40 is not what this build
    // computes: verify names the tick and the part.
    let record40 = replay.ticks.iter_mut().find(|t| t.tick == 40).unwrap();
    record40.heavy[0] ^= 1;
    let edited = dir.join("edited.abreplay");
    replay.save(&edited).unwrap();
    let report = verify(&Replay::open(&edited).unwrap(), options(), |_| {}).unwrap();
    let divergence = report.divergence.expect("diverges");
    assert_eq!(divergence.tick, 40);
    assert_eq!(divergence.parts, vec!["script_memory".to_string()]);
}
