//! Compiled-module artifacts on disk, so a restart does not recompile every script.
//!
//! An artifact is machine code: loading one is `unsafe` (wasmer cannot validate it), so only
//! artifacts this host wrote are loaded, and each file carries a checksum that is verified
//! first. The file name is a key over everything that shapes the machine code: the module
//! hash, the wasmer version, the compiler, the fuel cost table, the limits baked into the
//! artifact, and the CPU (target triple and features). Any change picks a different file.
#![allow(unsafe_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use wasmer::{Engine, Module};
use xxhash_rust::xxh3::xxh3_128;

/// Bytes before the artifact: magic, then the XXH3-128 of the artifact.
const MAGIC: &[u8; 8] = b"ABSCRPT1";
const HEADER_BYTES: usize = MAGIC.len() + 16;

/// A directory of artifacts. Writes are atomic (temp file + rename), so a crash leaves either
/// the old file, the new one, or none: never a torn artifact under the real name.
#[derive(Debug, Clone)]
pub struct ArtifactDir {
    dir: PathBuf,
}

impl ArtifactDir {
    /// Uses `dir`, creating it if needed.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, key: u128) -> PathBuf {
        self.dir.join(format!("{key:032x}.artifact"))
    }

    /// The module stored under `key`, deserialized into `engine`; `None` when there is none or
    /// the file is damaged (the caller recompiles and overwrites it).
    pub(crate) fn load(&self, key: u128, engine: &Engine) -> Option<Module> {
        let bytes = std::fs::read(self.file(key)).ok()?;
        if bytes.len() < HEADER_BYTES || &bytes[..MAGIC.len()] != MAGIC {
            return None;
        }
        let (header, artifact) = bytes.split_at(HEADER_BYTES);
        let checksum = u128::from_le_bytes(header[MAGIC.len()..].try_into().ok()?);
        if xxh3_128(artifact) != checksum {
            return None;
        }
        // SAFETY: the bytes are an artifact this host serialized (the checksum matches what
        // `store` wrote) for this exact wasmer version, compiler, cost table and CPU (all part
        // of `key`), which is what `Module::deserialize` requires.
        unsafe { Module::deserialize(engine, artifact.to_vec()) }.ok()
    }

    /// Stores `artifact` under `key`. Best effort: a failure only costs a recompile later.
    pub(crate) fn store(&self, key: u128, artifact: &[u8]) {
        let path = self.file(key);
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::File::create(&temp).and_then(|mut f| {
            f.write_all(MAGIC)?;
            f.write_all(&xxh3_128(artifact).to_le_bytes())?;
            f.write_all(artifact)?;
            f.sync_all()
        });
        if written
            .and_then(|()| std::fs::rename(&temp, &path))
            .is_err()
        {
            let _ = std::fs::remove_file(&temp);
        }
    }
}

/// Loads an artifact this process serialized a moment ago into `engine`.
pub(crate) fn deserialize_fresh(
    engine: &Engine,
    artifact: &[u8],
) -> Result<Module, wasmer::DeserializeError> {
    // SAFETY: `artifact` was produced by `Module::serialize` in this process, by this wasmer
    // version, for this CPU.
    unsafe { Module::deserialize(engine, artifact.to_vec()) }
}
