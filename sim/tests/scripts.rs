//! Player scripts in the tick: ships do what their scripts say, faults stay with their ship and
//! back off, and the state hash (instance memory and globals included) does not depend on the
//! number of script workers.

mod common;

use astroboids_engine::{NetId, Simulation};
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::scripts::{
    InstanceStatus, ScriptFaultKind, ScriptFaults, ScriptHost, ScriptId, ScriptLibrary, ScriptLog,
    ScriptRuntime, ScriptTickReport, SlowScripts, add_script, assign_script,
};
use astroboids_sim::ships::{ShipCommand, ShipIndex, Velocity};
use common::{fleet_world, script, totals, with_threads};

/// Full thrust, a random turn, mining on; counts ticks in memory and sums random draws in a
/// global; remembers the contact count and sensor range it saw.
fn wanderer() -> Vec<u8> {
    script(
        "(global $draws (mut i64) (i64.const 0))",
        "(i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
         (global.set $draws (i64.add (global.get $draws) (i64.extend_i32_u (call $random))))
         (i32.store (i32.const 8) (i32.load (i32.const 1084)))
         (f32.store (i32.const 12) (f32.load (i32.const 1080)))
         (f32.store (i32.const 4096) (f32.const 1))
         (f32.store (i32.const 4100)
           (f32.sub
             (f32.div (f32.convert_i32_u (i32.and (call $random) (i32.const 255))) (f32.const 128))
             (f32.const 1)))
         (i32.store (i32.const 4104) (i32.const 1))",
    )
}

fn spinner() -> Vec<u8> {
    script("", "(loop $l (br $l))")
}

/// `ships` autopilot ships, the first `scripted` of them given `wasm`.
fn world_with(wasm: &[u8], ships: u32, scripted: usize) -> (Simulation, Vec<NetId>) {
    let (mut sim, ids) = fleet_world(UniverseConfig::default(), 11, ships);
    let id = add_script(sim.world_mut(), wasm).expect("script is valid");
    for &ship in &ids[..scripted] {
        assign_script(sim.world_mut(), ship, id).unwrap();
    }
    (sim, ids)
}

fn component<C: bevy_ecs::component::Component + Clone>(sim: &Simulation, ship: NetId) -> C {
    let entity = sim.world().resource::<ShipIndex>().entity(ship).unwrap();
    sim.world().get::<C>(entity).unwrap().clone()
}

#[test]
fn the_state_hash_does_not_depend_on_the_number_of_script_workers() {
    let run = |workers: usize| {
        with_threads(workers, || {
            let (mut sim, _) = world_with(&wanderer(), 120, 80);
            assert_eq!(sim.world().resource::<ScriptHost>().worker_count(), workers);
            let hashes: Vec<u64> = (0..80)
                .map(|_| {
                    sim.step();
                    sim.state_hash().total
                })
                .collect();
            (hashes, sim.state_hash(), totals(&sim))
        })
    };
    let (one, one_parts, totals) = run(1);
    let (two, two_parts, _) = run(2);
    assert!(totals.script_fuel_used > 0, "{totals:?}");
    assert!(totals.ore_mined > 0, "{totals:?}");
    assert_eq!(one, two, "1 worker vs 2, tick by tick");
    assert_eq!(one_parts.differing_parts(&two_parts), Vec::<&str>::new());
}

#[test]
fn script_memory_and_globals_are_part_of_the_state_hash() {
    // Two scripts that steer identically but keep different private state.
    let plain = script("", "(f32.store (i32.const 4096) (f32.const 1))");
    let counting = script(
        "",
        "(f32.store (i32.const 4096) (f32.const 1))
         (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))",
    );
    let hash = |wasm: &[u8]| {
        let (mut sim, _) = world_with(wasm, 4, 4);
        sim.run_ticks(5);
        sim.state_hash()
    };
    let (a, b) = (hash(&plain), hash(&counting));
    assert_ne!(a.total, b.total);
    assert!(
        a.differing_parts(&b).contains(&"scripts"),
        "{:?}",
        a.differing_parts(&b)
    );
    assert!(!a.differing_parts(&b).contains(&"ships"), "same flight");
}

