//! `astroboids script build|check` and `astroboids sim --script`, as a script author uses them:
//! the TypeScript examples compile with the SDK and fly in the sim; bad scripts and a broken
//! toolchain get errors that say what to do.
//!
//! Needs Node.js and the SDK's packages (`npm ci --prefix scripting/sdk`, part of the README's
//! test command); without them these tests fail with the CLI's own explanation. The tests
//! with hand-written WebAssembly text (.wat) modules need neither.

mod common;

use common::repo;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn astroboids(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_astroboids"))
        .args(args)
        .current_dir(repo())
        .env_remove("ASTROBOIDS_SDK")
        .output()
        .expect("run astroboids")
}

fn succeed(args: &[&str]) -> String {
    let out = astroboids(args);
    assert!(
        out.status.success(),
        "astroboids {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fail(args: &[&str]) -> String {
    let out = astroboids(args);
    assert!(!out.status.success(), "astroboids {args:?} should fail");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A directory of its own under the target dir, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sim_json(script: &str, threads: &str) -> serde_json::Value {
    sim_json_with(script, threads, &["--no-script-cache"])
}

fn sim_json_with(script: &str, threads: &str, extra: &[&str]) -> serde_json::Value {
    let base = [
        "sim",
        "--seed",
        "3",
        "--ships",
        "80",
        "--ticks",
        "80",
        "--json",
        "--threads",
        threads,
        "--script",
        script,
    ];
    let out = succeed(&[&base[..], extra].concat());
    serde_json::from_str(out.lines().last().expect("a summary line")).expect("JSON summary")
}

#[test]
fn every_example_builds_and_flies_deterministically() {
    let dir = scratch("examples");
    for name in ["miner", "explorer", "hunter"] {
        let out = dir.join(format!("{name}.wasm"));
        let source = format!("assets/scripts/{name}.ts");
        let printed = succeed(&["script", "build", &source, "-o", out.to_str().unwrap()]);
        assert!(printed.contains("valid for ABI v1"), "{printed}");

        let wasm = out.to_str().unwrap();
        let a = sim_json(wasm, "2");
        // 80 ships, 40 to a sector: each sector starts four a tick (ticks 1 to 10), and every
        // ship runs every tick from the one it starts in.
        let runs_per_sector: u64 = (1..=10u64).map(|start| 4 * (80 - start + 1)).sum();
        assert_eq!(
            a["script_runs"],
            2 * runs_per_sector,
            "{name}: every ship ran every tick from its start: {a}"
        );
        assert_eq!(a["script_ships_running"], 80, "{name}: {a}");
        assert_eq!(a["script_faults"], 0, "{name}: {a}");
        assert!(a["script_fuel_used"].as_u64().unwrap() > 0, "{name}: {a}");
        let b = sim_json(wasm, "1");
        assert_eq!(a["state_hash"], b["state_hash"], "{name}: 1 vs 2 threads");
        if name == "miner" {
            assert!(a["ore_mined"].as_u64().unwrap() > 0, "the miner mines: {a}");
        }
    }
}

#[test]
fn sim_compiles_a_typescript_script_itself() {
    let summary = sim_json("assets/scripts/miner.ts", "2");
    assert_eq!(summary["script"], "assets/scripts/miner.ts");
    assert!(summary["ore_mined"].as_u64().unwrap() > 0, "{summary}");
}

#[test]
fn a_second_run_loads_the_compiled_script_from_the_cache() {
    let dir = scratch("cache");
    let wasm = dir.join("hunter.wasm");
    succeed(&[
        "script",
        "build",
        "assets/scripts/hunter.ts",
        "-o",
        wasm.to_str().unwrap(),
    ]);
    let cache = dir.join("artifacts");
    let extra = ["--script-cache", cache.to_str().unwrap(), "--show-log", "1"];
    let first = sim_json_with(wasm.to_str().unwrap(), "2", &extra);
    let log = first["script_log"]
        .as_array()
        .expect("--show-log adds the log");
    assert!(
        log.iter()
            .any(|l| l.as_str().unwrap().starts_with("tick 1: hunting ship")),
        "the hunter logs its first target: {log:?}"
    );
    assert_eq!(first["scripts_compiled"], 1, "{first}");
    assert_eq!(first["scripts_loaded_from_cache"], 0, "{first}");
    let second = sim_json_with(wasm.to_str().unwrap(), "2", &extra);
    assert_eq!(second["scripts_compiled"], 0, "{second}");
    assert_eq!(second["scripts_loaded_from_cache"], 1, "{second}");
    assert_eq!(first["state_hash"], second["state_hash"]);
}

#[test]
fn check_prints_the_interface_and_limits() {
    let dir = scratch("check");
    let out = dir.join("miner.wasm");
    succeed(&[
        "script",
        "build",
        "assets/scripts/miner.ts",
        "-o",
        out.to_str().unwrap(),
    ]);
    let printed = succeed(&["script", "check", out.to_str().unwrap()]);
    for expected in [
        "valid ship script (ABI v1)",
        "astroboids.random",
        "sensor_ptr",
        "command_ptr",
        "tick",
        "the host allows 16 pages",
        "100000 per tick",
        "ran in a trial instance:",
    ] {
        assert!(printed.contains(expected), "`{expected}` in:\n{printed}");
    }
    assert!(!printed.contains("wasmer_"), "host internals stay hidden");
}

#[test]
fn hostile_scripts_fault_back_off_and_share_capped_fuel() {
    // Every ship spins until its fuel runs out: all of them fault and back off. 80 ships spawn
    // into two sectors; with a sector cap of 1,000,000 two start per sector and tick (starts
    // take at most half of it) and the six or so running between their start and their
    // back-off ask for more than the rest, so each sector's cap cuts runs.
    let config = scratch("hostile-caps").join("universe.toml");
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/universe.toml");
    let text = std::fs::read_to_string(default)
        .unwrap()
        .replace(
            "sector_fuel_per_tick_max = 40000000",
            "sector_fuel_per_tick_max = 1000000",
        )
        .replace(
            "account_fuel_per_tick_max = 5000000",
            "account_fuel_per_tick_max = 1000000",
        );
    assert!(text.contains("sector_fuel_per_tick_max = 1000000"));
    assert!(text.contains("account_fuel_per_tick_max = 1000000"));
    std::fs::write(&config, text).unwrap();
    let summary = sim_json_with(
        "assets/hostile/spin.wat",
        "2",
        &["--config", config.to_str().unwrap()],
    );
    assert!(summary["script_faults"].as_u64().unwrap() > 0, "{summary}");
    assert!(
        summary["script_runs_skipped_in_backoff"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert!(
        summary["script_runs_cut_by_caps"].as_u64().unwrap() > 0,
        "{summary}"
    );
    let fuel = summary["script_fuel_used"].as_u64().unwrap();
    assert!(
        fuel <= 80 * 2 * 1_000_000,
        "never more than the cap per sector and tick: {fuel}"
    );
}

#[test]
fn rejected_scripts_name_the_problem_and_exit_non_zero() {
    let dir = scratch("rejected");
    let bad = dir.join("seeded.wasm");
    let wat = r#"(module
        (import "env" "seed" (func (result f64)))
        (memory (export "memory") 1)
        (func (export "astroboids_abi") (result i32) i32.const 1)
        (func (export "sensor_ptr") (result i32) i32.const 1024)
        (func (export "command_ptr") (result i32) i32.const 4096)
        (func (export "tick")))"#;
    std::fs::write(&bad, wasmer::wat2wasm(wat.as_bytes()).unwrap()).unwrap();
    let expected = "import env.seed is not allowed: scripts get randomness from astroboids.random";
    let msg = fail(&["script", "check", bad.to_str().unwrap()]);
    assert!(msg.contains(expected), "{msg}");
    assert_eq!(msg.matches(expected).count(), 1, "the reason once: {msg}");
    let msg = fail(&[
        "sim",
        "--ticks",
        "1",
        "--ships",
        "1",
        "--no-script-cache",
        "--script",
        bad.to_str().unwrap(),
    ]);
    assert!(msg.contains(expected), "{msg}");
    assert_eq!(msg.matches(expected).count(), 1, "the reason once: {msg}");
    assert_eq!(msg.lines().count(), 1, "one error line: {msg}");
    assert!(
        msg.contains("seeded.wasm: script rejected: import env.seed"),
        "{msg}"
    );
    let msg = fail(&["sim", "--ticks", "1", "--script", "assets/universe.toml"]);
    assert!(
        msg.contains("a .wasm module, a .wat module (WebAssembly text) or a .ts file"),
        "{msg}"
    );
}

/// The exports every test module below shares (ABI v1, blocks at 1024 and 4096).
const ABI_EXPORTS: &str = r#"
    (func (export "astroboids_abi") (result i32) i32.const 1)
    (func (export "sensor_ptr") (result i32) i32.const 1024)
    (func (export "command_ptr") (result i32) i32.const 4096)"#;

/// Writes `(module BODY ABI_EXPORTS)` as `name` in `dir`.
fn write_wat(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("(module\n{body}{ABI_EXPORTS})\n")).unwrap();
    path
}

fn failed_sim(script: &Path, extra: &[&str]) -> Output {
    let base = [
        "sim",
        "--seed",
        "3",
        "--ships",
        "6",
        "--ticks",
        "20",
        "--no-script-cache",
        "--script",
        script.to_str().unwrap(),
    ];
    let out = astroboids(&[&base[..], extra].concat());
    assert!(!out.status.success(), "{script:?} should fail: {out:?}");
    out
}

/// The low `bits` bits of the first `astroboids.random` value the trial instance a module is
/// started in at load gets. Its start function must succeed there, so a module that fails to
/// start in the world must depend on the random bits, which differ per ship. Learnt bit by
/// bit from whether `script check` accepts a module that traps on that bit.
fn trial_random_bits(dir: &Path, bits: u32) -> u32 {
    let mut value = 0;
    for bit in 0..bits {
        let probe = write_wat(
            dir,
            "probe.wat",
            &format!(
                r#"(import "astroboids" "random" (func $random (result i32)))
                   (memory (export "memory") 1)
                   (func $probe
                     (if (i32.and (i32.shr_u (call $random) (i32.const {bit})) (i32.const 1))
                       (then unreachable)))
                   (start $probe)
                   (func (export "tick"))"#
            ),
        );
        let out = astroboids(&["script", "check", probe.to_str().unwrap()]);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("failed while starting"), "{stderr}");
            value |= 1 << bit;
        }
    }
    value
}

