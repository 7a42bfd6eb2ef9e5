//! A world stored by an older build keeps running after an upgrade: a format-1 world (inputs
//! logged before spawns carried their owner, a format-3 checkpoint naming its configuration by
//! a Debug-text digest) opens with the state an uninterrupted run has, and from then on is
//! written in the current formats. What cannot be migrated safely is refused with what to do.

mod common;

use std::path::Path;

use serde::Serialize;

use astroboids_engine::{Simulation, StateHashExt};
use astroboids_host::compress;
use astroboids_host::{HostError, PersistentWorld, WorldRequest};
use astroboids_sim::checkpoint::{self, CHECKPOINT_FORMAT, WorldCheckpoint};
use astroboids_sim::inputs::{WorldInput, apply_input};
use astroboids_sim::{UniverseConfig, build_simulation_with};
use astroboids_storage::{StoreLimits, WorldStore};
use astroboids_test_kit::TempDir;
use common::*;

/// The world description as format-1 builds wrote it.
#[derive(Serialize)]
struct WorldInfoV1 {
    format: u32,
    universe_seed: u64,
    config_toml: String,
    created_by: String,
}

/// Logged inputs as format-1 builds encoded them, written out here so the test keeps pinning
/// that layout (variant order included) whatever the current `WorldInput` becomes.
#[derive(Serialize)]
#[allow(dead_code)]
enum InputV1 {
    Command {
        ship: u64,
        command: (f32, f32, bool, bool),
    },
    SpawnShip {
        sector: (i32, i32),
        local: (f32, f32),
        heading: f32,
        autopilot: bool,
    },
    SpawnFleet {
        count: u32,
        script: Option<u128>,
    },
    AddScript {
        wasm: Vec<u8>,
    },
    AssignScript {
        ship: u64,
        script: u128,
    },
    SetOwner {
        ship: u64,
        owner: Option<String>,
    },
    Scrap {
        ship: u64,
    },
    SuspendScript {
        ship: u64,
        reason: String,
    },
}

/// The first ship id after the scenario's fleet of 80.
const JOINER: u64 = 81;

/// What the old build logged after its checkpoint at tick 20, with the same inputs as the
/// current build expresses them.
fn logged_after_checkpoint() -> Vec<(u64, InputV1, WorldInput)> {
    vec![
        (
            22,
            InputV1::SpawnShip {
                sector: (0, 0),
                local: (300.0, 700.0),
                heading: 2.0,
                autopilot: true,
            },
            WorldInput::SpawnShip {
                sector: (0, 0),
                local: (300.0, 700.0),
                heading: 2.0,
                autopilot: true,
                owner: None,
            },
        ),
        (
            23,
            InputV1::SetOwner {
                ship: JOINER,
                owner: Some("ada".into()),
            },
            WorldInput::SetOwner {
                ship: JOINER,
                owner: Some("ada".into()),
            },
        ),
        (
            24,
            InputV1::Command {
                ship: 5,
                command: (1.0, -0.5, false, true),
            },
            WorldInput::Command {
                ship: 5,
                command: checkpoint::CommandRecord {
                    thrust: 1.0,
                    turn: -0.5,
                    mine: false,
                    stop: true,
                },
            },
        ),
    ]
}

/// Runs the scenario to the checkpoint at tick 20.
fn scenario_at_20() -> Simulation {
    let mut sim = build_simulation_with(config(), SEED, options());
    for tick in 1..=20 {
        step_with_inputs(&mut sim, tick);
    }
    sim
}

/// The current build's world at `until` (> 20), having had the old log's inputs.
fn reference_after(mut sim: Simulation, until: u64) -> Simulation {
    let logged = logged_after_checkpoint();
    while sim.tick() < until {
        let tick = sim.tick() + 1;
        for (_, _, input) in logged.iter().filter(|(t, _, _)| *t == tick) {
            apply_input(sim.world_mut(), input).unwrap();
        }
        sim.step();
    }
    sim
}

