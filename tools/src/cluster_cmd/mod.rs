//! `astroboids cluster up | sim | status`, `astroboids shard`, `astroboids leader`: one world
//! over several processes (see docs/cluster.md).

mod children;
pub mod roles;
mod sim;
mod up;

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use astroboids_cluster::SectorAssignment;
use astroboids_cluster::messages::TickReport;
use astroboids_cluster::plan::{self, CheckpointRecord, Plan, WorldSpec};
use astroboids_cluster_net::Coordination;
use astroboids_cluster_net::process::OUTCOME_SUBJECT;
use astroboids_infra::{Etcd, NatsServer};

use crate::cli::cluster::{ClusterCommand, ClusterStatusArgs, WorldArgs};
use crate::universe_config::load_config;

pub fn run(command: &ClusterCommand) -> Result<()> {
    match command {
        ClusterCommand::Up(args) => up::run(args),
        ClusterCommand::Create(args) => create(args),
        ClusterCommand::Sim(args) => sim::run(args),
        ClusterCommand::Status(args) => status(args),
    }
}

/// A new world's spec from the command line.
fn world_spec(
    args: &WorldArgs,
    shards: u32,
    tick_ms: Option<u64>,
    last_tick: Option<u64>,
) -> Result<WorldSpec> {
    let config = load_config(args.config.as_deref())?;
    let assignment = SectorAssignment::parse(&args.assignment, shards)
        .with_context(|| format!("--assignment {}", args.assignment))?;
    let checkpoint_every = args
        .checkpoint_every
        .unwrap_or(config.persistence.checkpoint_every_ticks);
    let tick_ms = tick_ms.unwrap_or(1_000 / u64::from(config.simulation.tick_rate_hz));
    WorldSpec {
        seed: args.seed,
        config,
        assignment,
        checkpoint_every,
        tick_ms,
        last_tick,
        setup: Vec::new(),
    }
    .validated()
    .context("the world's settings")
}

/// Writes the spec unless the world has one; returns the one in force.
async fn ensure_spec(coordination: &Coordination, spec: &WorldSpec) -> Result<WorldSpec> {
    if let Some(existing) = coordination.get_json::<WorldSpec>(plan::keys::SPEC).await? {
        return Ok(existing.value);
    }
    coordination.put_json(plan::keys::SPEC, spec).await?;
    Ok(spec.clone())
}

/// `cluster create`: writes the world's spec unless it has one, in one etcd transaction (of
/// two at once, one writes it and the other finds it), and says which. A world keeps the spec
/// it was made with: requested settings that differ are shown beside the stored ones, and the
/// command still succeeds.
fn create(args: &crate::cli::cluster::ClusterCreateArgs) -> Result<()> {
    fn describe(spec: &WorldSpec) -> String {
        let mut text = format!(
            "seed {}, {}, checkpoint every {} ticks, {} ms per tick",
            spec.seed, spec.assignment, spec.checkpoint_every, spec.tick_ms
        );
        if let Some(last) = spec.last_tick {
            text.push_str(&format!(", until tick {last}"));
        }
        if !spec.setup.is_empty() {
            text.push_str(&format!(", {} set-up inputs", spec.setup.len()));
        }
        text
    }
    let requested = world_spec(&args.world_args(), args.shards, args.tick_ms, None)?;
    // As it reads back from the store (so that equal settings compare equal, floats too).
    let requested: WorldSpec = serde_json::from_str(&serde_json::to_string(&requested)?)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stored, created) = runtime.block_on(async {
        let coordination =
            Coordination::connect(std::slice::from_ref(&args.etcd), &args.world, 5).await?;
        let mut found = None;
        // A spec deleted between the write refused and the read: try again.
        for _ in 0..3 {
            let outcome = coordination
                .put_json_if_revision(plan::keys::SPEC, &requested, 0)
                .await?;
            if matches!(outcome, astroboids_cluster_net::CasOutcome::Written { .. }) {
                found = Some((requested.clone(), true));
                break;
            }
            if let Some(stored) = coordination.get_json::<WorldSpec>(plan::keys::SPEC).await? {
                found = Some((stored.value, false));
                break;
            }
        }
        let _ = coordination.close().await;
        found.context("the world's spec was written and deleted again while this looked")
    })?;
    println!(
        "world: {} ({}): {}",
        args.world,
        if created { "created" } else { "exists" },
        describe(&stored)
    );
    if stored != requested {
        let differ: Vec<&str> = [
            (stored.seed != requested.seed, "--seed"),
            (stored.config != requested.config, "--config"),
            (
                stored.assignment != requested.assignment,
                "--shards/--assignment",
            ),
            (
                stored.checkpoint_every != requested.checkpoint_every,
                "--checkpoint-every",
            ),
            (stored.tick_ms != requested.tick_ms, "--tick-ms"),
            (stored.last_tick != requested.last_tick, "last tick"),
            (stored.setup != requested.setup, "set-up inputs"),
        ]
        .into_iter()
        .filter_map(|(differs, what)| differs.then_some(what))
        .collect();
        eprintln!(
            "warning: the world {} exists with other settings ({}); the stored ones stand (a world's settings are fixed for its life):\n  stored:    {}\n  requested: {}",
            args.world,
            differ.join(", "),
            describe(&stored),
            describe(&requested)
        );
    }
    Ok(())
}

