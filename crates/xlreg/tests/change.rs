//! Clusters that change, at the registry level, on both stores: a cluster
//! grows while watchers wait, members are evicted and replaced in their
//! slots, a member leaves, and every refusal names its reason. The same
//! scenario runs on the in-process SQLite store and on two PostgreSQL
//! servers sharing a database (a change through one wakes watchers on the
//! other, with LISTEN and with polling).
//!
//! Without `XLREG_TEST_POSTGRES` the PostgreSQL tests print `SKIPPED:`
//! and pass, unless `XLREG_REQUIRE_POSTGRES=1` (CI), where they fail.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::registry::{join_named, own_id, rec};
use xlreg::registry::postgres::{DbUrl, PoolOptions, PostgresBackend};
use xlreg::registry::{
    watch_held, Backend, BackendError, BackendExt, By, ClusterTarget, Create, DeleteByName, Evict,
    GetCluster, Join, Leave, ListingOrder, ListingPage, MemberRecord, MemberSlot, Policy,
    RegistryService, Resize, SqliteStore, Watch, Watched,
};
use xlreg::testing::postgres::TestDb;
use xlreg::wire::{NodeId, Which};

fn owner() -> NodeId {
    NodeId::from_bytes(&[0xaa; 20]).unwrap()
}

fn c() -> ClusterTarget {
    ClusterTarget::Name(b"c"[..].into())
}

async fn join(b: &dyn Backend, i: u32) -> usize {
    b.call(Join {
        cluster: c(),
        record: rec(i),
        endpoints: 1,
    })
    .await
    .unwrap()
    .index
}

async fn resize(b: &dyn Backend, size: u32, by: By) -> Result<u64, BackendError> {
    b.call(Resize {
        cluster: c(),
        size,
        by,
    })
    .await
}

async fn evict(b: &dyn Backend, member: MemberSlot, by: By) -> Result<u64, BackendError> {
    b.call(Evict {
        cluster: c(),
        member,
        by,
    })
    .await
}

async fn watch(b: &dyn Backend, known: u64, hold: Duration) -> Result<Watched, BackendError> {
    watch_held(
        b,
        &Watch {
            cluster: c(),
            known,
            hold,
        },
    )
    .await
}

/// The slots a watch saw, as member names by slot.
fn names(w: &Watched) -> Vec<(usize, String)> {
    // Each token field is `aa 01 LEN TOKEN`; the tokens here are short.
    let mut out = Vec::new();
    let mut rest = &w.selection.token_fields[..];
    for slot in w.selection.which.iter() {
        let len = rest[2] as usize;
        let token = String::from_utf8_lossy(&rest[3..3 + len]).into_owned();
        out.push((slot, token.trim_start_matches("token-of-").to_string()));
        rest = &rest[3 + len..];
    }
    out
}

/// Watch from `known` on until version `until`, returning every version
/// seen in order (a watcher may miss intermediate versions, never see one
/// twice or go back).
async fn watch_until(b: Arc<dyn Backend>, mut known: u64, until: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    while known < until {
        let w = watch(&*b, known, Duration::from_secs(10)).await.unwrap();
        assert!(w.version > known, "a hold of 10 s never passes here");
        known = w.version;
        seen.push(known);
    }
    seen
}

