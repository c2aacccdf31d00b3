//! A Go client and a cluster that changes, at the TCP level: xlreg members
//! fill a cluster of 3, its creator resizes it to 5 and two more join;
//! then a session speaking exactly as a Go client does (Hello version 0,
//! the legacy framing, no extension fields) registers and sends
//! GetCluster. It must get an ordinary, complete ClusterMembers with the
//! new size's five tokens, and no byte of any extension field (19, 40,
//! 41, 42) in anything it receives; ops 15–18 on such a session are no
//! ops at all (`message tag out of range`). After an evict, a Go client's
//! held GetCluster waits until the hole is filled: a hole counts as
//! missing.
//!
//! Both stores: a SQLite registry, and two servers sharing one PostgreSQL
//! database (the cluster changed through server 0, the Go client reading
//! through server 1). The PostgreSQL runs need `XLREG_TEST_POSTGRES`;
//! without it they print `SKIPPED:` and pass, unless
//! `XLREG_REQUIRE_POSTGRES=1` (CI).

#[macro_use]
mod common;
mod raw;

use std::time::Duration;

use raw::{token, Raw};
use xlreg::regcred::RegCred;
use xlreg::registry::postgres::PoolOptions;
use xlreg::server::ServerConfig;
use xlreg::testing::postgres::{PgGroup, TestDb};
use xlreg::testing::{LaunchOptions, LocalCluster, LocalRegistry};
use xlreg::wire::{Evictee, NodeId, Tag, Which, XlRegMsg};

/// How long the servers hold a GetCluster: longer than any wait here, so
/// an answer comes from a change, never from the hold running out.
const HOLD: Duration = Duration::from_secs(30);

/// The XlRegMsg fields of the Go schema (spec §7.2): a Go client's decoder
/// knows these and no others.
const GO_FIELDS: [u32; 18] = [
    1, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 17, 20, 21, 22, 23,
];

/// The registry under test: where xlreg members change the cluster, and
/// where the Go client connects (another server of a PostgreSQL group).
struct Registry {
    rc: RegCred,
    go_rc: RegCred,
    _running: Box<dyn std::any::Any + Send>,
}

fn config() -> ServerConfig {
    ServerConfig {
        hold: HOLD,
        ..ServerConfig::ephemeral()
    }
}

async fn sqlite() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::start_with(ServerConfig {
        data_dir: Some(dir.path().join("data")),
        ..config()
    })
    .await
    .unwrap();
    let rc = reg.regcred().clone();
    Registry {
        go_rc: rc.clone(),
        rc,
        _running: Box::new((reg, dir)),
    }
}

async fn postgres(test: &str) -> Option<Registry> {
    let db = TestDb::create(test).await?;
    let group = PgGroup::start(db.url(), 2, config(), PoolOptions::default())
        .await
        .unwrap();
    // The first endpoint is the one connected to (a Go client reads no
    // other line).
    let (rc, go_rc) = (group.regcred_from(0), group.regcred_from(1));
    Some(Registry {
        rc,
        go_rc,
        _running: Box::new((group, db)),
    })
}

/// A cluster of 3 xlreg members, grown to 5 by its creator; two more
/// members joined (`m03`, `m04`).
async fn grown(r: &Registry) -> LocalCluster {
    let mut c = LocalCluster::launch_with(LaunchOptions {
        size: 3,
        endpoints: 1,
        regcred: Some(r.rc.clone()),
        ..LaunchOptions::default()
    })
    .await
    .unwrap();
    // Created, three joins; the resize, two joins.
    assert_eq!(c.resize(5).await.unwrap(), 7);
    assert_eq!(c.members.len(), 5);
    c
}

/// The top-level field numbers of a protobuf message body.
fn fields(mut body: &[u8]) -> Vec<u32> {
    use prost::encoding::{decode_key, skip_field, DecodeContext};
    let mut out = Vec::new();
    while !body.is_empty() {
        let (tag, wire_type) = decode_key(&mut body).expect("a field key");
        skip_field(wire_type, tag, &mut body, DecodeContext::default()).expect("a field");
        out.push(tag);
    }
    out
}

/// Receive the next message on the Go session and check its bytes as
/// sent: only fields a Go client knows.
async fn recv_go(s: &mut Raw) -> XlRegMsg {
    let m = s.recv().await.expect("a reply, not a close");
    let body = s.key.open_body(&s.last_wire).expect("the reply as sent");
    let f = fields(&body);
    assert!(
        f.iter().all(|t| GO_FIELDS.contains(t)),
        "fields {f:?} in {:?}",
        m.tag()
    );
    m
}

