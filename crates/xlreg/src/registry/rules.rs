//! The registry's rules, as plain functions over in-memory state: who may
//! register which ID, how clusters are created and joined, and which tokens
//! a GetCluster returns — the semantics of spec §9 (one section per
//! request) with the fixes of spec §16 (the Go server's bugs): a Join
//! beyond the cluster's size is refused (`cluster is full`), the duplicate
//! check uses the member's own ID, so a member whose ID equals its
//! cluster's no longer blocks the cluster (§16.10), EndPointCount must be
//! 1..=16, a Create of an existing name returns that cluster unchanged
//! (§16.11), and "check, then insert" is never split by another request
//! (§16.25, data races).
//!
//! No I/O here. [`Registry`] decides ([`Registry::decide`]) and records a
//! [`Change`]; the store persists the changes of a batch in one
//! transaction, and only then are they made visible to readers
//! ([`Registry::commit`]) or undone ([`Registry::rollback`]). Members and
//! clusters are append-only, which makes both cheap.
//!
//! A `Registry` need not hold everything: a database backend builds one
//! from the rows a request touches ([`Registry::restore_change`]) and runs
//! the same functions; stored data goes through the same checks on load
//! ([`Registry::restore`]).

use std::collections::HashMap;

use super::request::{Answer, ClusterTarget, GetCluster, Joined, Members, Request};
use crate::wire::msg::token_field_len;
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
}

/// Stored data the rules refuse on load ([`Registry::restore`]): the text
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
    members: Vec<MemberRecord>,
    /// How many of `members` are committed (visible to readers).
    visible: usize,
    /// Is the cluster itself committed?
    committed: bool,
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

/// The whole in-memory registry.
#[derive(Debug, Default)]
pub struct Registry {
    clusters: HashMap<NodeId, Cluster>,
    by_name: HashMap<Box<[u8]>, NodeId>,
    ids: HashMap<NodeId, IdOwner>,
    /// Uncommitted changes in order, for commit/rollback.
    pending: Vec<Change>,
}

/// The target of a GetCluster from its raw fields, with the Go server's
/// texts: no ClusterID is `nil key parameter`, one under 8 bytes is too
/// short, one that cannot be an ID is an unknown cluster. An xlreg
/// extension: without a ClusterID, a non-empty ClusterName reads the
/// cluster of that name.
pub fn get_target(
    cluster_id: Option<&[u8]>,
    cluster_name: Option<&[u8]>,
) -> Result<ClusterTarget, RuleError> {
    match (cluster_id, cluster_name) {
        (None, Some(name)) if !name.is_empty() => Ok(ClusterTarget::Name(name.into())),
        (None, _) => Err(RuleError::NilKey),
        (Some(raw), _) if raw.len() < 8 => Err(RuleError::KeyTooShort),
        (Some(raw), _) => NodeId::from_bytes(raw)
            .map(ClusterTarget::Id)
            .map_err(|_| RuleError::GetUnknown(hex::encode(raw))),
    }
}

/// The target of a Join from its raw fields: the ClusterID if sent, else
/// a non-empty ClusterName, else the cluster this session created.
pub fn join_target(
    cluster_id: Option<&[u8]>,
    cluster_name: Option<&[u8]>,
    created: Option<NodeId>,
) -> Result<ClusterTarget, RuleError> {
    match (cluster_id, cluster_name) {
        (Some(raw), _) => NodeId::from_bytes(raw)
            .map(ClusterTarget::Id)
            .map_err(|_| RuleError::NoSuchId),
        (None, Some(name)) if !name.is_empty() => Ok(ClusterTarget::Name(name.into())),
        _ => created
            .map(ClusterTarget::Id)
            .ok_or(RuleError::MissingCluster),
    }
}

/// The tokens of `c`'s committed members selected by `which`, in index
/// order, stopping before the encoded tokens would exceed `budget` bytes.
pub fn select_members(c: &Cluster, which: Which, budget: usize) -> Selection {
    let mut sel = Selection::default();
    let n = c.len().min(64);
    for i in which.and(Which::low_n(n)).iter() {
        let t = &c.members[i].token;
        let need = token_field_len(t.len());
        if sel.token_fields.len() + need > budget {
            break;
        }
        sel.token_fields.extend_from_slice(&[0xaa, 0x01]);
        prost::encoding::encode_varint(t.len() as u64, &mut sel.token_fields);
        sel.token_fields.extend_from_slice(t);
        sel.which.insert(i);
    }
    sel
}

