//! Restoring a script's saved state (the basis of checkpoints and replays): an instance given
//! another's memory and globals continues exactly as the original does.

use std::sync::Arc;

use astroboids_scripting::blocks::SensorSnapshot;
use astroboids_scripting::{
    CompiledScript, CompilerKind, InstanceState, MemoryImage, ScriptEngine, ScriptInstance,
    ScriptLimits, ScriptWorkers,
};

/// Keeps state in memory (a tick counter), in a global (a running sum of random draws), grows
/// its memory at tick 3, and steers by all of it.
const STATEFUL: &str = r#"(module
    (import "astroboids" "random" (func $random (result i32)))
    (memory (export "memory") 1 16)
    (global $sum (mut i64) (i64.const 0))
    (global $scale (mut f32) (f32.const 0.5))
    (func (export "astroboids_abi") (result i32) i32.const 1)
    (func (export "sensor_ptr") (result i32) i32.const 1024)
    (func (export "command_ptr") (result i32) i32.const 4096)
    (func (export "tick")
      (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
      (if (i32.eq (i32.load (i32.const 0)) (i32.const 3))
        (then (drop (memory.grow (i32.const 2)))
              (i32.store (i32.const 131072) (i32.const 42))))
      (global.set $sum (i64.add (global.get $sum) (i64.extend_i32_u (call $random))))
      (global.set $scale (f32.mul (global.get $scale) (f32.const 0.9)))
      (f32.store (i32.const 4096)
        (f32.mul (global.get $scale)
          (f32.convert_i64_u (i64.rem_u (global.get $sum) (i64.const 100)))))))"#;

fn engine() -> ScriptEngine {
    ScriptEngine::new(ScriptLimits::default(), CompilerKind::Cranelift)
}

fn wasm(wat: &str) -> Vec<u8> {
    wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned()
}

fn sensors(tick: u64) -> SensorSnapshot {
    SensorSnapshot {
        tick,
        ..SensorSnapshot::default()
    }
}

/// The stateful script, and an instance of it after its first five ticks (grown at tick 3).
fn stateful_after_five_ticks() -> (Arc<CompiledScript>, ScriptInstance) {
    let script = engine().load(&wasm(STATEFUL)).unwrap();
    let mut instance = ScriptInstance::new(&script, 1).unwrap();
    for tick in 0..5 {
        instance.run_tick(1_000_000, tick, &sensors(tick));
    }
    (script, instance)
}

#[test]
fn a_restored_instance_continues_exactly_like_the_original() {
    let (script, mut original) = stateful_after_five_ticks();
    let saved = original.state();
    assert_eq!(saved.memory.len(), 3 * 65_536, "grew at tick 3");
    assert_eq!(saved.globals.len(), 2);

    let mut restored = ScriptInstance::new(&script, 99).unwrap();
    restored.restore_state(&saved).unwrap();
    assert_eq!(restored.state(), saved);
    assert_eq!(restored.state_digest(), original.state_digest());
    for tick in 5..12 {
        let a = original.run_tick(10_000, tick, &sensors(tick));
        let b = restored.run_tick(10_000, tick, &sensors(tick));
        assert_eq!(a, b, "tick {tick}");
    }
    assert_eq!(restored.state(), original.state());
}

#[test]
fn a_state_that_does_not_fit_the_script_is_refused() {
    let e = engine();
    let script = e.load(&wasm(STATEFUL)).unwrap();
    let mut fresh = ScriptInstance::new(&script, 1).unwrap();
    let mut state = fresh.state();
    state.globals.pop();
    assert_eq!(
        fresh.restore_state(&state).unwrap_err().to_string(),
        "cannot restore the script's saved state: the saved state has 1 mutable globals, the \
         script has 2"
    );
    let odd = InstanceState {
        memory: MemoryImage::of(&[0; 1000]),
        globals: vec![0, 0],
    };
    assert!(
        fresh
            .restore_state(&odd)
            .unwrap_err()
            .to_string()
            .contains("must be whole pages")
    );
    let too_big = InstanceState {
        memory: MemoryImage::of(&vec![0; 17 * 65_536]),
        globals: vec![0, 0],
    };
    assert!(
        fresh
            .restore_state(&too_big)
            .unwrap_err()
            .to_string()
            .contains("cannot grow memory")
    );
}

