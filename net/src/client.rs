//! A client connection over quinn: one request stream, requests answered in turn; after
//! [`Client::subscribe`], snapshots (datagrams) and events (stream) via [`Client::next_update`].
//!
//! The shell carries bytes for the I/O-free [`ClientSession`], which decides everything else
//! (ids, duplicates, event queue cap, acknowledgements, what to re-send after a reconnect).
//! When the connection is lost the client reconnects by itself and the session resumes: a
//! request whose answer was lost is answered again by the server, never carried out twice.
//! Given several addresses (gateways of one cluster, sharing one certificate), it connects to
//! the first that answers and, on a loss, reconnects to the next one that does.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::calls::{Call, CallError};
use crate::live_view::LiveView;
use crate::messages::{Request, RequestError, Response, TickEvents};
use crate::quic::{CLOSE_NORMAL, QuicError, SERVER_NAME, client_config, closed_error};
use crate::quic::{Fingerprint, describe_close};
pub use crate::session::REQUEST_TIMEOUT;
use crate::session::{CONNECT_TIMEOUT, ClientEvent, ClientSession, RECONNECT_DELAYS};

/// Largest response a client accepts (a downloaded trace is the largest).
pub const CLIENT_MAX_FRAME_BYTES: usize = 16 << 20;

/// Largest piece read from the stream at once.
const READ_CHUNK: usize = 64 * 1024;

/// What arrived for a subscribed client.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// A snapshot of `tick` completed: [`Client::live`] shows it.
    Snapshot {
        tick: u64,
    },
    Events(TickEvents),
}

/// Why [`Client::call`] yielded no answer. Both kinds show as the error they wrap, so a
/// message reads the same whether it went through this type or not.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No response: the connection failed, timed out or was refused.
    #[error(transparent)]
    Quic(#[from] QuicError),
    /// A response that is not the answer: a refusal, or one that belongs to another request.
    #[error(transparent)]
    Call(#[from] CallError),
}

impl ClientError {
    /// The server's reason, when it refused the request.
    pub fn refusal(&self) -> Option<&RequestError> {
        match self {
            Self::Call(e) => e.refusal(),
            Self::Quic(_) => None,
        }
    }
}

/// One connection's streams.
struct Link {
    connection: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

/// A connection to a server that survives reconnects (see the module docs).
pub struct Client {
    /// Where the server can be reached (one address, or the gateways of a cluster).
    addrs: Vec<SocketAddr>,
    /// The address of the current connection (an index into `addrs`).
    at: usize,
    endpoint: quinn::Endpoint,
    link: Link,
    client_name: String,
    session: ClientSession,
    started: Instant,
    /// Reconnect when the connection is lost (on by default).
    reconnect: bool,
    reconnects: u64,
    /// The caller subscribed: a reconnect subscribes again.
    wants_live: bool,
    /// Snapshot datagram bytes received (payload, not QUIC overhead).
    datagram_bytes: u64,
    /// Emulated loss of received datagrams (share, generator), for load tests.
    datagram_loss: Option<(f64, ChaCha8Rng)>,
    datagrams_dropped: u64,
    pub server: String,
    pub tick_rate_hz: u32,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("remote", &self.remote())
            .finish_non_exhaustive()
    }
}

/// A random client instance (nonzero) from the standard library's randomly keyed hasher:
/// unguessable enough to keep two runs of a client apart, with no extra dependency.
fn new_instance() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish() | 1
}

async fn open_link(endpoint: &quinn::Endpoint, addr: SocketAddr) -> Result<Link, QuicError> {
    let connect_error = |reason: String| QuicError::Connect { addr, reason };
    let connecting = endpoint
        .connect(addr, SERVER_NAME)
        .map_err(|e| connect_error(e.to_string()))?;
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| connect_error(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| connect_error(describe_close(&e)))?;
    let (send, recv) = connection
        .open_bi()
        .await
        .map_err(|e| connect_error(describe_close(&e)))?;
    Ok(Link {
        connection,
        send,
        recv,
    })
}

