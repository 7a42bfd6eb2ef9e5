//! The online world (issue #5, in progress): accounts and sessions, and players' requests
//! carried out against the persistent world; rate limits, the quinn shell and the world loop
//! follow.
//!
//! Architecture invariant: the server's logic takes time as an argument (`now`, seconds since
//! the Unix epoch, read by the shell); only the shell reads clocks and sockets.

pub mod accounts;
pub mod limits;
pub mod requests;
