//! What shards send each other per tick, and how it grows with the border between them: a
//! 3,000-ship autopilot world (the fleet spawns 40 ships to a sector, about 9 x 9 sectors)
//! run for 100 ticks in-process under assignments with longer and longer shard borders.
//! Prints, per assignment, the encoded exchange bytes, messages, halo entries and handoffs
//! per tick (totals over all shards). Bytes do not depend on the build profile:
//! `cargo run -p astroboids-cluster --example exchange_volume`.

use astroboids_cluster::SectorAssignment;
use astroboids_cluster::local::LocalCluster;
use astroboids_sim::SimOptions;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::WorldInput;

const TICKS: u64 = 100;

fn main() {
    let config = UniverseConfig::default();
    println!("assignment                  bytes/tick  messages/tick  halo/tick  handoffs/tick");
    for assignment in [
        SectorAssignment::Stripes {
            shards: 2,
            width: 4,
        },
        SectorAssignment::Stripes {
            shards: 2,
            width: 2,
        },
        SectorAssignment::Stripes {
            shards: 2,
            width: 1,
        },
        SectorAssignment::Blocks { shards: 4, side: 1 },
    ] {
        let mut cluster = LocalCluster::new(config.clone(), 7, assignment, || SimOptions {
            script_workers: 1,
            ..SimOptions::default()
        });
        cluster
            .submit(WorldInput::SpawnFleet {
                count: 3_000,
                script: None,
            })
            .expect("an empty queue has room");
        let (mut bytes, mut messages, mut halo, mut handoffs) = (0u64, 0u64, 0u64, 0u64);
        for _ in 0..TICKS {
            let outcome = cluster.step(false).expect("the tick runs");
            for (_, _, figures) in &outcome.shards {
                bytes += figures.exchange_bytes_out;
                messages += u64::from(figures.exchange_messages_out);
                halo += u64::from(figures.halo_out);
                handoffs += u64::from(figures.handoffs_out);
            }
        }
        let per_tick = |v: u64| v as f64 / TICKS as f64;
        println!(
            "{:<27} {:>10.0}  {:>13.1}  {:>9.1}  {:>13.2}",
            assignment.to_string(),
            per_tick(bytes),
            per_tick(messages),
            per_tick(halo),
            per_tick(handoffs)
        );
    }
}
