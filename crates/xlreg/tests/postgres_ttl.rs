//! Cluster TTLs on PostgreSQL behave as on SQLite: an expired cluster is
//! gone for every server at once, a GetCluster held on another server is
//! answered when it expires, and servers sweeping at once neither repeat
//! nor lose work.
//!
//! Each test makes its own database (`xlreg::testing::postgres::TestDb`).
//! Without `XLREG_TEST_POSTGRES` they print `SKIPPED:` and pass, unless
//! `XLREG_REQUIRE_POSTGRES=1` (CI), where they fail.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::registry::{backends, create_ttl, held, rec};
use xlreg::client::{
    boot, create_cluster, read_cluster, BootOptions, ClientOptions, ClusterRef, ClusterSpec,
};
use xlreg::registry::postgres::{PoolOptions, PostgresBackend};
use xlreg::registry::{
    Backend, BackendExt, ClusterTarget, Expire, Join, ListingOrder, ListingPage, Policy, RuleError,
};
use xlreg::server::ServerConfig;
use xlreg::testing::postgres::members;
use xlreg::testing::postgres::{PgGroup, TestDb};

fn listing() -> ListingPage {
    ListingPage {
        order: ListingOrder::ByName { after: None },
        limit: 100,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_cluster_is_invisible_to_every_server_before_any_sweep() {
    let Some(db) = TestDb::create("ttl_invisible").await else {
        return;
    };
    let b = backends(&db, 2, Policy::default()).await;
    let short = b[0].call(create_ttl("short", Some(300))).await.unwrap().id;
    let long = b[0].call(create_ttl("long", None)).await.unwrap().id;
    b[1].call(held(short, Duration::ZERO))
        .await
        .expect("live through the other server");
    tokio::time::sleep(Duration::from_millis(450)).await;

    let e = b[1].call(held(short, Duration::ZERO)).await.unwrap_err();
    assert!(e.to_string().contains("can't find cluster"), "{e}");
    let e = b[1]
        .call(Join {
            cluster: ClusterTarget::Name(b"short"[..].into()),
            record: rec(1),
            endpoints: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), RuleError::NoSuchName.to_string());
    b[1].call(held(long, Duration::ZERO))
        .await
        .expect("no TTL: never expires");
    let l = b[1].listing(listing()).await.unwrap();
    assert_eq!((l.total_clusters, l.clusters.clone()), (1, vec![long]));
    assert_eq!(b[0].counts().await.unwrap().1, 2, "not swept yet");

    // The sweep removes the rows; the name makes a new cluster.
    assert_eq!(b[1].call(Expire(10)).await.unwrap(), 1);
    assert_eq!(b[0].counts().await.unwrap().1, 1);
    let again = b[0].call(create_ttl("short", None)).await.unwrap().id;
    assert_ne!(again, short);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_default_ttl_and_activity_apply_on_postgres() {
    let Some(db) = TestDb::create("ttl_policy").await else {
        return;
    };
    let policy = Policy {
        cluster_ttl_ms: Some(600),
        ..Policy::default()
    };
    let b = backends(&db, 2, policy).await;
    let c = b[0].call(create_ttl("c", None)).await.unwrap().id;
    // Activity through either server restarts the clock: a join at 400 ms
    // keeps it alive past 600 ms.
    tokio::time::sleep(Duration::from_millis(400)).await;
    b[1].call(Join {
        cluster: ClusterTarget::Id(c),
        record: rec(1),
        endpoints: 1,
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    b[0].call(held(c, Duration::ZERO))
        .await
        .expect("the join restarted its clock");
    assert_eq!(b[1].call(Expire(10)).await.unwrap(), 0, "nothing expired");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        b[0].call(held(c, Duration::ZERO)).await.is_err(),
        "expired 600 ms after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sweepers_racing_remove_every_expired_cluster_exactly_once() {
    let Some(db) = TestDb::create("ttl_race").await else {
        return;
    };
    let b = backends(&db, 2, Policy::default()).await;
    const N: usize = 60;
    for i in 0..N {
        b[i % 2]
            .call(create_ttl(&format!("c{i:03}"), Some(200)))
            .await
            .unwrap();
    }
    let keep = b[0].call(create_ttl("keep", None)).await.unwrap().id;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sweep = |s: Arc<PostgresBackend>| async move {
        let mut total = 0;
        loop {
            match s.call(Expire(7)).await {
                Ok(0) => return total,
                Ok(n) => total += n,
                Err(e) => panic!("sweep failed: {e}"),
            }
        }
    };
    let (x, y) = tokio::join!(
        tokio::spawn(sweep(b[0].clone())),
        tokio::spawn(sweep(b[1].clone()))
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x + y, N, "every expired cluster counted once ({x} + {y})");
    assert_eq!(b[0].counts().await.unwrap().1, 1, "only `keep` is left");
    b[1].call(held(keep, Duration::ZERO)).await.unwrap();
}

async fn group(db: &TestDb) -> PgGroup {
    let cfg = ServerConfig {
        hold: Duration::from_secs(20),
        sweep_interval: Duration::from_millis(200),
        ..ServerConfig::ephemeral()
    };
    PgGroup::start(db.url(), 2, cfg, PoolOptions::default())
        .await
        .unwrap()
}

/// Server `i` alone: its clients cannot fail over to the other.
fn only(g: &PgGroup, i: usize) -> xlreg::regcred::RegCred {
    let mut rc = g.regcred_from(i);
    rc.endpoints.truncate(1);
    rc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_created_with_a_ttl_through_one_server_is_gone_through_the_other() {
    let Some(db) = TestDb::create("ttl_two_servers").await else {
        return;
    };
    let g = group(&db).await;
    let opts = ClientOptions::default();
    let spec = ClusterSpec::new("brief", 2).ttl(Some(Duration::from_secs(2)));
    let info = create_cluster(&only(&g, 0), &spec, &opts).await.unwrap();
    let reader = &members("m", 1)[0];
    let name = ClusterRef::Name("brief".into());
    read_cluster(&only(&g, 1), &name, reader, &opts)
        .await
        .expect("live through server B");
    // A read restarts the clock (on either server): still there after
    // more than half its TTL, gone once a whole TTL passed without one.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    read_cluster(&only(&g, 1), &ClusterRef::Id(info.id), reader, &opts)
        .await
        .expect("not expired early");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let gone = read_cluster(&only(&g, 1), &ClusterRef::Id(info.id), reader, &opts)
        .await
        .unwrap_err();
    assert!(gone.to_string().contains("can't find cluster"), "{gone}");
    let e = read_cluster(&only(&g, 1), &name, reader, &opts)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot find cluster"), "{e}");
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_getcluster_held_on_one_server_is_answered_when_the_cluster_expires() {
    let Some(db) = TestDb::create("ttl_held").await else {
        return;
    };
    let g = group(&db).await;
    let opts = ClientOptions::default();
    let spec = ClusterSpec::new("held", 3).ttl(Some(Duration::from_secs(2)));
    let info = create_cluster(&only(&g, 0), &spec, &opts).await.unwrap();
    let node = members("m", 1).remove(0);
    let rc = only(&g, 1);
    let started = Instant::now();
    let waiting = tokio::spawn(async move {
        let opts = BootOptions {
            wait: Some(Duration::from_secs(30)),
            ..BootOptions::default()
        };
        boot(&rc, &ClusterRef::Id(info.id), &node, &opts).await
    });
    let r = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("answered at expiry, not at the end of the hold")
        .unwrap();
    let e = r.expect_err("the cluster expired");
    assert!(e.to_string().contains("can't find cluster"), "{e}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(8),
        "answered {took:?} after joining; the TTL is 2 s, the hold 20 s"
    );
    g.shutdown().await;
}
