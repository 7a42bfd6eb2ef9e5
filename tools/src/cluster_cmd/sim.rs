//! `astroboids cluster sim`: a headless world on a fresh local cluster (nats-server, etcd, N
//! shard processes, the leader in this process), summarised like `astroboids sim` from the
//! world's last checkpoint merged from every shard's piece.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use astroboids_cluster::checkpoint;
use astroboids_cluster::messages::TickReport;
use astroboids_cluster::plan::{self, CheckpointRecord};
use astroboids_cluster_net::process::leader::LeaderExit;
use astroboids_cluster_net::process::{LeaderProcess, run_leader_process};
use astroboids_engine::UniverseSeed;
use astroboids_engine::stats::nearest_rank;
use astroboids_sim::inputs::WorldInput;
use astroboids_sim::sectors::Sectors;
use astroboids_sim::ships::ShipIndex;
use astroboids_sim::{SimOptions, SimTotals};

use super::children::ClusterChild;
use super::{roles, start_servers, world_spec};
use crate::cli::cluster::{ClusterEndpoints, ClusterSimArgs};
use crate::script_cmd::load_script_argument;

#[derive(Debug, Serialize)]
struct Summary {
    seed: u64,
    ticks: u64,
    tick: u64,
    ships: usize,
    ships_spawned: u32,
    shards: u32,
    assignment: String,
    /// The whole world's state hash, as `astroboids sim` prints it for the same run.
    state_hash: String,
    /// From the start's publication to the last shard's report, per tick.
    tick_ms_p50: f64,
    tick_ms_p99: f64,
    tick_ms_max: f64,
    /// Each checkpoint tick's time, in order (the last tick is one).
    checkpoint_ticks_ms: Vec<f64>,
    /// The time of each tick after a checkpoint tick, in order: where a shard still busy
    /// with its piece would hold up the next start.
    after_checkpoint_ticks_ms: Vec<f64>,
    ticks_per_s: f64,
    sectors_loaded: usize,
    ore_mined: u64,
    ships_destroyed: u64,
    collision_contacts: u64,
    script: Option<String>,
    script_fuel_used: u64,
    script_faults: u64,
    inputs_applied: u64,
    inputs_refused: u64,
    /// Plans the run went through (more than one: a shard was lost or sectors moved).
    epochs: u64,
    /// Everything the shards sent each other, per tick.
    exchange_bytes_per_tick: f64,
    exchange_messages_per_tick: f64,
    per_shard: Vec<ShardSummary>,
}

#[derive(Debug, Serialize)]
struct ShardSummary {
    shard: u32,
    ships: u64,
    /// Running its sectors' tick (inputs, systems), median.
    tick_ms_p50: f64,
    /// From its tick's end to the last exchange in (the barrier), median.
    exchange_ms_p50: f64,
    exchange_bytes_out_per_tick: f64,
    handoffs_out: u64,
    halo_out_per_tick: f64,
}

pub fn run(args: &ClusterSimArgs) -> Result<()> {
    let mut spec = world_spec(&args.new_world, args.shards, Some(0), Some(args.ticks))?;
    if args.ships > spec.config.limits.max_ships {
        anyhow::bail!(
            "--ships {} exceeds limits.max_ships ({}) of the universe configuration",
            args.ships,
            spec.config.limits.max_ships
        );
    }
    let script = match &args.script {
        Some(path) => Some(load_script_argument(path, &args.sdk)?),
        None => None,
    };
    let setup = WorldInput::fleet_setup(args.ships, script);
    spec.setup = setup;
    let threads = args
        .threads
        .unwrap_or_else(|| (crate::thread_count(None) as u32 / args.shards).max(1));
    let (dir, temporary) = match &args.keep {
        Some(dir) => (dir.clone(), false),
        None => (temp_dir(), true),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = run_in(args, spec, threads, &dir);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!(
            "servers' data and processes' logs kept in {}",
            dir.display()
        );
    }
    let summary = result?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "astroboids-cluster-sim-{}-{nanos}",
        std::process::id()
    ))
}

