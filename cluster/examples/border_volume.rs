//! Exchange traffic per shared sector edge: the figure the 100-shard model in docs/cluster.md
//! scales by border length. Runs an autopilot world in-process (`LocalCluster`, messages
//! passed by value and encoded only to be counted) under each assignment and, every tick,
//! counts the shard borders it actually has: the sector edges between two sectors held by
//! different shards, one side at least holding a ship. Prints per tick: the shared edges,
//! bytes, messages, halo entries and handoffs (totals over all shards), bytes per shared edge
//! and direction, the busiest shard's bytes out, the neighbours each shard sends to, ships per
//! occupied sector (the density the bytes per edge belong to), and what
//! a shard's `TickDone` hash shares (the cheap parts, sent every tick) take, encoded, at the
//! end (they carry a digest per occupied sector, so they grow with the sectors a shard holds).
//! Bytes do not depend on the build profile or the machine.
//!
//! `cargo run --release -p astroboids-cluster --example border_volume -- [--ships N]
//! [--ticks T] [--seed S] [ASSIGNMENT/SHARDS ...]`, e.g. `stripes:1/2 blocks:2/9`.

use std::collections::BTreeSet;

use astroboids_cluster::SectorAssignment;
use astroboids_cluster::local::LocalCluster;
use astroboids_engine::hash::{HashShares, PartShare};
use astroboids_engine::{HashCost, StateHashExt};
use astroboids_sim::SimOptions;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::WorldInput;
use astroboids_sim::ships::ShipIndex;
use astroboids_sim::space::SectorCoord;

const DEFAULT_ASSIGNMENTS: &[&str] = &[
    "stripes:4/2",
    "stripes:2/2",
    "stripes:1/2",
    "blocks:4/4",
    "blocks:2/4",
    "blocks:1/4",
    "stripes:2/8",
    "blocks:2/9",
];

