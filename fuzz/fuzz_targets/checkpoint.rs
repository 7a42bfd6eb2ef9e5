//! World checkpoints: decoded (`checkpoint::decode`, as a restart and a replay keyframe do),
//! and what decodes restored into a world under the embedded universe configuration and run
//! for one tick.
//!
//! Input: `[mode u8][payload]`. Bit 0: the payload is compressed (`compress::unpack`, as the
//! store holds checkpoints) rather than the raw encoding. Bit 1: the decoded checkpoint's
//! format, generator version and configuration digest are set to match the configuration
//! before restoring, so mutated checkpoints reach restore instead of stopping at those three
//! checks. Restore is attempted only for checkpoints of the size of a test world (ships,
//! sectors, scripts, memory): world building costs grow with each, and a bigger one says
//! nothing a small one does not.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use astroboids_sim::checkpoint::{self, CHECKPOINT_FORMAT, WorldCheckpoint};
use astroboids_sim::{SimOptions, UniverseConfig};

/// Decompressed size refused beyond this (the host allows 8 GiB; a fuzz input has no use for
/// more than a test world's few hundred KiB, and libFuzzer's memory limit is 3 GiB).
const MAX_UNPACKED: usize = 64 << 20;

fn config() -> &'static UniverseConfig {
    static CONFIG: OnceLock<UniverseConfig> = OnceLock::new();
    CONFIG.get_or_init(UniverseConfig::default)
}

fn small(cp: &WorldCheckpoint) -> bool {
    cp.ships.len() <= 16
        && cp.loaded_sectors.len() <= 16
        && cp.scripts.len() <= 2
        && cp.sector_deltas.len() <= 64
        && cp.pending_inputs.len() <= 64
        && cp.recent_faults.len() <= 256
        && cp.ships.iter().all(|s| {
            s.script
                .as_ref()
                .is_none_or(|s| s.memory.len() <= 16 << 16 && s.log.len() <= 256)
        })
}

fuzz_target!(|data: &[u8]| {
    let [mode, payload @ ..] = data else {
        return;
    };
    let unpacked;
    let bytes = if mode & 1 == 1 {
        match astroboids_host::compress::unpack(payload, MAX_UNPACKED) {
            Ok(b) => {
                unpacked = b;
                &unpacked
            }
            Err(_) => return,
        }
    } else {
        payload
    };
    let Ok(mut cp) = checkpoint::decode(bytes) else {
        return;
    };
    // A decoded checkpoint encodes to bytes that decode to the same encoding.
    let encoded = checkpoint::encode(&cp);
    let again = checkpoint::decode(&encoded).expect("an encoded checkpoint decodes");
    assert_eq!(
        checkpoint::encode(&again),
        encoded,
        "re-encoding changed it"
    );

    if mode & 2 == 2 {
        cp.format = CHECKPOINT_FORMAT;
        cp.generator_version = config().generator_version;
        cp.config_digest = checkpoint::config_digest(config());
    }
    if !small(&cp) {
        return;
    }
    let options = SimOptions {
        script_workers: 1,
        script_artifacts: None,
    };
    if let Ok(mut sim) = checkpoint::restore(config().clone(), &cp, options) {
        sim.step();
        let _ = sim.quick_state_hash();
    }
});
