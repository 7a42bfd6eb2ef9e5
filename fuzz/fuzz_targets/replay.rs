//! Replay files as `astroboids replay ...` and the server read them (`Replay::parse`, which
//! `Replay::open` calls on the file's bytes: no temporary file is needed), then every keyframe
//! decoded as a checkpoint and every tick record looked up.
//!
//! Input: `[mode u8][rest]`. Even mode: `rest` is the file. Odd mode: `rest` is uncompressed
//! chunks in `split_large_records` layout, wrapped into a file with valid compression and
//! checksums, so mutations reach the chunk decoder and the consistency checks behind the
//! checksums. Restoring keyframes into worlds is the checkpoint target's job: here the
//! configuration comes from the file, and a hostile one makes world building arbitrarily slow.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    let built;
    let file = if mode % 2 == 0 {
        rest
    } else {
        let chunks = astroboids_fuzz::split_large_records(rest);
        built = astroboids_fuzz::replay_file(&chunks);
        &built
    };
    let Ok(replay) = astroboids_host::replay::Replay::parse(Path::new("fuzz.abreplay"), file)
    else {
        return;
    };
    assert!(replay.start_tick() <= replay.last_tick());
    let keyframes: Vec<u64> = replay.keyframe_ticks().collect();
    assert!(
        keyframes.contains(&replay.start_tick()),
        "no starting keyframe"
    );
    for tick in keyframes {
        let _ = replay.keyframe(tick);
    }
    for tick in replay.start_tick()..=replay.last_tick().min(replay.start_tick() + 1_000) {
        let record = replay.record(tick);
        assert_eq!(record.is_some(), tick > replay.start_tick(), "tick {tick}");
        if let Some(record) = record {
            assert_eq!(record.tick, tick);
        }
    }
});
