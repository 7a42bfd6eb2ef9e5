//! The online world: accounts and sessions ([`accounts`]), rate limits ([`limits`]), players'
//! requests carried out against the persistent world by family ([`requests`]; the world runs,
//! persists and is recorded through the host's `WorldRunner`), the backstop that suspends
//! scripts whose runs take far too long ([`watchdog`]), what each player sees ([`views`]);
//! the I/O-free server core that ties them
//! together ([`core`]: events in, effects out, time passed in), and the shells that carry out
//! its effects on QUIC ([`serve`]: tick thread, connection tasks, password workers, trace
//! runner), with the TLS identity ([`tls`]) and Prometheus endpoint ([`monitoring`]).
//!
//! Architecture invariant: `accounts`, `limits`, `requests`, `watchdog` and `core` take time
//! as an argument and touch no sockets, threads or clocks; only `serve` and `monitoring` read
//! clocks and sockets. The tick thread is the only code that touches the world.

pub mod accounts;
pub mod core;
pub mod limits;
pub mod monitoring;
pub mod requests;
pub mod serve;
pub mod tls;

/// What each player may see: built by `astroboids_views`, shared with a cluster's shards.
pub use astroboids_views as views;
pub mod watchdog;
