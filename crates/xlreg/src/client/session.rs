//! A registry session as typed, lockstep calls.
//!
//! Why this layer exists: the Go clients never check the op of a reply and
//! turn an Error into zero-valued fields (spec §14, §16.17), so an admin
//! can report a random "cluster ID" after a refused Create. Here every call
//! sends exactly one request, reads exactly one reply, and checks it: the
//! expected op, or an Error turned into [`ClientError::Server`] with the
//! registry's text. The session also keeps the client side of the server's
//! state machine (spec §8.3: Member first, then Create and Join at most
//! once each, GetCluster only after a Join), so that a misuse becomes a local
//! [`ClientError::Usage`] instead of an Error from — or a crash of — a Go
//! registry. After any failure the session is dead; only dropping it (or
//! [`Session::bye`], which then just closes) remains.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::connection::{ClientOptions, Connection};
use super::node::NodeIdentity;
use super::view::MemberInfo;
use super::{op_name, ClientError};
use crate::limits;
use crate::regcred::RegCred;
use crate::wire::{DecimalVersion, Framing, NodeId, Tag, Which, XlRegMsg};

/// Which cluster to join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterRef {
    /// By cluster ID, as the Go client does.
    Id(NodeId),
    /// By name. Beware: a Go registry crashes on an unknown name (§8.4).
    Name(String),
}

impl ClusterRef {
    /// The cluster ID, when the reference is one.
    pub fn id(&self) -> Option<NodeId> {
        match self {
            ClusterRef::Id(id) => Some(*id),
            ClusterRef::Name(_) => None,
        }
    }
}

/// A cluster to create: its name, its size and the endpoints each member
/// brings, all named so that the two numbers cannot be swapped.
///
/// ```
/// use xlreg::client::ClusterSpec;
/// let spec = ClusterSpec::new("svc", 3).endpoints(2);
/// assert_eq!((spec.name.as_str(), spec.size, spec.endpoints), ("svc", 3, 2));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Cluster name, unique in the registry, 1..=256 bytes
    /// ([`limits::MAX_CLUSTER_NAME`]).
    pub name: String,
    /// Members (the cluster's maximum size); registries accept 2..=64
    /// ([`limits::MIN_CLUSTER_SIZE`]..=[`limits::MAX_CLUSTER_SIZE`]).
    pub size: u32,
    /// Endpoints each member registers (EndPointCount), 1..=16
    /// ([`limits::MAX_ENDPOINT_COUNT`]). Default 1.
    pub endpoints: u32,
    /// Lifetime after the last Join or GetCluster: an xlreg registry
    /// removes the cluster then (a negotiated extension; see
    /// [`Session::create`]). Default `None`: the registry's default.
    pub ttl: Option<std::time::Duration>,
}

impl ClusterSpec {
    /// A cluster `name` of `size` members with 1 endpoint each.
    pub fn new(name: impl Into<String>, size: u32) -> Self {
        ClusterSpec {
            name: name.into(),
            size,
            endpoints: 1,
            ttl: None,
        }
    }

    /// Set the lifetime (`None`: the registry's default).
    pub fn ttl(mut self, ttl: Option<std::time::Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Set the endpoints per member.
    pub fn endpoints(mut self, endpoints: u32) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// Refuse what a registry would clamp or reject (the checks of
    /// [`limits`]): a size outside 2..=64, endpoints outside 1..=16, an
    /// empty name or one over 256 bytes, a TTL over 10 years. The error
    /// names the field and the allowed range.
    pub fn check(&self) -> Result<(), ClientError> {
        limits::check_cluster_name(self.name.as_bytes())
            .and(limits::check_cluster_size(self.size))
            .and(limits::check_endpoint_count(self.endpoints))
            .and(self.ttl.map_or(Ok(()), limits::check_ttl))
            .map_err(|e| ClientError::Usage(format!("cluster {:?}: {e}", self.name)))
    }
}

impl fmt::Display for ClusterRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterRef::Id(id) => write!(f, "{id}"),
            ClusterRef::Name(n) => write!(f, "{n:?}"),
        }
    }
}

