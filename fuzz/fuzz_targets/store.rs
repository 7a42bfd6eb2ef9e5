//! A world's data directory with arbitrary records in it, read back the ways the host and the
//! server read it.
//!
//! The store's decoding is private (checksummed world info and checkpoints, input keys,
//! script-name keys, the schema marker), so records are planted underneath it: sled is opened
//! directly on a scratch directory, the records written raw, and the directory then opened as
//! a `WorldStore`. That costs two sled opens per input (a few milliseconds on tmpfs), which is
//! why this target runs fewer inputs per second than the codec targets.
//!
//! Input: `[flags u8]` then records in `split_records` layout, each
//! `[tree index u8][key length u8][key][value]` (trees as in `astroboids_fuzz::STORE_TREES`).
//! Flags bit 0: leave out the format and schema markers a new store gets (a foreign or damaged
//! directory). Bit 1: also open the directory as the host's `PersistentWorld` (world info,
//! checkpoint and input-log decoding, restore and re-applying the log), when the records
//! describe a world of test size: its cost grows with the ticks it re-runs.
//!
//! Account and session records are opaque bytes to the store; the server decodes them as
//! postcard structs private to it. The store side (names, iteration) is fuzzed here; postcard
//! decoding itself is the messages target's subject.
#![no_main]

use libfuzzer_sys::fuzz_target;

use astroboids_fuzz::{STORE_TREES, ScratchDir, split_records};
use astroboids_host::{PersistentWorld, WorldRequest};
use astroboids_sim::UniverseConfig;
use astroboids_sim::checkpoint;
use astroboids_storage::{StoreLimits, WorldStore};

/// Ticks a `PersistentWorld` open may re-run (inputs, tick-reached marker).
const MAX_TICK: u64 = 40;

struct Record<'a> {
    tree: usize,
    key: &'a [u8],
    value: &'a [u8],
}

fn records(data: &[u8]) -> Vec<Record<'_>> {
    split_records(data)
        .into_iter()
        .filter_map(|r| {
            let [tree, key_len, rest @ ..] = r else {
                return None;
            };
            let key_len = usize::from(*key_len).min(rest.len());
            let (key, value) = rest.split_at(key_len);
            Some(Record {
                tree: usize::from(*tree) % STORE_TREES.len(),
                key,
                value,
            })
        })
        .collect()
}

/// Whether opening these records as a world re-runs a bounded number of small ticks.
fn world_sized(records: &[Record<'_>]) -> bool {
    let be_u64 = |b: &[u8]| <[u8; 8]>::try_from(b).map(u64::from_be_bytes).ok();
    records.iter().all(|r| match (STORE_TREES[r.tree], r.key) {
        ("meta", b"tick_reached") => be_u64(r.value).is_none_or(|t| t <= MAX_TICK),
        ("meta", b"world_info") => {
            // The world info starts with (format, universe seed, configuration TOML): only
            // the embedded configuration is opened (a hostile one makes sectors arbitrarily
            // expensive to generate).
            let Some(payload) = r.value.get(16..) else {
                return true;
            };
            match postcard::take_from_bytes::<(u32, u64, String)>(payload) {
                Ok(((_, _, toml), _)) => UniverseConfig::from_toml_str(&toml, "fuzz")
                    .is_ok_and(|c| c == UniverseConfig::default()),
                Err(_) => true,
            }
        }
        ("inputs", key) => key.get(..8).and_then(be_u64).is_none_or(|t| t <= MAX_TICK),
        ("checkpoints", _) => r.value.get(16..).is_none_or(|packed| {
            astroboids_host::compress::unpack(packed, 16 << 20)
                .ok()
                .and_then(|b| checkpoint::decode(&b).ok())
                .is_none_or(|cp| {
                    cp.tick <= MAX_TICK
                        && cp.ships.len() <= 16
                        && cp.loaded_sectors.len() <= 16
                        && cp.scripts.len() <= 2
                })
        }),
        _ => true,
    })
}

/// Everything the store hands out, read once.
fn read_all(store: &WorldStore, records: &[Record<'_>]) {
    let _ = store.world_info();
    let _ = store.tick_reached();
    let _ = store.latest_checkpoint();
    if let Ok(inputs) = store.inputs_from(0) {
        assert!(
            inputs
                .windows(2)
                .all(|w| (w[0].tick, w[0].seq) < (w[1].tick, w[1].seq)),
            "the input log is out of order"
        );
    }
    let _ = store.accounts();
    let _ = store.sessions();
    for r in records {
        match STORE_TREES[r.tree] {
            "scripts" => {
                if let Ok(hash) = <[u8; 16]>::try_from(r.key) {
                    let _ = store.script(u128::from_be_bytes(hash));
                }
            }
            "script_names" => {
                let text = String::from_utf8_lossy(r.key);
                let mut parts = text.split('/');
                if let (Some(owner), Some(name)) = (parts.next(), parts.next()) {
                    let _ = store.script_names(owner);
                    let _ = store.script_versions(owner, name);
                }
            }
            "accounts" => {
                let _ = store.account(&String::from_utf8_lossy(r.key));
            }
            "sessions" => {
                let _ = store.session(r.key);
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, rest @ ..] = data else {
        return;
    };
    let records = records(rest);
    let dir = ScratchDir::new("store");
    {
        let db = sled::Config::new()
            .path(dir.path())
            .open()
            .expect("sled opens a scratch directory");
        if flags & 1 == 0 {
            let meta = db.open_tree("meta").unwrap();
            meta.insert("format", "astroboids-world").unwrap();
            meta.insert(
                "schema_version",
                &astroboids_storage::SCHEMA_VERSION.to_be_bytes(),
            )
            .unwrap();
        }
        for r in &records {
            let tree = db.open_tree(STORE_TREES[r.tree]).unwrap();
            tree.insert(r.key, r.value).unwrap();
        }
        db.flush().unwrap();
    }
    if let Ok(store) = WorldStore::open(dir.path(), StoreLimits::default()) {
        read_all(&store, &records);
    } else {
        return;
    }
    if flags & 2 == 2 && world_sized(&records) {
        let request = WorldRequest {
            seed: None,
            config: None,
            script_workers: 1,
        };
        if let Ok((mut world, _)) = PersistentWorld::open(dir.path(), request) {
            let _ = world.state_hash();
        }
    }
});
