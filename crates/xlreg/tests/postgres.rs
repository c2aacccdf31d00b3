//! Several registry backends on one PostgreSQL database: the database
//! decides every rule, so racing servers cannot both win; held GetCluster
//! hears joins made through another server via LISTEN/NOTIFY.
//!
//! Each test makes its own database (`xlreg::testing::postgres::TestDb`).
//! Without `XLREG_TEST_POSTGRES` they print `SKIPPED:` and pass, unless
//! `XLREG_REQUIRE_POSTGRES=1` (CI), where they fail.

mod common;

use std::time::{Duration, Instant};

use common::registry::{backends, create, held as get, join, join_named, own_id, rec};
use xlreg::registry::postgres::{PoolOptions, PostgresBackend};
use xlreg::registry::{
    get_cluster_held, BackendError, BackendExt, ClusterTarget, Create, Delete, DeleteByName,
    GetCluster, Join, MemberRecord, Policy, Register, RuleError,
};
use xlreg::testing::postgres::members;
use xlreg::testing::postgres::TestDb;
use xlreg::wire::{NodeId, Which};

fn full() -> BackendError {
    BackendError::Rule(RuleError::Full)
}

fn is(e: &BackendError, want: &BackendError) -> bool {
    e.to_string() == want.to_string()
}

