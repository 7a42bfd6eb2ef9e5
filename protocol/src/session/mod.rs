//! Per-connection protocol state, both ends, with no I/O: bytes in, bytes out, time passed in.

mod client;
mod server;

pub use client::{
    CONNECT_TIMEOUT, ClientEvent, ClientSession, DatagramOutcome, MAX_PENDING_EVENTS,
    RECONNECT_DELAYS, REQUEST_TIMEOUT,
};
pub use server::{ServerEvent, ServerSession, SessionLimits};
