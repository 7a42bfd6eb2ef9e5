//! Hostile scripts: each is refused at load with a message naming the problem, or faults in
//! its own tick without affecting anyone else.

use std::sync::Arc;

use astroboids_scripting::blocks::{FLAG_MINE, FLAG_STOP, ScriptCommand, SensorSnapshot};
use astroboids_scripting::{
    CompiledScript, CompilerKind, FaultKind, ScriptEngine, ScriptError, ScriptInstance,
    ScriptLimits,
};
use astroboids_test_kit::WatBot;

fn engine() -> ScriptEngine {
    ScriptEngine::new(ScriptLimits::default(), CompilerKind::Singlepass)
}

/// A module with the ABI exports and no imports; `extra` adds fields, `tick` is the tick body.
fn script(extra: &str, tick: &str) -> Vec<u8> {
    WatBot::new().field(extra).tick(tick).wasm()
}

/// Sensors of a ship alone in empty space.
fn idle() -> SensorSnapshot {
    SensorSnapshot::default()
}

fn load(engine: &ScriptEngine, wasm: &[u8]) -> Result<Arc<CompiledScript>, ScriptError> {
    engine.load(wasm)
}

fn instance(engine: &ScriptEngine, wasm: &[u8]) -> ScriptInstance {
    let compiled = load(engine, wasm).expect("script loads");
    ScriptInstance::new(&compiled, 7).expect("script starts")
}

/// A well-behaved script that counts its ticks in memory.
fn counter() -> Vec<u8> {
    script(
        "",
        "i32.const 0 i32.const 0 i32.load i32.const 1 i32.add i32.store",
    )
}

#[test]
fn a_good_script_keeps_its_memory_across_ticks() {
    let e = engine();
    let mut ship = instance(&e, &counter());
    for _ in 0..3 {
        let report = ship.run_tick(10_000, 1, &idle());
        assert_eq!(report.fault, None);
        assert!(report.fuel_used > 0 && report.fuel_used < 100, "{report:?}");
    }
    assert_eq!(&ship.memory_snapshot()[..4], &3u32.to_le_bytes());
}

#[test]
fn infinite_loop_runs_out_of_fuel_and_the_next_tick_still_runs() {
    let e = engine();
    let mut looping = instance(&e, &script("", "(loop $l (br $l))"));
    let mut good = instance(&e, &counter());
    let report = looping.run_tick(50_000, 1, &idle());
    assert_eq!(
        report.fault.as_ref().map(|f| f.kind),
        Some(FaultKind::OutOfFuel)
    );
    assert_eq!(report.fuel_used, 50_000);
    // Another ship on the same thread is unaffected, and the looping one can run again.
    assert_eq!(good.run_tick(10_000, 1, &idle()).fault, None);
    assert_eq!(
        looping.run_tick(1_000, 2, &idle()).fault.map(|f| f.kind),
        Some(FaultKind::OutOfFuel)
    );
}

#[test]
fn infinite_loop_in_the_start_function_is_refused_at_load() {
    let e = engine();
    let wasm = script("(func $start (loop $l (br $l))) (start $start)", "");
    let err = load(&e, &wasm).err().expect("start must fail");
    let msg = err.to_string();
    assert!(
        matches!(&err, ScriptError::Start(f) if f.kind == FaultKind::OutOfFuel),
        "{msg}"
    );
    assert_eq!(
        msg,
        format!(
            "the script failed while starting: out of fuel: its start function used all {} \
             start fuel",
            ScriptLimits::default().start_fuel
        )
    );
    let trapping = script("(func $start unreachable) (start $start)", "");
    let msg = load(&e, &trapping).err().unwrap().to_string();
    assert!(msg.contains("in the start function"), "{msg}");
}

#[test]
fn memory_grow_is_refused_at_the_limit() {
    let e = engine();
    // Grow one page at a time until refused; store how many pages we reached at address 0.
    let grow = "(block $done (loop $l
                  (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
                  (br $l)))
                i32.const 0 memory.size i32.store";
    let mut ship = instance(&e, &script("", grow));
    let report = ship.run_tick(100_000_000, 1, &idle());
    assert_eq!(report.fault, None, "a refused grow is not a fault");
    let pages = u32::from_le_bytes(ship.memory_snapshot()[..4].try_into().unwrap());
    assert_eq!(pages, ScriptLimits::default().max_memory_pages);
}

