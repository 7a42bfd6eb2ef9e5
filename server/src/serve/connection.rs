//! One connection task per client: the handshake, then stream bytes through the connection's
//! I/O-free [`ServerSession`] to the tick thread and answers back; acknowledgement datagrams
//! in, snapshot datagrams out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use astroboids_net::quic::CLOSE_REFUSED;
use astroboids_protocol::messages::{Request, RequestError, Response};
use astroboids_protocol::session::{ServerEvent, ServerSession};
use astroboids_protocol::snapshot::decode_ack;
use tracing::{debug, warn};

use super::Shared;
use super::tick_thread::{LIVE_QUEUE, LiveChannel, LiveUpdate, TickEvent, ToConnection};
use crate::core::{ConnId, Event};

/// Close code of a connection dropped by an injected fault (clients see a lost connection).
const CLOSE_FAULT: u32 = 2;

/// One connection: handshake, then bytes <-> session <-> tick thread.
pub(super) async fn serve_connection(incoming: quinn::Incoming, shared: Arc<Shared>) {
    let peer = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            // Wrong ALPN, unknown certificate...: quinn told the peer.
            debug!(%peer, %error, "handshake failed");
            return;
        }
    };
    let ip = connection.remote_address().ip();
    let _slot = match shared.admit(ip) {
        Ok(slot) => slot,
        Err(reason) => {
            warn!(%peer, %reason, "connection refused");
            metrics::counter!("astroboids_connections_refused_total").increment(1);
            connection.close(CLOSE_REFUSED.into(), reason.as_bytes());
            return;
        }
    };
    let streams = tokio::time::timeout(Duration::from_secs(10), connection.accept_bi()).await;
    let Ok(Ok((mut send, mut recv))) = streams else {
        debug!(%peer, "no request stream within 10 s: closed");
        connection.close(
            CLOSE_REFUSED.into(),
            b"no request stream opened within 10 s",
        );
        return;
    };
    let conn = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    debug!(conn, %peer, "connection opened");
    // Answers are bounded by the session's in-flight cap, plus one close.
    let (to_conn, mut from_tick) = tokio::sync::mpsc::unbounded_channel();
    let (live_tx, mut live_rx) = tokio::sync::mpsc::channel(LIVE_QUEUE);
    let acked = Arc::new(AtomicU32::new(0));
    let live = LiveChannel {
        updates: live_tx,
        acked: acked.clone(),
        max_datagram_bytes: connection.max_datagram_size().unwrap_or(0),
    };
    if !shared.send(TickEvent::Connected {
        conn,
        ip,
        to_conn,
        live,
    }) {
        connection.close(CLOSE_REFUSED.into(), b"the server is shutting down");
        return;
    }
    let mut session = ServerSession::new(
        shared.net.session.clone(),
        concat!("astroboids-server ", env!("CARGO_PKG_VERSION")),
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
                            if let Request::UploadScript { wasm, .. } = &request {
                                precompile(&shared, wasm).await;
                            }
                            let instance = session.instance();
                            let refusal =
                                forward_request(&shared, &mut session, conn, instance, id, request);
                            if let Some(bytes) = refusal
                                && send.write_all(&bytes).await.is_err()
                            {
                                break 'connection;
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
                // Acknowledgements only; anything else is ignored.
                Ok(datagram) => {
                    if let Some(seq) = decode_ack(&datagram) {
                        acked.fetch_max(seq, Ordering::Relaxed);
                    }
                }
                Err(_) => break 'connection,
            },
            update = live_rx.recv() => match update {
                Some(LiveUpdate::Datagrams(datagrams)) => {
                    for d in datagrams {
                        // Too large for the path now, or congested: dropped, like a lost
                        // datagram.
                        let _ = connection.send_datagram(d.into());
                    }
                }
                Some(LiveUpdate::Events(events)) => {
                    if let Some(bytes) = session.events(events)
                        && send.write_all(&bytes).await.is_err()
                    {
                        break 'connection;
                    }
                }
                None => break 'connection,
            },
            message = from_tick.recv() => match message {
                Some(ToConnection::Answer { id, response }) => {
                    if shared.faults.lose_connection_before(&response) {
                        // As a network failure would: the answer never leaves.
                        connection.close(CLOSE_FAULT.into(), b"fault injected: connection lost");
                        break 'connection;
                    }
                    if let Some(bytes) = session.respond(id, response)
                        && send.write_all(&bytes).await.is_err()
                    {
                        break 'connection;
                    }
                }
                Some(ToConnection::Close { reason }) => {
                    let _ = send.write_all(&session.refuse(&reason)).await;
                    close_reason = Some(reason);
                    break 'connection;
                }
                None => break 'connection,
            },
        }
    }
    shared.send(TickEvent::Core(Event::Closed { conn }));
    debug!(conn, %peer, reason = close_reason.as_deref(), "connection closed");
    if let Some(reason) = close_reason {
        // Let the Refused frame reach the client, then close saying the same.
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
        connection.close(CLOSE_REFUSED.into(), reason.as_bytes());
    }
}

/// Compiles an uploaded module on a blocking thread (one at a time) so that its validation on
/// the tick thread is a cache hit. The result is not used here: a module that fails is
/// rejected by the tick thread with the same error.
async fn precompile(shared: &Arc<Shared>, wasm: &[u8]) {
    if wasm.len() > shared.script_engine.limits().max_module_bytes {
        return; // Refused by size on the tick thread; nothing to compile.
    }
    let Ok(_permit) = shared.compile_slots.acquire().await else {
        return;
    };
    let engine = Arc::clone(&shared.script_engine);
    let wasm = wasm.to_vec();
    let _ = tokio::task::spawn_blocking(move || engine.load_for_upload(&wasm)).await;
}

/// Hands a request to the tick thread; when it cannot take more, the answer (to send now)
/// says the server is busy.
fn forward_request(
    shared: &Shared,
    session: &mut ServerSession,
    conn: ConnId,
    instance: u64,
    id: u64,
    request: Request,
) -> Option<Vec<u8>> {
    let queued = shared.queued.fetch_add(1, Ordering::SeqCst);
    let refusal = if queued >= shared.net.max_queued_requests {
        Some("the server is busy; try again in a moment")
    } else if !shared.send(TickEvent::Core(Event::Request {
        conn,
        instance,
        id,
        request,
    })) {
        Some("the server is shutting down")
    } else {
        None
    };
    let reason = refusal?;
    debug!(conn, id, reason, "request refused before the tick thread");
    shared.queued.fetch_sub(1, Ordering::SeqCst);
    metrics::counter!("astroboids_requests_rejected_total", "kind" => "any", "reason" => "busy")
        .increment(1);
    session.respond(
        id,
        Response::Error(RequestError::Unavailable(reason.to_string())),
    )
}