impl Registry {
    /// Decide one request: the rule functions every backend runs, on the
    /// whole registry (the in-process service) or on the rows a database
    /// backend locked and loaded ([`Registry::restore`]). Writes are
    /// recorded in [`Registry::pending`] until [`Registry::commit`].
    pub fn decide(&mut self, req: Request) -> Result<Answer, RuleError> {
        match req {
            Request::Register(r) => self.register(r.id, r.sig_hash).map(Answer::Registered),
            Request::Create(c) => self
                .create(&c.name, c.max_size, c.attrs, c.ep_count)
                .map(Answer::Created),
            Request::Join(j) => {
                let id = self.find(&j.cluster)?;
                let (cluster, index) = self.join(&id, j.record, j.endpoints)?;
                Ok(Answer::Joined(Joined { cluster, index }))
            }
            Request::GetCluster(g) => self.members(&g).map(Answer::Members),
        }
    }

    /// A Join's cluster (committed or not): unknown IDs and names get the
    /// Go server's texts.
    pub fn find(&self, target: &ClusterTarget) -> Result<NodeId, RuleError> {
        match target {
            ClusterTarget::Id(id) => self
                .clusters
                .contains_key(id)
                .then_some(*id)
                .ok_or(RuleError::NoSuchId),
            ClusterTarget::Name(n) => self.by_name.get(n).copied().ok_or(RuleError::NoSuchName),
        }
    }

    /// GetCluster on committed state: the selected tokens and whether the
    /// cluster is complete for `which`.
    pub fn members(&self, req: &GetCluster) -> Result<Members, RuleError> {
        let c = match &req.cluster {
            ClusterTarget::Id(id) => self
                .clusters
                .get(id)
                .filter(|c| c.committed)
                .ok_or_else(|| RuleError::GetUnknown(hex::encode(id.as_bytes())))?,
            ClusterTarget::Name(n) => self
                .by_name
                .get(n)
                .and_then(|id| self.clusters.get(id))
                .filter(|c| c.committed)
                .ok_or(RuleError::NoSuchName)?,
        };
        Ok(Members {
            cluster_id: c.id,
            selection: select_members(c, req.which, req.budget),
            complete: c.satisfies(req.which),
        })
    }

    /// A registry owned by `own_id` holding `changes` as committed: how a
    /// store's contents are loaded. Every change is checked against the
    /// rules a request would have met (sizes, endpoint counts, names, slot
    /// order, ID owners), so a corrupt or foreign database is refused
    /// with the record named instead of being served.
    pub fn restore(
        own_id: NodeId,
        changes: impl IntoIterator<Item = Change>,
    ) -> Result<Registry, RestoreError> {
        let mut r = Registry::new(own_id);
        for ch in changes {
            r.restore_change(ch)?;
        }
        Ok(r)
    }