impl Client {
    /// Connects to `addr`, checks its certificate against `pin` and says Hello.
    pub async fn connect(
        addr: SocketAddr,
        pin: Fingerprint,
        client_name: &str,
    ) -> Result<Self, QuicError> {
        Self::connect_with(addr, client_config(pin)?, client_name).await
    }

    pub async fn connect_with(
        addr: SocketAddr,
        config: quinn::ClientConfig,
        client_name: &str,
    ) -> Result<Self, QuicError> {
        Self::connect_any_with(&[addr], config, client_name).await
    }

    /// Connects to the first of `addrs` that answers (tried in order), checking its
    /// certificate against `pin`. They are the same server to the client (the gateways of
    /// a cluster, sharing one certificate): when the connection is lost, the client
    /// reconnects to the next address that answers and resumes its session there. Fails
    /// with the last address's error when none answers.
    pub async fn connect_any(
        addrs: &[SocketAddr],
        pin: Fingerprint,
        client_name: &str,
    ) -> Result<Self, QuicError> {
        Self::connect_any_with(addrs, client_config(pin)?, client_name).await
    }

    pub async fn connect_any_with(
        addrs: &[SocketAddr],
        config: quinn::ClientConfig,
        client_name: &str,
    ) -> Result<Self, QuicError> {
        let Some(&first) = addrs.first() else {
            return Err(QuicError::Lost("no server address to connect to".into()));
        };
        let bind: SocketAddr = if addrs.iter().all(SocketAddr::is_ipv4) {
            "0.0.0.0:0".parse().expect("address")
        } else {
            "[::]:0".parse().expect("address")
        };
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| QuicError::Connect {
            addr: first,
            reason: e.to_string(),
        })?;
        endpoint.set_default_client_config(config);
        let mut last = None;
        for at in 0..addrs.len() {
            match Self::greet(endpoint.clone(), addrs, at, client_name).await {
                Ok(client) => return Ok(client),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one address was tried"))
    }

    /// Connects to `addrs[at]` and says Hello.
    async fn greet(
        endpoint: quinn::Endpoint,
        addrs: &[SocketAddr],
        at: usize,
        client_name: &str,
    ) -> Result<Self, QuicError> {
        let link = open_link(&endpoint, addrs[at]).await?;
        let session = ClientSession::new(CLIENT_MAX_FRAME_BYTES, REQUEST_TIMEOUT, new_instance());
        let mut client = Self {
            addrs: addrs.to_vec(),
            at,
            endpoint,
            link,
            client_name: client_name.to_string(),
            session,
            started: Instant::now(),
            reconnect: true,
            reconnects: 0,
            wants_live: false,
            datagram_bytes: 0,
            datagram_loss: None,
            datagrams_dropped: 0,
            server: String::new(),
            tick_rate_hz: 0,
        };
        let hello = client.session.hello(client_name);
        client.write(&hello).await?;
        loop {
            for event in client.read_events().await? {
                match event {
                    ClientEvent::Welcome { .. } => return Ok(client),
                    ClientEvent::Refused { reason } => return Err(QuicError::Refused(reason)),
                    ClientEvent::Broken { reason } => return Err(QuicError::Broken(reason)),
                    _ => {}
                }
            }
        }
    }

    /// The address of the current connection.
    pub fn remote(&self) -> SocketAddr {
        self.addrs[self.at]
    }

    /// Whether a lost connection is replaced by a new one (on by default). Off, a loss is
    /// reported to the caller at once.
    pub fn set_reconnect(&mut self, reconnect: bool) {
        self.reconnect = reconnect;
    }

    /// Connections that replaced a lost one so far.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), QuicError> {
        self.link.send.write_all(bytes).await.map_err(|e| match e {
            quinn::WriteError::ConnectionLost(e) => closed_error(&e),
            other => QuicError::Lost(other.to_string()),
        })
    }

    async fn read_events(&mut self) -> Result<Vec<ClientEvent>, QuicError> {
        let read =
            tokio::time::timeout(REQUEST_TIMEOUT, self.link.recv.read_chunk(READ_CHUNK, true))
                .await;
        self.events_from(read)
    }

