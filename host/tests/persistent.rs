//! A persistent world as its operator relies on it: whatever moment the process dies, the
//! next start resumes with exactly the state an uninterrupted run has, no acknowledged input
//! is lost, and a directory that is not this world's is refused with a clear error.

mod common;

use std::path::Path;

use astroboids_host::{HostError, PersistentWorld, WorldRequest};
use astroboids_test_kit::TempDir;
use common::*;

fn request() -> WorldRequest {
    WorldRequest {
        seed: Some(SEED),
        config: Some((config_toml(), "test config".into())),
        script_workers: 2,
    }
}

fn open(dir: &Path) -> (PersistentWorld, astroboids_host::OpenReport) {
    PersistentWorld::open(dir, request()).expect("world opens")
}

/// Runs the scenario from the world's tick up to `until`, submitting each tick's inputs.
fn run_until(world: &mut PersistentWorld, until: u64) {
    while world.tick() < until {
        for input in inputs_for(world.tick() + 1) {
            world.submit(input).expect("scenario inputs are accepted");
        }
        world.step().expect("tick runs");
    }
}

#[test]
fn a_world_dropped_without_shutdown_resumes_with_the_uninterrupted_hash() {
    let reference = reference_hashes(100);
    let dir = TempDir::new("persist-resume");
    {
        let (mut world, report) = open(&dir);
        assert!(report.created);
        run_until(&mut world, 73);
        assert_eq!(
            world.state_hash().total,
            reference[72],
            "persisting changes nothing"
        );
        // Dropped: no close, as after kill -9 (everything acknowledged was flushed).
    }
    let (mut world, report) = open(&dir);
    assert!(!report.created);
    assert_eq!(
        report.checkpoint_tick,
        Some(60),
        "checkpoints every 20 ticks"
    );
    // Inputs were logged for ticks 66 and 73 (tick % 7 == 3): the log is replayed at least up
    // to the last one (pending for tick 73), then up to the tick last noted as reached.
    assert_eq!(report.replayed_inputs, 2);
    assert!(
        (72..=73).contains(&report.tick),
        "resumed at {}",
        report.tick
    );
    assert_eq!(
        world.state_hash().total,
        reference[report.tick as usize - 1]
    );
    run_until(&mut world, 100);
    assert_eq!(world.state_hash().total, reference[99]);
}

#[test]
fn inputs_acknowledged_before_a_crash_apply_after_the_restart() {
    let reference = reference_hashes(45);
    let dir = TempDir::new("persist-ack");
    {
        let (mut world, _) = open(&dir);
        run_until(&mut world, 44);
        for input in inputs_for(45) {
            world.submit(input).unwrap();
        }
        assert_eq!(
            world.commit().unwrap(),
            Some(45),
            "acknowledged for tick 45"
        );
        // Dies before tick 45 runs.
    }
    let (mut world, report) = open(&dir);
    assert_eq!((report.checkpoint_tick, report.tick), (Some(40), 44));
    world.step().unwrap();
    assert_eq!(world.state_hash().total, reference[44]);
}

#[test]
fn a_second_open_continues_where_the_first_closed() {
    let reference = reference_hashes(60);
    let dir = TempDir::new("persist-close");
    {
        let (mut world, _) = open(&dir);
        run_until(&mut world, 30);
        world.close().unwrap();
    }
    let (mut world, report) = PersistentWorld::open(
        &dir,
        WorldRequest {
            seed: None,
            config: None,
            script_workers: 1,
        },
    )
    .expect("omitted seed and config come from the world; one script worker is fine");
    assert_eq!(report.universe_seed, SEED);
    assert_eq!(report.tick, 30, "a clean close resumes where it stopped");
    run_until(&mut world, 60);
    assert_eq!(world.state_hash().total, reference[59]);
}

#[test]
fn another_seed_config_or_foreign_directory_is_refused_and_nothing_is_changed() {
    let dir = TempDir::new("persist-mismatch");
    {
        let (mut world, _) = open(&dir);
        run_until(&mut world, 21);
    }
    let err = PersistentWorld::open(
        &dir,
        WorldRequest {
            seed: Some(SEED + 1),
            ..request()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, HostError::Mismatch { .. })
            && err
                .to_string()
                .contains(&format!("universe seed {SEED}, not {}", SEED + 1)),
        "{err}"
    );
    let err = PersistentWorld::open(
        &dir,
        WorldRequest {
            config: Some((
                config_toml().replace("max_speed = 30.0", "max_speed = 31.0"),
                "edited.toml".into(),
            )),
            ..request()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("another universe configuration than edited.toml"),
        "{err}"
    );
    // A bad config file is reported by field before the directory is touched.
    let err = PersistentWorld::open(
        &TempDir::new("persist-bad-config"),
        WorldRequest {
            config: Some((
                config_toml().replace("checkpoint_every_ticks = 20", "checkpoint_every_ticks = 0"),
                "bad.toml".into(),
            )),
            ..request()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("bad.toml")
            && err
                .to_string()
                .contains("persistence.checkpoint_every_ticks"),
        "{err}"
    );
    // The world is intact after the refusals.
    let (world, report) = open(&dir);
    assert_eq!((report.checkpoint_tick, world.tick()), (Some(20), 21));

    let foreign = TempDir::new("persist-foreign");
    std::fs::write(foreign.join("notes.txt"), "my files").unwrap();
    let err = PersistentWorld::open(&foreign, request()).unwrap_err();
    assert!(
        err.to_string().contains("not an AstroBoids data directory"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "my files"
    );
}

#[test]
fn a_refused_input_is_not_logged() {
    let dir = TempDir::new("persist-refused");
    let (mut world, _) = open(&dir);
    run_until(&mut world, 2);
    let err = world
        .submit(astroboids_sim::inputs::WorldInput::AssignScript {
            ship: 1,
            script: 12345,
        })
        .unwrap_err();
    assert!(err.to_string().contains("unknown script"), "{err}");
    assert_eq!(world.commit().unwrap(), None, "nothing to log");
}

/// Checkpoints are stored by a writer thread while the next ticks run: once it has stored
/// one, the store holds it as the latest (its size reported), the inputs it covers are gone,
/// and the world reopens from it with the uninterrupted run's hash.
#[test]
fn checkpoints_are_stored_by_the_writer_while_ticks_go_on() {
    let reference = reference_hashes(45);
    let dir = TempDir::new("persist-writer");
    let (mut world, _) = open(&dir);
    let mut taken = Vec::new();
    while world.tick() < 45 {
        for input in inputs_for(world.tick() + 1) {
            world.submit(input).expect("scenario inputs are accepted");
        }
        if world.step().expect("tick runs") {
            taken.push(world.tick());
        }
    }
    assert_eq!(taken, vec![20, 40], "a checkpoint is taken every 20 ticks");
    world.flush_checkpoints().unwrap();
    let stored = world.last_checkpoint().expect("the writer stored one");
    assert_eq!(stored.tick, 40);
    let (tick, packed) = world.store().latest_checkpoint().unwrap().unwrap();
    assert_eq!((tick, packed.len()), (40, stored.bytes));
    assert!(
        world
            .store()
            .inputs_from(0)
            .unwrap()
            .iter()
            .all(|input| input.tick > 40),
        "the inputs the checkpoint covers are pruned"
    );
    world.close().unwrap();
    let (mut world, report) = open(&dir);
    assert_eq!(report.checkpoint_tick, Some(40));
    assert_eq!(
        world.state_hash().total,
        reference[report.tick as usize - 1]
    );
}
