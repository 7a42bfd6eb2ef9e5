//! `astroboids sectors render|stats|compare|presets`: the designer tools' shell. Reads
//! configuration files, shows progress, times each step, writes images only once they are
//! complete, and with `--watch` runs again whenever a configuration file changes. What is
//! generated, measured and drawn is `astroboids-designer`'s.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use astroboids_designer::render::{self, png_bytes};
use astroboids_designer::{
    ConfigSource, MapSource, MapStyle, PRESETS, Region, RegionStats, RegionSummary,
};
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::sectors::SectorGenerator;

use crate::cli::{
    RegionArgs, SectorsCommand, SectorsCompareArgs, SectorsRenderArgs, SectorsStatsArgs,
};

pub fn run(command: &SectorsCommand) -> Result<()> {
    match command {
        SectorsCommand::Presets => {
            for p in PRESETS {
                println!("{:<16} {}  (--config preset:{})", p.name, p.summary, p.name);
            }
            println!(
                "{:<16} the embedded assets/universe.toml  (--config default)",
                "default"
            );
            Ok(())
        }
        SectorsCommand::Render(args) => {
            check_png_path(&args.out)?;
            rounds(&[&args.config], &args.region, || render_round(args))
        }
        SectorsCommand::Stats(args) => rounds(&[&args.config], &args.region, || stats_round(args)),
        SectorsCommand::Compare(args) => {
            if args.configs.len() != 2 {
                bail!(
                    "compare needs exactly two configurations (--config A --config B), got {}",
                    args.configs.len()
                );
            }
            if let Some(out) = &args.out {
                check_png_path(out)?;
            }
            let configs: Vec<&ConfigSource> = args.configs.iter().collect();
            rounds(&configs, &args.region, || compare_round(args))
        }
    }
}

/// A configuration, checked (errors name the file, the field and the allowed range).
fn load(source: &ConfigSource) -> Result<UniverseConfig> {
    let (text, origin) = match source.embedded_text() {
        Some((text, origin)) => (text.to_string(), origin),
        None => {
            let ConfigSource::File(path) = source else {
                unreachable!("only files are read")
            };
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            (text, path.display().to_string())
        }
    };
    Ok(UniverseConfig::from_toml_str(&text, &origin)?)
}

/// A generated region, and how long generating it took.
struct Generated {
    generator: SectorGenerator,
    summary: RegionSummary,
    took: Duration,
}

fn generate(config: &UniverseConfig, region_args: &RegionArgs, label: &str) -> Result<Generated> {
    let region = Region::new(region_args.from, region_args.to)?;
    let generator = SectorGenerator::new(config, region_args.seed);
    let bar = indicatif::ProgressBar::new(region.sectors());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} sectors ({eta})",
        )
        .expect("a valid template"),
    );
    bar.set_message(format!("generating {label}"));
    let started = Instant::now();
    let summary = RegionSummary::generate(
        &generator,
        config.simulation.sector_size,
        region,
        &|sectors| bar.inc(sectors),
    );
    bar.finish_and_clear();
    Ok(Generated {
        generator,
        summary,
        took: started.elapsed(),
    })
}

fn title(label: &str, seed: u64, summary: &RegionSummary) -> String {
    format!(
        "{label} | seed {seed} | {} | generator v{}",
        summary.region, summary.generator_version
    )
}

fn render_round(args: &SectorsRenderArgs) -> Result<()> {
    let config = load(&args.config)?;
    let label = args.config.label();
    let g = generate(&config, &args.region, &label)?;
    let mut style = MapStyle::auto(&[&g.summary], args.shade.into());
    if let Some(pps) = args.pixels_per_sector {
        style.pixels_per_sector = pps;
    }
    let drawing = Instant::now();
    let map = MapSource {
        summary: &g.summary,
        generator: &g.generator,
        caption: label.clone(),
    };
    let image = render::render(&[map], &style, &title(&label, args.region.seed, &g.summary))?;
    let png = png_bytes(&image)?;
    let drew = drawing.elapsed();
    let writing = Instant::now();
    write_complete(&args.out, &png)?;
    println!(
        "{}: {} ({} x {} px, {} pixels per sector, {} KB)",
        g.summary.region,
        args.out.display(),
        image.width(),
        image.height(),
        style.pixels_per_sector,
        png.len() / 1024
    );
    println!("  {}", RegionStats::of(&g.summary).headline());
    eprintln!(
        "generated {} sectors in {:.2} s, drew and encoded in {:.2} s, wrote in {:.2} s",
        g.summary.sectors.len(),
        g.took.as_secs_f64(),
        drew.as_secs_f64(),
        writing.elapsed().as_secs_f64()
    );
    Ok(())
}

fn stats_round(args: &SectorsStatsArgs) -> Result<()> {
    let config = load(&args.config)?;
    let label = args.config.label();
    let g = generate(&config, &args.region, &label)?;
    let measuring = Instant::now();
    let stats = RegionStats::of(&g.summary);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "config": label,
                "seed": args.region.seed,
                "from": [g.summary.region.from.x, g.summary.region.from.y],
                "to": [g.summary.region.to.x, g.summary.region.to.y],
                "stats": stats,
            })
        );
    } else {
        println!(
            "{}",
            title(&label, args.region.seed, &g.summary).replace(" | ", ", ")
        );
        print!("{}", stats.table());
    }
    eprintln!(
        "generated {} sectors in {:.2} s, measured in {:.2} s",
        g.summary.sectors.len(),
        g.took.as_secs_f64(),
        measuring.elapsed().as_secs_f64()
    );
    Ok(())
}

