//! Script uploads: `ScriptEngine::load_for_upload`, the path every module a player uploads
//! takes (shape limits on the raw bytes, compiling with the metering and state middlewares,
//! the ABI checks, a trial instance running the start function), then one metered tick.
//!
//! Per-input cost is bounded by the upload path itself: the shape limits bound compile time,
//! the compile deadline is 2 s here (libFuzzer's timeout is longer), and fuel bounds every run.
//! A fresh engine per input: no compiled-module cache carries state from one input to the next.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

use astroboids_scripting::blocks::SensorSnapshot;
use astroboids_scripting::{CompilerKind, ScriptEngine, ScriptInstance, ScriptLimits};

fuzz_target!(|data: &[u8]| {
    let limits = ScriptLimits {
        upload_compile_time_max: Duration::from_secs(2),
        ..ScriptLimits::default()
    };
    let engine = ScriptEngine::new(limits, CompilerKind::Cranelift);
    let Ok(script) = engine.load_for_upload(data) else {
        return;
    };
    let _ = script.describe();
    if let Ok(mut instance) = ScriptInstance::new(&Arc::clone(&script), 7) {
        let sensors = SensorSnapshot {
            tick: 1,
            ship: 1,
            sensor_range: 200.0,
            ..SensorSnapshot::default()
        };
        let _ = instance.run_tick(100_000, 11, &sensors);
        let _ = instance.state_digest();
    }
});
