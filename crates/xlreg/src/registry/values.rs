//! The registry's value types: what the rules decide on and record, what
//! a store persists, and the texts a refused request gets.
//!
//! Why a file of its own: requests ([`super::request`]), rules
//! ([`super::rules`]), restore (`restore.rs`) and every store use
//! these values; keeping them apart from the rules means none of those
//! modules has to import another in a circle.

use crate::wire::{NodeId, Which};

pub use crate::limits::{MAX_CLUSTER_NAME, MAX_CLUSTER_SIZE, MAX_ENDPOINT_COUNT, MIN_CLUSTER_SIZE};

/// Why a request was refused. Display is the ErrDesc sent to the client:
/// the Go server's string where it has one (spec §10), else a clear new one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// An ID registered before with another sig key.
    #[error("ID already registered to another key")]
    IdTaken,
    /// A member ID equal to a cluster's or the registry's ID.
    #[error("ID already in use")]
    IdInUse,
    /// Create without a name.
    #[error("cluster name must not be empty")]
    EmptyName,
    /// Create with a name longer than [`MAX_CLUSTER_NAME`].
    #[error("cluster name longer than {MAX_CLUSTER_NAME} bytes")]
    NameTooLong,
    /// Create with EndPointCount 0 or absent.
    #[error("EndPointCount must be at least 1")]
    NoEndpointCount,
    /// Create with an EndPointCount above the limit.
    #[error("EndPointCount must be at most {MAX_ENDPOINT_COUNT}")]
    TooManyEndpoints,
    /// Join naming no cluster in a session that has none.
    #[error("missing cluster name or ID")]
    MissingCluster,
    /// Join by an unknown name.
    #[error("cannot find cluster with this name")]
    NoSuchName,
    /// Join by an unknown ID.
    #[error("cannot find cluster with this ID")]
    NoSuchId,
    /// Join with a name already used by another member of the cluster.
    #[error("cluster member name already in use")]
    NameInUse,
    /// Join with an ID already used under another name in the cluster.
    #[error("cluster member id already in use")]
    MemberIdInUse,
    /// Join of a full cluster.
    #[error("cluster is full")]
    Full,
    /// Join by a member with no endpoints.
    #[error("cluster members must have at least one endPoint")]
    NoEndpoints,
    /// Join by a member with fewer endpoints than the cluster requires.
    #[error("member has {have} endPoints, cluster requires {want}")]
    TooFewEndpoints {
        /// Endpoints in the token.
        have: usize,
        /// Cluster's EndPointCount.
        want: u32,
    },
    /// GetCluster without a ClusterID.
    #[error("nil key parameter")]
    NilKey,
    /// GetCluster with a ClusterID under 8 bytes.
    #[error("Bytes*Key is too short")]
    KeyTooShort,
    /// GetCluster of an unknown cluster.
    #[error("doGetMsg: can't find cluster with ID {0}")]
    GetUnknown(String),
    /// Create when the registry holds its maximum number of clusters.
    #[error("registry limit reached: at most {0} clusters (max-clusters)")]
    TooManyClusters(usize),
    /// Member from an address that registered too many IDs recently.
    #[error("registry limit reached: at most {0} registrations per source address per hour (max-registrations-per-hour)")]
    TooManyRegistrations(u32),
    /// Delete (admin) of a name no live cluster has.
    #[error("cannot find cluster {0}")]
    NoSuchCluster(String),
    /// Delete (wire) by a member not in the cluster.
    #[error("only a member of the cluster may delete it")]
    NotAMember,
    /// An operation this backend does not implement.
    #[error("this registry backend cannot {0}")]
    Unsupported(&'static str),
    /// Resize to a size outside [`MIN_CLUSTER_SIZE`]..=[`MAX_CLUSTER_SIZE`].
    #[error("size {0} is not in {MIN_CLUSTER_SIZE}..={MAX_CLUSTER_SIZE}")]
    SizeOutOfRange(u32),
    /// Resize or Evict by a node that did not create the cluster (or of a
    /// cluster with no recorded creator, which only the operator may
    /// change).
    #[error("only the cluster's creator may resize or evict")]
    NotOwner,
    /// Resize below a slot that holds a member.
    #[error(
        "cannot shrink cluster to {size}: slot {slot} is held by member {name} (evict it first)"
    )]
    ShrinkOverMember {
        /// The size asked for.
        size: u32,
        /// The lowest occupied slot at or above it.
        slot: usize,
        /// Its member's name (lossy UTF-8).
        name: String,
    },
    /// Evict of a name no member of the cluster has.
    #[error("no member named {0} in this cluster")]
    NoMemberNamed(String),
    /// Evict of an empty slot (or one beyond the cluster's size).
    #[error("no member in slot {0} of this cluster")]
    NoMemberInSlot(u32),
    /// Evict naming no member at all.
    #[error("Evict needs member_name or member_index")]
    NoEvictee,
    /// Leave by a node that is not a member of the cluster.
    #[error("not a member of this cluster")]
    NotInCluster,
}

