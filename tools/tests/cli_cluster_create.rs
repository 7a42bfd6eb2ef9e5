//! `astroboids cluster create`: writes a world's spec to etcd once. Run again, it finds the
//! spec and leaves it as it is, saying so (and showing requested settings that differ); bad
//! settings are refused, named, before anything is written.

mod common;

use std::process::Output;

use astroboids_cluster::SectorAssignment;
use astroboids_cluster::plan::{self, WorldSpec};
use astroboids_cluster_net::{Coordination, Versioned};
use astroboids_test_kit::Etcd;

use common::{astroboids, fresh_dir};

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The spec stored for `world`, with its revision.
fn stored(etcd: &str, world: &str) -> Option<Versioned<WorldSpec>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let coordination = Coordination::connect(&[etcd.to_owned()], world, 5)
            .await
            .unwrap();
        let spec = coordination
            .get_json::<WorldSpec>(plan::keys::SPEC)
            .await
            .unwrap();
        let _ = coordination.close().await;
        spec
    })
}

#[test]
fn cluster_create_writes_the_spec_once() {
    let dir = fresh_dir("cluster-create");
    let mut etcd_server = Etcd::start(&dir).unwrap();
    let etcd = etcd_server.endpoint();
    let create = |args: &[&str]| {
        astroboids(&dir)
            .args(["cluster", "create", "--etcd", &etcd, "--world", "made"])
            .args(args)
            .output()
            .unwrap()
    };
    let settings = [
        "--shards",
        "3",
        "--seed",
        "7",
        "--assignment",
        "stripes:2",
        "--tick-ms",
        "40",
    ];

    let first = create(&settings);
    let (stdout, stderr) = text(&first);
    assert!(first.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("world: made (created): seed 7, stripes:2 over 3 shards"),
        "{stdout}"
    );
    assert!(stdout.contains("40 ms per tick"), "{stdout}");
    let spec = stored(&etcd, "made").expect("the spec is written");
    assert_eq!(spec.value.seed, 7);
    assert_eq!(
        spec.value.assignment,
        SectorAssignment::Stripes {
            shards: 3,
            width: 2
        }
    );
    assert_eq!(spec.value.tick_ms, 40);
    assert_eq!(spec.value.last_tick, None);

    // Again with the same settings: it exists, nothing to say about them.
    let again = create(&settings);
    let (stdout, stderr) = text(&again);
    assert!(again.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("world: made (exists): seed 7, stripes:2 over 3 shards"),
        "{stdout}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_eq!(stored(&etcd, "made"), Some(spec.clone()), "unchanged");

    // Other settings, from the environment this time: still the stored ones, both shown.
    let other = astroboids(&dir)
        .args(["cluster", "create"])
        .env("ASTROBOIDS_ETCD", &etcd)
        .env("ASTROBOIDS_WORLD", "made")
        .env("ASTROBOIDS_SEED", "8")
        .env("ASTROBOIDS_SHARDS", "3")
        .env("ASTROBOIDS_ASSIGNMENT", "stripes:2")
        .env("ASTROBOIDS_TICK_MS", "40")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&other);
    assert!(other.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("world: made (exists): seed 7,"),
        "{stdout}"
    );
    assert!(
        stderr.contains("other settings (--seed); the stored ones stand"),
        "{stderr}"
    );
    assert!(stderr.contains("stored:    seed 7, "), "{stderr}");
    assert!(stderr.contains("requested: seed 8, "), "{stderr}");
    assert_eq!(stored(&etcd, "made"), Some(spec), "unchanged");

    // Another world of the same cluster, from the environment: its own spec.
    let second = astroboids(&dir)
        .args(["cluster", "create"])
        .env("ASTROBOIDS_ETCD", &etcd)
        .env("ASTROBOIDS_WORLD", "second")
        .env("ASTROBOIDS_SEED", "8")
        .env_remove("ASTROBOIDS_SHARDS")
        .env_remove("ASTROBOIDS_ASSIGNMENT")
        .env_remove("ASTROBOIDS_TICK_MS")
        .env_remove("ASTROBOIDS_CONFIG")
        .env_remove("ASTROBOIDS_CHECKPOINT_EVERY")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&second);
    assert!(second.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("world: second (created): seed 8, stripes:4 over 2 shards"),
        "{stdout}"
    );
    assert_eq!(stored(&etcd, "second").map(|s| s.value.seed), Some(8));

    // Bad settings are refused by name, and nothing is written.
    for (args, named) in [
        (&["--assignment", "rings:3"][..], "--assignment rings:3"),
        (
            &["--checkpoint-every", "150"][..],
            "persistence.checkpoint_every_ticks",
        ),
    ] {
        let out = astroboids(&dir)
            .args(["cluster", "create", "--etcd", &etcd, "--world", "bad"])
            .args(args)
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(stderr.contains(named), "{stderr}");
    }
    assert_eq!(stored(&etcd, "bad"), None);
    etcd_server.stop();
}