#[test]
fn a_memory_without_maximum_is_clamped_to_the_limit() {
    let e = engine();
    let wat = r#"(module
        (memory (export "memory") 1)
        (func (export "astroboids_abi") (result i32) i32.const 1)
            (func (export "sensor_ptr") (result i32) i32.const 1024)
            (func (export "command_ptr") (result i32) i32.const 4096)
        (func (export "tick")
          i32.const 0 (memory.grow (i32.const 1000)) i32.store))"#;
    let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap();
    let mut ship = instance(&e, &wasm);
    assert_eq!(ship.run_tick(100_000_000, 1, &idle()).fault, None);
    assert_eq!(
        &ship.memory_snapshot()[..4],
        &(-1i32).to_le_bytes(),
        "grow beyond the limit fails"
    );
}

#[test]
fn deep_recursion_traps_as_stack_overflow() {
    let e = engine();
    let wasm = script("(func $down (call $down))", "call $down");
    let mut ship = instance(&e, &wasm);
    let report = ship.run_tick(100_000_000, 1, &idle());
    let fault = report.fault.expect("recursion faults");
    assert_eq!(fault.kind, FaultKind::Trap);
    assert!(
        fault.message.to_lowercase().contains("stack"),
        "{}",
        fault.message
    );
    // Still usable afterwards, and the same recursion traps the same way.
    let again = ship
        .run_tick(100_000_000, 1, &idle())
        .fault
        .expect("faults again");
    assert_eq!(again.kind, FaultKind::Trap);
}

#[test]
fn immediate_trap_is_a_fault_not_a_crash() {
    let e = engine();
    let mut ship = instance(&e, &script("", "unreachable"));
    let fault = ship.run_tick(10_000, 1, &idle()).fault.expect("trap");
    assert_eq!(fault.kind, FaultKind::Trap);
}

#[test]
fn oversized_module_is_refused_before_compiling() {
    let e = ScriptEngine::new(
        ScriptLimits {
            max_module_bytes: 64,
            ..ScriptLimits::default()
        },
        CompilerKind::Singlepass,
    );
    let wasm = counter();
    let err = load(&e, &wasm).err().unwrap();
    assert_eq!(
        err.to_string(),
        format!("module is {} bytes; the limit is 64 bytes", wasm.len())
    );
}

#[test]
fn garbage_bytes_are_refused() {
    let err = load(&engine(), b"\0asm garbage").err().unwrap();
    assert!(
        err.to_string()
            .starts_with("not a valid WebAssembly module"),
        "{err}"
    );
}

#[test]
fn forbidden_imports_are_named_with_what_to_use_instead() {
    let e = engine();
    let cases = [
        (
            r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
            "import wasi_snapshot_preview1.fd_write is not allowed: WASI is not available",
        ),
        (
            r#"(import "env" "seed" (func (result f64)))"#,
            "import env.seed is not allowed: scripts get randomness from astroboids.random",
        ),
        (
            r#"(import "env" "Date.now" (func (result f64)))"#,
            "import env.Date.now is not allowed: scripts have no clock",
        ),
    ];
    for (import, expected) in cases {
        let wat = format!(
            r#"(module {import}
                (memory (export "memory") 1 16)
                (func (export "astroboids_abi") (result i32) i32.const 1)
            (func (export "sensor_ptr") (result i32) i32.const 1024)
            (func (export "command_ptr") (result i32) i32.const 4096)
                (func (export "tick")))"#
        );
        let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap();
        let msg = load(&e, &wasm).err().expect("refused").to_string();
        assert!(msg.starts_with(expected), "{msg}");
    }
}

#[test]
fn wrong_import_signature_is_named() {
    let wat = r#"(module
        (import "astroboids" "log" (func (param i32)))
        (memory (export "memory") 1 16)
        (func (export "astroboids_abi") (result i32) i32.const 1)
            (func (export "sensor_ptr") (result i32) i32.const 1024)
            (func (export "command_ptr") (result i32) i32.const 4096)
        (func (export "tick")))"#;
    let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap();
    let msg = load(&engine(), &wasm).err().unwrap().to_string();
    assert_eq!(
        msg,
        "import astroboids.log has type (i32) -> (), expected (i32, i32) -> ()"
    );
}

