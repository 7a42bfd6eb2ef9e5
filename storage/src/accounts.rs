//! Accounts and sessions: opaque records under a user name and a session key.

use crate::{Result, WorldStore, check_size};

impl WorldStore {
    /// Stores `record` as `user`'s account unless the name is taken; returns whether it was
    /// stored. Atomic: two registrations of one name cannot both succeed.
    pub fn create_account(&self, user: &str, record: &[u8]) -> Result<bool> {
        self.check_name("user name", user)?;
        check_size("account record", record.len(), self.limits.max_input_bytes)?;
        let swapped = self
            .accounts
            .compare_and_swap(user.as_bytes(), None as Option<&[u8]>, Some(record))
            .map_err(|e| self.sled(e))?;
        Ok(swapped.is_ok())
    }

    /// Replaces an existing account's record.
    pub fn update_account(&self, user: &str, record: &[u8]) -> Result<()> {
        self.check_name("user name", user)?;
        check_size("account record", record.len(), self.limits.max_input_bytes)?;
        self.accounts
            .insert(user.as_bytes(), record)
            .map(|_| ())
            .map_err(|e| self.sled(e))
    }

    pub fn account(&self, user: &str) -> Result<Option<Vec<u8>>> {
        self.accounts
            .get(user.as_bytes())
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.sled(e))
    }

    /// Every account, in name order.
    pub fn accounts(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.accounts
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(|e| self.sled(e))?;
                let name = String::from_utf8(key.to_vec())
                    .map_err(|_| self.corrupt("an account name is not UTF-8"))?;
                Ok((name, value.to_vec()))
            })
            .collect()
    }

    /// Stores a session under `key` (the host's digest of the token; tokens themselves are
    /// never stored).
    pub fn put_session(&self, key: &[u8], record: &[u8]) -> Result<()> {
        check_size("session record", record.len(), self.limits.max_input_bytes)?;
        self.sessions
            .insert(key, record)
            .map(|_| ())
            .map_err(|e| self.sled(e))
    }

    pub fn session(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.sessions
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.sled(e))
    }

    pub fn remove_session(&self, key: &[u8]) -> Result<()> {
        self.sessions
            .remove(key)
            .map(|_| ())
            .map_err(|e| self.sled(e))
    }

    /// Every session as (key, record), for expiry sweeps and revocation.
    pub fn sessions(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.sessions
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(|e| self.sled(e))?;
                Ok((key.to_vec(), value.to_vec()))
            })
            .collect()
    }
}
