//! `--inputs` files: world inputs to apply at given ticks, one JSON object per line.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use astroboids_sim::inputs::WorldInput;

/// One line of an `--inputs` file.
#[derive(Debug, Clone)]
pub struct TimedInput {
    pub tick: u64,
    pub input: WorldInput,
    pub line: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimedInputLine {
    tick: u64,
    input: WorldInput,
}

/// Largest `--inputs` file read.
const INPUTS_FILE_MAX_BYTES: u64 = 256 << 20;

/// Reads an `--inputs` file: one `{"tick": T, "input": {...}}` per line (blank lines and lines
/// starting with `#` are skipped), sorted by tick, keeping file order within a tick.
pub fn read_timed_inputs(path: &Path) -> Result<Vec<TimedInput>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read inputs file {}", path.display()))?
        .len();
    if size > INPUTS_FILE_MAX_BYTES {
        anyhow::bail!(
            "{}: {size} bytes; an inputs file may have at most {INPUTS_FILE_MAX_BYTES}",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read inputs file {}", path.display()))?;
    let mut inputs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let parsed: TimedInputLine = serde_json::from_str(trimmed)
            .with_context(|| format!("{} line {}", path.display(), index + 1))?;
        if parsed.tick == 0 {
            anyhow::bail!(
                "{} line {}: tick 0 has run before any input; the first tick is 1",
                path.display(),
                index + 1
            );
        }
        inputs.push(TimedInput {
            tick: parsed.tick,
            input: parsed.input,
            line: index + 1,
        });
    }
    inputs.sort_by_key(|t| t.tick);
    Ok(inputs)
}