#[test]
fn missing_or_mistyped_exports_and_wrong_abi_are_named() {
    let e = engine();
    let no_tick = wasmer::wat2wasm(
        br#"(module (memory (export "memory") 1)
            (func (export "astroboids_abi") (result i32) i32.const 1)
            (func (export "sensor_ptr") (result i32) i32.const 1024)
            (func (export "command_ptr") (result i32) i32.const 4096))"#,
    )
    .unwrap();
    assert_eq!(
        load(&e, &no_tick).err().unwrap().to_string(),
        "missing export `tick`: a function () -> ()"
    );
    let typed_tick = wasmer::wat2wasm(
        br#"(module (memory (export "memory") 1)
            (func (export "astroboids_abi") (result i32) i32.const 1)
            (func (export "sensor_ptr") (result i32) i32.const 1024)
            (func (export "command_ptr") (result i32) i32.const 4096)
            (func (export "tick") (param i32)))"#,
    )
    .unwrap();
    assert_eq!(
        load(&e, &typed_tick).err().unwrap().to_string(),
        "export `tick` has type (i32) -> (), expected () -> ()"
    );
    let abi_2 = wasmer::wat2wasm(
        br#"(module (memory (export "memory") 1)
            (func (export "astroboids_abi") (result i32) i32.const 2)
            (func (export "sensor_ptr") (result i32) i32.const 1024)
            (func (export "command_ptr") (result i32) i32.const 4096)
            (func (export "tick")))"#,
    )
    .unwrap();
    assert_eq!(
        load(&e, &abi_2).err().unwrap().to_string(),
        "script speaks ABI version 2; this host supports version 1",
        "refused at load, not at every ship's start"
    );
    let reserved = script(
        r#"(global (export "wasmer_metering_remaining_points") i64 (i64.const 9))"#,
        "",
    );
    assert!(matches!(
        load(&e, &reserved),
        Err(ScriptError::ReservedExport { .. })
    ));
}

#[test]
fn huge_tables_and_memories_are_refused() {
    let e = engine();
    let table = script("(table 1000000 funcref)", "");
    assert_eq!(
        load(&e, &table).err().unwrap().to_string(),
        "table 0 needs 1000000 elements at start; the limit is 10000"
    );
    let big = wasmer::wat2wasm(
        br#"(module (memory (export "memory") 200)
            (func (export "astroboids_abi") (result i32) i32.const 1)
            (func (export "sensor_ptr") (result i32) i32.const 1024)
            (func (export "command_ptr") (result i32) i32.const 4096)
            (func (export "tick")))"#,
    )
    .unwrap();
    assert_eq!(
        load(&e, &big).err().unwrap().to_string(),
        "memory needs 200 pages at start; the limit is 16 pages (1024 KiB)"
    );
    // Segments outside the memory or table the module starts with are refused at load, named.
    let data = script(r#"(data (i32.const 2000000) "x")"#, "");
    assert_eq!(
        load(&e, &data).err().unwrap().to_string(),
        "the module is too complex for this host: data segment 0 writes bytes \
         2000000..2000001 of a memory that starts with 65536 bytes"
    );
    let elements = script("(table 4 funcref) (func $f) (elem (i32.const 3) $f $f)", "");
    assert_eq!(
        load(&e, &elements).err().unwrap().to_string(),
        "the module is too complex for this host: element segment 0 writes elements 3..5 of \
         a table that starts with 4"
    );
    // Offsets are constants: placing a segment by a global's value needs a feature scripts
    // do not get (and imported globals are refused), so the check above sees every offset.
    let by_global = script(
        r#"(global $at i32 (i32.const 2000000)) (data (global.get $at) "x")"#,
        "",
    );
    assert!(matches!(load(&e, &by_global), Err(ScriptError::Invalid(_))));
    // A table whose declared maximum is beyond the limit can never grow there anyway: fine.
    let table_max = script("(table 10 1000000000 funcref)", "");
    let r = load(&e, &table_max);
    assert!(r.is_ok(), "{:?}", r.err());
}