    /// Apply one stored change as committed, after checking it (see
    /// [`Registry::restore`]). A database backend uses this to build a
    /// partial registry from the rows it loaded for one request.
    pub fn restore_change(&mut self, ch: Change) -> Result<(), RestoreError> {
        let bad = |s: String| Err(RestoreError(s));
        match ch {
            Change::NewId { id, owner } => match (self.ids.get(&id), owner) {
                (_, IdOwner::Registry) => bad(format!("ID {id} stored as a registry's own ID")),
                (Some(&o), _) if o != owner => bad(format!("ID {id} stored with two owners")),
                _ => {
                    self.ids.insert(id, owner);
                    Ok(())
                }
            },
            Change::NewCluster {
                id,
                name,
                attrs,
                max_size,
                ep_count,
            } => {
                if name.is_empty() || name.len() > MAX_CLUSTER_NAME {
                    return bad(format!("cluster {id} has a name of {} bytes", name.len()));
                }
                if !(MIN_CLUSTER_SIZE..=MAX_CLUSTER_SIZE).contains(&max_size)
                    || !(1..=MAX_ENDPOINT_COUNT).contains(&ep_count)
                {
                    return bad(format!(
                        "cluster {id} has size {max_size} / endpoint count {ep_count} \
                         (allowed: {MIN_CLUSTER_SIZE}..={MAX_CLUSTER_SIZE} / 1..={MAX_ENDPOINT_COUNT})"
                    ));
                }
                match self.ids.get(&id) {
                    Some(IdOwner::Cluster) | None => {}
                    Some(_) => return bad(format!("cluster {id} has an ID owned by another")),
                }
                if self.clusters.contains_key(&id) || self.by_name.contains_key(&name) {
                    return bad(format!("cluster {id} stored twice (by ID or name)"));
                }
                self.ids.insert(id, IdOwner::Cluster);
                self.by_name.insert(name.clone(), id);
                self.clusters.insert(
                    id,
                    Cluster {
                        id,
                        name,
                        attrs,
                        max_size,
                        ep_count,
                        members: Vec::new(),
                        visible: 0,
                        committed: true,
                    },
                );
                Ok(())
            }
            Change::NewMember {
                cluster,
                index,
                record,
            } => {
                let Some(c) = self.clusters.get_mut(&cluster) else {
                    return bad(format!("member of unknown cluster {cluster}"));
                };
                if index != c.members.len() {
                    return bad(format!(
                        "cluster {cluster}: member slot {index} out of sequence"
                    ));
                }
                if c.members.len() >= c.max_size as usize {
                    return bad(format!(
                        "cluster {cluster} has more members than its size {}",
                        c.max_size
                    ));
                }
                if c.members
                    .iter()
                    .any(|m| m.id == record.id || m.name == record.name)
                {
                    return bad(format!(
                        "cluster {cluster}: slot {index} repeats a member's ID or name"
                    ));
                }
                c.members.push(record);
                c.visible = c.members.len();
                Ok(())
            }
            Change::ReplaceMember {
                cluster,
                index,
                record,
            } => match self
                .clusters
                .get_mut(&cluster)
                .and_then(|c| c.members.get_mut(index))
            {
                Some(m) if m.id == record.id && m.name == record.name => {
                    *m = record;
                    Ok(())
                }
                _ => bad(format!(
                    "cluster {cluster}: replacement of slot {index} matches no member"
                )),
            },
        }
    }

    /// An empty registry owning `own_id`.
    pub fn new(own_id: NodeId) -> Self {
        let mut r = Registry::default();
        r.ids.insert(own_id, IdOwner::Registry);
        r
    }

    /// Look up a cluster (committed or not).
    pub fn cluster(&self, id: &NodeId) -> Option<&Cluster> {
        self.clusters.get(id)
    }

    /// Number of committed clusters.
    pub fn cluster_count(&self) -> usize {
        self.clusters.values().filter(|c| c.committed).count()
    }

    /// Owner of an ID, if known.
    pub fn id_owner(&self, id: &NodeId) -> Option<IdOwner> {
        self.ids.get(id).copied()
    }

    /// Changes decided but not yet committed.
    pub fn pending(&self) -> &[Change] {
        &self.pending
    }

    fn fresh_id(&self) -> NodeId {
        loop {
            let id = NodeId::random();
            if !self.ids.contains_key(&id) {
                return id;
            }
        }
    }

    /// Member registration: claim `requested` (or get a fresh ID) for the
    /// holder of the sig key whose SPKI SHA-256 is `sig_hash`. The same key
    /// may register its ID again (a member restarting).
    pub fn register(
        &mut self,
        requested: Option<NodeId>,
        sig_hash: [u8; 32],
    ) -> Result<NodeId, RuleError> {
        let owner = IdOwner::Member(sig_hash);
        match requested {
            Some(id) => match self.ids.get(&id) {
                Some(IdOwner::Member(h)) if *h == sig_hash => Ok(id),
                Some(IdOwner::Member(_)) => Err(RuleError::IdTaken),
                Some(_) => Err(RuleError::IdInUse),
                None => {
                    self.ids.insert(id, owner);
                    self.pending.push(Change::NewId { id, owner });
                    Ok(id)
                }
            },
            None => {
                let id = self.fresh_id();
                self.ids.insert(id, owner);
                self.pending.push(Change::NewId { id, owner });
                Ok(id)
            }
        }
    }

