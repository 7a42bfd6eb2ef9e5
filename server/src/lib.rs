//! The online world: accounts and sessions ([`accounts`]), rate limits ([`limits`]), players'
//! requests carried out against the persistent world ([`requests`]), the backstop that
//! suspends scripts whose runs take far too long ([`watchdog`]), and the shell that runs
//! it all on QUIC ([`serve`]: tick thread + quinn endpoint), with its TLS identity ([`tls`])
//! and Prometheus endpoint ([`monitoring`]).
//!
//! Architecture invariant: `accounts`, `limits`, `requests` and `watchdog` take time as an
//! argument (`now`, seconds since the Unix epoch, read by the shell; the watchdog gets tick
//! numbers and the script workers' measurements) and touch no sockets; only `serve` and
//! `monitoring` read clocks and sockets. The tick thread is the only code that touches
//! the world.

pub mod accounts;
pub mod limits;
pub mod monitoring;
pub mod requests;
pub mod serve;
pub mod tls;
pub mod views;
pub mod watchdog;
