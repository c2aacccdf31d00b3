//! A raw protocol driver for integration tests: speaks the wire protocol
//! through the sans-IO core with no client-library logic in between, so
//! tests can send anything — out-of-state ops, garbage, fragments.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use xlreg::regcred::RegCred;
use xlreg::server::{Server, ServerConfig};
use xlreg::wire::{
    signed_token, DecimalVersion, Framing, Hello, HelloReply, NodeId, PrivateKey, Reassembler,
    SessionKey, Token, XlRegMsg,
};

/// Pre-generated 1024-bit key pairs, shared by tests to keep them fast.
pub fn keys(i: usize) -> &'static (PrivateKey, PrivateKey) {
    static K: OnceLock<Vec<(PrivateKey, PrivateKey)>> = OnceLock::new();
    &K.get_or_init(|| {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        (
                            PrivateKey::generate(1024).unwrap(),
                            PrivateKey::generate(1024).unwrap(),
                        )
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    })[i % 8]
}

/// A signed Member token for key pair `k`, with an explicit ID.
pub fn token(name: &str, k: usize, id: Option<&NodeId>, endpoints: &[&str]) -> Token {
    let (ck, sk) = keys(k);
    let eps: Vec<String> = endpoints.iter().map(|s| s.to_string()).collect();
    signed_token(name, 0, id, &ck.public(), sk, &eps).unwrap()
}

/// An ephemeral server with short timeouts, for tests.
pub async fn server() -> Server {
    server_with(|_| {}).await
}

/// An ephemeral server, configured further by `f`.
pub async fn server_with(f: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut cfg = ServerConfig::ephemeral();
    cfg.message_timeout = Duration::from_millis(800);
    cfg.handshake_timeout = Duration::from_secs(2);
    cfg.hold = Duration::ZERO;
    f(&mut cfg);
    Server::start(cfg).await.unwrap()
}

/// One raw session.
pub struct Raw {
    pub stream: TcpStream,
    pub key: SessionKey,
    pub framing: Framing,
    pub reply_version: DecimalVersion,
    /// Wire sizes of every reply received.
    pub reply_sizes: Vec<usize>,
    /// The bytes received for the last reply, as they arrived (in the
    /// legacy framing: the sealed message; see [`SessionKey::open_body`]).
    pub last_wire: Vec<u8>,
}

impl Raw {
    /// Connect and handshake like a Go client (version 0, legacy framing).
    pub async fn go(rc: &RegCred) -> Raw {
        Self::connect(rc, DecimalVersion(0)).await
    }

    /// Connect and handshake proposing `version`.
    pub async fn connect(rc: &RegCred, version: DecimalVersion) -> Raw {
        let mut stream = TcpStream::connect(rc.endpoints[0].as_str()).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let hello = Hello::new(version);
        stream
            .write_all(&hello.seal(&rc.comms_key).unwrap())
            .await
            .unwrap();
        let mut r = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut r))
            .await
            .expect("hello reply in time")
            .unwrap();
        let reply = HelloReply::open(&hello.key1, &r).unwrap();
        Raw {
            stream,
            key: SessionKey(reply.key2),
            framing: Framing::client_negotiate(version, reply.version),
            reply_version: reply.version,
            reply_sizes: vec![],
            last_wire: vec![],
        }
    }

    /// Send one message in one write.
    pub async fn send(&mut self, m: &XlRegMsg) {
        let w = self.framing.encode(&self.key, m);
        self.stream.write_all(&w).await.unwrap();
    }

    /// Send raw bytes.
    pub async fn send_raw(&mut self, b: &[u8]) {
        self.stream.write_all(b).await.unwrap();
    }

    /// Receive one message; None if the server closed.
    pub async fn recv(&mut self) -> Option<XlRegMsg> {
        let mut reasm = Reassembler::new(self.framing);
        let mut buf = vec![0u8; 65536];
        let mut wire = Vec::new();
        loop {
            if let Some(m) = reasm.try_next(&self.key).unwrap() {
                self.reply_sizes.push(wire.len());
                self.last_wire = wire;
                return Some(m);
            }
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut buf))
                .await
                .expect("reply in time")
                .unwrap_or(0);
            if n == 0 {
                assert_eq!(reasm.buffered(), 0, "closed mid-message");
                return None;
            }
            wire.extend_from_slice(&buf[..n]);
            reasm.push(&buf[..n]);
        }
    }

    /// Send and receive one reply (which must come).
    pub async fn call(&mut self, m: &XlRegMsg) -> XlRegMsg {
        self.send(m).await;
        self.recv().await.expect("a reply, not a close")
    }

    /// Expect an Error with `text`, then a close.
    pub async fn expect_error(&mut self, m: &XlRegMsg, text: &str) {
        let r = self.call(m).await;
        assert_eq!(r.op, Some(13), "expected Error {text:?}, got {r:?}");
        assert_eq!(r.err_text(), text);
        self.expect_closed().await;
    }

    /// Expect the server to close the connection without a reply.
    pub async fn expect_closed(&mut self) {
        let mut b = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut b))
            .await
            .expect("server closes in time")
            .unwrap_or(0);
        assert_eq!(n, 0, "expected a close, got {n} bytes");
    }

    /// Member with token `t`; returns the MemberOK.
    pub async fn member(&mut self, t: Token) -> XlRegMsg {
        let r = self.call(&XlRegMsg::member(t)).await;
        assert_eq!(r.op, Some(4), "MemberOK expected, got {r:?}");
        r
    }
}

/// A full Go-style member session: Member, Join by ID, Bye. Returns the
/// member's slot-less MemberOK ID.
pub async fn join_member(rc: &RegCred, cluster: &NodeId, name: &str, k: usize) -> NodeId {
    let mut s = Raw::go(rc).await;
    let id = NodeId::random();
    s.member(token(name, k, Some(&id), &["127.0.0.1:1"])).await;
    let r = s.call(&XlRegMsg::join_by_id(cluster)).await;
    assert_eq!(
        r.op,
        Some(8),
        "JoinReply expected, got {:?} {}",
        r.op,
        r.err_text()
    );
    assert_eq!(s.call(&XlRegMsg::bye()).await.op, Some(12));
    id
}

/// Create a cluster in a fresh admin session; returns its ID.
pub async fn create(rc: &RegCred, name: &str, size: u32) -> NodeId {
    let mut s = Raw::go(rc).await;
    s.member(token("admin", 7, None, &[])).await;
    let r = s.call(&XlRegMsg::create(name, size, 0, 1)).await;
    assert_eq!(r.op, Some(6), "CreateReply expected: {}", r.err_text());
    s.call(&XlRegMsg::bye()).await;
    NodeId::from_bytes(r.cluster_id.as_deref().unwrap()).unwrap()
}
