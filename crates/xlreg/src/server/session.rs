//! The server's per-session state machine (spec §8), sans-IO.
//!
//! [`ServerSession::on_message`] takes a decoded request and returns an
//! [`Effect`]: either a reply to send, or a registry call to make, whose
//! result goes back in through `on_registered` / `on_created` /
//! `on_joined` / `on_members`. The table in [`ServerSession::on_message`]
//! is the table of spec §8.3 (Member once, first; Create and Join at most
//! once each; GetCluster only after a Join; otherwise `invalid msg type for
//! current state`); every cell where the Go server crashes (§8.4: a
//! message after Bye, an unknown op, a Join naming an unknown cluster)
//! gets an Error and a close here.

use std::sync::Arc;

use crate::registry::service::JoinTarget;
use crate::registry::{ClusterInfo, MemberRecord, RuleError, Selection, ServiceError};
use crate::wire::msg::Token;
use crate::wire::{verify_token, DecimalVersion, Framing, NodeId, Tag, Which, WireError, XlRegMsg};

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
}

/// Limits on what one member token may hold.
pub const MAX_TOKEN_BYTES: usize = 8192;

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
    /// Call `RegistryService::register`, then `on_registered`.
    Register {
        /// Requested ID.
        id: Option<NodeId>,
        /// SHA-256 of the sig key.
        sig_hash: [u8; 32],
    },
    /// Call `RegistryService::create`, then `on_created`.
    Create {
        /// Name bytes.
        name: Vec<u8>,
        /// Requested size.
        max_size: u32,
        /// Requested attrs.
        attrs: u64,
        /// Requested endpoint count.
        ep_count: u32,
    },
    /// Call `RegistryService::join`, then `on_joined`.
    Join {
        /// Target cluster.
        target: JoinTarget,
        /// This member.
        record: MemberRecord,
        /// Its endpoint count.
        endpoints: usize,
    },
    /// Call `RegistryService::get` with `budget` (and the hold), then
    /// `on_members`.
    Get {
        /// ClusterID as received.
        cluster_id: Option<Vec<u8>>,
        /// ClusterName, when no ClusterID was sent (an xlreg extension:
        /// read a cluster by name; the Go server answers `nil key
        /// parameter`, and no Go client sends it).
        cluster_name: Option<Vec<u8>>,
        /// Requested members.
        which: Which,
        /// Byte budget for the tokens.
        budget: usize,
    },
}

#[derive(Debug)]
enum Slot {
    RegCred,
    Member,
    Create,
    Join,
    GetCluster,
    Bye,
}

/// The member registered in this session.
#[derive(Debug, Clone)]
struct Registered {
    record: MemberRecord,
    endpoints: usize,
}

