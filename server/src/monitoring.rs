//! Monitoring: the `metrics` facade recorded by the Prometheus exporter, served as text on a
//! local HTTP endpoint (`GET /metrics`).
//!
//! Metric names (all prefixed `astroboids_`): `tick_duration_seconds` (histogram), `tick`,
//! `ships`, `script_fuel_used_total`, `script_faults_total`, `connections`,
//! `connections_refused_total`, `requests_total{kind}`, `requests_rejected_total{kind,reason}`,
//! `checkpoints_written_total`, `replay_files_finished_total`.
//!
//! The cluster's processes (`astroboids shard|leader --metrics ADDR`) install the same recorder
//! and serve it the same way; their metrics (`astroboids_shard_*`, `astroboids_leader_*`) are
//! named and described in `astroboids_cluster_net::process::metrics`.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Tick durations are bucketed around the 100 ms budget of a 10 Hz world.
const TICK_BUCKETS_S: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5,
];

/// The cluster processes' durations (`astroboids_shard_*_seconds`, `astroboids_leader_*`):
/// from a tenth of a millisecond (an exchange wait on a quiet shard) to seconds (a recovery's
/// first tick).
const CLUSTER_BUCKETS_S: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide recorder (the `metrics` facade has one recorder per process; several
/// servers in one test process share it).
pub fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("astroboids_tick_duration_seconds".into()),
                &TICK_BUCKETS_S,
            )
            .expect("non-empty buckets")
            .set_buckets_for_metric(
                Matcher::Prefix("astroboids_shard_".into()),
                &CLUSTER_BUCKETS_S,
            )
            .expect("non-empty buckets")
            .set_buckets_for_metric(
                Matcher::Prefix("astroboids_leader_".into()),
                &CLUSTER_BUCKETS_S,
            )
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder installed first (an embedding program's) keeps the facade; the
        // endpoint then shows what this one saw, which is nothing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Largest HTTP request head read.
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Serves `GET /metrics` on `listener` until the task is dropped. One connection at a time
/// is plenty for a scraper; each is answered and closed.
pub async fn serve_metrics(listener: TcpListener) {
    let handle = recorder();
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_BYTES {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        if read.is_err() {
            continue;
        }
        let first_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
        let (status, body) = if first_line.starts_with(b"GET /metrics ") {
            ("200 OK", handle.render())
        } else {
            (
                "404 Not Found",
                "only GET /metrics is served here\n".to_string(),
            )
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

/// Binds the endpoint. The figures are for the operator: a non-loopback address is refused
/// unless `public` (`--metrics-public`, for a container whose metrics a Prometheus elsewhere
/// scrapes; whoever reaches the address then reads them).
pub async fn bind_metrics(addr: SocketAddr, public: bool) -> std::io::Result<TcpListener> {
    if !public && !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "the metrics endpoint listens on loopback only unless --metrics-public is given; \
                 {addr} is not loopback"
            ),
        ));
    }
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::bind_metrics;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_non_loopback_address_needs_public() {
        let runtime = runtime();
        let refused = runtime
            .block_on(bind_metrics("0.0.0.0:0".parse().unwrap(), false))
            .unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
        let message = refused.to_string();
        assert!(message.contains("--metrics-public"), "{message}");
        assert!(message.contains("0.0.0.0:0"), "{message}");

        let public = runtime
            .block_on(bind_metrics("0.0.0.0:0".parse().unwrap(), true))
            .unwrap();
        assert!(public.local_addr().unwrap().ip().is_unspecified());
    }

    #[test]
    fn loopback_is_served_either_way() {
        let runtime = runtime();
        for public in [false, true] {
            for addr in ["127.0.0.1:0", "[::1]:0"] {
                let bound = runtime.block_on(bind_metrics(addr.parse().unwrap(), public));
                // A machine without IPv6 cannot bind ::1; it is never refused as non-loopback.
                if let Err(e) = &bound {
                    assert_ne!(e.kind(), std::io::ErrorKind::InvalidInput, "{addr}: {e}");
                    continue;
                }
                assert!(bound.unwrap().local_addr().unwrap().ip().is_loopback());
            }
        }
    }
}
