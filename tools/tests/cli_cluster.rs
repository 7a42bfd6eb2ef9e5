//! One world over several processes, through the `astroboids` binary: `cluster sim` reports
//! the same state hash as `sim`, and a world whose shard process and leader process are
//! killed (SIGKILL) mid-run, or whose every process is stopped and started again under the
//! same member ids, ends exactly as an uninterrupted one, tick for tick.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use astroboids_cluster::SectorAssignment;
use astroboids_cluster::messages::{TickReport, TickStart};
use astroboids_cluster::plan::{self, WorldSpec};
use astroboids_cluster::scripts;
use astroboids_cluster_net::process::{INPUT_SUBJECT, OUTCOME_SUBJECT, START_SUBJECT};
use astroboids_cluster_net::{Coordination, StartAt, TickBus};
use astroboids_engine::StateHashExt;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::{WorldInput, apply_input};
use astroboids_sim::ships::ShipIndex;
use astroboids_sim::{SimOptions, build_simulation_with};
use astroboids_test_kit::{Etcd, NatsServer, WatBot};

use common::{astroboids, fresh_dir};

fn json(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().expect("a summary line")).expect("JSON summary")
}

#[test]
fn cluster_sim_reports_the_same_world_as_sim() {
    let dir = fresh_dir("cluster-sim");
    let script = dir.join("chaser.wat");
    std::fs::write(&script, WatBot::chaser().wat()).unwrap();
    let script = script.to_str().unwrap();
    let common = [
        "--ships", "400", "--ticks", "90", "--seed", "5", "--script", script,
    ];
    let single = json(
        &astroboids(&dir)
            .args(["sim", "--json"])
            .args(common)
            .output()
            .unwrap(),
    );
    for (shards, assignment) in [("1", "stripes:4"), ("2", "stripes:1"), ("3", "blocks:1")] {
        let cluster = json(
            &astroboids(&dir)
                .args(["cluster", "sim", "--json", "--shards", shards])
                .args(["--assignment", assignment])
                .args(common)
                .output()
                .unwrap(),
        );
        for field in [
            "state_hash",
            "ships",
            "ore_mined",
            "script_fuel_used",
            "tick",
        ] {
            assert_eq!(
                cluster[field], single[field],
                "{field} on {shards} shards ({assignment})"
            );
        }
        let per_shard = cluster["per_shard"].as_array().unwrap();
        assert_eq!(per_shard.len(), shards.parse::<usize>().unwrap());
        let held: u64 = per_shard.iter().map(|s| s["ships"].as_u64().unwrap()).sum();
        assert_eq!(held, 400, "every ship is held by exactly one shard");
        // 90 ticks: the last is the only checkpoint tick, and no tick follows it.
        assert_eq!(cluster["checkpoint_ticks_ms"].as_array().unwrap().len(), 1);
        assert!(cluster["checkpoint_ticks_ms"][0].as_f64().unwrap() > 0.0);
        assert_eq!(cluster["after_checkpoint_ticks_ms"], serde_json::json!([]));
    }
}

