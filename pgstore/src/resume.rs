//! Exactly-once request answers across reconnects and gateways: the database twin of
//! `protocol::resume::ResumeCache`, keyed by (session token hash, client instance, request id).
//!
//! A gateway calls [`PgStore::begin_request`] before carrying out a request of an
//! authenticated client instance. The first `begin` of a key inserts an `in_flight` row
//! (`INSERT ... ON CONFLICT DO NOTHING`) and gets [`Begin::New`] with a [`Claim`]; any other
//! `begin` of that key, from any gateway and however close in time, finds the row: while it is
//! in flight it notes itself as the one waiting ([`Begin::InFlight`]), once answered it gets
//! the stored bytes ([`Begin::Answered`]). The claimant stores the answer with
//! [`PgStore::finish_request`], which tells it who asked last (the answer goes there; another
//! gateway's waiting connection gets it from its next `begin`, polling). A row lasts
//! `Limits::resume_keep_s` from its `begin`, and again from its answer; an expired row is
//! replaced by the next `begin` (so a claim abandoned by a crashed gateway frees its key once
//! it expires: claims last `Limits::claim_ttl_s`, answers `Limits::resume_keep_s`) and
//! removed by [`PgStore::sweep_requests`]. At most
//! `Limits::answers_per_instance` answers are kept per (session, instance), newest kept. Rows
//! go with their session (logout, revocation, expiry sweep).

use crate::PgStore;
use crate::accounts::TokenHash;
use crate::checks::{self, bits, later, to_i64};
use crate::error::{Doing, Result, StoreError, Violation, violated};

/// Which client instance of which account session a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResumeKey {
    pub token: TokenHash,
    /// The client's instance id (random, chosen by the client).
    pub instance: u64,
}

/// The right to store one request's answer, from [`Begin::New`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim(i64);

/// What to do with a request, from [`PgStore::begin_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Never seen (or forgotten): carry it out, then [`PgStore::finish_request`].
    New(Claim),
    /// Being carried out (here or by another gateway): its answer will come; ask again.
    InFlight,
    /// Carried out before: send these answer bytes again, do nothing else.
    Answered(Vec<u8>),
}

/// What [`PgStore::finish_request`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Stored; `waiting` asked last and is where the answer goes.
    Stored { waiting: String },
    /// The claim was gone (expired and swept or replaced, or the session ended): nothing was
    /// stored, and a re-sent request would be carried out again.
    Lost,
}

/// Each statement is its own transaction (READ COMMITTED): an insert that conflicts with
/// another gateway's uncommitted insert waits for it, and every later statement sees it.
const INSERT_CLAIM: &str = "INSERT INTO resume_answers
     (token_sha256, instance, request_id, status, waiting, begun_unix_s, expires_unix_s)
     VALUES ($1, $2, $3, 'in_flight', $4, $5, $6)
     ON CONFLICT (token_sha256, instance, request_id) DO NOTHING
     RETURNING claim";
const WAIT_FOR_CLAIM: &str = "UPDATE resume_answers SET waiting = $4
     WHERE token_sha256 = $1 AND instance = $2 AND request_id = $3
       AND status = 'in_flight' AND expires_unix_s > $5";
const READ_ANSWER: &str = "SELECT answer FROM resume_answers
     WHERE token_sha256 = $1 AND instance = $2 AND request_id = $3
       AND status = 'answered' AND expires_unix_s > $4";
const DROP_EXPIRED: &str = "DELETE FROM resume_answers
     WHERE token_sha256 = $1 AND instance = $2 AND request_id = $3 AND expires_unix_s <= $4";
const STORE_ANSWER: &str = "UPDATE resume_answers
     SET status = 'answered', answer = $5, answered_order = nextval('resume_order'),
         expires_unix_s = $6
     WHERE token_sha256 = $1 AND instance = $2 AND request_id = $3
       AND claim = $4 AND status = 'in_flight'
     RETURNING waiting";
/// Removes the instance's answers older than its newest `$3`.
const PRUNE_ANSWERS: &str = "DELETE FROM resume_answers
     WHERE token_sha256 = $1 AND instance = $2 AND status = 'answered'
       AND answered_order <= (
           SELECT answered_order FROM resume_answers
           WHERE token_sha256 = $1 AND instance = $2 AND status = 'answered'
           ORDER BY answered_order DESC OFFSET $3 LIMIT 1)";

/// Rounds of insert / wait / read before giving up: a key changes state at most twice
/// (expired row removed, new claim) between two of our statements only under an extreme race.
const BEGIN_ATTEMPTS: usize = 4;