/// The servers a local cluster runs itself.
struct Servers {
    nats: Option<NatsServer>,
    etcd: Option<Etcd>,
}

impl Servers {
    fn stop(&mut self) {
        if let Some(n) = &mut self.nats {
            n.stop();
        }
        if let Some(e) = &mut self.etcd {
            e.stop();
        }
    }
}

fn start_servers(
    dir: &Path,
    nats: Option<&str>,
    etcd: Option<&str>,
    nats_port: u16,
    etcd_port: u16,
) -> Result<(Servers, String, String)> {
    let nats_server = match nats {
        Some(_) => None,
        None => Some(
            NatsServer::start_on(&dir.join("nats"), nats_port)
                .context("cannot start nats-server")?,
        ),
    };
    let etcd_server = match etcd {
        Some(_) => None,
        None => {
            let peer = if etcd_port == 0 { 0 } else { etcd_port + 1 };
            Some(Etcd::start_on(&dir.join("etcd"), etcd_port, peer).context("cannot start etcd")?)
        }
    };
    let nats_url = nats.map_or_else(
        || nats_server.as_ref().expect("started").url(),
        str::to_owned,
    );
    let etcd_url = etcd.map_or_else(
        || etcd_server.as_ref().expect("started").endpoint(),
        str::to_owned,
    );
    Ok((
        Servers {
            nats: nats_server,
            etcd: etcd_server,
        },
        nats_url,
        etcd_url,
    ))
}

#[derive(Debug, Serialize)]
struct Status {
    world: String,
    leader: Option<String>,
    leader_fence: Option<u64>,
    live_processes: Vec<u32>,
    gateways: Vec<GatewayStatus>,
    plan: Option<PlanStatus>,
    checkpoint: Option<CheckpointRecord>,
    last_tick: Option<TickStatus>,
}

#[derive(Debug, Serialize)]
struct GatewayStatus {
    name: String,
    addr: String,
    fingerprint: String,
}

#[derive(Debug, Serialize)]
struct PlanStatus {
    epoch: u64,
    assignment: String,
    /// (shard, process) pairs.
    members: Vec<(u32, u32)>,
    from_tick: u64,
}

#[derive(Debug, Serialize)]
struct TickStatus {
    tick: u64,
    epoch: u64,
    state_hash: String,
    ships: u64,
    tick_ms: f64,
    shards: Vec<ShardStatus>,
}

#[derive(Debug, Serialize)]
struct ShardStatus {
    shard: u32,
    ships: u64,
    tick_ms: f64,
    exchange_ms: f64,
    exchange_bytes_out: u64,
    handoffs_out: u32,
    halo_out: u32,
}

