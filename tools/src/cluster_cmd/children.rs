//! The shard and leader processes a local cluster starts: this same binary, one process per
//! role, each writing to a log file of its own.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cli::cluster::ClusterEndpoints;

/// A child process of the local cluster.
pub struct ClusterChild {
    pub role: String,
    pub log: PathBuf,
    child: Child,
}

impl ClusterChild {
    /// Starts `astroboids <args...>` with the cluster's endpoints, logging to
    /// `dir/<role>.log`.
    pub fn start(
        role: &str,
        dir: &Path,
        endpoints: &ClusterEndpoints,
        args: &[String],
    ) -> Result<Self> {
        let exe = std::env::current_exe().context("cannot find this program to start it again")?;
        let log = dir.join(format!("{role}.log"));
        let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new(exe)
            .args(args)
            .args(["--nats", &endpoints.nats, "--etcd", &endpoints.etcd])
            .args(["--world", &endpoints.world])
            .args(["--lease-ttl", &endpoints.lease_ttl.to_string()])
            // Settings meant for this process, not for each of its children (they would all
            // bind one metrics address).
            .env_remove("ASTROBOIDS_METRICS")
            .env_remove("ASTROBOIDS_METRICS_PUBLIC")
            .env_remove("ASTROBOIDS_LISTEN")
            .env_remove("ASTROBOIDS_GATEWAY_NAME")
            .env_remove("ASTROBOIDS_LEADER_NAME")
            .env_remove("ASTROBOIDS_SHARD_MEMBER")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start the {role} process"))?;
        Ok(Self {
            role: role.to_owned(),
            log,
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Asks it to stop (SIGTERM), waits up to `grace`, then kills it.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for a line of its log starting with `prefix` and returns the rest of it; an
    /// error (with the log's tail) if it exits or `within` passes first.
    pub fn wait_for_line(&mut self, prefix: &str, within: Duration) -> Result<String> {
        let until = Instant::now() + within;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(rest) = text.lines().find_map(|l| l.strip_prefix(prefix)) {
                return Ok(rest.to_owned());
            }
            if let Some(status) = self.exited() {
                anyhow::bail!(
                    "the {} process exited ({status}) before printing {prefix:?}:\n{}",
                    self.role,
                    self.log_tail(10)
                );
            }
            if Instant::now() >= until {
                anyhow::bail!(
                    "the {} process printed no {prefix:?} line within {within:?}:\n{}",
                    self.role,
                    self.log_tail(10)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of its log (for an error message).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ClusterChild {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
