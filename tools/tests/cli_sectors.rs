//! `astroboids sectors` as designers use it: maps, statistics and comparisons of a region,
//! presets, errors that name what was wrong without touching an existing map, and `--watch`
//! re-rendering on each save (a bad save is reported and the last good map stays).

mod common;

use common::{fresh_dir, repo};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_astroboids"))
        .current_dir(dir)
        .arg("sectors")
        .args(args)
        .output()
        .expect("run astroboids")
}

fn succeed(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fail(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

/// The default configuration with one line replaced.
fn config_with(dir: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("assets/universe.toml")).unwrap();
    assert!(text.contains(from), "{from} is in universe.toml");
    let path = dir.join(name);
    std::fs::write(&path, text.replace(from, to)).unwrap();
    path
}

fn png_size(path: &Path) -> (u32, u32) {
    image::image_dimensions(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn maps_stats_and_comparisons_of_a_region() {
    let dir = fresh_dir("sectors-region");
    let out = succeed(
        &dir,
        &[
            "render", "--from", "-20,-20", "--to", "19,19", "--out", "map.png",
        ],
    );
    assert!(out.contains("40 x 40") && out.contains("map.png"), "{out}");
    assert!(
        out.contains("empty") && out.contains("nebula area"),
        "key figures: {out}"
    );
    let (width, height) = png_size(&dir.join("map.png"));
    assert!(width >= 40 * 8 && height >= 40 * 8, "{width} x {height}");
    succeed(
        &dir,
        &[
            "render",
            "--shade",
            "asteroids",
            "--from",
            "0,0",
            "--to",
            "9,9",
            "--out",
            "density.png",
        ],
    );
    assert!(png_size(&dir.join("density.png")).0 > 0);
    let e = fail(
        &dir,
        &[
            "render", "--shade", "rocks", "--from", "0,0", "--to", "1,1", "--out", "x.png",
        ],
    );
    assert!(e.contains("rocks") && e.contains("asteroids"), "{e}");

    let stats = |config: &str| -> serde_json::Value {
        let out = succeed(
            &dir,
            &[
                "stats", "--config", config, "--from", "-20,-20", "--to", "19,19", "--json",
            ],
        );
        serde_json::from_str(&out).unwrap()
    };
    let sparse = stats("preset:sparse-frontier");
    let dense = stats("preset:dense-belt");
    assert_eq!(dense["stats"]["sectors"], 1600);
    let share = |v: &serde_json::Value| v["stats"]["empty_share"].as_f64().unwrap();
    assert!(share(&dense) < share(&sparse), "{dense} vs {sparse}");
    assert!(
        dense["stats"]["asteroids_per_sector"]["p50"]
            .as_f64()
            .unwrap()
            > sparse["stats"]["asteroids_per_sector"]["p50"]
                .as_f64()
                .unwrap()
    );
    let table = succeed(&dir, &["stats", "--from", "0,0", "--to", "9,9"]);
    for row in [
        "empty sectors",
        "area in nebulae",
        "sectors with a hazard",
        "ore per sector p99",
    ] {
        assert!(table.contains(row), "{row} in {table}");
    }

    let out = succeed(
        &dir,
        &[
            "compare",
            "--config",
            "preset:sparse-frontier",
            "--config",
            "preset:dense-belt",
            "--from",
            "-20,-20",
            "--to",
            "19,19",
            "--out",
            "cmp.png",
        ],
    );
    assert!(
        out.contains("A = preset:sparse-frontier, B = preset:dense-belt") && out.contains("change"),
        "{out}"
    );
    let (cmp_width, _) = png_size(&dir.join("cmp.png"));
    assert!(cmp_width > 2 * 40 * 4, "side by side: {cmp_width}");

    let presets = succeed(&dir, &["presets"]);
    for name in ["sparse-frontier", "dense-belt", "nebula-maze", "hazard-rim"] {
        assert!(presets.contains(&format!("preset:{name}")), "{presets}");
    }
}

#[test]
fn bad_input_is_named_and_an_existing_map_is_left_alone() {
    let dir = fresh_dir("sectors-bad");
    let region = ["--from", "0,0", "--to", "9,9"];
    let render = |config: &str, out: &str| -> Vec<String> {
        let mut args = vec!["render", "--config", config, "--out", out];
        args.extend(region);
        args.into_iter().map(String::from).collect()
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    succeed(&dir, &args(&render("default", "map.png")));
    let before = std::fs::read(dir.join("map.png")).unwrap();

    config_with(
        &dir,
        "bad.toml",
        "max_asteroids_per_sector = 24",
        "max_asteroids_per_sector = 999",
    );
    let e = fail(&dir, &args(&render("bad.toml", "map.png")));
    assert!(
        e.contains("bad.toml")
            && e.contains("generation.max_asteroids_per_sector")
            && e.contains("between 0 and 256, got 999"),
        "{e}"
    );
    config_with(
        &dir,
        "typo.toml",
        "hazard_chance = 0.05",
        "hazard_chanse = 0.05",
    );
    let e = fail(&dir, &args(&render("typo.toml", "map.png")));
    assert!(
        e.contains("typo.toml") && e.contains("hazard_chanse"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(dir.join("map.png")).unwrap(),
        before,
        "map untouched"
    );

    let e = fail(&dir, &args(&render("default", "map.jpg")));
    assert!(e.contains("map.jpg") && e.contains(".png"), "{e}");
    let e = fail(&dir, &args(&render("default", "missing/map.png")));
    assert!(e.contains("missing") && e.contains("does not exist"), "{e}");
    let e = fail(&dir, &args(&render("nowhere.toml", "map.png")));
    assert!(e.contains("cannot read config file nowhere.toml"), "{e}");
    let e = fail(&dir, &args(&render("preset:dense", "map.png")));
    assert!(
        e.contains("no preset \"dense\"") && e.contains("dense-belt"),
        "{e}"
    );
    let e = fail(&dir, &["stats", "--from", "5,5", "--to", "0,0"]);
    assert!(e.contains("from must be the smaller"), "{e}");
    let e = fail(&dir, &["stats", "--from", "five,5", "--to", "9,9"]);
    assert!(e.contains("\"five,5\"") && e.contains("X,Y"), "{e}");
    let e = fail(&dir, &["stats", "--from", "0,0", "--to", "4999,4999"]);
    assert!(
        e.contains("25000000 sectors") && e.contains("at most"),
        "{e}"
    );
    let e = fail(
        &dir,
        &[
            "compare", "--config", "default", "--from", "0,0", "--to", "1,1",
        ],
    );
    assert!(e.contains("exactly two configurations"), "{e}");
    let e = fail(
        &dir,
        &[
            "stats",
            "--config",
            "preset:hazard-rim",
            "--from",
            "0,0",
            "--to",
            "1,1",
            "--watch",
        ],
    );
    assert!(e.contains("--watch follows configuration files"), "{e}");
    assert_eq!(
        std::fs::read(dir.join("map.png")).unwrap(),
        before,
        "map untouched"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "no partial files left behind");
}

/// Lines of the child's stderr, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for(lines: &mpsc::Receiver<String>, what: &str) -> String {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains(what) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no {what:?} within 60 s; saw {seen:#?}"),
        }
    }
}

#[test]
fn watch_redraws_on_each_save_and_keeps_the_last_good_map_after_a_bad_one() {
    let dir = fresh_dir("sectors-watch");
    let config = config_with(
        &dir,
        "design.toml",
        "hazard_chance = 0.05",
        "hazard_chance = 0.05",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_astroboids"))
        .current_dir(&dir)
        .args([
            "sectors",
            "render",
            "--config",
            "design.toml",
            "--from",
            "0,0",
            "--to",
            "29,29",
            "--out",
            "map.png",
            "--watch",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    wait_for(&lines, "watching");
    let first = std::fs::read(dir.join("map.png")).unwrap();

    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("hazard_chance = 0.05", "hazard_chance = 0.6"),
    )
    .unwrap();
    wait_for(&lines, "after the change");
    let second = std::fs::read(dir.join("map.png")).unwrap();
    assert_ne!(first, second, "the map shows the edit");

    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("hazard_chance = 0.6", "hazard_chance = 7.0"),
    )
    .unwrap();
    let error = wait_for(&lines, "error");
    assert!(
        error.contains("design.toml") && error.contains("generation.hazard_chance"),
        "{error}"
    );
    wait_for(&lines, "still watching");
    assert_eq!(std::fs::read(dir.join("map.png")).unwrap(), second);
    assert!(
        child.try_wait().unwrap().is_none(),
        "a bad save does not end the watch"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