fn run_in(
    args: &ClusterSimArgs,
    spec: plan::WorldSpec,
    threads: u32,
    dir: &std::path::Path,
) -> Result<Summary> {
    let (mut servers, nats, etcd) = start_servers(dir, None, None, 0, 0)?;
    let endpoints = ClusterEndpoints {
        nats,
        etcd,
        world: "sim".into(),
        lease_ttl: 2,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (coordination, bus) = runtime.block_on(async {
        let (coordination, bus) = roles::connect(&endpoints).await?;
        coordination.put_json(plan::keys::SPEC, &spec).await?;
        anyhow::Ok((coordination, bus))
    })?;
    let mut children = (0..args.shards)
        .map(|member| {
            ClusterChild::start(
                &format!("shard-{member}"),
                dir,
                &endpoints,
                &[
                    "shard".into(),
                    "--member".into(),
                    member.to_string(),
                    "--threads".into(),
                    threads.to_string(),
                ],
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let mut reports: Vec<TickReport> = Vec::new();
    let started = Instant::now();
    let exit = runtime.block_on(async {
        let failed_child = async {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if children
                    .iter_mut()
                    .any(|c| c.exited().is_some_and(|s| !s.success()))
                {
                    return;
                }
            }
        };
        run_leader_process(
            LeaderProcess {
                coordination: &coordination,
                bus: &bus,
                name: "cluster-sim",
            },
            |report| reports.push(report.clone()),
            failed_child,
        )
        .await
    });
    let wall = started.elapsed();
    let exit = exit.context("the leader stopped")?;
    if exit == LeaderExit::Stopped {
        let failed: Vec<String> = children
            .iter_mut()
            .filter_map(|c| c.exited().is_some().then_some(&*c))
            .map(|c| format!("{} failed; its log ends:\n{}", c.role, c.log_tail(8)))
            .collect();
        anyhow::bail!("{}", failed.join("\n"));
    }
    let world = runtime.block_on(async {
        let record = coordination
            .get_json::<CheckpointRecord>(plan::keys::CHECKPOINT)
            .await?
            .context("the cluster finished without a checkpoint record")?
            .value;
        let mut pieces = Vec::new();
        for name in record.piece_names() {
            let bytes = bus
                .get_blob(&name)
                .await?
                .with_context(|| format!("checkpoint piece {name} is missing"))?;
            pieces.push(checkpoint::decode_piece(&name, &bytes)?);
        }
        let _ = coordination.close().await;
        anyhow::Ok(checkpoint::merge(&pieces)?)
    })?;
    for child in &mut children {
        child.stop(Duration::from_secs(5));
    }
    servers.stop();
    summarise(args, &spec, world, &reports, wall)
}

fn summarise(
    args: &ClusterSimArgs,
    spec: &plan::WorldSpec,
    world: astroboids_sim::checkpoint::WorldCheckpoint,
    reports: &[TickReport],
    wall: Duration,
) -> Result<Summary> {
    let last = reports.last().context("the cluster reported no tick")?;
    let mut sim =
        astroboids_sim::checkpoint::restore(spec.config.clone(), &world, SimOptions::default())
            .context("the cluster's last checkpoint does not restore")?;
    let hash = sim.state_hash();
    if hash.total != last.state_hash {
        anyhow::bail!(
            "the cluster reported state hash {:016x} at tick {}, but its merged checkpoint hashes to {}",
            last.state_hash,
            last.tick,
            hash.hex()
        );
    }
    let w = sim.world();
    let totals = w.resource::<SimTotals>().clone();
    // The last run of each tick (a re-run after a lost shard replaces the first).
    let mut final_runs: BTreeMap<u64, &TickReport> = BTreeMap::new();
    for r in reports {
        final_runs.insert(r.tick, r);
    }
    let runs: Vec<&TickReport> = final_runs.values().copied().collect();
    let mut tick_times: Vec<Duration> = runs
        .iter()
        .map(|r| Duration::from_micros(r.tick_us))
        .collect();
    tick_times.sort_unstable();
    let ms = |sorted: &[Duration], p: f64| {
        nearest_rank(sorted, p).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let n = runs.len().max(1) as f64;
    let per_shard = (0..last.shards.len() as u32)
        .map(|shard| {
            let figures: Vec<_> = runs
                .iter()
                .filter_map(|r| r.shards.iter().find(|(s, ..)| *s == shard))
                .collect();
            let mut tick: Vec<Duration> = figures
                .iter()
                .map(|(_, _, f)| Duration::from_micros(f.tick_us))
                .collect();
            let mut exchange: Vec<Duration> = figures
                .iter()
                .map(|(_, _, f)| Duration::from_micros(f.exchange_us))
                .collect();
            tick.sort_unstable();
            exchange.sort_unstable();
            ShardSummary {
                shard,
                ships: last
                    .shards
                    .iter()
                    .find(|(s, ..)| *s == shard)
                    .map_or(0, |s| s.1),
                tick_ms_p50: ms(&tick, 0.5),
                exchange_ms_p50: ms(&exchange, 0.5),
                exchange_bytes_out_per_tick: figures
                    .iter()
                    .map(|(_, _, f)| f.exchange_bytes_out)
                    .sum::<u64>() as f64
                    / n,
                handoffs_out: figures
                    .iter()
                    .map(|(_, _, f)| u64::from(f.handoffs_out))
                    .sum(),
                halo_out_per_tick: figures
                    .iter()
                    .map(|(_, _, f)| f64::from(f.halo_out))
                    .sum::<f64>()
                    / n,
            }
        })
        .collect::<Vec<_>>();
    let refused: u64 = runs
        .iter()
        .map(|r| r.verdicts.iter().filter(|v| v.is_err()).count() as u64)
        .sum();
    let applied: u64 = runs
        .iter()
        .map(|r| r.verdicts.iter().filter(|v| v.is_ok()).count() as u64)
        .sum();
    Ok(Summary {
        seed: w.resource::<UniverseSeed>().0,
        ticks: args.ticks,
        tick: sim.tick(),
        ships: w.resource::<ShipIndex>().len(),
        ships_spawned: args.ships,
        shards: args.shards,
        assignment: spec.assignment.to_string(),
        state_hash: hash.hex(),
        tick_ms_p50: ms(&tick_times, 0.5),
        tick_ms_p99: ms(&tick_times, 0.99),
        tick_ms_max: tick_times.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        checkpoint_ticks_ms: runs
            .iter()
            .filter(|r| spec.is_checkpoint_tick(r.tick))
            .map(|r| r.tick_us as f64 / 1e3)
            .collect(),
        after_checkpoint_ticks_ms: runs
            .iter()
            .filter(|r| spec.is_checkpoint_tick(r.tick.saturating_sub(1)))
            .map(|r| r.tick_us as f64 / 1e3)
            .collect(),
        ticks_per_s: args.ticks as f64 / wall.as_secs_f64().max(1e-9),
        sectors_loaded: w.resource::<Sectors>().loaded_count(),
        ore_mined: totals.ore_mined,
        ships_destroyed: totals.ships_destroyed,
        collision_contacts: totals.collision_contacts,
        script: args.script.as_ref().map(|p| p.display().to_string()),
        script_fuel_used: totals.script_fuel_used,
        script_faults: totals.script_faults,
        inputs_applied: applied,
        inputs_refused: refused,
        epochs: reports.iter().map(|r| r.epoch).max().unwrap_or(0),
        exchange_bytes_per_tick: per_shard
            .iter()
            .map(|s| s.exchange_bytes_out_per_tick)
            .sum(),
        exchange_messages_per_tick: runs
            .iter()
            .flat_map(|r| {
                r.shards
                    .iter()
                    .map(|(_, _, f)| f64::from(f.exchange_messages_out))
            })
            .sum::<f64>()
            / n,
        per_shard,
    })
}

fn print_summary(s: &Summary) {
    println!(
        "cluster sim: seed {}, {} ticks on {} shards ({})",
        s.seed, s.ticks, s.shards, s.assignment
    );
    println!(
        "  ships            {} alive of {} spawned ({} destroyed)",
        s.ships, s.ships_spawned, s.ships_destroyed
    );
    println!("  state hash       {}", s.state_hash);
    println!(
        "  tick             p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.1} ticks/s",
        s.tick_ms_p50, s.tick_ms_p99, s.tick_ms_max, s.ticks_per_s
    );
    let list = |ms: &[f64]| {
        ms.iter()
            .map(|m| format!("{m:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  checkpoints      ticks {} ms; the ticks after them {} ms",
        list(&s.checkpoint_ticks_ms),
        list(&s.after_checkpoint_ticks_ms)
    );
    println!(
        "  exchange         {:.0} B and {:.1} messages per tick between shards; {} plan(s)",
        s.exchange_bytes_per_tick, s.exchange_messages_per_tick, s.epochs
    );
    println!(
        "  world            {} sectors loaded, {} ore mined, {} collision contacts",
        s.sectors_loaded, s.ore_mined, s.collision_contacts
    );
    if let Some(script) = &s.script {
        println!(
            "  scripts          {script}: {} fuel used, {} faults",
            s.script_fuel_used, s.script_faults
        );
    }
    for shard in &s.per_shard {
        println!(
            "  shard {:<3}        {:>6} ships, tick p50 {:.2} ms, barrier p50 {:.2} ms, {:.0} B/tick out, {} handoffs",
            shard.shard,
            shard.ships,
            shard.tick_ms_p50,
            shard.exchange_ms_p50,
            shard.exchange_bytes_out_per_tick,
            shard.handoffs_out
        );
    }
}
