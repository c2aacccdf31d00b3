//! The server's per-session state machine (spec §8), sans-IO.
//!
//! [`ServerSession::on_message`] takes a decoded request and returns an
//! [`Effect`]: a reply to send, or a registry [`Request`] to perform; the
//! registry's [`Answer`] goes back in through [`ServerSession::on_answer`],
//! which always returns the reply. The table in
//! [`ServerSession::on_message`] is the table of spec §8.3 (Member once,
//! first; Create and Join at most once each; GetCluster only after a Join;
//! otherwise `invalid msg type for current state`); every cell where the
//! Go server crashes (§8.4: a message after Bye, an unknown op, a Join
//! naming an unknown cluster) gets an Error and a close here.
//!
//! Each state carries its own data (a private `Phase` enum): the
//! registered member exists only in the states after MemberOK, the created
//! cluster only after CreateReply, so no state can lack what it needs.

use std::sync::Arc;
use std::time::Duration;

use crate::registry::request::{
    By, Create, Delete, Evict, GetCluster, Join, Leave, MemberSlot, Register, Resize, Watch,
};
use crate::registry::rules::{get_target, join_target};
use crate::registry::{Answer, BackendError, MemberRecord, Request};
use crate::wire::msg::Token;
use crate::wire::{
    verify_token_limited, DecimalVersion, Framing, KeyLimits, NodeId, Tag, Which, WireError,
    XlRegMsg,
};

/// Protocol states (spec §8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Handshake done; nothing else yet.
    HelloRcvd,
    /// MemberOK sent.
    ClientDetailsRcvd,
    /// CreateReply sent.
    CreateRequestRcvd,
    /// JoinReply (or ClusterMembers) sent.
    JoinRcvd,
    /// Ack sent; anything more is an error.
    ByeRcvd,
    /// Error sent; the connection closes.
    Closed,
}

/// Error texts of spec §10 for state and op violations.
pub mod texts {
    /// A request not allowed in the current state.
    pub const BAD_STATE: &str = "invalid msg type for current state";
    /// An op that is no request at all.
    pub const BAD_TAG: &str = "message tag out of range";
    /// A reply op (2, 4, …, 12) sent as a request.
    pub const REPLY_OP: &str = "unexpected message type";
    /// Member without a token.
    pub const NO_TOKEN: &str = "nil XLRegMsg_Token argument";
    /// Member with an absent or empty key (Go's text).
    pub const EMPTY_KEY: &str = "asn1: syntax error: sequence truncated";
    /// An answer given to a session that asked nothing (a caller's bug,
    /// never a client's).
    pub const NO_REQUEST: &str = "internal error: registry answer without a request";
}

use crate::limits::MAX_TOKEN_BYTES;

/// How long the server keeps a connection open after Ack, for the client
/// to close it (Go clients close right away).
pub const LINGER_AFTER_BYE: Duration = Duration::from_secs(2);

/// Per-registry settings the state machine needs.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Allow GetCluster after Member without a Join (read-only clients).
    pub allow_anonymous_reads: bool,
    /// Largest reply body for legacy (Go) framing; tokens beyond it are
    /// left out and `Which` says so (spec §16.8).
    pub legacy_reply_limit: usize,
    /// The registry's own token, sent in a RegCredReply.
    pub registry_token: Token,
    /// Version sent in a RegCredReply.
    pub version: DecimalVersion,
    /// How long a GetCluster may be held until its members exist (zero:
    /// answer at once, like the Go server).
    pub hold: Duration,
    /// How long the client may stay silent between requests.
    pub idle_timeout: Duration,
    /// Which member keys are worth a signature check.
    pub key_limits: KeyLimits,
}

/// What the I/O layer must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send this protobuf body; then close if `close`.
    Reply {
        /// Encoded XLRegMsg.
        body: Vec<u8>,
        /// Close after sending (an Error was sent).
        close: bool,
    },
    /// Have the registry perform this request
    /// ([`crate::registry::perform_held`]), then pass the result to
    /// [`ServerSession::on_answer`].
    Call(Request),
}

/// The member registered in this session.
#[derive(Debug, Clone)]
struct Member {
    record: MemberRecord,
    endpoints: usize,
}

