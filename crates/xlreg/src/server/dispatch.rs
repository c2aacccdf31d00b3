//! One request, from decoded message to reply: the session decides, the
//! backend performs the request it emits, the session turns the answer
//! into the reply.
//!
//! Why a file of its own: this is the server's one dispatch path, and the
//! connection loop ([`super::connection`]) and the fuzz driver
//! (`xlreg::fuzzing`) both call it, so what is fuzzed is what serves.

use tokio::sync::watch;

use super::session::{Effect, ServerSession};
use crate::registry::{perform_held, Backend};
use crate::wire::{Tag, XlRegMsg};

/// The reply to send for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Encoded XLRegMsg body (not yet sealed or framed).
    pub body: Vec<u8>,
    /// Close the connection after sending it (an Error was sent).
    pub close: bool,
    /// What the request was, for the latency histogram: the registry
    /// request's [`Request::op_name`](crate::registry::Request::op_name)
    /// when the session emitted one, else `RegCred`, `Bye` or `other`
    /// (answered by the session alone, or refused before reaching the
    /// registry).
    pub op: &'static str,
}

/// Handle `msg` in `session`, performing on `backend` whatever registry
/// request it needs. A held GetCluster is answered at once with what there
/// is when `shutdown` turns true.
pub async fn respond(
    session: &mut ServerSession,
    backend: &dyn Backend,
    msg: XlRegMsg,
    shutdown: Option<&watch::Receiver<bool>>,
) -> Reply {
    let mut op = match msg.tag() {
        Some(Tag::RegCredRequest) => "RegCred",
        Some(Tag::Bye) => "Bye",
        _ => "other",
    };
    let mut effect = session.on_message(msg);
    loop {
        effect = match effect {
            Effect::Reply { body, close } => return Reply { body, close, op },
            Effect::Call(req) => {
                op = req.op_name();
                let answer = match (req.unheld(), shutdown) {
                    (Some(now), Some(shutdown)) => {
                        let mut shutdown = shutdown.clone();
                        tokio::select! {
                            r = perform_held(backend, req) => r,
                            _ = shutdown_requested(&mut shutdown) => perform_held(backend, now).await,
                        }
                    }
                    _ => perform_held(backend, req).await,
                };
                session.on_answer(answer)
            }
        };
    }
}

/// Resolves once shutdown has been requested.
pub(crate) async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