    /// Create a cluster, or return the existing one of that name
    /// (idempotent, spec §16.11). Size is clamped to [2, 64].
    pub fn create(
        &mut self,
        name: &[u8],
        max_size: u32,
        attrs: u64,
        ep_count: u32,
    ) -> Result<ClusterFacts, RuleError> {
        if name.is_empty() {
            return Err(RuleError::EmptyName);
        }
        if name.len() > MAX_CLUSTER_NAME {
            return Err(RuleError::NameTooLong);
        }
        if let Some(id) = self.by_name.get(name) {
            return Ok(self.info(&self.clusters[id]));
        }
        if ep_count == 0 {
            return Err(RuleError::NoEndpointCount);
        }
        if ep_count > MAX_ENDPOINT_COUNT {
            return Err(RuleError::TooManyEndpoints);
        }
        let id = self.fresh_id();
        let c = Cluster {
            id,
            name: name.into(),
            attrs,
            max_size: max_size.clamp(MIN_CLUSTER_SIZE, MAX_CLUSTER_SIZE),
            ep_count,
            members: Vec::new(),
            visible: 0,
            committed: false,
        };
        let info = self.info(&c);
        self.pending.push(Change::NewId {
            id,
            owner: IdOwner::Cluster,
        });
        self.pending.push(Change::NewCluster {
            id,
            name: c.name.clone(),
            attrs: c.attrs,
            max_size: c.max_size,
            ep_count,
        });
        self.ids.insert(id, IdOwner::Cluster);
        self.by_name.insert(c.name.clone(), id);
        self.clusters.insert(id, c);
        Ok(info)
    }

    fn info(&self, c: &Cluster) -> ClusterFacts {
        ClusterFacts {
            id: c.id,
            max_size: c.max_size,
            attrs: c.attrs,
            ep_count: c.ep_count,
        }
    }

    /// Join `cluster` with `record` having `endpoints` endpoints. A member
    /// already in the cluster under the same ID and name re-joins in its
    /// slot (its token is replaced). Returns the cluster facts and the slot.
    pub fn join(
        &mut self,
        cluster: &NodeId,
        record: MemberRecord,
        endpoints: usize,
    ) -> Result<(ClusterFacts, usize), RuleError> {
        let c = self.clusters.get_mut(cluster).ok_or(RuleError::NoSuchId)?;
        let info = ClusterFacts {
            id: c.id,
            max_size: c.max_size,
            attrs: c.attrs,
            ep_count: c.ep_count,
        };
        if endpoints == 0 {
            return Err(RuleError::NoEndpoints);
        }
        if endpoints < c.ep_count as usize {
            return Err(RuleError::TooFewEndpoints {
                have: endpoints,
                want: c.ep_count,
            });
        }
        if let Some(i) = c.members.iter().position(|m| m.id == record.id) {
            if c.members[i].name != record.name {
                return Err(RuleError::MemberIdInUse);
            }
            if c.members[i].token != record.token {
                self.pending.push(Change::ReplaceMember {
                    cluster: *cluster,
                    index: i,
                    record,
                });
            }
            return Ok((info, i));
        }
        if c.members.iter().any(|m| m.name == record.name) {
            return Err(RuleError::NameInUse);
        }
        if c.members.len() >= c.max_size as usize {
            return Err(RuleError::Full);
        }
        let index = c.members.len();
        c.members.push(record.clone());
        self.pending.push(Change::NewMember {
            cluster: *cluster,
            index,
            record,
        });
        Ok((info, index))
    }