#[test]
fn cluster_sim_names_what_is_wrong_with_its_settings() {
    let dir = fresh_dir("cluster-sim-bad");
    for (args, named) in [
        (&["--assignment", "rings:3"][..], "rings:3"),
        (
            &["--checkpoint-every", "150"][..],
            "persistence.checkpoint_every_ticks",
        ),
    ] {
        let out = astroboids(&dir)
            .args(["cluster", "sim"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{stderr}");
    }
}

const SEED: u64 = 11;
const SHIPS: u32 = 300;
const SCRIPTED: u32 = 30;
const LAST_TICK: u64 = 240;
const CHECKPOINT_EVERY: u64 = 25;

fn spec(setup: Vec<WorldInput>) -> WorldSpec {
    let mut config = UniverseConfig::default();
    config.persistence.checkpoint_every_ticks = CHECKPOINT_EVERY;
    WorldSpec {
        seed: SEED,
        config,
        assignment: SectorAssignment::Stripes {
            shards: 3,
            width: 1,
        },
        checkpoint_every: CHECKPOINT_EVERY,
        tick_ms: 15,
        last_tick: Some(LAST_TICK),
        setup,
    }
}

fn setup() -> Vec<WorldInput> {
    let wasm = WatBot::chaser().wasm();
    let script = astroboids_scripting::module_hash(&wasm);
    vec![
        WorldInput::AddScript { wasm },
        WorldInput::SpawnFleet {
            count: SHIPS - SCRIPTED,
            script: None,
        },
        WorldInput::SpawnFleet {
            count: SCRIPTED,
            script: Some(script),
        },
    ]
}

/// The same world in one process, with each input applied before the tick it ran at: what
/// each tick's report must say (the full hash at checkpoint ticks, the cheap one elsewhere).
fn reference(spec: &WorldSpec, inputs: &BTreeMap<u64, Vec<WorldInput>>) -> (Vec<u64>, u64) {
    let options = SimOptions {
        script_workers: 1,
        ..SimOptions::default()
    };
    let mut sim = build_simulation_with(spec.config.clone(), spec.seed, options);
    let hashes = (1..=spec.last_tick.expect("a world that stops"))
        .map(|tick| {
            for input in inputs.get(&tick).into_iter().flatten() {
                let _ = apply_input(sim.world_mut(), input);
            }
            sim.step();
            if spec.is_checkpoint_tick(tick) {
                sim.world_mut().state_hash().total
            } else {
                sim.world_mut().quick_state_hash().total
            }
        })
        .collect();
    let ships = sim.world().resource::<ShipIndex>().len() as u64;
    (hashes, ships)
}

struct Proc {
    name: String,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(name: &str, args: &[&str], nats: &str, etcd: &str, dir: &std::path::Path) -> Proc {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_astroboids"))
        .args(args)
        .args(["--nats", nats, "--etcd", etcd, "--world", "faults"])
        .args(["--lease-ttl", "1"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc {
        name: name.to_owned(),
        child,
    }
}

/// Reads tick reports until `until` says stop, or fails after `limit` with the logs' tails.
async fn reports_until(
    outcomes: &mut astroboids_cluster_net::Subscription,
    seen: &mut Vec<(Instant, TickReport)>,
    dir: &std::path::Path,
    mut until: impl FnMut(&TickReport) -> bool,
) {
    let limit = Duration::from_secs(300);
    loop {
        let next = tokio::time::timeout(limit, outcomes.next()).await;
        let Ok(message) = next else {
            let mut logs = String::new();
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(6).collect();
                    logs.push_str(&format!("\n{}:\n{}", path.display(), tail.join("\n")));
                }
            }
            panic!("no tick report for {limit:?}; logs:{logs}");
        };
        let report: TickReport = postcard::from_bytes(&message.unwrap().payload).unwrap();
        let stop = until(&report);
        seen.push((Instant::now(), report));
        if stop {
            return;
        }
    }
}

/// kill -9 of a shard process: the leader sees its lease expire, makes a new plan over the
/// two processes left from the last complete checkpoint, and the world re-runs from it with
/// the logged inputs. kill -9 of the leader: the standby takes over and goes on from the tick
/// that was running, none skipped or started twice. The lost shard's process, started again,
/// gets shards back at the next checkpoint (a rebalance). Every tick's final report matches
/// the uninterrupted single-process world, and an input submitted mid-run is applied once.
#[test]
fn killed_shard_and_leader_processes_change_no_result() {
    let dir = fresh_dir("cluster-faults");
    let mut nats_server = NatsServer::start(&dir).unwrap();
    let mut etcd_server = Etcd::start(&dir).unwrap();
    let (nats, etcd) = (nats_server.url(), etcd_server.endpoint());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let spec = spec(setup());
    let (coordination, bus) = runtime.block_on(async {
        let coordination = Coordination::connect(std::slice::from_ref(&etcd), "faults", 5)
            .await
            .unwrap();
        coordination
            .put_json(plan::keys::SPEC, &spec)
            .await
            .unwrap();
        let bus = TickBus::connect(&nats, "faults").await.unwrap();
        (coordination, bus)
    });
    let mut leaders: Vec<Proc> = (0..2)
        .map(|i| {
            let name = format!("leader-{i}");
            start(&name, &["leader", "--name", &name], &nats, &etcd, &dir)
        })
        .collect();
    let mut shards: Vec<Proc> = (0..3)
        .map(|i| {
            let member = i.to_string();
            let name = format!("shard-{i}");
            start(
                &name,
                &["shard", "--member", &member, "--threads", "1"],
                &nats,
                &etcd,
                &dir,
            )
        })
        .collect();

    let mut seen = Vec::new();
    let late_input = WorldInput::SpawnFleet {
        count: 7,
        script: None,
    };
    let (killed_at, leader_killed_at) = runtime.block_on(async {
        let mut outcomes = bus
            .subscribe(OUTCOME_SUBJECT, None, StartAt::All)
            .await
            .unwrap();
        // An input from a client, mid-run: applied once, whatever happens after.
        reports_until(&mut outcomes, &mut seen, &dir, |r| r.tick >= 40).await;
        bus.publish(
            INPUT_SUBJECT,
            "late-fleet",
            postcard::to_allocvec(&late_input).unwrap(),
        )
        .await
        .unwrap();
        // kill -9 of a shard between checkpoints.
        reports_until(&mut outcomes, &mut seen, &dir, |r| r.tick >= 62).await;
        let killed_at = seen.last().unwrap().1.tick;
        let shard_killed = Instant::now();
        shards[1].child.kill().unwrap();
        shards[1].child.wait().unwrap();
        // The re-run from the checkpoint, then some ticks beyond the kill.
        reports_until(&mut outcomes, &mut seen, &dir, |r| {
            r.epoch >= 2 && r.tick >= 110
        })
        .await;
        // kill -9 of the leader.
        let (name, _) = coordination.leader().await.unwrap().expect("a leader");
        let leader = leaders.iter_mut().find(|p| p.name == name).unwrap();
        let leader_killed_at = seen.last().unwrap().1.tick;
        let leader_killed = Instant::now();
        leader.child.kill().unwrap();
        leader.child.wait().unwrap();
        // The lost process comes back: it takes a shard again at the next checkpoint.
        reports_until(&mut outcomes, &mut seen, &dir, |r| {
            r.tick >= leader_killed_at + 5
        })
        .await;
        shards.push(start(
            "shard-1-again",
            &["shard", "--member", "1", "--threads", "1"],
            &nats,
            &etcd,
            &dir,
        ));
        reports_until(&mut outcomes, &mut seen, &dir, |r| r.tick >= LAST_TICK).await;
        // Figures, not assertions (shared machines are noisy): how long the world stood.
        let first_after = |at: Instant, epoch: u64| {
            seen.iter()
                .find(|(when, r)| *when > at && r.epoch >= epoch)
                .map_or(Duration::ZERO, |(when, _)| *when - at)
        };
        eprintln!(
            "figures: first report {:?} after the shard's kill -9 (new plan), {:?} after the \
             leader's (lease TTL 1 s)",
            first_after(shard_killed, 2),
            first_after(leader_killed, 0)
        );
        (killed_at, leader_killed_at)
    });

    // The start log: which inputs ran at which tick, and no (epoch, tick) started twice or
    // skipped within an epoch.
    let starts: Vec<TickStart> = runtime.block_on(async {
        let last = bus.last_message(START_SUBJECT).await.unwrap().unwrap().seq;
        let mut sub = bus
            .subscribe(START_SUBJECT, None, StartAt::All)
            .await
            .unwrap();
        let mut starts = Vec::new();
        let mut modules = std::collections::HashMap::new();
        loop {
            let m = sub.next().await.unwrap();
            let start: TickStart = postcard::from_bytes(&m.payload).unwrap();
            // Modules travel by reference, through the blob store.
            for hash in scripts::missing_scripts(&start, &modules) {
                let blob = bus
                    .get_blob(&scripts::script_blob_name(hash))
                    .await
                    .unwrap();
                modules.insert(hash, blob.expect("the script's blob"));
            }
            if start.tick == 1 {
                assert_eq!(
                    start.scripts.len(),
                    1,
                    "tick 1 adds the chaser by reference"
                );
            }
            starts.push(scripts::attach_scripts(start, &modules).unwrap());
            if m.seq >= last {
                return starts;
            }
        }
    });
    let mut by_epoch: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for s in &starts {
        by_epoch.entry(s.epoch).or_default().push(s.tick);
    }
    assert!(
        by_epoch.len() >= 2,
        "the lost shard made a new plan: {by_epoch:?}"
    );
    for (epoch, ticks) in &by_epoch {
        for pair in ticks.windows(2) {
            assert_eq!(pair[1], pair[0] + 1, "epoch {epoch}: ticks {ticks:?}");
        }
    }
    let second = &by_epoch[&2];
    let resumed_from = second[0] - 1;
    assert!(
        resumed_from.is_multiple_of(CHECKPOINT_EVERY) && resumed_from < killed_at,
        "epoch 2 re-ran from a checkpoint before the kill at {killed_at}: from {resumed_from}"
    );
    // The inputs of each tick as the final run applied them (the newest epoch's start).
    let mut inputs: BTreeMap<u64, (u64, Vec<WorldInput>)> = BTreeMap::new();
    for s in starts {
        if inputs.get(&s.tick).is_none_or(|(e, _)| *e <= s.epoch) {
            inputs.insert(s.tick, (s.epoch, s.inputs));
        }
    }
    let inputs: BTreeMap<u64, Vec<WorldInput>> =
        inputs.into_iter().map(|(t, (_, i))| (t, i)).collect();
    let late_ticks: Vec<u64> = inputs
        .iter()
        .filter(|(_, i)| i.contains(&late_input))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        late_ticks.len(),
        1,
        "the late input ran once: {late_ticks:?}"
    );

    // Every tick's last report matches the uninterrupted world.
    let (expected, ships) = reference(&spec, &inputs);
    let mut last_report: BTreeMap<u64, &TickReport> = BTreeMap::new();
    for (_, r) in &seen {
        last_report.insert(r.tick, r);
    }
    assert_eq!(
        last_report.keys().copied().collect::<BTreeSet<_>>(),
        (1..=LAST_TICK).collect(),
        "a report for every tick"
    );
    for (tick, report) in &last_report {
        assert_eq!(
            report.state_hash,
            expected[*tick as usize - 1],
            "tick {tick} (epoch {}); shard killed after {killed_at}, leader after {leader_killed_at}",
            report.epoch
        );
    }
    let final_report = last_report[&LAST_TICK];
    assert_eq!(final_report.ships, ships);
    assert!(ships > u64::from(SHIPS), "the late fleet joined the world");
    assert_eq!(
        final_report.shards.len(),
        3,
        "the restarted process runs a shard again"
    );
    let rebalanced = by_epoch.keys().max().unwrap();
    assert!(*rebalanced >= 3, "a plan after the rebalance: {by_epoch:?}");
    let from = by_epoch[rebalanced][0] - 1;
    assert!(
        from.is_multiple_of(CHECKPOINT_EVERY) && from > leader_killed_at,
        "the rebalance starts from a checkpoint after the process came back: {from}"
    );

    // The leader's failover went on in the same plan: one epoch's ticks span both leaders.
    let epoch_at_kill = seen
        .iter()
        .map(|(_, r)| r)
        .find(|r| r.tick == leader_killed_at && r.epoch >= 2)
        .map(|r| r.epoch)
        .unwrap();
    assert!(by_epoch[&epoch_at_kill].contains(&(leader_killed_at + 3)));

    // Only the last complete checkpoint's pieces are kept: older ones and those of the plan
    // the lost shard left incomplete are deleted.
    runtime.block_on(async {
        let record = coordination
            .get_json::<plan::CheckpointRecord>(plan::keys::CHECKPOINT)
            .await
            .unwrap()
            .unwrap()
            .value;
        assert_eq!(record.tick, LAST_TICK);
        let mut kept: Vec<String> = bus
            .list_blobs(plan::PIECE_BLOB_PREFIX)
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        kept.sort();
        let mut expected = record.piece_names();
        expected.sort();
        assert_eq!(kept, expected);
    });

    drop(shards);
    drop(leaders);
    runtime.block_on(async { coordination.close().await.unwrap() });
    nats_server.kill();
    etcd_server.kill();
}

/// Every process of a running world stopped (SIGINT: shards, leader and standby) and new
/// ones started under the same member ids, over the nats-server and etcd that kept the
/// world: the new shard processes are not the old ones (new registrations), so the old plan's
/// shards are lost with their state; the new leader makes a new plan from the last complete
/// checkpoint, and every tick from there matches the single-process world.
#[test]
fn a_cluster_restarted_under_the_same_member_ids_resumes_from_its_last_checkpoint() {
    let dir = fresh_dir("cluster-restart");
    let mut nats_server = NatsServer::start(&dir).unwrap();
    let mut etcd_server = Etcd::start(&dir).unwrap();
    let (nats, etcd) = (nats_server.url(), etcd_server.endpoint());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let spec = WorldSpec {
        assignment: SectorAssignment::Stripes {
            shards: 2,
            width: 1,
        },
        last_tick: Some(110),
        ..spec(setup())
    };
    let (coordination, bus) = runtime.block_on(async {
        let coordination = Coordination::connect(std::slice::from_ref(&etcd), "faults", 5)
            .await
            .unwrap();
        coordination
            .put_json(plan::keys::SPEC, &spec)
            .await
            .unwrap();
        let bus = TickBus::connect(&nats, "faults").await.unwrap();
        (coordination, bus)
    });
    let cluster = |round: &str| -> Vec<Proc> {
        let mut procs: Vec<Proc> = (0..2)
            .map(|i| {
                let member = i.to_string();
                let name = format!("shard-{i}-{round}");
                let args = ["shard", "--member", &member, "--threads", "1"];
                start(&name, &args, &nats, &etcd, &dir)
            })
            .collect();
        // The new shard processes register before a leader reads who is there (the
        // takeover path; the other order is the conductor tests').
        let deadline = Instant::now() + Duration::from_secs(60);
        while runtime.block_on(coordination.live_shards()).unwrap().len() < 2 {
            assert!(Instant::now() < deadline, "the shards did not register");
            std::thread::sleep(Duration::from_millis(50));
        }
        procs.extend((0..2).map(|i| {
            let name = format!("leader-{i}-{round}");
            start(&name, &["leader", "--name", &name], &nats, &etcd, &dir)
        }));
        procs
    };
    let stop = |procs: &mut Vec<Proc>| {
        for p in procs.iter() {
            let _ = Command::new("kill")
                .args(["-INT", &p.child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for p in procs.iter_mut() {
            loop {
                if let Some(status) = p.child.try_wait().unwrap() {
                    assert!(status.success(), "{} exited with {status}", p.name);
                    break;
                }
                assert!(Instant::now() < deadline, "{} did not stop", p.name);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };

    let mut seen = Vec::new();
    let mut outcomes = runtime
        .block_on(bus.subscribe(OUTCOME_SUBJECT, None, StartAt::All))
        .unwrap();
    let mut first = cluster("first");
    // Past the checkpoint of tick 50, then everything stops between checkpoints: the leaders
    // first (a shard stopping first would make the leader plan without it), so the plan
    // left behind has both members and a tick running.
    runtime.block_on(reports_until(&mut outcomes, &mut seen, &dir, |r| {
        r.tick >= 62
    }));
    let mut first_shards: Vec<Proc> = first.drain(..2).collect();
    stop(&mut first);
    stop(&mut first_shards);
    let (old_plan, checkpoint, stopped_seq, stopped_at) = runtime.block_on(async {
        let plan = coordination
            .get_json::<plan::Plan>(plan::keys::PLAN)
            .await
            .unwrap()
            .unwrap()
            .value;
        let checkpoint = coordination
            .get_json::<plan::CheckpointRecord>(plan::keys::CHECKPOINT)
            .await
            .unwrap()
            .unwrap()
            .value;
        let last = bus.last_message(START_SUBJECT).await.unwrap().unwrap();
        let start: TickStart = postcard::from_bytes(&last.payload).unwrap();
        (plan, checkpoint, last.seq, start.tick)
    });
    assert!(
        checkpoint.tick >= 50 && checkpoint.tick <= stopped_at,
        "the last start was of tick {stopped_at}, the last checkpoint: {checkpoint:?}"
    );
    assert_eq!(old_plan.members, vec![0, 1]);

    let restarted = Instant::now();
    let mut second = cluster("second");
    runtime.block_on(reports_until(&mut outcomes, &mut seen, &dir, |r| {
        r.tick >= 110
    }));
    let resumed_after = seen
        .iter()
        .find(|(_, r)| r.epoch > old_plan.epoch)
        .map(|(when, _)| *when - restarted);
    eprintln!("figures: first report {resumed_after:?} after the new processes started");
    stop(&mut second);

    // The starts after the restart: a new plan's, from the checkpoint on, no tick skipped or
    // started twice.
    let (new_plan, starts) = runtime.block_on(async {
        let plan = coordination
            .get_json::<plan::Plan>(plan::keys::PLAN)
            .await
            .unwrap()
            .unwrap()
            .value;
        let last = bus.last_message(START_SUBJECT).await.unwrap().unwrap().seq;
        let mut sub = bus
            .subscribe(START_SUBJECT, None, StartAt::All)
            .await
            .unwrap();
        let mut starts = Vec::new();
        loop {
            let m = sub.next().await.unwrap();
            let start: TickStart = postcard::from_bytes(&m.payload).unwrap();
            starts.push((m.seq, start));
            if m.seq >= last {
                return (plan, starts);
            }
        }
    });
    assert_eq!(new_plan.members, vec![0, 1]);
    for (shard, old) in old_plan.registrations.iter().enumerate() {
        assert_ne!(
            new_plan.registrations.get(shard),
            Some(old),
            "shard {shard}'s process is a new one"
        );
    }
    let after: Vec<(u64, u64)> = starts
        .iter()
        .filter(|(seq, _)| *seq > stopped_seq)
        .map(|(_, s)| (s.epoch, s.tick))
        .collect();
    assert!(
        after.iter().all(|(epoch, _)| *epoch > old_plan.epoch),
        "nothing started under the old plan: {after:?}"
    );
    assert_eq!(
        after.first().map(|(_, tick)| *tick),
        Some(checkpoint.tick + 1),
        "the new plan re-runs from the last checkpoint"
    );
    for pair in after.windows(2) {
        assert!(
            pair[1].1 == pair[0].1 + 1 || pair[1].0 > pair[0].0,
            "a tick skipped or started twice: {after:?}"
        );
    }

    // Every tick's last report matches the uninterrupted world.
    let mut inputs: BTreeMap<u64, (u64, Vec<WorldInput>)> = BTreeMap::new();
    for (_, s) in starts {
        if inputs.get(&s.tick).is_none_or(|(e, _)| *e <= s.epoch) {
            let inputs_of = scripts::attach_scripts(s.clone(), &setup_modules())
                .unwrap()
                .inputs;
            inputs.insert(s.tick, (s.epoch, inputs_of));
        }
    }
    let inputs: BTreeMap<u64, Vec<WorldInput>> =
        inputs.into_iter().map(|(t, (_, i))| (t, i)).collect();
    let (expected, ships) = reference(&spec, &inputs);
    let mut last_report: BTreeMap<u64, &TickReport> = BTreeMap::new();
    for (_, r) in &seen {
        last_report.insert(r.tick, r);
    }
    assert_eq!(
        last_report.keys().copied().collect::<BTreeSet<_>>(),
        (1..=110).collect(),
        "a report for every tick"
    );
    for (tick, report) in &last_report {
        assert_eq!(
            report.state_hash,
            expected[*tick as usize - 1],
            "tick {tick} (epoch {}); stopped with tick {stopped_at} started",
            report.epoch
        );
    }
    assert_eq!(last_report[&110].ships, ships);
    assert!(last_report[&110].epoch > old_plan.epoch);

    drop(second);
    drop(first);
    drop(first_shards);
    runtime.block_on(async { coordination.close().await.unwrap() });
    nats_server.kill();
    etcd_server.kill();
}

/// The setup's script modules by hash (starts carry them by reference).
fn setup_modules() -> std::collections::HashMap<u128, Vec<u8>> {
    let wasm = WatBot::chaser().wasm();
    [(astroboids_scripting::module_hash(&wasm), wasm)].into()
}

/// `cluster up` starts the servers, a leader and a standby, and the shard processes, and says
/// where everything listens; `cluster status` shows the world running; Ctrl-C (SIGINT) stops
/// all of it.
#[test]
fn cluster_up_runs_a_world_that_status_shows_and_ctrl_c_stops() {
    let dir = fresh_dir("cluster-up");
    let data = dir.join("data");
    let mut up = Command::new(env!("CARGO_BIN_EXE_astroboids"))
        .args([
            "cluster",
            "up",
            "--shards",
            "2",
            "--nats-port",
            "0",
            "--etcd-port",
            "0",
            "--postgres-port",
            "0",
            "--gateway-port",
            "0",
        ])
        .args(["--tick-ms", "50", "--data", data.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = up.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut printed = Vec::new();
    let (mut nats, mut etcd) = (String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("nats: ") {
            nats = url.to_owned();
        }
        if let Some(url) = line.strip_prefix("etcd: ") {
            etcd = url.to_owned();
        }
        let running = line.starts_with("running");
        printed.push(line);
        if running {
            break;
        }
    }
    let printed = printed.join("\n");
    assert!(nats.starts_with("nats://127.0.0.1:"), "{printed}");
    assert!(etcd.starts_with("http://127.0.0.1:"), "{printed}");
    for role in ["leader-0", "leader-1", "shard-0", "shard-1", "gateway-0"] {
        assert!(printed.contains(&format!("{role}: pid ")), "{printed}");
    }
    // What `serve` prints, so players find the cluster the same way.
    assert!(printed.contains("\nlistening: 127.0.0.1:"), "{printed}");
    assert!(printed.contains("\nfingerprint: "), "{printed}");
    assert!(printed.contains("\npostgres: postgres://"), "{printed}");
    let status = |dir: &std::path::Path| {
        json(
            &astroboids(dir)
                .args([
                    "cluster", "status", "--json", "--nats", &nats, "--etcd", &etcd,
                ])
                .output()
                .unwrap(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let first = loop {
        let s = status(&dir);
        if s["last_tick"]["tick"].as_u64().is_some_and(|t| t >= 5) {
            break s;
        }
        assert!(Instant::now() < deadline, "no ticks: {s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        first["leader"].as_str().unwrap().starts_with("leader-"),
        "{first}"
    );
    assert_eq!(
        first["plan"]["members"].as_array().unwrap().len(),
        2,
        "{first}"
    );
    assert_eq!(
        first["live_processes"],
        serde_json::json!([0, 1]),
        "{first}"
    );
    assert_eq!(
        first["last_tick"]["shards"].as_array().unwrap().len(),
        2,
        "{first}"
    );
    // Paced at 50 ms a tick: it keeps going.
    std::thread::sleep(Duration::from_millis(600));
    let later = status(&dir);
    assert!(
        later["last_tick"]["tick"].as_u64() > first["last_tick"]["tick"].as_u64(),
        "{first}\n{later}"
    );

    let _ = Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status();
    let exit = up.wait().unwrap();
    assert!(exit.success(), "cluster up exited with {exit}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter()
            .any(|l| l.starts_with("ticks: ") && l.contains("start to start p50")),
        "the leader's tick pace at the end: {rest:?}"
    );
    for role in ["leader-0", "shard-0", "shard-1"] {
        let log = std::fs::read_to_string(data.join(format!("{role}.log"))).unwrap();
        assert!(log.contains("stopped"), "{role} stopped cleanly:\n{log}");
    }
}