async fn race_for_64_slots(servers: usize) {
    let Some(db) = TestDb::create(&format!("race_for_64_slots_{servers}")).await else {
        return;
    };
    let b = backends(&db, servers, Policy::default()).await;
    let c = b[0].call(create(b"big", 64)).await.unwrap().id;
    let mut tasks = Vec::new();
    for i in 0..74u32 {
        let s = b[i as usize % servers].clone();
        tasks.push(tokio::spawn(async move { s.call(join(c, rec(i))).await }));
    }
    let (mut slots, mut refused) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(j) => slots.push(j.index),
            Err(e) if is(&e, &full()) => refused += 1,
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    slots.sort();
    assert_eq!(slots, (0..64).collect::<Vec<_>>(), "each slot won once");
    assert_eq!(refused, 10, "ten joins told the cluster is full");
    let mut views = Vec::new();
    for s in &b {
        let m = s.call(get(c, Duration::ZERO)).await.unwrap();
        assert!(m.complete);
        assert_eq!(m.selection.which, Which::low_n(64));
        views.push(m.selection.token_fields);
    }
    assert!(views.windows(2).all(|w| w[0] == w[1]), "identical views");
    let (_, clusters, members) = b[0].counts().await.unwrap();
    assert_eq!((clusters, members), (1, 64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_74_joins_of_a_64_slot_cluster_give_64_members_and_10_full() {
    race_for_64_slots(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_74_joins_of_a_64_slot_cluster_give_64_members_and_10_full() {
    race_for_64_slots(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_cluster_name_created_on_two_servers_at_once_gets_one_id() {
    let Some(db) = TestDb::create("one_name_one_id").await else {
        return;
    };
    let b = backends(&db, 2, Policy::default()).await;
    for round in 0..10 {
        let name = format!("same-{round}").into_bytes();
        let (x, y) = tokio::join!(
            b[0].call(Create {
                attrs: 1,
                ..create(&name, 4)
            }),
            b[1].call(Create {
                attrs: 2,
                ep_count: 2,
                ..create(&name, 8)
            })
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x, y, "round {round}: both servers answer the one cluster");
    }
    assert_eq!(b[0].counts().await.unwrap().1, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_id_registered_with_two_keys_through_two_servers_has_one_owner() {
    let Some(db) = TestDb::create("one_id_one_owner").await else {
        return;
    };
    let b = backends(&db, 2, Policy::default()).await;
    for round in 0..10u8 {
        let id = NodeId::from_bytes(&[round + 1; 20]).unwrap();
        let reg = |h: u8| Register {
            id: Some(id),
            sig_hash: [h; 32],
        };
        let (x, y) = tokio::join!(b[0].call(reg(1)), b[1].call(reg(2)));
        let won = [x.is_ok(), y.is_ok()];
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: {x:?} {y:?}"
        );
        let loser = if x.is_ok() { y } else { x };
        assert!(is(
            &loser.unwrap_err(),
            &BackendError::Rule(RuleError::IdTaken)
        ));
        let owner_key = if won[0] { 1 } else { 2 };
        assert_eq!(
            b[1 - won[0] as usize].call(reg(owner_key)).await.unwrap(),
            id,
            "the owner may register again on either server"
        );
    }
    let e = b[0]
        .call(Register {
            id: Some(own_id()),
            sig_hash: [1; 32],
        })
        .await
        .unwrap_err();
    assert!(
        is(&e, &BackendError::Rule(RuleError::IdInUse)),
        "the registry's own ID is not a member's: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_held_on_server_a_is_answered_within_100ms_of_the_last_join_on_b() {
    let Some(db) = TestDb::create("held_across_servers").await else {
        return;
    };
    let b = backends(&db, 2, Policy::default()).await;
    let c = b[0].call(create(b"held", 3)).await.unwrap().id;
    for i in 0..2 {
        b[0].call(join(c, rec(i))).await.unwrap();
    }
    let a = b[0].clone();
    let held = tokio::spawn(async move {
        let m = get_cluster_held(&*a, &get(c, Duration::from_secs(10))).await;
        (m, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "held while a member is missing");
    b[1].call(join(c, rec(2))).await.unwrap();
    let joined = Instant::now();
    let (m, answered) = held.await.unwrap();
    assert_eq!(m.unwrap().selection.which, Which(0b111));
    let lag = answered.saturating_duration_since(joined);
    assert!(
        lag < Duration::from_millis(100),
        "answered {lag:?} after the join"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_through_one_server_wakes_a_get_held_on_the_other_and_frees_the_name() {
    let Some(db) = TestDb::create("delete_across_servers").await else {
        return;
    };
    let b = backends(&db, 2, Policy::default()).await;
    let c = b[0].call(create(b"doomed", 3)).await.unwrap().id;
    b[0].call(join(c, rec(0))).await.unwrap();
    let a = b[0].clone();
    let held = tokio::spawn(async move {
        let m = get_cluster_held(&*a, &get(c, Duration::from_secs(10))).await;
        (m, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "held while members are missing");
    assert_eq!(
        b[1].call(DeleteByName(b"doomed".to_vec())).await.unwrap(),
        c
    );
    let deleted = Instant::now();
    let (m, answered) = held.await.unwrap();
    let err = m.expect_err("a held GetCluster of a deleted cluster gets an error");
    assert!(err.to_string().contains("find cluster"), "{err}");
    let lag = answered.saturating_duration_since(deleted);
    assert!(
        lag < Duration::from_secs(1),
        "woken {lag:?} after the delete"
    );
    // Gone for every op on both servers.
    for s in &b {
        let e = s.call(get(c, Duration::ZERO)).await.unwrap_err();
        assert!(e.to_string().contains("find cluster"), "{e}");
        let e = s.call(join(c, rec(1))).await.unwrap_err();
        assert!(e.to_string().contains("find cluster"), "{e}");
    }
    let e = b[0]
        .call(DeleteByName(b"doomed".to_vec()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("find cluster"), "{e}");
    // The name is free: a new cluster with a new ID.
    let again = b[0].call(create(b"doomed", 2)).await.unwrap().id;
    assert_ne!(again, c);
    assert_eq!(
        b[1].call(join_named(b"doomed", rec(5)))
            .await
            .unwrap()
            .index,
        0
    );
    let (_, clusters, members) = b[1].counts().await.unwrap();
    assert_eq!((clusters, members), (1, 1), "the deleted rows are gone");
    // The wire Delete: refused to a non-member, done for a member.
    let by = |r: MemberRecord| Delete {
        cluster: ClusterTarget::Name(b"doomed".as_slice().into()),
        by: r.id,
    };
    let e = b[0].call(by(rec(6))).await.unwrap_err();
    assert!(e.to_string().contains("only a member"), "{e}");
    assert_eq!(b[0].call(by(rec(5))).await.unwrap(), again);
    let e = b[1].call(join(again, rec(6))).await.unwrap_err();
    assert!(e.to_string().contains("find cluster"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejoin_through_the_other_server_keeps_the_slot_and_replaces_the_token() {
    let Some(db) = TestDb::create("rejoin_keeps_slot").await else {
        return;
    };
    let b = backends(&db, 2, Policy::default()).await;
    let c = b[0].call(create(b"r", 2)).await.unwrap().id;
    b[0].call(join_named(b"r", rec(0))).await.unwrap();
    b[0].call(join_named(b"r", rec(1))).await.unwrap();
    let mut again = rec(0);
    again.token = b"new-token".to_vec().into();
    let j = b[1].call(join(c, again)).await.unwrap();
    assert_eq!(j.index, 0, "same slot even though the cluster is full");
    let snap = b[1].snapshot().await.unwrap();
    let cl = snap.cluster(&c).unwrap();
    assert_eq!(&*cl.member(0).unwrap().token, b"new-token");
    let e = b[1].call(join(c, rec(7))).await.unwrap_err();
    assert!(is(&e, &full()), "{e}");
    let e = b[1].call(join_named(b"nope", rec(7))).await.unwrap_err();
    assert!(is(&e, &BackendError::Rule(RuleError::NoSuchName)), "{e}");
    let e = b[1]
        .call(join(NodeId::from_bytes(&[9; 20]).unwrap(), rec(7)))
        .await
        .unwrap_err();
    assert!(is(&e, &BackendError::Rule(RuleError::NoSuchId)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_another_registry_identity_is_refused_and_migration_is_idempotent() {
    let Some(db) = TestDb::create("identity_refused").await else {
        return;
    };
    let _first = backends(&db, 1, Policy::default()).await;
    let _second = backends(&db, 1, Policy::default()).await; // migrating again is a no-op
    let other = NodeId::from_bytes(&[0x11; 20]).unwrap();
    let e = PostgresBackend::connect(db.url(), other, &PoolOptions::default(), Default::default())
        .await
        .unwrap_err();
    let e = format!("{e}: {}", e.cause);
    assert!(e.contains("belongs to another registry"), "{e}");
    assert!(e.contains(&own_id().to_string()), "{e}");
}

#[tokio::test]
async fn a_wrong_password_fails_with_the_url_redacted() {
    let Some(db) = TestDb::create("wrong_password").await else {
        return;
    };
    let raw = db.raw_url().to_string();
    // Replace the password (or add one) with a marker we can look for.
    let bad = match raw
        .split_once("://")
        .and_then(|(s, r)| r.split_once('@').map(|(u, h)| (s, u, h)))
    {
        Some((s, u, h)) => format!("{s}://{}:Sekr1tMarker@{h}", u.split(':').next().unwrap()),
        None => panic!("test URL must be postgres://user@host/db"),
    };
    let url = xlreg::registry::postgres::DbUrl::parse(&bad).unwrap();
    // .ci/postgres.sh makes TCP logins check passwords (scram-sha-256).
    let e = PostgresBackend::connect(&url, own_id(), &PoolOptions::default(), Default::default())
        .await
        .expect_err("a wrong password must be refused");
    let e = format!("{e}: {}", e.cause);
    assert!(!e.contains("Sekr1tMarker"), "{e}");
    assert!(e.contains(":***@"), "{e}");
    assert!(e.contains("cannot connect"), "{e}");
    assert!(!format!("{url}").contains("Sekr1tMarker"));
}

// ---- Real servers and clients on loopback ------------------------------

use xlreg::client::{boot, create_cluster, BootOptions, ClientOptions, ClusterRef, ClusterSpec};
use xlreg::server::ServerConfig;
use xlreg::testing::postgres::PgGroup;

async fn group(db: &TestDb, n: usize) -> PgGroup {
    PgGroup::start(
        db.url(),
        n,
        ServerConfig::ephemeral(),
        PoolOptions::default(),
    )
    .await
    .unwrap()
}

async fn boot_through_alternating_servers(servers: usize) {
    let Some(db) = TestDb::create(&format!("boot_alternating_{servers}")).await else {
        return;
    };
    let g = group(&db, servers).await;
    let info = create_cluster(
        &g.regcred,
        &ClusterSpec::new("ci-farm", 64),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    let nodes = members("m", 74);
    let opts = BootOptions {
        wait: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, node) in nodes.into_iter().enumerate() {
        let (rc, opts) = (g.regcred_from(i % servers), opts.clone());
        tasks.spawn(async move {
            let r = boot(&rc, &ClusterRef::Id(info.id), &node, &opts).await;
            (rc.endpoints[0].clone(), r)
        });
    }
    let (mut views, mut refused) = (Vec::new(), 0);
    let mut through = std::collections::BTreeMap::<String, usize>::new();
    while let Some(r) = tasks.join_next().await {
        let (first, r) = r.unwrap();
        match r {
            Ok(v) => {
                *through.entry(first).or_default() += 1;
                views.push(v);
            }
            Err(e) if e.server_text() == Some("cluster is full") => refused += 1,
            Err(e) => panic!("unexpected boot failure: {e}"),
        }
    }
    assert_eq!(views.len(), 64, "exactly 64 members");
    assert_eq!(refused, 10, "10 joins told `cluster is full`");
    assert_eq!(
        through.len(),
        servers,
        "members booted through every server: {through:?}"
    );
    xlreg::testing::check_views(&views, 64).expect("identical, complete views");
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_members_booting_through_alternating_servers_fill_64_slots_and_10_are_refused()
{
    boot_through_alternating_servers(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_members_booting_through_alternating_servers_fill_64_slots_and_10_are_refused(
) {
    boot_through_alternating_servers(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_fails_over_to_the_next_listed_server_when_the_first_is_down() {
    let Some(db) = TestDb::create("client_failover").await else {
        return;
    };
    let mut g = group(&db, 2).await;
    let info = create_cluster(
        &g.regcred,
        &ClusterSpec::new("fo", 2),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    // Stop the first listed server: its port now refuses connections.
    let first = g.servers.remove(0);
    first.shutdown().await;
    let nodes = members("fo", 2);
    let started = std::time::Instant::now();
    let opts = BootOptions::default();
    let c = ClusterRef::Id(info.id);
    let (a, b) = tokio::join!(
        boot(&g.regcred, &c, &nodes[0], &opts),
        boot(&g.regcred, &c, &nodes[1], &opts)
    );
    let views = [
        a.expect("boots through the second server"),
        b.expect("boots through the second server"),
    ];
    xlreg::testing::check_views(&views, 2).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Pinned to the dead server with --address: no failover.
    let pinned = BootOptions {
        client: ClientOptions {
            address: Some(g.regcred.endpoints[0].clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let e = boot(&g.regcred, &ClusterRef::Id(info.id), &nodes[0], &pinned)
        .await
        .unwrap_err();
    assert!(e.is_transport(), "{e}");
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_listen_connection_is_restored_and_held_requests_re_check() {
    let Some(db) = TestDb::create("listen_lost").await else {
        return;
    };
    let own = NodeId::from_bytes(&[0xee; 20]).unwrap();
    let a = PostgresBackend::connect(db.url(), own, &PoolOptions::default(), Default::default())
        .await
        .unwrap();
    let b = PostgresBackend::connect(db.url(), own, &PoolOptions::default(), Default::default())
        .await
        .unwrap();
    let c = a
        .call(Create {
            name: b"lost".to_vec(),
            max_size: 2,
            attrs: 0,
            ep_count: 1,
            ttl_ms: None,
            owner: None,
        })
        .await
        .unwrap()
        .id;
    let join = |i| Join {
        cluster: ClusterTarget::Id(c),
        record: rec(i),
        endpoints: 1,
    };
    a.call(join(1)).await.unwrap();
    let req = GetCluster {
        cluster: ClusterTarget::Id(c),
        which: Which::ALL,
        budget: 1 << 20,
        hold: Duration::from_secs(20),
    };
    let started = Instant::now();
    let (held, ()) = tokio::join!(get_cluster_held(&a, &req), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Cut every LISTEN connection of this database (a's and b's), then
        // join through b at once: a may not be listening when it commits.
        let (client, conn) = db
            .url()
            .config()
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let n = client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND application_name = $2",
                &[&db.name(), &xlreg::registry::postgres::APPLICATION_NAME],
            )
            .await
            .unwrap()
            .len();
        assert_eq!(n, 2, "one LISTEN connection per backend");
        let deadline = Instant::now() + Duration::from_secs(5);
        while a.is_listening() {
            assert!(Instant::now() < deadline, "the cut was not noticed");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        b.call(join(2)).await.unwrap();
    });
    let held = held.unwrap();
    assert!(held.complete, "the held request saw the join");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}: re-checked on re-subscribe, not at the 20 s bound",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.is_listening() && b.is_listening()) {
        assert!(Instant::now() < deadline, "LISTEN not restored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_xlreg_is_refused_with_both_versions() {
    let Some(db) = TestDb::create("schema_too_new").await else {
        return;
    };
    drop(backends(&db, 1, Policy::default()).await);
    let (client, conn) = db
        .url()
        .config()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("INSERT INTO xlreg_schema_migrations(version) VALUES (99)")
        .await
        .unwrap();
    let e = PostgresBackend::connect(
        db.url(),
        own_id(),
        &PoolOptions::default(),
        Default::default(),
    )
    .await
    .unwrap_err();
    let text = format!("{e}: {}", e.cause);
    assert!(text.contains("version 99 is newer"), "{text}");
    assert!(
        text.contains(&format!(
            "({})",
            xlreg::registry::postgres::MIGRATIONS.len()
        )),
        "{text}"
    );
}

#[tokio::test]
async fn a_database_at_schema_version_1_is_migrated_in_place_and_keeps_its_rows() {
    let Some(db) = TestDb::create("migrate_v1").await else {
        return;
    };
    let (client, conn) = db
        .url()
        .config()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // A database as the first release left it: migration 1 and one cluster.
    client
        .batch_execute(&format!(
            "CREATE TABLE xlreg_schema_migrations(version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now());
             {}
             INSERT INTO xlreg_schema_migrations(version) VALUES (1);
             INSERT INTO xlreg_ids(id, kind) VALUES ('\\x{own}', 0), ('\\x{c}', 1);
             INSERT INTO xlreg_clusters(id, name, attrs, max_size, ep_count)
                 VALUES ('\\x{c}', 'old', 0, 2, 1);",
            xlreg::registry::postgres::MIGRATIONS[0],
            own = own_id().to_hex(),
            c = "11".repeat(20),
        ))
        .await
        .unwrap();
    let b = backends(&db, 1, Policy::default()).await;
    let v: i32 = client
        .query_one("SELECT max(version) FROM xlreg_schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v as usize, xlreg::registry::postgres::MIGRATIONS.len());
    let old = b[0].call(create(b"old", 8)).await.unwrap();
    assert_eq!(
        old.id.to_hex(),
        "11".repeat(20),
        "the existing cluster is kept"
    );
    assert_eq!(old.max_size, 2);
    b[0].call(join_named(b"old", rec(1))).await.unwrap();
}

/// One HTTP call (blocking client on the blocking pool): status and body.
async fn http_call(method: &str, url: String, bearer: Option<&str>) -> (u16, String) {
    let (method, bearer) = (method.to_string(), bearer.map(String::from));
    tokio::task::spawn_blocking(move || {
        let mut req = ureq::request(&method, &url);
        if let Some(b) = bearer {
            req = req.set("Authorization", &format!("Bearer {b}"));
        }
        match req.call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("{method} {url}: {e}"),
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_api_of_a_postgres_server_lists_and_deletes_a_cluster_made_through_another() {
    use xlreg::http::{AdminToken, HttpConfig, HttpServer};
    let Some(db) = TestDb::create("admin_api_list").await else {
        return;
    };
    let g = group(&db, 2).await;
    let info = create_cluster(
        &g.regcred_from(0),
        &ClusterSpec::new("listed-on-pg", 5),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    let secret = "test-token-0123456789abcdef";
    let token = AdminToken::from_secret(secret, std::path::Path::new("<test>")).unwrap();
    let h = HttpServer::start(
        HttpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token,
        },
        &g.servers[1],
    )
    .await
    .unwrap();
    let base = format!("http://{}", h.local_addr());
    let (code, body) = http_call("GET", format!("{base}/api/clusters"), None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("listed-on-pg"), "{body}");
    assert!(body.contains(&info.id.to_hex()), "{body}");
    let (code, body) = http_call("GET", format!("{base}/api/clusters/listed-on-pg"), None).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_call("GET", format!("{base}/api/stats"), None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"clusters\":1"), "{body}");
    let (code, body) = http_call("GET", format!("{base}/"), None).await;
    assert_eq!(code, 200);
    assert!(
        body.contains("listed-on-pg"),
        "status page lists it: {body}"
    );
    let (code, _) = http_call("DELETE", format!("{base}/api/clusters/listed-on-pg"), None).await;
    assert_eq!(code, 401, "delete without the token");
    let (code, body) = http_call(
        "DELETE",
        format!("{base}/api/clusters/listed-on-pg"),
        Some(secret),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_call("GET", format!("{base}/api/clusters"), None).await;
    assert_eq!(code, 200);
    assert!(!body.contains("listed-on-pg"), "{body}");
    let (code, body) = http_call("GET", format!("{base}/api/stats"), None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"clusters\":0"), "{body}");
    h.shutdown().await;
    g.shutdown().await;
}
