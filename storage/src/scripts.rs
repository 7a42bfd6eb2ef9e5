//! Scripts: wasm modules stored under their content hash, and each owner's named versions of
//! them.

use sled::transaction::{ConflictableTransactionError, TransactionError};
use xxhash_rust::xxh3::xxh3_128;

use crate::{Result, ScriptVersion, StorageError, WorldStore, check_size};

impl WorldStore {
    /// Stores `wasm` under its XXH3-128 hash (storing the same bytes twice is a no-op).
    pub fn put_script(&self, wasm: &[u8]) -> Result<u128> {
        check_size("script", wasm.len(), self.limits.max_script_bytes)?;
        let hash = xxh3_128(wasm);
        self.scripts
            .insert(hash.to_be_bytes(), wasm)
            .map_err(|e| self.sled(e))?;
        Ok(hash)
    }

    /// The module stored under `hash`, checked against its hash.
    pub fn script(&self, hash: u128) -> Result<Option<Vec<u8>>> {
        let Some(bytes) = self
            .scripts
            .get(hash.to_be_bytes())
            .map_err(|e| self.sled(e))?
        else {
            return Ok(None);
        };
        if xxh3_128(&bytes) != hash {
            return Err(self.corrupt(&format!("script {hash:032x} does not match its hash")));
        }
        Ok(Some(bytes.to_vec()))
    }

    /// Records `hash` as the next version of `owner`'s script `name`; returns the version.
    pub fn name_script(&self, owner: &str, name: &str, hash: u128) -> Result<u32> {
        self.check_name("owner", owner)?;
        self.check_name("script name", name)?;
        if !self
            .scripts
            .contains_key(hash.to_be_bytes())
            .map_err(|e| self.sled(e))?
        {
            return Err(StorageError::UnknownScript(hash));
        }
        let prefix = name_prefix(owner, name);
        // The version count lives under `owner/name` (no trailing slash), beside the versions.
        let count_key = &prefix[..prefix.len() - 1];
        let result = self.script_names.transaction(|names| {
            let version = names
                .get(count_key)?
                .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
                .map_or(0, u32::from_be_bytes)
                + 1;
            names.insert(count_key, &version.to_be_bytes())?;
            names.insert(version_key(&prefix, version), &hash.to_be_bytes())?;
            Ok::<_, ConflictableTransactionError<()>>(version)
        });
        result.map_err(|e| match e {
            TransactionError::Storage(e) => self.sled(e),
            TransactionError::Abort(()) => self.corrupt("naming a script was aborted"),
        })
    }

    /// The names of `owner`'s scripts, in order.
    pub fn script_names(&self, owner: &str) -> Result<Vec<String>> {
        self.check_name("owner", owner)?;
        let prefix = format!("{owner}/");
        let mut names = Vec::new();
        for entry in self.script_names.scan_prefix(prefix.as_bytes()).keys() {
            let key = entry.map_err(|e| self.sled(e))?;
            let rest = &key[prefix.len()..];
            // Count keys are `owner/name`; version keys continue with `/` and the version.
            if !rest.contains(&b'/') {
                names.push(
                    String::from_utf8(rest.to_vec())
                        .map_err(|_| self.corrupt("a script name is not UTF-8"))?,
                );
            }
        }
        Ok(names)
    }

    /// Every version of `owner`'s script `name`, oldest first.
    pub fn script_versions(&self, owner: &str, name: &str) -> Result<Vec<ScriptVersion>> {
        self.check_name("owner", owner)?;
        self.check_name("script name", name)?;
        let prefix = name_prefix(owner, name);
        self.script_names
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, value) = entry.map_err(|e| self.sled(e))?;
                let version = key[prefix.len()..]
                    .try_into()
                    .map(u32::from_be_bytes)
                    .map_err(|_| self.corrupt("a script version key is malformed"))?;
                let hash = value
                    .as_ref()
                    .try_into()
                    .map(u128::from_be_bytes)
                    .map_err(|_| self.corrupt("a script version value is malformed"))?;
                Ok(ScriptVersion { version, hash })
            })
            .collect()
    }
}

/// `owner/name/`: names are restricted to `[A-Za-z0-9_.-]`, so `/` separates unambiguously.
fn name_prefix(owner: &str, name: &str) -> Vec<u8> {
    format!("{owner}/{name}/").into_bytes()
}

fn version_key(prefix: &[u8], version: u32) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&version.to_be_bytes());
    key
}