/// One session's protocol state.
#[derive(Debug)]
pub struct ServerSession {
    state: State,
    framing: Framing,
    cfg: Arc<SessionConfig>,
    /// Token verified, waiting for its ID from the registry.
    verified: Option<(Token, u64)>,
    member: Option<Registered>,
    current_cluster: Option<NodeId>,
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

impl ServerSession {
    /// A session whose handshake negotiated `framing`.
    pub fn new(framing: Framing, cfg: Arc<SessionConfig>) -> Self {
        ServerSession {
            state: State::HelloRcvd,
            framing,
            cfg,
            verified: None,
            member: None,
            current_cluster: None,
            joined: None,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The registered member's ID, if any.
    pub fn member_id(&self) -> Option<NodeId> {
        self.member.as_ref().map(|m| m.record.id)
    }

    /// The cluster joined, if any.
    pub fn joined(&self) -> Option<NodeId> {
        self.joined
    }

    fn fail(&mut self, text: &str) -> Effect {
        self.state = State::Closed;
        error_reply(text)
    }

    fn slot(op: Option<i32>) -> Result<Slot, &'static str> {
        match op {
            Some(1) => Ok(Slot::RegCred),
            Some(3) => Ok(Slot::Member),
            Some(5) => Ok(Slot::Create),
            Some(7) => Ok(Slot::Join),
            Some(9) => Ok(Slot::GetCluster),
            Some(11) => Ok(Slot::Bye),
            Some(2 | 4 | 6 | 8 | 10 | 12) => Err(texts::REPLY_OP),
            _ => Err(texts::BAD_TAG),
        }
    }

    /// Handle one request (spec §8.3).
    pub fn on_message(&mut self, msg: XlRegMsg) -> Effect {
        use State::*;
        let slot = match Self::slot(msg.op) {
            Ok(s) => s,
            Err(text) => return self.fail(text),
        };
        let anon = self.cfg.allow_anonymous_reads;
        match (self.state, slot) {
            (HelloRcvd, Slot::Member) => self.member(msg),
            (ClientDetailsRcvd, Slot::Create) => Effect::Create {
                name: msg.cluster_name.unwrap_or_default(),
                max_size: msg.cluster_max_size.unwrap_or(0),
                attrs: msg.cluster_attrs.unwrap_or(0),
                ep_count: msg.end_point_count.unwrap_or(0),
            },
            (ClientDetailsRcvd | CreateRequestRcvd, Slot::Join) => self.join(msg),
            (JoinRcvd, Slot::GetCluster) => self.get(msg),
            (ClientDetailsRcvd | CreateRequestRcvd, Slot::GetCluster) if anon => self.get(msg),
            (HelloRcvd | ClientDetailsRcvd | CreateRequestRcvd | JoinRcvd, Slot::Bye) => {
                self.state = ByeRcvd;
                reply(XlRegMsg::ack())
            }
            (HelloRcvd | ClientDetailsRcvd | CreateRequestRcvd | JoinRcvd, Slot::RegCred) => {
                reply(XlRegMsg {
                    op: Some(Tag::RegCredReply as i32),
                    version: Some(self.cfg.version.0),
                    member_specs: Some(self.cfg.registry_token.clone()),
                    ..Default::default()
                })
            }
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
        let v = match verify_token(&t) {
            Ok(v) => v,
            Err(WireError::BadKey(why)) => return self.fail(&format!("x509: {why}")),
            Err(e) => return self.fail(&e.to_string()),
        };
        // Bound what a member can make the registry store and serve.
        if v.token.name.as_ref().map_or(0, Vec::len) > 256
            || v.token.my_ends.len() > 16
            || v.token.my_ends.iter().any(|e| e.len() > 256)
            || prost::Message::encoded_len(&v.token) > MAX_TOKEN_BYTES
        {
            return self.fail("member token too large");
        }
        let sig_hash = openssl::sha::sha256(t.sig_key.as_deref().unwrap_or_default());
        let attrs = t.attrs.unwrap_or(0);
        self.verified = Some((v.token, attrs));
        Effect::Register { id: v.id, sig_hash }
    }

    /// The registry's answer to [`Effect::Register`].
    pub fn on_registered(&mut self, r: Result<NodeId, ServiceError>) -> Effect {
        let Some((t, attrs)) = self.verified.take() else {
            return self.fail(texts::BAD_STATE);
        };
        let id = match r {
            Ok(id) => id,
            Err(e) => return self.fail(&e.to_string()),
        };
        // The token other members will receive: every field present, as
        // the Go server sends it, with the ID in use.
        let stored = Token {
            name: Some(t.name.clone().unwrap_or_default()),
            attrs: Some(attrs),
            id: Some(id.as_bytes().to_vec()),
            comms_key: t.comms_key,
            sig_key: t.sig_key,
            my_ends: t.my_ends,
            dig_sig: None,
        };
        self.member = Some(Registered {
            endpoints: stored.my_ends.len(),
            record: MemberRecord {
                id,
                name: stored.name.clone().unwrap_or_default().into(),
                token: prost::Message::encode_to_vec(&stored).into(),
            },
        });
        self.state = State::ClientDetailsRcvd;
        reply(XlRegMsg::member_ok(&id, attrs))
    }

    /// The registry's answer to [`Effect::Create`].
    pub fn on_created(&mut self, r: Result<ClusterInfo, ServiceError>) -> Effect {
        match r {
            Ok(c) => {
                self.current_cluster = Some(c.id);
                self.state = State::CreateRequestRcvd;
                reply(XlRegMsg::create_reply(
                    &c.id, c.max_size, c.attrs, c.ep_count,
                ))
            }
            Err(e) => self.fail(&e.to_string()),
        }
    }

    fn join(&mut self, msg: XlRegMsg) -> Effect {
        let Some(m) = self.member.clone() else {
            return self.fail(texts::BAD_STATE);
        };
        let target = match (msg.cluster_id, msg.cluster_name) {
            (Some(id), _) => JoinTarget::Id(id),
            (None, Some(name)) if !name.is_empty() => JoinTarget::Name(name),
            _ => JoinTarget::Current(self.current_cluster),
        };
        Effect::Join {
            target,
            record: m.record,
            endpoints: m.endpoints,
        }
    }

    /// The registry's answer to [`Effect::Join`].
    pub fn on_joined(&mut self, r: Result<(ClusterInfo, usize), ServiceError>) -> Effect {
        match r {
            Ok((c, _index)) => {
                self.joined = Some(c.id);
                self.state = State::JoinRcvd;
                reply(XlRegMsg::join_reply(&c.id, c.max_size, c.attrs, c.ep_count))
            }
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
        let cluster_name = match &msg.cluster_id {
            None => msg.cluster_name.filter(|n| !n.is_empty()),
            Some(_) => None,
        };
        Effect::Get {
            cluster_id: msg.cluster_id,
            cluster_name,
            which: Which(msg.which.unwrap_or(0)),
            budget,
        }
    }

    /// The registry's answer to [`Effect::Get`]; `cluster_id` is the
    /// requested ID, echoed back.
    pub fn on_members(&mut self, cluster_id: &[u8], r: Result<Selection, RuleError>) -> Effect {
        match r {
            Ok(sel) => {
                let mut body = XlRegMsg::cluster_members(cluster_id, sel.which, vec![]).to_bytes();
                body.extend_from_slice(&sel.token_fields);
                Effect::Reply { body, close: false }
            }
            Err(e) => self.fail(&e.to_string()),
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
            }),
        )
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
