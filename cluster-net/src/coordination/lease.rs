//! Keeping the process's lease alive: the background task [`Coordination::connect`] starts
//! (see the module docs of [`super`] on the lease).
//!
//! [`Coordination::connect`]: super::Coordination::connect

use std::time::Duration;

use etcd_client::{LeaseClient, LeaseKeepAliveStream, LeaseKeeper};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};

use super::{ETCD_REQUEST_TIMEOUT, MIN_KEEP_ALIVE_PERIOD};

/// Renews the lease every TTL/3 until it is lost; then says so on `lost` and ends.
///
/// `valid_until` is when the server drops the lease at the earliest, counted from when the last
/// confirmed renewal (first: the grant) was sent. A failed renewal (timeout, broken stream) is
/// retried on a new stream until then; a renewal answered with TTL 0 (the lease is gone:
/// expired or revoked) ends it at once.
pub(super) async fn keep_lease_alive(
    mut lease: LeaseClient,
    id: i64,
    ttl: Duration,
    mut valid_until: Instant,
    lost: watch::Sender<bool>,
) {
    let period = (ttl / 3).max(MIN_KEEP_ALIVE_PERIOD);
    let mut channel: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
    loop {
        sleep_until((Instant::now() + period).min(valid_until)).await;
        let sent = Instant::now();
        let budget = valid_until
            .saturating_duration_since(sent)
            .min(ETCD_REQUEST_TIMEOUT);
        if budget.is_zero() {
            break;
        }
        match timeout(budget, renew(&mut lease, id, &mut channel, ttl)).await {
            Ok(Ok(Some(left))) => valid_until = sent + left,
            Ok(Ok(None)) => break,
            Ok(Err(_)) | Err(_) => channel = None,
        }
    }
    let _ = lost.send(true);
}

/// One renewal: `Some(ttl left)`, or `None` if the server says the lease is gone.
async fn renew(
    lease: &mut LeaseClient,
    id: i64,
    channel: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    granted: Duration,
) -> std::result::Result<Option<Duration>, etcd_client::Error> {
    let Some((keeper, stream)) = channel else {
        // Opening the stream sends a first renewal and reads its answer (and fails if the
        // lease is gone, which the next tries will keep saying until `valid_until`).
        *channel = Some(lease.keep_alive(id).await?);
        return Ok(Some(granted));
    };
    keeper.keep_alive().await?;
    match stream.message().await? {
        Some(answer) if answer.ttl() > 0 => Ok(Some(Duration::from_secs(
            u64::try_from(answer.ttl()).unwrap_or(0),
        ))),
        Some(_) => Ok(None),
        None => Err(etcd_client::Error::LeaseKeepAliveError(
            "the keep-alive stream closed".into(),
        )),
    }
}
