//! Budgets that add up: fuel is shared per sector (accounts and all scripts of a sector share
//! capped fuel, and nothing outside a sector changes what its ships get), starts are spread
//! over ticks sector by sector, back-off cannot be gamed, the host can suspend a script through
//! a world input, and hostile neighbours never change the state hash across thread counts.

mod common;

use std::collections::BTreeMap;

use astroboids_engine::{NetId, Simulation};
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::{WorldInput, WorldInputError, apply_input};
use astroboids_sim::scripts::{
    InstanceStatus, ScriptFaultKind, ScriptFaults, ScriptHost, ScriptRuntime, ScriptTickReport,
    add_script, assign_script,
};
use astroboids_sim::ships::{Owner, ShipIndex};
use astroboids_sim::space::{SectorCoord, SpacePos};
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

fn sector_of(sim: &Simulation, ship: NetId) -> SectorCoord {
    component::<SpacePos>(sim, ship).sector
}

/// A configuration in which spinners never back off, so every tick's grants can be seen.
fn no_backoff() -> UniverseConfig {
    let mut config = UniverseConfig::default();
    config.scripts.faults_before_backoff = 1_000;
    config
}

/// `ships` ships, each given `wasm` and, when named, an owner; `ships.spawn_per_sector` to a
/// sector, in id order.
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

/// Steps until no ship of `ids` waits to start (a sector starts a few a tick), then three
/// more ticks, so every bucket is down to what one tick earns.
fn start_everyone(sim: &mut Simulation, ids: &[NetId]) {
    let pending = |sim: &Simulation| {
        ids.iter()
            .any(|&id| component::<ScriptRuntime>(sim, id).status == InstanceStatus::Pending)
    };
    for _ in 0..100 {
        if !pending(sim) {
            break;
        }
        sim.step();
    }
    assert!(!pending(sim), "every ship started");
    sim.run_ticks(3);
}

