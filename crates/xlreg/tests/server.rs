//! The registry server driven with raw protocol messages on loopback:
//! every cell of the spec §8.3 table, every Go crash trigger of §8.4, the
//! §9/§16 semantics, durability across restarts, and 64-member replies
//! that fit a Go client's 16 KiB read.

mod raw;

use std::time::Duration;

use raw::*;
use xlreg::server::Server;
use xlreg::wire::{
    DecimalVersion, NodeId, PrivateKey, Which, XlRegMsg, EXT_VERSION, GO_SERVER_VERSION,
};

const BAD_STATE: &str = "invalid msg type for current state";

fn op(v: i32) -> XlRegMsg {
    XlRegMsg {
        op: Some(v),
        ..Default::default()
    }
}

/// A session in CLIENT_DETAILS_RCVD.
async fn registered(rc: &xlreg::regcred::RegCred, name: &str) -> Raw {
    let mut s = Raw::go(rc).await;
    s.member(token(name, 1, Some(&NodeId::random()), &["127.0.0.1:1"]))
        .await;
    s
}

/// After any refusal the server must still serve a normal member.
async fn still_serves(rc: &xlreg::regcred::RegCred) {
    let c = create(rc, &format!("after-{}", NodeId::random()), 2).await;
    join_member(rc, &c, "ok", 2).await;
}

#[tokio::test]
async fn hello_rcvd_row_refuses_create_join_get_and_accepts_member_and_bye() {
    let srv = server().await;
    let rc = srv.regcred();
    for m in [
        XlRegMsg::create("x", 2, 0, 1),
        XlRegMsg::join_by_name("x"),
        XlRegMsg::get_cluster(&NodeId::random(), Which::ALL),
    ] {
        Raw::go(rc).await.expect_error(&m, BAD_STATE).await;
    }
    let mut s = Raw::go(rc).await;
    assert_eq!(
        s.reply_version, GO_SERVER_VERSION,
        "Go clients see the Go server's version"
    );
    assert_eq!(s.call(&XlRegMsg::bye()).await, XlRegMsg::ack());
    let mut s = Raw::go(rc).await;
    let ok = s.member(token("m", 1, None, &["127.0.0.1:1"])).await;
    assert_eq!(
        ok.member_id.as_ref().map(Vec::len),
        Some(20),
        "server assigns a 20-byte ID"
    );
    still_serves(rc).await;
}

#[tokio::test]
async fn client_details_rcvd_row() {
    let srv = server_with(|c| c.allow_anonymous_reads = false).await;
    let rc = srv.regcred();
    registered(rc, "a")
        .await
        .expect_error(&XlRegMsg::member(token("b", 1, None, &[])), BAD_STATE)
        .await;
    let c = create(rc, "crow", 3).await;
    registered(rc, "a")
        .await
        .expect_error(&XlRegMsg::get_cluster(&c, Which::ALL), BAD_STATE)
        .await;
    let mut s = registered(rc, "a").await;
    assert_eq!(
        s.call(&XlRegMsg::create("crow2", 3, 0, 1)).await.op,
        Some(6)
    );
    let mut s = registered(rc, "b").await;
    assert_eq!(s.call(&XlRegMsg::join_by_id(&c)).await.op, Some(8));
    let mut s = registered(rc, "c").await;
    assert_eq!(s.call(&XlRegMsg::bye()).await.op, Some(12));
}

#[tokio::test]
async fn non_members_may_read_a_cluster_when_allowed() {
    let srv = server().await;
    let rc = srv.regcred();
    let c = create(rc, "open", 2).await;
    join_member(rc, &c, "m0", 1).await;
    let mut s = registered(rc, "reader").await;
    let r = s.call(&XlRegMsg::get_cluster(&c, Which::ALL)).await;
    assert_eq!((r.op, r.which, r.tokens.len()), (Some(10), Some(1), 1));
}

