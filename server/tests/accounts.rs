//! Accounts as players and operators rely on them: passwords are checked (and never stored in
//! the clear), sessions expire and can be revoked, names are unique, and all of it survives a
//! restart.

mod common;

use common::fresh_dir;

use std::path::{Path, PathBuf};

use astroboids_net::messages::Token;
use astroboids_server::accounts::{AccountError, AccountRules, Accounts, Role};
use astroboids_storage::{StoreLimits, WorldStore};

const NOW: u64 = 1_800_000_000;

#[test]
fn register_login_authenticate_logout() {
    let dir = fresh_dir("accounts-basic");
    let store = WorldStore::open(&dir, StoreLimits::default()).unwrap();
    let accounts = Accounts::new(&store, AccountRules::default());
    accounts
        .register("ada", "correct horse", Role::Player, NOW)
        .unwrap();
    assert!(matches!(
        accounts.register("ada", "another password", Role::Player, NOW),
        Err(AccountError::NameTaken(_))
    ));
    assert!(matches!(
        accounts.register("bob", "short", Role::Player, NOW),
        Err(AccountError::WeakPassword(m)) if m.contains("at least 8")
    ));
    let err = accounts
        .register("bad name!", "correct horse", Role::Player, NOW)
        .unwrap_err();
    assert!(err.to_string().contains("user name"), "{err}");

    assert!(matches!(
        accounts.login("ada", "wrong horse", NOW),
        Err(AccountError::BadCredentials)
    ));
    assert!(matches!(
        accounts.login("nobody", "correct horse", NOW),
        Err(AccountError::BadCredentials)
    ));
    let (token, session) = accounts.login("ada", "correct horse", NOW).unwrap();
    assert_eq!((session.user.as_str(), session.role), ("ada", Role::Player));
    assert_eq!(accounts.authenticate(&token, NOW + 60).unwrap().user, "ada");
    assert!(matches!(
        accounts.authenticate(&Token("forged".into()), NOW),
        Err(AccountError::UnknownToken)
    ));
    accounts.logout(&token).unwrap();
    assert!(matches!(
        accounts.authenticate(&token, NOW + 60),
        Err(AccountError::UnknownToken)
    ));

    // Nothing in the store holds the password or a token in the clear.
    let (token, _) = accounts.login("ada", "correct horse", NOW).unwrap();
    store.flush().unwrap();
    drop(store);
    let mut everything = Vec::new();
    for entry in walk(&dir) {
        everything.extend(std::fs::read(entry).unwrap());
    }
    let contains = |needle: &[u8]| everything.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(b"correct horse"));
    assert!(!contains(token.0.as_bytes()));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn sessions_expire_can_be_revoked_and_survive_a_restart() {
    let dir = fresh_dir("accounts-sessions");
    let rules = AccountRules {
        session_lifetime_s: 3600,
        ..AccountRules::default()
    };
    let (first, second) = {
        let store = WorldStore::open(&dir, StoreLimits::default()).unwrap();
        let accounts = Accounts::new(&store, rules.clone());
        accounts
            .register("root", "operator password", Role::Admin, NOW)
            .unwrap();
        let (first, _) = accounts.login("root", "operator password", NOW).unwrap();
        let (second, _) = accounts.login("root", "operator password", NOW).unwrap();
        (first, second)
    };
    let store = WorldStore::open(&dir, StoreLimits::default()).unwrap();
    let accounts = Accounts::new(&store, rules);
    let session = accounts.authenticate(&first, NOW + 10).unwrap();
    assert_eq!(
        session.role,
        Role::Admin,
        "accounts and sessions survive a restart"
    );
    assert!(matches!(
        accounts.authenticate(&first, NOW + 3600),
        Err(AccountError::Expired)
    ));
    assert_eq!(
        accounts.revoke_all("root").unwrap(),
        1,
        "the expired one is gone already"
    );
    assert!(matches!(
        accounts.authenticate(&second, NOW + 10),
        Err(AccountError::UnknownToken)
    ));
    accounts.set_role("root", Role::Player).unwrap();
    let (token, session) = accounts.login("root", "operator password", NOW).unwrap();
    assert_eq!(session.role, Role::Player);
    assert_eq!(
        accounts.authenticate(&token, NOW).unwrap().role,
        Role::Player
    );
}
