//! One task per player connection: the handshake and limits, then stream bytes through the
//! connection's I/O-free `ServerSession`, requests to the connection's worker (one at a time,
//! so answers keep the order of requests), answers and live updates back.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use astroboids_net::quic::CLOSE_REFUSED;
use astroboids_protocol::messages::{Request, RequestError, Response};
use astroboids_protocol::session::{ServerEvent, ServerSession};
use astroboids_protocol::snapshot::decode_ack;

use super::Shared;
use crate::requests::{ConnState, Gateway};
use crate::viewers::ConnId;

/// Live updates waiting for a slow connection; past it, updates are dropped (the snapshot
/// encoder resends what the client did not acknowledge).
const LIVE_QUEUE: usize = 8;

pub(super) async fn accept(
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
) {
    while let Some(incoming) = endpoint.accept().await {
        if *stopped.borrow() {
            incoming.refuse();
            continue;
        }
        tokio::spawn(serve_connection(incoming, shared.clone()));
    }
}

/// Counts a connection from `ip`, or says why it is refused; `Some(ip)` to release.
fn admit(shared: &Shared, ip: IpAddr) -> Result<(), String> {
    let mut per_ip = shared.per_ip.lock().expect("not poisoned");
    let total: usize = per_ip.values().sum();
    if total >= shared.net.max_connections {
        return Err(format!(
            "the gateway has {total} connections, its limit; try again later"
        ));
    }
    let from_ip = per_ip.entry(ip).or_default();
    if *from_ip >= shared.net.max_connections_per_ip {
        return Err(format!(
            "{ip} already has {from_ip} connections, the most one address may have"
        ));
    }
    *from_ip += 1;
    metrics::gauge!("astroboids_gateway_connections").set((total + 1) as f64);
    Ok(())
}

fn release(shared: &Shared, ip: IpAddr) {
    let mut per_ip = shared.per_ip.lock().expect("not poisoned");
    if let Some(n) = per_ip.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            per_ip.remove(&ip);
        }
    }
    let total: usize = per_ip.values().sum();
    metrics::gauge!("astroboids_gateway_connections").set(total as f64);
}

async fn serve_connection(incoming: quinn::Incoming, shared: Arc<Shared>) {
    let peer = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            debug!(%peer, %error, "handshake failed");
            return;
        }
    };
    let ip = connection.remote_address().ip();
    if let Err(reason) = admit(&shared, ip) {
        warn!(%peer, %reason, "connection refused");
        connection.close(CLOSE_REFUSED.into(), reason.as_bytes());
        return;
    }
    let conn = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    run_connection(&shared, connection, conn, ip).await;
    shared.live.lock().expect("not poisoned").remove(&conn);
    shared.gateway.connection_closed(conn);
    release(&shared, ip);
    debug!(conn, %peer, "connection closed");
}

async fn run_connection(
    shared: &Arc<Shared>,
    connection: quinn::Connection,
    conn: ConnId,
    ip: IpAddr,
) {
    let streams = tokio::time::timeout(Duration::from_secs(10), connection.accept_bi()).await;
    let Ok(Ok((mut send, mut recv))) = streams else {
        connection.close(
            CLOSE_REFUSED.into(),
            b"no request stream opened within 10 s",
        );
        return;
    };
    let (close_tx, mut close_rx) = mpsc::unbounded_channel();
    shared.gateway.connection_opened(conn, close_tx);
    let (live_tx, mut live_rx) = mpsc::channel(LIVE_QUEUE);
    shared
        .live
        .lock()
        .expect("not poisoned")
        .insert(conn, live_tx);
    let state = ConnState::new(conn, ip, connection.max_datagram_size().unwrap_or(0));
    let acked = state.acked.clone();
    // The worker carries out this connection's requests one after another; the session's
    // in-flight cap bounds what waits for it.
    let (request_tx, request_rx) = mpsc::channel(shared.net.session.max_in_flight + 1);
    let (answer_tx, mut answer_rx) = mpsc::unbounded_channel();
    let worker = tokio::spawn(work(shared.gateway.clone(), state, request_rx, answer_tx));
    let mut session = ServerSession::new(
        shared.net.session.clone(),
        concat!("astroboids-gateway ", env!("CARGO_PKG_VERSION")),
        shared.tick_rate_hz,
    );
    let mut buf = vec![0u8; 64 * 1024];
    let mut close_reason: Option<String> = None;
    'connection: loop {
        tokio::select! {
            read = recv.read(&mut buf) => {
                let n = match read {
                    Ok(Some(n)) => n,
                    Ok(None) | Err(_) => break 'connection,
                };
                for event in session.receive(&buf[..n]) {
                    match event {
                        ServerEvent::Send(bytes) => {
                            if send.write_all(&bytes).await.is_err() {
                                break 'connection;
                            }
                        }
                        ServerEvent::Request { id, request } => {
                            let instance = session.instance();
                            if request_tx.try_send((instance, id, request)).is_err() {
                                let busy = Response::Error(RequestError::Unavailable(
                                    "the gateway is busy; try again in a moment".into(),
                                ));
                                if let Some(bytes) = session.respond(id, busy)
                                    && send.write_all(&bytes).await.is_err()
                                {
                                    break 'connection;
                                }
                            }
                        }
                        ServerEvent::Close { reason } => {
                            close_reason = Some(reason);
                            break 'connection;
                        }
                    }
                }
            }
            datagram = connection.read_datagram() => match datagram {
                Ok(datagram) => {
                    if let Some(seq) = decode_ack(&datagram) {
                        acked.fetch_max(seq, Ordering::Relaxed);
                    }
                }
                Err(_) => break 'connection,
            },
            answer = answer_rx.recv() => match answer {
                Some((id, response)) => {
                    if let Some(bytes) = session.respond(id, response)
                        && send.write_all(&bytes).await.is_err()
                    {
                        break 'connection;
                    }
                }
                None => break 'connection,
            },
            update = live_rx.recv() => match update {
                Some(out) => {
                    for d in out.datagrams {
                        // Too large for the path now, or congested: dropped, like a lost one.
                        let _ = connection.send_datagram(d.into());
                    }
                    if let Some(events) = out.events
                        && let Some(bytes) = session.events(events)
                        && send.write_all(&bytes).await.is_err()
                    {
                        break 'connection;
                    }
                }
                None => break 'connection,
            },
            reason = close_rx.recv() => {
                if let Some(reason) = reason {
                    let _ = send.write_all(&session.refuse(&reason)).await;
                    close_reason = Some(reason);
                }
                break 'connection;
            }
        }
    }
    worker.abort();
    if let Some(reason) = close_reason {
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
        connection.close(CLOSE_REFUSED.into(), reason.as_bytes());
    }
}

/// One connection's requests, in order.
async fn work(
    gateway: Arc<Gateway>,
    mut state: ConnState,
    mut requests: mpsc::Receiver<(u64, u64, Request)>,
    answers: mpsc::UnboundedSender<(u64, Response)>,
) {
    while let Some((instance, id, request)) = requests.recv().await {
        let response = gateway.handle(&mut state, instance, id, request).await;
        if answers.send((id, response)).is_err() {
            return;
        }
    }
}
