//! One client connection: the thin I/O layer around [`ServerSession`].
//!
//! It reads the Hello (exactly one RSA block), answers the HelloReply, then
//! loops: reassemble one request from however many reads it takes, let the
//! state machine decide and the backend perform the request it emits
//! ([`super::dispatch::respond`]), and write the reply with one
//! `write_all`. It never looks
//! inside a request; the session says how long to wait for the next one.
//! Every wait has a timeout; nothing here trusts the peer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info};

use super::counted::Counted;
use super::dispatch::{respond, shutdown_requested, Reply};
use super::session::ServerSession;
use super::shared::Shared;
use crate::metrics::Metrics;
use crate::wire::{Framing, Hello, HelloReply, Reassembler, SessionKey, XlRegMsg};

/// The largest request a client may send (requests are small; the biggest,
/// a Member with 4096-bit keys, is under 2 KiB).
const MAX_REQUEST: usize = 64 * 1024;

/// The most one read takes from the socket.
const READ_CHUNK: usize = 16 * 1024;

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// Bye/Ack, then the client closed.
    Bye,
    /// An Error was sent.
    Refused(String),
    /// The peer closed or reset before Bye.
    PeerClosed,
    /// A timeout expired.
    Timeout(&'static str),
    /// Undecryptable or malformed bytes: closed silently (like Go).
    BadInput(String),
    /// The server is shutting down.
    Shutdown,
}

enum Read {
    Msg(Box<XlRegMsg>),
    End(SessionEnd),
}

/// Serve one connection to the end, then log one line about it.
pub(crate) async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut session = None;
    let metrics = shared.metrics.clone();
    metrics.connections.inc();
    let outcome = run(&mut stream, peer, &shared, &mut shutdown, &mut session).await;
    metrics.connections.dec();
    count_end(&metrics, &outcome, session.is_some());
    let _ = stream.shutdown().await;
    // The hex IDs are formatted only when the line is logged.
    if tracing::enabled!(tracing::Level::INFO) {
        let (member, cluster) = session
            .as_ref()
            .map(|s: &ServerSession| (s.member_id(), s.joined()))
            .unwrap_or_default();
        let ms = started.elapsed().as_millis() as u64;
        let member = member.map(|m| m.to_hex()).unwrap_or_default();
        let cluster = cluster.map(|c| c.to_hex()).unwrap_or_default();
        info!(%peer, ?outcome, member, cluster, ms, "session ended");
    }
}

/// Sessions by how they ended, Error replies by text, failed handshakes
/// by reason.
fn count_end(m: &Metrics, end: &SessionEnd, handshake_done: bool) {
    let label = match end {
        SessionEnd::Bye => "bye",
        SessionEnd::Refused(_) => "refused",
        SessionEnd::PeerClosed => "peer_closed",
        SessionEnd::Timeout(_) => "timeout",
        SessionEnd::BadInput(_) => "bad_input",
        SessionEnd::Shutdown => "shutdown",
    };
    m.session_ended(label);
    if let SessionEnd::Refused(text) = end {
        m.error_reply(text);
    }
    if !handshake_done {
        match end {
            SessionEnd::Timeout(_) => m.handshake_failed("timeout"),
            SessionEnd::BadInput(_) => m.handshake_failed("bad_hello"),
            SessionEnd::PeerClosed => m.handshake_failed("peer_closed"),
            _ => {}
        }
    }
}

