//! The AstroBoids network protocol as a library that does no I/O: message types
//! ([`messages`]), framing on QUIC streams ([`frame`]) and the per-connection state of both
//! ends ([`session`]). Bytes go in and come out; time is passed in. The QUIC shell that moves
//! the bytes is thin and lives with the server.
//!
//! Architecture invariant: nothing here opens sockets, reads the clock or spawns tasks; every
//! limit (frame size, in-flight requests, protocol errors) is enforced here, so it is tested
//! without a network.

pub mod frame;
pub mod messages;
pub mod session;

pub use messages::{ALPN, PROTOCOL_VERSION};
