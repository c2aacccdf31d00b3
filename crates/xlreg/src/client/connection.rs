//! One TCP connection to a registry, up to whole decoded messages.
//!
//! Why a separate layer: everything about bytes on the socket lives here —
//! the handshake, framing negotiation, reassembly and timeouts — so the
//! session above only sees typed messages. Rules it follows (spec §2):
//!
//! * TCP_NODELAY; each message is written with one `write_all`;
//! * lockstep: the caller sends one message and reads its reply before the
//!   next (the [`Session`](super::Session) API makes anything else
//!   impossible);
//! * every read goes through a [`Reassembler`], never trusting that one
//!   `read()` is one message;
//! * the Hello proposes [`EXT_VERSION`]; if the registry answers with it too
//!   (an xlreg server does, a Go server answers 1.9.24) messages are
//!   length-prefixed and may exceed 16 KiB. [`ClientOptions::legacy_framing`]
//!   proposes version 0 instead, exactly like a Go client;
//! * every connect, read and write has a timeout (the Go peers have none);
//! * a regCred listing several endpoints (a group of servers on one
//!   database) is tried in order: a server that refuses, does not answer
//!   within [`FAILOVER_CONNECT_TIMEOUT`] or breaks the handshake is skipped
//!   for the next one ([`ClientOptions::address`] pins one server).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{op_name, ClientError};
use crate::regcred::RegCred;
use crate::wire::hello::HELLO_REPLY_LEN;
use crate::wire::{
    DecimalVersion, Framing, Hello, HelloReply, Reassembler, SessionKey, XlRegMsg, EXT_VERSION,
};

/// Connect limit for each endpoint but the last when a regCred lists
/// several servers: a dead one costs at most this long before the next is
/// tried (the last gets the full [`ClientOptions::connect_timeout`]).
pub const FAILOVER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connection settings shared by every client flow.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Limit for establishing the TCP connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Limit for each write and for each whole reply. Default 15 s; keep it
    /// well above the ~1 s an xlreg server may hold a GetCluster reply.
    pub io_timeout: Duration,
    /// Propose version 0 in the Hello, as a Go client does, so the session
    /// uses the Go framing (no length prefix, ≤ 16 KiB per message) even
    /// with an xlreg server. Default false.
    pub legacy_framing: bool,
    /// Connect here instead of the regcred's first endpoint (`host:port`).
    pub address: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(15),
            legacy_framing: false,
            address: None,
        }
    }
}

impl ClientOptions {
    /// The version this client proposes in its Hello.
    pub fn proposed_version(&self) -> DecimalVersion {
        if self.legacy_framing {
            DecimalVersion(0)
        } else {
            EXT_VERSION
        }
    }

    /// Where to connect: the override, else the regcred's first endpoint.
    pub fn target(&self, regcred: &RegCred) -> Result<String, ClientError> {
        self.targets(regcred).map(|mut t| t.swap_remove(0))
    }

    /// Every address to try, in order: the override alone, else each of
    /// the regcred's endpoints (never empty on `Ok`).
    pub fn targets(&self, regcred: &RegCred) -> Result<Vec<String>, ClientError> {
        if let Some(a) = &self.address {
            return Ok(vec![a.clone()]);
        }
        if regcred.endpoints.is_empty() {
            return Err(ClientError::RegCred(format!(
                "registry {:?} ({}) lists no endpoint to connect to",
                regcred.name, regcred.id
            )));
        }
        Ok(regcred.endpoints.clone())
    }
}

/// An established, encrypted connection: send and receive whole messages.
pub struct Connection {
    stream: TcpStream,
    addr: String,
    key: SessionKey,
    framing: Framing,
    reassembler: Reassembler,
    server_version: DecimalVersion,
    proposed: DecimalVersion,
    io_timeout: Duration,
    read_buf: Vec<u8>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .field("framing", &self.framing)
            .field("server_version", &self.server_version)
            .field("buffered", &self.reassembler.buffered())
            .finish_non_exhaustive()
    }
}

/// Read buffer size: larger than any legacy message, so a Go-sized message
/// normally arrives in one read (but we never rely on it).
const READ_CHUNK: usize = 64 * 1024;

