//! Script instances on worker threads: results do not depend on the worker count, a faulting
//! ship does not disturb the others, and misuse is refused with a clear error.

use astroboids_scripting::blocks::SensorSnapshot;
use astroboids_scripting::{
    CompilerKind, FaultKind, RunReport, ScriptEngine, ScriptInstance, ScriptJob, ScriptLimits,
    ScriptResult, ScriptWorkers, ShipSlice, WorkerError,
};
use astroboids_test_kit::wasm;

/// Bumps a counter at 8 and sets thrust to ((sensed cargo + counter) ^ random) % 256 / 256:
/// the command depends on the sensors, the persistent memory and the random stream.
const ECHO: &str = r#"(module
    (import "astroboids" "random" (func $random (result i32)))
    (memory (export "memory") 1 16)
    (func (export "astroboids_abi") (result i32) i32.const 1)
    (func (export "sensor_ptr") (result i32) i32.const 1024)
    (func (export "command_ptr") (result i32) i32.const 4096)
    (func (export "tick")
      (i32.store (i32.const 8) (i32.add (i32.load (i32.const 8)) (i32.const 1)))
      (f32.store (i32.const 4096)
        (f32.div
          (f32.convert_i32_u
            (i32.and
              (i32.xor
                (i32.add (i32.load (i32.const 1076)) (i32.load (i32.const 8)))
                (call $random))
              (i32.const 255)))
          (f32.const 256)))))"#;

const SPIN: &str = r#"(module
    (memory (export "memory") 1 16)
    (func (export "astroboids_abi") (result i32) i32.const 1)
    (func (export "sensor_ptr") (result i32) i32.const 1024)
    (func (export "command_ptr") (result i32) i32.const 4096)
    (func (export "tick") (loop $l (br $l))))"#;

fn job(ship: u64, tick: u64) -> ScriptJob {
    ScriptJob {
        ship,
        budget: 10_000,
        random_seed: ship * 1_000 + tick,
        sensors: SensorSnapshot {
            ship,
            tick,
            cargo: ship as u32 * 3,
            ..SensorSnapshot::default()
        },
    }
}

/// 12 ships, one of them spinning, 5 ticks; every tick's results.
fn run_fleet(workers: usize) -> Vec<Vec<ScriptResult>> {
    let engine = ScriptEngine::new(ScriptLimits::default(), CompilerKind::Singlepass);
    let echo = engine.load(&wasm(ECHO)).unwrap();
    let spin = engine.load(&wasm(SPIN)).unwrap();
    let mut pool = ScriptWorkers::new(workers);
    for ship in 1..=12u64 {
        let script = if ship == 7 { &spin } else { &echo };
        pool.attach(ship, script, ship).unwrap();
    }
    (0..5)
        .map(|tick| {
            // Submitted in reverse to show that results come back in ship order anyway.
            let jobs = (1..=12u64).rev().map(|ship| job(ship, tick)).collect();
            pool.run(jobs).unwrap()
        })
        .collect()
}

#[test]
fn results_do_not_depend_on_the_number_of_workers() {
    // The reports; each run's wall time is measured, so it differs.
    let reports = |results: Vec<Vec<ScriptResult>>| -> Vec<Vec<(u64, RunReport)>> {
        results
            .into_iter()
            .map(|tick| tick.into_iter().map(|r| (r.ship, r.report)).collect())
            .collect()
    };
    let one = run_fleet(1);
    assert_eq!(reports(one.clone()), reports(run_fleet(2)));
    assert_eq!(reports(one.clone()), reports(run_fleet(3)));
    for tick in &one {
        let ships: Vec<u64> = tick.iter().map(|r| r.ship).collect();
        assert_eq!(ships, (1..=12).collect::<Vec<_>>());
    }
}

#[test]
fn a_spinning_ship_faults_alone_and_state_persists_for_the_others() {
    let ticks = run_fleet(2);
    for (t, results) in ticks.iter().enumerate() {
        for r in results {
            if r.ship == 7 {
                assert_eq!(
                    r.report.fault.as_ref().map(|f| f.kind),
                    Some(FaultKind::OutOfFuel)
                );
                assert_eq!(
                    r.report.command, None,
                    "a faulted run's commands are discarded"
                );
            } else {
                assert_eq!(r.report.fault, None, "ship {} tick {t}", r.ship);
                assert!(r.report.command.is_some());
            }
        }
    }
    // The counter at address 8 advanced once per tick, so outputs differ between ticks.
    let ship1: Vec<_> = ticks.iter().map(|t| t[0].report.command).collect();
    assert!(ship1.windows(2).all(|w| w[0] != w[1]));
}

