//! Connecting to a server (the first of its addresses that answers), logging in, the calls
//! the commands share, and failed calls as the player reads them.

use anyhow::{Context, Result};

use astroboids_net::calls::{self, Call, CallError};
use astroboids_net::client::{Client, ClientError};
use astroboids_net::messages::{RequestError, Token};

use crate::cli::{CredentialsArgs, ServerArgs};

use super::config::ConfigFile;

const CLIENT_NAME: &str = concat!("astroboids-client ", env!("CARGO_PKG_VERSION"));

/// Carries out `request` on `client`, its failure as [`explain`] puts it.
pub(super) async fn call<C: Call>(client: &mut Client, request: C) -> Result<C::Answer> {
    client.call(request).await.map_err(explain)
}

/// A failed call as the player reads it: a refused session becomes what to do about it; a
/// connection failure stays a `QuicError`, which `sync` looks for to reconnect.
fn explain(error: ClientError) -> anyhow::Error {
    match error {
        ClientError::Call(CallError::Refused(RequestError::NotAuthenticated)) => anyhow::anyhow!(
            "the server does not know this session (expired, revoked or never made): run \
             `astroboids client login --user NAME`"
        ),
        ClientError::Quic(e) => e.into(),
        ClientError::Call(e) => e.into(),
    }
}

async fn connect(config: &mut ConfigFile, args: &ServerArgs) -> Result<Client> {
    let (servers, fingerprint) = config.server(args)?;
    Ok(Client::connect_any(&servers, fingerprint, CLIENT_NAME).await?)
}

pub(super) async fn connect_with_password(
    config: &mut ConfigFile,
    credentials: &CredentialsArgs,
) -> Result<(Client, String)> {
    let password = match &credentials.password {
        Some(p) => p.clone(),
        None => rpassword::prompt_password(format!("password for {}: ", credentials.user))
            .context("cannot read the password (set ASTROBOIDS_PASSWORD or pass --password)")?,
    };
    let client = connect(config, &credentials.server).await?;
    Ok((client, password))
}

pub(super) async fn login(
    client: &mut Client,
    config: &mut ConfigFile,
    user: &str,
    password: String,
) -> Result<()> {
    let calls::LoggedIn {
        token,
        expires_in_s,
    } = call(
        client,
        calls::Login {
            user: user.to_string(),
            password,
        },
    )
    .await?;
    config.config.user = Some(user.to_string());
    config.config.token = Some(token.0);
    config.save()?;
    println!(
        "logged in as {user} on {} (session valid {} h; token kept in {})",
        client.server,
        expires_in_s / 3600,
        config.path.display()
    );
    Ok(())
}

/// A connection authenticated with the saved token.
pub(super) async fn session(config: &mut ConfigFile) -> Result<Client> {
    let token = config
        .config
        .token
        .clone()
        .context("not logged in: run `astroboids client login --user NAME` first")?;
    let mut client = connect(config, &ServerArgs::default()).await?;
    call(
        &mut client,
        calls::Authenticate {
            token: Token(token),
        },
    )
    .await?;
    Ok(client)
}

pub(super) async fn upload(client: &mut Client, name: &str, wasm: Vec<u8>) -> Result<u32> {
    let bytes = wasm.len();
    let upload = calls::UploadScript {
        name: name.to_string(),
        wasm,
    };
    let calls::Uploaded { version, hash, .. } = call(client, upload).await?;
    println!("uploaded {name} v{version} ({bytes} bytes, {hash})");
    Ok(version)
}

pub(super) async fn assign(client: &mut Client, ship: u64, script: &str) -> Result<()> {
    let name = script.to_string();
    let calls::Assigned { version, .. } = call(client, calls::AssignScript { ship, name }).await?;
    println!("ship {ship} now flies {script} v{version}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use astroboids_net::quic::QuicError;

    use super::*;

    #[test]
    fn a_refused_session_tells_the_player_to_log_in_again() {
        let refused = CallError::Refused(RequestError::NotAuthenticated);
        let message = explain(ClientError::Call(refused)).to_string();
        assert!(message.contains("does not know this session"), "{message}");
        assert!(message.contains("astroboids client login"), "{message}");
    }

    #[test]
    fn other_refusals_show_the_servers_reason_alone() {
        let reason = RequestError::Forbidden("admins only".into());
        let error = explain(ClientError::Call(CallError::Refused(reason)));
        assert_eq!(error.to_string(), "not allowed: admins only");
        assert!(error.downcast_ref::<QuicError>().is_none());
    }

    #[test]
    fn a_connection_failure_stays_one_so_sync_reconnects() {
        let lost = QuicError::Lost("the server closed the stream".into());
        let message = lost.to_string();
        let error = explain(ClientError::Quic(lost));
        assert!(error.downcast_ref::<QuicError>().is_some(), "{error}");
        assert_eq!(error.to_string(), message);
    }

    #[test]
    fn a_foreign_answer_names_the_request() {
        let unexpected = CallError::Unexpected {
            request: "ship_status",
            answer: "Scripts".into(),
        };
        let message = explain(ClientError::Call(unexpected)).to_string();
        assert!(
            message.contains("ship_status") && message.contains("Scripts"),
            "{message}"
        );
    }
}