/// A state of spec §8.1 with the data it needs.
#[derive(Debug)]
enum Phase {
    HelloRcvd,
    ClientDetailsRcvd { member: Member },
    CreateRequestRcvd { member: Member, created: NodeId },
    JoinRcvd { me: NodeId },
    ByeRcvd,
    Closed,
}

/// A registry request in flight: what to do with its answer.
#[derive(Debug)]
enum Asked {
    /// Register: the verified token and attrs, to build the member.
    Register {
        token: Token,
        attrs: u64,
    },
    /// Create, Join, GetCluster: the answer says it all.
    Create,
    Join,
    GetCluster,
    Delete,
    /// Resize, Evict, Leave: answered with Ack and the version.
    Change,
    Watch,
}

/// One session's protocol state.
#[derive(Debug)]
pub struct ServerSession {
    phase: Phase,
    asked: Option<Asked>,
    framing: Framing,
    cfg: Arc<SessionConfig>,
    /// For the end-of-session log line only; no decision reads these.
    member_id: Option<NodeId>,
    joined: Option<NodeId>,
}

fn error_reply(text: &str) -> Effect {
    Effect::Reply {
        body: XlRegMsg::error(text).to_bytes(),
        close: true,
    }
}

fn reply(msg: XlRegMsg) -> Effect {
    Effect::Reply {
        body: msg.to_bytes(),
        close: false,
    }
}

/// The op of a request (spec §7.1), or the Error text for an op that is
/// none.
fn request_tag(msg: &XlRegMsg) -> Result<Tag, &'static str> {
    match msg.tag() {
        Some(
            t @ (Tag::RegCredRequest
            | Tag::Member
            | Tag::Create
            | Tag::Join
            | Tag::GetCluster
            | Tag::Bye
            | Tag::DeleteCluster
            | Tag::Resize
            | Tag::Evict
            | Tag::Leave
            | Tag::Watch),
        ) => Ok(t),
        Some(
            Tag::RegCredReply
            | Tag::MemberOk
            | Tag::CreateReply
            | Tag::JoinReply
            | Tag::ClusterMembers
            | Tag::Ack,
        ) => Err(texts::REPLY_OP),
        // Error (13), or no op of spec §7.1 at all.
        Some(Tag::Error) | None => Err(texts::BAD_TAG),
    }
}

impl ServerSession {
    /// A session whose handshake negotiated `framing`.
    pub fn new(framing: Framing, cfg: Arc<SessionConfig>) -> Self {
        ServerSession {
            phase: Phase::HelloRcvd,
            asked: None,
            framing,
            cfg,
            member_id: None,
            joined: None,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::HelloRcvd => State::HelloRcvd,
            Phase::ClientDetailsRcvd { .. } => State::ClientDetailsRcvd,
            Phase::CreateRequestRcvd { .. } => State::CreateRequestRcvd,
            Phase::JoinRcvd { .. } => State::JoinRcvd,
            Phase::ByeRcvd => State::ByeRcvd,
            Phase::Closed => State::Closed,
        }
    }

    /// The registered member's ID, if any (for logs).
    pub fn member_id(&self) -> Option<NodeId> {
        self.member_id
    }

    /// The cluster joined, if any (for logs).
    pub fn joined(&self) -> Option<NodeId> {
        self.joined
    }

    /// How long to wait for the client's next request: the idle timeout,
    /// or the short linger after Bye.
    pub fn read_timeout(&self) -> Duration {
        match self.phase {
            Phase::ByeRcvd => LINGER_AFTER_BYE,
            _ => self.cfg.idle_timeout,
        }
    }

    /// Has the client said Bye? Then its going away (or falling silent)
    /// is the normal end.
    pub fn said_bye(&self) -> bool {
        matches!(self.phase, Phase::ByeRcvd)
    }

    fn fail(&mut self, text: &str) -> Effect {
        self.phase = Phase::Closed;
        self.asked = None;
        error_reply(text)
    }

    fn call(&mut self, asked: Asked, req: Request) -> Effect {
        self.asked = Some(asked);
        Effect::Call(req)
    }

