//! The bus listeners: tick reports for the inputs waiting on them, shards' view pieces merged
//! into each subscriber's snapshot, kicks from other gateways.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use astroboids_cluster::live::{ShardViews, ViewMerger};
use astroboids_cluster::messages::TickReport;
use astroboids_cluster_net::Subscription;
use astroboids_cluster_net::bus::LiveSubscription;

use super::Shared;

pub(super) async fn reports(shared: Arc<Shared>, mut reports: Subscription) {
    loop {
        match reports.next().await {
            Ok(message) => match postcard::from_bytes::<TickReport>(&message.payload) {
                Ok(report) => {
                    metrics::gauge!("astroboids_gateway_world_tick").set(report.tick as f64);
                    shared.gateway.inputs().on_report(&report);
                }
                Err(e) => {
                    warn!(seq = message.seq, error = %e, "a tick report that does not decode")
                }
            },
            Err(e) => {
                warn!(error = %e, "tick reports: the subscription failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

pub(super) async fn views(shared: Arc<Shared>, mut views: LiveSubscription) {
    let mut merger = ViewMerger::default();
    let mut last_merged: Option<Instant> = None;
    let mut dropped = 0;
    loop {
        let message = match views.next().await {
            Ok(message) => message,
            Err(e) => {
                warn!(error = %e, "view pieces: the subscription ended");
                return;
            }
        };
        let pieces: ShardViews = match postcard::from_bytes(&message.payload) {
            Ok(pieces) => pieces,
            Err(e) => {
                warn!(subject = %message.subject, error = %e, "view pieces that do not decode");
                continue;
            }
        };
        let Some(merged) = merger.push(pieces) else {
            continue;
        };
        let now = Instant::now();
        if let Some(before) = last_merged.replace(now) {
            metrics::histogram!("astroboids_gateway_view_gap_seconds")
                .record((now - before).as_secs_f64());
        }
        metrics::gauge!("astroboids_gateway_view_tick").set(merged.tick as f64);
        if merger.dropped() > dropped {
            metrics::counter!("astroboids_gateway_view_ticks_dropped_total")
                .increment(merger.dropped() - dropped);
            dropped = merger.dropped();
        }
        let outs = shared
            .gateway
            .viewers()
            .lock()
            .expect("not poisoned")
            .on_tick(&merged);
        let live = shared.live.lock().expect("not poisoned");
        for out in outs {
            let bytes: usize = out.datagrams.iter().map(Vec::len).sum();
            if let Some(queue) = live.get(&out.conn) {
                if queue.try_send(out).is_ok() {
                    metrics::counter!("astroboids_gateway_snapshot_bytes_total")
                        .increment(bytes as u64);
                } else {
                    metrics::counter!("astroboids_gateway_live_dropped_total").increment(1);
                }
            }
        }
    }
}

pub(super) async fn kicks(shared: Arc<Shared>, mut kicks: LiveSubscription) {
    while let Ok(message) = kicks.next().await {
        let user = String::from_utf8_lossy(&message.payload).into_owned();
        let closed = shared
            .gateway
            .close_user(&user, "an admin closed your session; log in again");
        if closed > 0 {
            info!(user, closed, "kicked");
        }
    }
}