fn main() {
    let mut ships = 10_000u32;
    let mut ticks = 100u64;
    let mut seed = 7u64;
    let mut assignments = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        match arg.as_str() {
            "--ships" => ships = value("--ships") as u32,
            "--ticks" => ticks = value("--ticks").max(1),
            "--seed" => seed = value("--seed"),
            spec => assignments.push(parse(spec)),
        }
    }
    if assignments.is_empty() {
        assignments = DEFAULT_ASSIGNMENTS.iter().copied().map(parse).collect();
    }
    let config = UniverseConfig::default();
    println!("{ships} autopilot ships, seed {seed}, {ticks} ticks; per tick:");
    println!(
        "{:<26} {:>6} {:>9} {:>5} {:>7} {:>8} {:>9} {:>9} {:>7} {:>10} {:>14} {:>12}",
        "assignment",
        "edges",
        "bytes",
        "msgs",
        "halo",
        "handoffs",
        "B/edge/dir",
        "max shard",
        "halo/e",
        "neighbours",
        "shares B/shard",
        "ships/sector"
    );
    let mut merge_costs = Vec::new();
    for assignment in assignments {
        let mut cluster = LocalCluster::new(config.clone(), seed, assignment, || SimOptions {
            script_workers: 1,
            ..SimOptions::default()
        });
        cluster
            .submit(WorldInput::SpawnFleet {
                count: ships,
                script: None,
            })
            .expect("an empty queue has room");
        let (mut bytes, mut messages, mut halo, mut handoffs) = (0u64, 0u64, 0u64, 0u64);
        let (mut edges, mut busiest, mut sectors) = (0u64, 0u64, 0u64);
        for _ in 0..ticks {
            let outcome = cluster.step(false).expect("the tick runs");
            let mut most = 0;
            for (_, _, figures) in &outcome.shards {
                bytes += figures.exchange_bytes_out;
                messages += u64::from(figures.exchange_messages_out);
                halo += u64::from(figures.halo_out);
                handoffs += u64::from(figures.handoffs_out);
                most = most.max(figures.exchange_bytes_out);
            }
            busiest += most;
            let (shared, occupied) = shared_edges(&cluster, assignment);
            edges += shared;
            sectors += occupied;
        }
        let neighbours: BTreeSet<usize> = cluster
            .shards()
            .iter()
            .map(|s| s.neighbours().len())
            .collect();
        let all_shares: Vec<HashShares> = cluster
            .shards_mut()
            .iter_mut()
            .map(|s| s.sim_mut().world_mut().hash_shares(Some(HashCost::Cheap)))
            .collect();
        let shares = all_shares
            .iter()
            .map(|h| postcard::to_allocvec(h).map_or(0, |b| b.len()))
            .sum::<usize>()
            / all_shares.len().max(1);
        merge_costs.push((assignment, all_shares));
        let per_tick = |v: u64| v as f64 / ticks as f64;
        let per_edge = |v: u64| v as f64 / edges.max(1) as f64;
        println!(
            "{:<26} {:>6.0} {:>9.0} {:>5.1} {:>7.0} {:>8.2} {:>9.0} {:>9.0} {:>7.2} {:>10} {:>14} {:>12.1}",
            assignment.to_string(),
            per_tick(edges),
            per_tick(bytes),
            per_tick(messages),
            per_tick(halo),
            per_tick(handoffs),
            // Every shared edge carries traffic both ways.
            per_edge(bytes) / 2.0,
            per_tick(busiest),
            per_edge(halo),
            neighbours
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            shares,
            f64::from(ships) * ticks as f64 / sectors.max(1) as f64
        );
    }
    // What the leader does with the reports every tick: decode them, merge the shares, finish
    // the world's hash (timed here in this process, so it depends on the build and machine).
    println!(
        "\nthe leader's fold of the last tick's shares (decode, merge, finish), in this process:"
    );
    for (assignment, shares) in merge_costs {
        let encoded: Vec<Vec<u8>> = shares
            .iter()
            .map(|h| postcard::to_allocvec(h).expect("shares encode"))
            .collect();
        let entries: usize = shares
            .iter()
            .flat_map(|h| &h.parts)
            .map(|(_, p)| match p {
                PartShare::Partitioned(m) => m.len(),
                _ => 0,
            })
            .sum();
        let runs = 200;
        let began = std::time::Instant::now();
        for _ in 0..runs {
            let decoded: Vec<HashShares> = encoded
                .iter()
                .map(|b| postcard::from_bytes(b).expect("shares decode"))
                .collect();
            let merged = HashShares::merge(&decoded).expect("disjoint shares");
            std::hint::black_box(merged.finish());
        }
        let us = began.elapsed().as_secs_f64() * 1e6 / f64::from(runs);
        println!(
            "{:<26} {:>3} reports, {:>6} partition entries, {:>8.1} us ({:.3} us/entry)",
            assignment.to_string(),
            shares.len(),
            entries,
            us,
            us / entries.max(1) as f64
        );
    }
}

/// `stripes:W/N` or `blocks:S/N`.
fn parse(spec: &str) -> SectorAssignment {
    let (rule, shards) = spec
        .split_once('/')
        .unwrap_or_else(|| panic!("{spec}: expected stripes:W/SHARDS or blocks:S/SHARDS"));
    let shards = shards
        .parse()
        .unwrap_or_else(|e| panic!("{spec}: shards: {e}"));
    SectorAssignment::parse(rule, shards).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

/// Sector edges between sectors of different shards with a ship on at least one side, and the
/// sectors with a ship.
fn shared_edges(cluster: &LocalCluster, assignment: SectorAssignment) -> (u64, u64) {
    let occupied: BTreeSet<SectorCoord> = cluster
        .shards()
        .iter()
        .flat_map(|s| {
            s.sim()
                .world()
                .resource::<ShipIndex>()
                .occupied_sectors()
                .collect::<Vec<_>>()
        })
        .collect();
    let mut edges = BTreeSet::new();
    for &sector in &occupied {
        for (dx, dy) in [(1, 0), (-1, 0), (0, 1), (0, -1)] {
            let Some(other) = sector.offset(dx, dy) else {
                continue;
            };
            if assignment.shard_of(sector) != assignment.shard_of(other) {
                let key = if (sector.x, sector.y) < (other.x, other.y) {
                    ((sector.x, sector.y), (other.x, other.y))
                } else {
                    ((other.x, other.y), (sector.x, sector.y))
                };
                edges.insert(key);
            }
        }
    }
    (edges.len() as u64, occupied.len() as u64)
}
