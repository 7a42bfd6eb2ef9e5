//! Budgets that add up: accounts and the world share capped fuel, starts are spread over
//! ticks, back-off cannot be gamed, the host can suspend a script through a world input, and
//! hostile neighbours never change the state hash across thread counts.

mod common;

use astroboids_engine::{NetId, Simulation};
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::{WorldInput, WorldInputError, apply_input};
use astroboids_sim::scripts::{
    InstanceStatus, ScriptFaultKind, ScriptFaults, ScriptHost, ScriptRuntime, ScriptTickReport,
    add_script, assign_script,
};
use astroboids_sim::ships::{Owner, ShipIndex};
use common::{fleet_world, hashes, script, with_threads};

/// Burns whatever fuel it gets.
fn spinner() -> Vec<u8> {
    script("", "(loop $l (br $l))")
}

/// Flies straight ahead: well behaved.
fn cruiser() -> Vec<u8> {
    script("", "(f32.store (i32.const 4096) (f32.const 1))")
}

fn component<C: bevy_ecs::component::Component + Clone>(sim: &Simulation, ship: NetId) -> C {
    let entity = sim.world().resource::<ShipIndex>().entity(ship).unwrap();
    sim.world().get::<C>(entity).unwrap().clone()
}

/// `ships` ships, each given `wasm` and, when named, an owner.
fn scripted_world(
    config: UniverseConfig,
    scripts: &[(&[u8], Option<&str>)],
) -> (Simulation, Vec<NetId>) {
    let (mut sim, ids) = fleet_world(config, 21, scripts.len() as u32);
    for (&ship, (wasm, owner)) in ids.iter().zip(scripts) {
        let id = add_script(sim.world_mut(), wasm).expect("script loads");
        assign_script(sim.world_mut(), ship, id).unwrap();
        if let Some(owner) = owner {
            let entity = sim.world().resource::<ShipIndex>().entity(ship).unwrap();
            sim.world_mut()
                .entity_mut(entity)
                .insert(Owner(owner.to_string()));
        }
    }
    (sim, ids)
}

#[test]
fn an_account_shares_its_cap_and_cannot_take_fuel_from_another() {
    let mut config = UniverseConfig::default();
    config.scripts.account_fuel_per_tick_max = 200_000;
    let spin = spinner();
    let mut ships: Vec<(&[u8], Option<&str>)> = vec![(&spin, Some("swarm")); 20];
    ships.push((&spin, Some("solo")));
    let (mut sim, ids) = scripted_world(config.clone(), &ships);
    sim.run_ticks(2);
    let used = |id: NetId| component::<ScriptRuntime>(&sim, id).fuel_used_last;
    let swarm: u64 = ids[..20].iter().map(|&id| used(id)).sum();
    assert_eq!(swarm, 200_000, "twenty spinners share one account's cap");
    assert!(ids[..20].iter().all(|&id| used(id) == 10_000), "evenly");
    assert_eq!(
        used(ids[20]),
        config.scripts.fuel_per_tick,
        "the other account's one ship gets all it asks for"
    );
    let report = sim.world().resource::<ScriptTickReport>().clone();
    assert_eq!(
        report.budget_cut, 20,
        "every swarm ship got less than it asked"
    );
}

#[test]
fn every_script_bursting_at_once_stays_within_the_world_cap() {
    let mut config = UniverseConfig::default();
    config.scripts.world_fuel_per_tick_max = 3_000_000;
    config.scripts.start_fuel = 100_000;
    let spin = spinner();
    let ships: Vec<(&[u8], Option<&str>)> = vec![(&spin, None); 100];
    let (mut sim, _) = scripted_world(config, &ships);
    let mut started = 0;
    for _ in 0..30 {
        sim.step();
        let report = sim.world().resource::<ScriptTickReport>().clone();
        started += report.started;
        let starts_fuel = u64::from(report.started) * 100_000;
        assert!(
            report.fuel_used + starts_fuel <= 3_000_000,
            "runs and starts within the cap: {report:?}"
        );
        assert!(report.started <= 15, "starts take at most half: {report:?}");
    }
    assert_eq!(started, 100, "every ship starts, over several ticks");
}

#[test]
fn alternating_faults_still_back_off_and_back_off_earns_no_fuel() {
    // Traps on odd ticks, runs clean on even ones: one clean run used to clear the streak.
    let alternating = script(
        "",
        "(if (i32.wrap_i64 (i64.and (i64.load (i32.const 1024)) (i64.const 1)))
           (then unreachable))",
    );
    let (mut sim, ids) = scripted_world(UniverseConfig::default(), &[(&alternating, None)]);
    // (skipped this tick, fuel stored after it)
    let ticks: Vec<(bool, u64)> = (0..80)
        .map(|_| {
            sim.step();
            let skipped = sim
                .world()
                .resource::<ScriptTickReport>()
                .skipped_in_backoff
                > 0;
            (
                skipped,
                component::<ScriptRuntime>(&sim, ids[0]).fuel.stored,
            )
        })
        .collect();
    let skipped = ticks.iter().filter(|(s, _)| *s).count();
    assert!(skipped > 20, "backed off for {skipped} of 80 ticks");
    for pair in ticks.windows(2) {
        if pair[1].0 {
            assert_eq!(
                pair[1].1, pair[0].1,
                "a skipped tick earns nothing: {ticks:?}"
            );
        }
    }
}

