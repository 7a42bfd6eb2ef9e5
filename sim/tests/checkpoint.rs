//! World checkpoints: a world restored from a checkpoint continues tick for tick with the same
//! state hash as the world it was taken from (scripts, sectors, physics and inputs included),
//! and a checkpoint that does not fit is refused by name.

mod common;

use astroboids_engine::{NetId, Simulation};
use astroboids_sim::checkpoint::{self, CheckpointError};
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::{WorldInput, apply_input};
use astroboids_sim::scripts::{ScriptHost, add_script, assign_script};
use astroboids_sim::ships::{ShipCommand, ShipIndex, ShipInputs};
use astroboids_sim::{SimOptions, SimTotals};
use common::{fleet_world, with_threads};

/// Random turns at full thrust, mining, a tick counter in memory, a running sum in a global,
/// memory growth at tick 7 and a log line every 5 ticks.
fn wanderer() -> Vec<u8> {
    let wat = r#"(module
        (import "astroboids" "random" (func $random (result i32)))
        (import "astroboids" "log" (func $log (param i32 i32)))
        (memory (export "memory") 1 16)
        (data (i32.const 200) "tick")
        (global $draws (mut i64) (i64.const 0))
        (func (export "astroboids_abi") (result i32) i32.const 1)
        (func (export "sensor_ptr") (result i32) i32.const 1024)
        (func (export "command_ptr") (result i32) i32.const 4096)
        (func (export "tick")
          (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
          (if (i32.eq (i32.load (i32.const 0)) (i32.const 7))
            (then (drop (memory.grow (i32.const 1)))))
          (if (i32.eqz (i32.rem_u (i32.load (i32.const 0)) (i32.const 5)))
            (then (call $log (i32.const 200) (i32.const 4))))
          (global.set $draws (i64.add (global.get $draws) (i64.extend_i32_u (call $random))))
          (f32.store (i32.const 4096) (f32.const 1))
          (f32.store (i32.const 4100)
            (f32.sub
              (f32.div (f32.convert_i32_u (i32.and (call $random) (i32.const 255)))
                       (f32.const 128))
              (f32.const 1)))
          (i32.store (i32.const 4104) (i32.const 1))))"#;
    wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned()
}

/// 160 ships, 60 of them scripted, 25 ticks in, with inputs waiting for the next tick.
fn living_world() -> (Simulation, Vec<NetId>) {
    living_world_with(UniverseConfig::default())
}

fn living_world_with(config: UniverseConfig) -> (Simulation, Vec<NetId>) {
    let (mut sim, ids) = fleet_world(config, 21, 160);
    let script = add_script(sim.world_mut(), &wanderer()).unwrap();
    for &ship in &ids[..60] {
        assign_script(sim.world_mut(), ship, script).unwrap();
    }
    sim.run_ticks(25);
    let mut inputs = sim.world_mut().resource_mut::<ShipInputs>();
    for &ship in &ids[100..105] {
        let brake = ShipCommand {
            stop: true,
            ..ShipCommand::default()
        };
        inputs.submit(ship, brake).unwrap();
    }
    (sim, ids)
}

fn hashes(sim: &mut Simulation, ticks: u64) -> Vec<u64> {
    (0..ticks)
        .map(|_| {
            sim.step();
            sim.state_hash().total
        })
        .collect()
}

#[test]
fn a_restored_world_continues_exactly_like_the_original() {
    with_threads(2, || {
        let (mut live, _) = living_world();
        let saved = checkpoint::capture(&mut live);
        let bytes = checkpoint::encode(&saved);
        let decoded = checkpoint::decode(&bytes).unwrap();
        assert_eq!(decoded, saved);

        let mut restored =
            checkpoint::restore(UniverseConfig::default(), &decoded, SimOptions::default())
                .unwrap();
        let (a, b) = (live.state_hash(), restored.state_hash());
        assert_eq!(
            a.differing_parts(&b),
            Vec::<&str>::new(),
            "right after restore"
        );
        assert_eq!(restored.tick(), 25);

        let expected = hashes(&mut live, 40);
        let got = hashes(&mut restored, 40);
        for (tick, (e, g)) in expected.iter().zip(&got).enumerate() {
            assert_eq!(e, g, "hash differs {} ticks after the restore", tick + 1);
        }
        let totals = live.world().resource::<SimTotals>().clone();
        assert!(
            totals.script_fuel_used > 0 && totals.ore_mined > 0,
            "{totals:?}"
        );
        assert!(
            totals.collision_contacts > 0,
            "physics was exercised: {totals:?}"
        );
    });
}

