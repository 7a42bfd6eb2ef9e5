//! The client's saved login: `client.toml` in the config directory (owner-only permissions):
//! the server's addresses, its pinned certificate fingerprint, the user and the session token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use astroboids_net::quic::Fingerprint;

use crate::cli::ServerArgs;

const CONFIG_FILE: &str = "client.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientConfig {
    /// One address, or several separated by commas (as `--server` takes them).
    pub(super) server: Option<String>,
    pub(super) fingerprint: Option<String>,
    pub(super) user: Option<String>,
    pub(super) token: Option<String>,
}

pub(super) struct ConfigFile {
    pub(super) path: PathBuf,
    pub(super) config: ClientConfig,
}

impl ConfigFile {
    pub(super) fn open(dir: Option<&Path>) -> Result<Self> {
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => directories::ProjectDirs::from("", "", "astroboids")
                .context(
                    "no home directory to keep the client's settings in: pass --config-dir DIR",
                )?
                .config_dir()
                .to_path_buf(),
        };
        let path = dir.join(CONFIG_FILE);
        let config = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| {
                format!("{} is damaged (delete it and log in again)", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ClientConfig::default(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(Self { path, config })
    }

    /// Writes the settings readable by the owner only (the token is a credential).
    pub(super) fn save(&self) -> Result<()> {
        let dir = self.path.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let text = toml::to_string(&self.config).expect("plain data");
        let tmp = self.path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        use std::io::Write;
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// `--server`/`--fingerprint` when given (remembered), else the saved ones.
    pub(super) fn server(&mut self, args: &ServerArgs) -> Result<(Vec<SocketAddr>, Fingerprint)> {
        if !args.server.is_empty() {
            self.config.server = Some(join_addrs(&args.server));
        }
        if let Some(fingerprint) = &args.fingerprint {
            self.config.fingerprint = Some(fingerprint.clone());
        }
        let server = self.config.server.as_deref().context(
            "which server? pass --server ADDR --fingerprint SHA256 (as `astroboids serve` prints them)",
        )?;
        let servers = parse_addrs(server).with_context(|| {
            format!(
                "{}: the saved server {server:?} is not ADDR[,ADDR...] (pass --server again)",
                self.path.display()
            )
        })?;
        let fingerprint = self
            .config
            .fingerprint
            .as_deref()
            .context("pass --fingerprint SHA256 (as `astroboids serve` prints it): the client trusts only that certificate")?
            .parse::<Fingerprint>()
            .map_err(|e| anyhow::anyhow!("--fingerprint: {e}"))?;
        Ok((servers, fingerprint))
    }
}

/// Addresses as `--server` takes them: separated by commas.
pub(super) fn join_addrs(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The addresses of `join_addrs` (at least one).
fn parse_addrs(text: &str) -> Result<Vec<SocketAddr>> {
    let addrs = text
        .split(',')
        .map(|a| a.trim().parse::<SocketAddr>())
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        bail!("no address");
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saved_server_is_one_address_as_before_or_several() {
        let before: ClientConfig =
            toml::from_str("server = \"127.0.0.1:4433\"\nfingerprint = \"ab\"\n").unwrap();
        let one: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        assert_eq!(
            parse_addrs(before.server.as_deref().unwrap()).unwrap(),
            vec![one]
        );
        assert_eq!(
            join_addrs(&[one]),
            "127.0.0.1:4433",
            "a file older clients read"
        );
        let several: Vec<SocketAddr> = vec![
            "127.0.0.1:7777".parse().unwrap(),
            "[::1]:7778".parse().unwrap(),
        ];
        assert_eq!(parse_addrs(&join_addrs(&several)).unwrap(), several);
        assert!(parse_addrs("127.0.0.1:7777,elsewhere").is_err());
    }
}
