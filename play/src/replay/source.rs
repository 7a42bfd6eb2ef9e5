//! What the view opens: a `.abreplay` recording (`astroboids sim --record`, a server's
//! live-*.abreplay) or one ship's trace (JSON, `astroboids replay export`), told apart by their
//! first bytes; and the script modules a re-run takes. Errors name the file and what is wrong.

use std::path::Path;
use std::sync::Arc;

use astroboids_host::replay::{REPLAY_MAGIC, Replay};
use astroboids_host::trace::{ShipTrace, TRACE_FORMAT};
use astroboids_sim::UniverseConfig;
use astroboids_sim::config::EMBEDDED_CONFIG_TOML;

use super::timeline::Ticks;

/// Largest trace read (as `astroboids replay trace` allows).
const TRACE_FILE_MAX_BYTES: u64 = 1 << 30;
/// Largest script module read; no ship script is anywhere near it.
const MODULE_FILE_MAX_BYTES: u64 = 64 << 20;

/// An opened file, shared by the frame worker and re-runs.
#[derive(Debug, Clone)]
pub enum Source {
    Replay(Arc<Replay>),
    Trace(Arc<ShipTrace>),
}

impl Source {
    /// Reads and checks `path` (a replay's every chunk, a trace's format and ticks).
    pub fn open(path: &Path) -> Result<Self, String> {
        let size = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        if size > TRACE_FILE_MAX_BYTES && !starts_with_magic(path) {
            return Err(format!(
                "{}: {size} bytes and not a replay; a trace may have at most \
                 {TRACE_FILE_MAX_BYTES}",
                path.display()
            ));
        }
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if bytes.starts_with(REPLAY_MAGIC) {
            let replay = Replay::parse(path, &bytes).map_err(|e| e.to_string())?;
            if replay.ticks.is_empty() {
                return Err(format!(
                    "{}: the recording has no ticks (it starts and ends at tick {})",
                    path.display(),
                    replay.start_tick()
                ));
            }
            return Ok(Source::Replay(Arc::new(replay)));
        }
        if bytes.trim_ascii_start().starts_with(b"{") {
            return parse_trace(path, &bytes).map(|t| Source::Trace(Arc::new(t)));
        }
        Err(format!(
            "{}: neither an AstroBoids replay (it does not start with {:?}) nor a ship trace \
             (JSON from `astroboids replay export`)",
            path.display(),
            String::from_utf8_lossy(REPLAY_MAGIC)
        ))
    }

    /// The ticks there are to show.
    pub fn ticks(&self) -> Ticks {
        match self {
            Source::Replay(r) => Ticks::Range {
                first: r.start_tick() + 1,
                last: r.last_tick(),
            },
            Source::Trace(t) => Ticks::List(t.ticks.iter().map(|t| t.tick).collect()),
        }
    }

    /// The recording's tick rate and sector size; a trace records neither, so it is shown at
    /// the embedded configuration's.
    pub fn rates(&self) -> (u32, f32) {
        let config = match self {
            Source::Replay(r) => &r.config,
            Source::Trace(_) => embedded_config(),
        };
        (
            config.simulation.tick_rate_hz,
            config.simulation.sector_size,
        )
    }

    /// A line saying what the file is.
    pub fn summary(&self) -> String {
        match self {
            Source::Replay(r) => format!(
                "replay of {} ({} ticks, universe seed {}, recorded by {})",
                self.ticks().describe(),
                r.ticks.len(),
                r.header.universe_seed,
                r.header.recorded_by
            ),
            Source::Trace(t) => format!(
                "trace of ship {} running script {}: {}",
                t.ship,
                short_hex(&t.script),
                self.ticks().describe()
            ),
        }
    }
}

fn starts_with_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == REPLAY_MAGIC)
}

fn parse_trace(path: &Path, bytes: &[u8]) -> Result<ShipTrace, String> {
    let trace: ShipTrace = serde_json::from_slice(bytes)
        .map_err(|e| format!("{} is not a ship trace: {e}", path.display()))?;
    if trace.format != TRACE_FORMAT {
        return Err(format!(
            "{}: trace format {}; this build reads format {TRACE_FORMAT}",
            path.display(),
            trace.format
        ));
    }
    if trace.ticks.is_empty() {
        return Err(format!("{}: the trace has no ticks", path.display()));
    }
    if let Some(w) = trace.ticks.windows(2).find(|w| w[0].tick >= w[1].tick) {
        return Err(format!(
            "{}: damaged: tick {} follows tick {}",
            path.display(),
            w[1].tick,
            w[0].tick
        ));
    }
    Ok(trace)
}

fn embedded_config() -> &'static UniverseConfig {
    static CONFIG: std::sync::OnceLock<UniverseConfig> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        UniverseConfig::from_toml_str(EMBEDDED_CONFIG_TOML, "the embedded configuration")
            .expect("the embedded configuration is valid")
    })
}

fn short_hex(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

/// A script module for a re-run: `.wasm`, or `.wat` assembled here. TypeScript needs the SDK's
/// compiler, which only the CLI runs.
pub fn load_script(path: &Path) -> Result<Vec<u8>, String> {
    check_script_path(path)?;
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read script {}: {e}", path.display()))?
        .len();
    if size > MODULE_FILE_MAX_BYTES {
        return Err(format!(
            "{} is {size} bytes; no ship script is anywhere near that large",
            path.display()
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read script {}: {e}", path.display()))?;
    if !is_wat(path) {
        return Ok(bytes);
    }
    match wasmer::wat2wasm(&bytes) {
        Ok(wasm) => Ok(wasm.into_owned()),
        Err(mut e) => {
            e.set_path(path);
            Err(format!(
                "{} is not valid WebAssembly text: {e}",
                path.display()
            ))
        }
    }
}

/// Refuses what the view cannot run, before any work starts.
pub fn check_script_path(path: &Path) -> Result<(), String> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("wasm" | "wat") => Ok(()),
        Some("ts") => Err(format!(
            "{}: TypeScript needs the SDK's compiler: build it with `astroboids script build {}` \
             (it writes a .wasm next to it) and re-run with that .wasm",
            path.display(),
            path.display()
        )),
        _ => Err(format!(
            "{}: a script to re-run is a .wasm module or a .wat module (WebAssembly text)",
            path.display()
        )),
    }
}

fn is_wat(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wat")
}
