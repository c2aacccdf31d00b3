//! Rows to rules: how the rows a request read become the small
//! [`Registry`] the rule functions decide on. Every row goes through
//! [`Registry::restore_change`], so stored data the rules would never
//! write (a foreign or corrupt database) is refused, not served.

use tokio_postgres::Row;

use super::Failure;
use crate::registry::request::ClusterTarget;
use crate::registry::rules::{Change, IdOwner, MemberRecord, Registry};
use crate::wire::NodeId;

pub(super) fn owner_of(kind: i16, sig: Option<Vec<u8>>) -> Result<IdOwner, Failure> {
    match (kind, sig) {
        (0, None) => Ok(IdOwner::Registry),
        (1, None) => Ok(IdOwner::Cluster),
        (2, Some(h)) if h.len() == 32 => Ok(IdOwner::Member(h.try_into().expect("32 bytes"))),
        (k, _) => Err(Failure::Corrupt(format!("ID row of kind {k} is invalid"))),
    }
}

pub(super) fn node_id(raw: &[u8], what: &str) -> Result<NodeId, Failure> {
    NodeId::from_bytes(raw).map_err(|_| Failure::Corrupt(format!("{what} of {} bytes", raw.len())))
}

pub(super) fn restore(reg: &mut Registry, ch: Change) -> Result<(), Failure> {
    reg.restore_change(ch)
        .map_err(|e| Failure::Corrupt(format!("stored data refused: {e}")))
}

/// Columns: c.id, c.name, c.attrs, c.max_size, c.ep_count, m.idx,
/// m.member_id, m.name, m.token (member columns NULL for an empty cluster).
pub(super) const CLUSTER_COLUMNS: &str = "c.id, c.name, c.attrs, c.max_size, c.ep_count,
     m.idx, m.member_id, m.name, m.token, c.ttl_ms, c.created_ms, c.last_active_ms
     FROM xlreg_clusters c LEFT JOIN xlreg_members m ON m.cluster_id = c.id";

/// [`CLUSTER_COLUMNS`] without the tokens, which a Join does not decide
/// on: it reads slots, IDs and names. (A re-join is then always written,
/// as if its token had changed.)
pub(super) const JOIN_COLUMNS: &str = "c.id, c.name, c.attrs, c.max_size, c.ep_count,
     m.idx, m.member_id, m.name, ''::bytea, c.ttl_ms, c.created_ms, c.last_active_ms
     FROM xlreg_clusters c LEFT JOIN xlreg_members m ON m.cluster_id = c.id";

/// Load the rows of one cluster (see [`CLUSTER_COLUMNS`]) into `reg`
/// through the rules' checks; nothing when there were no rows.
pub(super) fn load_cluster_rows(reg: &mut Registry, rows: &[Row]) -> Result<(), Failure> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let id = node_id(first.get::<_, &[u8]>(0), "cluster ID")?;
    restore(
        reg,
        Change::NewCluster {
            id,
            name: first.get::<_, &[u8]>(1).into(),
            attrs: first.get::<_, i64>(2) as u64,
            max_size: first.get::<_, i32>(3) as u32,
            ep_count: first.get::<_, i32>(4) as u32,
            ttl_ms: first.get::<_, Option<i64>>(9).map(|v| v as u64),
            created_ms: first.get::<_, i64>(10) as u64,
            last_active_ms: first.get::<_, i64>(11) as u64,
        },
    )?;
    for r in rows {
        let Some(idx) = r.get::<_, Option<i32>>(5) else {
            continue;
        };
        restore(
            reg,
            Change::NewMember {
                cluster: id,
                index: idx as usize,
                record: MemberRecord {
                    id: node_id(r.get::<_, &[u8]>(6), "member ID")?,
                    name: r.get::<_, &[u8]>(7).into(),
                    token: r.get::<_, &[u8]>(8).into(),
                },
            },
        )?;
    }
    Ok(())
}

/// The column and value a cluster target is found by.
pub(super) fn target_key(t: &ClusterTarget) -> (&'static str, &[u8]) {
    match t {
        ClusterTarget::Id(id) => ("id", id.as_bytes()),
        ClusterTarget::Name(n) => ("name", n),
    }
}
