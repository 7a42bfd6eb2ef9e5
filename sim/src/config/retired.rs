//! Fields older configurations may still have: refused with what replaced them in a new
//! configuration, renamed to their successor in a stored world's.

use super::ConfigError;

/// Fields older configurations may still have: (table, field, full name, why it is refused).
const RETIRED_FIELDS: &[(&str, &str, &str, &str)] = &[(
    "scripts",
    "world_fuel_per_tick_max",
    "scripts.world_fuel_per_tick_max",
    "replaced by `scripts.sector_fuel_per_tick_max` (per sector now): it caps the fuel of all \
     scripts in one sector per tick, no longer of the whole world",
)];

/// The first retired field `text` (which failed to parse) still has, as an error naming it.
pub(super) fn retired_field(text: &str, origin: &str) -> Option<ConfigError> {
    let table: toml::Table = toml::from_str(text).ok()?;
    RETIRED_FIELDS
        .iter()
        .find(|(section, field, ..)| {
            table
                .get(*section)
                .and_then(toml::Value::as_table)
                .is_some_and(|t| t.contains_key(*field))
        })
        .map(|&(_, _, field, reason)| ConfigError::Field {
            origin: origin.to_string(),
            field,
            reason: reason.to_string(),
        })
}

/// The configuration text of a world stored by an older build, with every retired field that
/// has a same-typed successor renamed to it (`None` when there is nothing to rename). A stored
/// world keeps its numbers: its `world_fuel_per_tick_max` becomes its per-sector cap, which
/// lets every sector use what the whole world could before. The configuration digest is taken
/// over values in field order, not names, so the world's checkpoints still match.
pub fn migrate_stored_config(text: &str) -> Option<String> {
    const RENAMED: &[(&str, &str, &str)] = &[(
        "scripts",
        "world_fuel_per_tick_max",
        "sector_fuel_per_tick_max",
    )];
    let mut table: toml::Table = toml::from_str(text).ok()?;
    let mut changed = false;
    for (section, old, new) in RENAMED {
        let Some(section) = table.get_mut(*section).and_then(toml::Value::as_table_mut) else {
            continue;
        };
        if section.contains_key(*new) {
            continue;
        }
        if let Some(value) = section.remove(*old) {
            section.insert((*new).to_owned(), value);
            changed = true;
        }
    }
    changed.then(|| toml::to_string(&table).expect("a parsed table serializes"))
}
