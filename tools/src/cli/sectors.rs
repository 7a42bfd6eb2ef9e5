//! Arguments of the designer commands (`sectors ...`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum SectorsCommand {
    /// A PNG map of a region: asteroid ore, nebulae, hazards, the sector grid, legend, scale.
    Render(SectorsRenderArgs),
    /// Distribution tables for a region: asteroids and ore per sector, empty sectors,
    /// nebula coverage, hazards.
    Stats(SectorsStatsArgs),
    /// The same region under two configurations: stats side by side, and a side-by-side map.
    Compare(SectorsCompareArgs),
    /// The named presets (`--config preset:NAME`).
    Presets,
}

/// The region and universe every sectors command reads.
#[derive(Debug, Args)]
pub struct RegionArgs {
    /// Universe seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First corner, X,Y (included).
    #[arg(long, allow_hyphen_values = true)]
    pub from: astroboids_designer::Coord,
    /// Last corner, X,Y (included).
    #[arg(long, allow_hyphen_values = true)]
    pub to: astroboids_designer::Coord,
    /// Re-run whenever a configuration file changes (Ctrl-C to stop).
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct SectorsRenderArgs {
    /// A universe configuration file, `preset:NAME` or `default`.
    #[arg(long, default_value = "default")]
    pub config: astroboids_designer::ConfigSource,
    #[command(flatten)]
    pub region: RegionArgs,
    /// The PNG to write (replaced only once the new image is complete).
    #[arg(long)]
    pub out: PathBuf,
    /// Zoom; default: the region fits about 1,200 pixels. From 16 on, each sector's
    /// asteroids, nebulae and hazards are drawn.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub pixels_per_sector: Option<u32>,
    /// What a sector's brightness shows: its ore or its number of asteroids.
    #[arg(long, value_enum, default_value_t = ShadeArg::Ore)]
    pub shade: ShadeArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ShadeArg {
    Ore,
    Asteroids,
}

impl From<ShadeArg> for astroboids_designer::Shade {
    fn from(shade: ShadeArg) -> Self {
        match shade {
            ShadeArg::Ore => Self::Ore,
            ShadeArg::Asteroids => Self::Asteroids,
        }
    }
}

#[derive(Debug, Args)]
pub struct SectorsStatsArgs {
    /// A universe configuration file, `preset:NAME` or `default`.
    #[arg(long, default_value = "default")]
    pub config: astroboids_designer::ConfigSource,
    #[command(flatten)]
    pub region: RegionArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SectorsCompareArgs {
    /// Two configurations, each a file, `preset:NAME` or `default`: `--config A --config B`.
    #[arg(long = "config", required = true)]
    pub configs: Vec<astroboids_designer::ConfigSource>,
    #[command(flatten)]
    pub region: RegionArgs,
    /// Also write both maps side by side to this PNG.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub pixels_per_sector: Option<u32>,
    /// What a sector's brightness shows: its ore or its number of asteroids.
    #[arg(long, value_enum, default_value_t = ShadeArg::Ore)]
    pub shade: ShadeArg,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}
