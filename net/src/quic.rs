//! The thin QUIC shell (quinn 0.11 + rustls with ring): endpoint configuration for both ends,
//! certificate pinning, and a request/response client. This is the only module of the crate
//! that does I/O; it moves bytes between quinn streams and the I/O-free [`crate::session`].
//!
//! Trust model: the server makes a self-signed certificate on first start and prints its
//! SHA-256 fingerprint; a client pins that fingerprint and accepts no other certificate (there
//! is no CA to ask). TLS 1.3 only; the ALPN must be [`ALPN`].

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::live_view::LiveView;
use crate::messages::{ALPN, Request, Response, TickEvents};
use crate::session::{ClientEvent, ClientSession};
use crate::snapshot::{SnapshotDecoder, SnapshotLimits, encode_ack};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The name the server's certificate is made for and the client asks for (pinning, not the
/// name, is what authenticates the server).
pub const SERVER_NAME: &str = "astroboids.local";

/// Application close codes (the reason text says why).
pub const CLOSE_NORMAL: u32 = 0;
pub const CLOSE_REFUSED: u32 = 1;

/// Largest response a client accepts (a downloaded trace is the largest).
pub const CLIENT_MAX_FRAME_BYTES: usize = 16 << 20;

/// Largest piece read from the stream at once.
const READ_CHUNK: usize = 64 * 1024;

/// Ticks of events a client keeps while the caller is busy elsewhere (waiting for an answer,
/// or not reading updates at all).
pub const MAX_PENDING_EVENTS: usize = 256;

/// How long a client waits for an answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A certificate's SHA-256, what clients pin.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(cert_der: &[u8]) -> Self {
        Self(Sha256::digest(cert_der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = String;

    /// 64 hex digits; `:` separators and a `sha256:` prefix are accepted.
    fn from_str(s: &str) -> Result<Self, String> {
        let hex: String = s
            .trim()
            .trim_start_matches("sha256:")
            .chars()
            .filter(|c| *c != ':')
            .collect();
        let bad = || format!("{s:?} is not a SHA-256 fingerprint (64 hex digits)");
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

/// Why a QUIC endpoint could not be configured or a client could not go on.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("cannot reach the server at {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("the server refused the connection: {0}")]
    Refused(String),
    #[error("the connection was lost: {0}")]
    Lost(String),
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    #[error("the server sent something unreadable: {0}")]
    Broken(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport(idle_timeout: Duration, keep_alive: Option<Duration>) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    // One request stream per connection; the peer may not open more.
    transport.max_concurrent_bidi_streams(1u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.max_idle_timeout(Some(
        idle_timeout
            .try_into()
            .expect("idle timeouts are far below QUIC's limit"),
    ));
    transport.keep_alive_interval(keep_alive);
    Arc::new(transport)
}

/// The server end: TLS 1.3 with the given self-signed certificate, ALPN [`ALPN`] only.
pub fn server_config(
    cert_der: &[u8],
    key_pkcs8_der: &[u8],
    idle_timeout: Duration,
) -> Result<quinn::ServerConfig, QuicError> {
    let tls_error = |e: rustls::Error| QuicError::Tls(e.to_string());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert_der.to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pkcs8_der.to_vec())),
        )
        .map_err(tls_error)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| QuicError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport(idle_timeout, None));
    Ok(config)
}

/// The client end: accepts only the certificate whose SHA-256 is `pin`; speaks `alpn`
/// (always [`ALPN`] outside tests of the refusal).
pub fn client_config_with_alpn(
    pin: Fingerprint,
    alpn: &[u8],
) -> Result<quinn::ClientConfig, QuicError> {
    let provider = provider();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| QuicError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCertificate { pin, provider }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| QuicError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport(
        Duration::from_secs(30),
        Some(Duration::from_secs(5)),
    ));
    Ok(config)
}

pub fn client_config(pin: Fingerprint) -> Result<quinn::ClientConfig, QuicError> {
    client_config_with_alpn(pin, ALPN)
}

/// Trusts exactly one certificate, by its SHA-256; the handshake signature is still checked
/// against that certificate's key, so the peer must hold the private key.
#[derive(Debug)]
struct PinnedCertificate {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of(end_entity);
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate has fingerprint {got}, not the pinned {}",
                self.pin
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Describes how a connection ended, for people.
pub fn describe_close(error: &quinn::ConnectionError) -> String {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            String::from_utf8_lossy(&close.reason).into_owned()
        }
        other => other.to_string(),
    }
}

