//! Helpers the `astroboids` command tests share.

#![allow(dead_code)] // Each test binary uses a part.

use std::path::{Path, PathBuf};

/// The repository checkout (assets, the SDK).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tools/ is inside the repository")
        .to_path_buf()
}

/// An empty directory of this name under the test target's temporary directory.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