    /// Handle one request (spec §8.3).
    pub fn on_message(&mut self, msg: XlRegMsg) -> Effect {
        let tag = match request_tag(&msg) {
            Ok(t) => t,
            Err(text) => return self.fail(text),
        };
        if self.asked.is_some() {
            // One request at a time: the I/O layer reads the next only
            // after the reply.
            return self.fail(texts::BAD_STATE);
        }
        let extension = matches!(
            tag,
            Tag::DeleteCluster | Tag::Resize | Tag::Evict | Tag::Leave | Tag::Watch
        );
        if extension && self.framing != Framing::LengthPrefixed {
            // The extensions exist only between xlreg peers; to a Go-framed
            // session ops 14–18 are no ops at all, as before.
            return self.fail(texts::BAD_TAG);
        }
        let anon = self.cfg.allow_anonymous_reads;
        // The registered node, in every state after MemberOK.
        let me = match &self.phase {
            Phase::ClientDetailsRcvd { member } | Phase::CreateRequestRcvd { member, .. } => {
                Some(member.record.id)
            }
            Phase::JoinRcvd { me } => Some(*me),
            _ => None,
        };
        match (&self.phase, tag) {
            (_, Tag::Resize | Tag::Evict | Tag::Leave) if me.is_some() => {
                self.change(msg, tag, me.expect("checked"))
            }
            (Phase::JoinRcvd { .. }, Tag::Watch) => self.watch(msg),
            (Phase::ClientDetailsRcvd { .. } | Phase::CreateRequestRcvd { .. }, Tag::Watch)
                if anon =>
            {
                self.watch(msg)
            }
            (
                Phase::ClientDetailsRcvd { member } | Phase::CreateRequestRcvd { member, .. },
                Tag::DeleteCluster,
            ) => {
                let by = member.record.id;
                match join_target(msg.cluster_id.as_deref(), msg.cluster_name.as_deref(), None) {
                    Ok(cluster) => {
                        self.call(Asked::Delete, Request::Delete(Delete { cluster, by }))
                    }
                    Err(e) => self.fail(&e.to_string()),
                }
            }
            (Phase::HelloRcvd, Tag::Member) => self.member(msg),
            (Phase::ClientDetailsRcvd { member }, Tag::Create) => self.call(
                Asked::Create,
                Request::Create(Create {
                    owner: Some(member.record.id),
                    // The TTL extension is honoured only on sessions that
                    // negotiated xlreg framing: a Go peer never sends it.
                    ttl_ms: match self.framing {
                        Framing::LengthPrefixed => msg
                            .cluster_ttl
                            .filter(|&s| s > 0)
                            .map(crate::limits::clamp_ttl_ms),
                        Framing::Legacy => None,
                    },
                    name: msg.cluster_name.unwrap_or_default(),
                    max_size: msg.cluster_max_size.unwrap_or(0),
                    attrs: msg.cluster_attrs.unwrap_or(0),
                    ep_count: msg.end_point_count.unwrap_or(0),
                }),
            ),
            (Phase::ClientDetailsRcvd { member }, Tag::Join) => {
                let member = member.clone();
                self.join(msg, member, None)
            }
            (Phase::CreateRequestRcvd { member, created }, Tag::Join) => {
                let (member, created) = (member.clone(), *created);
                self.join(msg, member, Some(created))
            }
            (Phase::JoinRcvd { .. }, Tag::GetCluster) => self.get(msg),
            (
                Phase::ClientDetailsRcvd { .. } | Phase::CreateRequestRcvd { .. },
                Tag::GetCluster,
            ) if anon => self.get(msg),
            (
                Phase::HelloRcvd
                | Phase::ClientDetailsRcvd { .. }
                | Phase::CreateRequestRcvd { .. }
                | Phase::JoinRcvd { .. },
                Tag::Bye,
            ) => {
                self.phase = Phase::ByeRcvd;
                reply(XlRegMsg::ack())
            }
            (
                Phase::HelloRcvd
                | Phase::ClientDetailsRcvd { .. }
                | Phase::CreateRequestRcvd { .. }
                | Phase::JoinRcvd { .. },
                Tag::RegCredRequest,
            ) => reply(XlRegMsg {
                op: Some(Tag::RegCredReply as i32),
                version: Some(self.cfg.version.0),
                member_specs: Some(self.cfg.registry_token.clone()),
                ..Default::default()
            }),
            _ => self.fail(texts::BAD_STATE),
        }
    }

