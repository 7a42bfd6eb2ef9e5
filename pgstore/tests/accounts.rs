//! Accounts and sessions against a real PostgreSQL.

mod common;

use astroboids_pgstore::{Role, StoreError, TokenHash};
use common::{Db, PHC, token};

#[tokio::test(flavor = "multi_thread")]
async fn accounts_are_created_once_and_looked_up_for_login() {
    let db = Db::new("accounts_create").await;
    let store = db.store().await;
    store
        .create_account("ada", PHC, Role::Player, 100)
        .await
        .unwrap();
    let error = store
        .create_account("ada", PHC, Role::Admin, 200)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NameTaken(n) if n == "ada"),
        "{error}"
    );

    // Login lookup: the PHC string to verify against (the caller runs argon2).
    let ada = store.account("ada").await.unwrap().expect("ada exists");
    assert_eq!(ada.password_phc, PHC);
    assert_eq!(ada.role, Role::Player, "the duplicate changed nothing");
    assert_eq!(ada.created_unix_s, 100);
    assert_eq!(ada.max_ships, None);
    assert!(store.account("nobody").await.unwrap().is_none());

    // Admin changes.
    store.set_role("ada", Role::Admin).await.unwrap();
    store.set_ship_limit("ada", Some(3)).await.unwrap();
    let ada = store.account("ada").await.unwrap().unwrap();
    assert_eq!((ada.role, ada.max_ships), (Role::Admin, Some(3)));
    store.set_ship_limit("ada", None).await.unwrap();
    assert_eq!(store.account("ada").await.unwrap().unwrap().max_ships, None);
    let error = store.set_role("nobody", Role::Admin).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::UnknownUser(n) if n == "nobody"),
        "{error}"
    );

    // Listing by pages, in name order.
    store
        .create_account("bob", PHC, Role::Player, 1)
        .await
        .unwrap();
    store
        .create_account("cy", PHC, Role::Player, 1)
        .await
        .unwrap();
    let names = |list: Vec<astroboids_pgstore::Account>| -> Vec<String> {
        list.into_iter().map(|a| a.name).collect()
    };
    assert_eq!(
        names(store.accounts(None, 2).await.unwrap()),
        ["ada", "bob"]
    );
    assert_eq!(names(store.accounts(Some("bob"), 2).await.unwrap()), ["cy"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_names_and_hashes_are_refused_by_name() {
    let db = Db::new("accounts_invalid").await;
    let store = db.store().await;
    let error = store
        .create_account("a b", PHC, Role::Player, 0)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError::InvalidName {
                what: "user name",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("' ' is not allowed"), "{error}");
    let long = "a".repeat(65);
    let error = store
        .create_account(&long, PHC, Role::Player, 0)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("the limit is 64"), "{error}");
    // A password in the clear is not a PHC string.
    let error = store
        .create_account("ada", "hunter2hunter2", Role::Player, 0)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError::Invalid {
                what: "password hash",
                ..
            }
        ),
        "{error}"
    );
    let error = store
        .create_account("ada", PHC, Role::Player, u64::MAX)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::OutOfRange { what: "time", .. }),
        "{error}"
    );
    assert!(store.account("ada").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_registering_one_name_at_once_one_wins() {
    let db = Db::new("accounts_race").await;
    let (a, b) = (db.store().await, db.store().await);
    for round in 0..20 {
        let name = format!("racer{round}");
        let (ra, rb) = tokio::join!(
            a.create_account(&name, PHC, Role::Player, 1),
            b.create_account(&name, PHC, Role::Player, 2),
        );
        let wins = [ra.is_ok(), rb.is_ok()];
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "round {round}");
        let loser = if ra.is_ok() { rb } else { ra };
        assert!(matches!(loser, Err(StoreError::NameTaken(_))));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_open_resolve_expire_and_are_revoked() {
    let db = Db::new("sessions").await;
    let store = db.store().await;
    store
        .create_account("ada", PHC, Role::Admin, 0)
        .await
        .unwrap();
    store
        .create_account("bob", PHC, Role::Player, 0)
        .await
        .unwrap();

    let session = store.open_session(&token(1), "ada", 10, 100).await.unwrap();
    assert_eq!(
        (session.user.as_str(), session.role, session.expires_unix_s),
        ("ada", Role::Admin, 100)
    );
    let resolved = store.resolve_session(&token(1), 99).await.unwrap();
    assert_eq!(resolved, session);

    // Another gateway resolves the same token.
    let other = db.store().await;
    assert_eq!(other.resolve_session(&token(1), 50).await.unwrap(), session);

    // Unknown tokens, users, and expiries not after now.
    let error = store.resolve_session(&token(9), 50).await.unwrap_err();
    assert!(matches!(error, StoreError::UnknownToken), "{error}");
    let error = store
        .open_session(&token(2), "nobody", 10, 100)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::UnknownUser(n) if n == "nobody"),
        "{error}"
    );
    let error = store
        .open_session(&token(2), "ada", 10, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Invalid {
                what: "session expiry",
                ..
            }
        ),
        "{error}"
    );
    let error = store
        .open_session(&token(1), "bob", 10, 100)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::TokenTaken), "{error}");

    // Expiry: refused at the expiry time, and removed.
    let error = store.resolve_session(&token(1), 100).await.unwrap_err();
    assert!(matches!(error, StoreError::SessionExpired), "{error}");
    let error = store.resolve_session(&token(1), 50).await.unwrap_err();
    assert!(
        matches!(error, StoreError::UnknownToken),
        "gone after expiring: {error}"
    );

    // Revoking one, and all of a user's.
    store.open_session(&token(3), "bob", 0, 1000).await.unwrap();
    store.open_session(&token(4), "bob", 0, 1000).await.unwrap();
    store.open_session(&token(5), "bob", 0, 1000).await.unwrap();
    store.open_session(&token(6), "ada", 0, 1000).await.unwrap();
    assert!(store.revoke_session(&token(3)).await.unwrap());
    assert!(!store.revoke_session(&token(3)).await.unwrap());
    assert!(matches!(
        store.resolve_session(&token(3), 1).await,
        Err(StoreError::UnknownToken)
    ));
    assert_eq!(store.revoke_sessions_of("bob").await.unwrap(), 2);
    assert!(matches!(
        other.resolve_session(&token(5), 1).await,
        Err(StoreError::UnknownToken)
    ));
    assert_eq!(
        store.resolve_session(&token(6), 1).await.unwrap().user,
        "ada"
    );

    // A role change shows in the next resolve.
    store.set_role("ada", Role::Player).await.unwrap();
    assert_eq!(
        store.resolve_session(&token(6), 1).await.unwrap().role,
        Role::Player
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_sessions_are_swept() {
    let db = Db::new("sessions_sweep").await;
    let store = db.store().await;
    store
        .create_account("ada", PHC, Role::Player, 0)
        .await
        .unwrap();
    for n in 0..5u8 {
        let expires = 100 + u64::from(n) * 10;
        store
            .open_session(&token(n), "ada", 0, expires)
            .await
            .unwrap();
    }
    assert_eq!(store.sweep_sessions(120).await.unwrap(), 3, "100, 110, 120");
    assert_eq!(store.sweep_sessions(120).await.unwrap(), 0);
    assert!(store.resolve_session(&token(3), 120).await.is_ok());
    let all = TokenHash([0; 32]);
    assert!(matches!(
        store.resolve_session(&all, 0).await,
        Err(StoreError::UnknownToken)
    ));
}
