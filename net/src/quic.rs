//! The thin QUIC shell (quinn 0.11 + rustls with ring): endpoint configuration for both ends
//! and certificate pinning. [`crate::client`] is the client built on it.
//!
//! Trust model: the server makes a self-signed certificate on first start and prints its
//! SHA-256 fingerprint; a client pins that fingerprint and accepts no other certificate (there
//! is no CA to ask). TLS 1.3 only; the ALPN must be [`ALPN`].

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::messages::ALPN;

/// The name the server's certificate is made for and the client asks for (pinning, not the
/// name, is what authenticates the server).
pub const SERVER_NAME: &str = "astroboids.local";

/// Application close codes (the reason text says why).
pub const CLOSE_NORMAL: u32 = 0;
pub const CLOSE_REFUSED: u32 = 1;
/// The server is stopping, and another may carry the session on (a cluster's gateway): a
/// client treats it as a lost connection and reconnects, to its next address if it has one.
pub const CLOSE_GOING_AWAY: u32 = 3;

/// A client gives a connection up as lost after this long without hearing from the server.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(8);
/// How often a client pings a quiet connection (a few pings fit in its idle timeout).
pub const CLIENT_KEEP_ALIVE: Duration = Duration::from_secs(2);

/// Largest response a client accepts (a downloaded trace is the largest).
pub const CLIENT_MAX_FRAME_BYTES: usize = 16 << 20;

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
    // A server that vanishes (killed, its machine gone) sends no close: the client notices by
    // silence. Kept short, so that a player whose gateway died is on another within seconds;
    // the keep-alives keep a quiet but live connection open.
    config.transport_config(transport(CLIENT_IDLE_TIMEOUT, Some(CLIENT_KEEP_ALIVE)));
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

pub(crate) fn closed_error(e: &quinn::ConnectionError) -> QuicError {
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