/// Send `m` on the Go session and receive the reply, checked as in
/// [`recv_go`].
async fn call_go(s: &mut Raw, m: &XlRegMsg) -> XlRegMsg {
    s.send(m).await;
    recv_go(s).await
}

/// A Go-framed session (Hello version 0, legacy framing) registered as a
/// reader named `name` with key pair `k`.
async fn go_reader(rc: &RegCred, name: &str, k: usize) -> Raw {
    let mut s = Raw::go(rc).await;
    assert_eq!(s.framing, xlreg::wire::Framing::Legacy);
    let ok = call_go(&mut s, &XlRegMsg::member(token(name, k, None, &[]))).await;
    assert_eq!(ok.tag(), Some(Tag::MemberOk), "{}", ok.err_text());
    s
}

/// The member names of a ClusterMembers' tokens, in slot order.
fn names(m: &XlRegMsg) -> Vec<String> {
    m.tokens
        .iter()
        .map(|t| String::from_utf8_lossy(t.name.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

/// What the Go client must see of the grown cluster: every slot of the
/// new size, the members in their slots.
fn assert_complete(m: &XlRegMsg, id: &NodeId, names_by_slot: &[&str]) {
    assert_eq!(m.tag(), Some(Tag::ClusterMembers), "{}", m.err_text());
    assert_eq!(m.cluster_id.as_deref(), Some(id.as_bytes()));
    assert_eq!(m.which, Some(Which::low_n(names_by_slot.len()).0));
    assert_eq!(names(m), names_by_slot);
    assert!(m.tokens_match_which());
}

on_both_stores!(
    a_go_client_gets_the_resized_cluster_complete_and_ops_15_to_18_are_no_ops_to_it,
    a_go_clients_held_get_cluster_waits_for_an_evicted_members_hole_to_be_filled,
);

async fn a_go_client_gets_the_resized_cluster_complete_and_ops_15_to_18_are_no_ops_to_it(
    r: Registry,
) {
    let c = grown(&r).await;
    let id = c.id();
    let mut go = go_reader(&r.go_rc, "go-reader", 0).await;
    let m = call_go(&mut go, &XlRegMsg::get_cluster(&id, Which::ALL)).await;
    assert_complete(&m, &id, &["m00", "m01", "m02", "m03", "m04"]);
    // The session goes on as a Go client's would.
    let bye = call_go(&mut go, &XlRegMsg::bye()).await;
    assert_eq!(bye.tag(), Some(Tag::Ack));

    // Ops 15-18 are unknown to a Go-framed session: the Error Go clients
    // know for an unknown op, then a close (each on a fresh session).
    let ops = [
        XlRegMsg::resize(Some(&id), "", 6),
        XlRegMsg::evict(Some(&id), "", Evictee::Index(1)),
        XlRegMsg::leave(Some(&id), ""),
        XlRegMsg::watch(Some(&id), "", 0, 0),
    ];
    for (i, op) in ops.iter().enumerate() {
        let mut go = go_reader(&r.go_rc, "go-asker", 1).await;
        let e = call_go(&mut go, op).await;
        assert_eq!(
            (e.tag(), e.err_text().as_str()),
            (Some(Tag::Error), "message tag out of range"),
            "op {}",
            15 + i
        );
        go.expect_closed().await;
    }
    // None of them changed anything.
    let mut go = go_reader(&r.go_rc, "go-reader", 0).await;
    let m = call_go(&mut go, &XlRegMsg::get_cluster(&id, Which::ALL)).await;
    assert_complete(&m, &id, &["m00", "m01", "m02", "m03", "m04"]);
}

async fn a_go_clients_held_get_cluster_waits_for_an_evicted_members_hole_to_be_filled(r: Registry) {
    let mut c = grown(&r).await;
    let id = c.id();
    c.evict(1).await.unwrap();
    let mut go = go_reader(&r.go_rc, "go-reader", 0).await;
    go.send(&XlRegMsg::get_cluster(&id, Which::ALL)).await;
    // Held: slot 1 is a hole, and a hole counts as missing.
    let early = tokio::time::timeout(Duration::from_millis(500), go.recv()).await;
    assert!(early.is_err(), "answered with a hole: {early:?}");
    // A Go member joins (through the other server of a group): it takes
    // the lowest free slot, 1, and the held GetCluster is answered.
    raw::join_member(&r.rc, &id, "go-member", 2).await;
    let m = tokio::time::timeout(Duration::from_secs(20), recv_go(&mut go))
        .await
        .expect("answered once the hole is filled");
    assert_complete(&m, &id, &["m00", "go-member", "m02", "m03", "m04"]);
}
