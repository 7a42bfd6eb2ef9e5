//! The world store as the server and the CLI rely on it: what is written survives a reopen,
//! foreign, newer or damaged data is refused with a clear error (never reset), and limits hold.

use std::path::Path;

use astroboids_storage::{ScriptVersion, StorageError, StoreLimits, WorldStore};
use astroboids_test_kit::TempDir;

fn open(dir: &Path) -> WorldStore {
    WorldStore::open(dir, StoreLimits::default()).expect("store opens")
}

#[test]
fn everything_written_survives_a_reopen() {
    let dir = TempDir::new("store-reopen");
    let (hash, other) = {
        let store = open(&dir);
        let hash = store.put_script(b"\0asm miner").unwrap();
        let other = store.put_script(b"\0asm miner v2").unwrap();
        assert_eq!(store.name_script("alice", "miner", hash).unwrap(), 1);
        assert_eq!(store.name_script("alice", "miner", other).unwrap(), 2);
        assert_eq!(store.name_script("bob", "miner", hash).unwrap(), 1);
        store.append_input(5, b"thrust").unwrap();
        store.append_input(3, b"turn").unwrap();
        store.put_checkpoint(4, b"world at 4").unwrap();
        store.flush().unwrap();
        (hash, other)
    };
    let store = open(&dir);
    assert_eq!(store.script(hash).unwrap().unwrap(), b"\0asm miner");
    assert_eq!(
        store.script_versions("alice", "miner").unwrap(),
        [
            ScriptVersion { version: 1, hash },
            ScriptVersion {
                version: 2,
                hash: other
            }
        ]
    );
    assert_eq!(store.script_versions("bob", "miner").unwrap().len(), 1);
    assert!(store.script_versions("alice", "min").unwrap().is_empty());
    let inputs = store.inputs_from(0).unwrap();
    let order: Vec<(u64, u64, &[u8])> = inputs
        .iter()
        .map(|i| (i.tick, i.seq, i.payload.as_slice()))
        .collect();
    assert_eq!(order, [(3, 1, &b"turn"[..]), (5, 0, &b"thrust"[..])]);
    assert_eq!(
        store.latest_checkpoint().unwrap(),
        Some((4, b"world at 4".to_vec()))
    );
    // Sequence numbers continue after a reopen.
    assert_eq!(store.append_input(9, b"mine").unwrap(), 2);
}

#[test]
fn the_same_script_is_stored_once_and_unknown_ones_cannot_be_named() {
    let dir = TempDir::new("store-scripts");
    let store = open(&dir);
    let a = store.put_script(b"\0asm same").unwrap();
    assert_eq!(store.put_script(b"\0asm same").unwrap(), a);
    assert_eq!(store.script(a ^ 1).unwrap(), None);
    assert_eq!(
        store
            .name_script("alice", "x", a ^ 1)
            .unwrap_err()
            .to_string(),
        format!("no script {:032x} in the store", a ^ 1)
    );
}

#[test]
fn latest_checkpoint_moves_and_pruning_keeps_what_a_restart_needs() {
    let dir = TempDir::new("store-checkpoints");
    let store = open(&dir);
    assert_eq!(store.latest_checkpoint().unwrap(), None);
    for tick in 1..=9 {
        store.append_input(tick, &[tick as u8]).unwrap();
    }
    store.put_checkpoint(3, b"at 3").unwrap();
    store.put_checkpoint(6, b"at 6").unwrap();
    assert_eq!(store.latest_checkpoint().unwrap().unwrap().0, 6);
    store.prune_through(6).unwrap();
    let ticks: Vec<u64> = store
        .inputs_from(0)
        .unwrap()
        .iter()
        .map(|i| i.tick)
        .collect();
    assert_eq!(ticks, [7, 8, 9], "a restart from tick 6 replays 7..");
    assert_eq!(
        store.latest_checkpoint().unwrap(),
        Some((6, b"at 6".to_vec()))
    );
    let from_8: Vec<u64> = store
        .inputs_from(8)
        .unwrap()
        .iter()
        .map(|i| i.tick)
        .collect();
    assert_eq!(from_8, [8, 9]);
}

