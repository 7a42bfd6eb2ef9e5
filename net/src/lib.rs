//! The quinn shell of the AstroBoids protocol: endpoint configs, certificate pinning and a
//! client ([`quic`]). The protocol itself (messages, framing, sessions, snapshots) is the
//! I/O-free `astroboids-protocol` crate, re-exported here so shells and callers name one crate.
//!
//! Architecture invariant: `quic` makes no protocol decisions of its own: what to send, when
//! to retry, what to queue and what to acknowledge are decided by the protocol core's
//! sessions; `quic` moves bytes and reports what arrived.

pub mod client;
pub mod quic;

pub use astroboids_protocol::{
    ALPN, PROTOCOL_VERSION, calls, frame, live_view, messages, session, snapshot, text,
};
