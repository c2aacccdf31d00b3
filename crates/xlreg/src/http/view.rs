//! What the status page and the admin API show about clusters: plain
//! serialisable snapshots of a listing page ([`Listing`]), so rendering
//! never holds the registry.

use serde::Serialize;

use crate::registry::{Cluster, Listing, Registry};
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

/// The clusters of a listing page, in its order, with their members.
pub fn details(l: &Listing) -> Vec<ClusterDetail> {
    l.clusters
        .iter()
        .filter_map(|id| l.registry.cluster(id))
        .map(|c| detail(&l.registry, c))
        .collect()
}

/// Most clusters the status page shows (a page refreshed every second
/// must stay cheap on a registry with very many clusters).
pub const PAGE_LIMIT: usize = 200;
