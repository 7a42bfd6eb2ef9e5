//! Accounts and sessions.
//!
//! The store keeps what `server::accounts` keeps in the world store: an account's argon2 PHC
//! string, role, creation time and own ship limit; a session as the SHA-256 of its token's
//! text, its user and expiry. Hashing and verifying passwords, and making tokens, stay with
//! the caller (argon2 takes tens of milliseconds and belongs on a worker, not in a query).

use crate::checks;
use crate::error::{Doing, Result, StoreError, Violation, violated};
use crate::{PgStore, checks::to_i64};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Player,
    /// Spawns and despawns any ship, changes limits, kicks players.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Player => "player",
            Role::Admin => "admin",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "player" => Ok(Role::Player),
            "admin" => Ok(Role::Admin),
            other => Err(StoreError::Damaged(format!("unknown role {other:?}"))),
        }
    }
}

/// The SHA-256 of a session token's text (`Sha256::digest(token.0.as_bytes())`, as
/// `server::accounts` keys sessions): all the store ever sees of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    /// The argon2 PHC string to verify a login against.
    pub password_phc: String,
    pub role: Role,
    pub created_unix_s: u64,
    /// The ship limit an admin set (`None`: the server's default).
    pub max_ships: Option<u32>,
}

/// A live session, as a token resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub expires_unix_s: u64,
}

const ACCOUNT_COLUMNS: &str = "name, password_phc, role, created_unix_s, max_ships";

fn account_from(row: &tokio_postgres::Row) -> Result<Account> {
    let max_ships: Option<i32> = row.get(4);
    Ok(Account {
        name: row.get(0),
        password_phc: row.get(1),
        role: Role::parse(row.get(2))?,
        created_unix_s: checks::from_i64("created_unix_s", row.get(3))?,
        max_ships: max_ships.map(|n| n.max(0) as u32),
    })
}

fn max_ships_column(max_ships: Option<u32>) -> Result<Option<i32>> {
    max_ships
        .map(|n| {
            i32::try_from(n).map_err(|_| StoreError::OutOfRange {
                what: "ship limit",
                value: n.into(),
                max: i32::MAX as u64,
            })
        })
        .transpose()
}

impl PgStore {
    // --- accounts ------------------------------------------------------------------------

    /// Creates an account whose password the caller hashed (argon2 PHC string); two gateways
    /// registering one name at once: one succeeds, the other gets [`StoreError::NameTaken`].
    pub async fn create_account(
        &self,
        name: &str,
        password_phc: &str,
        role: Role,
        now_unix_s: u64,
    ) -> Result<()> {
        checks::name("user name", name)?;
        checks::password_phc(password_phc)?;
        let now = to_i64("time", now_unix_s)?;
        let client = self.client("creating an account").await?;
        let inserted = client
            .execute(
                "INSERT INTO accounts (name, password_phc, role, created_unix_s)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                &[&name, &password_phc, &role.as_str(), &now],
            )
            .await
            .doing("creating an account")?;
        if inserted == 0 {
            return Err(StoreError::NameTaken(name.to_string()));
        }
        Ok(())
    }

    /// The account named `name` (`None`: no such user; a login must then still verify the
    /// password against a stand-in hash, so that both cost the same time).
    pub async fn account(&self, name: &str) -> Result<Option<Account>> {
        checks::name("user name", name)?;
        let client = self.client("looking up an account").await?;
        let row = client
            .query_opt(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = $1"),
                &[&name],
            )
            .await
            .doing("looking up an account")?;
        row.as_ref().map(account_from).transpose()
    }