fn tick_status(report: &TickReport) -> TickStatus {
    TickStatus {
        tick: report.tick,
        epoch: report.epoch,
        state_hash: format!("{:016x}", report.state_hash),
        ships: report.ships,
        tick_ms: report.tick_us as f64 / 1e3,
        shards: report
            .shards
            .iter()
            .map(|(shard, ships, f)| ShardStatus {
                shard: *shard,
                ships: *ships,
                tick_ms: f.tick_us as f64 / 1e3,
                exchange_ms: f.exchange_us as f64 / 1e3,
                exchange_bytes_out: f.exchange_bytes_out,
                handoffs_out: f.handoffs_out,
                halo_out: f.halo_out,
            })
            .collect(),
    }
}

fn status(args: &ClusterStatusArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(async {
        let (coordination, bus) = roles::connect(&args.endpoints).await?;
        let leader = coordination.leader().await?;
        let live = coordination.live_shards().await?;
        let gateways = coordination.gateways().await?;
        let plan = coordination.get_json::<Plan>(plan::keys::PLAN).await?;
        let checkpoint = coordination
            .get_json::<CheckpointRecord>(plan::keys::CHECKPOINT)
            .await?;
        let last = match bus.last_message(OUTCOME_SUBJECT).await? {
            Some(m) => Some(
                postcard::from_bytes::<TickReport>(&m.payload)
                    .context("the last tick report does not decode")?,
            ),
            None => None,
        };
        let _ = coordination.close().await;
        anyhow::Ok(Status {
            world: args.endpoints.world.clone(),
            leader_fence: leader.as_ref().map(|l| l.1),
            leader: leader.map(|l| l.0),
            live_processes: live.keys().copied().collect(),
            gateways: gateways
                .into_iter()
                .map(|g| GatewayStatus {
                    name: g.name,
                    addr: g.addr,
                    fingerprint: g.fingerprint,
                })
                .collect(),
            plan: plan.map(|p| PlanStatus {
                epoch: p.value.epoch,
                assignment: p.value.assignment.to_string(),
                members: p
                    .value
                    .members
                    .iter()
                    .enumerate()
                    .map(|(s, m)| (s as u32, *m))
                    .collect(),
                from_tick: p.value.from_tick(),
            }),
            checkpoint: checkpoint.map(|c| c.value),
            last_tick: last.as_ref().map(tick_status),
        })
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(());
    }
    println!("world {}", status.world);
    match (&status.leader, status.leader_fence) {
        (Some(name), Some(fence)) => println!("  leader           {name} (fence {fence})"),
        _ => println!("  leader           none elected"),
    }
    println!("  live processes   {:?}", status.live_processes);
    for g in &status.gateways {
        println!(
            "  gateway          {} at {} (fingerprint {})",
            g.name, g.addr, g.fingerprint
        );
    }
    if status.gateways.is_empty() {
        println!("  gateways         none");
    }
    match &status.plan {
        Some(p) => println!(
            "  plan             epoch {}, {}, from tick {}; shard->process {:?}",
            p.epoch, p.assignment, p.from_tick, p.members
        ),
        None => println!("  plan             none yet"),
    }
    match &status.checkpoint {
        Some(c) => println!("  checkpoint       tick {} ({} ships)", c.tick, c.ships),
        None => println!("  checkpoint       none yet"),
    }
    match &status.last_tick {
        Some(t) => {
            println!(
                "  tick             {} (epoch {}), {} ships, hash {}, {:.2} ms",
                t.tick, t.epoch, t.ships, t.state_hash, t.tick_ms
            );
            for s in &t.shards {
                println!(
                    "    shard {:<3} {:>7} ships  tick {:>7.2} ms  exchange {:>7.2} ms  {:>8} B out  {} handoffs  {} halo",
                    s.shard,
                    s.ships,
                    s.tick_ms,
                    s.exchange_ms,
                    s.exchange_bytes_out,
                    s.handoffs_out,
                    s.halo_out
                );
            }
        }
        None => println!("  tick             none run yet"),
    }
    Ok(())
}
