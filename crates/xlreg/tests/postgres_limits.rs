//! `max_clusters` on PostgreSQL: several servers on one database never
//! hold more live clusters than the limit between them, however their
//! Creates race, and a cluster that expired (swept or not) does not count.
//!
//! Each test makes its own database (`xlreg::testing::postgres::TestDb`).
//! Without `XLREG_TEST_POSTGRES` they print `SKIPPED:` and pass, unless
//! `XLREG_REQUIRE_POSTGRES=1` (CI), where they fail.

mod common;

use std::time::Duration;

use common::registry::{backends, create_ttl};
use xlreg::client::{create_cluster, ClientOptions, ClusterSpec};
use xlreg::registry::postgres::{PoolOptions, PostgresBackend};
use xlreg::registry::{
    Backend, BackendError, BackendExt, ListingOrder, ListingPage, Policy, RuleError,
};
use xlreg::server::ServerConfig;
use xlreg::testing::postgres::{PgGroup, TestDb};

/// The refusal text a client sees at the limit.
const LIMIT_TEXT: &str = "registry limit reached";

fn listing() -> ListingPage {
    ListingPage {
        order: ListingOrder::ByName { after: None },
        limit: 500,
    }
}

async fn live_clusters(b: &PostgresBackend) -> usize {
    b.listing(listing()).await.unwrap().total_clusters as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_racing_creates_end_with_exactly_max_clusters() {
    let Some(db) = TestDb::create("limit_servers").await else {
        return;
    };
    const MAX: usize = 4;
    const TRIES: usize = 12;
    let cfg = ServerConfig {
        max_clusters: Some(MAX),
        ..ServerConfig::ephemeral()
    };
    let g = PgGroup::start(db.url(), 2, cfg, PoolOptions::default())
        .await
        .unwrap();
    // Each client is pinned to one server: half the Creates go through
    // each, all at once.
    let tasks: Vec<_> = (0..TRIES)
        .map(|i| {
            let mut rc = g.regcred_from(i % 2);
            rc.endpoints.truncate(1);
            tokio::spawn(async move {
                let spec = ClusterSpec::new(format!("race{i:02}"), 2);
                create_cluster(&rc, &spec, &ClientOptions::default()).await
            })
        })
        .collect();
    let (mut made, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => made += 1,
            Err(e) => {
                assert!(e.to_string().contains(LIMIT_TEXT), "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!((made, refused), (MAX, TRIES - MAX));
    for s in &g.servers {
        let l = s.backend().listing(listing()).await.unwrap();
        assert_eq!(
            l.total_clusters as usize, MAX,
            "as seen through each server"
        );
    }
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_creates_racing_on_two_backends_never_pass_the_limit() {
    let Some(db) = TestDb::create("limit_backends").await else {
        return;
    };
    const MAX: usize = 7;
    const TRIES: usize = 40;
    let policy = Policy {
        max_clusters: Some(MAX),
        ..Policy::default()
    };
    let b = backends(&db, 2, policy).await;
    let tasks: Vec<_> = (0..TRIES)
        .map(|i| {
            let b = b[i % 2].clone();
            tokio::spawn(async move { b.call(create_ttl(&format!("c{i:02}"), None)).await })
        })
        .collect();
    let mut made = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(c) => made.push((format!("c{i:02}"), c.id)),
            Err(BackendError::Rule(RuleError::TooManyClusters(n))) => assert_eq!(n, MAX),
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(made.len(), MAX);
    assert_eq!(live_clusters(&b[0]).await, MAX);
    // At the limit, a Create of an existing name is still answered.
    let (name, id) = &made[0];
    assert_eq!(b[1].call(create_ttl(name, None)).await.unwrap().id, *id);
    let e = b[1].call(create_ttl("one-more", None)).await.unwrap_err();
    assert!(e.to_string().contains(LIMIT_TEXT), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_cluster_not_yet_swept_does_not_count() {
    let Some(db) = TestDb::create("limit_expired").await else {
        return;
    };
    let policy = Policy {
        max_clusters: Some(2),
        ..Policy::default()
    };
    let b = backends(&db, 2, policy).await;
    b[0].call(create_ttl("brief", Some(200))).await.unwrap();
    b[1].call(create_ttl("a", None)).await.unwrap();
    let e = b[1].call(create_ttl("b", None)).await.unwrap_err();
    assert!(e.to_string().contains(LIMIT_TEXT), "both live: {e}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // `brief` expired; no sweep ran, its row is still there.
    assert_eq!(b[0].counts().await.unwrap().1, 2, "not swept");
    b[1].call(create_ttl("b", None)).await.unwrap();
    assert_eq!(
        b[0].counts().await.unwrap().1,
        3,
        "b beside the expired row"
    );
    let e = b[0].call(create_ttl("c", None)).await.unwrap_err();
    assert!(e.to_string().contains(LIMIT_TEXT), "a and b live: {e}");
    // Its name makes a new cluster only when that fits too.
    let e = b[0].call(create_ttl("brief", None)).await.unwrap_err();
    assert!(e.to_string().contains(LIMIT_TEXT), "{e}");
}
