//! The protobuf schema of spec §7 (one `XLRegMsg` with an `Op` tag and
//! optional fields per operation, and a nested `Token` per member),
//! written as prost structs by hand (no protoc at build time).
//!
//! Every field is proto2 `optional` so that present-but-zero fields are
//! emitted like the Go server does (§7.4) and absent vs. empty stays
//! distinct (`Token.ID`). String fields are carried as bytes: Go does not
//! validate UTF-8, and the member signature covers the exact bytes sent.
//! Fields are declared in ascending tag order, which is the order prost
//! encodes them in — the Go encoder's order, so re-encoding is byte-exact.

use super::types::{NodeId, Which};
use super::WireError;
use prost::Message;

/// `XLRegMsg.Tag`: the operation of a message (spec §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Tag {
    /// Ask the registry to describe itself (c→s). Crashes the Go server.
    RegCredRequest = 1,
    /// The registry's description (s→c); this crate's extension.
    RegCredReply = 2,
    /// Register: token + signature (c→s).
    Member = 3,
    /// Reply to Member.
    MemberOk = 4,
    /// Create (or look up) a cluster.
    Create = 5,
    /// Reply to Create.
    CreateReply = 6,
    /// Join a cluster.
    Join = 7,
    /// Reply to Join.
    JoinReply = 8,
    /// Request member tokens.
    GetCluster = 9,
    /// Member tokens.
    ClusterMembers = 10,
    /// End of session.
    Bye = 11,
    /// Reply to Bye.
    Ack = 12,
    /// Failure; the server closes afterwards.
    Error = 13,
    /// xlreg extension, only on sessions that negotiated version ≥ 2.0
    /// (a Go peer never sends or receives it): delete the cluster named by
    /// ClusterID or ClusterName; allowed to a member of that cluster.
    /// Answered with Ack.
    DeleteCluster = 14,
    /// xlreg extension (≥ 2.0, length-prefixed sessions only): change the
    /// size of the cluster named by ClusterID or ClusterName to
    /// ClusterMaxSize; allowed to the cluster's creator. Answered with Ack
    /// carrying `cluster_version`.
    Resize = 15,
    /// xlreg extension (≥ 2.0): remove a member from its slot, named by
    /// `member_name` or `member_index`; allowed to the cluster's creator.
    /// Answered with Ack carrying `cluster_version`.
    Evict = 16,
    /// xlreg extension (≥ 2.0): the session's registered member leaves the
    /// cluster (its slot frees). Answered with Ack carrying
    /// `cluster_version`.
    Leave = 17,
    /// xlreg extension (≥ 2.0): wait (held, at most `hold_ms` and the
    /// registry's hold bound) until the cluster's version exceeds
    /// `cluster_version`. Answered with ClusterMembers carrying
    /// `cluster_max_size` and `cluster_version`.
    Watch = 18,
}

/// Whom an Evict removes: the member with this name (field 8,
/// `member_name`) or the member in this slot (field 42, `member_index`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evictee<'a> {
    /// The member with this name.
    Name(&'a str),
    /// The member in this slot (0-based).
    Index(u32),
}

/// `XLRegMsg.Token`: one member's public description (spec §7.3).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Token {
    /// Member name (raw bytes as sent).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub name: Option<Vec<u8>>,
    /// Member attribute bits.
    #[prost(uint64, optional, tag = "2")]
    pub attrs: Option<u64>,
    /// Node ID; absent means "assign me one".
    #[prost(bytes = "vec", optional, tag = "3")]
    pub id: Option<Vec<u8>>,
    /// Comms public key, SPKI DER.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub comms_key: Option<Vec<u8>>,
    /// Signature public key, SPKI DER.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub sig_key: Option<Vec<u8>>,
    /// Endpoints, `host:port`.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub my_ends: Vec<Vec<u8>>,
    /// Signature (Member request only).
    #[prost(bytes = "vec", optional, tag = "7")]
    pub dig_sig: Option<Vec<u8>>,
}

