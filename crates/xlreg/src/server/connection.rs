//! One client connection: the thin I/O layer around [`ServerSession`].
//!
//! It reads the Hello (exactly one RSA block), answers the HelloReply, then
//! loops: reassemble one request from however many reads it takes, let the
//! state machine decide, call the registry, and write the reply with one
//! `write_all`. Every wait has a timeout; nothing here trusts the peer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info};

use super::session::{Effect, ServerSession, State};
use super::Shared;
use crate::wire::{Framing, Hello, HelloReply, Reassembler, SessionKey, XlRegMsg};

/// The largest request a client may send (requests are small; the biggest,
/// a Member with 4096-bit keys, is under 2 KiB).
const MAX_REQUEST: usize = 64 * 1024;
/// How long the server keeps a connection open after Ack, for the client
/// to close it (Go clients close right away).
const LINGER_AFTER_BYE: Duration = Duration::from_secs(2);

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
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
    End(Outcome),
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
    let outcome = run(&mut stream, &shared, &mut shutdown, &mut session).await;
    let _ = stream.shutdown().await;
    let (member, cluster) = session
        .as_ref()
        .map(|s: &ServerSession| (s.member_id(), s.joined()))
        .unwrap_or_default();
    let ms = started.elapsed().as_millis() as u64;
    let member = member.map(|m| m.to_hex()).unwrap_or_default();
    let cluster = cluster.map(|c| c.to_hex()).unwrap_or_default();
    info!(%peer, ?outcome, member, cluster, ms, "session ended");
}

async fn run(
    stream: &mut TcpStream,
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
    slot: &mut Option<ServerSession>,
) -> Outcome {
    let _ = stream.set_nodelay(true);
    let cfg = &shared.cfg;

    // Hello: exactly one RSA block.
    let mut hello = vec![0u8; shared.identity.comms.size()];
    match tokio::time::timeout(cfg.handshake_timeout, stream.read_exact(&mut hello)).await {
        Err(_) => return Outcome::Timeout("hello"),
        Ok(Err(_)) => return Outcome::PeerClosed,
        Ok(Ok(_)) => {}
    }
    // One RSA private decryption (~0.3 ms at 2048 bits) right here on the
    // worker: a hand-off to the blocking pool would cost two thread
    // wake-ups per session for no gain on a server whose cores all do
    // this same work.
    let hello = match Hello::open(&shared.identity.comms, &hello) {
        Ok(h) => h,
        Err(e) => return Outcome::BadInput(format!("hello: {e}")),
    };
    let (framing, version) = Framing::server_negotiate(hello.version);
    let reply = HelloReply::new(version);
    if write(stream, &reply.seal(&hello.key1), cfg.message_timeout)
        .await
        .is_err()
    {
        return Outcome::PeerClosed;
    }
    let key = SessionKey(reply.key2);
    let session = slot.insert(ServerSession::new(framing, shared.session_cfg.clone()));
    let mut reasm = Reassembler::with_limit(framing, MAX_REQUEST);

    loop {
        let idle = if session.state() == State::ByeRcvd {
            LINGER_AFTER_BYE
        } else {
            cfg.idle_timeout
        };
        let msg = match read_message(
            stream,
            &mut reasm,
            &key,
            idle,
            cfg.message_timeout,
            shutdown,
        )
        .await
        {
            Read::Msg(m) => m,
            Read::End(Outcome::PeerClosed) if session.state() == State::ByeRcvd => {
                return Outcome::Bye
            }
            Read::End(Outcome::Timeout(_)) if session.state() == State::ByeRcvd => {
                return Outcome::Bye
            }
            Read::End(o) => return o,
        };
        debug!(op = ?msg.op, state = ?session.state(), "request");
        let mut effect = session.on_message(*msg);
        let (body, close) = loop {
            effect = match effect {
                Effect::Reply { body, close } => break (body, close),
                Effect::Register { id, sig_hash } => {
                    let r = shared.registry.register(id, sig_hash).await;
                    session.on_registered(r)
                }
                Effect::Create {
                    name,
                    max_size,
                    attrs,
                    ep_count,
                } => {
                    let r = shared
                        .registry
                        .create(name, max_size, attrs, ep_count)
                        .await;
                    session.on_created(r)
                }
                Effect::Join {
                    target,
                    record,
                    endpoints,
                } => {
                    let r = shared.registry.join(target, record, endpoints).await;
                    session.on_joined(r)
                }
                Effect::Get {
                    cluster_id,
                    cluster_name,
                    which,
                    budget,
                    hold_ms,
                } => {
                    let cluster_id = match shared
                        .registry
                        .with_registry(|r| r.get_target(cluster_id, cluster_name.as_deref()))
                    {
                        Ok(id) => id,
                        Err(e) => {
                            effect = session.on_members(&[], Err(e));
                            continue;
                        }
                    };
                    let id = cluster_id.as_deref();
                    let bound = match hold_ms {
                        Some(ms) => cfg.hold.min(Duration::from_millis(ms.into())),
                        None => cfg.hold,
                    };
                    let hold = (!bound.is_zero()).then_some(bound);
                    let r = tokio::select! {
                        r = shared.registry.get(id, which, budget, hold) => r,
                        // Shutting down: answer at once with what there is.
                        _ = shutdown_requested(shutdown) => shared.registry.get(id, which, budget, None).await,
                    };
                    session.on_members(id.unwrap_or_default(), r)
                }
            };
        };
        let frame = framing.encode_body(&key, &body);
        if write(stream, &frame, cfg.message_timeout).await.is_err() {
            return Outcome::PeerClosed;
        }
        if close {
            let text = XlRegMsg::from_bytes(&body)
                .map(|m| m.err_text())
                .unwrap_or_default();
            return Outcome::Refused(text);
        }
        if *shutdown.borrow() {
            return Outcome::Shutdown;
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
    let mut buf = [0u8; 16 * 1024];
    let mut deadline = tokio::time::Instant::now() + idle;
    loop {
        match reasm.try_next(key) {
            Ok(Some(m)) => return Read::Msg(Box::new(m)),
            Ok(None) => {}
            Err(e) => return Read::End(Outcome::BadInput(e.to_string())),
        }
        let waiting_for_first_byte = reasm.buffered() == 0;
        let n = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => r,
            _ = shutdown_requested(shutdown), if waiting_for_first_byte => return Read::End(Outcome::Shutdown),
        };
        match n {
            Err(_) if waiting_for_first_byte => return Read::End(Outcome::Timeout("idle")),
            Err(_) => return Read::End(Outcome::Timeout("incomplete message")),
            Ok(Err(_)) | Ok(Ok(0)) => {
                if waiting_for_first_byte {
                    return Read::End(Outcome::PeerClosed);
                }
                return Read::End(Outcome::BadInput(format!(
                    "connection closed inside a message ({} bytes held)",
                    reasm.buffered()
                )));
            }
            Ok(Ok(n)) => {
                if waiting_for_first_byte {
                    deadline = tokio::time::Instant::now() + per_message;
                }
                reasm.push(&buf[..n]);
            }
        }
    }
}

/// Resolves once shutdown has been requested.
pub(crate) async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
