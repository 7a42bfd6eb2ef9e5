//! The durable copy of each world's input log: postcard-encoded inputs (opaque here) by
//! (world, position). Writing is idempotent: a position written again with the same input
//! (a retry, another gateway) is no change; with a different one it is refused, never
//! rewritten.

use std::collections::BTreeSet;

use crate::PgStore;
use crate::checks::{self, to_i64};
use crate::error::{Doing, Result, StoreError};

/// An input to append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewInput<'a> {
    pub position: u64,
    /// The encoded input (postcard, as the host logs it).
    pub input: &'a [u8],
    /// The account that asked for it (`None`: the world itself or an operator).
    pub submitted_by: Option<&'a str>,
    pub at_unix_s: u64,
}

/// An input of the log, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedInput {
    pub position: u64,
    pub input: Vec<u8>,
    pub submitted_by: Option<String>,
    pub at_unix_s: u64,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Appended {
    /// Inputs written now.
    pub inserted: usize,
    /// Inputs that were there already, identical (input and submitter).
    pub already_there: usize,
}

impl PgStore {
    /// Appends `inputs` to `world`'s log in one transaction (all or none): positions already
    /// holding the same input and submitter are left as they are (the time is not compared),
    /// a position holding something else refuses the whole batch
    /// ([`StoreError::InputConflict`]). At most `Limits::max_rows` inputs per call.
    pub async fn append_inputs(&self, world: &str, inputs: &[NewInput<'_>]) -> Result<Appended> {
        checks::name("world", world)?;
        if inputs.len() > self.limits.max_rows {
            return Err(StoreError::Invalid {
                what: "input batch",
                reason: format!(
                    "{} inputs; the limit is {}",
                    inputs.len(),
                    self.limits.max_rows
                ),
            });
        }
        // In position order, so that two gateways writing overlapping batches take the rows'
        // locks in the same order (no deadlock).
        let mut inputs = inputs.to_vec();
        inputs.sort_by_key(|i| i.position);
        let mut positions = Vec::with_capacity(inputs.len());
        let mut seen = BTreeSet::new();
        for input in &inputs {
            checks::size("an input", input.input.len(), self.limits.max_input_bytes)?;
            if let Some(by) = input.submitted_by {
                checks::name("submitter", by)?;
            }
            to_i64("time", input.at_unix_s)?;
            positions.push(to_i64("position", input.position)?);
            if !seen.insert(input.position) {
                return Err(StoreError::Invalid {
                    what: "input batch",
                    reason: format!("position {} appears twice", input.position),
                });
            }
        }
        if inputs.is_empty() {
            return Ok(Appended::default());
        }
        let bytes: Vec<&[u8]> = inputs.iter().map(|i| i.input).collect();
        let by: Vec<Option<&str>> = inputs.iter().map(|i| i.submitted_by).collect();
        let at: Vec<i64> = inputs.iter().map(|i| i.at_unix_s as i64).collect();

        let mut client = self.client("appending inputs").await?;
        let tx = client.transaction().await.doing("appending inputs")?;
        let inserted: BTreeSet<i64> = tx
            .query(
                "INSERT INTO input_log (world, position, input, submitted_by, at_unix_s)
                 SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BYTEA[], $4::TEXT[], $5::BIGINT[])
                 ON CONFLICT (world, position) DO NOTHING
                 RETURNING position",
                &[&world, &positions, &bytes, &by, &at],
            )
            .await
            .doing("appending inputs")?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let others: Vec<i64> = positions
            .iter()
            .copied()
            .filter(|p| !inserted.contains(p))
            .collect();
        if !others.is_empty() {
            let rows = tx
                .query(
                    "SELECT position, input, submitted_by FROM input_log
                     WHERE world = $1 AND position = ANY($2)",
                    &[&world, &others],
                )
                .await
                .doing("comparing logged inputs")?;
            for row in rows {
                let position: i64 = row.get(0);
                let stored: &[u8] = row.get(1);
                let stored_by: Option<&str> = row.get(2);
                let ours = inputs
                    .iter()
                    .find(|i| i.position as i64 == position)
                    .expect("the position was asked for");
                if stored != ours.input || stored_by != ours.submitted_by {
                    return Err(StoreError::InputConflict {
                        world: world.to_string(),
                        position: ours.position,
                    });
                }
            }
        }
        tx.commit().await.doing("appending inputs")?;
        Ok(Appended {
            inserted: inserted.len(),
            already_there: others.len(),
        })
    }

    /// `world`'s inputs from `from_position` on, in position order, at most `limit` (and at
    /// most `Limits::max_rows`).
    pub async fn inputs(
        &self,
        world: &str,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<LoggedInput>> {
        checks::name("world", world)?;
        let from = to_i64("position", from_position)?;
        let limit = limit.min(self.limits.max_rows) as i64;
        let client = self.client("reading the input log").await?;
        let rows = client
            .query(
                "SELECT position, input, submitted_by, at_unix_s FROM input_log
                 WHERE world = $1 AND position >= $2 ORDER BY position LIMIT $3",
                &[&world, &from, &limit],
            )
            .await
            .doing("reading the input log")?;
        rows.iter()
            .map(|r| {
                Ok(LoggedInput {
                    position: checks::from_i64("position", r.get(0))?,
                    input: r.get(1),
                    submitted_by: r.get(2),
                    at_unix_s: checks::from_i64("at_unix_s", r.get(3))?,
                })
            })
            .collect()
    }

    /// The highest position in `world`'s log (`None`: empty).
    pub async fn last_input_position(&self, world: &str) -> Result<Option<u64>> {
        checks::name("world", world)?;
        let client = self.client("reading the input log").await?;
        let row = client
            .query_one(
                "SELECT MAX(position) FROM input_log WHERE world = $1",
                &[&world],
            )
            .await
            .doing("reading the input log")?;
        row.get::<_, Option<i64>>(0)
            .map(|p| checks::from_i64("position", p))
            .transpose()
    }

    /// Removes `world`'s inputs before `position` (covered by a checkpoint), at most
    /// `Limits::max_rows` per call; returns how many.
    pub async fn prune_inputs_before(&self, world: &str, position: u64) -> Result<u64> {
        checks::name("world", world)?;
        let before = to_i64("position", position)?;
        let client = self.client("pruning the input log").await?;
        client
            .execute(
                "DELETE FROM input_log WHERE world = $1 AND position IN (
                     SELECT position FROM input_log WHERE world = $1 AND position < $2
                     ORDER BY position LIMIT $3)",
                &[&world, &before, &(self.limits.max_rows as i64)],
            )
            .await
            .doing("pruning the input log")
    }
}
