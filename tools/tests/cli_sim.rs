//! `astroboids sim` as a user runs it: JSON summary, reproducible hash, clear errors.

use std::process::Command;

fn astroboids(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_astroboids"))
        .args(args)
        .output()
        .expect("run astroboids")
}

fn summary(args: &[&str]) -> serde_json::Value {
    let out = astroboids(args);
    assert!(
        out.status.success(),
        "astroboids {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

#[test]
fn json_summary_has_the_documented_fields_and_a_reproducible_hash() {
    let base = [
        "sim", "--seed", "5", "--ships", "150", "--ticks", "40", "--json",
    ];
    let a = summary(&[&base[..], &["--threads", "2"]].concat());
    for field in [
        "ticks",
        "ships",
        "state_hash",
        "tick_ms_p50",
        "tick_ms_p99",
        "sectors_loaded",
    ] {
        assert!(a.get(field).is_some(), "summary has `{field}`: {a}");
    }
    assert_eq!(a["ticks"], 40);
    let hash = a["state_hash"].as_str().unwrap();
    assert_eq!(hash.len(), 16);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));

    let again = summary(&[&base[..], &["--threads", "2"]].concat());
    let single = summary(&[&base[..], &["--threads", "1"]].concat());
    assert_eq!(a["state_hash"], again["state_hash"], "same run twice");
    assert_eq!(a["state_hash"], single["state_hash"], "1 vs 2 threads");

    let other_seed = summary(&[
        "sim", "--seed", "6", "--ships", "150", "--ticks", "40", "--json",
    ]);
    assert_ne!(a["state_hash"], other_seed["state_hash"]);
}

#[test]
fn invalid_arguments_fail_with_a_message_naming_them() {
    let out = astroboids(&["sim", "--ships", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ships"));

    let out = astroboids(&["sim", "--threads", "lots"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
}

#[test]
fn bad_config_file_is_named_with_field_and_reason() {
    let dir = std::env::temp_dir().join(format!("astroboids-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("universe.toml");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../assets/universe.toml"
    ))
    .unwrap()
    .replace("tick_rate_hz = 10", "tick_rate_hz = 0");
    std::fs::write(&path, text).unwrap();
    let out = astroboids(&["sim", "--config", path.to_str().unwrap(), "--ticks", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    assert!(err.contains("simulation.tick_rate_hz"), "{err}");
    assert!(err.contains("must be between 1 and 120"), "{err}");

    let out = astroboids(&[
        "sim",
        "--config",
        dir.join("missing.toml").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn human_summary_shows_a_living_world() {
    let out = astroboids(&["sim", "--ships", "200", "--ticks", "60"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("state hash"), "{text}");
    assert!(text.contains("ore mined"), "{text}");
}

#[test]
fn a_persisted_run_times_its_checkpoint_ticks_and_the_ticks_after_them() {
    let dir = std::env::temp_dir().join(format!("astroboids-cli-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("world");
    let run = summary(&[
        "sim",
        "--ships",
        "40",
        "--ticks",
        "250",
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    // The embedded configuration checkpoints every 100 ticks: ticks 100 and 200, each followed
    // by a tick in this run.
    let times = |field: &str| {
        run[field]
            .as_array()
            .unwrap_or_else(|| panic!("`{field}` is a list: {run}"))
            .iter()
            .map(|t| t.as_f64().expect("milliseconds"))
            .collect::<Vec<f64>>()
    };
    assert_eq!(times("checkpoint_ticks_ms").len(), 2, "{run}");
    assert_eq!(times("after_checkpoint_ticks_ms").len(), 2, "{run}");
    assert!(
        times("after_checkpoint_ticks_ms")
            .iter()
            .all(|&ms| ms > 0.0)
    );
}

#[test]
fn realtime_run_is_paced_and_reaches_the_same_state() {
    let args = [
        "sim", "--seed", "3", "--ships", "50", "--ticks", "5", "--json",
    ];
    let fast = summary(&args);
    let started = std::time::Instant::now();
    let paced = summary(&[&args[..], &["--realtime"]].concat());
    // At 10 Hz the first tick is due at once and the fifth 0.4 s later: pacing can only make a
    // run slower than that, never faster, so this lower bound holds on any machine.
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    assert_eq!(fast["state_hash"], paced["state_hash"]);
    assert_eq!(paced["ticks"], 5);
}
