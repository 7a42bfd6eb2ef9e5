//! Accounts and sessions, kept in the world's store.
//!
//! Passwords are stored as argon2id PHC strings (salted, parameters included). A session token
//! is 32 random bytes (URL-safe base64 for the client); the store keeps only its SHA-256, so a
//! copy of the data directory does not hand out live sessions. Sessions expire and can be
//! revoked (logout, or an admin revoking all of a user's sessions).

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use astroboids_net::messages::Token;
use astroboids_storage::{StorageError, WorldStore};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Player,
    /// Spawns and despawns any ship, changes limits, kicks players.
    Admin,
}

/// Bounds on names, passwords and sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRules {
    pub min_password_chars: usize,
    pub max_password_bytes: usize,
    /// How long a session lasts after login.
    pub session_lifetime_s: u64,
}

impl Default for AccountRules {
    fn default() -> Self {
        Self {
            min_password_chars: 8,
            max_password_bytes: 256,
            session_lifetime_s: 7 * 24 * 3600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct AccountRecord {
    password_phc: String,
    role: Role,
    created_unix_s: u64,
    /// Ships this account may own, when an admin set it (else the server's default).
    max_ships: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SessionRecord {
    user: String,
    expires_unix_s: u64,
}

/// A logged-in user, as a token resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub expires_unix_s: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("user name {0:?} is taken")]
    NameTaken(String),
    #[error("password: {0}")]
    WeakPassword(String),
    /// Deliberately the same for an unknown user and a wrong password.
    #[error("unknown user or wrong password")]
    BadCredentials,
    #[error("no user {0:?}")]
    UnknownUser(String),
    #[error("the session token is unknown or revoked: log in again")]
    UnknownToken,
    #[error("the session expired: log in again")]
    Expired,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("account data is damaged: {0}")]
    Damaged(String),
}

fn check_password(rules: &AccountRules, password: &str) -> Result<(), AccountError> {
    if password.chars().count() < rules.min_password_chars {
        return Err(AccountError::WeakPassword(format!(
            "at least {} characters",
            rules.min_password_chars
        )));
    }
    if password.len() > rules.max_password_bytes {
        return Err(AccountError::WeakPassword(format!(
            "at most {} bytes",
            rules.max_password_bytes
        )));
    }
    Ok(())
}

/// Checks a new password against the rules and hashes it (argon2id, tens of milliseconds:
/// the server runs this off the tick thread).
pub fn hash_password(rules: &AccountRules, password: &str) -> Result<String, AccountError> {
    check_password(rules, password)?;
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AccountError::WeakPassword(e.to_string()))?
        .to_string())
}

/// The hash unknown users' passwords are checked against, made once.
fn stand_in_hash() -> &'static str {
    static STAND_IN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STAND_IN.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"no such user", &salt)
            .expect("argon2 default parameters hash")
            .to_string()
    })
}

/// Makes the stand-in hash now (a server calls this at start), so that the first login of an
/// unknown user does not take longer than later ones and give that away.
pub fn prepare_stand_in_hash() {
    stand_in_hash();
}

/// Checks a password against a stored hash (`None`: an unknown user, checked against a
/// stand-in hash so that it takes as long and fails the same way).
pub fn verify_password(stored_phc: Option<&str>, password: &str) -> Result<(), AccountError> {
    let parsed = PasswordHash::new(stored_phc.unwrap_or(stand_in_hash()))
        .map_err(|e| AccountError::Damaged(format!("a stored password hash: {e}")))?;
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .map_err(|_| AccountError::BadCredentials)?;
    if stored_phc.is_none() {
        return Err(AccountError::BadCredentials);
    }
    Ok(())
}

/// Accounts and sessions over a store. Writes are durable after the store's next flush: the
/// server's group commit (`WorldServer::commit`), or the admin tool before it exits.
pub struct Accounts<'a> {
    store: &'a WorldStore,
    rules: AccountRules,
}

impl<'a> Accounts<'a> {
    pub fn new(store: &'a WorldStore, rules: AccountRules) -> Self {
        Self { store, rules }
    }

    /// Creates an account (names are checked by the store: 1-64 of `[A-Za-z0-9_.-]`).
    /// Hashes the password here; the server hashes on a worker with [`hash_password`] and
    /// calls [`Accounts::create`].
    pub fn register(
        &self,
        user: &str,
        password: &str,
        role: Role,
        now_unix_s: u64,
    ) -> Result<(), AccountError> {
        let password_phc = hash_password(&self.rules, password)?;
        self.create(user, password_phc, role, now_unix_s)
    }

    /// Creates an account whose password [`hash_password`] hashed.
    pub fn create(
        &self,
        user: &str,
        password_phc: String,
        role: Role,
        now_unix_s: u64,
    ) -> Result<(), AccountError> {
        let record = AccountRecord {
            password_phc,
            role,
            created_unix_s: now_unix_s,
            max_ships: None,
        };
        let bytes = postcard::to_allocvec(&record).expect("plain data");
        if self.store.create_account(user, &bytes)? {
            Ok(())
        } else {
            Err(AccountError::NameTaken(user.to_string()))
        }
    }

    /// Refuses a registration that cannot succeed (name taken or malformed, weak password)
    /// before any time is spent hashing.
    pub fn check_new_account(&self, user: &str, password: &str) -> Result<(), AccountError> {
        check_password(&self.rules, password)?;
        if self.store.account(user)?.is_some() {
            return Err(AccountError::NameTaken(user.to_string()));
        }
        Ok(())
    }