#[tokio::test]
async fn create_request_rcvd_row() {
    let srv = server().await;
    let rc = srv.regcred();
    for m in [
        XlRegMsg::member(token("x", 1, None, &[])),
        XlRegMsg::create("again", 2, 0, 1),
    ] {
        let mut s = registered(rc, "a").await;
        s.call(&XlRegMsg::create("cr", 3, 0, 1)).await;
        s.expect_error(&m, BAD_STATE).await;
    }
    let mut s = registered(rc, "a").await;
    s.call(&XlRegMsg::create("cr", 3, 0, 1)).await;
    // Join with neither name nor ID: the cluster just created.
    let r = s.call(&op(7)).await;
    assert_eq!(r.op, Some(8), "{}", r.err_text());
    let mut s = registered(rc, "b").await;
    s.call(&XlRegMsg::create("cr", 3, 0, 1)).await;
    assert_eq!(s.call(&XlRegMsg::bye()).await.op, Some(12));
}

#[tokio::test]
async fn join_rcvd_row_and_repeated_get() {
    let srv = server().await;
    let rc = srv.regcred();
    let c = create(rc, "jr", 4).await;
    for (i, m) in [
        XlRegMsg::member(token("x", 1, None, &[])),
        XlRegMsg::create("y", 2, 0, 1),
        XlRegMsg::join_by_id(&c),
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = registered(rc, &format!("r{i}")).await;
        assert_eq!(s.call(&XlRegMsg::join_by_id(&c)).await.op, Some(8));
        s.expect_error(&m, BAD_STATE).await;
    }
    let mut s = registered(rc, "last").await;
    s.call(&XlRegMsg::join_by_id(&c)).await;
    for _ in 0..3 {
        let r = s.call(&XlRegMsg::get_cluster(&c, Which::ALL)).await;
        assert_eq!((r.op, r.which), (Some(10), Some(0b1111)));
        assert!(
            r.tokens.iter().all(|t| t.dig_sig.is_none()),
            "no DigSig in returned tokens"
        );
    }
    let r = s.call(&XlRegMsg::get_cluster(&c, Which(0b101))).await;
    assert_eq!((r.which, r.tokens.len()), (Some(0b101), 2));
    let r = s
        .call(&XlRegMsg {
            which: None,
            ..XlRegMsg::get_cluster(&c, Which(0))
        })
        .await;
    assert_eq!(
        (r.which, r.tokens.len()),
        (Some(0), 0),
        "absent Which means none"
    );
    assert_eq!(s.call(&XlRegMsg::bye()).await.op, Some(12));
}

#[tokio::test]
async fn anything_after_bye_is_an_error_not_a_crash() {
    let srv = server().await;
    let rc = srv.regcred();
    for m in [op(3), op(5), op(7), op(9), op(11), op(1)] {
        let mut s = Raw::go(rc).await;
        s.call(&XlRegMsg::bye()).await;
        s.expect_error(&m, BAD_STATE).await;
    }
    still_serves(rc).await;
}

#[tokio::test]
async fn bad_ops_get_errors_and_the_server_lives_on() {
    let srv = server().await;
    let rc = srv.regcred();
    for v in [0, 13, 14, 99, -5] {
        Raw::go(rc)
            .await
            .expect_error(&op(v), "message tag out of range")
            .await;
    }
    Raw::go(rc)
        .await
        .expect_error(&XlRegMsg::default(), "message tag out of range")
        .await;
    for v in [2, 4, 6, 8, 10, 12] {
        Raw::go(rc)
            .await
            .expect_error(&op(v), "unexpected message type")
            .await;
    }
    still_serves(rc).await;
}

#[tokio::test]
async fn reg_cred_request_describes_the_registry() {
    let srv = server().await;
    let rc = srv.regcred();
    let mut s = Raw::go(rc).await;
    let r = s.call(&op(1)).await;
    assert_eq!(r.op, Some(2));
    let t = r.member_specs.unwrap();
    assert_eq!(t.id.as_deref(), Some(rc.id.as_bytes()));
    assert_eq!(t.comms_key, Some(rc.comms_key.to_spki_der()));
    assert_eq!(t.sig_key, Some(rc.sig_key.to_spki_der()));
    assert_eq!(t.my_ends, vec![rc.endpoints[0].as_bytes().to_vec()]);
    assert_eq!(r.version, Some(GO_SERVER_VERSION.0));
    // The session goes on normally.
    s.member(token("m", 1, None, &[])).await;
}

