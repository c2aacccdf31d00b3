//! PostgreSQL restarted under running servers: requests during the outage
//! get the storage-failure Error and change nothing; afterwards the servers
//! serve again and hear each other's joins (LISTEN re-subscribed) without
//! a restart of their own.
//!
//! Its own test binary: restarting the database would disturb the other
//! PostgreSQL tests if they ran beside it. Needs `XLREG_PG_BIN` and
//! `XLREG_PG_DATA` (exported by `.ci/postgres.sh`) to run `pg_ctl` as the
//! `postgres` user.

use std::process::Command;
use std::time::{Duration, Instant};

use xlreg::client::{
    boot, create_cluster, BootOptions, ClientOptions, ClusterRef, ClusterSpec, NodeIdentity,
    STORAGE_FAILURE,
};
use xlreg::registry::postgres::{PoolOptions, PostgresBackend};
use xlreg::registry::{
    get_cluster_held, BackendExt, ClusterTarget, Create, GetCluster, Join, MemberRecord,
};
use xlreg::server::ServerConfig;
use xlreg::testing::keys::{generate_keys, KeyGen};
use xlreg::testing::postgres::{PgGroup, TestDb, REQUIRE_VAR};
use xlreg::wire::{NodeId, Which};

fn pg_ctl(action: &str) {
    let bin = std::env::var("XLREG_PG_BIN").unwrap();
    let data = std::env::var("XLREG_PG_DATA").unwrap();
    let cmd = format!("'{bin}/pg_ctl' -D '{data}' -w -t 60 -m fast {action}");
    let st = Command::new("su")
        .args(["postgres", "-s", "/bin/sh", "-c", &cmd])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run su postgres -c pg_ctl");
    assert!(st.success(), "pg_ctl {action} failed: {st}");
}

fn can_restart() -> bool {
    if std::env::var("XLREG_PG_BIN").is_ok() && std::env::var("XLREG_PG_DATA").is_ok() {
        return true;
    }
    if std::env::var(REQUIRE_VAR).as_deref() == Ok("1") {
        panic!("XLREG_PG_BIN/XLREG_PG_DATA unset but {REQUIRE_VAR}=1 (source .ci/postgres.sh)");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: postgres restart test: XLREG_PG_BIN/XLREG_PG_DATA unset (source .ci/postgres.sh)"
    );
    false
}

fn node(name: &str, keys: &[xlreg::wire::PrivateKey], port: u16) -> NodeIdentity {
    NodeIdentity::from_keys(
        name,
        NodeId::random(),
        keys[0].clone(),
        keys[1].clone(),
        vec![format!("127.0.0.1:{port}")],
    )
    .unwrap()
}

fn rec(i: u8) -> MemberRecord {
    MemberRecord {
        id: NodeId::from_bytes(&[i; 20]).unwrap(),
        name: vec![b'm', i].into(),
        token: vec![i; 8].into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_recover_from_a_postgres_restart_without_restarting() {
    let Some(db) = TestDb::create("postgres_restart").await else {
        return;
    };
    if !can_restart() {
        return;
    }
    let g = PgGroup::start(
        db.url(),
        2,
        ServerConfig::ephemeral(),
        PoolOptions::default(),
    )
    .await
    .unwrap();
    let own = g.regcred.id;
    let raw: Vec<PostgresBackend> = vec![
        PostgresBackend::connect(db.url(), own, &PoolOptions::default(), Default::default())
            .await
            .unwrap(),
        PostgresBackend::connect(db.url(), own, &PoolOptions::default(), Default::default())
            .await
            .unwrap(),
    ];
    let keys = generate_keys(2, 1024, KeyGen::Fast, 2, &|| {}).unwrap();
    let client = ClientOptions::default();
    create_cluster(&g.regcred, &ClusterSpec::new("before", 2), &client)
        .await
        .unwrap();

    // Down: a request gets the storage-failure Error, nothing is applied.
    pg_ctl("stop");
    let e = create_cluster(&g.regcred, &ClusterSpec::new("during", 2), &client)
        .await
        .unwrap_err();
    assert_eq!(e.server_text(), Some(STORAGE_FAILURE), "{e}");
    pg_ctl("start");

    // Up again: the same servers serve (the pools reconnect).
    let deadline = Instant::now() + Duration::from_secs(20);
    let info = loop {
        match create_cluster(&g.regcred, &ClusterSpec::new("after", 2), &client).await {
            Ok(i) => break i,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("servers did not recover: {e}"),
        }
    };
    let snap = raw[0].snapshot().await.unwrap();
    let names: Vec<&[u8]> = snap.clusters().map(|c| &*c.name).collect();
    assert!(
        !names.contains(&&b"during"[..]),
        "nothing applied during the outage"
    );
    assert_eq!(names.len(), 2, "{names:?}");
    let (a, b) = (node("a", &keys, 1), node("b", &keys, 2));
    let opts = BootOptions::default();
    let c = ClusterRef::Id(info.id);
    let (rc0, rc1) = (g.regcred_from(0), g.regcred_from(1));
    let (va, vb) = tokio::join!(boot(&rc0, &c, &a, &opts), boot(&rc1, &c, &b, &opts));
    xlreg::testing::check_views(&[va.unwrap(), vb.unwrap()], 2).unwrap();

    // LISTEN re-subscribed: a held GetCluster on one backend hears a join
    // on the other within 100 ms.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(raw[0].is_listening() && raw[1].is_listening()) {
        assert!(Instant::now() < deadline, "LISTEN not restored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = raw[0]
        .call(Create {
            name: b"held-after".to_vec(),
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
    raw[0].call(join(1)).await.unwrap();
    let req = GetCluster {
        cluster: ClusterTarget::Id(c),
        which: Which::ALL,
        budget: 1 << 20,
        hold: Duration::from_secs(10),
    };
    let (held, joined) = tokio::join!(
        async {
            let m = get_cluster_held(&raw[0], &req).await.unwrap();
            (m, Instant::now())
        },
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            raw[1].call(join(2)).await.unwrap();
            Instant::now()
        }
    );
    assert!(held.0.complete);
    let lag = held.1.saturating_duration_since(joined);
    assert!(
        lag < Duration::from_millis(100),
        "answered {lag:?} after the join"
    );
    g.shutdown().await;
}
