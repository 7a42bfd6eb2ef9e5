//! The AstroBoids network protocol as a library that does no I/O: message types
//! ([`messages`]), framing on QUIC streams ([`frame`]), the per-connection state of both ends
//! ([`session`]), snapshot datagrams ([`snapshot`]) and the client's reconstructed world
//! ([`live_view`]). Bytes go in and come out; time is passed in. The quinn shell that moves
//! the bytes lives in `astroboids-net`.
//!
//! Architecture invariant: this crate depends on no I/O or async runtime (no quinn, tokio or
//! rand); every limit (frame size, in-flight requests, protocol errors, queued events) is
//! enforced here, so it is tested without a network.

pub mod calls;
pub mod frame;
pub mod live_view;
pub mod messages;
pub mod resume;
pub mod session;
pub mod snapshot;
pub mod text;

pub use messages::{ALPN, PROTOCOL_VERSION};