/// A scripted ship scrapped in the tick before the capture, one suspended and one given a new
/// script since: their old instances are still held by the workers until the next script
/// stage drops them, but they are no part of the world, so a world restored from this capture
/// hashes as the original (a cluster compares exactly these two hashes at its last tick).
#[test]
fn a_world_captured_while_dropped_instances_wait_hashes_as_its_restore() {
    with_threads(2, || {
        let (mut live, ids) = living_world();
        let wanderer = astroboids_scripting::module_hash(&wanderer());
        apply_input(live.world_mut(), &WorldInput::Scrap { ship: ids[0].0 }).unwrap();
        live.step();
        assert!(
            !live.world().resource::<ShipIndex>().contains(ids[0]),
            "the scrapped ship is gone"
        );
        let suspend = WorldInput::SuspendScript {
            ship: ids[1].0,
            reason: "watchdog".into(),
        };
        apply_input(live.world_mut(), &suspend).unwrap();
        let reassign = WorldInput::AssignScript {
            ship: ids[2].0,
            script: wanderer,
        };
        apply_input(live.world_mut(), &reassign).unwrap();

        let saved = checkpoint::capture(&mut live);
        let mut restored =
            checkpoint::restore(UniverseConfig::default(), &saved, SimOptions::default()).unwrap();
        let (a, b) = (live.state_hash(), restored.state_hash());
        assert_eq!(
            a.differing_parts(&b),
            Vec::<&str>::new(),
            "right after restore"
        );
        assert_eq!(a.total, b.total);
        let expected = hashes(&mut live, 10);
        assert_eq!(hashes(&mut restored, 10), expected);
    });
}

/// Persistence and cluster shards have the workers take every script's state right after its
/// run in a checkpoint tick's script stage, while its memory is in cache: the full state hash,
/// the checkpoint and the ticks after are those of a world whose states are read after the tick.
#[test]
fn states_taken_in_a_checkpoint_ticks_runs_are_those_read_after_the_tick() {
    with_threads(2, || {
        let mut config = UniverseConfig::default();
        config.persistence.checkpoint_every_ticks = 27;
        let (mut keeping, _) = living_world_with(config.clone());
        let (mut plain, _) = living_world_with(config);
        keeping
            .world()
            .resource::<ScriptHost>()
            .take_states_at_checkpoint_ticks(true);
        keeping.run_ticks(2);
        plain.run_ticks(2);
        assert_eq!(keeping.tick(), 27, "a checkpoint tick");
        let (a, b) = (keeping.state_hash(), plain.state_hash());
        assert_eq!(a.differing_parts(&b), Vec::<&str>::new());
        assert_eq!(a.total, b.total);
        let pending = checkpoint::capture_later(&mut keeping);
        keeping.run_ticks(3);
        assert_eq!(pending.finish(), checkpoint::capture(&mut plain));
        plain.run_ticks(3);
        assert_eq!(hashes(&mut keeping, 5), hashes(&mut plain, 5));
    });
}

#[test]
fn script_states_collected_after_the_world_ran_on_are_those_of_the_captured_tick() {
    with_threads(2, || {
        let (mut live, _) = living_world();
        let (mut twin, _) = living_world();
        let pending = checkpoint::capture_later(&mut live);
        assert_eq!(pending.tick(), 25);
        // The scripts run on (their memories and globals change) before anyone collects.
        live.run_ticks(5);
        let collected = pending.finish();
        let at_capture = checkpoint::capture(&mut twin);
        assert_eq!(
            collected, at_capture,
            "the states are those of tick 25, as a capture that waited for them"
        );
        let scripted = |c: &checkpoint::WorldCheckpoint| {
            c.ships
                .iter()
                .filter_map(|s| s.script.as_ref().map(|r| (s.id, r.globals.clone())))
                .collect::<Vec<_>>()
        };
        assert_eq!(scripted(&collected).len(), 60);
        assert_ne!(
            scripted(&checkpoint::capture(&mut live)),
            scripted(&collected),
            "the live world's scripts did move on"
        );
    });
}