/// A start function that traps unless the first random value's low `bits` bits are `value`.
fn start_unless(value: u32, bits: u32) -> String {
    let mask = if bits == 32 {
        u32::MAX
    } else {
        (1 << bits) - 1
    };
    format!(
        r#"(import "astroboids" "random" (func $random (result i32)))
           (memory (export "memory") 1)
           (func $start
             (if (i32.ne (i32.and (call $random) (i32.const {})) (i32.const {}))
               (then unreachable)))
           (start $start)"#,
        mask as i32, value as i32
    )
}

#[test]
fn a_script_that_starts_on_no_ship_stops_the_run_with_the_reason() {
    let dir = scratch("no-start");
    // Starts where the first random value is the trial's (at load), on no ship.
    let trial = trial_random_bits(&dir, 32);
    let script = write_wat(
        &dir,
        "no_start.wat",
        &format!("{}\n(func (export \"tick\"))", start_unless(trial, 32)),
    );
    let out = failed_sim(&script, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no_start.wat: the script failed to start on all 6 ships"),
        "{stderr}"
    );
    // The six ships share a sector, which starts four a tick: the last fail at tick 2.
    assert!(stderr.contains("stopped at tick 2"), "{stderr}");
    assert!(
        stderr.contains("unreachable"),
        "the trap is named: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("script faults    0 while running"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 ships running, 0 waiting to start, 6 failed to start"),
        "{stdout}"
    );
    assert!(stdout.contains("tick 1 (start): "), "{stdout}");

    let out = failed_sim(&script, &["--json"]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(summary["script_start_failures"], 6, "{summary}");
    assert_eq!(summary["script_ships_running"], 0, "{summary}");
    assert_eq!(summary["script_faults"], 0, "{summary}");
    assert_eq!(summary["tick"], 2, "{summary}");
}