    /// Make every pending change visible (after the store committed them).
    pub fn commit(&mut self) -> Vec<Change> {
        let changes = std::mem::take(&mut self.pending);
        for ch in &changes {
            match ch {
                Change::NewCluster { id, .. } => {
                    if let Some(c) = self.clusters.get_mut(id) {
                        c.committed = true;
                    }
                }
                Change::NewMember { cluster, index, .. } => {
                    if let Some(c) = self.clusters.get_mut(cluster) {
                        c.visible = c.visible.max(index + 1);
                    }
                }
                Change::ReplaceMember {
                    cluster,
                    index,
                    record,
                } => {
                    if let Some(m) = self
                        .clusters
                        .get_mut(cluster)
                        .and_then(|c| c.members.get_mut(*index))
                    {
                        *m = record.clone();
                    }
                }
                Change::NewId { .. } => {}
            }
        }
        changes
    }

    /// Undo every pending change (the store failed to commit them).
    pub fn rollback(&mut self) {
        for ch in std::mem::take(&mut self.pending).into_iter().rev() {
            match ch {
                Change::NewId { id, .. } => {
                    self.ids.remove(&id);
                }
                Change::NewCluster { id, name, .. } => {
                    self.clusters.remove(&id);
                    self.by_name.remove(&name);
                }
                Change::NewMember { cluster, index, .. } => {
                    if let Some(c) = self.clusters.get_mut(&cluster) {
                        c.members.truncate(index);
                    }
                }
                Change::ReplaceMember { .. } => {}
            }
        }
    }

    /// Every known ID and its owner, the registry's own included (copies).
    pub fn ids(&self) -> impl Iterator<Item = (&NodeId, &IdOwner)> {
        self.ids.iter()
    }

