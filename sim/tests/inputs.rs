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
