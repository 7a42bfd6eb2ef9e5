//! Scripts (content-addressed modules, owners' named versions) and ship ownership against a
//! real PostgreSQL.

mod common;

use astroboids_pgstore::{Limits, Role, StoreError};
use common::{Db, PHC, players};
use xxhash_rust::xxh3::xxh3_128;

#[tokio::test(flavor = "multi_thread")]
async fn script_versions_increase_per_name_and_list_by_name() {
    let db = Db::new("scripts").await;
    let store = db.store().await;
    players(&store, &["ada", "bob"]).await;

    let (h1, v1) = store
        .upload_script("ada", "miner", b"module one", 10)
        .await
        .unwrap();
    assert_eq!((h1, v1), (xxh3_128(b"module one"), 1));
    let (h2, v2) = store
        .upload_script("ada", "miner", b"module two", 20)
        .await
        .unwrap();
    assert_eq!(v2, 2);
    // The same bytes again: stored once, still a new version.
    let (h3, v3) = store
        .upload_script("ada", "miner", b"module one", 30)
        .await
        .unwrap();
    assert_eq!((h3, v3), (h1, 3));
    // Versions count per (owner, name).
    assert_eq!(
        store
            .upload_script("ada", "scout", b"s", 40)
            .await
            .unwrap()
            .1,
        1
    );
    assert_eq!(
        store
            .upload_script("bob", "miner", b"b", 50)
            .await
            .unwrap()
            .1,
        1
    );

    let versions = store.script_versions("ada", "miner").await.unwrap();
    let seen: Vec<(u32, u128, u64)> = versions
        .iter()
        .map(|v| (v.version, v.hash, v.uploaded_unix_s))
        .collect();
    assert_eq!(seen, [(1, h1, 10), (2, h2, 20), (3, h1, 30)]);
    assert_eq!(
        store.latest_script("ada", "miner").await.unwrap(),
        Some(versions[2])
    );
    assert_eq!(store.latest_script("ada", "nothing").await.unwrap(), None);

    let listing = store.list_scripts("ada").await.unwrap();
    let listed: Vec<(&str, u32)> = listing
        .iter()
        .map(|l| (l.name.as_str(), l.latest.version))
        .collect();
    assert_eq!(listed, [("miner", 3), ("scout", 1)]);
    assert_eq!(store.list_scripts("bob").await.unwrap().len(), 1);
    assert!(store.list_scripts("cy").await.unwrap().is_empty());

    assert_eq!(store.script(h2).await.unwrap().unwrap(), b"module two");
    assert_eq!(store.script(12345).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn naming_needs_a_stored_module_an_owner_and_fitting_sizes() {
    let db = Db::new("scripts_refused").await;
    let store = db
        .store_with(Limits {
            max_script_bytes: 16,
            ..Limits::default()
        })
        .await;
    store
        .create_account("ada", PHC, Role::Player, 0)
        .await
        .unwrap();
    let error = store.name_script("ada", "x", 42, 0).await.unwrap_err();
    assert!(matches!(error, StoreError::UnknownScript(42)), "{error}");
    let hash = store.put_script(b"tiny", 0).await.unwrap();
    assert_eq!(
        store.put_script(b"tiny", 5).await.unwrap(),
        hash,
        "idempotent"
    );
    assert_eq!(store.name_script("ada", "x", hash, 0).await.unwrap(), 1);
    let error = store.name_script("nobody", "x", hash, 0).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::UnknownUser(n) if n == "nobody"),
        "{error}"
    );
    let error = store
        .upload_script("ada", "x", &[0; 17], 0)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::TooLarge {
                what: "script",
                bytes: 17,
                limit: 16
            }
        ),
        "{error}"
    );
    let error = store
        .upload_script("ada", "x/y", b"m", 0)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::InvalidName {
                what: "script name",
                ..
            }
        ),
        "{error}"
    );
    // Nothing of the refused ones stayed.
    assert_eq!(store.script_versions("ada", "x").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn gateways_uploading_one_name_at_once_get_distinct_versions() {
    let db = Db::new("scripts_race").await;
    let (a, b) = (db.store().await, db.store().await);
    a.create_account("ada", PHC, Role::Player, 0).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..10u8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store.upload_script("ada", "bot", &[i], 0).await.unwrap().1
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap());
    }
    versions.sort();
    assert_eq!(versions, (1..=10).collect::<Vec<u32>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn ships_are_owned_counted_capped_transferred_and_deleted() {
    let db = Db::new("ships").await;
    let store = db.store().await;
    players(&store, &["ada", "bob"]).await;

    assert_eq!(store.record_ship(7, "ada", Some(3), 1).await.unwrap(), 1);
    assert_eq!(store.record_ship(3, "ada", Some(3), 1).await.unwrap(), 2);
    assert_eq!(store.record_ship(9, "ada", Some(3), 1).await.unwrap(), 3);
    let error = store.record_ship(11, "ada", Some(3), 1).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::ShipCap { user, owned: 3, cap: 3 } if user == "ada"),
        "{error}"
    );
    // No cap (an admin's spawn).
    assert_eq!(store.record_ship(11, "ada", None, 1).await.unwrap(), 4);
    assert_eq!(store.ship_count("ada").await.unwrap(), 4);
    assert_eq!(store.ships_of("ada").await.unwrap(), [3, 7, 9, 11]);
    assert_eq!(store.ship_owner(7).await.unwrap().as_deref(), Some("ada"));
    assert_eq!(store.ship_owner(8).await.unwrap(), None);

    let error = store.record_ship(7, "bob", None, 1).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::ShipOwned { ship: 7, owner } if owner == "ada"),
        "{error}"
    );
    let error = store.record_ship(1, "nobody", None, 1).await.unwrap_err();
    assert!(matches!(error, StoreError::UnknownUser(_)), "{error}");
    let error = store
        .record_ship(u64::MAX, "bob", None, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::OutOfRange {
                what: "ship id",
                ..
            }
        ),
        "{error}"
    );

    // Transfers, capped at the receiver.
    assert_eq!(
        store.transfer_ship(7, "bob", Some(1), 2).await.unwrap(),
        "ada"
    );
    let error = store.transfer_ship(9, "bob", Some(1), 2).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::ShipCap {
                owned: 1,
                cap: 1,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        store.transfer_ship(7, "bob", Some(1), 3).await.unwrap(),
        "bob"
    );
    let error = store.transfer_ship(8, "bob", None, 2).await.unwrap_err();
    assert!(matches!(error, StoreError::UnknownShip(8)), "{error}");
    assert_eq!(store.ship_count("ada").await.unwrap(), 3);
    assert_eq!(store.ship_count("bob").await.unwrap(), 1);

    // Deletion.
    assert_eq!(store.delete_ship(3).await.unwrap().as_deref(), Some("ada"));
    assert_eq!(store.delete_ship(3).await.unwrap(), None);
    assert_eq!(store.ships_of("ada").await.unwrap(), [9, 11]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ship_cap_holds_when_gateways_spawn_at_once() {
    let db = Db::new("ships_race").await;
    let (a, b) = (db.store().await, db.store().await);
    a.create_account("ada", PHC, Role::Player, 0).await.unwrap();
    let mut tasks = Vec::new();
    for ship in 0..12u64 {
        let store = if ship % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store.record_ship(ship, "ada", Some(5), 0).await
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(StoreError::ShipCap { cap: 5, .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(accepted, 5);
    assert_eq!(a.ship_count("ada").await.unwrap(), 5);
}
