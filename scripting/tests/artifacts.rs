//! The on-disk artifact cache: a restart loads compiled scripts instead of compiling them, a
//! damaged artifact is recompiled, and a change of configuration never reuses a stale one.

use std::path::{Path, PathBuf};

use astroboids_scripting::blocks::SensorSnapshot;
use astroboids_scripting::{
    ArtifactDir, CompilerKind, LoadStats, ScriptEngine, ScriptInstance, ScriptLimits,
};
use astroboids_test_kit::{TempDir, WatBot};

/// Counts ticks at address 0 and uses a little fuel.
fn counter() -> Vec<u8> {
    WatBot::new()
        .tick("(i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))")
        .wasm()
}

fn engine_in(dir: &Path, limits: ScriptLimits) -> ScriptEngine {
    ScriptEngine::new(limits, CompilerKind::Cranelift)
        .with_artifact_dir(ArtifactDir::new(dir).expect("artifact dir"))
}

/// Loads the counter, runs two ticks; returns (fuel of the second tick, counter value).
fn run(engine: &ScriptEngine) -> (u64, u32) {
    let compiled = engine.load(&counter()).expect("loads");
    let mut ship = ScriptInstance::new(&compiled, 1).expect("starts");
    ship.run_tick(10_000, 1, &SensorSnapshot::default());
    let report = ship.run_tick(10_000, 1, &SensorSnapshot::default());
    assert_eq!(report.fault, None);
    let memory = ship.state().memory.to_vec();
    (
        report.fuel_used,
        u32::from_le_bytes(memory[..4].try_into().unwrap()),
    )
}

fn artifact_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn a_restart_loads_the_artifact_instead_of_compiling() {
    let dir = TempDir::new("artifacts-restart");
    let first = engine_in(&dir, ScriptLimits::default());
    let before = run(&first);
    assert_eq!(
        first.load_stats(),
        LoadStats {
            compiled: 1,
            loaded_from_disk: 0
        }
    );
    assert_eq!(artifact_files(&dir).len(), 1, "one artifact, no temp files");

    let restarted = engine_in(&dir, ScriptLimits::default());
    assert_eq!(run(&restarted), before, "same fuel, same state");
    assert_eq!(
        restarted.load_stats(),
        LoadStats {
            compiled: 0,
            loaded_from_disk: 1
        }
    );
}

#[test]
fn a_damaged_artifact_is_recompiled_and_replaced() {
    let dir = TempDir::new("artifacts-damaged");
    let before = run(&engine_in(&dir, ScriptLimits::default()));
    let file = artifact_files(&dir).remove(0);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let after_damage = engine_in(&dir, ScriptLimits::default());
    assert_eq!(run(&after_damage), before);
    assert_eq!(after_damage.load_stats().compiled, 1, "checksum caught it");
    let again = engine_in(&dir, ScriptLimits::default());
    run(&again);
    assert_eq!(
        again.load_stats().loaded_from_disk,
        1,
        "the file was rewritten"
    );

    std::fs::write(&file, b"short").unwrap();
    let truncated = engine_in(&dir, ScriptLimits::default());
    assert_eq!(run(&truncated), before);
    assert_eq!(truncated.load_stats().compiled, 1);
}

#[test]
fn other_limits_or_compilers_never_reuse_an_artifact() {
    let dir = TempDir::new("artifacts-config");
    run(&engine_in(&dir, ScriptLimits::default()));
    let more_start_fuel = engine_in(
        &dir,
        ScriptLimits {
            start_fuel: 123_456,
            ..ScriptLimits::default()
        },
    );
    run(&more_start_fuel);
    assert_eq!(more_start_fuel.load_stats().compiled, 1);
    let singlepass = ScriptEngine::new(ScriptLimits::default(), CompilerKind::Singlepass)
        .with_artifact_dir(ArtifactDir::new(dir.path()).unwrap());
    run(&singlepass);
    assert_eq!(singlepass.load_stats().compiled, 1);
    assert_eq!(artifact_files(&dir).len(), 3);
}

#[test]
fn rejected_modules_leave_nothing_on_disk() {
    let dir = TempDir::new("artifacts-rejected");
    let engine = engine_in(&dir, ScriptLimits::default());
    let wat = r#"(module (import "env" "seed" (func (result f64)))
        (memory (export "memory") 1)
        (func (export "astroboids_abi") (result i32) i32.const 1)
        (func (export "sensor_ptr") (result i32) i32.const 1024)
        (func (export "command_ptr") (result i32) i32.const 4096)
        (func (export "tick")))"#;
    assert!(
        engine
            .load(&wasmer::wat2wasm(wat.as_bytes()).unwrap())
            .is_err()
    );
    assert!(engine.load(b"\0asm junk").is_err());
    assert!(artifact_files(&dir).is_empty());
}