#[test]
fn ships_do_what_their_scripts_say_and_see_their_sensors() {
    let (mut sim, ids) = world_with(&wanderer(), 40, 1);
    sim.run_ticks(20);
    let ship = ids[0];
    let velocity: Velocity = component(&sim, ship);
    assert!(
        velocity.0.length() > 10.0,
        "full thrust for 20 ticks: {velocity:?}"
    );
    let state = sim
        .world()
        .resource::<ScriptHost>()
        .instance_state(ship)
        .expect("instance runs");
    let memory = state.memory.to_vec();
    let word = |at: usize| u32::from_le_bytes(memory[at..at + 4].try_into().unwrap());
    assert_eq!(word(0), 20, "ran every tick");
    let range = f32::from_bits(word(12));
    assert_eq!(
        range,
        UniverseConfig::default().sensors.range,
        "sensor block"
    );
    assert!(word(8) > 0, "ships spawn 40 to a sector, so it sees others");
    assert_eq!(state.globals.len(), 1);
    let runtime: ScriptRuntime = component(&sim, ship);
    assert_eq!(runtime.status, InstanceStatus::Running);
    assert!(runtime.fuel_used_last > 0 && runtime.fuel_used_last < 200);
    assert_eq!(runtime.faults_total, 0);
    // The autopilot ships were left alone: the script runs for one ship only.
    assert_eq!(sim.world().resource::<ScriptTickReport>().ran, 1);
}

#[test]
fn a_faulting_script_backs_off_alone_and_its_commands_are_discarded() {
    let (mut sim, ids) = fleet_world(UniverseConfig::default(), 5, 10);
    let spin = add_script(sim.world_mut(), &spinner()).unwrap();
    let good = add_script(sim.world_mut(), &wanderer()).unwrap();
    assign_script(sim.world_mut(), ids[0], spin).unwrap();
    assign_script(sim.world_mut(), ids[1], good).unwrap();
    let mut skipped = 0;
    for _ in 0..12 {
        sim.step();
        let report = sim.world().resource::<ScriptTickReport>();
        skipped += report.skipped_in_backoff;
        let command: ShipCommand = component(&sim, ids[0]);
        assert_eq!(command, ShipCommand::default(), "a faulting ship idles");
    }
    let faults = &sim.world().resource::<ScriptFaults>().recent;
    assert!(faults.iter().all(|f| f.ship == ids[0]));
    assert!(faults.iter().all(|f| f.kind == ScriptFaultKind::OutOfFuel));
    // Faults at ticks 1, 2, 3, then back-off skips 2 ticks, then 4, ...: fewer than 12.
    assert!(faults.len() >= 4 && faults.len() < 8, "{faults:?}");
    assert_eq!(faults[0].tick, 1);
    assert!(faults[0].message.contains("fuel"), "{}", faults[0].message);
    assert!(skipped > 0);
    let spinner_runtime: ScriptRuntime = component(&sim, ids[0]);
    assert_eq!(spinner_runtime.faults_total, faults.len() as u64);
    let good_runtime: ScriptRuntime = component(&sim, ids[1]);
    assert_eq!(
        good_runtime.faults_total, 0,
        "the other script is unaffected"
    );
    let memory = sim
        .world()
        .resource::<ScriptHost>()
        .instance_state(ids[1])
        .unwrap()
        .memory
        .to_vec();
    assert_eq!(&memory[..4], &12u32.to_le_bytes(), "it ran all 12 ticks");
}

#[test]
fn a_script_that_cannot_start_is_refused_when_added() {
    let (mut sim, _) = fleet_world(UniverseConfig::default(), 5, 3);
    let endless = script(
        "(func $start (loop $l (br $l))) (start $start)",
        "(f32.store (i32.const 4096) (f32.const 1))",
    );
    let err = add_script(sim.world_mut(), &endless)
        .unwrap_err()
        .to_string();
    assert!(err.contains("start function used all"), "{err}");
    assert_eq!(
        sim.world().resource::<ScriptLibrary>().ids().count(),
        0,
        "the library did not take it"
    );
}

