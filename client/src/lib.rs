//! Player clients on top of `astroboids-net`: the terminal live view ([`watch`]: state and
//! drawing; [`terminal`]: the loop that connects, reads keys and draws) and the load
//! generator ([`loadgen`]: bot players that measure what they receive).
//!
//! Architecture invariant: the view's state and drawing ([`watch::WatchApp`]) do no I/O; the
//! loop that connects, reads keys and draws is separate, so what a player sees is tested with
//! a captured frame.

pub mod loadgen;
pub mod terminal;
pub mod watch;