    /// What a (timed) read of the stream brought: quinn hands over its own buffer, so no read
    /// buffer is allocated per call. Welcomes are noted here.
    fn events_from(
        &mut self,
        read: Result<Result<Option<quinn::Chunk>, quinn::ReadError>, tokio::time::error::Elapsed>,
    ) -> Result<Vec<ClientEvent>, QuicError> {
        let events = match read.map_err(|_| QuicError::Timeout(REQUEST_TIMEOUT))? {
            Ok(Some(chunk)) => self.session.receive(&chunk.bytes, self.now()),
            Ok(None) => return Err(self.lost("the server closed the stream")),
            Err(quinn::ReadError::ConnectionLost(e)) => return Err(closed_error(&e)),
            Err(e) => return Err(QuicError::Lost(e.to_string())),
        };
        for event in &events {
            if let ClientEvent::Welcome {
                server,
                tick_rate_hz,
            } = event
            {
                self.server = server.clone();
                self.tick_rate_hz = *tick_rate_hz;
            }
        }
        Ok(events)
    }

    fn lost(&self, fallback: &str) -> QuicError {
        match self.link.connection.close_reason() {
            Some(e) => closed_error(&e),
            None => QuicError::Lost(fallback.to_string()),
        }
    }

    /// After `error`: a lost connection is replaced (the session resumes on the new one);
    /// anything else, or a loss with reconnecting off or failing, is returned. Each attempt
    /// goes through every address, starting with the one after the lost connection's.
    async fn recover(&mut self, error: QuicError) -> Result<(), QuicError> {
        if !self.reconnect || !matches!(error, QuicError::Lost(_)) {
            return Err(error);
        }
        let mut last = error;
        for delay in RECONNECT_DELAYS.iter().copied() {
            tokio::time::sleep(delay).await;
            for step in 1..=self.addrs.len() {
                let at = (self.at + step) % self.addrs.len();
                match open_link(&self.endpoint, self.addrs[at]).await {
                    Ok(link) => {
                        self.link = link;
                        self.at = at;
                        self.reconnects += 1;
                        let now = self.now();
                        for frame in self.session.reconnected(&self.client_name, now) {
                            self.write(&frame).await?;
                        }
                        return Ok(());
                    }
                    Err(e) => last = e,
                }
            }
        }
        Err(last)
    }

    /// Sends `request` and waits for its answer (across reconnects).
    pub async fn request(&mut self, request: Request) -> Result<Response, QuicError> {
        let (id, frame) = self.session.request(request, self.now());
        if !frame.is_empty()
            && let Err(e) = self.write(&frame).await
        {
            self.recover(e).await?;
        }
        loop {
            let events = match self.read_events().await {
                Ok(events) => events,
                Err(e) => {
                    self.recover(e).await?;
                    continue;
                }
            };
            for event in events {
                match event {
                    ClientEvent::Response {
                        id: answered,
                        response,
                    } if answered == id || answered == 0 => return Ok(response),
                    ClientEvent::Send(frames) => {
                        for frame in frames {
                            if let Err(e) = self.write(&frame).await {
                                self.recover(e).await?;
                                break;
                            }
                        }
                    }
                    ClientEvent::Refused { reason } => return Err(QuicError::Refused(reason)),
                    ClientEvent::Broken { reason } => return Err(QuicError::Broken(reason)),
                    _ => {}
                }
            }
        }
    }

    /// Sends `call`'s request and waits for its answer (across reconnects), typed: a refusal
    /// or a response that does not answer it is an error.
    pub async fn call<C: Call>(&mut self, call: C) -> Result<C::Answer, ClientError> {
        let response = self.request(call.request()).await?;
        Ok(C::answer(response)?)
    }