#[test]
fn state_snapshots_and_digests_show_persistent_state() {
    let engine = ScriptEngine::new(ScriptLimits::default(), CompilerKind::Singlepass);
    let echo = engine.load(&wasm(ECHO)).unwrap();
    let mut pool = ScriptWorkers::new(2);
    pool.attach(4, &echo, 1).unwrap();
    for tick in 0..3 {
        pool.run(vec![job(4, tick)]).unwrap();
    }
    let state = pool.state(4).unwrap();
    assert_eq!(&state.memory.to_vec()[8..12], &3u32.to_le_bytes());
    pool.attach(9, &echo, 1).unwrap();
    let digests = pool.state_digests();
    assert_eq!(digests.iter().map(|d| d.0).collect::<Vec<_>>(), [4, 9]);
    assert_ne!(
        digests[0].1, digests[1].1,
        "ship 4 ran three ticks, ship 9 none"
    );
    pool.detach(4).unwrap();
    assert_eq!(pool.state(4), Err(WorkerError::NotAttached(4)));
    assert_eq!(pool.state_digests().len(), 1);
}

#[test]
fn states_asked_for_later_are_those_of_the_moment_they_were_asked() {
    let engine = ScriptEngine::new(ScriptLimits::default(), CompilerKind::Singlepass);
    let echo = engine.load(&wasm(ECHO)).unwrap();
    let mut pool = ScriptWorkers::new(2);
    for ship in [3, 4, 5] {
        pool.attach(ship, &echo, 1).unwrap();
    }
    let counter = |state: &astroboids_scripting::InstanceState| {
        u32::from_le_bytes(state.memory.to_vec()[8..12].try_into().unwrap())
    };
    pool.run(vec![job(3, 0), job(4, 0), job(5, 0)]).unwrap();
    // Ship 9 has no instance: it is left out, not an error.
    let pending = pool.states_later(&[3, 5, 9]);
    for tick in 1..4 {
        pool.run(vec![job(3, tick), job(4, tick), job(5, tick)])
            .unwrap();
    }
    let states = pending.wait();
    assert_eq!(states.iter().map(|s| s.0).collect::<Vec<_>>(), [3, 5]);
    assert!(
        states.iter().all(|(_, state)| counter(state) == 1),
        "one run before the ask, three after it"
    );
    assert_eq!(counter(&pool.state(3).unwrap()), 4);
}

/// Two pools with one history, one taking every state right after its runs: the states and
/// digests asked for afterwards are the same, also for ships started, restored or dropped
/// since those runs, and for runs since that kept nothing.
#[test]
fn states_kept_after_runs_are_always_the_instances_current_ones() {
    let engine = ScriptEngine::new(ScriptLimits::default(), CompilerKind::Singlepass);
    let echo = engine.load(&wasm(ECHO)).unwrap();
    let counter = |state: &astroboids_scripting::InstanceState| {
        u32::from_le_bytes(state.memory.to_vec()[8..12].try_into().unwrap())
    };
    let mut keeping = ScriptWorkers::new(2);
    let mut plain = ScriptWorkers::new(2);
    let all: Vec<u64> = (1..=6).collect();
    let mut pools = [&mut keeping, &mut plain];
    for pool in &mut pools {
        for &ship in &all {
            pool.attach(ship, &echo, ship).unwrap();
        }
        pool.run(all.iter().map(|&s| job(s, 0)).collect()).unwrap();
    }
    // Ship 6 sits the tick out.
    let tick_1: Vec<ScriptJob> = (1..=5).map(|s| job(s, 1)).collect();
    keeping.run_keeping_states(tick_1.clone()).unwrap();
    plain.run(tick_1).unwrap();
    let ship_1 = plain.state(1).unwrap();
    for pool in [&mut keeping, &mut plain] {
        // Started again, restored from another ship's state, dropped.
        pool.detach(2).unwrap();
        pool.attach(2, &echo, 2).unwrap();
        pool.detach(3).unwrap();
        pool.restore(3, &echo, ship_1.clone()).unwrap();
        pool.detach(4).unwrap();
    }
    assert_eq!(keeping.state_digests(), plain.state_digests());
    let states = keeping.states_later(&all).wait();
    assert_eq!(states, plain.states_later(&all).wait());
    let counters: Vec<(u64, u32)> = states.iter().map(|(s, st)| (*s, counter(st))).collect();
    assert_eq!(
        counters,
        [(1, 2), (2, 0), (3, 2), (5, 2), (6, 1)],
        "two runs, a fresh start, ship 1's state, two runs, one run"
    );

    // Runs that keep nothing replace what earlier runs kept; warming image buffers after
    // runs changes no result, state or digest.
    let ticks = |tick| (1..=6).filter(|s| *s != 4).map(move |s| job(s, tick));
    keeping.run_keeping_states(ticks(2).collect()).unwrap();
    let slice = ShipSlice { index: 1, count: 2 };
    let reports = |results: Vec<ScriptResult>| -> Vec<(u64, RunReport)> {
        results.into_iter().map(|r| (r.ship, r.report)).collect()
    };
    let warmed = keeping.run_warming_image_buffers(ticks(3).collect(), slice);
    plain.run(ticks(2).collect()).unwrap();
    let unwarmed = plain.run(ticks(3).collect()).unwrap();
    assert_eq!(reports(warmed.unwrap()), reports(unwarmed));
    assert_eq!(keeping.state_digests(), plain.state_digests());
    let states = keeping.states_later(&all).wait();
    assert_eq!(states, plain.states_later(&all).wait());
    assert_eq!(counter(&states[0].1), 4, "ship 1 after four runs");
}

