//! Admin requests: spawning for anyone past the cap, removing ships, kicking players,
//! per-account ship limits.

use astroboids_protocol::messages::{RequestError, Response};
use astroboids_sim::inputs::WorldInput;

use super::{Answer, WorldServer, account_error};
use crate::accounts::{Role, Session};

impl WorldServer {
    /// Carries out an admin request (`None`: not an admin request).
    pub(super) fn answer_admin(
        &mut self,
        session: &Session,
        request: &astroboids_protocol::messages::Request,
    ) -> Option<Answer> {
        use astroboids_protocol::messages::Request;
        let answer = match request {
            Request::AdminSetShipLimit { user, max_ships } => {
                require_admin(session).and_then(|()| {
                    self.accounts()
                        .set_ship_limit(user, *max_ships)
                        .map_err(account_error)?;
                    Ok(Response::ShipLimitSet {
                        max_ships: max_ships.unwrap_or(self.rules.max_ships_per_account as u32),
                        user: user.clone(),
                    })
                })
            }
            Request::AdminSpawn { owner } => require_admin(session).and_then(|()| {
                self.accounts().role(owner).map_err(account_error)?;
                self.spawn_for(owner, None)
            }),
            Request::AdminDespawn { ship } => require_admin(session).and_then(|()| {
                self.submit(WorldInput::Scrap { ship: *ship })?;
                Ok(Response::Despawned { ship: *ship })
            }),
            Request::AdminKick { user } => require_admin(session).and_then(|()| {
                self.accounts().revoke_all(user).map_err(account_error)?;
                self.kicked.push(user.clone());
                Ok(Response::Kicked {
                    user: user.clone(),
                    connections: 0,
                })
            }),
            _ => return None,
        };
        Some(answer)
    }
}

fn require_admin(session: &Session) -> Result<(), RequestError> {
    if session.role == Role::Admin {
        Ok(())
    } else {
        Err(RequestError::Forbidden(
            "only an admin may do that (astroboids admin set-role)".into(),
        ))
    }
}
