//! The golden replays in replays/ re-simulate tick for tick. A change to the engine that alters
//! simulation results fails here: if the change is deliberate, bump `SIM_VERSION` and re-record
//! them (replays/README.md); then replays recorded by older builds are refused by name
//! instead of diverging.

use std::path::Path;

use astroboids_host::replay::{Replay, verify};
use astroboids_sim::{SIM_VERSION, SimOptions};

#[test]
fn every_golden_replay_re_simulates_exactly() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../replays"));
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("replays/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "abreplay"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "golden replays in {}: {files:?}",
        dir.display()
    );
    for file in files {
        let replay = Replay::open(&file).unwrap_or_else(|e| {
            panic!(
                "{e}\n(after a deliberate change of results, bump SIM_VERSION; after a change of \
                 the replay layout or of WorldInput's encoding, bump REPLAY_FORMAT; then re-record \
                 them as replays/README.md says)"
            )
        });
        assert_eq!(replay.header.sim_version, SIM_VERSION);
        assert!(
            replay.ticks.len() >= 200,
            "{}: a real stretch",
            file.display()
        );
        let options = SimOptions {
            script_workers: 2,
            script_artifacts: None,
        };
        let report = verify(&replay, options, |_| {}).unwrap();
        if let Some(d) = report.divergence {
            panic!(
                "{} diverges at tick {} (state hash parts {:?}); at tick {:?}, recorded -> now:\n  \
                 {}\nIf the change is deliberate, bump SIM_VERSION and re-record (replays/README.md).",
                file.display(),
                d.tick,
                d.parts,
                d.compared_at,
                d.differences.join("\n  ")
            );
        }
    }
}
