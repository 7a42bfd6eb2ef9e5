//! `astroboids gateway`: the QUIC front door of a cluster. Players connect to any gateway
//! with the single server's client and protocol (`astroboids/1`); a gateway holds no world.
//!
//! - **Accounts, sessions, scripts, ship ownership** live in PostgreSQL (`astroboids-pgstore`),
//!   so every gateway sees the same ones and a player may reconnect to any.
//! - **World inputs** (spawns, commands, script assignments) are published on the world's
//!   input log (the leader sequences them into ticks); the answer waits for the tick report
//!   that judged the input ([`outcomes`]), so an answer means the change is in the durable
//!   log and was carried out, once: a re-sent request publishes under the same message id,
//!   which the log deduplicates.
//! - **Ship questions** (status, logs) go to the shard holding the ship, request-reply.
//! - **Live views**: every shard publishes its piece of every player's view each tick; the
//!   gateway merges a tick once every shard's piece is in (`astroboids_cluster::live`) and
//!   encodes each subscriber's delta snapshot ([`viewers`]).
//! - **Exactly once across gateways**: requests that write are claimed in PostgreSQL by
//!   (session, client instance, request id) before they are carried out, and their answers
//!   stored there ([`requests`]).
//!
//! The decisions without I/O are in [`outcomes`] and [`viewers`] (and the cluster's
//! `live::ViewMerger`); [`requests`] sequences the store, bus and shard calls of one request;
//! [`serve`] is the shell (QUIC endpoint, connection tasks, bus listeners).
//!
//! Architecture invariant: a gateway never holds world state of its own: what it answers
//! comes from PostgreSQL, the leader's tick reports or a shard, so any number of gateways
//! may run and any may be lost.

pub mod inputs;
pub mod outcomes;
pub mod requests;
pub mod serve;
pub mod viewers;

use std::time::Duration;

use astroboids_server::accounts::AccountRules;
use astroboids_server::limits::RateRules;

pub use serve::{GatewayError, GatewayOptions, RunningGateway};

/// Now, in Unix seconds: the store keeps times that way (accounts and sessions expire in wall
/// time).
pub(crate) fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The live subject an admin's kick travels on to every gateway (payload: the user name).
pub const KICK_SUBJECT: &str = "kick";

/// What a gateway allows and how long it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRules {
    pub accounts: AccountRules,
    pub rates: RateRules,
    /// Ships one player may own (an admin may set another limit per account).
    pub max_ships_per_account: u32,
    /// How long a request waits for the tick that judges its input.
    pub input_timeout: Duration,
    /// How long a shard has to answer a ship query.
    pub query_timeout: Duration,
    /// How long a re-sent request waits for the gateway that claimed it to answer.
    pub claim_wait: Duration,
    /// Registrations and logins hashing at once (argon2 takes tens of milliseconds each).
    pub password_workers: usize,
}

impl Default for GatewayRules {
    fn default() -> Self {
        Self {
            accounts: AccountRules::default(),
            rates: RateRules::default(),
            max_ships_per_account: 50,
            input_timeout: Duration::from_secs(30),
            query_timeout: Duration::from_secs(2),
            claim_wait: Duration::from_secs(30),
            password_workers: 2,
        }
    }
}