impl FromStr for ClusterRef {
    type Err = std::convert::Infallible;
    /// 40 or 64 hex digits are an ID; anything else is a name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.parse::<NodeId>() {
            Ok(id) => ClusterRef::Id(id),
            Err(_) => ClusterRef::Name(s.to_string()),
        })
    }
}

/// A cluster as described by a CreateReply or JoinReply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Cluster ID.
    pub id: NodeId,
    /// Maximum number of members (the registry clamps it to 2..=64).
    pub max_size: u32,
    /// Cluster attribute bits.
    pub attrs: u64,
    /// Endpoints each member is expected to register.
    pub endpoint_count: u32,
}

/// A validated ClusterMembers reply.
#[derive(Clone, Debug)]
pub struct MembersReply {
    /// The members actually returned (a registry may return fewer than
    /// asked for; the Go server caps replies near 16 KiB).
    pub which: Which,
    /// One entry per set bit of `which`, ascending by index.
    pub members: Vec<MemberInfo>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Handshake done.
    Hello,
    /// MemberOK received.
    Registered,
    /// CreateReply received.
    Created,
    /// JoinReply received.
    Joined,
    /// An error happened; the connection is unusable.
    Failed,
}

/// A session with a registry. Obtain it with [`Session::connect`], end it
/// with [`Session::bye`].
#[derive(Debug)]
pub struct Session {
    conn: Connection,
    state: State,
    member_id: Option<NodeId>,
    at_once: bool,
    hold_cap: Option<Duration>,
}

impl Session {
    /// Connect to the registry and complete the handshake.
    pub async fn connect(regcred: &RegCred, opts: &ClientOptions) -> Result<Self, ClientError> {
        Ok(Session {
            conn: Connection::open(regcred, opts).await?,
            state: State::Hello,
            member_id: None,
            at_once: false,
            hold_cap: None,
        })
    }

    /// Ask the registry to answer every later GetCluster at once with the
    /// members present, instead of holding it until the requested ones
    /// joined (an xlreg extension, sent only in length-prefixed sessions;
    /// a Go registry never holds).
    pub fn answer_at_once(&mut self, yes: bool) {
        self.at_once = yes;
    }

    /// Ask the registry to hold a GetCluster at most `cap` (rounded up to
    /// whole milliseconds) before answering with the members present, so
    /// that a caller's deadline is not overrun by the registry's own hold
    /// bound (an xlreg extension, sent only in length-prefixed sessions; a
    /// Go registry never holds). `None`: the registry's bound.
    pub fn hold_at_most(&mut self, cap: Option<Duration>) {
        self.hold_cap = cap;
    }

    pub(super) fn hold_ms(&self) -> Option<u32> {
        if self.framing() != Framing::LengthPrefixed {
            return None;
        }
        if self.at_once {
            return Some(0);
        }
        self.hold_cap
            .map(|d| d.as_micros().div_ceil(1000).min(u32::MAX.into()) as u32)
    }

    /// The registry address.
    pub fn addr(&self) -> &str {
        self.conn.addr()
    }

    /// The negotiated framing (length-prefixed only with an xlreg registry
    /// and without [`ClientOptions::legacy_framing`]).
    pub fn framing(&self) -> Framing {
        self.conn.framing()
    }

    /// The version from the registry's HelloReply (a Go registry: 1.9.24).
    pub fn server_version(&self) -> DecimalVersion {
        self.conn.server_version()
    }

    /// The version this client proposed in its Hello (see
    /// [`Connection::proposed_version`](super::Connection::proposed_version)).
    pub fn proposed_version(&self) -> DecimalVersion {
        self.conn.proposed_version()
    }

    /// The ID the registry confirmed in MemberOK, once registered.
    pub fn member_id(&self) -> Option<NodeId> {
        self.member_id
    }

