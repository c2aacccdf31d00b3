//! A scriptable in-process registry for the client's unit tests: it speaks
//! the handshake and the session layer, and a test closure decides how each
//! request is answered (normally, in tiny TCP segments, with an Error, or
//! not at all). It can pose as a Go registry (answers 1.9.24, legacy
//! framing) or as an xlreg one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::regcred::RegCred;
use crate::wire::{
    DecimalVersion, Framing, Hello, HelloReply, NodeId, PrivateKey, Reassembler, SessionKey, Tag,
    Token, Which, XlRegMsg, GO_SERVER_VERSION,
};

/// What the fake does with one request.
pub(crate) enum Action {
    /// Send this reply in one write.
    Reply(XlRegMsg),
    /// Send this reply in pieces of `n` bytes with a pause between them.
    ReplyInPieces(XlRegMsg, usize),
    /// Close the connection without answering.
    Close,
}

pub(crate) fn registry_key() -> &'static PrivateKey {
    static K: OnceLock<PrivateKey> = OnceLock::new();
    K.get_or_init(|| PrivateKey::generate(1024).expect("keygen"))
}

pub(crate) fn member_keys() -> &'static (PrivateKey, PrivateKey) {
    static K: OnceLock<(PrivateKey, PrivateKey)> = OnceLock::new();
    K.get_or_init(|| {
        (
            PrivateKey::generate(1024).expect("keygen"),
            PrivateKey::generate(1024).expect("keygen"),
        )
    })
}

/// A regcred pointing at `addr` with the fake's key.
pub(crate) fn regcred_for(addr: SocketAddr) -> RegCred {
    let k = registry_key();
    RegCred {
        name: "xlReg".into(),
        id: NodeId::random(),
        comms_key: k.public(),
        sig_key: k.public(),
        endpoints: vec![addr.to_string()],
        version: GO_SERVER_VERSION,
    }
}

/// Start a fake that serves connections (each in its own task) with
/// handlers made by `make`. `go` = pose as a Go registry.
pub(crate) async fn start<F, H>(go: bool, make: F) -> RegCred
where
    F: Fn() -> H + Send + 'static,
    H: FnMut(&XlRegMsg) -> Action + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = make();
            tokio::spawn(serve(stream, go, handler));
        }
    });
    regcred_for(addr)
}

async fn serve<H>(mut stream: TcpStream, go: bool, mut handler: H)
where
    H: FnMut(&XlRegMsg) -> Action,
{
    let _ = stream.set_nodelay(true);
    let k = registry_key();
    let mut ct = vec![0u8; k.size()];
    if stream.read_exact(&mut ct).await.is_err() {
        return;
    }
    let Ok(hello) = Hello::open(k, &ct) else {
        return;
    };
    let (framing, version) = if go {
        (Framing::Legacy, GO_SERVER_VERSION)
    } else {
        Framing::server_negotiate(hello.version)
    };
    let reply = HelloReply::new(version);
    if stream.write_all(&reply.seal(&hello.key1)).await.is_err() {
        return;
    }
    let key = SessionKey(reply.key2);
    let mut r = Reassembler::new(framing);
    let mut buf = vec![0u8; 65536];
    loop {
        let msg = loop {
            match r.try_next(&key) {
                Ok(Some(m)) => break m,
                Ok(None) => {}
                Err(_) => return,
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => r.push(&buf[..n]),
            }
        };
        match handler(&msg) {
            Action::Reply(m) => {
                if stream.write_all(&framing.encode(&key, &m)).await.is_err() {
                    return;
                }
            }
            Action::ReplyInPieces(m, n) => {
                for piece in framing.encode(&key, &m).chunks(n.max(1)) {
                    if stream.write_all(piece).await.is_err() {
                        return;
                    }
                    let _ = stream.flush().await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            Action::Close => return,
        }
    }
}

/// A token for fake member `i` (shared keys, distinct ID and name).
pub(crate) fn member_token(i: usize) -> Token {
    let (ck, sk) = member_keys();
    let mut id = [0u8; 20];
    id[0] = i as u8;
    id[19] = 0xee;
    let id = NodeId::from_bytes(&id).expect("20 bytes");
    let mut t = crate::wire::signed_token(
        &format!("fake{i}"),
        0,
        Some(&id),
        &ck.public(),
        sk,
        &[format!("127.0.0.1:{}", 7000 + i)],
    )
    .expect("sign");
    t.dig_sig = None;
    t
}

/// State of a simulated cluster shared by all connections to a fake.
#[derive(Default)]
pub(crate) struct Cluster {
    /// Members so far, in join order.
    pub members: Vec<Token>,
    /// Cluster size.
    pub max_size: u32,
    /// At most this many tokens per ClusterMembers (0 = no cap), like a
    /// Go registry capping its replies.
    pub cap: usize,
    /// How many GetCluster requests were served.
    pub gets: usize,
}

/// The cluster ID of every simulated cluster.
pub(crate) fn cluster_id() -> NodeId {
    NodeId::from_bytes(&[0xc1; 20]).expect("20 bytes")
}

/// A handler that behaves like a registry for one cluster: Member →
/// MemberOK, Join → JoinReply (adds the member), GetCluster → the present
/// members among Which (capped), Bye → Ack.
pub(crate) fn cluster_handler(
    cluster: Arc<Mutex<Cluster>>,
) -> impl FnMut(&XlRegMsg) -> Action + Send + 'static {
    let mut me: Option<Token> = None;
    move |m: &XlRegMsg| {
        let mut c = cluster.lock().expect("lock");
        match m.tag() {
            Some(Tag::Member) => {
                let mut t = m.member_specs.clone().unwrap_or_default();
                t.dig_sig = None;
                let id = NodeId::from_bytes(t.id.as_deref().unwrap_or_default()).expect("id");
                me = Some(t);
                Action::Reply(XlRegMsg::member_ok(&id, 0))
            }
            Some(Tag::Join) => {
                if let Some(t) = me.take() {
                    c.members.push(t);
                }
                Action::Reply(XlRegMsg::join_reply(&cluster_id(), c.max_size, 0, 1))
            }
            Some(Tag::GetCluster) => {
                c.gets += 1;
                let which = Which(m.which.unwrap_or(0));
                let mut got = Which(0);
                let mut tokens = vec![];
                for (i, t) in c.members.iter().enumerate() {
                    if which.contains(i) && (c.cap == 0 || tokens.len() < c.cap) {
                        got.insert(i);
                        tokens.push(t.clone());
                    }
                }
                Action::Reply(XlRegMsg::cluster_members(
                    cluster_id().as_bytes(),
                    got,
                    tokens,
                ))
            }
            Some(Tag::Bye) => Action::Reply(XlRegMsg::ack()),
            _ => Action::Reply(XlRegMsg::error("invalid msg type for current state")),
        }
    }
}

/// The version a Go client proposes.
pub(crate) const GO_CLIENT_VERSION: DecimalVersion = DecimalVersion(0);

/// A fresh member identity `name` (1024-bit keys, one endpoint).
pub(crate) fn node(name: &str) -> crate::client::NodeIdentity {
    crate::client::NodeIdentity::generate(&crate::client::NodeOptions {
        name: Some(name.into()),
        endpoints: Some(vec!["127.0.0.1:9".into()]),
        key_bits: 1024,
    })
    .expect("keygen")
}
