//! `astroboids serve`: starts the online world and runs it until Ctrl-C (or SIGTERM).

use anyhow::{Context, Result};

use astroboids_host::WorldRequest;
use astroboids_net::ALPN;
use astroboids_server::limits::RateRules;
use astroboids_server::requests::{ReplayRules, ServerRules};
use astroboids_server::serve::{NetRules, RunningServer, ServeOptions};

use crate::cli::ServeArgs;
use crate::stop_signals::StopSignals;

pub fn run(args: &ServeArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) => Some((
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?,
            path.display().to_string(),
        )),
        None => None,
    };
    let replays = (!args.no_record).then(|| ReplayRules {
        ticks_per_file: args.replay_ticks_per_file.max(1),
        keep_files: args.keep_replays.max(1),
        ..ReplayRules::in_data_dir(&args.data)
    });
    let options = ServeOptions {
        data: args.data.clone(),
        listen: args.listen,
        metrics_listen: (!args.no_metrics).then_some(args.metrics_listen),
        world: WorldRequest {
            seed: args.seed,
            config,
            script_workers: crate::thread_count(None),
        },
        rules: ServerRules {
            max_ships_per_account: args.max_ships_per_account,
            replays,
            rates: RateRules {
                per_ip_per_s: nonzero(args.requests_per_ip_per_s, "--requests-per-ip-per-s")?,
                per_ip_burst: nonzero(
                    args.requests_per_ip_per_s.saturating_mul(2),
                    "--requests-per-ip-per-s",
                )?,
                ..RateRules::default()
            },
            ..ServerRules::default()
        },
        net: NetRules {
            max_connections_per_ip: args.max_connections_per_ip.max(1),
            password_jobs_per_ip: args.password_jobs_per_ip as usize,
            metrics_public: args.metrics_public,
            max_connections: NetRules::default()
                .max_connections
                .max(args.max_connections_per_ip),
            ..NetRules::default()
        },
    };
    let server = RunningServer::start(options)?;
    let opened = &server.opened;
    if opened.created {
        println!(
            "world: {} (new, universe seed {})",
            args.data.display(),
            opened.universe_seed
        );
    } else {
        println!(
            "world: {} (resumed at tick {}: checkpoint {}, {} logged inputs re-applied)",
            args.data.display(),
            opened.tick,
            opened
                .checkpoint_tick
                .map_or("none".to_string(), |t| format!("at tick {t}")),
            opened.replayed_inputs
        );
    }
    if server.identity_created {
        println!(
            "certificate: new, kept in {}",
            args.data.join("tls").display()
        );
    }
    // Listening before saying where the server is: a Ctrl-C from then on stops it gracefully.
    let mut stop = server.block_on(async { StopSignals::listen() })?;
    println!("fingerprint: {}", server.fingerprint);
    println!(
        "listening: {} (QUIC, ALPN {})",
        server.addr,
        String::from_utf8_lossy(ALPN)
    );
    if let Some(metrics) = server.metrics_addr {
        println!("metrics: http://{metrics}/metrics");
    }
    println!(
        "players: astroboids client register --server {} --fingerprint {} --user NAME",
        server.addr, server.fingerprint
    );
    println!("stop with Ctrl-C (the world runs to its next checkpoint and saves it)");

    let shutdown = server.shutdown_handle();
    let finished = server.block_on(async {
        let mut check = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            tokio::select! {
                () = stop.recv() => return false,
                _ = check.tick() => if server.is_finished() { return true },
            }
        }
    });
    if !finished {
        println!("stopping: running to the next checkpoint tick...");
        shutdown.shutdown();
    }
    let report = server.join()?;
    println!(
        "stopped at tick {} ({} ticks run to reach it); checkpoint written",
        report.tick, report.ticks_to_checkpoint
    );
    let t = report.tick_ms;
    println!(
        "ticks: {} paced, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; start to start p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        t.ticks, t.p50, t.p99, t.max, t.interval_p50, t.interval_p99, t.interval_max
    );
    if let Some(replay) = report.replay_finished {
        println!("replay: {}", replay.display());
    }
    Ok(())
}

fn nonzero(value: u32, flag: &str) -> Result<std::num::NonZeroU32> {
    std::num::NonZeroU32::new(value).with_context(|| format!("{flag}: must be at least 1"))
}
