//! Loading stored data: how a store's [`Change`]s (or the rows a database
//! backend read for one request) become a [`Registry`], each checked
//! against the rules a request would have met, so a corrupt or foreign
//! database is refused with the record named instead of being served.

use super::rules::Registry;
use super::values::{
    Change, Cluster, IdOwner, RestoreError, Slot, HISTORY_LEN, MAX_CLUSTER_NAME, MAX_CLUSTER_SIZE,
    MAX_ENDPOINT_COUNT, MIN_CLUSTER_SIZE,
};
use crate::wire::NodeId;

impl Registry {
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
                ttl_ms,
                created_ms,
                last_active_ms,
                version,
                owner,
            } => {
                if version == 0 {
                    return bad(format!("cluster {id} has version 0"));
                }
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
                        slots: Vec::new(),
                        version,
                        owner,
                        history: Default::default(),
                        next_size: None,
                        next_version: None,
                        committed: true,
                        ttl_ms,
                        created_ms,
                        last_active_ms,
                        persisted_active_ms: last_active_ms,
                    },
                );
                Ok(())
            }
            Change::DeleteCluster { id } => {
                if self.clusters.remove(&id).is_none() {
                    return bad(format!("deletion of unknown cluster {id}"));
                }
                self.by_name.retain(|_, v| *v != id);
                self.ids.remove(&id);
                Ok(())
            }
            Change::Touch { id, at_ms } => {
                if let Some(c) = self.clusters.get_mut(&id) {
                    c.last_active_ms = c.last_active_ms.max(at_ms);
                    c.persisted_active_ms = c.last_active_ms;
                }
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
                if index >= c.max_size as usize {
                    return bad(format!(
                        "cluster {cluster}: member slot {index} beyond its size {}",
                        c.max_size
                    ));
                }
                if c.member(index).is_some() {
                    return bad(format!(
                        "cluster {cluster}: member slot {index} stored twice"
                    ));
                }
                if c.members()
                    .any(|(_, m)| m.id == record.id || m.name == record.name)
                {
                    return bad(format!(
                        "cluster {cluster}: slot {index} repeats a member's ID or name"
                    ));
                }
                if c.slots.len() <= index {
                    c.slots.resize_with(index + 1, Slot::default);
                }
                c.slots[index].shown = Some(record);
                Ok(())
            }
            Change::ReplaceMember {
                cluster,
                index,
                record,
            } => match self
                .clusters
                .get_mut(&cluster)
                .and_then(|c| c.slots.get_mut(index))
                .and_then(|s| s.shown.as_mut())
            {
                Some(m) if m.id == record.id && m.name == record.name => {
                    *m = record;
                    Ok(())
                }
                _ => bad(format!(
                    "cluster {cluster}: replacement of slot {index} matches no member"
                )),
            },
            Change::RemoveMember { cluster, index } => {
                let Some(c) = self.clusters.get_mut(&cluster) else {
                    return bad(format!("removal from unknown cluster {cluster}"));
                };
                if c.slots
                    .get_mut(index)
                    .and_then(|s| s.shown.take())
                    .is_none()
                {
                    return bad(format!("cluster {cluster}: removal of empty slot {index}"));
                }
                c.trim_slots();
                Ok(())
            }
            Change::Resize { cluster, max_size } => {
                let Some(c) = self.clusters.get_mut(&cluster) else {
                    return bad(format!("resize of unknown cluster {cluster}"));
                };
                if !(MIN_CLUSTER_SIZE..=MAX_CLUSTER_SIZE).contains(&max_size)
                    || c.members().any(|(i, _)| i >= max_size as usize)
                {
                    return bad(format!(
                        "cluster {cluster}: resize to {max_size} over its members"
                    ));
                }
                c.max_size = max_size;
                Ok(())
            }
            Change::Logged { cluster, entry } => {
                let Some(c) = self.clusters.get_mut(&cluster) else {
                    return bad(format!("history of unknown cluster {cluster}"));
                };
                c.version = c.version.max(entry.version);
                c.history.push_back(entry);
                while c.history.len() > HISTORY_LEN {
                    c.history.pop_front();
                }
                Ok(())
            }
        }
    }

    /// After a restore: set the clock, and count clusters whose last
    /// activity is unknown (stored before TTLs existed) as active now.
    pub fn start_clock(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        for c in self.clusters.values_mut() {
            if c.last_active_ms == 0 {
                c.last_active_ms = now_ms;
            }
        }
    }
}
