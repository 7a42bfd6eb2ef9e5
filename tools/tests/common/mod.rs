//! Helpers the `astroboids` command tests share.

#![allow(dead_code)] // Each test binary uses a part.

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// `astroboids` run from the repository with its client settings in `config_dir`, a password
/// for prompts, and no SDK override.
pub fn astroboids(config_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_astroboids"));
    command
        .current_dir(repo())
        .env("ASTROBOIDS_CONFIG_DIR", config_dir)
        .env("ASTROBOIDS_PASSWORD", "correct horse battery")
        .env_remove("ASTROBOIDS_SDK");
    command
}
