//! Helpers the server's integration tests share (each test crate uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// An empty directory for one test, under cargo's temporary target dir.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Full thrust, a gentle turn, a log line every tick.
pub fn circler() -> Vec<u8> {
    let wat = r#"(module
        (import "astroboids" "log" (func $log (param i32 i32)))
        (memory (export "memory") 1 1)
        (data (i32.const 200) "circling")
        (func (export "astroboids_abi") (result i32) i32.const 1)
        (func (export "sensor_ptr") (result i32) i32.const 1024)
        (func (export "command_ptr") (result i32) i32.const 4096)
        (func (export "tick")
          (call $log (i32.const 200) (i32.const 8))
          (f32.store (i32.const 4096) (f32.const 1))
          (f32.store (i32.const 4100) (f32.const 0.25))))"#;
    wasmer::wat2wasm(wat.as_bytes()).unwrap().into_owned()
}
