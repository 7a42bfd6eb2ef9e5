//! The chunk file a replay is written as: checksummed, compressed chunks appended to a
//! temporary file that is renamed over the target only when the recording is complete.

use std::io::Write;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use crate::compress;

use super::{Chunk, REPLAY_FORMAT, REPLAY_MAGIC, ReplayError};

/// Appends chunks to a temporary file; [`ReplayWriter::finish`] renames it over the target.
pub(super) struct ReplayWriter {
    path: PathBuf,
    temp: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    bytes: u64,
}

impl ReplayWriter {
    pub(super) fn create(path: &Path) -> Result<Self, ReplayError> {
        let io = |error| ReplayError::Io {
            path: path.to_path_buf(),
            error,
        };
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        let temp = path.with_file_name(name);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&temp).map_err(io)?);
        file.write_all(REPLAY_MAGIC).map_err(io)?;
        file.write_all(&REPLAY_FORMAT.to_le_bytes()).map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            temp,
            file,
            bytes: 12,
        })
    }

    fn io(&self, error: std::io::Error) -> ReplayError {
        ReplayError::Io {
            path: self.temp.clone(),
            error,
        }
    }

    /// Appends `chunk`; returns the bytes it took in the file.
    pub(super) fn write(&mut self, chunk: &Chunk) -> Result<u64, ReplayError> {
        let payload = compress::pack(
            &postcard::to_allocvec(chunk).expect("plain data"),
            compress::REPLAY_LEVEL,
        );
        let len = u32::try_from(payload.len()).map_err(|_| ReplayError::Invalid {
            path: self.path.clone(),
            what: format!("a chunk of {} bytes is too large", payload.len()),
        })?;
        let mut frame = Vec::with_capacity(12);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&xxh3_64(&payload).to_le_bytes());
        self.file
            .write_all(&frame)
            .and_then(|()| self.file.write_all(&payload))
            .map_err(|e| self.io(e))?;
        self.bytes += 12 + payload.len() as u64;
        Ok(12 + payload.len() as u64)
    }

    pub(super) fn finish(mut self) -> Result<u64, ReplayError> {
        self.file.flush().map_err(|e| self.io(e))?;
        self.file.get_ref().sync_all().map_err(|e| self.io(e))?;
        std::fs::rename(&self.temp, &self.path).map_err(|error| ReplayError::Io {
            path: self.path.clone(),
            error,
        })?;
        Ok(self.bytes)
    }
}
