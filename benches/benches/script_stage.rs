//! The script stage's cost per ship at fleet scale, on one worker thread: a dense scene where
//! every ship senses 32 contacts, each ship's job run through `ScriptWorkers` (the sensor block
//! encoded and written, fuel set, `tick` called on its own instance, the command read back,
//! the result returned in ship order), as the tick runs them.
//!
//! - `empty/N`: a `tick` that does nothing: everything here is overhead (the goal is at most
//!   0.5 us per ship at 10k ships).
//! - `nearest_asteroid/N`: scans all 32 contacts for the nearest asteroid and steers at it,
//!   the bot the isolated-vm comparison runs (`benches/isolated-vm/`).
//!
//! Divide a figure by N for the cost per ship-tick. Instances are spread over memory as a real
//! fleet's are, so the cache misses of touching 10,000 instances are in the figure.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

use astroboids_scripting::blocks::{ContactKind, MAX_CONTACTS, SensedContact, SensorSnapshot};
use astroboids_scripting::{CompilerKind, ScriptEngine, ScriptJob, ScriptLimits, ScriptWorkers};

const BLOCKS: &str = r#"
    (memory (export "memory") 1 1)
    (func (export "astroboids_abi") (result i32) i32.const 1)
    (func (export "sensor_ptr") (result i32) i32.const 1024)
    (func (export "command_ptr") (result i32) i32.const 4096)"#;

/// The nearest asteroid among the contacts (count at sensor offset 60, contacts of 40 bytes
/// from offset 64: kind at +0, dx/dy at +16/+20, distance at +32): full thrust, turn towards it.
const NEAREST_ASTEROID_TICK: &str = r#"
    (func (export "tick")
      (local $i i32) (local $n i32) (local $at i32) (local $found i32)
      (local $best f32) (local $bx f32) (local $by f32)
      (local.set $n (i32.load (i32.const 1084)))
      (local.set $best (f32.const inf))
      (block $done
        (loop $scan
          (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (local.set $at (i32.add (i32.const 1088) (i32.mul (local.get $i) (i32.const 40))))
          (if (i32.eq (i32.load (local.get $at)) (i32.const 2))
            (then
              (if (f32.lt (f32.load offset=32 (local.get $at)) (local.get $best))
                (then
                  (local.set $best (f32.load offset=32 (local.get $at)))
                  (local.set $bx (f32.load offset=16 (local.get $at)))
                  (local.set $by (f32.load offset=20 (local.get $at)))
                  (local.set $found (i32.const 1))))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $scan)))
      (if (local.get $found)
        (then
          (f32.store (i32.const 4096) (f32.const 1))
          (f32.store (i32.const 4100)
            (f32.div (local.get $by) (f32.add (f32.abs (local.get $bx)) (f32.const 1)))))))"#;

fn module(tick: &str) -> Vec<u8> {
    let wat = format!("(module {BLOCKS} {tick})");
    wasmer::wat2wasm(wat.as_bytes())
        .expect("valid WAT")
        .into_owned()
}

/// 32 contacts, half ships and half asteroids, at distances that differ per ship.
fn dense_sensors(ship: u64) -> SensorSnapshot {
    let contacts = (0..MAX_CONTACTS as u64)
        .map(|i| {
            let distance = 5.0 + ((ship * 7 + i * 13) % 97) as f32;
            SensedContact {
                kind: if i % 2 == 0 {
                    ContactKind::Ship
                } else {
                    ContactKind::Asteroid
                },
                id: ship * 100 + i,
                index: i as u32,
                dx: distance * 0.6,
                dy: distance * 0.8,
                vx: 1.0,
                vy: -1.0,
                distance,
                radius: 4.0,
            }
        })
        .collect();
    SensorSnapshot {
        tick: 1,
        ship,
        x: 100.0,
        y: 200.0,
        heading: 0.5,
        hull: 100.0,
        energy: 100.0,
        sensor_range: 150.0,
        contacts,
        ..SensorSnapshot::default()
    }
}

fn script_stage(c: &mut Criterion) {
    let engine = ScriptEngine::new(ScriptLimits::default(), CompilerKind::Cranelift);
    let mut group = c.benchmark_group("script_stage");
    group.sample_size(10);
    for (name, tick) in [
        ("empty", r#"(func (export "tick"))"#),
        ("nearest_asteroid", NEAREST_ASTEROID_TICK),
    ] {
        let script = engine.load(&module(tick)).expect("bench script loads");
        for ships in [1_000u64, 10_000] {
            let mut workers = ScriptWorkers::new(1);
            for ship in 1..=ships {
                workers.attach(ship, &script, ship).expect("attach");
            }
            let jobs: Vec<ScriptJob> = (1..=ships)
                .map(|ship| ScriptJob {
                    ship,
                    budget: 100_000,
                    random_seed: ship,
                    sensors: dense_sensors(ship),
                })
                .collect();
            if ships == 1_000 {
                let results = workers.run(jobs.clone()).expect("runs");
                let fuel: u64 = results.iter().map(|r| r.report.fuel_used).sum();
                eprintln!("{name}: {} fuel per run", fuel / ships);
            }
            group.bench_function(format!("{name}/{ships}"), |b| {
                b.iter_batched(
                    || jobs.clone(),
                    |jobs| workers.run(jobs).expect("runs"),
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, script_stage);
criterion_main!(benches);
