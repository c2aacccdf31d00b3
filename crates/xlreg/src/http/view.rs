//! What the status page and the admin API show about clusters: plain
//! serialisable snapshots taken under the registry lock, so rendering
//! never holds it.

use serde::Serialize;

use crate::registry::{Cluster, Registry};
use crate::wire::msg::Token;

/// One cluster, as the page and `GET /api/clusters` show it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ClusterSummary {
    /// Name (lossy UTF-8).
    pub name: String,
    /// Cluster ID, hex.
    pub id: String,
    /// Members joined.
    pub members: usize,
    /// Maximum members.
    pub size: u32,
    /// Attribute bits.
    pub attrs: u64,
    /// Endpoints per member.
    pub endpoints: u32,
    /// Creation time, Unix ms (0: before this server recorded it).
    pub created_ms: u64,
    /// Last Create, Join or GetCluster, Unix ms.
    pub last_active_ms: u64,
    /// TTL in force, seconds (`null`: never expires).
    pub ttl_s: Option<u64>,
    /// When it expires, Unix ms, unless touched again.
    pub expires_ms: Option<u64>,
}

/// One member of a cluster.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct MemberView {
    /// Slot in the cluster.
    pub index: usize,
    /// Name (lossy UTF-8).
    pub name: String,
    /// Node ID, hex.
    pub id: String,
    /// Endpoints, `host:port`.
    pub endpoints: Vec<String>,
    /// SHA-256 of the comms key (SPKI DER), first 16 hex digits.
    pub comms_key_sha256: String,
    /// SHA-256 of the sig key (SPKI DER), first 16 hex digits.
    pub sig_key_sha256: String,
}

/// A cluster with its members (`GET /api/clusters/NAME`).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ClusterDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: ClusterSummary,
    /// Members in slot order.
    pub member_list: Vec<MemberView>,
}

/// Server-wide numbers (`GET /api/stats`).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Stats {
    /// Live clusters.
    pub clusters: usize,
    /// Members in them.
    pub members: usize,
    /// Connections being served.
    pub connections: i64,
    /// Clusters removed by expiry since start.
    pub expired_clusters: u64,
    /// Clusters deleted by an operator since start.
    pub deleted_clusters: u64,
    /// Members registered since start.
    pub registrations: u64,
}

fn fingerprint(key: &Option<Vec<u8>>) -> String {
    let d = openssl::sha::sha256(key.as_deref().unwrap_or_default());
    hex::encode(&d[..8])
}

/// Snapshot of one cluster.
pub fn summary(reg: &Registry, c: &Cluster) -> ClusterSummary {
    ClusterSummary {
        name: String::from_utf8_lossy(&c.name).into_owned(),
        id: c.id.to_hex(),
        members: c.len(),
        size: c.max_size,
        attrs: c.attrs,
        endpoints: c.ep_count,
        created_ms: c.created_ms,
        last_active_ms: c.last_active_ms,
        ttl_s: reg.ttl_of(c).map(|t| t / 1000),
        expires_ms: reg.expires_at(c),
    }
}

/// Snapshot of one cluster and its members.
pub fn detail(reg: &Registry, c: &Cluster) -> ClusterDetail {
    let member_list = c
        .members()
        .iter()
        .enumerate()
        .map(|(index, m)| {
            let t: Token = prost::Message::decode(&m.token[..]).unwrap_or_default();
            MemberView {
                index,
                name: String::from_utf8_lossy(&m.name).into_owned(),
                id: m.id.to_hex(),
                endpoints: t
                    .my_ends
                    .iter()
                    .map(|e| String::from_utf8_lossy(e).into_owned())
                    .collect(),
                comms_key_sha256: fingerprint(&t.comms_key),
                sig_key_sha256: fingerprint(&t.sig_key),
            }
        })
        .collect();
    ClusterDetail {
        summary: summary(reg, c),
        member_list,
    }
}

/// Every live cluster, sorted by name.
pub fn all(reg: &Registry) -> Vec<ClusterDetail> {
    let mut v: Vec<_> = reg.clusters().map(|c| detail(reg, c)).collect();
    v.sort_by(|a, b| a.summary.name.cmp(&b.summary.name));
    v
}

/// Most clusters the status page shows (a page refreshed every second
/// must stay cheap on a registry with very many clusters).
pub const PAGE_LIMIT: usize = 200;

/// The `PAGE_LIMIT` most recently active live clusters, sorted by name,
/// and how many live clusters there are in all.
pub fn recent(reg: &Registry) -> (Vec<ClusterDetail>, usize) {
    let mut live: Vec<_> = reg.clusters().collect();
    let total = live.len();
    if live.len() > PAGE_LIMIT {
        live.select_nth_unstable_by(PAGE_LIMIT - 1, |a, b| {
            b.last_active_ms.cmp(&a.last_active_ms)
        });
        live.truncate(PAGE_LIMIT);
    }
    let mut v: Vec<_> = live.into_iter().map(|c| detail(reg, c)).collect();
    v.sort_by(|a, b| a.summary.name.cmp(&b.summary.name));
    (v, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::NodeId;

    #[test]
    fn the_page_shows_the_most_recently_active_clusters_only() {
        let mut r = Registry::new(NodeId::random());
        for i in 0..(PAGE_LIMIT + 5) {
            r.set_now(1_000 + i as u64);
            r.create(format!("c{i:04}").as_bytes(), 2, 0, 1).unwrap();
        }
        r.commit();
        let (shown, total) = recent(&r);
        assert_eq!((shown.len(), total), (PAGE_LIMIT, PAGE_LIMIT + 5));
        assert_eq!(
            shown[0].summary.name, "c0005",
            "the five oldest are left out"
        );
        assert!(shown
            .windows(2)
            .all(|w| w[0].summary.name < w[1].summary.name));
        assert_eq!(all(&r).len(), PAGE_LIMIT + 5);
    }
}