/// What arrived for a subscribed client.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// A snapshot of `tick` completed: [`Client::live`] shows it.
    Snapshot {
        tick: u64,
    },
    Events(TickEvents),
}

/// A connection to a server: one request stream, requests answered in turn; after
/// [`Client::subscribe`], snapshots (datagrams) and events (stream) via
/// [`Client::next_update`].
pub struct Client {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    session: ClientSession,
    started: Instant,
    /// Events that arrived while waiting for an answer.
    pending_events: std::collections::VecDeque<TickEvents>,
    snapshots: Option<(SnapshotDecoder, LiveView)>,
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
            .field("remote", &self.connection.remote_address())
            .finish_non_exhaustive()
    }
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
        let connect_error = |reason: String| QuicError::Connect { addr, reason };
        let bind: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("address")
        } else {
            "[::]:0".parse().expect("address")
        };
        let mut endpoint =
            quinn::Endpoint::client(bind).map_err(|e| connect_error(e.to_string()))?;
        endpoint.set_default_client_config(config);
        let connection = endpoint
            .connect(addr, SERVER_NAME)
            .map_err(|e| connect_error(e.to_string()))?;
        let connection = tokio::time::timeout(Duration::from_secs(10), connection)
            .await
            .map_err(|_| connect_error("no answer within 10 s".into()))?
            .map_err(|e| connect_error(describe_close(&e)))?;
        let (mut send, recv) = connection
            .open_bi()
            .await
            .map_err(|e| connect_error(describe_close(&e)))?;
        let session = ClientSession::new(CLIENT_MAX_FRAME_BYTES, REQUEST_TIMEOUT);
        send.write_all(&session.hello(client_name))
            .await
            .map_err(|e| QuicError::Lost(e.to_string()))?;
        let mut client = Self {
            endpoint,
            connection,
            send,
            recv,
            session,
            started: Instant::now(),
            pending_events: std::collections::VecDeque::new(),
            snapshots: None,
            datagram_bytes: 0,
            datagram_loss: None,
            datagrams_dropped: 0,
            server: String::new(),
            tick_rate_hz: 0,
        };
        loop {
            for event in client.read_events().await? {
                match event {
                    ClientEvent::Welcome {
                        server,
                        tick_rate_hz,
                    } => {
                        client.server = server;
                        client.tick_rate_hz = tick_rate_hz;
                        return Ok(client);
                    }
                    ClientEvent::Refused { reason } => return Err(QuicError::Refused(reason)),
                    ClientEvent::Broken { reason } => return Err(QuicError::Broken(reason)),
                    ClientEvent::Response { .. } | ClientEvent::Events(_) => {}
                }
            }
        }
    }

    async fn read_events(&mut self) -> Result<Vec<ClientEvent>, QuicError> {
        let read =
            tokio::time::timeout(REQUEST_TIMEOUT, self.recv.read_chunk(READ_CHUNK, true)).await;
        self.events_from(read)
    }

    /// What a (timed) read of the stream brought: quinn hands over its own buffer, so no read
    /// buffer is allocated per call.
    fn events_from(
        &mut self,
        read: Result<Result<Option<quinn::Chunk>, quinn::ReadError>, tokio::time::error::Elapsed>,
    ) -> Result<Vec<ClientEvent>, QuicError> {
        match read.map_err(|_| QuicError::Timeout(REQUEST_TIMEOUT))? {
            Ok(Some(chunk)) => Ok(self.session.receive(&chunk.bytes)),
            Ok(None) => Err(self.lost("the server closed the stream")),
            Err(quinn::ReadError::ConnectionLost(e)) => Err(closed_error(&e)),
            Err(e) => Err(QuicError::Lost(e.to_string())),
        }
    }

    /// Keeps a tick's events for [`Self::next_update`]; past [`MAX_PENDING_EVENTS`] the oldest
    /// go, counted in the next one's `dropped_before`.
    fn queue_events(&mut self, events: TickEvents) {
        if self.pending_events.len() >= MAX_PENDING_EVENTS
            && let Some(oldest) = self.pending_events.pop_front()
            && let Some(next) = self.pending_events.front_mut()
        {
            next.dropped_before = next
                .dropped_before
                .saturating_add(oldest.dropped_before)
                .saturating_add(1);
        }
        self.pending_events.push_back(events);
    }

    fn lost(&self, fallback: &str) -> QuicError {
        match self.connection.close_reason() {
            Some(e) => closed_error(&e),
            None => QuicError::Lost(fallback.to_string()),
        }
    }

    /// Sends `request` and waits for its answer.
    pub async fn request(&mut self, request: Request) -> Result<Response, QuicError> {
        let (id, frame) = self.session.request(request, self.started.elapsed());
        if let Err(e) = self.send.write_all(&frame).await {
            return Err(match e {
                quinn::WriteError::ConnectionLost(e) => closed_error(&e),
                other => QuicError::Lost(other.to_string()),
            });
        }
        loop {
            for event in self.read_events().await? {
                match event {
                    ClientEvent::Response {
                        id: answered,
                        response,
                    } if answered == id || answered == 0 => return Ok(response),
                    ClientEvent::Refused { reason } => return Err(QuicError::Refused(reason)),
                    ClientEvent::Broken { reason } => return Err(QuicError::Broken(reason)),
                    ClientEvent::Events(events) => self.queue_events(events),
                    _ => {}
                }
            }
        }
    }

    /// Asks for snapshots and events (the datagram size is what this path carries now).
    pub async fn subscribe(&mut self) -> Result<Response, QuicError> {
        let max = self.connection.max_datagram_size().unwrap_or(0);
        let response = self
            .request(Request::Subscribe {
                max_datagram_bytes: u32::try_from(max).unwrap_or(u32::MAX),
            })
            .await?;
        if let Response::Subscribed { sector_size, .. } = &response {
            let limits = SnapshotLimits {
                max_datagram_bytes: max,
                ..SnapshotLimits::default()
            };
            self.snapshots = Some((SnapshotDecoder::new(limits), LiveView::new(*sector_size)));
        }
        Ok(response)
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
        self.snapshots.as_ref().map(|(_, live)| live)
    }

    /// Waits for the next completed snapshot or tick of events. Snapshots are acknowledged
    /// as they complete; datagrams that cannot be used are dropped (a newer one follows).
    pub async fn next_update(&mut self) -> Result<Update, QuicError> {
        loop {
            if let Some(events) = self.pending_events.pop_front() {
                return Ok(Update::Events(events));
            }
            tokio::select! {
                datagram = self.connection.read_datagram() => {
                    let datagram = datagram.map_err(|e| closed_error(&e))?;
                    if let Some((share, rng)) = &mut self.datagram_loss
                        && rng.random_bool(*share)
                    {
                        self.datagrams_dropped += 1;
                        continue;
                    }
                    self.datagram_bytes += datagram.len() as u64;
                    let Some((decoder, live)) = &mut self.snapshots else {
                        continue;
                    };
                    if let Ok(Some(seq)) = decoder.receive(&datagram) {
                        let _ = self.connection.send_datagram(encode_ack(seq).to_vec().into());
                        if let Some((tick, view)) = decoder.view() {
                            live.update(tick, view);
                            return Ok(Update::Snapshot { tick });
                        }
                    }
                }
                read = tokio::time::timeout(REQUEST_TIMEOUT, self.recv.read_chunk(READ_CHUNK, true)) => {
                    for event in self.events_from(read)? {
                        match event {
                            ClientEvent::Events(e) => self.queue_events(e),
                            ClientEvent::Refused { reason } => return Err(QuicError::Refused(reason)),
                            ClientEvent::Broken { reason } => return Err(QuicError::Broken(reason)),
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    /// Writes raw bytes on the request stream (for tests of hostile input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), QuicError> {
        self.send
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
        let _ = self.send.finish();
        self.connection
            .close(CLOSE_NORMAL.into(), b"client closed the connection");
        self.endpoint.wait_idle().await;
    }
}

fn closed_error(e: &quinn::ConnectionError) -> QuicError {
    match e {
        quinn::ConnectionError::ApplicationClosed(close)
            if close.error_code == CLOSE_REFUSED.into() =>
        {
            QuicError::Refused(String::from_utf8_lossy(&close.reason).into_owned())
        }
        other => QuicError::Lost(describe_close(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip_through_text() {
        let f = Fingerprint::of(b"certificate");
        let text = f.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), f);
        let with_colons: String = text
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(
            format!("sha256:{with_colons}")
                .parse::<Fingerprint>()
                .unwrap(),
            f
        );
        let err = "abc".parse::<Fingerprint>().unwrap_err();
        assert!(err.contains("64 hex digits"), "{err}");
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    }
}