#[test]
fn logging_in_a_tight_loop_is_capped_and_charged() {
    let e = engine();
    // Imports come first in a module, so this one is written out in full.
    let wat = r#"(module
        (import "astroboids" "log" (func $log (param i32 i32)))
        (memory (export "memory") 1 16)
        (data (i32.const 100) "hello")
        (func (export "astroboids_abi") (result i32) i32.const 1)
            (func (export "sensor_ptr") (result i32) i32.const 1024)
            (func (export "command_ptr") (result i32) i32.const 4096)
        (func (export "tick") (loop $l (call $log (i32.const 100) (i32.const 5)) (br $l))))"#;
    let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned();
    let mut ship = instance(&e, &wasm);
    let report = ship.run_tick(1_000_000, 1, &idle());
    assert_eq!(report.fault.map(|f| f.kind), Some(FaultKind::OutOfFuel));
    let limits = ScriptLimits::default();
    assert_eq!(report.logs.len(), limits.log_lines_per_tick as usize);
    assert!(report.logs.iter().all(|l| l == "hello"));
    // Each call costs at least log_fuel, so the budget bounds the number of calls.
    let calls = report.logs.len() as u64 + u64::from(report.logs_dropped);
    assert!(calls <= 1_000_000 / limits.log_fuel, "{calls} calls");
    assert!(report.logs_dropped > 0);
}

#[test]
fn random_is_seeded_by_the_caller() {
    for compiler in [CompilerKind::Cranelift, CompilerKind::Singlepass] {
        random_is_seeded_by_the_caller_with(compiler);
    }
}

fn random_is_seeded_by_the_caller_with(compiler: CompilerKind) {
    let e = ScriptEngine::new(ScriptLimits::default(), compiler);
    let wat = r#"(module
        (import "astroboids" "random" (func $random (result i32)))
        (memory (export "memory") 1 16)
        (func (export "astroboids_abi") (result i32) i32.const 1)
            (func (export "sensor_ptr") (result i32) i32.const 1024)
            (func (export "command_ptr") (result i32) i32.const 4096)
        (func (export "tick")
          (i32.store (i32.const 0) (call $random))
          (i32.store (i32.const 4) (call $random))))"#;
    let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap();
    let mut a = instance(&e, &wasm);
    let mut b = instance(&e, &wasm);
    let draw = |s: &mut ScriptInstance, seed| {
        assert_eq!(s.run_tick(10_000, seed, &idle()).fault, None);
        u64::from_le_bytes(s.memory_snapshot()[..8].try_into().unwrap())
    };
    let (x, y) = (draw(&mut a, 42), draw(&mut b, 42));
    assert_eq!(x, y, "{compiler:?}: same seed, same draws");
    assert_ne!(
        x as u32,
        (x >> 32) as u32,
        "{compiler:?}: consecutive draws differ"
    );
    assert_ne!(
        draw(&mut a, 43),
        x,
        "{compiler:?}: another seed, other draws"
    );
}

#[test]
fn the_same_bytes_compile_once() {
    let e = engine();
    let a = load(&e, &counter()).unwrap();
    let b = load(&e, &counter()).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(e.cached(), 1);
    load(&e, &script("", "nop")).unwrap();
    assert_eq!(e.cached(), 2);
}

#[test]
fn cranelift_and_singlepass_meter_the_same() {
    let mut fuel = Vec::new();
    for compiler in [CompilerKind::Singlepass, CompilerKind::Cranelift] {
        let e = ScriptEngine::new(ScriptLimits::default(), compiler);
        let mut good = instance(&e, &counter());
        fuel.push(good.run_tick(10_000, 1, &idle()).fuel_used);
    }
    assert_eq!(
        fuel[0], fuel[1],
        "fuel is counted in wasm instructions, not machine code"
    );
}

#[test]
fn the_cache_drops_unused_scripts_when_full() {
    let e = ScriptEngine::new(
        ScriptLimits {
            max_cached_scripts: 2,
            ..ScriptLimits::default()
        },
        CompilerKind::Singlepass,
    );
    let kept = load(&e, &counter()).unwrap();
    load(&e, &script("", "nop")).unwrap();
    load(&e, &script("", "nop nop")).unwrap();
    // The unused `nop` script was dropped; the one still referenced stays cached.
    assert_eq!(e.cached(), 2);
    assert!(Arc::ptr_eq(&kept, &load(&e, &counter()).unwrap()));
}

#[test]
fn garbage_commands_are_clamped_and_flags_masked() {
    let e = engine();
    // thrust NaN, turn -1e30, every flag bit set: sanitized on the way out.
    let garbage = "(f32.store (i32.const 4096) (f32.const nan))
                   (f32.store (i32.const 4100) (f32.const -1e30))
                   (i32.store (i32.const 4104) (i32.const -1))
                   (i32.store (i32.const 4108) (i32.const -1))";
    let mut ship = instance(&e, &script("", garbage));
    let report = ship.run_tick(10_000, 1, &idle());
    assert_eq!(
        report.command,
        Some(ScriptCommand {
            thrust: 0.0,
            turn: -1.0,
            mine: true,
            stop: true
        })
    );
    assert_eq!(FLAG_MINE | FLAG_STOP, 3);
}

