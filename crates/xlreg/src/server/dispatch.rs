//! One request, from decoded message to reply: the session decides, the
//! backend performs the request it emits, the session turns the answer
//! into the reply.
//!
//! Why a file of its own: this is the server's one dispatch path, and the
//! connection loop ([`super::connection`]) and the fuzz driver
//! (`xlreg::fuzzing`) both call it, so what is fuzzed is what serves.

use tokio::sync::watch;

use super::connection::shutdown_requested;
use super::session::{Effect, ServerSession};
use crate::registry::{perform, Backend};
use crate::wire::XlRegMsg;

/// The reply to send for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Encoded XLRegMsg body (not yet sealed or framed).
    pub body: Vec<u8>,
    /// Close the connection after sending it (an Error was sent).
    pub close: bool,
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
    let mut effect = session.on_message(msg);
    loop {
        effect = match effect {
            Effect::Reply { body, close } => return Reply { body, close },
            Effect::Call(req) => {
                let answer = match (req.unheld(), shutdown) {
                    (Some(now), Some(shutdown)) => {
                        let mut shutdown = shutdown.clone();
                        tokio::select! {
                            r = perform(backend, req) => r,
                            _ = shutdown_requested(&mut shutdown) => perform(backend, now).await,
                        }
                    }
                    _ => perform(backend, req).await,
                };
                session.on_answer(answer)
            }
        };
    }
}