fn compare_round(args: &SectorsCompareArgs) -> Result<()> {
    let (a_source, b_source) = (&args.configs[0], &args.configs[1]);
    let (a_config, b_config) = (load(a_source)?, load(b_source)?);
    let (a_label, b_label) = (a_source.label(), b_source.label());
    let a = generate(&a_config, &args.region, &a_label)?;
    let b = generate(&b_config, &args.region, &b_label)?;
    let (a_stats, b_stats) = (RegionStats::of(&a.summary), RegionStats::of(&b.summary));
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "seed": args.region.seed,
                "from": [a.summary.region.from.x, a.summary.region.from.y],
                "to": [a.summary.region.to.x, a.summary.region.to.y],
                "a": { "config": a_label, "stats": a_stats },
                "b": { "config": b_label, "stats": b_stats },
            })
        );
    } else {
        println!(
            "seed {}, {}: A = {a_label}, B = {b_label}",
            args.region.seed, a.summary.region
        );
        print!("{}", RegionStats::compare_table(&a_stats, &b_stats));
    }
    if let Some(out) = &args.out {
        // One ore scale for both, so brightness compares by eye.
        let mut style = MapStyle::auto(&[&a.summary, &b.summary], args.shade.into());
        if let Some(pps) = args.pixels_per_sector {
            style.pixels_per_sector = pps;
        }
        let maps = [
            MapSource {
                summary: &a.summary,
                generator: &a.generator,
                caption: format!("A: {a_label}"),
            },
            MapSource {
                summary: &b.summary,
                generator: &b.generator,
                caption: format!("B: {b_label}"),
            },
        ];
        let title = format!("A vs B | seed {} | {}", args.region.seed, a.summary.region);
        let png = png_bytes(&render::render(&maps, &style, &title)?)?;
        write_complete(out, &png)?;
        println!("side by side: {} ({} KB)", out.display(), png.len() / 1024);
    }
    eprintln!(
        "generated 2 x {} sectors in {:.2} s + {:.2} s",
        a.summary.sectors.len(),
        a.took.as_secs_f64(),
        b.took.as_secs_f64()
    );
    Ok(())
}

/// Refuses an output path that cannot take a PNG, before any work is done.
fn check_png_path(out: &Path) -> Result<()> {
    let is_png = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        bail!(
            "--out {}: maps are written as PNG; name the file .png",
            out.display()
        );
    }
    let dir = parent_dir(out);
    if !dir.is_dir() {
        bail!(
            "--out {}: directory {} does not exist",
            out.display(),
            dir.display()
        );
    }
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `bytes` to a temporary file beside `out`, then renames it over `out`: an existing
/// map is replaced whole or not at all.
fn write_complete(out: &Path, bytes: &[u8]) -> Result<()> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = parent_dir(out).join(format!(".{name}.{}.partial", std::process::id()));
    let written = std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, out))
        .with_context(|| format!("cannot write {}", out.display()));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Runs `round` once; with `--watch`, again after each change to a configuration file, and
/// a failing round (a bad edit) is reported without ending the watch.
fn rounds(
    configs: &[&ConfigSource],
    region: &RegionArgs,
    mut round: impl FnMut() -> Result<()>,
) -> Result<()> {
    if !region.watch {
        return round();
    }
    let files: Vec<PathBuf> = configs
        .iter()
        .filter_map(|c| match c {
            ConfigSource::File(path) => Some(path.clone()),
            _ => None,
        })
        .collect();
    if files.is_empty() {
        bail!(
            "--watch follows configuration files; presets and the default never change: copy one to a file first"
        );
    }
    let (changes_tx, changes) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let _ = changes_tx.send(event);
        }
    })
    .context("cannot watch files on this system")?;
    {
        use notify::Watcher as _;
        // Directories, not files: editors often save by writing a new file and renaming it.
        for file in &files {
            let dir = parent_dir(file);
            watcher
                .watch(dir, notify::RecursiveMode::NonRecursive)
                .with_context(|| format!("cannot watch {}", dir.display()))?;
        }
    }
    if let Err(e) = round() {
        eprintln!("error: {e:#}");
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    eprintln!("watching {} (Ctrl-C to stop)", names.join(", "));
    loop {
        let event = changes.recv().context("the file watcher stopped")?;
        if !is_edit_of(&event, &files) {
            continue;
        }
        let changed = Instant::now();
        // Saves come in bursts (truncate, write, rename): wait until the burst is over, or at
        // most a second (something else may keep writing in the directory).
        while changed.elapsed() < Duration::from_secs(1)
            && changes.recv_timeout(Duration::from_millis(100)).is_ok()
        {}
        match round() {
            Ok(()) => eprintln!(
                "ready {:.2} s after the change; watching",
                changed.elapsed().as_secs_f64()
            ),
            Err(e) => eprintln!("error: {e:#}\n(still watching: fix the file and save)"),
        }
    }
}

/// A write, creation, rename or removal of one of `files` (reads are ignored: each round
/// reads the files itself).
fn is_edit_of(event: &notify::Event, files: &[PathBuf]) -> bool {
    use notify::EventKind;
    let edit = matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
    ) || matches!(
        event.kind,
        EventKind::Access(notify::event::AccessKind::Close(
            notify::event::AccessMode::Write
        ))
    );
    edit && event
        .paths
        .iter()
        .any(|p| files.iter().any(|f| p.file_name() == f.file_name()))
}