#[tokio::test]
async fn join_failures_that_crash_go_get_errors() {
    let srv = server().await;
    let rc = srv.regcred();
    let cases = [
        (
            XlRegMsg::join_by_name("nope"),
            "cannot find cluster with this name",
        ),
        (
            XlRegMsg::join_by_id(&NodeId::random()),
            "cannot find cluster with this ID",
        ),
        (
            XlRegMsg {
                cluster_id: Some(vec![1, 2, 3]),
                ..op(7)
            },
            "cannot find cluster with this ID",
        ),
        (
            XlRegMsg {
                cluster_id: Some(vec![]),
                ..op(7)
            },
            "cannot find cluster with this ID",
        ),
        (op(7), "missing cluster name or ID"),
    ];
    for (m, text) in cases {
        registered(rc, "j").await.expect_error(&m, text).await;
    }
    still_serves(rc).await;
}

#[tokio::test]
async fn get_cluster_errors_use_go_texts() {
    let srv = server().await;
    let rc = srv.regcred();
    let c = create(rc, "g", 8).await;
    let cases = [
        (
            XlRegMsg {
                cluster_id: None,
                ..XlRegMsg::get_cluster(&c, Which::ALL)
            },
            "nil key parameter".to_string(),
        ),
        (
            XlRegMsg {
                cluster_id: Some(vec![1; 7]),
                ..XlRegMsg::get_cluster(&c, Which::ALL)
            },
            "Bytes*Key is too short".to_string(),
        ),
        (
            XlRegMsg {
                cluster_id: Some(vec![1; 20]),
                ..XlRegMsg::get_cluster(&c, Which::ALL)
            },
            format!(
                "doGetMsg: can't find cluster with ID {}",
                hex::encode([1u8; 20])
            ),
        ),
    ];
    for (i, (m, text)) in cases.into_iter().enumerate() {
        let mut s = registered(rc, &format!("g{i}")).await;
        s.call(&XlRegMsg::join_by_id(&c)).await;
        s.expect_error(&m, &text).await;
    }
}

#[tokio::test]
async fn member_with_bad_keys_signature_or_id_is_refused() {
    let srv = server().await;
    let rc = srv.regcred();
    let ec = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
    )
    .unwrap();
    let ec_der = openssl::pkey::PKey::from_ec_key(ec)
        .unwrap()
        .public_key_to_der()
        .unwrap();
    let mut non_rsa = token("m", 1, None, &[]);
    non_rsa.sig_key = Some(ec_der);
    let mut bad_sig = token("m", 1, None, &[]);
    bad_sig.name = Some(b"other".to_vec());
    let mut no_key = token("m", 1, None, &[]);
    no_key.comms_key = None;
    let mut short_id = token("m", 1, None, &[]);
    short_id.id = Some(vec![]);
    let cases = [
        (non_rsa, "x509: public key is not an RSA key"),
        (bad_sig, "crypto/rsa: verification error"),
        (no_key, "asn1: syntax error: sequence truncated"),
        (short_id, "bad length for nodeID"),
    ];
    for (t, text) in cases {
        Raw::go(rc)
            .await
            .expect_error(&XlRegMsg::member(t), text)
            .await;
    }
    still_serves(rc).await;
}

#[tokio::test]
async fn short_misaligned_and_garbage_messages_close_the_session_only() {
    let srv = server().await;
    let rc = srv.regcred();
    for bad in [
        vec![1u8; 5],
        vec![2u8; 15],
        vec![3u8; 16],
        vec![4u8; 33],
        vec![5u8; 48],
    ] {
        let mut s = Raw::go(rc).await;
        s.send_raw(&bad).await;
        s.expect_closed().await;
    }
    // A Hello of the wrong size or content closes silently too.
    let mut t = tokio::net::TcpStream::connect(rc.endpoints[0].as_str())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut t, &[7u8; 128])
        .await
        .unwrap();
    let mut b = [0u8; 8];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut t, &mut b),
    )
    .await
    .unwrap()
    .unwrap_or(0);
    assert_eq!(n, 0);
    still_serves(rc).await;
}