    fn record(&self, user: &str) -> Result<Option<AccountRecord>, AccountError> {
        let Some(bytes) = self.store.account(user)? else {
            return Ok(None);
        };
        postcard::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| AccountError::Damaged(format!("account {user:?}: {e}")))
    }

    /// Checks the password and opens a session; returns its token. The server checks on a
    /// worker: [`Accounts::stored_password`], [`verify_password`], [`Accounts::open_session`].
    pub fn login(
        &self,
        user: &str,
        password: &str,
        now_unix_s: u64,
    ) -> Result<(Token, Session), AccountError> {
        let stored = self.stored_password(user, password)?;
        verify_password(stored.as_deref(), password)?;
        self.open_session(user, now_unix_s)
    }

    /// The stored password hash of `user` (`None`: no such user, which must cost the same
    /// time to refuse as a wrong password, so [`verify_password`] still runs).
    pub fn stored_password(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<String>, AccountError> {
        if password.len() > self.rules.max_password_bytes {
            return Err(AccountError::BadCredentials);
        }
        Ok(self.record(user)?.map(|r| r.password_phc))
    }

    /// Opens a session for a user whose password was verified; returns its token.
    pub fn open_session(
        &self,
        user: &str,
        now_unix_s: u64,
    ) -> Result<(Token, Session), AccountError> {
        // Looked up again: the account may have changed while the password was checked.
        let record = self.record(user)?.ok_or(AccountError::BadCredentials)?;
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let token = Token(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
        let expires_unix_s = now_unix_s.saturating_add(self.rules.session_lifetime_s);
        let session = SessionRecord {
            user: user.to_string(),
            expires_unix_s,
        };
        self.store.put_session(
            &token_key(&token),
            &postcard::to_allocvec(&session).expect("plain data"),
        )?;
        Ok((
            token,
            Session {
                user: user.to_string(),
                role: record.role,
                expires_unix_s,
            },
        ))
    }

    /// The session a token stands for, if it is live.
    pub fn authenticate(&self, token: &Token, now_unix_s: u64) -> Result<Session, AccountError> {
        let key = token_key(token);
        let bytes = self
            .store
            .session(&key)?
            .ok_or(AccountError::UnknownToken)?;
        let session: SessionRecord = postcard::from_bytes(&bytes)
            .map_err(|e| AccountError::Damaged(format!("a session: {e}")))?;
        if now_unix_s >= session.expires_unix_s {
            self.store.remove_session(&key)?;
            return Err(AccountError::Expired);
        }
        let record = self
            .record(&session.user)?
            .ok_or(AccountError::UnknownToken)?;
        Ok(Session {
            user: session.user,
            role: record.role,
            expires_unix_s: session.expires_unix_s,
        })
    }

    /// Revokes one session.
    pub fn logout(&self, token: &Token) -> Result<(), AccountError> {
        self.store.remove_session(&token_key(token))?;
        Ok(())
    }

    /// Revokes every session of `user`; returns how many there were.
    pub fn revoke_all(&self, user: &str) -> Result<usize, AccountError> {
        let mut revoked = 0;
        for (key, bytes) in self.store.sessions()? {
            let session: SessionRecord = postcard::from_bytes(&bytes)
                .map_err(|e| AccountError::Damaged(format!("a session: {e}")))?;
            if session.user == user {
                self.store.remove_session(&key)?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// A user's role, or `UnknownUser`.
    pub fn role(&self, user: &str) -> Result<Role, AccountError> {
        self.record(user)?
            .map(|r| r.role)
            .ok_or_else(|| AccountError::UnknownUser(user.to_string()))
    }

    /// The ship limit an admin set for `user` (`None`: the server's default).
    pub fn ship_limit(&self, user: &str) -> Result<Option<u32>, AccountError> {
        self.record(user)?
            .map(|r| r.max_ships)
            .ok_or_else(|| AccountError::UnknownUser(user.to_string()))
    }

    /// Sets (or with `None` clears) `user`'s own ship limit.
    pub fn set_ship_limit(&self, user: &str, max_ships: Option<u32>) -> Result<(), AccountError> {
        let mut record = self
            .record(user)?
            .ok_or_else(|| AccountError::UnknownUser(user.to_string()))?;
        record.max_ships = max_ships;
        self.store
            .update_account(user, &postcard::to_allocvec(&record).expect("plain data"))?;
        Ok(())
    }

    /// Every account: (name, role, created at), by name.
    pub fn list(&self) -> Result<Vec<(String, Role, u64)>, AccountError> {
        self.store
            .accounts()?
            .into_iter()
            .map(|(user, bytes)| {
                let record: AccountRecord = postcard::from_bytes(&bytes)
                    .map_err(|e| AccountError::Damaged(format!("account {user:?}: {e}")))?;
                Ok((user, record.role, record.created_unix_s))
            })
            .collect()
    }

    /// Changes a user's role (admin tooling).
    pub fn set_role(&self, user: &str, role: Role) -> Result<(), AccountError> {
        let mut record = self
            .record(user)?
            .ok_or_else(|| AccountError::UnknownUser(user.to_string()))?;
        record.role = role;
        self.store
            .update_account(user, &postcard::to_allocvec(&record).expect("plain data"))?;
        Ok(())
    }
}

/// The store key of a token: its SHA-256.
fn token_key(token: &Token) -> Vec<u8> {
    Sha256::digest(token.0.as_bytes()).to_vec()
}
