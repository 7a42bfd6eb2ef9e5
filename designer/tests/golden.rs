//! Golden values: the hash of a generated region per preset (and the default) is pinned, so
//! an unintended change to sector generation fails here. A deliberate change bumps
//! `generator_version` in the configuration files and pins the new hashes.

use astroboids_designer::{ConfigSource, Coord, PRESETS, Region, RegionSummary};
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::sectors::SectorGenerator;

/// (source, generator version, hash of sectors (-16,-16) to (15,15) under seed 7).
const PINNED: &[(&str, u32, &str)] = &[
    ("default", 1, "07cfcbda4d6b4dc0"),
    ("preset:sparse-frontier", 1, "3064dae6617ae582"),
    ("preset:dense-belt", 1, "7431863beb695c98"),
    ("preset:nebula-maze", 1, "d1393125cd5b8bfa"),
    ("preset:hazard-rim", 1, "8bcf8de998f75231"),
];

fn config(source: &str) -> UniverseConfig {
    let source: ConfigSource = source.parse().unwrap();
    let (text, origin) = source.embedded_text().unwrap();
    UniverseConfig::from_toml_str(text, &origin).unwrap()
}

fn region() -> Region {
    Region::new(
        "-16,-16".parse::<Coord>().unwrap(),
        "15,15".parse().unwrap(),
    )
    .unwrap()
}

fn summary(config: &UniverseConfig, seed: u64) -> RegionSummary {
    let generator = SectorGenerator::new(config, seed);
    RegionSummary::generate(&generator, config.simulation.sector_size, region(), &|_| {})
}

#[test]
fn every_preset_generates_its_pinned_region() {
    let mut sources = vec!["default".to_string()];
    sources.extend(PRESETS.iter().map(|p| format!("preset:{}", p.name)));
    let mut problems = Vec::new();
    for source in &sources {
        let config = config(source);
        let found = format!("{:016x}", summary(&config, 7).hash);
        match PINNED.iter().find(|(name, ..)| name == source) {
            None => problems.push(format!(
                "{source} has no pinned hash: add (\"{source}\", {}, \"{found}\")",
                config.generator_version
            )),
            Some((_, version, _)) if *version != config.generator_version => {
                problems.push(format!(
                    "{source}: generator_version is now {} (pinned for {version}): pin its new hash \"{found}\"",
                    config.generator_version
                ))
            }
            Some((_, version, pinned)) if *pinned != found => problems.push(format!(
                "{source}: generation changed while generator_version stayed {version} (pinned {pinned}, now {found}). If the change is deliberate, bump generator_version in the configuration files and pin the new hashes; if not, it is a regression"
            )),
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_region_is_the_same_on_one_thread_and_many() {
    let config = config("preset:dense-belt");
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| summary(&config, 3))
    };
    let (one, four) = (on(1), on(4));
    assert_eq!(one.hash, four.hash);
    assert_eq!(one.sectors, four.sectors);
}

#[test]
fn the_seed_and_the_parameters_both_change_the_region() {
    let default = config("default");
    assert_ne!(summary(&default, 7).hash, summary(&default, 8).hash);
    let mut tweaked = default.clone();
    tweaked.generation.hazard_chance = 0.06;
    assert_ne!(summary(&default, 7).hash, summary(&tweaked, 7).hash);
}