/// Writes, in `dir`, the world a format-1 build left after running the scenario to tick 26:
/// its checkpoint of tick 20 carries `config_digest`, its log the inputs after it.
fn write_format_1_world(dir: &Path, config_digest: u64) {
    let mut sim = scenario_at_20();
    let old = WorldCheckpoint {
        format: 3,
        config_digest,
        ..checkpoint::capture(&mut sim)
    };
    let store = WorldStore::open(dir, StoreLimits::default()).unwrap();
    let info = WorldInfoV1 {
        format: 1,
        universe_seed: SEED,
        config_toml: config_toml(),
        created_by: "0.1.0".into(),
    };
    store
        .put_world_info(&postcard::to_allocvec(&info).unwrap())
        .unwrap();
    let packed = compress::pack(&checkpoint::encode(&old), compress::CHECKPOINT_LEVEL);
    store.put_checkpoint(20, &packed).unwrap();
    for (tick, input, _) in logged_after_checkpoint() {
        store
            .append_input(tick, &postcard::to_allocvec(&input).unwrap())
            .unwrap();
    }
    store.note_tick_reached(26).unwrap();
    store.flush().unwrap();
}

/// What format-3 builds stored as the configuration digest.
fn debug_text_digest(config: &UniverseConfig) -> u64 {
    xxhash_rust::xxh3::xxh3_64(format!("{config:?}").as_bytes())
}

fn request() -> WorldRequest {
    WorldRequest {
        seed: None,
        config: None,
        script_workers: 2,
    }
}

fn owner(world: &mut PersistentWorld, ship: u64) -> Option<String> {
    checkpoint::capture_ship(world.sim_mut().world_mut(), astroboids_engine::NetId(ship))
        .expect("the ship exists")
        .owner
}

#[test]
fn a_format_1_world_opens_with_its_state_and_is_written_in_the_current_formats() {
    let dir = TempDir::new("migrate-format-1");
    write_format_1_world(&dir, debug_text_digest(&config()));

    let mut reference = reference_after(scenario_at_20(), 26);
    let (mut world, report) = PersistentWorld::open(&dir, request()).expect("migrated");
    assert_eq!(report.checkpoint_tick, Some(20));
    assert_eq!(report.replayed_inputs, 3, "the old log is read");
    assert_eq!(report.tick, 26);
    assert_eq!(world.state_hash(), reference.state_hash());
    assert_eq!(owner(&mut world, JOINER).as_deref(), Some("ada"));

    // A new input is logged in the current layout beside the old ones; a crash now (drop
    // without close) must still read both kinds.
    let spawn = WorldInput::SpawnShip {
        sector: (0, 0),
        local: (600.0, 200.0),
        heading: 0.0,
        autopilot: true,
        owner: Some("bob".into()),
    };
    world.submit(spawn.clone()).unwrap();
    world.step().unwrap();
    drop(world);
    apply_input(reference.world_mut(), &spawn).unwrap();
    reference.step();

    let (mut world, report) = PersistentWorld::open(&dir, request()).expect("reopens");
    assert_eq!(report.replayed_inputs, 4);
    assert_eq!(report.tick, 27);
    assert_eq!(world.state_hash(), reference.state_hash());
    assert_eq!(owner(&mut world, JOINER + 1).as_deref(), Some("bob"));

    // The next checkpoint is in the current format and the old log is gone with the inputs
    // it covers.
    while world.tick() < 40 {
        world.step().unwrap();
    }
    world.flush_checkpoints().unwrap();
    let (tick, packed) = world.store().latest_checkpoint().unwrap().unwrap();
    assert_eq!(tick, 40);
    let latest = checkpoint::decode(&compress::unpack(&packed, 1 << 30).unwrap()).unwrap();
    assert_eq!(latest.format, CHECKPOINT_FORMAT);
    assert!(world.store().inputs_from(0).unwrap().is_empty());
    world.close().unwrap();
    let (mut world, report) = PersistentWorld::open(&dir, request()).unwrap();
    assert_eq!(report.checkpoint_tick, Some(40));
    let mut reference = reference_after(reference, 40);
    assert_eq!(world.state_hash(), reference.state_hash());
}

