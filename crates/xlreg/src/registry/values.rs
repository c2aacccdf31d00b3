//! The registry's value types: what the rules decide on and record, what
//! a store persists, and the texts a refused request gets.
//!
//! Why a file of its own: requests ([`super::request`]), rules
//! ([`super::rules`]), restore (`restore.rs`) and every store use
//! these values; keeping them apart from the rules means none of those
//! modules has to import another in a circle.

use crate::wire::{NodeId, Which};

/// Smallest and largest cluster size (spec §9.2: clamp).
pub const MIN_CLUSTER_SIZE: u32 = 2;
/// Largest cluster size: `Which` has 64 bits.
pub const MAX_CLUSTER_SIZE: u32 = 64;
/// Largest accepted EndPointCount.
pub const MAX_ENDPOINT_COUNT: u32 = 16;
/// Longest accepted cluster name, bytes.
pub const MAX_CLUSTER_NAME: usize = 256;

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

/// A cluster: fixed size, members in join order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// Cluster ID.
    pub id: NodeId,
    /// Name, raw bytes, unique in the registry.
    pub name: Box<[u8]>,
    /// Attribute bits (stored as requested, returned as stored).
    pub attrs: u64,
    /// Maximum members, 2..=64.
    pub max_size: u32,
    /// Endpoints each member must have.
    pub ep_count: u32,
    /// Members in join order (index = position); may include members not
    /// yet committed.
    pub(super) members: Vec<MemberRecord>,
    /// How many of `members` are committed (visible to readers).
    pub(super) visible: usize,
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
    /// Committed members, in index order.
    pub fn members(&self) -> &[MemberRecord] {
        &self.members[..self.visible]
    }
    /// Number of committed members.
    pub fn len(&self) -> usize {
        self.visible
    }
    /// No committed member yet.
    pub fn is_empty(&self) -> bool {
        self.visible == 0
    }
    /// Bits of the committed members.
    pub fn present(&self) -> Which {
        Which::low_n(self.visible)
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
