//! Rows to rules: how the rows a request read become the small
//! [`Registry`] the rule functions decide on. Every row goes through
//! [`Registry::restore_change`], so stored data the rules would never
//! write (a foreign or corrupt database) is refused, not served.

use tokio_postgres::Row;

use super::failure::Failure;
use crate::registry::request::ClusterTarget;
use crate::registry::rules::{Change, IdOwner, MemberRecord, Policy, Registry, ATTR_EPHEMERAL};
use crate::registry::values::{Actor, ChangeKind, HistoryEntry};
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

/// The columns of a cluster and its members (one row per member), with
/// the SQL expression `$token` for each member's token.
macro_rules! cluster_columns {
    ($token:literal) => {
        concat!(
            "c.id, c.name, c.attrs, c.max_size, c.ep_count,
     m.idx, m.member_id, m.name, ",
            $token,
            ", c.ttl_ms, c.created_ms, c.last_active_ms,
     c.version, c.owner
     FROM xlreg_clusters c LEFT JOIN xlreg_members m ON m.cluster_id = c.id"
        )
    };
}

/// Columns: c.id, c.name, c.attrs, c.max_size, c.ep_count, m.idx,
/// m.member_id, m.name, m.token (member columns NULL for an empty cluster),
/// c.ttl_ms, c.created_ms, c.last_active_ms, c.version, c.owner.
pub(super) const CLUSTER_COLUMNS: &str = cluster_columns!("m.token");

/// [`CLUSTER_COLUMNS`] without the tokens, which a Resize, Evict, Leave
/// or Delete does not decide on: it reads slots, IDs and names.
pub(super) const CHANGE_COLUMNS: &str = cluster_columns!("''::bytea");

/// [`CLUSTER_COLUMNS`] with only the tokens of the members whose IDs are
/// in `$2` (a `bytea[]`: the IDs joining in this batch), the rest empty.
/// A Join decides on slots, IDs and names, and on a re-joining member's
/// token: the same token changes nothing, a new one is a change (a new
/// version), as on SQLite. Only a re-joining member's token is read back.
pub(super) const JOIN_COLUMNS: &str =
    cluster_columns!("CASE WHEN m.member_id = ANY($2) THEN m.token ELSE ''::bytea END");

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
            version: first.get::<_, i64>(12) as u64,
            owner: owner_id(first.get(13))?,
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

/// The cluster row's columns read by [`cluster_row`].
pub(super) const CLUSTER_ONLY_COLUMNS: &str = "c.id, c.name, c.attrs, c.max_size, c.ep_count,
     c.ttl_ms, c.created_ms, c.last_active_ms, c.version, c.owner";

/// A cluster row ([`CLUSTER_ONLY_COLUMNS`]) as the change that made it.
pub(super) fn cluster_row(r: &Row) -> Result<Change, Failure> {
    Ok(Change::NewCluster {
        id: node_id(r.get::<_, &[u8]>(0), "cluster ID")?,
        name: r.get::<_, &[u8]>(1).into(),
        attrs: r.get::<_, i64>(2) as u64,
        max_size: r.get::<_, i32>(3) as u32,
        ep_count: r.get::<_, i32>(4) as u32,
        ttl_ms: r.get::<_, Option<i64>>(5).map(|v| v as u64),
        created_ms: r.get::<_, i64>(6) as u64,
        last_active_ms: r.get::<_, i64>(7) as u64,
        version: r.get::<_, i64>(8) as u64,
        owner: owner_id(r.get(9))?,
    })
}

/// A cluster's owner column.
fn owner_id(raw: Option<&[u8]>) -> Result<Option<NodeId>, Failure> {
    raw.map(|o| node_id(o, "cluster owner")).transpose()
}

/// Columns of the history rows read by [`load_history`].
pub(super) const HISTORY_COLUMNS: &str =
    "h.cluster_id, h.version, h.at_ms, h.kind, h.detail, h.by_whom FROM xlreg_history h";

/// History rows ([`HISTORY_COLUMNS`]) into the clusters of `reg` already
/// loaded, through the rules' checks.
pub(super) fn load_history(reg: &mut Registry, rows: &[Row]) -> Result<(), Failure> {
    for r in rows {
        let cluster = node_id(r.get::<_, &[u8]>(0), "cluster ID")?;
        let version = r.get::<_, i64>(1);
        let (kind, by): (&str, &str) = (r.get(3), r.get(5));
        let (Some(kind), Some(by)) = (ChangeKind::parse(kind), Actor::parse(by)) else {
            return Err(Failure::Corrupt(format!(
                "cluster {cluster}: history entry {version} of kind {kind:?} by {by:?}"
            )));
        };
        let entry = HistoryEntry {
            version: version.max(0) as u64,
            at_ms: r.get::<_, i64>(2).max(0) as u64,
            kind,
            detail: r.get::<_, &str>(4).into(),
            by,
        };
        restore(reg, Change::Logged { cluster, entry })?;
    }
    Ok(())
}

/// Load rows of several clusters ([`CLUSTER_COLUMNS`], ordered by
/// cluster) into `reg`, cluster by cluster.
pub(super) fn load_grouped(reg: &mut Registry, rows: &[Row]) -> Result<(), Failure> {
    let mut start = 0;
    while start < rows.len() {
        let id: &[u8] = rows[start].get(0);
        let end = rows[start..]
            .iter()
            .position(|r| r.get::<_, &[u8]>(0) != id)
            .map_or(rows.len(), |i| start + i);
        load_cluster_rows(reg, &rows[start..end])?;
        start = end;
    }
    Ok(())
}

/// "Cluster row `c` is live": the SQL form of the rules' expiry
/// ([`Registry::ttl_of`], [`Registry::expires_at`]): its own TTL, else
/// `$1` for clusters with the Ephemeral bit, else `$2` (NULL: never
/// expires); live while `last_active_ms + TTL > $3` (now). The parameters
/// come from [`expiry_params`]. Used to read only live clusters and to
/// pick sweep candidates; the rules decide on the rows picked.
pub(super) fn live() -> String {
    format!(
        "(coalesce(c.ttl_ms, CASE WHEN c.attrs & {ATTR_EPHEMERAL} <> 0 THEN $1::bigint \
         ELSE $2::bigint END) IS NULL OR c.last_active_ms + coalesce(c.ttl_ms, CASE WHEN \
         c.attrs & {ATTR_EPHEMERAL} <> 0 THEN $1::bigint ELSE $2::bigint END) > $3::bigint)"
    )
}

/// `$1`, `$2`, `$3` of [`live`]: the Ephemeral TTL, the default TTL and
/// now (Unix ms).
pub(super) fn expiry_params(policy: &Policy, now_ms: i64) -> (Option<i64>, Option<i64>, i64) {
    let ms = |v: u64| v.min(i64::MAX as u64) as i64;
    (
        policy.ephemeral_ttl_ms.or(policy.cluster_ttl_ms).map(ms),
        policy.cluster_ttl_ms.map(ms),
        now_ms,
    )
}