/// When clusters expire and how many may exist: the operator's settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// TTL in ms for clusters whose creator set none (`None`: never expire).
    pub cluster_ttl_ms: Option<u64>,
    /// TTL in ms for clusters created with the Ephemeral attribute bit and
    /// no TTL of their own (`None`: use `cluster_ttl_ms`).
    pub ephemeral_ttl_ms: Option<u64>,
    /// Most live clusters (`None`: no limit).
    pub max_clusters: Option<usize>,
}

/// The Ephemeral cluster attribute bit (spec §11.4).
pub const ATTR_EPHEMERAL: u64 = 1;

/// Stored data the rules refuse on load ([`Registry::restore`](super::Registry::restore)): the text
/// names the record and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RestoreError(pub String);

/// Who owns an ID in the shared ID space (spec §11.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdOwner {
    /// The registry itself.
    Registry,
    /// A cluster.
    Cluster,
    /// A member, identified by the SHA-256 of its sig key (SPKI DER).
    Member([u8; 32]),
}

/// How many changes of a cluster are kept (in memory and in every store):
/// the last ones, oldest dropped first.
pub const HISTORY_LEN: usize = 16;

/// What a committed change of a cluster did (its history's `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The cluster was created (version 1).
    Create,
    /// A new member took a slot.
    Join,
    /// A member re-joined its slot with a new token.
    Rejoin,
    /// A member left its slot.
    Leave,
    /// A member was removed from its slot.
    Evict,
    /// The cluster's size changed.
    Resize,
}

impl ChangeKind {
    /// Every kind, in declaration order.
    pub const ALL: [ChangeKind; 6] = [
        ChangeKind::Create,
        ChangeKind::Join,
        ChangeKind::Rejoin,
        ChangeKind::Leave,
        ChangeKind::Evict,
        ChangeKind::Resize,
    ];

    /// The lowercase name stored and shown (`join`, `resize`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Join => "join",
            ChangeKind::Rejoin => "rejoin",
            ChangeKind::Leave => "leave",
            ChangeKind::Evict => "evict",
            ChangeKind::Resize => "resize",
        }
    }

    /// The kind named `s` ([`ChangeKind::as_str`]).
    pub fn parse(s: &str) -> Option<ChangeKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Who made a change: the cluster's creator, the operator (admin API), or
/// a member (its own join or leave).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The node that created the cluster.
    Owner,
    /// The registry's operator (admin API).
    Operator,
    /// A member, about itself.
    Member,
}

impl Actor {
    /// The lowercase name stored and shown (`owner`, `admin`, `member`).
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Owner => "owner",
            Actor::Operator => "admin",
            Actor::Member => "member",
        }
    }

    /// The actor named `s` ([`Actor::as_str`]).
    pub fn parse(s: &str) -> Option<Actor> {
        [Actor::Owner, Actor::Operator, Actor::Member]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// One committed change of a cluster, as its history keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The cluster's version after the change.
    pub version: u64,
    /// When (Unix ms).
    pub at_ms: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// To what: `slot 1 (m01)` for a member, `3 -> 5` for a resize.
    pub detail: Box<str>,
    /// Who did it.
    pub by: Actor,
}

/// One member of a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    /// Node ID.
    pub id: NodeId,
    /// Name, raw bytes.
    pub name: Box<[u8]>,
    /// The encoded `Token` (no DigSig) exactly as ClusterMembers sends it.
    pub token: Box<[u8]>,
}