#[test]
fn script_memories_are_stored_without_their_zero_chunks_and_format_4_still_reads() {
    let (mut live, _) = living_world();
    let saved = checkpoint::capture(&mut live);
    let current = checkpoint::encode(&saved);
    let whole = checkpoint::encode(&checkpoint::WorldCheckpoint {
        format: checkpoint::WHOLE_MEMORY_FORMAT,
        ..saved.clone()
    });
    // 60 scripts with one or two 64 KiB pages each, of which a few bytes are used.
    let memory_bytes: u64 = saved
        .ships
        .iter()
        .filter_map(|s| s.script.as_ref())
        .map(|s| s.memory.len())
        .sum();
    assert!(memory_bytes >= 60 * 65_536, "{memory_bytes}");
    assert!(
        whole.len() as u64 > memory_bytes,
        "format 4 stores every byte"
    );
    assert!(
        (current.len() as u64) < memory_bytes / 10,
        "{} bytes for {memory_bytes} bytes of memory",
        current.len()
    );

    // A format-4 checkpoint reads into the same world, and writes back byte for byte.
    let old = checkpoint::decode(&whole).unwrap();
    assert_eq!(old.format, checkpoint::WHOLE_MEMORY_FORMAT);
    assert_eq!(old.ships, saved.ships);
    assert_eq!(checkpoint::encode(&old), whole);
    let mut from_old =
        checkpoint::restore(UniverseConfig::default(), &old, SimOptions::default()).unwrap();
    assert_eq!(hashes(&mut from_old, 15), hashes(&mut live, 15));
}

#[test]
fn restoring_with_other_workers_gives_the_same_world() {
    let (saved, expected) = with_threads(2, || {
        let (mut live, _) = living_world();
        let saved = checkpoint::capture(&mut live);
        (saved, hashes(&mut live, 15))
    });
    let got = with_threads(1, || {
        let mut restored =
            checkpoint::restore(UniverseConfig::default(), &saved, SimOptions::default()).unwrap();
        hashes(&mut restored, 15)
    });
    assert_eq!(expected, got);
}

#[test]
fn checkpoints_that_do_not_fit_are_refused_by_name() {
    let (mut live, _) = fleet_world(UniverseConfig::default(), 3, 10);
    live.run_ticks(3);
    let saved = checkpoint::capture(&mut live);

    let mut other_rules = UniverseConfig::default();
    other_rules.ships.max_speed = 25.0;
    let err = checkpoint::restore(other_rules, &saved, SimOptions::default())
        .err()
        .expect("refused");
    assert_eq!(err, CheckpointError::Config);
    assert_eq!(
        err.to_string(),
        "checkpoint was taken with a different universe configuration"
    );

    let newer = checkpoint::WorldCheckpoint {
        format: 99,
        ..saved.clone()
    };
    let err = checkpoint::restore(UniverseConfig::default(), &newer, SimOptions::default())
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "checkpoint format 99; this build reads format {} (and migrates formats 3 and 4): it was \
             written by a newer astroboids; open it with that release or a later one",
            checkpoint::CHECKPOINT_FORMAT
        )
    );

    let bytes = checkpoint::encode(&saved);
    let err = checkpoint::decode(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(
        err.to_string().starts_with("checkpoint is damaged"),
        "{err}"
    );
}

/// What format-3 builds stored as `config_digest`: a hash of the derived Debug text (written
/// out here, not taken from the crate, so the test keeps pinning what those builds did).
fn debug_text_digest(config: &UniverseConfig) -> u64 {
    xxhash_rust::xxh3::xxh3_64(format!("{config:?}").as_bytes())
}

