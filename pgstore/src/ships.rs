//! Ship ownership: which account owns which ship (by the sim's ship id), counted per owner and
//! capped at recording, transferred and deleted. A ship with no row is nobody's (or gone).

use crate::PgStore;
use crate::checks::{self, to_i64};
use crate::error::{Doing, Result, StoreError};

/// Locks the account row, so two gateways adding ships for one owner at once are counted one
/// after the other and the cap holds.
const LOCK_OWNER: &str = "SELECT 1 FROM accounts WHERE name = $1 FOR NO KEY UPDATE";
/// Counts after the lock, in a statement of its own: under READ COMMITTED a new statement sees
/// what the transaction that held the lock committed; a count in the locking statement would
/// be from its snapshot, taken before the wait.
const COUNT_SHIPS: &str = "SELECT COUNT(*) FROM ships WHERE owner = $1";

impl PgStore {
    /// Records `owner` as the owner of the new ship `ship`; with a `cap`, refuses
    /// ([`StoreError::ShipCap`]) when the owner has that many already. Returns the owner's
    /// count after it.
    pub async fn record_ship(
        &self,
        ship: u64,
        owner: &str,
        cap: Option<u32>,
        now_unix_s: u64,
    ) -> Result<u64> {
        checks::name("owner", owner)?;
        let id = to_i64("ship id", ship)?;
        let now = to_i64("time", now_unix_s)?;
        let mut client = self.client("recording a ship").await?;
        let tx = client.transaction().await.doing("recording a ship")?;
        let owned = lock_and_count(&tx, owner, cap).await?;
        let inserted = tx
            .execute(
                "INSERT INTO ships (ship_id, owner, owned_since_unix_s) VALUES ($1, $2, $3)
                 ON CONFLICT (ship_id) DO NOTHING",
                &[&id, &owner, &now],
            )
            .await
            .doing("recording a ship")?;
        if inserted == 0 {
            let row = tx
                .query_one("SELECT owner FROM ships WHERE ship_id = $1", &[&id])
                .await
                .doing("reading a ship's owner")?;
            return Err(StoreError::ShipOwned {
                ship,
                owner: row.get(0),
            });
        }
        tx.commit().await.doing("recording a ship")?;
        Ok(owned + 1)
    }

    /// Who owns `ship` (`None`: nobody, or no such ship).
    pub async fn ship_owner(&self, ship: u64) -> Result<Option<String>> {
        let id = to_i64("ship id", ship)?;
        let client = self.client("reading a ship's owner").await?;
        let row = client
            .query_opt("SELECT owner FROM ships WHERE ship_id = $1", &[&id])
            .await
            .doing("reading a ship's owner")?;
        Ok(row.map(|r| r.get(0)))
    }

    /// `owner`'s ships in id order (at most `Limits::max_rows`).
    pub async fn ships_of(&self, owner: &str) -> Result<Vec<u64>> {
        checks::name("owner", owner)?;
        let client = self.client("listing ships").await?;
        let rows = client
            .query(
                "SELECT ship_id FROM ships WHERE owner = $1 ORDER BY ship_id LIMIT $2",
                &[&owner, &(self.limits.max_rows as i64)],
            )
            .await
            .doing("listing ships")?;
        rows.iter()
            .map(|r| checks::from_i64("ship id", r.get(0)))
            .collect()
    }

    /// How many ships `owner` owns.
    pub async fn ship_count(&self, owner: &str) -> Result<u64> {
        checks::name("owner", owner)?;
        let client = self.client("counting ships").await?;
        let row = client
            .query_one(COUNT_SHIPS, &[&owner])
            .await
            .doing("counting ships")?;
        checks::from_i64("ship count", row.get(0))
    }

    /// Gives `ship` to `to` (with a `cap`: unless `to` has that many already); returns the
    /// previous owner. Giving a ship to its owner changes nothing.
    pub async fn transfer_ship(
        &self,
        ship: u64,
        to: &str,
        cap: Option<u32>,
        now_unix_s: u64,
    ) -> Result<String> {
        checks::name("new owner", to)?;
        let id = to_i64("ship id", ship)?;
        let now = to_i64("time", now_unix_s)?;
        let mut client = self.client("transferring a ship").await?;
        let tx = client.transaction().await.doing("transferring a ship")?;
        let from: String = tx
            .query_opt(
                "SELECT owner FROM ships WHERE ship_id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .doing("transferring a ship")?
            .ok_or(StoreError::UnknownShip(ship))?
            .get(0);
        if from == to {
            return Ok(from);
        }
        lock_and_count(&tx, to, cap).await?;
        tx.execute(
            "UPDATE ships SET owner = $2, owned_since_unix_s = $3 WHERE ship_id = $1",
            &[&id, &to, &now],
        )
        .await
        .doing("transferring a ship")?;
        tx.commit().await.doing("transferring a ship")?;
        Ok(from)
    }

    /// Forgets `ship` (destroyed, despawned); returns the owner it had (`None`: nobody's).
    pub async fn delete_ship(&self, ship: u64) -> Result<Option<String>> {
        let id = to_i64("ship id", ship)?;
        let client = self.client("deleting a ship").await?;
        let row = client
            .query_opt(
                "DELETE FROM ships WHERE ship_id = $1 RETURNING owner",
                &[&id],
            )
            .await
            .doing("deleting a ship")?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// Locks `owner`'s account row for the rest of the transaction and returns its ship count,
/// refusing an unknown owner or one at `cap`.
async fn lock_and_count(
    tx: &deadpool_postgres::Transaction<'_>,
    owner: &str,
    cap: Option<u32>,
) -> Result<u64> {
    tx.query_opt(LOCK_OWNER, &[&owner])
        .await
        .doing("locking an owner's account")?
        .ok_or_else(|| StoreError::UnknownUser(owner.to_string()))?;
    let row = tx
        .query_one(COUNT_SHIPS, &[&owner])
        .await
        .doing("counting an owner's ships")?;
    let owned = checks::from_i64("ship count", row.get(0))?;
    if let Some(cap) = cap
        && owned >= u64::from(cap)
    {
        return Err(StoreError::ShipCap {
            user: owner.to_string(),
            owned,
            cap,
        });
    }
    Ok(owned)
}