/// One slot of a cluster: its committed member (what readers see) and a
/// decided change not yet committed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Slot {
    /// The committed member, if any.
    pub(super) shown: Option<MemberRecord>,
    /// Decided, not yet committed: `Some(None)` empties the slot.
    pub(super) next: Option<Option<MemberRecord>>,
}

impl Slot {
    /// The member the rules see (decided, committed or not).
    pub(super) fn decided(&self) -> Option<&MemberRecord> {
        match &self.next {
            Some(n) => n.as_ref(),
            None => self.shown.as_ref(),
        }
    }
}

/// A cluster: its size, its members in stable slots (a slot emptied by a
/// leave or an evict stays a hole until a join fills it), its version and
/// the last [`HISTORY_LEN`] changes.
///
/// Public fields and methods describe the committed cluster (what readers
/// see); the rules also see decisions not yet committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// Cluster ID.
    pub id: NodeId,
    /// Name, raw bytes, unique in the registry.
    pub name: Box<[u8]>,
    /// Attribute bits (stored as requested, returned as stored).
    pub attrs: u64,
    /// Maximum members, 2..=64 (committed).
    pub max_size: u32,
    /// Endpoints each member must have.
    pub ep_count: u32,
    /// Slots by index; none at or beyond the last occupied one.
    pub(super) slots: Vec<Slot>,
    /// The version (1 at creation, +1 per committed change).
    pub version: u64,
    /// The node that created it (`None`: stored before owners were).
    pub owner: Option<NodeId>,
    /// Recent changes, oldest first; entries above `version` are decided
    /// but not committed.
    pub(super) history: std::collections::VecDeque<HistoryEntry>,
    /// A size decided but not yet committed.
    pub(super) next_size: Option<u32>,
    /// A version decided but not yet committed.
    pub(super) next_version: Option<u64>,
    /// Is the cluster itself committed?
    pub(super) committed: bool,
    /// TTL the creator asked for (ms), if any.
    pub ttl_ms: Option<u64>,
    /// When it was created (Unix ms; 0 when unknown).
    pub created_ms: u64,
    /// Last Create, Join or GetCluster that touched it (Unix ms).
    pub last_active_ms: u64,
    /// `last_active_ms` as last written to the store.
    pub(super) persisted_active_ms: u64,
}

impl Cluster {
    /// Committed members with their slots, in slot order.
    pub fn members(&self) -> impl Iterator<Item = (usize, &MemberRecord)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.shown.as_ref().map(|m| (i, m)))
    }
    /// The committed member in slot `index`, if any.
    pub fn member(&self, index: usize) -> Option<&MemberRecord> {
        self.slots.get(index).and_then(|s| s.shown.as_ref())
    }
    /// Number of committed members.
    pub fn len(&self) -> usize {
        self.members().count()
    }
    /// No committed member yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bits of the slots holding committed members.
    pub fn present(&self) -> Which {
        let mut w = Which(0);
        for (i, _) in self.members().take_while(|(i, _)| *i < 64) {
            w.insert(i);
        }
        w
    }
    /// The committed history, oldest first (at most [`HISTORY_LEN`]).
    pub fn history(&self) -> impl Iterator<Item = &HistoryEntry> {
        let v = self.version;
        self.history.iter().filter(move |e| e.version <= v)
    }
    /// The size the rules decide on (committed or not).
    pub(super) fn size(&self) -> u32 {
        self.next_size.unwrap_or(self.max_size)
    }
    /// The version the rules decide on (committed or not).
    pub(super) fn decided_version(&self) -> u64 {
        self.next_version.unwrap_or(self.version)
    }
    /// The member the rules see in slot `index`.
    pub(super) fn decided(&self, index: usize) -> Option<&MemberRecord> {
        self.slots.get(index).and_then(Slot::decided)
    }
    /// The slot holding a member (decided) that matches `f`.
    pub(super) fn find_decided(&self, f: impl Fn(&MemberRecord) -> bool) -> Option<usize> {
        self.slots.iter().position(|s| s.decided().is_some_and(&f))
    }
    /// Decide that slot `index` holds `m` (`None`: empty).
    pub(super) fn set_slot(&mut self, index: usize, m: Option<MemberRecord>) {
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, Slot::default);
        }
        self.slots[index].next = Some(m);
    }
    /// The committed state alone (nothing decided pending).
    pub(super) fn committed_copy(&self) -> Cluster {
        let mut c = Cluster {
            slots: self
                .slots
                .iter()
                .map(|s| Slot {
                    shown: s.shown.clone(),
                    next: None,
                })
                .collect(),
            history: self.history().cloned().collect(),
            next_size: None,
            next_version: None,
            ..self.clone()
        };
        c.trim_slots();
        c
    }
    /// Drop trailing slots that are empty and have nothing decided.
    pub(super) fn trim_slots(&mut self) {
        while self
            .slots
            .last()
            .is_some_and(|s| s.shown.is_none() && s.next.is_none())
        {
            self.slots.pop();
        }
    }
    /// Does every index requested (below max_size) exist yet?
    pub fn satisfies(&self, which: Which) -> bool {
        which
            .and(Which::low_n(self.max_size as usize))
            .minus(self.present())
            .is_empty()
    }
}