impl Connection {
    /// Connect to the registry of `regcred` and run the handshake: send the
    /// Hello encrypted with the registry's comms key, read the 64-byte
    /// HelloReply, negotiate the framing.
    ///
    /// With several endpoints, each is tried in order until one completes
    /// the handshake (see the module docs); the error is the last one's.
    pub async fn open(regcred: &RegCred, opts: &ClientOptions) -> Result<Self, ClientError> {
        let targets = opts.targets(regcred)?;
        let last = targets.len() - 1;
        for (i, addr) in targets.into_iter().enumerate() {
            let limit = if i < last {
                opts.connect_timeout.min(FAILOVER_CONNECT_TIMEOUT)
            } else {
                opts.connect_timeout
            };
            match Self::open_one(regcred, addr.clone(), limit, opts).await {
                Err(e) if i < last && e.is_transport() => {
                    tracing::warn!("registry {addr} unavailable ({e}); trying the next server");
                }
                r => return r,
            }
        }
        unreachable!("the last target returns")
    }

    async fn open_one(
        regcred: &RegCred,
        addr: String,
        connect_timeout: Duration,
        opts: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("connecting to {addr}"),
                after: connect_timeout,
            })?
            .map_err(|e| ClientError::Io {
                what: "connecting to".into(),
                addr: addr.clone(),
                source: e,
            })?;
        stream.set_nodelay(true).map_err(|e| ClientError::Io {
            what: "setting TCP_NODELAY on the connection to".into(),
            addr: addr.clone(),
            source: e,
        })?;
        Self::handshake(stream, addr, &regcred.comms_key, opts).await
    }

    async fn handshake(
        mut stream: TcpStream,
        addr: String,
        server_ck: &crate::wire::PublicKey,
        opts: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let proposed = opts.proposed_version();
        let hello = Hello::new(proposed);
        let ct = hello.seal(server_ck)?;
        write_all(&mut stream, &addr, &ct, "Hello", opts.io_timeout).await?;

        let mut wire = [0u8; HELLO_REPLY_LEN];
        let deadline = deadline_after(opts.io_timeout);
        let mut got = 0;
        while got < HELLO_REPLY_LEN {
            let n = tokio::time::timeout_at(deadline, stream.read(&mut wire[got..]))
                .await
                .map_err(|_| ClientError::Timeout {
                    what: format!("waiting for the HelloReply from {addr}"),
                    after: opts.io_timeout,
                })?
                .map_err(|e| {
                    if let Some(e) = not_a_registry(&addr, &wire[..got]) {
                        return e;
                    }
                    let what = if e.kind() == std::io::ErrorKind::ConnectionReset {
                        format!(
                            "reading the HelloReply (expected {HELLO_REPLY_LEN} bytes, the \
                             connection was reset after {got}: is this the port of an xlReg \
                             registry?) from"
                        )
                    } else {
                        "reading the HelloReply from".into()
                    };
                    ClientError::Io {
                        what,
                        addr: addr.clone(),
                        source: e,
                    }
                })?;
            if n == 0 {
                if let Some(e) = not_a_registry(&addr, &wire[..got]) {
                    return Err(e);
                }
                return Err(ClientError::Closed {
                    what: format!(
                        "after {got} of {HELLO_REPLY_LEN} bytes of the HelloReply \
                         (a registry that cannot decrypt the Hello closes silently: \
                         is the regcred's comms key this registry's?)"
                    ),
                    addr,
                });
            }
            got += n;
        }
        let reply = HelloReply::open(&hello.key1, &wire).map_err(|e| {
            not_a_registry(&addr, &wire).unwrap_or_else(|| {
                ClientError::BadReply(format!("HelloReply from {addr} does not open: {e}"))
            })
        })?;
        let framing = Framing::client_negotiate(proposed, reply.version);
        tracing::debug!(%addr, server_version = %reply.version, ?framing, "session established");
        Ok(Connection {
            stream,
            addr,
            key: SessionKey(reply.key2),
            framing,
            reassembler: Reassembler::new(framing),
            server_version: reply.version,
            proposed,
            io_timeout: opts.io_timeout,
            read_buf: vec![0u8; READ_CHUNK],
        })
    }

    /// The registry address as connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The negotiated framing.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The version the registry sent in its HelloReply.
    pub fn server_version(&self) -> DecimalVersion {
        self.server_version
    }

    /// The version this client proposed in its Hello (0 with
    /// [`ClientOptions::legacy_framing`]: then even an xlreg registry
    /// answers as a Go one, 1.9.24).
    pub fn proposed_version(&self) -> DecimalVersion {
        self.proposed
    }

    /// Seal, frame and send one message in a single write.
    pub async fn send(&mut self, msg: &XlRegMsg) -> Result<(), ClientError> {
        let bytes = self.framing.encode(&self.key, msg);
        if bytes.len() > self.framing.max_message() {
            return Err(ClientError::Usage(format!(
                "{} of {} bytes exceeds the {} limit of {} bytes",
                op_name(msg.op),
                bytes.len(),
                match self.framing {
                    Framing::Legacy => "Go protocol's",
                    Framing::LengthPrefixed => "framed",
                },
                self.framing.max_message()
            )));
        }
        let what = op_name(msg.op);
        write_all(&mut self.stream, &self.addr, &bytes, &what, self.io_timeout).await
    }

    /// Receive one whole message; `what` says what we wait for (for errors).
    pub async fn recv(&mut self, what: &str) -> Result<XlRegMsg, ClientError> {
        let deadline = deadline_after(self.io_timeout);
        loop {
            match self.reassembler.try_next(&self.key) {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => {
                    return Err(ClientError::BadReply(format!(
                        "{what} from {}: {e}",
                        self.addr
                    )))
                }
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut self.read_buf))
                .await
                .map_err(|_| ClientError::Timeout {
                    what: format!(
                        "waiting for {what} from {} ({} bytes received)",
                        self.addr,
                        self.reassembler.buffered()
                    ),
                    after: self.io_timeout,
                })?
                .map_err(|e| ClientError::Io {
                    what: format!("reading {what} from"),
                    addr: self.addr.clone(),
                    source: e,
                })?;
            if n == 0 {
                let held = self.reassembler.buffered();
                return Err(ClientError::Closed {
                    what: if held == 0 {
                        format!("instead of sending {what}")
                    } else {
                        format!("in the middle of {what} ({held} bytes that do not decode)")
                    },
                    addr: self.addr.clone(),
                });
            }
            self.reassembler.push(&self.read_buf[..n]);
        }
    }

    /// Close the connection (both directions).
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// `now + d`, saturating far in the future instead of overflowing.
pub(crate) fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