#[test]
fn a_start_that_fails_for_some_ships_is_a_fault_and_they_idle() {
    // The start function traps unless its first random draw has two low bits `k`; the one `k`
    // the trial instance at load draws passes the upload check, and ships drawing others fail.
    let (wasm, _) = (0..4)
        .map(|k| {
            let start = format!(
                "(func $start (if (i32.ne (i32.and (call $random) (i32.const 3)) (i32.const {k}))
                   (then unreachable))) (start $start)"
            );
            script(&start, "(f32.store (i32.const 4096) (f32.const 1))")
        })
        .map(|wasm| {
            let (mut probe, _) = fleet_world(UniverseConfig::default(), 5, 1);
            let loads = add_script(probe.world_mut(), &wasm).is_ok();
            (wasm, loads)
        })
        .find(|(_, loads)| *loads)
        .expect("one of the four passes the trial start");
    let (mut sim, ids) = world_with(&wasm, 12, 12);
    sim.run_ticks(3);
    let failed: Vec<NetId> = ids
        .iter()
        .copied()
        .filter(|&id| component::<ScriptRuntime>(&sim, id).status == InstanceStatus::Failed)
        .collect();
    assert!(!failed.is_empty() && failed.len() < ids.len(), "{failed:?}");
    let faults = &sim.world().resource::<ScriptFaults>().recent;
    assert_eq!(
        faults.len(),
        failed.len(),
        "each tried once, at the first tick"
    );
    for fault in faults {
        assert!(failed.contains(&fault.ship));
        assert_eq!(fault.kind, ScriptFaultKind::Start);
        assert!(
            fault.message.contains("start function"),
            "{}",
            fault.message
        );
    }
    for id in ids {
        let moving = component::<Velocity>(&sim, id).0.length() > 0.0;
        assert_eq!(moving, !failed.contains(&id), "ship {id}");
    }
}

#[test]
fn logs_are_kept_in_a_bounded_ring() {
    let chatty = script("", "(call $log (i32.const 200) (i32.const 5))");
    let mut config = UniverseConfig::default();
    config.scripts.log_ring_lines = 4;
    let (mut sim, ids) = fleet_world(config, 5, 1);
    let id = add_script(sim.world_mut(), &chatty).unwrap();
    assign_script(sim.world_mut(), ids[0], id).unwrap();
    sim.run_ticks(10);
    let log: ScriptLog = component(&sim, ids[0]);
    let ticks: Vec<u64> = log.lines.iter().map(|l| l.tick).collect();
    assert_eq!(ticks, [7, 8, 9, 10]);
    assert!(log.lines.iter().all(|l| l.text == "hello"));
    assert_eq!(log.dropped, 6);
}

#[test]
fn lines_logged_while_starting_are_kept_at_the_starting_tick() {
    let greeter = script(
        "(func $start (call $log (i32.const 200) (i32.const 5))) (start $start)",
        "",
    );
    let (mut sim, ids) = fleet_world(UniverseConfig::default(), 5, 1);
    let id = add_script(sim.world_mut(), &greeter).unwrap();
    assign_script(sim.world_mut(), ids[0], id).unwrap();
    sim.run_ticks(3);
    let log: ScriptLog = component(&sim, ids[0]);
    let lines: Vec<(u64, &str)> = log
        .lines
        .iter()
        .map(|l| (l.tick, l.text.as_str()))
        .collect();
    assert_eq!(lines, [(1, "hello")], "once, at the tick it started");
}

#[test]
fn bad_scripts_and_unknown_ships_are_refused_by_name() {
    let (mut sim, ids) = fleet_world(UniverseConfig::default(), 5, 1);
    let err = add_script(sim.world_mut(), b"not wasm").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("script rejected: not a valid WebAssembly module"),
        "{err}"
    );
    let id = add_script(sim.world_mut(), &wanderer()).unwrap();
    assert_eq!(
        assign_script(sim.world_mut(), NetId(999), id)
            .unwrap_err()
            .to_string(),
        "no ship #999"
    );
    assert!(
        assign_script(sim.world_mut(), ids[0], ScriptId(5))
            .unwrap_err()
            .to_string()
            .starts_with("unknown script 0000")
    );
}

#[test]
fn destroyed_or_reassigned_ships_release_their_instances() {
    let (mut sim, ids) = world_with(&wanderer(), 3, 3);
    sim.run_ticks(3);
    let counting = script("", "(i32.store (i32.const 0) (i32.const 77))");
    let id = add_script(sim.world_mut(), &counting).unwrap();
    assign_script(sim.world_mut(), ids[0], id).unwrap();
    let entity = sim.world().resource::<ShipIndex>().entity(ids[1]).unwrap();
    sim.world_mut()
        .entity_mut(entity)
        .remove::<astroboids_sim::scripts::ShipScript>();
    sim.step();
    let host = sim.world().resource::<ScriptHost>();
    let memory = host.instance_state(ids[0]).unwrap().memory.to_vec();
    assert_eq!(
        &memory[..4],
        &77u32.to_le_bytes(),
        "a fresh instance of the new script"
    );
    assert!(
        host.instance_state(ids[1]).is_none(),
        "unscripted ship released"
    );
    assert!(host.instance_state(ids[2]).is_some());
}

