//! `astroboids cluster up`: a whole local cluster (servers, leaders, shards, gateways) until
//! Ctrl-C, printing where everything listens and, at the end, the leader's tick pace.

use std::time::Duration;

use anyhow::{Context, Result};

use astroboids_cluster::messages::TickReport;
use astroboids_cluster_net::Coordination;
use astroboids_cluster_net::process::OUTCOME_SUBJECT;
use astroboids_infra::Postgres;
use astroboids_server::tls::ServerIdentity;

use super::children::ClusterChild;
use super::{ensure_spec, start_servers, world_spec};
use crate::cli::cluster::{ClusterEndpoints, ClusterUpArgs};
use crate::stop_signals::StopSignals;

pub(super) fn run(args: &ClusterUpArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create {}", args.data.display()))?;
    let spec = world_spec(&args.new_world, args.shards, args.tick_ms, None)?;
    let (mut servers, nats, etcd) = start_servers(
        &args.data,
        args.nats.as_deref(),
        args.etcd.as_deref(),
        args.nats_port,
        args.etcd_port,
    )?;
    let endpoints = ClusterEndpoints {
        nats,
        etcd,
        world: args.world.clone(),
        lease_ttl: 2,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let spec = runtime.block_on(async {
        let coordination =
            Coordination::connect(std::slice::from_ref(&endpoints.etcd), &endpoints.world, 5)
                .await?;
        let spec = ensure_spec(&coordination, &spec).await?;
        let _ = coordination.close().await;
        anyhow::Ok(spec)
    })?;
    let postgres_server = match &args.postgres {
        Some(_) => None,
        None if args.gateways == 0 => None,
        None => Some(
            Postgres::start_on(&args.data.join("postgres"), args.postgres_port)
                .context("cannot start PostgreSQL")?,
        ),
    };
    let postgres = args
        .postgres
        .clone()
        .or_else(|| postgres_server.as_ref().map(Postgres::url));
    // Made once here, before any gateway starts: gateways starting together on a fresh
    // directory would each make their own.
    let identity_dir = args.data.join("gateway");
    let (identity, _) =
        ServerIdentity::load_or_create(&identity_dir).context("the gateways' TLS identity")?;
    println!("nats: {}", endpoints.nats);
    println!("etcd: {}", endpoints.etcd);
    if let Some(url) = &postgres {
        println!("postgres: {url}");
    }
    println!(
        "world: {} (seed {}, {}, checkpoint every {} ticks, {} ms per tick)",
        endpoints.world, spec.seed, spec.assignment, spec.checkpoint_every, spec.tick_ms
    );
    // The children log as `cluster up` was asked to.
    let log_args = |mut role_args: Vec<String>| {
        let format = match args.log.log_format {
            crate::cli::LogFormat::Text => "text",
            crate::cli::LogFormat::Json => "json",
        };
        role_args.extend([
            "--log-level".into(),
            args.log.log_level.clone(),
            "--log-format".into(),
            format.into(),
        ]);
        role_args
    };
    let mut children = Vec::new();
    for i in 0..args.leaders {
        let role = format!("leader-{i}");
        let child = ClusterChild::start(
            &role,
            &args.data,
            &endpoints,
            &log_args(vec!["leader".into(), "--name".into(), role.clone()]),
        )?;
        println!("{role}: pid {}, log {}", child.pid(), child.log.display());
        children.push(child);
    }
    for member in 0..args.shards {
        let role = format!("shard-{member}");
        let child = ClusterChild::start(
            &role,
            &args.data,
            &endpoints,
            &log_args(vec!["shard".into(), "--member".into(), member.to_string()]),
        )?;
        println!("{role}: pid {}, log {}", child.pid(), child.log.display());
        children.push(child);
    }
    let mut gateways = Vec::new();
    for i in 0..args.gateways {
        let role = format!("gateway-{i}");
        let port = if args.gateway_port == 0 {
            0
        } else {
            args.gateway_port
                .checked_add(i as u16)
                .context("--gateway-port: no room for that many gateways")?
        };
        let child = ClusterChild::start(
            &role,
            &args.data,
            &endpoints,
            &log_args(vec![
                "gateway".into(),
                "--name".into(),
                role.clone(),
                "--postgres".into(),
                postgres
                    .clone()
                    .expect("a database when there are gateways"),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--identity".into(),
                identity_dir.display().to_string(),
                "--max-connections-per-ip".into(),
                args.gateway_limits.max_connections_per_ip.to_string(),
                "--requests-per-ip-per-s".into(),
                args.gateway_limits.requests_per_ip_per_s.to_string(),
            ]),
        )?;
        println!("{role}: pid {}, log {}", child.pid(), child.log.display());
        children.push(child);
        gateways.push(children.len() - 1);
    }
    for &i in &gateways {
        let addr = children[i].wait_for_line("listening: ", Duration::from_secs(120))?;
        println!("listening: {addr}");
    }
    if !gateways.is_empty() {
        println!("fingerprint: {}", identity.fingerprint());
        if let Some(&first) = gateways.first() {
            let addr = children[first].wait_for_line("listening: ", Duration::ZERO)?;
            let addr = addr
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            println!(
                "players: astroboids client register --server {addr} --fingerprint {} --user NAME",
                identity.fingerprint()
            );
        }
    }
    // Listening before saying how to stop: a Ctrl-C from then on stops every process.
    let mut stop = runtime.block_on(async { StopSignals::listen() })?;
    println!(
        "running; `astroboids cluster status --nats {} --etcd {} --world {}` shows it; Ctrl-C stops it",
        endpoints.nats, endpoints.etcd, endpoints.world
    );
    let intervals = runtime.block_on(async {
        let mut check = tokio::time::interval(Duration::from_millis(500));
        let mut reported = vec![false; children.len()];
        // The ticks as the leader reports them: their pace is what players get.
        let bus = astroboids_cluster_net::TickBus::connect(&endpoints.nats, &endpoints.world).await;
        let mut reports = match &bus {
            Ok(bus) => bus
                .subscribe(OUTCOME_SUBJECT, None, astroboids_cluster_net::StartAt::New)
                .await
                .ok(),
            Err(_) => None,
        };
        let mut intervals = TickIntervals::default();
        loop {
            tokio::select! {
                () = stop.recv() => break,
                report = next_report(&mut reports) => intervals.report(report),
                _ = check.tick() => {
                    for (child, reported) in children.iter_mut().zip(&mut reported) {
                        if !*reported && let Some(status) = child.exited() {
                            *reported = true;
                            tracing::warn!(
                                role = %child.role,
                                %status,
                                log_tail = %child.log_tail(5),
                                "a cluster process exited"
                            );
                        }
                    }
                }
            }
        }
        intervals
    });
    tracing::info!("stopping the cluster's processes and servers");
    // Gateways first (players are told), then leaders and shards, then the servers.
    for child in children.iter_mut().rev() {
        child.stop(Duration::from_secs(5));
    }
    servers.stop();
    if let Some(mut postgres) = postgres_server {
        postgres.stop();
    }
    println!("{}", intervals.summary());
    Ok(())
}

/// The next tick report's tick, or never (no subscription).
async fn next_report(reports: &mut Option<astroboids_cluster_net::Subscription>) -> Option<u64> {
    match reports {
        Some(subscription) => match subscription.next().await {
            Ok(message) => postcard::from_bytes::<TickReport>(&message.payload)
                .ok()
                .map(|r| r.tick),
            Err(_) => {
                *reports = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

/// Times between the leader's reports of consecutive ticks (its start-to-start pace, as seen
/// from here), the last [`TICK_INTERVALS_KEPT`] of them.
#[derive(Default)]
struct TickIntervals {
    last: Option<(u64, std::time::Instant)>,
    ms: std::collections::VecDeque<f64>,
    ticks: u64,
}

const TICK_INTERVALS_KEPT: usize = 100_000;

impl TickIntervals {
    fn report(&mut self, tick: Option<u64>) {
        let Some(tick) = tick else {
            return;
        };
        let now = std::time::Instant::now();
        self.ticks += 1;
        if let Some((before, at)) = self.last
            && tick == before + 1
        {
            self.ms.push_back((now - at).as_secs_f64() * 1e3);
            if self.ms.len() > TICK_INTERVALS_KEPT {
                self.ms.pop_front();
            }
        }
        self.last = Some((tick, now));
    }

    /// The line `cluster up` prints when it stops, like `serve`'s.
    fn summary(&self) -> String {
        let samples: Vec<f64> = self.ms.iter().copied().collect();
        match astroboids_engine::stats::percentiles(&samples, [0.5, 0.99, 1.0]) {
            Some([p50, p99, max]) => format!(
                "ticks: {} reported; start to start p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
                self.ticks
            ),
            None => format!("ticks: {} reported", self.ticks),
        }
    }
}