#[test]
fn the_script_reads_its_sensors_and_its_command_block_is_cleared_each_tick() {
    let e = engine();
    // Thrust = the hull field of the sensor block (offset 44), but only on the first tick
    // (memory word 0 counts ticks): afterwards the script writes nothing and must idle.
    let tick = "(if (i32.eqz (i32.load (i32.const 0)))
                  (then (f32.store (i32.const 4096) (f32.load (i32.const 1068)))))
                (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))";
    let mut ship = instance(&e, &script("", tick));
    let sensors = SensorSnapshot {
        hull: 0.75,
        ..SensorSnapshot::default()
    };
    let first = ship.run_tick(10_000, 1, &sensors);
    assert_eq!(first.command.map(|c| c.thrust), Some(0.75));
    let second = ship.run_tick(10_000, 1, &sensors);
    assert_eq!(second.command, Some(ScriptCommand::default()));
}

#[test]
fn a_faulting_tick_has_no_command() {
    let e = engine();
    let wasm = script("", "(f32.store (i32.const 4096) (f32.const 1)) unreachable");
    let mut ship = instance(&e, &wasm);
    let report = ship.run_tick(10_000, 1, &idle());
    assert!(report.fault.is_some());
    assert_eq!(report.command, None);
}

#[test]
fn misplaced_blocks_are_refused_at_load() {
    let e = engine();
    let with_ptrs = |sensor: i64, command: i64| {
        let wat = format!(
            r#"(module
                (memory (export "memory") 1 16)
                (func (export "astroboids_abi") (result i32) i32.const 1)
                (func (export "sensor_ptr") (result i32) i32.const {sensor})
                (func (export "command_ptr") (result i32) i32.const {command})
                (func (export "tick")))"#
        );
        let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned();
        load(&e, &wasm).err().map(|err| err.to_string())
    };
    assert_eq!(with_ptrs(0, 2000), None, "adjacent blocks are fine");
    assert_eq!(
        with_ptrs(65_000, 0).unwrap(),
        "sensor_ptr() returned 65000: its 1344-byte block must lie inside the memory the \
         script starts with (65536 bytes)"
    );
    assert_eq!(
        with_ptrs(0, -1).unwrap(),
        "command_ptr() returned 4294967295: its 16-byte block must lie inside the memory the \
         script starts with (65536 bytes)"
    );
    assert_eq!(
        with_ptrs(100, 1000).unwrap(),
        "the sensor block at 100 (1344 bytes) overlaps the command block at 1000 (16 bytes)"
    );
    let no_sensors = wasmer::wat2wasm(
        br#"(module (memory (export "memory") 1)
            (func (export "astroboids_abi") (result i32) i32.const 1)
            (func (export "tick"))
            (func (export "command_ptr") (result i32) i32.const 0))"#,
    )
    .unwrap();
    assert_eq!(
        load(&e, &no_sensors).err().unwrap().to_string(),
        "missing export `sensor_ptr`: a function () -> (i32)"
    );
}

#[test]
fn state_covers_memory_and_mutable_globals() {
    let e = engine();
    // Counts ticks in a global only: memory never changes.
    let wasm = script(
        "(global $ticks (mut i64) (i64.const 0)) (global $fixed i32 (i32.const 5))",
        "(global.set $ticks (i64.add (global.get $ticks) (i64.const 1)))",
    );
    let mut a = instance(&e, &wasm);
    let mut b = instance(&e, &wasm);
    assert_eq!(
        a.state_digest(),
        b.state_digest(),
        "same script, same start"
    );
    let memory_before = a.state().memory;
    a.run_tick(10_000, 1, &idle());
    let state = a.state();
    assert_eq!(state.memory, memory_before);
    assert_eq!(state.globals, vec![1], "one mutable global, after one tick");
    assert_ne!(a.state_digest(), b.state_digest(), "the global is state");
    b.run_tick(10_000, 1, &idle());
    assert_eq!(a.state_digest(), b.state_digest());
}
