//! Named generation presets designers start from (`assets/presets/*.toml`, compiled in), and
//! the `--config` syntax that names a file, a preset or the default.

use std::path::PathBuf;
use std::str::FromStr;

use astroboids_sim::config::{EMBEDDED_CONFIG_ORIGIN, EMBEDDED_CONFIG_TOML};

/// A named universe configuration that differs from the default only in generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub summary: &'static str,
    pub toml: &'static str,
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "sparse-frontier",
        summary: "rare, small belts of rich asteroids; few nebulae and hazards",
        toml: include_str!("../../assets/presets/sparse-frontier.toml"),
    },
    Preset {
        name: "dense-belt",
        summary: "wide, crowded belts of smaller, poorer asteroids",
        toml: include_str!("../../assets/presets/dense-belt.toml"),
    },
    Preset {
        name: "nebula-maze",
        summary: "large nebula fields over moderate belts",
        toml: include_str!("../../assets/presets/nebula-maze.toml"),
    },
    Preset {
        name: "hazard-rim",
        summary: "a hazard in almost a third of all sectors",
        toml: include_str!("../../assets/presets/hazard-rim.toml"),
    },
];

/// Where a configuration comes from: `default`, `preset:NAME` or a file path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// The embedded assets/universe.toml.
    Default,
    Preset(Preset),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no preset {name:?}; presets: {}", PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", "))]
pub struct UnknownPreset {
    pub name: String,
}

impl FromStr for ConfigSource {
    type Err = UnknownPreset;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "default" {
            return Ok(Self::Default);
        }
        match text.strip_prefix("preset:") {
            Some(name) => PRESETS
                .iter()
                .find(|p| p.name == name)
                .map(|p| Self::Preset(*p))
                .ok_or_else(|| UnknownPreset {
                    name: name.to_string(),
                }),
            None => Ok(Self::File(PathBuf::from(text))),
        }
    }
}

impl ConfigSource {
    /// A short name for captions and tables.
    pub fn label(&self) -> String {
        match self {
            Self::Default => "default".into(),
            Self::Preset(p) => format!("preset:{}", p.name),
            Self::File(path) => path.display().to_string(),
        }
    }

    /// The configuration text and the origin its errors name, for compiled-in sources
    /// (`None` for a file: the caller reads it).
    pub fn embedded_text(&self) -> Option<(&'static str, String)> {
        match self {
            Self::Default => Some((EMBEDDED_CONFIG_TOML, EMBEDDED_CONFIG_ORIGIN.to_string())),
            Self::Preset(p) => Some((p.toml, format!("preset {}", p.name))),
            Self::File(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use astroboids_sim::config::UniverseConfig;

    #[test]
    fn every_preset_is_valid_and_differs_from_the_default_only_in_generation() {
        let default = UniverseConfig::default();
        for preset in PRESETS {
            let config = UniverseConfig::from_toml_str(preset.toml, preset.name)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_ne!(config.generation, default.generation, "{}", preset.name);
            let mut same_generation = config.clone();
            same_generation.generation = default.generation.clone();
            assert_eq!(
                same_generation, default,
                "preset {} differs from assets/universe.toml outside [generation]: bring it up to date",
                preset.name
            );
        }
    }

    #[test]
    fn sources_parse_and_an_unknown_preset_lists_the_known_ones() {
        assert_eq!(
            "default".parse::<ConfigSource>().unwrap(),
            ConfigSource::Default
        );
        assert!(matches!(
            "preset:dense-belt".parse::<ConfigSource>().unwrap(),
            ConfigSource::Preset(p) if p.name == "dense-belt"
        ));
        assert_eq!(
            "my.toml".parse::<ConfigSource>().unwrap(),
            ConfigSource::File("my.toml".into())
        );
        let e = "preset:dense"
            .parse::<ConfigSource>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"dense\"") && e.contains("sparse-frontier, dense-belt"),
            "{e}"
        );
    }
}