    fn member(&mut self, msg: XlRegMsg) -> Effect {
        let Some(t) = msg.member_specs else {
            return self.fail(texts::NO_TOKEN);
        };
        let empty = |k: &Option<Vec<u8>>| k.as_ref().is_none_or(|k| k.is_empty());
        if empty(&t.comms_key) || empty(&t.sig_key) {
            return self.fail(texts::EMPTY_KEY);
        }
        // Bound what a member can make the registry store and serve; these
        // cost a length check, so they come before any RSA arithmetic (the
        // key shapes are checked next, before the signature).
        if t.name.as_ref().map_or(0, Vec::len) > 256
            || t.my_ends.len() > 16
            || t.my_ends.iter().any(|e| e.len() > 256)
            || prost::Message::encoded_len(&t) > MAX_TOKEN_BYTES
        {
            return self.fail("member token too large");
        }
        let v = match verify_token_limited(&t, &self.cfg.key_limits) {
            Ok(v) => v,
            Err(WireError::BadKey(why)) => return self.fail(&format!("x509: {why}")),
            Err(e) => return self.fail(&e.to_string()),
        };
        let sig_hash = openssl::sha::sha256(t.sig_key.as_deref().unwrap_or_default());
        let attrs = t.attrs.unwrap_or(0);
        self.call(
            Asked::Register {
                token: v.token,
                attrs,
            },
            Request::Register(Register { id: v.id, sig_hash }),
        )
    }

    fn join(&mut self, msg: XlRegMsg, member: Member, created: Option<NodeId>) -> Effect {
        let target = join_target(
            msg.cluster_id.as_deref(),
            msg.cluster_name.as_deref(),
            created,
        );
        match target {
            Ok(cluster) => self.call(
                Asked::Join,
                Request::Join(Join {
                    cluster,
                    record: member.record,
                    endpoints: member.endpoints,
                }),
            ),
            Err(e) => self.fail(&e.to_string()),
        }
    }

    /// Resize, Evict or Leave (xlreg extensions) by the registered node
    /// `me`, of the cluster named by ID or name.
    fn change(&mut self, msg: XlRegMsg, tag: Tag, me: NodeId) -> Effect {
        let cluster =
            match join_target(msg.cluster_id.as_deref(), msg.cluster_name.as_deref(), None) {
                Ok(c) => c,
                Err(e) => return self.fail(&e.to_string()),
            };
        let by = By::Node(me);
        let req = match tag {
            Tag::Resize => Request::Resize(Resize {
                cluster,
                size: msg.cluster_max_size.unwrap_or(0),
                by,
            }),
            Tag::Evict => {
                let member = match (msg.member_index, msg.member_name) {
                    (Some(i), _) => MemberSlot::Index(i),
                    (None, Some(n)) if !n.is_empty() => MemberSlot::Name(n.into()),
                    _ => return self.fail(&crate::registry::RuleError::NoEvictee.to_string()),
                };
                Request::Evict(Evict {
                    cluster,
                    member,
                    by,
                })
            }
            _ => Request::Leave(Leave { cluster, by: me }),
        };
        self.call(Asked::Change, req)
    }

    /// Watch (an xlreg extension): held like a GetCluster.
    fn watch(&mut self, msg: XlRegMsg) -> Effect {
        match join_target(msg.cluster_id.as_deref(), msg.cluster_name.as_deref(), None) {
            Ok(cluster) => self.call(
                Asked::Watch,
                Request::Watch(Watch {
                    cluster,
                    known: msg.cluster_version.unwrap_or(0),
                    hold: self.hold(&msg),
                }),
            ),
            Err(e) => self.fail(&e.to_string()),
        }
    }

    fn get(&mut self, msg: XlRegMsg) -> Effect {
        let budget = match self.framing {
            // Room for everything but the tokens: op, the echoed ID (by
            // name: the cluster's, up to 32 bytes) and a Which of up to 10
            // varint bytes.
            Framing::Legacy => {
                let header = XlRegMsg::cluster_members(
                    msg.cluster_id.as_deref().unwrap_or(&[0; 32]),
                    Which(0),
                    vec![],
                );
                // A sealed reply is IV + whole 16-byte blocks.
                (self.cfg.legacy_reply_limit / 16 * 16)
                    .saturating_sub(16 + 1)
                    .saturating_sub(header.to_bytes().len() + 10)
            }
            Framing::LengthPrefixed => usize::MAX,
        };
        match get_target(msg.cluster_id.as_deref(), msg.cluster_name.as_deref()) {
            Ok(cluster) => self.call(
                Asked::GetCluster,
                Request::GetCluster(GetCluster {
                    cluster,
                    which: Which(msg.which.unwrap_or(0)),
                    budget,
                    hold: self.hold(&msg),
                }),
            ),
            Err(e) => self.fail(&e.to_string()),
        }
    }

