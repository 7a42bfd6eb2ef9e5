//! `astroboids loadgen`: N bot players against one server, or spread in turn over several
//! (the gateways of a cluster; each bot is given all of them, its own first, to fail over
//! to). Each registers, uploads a script and spawns a ship flown by it; once all are set up,
//! each subscribes and counts what arrives: snapshot bytes per second, snapshot delay
//! (arrival against the tick's place on the tick clock, relative to the fastest snapshot
//! seen), gaps between snapshots (how long the world stood still for a bot: after a server
//! or shard is killed, the time until it resumes), reconnects and errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use astroboids_net::calls::{self, Call};
use astroboids_net::client::{Client, ClientError, Update};
use astroboids_net::quic::Fingerprint;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The server, or the gateways of a cluster (at least one); bot `i` starts at
    /// `servers[i % len]`.
    pub servers: Vec<SocketAddr>,
    pub fingerprint: Fingerprint,
    pub clients: usize,
    /// How long every bot listens once all are set up.
    pub measure: Duration,
    /// Prefix of the bots' account names (unique per run, so reruns do not collide).
    pub name_prefix: String,
    /// Bots set up at once (registration hashes passwords on the server: keep it gentle).
    pub setup_concurrency: usize,
    /// Share of snapshot datagrams each bot drops on arrival (0: none), emulating a lossy
    /// path; the snapshots bots still complete show what such players get.
    pub datagram_loss: f64,
}

/// Progress, readable while the run goes on.
#[derive(Debug, Default)]
pub struct LoadProgress {
    pub set_up: AtomicU64,
    pub snapshots: AtomicU64,
    pub errors: AtomicU64,
}

/// What the run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    pub clients: usize,
    pub setup_s: f64,
    pub measured_s: f64,
    /// Snapshot payload bytes per second per client: mean and max over clients.
    pub bytes_per_s_mean: f64,
    pub bytes_per_s_max: f64,
    pub snapshots: u64,
    /// Milliseconds, over all snapshots of all clients.
    pub delay_ms_p50: f64,
    pub delay_ms_p99: f64,
    pub events: u64,
    /// Datagrams the bots dropped on purpose (`LoadPlan::datagram_loss`).
    pub datagrams_dropped: u64,
    /// Milliseconds: the longest any bot went without a snapshot while measuring (between
    /// two, or from the start to its first or from its last to the end), and the 99th
    /// percentile of the times between consecutive snapshots of one bot, over all bots.
    pub gap_ms_max: f64,
    pub gap_ms_p99: f64,
    /// Connections the bots' clients replaced after losing one (setup and measuring).
    pub reconnects: u64,
    pub errors: u64,
    /// The first few errors, for the report.
    pub error_samples: Vec<String>,
}

/// A bot's ship script: full thrust and a steady turn (it circles near its spawn point, so
/// neighbours keep seeing a moving ship), and a log line every 50 ticks.
pub fn bot_script() -> Vec<u8> {
    const WAT: &str = r#"(module
      (import "astroboids" "log" (func $log (param i32 i32)))
      (memory (export "memory") 1 1)
      (global $n (mut i32) (i32.const 0))
      (data (i32.const 200) "bot")
      (func (export "astroboids_abi") (result i32) i32.const 1)
      (func (export "sensor_ptr") (result i32) i32.const 1024)
      (func (export "command_ptr") (result i32) i32.const 4096)
      (func (export "tick")
        (global.set $n (i32.add (global.get $n) (i32.const 1)))
        (if (i32.eqz (i32.rem_u (global.get $n) (i32.const 50)))
          (then (call $log (i32.const 200) (i32.const 3))))
        (f32.store (i32.const 4096) (f32.const 1))
        (f32.store (i32.const 4100) (f32.const 0.15))))"#;
    wasmer::wat2wasm(WAT.as_bytes())
        .expect("the bot script is valid text")
        .into_owned()
}