#[test]
fn workers_restore_a_ship_from_saved_state() {
    let e = engine();
    let script = e.load(&wasm(STATEFUL)).unwrap();
    let mut pool = ScriptWorkers::new(2);
    pool.attach(1, &script, 1).unwrap();
    let job = |ship: u64, tick: u64| astroboids_scripting::ScriptJob {
        ship,
        budget: 10_000,
        random_seed: tick,
        sensors: sensors(tick),
    };
    for tick in 0..4 {
        pool.run(vec![job(1, tick)]).unwrap();
    }
    let saved = pool.state(1).unwrap();
    pool.restore(2, &script, saved.clone()).unwrap();
    assert_eq!(pool.state(2).unwrap(), saved);
    for tick in 4..8 {
        let results = pool.run(vec![job(1, tick), job(2, tick)]).unwrap();
        assert_eq!(results[0].report, results[1].report, "tick {tick}");
    }
    assert!(pool.restore(2, &script, saved).is_err(), "already attached");
}

/// A snapshot holds every byte the script wrote, wherever in its memory (the copy stops at the
/// last non-zero byte; everything after it is zero either way).
#[test]
fn a_snapshot_holds_every_byte_wherever_the_script_wrote_last() {
    const SENSOR_AT: usize = 1024;
    const COMMAND_AT: usize = 8192;
    for at in [2usize, 4095, 4096, 40_000, 65_534, 65_535] {
        let wat = format!(
            r#"(module
                (memory (export "memory") 1 1)
                (func (export "astroboids_abi") (result i32) i32.const 1)
                (func (export "sensor_ptr") (result i32) i32.const {SENSOR_AT})
                (func (export "command_ptr") (result i32) i32.const {COMMAND_AT})
                (func (export "tick")
                  (i32.store8 (i32.const 1) (i32.const 5))
                  (i32.store8 (i32.const {at}) (i32.const 7))))"#
        );
        let e = engine();
        let script = e.load(&wasm(&wat)).unwrap();
        let mut ship = ScriptInstance::new(&script, 1).unwrap();
        ship.run_tick(1_000_000, 9, &sensors(9));
        let memory = ship.memory_snapshot();
        assert_eq!(memory.len(), 65_536);
        assert_eq!((memory[1], memory[at]), (5, 7), "written at {at}");
        let blocks = SENSOR_AT..SENSOR_AT + astroboids_scripting::blocks::SENSOR_BLOCK_BYTES;
        let command = COMMAND_AT..COMMAND_AT + 16;
        assert!(
            memory[blocks.clone()].iter().any(|&b| b != 0),
            "the tick is in the sensor block"
        );
        for (i, &b) in memory.iter().enumerate() {
            if i != 1 && i != at && !blocks.contains(&i) && !command.contains(&i) {
                assert_eq!(b, 0, "byte {i} (script wrote at {at})");
            }
        }
    }
}

/// A state's digest (what the state hash and a checkpoint's check rest on) is the one its
/// instance reports, and it tells apart memories that differ in a byte, in where a non-zero
/// chunk lies, or only in their size, and globals that differ.
#[test]
fn a_state_digest_is_its_instances_and_tells_states_apart() {
    let (_, mut instance) = stateful_after_five_ticks();
    assert_eq!(instance.state().digest(), instance.state_digest());

    let state = |memory: &[u8], globals: &[u64]| InstanceState {
        memory: MemoryImage::of(memory),
        globals: globals.to_vec(),
    };
    let mut page = vec![0u8; 65_536];
    page[10] = 7;
    let base = state(&page, &[1]).digest();
    assert_eq!(state(&page, &[1]).digest(), base, "same state, same digest");
    let mut other_byte = page.clone();
    other_byte[10] = 8;
    let mut other_chunk = vec![0u8; 65_536];
    other_chunk[1024 + 10] = 7;
    let mut bigger = page.clone();
    bigger.resize(2 * 65_536, 0);
    for (what, digest) in [
        ("a byte", state(&other_byte, &[1]).digest()),
        ("where the chunk lies", state(&other_chunk, &[1]).digest()),
        ("the size alone", state(&bigger, &[1]).digest()),
        ("a global", state(&page, &[2]).digest()),
        ("zero memory", state(&vec![0u8; 65_536], &[1]).digest()),
    ] {
        assert_ne!(digest, base, "differing in {what}");
    }
}
