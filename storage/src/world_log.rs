//! The world's write-ahead input log and its checkpoints: a checkpoint and the "latest" marker
//! change together, and pruning drops the inputs and checkpoints a newer checkpoint covers.

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use xxhash_rust::xxh3::xxh3_128;

use crate::{
    LoggedInput, META_LATEST_CHECKPOINT, META_NEXT_INPUT_SEQ, Result, WorldStore, check_size,
};

impl WorldStore {
    /// Appends an accepted input for `tick`; returns its sequence number. Durable (and so
    /// acknowledged) after the next [`Self::flush`].
    pub fn append_input(&self, tick: u64, payload: &[u8]) -> Result<u64> {
        check_size("input", payload.len(), self.limits.max_input_bytes)?;
        let result = (&self.inputs, &self.meta).transaction(|(inputs, meta)| {
            let seq = meta
                .get(META_NEXT_INPUT_SEQ)?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map_or(0, u64::from_be_bytes);
            meta.insert(META_NEXT_INPUT_SEQ, &(seq + 1).to_be_bytes())?;
            inputs.insert(&input_key(tick, seq)[..], payload)?;
            Ok::<_, ConflictableTransactionError<()>>(seq)
        });
        result.map_err(|e| match e {
            TransactionError::Storage(e) => self.sled(e),
            TransactionError::Abort(()) => self.corrupt("appending an input was aborted"),
        })
    }

    /// Appends the inputs accepted for `tick`, in order, in one transaction: after a crash
    /// either all of them are in the log or none. Returns the first one's sequence number.
    pub fn append_inputs(&self, tick: u64, payloads: &[Vec<u8>]) -> Result<u64> {
        for payload in payloads {
            check_size("input", payload.len(), self.limits.max_input_bytes)?;
        }
        let result = (&self.inputs, &self.meta).transaction(|(inputs, meta)| {
            let first = meta
                .get(META_NEXT_INPUT_SEQ)?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map_or(0, u64::from_be_bytes);
            for (seq, payload) in (first..).zip(payloads) {
                inputs.insert(&input_key(tick, seq)[..], payload.as_slice())?;
            }
            meta.insert(
                META_NEXT_INPUT_SEQ,
                &(first + payloads.len() as u64).to_be_bytes(),
            )?;
            Ok::<_, ConflictableTransactionError<()>>(first)
        });
        result.map_err(|e| match e {
            TransactionError::Storage(e) => self.sled(e),
            TransactionError::Abort(()) => self.corrupt("appending inputs was aborted"),
        })
    }

    /// Logged inputs for ticks `>= from_tick`, in (tick, acceptance) order.
    pub fn inputs_from(&self, from_tick: u64) -> Result<Vec<LoggedInput>> {
        self.inputs
            .range(input_key(from_tick, 0)..)
            .map(|entry| {
                let (key, payload) = entry.map_err(|e| self.sled(e))?;
                let key: [u8; 16] = key
                    .as_ref()
                    .try_into()
                    .map_err(|_| self.corrupt("an input key is malformed"))?;
                let (tick, seq) = key.split_at(8);
                Ok(LoggedInput {
                    tick: u64::from_be_bytes(tick.try_into().expect("8 bytes")),
                    seq: u64::from_be_bytes(seq.try_into().expect("8 bytes")),
                    payload: payload.to_vec(),
                })
            })
            .collect()
    }

    // --- checkpoints -----------------------------------------------------------------------

    /// Stores the checkpoint taken after `tick` and makes it the latest, atomically: a crash
    /// leaves either the previous latest checkpoint or this one.
    pub fn put_checkpoint(&self, tick: u64, payload: &[u8]) -> Result<()> {
        check_size(
            "checkpoint",
            payload.len(),
            self.limits.max_checkpoint_bytes,
        )?;
        let mut record = Vec::with_capacity(payload.len() + 16);
        record.extend_from_slice(&xxh3_128(payload).to_be_bytes());
        record.extend_from_slice(payload);
        let result = (&self.checkpoints, &self.meta).transaction(|(checkpoints, meta)| {
            checkpoints.insert(&tick.to_be_bytes(), record.as_slice())?;
            meta.insert(META_LATEST_CHECKPOINT, &tick.to_be_bytes())?;
            Ok::<_, ConflictableTransactionError<()>>(())
        });
        result.map_err(|e| match e {
            TransactionError::Storage(e) => self.sled(e),
            TransactionError::Abort(()) => self.corrupt("writing a checkpoint was aborted"),
        })
    }

    /// The latest checkpoint as (tick, payload), verified against its checksum.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let Some(tick) = self
            .meta
            .get(META_LATEST_CHECKPOINT)
            .map_err(|e| self.sled(e))?
        else {
            return Ok(None);
        };
        let tick = <[u8; 8]>::try_from(tick.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| self.corrupt("the latest-checkpoint marker is malformed"))?;
        let record = self
            .checkpoints
            .get(tick.to_be_bytes())
            .map_err(|e| self.sled(e))?
            .ok_or_else(|| {
                self.corrupt(&format!("the latest checkpoint (tick {tick}) is missing"))
            })?;
        if record.len() < 16 {
            return Err(self.corrupt(&format!("checkpoint {tick} is truncated")));
        }
        let (checksum, payload) = record.split_at(16);
        if u128::from_be_bytes(checksum.try_into().expect("16 bytes")) != xxh3_128(payload) {
            return Err(self.corrupt(&format!("checkpoint {tick} fails its checksum")));
        }
        Ok(Some((tick, payload.to_vec())))
    }

    /// Drops checkpoints older than `tick` and inputs for ticks up to and including `tick`: a
    /// restart from the checkpoint at `tick` needs neither.
    pub fn prune_through(&self, tick: u64) -> Result<()> {
        for key in self.checkpoints.range(..tick.to_be_bytes()).keys() {
            let key = key.map_err(|e| self.sled(e))?;
            self.checkpoints.remove(key).map_err(|e| self.sled(e))?;
        }
        let end = input_key(tick.saturating_add(1), 0);
        for key in self.inputs.range(..end).keys() {
            let key = key.map_err(|e| self.sled(e))?;
            self.inputs.remove(key).map_err(|e| self.sled(e))?;
        }
        Ok(())
    }
}

/// Big-endian (tick, seq): sled's byte order is log order.
fn input_key(tick: u64, seq: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&tick.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}
