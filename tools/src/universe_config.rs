//! The universe configuration a command is pointed at (`--config FILE`), or the embedded
//! default: read and validated the same way by every command that runs or checks against it.

use std::path::Path;

use anyhow::{Context, Result};

use astroboids_sim::config::{EMBEDDED_CONFIG_ORIGIN, EMBEDDED_CONFIG_TOML, UniverseConfig};

/// The configuration file's text and origin, if one was given.
pub fn read_config_source(path: Option<&Path>) -> Result<Option<(String, String)>> {
    path.map(|p| {
        std::fs::read_to_string(p)
            .with_context(|| format!("cannot read config file {}", p.display()))
            .map(|text| (text, p.display().to_string()))
    })
    .transpose()
}

/// Reads and validates the universe configuration, or the embedded default.
pub fn load_config(path: Option<&Path>) -> Result<UniverseConfig> {
    parse_config(read_config_source(path)?.as_ref())
}

/// Validates a configuration read by [`read_config_source`], or the embedded default.
pub fn parse_config(source: Option<&(String, String)>) -> Result<UniverseConfig> {
    Ok(match source {
        Some((text, origin)) => UniverseConfig::from_toml_str(text, origin)?,
        None => UniverseConfig::from_toml_str(EMBEDDED_CONFIG_TOML, EMBEDDED_CONFIG_ORIGIN)?,
    })
}
