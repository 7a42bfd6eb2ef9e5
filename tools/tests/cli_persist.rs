//! `astroboids sim --data` and `astroboids replay` as users run them: a world killed with
//! SIGKILL at random moments resumes with the uninterrupted run's state and loses no
//! acknowledged input; recordings verify, a modified byte is refused, and re-running with the
//! same script reproduces the recording while a changed script diverges at the right tick.

mod common;

use common::fresh_dir;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use astroboids_host::replay::Replay;
use astroboids_host::{PersistentWorld, WorldRequest};

fn astroboids(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_astroboids"))
        .args(args)
        .output()
        .expect("run astroboids")
}

fn ok_json(args: &[&str]) -> serde_json::Value {
    let out = astroboids(args);
    assert!(
        out.status.success(),
        "astroboids {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("JSON")
}

/// Full thrust; turns at `late_turn` after tick 20 and 0.5 before; counts ticks in memory.
fn steering_script(late_turn: f32) -> Vec<u8> {
    let wat = format!(
        r#"(module
        (memory (export "memory") 1 1)
        (func (export "astroboids_abi") (result i32) i32.const 1)
        (func (export "sensor_ptr") (result i32) i32.const 1024)
        (func (export "command_ptr") (result i32) i32.const 4096)
        (func (export "tick")
          (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
          (f32.store (i32.const 4096) (f32.const 1))
          (f32.store (i32.const 4100)
            (select (f32.const {late_turn}) (f32.const 0.5)
              (i64.gt_u (i64.load (i32.const 1024)) (i64.const 20))))))"#
    );
    wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned()
}

/// The embedded configuration with a checkpoint every 20 ticks.
fn write_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../assets/universe.toml"
    ))
    .unwrap()
    .replace(
        "checkpoint_every_ticks = 100",
        "checkpoint_every_ticks = 20",
    );
    let path = dir.join("universe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Brakes, turns and thrusts for a few ships every few ticks up to `until`.
fn write_inputs(dir: &Path, until: u64) -> PathBuf {
    let mut lines = String::from("# manual commands\n");
    for tick in (2..=until).step_by(3) {
        let ship = 1 + tick % 40;
        lines.push_str(&format!(
            "{{\"tick\": {tick}, \"input\": {{\"Command\": {{\"ship\": {ship}, \"command\": \
             {{\"thrust\": 0.25, \"turn\": -0.5, \"mine\": false, \"stop\": {}}}}}}}}}\n",
            tick % 2 == 0
        ));
    }
    let path = dir.join("inputs.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

#[test]
fn a_world_killed_at_random_moments_resumes_exactly_and_keeps_every_acknowledged_input() {
    const UNTIL: u64 = 1_500;
    let dir = fresh_dir("cli-kill");
    let config = write_config(&dir);
    let inputs = write_inputs(&dir, UNTIL);
    let script = dir.join("steer.wasm");
    std::fs::write(&script, steering_script(-0.25)).unwrap();
    let reference = dir.join("reference.abreplay");
    let (config_s, inputs_s, script_s) = (
        config.to_str().unwrap(),
        inputs.to_str().unwrap(),
        script.to_str().unwrap(),
    );
    let until = UNTIL.to_string();
    let world_args = [
        "sim",
        "--seed",
        "3",
        "--ships",
        "60",
        "--config",
        config_s,
        "--inputs",
        inputs_s,
        "--script",
        script_s,
        "--until-tick",
        &until,
        "--json",
        "--threads",
        "2",
    ];
    let uninterrupted = ok_json(
        &[
            &world_args[..],
            &["--no-script-cache", "--record", reference.to_str().unwrap()],
        ]
        .concat(),
    );
    let reference = Replay::open(&reference).unwrap();
    let reference_hash = |tick: u64| reference.record(tick).expect("recorded").hash;

    let data = dir.join("world");
    let data_s = data.to_str().unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut kills = 0;
    for iteration in 0..40 {
        // xorshift: a different moment each time, the same sequence every test run.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = Command::new(env!("CARGO_BIN_EXE_astroboids"))
            .args(world_args)
            .args(["--data", data_s])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let acks = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("acknowledged: inputs for tick ") {
                    last = rest.split(' ').next().and_then(|t| t.parse::<u64>().ok());
                }
            }
            last
        });
        std::thread::sleep(Duration::from_millis(20 + rng % 700));
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        child.wait().unwrap();
        let last_ack = acks.join().unwrap();

        let (mut world, report) = PersistentWorld::open(
            &data,
            WorldRequest {
                script_workers: 2,
                ..WorldRequest::default()
            },
        )
        .unwrap_or_else(|e| panic!("iteration {iteration}: the killed world reopens: {e}"));
        if let Some(acked) = last_ack {
            // Inputs for `acked` were acknowledged: they are in the world (applied, pending
            // for the next tick, or already run).
            while world.tick() < acked {
                world.step().unwrap();
            }
        }
        let tick = world.tick();
        if tick > 0 {
            assert_eq!(
                world.sim_mut().quick_state_hash().total,
                reference_hash(tick),
                "iteration {iteration}: resumed at tick {tick} (checkpoint {:?}, last \
                 acknowledged {last_ack:?}) with another state than the uninterrupted run",
                report.checkpoint_tick
            );
        }
        drop(world);
        if finished {
            break;
        }
    }
    println!("killed {kills} times");
    assert!(kills >= 3, "the runs were killed mid-way ({kills} times)");
    let out = astroboids(&[&world_args[..], &["--data", data_s]].concat());
    let finished = if out.status.success() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str::<serde_json::Value>(stdout.lines().last().unwrap()).unwrap()
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("already at tick"), "{stderr}");
        let (mut world, _) = PersistentWorld::open(&data, WorldRequest::default()).unwrap();
        serde_json::json!({ "tick": world.tick(), "state_hash": world.state_hash().hex() })
    };
    assert_eq!(finished["tick"], UNTIL);
    assert_eq!(finished["state_hash"], uninterrupted["state_hash"]);
}

