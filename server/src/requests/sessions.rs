//! Accounts and sessions: registration, login (passwords hashed and verified off the tick
//! thread by [`PasswordJob`]), authentication of a connection, logout.

use std::time::Duration;

use astroboids_protocol::messages::{Request, RequestError, Response, Token};

use super::{
    Answer, Connection, WorldServer, account_error, count_request, count_response, storage_error,
};
use crate::accounts::{AccountError, AccountRules, Role, Session, hash_password, verify_password};

/// A password to hash (registration) or verify (login), away from the tick thread.
pub struct PasswordJob {
    rules: AccountRules,
    user: String,
    password: String,
    work: PasswordWork,
}

enum PasswordWork {
    Register,
    /// The stored hash (`None`: no such user; verified against a stand-in all the same).
    Login {
        stored: Option<String>,
    },
}

impl std::fmt::Debug for PasswordJob {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordJob")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl PasswordJob {
    /// Hashes or verifies (tens of milliseconds of argon2).
    pub fn run(self) -> PasswordChecked {
        let outcome = match self.work {
            PasswordWork::Register => {
                PasswordOutcome::Hashed(hash_password(&self.rules, &self.password))
            }
            PasswordWork::Login { stored } => {
                PasswordOutcome::Verified(verify_password(stored.as_deref(), &self.password))
            }
        };
        PasswordChecked {
            user: self.user,
            outcome,
        }
    }
}

/// What a [`PasswordJob`] found, for [`WorldServer::finish_password`].
pub struct PasswordChecked {
    user: String,
    outcome: PasswordOutcome,
}

enum PasswordOutcome {
    Hashed(Result<String, AccountError>),
    Verified(Result<(), AccountError>),
}

impl std::fmt::Debug for PasswordChecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChecked")
            .field("user", &self.user)
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

impl PasswordChecked {
    /// The request kind ("register", "login"), for metrics.
    pub fn kind(&self) -> &'static str {
        match self.outcome {
            PasswordOutcome::Hashed(_) => "register",
            PasswordOutcome::Verified(_) => "login",
        }
    }
}

impl WorldServer {
    /// A registration or login: checked here (rate limits, name, password rules), the
    /// password hashed or verified by the caller off the tick thread with [`PasswordJob::run`]
    /// (argon2 takes tens of milliseconds), then finished by [`WorldServer::finish_password`].
    pub fn prepare_password(
        &mut self,
        connection: &Connection,
        request: Request,
        now: u64,
    ) -> Result<PasswordJob, RequestError> {
        let kind = request.kind();
        let result = self
            .limits
            .check(connection.ip, connection.user(), Duration::from_secs(now))
            .and_then(|()| self.password_job(request));
        if let Err(e) = &result {
            count_request(kind, Some(e));
        }
        result
    }

    /// Creates the account or opens the session a [`PasswordJob`] checked the password for.
    pub fn finish_password(
        &mut self,
        connection: &mut Connection,
        checked: PasswordChecked,
        now: u64,
    ) -> Response {
        let kind = checked.kind();
        let response = self
            .finish_password_job(connection, checked, now)
            .unwrap_or_else(Response::Error);
        count_response(kind, &response);
        response
    }

    pub(super) fn password_job(&self, request: Request) -> Result<PasswordJob, RequestError> {
        let accounts = self.accounts();
        let (user, password, work) = match request {
            Request::Register { user, password } => {
                accounts
                    .check_new_account(&user, &password)
                    .map_err(account_error)?;
                (user, password, PasswordWork::Register)
            }
            Request::Login { user, password } => {
                let stored = accounts
                    .stored_password(&user, &password)
                    .map_err(account_error)?;
                (user, password, PasswordWork::Login { stored })
            }
            other => {
                return Err(RequestError::Invalid(format!(
                    "{} is not a registration or login",
                    other.kind()
                )));
            }
        };
        Ok(PasswordJob {
            rules: self.rules.accounts.clone(),
            user,
            password,
            work,
        })
    }

    pub(super) fn finish_password_job(
        &mut self,
        connection: &mut Connection,
        checked: PasswordChecked,
        now: u64,
    ) -> Answer {
        let accounts = self.accounts();
        match checked.outcome {
            PasswordOutcome::Hashed(phc) => {
                phc.and_then(|phc| accounts.create(&checked.user, phc, Role::Player, now))
                    .map_err(account_error)?;
                Ok(Response::Registered)
            }
            PasswordOutcome::Verified(verified) => {
                let (token, session) = verified
                    .and_then(|()| accounts.open_session(&checked.user, now))
                    .map_err(account_error)?;
                let expires_in_s = session.expires_unix_s.saturating_sub(now);
                connection.session = Some((token.clone(), session));
                Ok(Response::LoggedIn {
                    token,
                    expires_in_s,
                })
            }
        }
    }

    /// The connection's session if its token is still valid at `now`: checked against the
    /// store on every request, so a logout elsewhere or a kick takes effect at once.
    pub(super) fn live_session(
        &self,
        connection: &mut Connection,
        now: u64,
    ) -> Result<Session, RequestError> {
        let Some((token, _)) = &connection.session else {
            return Err(RequestError::NotAuthenticated);
        };
        match self.accounts().authenticate(token, now) {
            Ok(session) => Ok(session),
            Err(AccountError::Storage(e)) => Err(storage_error(e)),
            Err(_) => {
                connection.session = None;
                Err(RequestError::NotAuthenticated)
            }
        }
    }

    /// Binds the connection to an existing session.
    pub(super) fn authenticate(
        &mut self,
        connection: &mut Connection,
        token: Token,
        now: u64,
    ) -> Answer {
        let session = self
            .accounts()
            .authenticate(&token, now)
            .map_err(account_error)?;
        let answer = Response::Authenticated {
            user: session.user.clone(),
            admin: session.role == Role::Admin,
        };
        connection.session = Some((token, session));
        Ok(answer)
    }

    /// Revokes the connection's session.
    pub(super) fn logout(&mut self, connection: &mut Connection) -> Answer {
        let (token, _) = connection
            .session
            .take()
            .ok_or(RequestError::NotAuthenticated)?;
        self.accounts().logout(&token).map_err(account_error)?;
        Ok(Response::LoggedOut)
    }
}