    /// Asks for snapshots and events (the datagram size is what this path carries now).
    pub async fn subscribe(&mut self) -> Result<Response, QuicError> {
        let max = self.link.connection.max_datagram_size().unwrap_or(0);
        self.wants_live = true;
        self.request(Request::Subscribe {
            max_datagram_bytes: u32::try_from(max).unwrap_or(u32::MAX),
        })
        .await
    }

    /// Snapshot datagram bytes received so far (payload).
    pub fn datagram_bytes_received(&self) -> u64 {
        self.datagram_bytes
    }

    /// Emulates a lossy path: drops this share (0 to 1) of the snapshot datagrams that
    /// arrive, before decoding, in an order fixed by `seed`. For load tests and for checking
    /// that a client on a bad network still converges.
    pub fn emulate_datagram_loss(&mut self, share: f64, seed: u64) {
        self.datagram_loss =
            (share > 0.0).then(|| (share.min(1.0), ChaCha8Rng::seed_from_u64(seed)));
    }

    /// Datagrams dropped by [`Self::emulate_datagram_loss`] so far.
    pub fn datagrams_dropped(&self) -> u64 {
        self.datagrams_dropped
    }

    /// The reconstructed world (after [`Self::subscribe`]).
    pub fn live(&self) -> Option<&LiveView> {
        self.session.live()
    }

    /// Waits for the next completed snapshot or tick of events. Snapshots are acknowledged
    /// as the session says; after a reconnect the client subscribes again.
    pub async fn next_update(&mut self) -> Result<Update, QuicError> {
        loop {
            if let Some(events) = self.session.next_events() {
                return Ok(Update::Events(events));
            }
            if self.wants_live && !self.session.is_subscribed() {
                if let Response::Error(e) = self.subscribe().await? {
                    return Err(QuicError::Refused(format!("subscribing again failed: {e}")));
                }
                continue;
            }
            let outcome = tokio::select! {
                datagram = self.link.connection.read_datagram() => match datagram {
                    Ok(datagram) => Ok(Some(datagram)),
                    Err(e) => Err(closed_error(&e)),
                },
                read = tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    self.link.recv.read_chunk(READ_CHUNK, true),
                ) => self.events_from(read).map(|events| {
                    self.pending_refusal(events)
                }).and_then(|refusal| refusal.map_or(Ok(None), Err)),
            };
            let datagram = match outcome {
                Ok(Some(datagram)) => datagram,
                Ok(None) => continue,
                Err(e) => {
                    self.recover(e).await?;
                    continue;
                }
            };
            if let Some((share, rng)) = &mut self.datagram_loss
                && rng.random_bool(*share)
            {
                self.datagrams_dropped += 1;
                continue;
            }
            self.datagram_bytes += datagram.len() as u64;
            let outcome = self.session.datagram(&datagram);
            if let Some(ack) = outcome.ack {
                let _ = self.link.connection.send_datagram(ack.to_vec().into());
            }
            if let Some(tick) = outcome.snapshot_tick {
                return Ok(Update::Snapshot { tick });
            }
        }
    }

    /// The error among stream events that ends the live stream (events themselves are queued
    /// by the session).
    fn pending_refusal(&self, events: Vec<ClientEvent>) -> Option<QuicError> {
        events.into_iter().find_map(|event| match event {
            ClientEvent::Refused { reason } => Some(QuicError::Refused(reason)),
            ClientEvent::Broken { reason } => Some(QuicError::Broken(reason)),
            _ => None,
        })
    }

    /// Writes raw bytes on the request stream (for tests of hostile input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), QuicError> {
        self.link
            .send
            .write_all(bytes)
            .await
            .map_err(|e| QuicError::Lost(e.to_string()))
    }

    /// Reads whatever the server says next (for tests of hostile input).
    pub async fn next_events(&mut self) -> Result<Vec<ClientEvent>, QuicError> {
        self.read_events().await
    }

    /// Closes the connection politely and waits for the server to see it.
    pub async fn close(mut self) {
        let _ = self.link.send.finish();
        self.link
            .connection
            .close(CLOSE_NORMAL.into(), b"client closed the connection");
        self.endpoint.wait_idle().await;
    }
}