#[test]
fn a_recording_verifies_and_one_modified_byte_is_refused() {
    let dir = fresh_dir("cli-record");
    let file = dir.join("run.abreplay");
    let file_s = file.to_str().unwrap();
    let run = ok_json(&[
        "sim", "--seed", "4", "--ships", "30", "--ticks", "120", "--record", file_s, "--json",
    ]);
    assert_eq!(run["record"]["ticks"], 120);
    let verified = ok_json(&["replay", "verify", file_s, "--json"]);
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["ticks_checked"], 120);

    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let out = astroboids(&["replay", "verify", file_s]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("run.abreplay")
            && stderr.contains("damaged")
            && stderr.contains("checksum"),
        "{stderr}"
    );

    bytes.truncate(middle);
    std::fs::write(&file, &bytes).unwrap();
    let out = astroboids(&["replay", "inspect", file_s]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
}

/// The repository's golden replay of 30 scripted miners (ticks 1..=250, keyframes at 0, 100,
/// 200 and 250).
fn golden_replay() -> PathBuf {
    common::repo().join("replays/miner-30-ships.abreplay")
}

#[test]
fn inspect_shows_the_hash_the_recording_compares_with_and_it_matches() {
    let file = golden_replay();
    let file_s = file.to_str().unwrap();
    let replay = Replay::open(&file).unwrap_or_else(|e| {
        panic!("{e} (after a SIM_VERSION or REPLAY_FORMAT bump: see replays/README.md)")
    });
    // A plain tick, and a checkpoint tick (where script memory is recorded too).
    for tick in [37u64, 100] {
        let recorded = format!("{:016x}", replay.record(tick).unwrap().hash);
        let out = astroboids(&["replay", "inspect", file_s, "--tick", &tick.to_string()]);
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.contains("recorded"))
            .unwrap_or_else(|| panic!("a line with the recorded hash: {stdout}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        let (shown, shown_recorded) = (words[2], words[4].trim_end_matches(':'));
        assert_eq!(shown_recorded, recorded, "tick {tick}: {line}");
        assert_eq!(
            shown, recorded,
            "tick {tick}: the re-simulated hash: {line}"
        );
        assert!(line.ends_with("matches)"), "{line}");

        let json = ok_json(&[
            "replay",
            "inspect",
            file_s,
            "--tick",
            &tick.to_string(),
            "--json",
        ]);
        assert_eq!(json["quick_state_hash"], recorded.as_str(), "{json}");
        assert_eq!(json["recorded_hash"], recorded.as_str(), "{json}");
        assert_eq!(json["matches_recording"], true, "{json}");
    }
}

#[test]
fn rerun_reproduces_with_the_same_script_and_diverges_where_a_changed_one_does() {
    let dir = fresh_dir("cli-rerun");
    let (original, changed) = (dir.join("a.wasm"), dir.join("b.wasm"));
    std::fs::write(&original, steering_script(0.5)).unwrap();
    // Identical until tick 20; from tick 21 it turns the other way.
    std::fs::write(&changed, steering_script(-1.0)).unwrap();
    let file = dir.join("run.abreplay");
    let file_s = file.to_str().unwrap();
    ok_json(&[
        "sim",
        "--seed",
        "8",
        "--ships",
        "20",
        "--ticks",
        "60",
        "--record",
        file_s,
        "--script",
        original.to_str().unwrap(),
        "--no-script-cache",
        "--json",
    ]);

    let same = ok_json(&[
        "replay",
        "rerun",
        file_s,
        "--ship",
        "7",
        "--script",
        original.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(same["identical"], true, "{same}");
    assert_eq!(same["first_command_difference"], serde_json::Value::Null);

    let other = ok_json(&[
        "replay",
        "rerun",
        file_s,
        "--ship",
        "7",
        "--script",
        changed.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(other["identical"], false);
    assert_eq!(other["first_command_difference"], 21, "{other}");
    assert_eq!(other["first_ship_difference"], 21, "{other}");
    assert_eq!(other["command_differences"][0]["tick"], 21);

    // The same, offline: export ship 7's trace and run both scripts against it.
    let trace = dir.join("ship7.json");
    let out = astroboids(&[
        "replay",
        "export",
        file_s,
        "--ship",
        "7",
        "-o",
        trace.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = astroboids(&["replay", "trace", trace.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("every answer matches the trace"));
    let out = astroboids(&[
        "replay",
        "trace",
        trace.to_str().unwrap(),
        "--script",
        changed.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("the first is tick 21"), "{stdout}");

    let out = astroboids(&[
        "replay", "inspect", file_s, "--tick", "30", "--ship", "7", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["script_run"]["sensors"]["tick"], 30);
    assert_eq!(seen["script_run"]["command"]["turn"], 0.5);
}

#[test]
fn bad_data_directories_and_input_files_are_refused_by_name() {
    let dir = fresh_dir("cli-bad-data");
    std::fs::write(dir.join("holiday.jpg"), "not a world").unwrap();
    let out = astroboids(&["sim", "--ticks", "5", "--data", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not an AstroBoids data directory"),
        "{stderr}"
    );
    assert!(dir.join("holiday.jpg").exists());

    let inputs = dir.join("inputs.jsonl");
    std::fs::write(
        &inputs,
        "{\"tick\": 3, \"input\": {\"Command\": {\"ship\": 1}}}\n",
    )
    .unwrap();
    let out = astroboids(&["sim", "--ticks", "5", "--inputs", inputs.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("inputs.jsonl line 1") && stderr.contains("command"),
        "{stderr}"
    );

    let world = fresh_dir("cli-seed-mismatch");
    let w = world.to_str().unwrap();
    ok_json(&["sim", "--ships", "5", "--ticks", "3", "--data", w, "--json"]);
    let out = astroboids(&["sim", "--ticks", "3", "--data", w, "--seed", "2"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("universe seed 1, not 2"), "{stderr}");
}
