//! What a member knows about its cluster once booted, and its JSON form.
//!
//! The JSON rendering lives here, not in the CLI, so that every command
//! that prints a cluster (`xlreg join`, `xlreg members`, `xlreg up`) prints
//! the same document. Keys are shown as SHA-256 fingerprints of their SPKI
//! DER ([`PublicKey::fingerprint`]).

use serde::Serialize;

use super::ClientError;
use crate::wire::{NodeId, PublicKey, Token};

/// One member of a cluster, from its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Index in the cluster (join order, 0-based).
    pub index: usize,
    /// Member name (lossy UTF-8 of the bytes sent).
    pub name: String,
    /// Node ID.
    pub id: NodeId,
    /// Member attribute bits.
    pub attrs: u64,
    /// Endpoints as `host:port`, as registered.
    pub endpoints: Vec<String>,
    /// Comms public key.
    pub comms_key: PublicKey,
    /// Signature public key.
    pub sig_key: PublicKey,
}

impl MemberInfo {
    /// Validate a token from a ClusterMembers reply: the ID must be 20 or
    /// 32 bytes and both keys must parse as RSA SPKI DER.
    pub fn from_token(index: usize, t: &Token) -> Result<Self, ClientError> {
        let bad = |why: String| ClientError::BadReply(format!("token of member {index}: {why}"));
        let id = t.id.as_deref().ok_or_else(|| bad("no ID".into()))?;
        let id = NodeId::from_bytes(id).map_err(|e| bad(format!("ID: {e}")))?;
        let comms_key = PublicKey::from_spki_der(t.comms_key.as_deref().unwrap_or_default())
            .map_err(|e| bad(format!("comms key: {e}")))?;
        let sig_key = PublicKey::from_spki_der(t.sig_key.as_deref().unwrap_or_default())
            .map_err(|e| bad(format!("sig key: {e}")))?;
        Ok(MemberInfo {
            index,
            name: String::from_utf8_lossy(t.name.as_deref().unwrap_or_default()).into_owned(),
            id,
            attrs: t.attrs.unwrap_or(0),
            endpoints: t
                .my_ends
                .iter()
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect(),
            comms_key,
            sig_key,
        })
    }

    fn to_json_struct(&self) -> MemberJson {
        MemberJson {
            index: self.index,
            name: self.name.clone(),
            id: self.id.to_hex(),
            attrs: self.attrs,
            endpoints: self.endpoints.clone(),
            comms_key_sha256: self.comms_key.fingerprint(),
            sig_key_sha256: self.sig_key.fingerprint(),
        }
    }
}

/// Everything a booted member knows about its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    /// Cluster ID.
    pub cluster_id: NodeId,
    /// Cluster name, when known (a join by ID does not learn it).
    pub cluster_name: Option<String>,
    /// Maximum number of members.
    pub max_size: u32,
    /// Endpoints per member the cluster was created with.
    pub endpoint_count: u32,
    /// Cluster attribute bits.
    pub attrs: u64,
    /// Index of this member in `members`' numbering.
    pub self_index: usize,
    /// Members ascending by index; all `max_size` of them once complete.
    pub members: Vec<MemberInfo>,
    /// The cluster's version (1 at creation, one more at every change of
    /// its members or size), from a registry that said it: a view from a
    /// [`Watch`](super::Watch) has it; 0 when the registry did not say
    /// (a boot's GetCluster, a Go registry). See [`ClusterView::version`].
    pub version: u64,
}

impl ClusterView {
    /// The `self_index` of a view whose watcher is not a member of the
    /// cluster (a reader's [`Watch`](super::Watch)): no member has it, so
    /// [`self_member`](Self::self_member) is `None` and
    /// [`peers`](Self::peers) is every member.
    pub const NOT_A_MEMBER: usize = usize::MAX;

    /// The cluster's version when the registry said it (a view from a
    /// [`Watch`](super::Watch) or [`Session::watch_next`](super::Session::watch_next)),
    /// else 0: versions only grow, so a later view of the same cluster has
    /// a greater one.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Are all `max_size` members present?
    pub fn is_complete(&self) -> bool {
        self.members.len() == self.max_size as usize
    }

    /// The member with this index.
    pub fn member(&self, index: usize) -> Option<&MemberInfo> {
        self.members.iter().find(|m| m.index == index)
    }

    /// This member's own entry.
    pub fn self_member(&self) -> Option<&MemberInfo> {
        self.member(self.self_index)
    }

    /// The other members.
    pub fn peers(&self) -> impl Iterator<Item = &MemberInfo> {
        self.members
            .iter()
            .filter(move |m| m.index != self.self_index)
    }

    /// The JSON document printed by `xlreg join --json`:
    /// `{"cluster_id","cluster_name","max_size","endpoint_count","self_index",
    /// "members":[{"index","name","id","attrs","endpoints",
    /// "comms_key_sha256","sig_key_sha256"}]}`, plus `"version"` when the
    /// registry said it (not 0). A watcher that is not a member has
    /// `"self_index": null`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(ViewJson {
            cluster_id: self.cluster_id.to_hex(),
            cluster_name: self.cluster_name.clone(),
            max_size: self.max_size,
            endpoint_count: self.endpoint_count,
            self_index: (self.self_index != Self::NOT_A_MEMBER).then_some(self.self_index),
            version: self.version,
            members: members_json(&self.members),
        })
        .unwrap_or(serde_json::Value::Null)
    }

    /// Pretty-printed [`to_json`](Self::to_json).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&self.to_json()).unwrap_or_default()
    }
}

/// A cluster's members read without joining (`xlreg members`): the
/// registry's GetCluster reply carries no size or endpoint count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberList {
    /// Cluster ID.
    pub cluster_id: NodeId,
    /// Members present, ascending by index.
    pub members: Vec<MemberInfo>,
}