#[test]
fn the_host_suspends_a_script_with_a_world_input_and_its_owner_sees_why() {
    let spin = spinner();
    let cruise = cruiser();
    let (mut sim, ids) = scripted_world(
        UniverseConfig::default(),
        &[(&spin, Some("ada")), (&cruise, Some("ada"))],
    );
    sim.run_ticks(2);
    let suspend = WorldInput::SuspendScript {
        ship: ids[0].0,
        reason: "its runs took 200 ms for 100000 fuel".into(),
    };
    apply_input(sim.world_mut(), &suspend).unwrap();
    let runtime: ScriptRuntime = component(&sim, ids[0]);
    assert_eq!(runtime.status, InstanceStatus::Suspended);
    let fault = sim
        .world()
        .resource::<ScriptFaults>()
        .recent
        .back()
        .cloned()
        .unwrap();
    assert_eq!(fault.ship, ids[0]);
    assert_eq!(fault.kind, ScriptFaultKind::Suspended);
    assert_eq!(
        fault.message,
        "suspended: its runs took 200 ms for 100000 fuel"
    );
    sim.run_ticks(2);
    let host = sim.world().resource::<ScriptHost>();
    assert!(
        host.instance_state(ids[0]).is_none(),
        "its instance is dropped"
    );
    assert!(
        host.instance_state(ids[1]).is_some(),
        "its neighbour runs on"
    );
    assert_eq!(
        component::<ScriptRuntime>(&sim, ids[0]).fuel_used_last,
        runtime.fuel_used_last
    );

    // Refusals change nothing.
    let refusals = [
        (
            WorldInput::SuspendScript {
                ship: 999,
                reason: "x".into(),
            },
            "no ship #999",
        ),
        (
            WorldInput::SuspendScript {
                ship: ids[0].0,
                reason: String::new(),
            },
            "a suspension reason is 1 to 256 bytes, got 0",
        ),
    ];
    for (input, message) in refusals {
        let err: WorldInputError = apply_input(sim.world_mut(), &input).unwrap_err();
        assert_eq!(err.to_string(), message);
    }
    // Given a script again, it runs again.
    let id = add_script(sim.world_mut(), &cruise).unwrap();
    assign_script(sim.world_mut(), ids[0], id).unwrap();
    sim.run_ticks(2);
    assert_eq!(
        component::<ScriptRuntime>(&sim, ids[0]).status,
        InstanceStatus::Running
    );
}

/// Scripts of each expensive class, looping until their fuel runs out.
fn hostile_classes() -> Vec<Vec<u8>> {
    let funcs: String = (0..50)
        .map(|i| format!("(func $f{i} (call $f{}))", (i + 1) % 50))
        .collect();
    vec![
        script(
            "",
            "(drop (memory.grow (i32.const 15))) (loop $l (memory.fill (i32.const 0) (i32.const 1) (i32.const 1048576)) (br $l))",
        ),
        script(
            "",
            "(loop $l (memory.copy (i32.const 0) (i32.const 32768) (i32.const 32768)) (br $l))",
        ),
        script("", "(loop $l (drop (call $random)) (br $l))"),
        script(&funcs, "(call $f0)"),
        script(
            "",
            &format!(
                "{} unreachable",
                "(drop (i32.mul (i32.const 3) (i32.const 5)))".repeat(2_000)
            ),
        ),
        script(
            "",
            "(loop $l (call $log (i32.const 0) (i32.const 200)) (br $l))",
        ),
    ]
}

#[test]
fn hostile_neighbours_keep_the_hash_independent_of_threads() {
    let hostile = hostile_classes();
    let cruise = cruiser();
    let mut ships: Vec<(&[u8], Option<&str>)> = Vec::new();
    for (i, wasm) in hostile.iter().enumerate() {
        ships.push((wasm, Some(if i % 2 == 0 { "mallory" } else { "trudy" })));
        ships.push((&cruise, Some("ada")));
    }
    let run = |threads: usize| {
        with_threads(threads, || {
            let (mut sim, _) = scripted_world(UniverseConfig::default(), &ships);
            hashes(&mut sim, 25)
        })
    };
    assert_eq!(run(1), run(2));
}