/// The whole scenario through `a` (writes) and `b` (watches; another
/// server, or the same backend).
async fn scenario(a: Arc<dyn Backend>, b: Arc<dyn Backend>) {
    let by_owner = By::Node(owner());
    a.call(Create {
        name: b"c".to_vec(),
        max_size: 3,
        attrs: 0,
        ep_count: 1,
        ttl_ms: None,
        owner: Some(owner()),
    })
    .await
    .unwrap();
    for i in 1..=3 {
        assert_eq!(join(&*a, i).await, i as usize - 1);
    }
    let w = watch(&*b, 0, Duration::ZERO).await.unwrap();
    assert_eq!(
        (w.version, w.max_size, w.selection.which),
        (4, 3, Which(0b111))
    );

    // Grow 3 -> 5 while two watchers wait; two new members join.
    let watchers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(watch_until(b.clone(), 4, 7)))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(resize(&*a, 5, by_owner).await.unwrap(), 5);
    assert_eq!(join(&*a, 4).await, 3);
    assert_eq!(join(&*a, 5).await, 4);
    for w in watchers {
        let seen = tokio::time::timeout(Duration::from_secs(20), w)
            .await
            .expect("watchers woken")
            .unwrap();
        assert!(seen.windows(2).all(|p| p[0] < p[1]), "in order: {seen:?}");
        assert_eq!(seen.last(), Some(&7), "{seen:?}");
    }
    let w = watch(&*b, 0, Duration::ZERO).await.unwrap();
    assert_eq!((w.version, w.max_size), (7, 5));

    // Evict slot 1; a new member takes slot 1; the others keep theirs.
    assert_eq!(evict(&*a, MemberSlot::Index(1), by_owner).await.unwrap(), 8);
    assert_eq!(join(&*a, 6).await, 1);
    let w = watch(&*b, 8, Duration::from_secs(10)).await.unwrap();
    assert_eq!(w.version, 9);
    assert_eq!(
        names(&w),
        [
            (0, "m1".to_string()),
            (1, "m6".into()),
            (2, "m3".into()),
            (3, "m4".into()),
            (4, "m5".into())
        ]
    );

    // Refusals say why.
    let text = |r: Result<u64, BackendError>| r.unwrap_err().to_string();
    assert_eq!(
        text(resize(&*a, 3, by_owner).await),
        "cannot shrink cluster to 3: slot 3 is held by member m4 (evict it first)"
    );
    assert_eq!(
        text(resize(&*a, 4, By::Node(rec(1).id)).await),
        "only the cluster's creator may resize or evict"
    );
    assert_eq!(
        text(evict(&*a, MemberSlot::Name(b"m2"[..].into()), By::Operator).await),
        "no member named m2 in this cluster"
    );
    assert_eq!(
        text(evict(&*a, MemberSlot::Index(7), by_owner).await),
        "no member in slot 7 of this cluster"
    );
    let leave = |by| Leave { cluster: c(), by };
    assert_eq!(
        a.call(leave(rec(2).id)).await.unwrap_err().to_string(),
        "not a member of this cluster"
    );

    // A leave frees its slot: GetCluster sees the hole.
    assert_eq!(a.call(leave(rec(3).id)).await.unwrap(), 10);
    let m = b
        .call(GetCluster {
            cluster: c(),
            which: Which::ALL,
            budget: 1 << 20,
            hold: Duration::ZERO,
        })
        .await
        .unwrap();
    assert_eq!((m.selection.which, m.complete), (Which(0b11011), false));
    // Shrinking over empty slots only: evict m5 (slot 4), then 5 -> 4 fits.
    evict(&*a, MemberSlot::Index(4), By::Operator)
        .await
        .unwrap();
    assert_eq!(resize(&*a, 4, By::Operator).await.unwrap(), 12);

    // A deleted cluster ends a watch with its error.
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { watch(&*b, 12, Duration::from_secs(10)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.call(DeleteByName(b"c".to_vec())).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the watcher is woken by the delete")
        .unwrap()
        .unwrap_err();
    assert_eq!(e.to_string(), "cannot find cluster with this name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_evict_replace_leave_and_watch_on_sqlite_and_a_restart_keeps_version_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let open = || {
        RegistryService::start(
            Box::new(SqliteStore::open(&path).unwrap()),
            own_id(),
            Policy::default(),
        )
        .unwrap()
    };
    let svc = open();
    let b: Arc<dyn Backend> = svc.clone();
    scenario(b.clone(), b).await;
    // A second cluster, changed, then the server restarts.
    svc.call(Create {
        name: b"c".to_vec(),
        max_size: 2,
        attrs: 0,
        ep_count: 1,
        ttl_ms: None,
        owner: Some(owner()),
    })
    .await
    .unwrap();
    join(&*svc, 1).await;
    join(&*svc, 2).await;
    evict(&*svc, MemberSlot::Index(0), By::Node(owner()))
        .await
        .unwrap();
    resize(&*svc, 4, By::Operator).await.unwrap();
    svc.shutdown().await;
    drop(svc);
    let svc = open();
    let (version, size, owner_kept, history, slots) = svc.with_registry(|r| {
        let c = r.cluster_by_name(b"c").unwrap();
        (
            c.version,
            c.max_size,
            c.owner,
            c.history()
                .map(|e| {
                    format!(
                        "{} {} {} {}",
                        e.version,
                        e.kind.as_str(),
                        e.detail,
                        e.by.as_str()
                    )
                })
                .collect::<Vec<_>>(),
            c.members().map(|(i, _)| i).collect::<Vec<_>>(),
        )
    });
    assert_eq!(
        (version, size, owner_kept, slots),
        (5, 4, Some(owner()), vec![1])
    );
    assert_eq!(
        history,
        [
            "1 create size 2 owner",
            "2 join slot 0 (m1) member",
            "3 join slot 1 (m2) member",
            "4 evict slot 0 (m1) owner",
            "5 resize 2 -> 4 admin"
        ]
    );
    // The hole is filled by the next join, after the restart too.
    assert_eq!(join(&*svc, 3).await, 0);
}

async fn pg(url: &DbUrl) -> Arc<dyn Backend> {
    Arc::new(
        PostgresBackend::connect(url, own_id(), &PoolOptions::default(), Default::default())
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_evict_replace_leave_on_postgres_with_watchers_on_the_other_server() {
    let Some(db) = TestDb::create("change_listen").await else {
        return;
    };
    scenario(pg(db.url()).await, pg(db.url()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_on_the_other_server_are_woken_by_polling_without_listen() {
    let Some(db) = TestDb::create("change_poll").await else {
        return;
    };
    let raw = db.raw_url();
    let sep = if raw.contains('?') { '&' } else { '?' };
    let url = DbUrl::parse(&format!("{raw}{sep}xlreg_listen=off&xlreg_poll_ms=50")).unwrap();
    scenario(pg(&url).await, pg(&url).await).await;
}

/// The history of cluster `c` as `b` lists it (the admin API's view):
/// `version kind detail` per entry.
async fn history(b: &dyn Backend) -> Vec<String> {
    let page = b
        .listing(ListingPage {
            order: ListingOrder::Named(b"c".to_vec()),
            limit: 1,
        })
        .await
        .unwrap();
    let c = page
        .registry
        .cluster_by_name(b"c")
        .expect("cluster c listed");
    c.history()
        .map(|e| format!("{} {} {}", e.version, e.kind.as_str(), e.detail))
        .collect()
}

/// One policy on every store: a member re-joining its slot with the token
/// it has changes nothing (same version, no history entry, no watcher
/// woken); with a new token it is a change (version + 1, a `rejoin`
/// entry, the watcher woken with the new token). Joins through `a`,
/// watches through `b`.
async fn rejoin_scenario(a: Arc<dyn Backend>, b: Arc<dyn Backend>) {
    a.call(common::registry::create(b"c", 2)).await.unwrap();
    assert_eq!(a.call(join_named(b"c", rec(1))).await.unwrap().index, 0);
    let joined = watch(&*b, 0, Duration::ZERO).await.unwrap().version;
    assert_eq!(joined, 2, "created, one join");
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { watch(&*b, joined, Duration::from_secs(10)).await }
    });

    // The same ID, name and token: the same slot, nothing changes.
    for _ in 0..2 {
        assert_eq!(a.call(join_named(b"c", rec(1))).await.unwrap().index, 0);
    }
    assert_eq!(watch(&*b, 0, Duration::ZERO).await.unwrap().version, joined);
    assert_eq!(
        history(&*a).await,
        ["1 create size 2", "2 join slot 0 (m1)"]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a same-token re-join woke a watcher"
    );

    // A new token: a change, which wakes the watcher.
    let renewed = MemberRecord {
        token: b"token-of-m1-renewed"[..].into(),
        ..rec(1)
    };
    assert_eq!(
        a.call(join_named(b"c", renewed.clone()))
            .await
            .unwrap()
            .index,
        0
    );
    let w = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the watcher is woken by the new token")
        .unwrap()
        .unwrap();
    assert_eq!(w.version, joined + 1);
    assert_eq!(names(&w), [(0, "m1-renewed".to_string())]);
    let h = history(&*a).await;
    assert_eq!(h.last().unwrap(), "3 rejoin slot 0 (m1)", "{h:?}");
    // The new token again: nothing more.
    a.call(join_named(b"c", renewed)).await.unwrap();
    assert_eq!(
        watch(&*b, 0, Duration::ZERO).await.unwrap().version,
        joined + 1
    );
    assert_eq!(history(&*a).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_is_a_change_only_with_a_new_token_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let svc = RegistryService::start(
        Box::new(SqliteStore::open(&dir.path().join("registry.db")).unwrap()),
        own_id(),
        Policy::default(),
    )
    .unwrap();
    let b: Arc<dyn Backend> = svc.clone();
    rejoin_scenario(b.clone(), b).await;
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_is_a_change_only_with_a_new_token_on_postgres_through_two_servers() {
    let Some(db) = TestDb::create("change_rejoin").await else {
        return;
    };
    rejoin_scenario(pg(db.url()).await, pg(db.url()).await).await;
}