/// `XLRegMsg`: every session message (spec §7.2).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct XlRegMsg {
    /// The operation. Kept as a raw i32 so that unknown values reach the
    /// state machine (which answers them) instead of failing decoding.
    #[prost(enumeration = "Tag", optional, tag = "1")]
    pub op: Option<i32>,
    /// Unused by the protocol.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub aes_key: Option<Vec<u8>>,
    /// Unused by the protocol.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub salt1: Option<Vec<u8>>,
    /// Unused by the protocol.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub salt2: Option<Vec<u8>>,
    /// Version; used by RegCredReply (this crate's extension).
    #[prost(uint32, optional, tag = "6")]
    pub version: Option<u32>,
    /// Unused by the Go code.
    #[prost(bytes = "vec", optional, tag = "8")]
    pub member_name: Option<Vec<u8>>,
    /// MemberOK: the ID in use.
    #[prost(bytes = "vec", optional, tag = "9")]
    pub member_id: Option<Vec<u8>>,
    /// MemberOK: echo of the proposed attrs.
    #[prost(uint64, optional, tag = "10")]
    pub member_attrs: Option<u64>,
    /// Member: the token; RegCredReply: the registry's token.
    #[prost(message, optional, tag = "11")]
    pub member_specs: Option<Token>,
    /// Cluster ID.
    #[prost(bytes = "vec", optional, tag = "13")]
    pub cluster_id: Option<Vec<u8>>,
    /// Cluster name.
    #[prost(bytes = "vec", optional, tag = "14")]
    pub cluster_name: Option<Vec<u8>>,
    /// Maximum cluster size.
    #[prost(uint32, optional, tag = "15")]
    pub cluster_max_size: Option<u32>,
    /// Cluster attribute bits.
    #[prost(uint64, optional, tag = "16")]
    pub cluster_attrs: Option<u64>,
    /// Endpoints per member.
    #[prost(uint32, optional, tag = "17")]
    pub end_point_count: Option<u32>,
    /// GetCluster, xlreg extension (field 19, unassigned in the Go
    /// schema): the longest the client wants the registry to hold the
    /// request waiting for missing members, in milliseconds (0: answer at
    /// once). Sent only in length-prefixed sessions, so Go peers never see
    /// it; the registry's own hold bound still caps it.
    #[prost(uint32, optional, tag = "19")]
    pub hold_ms: Option<u32>,
    /// Member bitmap.
    #[prost(uint64, optional, tag = "20")]
    pub which: Option<u64>,
    /// Member tokens.
    #[prost(message, repeated, tag = "21")]
    pub tokens: Vec<Token>,
    /// Unused by the protocol.
    #[prost(bytes = "vec", optional, tag = "22")]
    pub dig_sig: Option<Vec<u8>>,
    /// Error text.
    #[prost(bytes = "vec", optional, tag = "23")]
    pub err_desc: Option<Vec<u8>>,
    /// xlreg extension, only on sessions that negotiated version ≥ 2.0
    /// (never to or from a Go peer): Create's requested cluster lifetime
    /// in seconds since the last Join or GetCluster; 0 or absent means the
    /// server's default.
    #[prost(uint64, optional, tag = "40")]
    pub cluster_ttl: Option<u64>,
    /// xlreg extension (≥ 2.0, never to or from a Go peer): a cluster's
    /// version (1 at creation, +1 per change). In the Ack to
    /// Resize/Evict/Leave: the version after the change; in Watch: the
    /// version the watcher has (0 or absent: answer at once); in the
    /// ClusterMembers answering Watch: the version described.
    #[prost(uint64, optional, tag = "41")]
    pub cluster_version: Option<u64>,
    /// xlreg extension (≥ 2.0): Evict by slot index.
    #[prost(uint32, optional, tag = "42")]
    pub member_index: Option<u32>,
}

impl XlRegMsg {
    fn with_op(op: Tag) -> Self {
        XlRegMsg {
            op: Some(op as i32),
            ..Default::default()
        }
    }

    /// The op as a known tag, if it is one.
    pub fn tag(&self) -> Option<Tag> {
        self.op.and_then(|v| Tag::try_from(v).ok())
    }

