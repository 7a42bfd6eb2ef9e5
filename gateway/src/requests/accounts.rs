//! Accounts and sessions in the store: registration and login (argon2 on blocking threads,
//! a few at once), binding a connection to a session, logout, and the admin's account tools.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine as _;

use astroboids_pgstore::{Role, Session, StoreError};
use astroboids_protocol::messages::{RequestError, Response, Token};
use astroboids_server::accounts::{AccountError, hash_password, verify_password};

use super::{ConnState, Gateway, store_error, token_hash};
use crate::unix_now_s;

type Answer = Result<Response, RequestError>;

fn account_error(e: AccountError) -> RequestError {
    match e {
        AccountError::WeakPassword(_) => RequestError::Invalid(e.to_string()),
        AccountError::BadCredentials | AccountError::NameTaken(_) => {
            RequestError::Rejected(e.to_string())
        }
        other => RequestError::Unavailable(other.to_string()),
    }
}

impl Gateway {
    /// Runs argon2 work on a blocking thread, a few at once.
    async fn password_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RequestError> {
        let _slot = self
            .password_slots
            .acquire()
            .await
            .map_err(|_| RequestError::Unavailable("the gateway is stopping".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| RequestError::Unavailable(format!("a password worker failed: {e}")))
    }

    pub(super) async fn register(&self, user: &str, password: String) -> Answer {
        // Refused before the hashing when it cannot succeed.
        if self
            .store
            .account(user)
            .await
            .map_err(store_error)?
            .is_some()
        {
            return Err(RequestError::Rejected(
                StoreError::NameTaken(user.to_owned()).to_string(),
            ));
        }
        let rules = self.rules.accounts.clone();
        let phc = self
            .password_work(move || hash_password(&rules, &password))
            .await?
            .map_err(account_error)?;
        self.store
            .create_account(user, &phc, Role::Player, unix_now_s())
            .await
            .map_err(store_error)?;
        Ok(Response::Registered)
    }

    pub(super) async fn login(
        &self,
        state: &mut ConnState,
        user: &str,
        password: String,
    ) -> Answer {
        if password.len() > self.rules.accounts.max_password_bytes {
            return Err(account_error(AccountError::BadCredentials));
        }
        let stored = match self.store.account(user).await {
            Ok(account) => account.map(|a| a.password_phc),
            // A malformed name is no user: refused the same way, after the same work.
            Err(StoreError::InvalidName { .. }) => None,
            Err(e) => return Err(store_error(e)),
        };
        self.password_work(move || verify_password(stored.as_deref(), &password))
            .await?
            .map_err(account_error)?;
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let token = Token(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
        let now = unix_now_s();
        let expires = now.saturating_add(self.rules.accounts.session_lifetime_s);
        self.store
            .open_session(&token_hash(&token), user, now, expires)
            .await
            .map_err(|e| match e {
                StoreError::UnknownUser(_) => account_error(AccountError::BadCredentials),
                other => store_error(other),
            })?;
        self.bind_user(state, token.clone(), user);
        Ok(Response::LoggedIn {
            token,
            expires_in_s: expires - now,
        })
    }

    pub(super) async fn authenticate(&self, state: &mut ConnState, token: Token) -> Answer {
        let session = self
            .store
            .resolve_session(&token_hash(&token), unix_now_s())
            .await
            .map_err(|e| match e {
                StoreError::UnknownToken | StoreError::SessionExpired => {
                    RequestError::Rejected(e.to_string())
                }
                other => store_error(other),
            })?;
        self.bind_user(state, token, &session.user);
        Ok(Response::Authenticated {
            user: session.user,
            admin: session.role == Role::Admin,
        })
    }

    pub(super) async fn logout(&self, state: &mut ConnState) -> Answer {
        let Some((_, hash)) = state.session else {
            return Err(RequestError::NotAuthenticated);
        };
        self.store
            .revoke_session(&hash)
            .await
            .map_err(store_error)?;
        self.unbind_user(state);
        Ok(Response::LoggedOut)
    }

    /// The connection's session if its token is still live: asked of the store on every
    /// request, so a logout elsewhere or a kick takes effect at once on every gateway.
    pub(super) async fn live_session(
        &self,
        state: &mut ConnState,
    ) -> Result<Session, RequestError> {
        let Some((_, hash)) = state.session else {
            return Err(RequestError::NotAuthenticated);
        };
        match self.store.resolve_session(&hash, unix_now_s()).await {
            Ok(session) => Ok(session),
            Err(StoreError::UnknownToken | StoreError::SessionExpired) => {
                self.unbind_user(state);
                Err(RequestError::NotAuthenticated)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    /// Revokes every session of `user` and closes their connections on every gateway (this
    /// one directly, the others through the bus); counts this gateway's.
    pub(super) async fn kick(&self, user: &str) -> Answer {
        if self
            .store
            .account(user)
            .await
            .map_err(store_error)?
            .is_none()
        {
            return Err(RequestError::Rejected(format!("no user {user:?}")));
        }
        self.store
            .revoke_sessions_of(user)
            .await
            .map_err(store_error)?;
        let reason = "an admin closed your session; log in again";
        let connections = self.close_user(user, reason);
        if let Err(e) = self
            .bus
            .publish_live(crate::KICK_SUBJECT, user.as_bytes().to_vec())
            .await
        {
            tracing::warn!(user, error = %e, "telling the other gateways of a kick failed");
        }
        Ok(Response::Kicked {
            user: user.to_owned(),
            connections,
        })
    }

    pub(super) async fn set_ship_limit(&self, user: &str, max_ships: Option<u32>) -> Answer {
        self.store
            .set_ship_limit(user, max_ships)
            .await
            .map_err(store_error)?;
        Ok(Response::ShipLimitSet {
            user: user.to_owned(),
            max_ships: max_ships.unwrap_or(self.rules.max_ships_per_account),
        })
    }
}
