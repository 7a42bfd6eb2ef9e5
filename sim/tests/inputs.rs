//! World inputs as hosts rely on them: each applies completely or not at all, refusals name
//! what was wrong, and what they set (owners included) is part of the state hash and of
//! checkpoints.

mod common;

use astroboids_engine::NetId;
use astroboids_sim::checkpoint::{self, capture_ship};
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::{InputOutcome, WorldInput, WorldInputError, apply_input};
use astroboids_sim::ships::ShipIndex;
use astroboids_sim::{SimOptions, build_simulation};

#[test]
fn a_refused_input_changes_nothing() {
    let mut config = UniverseConfig::default();
    config.limits.max_ships = 10;
    let mut sim = build_simulation(config, 3);
    let fleet = WorldInput::SpawnFleet {
        count: 8,
        script: None,
    };
    assert!(matches!(
        apply_input(sim.world_mut(), &fleet),
        Ok(InputOutcome::Spawned(ids)) if ids.len() == 8
    ));
    let before = sim.state_hash();
    let err = apply_input(sim.world_mut(), &fleet).unwrap_err();
    assert!(
        err.to_string()
            .contains("would exceed limits.max_ships (10); 8 alive"),
        "{err}"
    );
    let err = apply_input(
        sim.world_mut(),
        &WorldInput::SetOwner {
            ship: 1,
            owner: Some("not a name!".into()),
        },
    )
    .unwrap_err();
    assert!(matches!(err, WorldInputError::InvalidOwner(_)), "{err}");
    let err = apply_input(
        sim.world_mut(),
        &WorldInput::SetOwner {
            ship: 99,
            owner: Some("ada".into()),
        },
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "no ship #99");
    assert_eq!(
        sim.state_hash(),
        before,
        "refusals leave the world as it was"
    );
    assert_eq!(sim.world().resource::<ShipIndex>().len(), 8);
}

#[test]
fn owners_are_in_the_hash_and_survive_a_checkpoint() {
    let mut sim = build_simulation(UniverseConfig::default(), 4);
    apply_input(
        sim.world_mut(),
        &WorldInput::SpawnFleet {
            count: 5,
            script: None,
        },
    )
    .unwrap();
    sim.run_ticks(3);
    let unowned = sim.state_hash();
    apply_input(
        sim.world_mut(),
        &WorldInput::SetOwner {
            ship: 2,
            owner: Some("ada".into()),
        },
    )
    .unwrap();
    let owned = sim.state_hash();
    assert_eq!(owned.differing_parts(&unowned), vec!["ships"]);
    let record = capture_ship(sim.world_mut(), NetId(2)).unwrap();
    assert_eq!(record.owner.as_deref(), Some("ada"));

    let saved = checkpoint::decode(&checkpoint::encode(&checkpoint::capture(&mut sim))).unwrap();
    let mut restored =
        checkpoint::restore(UniverseConfig::default(), &saved, SimOptions::default()).unwrap();
    assert_eq!(restored.state_hash(), sim.state_hash());
    assert_eq!(
        capture_ship(restored.world_mut(), NetId(2))
            .unwrap()
            .owner
            .as_deref(),
        Some("ada")
    );

    apply_input(
        sim.world_mut(),
        &WorldInput::SetOwner {
            ship: 2,
            owner: None,
        },
    )
    .unwrap();
    assert_eq!(
        sim.state_hash().total,
        unowned.total,
        "giving it back to nobody"
    );
}

fn spawn_at(local: (f32, f32), owner: Option<&str>) -> WorldInput {
    WorldInput::SpawnShip {
        sector: (0, 0),
        local,
        heading: 0.5,
        autopilot: true,
        owner: owner.map(str::to_string),
    }
}

#[test]
fn one_spawn_input_makes_a_ship_owned_by_its_player() {
    let mut sim = build_simulation(UniverseConfig::default(), 6);
    let Ok(InputOutcome::Spawned(ids)) =
        apply_input(sim.world_mut(), &spawn_at((400.0, 400.0), Some("ada")))
    else {
        panic!("the spawn is accepted");
    };
    assert_eq!(ids.len(), 1);
    let record = capture_ship(sim.world_mut(), ids[0]).unwrap();
    assert_eq!(record.owner.as_deref(), Some("ada"));
    assert!(record.autopilot);

    // The same world as the two inputs it replaces.
    let mut two_step = build_simulation(UniverseConfig::default(), 6);
    apply_input(two_step.world_mut(), &spawn_at((400.0, 400.0), None)).unwrap();
    apply_input(
        two_step.world_mut(),
        &WorldInput::SetOwner {
            ship: ids[0].0,
            owner: Some("ada".into()),
        },
    )
    .unwrap();
    assert_eq!(two_step.state_hash(), sim.state_hash());
}

#[test]
fn a_spawn_with_an_invalid_owner_spawns_nothing_and_uses_no_id() {
    let mut sim = build_simulation(UniverseConfig::default(), 6);
    apply_input(sim.world_mut(), &spawn_at((100.0, 100.0), Some("ada"))).unwrap();
    let before = sim.state_hash();

    let too_long = "a".repeat(65);
    for owner in ["not a name!", "", too_long.as_str()] {
        let err = apply_input(sim.world_mut(), &spawn_at((400.0, 400.0), Some(owner)))
            .expect_err("an invalid owner is refused");
        assert_eq!(err, WorldInputError::InvalidOwner(owner.to_string()));
    }
    let err = apply_input(sim.world_mut(), &spawn_at((400.0, 400.0), Some(&too_long)))
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("an account name is 1 to 64 of A-Z a-z 0-9 _ . -"),
        "names the limit: {err}"
    );
    assert_eq!(
        sim.state_hash(),
        before,
        "refusals leave the world as it was"
    );
    assert_eq!(sim.world().resource::<ShipIndex>().len(), 1);

    // The longest valid name is accepted, and the ship gets the id the refused ones would
    // have had.
    let longest = "b".repeat(64);
    let Ok(InputOutcome::Spawned(ids)) =
        apply_input(sim.world_mut(), &spawn_at((400.0, 400.0), Some(&longest)))
    else {
        panic!("a 64-byte name is valid");
    };
    assert_eq!(ids, vec![NetId(2)]);
    let record = capture_ship(sim.world_mut(), NetId(2)).unwrap();
    assert_eq!(record.owner.as_deref(), Some(longest.as_str()));
}
