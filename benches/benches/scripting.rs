//! Script host costs: overhead of one ship-tick with an empty `tick` (sensor block written,
//! command block read back), compile time per module
//! and cache-hit time, and run speed of a compute-heavy tick, for singlepass and cranelift.

use criterion::{Criterion, criterion_group, criterion_main};

use astroboids_scripting::blocks::{ContactKind, SensedContact, SensorSnapshot};
use astroboids_scripting::{CompilerKind, ScriptEngine, ScriptInstance, ScriptLimits};

const COMPILERS: [(CompilerKind, &str); 2] = [
    (CompilerKind::Singlepass, "singlepass"),
    (CompilerKind::Cranelift, "cranelift"),
];

fn module(tick_body: &str, extra_functions: usize) -> Vec<u8> {
    // Extra functions give the compiler something to chew on, like a real script would.
    let extras: String = (0..extra_functions)
        .map(|i| {
            format!(
                "(func $f{i} (param i32) (result i32)
                   (local i32)
                   (local.set 1 (i32.mul (local.get 0) (i32.const {i})))
                   (if (result i32) (i32.gt_s (local.get 1) (i32.const 100))
                     (then (i32.sub (local.get 1) (i32.const 7)))
                     (else (i32.add (local.get 1) (i32.const 3)))))\n"
            )
        })
        .collect();
    let wat = format!(
        r#"(module
            (memory (export "memory") 1 16)
            {extras}
            (func (export "astroboids_abi") (result i32) i32.const 1)
            (func (export "sensor_ptr") (result i32) i32.const 1024)
            (func (export "command_ptr") (result i32) i32.const 4096)
            (func (export "tick") {tick_body}))"#
    );
    wasmer::wat2wasm(wat.as_bytes())
        .expect("valid WAT")
        .into_owned()
}

/// 10,000 iterations of a little integer and float arithmetic, kept in memory.
const BUSY_TICK: &str = "(local $i i32) (local $acc f64)
    (loop $l
      (local.set $acc (f64.add (local.get $acc) (f64.convert_i32_s (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_s (local.get $i) (i32.const 10000))))
    (f64.store (i32.const 0) (local.get $acc))";

/// A ship seeing eight asteroids: what a typical tick writes into the sensor block.
fn typical_sensors() -> SensorSnapshot {
    SensorSnapshot {
        tick: 1_000,
        ship: 7,
        hull: 100.0,
        energy: 80.0,
        sensor_range: 200.0,
        contacts: (0..8)
            .map(|i| SensedContact {
                kind: ContactKind::Asteroid,
                id: 42,
                index: i,
                dx: i as f32 * 10.0,
                dy: 5.0,
                vx: 0.0,
                vy: 0.0,
                distance: i as f32 * 11.0,
                radius: 8.0,
            })
            .collect(),
        ..SensorSnapshot::default()
    }
}

fn scripting(c: &mut Criterion) {
    let mut group = c.benchmark_group("script");
    let medium = module("", 200);
    for (kind, name) in COMPILERS {
        group.bench_function(format!("compile_200_functions/{name}"), |b| {
            b.iter(|| {
                // A fresh engine each time: nothing cached.
                let engine = ScriptEngine::new(ScriptLimits::default(), kind);
                engine.load(&medium).expect("loads")
            })
        });
    }
    let warm = ScriptEngine::new(ScriptLimits::default(), CompilerKind::Singlepass);
    warm.load(&medium).expect("loads");
    group.bench_function("cache_hit_200_functions", |b| {
        b.iter(|| warm.load(&medium).expect("cached"))
    });

    let sensors = typical_sensors();
    let empty = module("", 0);
    let busy = module(BUSY_TICK, 0);
    for (kind, name) in COMPILERS {
        let engine = ScriptEngine::new(ScriptLimits::default(), kind);
        let mut ship = ScriptInstance::new(&engine.load(&empty).unwrap(), 1).unwrap();
        group.bench_function(format!("empty_tick/{name}"), |b| {
            b.iter(|| ship.run_tick(10_000, 1, &sensors))
        });
        let mut ship = ScriptInstance::new(&engine.load(&busy).unwrap(), 1).unwrap();
        group.bench_function(format!("busy_tick_10k_iterations/{name}"), |b| {
            b.iter(|| {
                let report = ship.run_tick(1_000_000, 1, &sensors);
                assert!(report.fault.is_none());
                report.fuel_used
            })
        });
    }
    group.finish();
}

criterion_group!(benches, scripting);
criterion_main!(benches);