async fn write_all(
    stream: &mut TcpStream,
    addr: &str,
    bytes: &[u8],
    what: &str,
    limit: Duration,
) -> Result<(), ClientError> {
    tokio::time::timeout(limit, stream.write_all(bytes))
        .await
        .map_err(|_| ClientError::Timeout {
            what: format!("sending {what} to {addr}"),
            after: limit,
        })?
        .map_err(|e| ClientError::Io {
            what: format!("sending {what} to"),
            addr: addr.to_string(),
            source: e,
        })
}

/// An error saying what answered instead of a registry, when the first
/// bytes read after the Hello show it (a regcred pointing at the HTTP side
/// door or another web server): they start with `HTTP/`.
fn not_a_registry(addr: &str, got: &[u8]) -> Option<ClientError> {
    if !got.starts_with(b"HTTP/") {
        return None;
    }
    let line = got
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or(got);
    Some(ClientError::BadReply(format!(
        "{addr} is not an xlReg registry (it answered like an HTTP server: {:?}); \
         a registry answers a Hello with a {HELLO_REPLY_LEN}-byte HelloReply: \
         check the endpoint in the regcred",
        String::from_utf8_lossy(line)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fake::{self, Action};
    use crate::client::node::{NodeIdentity, NodeOptions};
    use crate::client::session::Session;
    use crate::wire::{NodeId, Tag, Which};

    fn node() -> NodeIdentity {
        NodeIdentity::generate(&NodeOptions {
            name: Some("t".into()),
            endpoints: Some(vec!["127.0.0.1:1".into()]),
            key_bits: 1024,
        })
        .unwrap()
    }

    fn quick() -> ClientOptions {
        ClientOptions {
            io_timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        }
    }

    /// Answers Member with MemberOK and GetCluster with `n` member tokens.
    fn members_handler(n: usize, pieces: usize) -> impl FnMut(&XlRegMsg) -> Action + Send {
        move |m: &XlRegMsg| match m.tag() {
            Some(Tag::Member) => {
                let id = m.member_specs.as_ref().and_then(|t| t.id.clone()).unwrap();
                Action::Reply(XlRegMsg::member_ok(&NodeId::from_bytes(&id).unwrap(), 0))
            }
            Some(Tag::GetCluster) => {
                let toks: Vec<_> = (0..n).map(fake::member_token).collect();
                let r =
                    XlRegMsg::cluster_members(fake::cluster_id().as_bytes(), Which::low_n(n), toks);
                if pieces == 0 {
                    Action::Reply(r)
                } else {
                    Action::ReplyInPieces(r, pieces)
                }
            }
            Some(Tag::Bye) => Action::Reply(XlRegMsg::ack()),
            _ => Action::Close,
        }
    }

    #[tokio::test]
    async fn xlreg_server_negotiates_length_prefixed_framing_and_legacy_option_does_not() {
        let rc = fake::start(false, || members_handler(0, 0)).await;
        let s = Session::connect(&rc, &quick()).await.unwrap();
        assert_eq!(s.framing(), Framing::LengthPrefixed);
        assert_eq!(s.server_version(), EXT_VERSION);
        s.bye().await.unwrap();
        let legacy = ClientOptions {
            legacy_framing: true,
            ..quick()
        };
        assert_eq!(legacy.proposed_version(), fake::GO_CLIENT_VERSION);
        let s = Session::connect(&rc, &legacy).await.unwrap();
        assert_eq!(s.framing(), Framing::Legacy);
        s.bye().await.unwrap();
    }

    #[tokio::test]
    async fn go_server_answer_means_legacy_framing() {
        let rc = fake::start(true, || members_handler(0, 0)).await;
        let s = Session::connect(&rc, &quick()).await.unwrap();
        assert_eq!(s.framing(), Framing::Legacy);
        assert_eq!(s.server_version(), crate::wire::GO_SERVER_VERSION);
        s.bye().await.unwrap();
    }

    #[tokio::test]
    async fn reply_larger_than_16k_arrives_whole_with_length_prefix() {
        // 64 tokens with 1024-bit keys: well over 16 KiB.
        let rc = fake::start(false, || members_handler(64, 0)).await;
        let mut s = Session::connect(&rc, &quick()).await.unwrap();
        s.register(&node(), 0).await.unwrap();
        let r = s
            .get_members(&fake::cluster_id(), Which::ALL)
            .await
            .unwrap();
        assert_eq!(r.members.len(), 64);
        let size: usize = XlRegMsg::cluster_members(
            fake::cluster_id().as_bytes(),
            Which::ALL,
            (0..64).map(fake::member_token).collect(),
        )
        .to_bytes()
        .len();
        assert!(size > 16 * 1024, "test reply only {size} bytes");
        assert_eq!(r.members[63].name, "fake63");
        s.bye().await.unwrap();
    }

    #[tokio::test]
    async fn reply_split_into_tiny_segments_is_reassembled_in_both_framings() {
        for legacy in [false, true] {
            let rc = fake::start(false, || members_handler(5, 7)).await;
            let opts = ClientOptions {
                legacy_framing: legacy,
                ..quick()
            };
            let mut s = Session::connect(&rc, &opts).await.unwrap();
            s.register(&node(), 0).await.unwrap();
            let r = s
                .get_members(&fake::cluster_id(), Which::ALL)
                .await
                .unwrap();
            assert_eq!(r.which, Which(0b11111), "legacy={legacy}");
            assert_eq!(r.members.len(), 5);
            s.bye().await.unwrap();
        }
    }

    #[tokio::test]
    async fn error_reply_is_a_typed_error_with_the_servers_text() {
        let rc = fake::start(true, || {
            |_: &XlRegMsg| Action::Reply(XlRegMsg::error("crypto/rsa: verification error"))
        })
        .await;
        let mut s = Session::connect(&rc, &quick()).await.unwrap();
        let e = s.register(&node(), 0).await.unwrap_err();
        match &e {
            ClientError::Server {
                request,
                cluster: None,
                text,
            } => {
                assert_eq!(*request, "Member");
                assert_eq!(text, "crypto/rsa: verification error");
            }
            other => panic!("expected Server error, got {other:?}"),
        }
        assert_eq!(e.server_text(), Some("crypto/rsa: verification error"));
        // The session is dead: no further request goes out.
        let e2 = s
            .create(&crate::client::ClusterSpec::new("c", 2))
            .await
            .unwrap_err();
        assert!(matches!(e2, ClientError::Usage(_)), "{e2:?}");
        s.bye().await.unwrap();
    }

    #[tokio::test]
    async fn reply_with_the_wrong_op_is_unexpected_reply() {
        let rc = fake::start(true, || |_: &XlRegMsg| Action::Reply(XlRegMsg::ack())).await;
        let mut s = Session::connect(&rc, &quick()).await.unwrap();
        let e = s.register(&node(), 0).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::UnexpectedReply { expected: Tag::MemberOk, got, .. } if got == "Ack"),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn calls_out_of_protocol_order_are_refused_locally() {
        let rc = fake::start(true, || members_handler(0, 0)).await;
        let mut s = Session::connect(&rc, &quick()).await.unwrap();
        let e = s
            .join(&crate::client::ClusterRef::Id(fake::cluster_id()))
            .await;
        assert!(matches!(e, Err(ClientError::Usage(ref t)) if t.contains("before Member")));
        // Nothing was sent, so the session is still usable.
        s.register(&node(), 0).await.unwrap();
        let e = s.register(&node(), 0).await;
        assert!(matches!(e, Err(ClientError::Usage(_))));
    }

    #[tokio::test]
    async fn server_closing_silently_after_hello_is_reported_as_closed() {
        let rc = fake::start(true, || |_: &XlRegMsg| Action::Close).await;
        let mut s = Session::connect(&rc, &quick()).await.unwrap();
        let e = s.register(&node(), 0).await.unwrap_err();
        assert!(matches!(e, ClientError::Closed { .. }), "{e:?}");
        assert!(e.to_string().contains("instead of sending MemberOk"), "{e}");
    }

    #[tokio::test]
    async fn wrong_registry_key_is_reported_as_closed_during_hello() {
        // Our fake cannot decrypt a Hello made for another key and closes,
        // like a Go registry.
        let mut rc = fake::start(true, || members_handler(0, 0)).await;
        rc.comms_key = fake::member_keys().0.public();
        let e = Session::connect(&rc, &quick()).await.unwrap_err();
        assert!(e.to_string().contains("HelloReply"), "{e}");
        assert!(e.to_string().contains("regcred"), "{e}");
    }

    #[tokio::test]
    async fn stalled_server_trips_the_read_timeout() {
        // Accepts and never answers, like a hung Go registry.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let keep = tokio::spawn(async move {
            let mut held = vec![];
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let rc = fake::regcred_for(addr);
        let opts = ClientOptions {
            io_timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        };
        let t0 = std::time::Instant::now();
        let e = Session::connect(&rc, &opts).await.unwrap_err();
        assert!(matches!(e, ClientError::Timeout { .. }), "{e:?}");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(3));
        keep.abort();
    }

    /// A fake server that reads the Hello and answers `reply`, then closes.
    async fn answering(reply: &'static [u8]) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            // The Hello (its length is the regcred key's size).
            let mut hello = [0u8; 1024];
            let _ = s.read(&mut hello).await;
            let _ = s.write_all(reply).await;
            let _ = s.shutdown().await;
        });
        addr
    }

    #[tokio::test]
    async fn an_http_server_at_the_regcred_endpoint_is_named_as_not_a_registry() {
        // Short (EOF before 64 bytes) and long (64 bytes that do not open).
        let short: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\r\n";
        let long: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\
                            date: Thu, 03 Dec 2026 08:00:00 GMT\r\n\r\n";
        assert!(short.len() < HELLO_REPLY_LEN && long.len() > HELLO_REPLY_LEN);
        for reply in [short, long] {
            let addr = answering(reply).await;
            let e = Session::connect(&fake::regcred_for(addr), &quick())
                .await
                .unwrap_err();
            let t = e.to_string();
            assert!(matches!(e, ClientError::BadReply(_)), "{e:?}");
            assert!(
                t.contains(&format!("{addr} is not an xlReg registry")),
                "{t}"
            );
            assert!(t.contains("answered like an HTTP server"), "{t}");
            assert!(t.contains("HTTP/1.1 400 Bad Request"), "{t}");
        }
    }

    #[tokio::test]
    async fn a_reset_right_after_the_hello_asks_whether_the_port_is_a_registry() {
        // Closing with the Hello unread makes the kernel send a reset.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            s.readable().await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(s);
        });
        let e = Session::connect(&fake::regcred_for(addr), &quick())
            .await
            .unwrap_err();
        let t = crate::ErrorChain(&e).to_string();
        assert!(matches!(e, ClientError::Io { .. }), "{e:?}");
        assert!(t.contains("is this the port of an xlReg registry?"), "{t}");
        assert!(t.contains(&addr.to_string()), "{t}");
    }

    #[tokio::test]
    async fn connection_refused_is_an_io_error_naming_the_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = Session::connect(&fake::regcred_for(addr), &quick())
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Io { .. }), "{e:?}");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }

    #[test]
    fn regcred_without_endpoint_is_a_regcred_error() {
        let mut rc = fake::regcred_for("127.0.0.1:1".parse().unwrap());
        rc.endpoints.clear();
        assert!(matches!(
            ClientOptions::default().target(&rc),
            Err(ClientError::RegCred(_))
        ));
    }
}
