//! `astroboids loadgen`: bot players against a server (by default one it starts itself, as a
//! separate process, so the server's CPU time is its own), with a progress display and a
//! report.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use astroboids_client::loadgen::{LoadPlan, LoadProgress, LoadReport, run};
use astroboids_net::quic::Fingerprint;

use crate::cli::LoadgenArgs;

/// A server process started for the run.
struct OwnServer {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    data: std::path::PathBuf,
}

impl OwnServer {
    fn start(clients: usize) -> Result<(Self, std::net::SocketAddr, Fingerprint)> {
        let data = std::env::temp_dir().join(format!("astroboids-loadgen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let exe = std::env::current_exe().context("cannot find the astroboids binary")?;
        let mut child = Command::new(exe)
            .arg("serve")
            .arg("--data")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--no-metrics", "--no-record"])
            .args(["--max-ships-per-account", "1"])
            .arg("--max-connections-per-ip")
            .arg((clients + 16).to_string())
            .args(["--requests-per-ip-per-s", "100000"])
            // Every bot logs in from this one address.
            .arg("--password-jobs-per-ip")
            .arg((clients + 16).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the server")?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self { child, lines, data };
        let fingerprint = server.wait_for("fingerprint: ")?;
        let addr = server.wait_for("listening: ")?;
        let addr = addr
            .split(' ')
            .next()
            .unwrap_or_default()
            .parse()
            .context("the server printed no address")?;
        let fingerprint = fingerprint
            .parse()
            .map_err(|e| anyhow::anyhow!("the server's fingerprint: {e}"))?;
        Ok((server, addr, fingerprint))
    }

    /// The rest of the first line starting with `prefix`.
    fn wait_for(&mut self, prefix: &str) -> Result<String> {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.to_string());
                    }
                }
                Err(_) => bail!("the server did not print {prefix:?}"),
            }
        }
    }

    /// User + system CPU seconds the server has used (Linux /proc).
    fn cpu_s(&self) -> Option<f64> {
        cpu_of(self.child.id())
    }

    /// Stops it with Ctrl-C and returns its tick report line.
    fn stop(mut self) -> Result<String> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let ticks = self.wait_for("ticks: ");
        if ticks.is_err() {
            // It did not stop: do not wait for it forever.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
        ticks.context("the server did not stop on Ctrl-C")
    }
}

pub fn run_loadgen(args: &LoadgenArgs) -> Result<()> {
    if args.clients == 0 {
        bail!("--clients: at least 1");
    }
    let (own, servers, fingerprint) = match (args.server.is_empty(), &args.fingerprint) {
        (false, Some(fingerprint)) => (
            None,
            args.server.clone(),
            fingerprint
                .parse()
                .map_err(|e| anyhow::anyhow!("--fingerprint: {e}"))?,
        ),
        _ => {
            let (own, addr, fingerprint) = OwnServer::start(args.clients)?;
            (Some(own), vec![addr], fingerprint)
        }
    };
    let plan = LoadPlan {
        servers,
        fingerprint,
        clients: args.clients,
        measure: Duration::from_secs(args.seconds.max(1)),
        name_prefix: format!("bot{}x", std::process::id()),
        setup_concurrency: args.setup_concurrency,
        datagram_loss: args.drop_datagrams,
    };
    let progress = Arc::new(LoadProgress::default());
    let bar = indicatif::ProgressBar::new(args.clients as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}")
            .expect("a valid template"),
    );
    bar.set_message("setting up bots");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the network runtime")?;
    let watcher = {
        let (progress, bar) = (progress.clone(), bar.clone());
        let clients = args.clients as u64;
        runtime.spawn(async move {
            loop {
                let set_up = progress.set_up.load(Ordering::Relaxed);
                bar.set_position(set_up);
                if set_up >= clients {
                    bar.set_message(format!(
                        "measuring: {} snapshots, {} errors",
                        progress.snapshots.load(Ordering::Relaxed),
                        progress.errors.load(Ordering::Relaxed)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    // The server's CPU over the measured part only: sampled when setup ends and at the end.
    let cpu_at_setup = Arc::new(std::sync::Mutex::new(None));
    let report: LoadReport = runtime.block_on(async {
        let sampler = {
            let (progress, cpu_at_setup) = (progress.clone(), cpu_at_setup.clone());
            let pid_cpu = own.as_ref().map(|o| o.child.id());
            let clients = args.clients as u64;
            tokio::spawn(async move {
                while progress.set_up.load(Ordering::Relaxed) < clients {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if let Some(pid) = pid_cpu {
                    *cpu_at_setup.lock().expect("not poisoned") = cpu_of(pid);
                }
            })
        };
        let report = run(&plan, progress.clone()).await;
        let _ = sampler.await;
        report
    });
    watcher.abort();
    bar.finish_and_clear();
    let server_cpu = own.as_ref().and_then(|o| {
        let start = (*cpu_at_setup.lock().expect("not poisoned"))?;
        Some((o.cpu_s()? - start) / report.measured_s)
    });
    let server_ticks = match own {
        Some(own) => Some(own.stop()?),
        None => None,
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "clients": report.clients,
                "setup_s": report.setup_s,
                "measured_s": report.measured_s,
                "snapshot_bytes_per_s_per_client_mean": report.bytes_per_s_mean,
                "snapshot_bytes_per_s_per_client_max": report.bytes_per_s_max,
                "snapshots": report.snapshots,
                "snapshot_delay_ms_p50": report.delay_ms_p50,
                "snapshot_delay_ms_p99": report.delay_ms_p99,
                "events": report.events,
                "datagrams_dropped": report.datagrams_dropped,
                "snapshot_gap_ms_max": report.gap_ms_max,
                "snapshot_gap_ms_p99": report.gap_ms_p99,
                "reconnects": report.reconnects,
                "errors": report.errors,
                "error_samples": report.error_samples,
                "server_cpu_cores": server_cpu,
                "server_ticks": server_ticks,
            })
        );
    } else {
        println!("clients            {}", report.clients);
        println!("setup              {:.1} s", report.setup_s);
        println!(
            "snapshot bytes/s   mean {:.0}, max {:.0} per client (over {:.0} s)",
            report.bytes_per_s_mean, report.bytes_per_s_max, report.measured_s
        );
        println!(
            "snapshot delay     p50 {:.1} ms, p99 {:.1} ms (beyond the fastest snapshot)",
            report.delay_ms_p50, report.delay_ms_p99
        );
        println!(
            "snapshot gaps      max {:.0} ms, p99 {:.0} ms (a bot's time between snapshots)",
            report.gap_ms_max, report.gap_ms_p99
        );
        println!(
            "snapshots          {} (and {} ticks of events)",
            report.snapshots, report.events
        );
        println!("reconnects         {}", report.reconnects);
        if report.datagrams_dropped > 0 {
            println!(
                "dropped            {} datagrams on purpose (--drop-datagrams)",
                report.datagrams_dropped
            );
        }
        println!("errors             {}", report.errors);
        for e in &report.error_samples {
            println!("  {e}");
        }
        if let Some(cpu) = server_cpu {
            println!(
                "server CPU         {:.0}% of one core while measuring",
                cpu * 100.0
            );
        }
        if let Some(ticks) = server_ticks {
            println!("server ticks       {ticks} (whole run)");
        }
    }
    if report.errors > 0 {
        bail!("{} bots had errors", report.errors);
    }
    Ok(())
}

/// User + system CPU seconds of process `pid`, from /proc (Linux; clock ticks of 1/100 s).
fn cpu_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
