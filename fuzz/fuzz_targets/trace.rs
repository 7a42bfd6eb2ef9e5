//! Per-ship trace files as `astroboids replay trace` reads them: JSON decoded into a
//! `ShipTrace`, then replayed against its own script (`replay_trace`: base64 and zstd decoding
//! of the module and the saved memory, compiling, restoring the instance, running each tick).
//!
//! Per-input cost is bounded here, not by the trace format: a trace names its own fuel budgets
//! and sandbox rules (it is the author's own download), so only traces with at most 16 ticks,
//! budgets and rules no larger than the embedded universe's, and a module under 64 KiB are
//! replayed; larger ones are only decoded.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use astroboids_host::trace::{ShipTrace, replay_trace};
use astroboids_sim::UniverseConfig;
use astroboids_sim::config::ScriptsConfig;

fn rules() -> &'static ScriptsConfig {
    static RULES: OnceLock<ScriptsConfig> = OnceLock::new();
    RULES.get_or_init(|| UniverseConfig::default().scripts)
}

/// Whether replaying `trace` costs what a real trace of a few ticks costs.
fn cheap(trace: &ShipTrace) -> bool {
    let (r, max) = (&trace.rules, rules());
    trace.ticks.len() <= 16
        && trace.script_wasm_base64.len() <= 88 * 1024
        && trace.ticks.iter().all(|t| t.budget <= max.fuel_burst_max)
        && r.max_memory_pages <= max.max_memory_pages
        && r.max_table_elements <= max.max_table_elements
        && r.stack_bytes <= max.stack_bytes
        && r.start_fuel <= max.start_fuel
        && r.log_lines_per_tick <= max.log_lines_per_tick
        && r.log_line_bytes <= max.log_line_bytes
        && r.max_module_bytes <= max.max_module_bytes
        && trace
            .start_state
            .as_ref()
            .is_none_or(|s| s.memory_zstd_base64.len() <= 256 * 1024)
}

fuzz_target!(|data: &[u8]| {
    let Ok(trace) = serde_json::from_slice::<ShipTrace>(data) else {
        return;
    };
    // What `replay export` writes must read back as the same trace. (A number too large for
    // an f32 decodes as infinity, which JSON writes as null: such a trace does not read back,
    // and no exported trace holds one.)
    let json = serde_json::to_vec(&trace).expect("a trace encodes");
    if let Ok(again) = serde_json::from_slice::<ShipTrace>(&json) {
        assert_eq!(
            serde_json::to_vec(&again).expect("encodes"),
            json,
            "re-encoding changed the trace"
        );
    }
    if cheap(&trace) {
        let _ = replay_trace(&trace, None);
    }
});