#[tokio::test]
async fn create_clamps_validates_and_is_idempotent() {
    let srv = server().await;
    let rc = srv.regcred();
    let mut s = registered(rc, "a").await;
    let r = s.call(&XlRegMsg::create("big", 1000, 6, 1)).await;
    assert_eq!(
        (r.cluster_max_size, r.cluster_attrs, r.end_point_count),
        (Some(64), Some(6), Some(1))
    );
    let id = r.cluster_id.clone();
    let mut s = registered(rc, "b").await;
    let r2 = s.call(&XlRegMsg::create("big", 3, 0, 1)).await;
    assert_eq!(r2.cluster_id, id, "existing name: existing cluster");
    assert_eq!(
        (r2.cluster_max_size, r2.cluster_attrs),
        (Some(64), Some(6)),
        "stored attrs equal replied attrs"
    );
    // Idempotent create sets the current cluster: a bare Join works.
    let j = s.call(&op(7)).await;
    assert_eq!((j.op, j.cluster_id.clone()), (Some(8), id));
    assert_eq!(j.cluster_attrs, Some(6));
    let mut s = registered(rc, "c").await;
    assert_eq!(
        s.call(&XlRegMsg::create("tiny", 0, 0, 1))
            .await
            .cluster_max_size,
        Some(2)
    );
    registered(rc, "d")
        .await
        .expect_error(
            &XlRegMsg::create("noeps", 3, 0, 0),
            "EndPointCount must be at least 1",
        )
        .await;
    registered(rc, "e")
        .await
        .expect_error(
            &XlRegMsg::create("", 3, 0, 1),
            "cluster name must not be empty",
        )
        .await;
}

#[tokio::test]
async fn join_enforces_capacity_and_unique_names_and_ids() {
    let srv = server().await;
    let rc = srv.regcred();
    let c = create(rc, "cap", 2).await;
    join_member(rc, &c, "m0", 1).await;
    // Same name, other member.
    registered(rc, "m0")
        .await
        .expect_error(
            &XlRegMsg::join_by_id(&c),
            "cluster member name already in use",
        )
        .await;
    join_member(rc, &c, "m1", 2).await;
    registered(rc, "m2")
        .await
        .expect_error(&XlRegMsg::join_by_id(&c), "cluster is full")
        .await;
    // Same ID under another name.
    let c2 = create(rc, "ids", 4).await;
    let id = NodeId::random();
    let mut s = Raw::go(rc).await;
    s.member(token("x", 3, Some(&id), &["127.0.0.1:1"])).await;
    s.call(&XlRegMsg::join_by_id(&c2)).await;
    let mut s = Raw::go(rc).await;
    s.member(token("y", 3, Some(&id), &["127.0.0.1:1"])).await;
    s.expect_error(
        &XlRegMsg::join_by_id(&c2),
        "cluster member id already in use",
    )
    .await;
    // No endpoints.
    let mut s = Raw::go(rc).await;
    s.member(token("z", 4, None, &[])).await;
    s.expect_error(
        &XlRegMsg::join_by_id(&c2),
        "cluster members must have at least one endPoint",
    )
    .await;
}

#[tokio::test]
async fn an_id_belongs_to_its_first_sig_key() {
    let srv = server().await;
    let rc = srv.regcred();
    let id = NodeId::random();
    Raw::go(rc)
        .await
        .member(token("a", 1, Some(&id), &[]))
        .await;
    Raw::go(rc)
        .await
        .member(token("a", 1, Some(&id), &[]))
        .await; // same key: a restart
    Raw::go(rc)
        .await
        .expect_error(
            &XlRegMsg::member(token("a", 2, Some(&id), &[])),
            "ID already registered to another key",
        )
        .await;
    Raw::go(rc)
        .await
        .expect_error(
            &XlRegMsg::member(token("a", 2, Some(&rc.id), &[])),
            "ID already in use",
        )
        .await;
}

