//! What went wrong, by name: a refused argument names the argument and the limit, a refused
//! change names the row it collided with, a database failure names what was being done.

use tokio_postgres::error::SqlState;

/// Every error of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // --- connecting and the schema -------------------------------------------------------
    #[error("the database URL is not valid: {0}")]
    BadUrl(String),
    #[error("cannot connect to PostgreSQL at {at}: {}", explain(source))]
    Connect {
        at: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("no database connection for {doing}: {reason}")]
    Pool { doing: &'static str, reason: String },
    #[error(
        "the database has schema version {found}; this build knows versions up to {known}: run a \
         build at least as new as the one that migrated it (nothing was changed)"
    )]
    SchemaTooNew { found: u32, known: u32 },
    #[error(
        "the database's migration V{version} ({applied}) is not this build's ({expected}): the \
         database was migrated by a different build; nothing was changed"
    )]
    MigrationMismatch {
        version: u32,
        applied: String,
        expected: String,
    },
    #[error(
        "migration V{version}__{name} failed (rolled back): {}",
        explain(source)
    )]
    Migration {
        version: u32,
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("database error while {doing}: {}", explain(source))]
    Db {
        doing: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("damaged data in the database: {0}")]
    Damaged(String),

    // --- refused arguments ---------------------------------------------------------------
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("{what} is {bytes} bytes; the limit is {limit}")]
    TooLarge {
        what: &'static str,
        bytes: usize,
        limit: usize,
    },
    #[error("{what} {value} is out of range (0 to {max})")]
    OutOfRange {
        what: &'static str,
        value: u64,
        max: u64,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },

    // --- accounts and sessions -----------------------------------------------------------
    #[error("user name {0:?} is taken")]
    NameTaken(String),
    #[error("no user {0:?}")]
    UnknownUser(String),
    #[error("the session token is unknown or revoked: log in again")]
    UnknownToken,
    #[error("the session expired: log in again")]
    SessionExpired,
    #[error("a session with this token hash exists already")]
    TokenTaken,

    // --- scripts -------------------------------------------------------------------------
    #[error("no script {0:032x} in the store")]
    UnknownScript(u128),

    // --- ships ---------------------------------------------------------------------------
    #[error("no ship {0} is owned by anyone")]
    UnknownShip(u64),
    #[error("ship {ship} is already {owner:?}'s")]
    ShipOwned { ship: u64, owner: String },
    #[error("{user:?} owns {owned} ships, the most the account may ({cap})")]
    ShipCap { user: String, owned: u64, cap: u32 },

    // --- input log -----------------------------------------------------------------------
    #[error(
        "world {world:?} already has a different input at position {position}: the log is not \
         rewritten"
    )]
    InputConflict { world: String, position: u64 },

    // --- resume --------------------------------------------------------------------------
    #[error("the session of this request is gone (logged out, revoked or expired)")]
    UnknownSession,
}

/// A client error with what the server or the socket said (tokio-postgres's own text is
/// only "db error" or "error connecting to server", the reason is its source).
fn explain(error: &tokio_postgres::Error) -> String {
    use std::error::Error as _;
    match error.as_db_error() {
        Some(db) => format!("{db} (SQLSTATE {})", db.code().code()),
        None => match error.source() {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Names what was being done when a database call failed.
pub(crate) trait Doing<T> {
    fn doing(self, doing: &'static str) -> Result<T>;
}

impl<T> Doing<T> for Result<T, tokio_postgres::Error> {
    fn doing(self, doing: &'static str) -> Result<T> {
        self.map_err(|source| StoreError::Db { doing, source })
    }
}

impl<T> Doing<T> for Result<T, deadpool_postgres::PoolError> {
    fn doing(self, doing: &'static str) -> Result<T> {
        self.map_err(|e| StoreError::Pool {
            doing,
            reason: e.to_string(),
        })
    }
}

/// The constraint a unique or foreign-key violation broke, if `error` is one.
pub(crate) fn violated(error: &StoreError) -> Option<(Violation, &str)> {
    let StoreError::Db { source, .. } = error else {
        return None;
    };
    let db = source.as_db_error()?;
    let kind = match *db.code() {
        SqlState::UNIQUE_VIOLATION => Violation::Unique,
        SqlState::FOREIGN_KEY_VIOLATION => Violation::ForeignKey,
        _ => return None,
    };
    Some((kind, db.constraint().unwrap_or("")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    Unique,
    ForeignKey,
}
