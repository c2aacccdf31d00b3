//! The xlReg client: how a member boots and learns its whole cluster.
//!
//! Layers, bottom up:
//!
//! * [`connection`]: one TCP connection to a registry: Hello/HelloReply,
//!   framing negotiation, sealed messages through a
//!   [`Reassembler`](crate::wire::Reassembler), a timeout on every
//!   read, write and connect. It never trusts a single `read()`.
//! * [`session`]: typed, lockstep calls (`register`, `create`, `join`,
//!   `get_members`, `bye`). Every reply's op is checked, an Error reply
//!   becomes [`ClientError::Server`] carrying the registry's text, and the
//!   session refuses to send what the Go server's state machine would
//!   reject or crash on (spec §8.3–8.4).
//! * [`node`]: a member's identity (name, ID, two RSA key pairs,
//!   endpoints), generated once and kept in a directory so that a restarted
//!   member keeps its ID and keys.
//! * [`boot`](mod@boot): the one-call flows: [`create_cluster`] for an admin,
//!   [`boot()`](boot::boot) for a member (register, join, gather every
//!   member with backoff and a deadline, bye) and [`read_members`] to look
//!   at a cluster without joining it.
//! * [`view`]: [`ClusterView`], what a booted member knows, and its JSON.
//! * [`blocking`]: the same flows for scripts without an async runtime.
//!
//! Unlike the Go client, an incomplete cluster at the deadline is an error
//! ([`ClientError::IncompleteCluster`]), never a silent partial success.

pub mod blocking;
pub mod boot;
pub mod connection;
pub mod node;
pub mod session;
pub mod view;

#[cfg(test)]
pub(crate) mod fake;

use std::time::Duration;

use crate::wire::{Tag, WireError};

pub use boot::{boot, create_cluster, read_members, BootOptions};
pub use connection::{ClientOptions, Connection};
pub use node::{attrs, NodeIdentity, NodeOptions};
pub use session::{ClusterInfo, ClusterRef, MembersReply, Session};
pub use view::{ClusterView, MemberInfo, MemberList};

/// Everything that can go wrong on the client side. Messages name what was
/// being done and with which address, file or cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A socket operation failed.
    #[error("{what} {addr}: {source}")]
    Io {
        /// What was being done (`connecting to`, `sending Join to`, …).
        what: String,
        /// The registry address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Nothing happened within the configured time.
    #[error("timed out after {after:?} {what}")]
    Timeout {
        /// What we were waiting for, and from where.
        what: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The registry closed the connection instead of answering. A Go
    /// registry does this silently when it cannot decrypt the Hello (wrong
    /// regcred) or a message.
    #[error("{addr} closed the connection {what}")]
    Closed {
        /// What we were waiting for.
        what: String,
        /// The registry address.
        addr: String,
    },
    /// The registry answered with an Error message (the session is over).
    #[error("registry refused {request}: {text}")]
    Server {
        /// The request that was refused (`Join`, `GetCluster`, …).
        request: &'static str,
        /// The registry's error text, verbatim.
        text: String,
    },
    /// A reply with another op than the request calls for.
    #[error("expected {expected:?} in reply to {request}, got {got}")]
    UnexpectedReply {
        /// The request sent.
        request: &'static str,
        /// The reply op expected.
        expected: Tag,
        /// What arrived (op name or number).
        got: String,
    },
    /// A reply with the right op but unusable contents.
    #[error("bad reply from the registry: {0}")]
    BadReply(String),
    /// The cluster did not fill up before the deadline.
    #[error("cluster {cluster} incomplete: {have} of {want} members after {waited:?}")]
    IncompleteCluster {
        /// Cluster ID (hex) or name.
        cluster: String,
        /// Members gathered.
        have: usize,
        /// The cluster's maximum size.
        want: usize,
        /// How long we waited.
        waited: Duration,
    },
    /// The node identity could not be created, loaded or saved.
    #[error("node identity: {0}")]
    Identity(String),
    /// The registry credentials are unusable.
    #[error("regcred: {0}")]
    RegCred(String),
    /// The caller asked for something the protocol does not allow here
    /// (e.g. a second Join in one session).
    #[error("{0}")]
    Usage(String),
    /// Bytes or keys that do not make a valid protocol object.
    #[error(transparent)]
    Wire(#[from] WireError),
}

impl ClientError {
    /// The registry's error text, when the registry refused a request.
    pub fn server_text(&self) -> Option<&str> {
        match self {
            ClientError::Server { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Did the connection to the registry fail (refused, reset, closed,
    /// timed out) rather than the registry refusing the request? Such a
    /// request may be tried on another server of the group.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            ClientError::Io { .. } | ClientError::Timeout { .. } | ClientError::Closed { .. }
        )
    }

    /// Worth trying on the next server of a group: a transport failure,
    /// or a server whose database is unreachable (nothing was applied).
    pub fn is_failover(&self) -> bool {
        self.is_transport() || self.server_text() == Some(STORAGE_FAILURE)
    }
}

/// The ErrDesc of a registry whose storage failed (nothing was applied).
pub const STORAGE_FAILURE: &str = "registry storage failure; request not applied";

/// Short name of an op for messages: the tag name, or the number.
pub(crate) fn op_name(op: Option<i32>) -> String {
    match op {
        None => "a message without an op".to_string(),
        Some(v) => match Tag::try_from(v) {
            Ok(t) => format!("{t:?}"),
            Err(_) => format!("op {v}"),
        },
    }
}