impl PgStore {
    /// Request `request_id` of `key` arrived at `now_unix_s`, from `waiting` (the gateway's
    /// name for the connection that will want the answer, 1 to `Limits::max_waiting_bytes`).
    /// Of any number of gateways beginning one key at once, exactly one gets [`Begin::New`].
    pub async fn begin_request(
        &self,
        key: &ResumeKey,
        request_id: u64,
        waiting: &str,
        now_unix_s: u64,
    ) -> Result<Begin> {
        self.check_waiting(waiting)?;
        let now = to_i64("time", now_unix_s)?;
        let expires = later(now_unix_s, self.limits.claim_ttl_s) as i64;
        let (token, instance, id) = (key.token.0.as_slice(), bits(key.instance), bits(request_id));
        let client = self.client("looking up a request").await?;
        for _ in 0..BEGIN_ATTEMPTS {
            let insert = client
                .prepare_cached(INSERT_CLAIM)
                .await
                .doing("claiming a request")?;
            let inserted = client
                .query_opt(&insert, &[&token, &instance, &id, &waiting, &now, &expires])
                .await
                .doing("claiming a request");
            match inserted {
                Ok(Some(row)) => return Ok(Begin::New(Claim(row.get(0)))),
                Ok(None) => {}
                Err(e) if matches!(violated(&e), Some((Violation::ForeignKey, _))) => {
                    return Err(StoreError::UnknownSession);
                }
                Err(e) => return Err(e),
            }
            let wait = client
                .prepare_cached(WAIT_FOR_CLAIM)
                .await
                .doing("waiting for a request's answer")?;
            let waits = client
                .execute(&wait, &[&token, &instance, &id, &waiting, &now])
                .await
                .doing("waiting for a request's answer")?;
            if waits > 0 {
                return Ok(Begin::InFlight);
            }
            let read = client
                .prepare_cached(READ_ANSWER)
                .await
                .doing("reading a request's answer")?;
            if let Some(row) = client
                .query_opt(&read, &[&token, &instance, &id, &now])
                .await
                .doing("reading a request's answer")?
            {
                return Ok(Begin::Answered(row.get(0)));
            }
            // Expired (or swept meanwhile): make room for a new claim and try again.
            client
                .execute(DROP_EXPIRED, &[&token, &instance, &id, &now])
                .await
                .doing("dropping an expired answer")?;
        }
        Err(StoreError::Damaged(format!(
            "request {request_id} of client instance {} kept changing state",
            key.instance
        )))
    }

    /// Stores the answer of a request this gateway claimed; keeps the instance's newest
    /// `Limits::answers_per_instance` answers.
    pub async fn finish_request(
        &self,
        key: &ResumeKey,
        request_id: u64,
        claim: Claim,
        answer: &[u8],
        now_unix_s: u64,
    ) -> Result<Finish> {
        checks::size("an answer", answer.len(), self.limits.max_answer_bytes)?;
        to_i64("time", now_unix_s)?;
        let expires = later(now_unix_s, self.limits.resume_keep_s) as i64;
        let (token, instance, id) = (key.token.0.as_slice(), bits(key.instance), bits(request_id));
        let keep = self.limits.answers_per_instance as i64;
        let mut client = self.client("storing an answer").await?;
        let tx = client.transaction().await.doing("storing an answer")?;
        let store = tx
            .prepare_cached(STORE_ANSWER)
            .await
            .doing("storing an answer")?;
        let Some(row) = tx
            .query_opt(
                &store,
                &[&token, &instance, &id, &claim.0, &answer, &expires],
            )
            .await
            .doing("storing an answer")?
        else {
            return Ok(Finish::Lost);
        };
        let waiting: String = row.get(0);
        let prune = tx
            .prepare_cached(PRUNE_ANSWERS)
            .await
            .doing("pruning old answers")?;
        tx.execute(&prune, &[&token, &instance, &keep])
            .await
            .doing("pruning old answers")?;
        tx.commit().await.doing("storing an answer")?;
        Ok(Finish::Stored { waiting })
    }

    /// Removes answers and claims expired at `now_unix_s`, at most `Limits::max_rows`; returns
    /// how many (call again while it returns the maximum).
    pub async fn sweep_requests(&self, now_unix_s: u64) -> Result<u64> {
        let now = to_i64("time", now_unix_s)?;
        let client = self.client("sweeping answers").await?;
        client
            .execute(
                "DELETE FROM resume_answers WHERE (token_sha256, instance, request_id) IN (
                     SELECT token_sha256, instance, request_id FROM resume_answers
                     WHERE expires_unix_s <= $1 LIMIT $2)",
                &[&now, &(self.limits.max_rows as i64)],
            )
            .await
            .doing("sweeping answers")
    }

    fn check_waiting(&self, waiting: &str) -> Result<()> {
        if waiting.is_empty() {
            return Err(StoreError::Invalid {
                what: "waiting connection",
                reason: "it is empty".into(),
            });
        }
        checks::size(
            "the waiting connection's name",
            waiting.len(),
            self.limits.max_waiting_bytes.min(256),
        )
    }
}
