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

use super::request::{
    Answer, By, ClusterTarget, Create, Delete, Evict, GetCluster, Joined, Leave, MemberSlot,
    Members, Request, Resize, Watch, Watched,
};
pub use super::values::{
    Actor, Change, ChangeKind, Cluster, ClusterFacts, HistoryEntry, IdOwner, MemberRecord, Policy,
    RestoreError, RuleError, Selection, ATTR_EPHEMERAL, HISTORY_LEN, MAX_CLUSTER_NAME,
    MAX_CLUSTER_SIZE, MAX_ENDPOINT_COUNT, MIN_CLUSTER_SIZE,
};
use crate::wire::msg::token_field_len;
use crate::wire::{NodeId, Which};

/// The whole in-memory registry.
#[derive(Debug, Default)]
pub struct Registry {
    pub(super) clusters: HashMap<NodeId, Cluster>,
    pub(super) by_name: HashMap<Box<[u8]>, NodeId>,
    pub(super) ids: HashMap<NodeId, IdOwner>,
    /// Uncommitted changes in order, for commit/rollback.
    pub(super) pending: Vec<Change>,
    /// Clusters removed by pending changes, for rollback.
    pub(super) removed: Vec<Cluster>,
    /// The clock (Unix ms) the backend set before the current request.
    pub(super) now_ms: u64,
    pub(super) policy: Policy,
    /// Live clusters kept in the store but not loaded here (a database
    /// backend's partial registry): counted against `max_clusters`.
    pub(super) unloaded_clusters: usize,
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

/// A history entry's detail for a member: `slot 1 (m01)`.
fn slot_detail(index: usize, name: &[u8]) -> String {
    format!("slot {index} ({})", String::from_utf8_lossy(name))
}

/// The tokens of `c`'s committed members selected by `which`, in slot
/// order, stopping before the encoded tokens would exceed `budget` bytes.
pub fn select_members(c: &Cluster, which: Which, budget: usize) -> Selection {
    let mut sel = Selection::default();
    for i in which.and(c.present()).iter() {
        let Some(m) = c.member(i) else { continue };
        let t = &m.token;
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
            Request::Create(c) => self.create_as(&c).map(Answer::Created),
            Request::Join(j) => {
                let id = self.find(&j.cluster)?;
                let (cluster, index) = self.join(&id, j.record, j.endpoints)?;
                Ok(Answer::Joined(Joined { cluster, index }))
            }
            Request::GetCluster(g) => self.members(&g).map(Answer::Members),
            Request::Delete(d) => self.delete_as_member(&d).map(Answer::Deleted),
            Request::DeleteByName(name) => self.delete_by_name(&name).map(Answer::Deleted),
            Request::Resize(r) => self.resize(&r).map(Answer::Changed),
            Request::Evict(e) => self.evict(&e).map(Answer::Changed),
            Request::Leave(l) => self.leave(&l).map(Answer::Changed),
            Request::Watch(w) => self.watch(&w).map(Answer::Watched),
            Request::Expire(limit) => {
                let n = self.expire(limit);
                self.persist_activity(limit);
                Ok(Answer::Expired(n))
            }
        }
    }

    /// A Join's cluster (committed or not): unknown IDs and names get the
    /// Go server's texts.
    pub fn find(&self, target: &ClusterTarget) -> Result<NodeId, RuleError> {
        match target {
            ClusterTarget::Id(id) => self.live(id).map(|c| c.id).ok_or(RuleError::NoSuchId),
            ClusterTarget::Name(n) => self
                .by_name
                .get(n)
                .copied()
                .filter(|id| self.live(id).is_some())
                .ok_or(RuleError::NoSuchName),
        }
    }

    /// GetCluster on committed state: the selected tokens and whether the
    /// cluster is complete for `which`.
    pub fn members(&self, req: &GetCluster) -> Result<Members, RuleError> {
        let c = match &req.cluster {
            ClusterTarget::Id(id) => self
                .live(id)
                .filter(|c| c.committed)
                .ok_or_else(|| RuleError::GetUnknown(hex::encode(id.as_bytes())))?,
            ClusterTarget::Name(n) => self
                .by_name
                .get(n)
                .and_then(|id| self.live(id))
                .filter(|c| c.committed)
                .ok_or(RuleError::NoSuchName)?,
        };
        Ok(Members {
            cluster_id: c.id,
            selection: select_members(c, req.which, req.budget),
            complete: c.satisfies(req.which),
        })
    }

    /// An empty registry owning `own_id`.
    pub fn new(own_id: NodeId) -> Self {
        let mut r = Registry::default();
        r.ids.insert(own_id, IdOwner::Registry);
        r
    }

    /// Set the clock for the requests that follow (Unix ms).
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Set TTLs and limits.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// Tell a partial registry how many live clusters the store holds
    /// that it did not load, so that a Create is refused at
    /// `max_clusters` by the same rule as on a whole registry. A database
    /// backend counts them in the Create's transaction, under a lock every
    /// Create of a new name takes.
    pub fn set_unloaded_clusters(&mut self, n: usize) {
        self.unloaded_clusters = n;
    }