#[test]
fn misuse_is_refused_with_clear_errors() {
    let engine = ScriptEngine::new(ScriptLimits::default(), CompilerKind::Singlepass);
    let echo = engine.load(&wasm(ECHO)).unwrap();
    let mut pool = ScriptWorkers::new(2);
    pool.attach(1, &echo, 1).unwrap();
    assert_eq!(
        pool.attach(1, &echo, 1).unwrap_err().to_string(),
        "ship 1 already has a script"
    );
    assert_eq!(
        pool.run(vec![job(2, 0)]).unwrap_err().to_string(),
        "ship 2 has no script"
    );
    assert_eq!(
        pool.run(vec![job(1, 0), job(1, 0)])
            .unwrap_err()
            .to_string(),
        "ship 1 is listed twice in one tick"
    );
    assert_eq!(
        pool.detach(3).unwrap_err().to_string(),
        "ship 3 has no script"
    );
}

#[test]
fn a_fleet_starts_in_one_batch_and_failures_stay_with_their_ship() {
    let engine = ScriptEngine::new(ScriptLimits::default(), CompilerKind::Singlepass);
    let echo = engine.load(&wasm(ECHO)).unwrap();
    // A start that traps for half the random seeds: the one that passes the trial start at
    // load, then a seed it fails with.
    let bad_start = (0..2)
        .find_map(|bit| {
            engine
                .load(&wasm(&format!(
                    r#"(module
                    (import "astroboids" "random" (func $random (result i32)))
                    (memory (export "memory") 1 16)
                    (func $start (if (i32.eq (i32.and (call $random) (i32.const 1)) (i32.const {bit}))
                        (then unreachable)))
                    (start $start)
                    (func (export "astroboids_abi") (result i32) i32.const 1)
                    (func (export "sensor_ptr") (result i32) i32.const 1024)
                    (func (export "command_ptr") (result i32) i32.const 4096)
                    (func (export "tick")))"#
                )))
                .ok()
        })
        .expect("one parity passes the trial");
    let failing_seed = (0..64)
        .find(|&seed| ScriptInstance::new(&bad_start, seed).is_err())
        .expect("some seed fails");
    let mut pool = ScriptWorkers::new(2);
    pool.attach(2, &echo, 1).unwrap();
    // Out of order, with a failing start, an already attached ship and a duplicate.
    let starts = vec![
        (5, echo.clone(), 5),
        (3, bad_start.clone(), failing_seed),
        (1, echo.clone(), 1),
        (2, echo.clone(), 2),
        (5, echo.clone(), 5),
        (4, echo.clone(), 4),
    ];
    let results = pool.attach_many(starts);
    let ships: Vec<u64> = results.iter().map(|r| r.0).collect();
    assert_eq!(ships, [1, 2, 3, 4, 5, 5]);
    let ok: Vec<bool> = results.iter().map(|r| r.1.is_ok()).collect();
    assert_eq!(ok.iter().filter(|&&b| b).count(), 3, "{results:?}");
    assert!(matches!(
        results[2].1,
        Err(WorkerError::Script(
            astroboids_scripting::ScriptError::Start(_)
        ))
    ));
    assert_eq!(results[1].1, Err(WorkerError::AlreadyAttached(2)));
    assert_eq!(pool.attached().collect::<Vec<_>>(), [1, 2, 4, 5]);
    let ran = pool.run((1..=5).filter(|s| *s != 3).map(|s| job(s, 0)).collect());
    assert!(ran.unwrap().iter().all(|r| r.report.fault.is_none()));
}