#[test]
fn the_config_digest_is_a_pinned_canonical_encoding() {
    let config = UniverseConfig::default();
    assert_eq!(
        checkpoint::config_digest(&config),
        PINNED_EMBEDDED_CONFIG_DIGEST,
        "the configuration digest of the embedded assets/universe.toml changed. If you edited \
         that file, update the pinned value. If you changed how the digest is computed or \
         UniverseConfig's fields (order, names, types), every stored checkpoint now fails to \
         open: bump CHECKPOINT_FORMAT and keep reading the previous format (see \
         checkpoint::restore), then update the pinned value."
    );
    assert_ne!(
        checkpoint::config_digest(&config),
        debug_text_digest(&config),
        "the digest must not be the Debug text's, which a Rust upgrade may change"
    );

    // Floats count by their bits: the smallest change is another configuration.
    let mut nudged = config.clone();
    nudged.ships.max_speed = f32::from_bits(config.ships.max_speed.to_bits() + 1);
    assert_ne!(
        checkpoint::config_digest(&nudged),
        checkpoint::config_digest(&config)
    );
    let mut nudged = config.clone();
    nudged.generation.hazard_chance = f64::from_bits(config.generation.hazard_chance.to_bits() + 1);
    assert_ne!(
        checkpoint::config_digest(&nudged),
        checkpoint::config_digest(&config)
    );
}

/// `config_digest(&UniverseConfig::default())`; see the test above for when it may change.
const PINNED_EMBEDDED_CONFIG_DIGEST: u64 = 0x18dd_2451_d656_1753;

/// A checkpoint as a format-3 build wrote it: the same layout, the Debug-text digest.
fn as_format_3(
    checkpoint: &checkpoint::WorldCheckpoint,
    digest: u64,
) -> checkpoint::WorldCheckpoint {
    checkpoint::WorldCheckpoint {
        format: checkpoint::LEGACY_DEBUG_DIGEST_FORMAT,
        config_digest: digest,
        ..checkpoint.clone()
    }
}

#[test]
fn a_format_3_checkpoint_whose_debug_digest_matches_is_restored_and_captured_in_the_new_format() {
    let config = UniverseConfig::default();
    let (mut live, _) = fleet_world(config.clone(), 5, 30);
    live.run_ticks(10);
    let saved = checkpoint::capture(&mut live);
    let old = as_format_3(&saved, debug_text_digest(&config));
    let old = checkpoint::decode(&checkpoint::encode(&old)).unwrap();

    let mut restored = checkpoint::restore(config.clone(), &old, SimOptions::default()).unwrap();
    assert_eq!(restored.state_hash(), live.state_hash());
    assert_eq!(hashes(&mut restored, 12), hashes(&mut live, 12));

    let rewritten = checkpoint::capture(&mut restored);
    assert_eq!(rewritten.format, checkpoint::CHECKPOINT_FORMAT);
    assert_eq!(rewritten.config_digest, checkpoint::config_digest(&config));
}

#[test]
fn a_format_3_checkpoint_whose_debug_digest_does_not_match_is_refused_with_what_to_do() {
    let config = UniverseConfig::default();
    let (mut live, _) = fleet_world(config.clone(), 5, 10);
    live.run_ticks(3);
    let saved = checkpoint::capture(&mut live);
    // What a build whose Rust formats Debug differently computes (or another configuration).
    let mut other = config.clone();
    other.ships.max_speed = 25.0;
    let old = as_format_3(&saved, debug_text_digest(&other));

    let err = checkpoint::restore(config, &old, SimOptions::default())
        .err()
        .expect("refused");
    assert_eq!(err, CheckpointError::LegacyConfig { every: 100 });
    assert_eq!(
        err.to_string(),
        "checkpoint format 3 identifies its universe configuration by a digest of Rust's Debug \
         formatting, and under this build that digest does not match: either the configuration \
         differs or this build's Rust toolchain formats it differently. To migrate the world, \
         build this astroboids release with the Rust toolchain that built the release that \
         wrote the checkpoint, and run the world with that build past its next checkpoint tick \
         (a multiple of persistence.checkpoint_every_ticks = 100): that rewrites the checkpoint \
         in format 5, which any build of this release opens"
    );
}