    /// Accounts in name order, after `after` (a page of at most `Limits::max_rows`).
    pub async fn accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<Account>> {
        let limit = limit.min(self.limits.max_rows) as i64;
        let client = self.client("listing accounts").await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts
                     WHERE $1::TEXT IS NULL OR name > $1 ORDER BY name LIMIT $2"
                ),
                &[&after, &limit],
            )
            .await
            .doing("listing accounts")?;
        rows.iter().map(account_from).collect()
    }

    /// Changes a user's role.
    pub async fn set_role(&self, name: &str, role: Role) -> Result<()> {
        self.update_account(
            name,
            "UPDATE accounts SET role = $2 WHERE name = $1",
            &role.as_str(),
        )
        .await
    }

    /// Sets (or with `None` clears) a user's own ship limit.
    pub async fn set_ship_limit(&self, name: &str, max_ships: Option<u32>) -> Result<()> {
        let max_ships = max_ships_column(max_ships)?;
        self.update_account(
            name,
            "UPDATE accounts SET max_ships = $2 WHERE name = $1",
            &max_ships,
        )
        .await
    }

    /// Replaces a user's password hash (the caller hashed the new password).
    pub async fn set_password(&self, name: &str, password_phc: &str) -> Result<()> {
        checks::password_phc(password_phc)?;
        self.update_account(
            name,
            "UPDATE accounts SET password_phc = $2 WHERE name = $1",
            &password_phc,
        )
        .await
    }

    async fn update_account(
        &self,
        name: &str,
        sql: &str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<()> {
        checks::name("user name", name)?;
        let client = self.client("changing an account").await?;
        let changed = client
            .execute(sql, &[&name, value])
            .await
            .doing("changing an account")?;
        if changed == 0 {
            return Err(StoreError::UnknownUser(name.to_string()));
        }
        Ok(())
    }

    // --- sessions ------------------------------------------------------------------------

    /// Opens a session for `user`, whose password the caller verified, under the hash of a
    /// token the caller made; it lasts until `expires_unix_s` (after `now_unix_s`).
    pub async fn open_session(
        &self,
        token: &TokenHash,
        user: &str,
        now_unix_s: u64,
        expires_unix_s: u64,
    ) -> Result<Session> {
        checks::name("user name", user)?;
        let now = to_i64("time", now_unix_s)?;
        let expires = to_i64("expiry", expires_unix_s)?;
        if expires <= now {
            return Err(StoreError::Invalid {
                what: "session expiry",
                reason: format!("{expires_unix_s} is not after now ({now_unix_s})"),
            });
        }
        let client = self.client("opening a session").await?;
        let result = client
            .query_opt(
                "INSERT INTO sessions (token_sha256, account, opened_unix_s, expires_unix_s)
                 SELECT $1, name, $3, $4 FROM accounts WHERE name = $2
                 RETURNING (SELECT role FROM accounts WHERE name = $2)",
                &[&token.0.as_slice(), &user, &now, &expires],
            )
            .await
            .doing("opening a session");
        let row = match result {
            Err(e) if matches!(violated(&e), Some((Violation::Unique, _))) => {
                return Err(StoreError::TokenTaken);
            }
            // The account went between the SELECT and the insert.
            Err(e) if matches!(violated(&e), Some((Violation::ForeignKey, _))) => None,
            other => other?,
        };
        let row = row.ok_or_else(|| StoreError::UnknownUser(user.to_string()))?;
        Ok(Session {
            user: user.to_string(),
            role: Role::parse(row.get(0))?,
            expires_unix_s,
        })
    }

    /// The live session a token stands for. An expired one is removed and refused
    /// ([`StoreError::SessionExpired`]); an unknown or revoked one is
    /// [`StoreError::UnknownToken`].
    pub async fn resolve_session(&self, token: &TokenHash, now_unix_s: u64) -> Result<Session> {
        let now = to_i64("time", now_unix_s)?;
        let client = self.client("resolving a session").await?;
        let resolve = client
            .prepare_cached(
                "SELECT s.account, a.role, s.expires_unix_s
                 FROM sessions s JOIN accounts a ON a.name = s.account
                 WHERE s.token_sha256 = $1",
            )
            .await
            .doing("resolving a session")?;
        let row = client
            .query_opt(&resolve, &[&token.0.as_slice()])
            .await
            .doing("resolving a session")?
            .ok_or(StoreError::UnknownToken)?;
        let expires: i64 = row.get(2);
        if now >= expires {
            client
                .execute(
                    "DELETE FROM sessions WHERE token_sha256 = $1",
                    &[&token.0.as_slice()],
                )
                .await
                .doing("removing an expired session")?;
            return Err(StoreError::SessionExpired);
        }
        Ok(Session {
            user: row.get(0),
            role: Role::parse(row.get(1))?,
            expires_unix_s: checks::from_i64("expires_unix_s", expires)?,
        })
    }

    /// Revokes one session (logout); returns whether there was one. Its stored answers go
    /// with it.
    pub async fn revoke_session(&self, token: &TokenHash) -> Result<bool> {
        let client = self.client("revoking a session").await?;
        let removed = client
            .execute(
                "DELETE FROM sessions WHERE token_sha256 = $1",
                &[&token.0.as_slice()],
            )
            .await
            .doing("revoking a session")?;
        Ok(removed > 0)
    }

    /// Revokes every session of `user` (a kick, an admin's revoke); returns how many.
    pub async fn revoke_sessions_of(&self, user: &str) -> Result<u64> {
        checks::name("user name", user)?;
        let client = self.client("revoking a user's sessions").await?;
        client
            .execute("DELETE FROM sessions WHERE account = $1", &[&user])
            .await
            .doing("revoking a user's sessions")
    }

    /// Removes sessions expired at `now_unix_s`, at most `Limits::max_rows` of them; returns
    /// how many (call again while it returns the maximum).
    pub async fn sweep_sessions(&self, now_unix_s: u64) -> Result<u64> {
        let now = to_i64("time", now_unix_s)?;
        let limit = self.limits.max_rows as i64;
        let client = self.client("sweeping sessions").await?;
        client
            .execute(
                "DELETE FROM sessions WHERE token_sha256 IN (
                     SELECT token_sha256 FROM sessions WHERE expires_unix_s <= $1 LIMIT $2)",
                &[&now, &limit],
            )
            .await
            .doing("sweeping sessions")
    }
}