    /// The TTLs and limits in force.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The TTL that applies to `c` (ms), if it expires at all: its own,
    /// else the Ephemeral default for clusters with that bit, else the
    /// registry default.
    pub fn ttl_of(&self, c: &Cluster) -> Option<u64> {
        c.ttl_ms.or_else(|| {
            if c.attrs & ATTR_EPHEMERAL != 0 {
                self.policy.ephemeral_ttl_ms.or(self.policy.cluster_ttl_ms)
            } else {
                self.policy.cluster_ttl_ms
            }
        })
    }

    /// When `c` expires (Unix ms) unless touched again, if ever.
    pub fn expires_at(&self, c: &Cluster) -> Option<u64> {
        self.ttl_of(c).map(|t| c.last_active_ms.saturating_add(t))
    }

    pub(super) fn expired(&self, c: &Cluster) -> bool {
        self.expires_at(c).is_some_and(|at| at <= self.now_ms)
    }

    fn live(&self, id: &NodeId) -> Option<&Cluster> {
        self.clusters.get(id).filter(|c| !self.expired(c))
    }

    /// Look up a live cluster (committed or not).
    pub fn cluster(&self, id: &NodeId) -> Option<&Cluster> {
        self.live(id)
    }

    /// Number of committed live clusters.
    pub fn cluster_count(&self) -> usize {
        self.clusters().count()
    }

    /// A committed live cluster by name.
    pub fn cluster_by_name(&self, name: &[u8]) -> Option<&Cluster> {
        self.by_name
            .get(name)
            .and_then(|id| self.live(id))
            .filter(|c| c.committed)
    }

    /// Restart `id`'s TTL clock at the current time (in memory; the store
    /// learns it from [`Registry::persist_activity`]).
    pub fn touch(&mut self, id: &NodeId) {
        let now = self.now_ms;
        if let Some(c) = self.clusters.get_mut(id) {
            c.last_active_ms = c.last_active_ms.max(now);
        }
    }

    fn remove(&mut self, id: &NodeId) {
        if let Some(c) = self.clusters.remove(id) {
            if self.by_name.get(&c.name) == Some(id) {
                self.by_name.remove(&c.name);
            }
            self.ids.remove(id);
            self.pending.push(Change::DeleteCluster { id: *id });
            self.removed.push(c);
        }
    }

    /// Delete the live committed cluster called `name` (an operator's
    /// request): its members' slots go with it, and the name can be
    /// created again (with a new ID).
    pub fn delete_by_name(&mut self, name: &[u8]) -> Result<NodeId, RuleError> {
        let id = self
            .cluster_by_name(name)
            .map(|c| c.id)
            .ok_or_else(|| RuleError::NoSuchCluster(String::from_utf8_lossy(name).into()))?;
        self.remove(&id);
        Ok(id)
    }

    /// Delete a live cluster at the request of one of its committed
    /// members (the wire extension).
    pub fn delete_as_member(&mut self, d: &Delete) -> Result<NodeId, RuleError> {
        let id = self.find(&d.cluster)?;
        let c = &self.clusters[&id];
        if !c.committed || !c.members().any(|(_, m)| m.id == d.by) {
            return Err(RuleError::NotAMember);
        }
        self.remove(&id);
        Ok(id)
    }

    /// Remove at most `limit` expired clusters (their rows go in this
    /// batch); returns how many.
    pub fn expire(&mut self, limit: usize) -> usize {
        let ids: Vec<NodeId> = self
            .clusters
            .values()
            .filter(|c| self.expired(c))
            .map(|c| c.id)
            .take(limit)
            .collect();
        for id in &ids {
            self.remove(id);
        }
        ids.len()
    }

    /// Queue a [`Change::Touch`] for at most `limit` clusters whose
    /// activity moved on since it was last stored, so expiry survives a
    /// restart.
    pub fn persist_activity(&mut self, limit: usize) -> usize {
        let mut n = 0;
        for c in self.clusters.values_mut() {
            if n == limit {
                break;
            }
            if c.committed && c.last_active_ms > c.persisted_active_ms {
                c.persisted_active_ms = c.last_active_ms;
                self.pending.push(Change::Touch {
                    id: c.id,
                    at_ms: c.last_active_ms,
                });
                n += 1;
            }
        }
        n
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
        self.create_with_ttl(name, max_size, attrs, ep_count, None)
    }

    /// [`Registry::create`] with the creator's TTL (ms). An existing live
    /// cluster of that name is returned (and its clock restarted); an
    /// expired one is removed first, so the name gets a new cluster.
    pub fn create_with_ttl(
        &mut self,
        name: &[u8],
        max_size: u32,
        attrs: u64,
        ep_count: u32,
        ttl_ms: Option<u64>,
    ) -> Result<ClusterFacts, RuleError> {
        self.create_as(&Create {
            name: name.to_vec(),
            max_size,
            attrs,
            ep_count,
            ttl_ms,
            owner: None,
        })
    }