#[test]
fn hostile_neighbours_never_stop_the_tick_or_disturb_a_good_script() {
    let counter = script(
        "",
        "(i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
         (f32.store (i32.const 4096) (f32.const 0.5))",
    );
    let hostile = [
        spinner(),
        // memory.grow until refused, every tick (charged per page: growing to the limit takes
        // more than a tick's fuel, so it faults until it has grown, then runs clean)
        script(
            "",
            "(block $done (loop $l
               (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
               (br $l)))",
        ),
        // unbounded recursion
        script("(func $down (call $down))", "call $down"),
        // immediate trap
        script("", "unreachable"),
        // log spam
        script(
            "",
            "(loop $l (call $log (i32.const 200) (i32.const 5)) (br $l))",
        ),
        // garbage commands
        script(
            "",
            "(f32.store (i32.const 4096) (f32.const nan))
             (f32.store (i32.const 4100) (f32.const inf))
             (i32.store (i32.const 4104) (i32.const -1))",
        ),
    ];
    let good_fuel = |with_hostiles: bool| {
        let (mut sim, ids) = fleet_world(UniverseConfig::default(), 9, 10);
        let good = add_script(sim.world_mut(), &counter).unwrap();
        assign_script(sim.world_mut(), ids[0], good).unwrap();
        if with_hostiles {
            for (ship, wasm) in ids[1..].iter().zip(&hostile) {
                let id = add_script(sim.world_mut(), wasm).unwrap();
                assign_script(sim.world_mut(), *ship, id).unwrap();
            }
        }
        let mut fuel = Vec::new();
        for _ in 0..15 {
            sim.step();
            fuel.push(component::<ScriptRuntime>(&sim, ids[0]).fuel_used_last);
        }
        let memory = sim
            .world()
            .resource::<ScriptHost>()
            .instance_state(ids[0])
            .unwrap()
            .memory
            .to_vec();
        assert_eq!(&memory[..4], &15u32.to_le_bytes(), "ran every tick");
        let faults = sim.world().resource::<ScriptFaults>().recent.clone();
        (fuel, faults, ids)
    };
    let (alone, no_faults, _) = good_fuel(false);
    assert!(no_faults.is_empty());
    let (beside_hostiles, faults, ids) = good_fuel(true);
    assert_eq!(alone, beside_hostiles);
    assert!(faults.iter().all(|f| f.ship != ids[0]));
    // The spinner, the recursion, the trap and the log spammer faulted; garbage commands are
    // not faults.
    for ship in [ids[1], ids[3], ids[4], ids[5]] {
        assert!(faults.iter().any(|f| f.ship == ship), "{ship} faulted");
    }
    assert!(faults.iter().all(|f| f.ship != ids[6]));
}

/// The watchdog's measurement is the one wall-clock reading inside a tick: listing every run
/// as slow (a bound of 0 ns) changes no hash and no outcome, on one worker or four.
#[test]
fn timing_runs_for_the_watchdog_changes_nothing_simulated() {
    let run = |workers: usize, bound: Option<u64>| {
        with_threads(workers, || {
            let (mut sim, _) = world_with(&wanderer(), 60, 40);
            sim.world_mut()
                .resource_mut::<SlowScripts>()
                .run_wall_ns_max = bound;
            let mut listed = 0;
            let hashes: Vec<u64> = (0..40)
                .map(|_| {
                    sim.step();
                    listed += sim.world().resource::<SlowScripts>().runs.len();
                    sim.state_hash().total
                })
                .collect();
            (hashes, listed)
        })
    };
    let (unwatched, none_listed) = run(1, None);
    assert_eq!(none_listed, 0, "no bound lists nothing");
    for workers in [1, 4] {
        let (watched, listed) = run(workers, Some(0));
        assert!(
            listed >= 40 * 30,
            "every run is over a 0 ns bound ({listed} listed)"
        );
        assert_eq!(watched, unwatched, "{workers} workers, every run listed");
    }
}
