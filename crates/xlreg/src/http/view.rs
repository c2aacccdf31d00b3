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
    /// Version: 1 at creation, +1 per committed change (join, re-join,
    /// leave, evict, resize).
    #[serde(default)]
    pub version: u64,
}

/// One change of a cluster, as its history keeps it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ChangeView {
    /// The cluster's version after the change.
    pub version: u64,
    /// When, Unix ms.
    pub at_ms: u64,
    /// `create`, `join`, `rejoin`, `leave`, `evict` or `resize`.
    pub kind: String,
    /// To what: `slot 1 (m01)`, `3 -> 5`.
    pub detail: String,
    /// Who: `owner` (the creator), `admin` or `member`.
    pub by: String,
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
    /// Members in slot order (a slot left by a member is missing).
    pub member_list: Vec<MemberView>,
    /// The creating node's ID, hex (`null`: created before owners were
    /// recorded; only the operator may resize or evict).
    #[serde(default)]
    pub owner: Option<String>,
    /// The last changes, oldest first (at most
    /// [`HISTORY_LEN`](crate::registry::HISTORY_LEN)).
    #[serde(default)]
    pub history: Vec<ChangeView>,
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
        version: c.version,
    }
}

/// Snapshot of one cluster and its members.
pub fn detail(reg: &Registry, c: &Cluster) -> ClusterDetail {
    let member_list = c
        .members()
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
        owner: c.owner.map(|o| o.to_hex()),
        history: c
            .history()
            .map(|e| ChangeView {
                version: e.version,
                at_ms: e.at_ms,
                kind: e.kind.as_str().into(),
                detail: e.detail.to_string(),
                by: e.by.as_str().into(),
            })
            .collect(),
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