    /// Encode to protobuf bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Decode protobuf bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, WireError> {
        XlRegMsg::decode(b).map_err(|e| WireError::Protobuf(e.to_string()))
    }

    /// Member (op 3).
    pub fn member(token: Token) -> Self {
        XlRegMsg {
            member_specs: Some(token),
            ..Self::with_op(Tag::Member)
        }
    }
    /// MemberOK (op 4).
    pub fn member_ok(id: &NodeId, attrs: u64) -> Self {
        XlRegMsg {
            member_id: Some(id.as_bytes().to_vec()),
            member_attrs: Some(attrs),
            ..Self::with_op(Tag::MemberOk)
        }
    }
    /// Create (op 5).
    pub fn create(name: &str, max_size: u32, attrs: u64, ep_count: u32) -> Self {
        XlRegMsg {
            cluster_name: Some(name.as_bytes().to_vec()),
            cluster_max_size: Some(max_size),
            cluster_attrs: Some(attrs),
            end_point_count: Some(ep_count),
            ..Self::with_op(Tag::Create)
        }
    }
    fn cluster_reply(op: Tag, id: &NodeId, max_size: u32, attrs: u64, ep_count: u32) -> Self {
        XlRegMsg {
            cluster_id: Some(id.as_bytes().to_vec()),
            cluster_max_size: Some(max_size),
            cluster_attrs: Some(attrs),
            end_point_count: Some(ep_count),
            ..Self::with_op(op)
        }
    }
    /// CreateReply (op 6).
    pub fn create_reply(id: &NodeId, max_size: u32, attrs: u64, ep_count: u32) -> Self {
        Self::cluster_reply(Tag::CreateReply, id, max_size, attrs, ep_count)
    }
    /// Join by cluster ID (op 7), as the Go client does.
    pub fn join_by_id(id: &NodeId) -> Self {
        XlRegMsg {
            cluster_id: Some(id.as_bytes().to_vec()),
            ..Self::with_op(Tag::Join)
        }
    }
    /// Join by cluster name (op 7).
    pub fn join_by_name(name: &str) -> Self {
        XlRegMsg {
            cluster_name: Some(name.as_bytes().to_vec()),
            ..Self::with_op(Tag::Join)
        }
    }
    /// A message of `op` naming the cluster with this ID (`Some`) or name.
    fn for_cluster(op: Tag, id: Option<&NodeId>, name: &str) -> Self {
        match id {
            Some(id) => XlRegMsg {
                cluster_id: Some(id.as_bytes().to_vec()),
                ..Self::with_op(op)
            },
            None => XlRegMsg {
                cluster_name: Some(name.as_bytes().to_vec()),
                ..Self::with_op(op)
            },
        }
    }
    /// DeleteCluster (op 14, an xlreg extension) of the cluster with this
    /// ID (`Some`) or name.
    pub fn delete_cluster(id: Option<&NodeId>, name: &str) -> Self {
        Self::for_cluster(Tag::DeleteCluster, id, name)
    }
    /// Resize (op 15, an xlreg extension): the cluster with this ID
    /// (`Some`) or name gets `size` slots.
    pub fn resize(id: Option<&NodeId>, name: &str, size: u32) -> Self {
        XlRegMsg {
            cluster_max_size: Some(size),
            ..Self::for_cluster(Tag::Resize, id, name)
        }
    }
    /// Evict (op 16, an xlreg extension): remove `who` from the cluster
    /// with this ID (`Some`) or name.
    pub fn evict(id: Option<&NodeId>, name: &str, who: Evictee<'_>) -> Self {
        let m = Self::for_cluster(Tag::Evict, id, name);
        match who {
            Evictee::Name(n) => XlRegMsg {
                member_name: Some(n.as_bytes().to_vec()),
                ..m
            },
            Evictee::Index(i) => XlRegMsg {
                member_index: Some(i),
                ..m
            },
        }
    }
    /// Leave (op 17, an xlreg extension): the session's member leaves the
    /// cluster with this ID (`Some`) or name.
    pub fn leave(id: Option<&NodeId>, name: &str) -> Self {
        Self::for_cluster(Tag::Leave, id, name)
    }
    /// Watch (op 18, an xlreg extension): answer when the cluster with
    /// this ID (`Some`) or name has a version above `known` (0: at once),
    /// waiting at most `hold_ms`.
    pub fn watch(id: Option<&NodeId>, name: &str, known: u64, hold_ms: u32) -> Self {
        XlRegMsg {
            cluster_version: Some(known),
            hold_ms: Some(hold_ms),
            ..Self::for_cluster(Tag::Watch, id, name)
        }
    }
    /// JoinReply (op 8).
    pub fn join_reply(id: &NodeId, max_size: u32, attrs: u64, ep_count: u32) -> Self {
        Self::cluster_reply(Tag::JoinReply, id, max_size, attrs, ep_count)
    }
    /// GetCluster (op 9).
    pub fn get_cluster(id: &NodeId, which: Which) -> Self {
        XlRegMsg {
            cluster_id: Some(id.as_bytes().to_vec()),
            which: Some(which.0),
            ..Self::with_op(Tag::GetCluster)
        }
    }
    /// ClusterMembers (op 10).
    pub fn cluster_members(cluster_id: &[u8], which: Which, tokens: Vec<Token>) -> Self {
        XlRegMsg {
            cluster_id: Some(cluster_id.to_vec()),
            which: Some(which.0),
            tokens,
            ..Self::with_op(Tag::ClusterMembers)
        }
    }
    /// The ClusterMembers answering a Watch, without its tokens: the
    /// caller appends the encoded token fields (protobuf fields may come
    /// in any order, and repeated ones concatenate).
    pub fn watched_members(cluster_id: &[u8], which: Which, max_size: u32, version: u64) -> Self {
        XlRegMsg {
            cluster_max_size: Some(max_size),
            cluster_version: Some(version),
            ..Self::cluster_members(cluster_id, which, vec![])
        }
    }
    /// Bye (op 11).
    pub fn bye() -> Self {
        Self::with_op(Tag::Bye)
    }
    /// Ack (op 12).
    pub fn ack() -> Self {
        Self::with_op(Tag::Ack)
    }
    /// Ack (op 12) to Resize, Evict or Leave: the cluster's version after
    /// the change.
    pub fn ack_version(version: u64) -> Self {
        XlRegMsg {
            cluster_version: Some(version),
            ..Self::with_op(Tag::Ack)
        }
    }
    /// Error (op 13).
    pub fn error(desc: &str) -> Self {
        XlRegMsg {
            err_desc: Some(desc.as_bytes().to_vec()),
            ..Self::with_op(Tag::Error)
        }
    }
    /// RegCredRequest (op 1).
    pub fn reg_cred_request() -> Self {
        Self::with_op(Tag::RegCredRequest)
    }

    /// The error text of an Error message (lossy UTF-8), if any.
    pub fn err_text(&self) -> String {
        String::from_utf8_lossy(self.err_desc.as_deref().unwrap_or_default()).into_owned()
    }

    /// For ClusterMembers: does the number of tokens match the bits of
    /// `Which`? (A reply that does not is truncated or malformed.)
    pub fn tokens_match_which(&self) -> bool {
        Which(self.which.unwrap_or(0)).count() == self.tokens.len()
    }
}