#[tokio::test]
async fn a_restarted_member_rejoins_its_own_slot() {
    let srv = server().await;
    let rc = srv.regcred();
    let c = create(rc, "re", 2).await;
    let id = NodeId::random();
    for port in ["127.0.0.1:1", "127.0.0.1:2"] {
        let mut s = Raw::go(rc).await;
        s.member(token("same", 5, Some(&id), &[port])).await;
        assert_eq!(s.call(&XlRegMsg::join_by_id(&c)).await.op, Some(8));
        let r = s.call(&XlRegMsg::get_cluster(&c, Which::ALL)).await;
        assert_eq!(r.which, Some(1));
        assert_eq!(
            r.tokens[0].my_ends,
            vec![port.as_bytes().to_vec()],
            "token updated on re-join"
        );
    }
}

#[tokio::test]
async fn restart_on_the_same_data_dir_keeps_identity_clusters_and_members() {
    let dir = tempfile::tempdir().unwrap();
    let mk = || {
        let mut c = xlreg::server::ServerConfig::persistent(dir.path());
        c.hold = Duration::ZERO;
        c
    };
    let srv = Server::start(mk()).await.unwrap();
    let rc = srv.regcred().clone();
    let c = create(&rc, "durable", 3).await;
    join_member(&rc, &c, "m0", 1).await;
    join_member(&rc, &c, "m1", 2).await;
    srv.shutdown().await;
    let on_disk = xlreg::regcred::RegCred::load(dir.path().join("regCred.dat")).unwrap();
    assert_eq!(on_disk.id, rc.id);

    let srv = Server::start(mk()).await.unwrap();
    let rc2 = srv.regcred().clone();
    assert_eq!(
        (rc2.id, &rc2.comms_key),
        (rc.id, &rc.comms_key),
        "same identity after restart"
    );
    assert_eq!(
        create(&rc2, "durable", 9).await,
        c,
        "cluster remembered by name"
    );
    let mut s = registered(&rc2, "m2").await;
    s.call(&XlRegMsg::join_by_id(&c)).await;
    let r = s.call(&XlRegMsg::get_cluster(&c, Which::ALL)).await;
    assert_eq!(
        r.which,
        Some(0b111),
        "members from before the restart, plus the new one"
    );
    let names: Vec<_> = r.tokens.iter().map(|t| t.name.clone().unwrap()).collect();
    assert_eq!(names, vec![b"m0".to_vec(), b"m1".to_vec(), b"m2".to_vec()]);
    srv.shutdown().await;
}