#[test]
fn start_failures_are_counted_apart_from_faults_while_running() {
    let dir = scratch("some-start");
    // The start function traps unless the first random bit (seeded per ship) is the trial's:
    // about half the ships start, and those trap on every tick.
    let trial = trial_random_bits(&dir, 1);
    let script = write_wat(
        &dir,
        "coin.wat",
        &format!(
            "{}\n(func (export \"tick\") unreachable)",
            start_unless(trial, 1)
        ),
    );
    let summary = sim_json_with(script.to_str().unwrap(), "2", &["--no-script-cache"]);
    let failed = summary["script_start_failures"].as_u64().unwrap();
    let running = summary["script_ships_running"].as_u64().unwrap();
    assert!(failed > 0 && running > 0, "some of each: {summary}");
    assert_eq!(failed + running, 80, "{summary}");
    assert_eq!(summary["script_ships_starting"], 0, "{summary}");
    // Run faults: the started ships trap whenever their back-off lets them run.
    assert!(summary["script_runs"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(
        summary["script_faults"], summary["script_runs"],
        "{summary}"
    );
    let recent = summary["script_recent_faults"].as_array().unwrap();
    assert!(!recent.is_empty(), "{summary}");
}

#[test]
fn wat_scripts_are_assembled_and_bad_text_names_the_file_and_line() {
    let dir = scratch("wat");
    let good = write_wat(
        &dir,
        "thrust.wat",
        r#"(memory (export "memory") 1)
           (func (export "tick") (f32.store (i32.const 4096) (f32.const 1)))"#,
    );
    let summary = sim_json(good.to_str().unwrap(), "2");
    assert_eq!(summary["script_ships_running"], 80, "{summary}");
    assert!(summary["script_runs"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["script_faults"], 0, "{summary}");
    let printed = succeed(&["script", "check", good.to_str().unwrap()]);
    assert!(printed.contains("valid ship script (ABI v1)"), "{printed}");

    let bad = write_wat(
        &dir,
        "typo.wat",
        r#"(memory (export "memory") 1)
           (func (export "tick")
             i32.const 1
             i32.frobnicate)"#,
    );
    for args in [
        vec!["script", "check", bad.to_str().unwrap()],
        vec!["sim", "--ticks", "1", "--script", bad.to_str().unwrap()],
    ] {
        let msg = fail(&args);
        assert!(
            msg.contains("typo.wat is not valid WebAssembly text"),
            "{msg}"
        );
        assert!(msg.contains("typo.wat:5:"), "file and line: {msg}");
    }
}

#[test]
fn script_log_lines_are_shown_with_control_characters_escaped() {
    let dir = scratch("escapes");
    // ESC [2J (clear screen), then a newline and a line made to look like the host's own.
    let text = r"ok\1b[2J\nship 2 tick 9: FAULT forged";
    let len = text.len() - 3; // `\1b` is three characters for one byte, `\n` two for one.
    let script = write_wat(
        &dir,
        "noisy.wat",
        &format!(
            r#"(import "astroboids" "log" (func $log (param i32 i32)))
               (memory (export "memory") 1)
               (data (i32.const 200) "{text}")
               (func (export "tick") (call $log (i32.const 200) (i32.const {len})))"#
        ),
    );
    let out = astroboids(&[
        "sim",
        "--ships",
        "2",
        "--ticks",
        "3",
        "--no-script-cache",
        "--script",
        script.to_str().unwrap(),
        "--show-log",
        "1",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains('\x1b'),
        "no raw escape reaches the terminal: {stdout:?}"
    );
    let shown = r"ok\x1b[2J\nship 2 tick 9: FAULT forged";
    for tick in 1..=3 {
        assert!(
            stdout.contains(&format!("    tick {tick}: {shown}\n")),
            "tick {tick}'s line, escaped, on one line: {stdout}"
        );
    }
    assert!(
        !stdout.lines().any(|l| l.starts_with("ship 2 tick 9")),
        "no forged line: {stdout}"
    );
}

#[test]
fn compile_errors_and_a_missing_toolchain_are_explained() {
    let dir = scratch("broken");
    let source = dir.join("typo.ts");
    std::fs::write(
        &source,
        "export function tick(): void {\n  let speed: f32 = \"fast\";\n}\n",
    )
    .unwrap();
    let msg = fail(&["script", "build", source.to_str().unwrap()]);
    assert!(msg.contains("typo.ts"), "{msg}");
    assert!(msg.contains("did not compile"), "{msg}");

    let msg = fail(&[
        "script",
        "build",
        "assets/scripts/miner.ts",
        "--sdk",
        dir.to_str().unwrap(),
    ]);
    assert!(msg.contains("no script SDK at"), "{msg}");

    let out = Command::new(env!("CARGO_BIN_EXE_astroboids"))
        .args(["script", "build", "assets/scripts/miner.ts", "-o"])
        .arg(dir.join("miner.wasm"))
        .current_dir(repo())
        .env("PATH", "")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("`node` was not found on PATH"), "{msg}");
}