/// Runs the bots; `progress` can be watched from another thread meanwhile.
pub async fn run(plan: &LoadPlan, progress: Arc<LoadProgress>) -> LoadReport {
    let started = Instant::now();
    let setup_slots = Arc::new(tokio::sync::Semaphore::new(plan.setup_concurrency.max(1)));
    let all_set_up = Arc::new(tokio::sync::Barrier::new(plan.clients + 1));
    let mut bots = Vec::with_capacity(plan.clients);
    for i in 0..plan.clients {
        let (plan, progress) = (plan.clone(), progress.clone());
        let (slots, barrier) = (setup_slots.clone(), all_set_up.clone());
        bots.push(tokio::spawn(async move {
            let client = {
                let _slot = slots.acquire().await.expect("never closed");
                set_up(&plan, i).await
            };
            progress.set_up.fetch_add(1, Ordering::Relaxed);
            barrier.wait().await;
            match client {
                Ok(mut client) => {
                    client.emulate_datagram_loss(plan.datagram_loss, i as u64);
                    listen(client, plan.measure, &progress).await
                }
                Err(e) => {
                    progress.errors.fetch_add(1, Ordering::Relaxed);
                    BotResult {
                        errors: vec![e],
                        ..BotResult::default()
                    }
                }
            }
        }));
    }
    all_set_up.wait().await;
    let setup_s = started.elapsed().as_secs_f64();
    let mut results = Vec::with_capacity(bots.len());
    for bot in bots {
        results.push(bot.await.unwrap_or_else(|e| BotResult {
            errors: vec![format!("bot task failed: {e}")],
            ..BotResult::default()
        }));
    }
    summarize(plan, setup_s, &results)
}

#[derive(Debug, Default)]
struct BotResult {
    bytes: u64,
    seconds: f64,
    snapshots: u64,
    events: u64,
    datagrams_dropped: u64,
    delays_ms: Vec<f64>,
    /// Between consecutive snapshots.
    gaps_ms: Vec<f64>,
    /// The longest stretch without a snapshot, the ends of the measurement included.
    max_gap_ms: f64,
    reconnects: u64,
    errors: Vec<String>,
}

/// Bot `i`'s addresses: all of the plan's, starting at its own (round robin).
fn bot_servers(servers: &[SocketAddr], i: usize) -> Vec<SocketAddr> {
    let first = i % servers.len().max(1);
    servers[first..]
        .iter()
        .chain(&servers[..first])
        .copied()
        .collect()
}

async fn set_up(plan: &LoadPlan, i: usize) -> Result<Client, String> {
    let servers = bot_servers(&plan.servers, i);
    let mut client = Client::connect_any(&servers, plan.fingerprint, "astroboids-loadgen")
        .await
        .map_err(|e| e.to_string())?;
    let user = format!("{}{i}", plan.name_prefix);
    let password = format!("{user} load password");
    let register = calls::Register {
        user: user.clone(),
        password: password.clone(),
    };
    step(&mut client, &user, register).await?;
    let login = calls::Login {
        user: user.clone(),
        password,
    };
    step(&mut client, &user, login).await?;
    let upload = calls::UploadScript {
        name: "bot".into(),
        wasm: bot_script(),
    };
    step(&mut client, &user, upload).await?;
    let ship = step(&mut client, &user, calls::SpawnShip).await?;
    let assign = calls::AssignScript {
        ship,
        name: "bot".into(),
    };
    step(&mut client, &user, assign).await?;
    Ok(client)
}

/// One set-up step of `user`'s bot. Its error names the bot and the step, because the report
/// keeps only a few error samples and they must say where things went wrong.
async fn step<C: Call>(client: &mut Client, user: &str, call: C) -> Result<C::Answer, String> {
    client
        .call(call)
        .await
        .map_err(|e| format!("{user}: {}: {e}", C::KIND))
}

async fn listen(mut client: Client, measure: Duration, progress: &LoadProgress) -> BotResult {
    let mut result = BotResult::default();
    // Subscribed only now that every bot is set up: snapshots queued while a bot waited for
    // the others would count as late.
    let subscribed = match client.subscribe().await {
        Ok(response) => calls::Subscribe::answer(response).map_err(ClientError::from),
        Err(e) => Err(ClientError::from(e)),
    };
    if let Err(e) = subscribed {
        progress.errors.fetch_add(1, Ordering::Relaxed);
        result.errors.push(format!("subscribe: {e}"));
        return result;
    }
    let period = Duration::from_secs(1) / client.tick_rate_hz.max(1);
    let bytes_before = client.datagram_bytes_received();
    let started = Instant::now();
    // Arrival minus the tick's place on the tick clock: its minimum is the fastest path, and
    // what a snapshot takes beyond it is its delay.
    let mut offsets_ms = Vec::new();
    let mut arrivals_ms = Vec::new();
    while started.elapsed() < measure {
        let left = measure.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, client.next_update()).await {
            Err(_) => break,
            Ok(Ok(Update::Snapshot { tick })) => {
                result.snapshots += 1;
                progress.snapshots.fetch_add(1, Ordering::Relaxed);
                let arrival_ms = started.elapsed().as_secs_f64() * 1000.0;
                arrivals_ms.push(arrival_ms);
                offsets_ms.push(arrival_ms - tick as f64 * period.as_secs_f64() * 1000.0);
            }
            Ok(Ok(Update::Events(_))) => result.events += 1,
            Ok(Err(e)) => {
                progress.errors.fetch_add(1, Ordering::Relaxed);
                result.errors.push(e.to_string());
                break;
            }
        }
    }
    result.seconds = started.elapsed().as_secs_f64();
    (result.gaps_ms, result.max_gap_ms) = gaps(&arrivals_ms, result.seconds * 1000.0);
    result.reconnects = client.reconnects();
    result.bytes = client.datagram_bytes_received() - bytes_before;
    result.datagrams_dropped = client.datagrams_dropped();
    let fastest = offsets_ms.iter().copied().fold(f64::INFINITY, f64::min);
    result.delays_ms = offsets_ms.iter().map(|o| o - fastest).collect();
    client.close().await;
    result
}

