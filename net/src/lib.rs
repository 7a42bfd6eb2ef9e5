//! The AstroBoids network protocol as a library that does no I/O: message types
//! ([`messages`]), framing on QUIC streams ([`frame`]) and the per-connection state of both
//! ends ([`session`]). Bytes go in and come out; time is passed in. [`quic`] is the thin quinn
//! shell that moves the bytes (endpoint configs, certificate pinning, a client).
//!
//! Architecture invariant: nothing outside `quic` opens sockets, reads the clock or spawns
//! tasks; every limit (frame size, in-flight requests, protocol errors) is enforced in the
//! core, so it is tested without a network. `quic` makes no protocol decisions of its own.

pub mod frame;
pub mod live_view;
pub mod messages;
pub mod quic;
pub mod session;
pub mod snapshot;
pub mod text;

pub use messages::{ALPN, PROTOCOL_VERSION};