/// Draws a random number in its start function and keeps it (memory at 16, a mutable global),
/// so its state shows which seed it started with.
const SEEDED_START: &str = r#"(module
    (import "astroboids" "random" (func $random (result i32)))
    (memory (export "memory") 1 16)
    (global $drawn (mut i32) (i32.const 0))
    (func $start
      (global.set $drawn (call $random))
      (i32.store (i32.const 16) (i32.add (global.get $drawn) (i32.const 1))))
    (start $start)
    (func (export "astroboids_abi") (result i32) i32.const 1)
    (func (export "sensor_ptr") (result i32) i32.const 1024)
    (func (export "command_ptr") (result i32) i32.const 4096)
    (func (export "tick")
      (i32.store (i32.const 20) (i32.add (i32.load (i32.const 20)) (global.get $drawn)))))"#;

#[test]
fn prepared_instances_start_exactly_like_fresh_ones_and_only_for_their_script() {
    let engine = ScriptEngine::new(ScriptLimits::default(), CompilerKind::Singlepass);
    let seeded = engine.load(&wasm(SEEDED_START)).unwrap();
    let echo = engine.load(&wasm(ECHO)).unwrap();
    let starts: Vec<_> = (1..=6u64)
        .map(|ship| (ship, seeded.clone(), ship * 7_919))
        .collect();

    let mut fresh = ScriptWorkers::new(2);
    let fresh_logs = fresh.attach_many(starts.clone());

    let mut prepared = ScriptWorkers::new(2);
    for ship in 1..=6u64 {
        // Ship 3 is prepared for another script than the one it starts with.
        let script = if ship == 3 { &echo } else { &seeded };
        prepared.prepare(ship, script);
    }
    prepared.settle();
    let prepared_logs = prepared.attach_many(starts);

    assert_eq!(fresh_logs, prepared_logs);
    for ship in 1..=6u64 {
        let (a, b) = (fresh.state(ship).unwrap(), prepared.state(ship).unwrap());
        assert_eq!(a, b, "ship {ship}: the same state after its start");
    }
    let seeds_differ = fresh.state(1).unwrap() != fresh.state(2).unwrap();
    assert!(seeds_differ, "each start drew from its own seed");
    for tick in 0..3 {
        let jobs: Vec<ScriptJob> = (1..=6).map(|ship| job(ship, tick)).collect();
        let (a, b) = (fresh.run(jobs.clone()), prepared.run(jobs));
        assert_eq!(strip_wall_time(a.unwrap()), strip_wall_time(b.unwrap()));
    }
}

fn strip_wall_time(results: Vec<ScriptResult>) -> Vec<(u64, RunReport)> {
    results.into_iter().map(|r| (r.ship, r.report)).collect()
}

#[test]
fn prepared_instances_are_forgotten_once_their_ships_stop_waiting() {
    let engine = ScriptEngine::new(ScriptLimits::default(), CompilerKind::Singlepass);
    let echo = engine.load(&wasm(ECHO)).unwrap();
    let mut pool = ScriptWorkers::new(2);
    assert!(!pool.has_prepared());
    for ship in 1..=4u64 {
        pool.prepare(ship, &echo);
    }
    // Ships 1 and 4 were destroyed before starting.
    pool.forget_prepared_except(&[2, 3]);
    assert!(pool.has_prepared(), "2 and 3 still wait");
    let started = pool.attach_many(vec![(2, echo.clone(), 2), (3, echo.clone(), 3)]);
    assert!(started.iter().all(|(_, r)| r.is_ok()), "{started:?}");
    assert!(!pool.has_prepared(), "started ships no longer wait");
    // A ship whose prepared instance was forgotten still starts, from scratch.
    let started = pool.attach_many(vec![(1, echo.clone(), 1)]);
    assert!(started[0].1.is_ok(), "{started:?}");
    assert_eq!(pool.attached().collect::<Vec<_>>(), [1, 2, 3]);
}