/// Protobuf key + length overhead of one token inside `XLRegMsg.Tokens`
/// (the registry's reply-size bound uses it).
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub fn token_field_len(token_len: usize) -> usize {
    2 + prost::encoding::encoded_len_varint(token_len as u64) + token_len
}

/// The ErrDesc of a registry whose storage failed (nothing was applied):
/// what the server sends and what a client fails over on.
pub const STORAGE_FAILURE: &str = "registry storage failure; request not applied";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_from_spec_table() {
        assert_eq!(hex::encode(XlRegMsg::bye().to_bytes()), "080b");
        assert_eq!(hex::encode(XlRegMsg::ack().to_bytes()), "080c");
        assert_eq!(
            hex::encode(XlRegMsg::create("clusterA", 3, 0, 2).to_bytes()),
            "08057208636c7573746572417803800100880102"
        );
        let id = NodeId::from_bytes(&[0xab; 20]).unwrap();
        let gc = XlRegMsg::get_cluster(&id, Which(0));
        assert!(
            hex::encode(gc.to_bytes()).ends_with("a00100"),
            "Which 0 is present"
        );
    }

    #[test]
    fn absent_and_empty_id_stay_distinct() {
        let absent = Token::default();
        let empty = Token {
            id: Some(vec![]),
            ..Default::default()
        };
        let a = Token::decode(absent.encode_to_vec().as_slice()).unwrap();
        let e = Token::decode(empty.encode_to_vec().as_slice()).unwrap();
        assert_eq!(a.id, None);
        assert_eq!(e.id, Some(vec![]));
    }

    #[test]
    fn unknown_op_survives_decoding() {
        let m = XlRegMsg {
            op: Some(99),
            ..Default::default()
        };
        let d = XlRegMsg::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(d.op, Some(99));
        assert_eq!(d.tag(), None);
    }

    #[test]
    fn truncated_protobuf_is_an_error() {
        let m = XlRegMsg::create("clusterA", 3, 0, 2).to_bytes();
        for n in [3, 5, 9, m.len() - 1] {
            assert!(XlRegMsg::from_bytes(&m[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn change_ops_encode_their_fields_and_decode_back() {
        let id = NodeId::from_bytes(&[0xab; 20]).unwrap();
        // Resize by name: op 15, ClusterName "c", ClusterMaxSize 5.
        assert_eq!(
            hex::encode(XlRegMsg::resize(None, "c", 5).to_bytes()),
            "080f7201637805"
        );
        // Evict by slot: op 16, ClusterID, member_index (tag 42) 1.
        let e = XlRegMsg::evict(Some(&id), "", Evictee::Index(1));
        assert!(hex::encode(e.to_bytes()).starts_with("08106a14"));
        assert!(hex::encode(e.to_bytes()).ends_with("d00201"));
        let d = XlRegMsg::from_bytes(&e.to_bytes()).unwrap();
        assert_eq!(d.tag(), Some(Tag::Evict));
        assert_eq!(
            (d.cluster_id.as_deref(), d.member_index, d.member_name),
            (Some(&[0xab; 20][..]), Some(1), None)
        );
        // Evict by name uses field 8.
        let e = XlRegMsg::evict(None, "c", Evictee::Name("m1"));
        assert_eq!(hex::encode(e.to_bytes()), "081042026d31720163");
        // Leave: op 17 and the cluster only.
        assert_eq!(
            hex::encode(XlRegMsg::leave(None, "c").to_bytes()),
            "0811720163"
        );
        // Watch: op 18, hold_ms (19) 1000, cluster_version (41) 3.
        let w = XlRegMsg::watch(None, "c", 3, 1000);
        assert_eq!(hex::encode(w.to_bytes()), "08127201639801e807c80203");
        let d = XlRegMsg::from_bytes(&w.to_bytes()).unwrap();
        assert_eq!(
            (d.tag(), d.cluster_version, d.hold_ms),
            (Some(Tag::Watch), Some(3), Some(1000))
        );
        // Ack with the version after the change.
        let a = XlRegMsg::ack_version(7);
        assert_eq!(hex::encode(a.to_bytes()), "080cc80207");
        assert_eq!(
            XlRegMsg::from_bytes(&a.to_bytes()).unwrap().cluster_version,
            Some(7)
        );
    }

    #[test]
    fn watched_members_decode_with_tokens_appended_after_the_version() {
        let t = Token {
            name: Some(b"m0".to_vec()),
            ..Default::default()
        };
        let mut body = XlRegMsg::watched_members(&[1; 20], Which(1), 5, 9).to_bytes();
        let one = XlRegMsg {
            tokens: vec![t.clone()],
            ..Default::default()
        };
        body.extend_from_slice(&one.to_bytes());
        let d = XlRegMsg::from_bytes(&body).unwrap();
        assert_eq!(d.tag(), Some(Tag::ClusterMembers));
        assert_eq!((d.cluster_max_size, d.cluster_version), (Some(5), Some(9)));
        assert_eq!(d.tokens, vec![t]);
        assert!(d.tokens_match_which());
    }

    #[test]
    fn non_utf8_names_are_kept_as_bytes() {
        let m = XlRegMsg {
            op: Some(Tag::Create as i32),
            cluster_name: Some(vec![0xff, 0xfe]),
            ..Default::default()
        };
        let d = XlRegMsg::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(d.cluster_name, Some(vec![0xff, 0xfe]));
    }
}
