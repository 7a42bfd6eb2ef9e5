//! `astroboids shard` and `astroboids leader`: one cluster process each, until the world
//! finishes, Ctrl-C / SIGTERM, or an error. They log through `tracing` (set up in `main`)
//! and, with `--metrics ADDR`, serve their Prometheus metrics there
//! (`astroboids_cluster_net::process::metrics`).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tracing::info;

use astroboids_cluster_net::process::leader::LeaderExit;
use astroboids_cluster_net::process::metrics;
use astroboids_cluster_net::process::shard::ShardExit;
use astroboids_cluster_net::process::{
    LeaderProcess, ShardProcess, run_leader_process, run_shard_process,
};
use astroboids_cluster_net::{Coordination, TickBus};
use astroboids_server::monitoring;
use astroboids_sim::SimOptions;

use astroboids_gateway::{GatewayOptions, GatewayRules, RunningGateway};
use std::num::NonZeroU32;

use astroboids_server::limits::RateRules;
use astroboids_server::serve::NetRules;

use crate::cli::cluster::{ClusterEndpoints, GatewayArgs, LeaderArgs, ShardArgs};
use crate::stop_signals::StopSignals;

/// Ctrl-C or SIGTERM (how `cluster up` and process managers ask a process to stop), listened
/// for from the call on. For a single wait; a loop keeps one [`StopSignals`] instead.
pub async fn stop_signal() {
    StopSignals::listen()
        .expect("signal handlers in a runtime")
        .recv()
        .await
}

/// A runtime whose worker threads keep the etcd lease and the bus going while the calling
/// thread runs ticks.
fn io_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")
}

pub async fn connect(endpoints: &ClusterEndpoints) -> Result<(Coordination, TickBus)> {
    let coordination = Coordination::connect(
        std::slice::from_ref(&endpoints.etcd),
        &endpoints.world,
        endpoints.lease_ttl,
    )
    .await?;
    let bus = TickBus::connect(&endpoints.nats, &endpoints.world).await?;
    Ok((coordination, bus))
}

/// Serves the process's metrics on `addr` (from the I/O runtime's worker), once `describe`
/// has named them.
fn serve_metrics(
    runtime: &tokio::runtime::Runtime,
    addr: Option<SocketAddr>,
    public: bool,
    describe: fn(),
) -> Result<()> {
    let Some(addr) = addr else {
        return Ok(());
    };
    monitoring::recorder();
    describe();
    let listener = runtime
        .block_on(monitoring::bind_metrics(addr, public))
        .with_context(|| format!("--metrics {addr}"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    runtime.spawn(monitoring::serve_metrics(listener));
    info!(addr = %bound, path = "/metrics", "serving metrics");
    Ok(())
}

pub fn shard(args: &ShardArgs) -> Result<()> {
    let threads = crate::thread_count(args.threads);
    let pool = crate::thread_pool(threads)?;
    let runtime = io_runtime()?;
    serve_metrics(
        &runtime,
        args.metrics,
        args.metrics_public,
        metrics::describe_shard,
    )?;
    let options = move || SimOptions {
        script_workers: threads,
        ..SimOptions::default()
    };
    let exit = pool.install(|| {
        runtime.block_on(async {
            let (coordination, bus) = connect(&args.endpoints).await?;
            info!(
                member = args.member,
                world = %args.endpoints.world,
                nats = %args.endpoints.nats,
                etcd = %args.endpoints.etcd,
                threads,
                "shard process connected"
            );
            let process = ShardProcess {
                coordination: &coordination,
                bus: &bus,
                member: args.member,
                options: &options,
                frame_limit: None,
            };
            let exit = run_shard_process(process, stop_signal()).await;
            if matches!(exit, Ok(ShardExit::Stopped)) {
                let _ = coordination.close().await;
            }
            anyhow::Ok(exit?)
        })
    })?;
    match exit {
        ShardExit::Finished { tick } => {
            info!(member = args.member, tick, "the world finished");
        }
        ShardExit::Stopped => info!(member = args.member, "stopped"),
    }
    Ok(())
}

pub fn leader(args: &LeaderArgs) -> Result<()> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("leader-{}", std::process::id()));
    let runtime = io_runtime()?;
    serve_metrics(
        &runtime,
        args.metrics,
        args.metrics_public,
        metrics::describe_leader,
    )?;
    let exit = runtime.block_on(async {
        let (coordination, bus) = connect(&args.endpoints).await?;
        info!(
            leader = %name,
            world = %args.endpoints.world,
            nats = %args.endpoints.nats,
            etcd = %args.endpoints.etcd,
            "campaigning"
        );
        let process = LeaderProcess {
            coordination: &coordination,
            bus: &bus,
            name: &name,
        };
        let mut announced = false;
        let exit = run_leader_process(
            process,
            |report| {
                if !announced {
                    info!(
                        leader = %name,
                        tick = report.tick,
                        epoch = report.epoch,
                        "leading"
                    );
                    announced = true;
                }
            },
            stop_signal(),
        )
        .await;
        if matches!(exit, Ok(LeaderExit::Stopped)) {
            let _ = coordination.close().await;
        }
        anyhow::Ok(exit?)
    })?;
    match exit {
        LeaderExit::Finished { tick } => {
            info!(leader = %name, tick, "the world finished");
        }
        LeaderExit::Stopped => info!(leader = %name, "stopped"),
    }
    Ok(())
}

pub fn gateway(args: &GatewayArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("astroboids-gateway")
        .enable_all()
        .build()
        .context("cannot start the network runtime")?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("gateway-{}", std::process::id()));
    let options = GatewayOptions {
        name: name.clone(),
        listen: args.listen,
        identity: args.identity.clone(),
        postgres: args.postgres.clone(),
        nats: args.endpoints.nats.clone(),
        etcd: args.endpoints.etcd.clone(),
        world: args.endpoints.world.clone(),
        lease_ttl_s: args.endpoints.lease_ttl,
        metrics_listen: args.metrics,
        metrics_public: args.metrics_public,
        rules: GatewayRules {
            max_ships_per_account: args.max_ships,
            rates: RateRules {
                per_ip_per_s: NonZeroU32::new(args.limits.requests_per_ip_per_s)
                    .context("--requests-per-ip-per-s must be at least 1")?,
                per_ip_burst: NonZeroU32::new(args.limits.requests_per_ip_per_s.saturating_mul(2))
                    .context("--requests-per-ip-per-s must be at least 1")?,
                ..RateRules::default()
            },
            ..GatewayRules::default()
        },
        net: NetRules {
            max_connections: args.max_connections.max(args.limits.max_connections_per_ip),
            max_connections_per_ip: args.limits.max_connections_per_ip.max(1),
            ..NetRules::default()
        },
    };
    runtime.block_on(async {
        let gateway = RunningGateway::start(options)
            .await
            .with_context(|| format!("gateway {name}"))?;
        if gateway.identity_created {
            println!("certificate: new, kept in {}", args.identity.display());
        }
        // The lines `serve` prints, so that players and tools find a gateway the same way.
        println!("fingerprint: {}", gateway.fingerprint);
        println!(
            "listening: {} (QUIC, ALPN {})",
            gateway.addr,
            String::from_utf8_lossy(astroboids_net::messages::ALPN)
        );
        if let Some(metrics) = gateway.metrics_addr {
            println!("metrics: http://{metrics}/metrics");
        }
        stop_signal().await;
        info!(name, "stopping");
        gateway.stop().await;
        anyhow::Ok(())
    })
}