    /// Create as the request says, its `owner` (the creating node) kept
    /// with the cluster; see [`Registry::create_with_ttl`].
    pub fn create_as(&mut self, req: &Create) -> Result<ClusterFacts, RuleError> {
        let (name, attrs, ep_count, ttl_ms) = (&req.name[..], req.attrs, req.ep_count, req.ttl_ms);
        if name.is_empty() {
            return Err(RuleError::EmptyName);
        }
        if name.len() > MAX_CLUSTER_NAME {
            return Err(RuleError::NameTooLong);
        }
        if let Some(id) = self.by_name.get(name).copied() {
            if self.live(&id).is_some() {
                self.touch(&id);
                return Ok(self.info(&self.clusters[&id]));
            }
            self.remove(&id);
        }
        if let Some(max) = self.policy.max_clusters {
            // O(1): clusters expired but not yet swept (at most one sweep
            // interval) still count.
            if self.clusters.len() + self.unloaded_clusters >= max {
                return Err(RuleError::TooManyClusters(max));
            }
        }
        if ep_count == 0 {
            return Err(RuleError::NoEndpointCount);
        }
        if ep_count > MAX_ENDPOINT_COUNT {
            return Err(RuleError::TooManyEndpoints);
        }
        let id = self.fresh_id();
        let max_size = crate::limits::clamp_cluster_size(req.max_size);
        let created = HistoryEntry {
            version: 1,
            at_ms: self.now_ms,
            kind: ChangeKind::Create,
            detail: format!("size {max_size}").into(),
            by: Actor::Owner,
        };
        let c = Cluster {
            id,
            name: name.into(),
            attrs,
            max_size,
            ep_count,
            slots: Vec::new(),
            version: 1,
            owner: req.owner,
            history: [created.clone()].into(),
            next_size: None,
            next_version: None,
            committed: false,
            ttl_ms,
            created_ms: self.now_ms,
            last_active_ms: self.now_ms,
            persisted_active_ms: self.now_ms,
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
            ttl_ms,
            created_ms: self.now_ms,
            last_active_ms: self.now_ms,
            version: 1,
            owner: req.owner,
        });
        self.pending.push(Change::Logged {
            cluster: id,
            entry: created,
        });
        self.ids.insert(id, IdOwner::Cluster);
        self.by_name.insert(c.name.clone(), id);
        self.clusters.insert(id, c);
        Ok(info)
    }

    fn info(&self, c: &Cluster) -> ClusterFacts {
        ClusterFacts {
            id: c.id,
            max_size: c.size(),
            attrs: c.attrs,
            ep_count: c.ep_count,
        }
    }

    /// Join `cluster` with `record` having `endpoints` endpoints: the
    /// lowest free slot below the cluster's size. A member already in the
    /// cluster under the same ID and name re-joins in its slot (its token
    /// is replaced). Returns the cluster facts and the slot.
    pub fn join(
        &mut self,
        cluster: &NodeId,
        record: MemberRecord,
        endpoints: usize,
    ) -> Result<(ClusterFacts, usize), RuleError> {
        if self.live(cluster).is_none() {
            return Err(RuleError::NoSuchId);
        }
        self.touch(cluster);
        let c = self.clusters.get_mut(cluster).ok_or(RuleError::NoSuchId)?;
        let info = ClusterFacts {
            id: c.id,
            max_size: c.size(),
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
        if let Some(i) = c.find_decided(|m| m.id == record.id) {
            let m = c.decided(i).expect("found");
            if m.name != record.name {
                return Err(RuleError::MemberIdInUse);
            }
            if m.token != record.token {
                let detail = slot_detail(i, &record.name);
                c.set_slot(i, Some(record.clone()));
                self.pending.push(Change::ReplaceMember {
                    cluster: *cluster,
                    index: i,
                    record,
                });
                self.log(cluster, ChangeKind::Rejoin, detail, Actor::Member);
            }
            return Ok((info, i));
        }
        if c.find_decided(|m| m.name == record.name).is_some() {
            return Err(RuleError::NameInUse);
        }
        let Some(index) = (0..c.size() as usize).find(|&i| c.decided(i).is_none()) else {
            return Err(RuleError::Full);
        };
        let detail = slot_detail(index, &record.name);
        c.set_slot(index, Some(record.clone()));
        self.pending.push(Change::NewMember {
            cluster: *cluster,
            index,
            record,
        });
        self.log(cluster, ChangeKind::Join, detail, Actor::Member);
        Ok((info, index))
    }

    /// Record a decided change of cluster `id` as its next version (in
    /// its history and as a [`Change::Logged`]); returns the version.
    fn log(&mut self, id: &NodeId, kind: ChangeKind, detail: String, by: Actor) -> u64 {
        let at_ms = self.now_ms;
        let Some(c) = self.clusters.get_mut(id) else {
            return 0;
        };
        let version = c.decided_version() + 1;
        c.next_version = Some(version);
        let entry = HistoryEntry {
            version,
            at_ms,
            kind,
            detail: detail.into(),
            by,
        };
        c.history.push_back(entry.clone());
        self.pending.push(Change::Logged {
            cluster: *id,
            entry,
        });
        version
    }

    /// Who `by` is for a change of `c` that only its creator or the
    /// operator may make.
    fn owner_or_operator(c: &Cluster, by: By) -> Result<Actor, RuleError> {
        match by {
            By::Operator => Ok(Actor::Operator),
            By::Node(id) if c.owner == Some(id) => Ok(Actor::Owner),
            By::Node(_) => Err(RuleError::NotOwner),
        }
    }

    /// Resize (creator or operator): grow always; shrink only when every
    /// slot at or above the new size is empty; the same size changes
    /// nothing. Returns the cluster's version after it.
    pub fn resize(&mut self, r: &Resize) -> Result<u64, RuleError> {
        let id = self.find(&r.cluster)?;
        let c = &self.clusters[&id];
        let by = Self::owner_or_operator(c, r.by)?;
        if !(MIN_CLUSTER_SIZE..=MAX_CLUSTER_SIZE).contains(&r.size) {
            return Err(RuleError::SizeOutOfRange(r.size));
        }
        let old = c.size();
        if r.size == old {
            return Ok(c.decided_version());
        }
        if let Some(slot) = (r.size as usize..c.slots.len()).find(|&i| c.decided(i).is_some()) {
            return Err(RuleError::ShrinkOverMember {
                size: r.size,
                slot,
                name: String::from_utf8_lossy(&c.decided(slot).expect("found").name).into(),
            });
        }
        let c = self.clusters.get_mut(&id).expect("found");
        c.next_size = Some(r.size);
        self.pending.push(Change::Resize {
            cluster: id,
            max_size: r.size,
        });
        Ok(self.log(&id, ChangeKind::Resize, format!("{old} -> {}", r.size), by))
    }

    /// Evict (creator or operator) a member by name or slot: its slot
    /// becomes a hole; its node stays registered and may join again.
    pub fn evict(&mut self, e: &Evict) -> Result<u64, RuleError> {
        let id = self.find(&e.cluster)?;
        let c = &self.clusters[&id];
        let by = Self::owner_or_operator(c, e.by)?;
        let index = match &e.member {
            MemberSlot::Name(n) => c
                .find_decided(|m| m.name == *n)
                .ok_or_else(|| RuleError::NoMemberNamed(String::from_utf8_lossy(n).into()))?,
            MemberSlot::Index(i) => Some(*i as usize)
                .filter(|&i| c.decided(i).is_some())
                .ok_or(RuleError::NoMemberInSlot(*i))?,
        };
        Ok(self.empty_slot(&id, index, ChangeKind::Evict, by))
    }

    /// Leave: the member `l.by` gives up its slot.
    pub fn leave(&mut self, l: &Leave) -> Result<u64, RuleError> {
        let id = self.find(&l.cluster)?;
        let index = self.clusters[&id]
            .find_decided(|m| m.id == l.by)
            .ok_or(RuleError::NotInCluster)?;
        Ok(self.empty_slot(&id, index, ChangeKind::Leave, Actor::Member))
    }

    fn empty_slot(&mut self, id: &NodeId, index: usize, kind: ChangeKind, by: Actor) -> u64 {
        let c = self.clusters.get_mut(id).expect("found");
        let detail = slot_detail(index, &c.decided(index).expect("occupied").name);
        c.set_slot(index, None);
        self.pending.push(Change::RemoveMember {
            cluster: *id,
            index,
        });
        self.log(id, kind, detail, by)
    }

    /// Watch now, on committed state: the cluster's occupied slots, size
    /// and version (holding is the backend's, see
    /// [`crate::registry::perform_held`]).
    pub fn watch(&self, w: &Watch) -> Result<Watched, RuleError> {
        let c = match &w.cluster {
            ClusterTarget::Id(id) => self
                .live(id)
                .filter(|c| c.committed)
                .ok_or(RuleError::NoSuchId)?,
            ClusterTarget::Name(n) => self.cluster_by_name(n).ok_or(RuleError::NoSuchName)?,
        };
        Ok(Watched {
            cluster_id: c.id,
            max_size: c.max_size,
            version: c.version,
            selection: select_members(c, Which::ALL, usize::MAX),
        })
    }

    /// Make every pending change visible (after the store committed them).
    pub fn commit(&mut self) -> Vec<Change> {
        self.removed.clear();
        let changes = std::mem::take(&mut self.pending);
        for ch in &changes {
            if let Change::NewId { .. } | Change::DeleteCluster { .. } | Change::Touch { .. } = ch {
                continue;
            }
            let Some(c) = ch.cluster().and_then(|id| self.clusters.get_mut(id)) else {
                continue;
            };
            match ch {
                Change::NewCluster { .. } => c.committed = true,
                Change::NewMember { index, .. }
                | Change::ReplaceMember { index, .. }
                | Change::RemoveMember { index, .. } => {
                    if let Some(s) = c.slots.get_mut(*index) {
                        if let Some(n) = s.next.take() {
                            s.shown = n;
                        }
                    }
                    c.trim_slots();
                }
                Change::Resize { .. } => {
                    if let Some(n) = c.next_size.take() {
                        c.max_size = n;
                    }
                }
                Change::Logged { entry, .. } => {
                    c.version = c.version.max(entry.version);
                    if c.next_version.is_some_and(|v| v <= c.version) {
                        c.next_version = None;
                    }
                    while c.history.len() > HISTORY_LEN {
                        c.history.pop_front();
                    }
                }
                Change::NewId { .. } | Change::DeleteCluster { .. } | Change::Touch { .. } => {}
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
                Change::NewMember { cluster, index, .. }
                | Change::ReplaceMember { cluster, index, .. }
                | Change::RemoveMember { cluster, index } => {
                    if let Some(c) = self.clusters.get_mut(&cluster) {
                        if let Some(s) = c.slots.get_mut(index) {
                            s.next = None;
                        }
                        c.trim_slots();
                    }
                }
                Change::Resize { cluster, .. } => {
                    if let Some(c) = self.clusters.get_mut(&cluster) {
                        c.next_size = None;
                    }
                }
                Change::Logged { cluster, .. } => {
                    if let Some(c) = self.clusters.get_mut(&cluster) {
                        c.next_version = None;
                        let v = c.version;
                        c.history.retain(|e| e.version <= v);
                    }
                }
                Change::DeleteCluster { id } => {
                    if let Some(pos) = self.removed.iter().position(|c| c.id == id) {
                        let c = self.removed.swap_remove(pos);
                        self.ids.insert(id, IdOwner::Cluster);
                        self.by_name.insert(c.name.clone(), id);
                        self.clusters.insert(id, c);
                    }
                }
                Change::Touch { .. } => {}
            }
        }
        self.removed.clear();
    }

    /// Every known ID and its owner, the registry's own included (copies).
    pub fn ids(&self) -> impl Iterator<Item = (&NodeId, &IdOwner)> {
        self.ids.iter()
    }

    /// A registry holding copies of the committed live clusters `ids` (in
    /// their committed state), with this one's policy and clock: one page
    /// of a listing. Unknown or expired IDs are left out.
    pub fn subset<'a>(&self, ids: impl IntoIterator<Item = &'a NodeId>) -> Registry {
        let mut r = Registry {
            now_ms: self.now_ms,
            policy: self.policy,
            ..Registry::default()
        };
        for id in ids {
            if let Some(c) = self
                .clusters
                .get(id)
                .filter(|c| c.committed && !self.expired(c))
            {
                let c = c.committed_copy();
                r.by_name.insert(c.name.clone(), c.id);
                r.ids.insert(c.id, IdOwner::Cluster);
                r.clusters.insert(c.id, c);
            }
        }
        r
    }

    /// Every committed live cluster (for listings and tests).
    pub fn clusters(&self) -> impl Iterator<Item = &Cluster> {
        self.clusters
            .values()
            .filter(|c| c.committed && !self.expired(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::request::{Leave, Watch};

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

    fn target(id: NodeId) -> GetCluster {
        GetCluster {
            cluster: ClusterTarget::Id(id),
            which: Which::ALL,
            budget: 1 << 20,
            hold: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn an_expired_cluster_is_gone_for_every_op_and_its_name_is_reusable() {
        let mut r = reg();
        r.set_now(1_000);
        let c = r.create_with_ttl(b"c", 2, 0, 1, Some(500)).unwrap().id;
        r.join(&c, rec(1, "a"), 1).unwrap();
        r.commit();
        r.set_now(1_400);
        r.touch(&c);
        r.set_now(1_899);
        assert!(
            r.members(&target(c)).is_ok(),
            "touched at 1400: alive until 1900"
        );
        r.set_now(1_900);
        assert_eq!(r.find(&ClusterTarget::Id(c)), Err(RuleError::NoSuchId));
        assert_eq!(
            r.find(&ClusterTarget::Name(b"c"[..].into())),
            Err(RuleError::NoSuchName)
        );
        assert!(matches!(
            r.members(&target(c)),
            Err(RuleError::GetUnknown(_))
        ));
        assert_eq!(r.join(&c, rec(2, "b"), 1), Err(RuleError::NoSuchId));
        assert_eq!(r.cluster_count(), 0);
        let again = r.create(b"c", 3, 0, 1).unwrap();
        assert_ne!(again.id, c, "a new cluster, with a new ID");
        assert!(r.pending().contains(&Change::DeleteCluster { id: c }));
    }

    #[test]
    fn policy_ttls_apply_by_the_ephemeral_bit_and_expire_is_bounded() {
        let mut r = reg();
        r.set_policy(Policy {
            cluster_ttl_ms: None,
            ephemeral_ttl_ms: Some(100),
            max_clusters: None,
        });
        r.set_now(10);
        for i in 0..5u8 {
            r.create(&[b'e', i], 2, ATTR_EPHEMERAL, 1).unwrap();
        }
        let kept = r.create(b"plain", 2, 0, 1).unwrap().id;
        r.commit();
        r.set_now(110);
        assert_eq!(r.expire(3), 3, "at most the limit per batch");
        assert_eq!(r.expire(10), 2);
        assert_eq!(r.expire(10), 0);
        assert!(r.cluster(&kept).is_some(), "no TTL without the bit");
        assert_eq!(r.ttl_of(r.cluster(&kept).unwrap()), None);
    }

    #[test]
    fn a_rolled_back_delete_restores_the_cluster() {
        let mut r = reg();
        let c = r.create(b"c", 2, 0, 1).unwrap().id;
        r.join(&c, rec(1, "a"), 1).unwrap();
        r.commit();
        assert_eq!(r.delete_by_name(b"c"), Ok(c));
        assert_eq!(
            r.delete_by_name(b"c"),
            Err(RuleError::NoSuchCluster("c".into()))
        );
        r.rollback();
        assert_eq!(r.cluster(&c).map(|c| c.len()), Some(1));
        assert_eq!(r.find(&ClusterTarget::Name(b"c"[..].into())), Ok(c));
    }

    #[test]
    fn max_clusters_refuses_new_names_but_returns_existing_ones() {
        let mut r = reg();
        r.set_policy(Policy {
            max_clusters: Some(1),
            ..Policy::default()
        });
        let a = r.create(b"a", 2, 0, 1).unwrap();
        assert_eq!(r.create(b"b", 2, 0, 1), Err(RuleError::TooManyClusters(1)));
        assert_eq!(r.create(b"a", 2, 0, 1), Ok(a));
    }

    #[test]
    fn max_clusters_counts_the_clusters_a_partial_registry_did_not_load() {
        let mut r = reg();
        r.set_policy(Policy {
            max_clusters: Some(3),
            ..Policy::default()
        });
        r.set_unloaded_clusters(2);
        r.create(b"a", 2, 0, 1).unwrap();
        assert_eq!(r.create(b"b", 2, 0, 1), Err(RuleError::TooManyClusters(3)));
        r.set_unloaded_clusters(1);
        r.create(b"b", 2, 0, 1).unwrap();
    }

    #[test]
    fn touches_are_stored_once_per_move() {
        let mut r = reg();
        r.set_now(5);
        let c = r.create(b"c", 2, 0, 1).unwrap().id;
        r.commit();
        assert_eq!(r.persist_activity(10), 0);
        r.set_now(9);
        r.touch(&c);
        assert_eq!(r.persist_activity(10), 1);
        assert_eq!(r.commit(), vec![Change::Touch { id: c, at_ms: 9 }]);
        assert_eq!(r.persist_activity(10), 0);
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
        let one = token_field_len(r.cluster(&c).unwrap().member(0).unwrap().token.len());
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
            Change::NewId { id, .. } => *id == c,
            other => other.cluster() == Some(&c),
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
            part.pending()[0],
            Change::NewMember {
                cluster: c,
                index: 2,
                record: rec(3, "c")
            },
            "exactly the row to write"
        );
        assert!(
            matches!(&part.pending()[1..], [Change::Logged { cluster, entry }]
                if *cluster == c && entry.version == 4 && entry.kind == ChangeKind::Join),
            "and the cluster's next version"
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
            ttl_ms: None,
            created_ms: 0,
            last_active_ms: 0,
            version: 1,
            owner: None,
        };
        let member = |index, i: u8, name: &str| Change::NewMember {
            cluster: cid,
            index,
            record: rec(i, name),
        };
        let refused = |changes: Vec<Change>| Registry::restore(own, changes).unwrap_err().0;
        assert!(refused(vec![cluster(4, 17)]).contains("endpoint count 17"));
        assert!(refused(vec![cluster(65, 1)]).contains("size 65"));
        assert!(refused(vec![cluster(2, 1), member(2, 1, "a")]).contains("beyond its size 2"));
        assert!(
            refused(vec![cluster(3, 1), member(1, 1, "a"), member(1, 2, "b")])
                .contains("slot 1 stored twice")
        );
        assert!(refused(vec![
            cluster(3, 1),
            member(2, 1, "a"),
            Change::Resize {
                cluster: cid,
                max_size: 2
            }
        ])
        .contains("resize to 2 over its members"));
        assert!(refused(vec![
            cluster(3, 1),
            Change::RemoveMember {
                cluster: cid,
                index: 0
            }
        ])
        .contains("removal of empty slot 0"));
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

    fn node(b: u8) -> NodeId {
        NodeId::from_bytes(&[b; 20]).unwrap()
    }

    /// A committed cluster "c" of `size` created by node 0xaa, with
    /// members `rec(1..=n)` in slots 0..n.
    fn owned(size: u32, n: u8) -> (Registry, NodeId) {
        let (r, c, _) = owned_with_log(size, n);
        (r, c)
    }

    /// [`owned`], with the changes committed.
    fn owned_with_log(size: u32, n: u8) -> (Registry, NodeId, Vec<Change>) {
        let mut r = reg();
        let c = r
            .create_as(&Create {
                name: b"c".to_vec(),
                max_size: size,
                attrs: 0,
                ep_count: 1,
                ttl_ms: None,
                owner: Some(node(0xaa)),
            })
            .unwrap()
            .id;
        for i in 1..=n {
            r.join(&c, rec(i, &format!("m{i}")), 1).unwrap();
        }
        let log = r.commit();
        (r, c, log)
    }

    fn by_name() -> ClusterTarget {
        ClusterTarget::Name(b"c"[..].into())
    }

    fn resize(size: u32, by: By) -> Request {
        Request::Resize(Resize {
            cluster: by_name(),
            size,
            by,
        })
    }

    fn evict(member: MemberSlot, by: By) -> Request {
        Request::Evict(Evict {
            cluster: by_name(),
            member,
            by,
        })
    }

    fn slots(r: &Registry, c: &NodeId) -> Vec<(usize, String)> {
        r.cluster(c)
            .unwrap()
            .members()
            .map(|(i, m)| (i, String::from_utf8_lossy(&m.name).into_owned()))
            .collect()
    }

    #[test]
    fn an_evicted_slot_is_a_hole_the_next_join_fills_while_others_keep_theirs() {
        let (mut r, c) = owned(3, 3);
        let owner = By::Node(node(0xaa));
        assert_eq!(
            r.decide(evict(MemberSlot::Index(1), owner)),
            Ok(Answer::Changed(5))
        );
        r.commit();
        assert_eq!(slots(&r, &c), [(0, "m1".into()), (2, "m3".into())]);
        assert_eq!(r.cluster(&c).unwrap().present(), Which(0b101));
        assert!(!r.cluster(&c).unwrap().satisfies(Which::ALL), "a hole");
        assert_eq!(r.join(&c, rec(4, "m4"), 1).unwrap().1, 1, "lowest free");
        r.commit();
        assert_eq!(
            slots(&r, &c),
            [(0, "m1".into()), (1, "m4".into()), (2, "m3".into())]
        );
        assert_eq!(r.join(&c, rec(5, "m5"), 1), Err(RuleError::Full));
        // The evicted node may join again once a slot frees.
        r.decide(evict(MemberSlot::Name(b"m3"[..].into()), By::Operator))
            .unwrap();
        assert_eq!(r.join(&c, rec(2, "m2"), 1).unwrap().1, 2);
        r.commit();
        assert_eq!(r.cluster(&c).unwrap().version, 8);
        let m = r.members(&target(c)).unwrap();
        assert_eq!((m.selection.which, m.complete), (Which(0b111), true));
    }

    #[test]
    fn resize_grows_and_shrinks_only_over_empty_slots() {
        let (mut r, c) = owned(3, 2);
        let owner = By::Node(node(0xaa));
        assert_eq!(r.decide(resize(5, owner)), Ok(Answer::Changed(4)));
        r.commit();
        assert_eq!(r.cluster(&c).unwrap().max_size, 5);
        assert_eq!(
            r.decide(resize(5, owner)),
            Ok(Answer::Changed(4)),
            "the same size changes nothing"
        );
        assert!(r.pending().is_empty());
        assert_eq!(
            r.decide(resize(1, owner)),
            Err(RuleError::SizeOutOfRange(1))
        );
        assert_eq!(
            r.decide(resize(65, owner)),
            Err(RuleError::SizeOutOfRange(65))
        );
        assert_eq!(
            RuleError::SizeOutOfRange(1).to_string(),
            "size 1 is not in 2..=64"
        );
        r.join(&c, rec(3, "m3"), 1).unwrap();
        r.join(&c, rec(4, "m4"), 1).unwrap();
        r.commit();
        let e = r.decide(resize(3, owner)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot shrink cluster to 3: slot 3 is held by member m4 (evict it first)"
        );
        r.decide(evict(MemberSlot::Index(3), owner)).unwrap();
        assert_eq!(r.decide(resize(3, owner)), Ok(Answer::Changed(8)));
        r.commit();
        assert_eq!(r.cluster(&c).unwrap().max_size, 3);
        assert_eq!(slots(&r, &c).len(), 3);
    }

    #[test]
    fn only_the_creator_or_the_operator_may_resize_or_evict() {
        let (mut r, _) = owned(3, 2);
        let member = By::Node(rec(1, "m1").id);
        assert_eq!(r.decide(resize(4, member)), Err(RuleError::NotOwner));
        assert_eq!(
            r.decide(evict(MemberSlot::Index(0), member)),
            Err(RuleError::NotOwner)
        );
        assert_eq!(
            RuleError::NotOwner.to_string(),
            "only the cluster's creator may resize or evict"
        );
        assert!(r.decide(resize(4, By::Operator)).is_ok());
        // A cluster without a recorded creator: only the operator.
        let mut r = reg();
        let c = r.create(b"c", 3, 0, 1).unwrap().id;
        r.commit();
        assert_eq!(
            r.decide(resize(4, By::Node(node(0xaa)))),
            Err(RuleError::NotOwner)
        );
        assert!(r.decide(resize(4, By::Operator)).is_ok());
        assert_eq!(r.cluster(&c).unwrap().owner, None);
    }

    #[test]
    fn evict_of_an_unknown_member_names_it() {
        let (mut r, _) = owned(4, 2);
        let e = r
            .decide(evict(MemberSlot::Name(b"zz"[..].into()), By::Operator))
            .unwrap_err();
        assert_eq!(e.to_string(), "no member named zz in this cluster");
        for slot in [2, 3, 99] {
            let e = r
                .decide(evict(MemberSlot::Index(slot), By::Operator))
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("no member in slot {slot} of this cluster")
            );
        }
        let gone = Request::Evict(Evict {
            cluster: ClusterTarget::Name(b"nope"[..].into()),
            member: MemberSlot::Index(0),
            by: By::Operator,
        });
        assert_eq!(r.decide(gone), Err(RuleError::NoSuchName));
    }

    #[test]
    fn leave_frees_the_members_own_slot_only() {
        let (mut r, c) = owned(3, 3);
        let leave = |b: NodeId| {
            Request::Leave(Leave {
                cluster: by_name(),
                by: b,
            })
        };
        assert_eq!(r.decide(leave(node(0x77))), Err(RuleError::NotInCluster));
        assert_eq!(
            RuleError::NotInCluster.to_string(),
            "not a member of this cluster"
        );
        assert_eq!(r.decide(leave(rec(2, "m2").id)), Ok(Answer::Changed(5)));
        r.commit();
        assert_eq!(slots(&r, &c), [(0, "m1".into()), (2, "m3".into())]);
        assert_eq!(
            r.decide(leave(rec(2, "m2").id)),
            Err(RuleError::NotInCluster)
        );
        let last = r.cluster(&c).unwrap().history().last().unwrap().clone();
        assert_eq!(
            (last.kind, &*last.detail, last.by),
            (ChangeKind::Leave, "slot 1 (m2)", Actor::Member)
        );
    }

    #[test]
    fn readers_see_a_change_only_once_committed_and_a_rollback_undoes_it() {
        let (mut r, c) = owned(3, 3);
        r.decide(evict(MemberSlot::Index(0), By::Operator)).unwrap();
        r.join(&c, rec(9, "m9"), 1).unwrap();
        r.decide(resize(4, By::Operator)).unwrap();
        // Decided, not committed: readers see the old cluster.
        let before = r.cluster(&c).unwrap();
        assert_eq!((before.version, before.max_size), (4, 3));
        assert_eq!(before.member(0).map(|m| &*m.name), Some(&b"m1"[..]));
        assert_eq!(before.history().count(), 4);
        let w = r
            .watch(&Watch {
                cluster: by_name(),
                known: 0,
                hold: std::time::Duration::ZERO,
            })
            .unwrap();
        assert_eq!(
            (w.version, w.max_size, w.selection.which),
            (4, 3, Which(0b111))
        );
        r.rollback();
        let after = r.cluster(&c).unwrap();
        assert_eq!((after.version, after.max_size), (4, 3));
        assert_eq!(after.history().count(), 4);
        assert_eq!(slots(&r, &c)[0], (0, "m1".into()));
        assert_eq!(r.join(&c, rec(9, "m9"), 1), Err(RuleError::Full));
        r.rollback();
        // Committed, the same changes show.
        r.decide(evict(MemberSlot::Index(0), By::Operator)).unwrap();
        r.join(&c, rec(9, "m9"), 1).unwrap();
        r.commit();
        assert_eq!(slots(&r, &c)[0], (0, "m9".into()));
        assert_eq!(r.cluster(&c).unwrap().version, 6);
    }

    #[test]
    fn versions_count_committed_changes_and_the_history_keeps_the_last_ones() {
        let (mut r, c) = owned(2, 0);
        assert_eq!(r.cluster(&c).unwrap().version, 1);
        for i in 0..20u32 {
            r.decide(resize(3 + i % 2, By::Operator)).unwrap();
            r.commit();
        }
        let cl = r.cluster(&c).unwrap();
        assert_eq!(cl.version, 21);
        let h: Vec<_> = cl.history().map(|e| e.version).collect();
        assert_eq!(h, (6..=21).collect::<Vec<_>>(), "the last HISTORY_LEN");
        let last = cl.history().last().unwrap();
        assert_eq!(
            (last.kind, &*last.detail, last.by),
            (ChangeKind::Resize, "3 -> 4", Actor::Operator)
        );
        // A re-join with the same token changes nothing; a new token does.
        r.join(&c, rec(1, "a"), 1).unwrap();
        r.commit();
        r.join(&c, rec(1, "a"), 1).unwrap();
        assert!(r.pending().is_empty());
        let mut again = rec(1, "a");
        again.token = b"new"[..].into();
        r.join(&c, again, 1).unwrap();
        r.commit();
        let cl = r.cluster(&c).unwrap();
        assert_eq!(cl.version, 23);
        assert_eq!(cl.history().last().unwrap().kind, ChangeKind::Rejoin);
        assert_eq!(&*cl.member(0).unwrap().token, b"new");
    }

    #[test]
    fn a_restored_log_has_the_same_slots_version_owner_and_history() {
        let (mut r, c, mut log) = owned_with_log(4, 3);
        r.decide(evict(MemberSlot::Index(1), By::Operator)).unwrap();
        r.decide(resize(5, By::Node(node(0xaa)))).unwrap();
        log.extend(r.commit());
        let back = Registry::restore(node(0xee), log).unwrap();
        let (a, b) = (r.cluster(&c).unwrap(), back.cluster(&c).unwrap());
        assert_eq!(
            (b.version, b.max_size, b.owner, b.len()),
            (6, 5, Some(node(0xaa)), 2)
        );
        assert_eq!(slots(&back, &c), slots(&r, &c));
        assert_eq!(
            a.history().collect::<Vec<_>>(),
            b.history().collect::<Vec<_>>()
        );
        assert_eq!(b.history().count(), 6);
    }
}