#[test]
fn a_format_3_checkpoint_whose_digest_this_build_cannot_reproduce_is_refused_with_what_to_do() {
    let dir = TempDir::new("migrate-refused");
    // What a build compiled by a Rust whose Debug output differs would see.
    write_format_1_world(&dir, debug_text_digest(&config()) ^ 1);

    let err = PersistentWorld::open(&dir, request()).expect_err("refused");
    assert!(matches!(err, HostError::Checkpoint { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the latest checkpoint cannot be restored: checkpoint format 3 identifies its \
             universe configuration by a digest of Rust's Debug formatting, and under this build \
             that digest does not match: either the configuration differs or this build's Rust \
             toolchain formats it differently. To migrate the world, build this astroboids \
             release with the Rust toolchain that built the release that wrote the checkpoint, \
             and run the world with that build past its next checkpoint tick (a multiple of \
             persistence.checkpoint_every_ticks = 20): that rewrites the checkpoint in format \
             {CHECKPOINT_FORMAT}, which any build of this release opens",
            dir.display()
        )
    );

    // Refused means untouched: the world is still format 1, and opens once the digest fits
    // (as it does under the toolchain the message points to).
    let store = WorldStore::open(&dir, StoreLimits::default()).unwrap();
    let info = store.world_info().unwrap().unwrap();
    assert_eq!(postcard::take_from_bytes::<u32>(&info).unwrap().0, 1);
    assert_eq!(store.inputs_from(0).unwrap().len(), 3);
}

#[test]
fn a_world_description_from_a_newer_build_is_refused_with_what_to_do() {
    let dir = TempDir::new("migrate-newer");
    let store = WorldStore::open(&dir, StoreLimits::default()).unwrap();
    let info = WorldInfoV1 {
        format: 9,
        universe_seed: SEED,
        config_toml: config_toml(),
        created_by: "9.0.0".into(),
    };
    store
        .put_world_info(&postcard::to_allocvec(&info).unwrap())
        .unwrap();
    store.flush().unwrap();
    drop(store);

    let err = PersistentWorld::open(&dir, request()).expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the world description has format 9; this build reads format 2 (and migrates \
             format 1): the world was written by a newer astroboids, open it with that release \
             or a later one",
            dir.display()
        )
    );
}

/// The world description as format-2 builds write it (mirrored to edit a stored one).
#[derive(Debug, Serialize, serde::Deserialize)]
struct WorldInfoV2 {
    format: u32,
    universe_seed: u64,
    config_toml: String,
    created_by: String,
    inputs_v1_before_seq: u64,
}

#[test]
fn a_world_stored_with_the_world_wide_fuel_cap_opens_with_it_as_the_sector_cap() {
    let dir = TempDir::new("migrate-fuel-cap");
    let embedded = UniverseConfig::default();
    let ticks = embedded.persistence.checkpoint_every_ticks + 5;
    let hash = {
        let (mut world, _) = PersistentWorld::open(&dir, request()).unwrap();
        for _ in 0..ticks {
            world.step().unwrap();
        }
        let hash = world.sim_mut().world_mut().state_hash();
        world.close().unwrap();
        hash
    };
    // What the previous build stored: the same numbers under the retired name.
    let store = WorldStore::open(&dir, StoreLimits::default()).unwrap();
    let mut info: WorldInfoV2 =
        postcard::from_bytes(&store.world_info().unwrap().unwrap()).unwrap();
    let old_text = info
        .config_toml
        .replace("sector_fuel_per_tick_max", "world_fuel_per_tick_max");
    assert_ne!(old_text, info.config_toml, "the stored text names the cap");
    info.config_toml = old_text;
    store
        .put_world_info(&postcard::to_allocvec(&info).unwrap())
        .unwrap();
    store.flush().unwrap();
    drop(store);

    let (mut world, _) = PersistentWorld::open(&dir, request()).expect("migrated, not refused");
    assert_eq!(world.sim().tick(), ticks);
    assert_eq!(world.sim_mut().world_mut().state_hash(), hash);
    let cap = world
        .sim()
        .world()
        .resource::<UniverseConfig>()
        .scripts
        .sector_fuel_per_tick_max;
    assert_eq!(cap, embedded.scripts.sector_fuel_per_tick_max);
    world.close().unwrap();
    let store = WorldStore::open(&dir, StoreLimits::default()).unwrap();
    let info: WorldInfoV2 = postcard::from_bytes(&store.world_info().unwrap().unwrap()).unwrap();
    assert!(info.config_toml.contains("sector_fuel_per_tick_max"));
    assert!(!info.config_toml.contains("world_fuel_per_tick_max"));
}