    /// How long a GetCluster may be held: the registry's bound, or less
    /// when an xlreg client (length-prefixed session) asked for less with
    /// the `hold_ms` extension; Go sessions never get the extension.
    fn hold(&self, msg: &XlRegMsg) -> Duration {
        match (self.framing, msg.hold_ms) {
            (Framing::LengthPrefixed, Some(ms)) => {
                self.cfg.hold.min(Duration::from_millis(ms.into()))
            }
            _ => self.cfg.hold,
        }
    }

    /// The registry's answer to the [`Effect::Call`] last returned; gives
    /// the reply to send.
    pub fn on_answer(&mut self, answer: Result<Answer, BackendError>) -> Effect {
        let Some(asked) = self.asked.take() else {
            return self.fail(texts::NO_REQUEST);
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => return self.fail(&e.to_string()),
        };
        match (asked, answer) {
            (Asked::Register { token, attrs }, Answer::Registered(id)) => {
                // The token other members will receive: every field
                // present, as the Go server sends it, with the ID in use.
                let stored = Token {
                    name: Some(token.name.unwrap_or_default()),
                    attrs: Some(attrs),
                    id: Some(id.as_bytes().to_vec()),
                    comms_key: token.comms_key,
                    sig_key: token.sig_key,
                    my_ends: token.my_ends,
                    dig_sig: None,
                };
                let member = Member {
                    endpoints: stored.my_ends.len(),
                    record: MemberRecord {
                        id,
                        name: stored.name.clone().unwrap_or_default().into(),
                        token: prost::Message::encode_to_vec(&stored).into(),
                    },
                };
                self.member_id = Some(id);
                self.phase = Phase::ClientDetailsRcvd { member };
                reply(XlRegMsg::member_ok(&id, attrs))
            }
            (Asked::Delete, Answer::Deleted(_)) => reply(XlRegMsg::ack()),
            (Asked::Change, Answer::Changed(v)) => reply(XlRegMsg::ack_version(v)),
            (Asked::Watch, Answer::Watched(w)) => {
                let mut body = XlRegMsg::watched_members(
                    w.cluster_id.as_bytes(),
                    w.selection.which,
                    w.max_size,
                    w.version,
                )
                .to_bytes();
                body.extend_from_slice(&w.selection.token_fields);
                Effect::Reply { body, close: false }
            }
            (Asked::Create, Answer::Created(c)) => {
                match std::mem::replace(&mut self.phase, Phase::Closed) {
                    Phase::ClientDetailsRcvd { member } => {
                        self.phase = Phase::CreateRequestRcvd {
                            member,
                            created: c.id,
                        };
                        reply(XlRegMsg::create_reply(
                            &c.id, c.max_size, c.attrs, c.ep_count,
                        ))
                    }
                    _ => self.fail(texts::NO_REQUEST),
                }
            }
            (Asked::Join, Answer::Joined(j)) => {
                let c = j.cluster;
                self.joined = Some(c.id);
                let Some(me) = self.member_id else {
                    return self.fail(texts::NO_REQUEST);
                };
                self.phase = Phase::JoinRcvd { me };
                reply(XlRegMsg::join_reply(&c.id, c.max_size, c.attrs, c.ep_count))
            }
            (Asked::GetCluster, Answer::Members(m)) => {
                let mut body =
                    XlRegMsg::cluster_members(m.cluster_id.as_bytes(), m.selection.which, vec![])
                        .to_bytes();
                body.extend_from_slice(&m.selection.token_fields);
                Effect::Reply { body, close: false }
            }
            _ => self.fail(texts::NO_REQUEST),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> ServerSession {
        ServerSession::new(
            Framing::Legacy,
            Arc::new(SessionConfig {
                allow_anonymous_reads: false,
                legacy_reply_limit: 16384,
                registry_token: Token::default(),
                version: crate::wire::GO_SERVER_VERSION,
                hold: Duration::from_millis(500),
                idle_timeout: Duration::from_secs(60),
                key_limits: KeyLimits::default(),
            }),
        )
    }

    fn member_msg() -> XlRegMsg {
        let key = crate::wire::PrivateKey::generate(1024).unwrap();
        let token = crate::wire::signed_token(
            "m",
            3,
            None,
            &key.public(),
            &key,
            &["127.0.0.1:1".to_string()],
        )
        .unwrap();
        XlRegMsg::member(token)
    }

    fn facts(id: NodeId) -> crate::registry::ClusterFacts {
        crate::registry::ClusterFacts {
            id,
            max_size: 3,
            attrs: 0,
            ep_count: 1,
        }
    }

    /// A session past MemberOK, and the ID it registered.
    fn registered() -> (ServerSession, NodeId) {
        let mut s = session();
        let Effect::Call(Request::Register(r)) = s.on_message(member_msg()) else {
            panic!("Member did not ask to register")
        };
        assert_eq!(r.id, None, "the token asked for a fresh ID");
        let id = NodeId::random();
        let Effect::Reply { body, close: false } = s.on_answer(Ok(Answer::Registered(id))) else {
            panic!("no MemberOK")
        };
        assert_eq!(
            XlRegMsg::from_bytes(&body).unwrap().tag(),
            Some(Tag::MemberOk)
        );
        (s, id)
    }

    #[test]
    fn delete_and_ttl_exist_only_on_xlreg_framed_sessions() {
        // Go framing: op 14 is no op, and a TTL field is ignored.
        let (mut s, _) = registered();
        let mut create = XlRegMsg::create("c", 3, 0, 1);
        create.cluster_ttl = Some(60);
        let Effect::Call(Request::Create(c)) = s.on_message(create.clone()) else {
            panic!("Create did not ask the registry")
        };
        assert_eq!(c.ttl_ms, None, "a Go-framed session never sets a TTL");
        let (mut s, _) = registered();
        let del = XlRegMsg::delete_cluster(None, "c");
        assert!(is_error(&s.on_message(del.clone()), texts::BAD_TAG));

        // xlreg framing: both reach the registry, the delete as this member.
        let (mut s, me) = registered();
        s.framing = Framing::LengthPrefixed;
        let Effect::Call(Request::Create(c)) = s.on_message(create) else {
            panic!("Create did not ask the registry")
        };
        assert_eq!(c.ttl_ms, Some(60_000));
        s.on_answer(Ok(Answer::Created(facts(NodeId::random()))));
        let Effect::Call(Request::Delete(d)) = s.on_message(del) else {
            panic!("DeleteCluster did not ask the registry")
        };
        assert_eq!(d.by, me);
        let Effect::Reply { body, close: false } =
            s.on_answer(Ok(Answer::Deleted(NodeId::random())))
        else {
            panic!("no Ack")
        };
        assert_eq!(XlRegMsg::from_bytes(&body).unwrap().tag(), Some(Tag::Ack));
    }

    #[test]
    fn create_then_join_without_a_target_joins_the_created_cluster() {
        let (mut s, me) = registered();
        assert_eq!(s.state(), State::ClientDetailsRcvd);
        assert_eq!(s.member_id(), Some(me));
        let Effect::Call(Request::Create(c)) = s.on_message(XlRegMsg::create("c", 3, 0, 1)) else {
            panic!("Create did not ask the registry")
        };
        assert_eq!((&c.name[..], c.max_size, c.ep_count), (&b"c"[..], 3, 1));
        let cid = NodeId::random();
        s.on_answer(Ok(Answer::Created(facts(cid))));
        assert_eq!(s.state(), State::CreateRequestRcvd);
        let join = XlRegMsg {
            op: Some(Tag::Join as i32),
            ..Default::default()
        };
        let Effect::Call(Request::Join(j)) = s.on_message(join) else {
            panic!("Join did not ask the registry")
        };
        assert_eq!(j.cluster, crate::registry::ClusterTarget::Id(cid));
        assert_eq!(j.record.id, me);
        assert_eq!(j.endpoints, 1);
        s.on_answer(Ok(Answer::Joined(crate::registry::Joined {
            cluster: facts(cid),
            index: 0,
        })));
        assert_eq!((s.state(), s.joined()), (State::JoinRcvd, Some(cid)));
        let Effect::Call(Request::GetCluster(g)) =
            s.on_message(XlRegMsg::get_cluster(&cid, Which::ALL))
        else {
            panic!("GetCluster did not ask the registry")
        };
        assert_eq!(g.hold, Duration::from_millis(500), "the configured hold");
        assert_eq!(g.cluster, crate::registry::ClusterTarget::Id(cid));
    }

    #[test]
    fn targets_that_cannot_exist_are_refused_without_asking_the_registry() {
        let (mut s, _) = registered();
        let join = XlRegMsg {
            op: Some(Tag::Join as i32),
            ..Default::default()
        };
        assert!(is_error(
            &s.on_message(join),
            &crate::registry::RuleError::MissingCluster.to_string()
        ));
        let (mut s, _) = registered();
        let mut join = XlRegMsg::join_by_name("x");
        join.cluster_id = Some(vec![1; 5]);
        assert!(is_error(
            &s.on_message(join),
            &crate::registry::RuleError::NoSuchId.to_string()
        ));
    }

    #[test]
    fn a_refusal_from_the_registry_closes_with_its_text() {
        let mut s = session();
        s.on_message(member_msg());
        let e = s.on_answer(Err(crate::registry::RuleError::IdTaken.into()));
        assert!(is_error(&e, "ID already registered to another key"));
        assert_eq!(s.state(), State::Closed);
    }

    #[test]
    fn an_answer_without_a_request_is_an_error_not_a_crash() {
        let mut s = session();
        let e = s.on_answer(Ok(Answer::Registered(NodeId::random())));
        assert!(is_error(&e, texts::NO_REQUEST));
    }

    #[test]
    fn the_session_says_how_long_to_wait_for_the_next_request() {
        let mut s = session();
        assert_eq!(s.read_timeout(), Duration::from_secs(60));
        assert!(!s.said_bye());
        s.on_message(XlRegMsg::bye());
        assert_eq!(s.read_timeout(), LINGER_AFTER_BYE);
        assert!(s.said_bye());
    }

    fn op(v: i32) -> XlRegMsg {
        XlRegMsg {
            op: Some(v),
            ..Default::default()
        }
    }

    fn is_error(e: &Effect, text: &str) -> bool {
        match e {
            Effect::Reply { body, close: true } => {
                XlRegMsg::from_bytes(body).unwrap().err_text() == text
            }
            _ => false,
        }
    }

    #[test]
    fn bad_ops_get_errors_not_crashes() {
        for v in [-1, 0, 13, 14, 99] {
            let mut s = session();
            assert!(is_error(&s.on_message(op(v)), texts::BAD_TAG), "op {v}");
            assert_eq!(s.state(), State::Closed);
        }
        for v in [2, 4, 6, 8, 10, 12] {
            assert!(
                is_error(&session().on_message(op(v)), texts::REPLY_OP),
                "op {v}"
            );
        }
        assert!(is_error(
            &session().on_message(XlRegMsg::default()),
            texts::BAD_TAG
        ));
    }

    #[test]
    fn hello_rcvd_row_of_the_table() {
        for v in [5, 7, 9] {
            assert!(
                is_error(&session().on_message(op(v)), texts::BAD_STATE),
                "op {v}"
            );
        }
        let mut s = session();
        assert_eq!(s.on_message(op(11)), reply(XlRegMsg::ack()));
        assert_eq!(s.state(), State::ByeRcvd);
        for v in [1, 3, 5, 7, 9, 11] {
            let mut s = session();
            s.on_message(op(11));
            assert!(
                is_error(&s.on_message(op(v)), texts::BAD_STATE),
                "after Bye op {v}"
            );
        }
    }

    #[test]
    fn member_without_token_or_keys_is_refused() {
        assert!(is_error(&session().on_message(op(3)), texts::NO_TOKEN));
        let m = XlRegMsg::member(Token::default());
        assert!(is_error(&session().on_message(m), texts::EMPTY_KEY));
    }

    #[test]
    fn reg_cred_request_is_answered_in_any_live_state() {
        let mut s = session();
        match s.on_message(op(1)) {
            Effect::Reply { body, close: false } => {
                assert_eq!(
                    XlRegMsg::from_bytes(&body).unwrap().tag(),
                    Some(Tag::RegCredReply)
                )
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(s.state(), State::HelloRcvd);
    }
}