impl MemberList {
    /// `{"cluster_id","members":[…]}` with the members as in
    /// [`ClusterView::to_json`].
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(ListJson {
            cluster_id: self.cluster_id.to_hex(),
            members: members_json(&self.members),
        })
        .unwrap_or(serde_json::Value::Null)
    }

    /// Pretty-printed [`to_json`](Self::to_json).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&self.to_json()).unwrap_or_default()
    }
}

fn members_json(members: &[MemberInfo]) -> Vec<MemberJson> {
    members.iter().map(MemberInfo::to_json_struct).collect()
}

#[derive(Serialize)]
struct MemberJson {
    index: usize,
    name: String,
    id: String,
    attrs: u64,
    endpoints: Vec<String>,
    comms_key_sha256: String,
    sig_key_sha256: String,
}

#[derive(Serialize)]
struct ViewJson {
    cluster_id: String,
    cluster_name: Option<String>,
    max_size: u32,
    endpoint_count: u32,
    self_index: Option<usize>,
    #[serde(skip_serializing_if = "is_zero")]
    version: u64,
    members: Vec<MemberJson>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize)]
struct ListJson {
    cluster_id: String,
    members: Vec<MemberJson>,
}

/// A plain-text table of members for humans.
pub fn members_table(members: &[MemberInfo], self_index: Option<usize>) -> String {
    let mut rows = vec![[
        "IDX".to_string(),
        "NAME".to_string(),
        "ID".to_string(),
        "ENDPOINTS".to_string(),
    ]];
    for m in members {
        let mark = if Some(m.index) == self_index { "*" } else { "" };
        rows.push([
            format!("{}{mark}", m.index),
            m.name.clone(),
            m.id.to_hex(),
            if m.endpoints.is_empty() {
                "-".into()
            } else {
                m.endpoints.join(",")
            },
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> &'static (PublicKey, PublicKey) {
        crate::wire::crypto::test_public_keys()
    }

    fn member(i: usize) -> MemberInfo {
        let (ck, sk) = keys().clone();
        MemberInfo {
            index: i,
            name: format!("m{i}"),
            id: NodeId::from_bytes(&[i as u8; 20]).unwrap(),
            attrs: 0,
            endpoints: vec![format!("127.0.0.1:{}", 4000 + i)],
            comms_key: ck,
            sig_key: sk,
        }
    }

    #[test]
    fn view_json_has_the_documented_keys_and_values() {
        let v = ClusterView {
            cluster_id: NodeId::from_bytes(&[0xaa; 20]).unwrap(),
            cluster_name: Some("c".into()),
            max_size: 2,
            endpoint_count: 1,
            attrs: 0,
            self_index: 1,
            members: vec![member(0), member(1)],
            version: 0,
        };
        assert!(v.is_complete());
        assert_eq!(v.peers().count(), 1);
        let j = v.to_json();
        assert_eq!(j["cluster_id"], "aa".repeat(20));
        assert_eq!(j["cluster_name"], "c");
        assert_eq!(j["max_size"], 2);
        assert_eq!(j["endpoint_count"], 1);
        assert_eq!(j["self_index"], 1);
        let m = &j["members"][1];
        assert_eq!(m["index"], 1);
        assert_eq!(m["name"], "m1");
        assert_eq!(m["id"], "01".repeat(20));
        assert_eq!(m["endpoints"][0], "127.0.0.1:4001");
        assert_eq!(m["comms_key_sha256"], keys().0.fingerprint());
        assert_eq!(m["sig_key_sha256"], keys().1.fingerprint());
        assert_ne!(m["comms_key_sha256"], m["sig_key_sha256"]);
        let back: serde_json::Value = serde_json::from_str(&v.to_json_string()).unwrap();
        assert_eq!(back, j);
    }

    #[test]
    fn view_json_has_a_version_when_known_and_a_null_self_for_a_reader() {
        let mut v = ClusterView {
            cluster_id: NodeId::from_bytes(&[0xaa; 20]).unwrap(),
            cluster_name: None,
            max_size: 3,
            endpoint_count: 1,
            attrs: 0,
            self_index: 0,
            members: vec![member(0)],
            version: 0,
        };
        assert!(v.to_json().get("version").is_none(), "0: not said");
        v.version = 4;
        v.self_index = ClusterView::NOT_A_MEMBER;
        assert_eq!(v.version(), 4);
        let j = v.to_json();
        assert_eq!(j["version"], 4);
        assert!(j["self_index"].is_null());
        assert!(v.self_member().is_none());
        assert_eq!(v.peers().count(), 1);
    }

    #[test]
    fn member_from_token_round_trips_and_rejects_missing_id() {
        let m = member(3);
        let t = Token {
            name: Some(m.name.clone().into_bytes()),
            attrs: Some(5),
            id: Some(m.id.as_bytes().to_vec()),
            comms_key: Some(m.comms_key.to_spki_der()),
            sig_key: Some(m.sig_key.to_spki_der()),
            my_ends: vec![b"127.0.0.1:4003".to_vec()],
            dig_sig: None,
        };
        let back = MemberInfo::from_token(3, &t).unwrap();
        assert_eq!(back, MemberInfo { attrs: 5, ..m });
        let no_id = Token { id: None, ..t };
        assert!(MemberInfo::from_token(3, &no_id)
            .unwrap_err()
            .to_string()
            .contains("no ID"));
    }

    #[test]
    fn table_marks_self_and_aligns() {
        let t = members_table(&[member(0), member(1)], Some(1));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[2].starts_with("1* "));
        assert_eq!(lines[1].find("m0"), lines[0].find("NAME"));
    }
}