    pub(super) fn require(&self, request: &str, allowed: &[State]) -> Result<(), ClientError> {
        if self.state == State::Failed {
            return Err(ClientError::Usage(format!(
                "cannot send {request}: this session already failed"
            )));
        }
        if !allowed.contains(&self.state) {
            let now = match self.state {
                State::Hello => "before Member (register first)",
                State::Registered => "right after Member",
                State::Created => "after Create",
                State::Joined => "after Join",
                State::Failed => "after a failure",
            };
            return Err(ClientError::Usage(format!(
                "{request} is not allowed {now} in an xlReg session"
            )));
        }
        Ok(())
    }

    /// `r`, marking the session failed when it is an error (a reply that
    /// does not validate ends the session like an Error reply does).
    pub(super) fn checked<T>(&mut self, r: Result<T, ClientError>) -> Result<T, ClientError> {
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    /// One request, one reply, op checked.
    pub(super) async fn call(
        &mut self,
        msg: XlRegMsg,
        request: &'static str,
        expected: Tag,
    ) -> Result<XlRegMsg, ClientError> {
        let r = self.call_inner(msg, request, expected).await;
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    async fn call_inner(
        &mut self,
        msg: XlRegMsg,
        request: &'static str,
        expected: Tag,
    ) -> Result<XlRegMsg, ClientError> {
        self.conn.send(&msg).await?;
        let reply = self.conn.recv(&format!("{expected:?}")).await?;
        match reply.tag() {
            Some(t) if t == expected => Ok(reply),
            Some(Tag::Error) => Err(ClientError::Server {
                request,
                cluster: None,
                text: reply.err_text(),
            }),
            _ => Err(ClientError::UnexpectedReply {
                request,
                expected,
                got: op_name(reply.op),
            }),
        }
    }

    /// Register: send the node's signed token (Member), get MemberOK.
    /// Returns the member ID the registry confirmed, which must be ours.
    pub async fn register(
        &mut self,
        node: &NodeIdentity,
        attrs: u64,
    ) -> Result<NodeId, ClientError> {
        self.require("Member", &[State::Hello])?;
        let token = node.token(attrs)?;
        let reply = self
            .call(XlRegMsg::member(token), "Member", Tag::MemberOk)
            .await?;
        let id = match reply.member_id.as_deref() {
            Some(b) => NodeId::from_bytes(b).map_err(|e| {
                self.state = State::Failed;
                ClientError::BadReply(format!("MemberOK carries an invalid member ID: {e}"))
            })?,
            // A Go registry always sends it; tolerate its absence.
            None => node.id,
        };
        if id != node.id {
            self.state = State::Failed;
            return Err(ClientError::BadReply(format!(
                "registry confirmed member ID {id}, but we registered as {}",
                node.id
            )));
        }
        self.member_id = Some(id);
        self.state = State::Registered;
        Ok(id)
    }

    /// Create a cluster (or look up an existing one of that name: registries
    /// answer with the existing cluster, ignoring the requested size).
    /// The spec is checked first ([`ClusterSpec::check`]); nothing is sent
    /// for a bad one. A [`ClusterSpec::ttl`] is carried only to an xlreg
    /// registry on a session that negotiated the xlreg framing (Go peers
    /// never see it); asking a Go registry for one is a
    /// [`ClientError::Usage`] error, and nothing is sent.
    pub async fn create(&mut self, spec: &ClusterSpec) -> Result<ClusterInfo, ClientError> {
        spec.check()?;
        self.require("Create", &[State::Registered])?;
        let mut msg = XlRegMsg::create(&spec.name, spec.size, 0, spec.endpoints);
        if let Some(ttl) = spec.ttl {
            if self.framing() != crate::wire::Framing::LengthPrefixed {
                return Err(ClientError::Usage(
                    "a cluster TTL needs an xlreg registry and the xlreg framing \
                     (this registry is a Go one, or legacy framing was asked for)"
                        .into(),
                ));
            }
            msg.cluster_ttl = Some(ttl.as_secs().max(1));
        }
        let reply = self.call(msg, "Create", Tag::CreateReply).await?;
        let info = self.cluster_info(&reply, "CreateReply")?;
        self.state = State::Created;
        Ok(info)
    }

    /// Join a cluster by ID or name.
    pub async fn join(&mut self, cluster: &ClusterRef) -> Result<ClusterInfo, ClientError> {
        self.require("Join", &[State::Registered, State::Created])?;
        let msg = match cluster {
            ClusterRef::Id(id) => XlRegMsg::join_by_id(id),
            ClusterRef::Name(n) => XlRegMsg::join_by_name(n),
        };
        let reply = self
            .call(msg, "Join", Tag::JoinReply)
            .await
            .map_err(|e| naming(e, cluster))?;
        let info = self.cluster_info(&reply, "JoinReply")?;
        if let ClusterRef::Id(want) = cluster {
            if info.id != *want {
                self.state = State::Failed;
                return Err(ClientError::BadReply(format!(
                    "asked to join cluster {want}, JoinReply names {}",
                    info.id
                )));
            }
        }
        self.state = State::Joined;
        Ok(info)
    }

    fn cluster_info(&mut self, reply: &XlRegMsg, what: &str) -> Result<ClusterInfo, ClientError> {
        let r = parse_cluster_info(reply, what);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    /// Ask for the members selected by `which` (GetCluster). Allowed after
    /// Join, and right after Member (a read without joining; an xlreg
    /// registry allows it, a Go registry answers with an Error).
    ///
    /// The reply is validated: as many tokens as `Which` has bits, every ID
    /// 20 or 32 bytes, both keys parse.
    pub async fn get_members(
        &mut self,
        cluster_id: &NodeId,
        which: Which,
    ) -> Result<MembersReply, ClientError> {
        self.require("GetCluster", &[State::Registered, State::Joined])?;
        let reply = self
            .call(
                XlRegMsg {
                    hold_ms: self.hold_ms(),
                    ..XlRegMsg::get_cluster(cluster_id, which)
                },
                "GetCluster",
                Tag::ClusterMembers,
            )
            .await
            .map_err(|e| naming(e, &ClusterRef::Id(*cluster_id)))?;
        let r = parse_members(&reply, cluster_id);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    /// GetCluster by cluster name (an xlreg extension; a Go registry answers
    /// `nil key parameter`). Returns the cluster's ID from the reply.
    pub async fn get_members_named(
        &mut self,
        name: &str,
        which: Which,
    ) -> Result<(NodeId, MembersReply), ClientError> {
        self.require("GetCluster", &[State::Registered, State::Joined])?;
        let msg = XlRegMsg {
            cluster_name: Some(name.as_bytes().to_vec()),
            which: Some(which.0),
            ..XlRegMsg::get_cluster(&NodeId::from_bytes(&[0; 20]).expect("20 bytes"), which)
        };
        let msg = XlRegMsg {
            cluster_id: None,
            hold_ms: self.hold_ms(),
            ..msg
        };
        let reply = self
            .call(msg, "GetCluster", Tag::ClusterMembers)
            .await
            .map_err(|e| naming(e, &ClusterRef::Name(name.to_string())))?;
        let r = reply
            .cluster_id
            .as_deref()
            .ok_or_else(|| ClientError::BadReply("ClusterMembers without a cluster ID".into()))
            .and_then(|raw| {
                NodeId::from_bytes(raw)
                    .map_err(|e| ClientError::BadReply(format!("cluster ID: {e}")))
            })
            .and_then(|id| Ok((id, parse_members(&reply, &id)?)));
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    /// Delete `cluster` (an xlreg extension, negotiated like the framing:
    /// a Go registry cannot, and is never asked). The registry allows it
    /// to a member of the cluster, so register as one first. Allowed right
    /// after Member or Create.
    pub async fn delete_cluster(&mut self, cluster: &ClusterRef) -> Result<(), ClientError> {
        self.require("DeleteCluster", &[State::Registered, State::Created])?;
        if self.framing() != crate::wire::Framing::LengthPrefixed {
            return Err(ClientError::Usage(
                "deleting a cluster needs an xlreg registry and the xlreg framing \
                 (this registry is a Go one, or legacy framing was asked for)"
                    .into(),
            ));
        }
        let msg = match cluster {
            ClusterRef::Id(id) => XlRegMsg::delete_cluster(Some(id), ""),
            ClusterRef::Name(n) => XlRegMsg::delete_cluster(None, n),
        };
        self.call(msg, "DeleteCluster", Tag::Ack)
            .await
            .map_err(|e| naming(e, cluster))?;
        Ok(())
    }

    /// End the session: Bye, wait for Ack, close. After a failure this only
    /// closes (the registry has already closed its side; a Go registry
    /// crashes on any message after an Error or Bye, spec §8.4).
    pub async fn bye(mut self) -> Result<(), ClientError> {
        if self.state == State::Failed {
            self.conn.close().await;
            return Ok(());
        }
        let r = self.call(XlRegMsg::bye(), "Bye", Tag::Ack).await;
        self.conn.close().await;
        r.map(|_| ())
    }
}

/// Validate the cluster fields of a CreateReply/JoinReply.
/// A registry refusal of a request about `cluster` names that cluster.
pub(super) fn naming(e: ClientError, cluster: &ClusterRef) -> ClientError {
    match e {
        ClientError::Server {
            request,
            cluster: None,
            text,
        } => ClientError::Server {
            request,
            cluster: Some(cluster.to_string()),
            text,
        },
        e => e,
    }
}

pub(crate) fn parse_cluster_info(reply: &XlRegMsg, what: &str) -> Result<ClusterInfo, ClientError> {
    let bad = |why: String| ClientError::BadReply(format!("{what}: {why}"));
    let id = reply
        .cluster_id
        .as_deref()
        .ok_or_else(|| bad("no cluster ID".into()))?;
    let id = NodeId::from_bytes(id).map_err(|e| bad(format!("cluster ID: {e}")))?;
    let max_size = reply.cluster_max_size.unwrap_or(0);
    // 1: a Go registry may report a size it did not clamp.
    if !(1..=limits::MAX_CLUSTER_SIZE).contains(&max_size) {
        return Err(bad(format!(
            "cluster max size {max_size} is not in 1..={}",
            limits::MAX_CLUSTER_SIZE
        )));
    }
    Ok(ClusterInfo {
        id,
        max_size,
        attrs: reply.cluster_attrs.unwrap_or(0),
        endpoint_count: reply.end_point_count.unwrap_or(0),
    })
}

/// Validate a ClusterMembers reply.
pub(crate) fn parse_members(
    reply: &XlRegMsg,
    cluster_id: &NodeId,
) -> Result<MembersReply, ClientError> {
    if let Some(echo) = reply.cluster_id.as_deref() {
        if echo != cluster_id.as_bytes() {
            return Err(ClientError::BadReply(format!(
                "ClusterMembers for cluster {} in reply to a request for {cluster_id}",
                hex::encode(echo)
            )));
        }
    }
    let which = Which(reply.which.unwrap_or(0));
    if which.count() != reply.tokens.len() {
        return Err(ClientError::BadReply(format!(
            "ClusterMembers: Which {:#x} has {} bits but {} tokens came",
            which.0,
            which.count(),
            reply.tokens.len()
        )));
    }
    let members = which
        .iter()
        .zip(&reply.tokens)
        .map(|(i, t)| MemberInfo::from_token(i, t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MembersReply { which, members })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Token;

    fn cid() -> NodeId {
        NodeId::from_bytes(&[9; 20]).unwrap()
    }

    #[test]
    fn cluster_spec_check_names_the_field_and_range() {
        assert!(ClusterSpec::new("svc", 3).endpoints(2).check().is_ok());
        let cases = [
            (ClusterSpec::new("svc", 1), "size 1 is not in 2..=64"),
            (ClusterSpec::new("svc", 65), "size 65 is not in 2..=64"),
            (
                ClusterSpec::new("svc", 3).endpoints(0),
                "0 endpoints per member",
            ),
            (
                ClusterSpec::new("svc", 3).endpoints(17),
                "17 endpoints per member",
            ),
            (
                ClusterSpec::new("", 3),
                "the name must be 1..=256 bytes, not 0",
            ),
            (ClusterSpec::new("x".repeat(257), 3), "not 257"),
        ];
        for (spec, want) in cases {
            let e = spec.check().unwrap_err();
            assert!(matches!(e, ClientError::Usage(_)), "{e:?}");
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    /// The client's limits are the registry's.
    #[test]
    fn cluster_spec_limits_match_the_registry_rules() {
        use crate::limits::*;
        let ok = |n: &str, s, e| ClusterSpec::new(n, s).endpoints(e).check().is_ok();
        let long = "x".repeat(MAX_CLUSTER_NAME);
        assert!(ok(&long, MIN_CLUSTER_SIZE, 1));
        assert!(ok("c", MAX_CLUSTER_SIZE, MAX_ENDPOINT_COUNT));
        assert!(!ok(&format!("{long}x"), 2, 1));
        assert!(!ok("c", MIN_CLUSTER_SIZE - 1, 1));
        assert!(!ok("c", MAX_CLUSTER_SIZE + 1, 1));
        assert!(!ok("c", 2, MAX_ENDPOINT_COUNT + 1));
    }

    #[test]
    fn cluster_ref_parses_ids_and_names() {
        let id = NodeId::random();
        assert_eq!(
            id.to_hex().parse::<ClusterRef>().unwrap(),
            ClusterRef::Id(id)
        );
        assert_eq!(
            "alpha".parse::<ClusterRef>().unwrap(),
            ClusterRef::Name("alpha".into())
        );
    }

    #[test]
    fn members_reply_with_fewer_tokens_than_bits_is_bad() {
        let mut m = XlRegMsg::cluster_members(cid().as_bytes(), Which(0b11), vec![]);
        assert!(matches!(
            parse_members(&m, &cid()),
            Err(ClientError::BadReply(_))
        ));
        m.which = Some(0);
        assert_eq!(parse_members(&m, &cid()).unwrap().members.len(), 0);
    }

    #[test]
    fn members_reply_for_another_cluster_is_bad() {
        let m = XlRegMsg::cluster_members(&[1; 20], Which(0), vec![]);
        let e = parse_members(&m, &cid()).unwrap_err().to_string();
        assert!(e.contains("0101"), "{e}");
    }

    #[test]
    fn members_reply_with_bad_id_or_key_is_bad() {
        let t = Token {
            name: Some(b"x".to_vec()),
            id: Some(vec![1; 7]),
            ..Default::default()
        };
        let m = XlRegMsg::cluster_members(cid().as_bytes(), Which(1), vec![t.clone()]);
        let e = parse_members(&m, &cid()).unwrap_err().to_string();
        assert!(e.contains("member 0"), "{e}");
        let t = Token {
            id: Some(vec![1; 20]),
            comms_key: Some(vec![0x30, 0]),
            ..t
        };
        let m = XlRegMsg::cluster_members(cid().as_bytes(), Which(1), vec![t]);
        assert!(parse_members(&m, &cid()).is_err());
    }

    #[test]
    fn join_reply_without_id_or_with_size_zero_is_bad() {
        let mut r = XlRegMsg::join_reply(&cid(), 3, 0, 2);
        assert_eq!(parse_cluster_info(&r, "JoinReply").unwrap().max_size, 3);
        r.cluster_max_size = Some(0);
        assert!(parse_cluster_info(&r, "JoinReply").is_err());
        r.cluster_max_size = Some(65);
        assert!(parse_cluster_info(&r, "JoinReply").is_err());
        r.cluster_max_size = Some(3);
        r.cluster_id = None;
        assert!(parse_cluster_info(&r, "JoinReply").is_err());
    }
}
