//! The xlReg client: how a member boots and learns its whole cluster.
//!
//! Layers, bottom up:
//!
//! * `connection`: one TCP connection to a registry: Hello/HelloReply,
//!   framing negotiation, sealed messages through a
//!   [`Reassembler`](crate::wire::Reassembler), a timeout on every
//!   read, write and connect. It never trusts a single `read()`.
//! * `session`: typed, lockstep calls (`register`, `create`, `join`,
//!   `get_members`, `bye`). Every reply's op is checked, an Error reply
//!   becomes [`ClientError::Server`] carrying the registry's text, and the
//!   session refuses to send what the Go server's state machine would
//!   reject or crash on (spec §8.3–8.4: one Member first, at most one
//!   Create and one Join, GetCluster only after a Join, nothing after Bye).
//! * `node`: a member's identity (name, ID, two RSA key pairs,
//!   endpoints), generated once and kept in a directory so that a restarted
//!   member keeps its ID and keys.
//! * `boot`: the one-call flows: [`create_cluster`] (from a
//!   [`ClusterSpec`]) for an admin, [`boot()`] for a member
//!   (register, join, gather every member with backoff and a deadline,
//!   bye) and [`read_cluster`] / [`read_members`] to look at a cluster
//!   without joining it.
//! * `view`: [`ClusterView`], what a booted member knows, and its JSON.
//! * `change`: clusters that change (xlreg extensions): [`Session::resize`],
//!   [`Session::evict`], [`Session::leave`], [`Session::watch_next`], the
//!   [`Watch`] stream of a cluster's versions, and the one-call [`resize`],
//!   [`evict`] and [`leave`].
//! * [`blocking`]: the same flows for scripts without an async runtime.
//! * [`up_env`]: [`UpEnv`], what a program launched by `xlreg up -- CMD`
//!   reads from its environment to join (needs only this feature).
//!
//! Unlike the Go client, an incomplete cluster at the deadline is an error
//! ([`ClientError::IncompleteCluster`]), never a silent partial success.

pub mod blocking;
pub(crate) mod boot;
pub(crate) mod change;
pub(crate) mod connection;
pub(crate) mod node;
pub(crate) mod session;
pub mod up_env;
pub(crate) mod view;

#[cfg(test)]
pub(crate) mod fake;

use std::time::Duration;

use crate::wire::{Tag, WireError};

// The public surface: every item at one path, `xlreg::client::X`; the
// submodules are crate-private (one concern per file, not a namespace).
pub use boot::{
    boot, boot_in_turn, create_cluster, create_cluster_as, ephemeral_identity, read_cluster,
    read_members, reader_identity, reader_options, register, BootOptions, JoinTurn,
    READER_KEY_BITS,
};
pub use change::{evict, leave, resize, MemberRef, ViewChange, Watch};
pub use connection::{ClientOptions, Connection, FAILOVER_CONNECT_TIMEOUT};
pub use node::{
    attrs, NodeIdentity, NodeOptions, COMMS_KEY_FILE, DEFAULT_KEY_BITS, NODE_FILE, SIG_KEY_FILE,
};
pub use session::{ClusterInfo, ClusterRef, ClusterSpec, MembersReply, Session};
pub use up_env::UpEnv;
pub use view::{members_table, ClusterView, MemberInfo, MemberList};

/// Everything that can go wrong on the client side. Messages name what was
/// being done and with which address, file or cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A socket operation failed. The OS error is the [`source`]
    /// (`std::error::Error::source`), not part of this message.
    ///
    /// [`source`]: std::error::Error::source
    #[error("{what} {addr}")]
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
    #[error("registry refused {request}{}: {text}", .cluster.as_ref().map(|c| format!(" of cluster {c}")).unwrap_or_default())]
    Server {
        /// The request that was refused (`Join`, `GetCluster`, …).
        request: &'static str,
        /// The cluster the request named, as the caller gave it (name in
        /// quotes, or ID in hex), for Join and GetCluster; the registry's
        /// own text (e.g. Go's `cannot find cluster with this ID`) does not
        /// say which.
        cluster: Option<String>,
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
    /// The cluster did not fill up before the deadline. The message names
    /// the cluster, the empty slots, the time waited (rounded to 0.1 s) and
    /// the usual cause: members booted one after another instead of
    /// concurrently.
    #[error(
        "cluster {cluster} incomplete after {:.1} s: {have} of {want} members, {} still empty; \
         members must boot concurrently (each boot waits up to its `wait` for the whole \
         cluster, so booting them one after another stalls on the first)",
        .waited.as_secs_f64(),
        slot_list(.missing)
    )]
    IncompleteCluster {
        /// The cluster: its name in quotes when known, else its ID (hex).
        cluster: String,
        /// Members gathered.
        have: usize,
        /// The cluster's maximum size.
        want: usize,
        /// The slots (join indexes) still empty, ascending.
        missing: Vec<usize>,
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

pub use crate::wire::msg::STORAGE_FAILURE;

/// `slot 3` or `slots 0, 2, 5-63`: indexes with runs shortened.
fn slot_list(slots: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < slots.len() {
        let mut j = i;
        while j + 1 < slots.len() && slots[j + 1] == slots[j] + 1 {
            j += 1;
        }
        parts.push(match j - i {
            0 => slots[i].to_string(),
            1 => format!("{}, {}", slots[i], slots[j]),
            _ => format!("{}-{}", slots[i], slots[j]),
        });
        i = j + 1;
    }
    let noun = if slots.len() == 1 { "slot" } else { "slots" };
    format!("{noun} {}", parts.join(", "))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_cluster_names_cluster_missing_slots_rounded_time_and_cause() {
        let e = ClientError::IncompleteCluster {
            cluster: "\"svc\"".into(),
            have: 2,
            want: 6,
            missing: vec![1, 3, 4, 5],
            waited: Duration::from_micros(2_004_786),
        };
        let s = e.to_string();
        assert!(
            s.starts_with("cluster \"svc\" incomplete after 2.0 s: 2 of 6 members, slots 1, 3-5 still empty; members must boot concurrently"),
            "{s}"
        );
    }

    #[test]
    fn slot_lists_shorten_runs() {
        assert_eq!(slot_list(&[7]), "slot 7");
        assert_eq!(slot_list(&[0, 1]), "slots 0, 1");
        assert_eq!(slot_list(&[0, 2, 3, 4, 9]), "slots 0, 2-4, 9");
    }
}