async fn run(
    stream: &mut TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
    slot: &mut Option<ServerSession>,
) -> SessionEnd {
    let _ = stream.set_nodelay(true);
    let cfg = &shared.cfg;

    // Hello: exactly one RSA block.
    let mut hello = vec![0u8; shared.identity.comms.size()];
    match tokio::time::timeout(cfg.handshake_timeout, stream.read_exact(&mut hello)).await {
        Err(_) => return SessionEnd::Timeout("hello"),
        Ok(Err(_)) => return SessionEnd::PeerClosed,
        Ok(Ok(_)) => {}
    }
    // One RSA private decryption (~0.3 ms at 2048 bits) right here on the
    // worker: a hand-off to the blocking pool would cost two thread
    // wake-ups per session for no gain on a server whose cores all do
    // this same work.
    let hello = match Hello::open(&shared.identity.comms, &hello) {
        Ok(h) => h,
        // WireError already names the Hello ("hello: ...").
        Err(e) => return SessionEnd::BadInput(e.to_string()),
    };
    let (framing, version) = Framing::server_negotiate(hello.version);
    let reply = HelloReply::new(version);
    if write(stream, &reply.seal(&hello.key1), cfg.message_timeout)
        .await
        .is_err()
    {
        return SessionEnd::PeerClosed;
    }
    let key = SessionKey(reply.key2);
    let session = slot.insert(ServerSession::new(framing, shared.session_cfg.clone()));
    let mut reasm = Reassembler::with_limit(framing, MAX_REQUEST);

    loop {
        let msg = match read_message(
            stream,
            &mut reasm,
            &key,
            session.read_timeout(),
            cfg.message_timeout,
            shutdown,
        )
        .await
        {
            Read::Msg(m) => m,
            Read::End(SessionEnd::PeerClosed | SessionEnd::Timeout(_)) if session.said_bye() => {
                return SessionEnd::Bye
            }
            Read::End(o) => return o,
        };
        debug!(op = ?msg.op, state = ?session.state(), "request");
        let request_started = Instant::now();
        let counted = Counted {
            inner: &*shared.backend,
            metrics: &shared.metrics,
            limiter: shared.limiter.as_ref(),
            peer: peer.ip(),
        };
        // A GetCluster with a hold may wait for members, a Watch for a
        // change (only an xlreg session may send one): count each while it
        // is in flight.
        let held = match msg.tag() {
            _ if cfg.hold.is_zero() => None,
            Some(crate::wire::Tag::GetCluster) => Some(&shared.metrics.held_getclusters),
            Some(crate::wire::Tag::Watch) if framing == Framing::LengthPrefixed => {
                Some(&shared.metrics.held_watches)
            }
            _ => None,
        };
        if let Some(gauge) = held {
            gauge.inc();
        }
        let Reply { body, close, op } = respond(session, &counted, *msg, Some(&*shutdown)).await;
        if let Some(gauge) = held {
            gauge.dec();
        }
        shared.metrics.request_done(op, request_started.elapsed());
        let frame = framing.encode_body(&key, &body);
        if write(stream, &frame, cfg.message_timeout).await.is_err() {
            return SessionEnd::PeerClosed;
        }
        if close {
            let text = XlRegMsg::from_bytes(&body)
                .map(|m| m.err_text())
                .unwrap_or_default();
            return SessionEnd::Refused(text);
        }
        if *shutdown.borrow() {
            return SessionEnd::Shutdown;
        }
    }
}

async fn write(stream: &mut TcpStream, data: &[u8], limit: Duration) -> Result<(), ()> {
    match tokio::time::timeout(limit, stream.write_all(data)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Read until the reassembler yields one whole message. `idle` bounds the
/// wait for its first byte, `per_message` the wait for the rest.
async fn read_message(
    stream: &mut TcpStream,
    reasm: &mut Reassembler,
    key: &SessionKey,
    idle: Duration,
    per_message: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Read {
    // Read into spare capacity: no zeroing of a 16 KiB buffer per message.
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut deadline = tokio::time::Instant::now() + idle;
    loop {
        match reasm.try_next(key) {
            Ok(Some(m)) => return Read::Msg(Box::new(m)),
            Ok(None) => {}
            Err(e) => return Read::End(SessionEnd::BadInput(e.to_string())),
        }
        let waiting_for_first_byte = reasm.buffered() == 0;
        let n = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)) => r,
            _ = shutdown_requested(shutdown), if waiting_for_first_byte => return Read::End(SessionEnd::Shutdown),
        };
        match n {
            Err(_) if waiting_for_first_byte => return Read::End(SessionEnd::Timeout("idle")),
            Err(_) => return Read::End(SessionEnd::Timeout("incomplete message")),
            Ok(Err(_)) | Ok(Ok(0)) => {
                if waiting_for_first_byte {
                    return Read::End(SessionEnd::PeerClosed);
                }
                return Read::End(SessionEnd::BadInput(format!(
                    "connection closed inside a message ({} bytes held)",
                    reasm.buffered()
                )));
            }
            Ok(Ok(n)) => {
                if waiting_for_first_byte {
                    deadline = tokio::time::Instant::now() + per_message;
                }
                reasm.push(&buf[..n]);
                buf.clear();
            }
        }
    }
}