/// The times between consecutive `arrivals_ms` (since the start, ascending), and the
/// longest stretch without one from the start (0) to `end_ms`.
fn gaps(arrivals_ms: &[f64], end_ms: f64) -> (Vec<f64>, f64) {
    let between: Vec<f64> = arrivals_ms.windows(2).map(|w| w[1] - w[0]).collect();
    let first = arrivals_ms.first().copied().unwrap_or(end_ms);
    let last = arrivals_ms.last().map_or(0.0, |&l| end_ms - l);
    let max = between.iter().copied().fold(first.max(last), f64::max);
    (between, max)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn summarize(plan: &LoadPlan, setup_s: f64, results: &[BotResult]) -> LoadReport {
    let rates: Vec<f64> = results
        .iter()
        .filter(|r| r.seconds > 0.0)
        .map(|r| r.bytes as f64 / r.seconds)
        .collect();
    let mut delays: Vec<f64> = results.iter().flat_map(|r| r.delays_ms.clone()).collect();
    delays.sort_by(f64::total_cmp);
    let mut gaps: Vec<f64> = results.iter().flat_map(|r| r.gaps_ms.clone()).collect();
    gaps.sort_by(f64::total_cmp);
    let errors: Vec<String> = results.iter().flat_map(|r| r.errors.clone()).collect();
    LoadReport {
        clients: plan.clients,
        setup_s,
        measured_s: plan.measure.as_secs_f64(),
        bytes_per_s_mean: rates.iter().sum::<f64>() / rates.len().max(1) as f64,
        bytes_per_s_max: rates.iter().copied().fold(0.0, f64::max),
        snapshots: results.iter().map(|r| r.snapshots).sum(),
        delay_ms_p50: percentile(&delays, 0.5),
        delay_ms_p99: percentile(&delays, 0.99),
        events: results.iter().map(|r| r.events).sum(),
        datagrams_dropped: results.iter().map(|r| r.datagrams_dropped).sum(),
        gap_ms_max: results.iter().map(|r| r.max_gap_ms).fold(0.0, f64::max),
        gap_ms_p99: percentile(&gaps, 0.99),
        reconnects: results.iter().map(|r| r.reconnects).sum(),
        errors: errors.len() as u64,
        error_samples: errors.into_iter().take(5).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_start_at_the_servers_in_turn_and_have_all_of_them() {
        let servers: Vec<SocketAddr> = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let [a, b, c] = [servers[0], servers[1], servers[2]];
        assert_eq!(bot_servers(&servers, 0), vec![a, b, c]);
        assert_eq!(bot_servers(&servers, 1), vec![b, c, a]);
        assert_eq!(bot_servers(&servers, 2), vec![c, a, b]);
        assert_eq!(bot_servers(&servers, 3), vec![a, b, c]);
        assert_eq!(bot_servers(&servers[..1], 5), vec![a]);
    }

    #[test]
    fn gaps_are_between_snapshots_and_the_longest_counts_the_ends() {
        let (between, max) = gaps(&[100.0, 200.0, 1_700.0, 1_800.0], 2_000.0);
        assert_eq!(between, vec![100.0, 1_500.0, 100.0]);
        assert_eq!(max, 1_500.0);
        // The world stopped for this bot and never came back while measuring.
        let (between, max) = gaps(&[100.0, 200.0], 5_000.0);
        assert_eq!(between, vec![100.0]);
        assert_eq!(max, 4_800.0);
        // Nothing at all: the whole measurement.
        assert_eq!(gaps(&[], 2_000.0), (vec![], 2_000.0));
        // A late first snapshot.
        assert_eq!(gaps(&[900.0], 1_000.0).1, 900.0);
    }
}
