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

use super::request::{Answer, ClusterTarget, Delete, GetCluster, Joined, Members, Request};
pub use super::values::{
    Change, Cluster, ClusterFacts, IdOwner, MemberRecord, Policy, RestoreError, RuleError,
    Selection, ATTR_EPHEMERAL, MAX_CLUSTER_NAME, MAX_ENDPOINT_COUNT,
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
                .create_with_ttl(&c.name, c.max_size, c.attrs, c.ep_count, c.ttl_ms)
                .map(Answer::Created),
            Request::Join(j) => {
                let id = self.find(&j.cluster)?;
                let (cluster, index) = self.join(&id, j.record, j.endpoints)?;
                Ok(Answer::Joined(Joined { cluster, index }))
            }
            Request::GetCluster(g) => self.members(&g).map(Answer::Members),
            Request::Delete(d) => self.delete_as_member(&d).map(Answer::Deleted),
            Request::DeleteByName(name) => self.delete_by_name(&name).map(Answer::Deleted),
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
        if !c.committed || !c.members().iter().any(|m| m.id == d.by) {
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
            if self.clusters.len() >= max {
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
        let c = Cluster {
            id,
            name: name.into(),
            attrs,
            max_size: crate::limits::clamp_cluster_size(max_size),
            ep_count,
            members: Vec::new(),
            visible: 0,
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
        if self.live(cluster).is_none() {
            return Err(RuleError::NoSuchId);
        }
        self.touch(cluster);
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
        self.removed.clear();
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
                Change::NewMember { cluster, index, .. } => {
                    if let Some(c) = self.clusters.get_mut(&cluster) {
                        c.members.truncate(index);
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
                Change::ReplaceMember { .. } | Change::Touch { .. } => {}
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
                let mut c = c.clone();
                c.members.truncate(c.visible);
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
            Change::NewId { id, .. }
            | Change::NewCluster { id, .. }
            | Change::DeleteCluster { id }
            | Change::Touch { id, .. } => *id == c,
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
            ttl_ms: None,
            created_ms: 0,
            last_active_ms: 0,
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