#[test]
fn foreign_newer_and_damaged_data_is_refused_and_left_alone() {
    // A directory with someone else's files.
    let dir = TempDir::new("store-foreign");
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let err = WorldStore::open(&dir, StoreLimits::default()).unwrap_err();
    assert!(matches!(err, StorageError::Foreign { .. }));
    assert!(
        err.to_string().ends_with(
            "not an AstroBoids data directory: it holds other files; use an empty or new directory"
        ),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );

    // A file where the directory should be.
    let holder = TempDir::new("store-file");
    let file = holder.join("store");
    std::fs::write(&file, "x").unwrap();
    let err = WorldStore::open(&file, StoreLimits::default()).unwrap_err();
    assert!(
        err.to_string().contains("it is a file, not a directory"),
        "{err}"
    );

    // A sled database that is not a world.
    let other = TempDir::new("store-other-sled");
    {
        let db = sled::open(&other).unwrap();
        db.insert("k", "v").unwrap();
        db.flush().unwrap();
    }
    let err = WorldStore::open(&other, StoreLimits::default()).unwrap_err();
    assert!(err.to_string().contains("not an AstroBoids world"), "{err}");

    // A world written by a newer build.
    let newer = TempDir::new("store-newer");
    drop(open(&newer));
    {
        let db = sled::open(&newer).unwrap();
        let meta = db.open_tree("meta").unwrap();
        meta.insert("schema_version", &99u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let err = WorldStore::open(&newer, StoreLimits::default()).unwrap_err();
    assert!(matches!(err, StorageError::SchemaVersion { found: 99, .. }));
    assert!(err.to_string().contains("upgrade astroboids"), "{err}");
}

#[test]
fn damaged_records_are_reported_not_returned() {
    let dir = TempDir::new("store-damaged");
    let hash = {
        let store = open(&dir);
        let hash = store.put_script(b"\0asm good").unwrap();
        store.put_checkpoint(2, b"world").unwrap();
        store.flush().unwrap();
        hash
    };
    {
        let db = sled::open(&dir).unwrap();
        db.open_tree("scripts")
            .unwrap()
            .insert(hash.to_be_bytes(), &b"\0asm evil"[..])
            .unwrap();
        let checkpoints = db.open_tree("checkpoints").unwrap();
        let mut record = checkpoints
            .get(2u64.to_be_bytes())
            .unwrap()
            .unwrap()
            .to_vec();
        *record.last_mut().unwrap() ^= 1;
        checkpoints.insert(2u64.to_be_bytes(), record).unwrap();
        db.flush().unwrap();
    }
    let store = open(&dir);
    let err = store.script(hash).unwrap_err();
    assert!(err.to_string().contains("does not match its hash"), "{err}");
    let err = store.latest_checkpoint().unwrap_err();
    assert!(
        err.to_string().contains("checkpoint 2 fails its checksum"),
        "{err}"
    );
}

#[test]
fn limits_and_names_are_enforced_with_clear_errors() {
    let dir = TempDir::new("store-limits");
    let store = WorldStore::open(
        &dir,
        StoreLimits {
            max_script_bytes: 8,
            max_input_bytes: 4,
            max_checkpoint_bytes: 16,
            max_name_bytes: 5,
        },
    )
    .unwrap();
    assert_eq!(
        store.put_script(b"\0asm too long").unwrap_err().to_string(),
        "script is 13 bytes; the limit is 8"
    );
    assert_eq!(
        store.append_input(1, b"12345").unwrap_err().to_string(),
        "input is 5 bytes; the limit is 4"
    );
    assert!(store.put_checkpoint(1, &[0; 17]).is_err());
    let hash = store.put_script(b"\0asm").unwrap();
    assert_eq!(
        store
            .name_script("al/ce", "x", hash)
            .unwrap_err()
            .to_string(),
        "invalid owner \"al/ce\": '/' is not allowed (use letters, digits, _ . -)"
    );
    assert_eq!(
        store
            .name_script("alice6", "x", hash)
            .unwrap_err()
            .to_string(),
        "invalid owner \"alice6\": it is 6 bytes; the limit is 5"
    );
    assert!(store.name_script("bob", "", hash).is_err());
}
