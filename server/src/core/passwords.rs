//! Registrations and logins: checked here, hashed or verified by a worker
//! ([`Effect::HashPassword`]), finished when the worker reports back; bounded in all and per
//! address. A connection's requests sent meanwhile wait and keep their order.

use std::net::IpAddr;
use std::time::Duration;

use astroboids_protocol::messages::{Request, RequestError, Response};

use super::{ConnId, Effect, ServerCore};
use crate::requests::{PasswordChecked, count_request};

impl ServerCore {
    /// A registration or login: checked, then handed to a password worker (`None`), or
    /// refused (the answer).
    pub(super) fn password_request(
        &mut self,
        conn: ConnId,
        id: u64,
        request: Request,
        unix_now: u64,
        effects: &mut Vec<Effect>,
    ) -> Option<Response> {
        let kind = request.kind();
        let state = self
            .connections
            .get_mut(&conn)
            .expect("checked by the caller");
        let ip = state.connection.ip();
        let from_ip = self.password_jobs.get(&ip).copied().unwrap_or(0);
        let total: usize = self.password_jobs.values().sum();
        let busy = |why: String| {
            let busy = RequestError::Unavailable(why);
            count_request(kind, Some(&busy));
            Some(Response::Error(busy))
        };
        match self
            .server
            .prepare_password(&state.connection, request, unix_now)
        {
            Err(e) => Some(Response::Error(e)),
            Ok(_) if from_ip >= self.rules.password_jobs_per_ip => busy(format!(
                "{from_ip} logins from your address are being checked; try again in a moment"
            )),
            Ok(_) if total >= self.rules.password_queue => {
                busy("the server is busy checking passwords; try again in a moment".into())
            }
            Ok(job) => {
                *self.password_jobs.entry(ip).or_default() += 1;
                state.password_pending = true;
                effects.push(Effect::HashPassword { conn, ip, id, job });
                None
            }
        }
    }

    pub(super) fn password_checked(
        &mut self,
        conn: ConnId,
        ip: IpAddr,
        id: u64,
        checked: PasswordChecked,
        now: Duration,
        effects: &mut Vec<Effect>,
    ) {
        if let Some(jobs) = self.password_jobs.get_mut(&ip) {
            *jobs -= 1;
            if *jobs == 0 {
                self.password_jobs.remove(&ip);
            }
        }
        let unix_now = self.unix_s(now);
        let Some(state) = self.connections.get_mut(&conn) else {
            // Nobody is waiting for the answer; counted all the same.
            let gone = RequestError::Unavailable("the connection closed".into());
            count_request(checked.kind(), Some(&gone));
            return;
        };
        let response = self
            .server
            .finish_password(&mut state.connection, checked, unix_now);
        state.password_pending = false;
        // Account and session writes: held until durable.
        self.answer(conn, id, response, None, true, now, effects);
        // The requests sent meanwhile, in order, until one is another password job.
        loop {
            let next = match self.connections.get_mut(&conn) {
                Some(state) if !state.password_pending => state.waiting.pop_front(),
                _ => None,
            };
            let Some((instance, id, request)) = next else {
                return;
            };
            self.request(conn, instance, id, request, now, effects);
        }
    }
}
