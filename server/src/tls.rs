//! The server's TLS identity: a self-signed certificate made on first start and kept in the
//! data directory, so its fingerprint (what clients pin) stays the same across restarts.

use std::io::Write;
use std::path::{Path, PathBuf};

use astroboids_net::quic::{Fingerprint, SERVER_NAME};

/// Where the identity lives under a data directory.
pub const TLS_DIR: &str = "tls";
const CERT_FILE: &str = "cert.der";
const KEY_FILE: &str = "key.der";

/// A DER certificate and its PKCS#8 private key.
#[derive(Clone)]
pub struct ServerIdentity {
    pub cert_der: Vec<u8>,
    pub key_pkcs8_der: Vec<u8>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        write!(f, "ServerIdentity({})", self.fingerprint())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {what}")]
    File { path: PathBuf, what: String },
    #[error("cannot make a certificate: {0}")]
    Generate(String),
}

impl ServerIdentity {
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.cert_der)
    }

    /// Loads the identity kept under `data`, or makes and keeps one when there is none.
    /// Returns it and whether it was made now. A half-present or unreadable identity is an
    /// error, never silently replaced: clients have pinned the old certificate.
    pub fn load_or_create(data: &Path) -> Result<(Self, bool), IdentityError> {
        let dir = data.join(TLS_DIR);
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let read = |path: &Path| {
                    std::fs::read(path).map_err(|e| IdentityError::File {
                        path: path.to_path_buf(),
                        what: format!("cannot read it: {e}"),
                    })
                };
                let identity = Self {
                    cert_der: read(&cert_path)?,
                    key_pkcs8_der: read(&key_path)?,
                };
                // A damaged pair fails here, with the file named, rather than at the first
                // client.
                astroboids_net::quic::server_config(
                    &identity.cert_der,
                    &identity.key_pkcs8_der,
                    std::time::Duration::from_secs(30),
                )
                .map_err(|e| IdentityError::File {
                    path: dir.clone(),
                    what: format!("the certificate or key is damaged ({e}); restore it from a backup or delete both files to make a new one (clients must then pin the new fingerprint)"),
                })?;
                Ok((identity, false))
            }
            (false, false) => {
                let identity = Self::generate()?;
                std::fs::create_dir_all(&dir).map_err(|e| IdentityError::File {
                    path: dir.clone(),
                    what: e.to_string(),
                })?;
                write_private(&key_path, &identity.key_pkcs8_der)?;
                write_private(&cert_path, &identity.cert_der)?;
                Ok((identity, true))
            }
            (cert, _) => Err(IdentityError::File {
                path: if cert { key_path } else { cert_path },
                what: "is missing while its pair is present; restore it, or delete the other file to make a new identity".into(),
            }),
        }
    }

    /// A new self-signed certificate for [`SERVER_NAME`] and `localhost`.
    pub fn generate() -> Result<Self, IdentityError> {
        let certified =
            rcgen::generate_simple_self_signed(vec![SERVER_NAME.into(), "localhost".into()])
                .map_err(|e| IdentityError::Generate(e.to_string()))?;
        Ok(Self {
            cert_der: certified.cert.der().to_vec(),
            key_pkcs8_der: certified.signing_key.serialize_der(),
        })
    }
}

/// Writes `bytes` to `path` readable by the owner only, via a temporary file and a rename so
/// a crash never leaves half a key.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    let error = |e: std::io::Error| IdentityError::File {
        path: path.to_path_buf(),
        what: e.to_string(),
    };
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&tmp, path).map_err(error)
}