#[test]
fn an_account_shares_its_cap_and_cannot_take_fuel_from_another() {
    let mut config = no_backoff();
    config.scripts.account_fuel_per_tick_max = 200_000;
    let spin = spinner();
    let mut ships: Vec<(&[u8], Option<&str>)> = vec![(&spin, Some("swarm")); 20];
    ships.push((&spin, Some("solo")));
    let (mut sim, ids) = scripted_world(config.clone(), &ships);
    start_everyone(&mut sim, &ids);
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
fn every_script_of_a_sector_bursting_at_once_stays_within_the_sector_cap() {
    let mut config = UniverseConfig::default();
    config.scripts.account_fuel_per_tick_max = 3_000_000;
    config.scripts.sector_fuel_per_tick_max = 3_000_000;
    config.scripts.start_fuel = 100_000;
    config.ships.spawn_per_sector = 40;
    let spin = spinner();
    // 40, 40 and 20 ships in three sectors.
    let ships: Vec<(&[u8], Option<&str>)> = vec![(&spin, None); 100];
    let (mut sim, ids) = scripted_world(config, &ships);
    let sectors: Vec<SectorCoord> = ids.iter().map(|&id| sector_of(&sim, id)).collect();
    let runtimes = |sim: &Simulation| -> Vec<ScriptRuntime> {
        ids.iter().map(|&id| component(sim, id)).collect()
    };
    let mut started = 0;
    let mut over_one_cap = false;
    for _ in 0..30 {
        let before = runtimes(&sim);
        sim.step();
        let after = runtimes(&sim);
        // Per sector: (fuel its runs used, instances it started).
        let mut per_sector: BTreeMap<SectorCoord, (u64, u64)> = BTreeMap::new();
        for (i, (was, is)) in before.iter().zip(&after).enumerate() {
            assert_eq!(sector_of(&sim, ids[i]), sectors[i], "spinners stay put");
            let entry = per_sector.entry(sectors[i]).or_default();
            entry.0 += is.fuel_used_total - was.fuel_used_total;
            if was.status == InstanceStatus::Pending && is.status != InstanceStatus::Pending {
                entry.1 += 1;
            }
        }
        assert_eq!(per_sector.len(), 3);
        for (sector, &(runs, starts)) in &per_sector {
            assert!(
                runs + starts * 100_000 <= 3_000_000,
                "runs and starts of {sector} within its cap: {per_sector:?}"
            );
            assert!(starts <= 15, "starts take at most half: {per_sector:?}");
            started += starts;
        }
        let report = sim.world().resource::<ScriptTickReport>().clone();
        assert_eq!(
            report.fuel_used,
            per_sector.values().map(|s| s.0).sum::<u64>(),
            "the report adds up the sectors"
        );
        over_one_cap |= report.fuel_used > 3_000_000;
    }
    assert_eq!(started, 100, "every ship starts, over several ticks");
    assert!(
        over_one_cap,
        "three sectors together use more than one sector's cap"
    );
}

#[test]
fn an_accounts_cap_holds_in_each_sector_on_its_own() {
    let mut config = no_backoff();
    config.scripts.account_fuel_per_tick_max = 200_000;
    config.ships.spawn_per_sector = 10;
    let spin = spinner();
    let ships: Vec<(&[u8], Option<&str>)> = vec![(&spin, Some("swarm")); 20];
    let (mut sim, ids) = scripted_world(config, &ships);
    let (first, second) = (sector_of(&sim, ids[0]), sector_of(&sim, ids[10]));
    assert_ne!(first, second);
    assert!(ids[..10].iter().all(|&id| sector_of(&sim, id) == first));
    assert!(ids[10..].iter().all(|&id| sector_of(&sim, id) == second));
    start_everyone(&mut sim, &ids);
    let used = |id: NetId| component::<ScriptRuntime>(&sim, id).fuel_used_last;
    for half in [&ids[..10], &ids[10..]] {
        assert_eq!(
            half.iter().map(|&id| used(id)).sum::<u64>(),
            200_000,
            "one account's ten ships in one sector share the whole account cap"
        );
        assert!(half.iter().all(|&id| used(id) == 20_000), "evenly");
    }
    let report = sim.world().resource::<ScriptTickReport>().clone();
    assert_eq!(report.fuel_used, 400_000, "the account cap twice over");
    assert_eq!(report.budget_cut, 20, "every ship got less than it asked");
}

/// 30 spinners crowding one sector (ids 0 to 29) and one alone in the next (id 30), under a
/// sector cap of 600,000 that lets 3 instances start per sector and tick (fewer than the count
/// cap, so the fuel share is what limits them).
fn crowded_and_lone() -> (Simulation, Vec<NetId>) {
    let mut config = no_backoff();
    config.scripts.account_fuel_per_tick_max = 600_000;
    config.scripts.sector_fuel_per_tick_max = 600_000;
    config.scripts.start_fuel = 100_000;
    config.ships.spawn_per_sector = 30;
    let spin = spinner();
    let ships: Vec<(&[u8], Option<&str>)> = vec![(&spin, None); 31];
    let (sim, ids) = scripted_world(config, &ships);
    let crowded = sector_of(&sim, ids[0]);
    assert!(ids[..30].iter().all(|&id| sector_of(&sim, id) == crowded));
    assert_ne!(sector_of(&sim, ids[30]), crowded);
    (sim, ids)
}

#[test]
fn a_crowded_sector_cuts_no_fuel_of_ships_in_another() {
    let (mut sim, ids) = crowded_and_lone();
    let fuel_per_tick = UniverseConfig::default().scripts.fuel_per_tick;
    for tick in 1..=10 {
        sim.step();
        let lone: ScriptRuntime = component(&sim, ids[30]);
        assert_eq!(
            lone.fuel_used_last, fuel_per_tick,
            "tick {tick}: the lone ship gets all it asks for"
        );
    }
    // By now every crowded ship runs, and asks for more than its share.
    let crowd: Vec<u64> = ids[..30]
        .iter()
        .map(|&id| component::<ScriptRuntime>(&sim, id).fuel_used_last)
        .collect();
    assert!(crowd.iter().sum::<u64>() <= 600_000, "{crowd:?}");
    assert!(
        crowd.iter().all(|&used| used < fuel_per_tick / 2),
        "the crowded sector's cap cuts its own ships: {crowd:?}"
    );
    let report = sim.world().resource::<ScriptTickReport>().clone();
    assert_eq!(report.budget_cut, 30, "only the crowded ships are cut");
}

#[test]
fn starts_are_admitted_per_sector() {
    let (mut sim, ids) = crowded_and_lone();
    sim.step();
    let status = |sim: &Simulation, id: NetId| component::<ScriptRuntime>(sim, id).status;
    assert_eq!(
        status(&sim, ids[30]),
        InstanceStatus::Running,
        "the lone ship starts at once, although 30 lower ids wait elsewhere"
    );
    let running = |sim: &Simulation| {
        ids[..30]
            .iter()
            .filter(|&&id| status(sim, id) == InstanceStatus::Running)
            .count()
    };
    assert_eq!(running(&sim), 3, "half the crowded sector's cap");
    let report = sim.world().resource::<ScriptTickReport>().clone();
    assert_eq!(report.started, 4, "both sectors' starts, added up");
    assert_eq!(report.starts_deferred, 27);
    // The crowded sector starts its ships three a tick, lowest ids first.
    sim.step();
    assert_eq!(running(&sim), 6);
    assert!(
        ids[..6]
            .iter()
            .all(|&id| status(&sim, id) == InstanceStatus::Running)
    );
    sim.run_ticks(8);
    assert_eq!(running(&sim), 30);
}

#[test]
fn a_sector_starts_four_instances_a_tick_however_much_fuel_it_has() {
    // The default sector cap has fuel for 80 starts a tick; 30 ships wait in one sector.
    let mut config = no_backoff();
    config.ships.spawn_per_sector = 30;
    let spin = spinner();
    let ships: Vec<(&[u8], Option<&str>)> = vec![(&spin, None); 30];
    let (mut sim, ids) = scripted_world(config, &ships);
    let running = |sim: &Simulation| {
        ids.iter()
            .filter(|&&id| component::<ScriptRuntime>(sim, id).status == InstanceStatus::Running)
            .count()
    };
    for tick in 1..=7 {
        sim.step();
        assert_eq!(running(&sim), 4 * tick, "tick {tick}");
    }
    sim.step();
    assert_eq!(running(&sim), 30, "the last two at tick 8");
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
    // All in one sector, then spread over three (sharing fuel sector by sector).
    for spawn_per_sector in [40, 5] {
        let mut config = UniverseConfig::default();
        config.ships.spawn_per_sector = spawn_per_sector;
        let run = |threads: usize| {
            with_threads(threads, || {
                let (mut sim, _) = scripted_world(config.clone(), &ships);
                hashes(&mut sim, 25)
            })
        };
        assert_eq!(run(1), run(2), "{spawn_per_sector} ships to a sector");
    }
}
