//! World checkpoints at 10k ships (1,000 of them scripted, one 64 KiB page of script memory
//! each): the capture's part on the tick thread (`capture_later`: the script workers take the
//! script states meanwhile), the full and the quick state hash, the whole capture, capture +
//! encode, and decode + restore (including recompiling the script and re-instantiating every
//! script); then what a persistent world does around them: zstd compression, and storing the compressed checkpoint
//! in sled with a flush. The encoded and compressed sizes are printed once.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use astroboids_host::compress;
use astroboids_sim::checkpoint;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::scripts::{add_script, assign_script};
use astroboids_sim::spawn::spawn_fleet;
use astroboids_sim::{SimOptions, build_simulation};
use astroboids_storage::{StoreLimits, WorldStore};

const SHIPS: u32 = 10_000;
const SCRIPTED: usize = 1_000;

/// Counts ticks in memory and flies straight.
const SCRIPT: &str = r#"(module
    (memory (export "memory") 1 16)
    (func (export "astroboids_abi") (result i32) i32.const 1)
    (func (export "sensor_ptr") (result i32) i32.const 1024)
    (func (export "command_ptr") (result i32) i32.const 4096)
    (func (export "tick")
      (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
      (f32.store (i32.const 4096) (f32.const 0.5))))"#;

fn checkpoints(c: &mut Criterion) {
    let mut sim = build_simulation(UniverseConfig::default(), 1);
    let ids = spawn_fleet(sim.world_mut(), SHIPS).expect("fleet");
    let wasm = wasmer::wat2wasm(SCRIPT.as_bytes()).expect("valid WAT");
    let script = add_script(sim.world_mut(), &wasm).expect("valid script");
    for &ship in &ids[..SCRIPTED] {
        assign_script(sim.world_mut(), ship, script).expect("assign");
    }
    sim.run_ticks(30);
    let bytes = checkpoint::encode(&checkpoint::capture(&mut sim));
    eprintln!(
        "checkpoint of {SHIPS} ships ({SCRIPTED} scripted): {} bytes",
        bytes.len()
    );

    let mut group = c.benchmark_group("checkpoint");
    group.sample_size(10);
    // What a persistent world's tick thread does at a checkpoint tick (the script states are
    // the workers', collected by the checkpoint writer, on their own threads). Collected here
    // untimed, so the next capture does not queue behind them.
    group.bench_function("capture_tick_thread_10k_ships", |b| {
        b.iter_custom(|iterations| {
            let mut tick_thread = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                let pending = checkpoint::capture_later(&mut sim);
                tick_thread += started.elapsed();
                std::hint::black_box(pending.finish());
            }
            tick_thread
        })
    });
    // What every checkpoint tick of a cluster adds to its shards: the full state hash, which
    // digests every script's memory and globals on the workers, beside the quick hash (every
    // other tick's).
    group.bench_function("state_hash_10k_ships", |b| {
        b.iter(|| sim.state_hash().total)
    });
    group.bench_function("quick_state_hash_10k_ships", |b| {
        b.iter(|| sim.quick_state_hash().total)
    });
    // The whole capture, script states included.
    group.bench_function("capture_10k_ships", |b| {
        b.iter(|| checkpoint::capture(&mut sim).ships.len())
    });
    group.bench_function("capture_encode_10k_ships", |b| {
        b.iter(|| checkpoint::encode(&checkpoint::capture(&mut sim)).len())
    });
    group.bench_function("decode_restore_10k_ships", |b| {
        b.iter(|| {
            let saved = checkpoint::decode(&bytes).expect("decodes");
            checkpoint::restore(UniverseConfig::default(), &saved, SimOptions::default())
                .expect("restores")
                .tick()
        })
    });
    let packed = compress::pack(&bytes, compress::CHECKPOINT_LEVEL);
    eprintln!(
        "compressed (zstd level {}): {} bytes",
        compress::CHECKPOINT_LEVEL,
        packed.len()
    );
    group.bench_function("compress_10k_ships", |b| {
        b.iter(|| compress::pack(&bytes, compress::CHECKPOINT_LEVEL).len())
    });
    group.bench_function("decompress_10k_ships", |b| {
        b.iter(|| compress::unpack(&packed, 1 << 30).expect("unpacks").len())
    });
    let dir = std::env::temp_dir().join(format!("astroboids-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = WorldStore::open(&dir, StoreLimits::default()).expect("store");
    let mut tick = 0;
    group.bench_function("store_and_flush_10k_ships", |b| {
        b.iter(|| {
            tick += 100;
            store.put_checkpoint(tick, &packed).expect("stored");
            store.flush().expect("flushed");
            store.prune_through(tick).expect("pruned");
        })
    });
    group.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, checkpoints);
criterion_main!(benches);