/// The cluster facts a CreateReply/JoinReply carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterFacts {
    /// Cluster ID.
    pub id: NodeId,
    /// Maximum members.
    pub max_size: u32,
    /// Attribute bits.
    pub attrs: u64,
    /// Endpoints per member.
    pub ep_count: u32,
}

/// A change to persist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new ID ownership.
    NewId {
        /// The ID.
        id: NodeId,
        /// Its owner.
        owner: IdOwner,
    },
    /// A new cluster (its ID is also a NewId).
    NewCluster {
        /// Cluster ID.
        id: NodeId,
        /// Name.
        name: Box<[u8]>,
        /// Attrs.
        attrs: u64,
        /// Max size.
        max_size: u32,
        /// Endpoint count.
        ep_count: u32,
        /// TTL the creator asked for (ms).
        ttl_ms: Option<u64>,
        /// Creation time (Unix ms).
        created_ms: u64,
        /// Last activity (Unix ms; equals `created_ms` when written, moved
        /// on by [`Change::Touch`]; 0 = unknown, counts as load time).
        last_active_ms: u64,
        /// Its version (1 when created; as stored when loaded).
        version: u64,
        /// The node that created it (`None`: stored before owners were).
        owner: Option<NodeId>,
    },
    /// A cluster removed (deleted or expired), with its members.
    DeleteCluster {
        /// Cluster ID.
        id: NodeId,
    },
    /// A cluster's last activity moved on.
    Touch {
        /// Cluster ID.
        id: NodeId,
        /// Unix ms.
        at_ms: u64,
    },
    /// A member appended at `index`.
    NewMember {
        /// Cluster.
        cluster: NodeId,
        /// Slot.
        index: usize,
        /// The record.
        record: MemberRecord,
    },
    /// A member that re-joined (same ID and key) with a new token.
    ReplaceMember {
        /// Cluster.
        cluster: NodeId,
        /// Slot.
        index: usize,
        /// The new record.
        record: MemberRecord,
    },
    /// A member left or was evicted: its slot is empty.
    RemoveMember {
        /// Cluster.
        cluster: NodeId,
        /// Slot.
        index: usize,
    },
    /// The cluster's size changed.
    Resize {
        /// Cluster.
        cluster: NodeId,
        /// The new size.
        max_size: u32,
    },
    /// A change of the cluster committed as `entry.version`: the cluster
    /// takes that version, and the entry joins its history (the store
    /// keeps the last [`HISTORY_LEN`]).
    Logged {
        /// Cluster.
        cluster: NodeId,
        /// The history entry.
        entry: HistoryEntry,
    },
}

impl Change {
    /// The cluster this change is about (`None` for an ID).
    pub fn cluster(&self) -> Option<&NodeId> {
        match self {
            Change::NewId { .. } => None,
            Change::NewCluster { id, .. }
            | Change::DeleteCluster { id }
            | Change::Touch { id, .. } => Some(id),
            Change::NewMember { cluster, .. }
            | Change::ReplaceMember { cluster, .. }
            | Change::RemoveMember { cluster, .. }
            | Change::Resize { cluster, .. }
            | Change::Logged { cluster, .. } => Some(cluster),
        }
    }
}

/// The result of a GetCluster: the bits returned and the body bytes of the
/// tokens, ready to append to a ClusterMembers message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Bits of the tokens returned.
    pub which: Which,
    /// Concatenated `Tokens` fields (key, length, token) in index order.
    pub token_fields: Vec<u8>,
}
