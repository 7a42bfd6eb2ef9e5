//! `astroboids shard` and `astroboids leader`: one cluster process each, until the world
//! finishes, Ctrl-C / SIGTERM, or an error.

use anyhow::{Context, Result};

use astroboids_cluster_net::process::leader::LeaderExit;
use astroboids_cluster_net::process::shard::ShardExit;
use astroboids_cluster_net::process::{
    LeaderProcess, ShardProcess, run_leader_process, run_shard_process,
};
use astroboids_cluster_net::{Coordination, TickBus};
use astroboids_sim::SimOptions;

use crate::cli::cluster::{ClusterEndpoints, LeaderArgs, ShardArgs};

/// Ctrl-C or SIGTERM (how `cluster up` and process managers ask a process to stop).
pub async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
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

pub fn shard(args: &ShardArgs) -> Result<()> {
    let threads = crate::thread_count(args.threads);
    let pool = crate::thread_pool(threads)?;
    let runtime = io_runtime()?;
    let options = move || SimOptions {
        script_workers: threads,
        ..SimOptions::default()
    };
    let exit = pool.install(|| {
        runtime.block_on(async {
            let (coordination, bus) = connect(&args.endpoints).await?;
            eprintln!(
                "shard process {} of world {} (nats {}, etcd {})",
                args.member, args.endpoints.world, args.endpoints.nats, args.endpoints.etcd
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
        ShardExit::Finished { tick } => eprintln!("the world finished at tick {tick}"),
        ShardExit::Stopped => eprintln!("stopped"),
    }
    Ok(())
}

pub fn leader(args: &LeaderArgs) -> Result<()> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("leader-{}", std::process::id()));
    let runtime = io_runtime()?;
    let exit = runtime.block_on(async {
        let (coordination, bus) = connect(&args.endpoints).await?;
        eprintln!(
            "{name}: campaigning for world {} (etcd {})",
            args.endpoints.world, args.endpoints.etcd
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
                    eprintln!("{name}: leading from tick {}", report.tick);
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
        LeaderExit::Finished { tick } => eprintln!("{name}: the world finished at tick {tick}"),
        LeaderExit::Stopped => eprintln!("{name}: stopped"),
    }
    Ok(())
}
