//! The one request/answer pair of the registry.
//!
//! Why one pair: the session ([`crate::server::session`]) emits a
//! [`Request`], a [`Backend`](super::Backend) performs it, and the session
//! consumes the [`Answer`]. The connection loop, the fuzz driver and every
//! backend pass these values through without looking inside, so adding an
//! op means adding a variant here, a rule in [`super::rules`] and a row in
//! the session's table — not touching the I/O code.
//!
//! Targets are already validated when a request is built (a raw ClusterID
//! that cannot be an ID never reaches a backend), so a backend only has to
//! find rows.

use std::time::Duration;

use super::values::{ClusterFacts, MemberRecord, Selection};
use crate::wire::{NodeId, Which};

/// Which cluster a Join or GetCluster names, after validation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClusterTarget {
    /// By cluster ID.
    Id(NodeId),
    /// By cluster name (raw bytes, non-empty).
    Name(Box<[u8]>),
}

/// Member registration (spec §9.1): claim `id`, or get a fresh one, for the
/// holder of the sig key whose SPKI SHA-256 is `sig_hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    /// The ID the member asks for (`None`: assign a fresh one).
    pub id: Option<NodeId>,
    /// SHA-256 of the member's sig key (SPKI DER).
    pub sig_hash: [u8; 32],
}

/// Cluster creation (spec §9.2), idempotent by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Create {
    /// Cluster name, raw bytes as received.
    pub name: Vec<u8>,
    /// Requested size (clamped to 2..=64 by the rules).
    pub max_size: u32,
    /// Attribute bits, stored and returned as sent.
    pub attrs: u64,
    /// Endpoints each member must have.
    pub ep_count: u32,
    /// Lifetime after the last Join or GetCluster, ms (the negotiated TTL
    /// extension; `None`: the registry's default).
    pub ttl_ms: Option<u64>,
    /// The node creating it (the session's registered member): the
    /// cluster's owner, who may resize it and evict its members. `None`:
    /// no owner (only the operator may).
    pub owner: Option<NodeId>,
}

/// Joining a cluster (spec §9.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Join {
    /// The cluster to join.
    pub cluster: ClusterTarget,
    /// The member as other members will see it.
    pub record: MemberRecord,
    /// How many endpoints the member's token has.
    pub endpoints: usize,
}

/// Reading a cluster's member tokens (spec §9.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetCluster {
    /// The cluster to read.
    pub cluster: ClusterTarget,
    /// Which member slots are wanted.
    pub which: Which,
    /// Most bytes of encoded token fields the reply may carry.
    pub budget: usize,
    /// Hold the request (at most this long) until every wanted slot below
    /// the cluster's size has a committed member. Zero: answer at once.
    pub hold: Duration,
}

/// Deleting a cluster over the wire (an xlreg extension): allowed to a
/// member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    /// The cluster to delete.
    pub cluster: ClusterTarget,
    /// The member asking (registered in this session).
    pub by: NodeId,
}

/// Who asks for a change of a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum By {
    /// The registry's operator (admin API): allowed on every cluster.
    Operator,
    /// A registered node (over the wire): allowed as the rules say.
    Node(NodeId),
}

/// Which member an Evict removes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemberSlot {
    /// The member with this name (raw bytes).
    Name(Box<[u8]>),
    /// The member in this slot.
    Index(u32),
}

/// Changing a cluster's size (an xlreg extension): allowed to its creator
/// and the operator. Answered with [`Answer::Changed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resize {
    /// The cluster.
    pub cluster: ClusterTarget,
    /// The new size (2..=64); shrinking only over empty slots.
    pub size: u32,
    /// Who asks.
    pub by: By,
}

/// Removing a member from its slot (an xlreg extension): allowed to the
/// cluster's creator and the operator. Answered with [`Answer::Changed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evict {
    /// The cluster.
    pub cluster: ClusterTarget,
    /// The member to remove.
    pub member: MemberSlot,
    /// Who asks.
    pub by: By,
}

/// A member leaving its cluster (an xlreg extension): its slot frees.
/// Answered with [`Answer::Changed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leave {
    /// The cluster.
    pub cluster: ClusterTarget,
    /// The member leaving (registered in this session).
    pub by: NodeId,
}

/// Waiting for a cluster's next change (an xlreg extension): answered
/// with [`Answer::Watched`] once the cluster's committed version is above
/// `known`, or when the hold passes (with the current state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    /// The cluster.
    pub cluster: ClusterTarget,
    /// The version the watcher has (0: answer at once).
    pub known: u64,
    /// Hold the request at most this long for a newer version. Zero:
    /// answer at once.
    pub hold: Duration,
}

/// One registry request: as the session emits it, or as the operator
/// (delete by name) and the sweeper (expire) ask. Every backend performs
/// all of them through [`Backend::perform`](super::Backend::perform).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// See [`Register`].
    Register(Register),
    /// See [`Create`].
    Create(Create),
    /// See [`Join`].
    Join(Join),
    /// See [`GetCluster`].
    GetCluster(GetCluster),
    /// See [`Delete`].
    Delete(Delete),
    /// See [`Resize`].
    Resize(Resize),
    /// See [`Evict`].
    Evict(Evict),
    /// See [`Leave`].
    Leave(Leave),
    /// See [`Watch`].
    Watch(Watch),
    /// An operator's delete of the live cluster of this name (admin API):
    /// it is gone for every request, its slots freed, its name free for a
    /// new cluster. Answered with [`Answer::Deleted`].
    DeleteByName(Vec<u8>),
    /// The sweeper: remove at most this many clusters whose TTL ran out
    /// (they are already invisible to every request; this frees their
    /// storage) and store clusters' last activity so expiry survives a
    /// restart. Answered with [`Answer::Expired`].
    Expire(usize),
}