    /// Every committed cluster (for listings and tests).
    pub fn clusters(&self) -> impl Iterator<Item = &Cluster> {
        self.clusters.values().filter(|c| c.committed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u8, name: &str) -> MemberRecord {
        MemberRecord {
            id: NodeId::from_bytes(&[id; 20]).unwrap(),
            name: name.as_bytes().into(),
            token: format!("token-{id}-{name}").into_bytes().into(),
        }
    }

    fn reg() -> Registry {
        Registry::new(NodeId::from_bytes(&[0xee; 20]).unwrap())
    }

    /// GetCluster by raw ClusterID, as a session sends it.
    fn select(
        r: &Registry,
        raw: Option<&[u8]>,
        which: Which,
        budget: usize,
    ) -> Result<Selection, RuleError> {
        let cluster = get_target(raw, None)?;
        let req = GetCluster {
            cluster,
            which,
            budget,
            hold: std::time::Duration::ZERO,
        };
        r.members(&req).map(|m| m.selection)
    }

    /// A Join's target by raw ClusterID or name, as a session sends it.
    fn resolve(r: &Registry, id: Option<&[u8]>, name: Option<&[u8]>) -> Result<NodeId, RuleError> {
        r.find(&join_target(id, name, None)?)
    }

    #[test]
    fn create_clamps_size_and_is_idempotent() {
        let mut r = reg();
        let a = r.create(b"a", 0, 5, 1).unwrap();
        assert_eq!(a.max_size, 2);
        assert_eq!(a.attrs, 5, "stored attrs equal the replied ones");
        assert_eq!(r.create(b"b", 1000, 0, 1).unwrap().max_size, 64);
        let again = r.create(b"a", 9, 0, 3).unwrap();
        assert_eq!(again, a, "existing name returns the existing cluster");
        assert_eq!(r.create(b"", 3, 0, 1), Err(RuleError::EmptyName));
        assert_eq!(r.create(b"c", 3, 0, 0), Err(RuleError::NoEndpointCount));
        assert_eq!(r.create(b"c", 3, 0, 17), Err(RuleError::TooManyEndpoints));
    }

    #[test]
    fn join_enforces_capacity_names_and_own_id() {
        let mut r = reg();
        let c = r.create(b"c", 2, 0, 1).unwrap().id;
        assert_eq!(r.join(&c, rec(1, "a"), 1).unwrap().1, 0);
        assert_eq!(r.join(&c, rec(2, "a"), 1), Err(RuleError::NameInUse));
        assert_eq!(r.join(&c, rec(1, "z"), 1), Err(RuleError::MemberIdInUse));
        assert_eq!(r.join(&c, rec(2, "b"), 0), Err(RuleError::NoEndpoints));
        assert_eq!(r.join(&c, rec(2, "b"), 1).unwrap().1, 1);
        assert_eq!(r.join(&c, rec(3, "c"), 1), Err(RuleError::Full));
        // Same ID and name: re-join in the same slot, even when full.
        assert_eq!(r.join(&c, rec(1, "a"), 1).unwrap().1, 0);
    }

    #[test]
    fn member_whose_id_equals_cluster_id_does_not_block_others() {
        let mut r = reg();
        let c = r.create(b"c", 4, 0, 1).unwrap().id;
        let mut weird = rec(1, "w");
        weird.id = c;
        r.join(&c, weird, 1).unwrap();
        assert!(r.join(&c, rec(2, "x"), 1).is_ok(), "Go bug 16.10 fixed");
    }

    #[test]
    fn register_protects_ids_by_sig_key() {
        let mut r = reg();
        let id = NodeId::from_bytes(&[1; 20]).unwrap();
        assert_eq!(r.register(Some(id), [1; 32]), Ok(id));
        assert_eq!(
            r.register(Some(id), [1; 32]),
            Ok(id),
            "same key may re-register"
        );
        assert_eq!(r.register(Some(id), [2; 32]), Err(RuleError::IdTaken));
        let own = NodeId::from_bytes(&[0xee; 20]).unwrap();
        assert_eq!(r.register(Some(own), [1; 32]), Err(RuleError::IdInUse));
        let fresh = r.register(None, [3; 32]).unwrap();
        assert_ne!(fresh, id);
    }

    #[test]
    fn uncommitted_members_are_invisible_and_rollback_undoes() {
        let mut r = reg();
        let c = r.create(b"c", 4, 0, 1).unwrap().id;
        assert!(
            select(&r, Some(c.as_bytes()), Which::ALL, 1 << 20).is_err(),
            "cluster not committed"
        );
        r.commit();
        r.join(&c, rec(1, "a"), 1).unwrap();
        assert_eq!(
            select(&r, Some(c.as_bytes()), Which::ALL, 1 << 20)
                .unwrap()
                .which,
            Which(0)
        );
        r.commit();
        r.join(&c, rec(2, "b"), 1).unwrap();
        r.rollback();
        assert_eq!(
            select(&r, Some(c.as_bytes()), Which::ALL, 1 << 20)
                .unwrap()
                .which,
            Which(1)
        );
        assert_eq!(
            r.join(&c, rec(2, "b"), 1).unwrap().1,
            1,
            "rolled-back slot is reused"
        );
    }

    #[test]
    fn select_follows_which_and_budget() {
        let mut r = reg();
        let c = r.create(b"c", 8, 0, 1).unwrap().id;
        for i in 0..5 {
            r.join(&c, rec(i, &format!("m{i}")), 1).unwrap();
        }
        r.commit();
        let s = select(&r, Some(c.as_bytes()), Which(0b10101), 1 << 20).unwrap();
        assert_eq!(s.which, Which(0b10101));
        assert_eq!(
            select(&r, Some(c.as_bytes()), Which(0), 1 << 20)
                .unwrap()
                .which,
            Which(0)
        );
        let one = token_field_len(r.cluster(&c).unwrap().members()[0].token.len());
        let s = select(&r, Some(c.as_bytes()), Which::ALL, 2 * one + 1).unwrap();
        assert_eq!(s.which, Which(0b11));
        assert_eq!(select(&r, None, Which::ALL, 10), Err(RuleError::NilKey));
        assert_eq!(
            select(&r, Some(&[1; 7]), Which::ALL, 10),
            Err(RuleError::KeyTooShort)
        );
        assert_eq!(
            select(&r, Some(&[1; 8]), Which::ALL, 10)
                .unwrap_err()
                .to_string(),
            "doGetMsg: can't find cluster with ID 0101010101010101"
        );
    }

    #[test]
    fn resolve_by_id_then_name_then_nothing() {
        let mut r = reg();
        let c = r.create(b"c", 4, 0, 1).unwrap().id;
        assert_eq!(resolve(&r, Some(c.as_bytes()), Some(b"zzz")), Ok(c));
        assert_eq!(resolve(&r, Some(&[]), None), Err(RuleError::NoSuchId));
        assert_eq!(resolve(&r, None, Some(b"c")), Ok(c));
        assert_eq!(resolve(&r, None, Some(b"d")), Err(RuleError::NoSuchName));
        assert_eq!(resolve(&r, None, None), Err(RuleError::MissingCluster));
    }

    #[test]
    fn a_partial_registry_of_one_clusters_rows_decides_like_the_whole() {
        let mut whole = reg();
        let other = whole.create(b"other", 2, 0, 1).unwrap().id;
        whole.join(&other, rec(9, "z"), 1).unwrap();
        let c = whole.create(b"c", 3, 0, 1).unwrap().id;
        whole.join(&c, rec(1, "a"), 1).unwrap();
        whole.join(&c, rec(2, "b"), 1).unwrap();
        let log = whole.commit();
        // Only the rows of cluster `c`, as a database would lock and read.
        let rows = log.iter().filter(|ch| match ch {
            Change::NewId { id, .. } | Change::NewCluster { id, .. } => *id == c,
            Change::NewMember { cluster, .. } | Change::ReplaceMember { cluster, .. } => {
                *cluster == c
            }
        });
        let mut part =
            Registry::restore(NodeId::from_bytes(&[0xee; 20]).unwrap(), rows.cloned()).unwrap();
        let join = |i: u8, name: &str| {
            Request::Join(crate::registry::Join {
                cluster: ClusterTarget::Name(b"c"[..].into()),
                record: rec(i, name),
                endpoints: 1,
            })
        };
        assert_eq!(part.decide(join(3, "b")), Err(RuleError::NameInUse));
        let Ok(Answer::Joined(j)) = part.decide(join(3, "c")) else {
            panic!("the free slot was not given")
        };
        assert_eq!((j.cluster.id, j.index), (c, 2));
        assert_eq!(
            part.pending(),
            &[Change::NewMember {
                cluster: c,
                index: 2,
                record: rec(3, "c")
            }],
            "exactly the row to write"
        );
        part.commit();
        assert_eq!(part.decide(join(4, "d")), Err(RuleError::Full));
        let Ok(Answer::Joined(j)) = whole.decide(join(3, "c")) else {
            panic!("the whole registry disagrees")
        };
        assert_eq!(j.index, 2);
    }

    #[test]
    fn restore_refuses_what_the_rules_would_never_have_written() {
        let own = NodeId::from_bytes(&[0xee; 20]).unwrap();
        let cid = NodeId::from_bytes(&[0xc1; 20]).unwrap();
        let cluster = |max_size, ep_count| Change::NewCluster {
            id: cid,
            name: b"c"[..].into(),
            attrs: 0,
            max_size,
            ep_count,
        };
        let member = |index, i: u8, name: &str| Change::NewMember {
            cluster: cid,
            index,
            record: rec(i, name),
        };
        let refused = |changes: Vec<Change>| Registry::restore(own, changes).unwrap_err().0;
        assert!(refused(vec![cluster(4, 17)]).contains("endpoint count 17"));
        assert!(refused(vec![cluster(65, 1)]).contains("size 65"));
        assert!(refused(vec![cluster(2, 1), member(1, 1, "a")]).contains("out of sequence"));
        assert!(refused(vec![
            cluster(2, 1),
            member(0, 1, "a"),
            member(1, 2, "b"),
            member(2, 3, "c")
        ])
        .contains("more members than its size"));
        assert!(
            refused(vec![cluster(3, 1), member(0, 1, "a"), member(1, 2, "a")])
                .contains("repeats a member")
        );
        assert!(refused(vec![member(0, 1, "a")]).contains("unknown cluster"));
        assert!(refused(vec![Change::NewId {
            id: cid,
            owner: IdOwner::Registry
        }])
        .contains("registry's own"));
        assert!(refused(vec![
            Change::NewId {
                id: cid,
                owner: IdOwner::Member([1; 32])
            },
            cluster(3, 1)
        ])
        .contains("owned by another"));
        let ok = Registry::restore(own, vec![cluster(3, 1), member(0, 1, "a")]).unwrap();
        assert_eq!(ok.cluster(&cid).unwrap().len(), 1, "restored as committed");
        assert_eq!(ok.id_owner(&cid), Some(IdOwner::Cluster));
    }
}
