//! The core's vocabulary: what happened ([`Event`]), what to do ([`Effect`]), and the limits
//! it enforces ([`CoreRules`]).

use std::net::IpAddr;

use astroboids_protocol::messages::{Request, Response, TickEvents};
use astroboids_protocol::resume::ResumeLimits;

use crate::requests::{PasswordChecked, PasswordJob, TraceJob};

/// Identifies a connection for the life of the server (never reused).
pub type ConnId = u64;

/// Limits the core enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreRules {
    /// Registrations and logins waiting for password workers, all addresses together; past
    /// it they are refused as busy (a login storm must not grow memory without bound).
    pub password_queue: usize,
    /// Registrations and logins one address may have waiting, so that a few addresses cannot
    /// keep everyone else's logins busy.
    pub password_jobs_per_ip: usize,
    pub resume: ResumeLimits,
}

impl Default for CoreRules {
    fn default() -> Self {
        Self {
            password_queue: 256,
            password_jobs_per_ip: 8,
            resume: ResumeLimits::default(),
        }
    }
}

/// What happened, for [`ServerCore::handle`].
#[derive(Debug)]
pub enum Event {
    Opened {
        conn: ConnId,
        ip: IpAddr,
        /// The datagram size the path carries (0: no datagrams).
        max_datagram_bytes: usize,
    },
    Closed {
        conn: ConnId,
    },
    /// A request decoded by the connection's session; `instance` is the client instance its
    /// greeting named (0: none).
    Request {
        conn: ConnId,
        instance: u64,
        id: u64,
        request: Request,
    },
    /// The client acknowledged snapshot `seq`.
    Acked {
        conn: ConnId,
        seq: u32,
    },
    /// A [`Effect::HashPassword`] job finished.
    PasswordChecked {
        conn: ConnId,
        ip: IpAddr,
        id: u64,
        checked: PasswordChecked,
    },
    /// A [`Effect::RunTrace`] job finished.
    TraceReady {
        conn: ConnId,
        id: u64,
        response: Response,
    },
    /// Stop taking requests (see [`ServerCore::shut_down`]).
    Shutdown,
}

/// What the shell must do.
#[derive(Debug)]
pub enum Effect {
    Answer {
        conn: ConnId,
        id: u64,
        response: Response,
    },
    /// Close the connection, telling the client why.
    Close { conn: ConnId, reason: String },
    /// Snapshot datagrams (dropped like lost ones when the path or the queue cannot take
    /// them).
    Datagrams {
        conn: ConnId,
        datagrams: Vec<Vec<u8>>,
    },
    /// A tick's events for the client's ships (on the stream).
    Events { conn: ConnId, events: TickEvents },
    /// Hash or verify a password off the tick thread, then report
    /// [`Event::PasswordChecked`].
    HashPassword {
        conn: ConnId,
        ip: IpAddr,
        id: u64,
        job: PasswordJob,
    },
    /// Re-simulate a recording off the tick thread, then report [`Event::TraceReady`].
    RunTrace {
        conn: ConnId,
        id: u64,
        job: TraceJob,
    },
    /// A line for the operator's log.
    Notice(String),
}