impl Request {
    /// The request's name as the server's metrics label it
    /// (`request_duration_seconds{op}`): the protocol message's name for
    /// the requests a client sends.
    pub fn op_name(&self) -> &'static str {
        match self {
            Request::Register(_) => "Member",
            Request::Create(_) => "Create",
            Request::Join(_) => "Join",
            Request::GetCluster(_) => "GetCluster",
            Request::Delete(_) => "DeleteCluster",
            Request::Resize(_) => "Resize",
            Request::Evict(_) => "Evict",
            Request::Leave(_) => "Leave",
            Request::Watch(_) => "Watch",
            Request::DeleteByName(_) => "DeleteByName",
            Request::Expire(_) => "Expire",
        }
    }

    /// Does this request only read (committed state), never write?
    pub fn is_read(&self) -> bool {
        matches!(self, Request::GetCluster(_) | Request::Watch(_))
    }

    /// The same request answered at once instead of held: `Some` only for a
    /// held GetCluster or Watch. The I/O layer uses it when shutting down,
    /// without having to know which requests can be held.
    pub fn unheld(&self) -> Option<Request> {
        match self {
            Request::GetCluster(g) if !g.hold.is_zero() => Some(Request::GetCluster(GetCluster {
                hold: Duration::ZERO,
                ..g.clone()
            })),
            Request::Watch(w) if !w.hold.is_zero() => Some(Request::Watch(Watch {
                hold: Duration::ZERO,
                ..w.clone()
            })),
            _ => None,
        }
    }
}

/// A successful Join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// The cluster joined.
    pub cluster: ClusterFacts,
    /// The member's slot (join order, from 0).
    pub index: usize,
}

/// A successful GetCluster: a consistent snapshot of one cluster's
/// committed members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Members {
    /// The cluster read (echoed in ClusterMembers).
    pub cluster_id: NodeId,
    /// The tokens returned, ready to append to a ClusterMembers body.
    pub selection: Selection,
    /// Did every wanted slot below the cluster's size have a member?
    /// (What a held GetCluster waits for.)
    pub complete: bool,
}

/// A cluster as a Watch sees it: every occupied slot's token, its size
/// and its version (committed state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    /// The cluster.
    pub cluster_id: NodeId,
    /// Its size.
    pub max_size: u32,
    /// Its version.
    pub version: u64,
    /// The tokens of the occupied slots, in slot order.
    pub selection: Selection,
}

/// The registry's answer to a [`Request`], one variant per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// To [`Request::Register`]: the ID now owned by the member.
    Registered(NodeId),
    /// To [`Request::Create`]: the cluster created (or the existing one of
    /// that name).
    Created(ClusterFacts),
    /// To [`Request::Join`].
    Joined(Joined),
    /// To [`Request::GetCluster`].
    Members(Members),
    /// To [`Request::Delete`] and [`Request::DeleteByName`]: the cluster
    /// deleted.
    Deleted(NodeId),
    /// To [`Request::Expire`]: how many clusters expired.
    Expired(usize),
    /// To [`Request::Resize`], [`Request::Evict`] and [`Request::Leave`]:
    /// the cluster's version after the request (unchanged when it changed
    /// nothing, as a resize to the same size).
    Changed(u64),
    /// To [`Request::Watch`].
    Watched(Watched),
}

/// A request whose answer has one type: what
/// [`BackendExt::call`](super::BackendExt::call) takes, so code that
/// performs one known request gets its typed answer.
pub trait Op: Into<Request> {
    /// The answer's payload.
    type Output;
    /// The payload of `answer`, or the answer back when it is not the one
    /// this request gets (a backend bug).
    fn output(answer: Answer) -> Result<Self::Output, Answer>;
}

/// [`Request::DeleteByName`] as a typed [`Op`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteByName(pub Vec<u8>);

/// [`Request::Expire`] as a typed [`Op`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expire(pub usize);

/// `From<$req> for Request` and `Op for $req`, answered by
/// `Answer::$answer($out)`.
macro_rules! op {
    ($req:ident, |$r:ident| $into:expr, $out:ty, $answer:ident) => {
        impl From<$req> for Request {
            fn from($r: $req) -> Request {
                $into
            }
        }
        impl Op for $req {
            type Output = $out;
            fn output(answer: Answer) -> Result<$out, Answer> {
                match answer {
                    Answer::$answer(v) => Ok(v),
                    other => Err(other),
                }
            }
        }
    };
}

op!(Register, |r| Request::Register(r), NodeId, Registered);
op!(Create, |r| Request::Create(r), ClusterFacts, Created);
op!(Join, |r| Request::Join(r), Joined, Joined);
op!(GetCluster, |r| Request::GetCluster(r), Members, Members);
op!(Delete, |r| Request::Delete(r), NodeId, Deleted);
op!(
    DeleteByName,
    |r| Request::DeleteByName(r.0),
    NodeId,
    Deleted
);
op!(Expire, |r| Request::Expire(r.0), usize, Expired);
op!(Resize, |r| Request::Resize(r), u64, Changed);
op!(Evict, |r| Request::Evict(r), u64, Changed);
op!(Leave, |r| Request::Leave(r), u64, Changed);
op!(Watch, |r| Request::Watch(r), Watched, Watched);