#[tokio::test]
async fn second_server_on_a_data_dir_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _a = Server::start(xlreg::server::ServerConfig::persistent(dir.path()))
        .await
        .unwrap();
    let e = Server::start(xlreg::server::ServerConfig::persistent(dir.path()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
}

#[tokio::test]
async fn port_in_use_is_a_clear_error() {
    let a = server().await;
    let mut cfg = xlreg::server::ServerConfig::ephemeral();
    cfg.listen = a.local_addr();
    let e = Server::start(cfg).await.unwrap_err().to_string();
    assert!(e.contains(&a.local_addr().to_string()), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_members_with_2048_bit_keys_fit_go_client_reads() {
    let srv = server().await;
    let rc = srv.regcred().clone();
    let (ck, sk) = tokio::task::spawn_blocking(|| {
        (
            PrivateKey::generate(2048).unwrap(),
            PrivateKey::generate(2048).unwrap(),
        )
    })
    .await
    .unwrap();
    let c = create(&rc, "big64", 64).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (rc, ck, sk) = (rc.clone(), ck.clone(), sk.clone());
        tasks.push(tokio::spawn(async move {
            let eps = vec![
                format!("127.0.0.1:{}", 40000 + i),
                format!("127.0.0.1:{}", 41000 + i),
            ];
            let t = xlreg::wire::signed_token(
                &format!("node{i:02}"),
                0,
                Some(&NodeId::random()),
                &ck.public(),
                &sk,
                &eps,
            )
            .unwrap();
            let mut s = Raw::go(&rc).await;
            s.member(t).await;
            assert_eq!(s.call(&XlRegMsg::join_by_id(&c)).await.op, Some(8));
            s
        }));
    }
    let mut sessions = Vec::new();
    for t in tasks {
        sessions.push(t.await.unwrap());
    }
    // Fetch everything the way the Go client does: ask for what is missing.
    let s = &mut sessions[0];
    let mut have = Which(0);
    for _ in 0..10 {
        let want = Which::low_n(64).minus(have);
        if want.is_empty() {
            break;
        }
        let r = s.call(&XlRegMsg::get_cluster(&c, want)).await;
        assert_eq!(Which(r.which.unwrap()).count(), r.tokens.len());
        have = Which(have.0 | r.which.unwrap());
    }
    assert_eq!(have, Which::ALL, "all 64 members retrievable");
    assert!(
        s.reply_sizes.iter().all(|&n| n <= 16384),
        "reply sizes {:?}",
        s.reply_sizes
    );
    assert!(
        s.reply_sizes.len() >= 3,
        "64 × 2048-bit tokens need several ≤16 KiB replies"
    );
    // An xlreg client (length-prefixed framing) gets all 64 in one reply.
    let mut x = Raw::connect(&rc, EXT_VERSION).await;
    assert_eq!(x.reply_version, EXT_VERSION);
    x.member(token("reader", 6, None, &[])).await;
    let r = x.call(&XlRegMsg::get_cluster(&c, Which::ALL)).await;
    assert_eq!((r.which, r.tokens.len()), (Some(u64::MAX), 64));
    assert!(x.reply_sizes[1] > 16384);
}

#[tokio::test]
async fn held_get_cluster_returns_when_the_last_member_joins() {
    let srv = server_with(|c| c.hold = Duration::from_secs(5)).await;
    let rc = srv.regcred().clone();
    let c = create(&rc, "held", 2).await;
    let mut s = registered(&rc, "first").await;
    s.call(&XlRegMsg::join_by_id(&c)).await;
    s.send(&XlRegMsg::get_cluster(&c, Which::ALL)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    join_member(&rc, &c, "second", 2).await;
    let r = s.recv().await.unwrap();
    assert_eq!(r.which, Some(0b11));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered when the last member joined, not at the bound"
    );
}

#[tokio::test]
async fn held_get_cluster_answers_partially_at_the_bound() {
    let srv = server_with(|c| c.hold = Duration::from_millis(200)).await;
    let rc = srv.regcred().clone();
    let c = create(&rc, "held2", 3).await;
    let mut s = registered(&rc, "only").await;
    s.call(&XlRegMsg::join_by_id(&c)).await;
    let t = std::time::Instant::now();
    let r = s.call(&XlRegMsg::get_cluster(&c, Which::ALL)).await;
    assert_eq!(r.which, Some(1));
    assert!(t.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn hold_ms_zero_is_answered_at_once_in_xlreg_sessions_only() {
    let srv = server_with(|c| c.hold = Duration::from_secs(3)).await;
    let rc = srv.regcred().clone();
    let c = create(&rc, "nohold", 3).await;
    let at_once = XlRegMsg {
        hold_ms: Some(0),
        ..XlRegMsg::get_cluster(&c, Which::ALL)
    };
    // An xlreg client (length-prefixed framing) asks not to be held.
    let mut s = Raw::connect(&rc, EXT_VERSION).await;
    s.member(token("ext", 1, Some(&NodeId::random()), &["127.0.0.1:1"]))
        .await;
    s.call(&XlRegMsg::join_by_id(&c)).await;
    let t = std::time::Instant::now();
    let r = s.call(&at_once).await;
    assert_eq!(r.which, Some(1));
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "held {:?} although the client asked for no hold",
        t.elapsed()
    );
    // In a Go session the field is ignored: the request is held to the
    // server's bound like any Go GetCluster.
    let srv = server_with(|c| c.hold = Duration::from_millis(400)).await;
    let rc = srv.regcred().clone();
    let c = create(&rc, "nohold-go", 3).await;
    let mut s = registered(&rc, "go").await;
    s.call(&XlRegMsg::join_by_id(&c)).await;
    let t = std::time::Instant::now();
    let r = s
        .call(&XlRegMsg {
            hold_ms: Some(0),
            ..XlRegMsg::get_cluster(&c, Which::ALL)
        })
        .await;
    assert_eq!(r.which, Some(1));
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn idle_and_silent_connections_are_reclaimed() {
    let srv = server_with(|c| {
        c.handshake_timeout = Duration::from_millis(300);
        c.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let rc = srv.regcred();
    // Sends nothing at all.
    let mut silent = tokio::net::TcpStream::connect(rc.endpoints[0].as_str())
        .await
        .unwrap();
    // Handshakes, then goes quiet.
    let mut idle = Raw::go(rc).await;
    let mut b = [0u8; 4];
    let n = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::io::AsyncReadExt::read(&mut silent, &mut b),
    )
    .await
    .unwrap()
    .unwrap_or(0);
    assert_eq!(n, 0);
    idle.expect_closed().await;
}

#[tokio::test]
async fn version_0_hello_gets_the_go_version_and_ext_hello_gets_ours() {
    let srv = server().await;
    let rc = srv.regcred();
    assert_eq!(
        Raw::connect(rc, DecimalVersion(0)).await.reply_version,
        GO_SERVER_VERSION
    );
    assert_eq!(
        Raw::connect(rc, "1.9.24".parse().unwrap())
            .await
            .reply_version,
        GO_SERVER_VERSION
    );
    let s = Raw::connect(rc, EXT_VERSION).await;
    assert_eq!(s.reply_version, EXT_VERSION);
}

#[tokio::test]
async fn get_cluster_by_name_is_an_xlreg_extension() {
    let srv = server().await;
    let rc = srv.regcred();
    let c = create(rc, "named", 2).await;
    join_member(rc, &c, "m0", 1).await;
    let mut s = registered(rc, "reader").await;
    let by_name = XlRegMsg {
        cluster_id: None,
        cluster_name: Some(b"named".to_vec()),
        ..XlRegMsg::get_cluster(&c, Which::ALL)
    };
    let r = s.call(&by_name).await;
    assert_eq!(
        (r.op, r.cluster_id.clone(), r.which),
        (Some(10), Some(c.as_bytes().to_vec()), Some(1))
    );
    let unknown = XlRegMsg {
        cluster_name: Some(b"nope".to_vec()),
        ..by_name
    };
    s.expect_error(&unknown, "cannot find cluster with this name")
        .await;
}

#[tokio::test]
async fn legacy_replies_stay_within_the_limit_for_any_header_size() {
    // A tight limit makes the budget arithmetic visible: every reply, for a
    // 20-byte ID and for garbage 32-byte and 8-byte IDs of unknown clusters,
    // must fit; and tokens are cut, not the reply.
    let srv = server_with(|c| c.legacy_reply_limit = 1200).await;
    let rc = srv.regcred().clone();
    let c = create(&rc, "tight", 8).await;
    for i in 0..8 {
        join_member(&rc, &c, &format!("m{i}"), i).await;
    }
    let mut s = registered(&rc, "reader").await;
    let mut have = Which(0);
    while have != Which::low_n(8) {
        let r = s
            .call(&XlRegMsg::get_cluster(&c, Which::ALL.minus(have)))
            .await;
        assert!(!r.tokens.is_empty(), "no progress");
        have = Which(have.0 | r.which.unwrap());
    }
    assert!(
        s.reply_sizes.iter().skip(1).all(|&n| n <= 1200),
        "{:?}",
        s.reply_sizes
    );
}
