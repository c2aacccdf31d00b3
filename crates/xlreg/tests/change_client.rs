//! Clusters that change (issue 23) end to end, through the client library
//! and the harness: grow while watchers wait, replace a member, leave,
//! refusals, and a watch that ends when the cluster is deleted.
//!
//! Every scenario runs twice: on a SQLite registry (a data directory), and
//! on a group of two servers sharing one PostgreSQL database, where the
//! cluster is changed through server 0 and watched through server 1 (a
//! change through one server wakes watchers on the other). The PostgreSQL
//! runs need `XLREG_TEST_POSTGRES`; without it they print `SKIPPED:` and
//! pass, unless `XLREG_REQUIRE_POSTGRES=1` (CI).

#[macro_use]
mod common;

use std::time::Duration;

use xlreg::client::{
    boot, evict, leave, read_cluster, reader_identity, resize, BootOptions, ClientError,
    ClientOptions, ClusterRef, ClusterView, MemberRef, NodeIdentity, NodeOptions, Session,
    ViewChange, Watch,
};
use xlreg::regcred::RegCred;
use xlreg::registry::postgres::PoolOptions;
use xlreg::server::ServerConfig;
use xlreg::testing::postgres::{PgGroup, TestDb};
use xlreg::testing::{LaunchError, LaunchOptions, LocalCluster, LocalRegistry};

/// Where a scenario runs.
struct Setup {
    /// Where clusters are launched and changed.
    rc: RegCred,
    /// Where watchers watch: the other server of a PostgreSQL group.
    watch_rc: RegCred,
    _keep: Keep,
}

#[allow(dead_code, clippy::large_enum_variant)] // held only to keep the servers running
enum Keep {
    Sqlite(LocalRegistry, tempfile::TempDir),
    Postgres(PgGroup, TestDb),
}

async fn sqlite() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::start_with(ServerConfig {
        key_bits: 1024,
        ..ServerConfig::persistent(dir.path().join("data"))
    })
    .await
    .unwrap();
    let rc = reg.regcred().clone();
    Setup {
        rc: rc.clone(),
        watch_rc: rc,
        _keep: Keep::Sqlite(reg, dir),
    }
}

async fn postgres(test: &str) -> Option<Setup> {
    let db = TestDb::create(test).await?;
    let g = PgGroup::start(
        db.url(),
        2,
        ServerConfig::ephemeral(),
        PoolOptions::default(),
    )
    .await
    .unwrap();
    let only = |i: usize| {
        let mut rc = g.regcred_from(i);
        rc.endpoints.truncate(1);
        rc
    };
    Some(Setup {
        rc: only(0),
        watch_rc: only(1),
        _keep: Keep::Postgres(g, db),
    })
}

on_both_stores!(
    grow_3_to_5_while_watchers_wait_two_join_and_every_watcher_sees_versions_in_order,
    replacing_member_1_keeps_the_other_members_slots,
    a_leave_frees_a_slot_that_the_next_member_takes,
    refusals_name_the_rule_and_change_nothing,
    a_watch_ends_when_the_cluster_is_deleted,
);

async fn launch(s: &Setup, size: u32) -> LocalCluster {
    LocalCluster::launch_with(LaunchOptions {
        size,
        endpoints: 1,
        regcred: Some(s.rc.clone()),
        ..LaunchOptions::default()
    })
    .await
    .unwrap()
}

fn opts() -> ClientOptions {
    ClientOptions::default()
}

async fn watcher(s: &Setup, c: &LocalCluster) -> Watch {
    Watch::new(
        &s.watch_rc,
        ClusterRef::Id(c.id()),
        reader_identity().await.unwrap(),
        opts(),
    )
}

/// Views from `w` until one satisfies `last` (at most 30 s).
async fn views_until(mut w: Watch, last: impl Fn(&ClusterView) -> bool) -> Vec<ClusterView> {
    let mut seen = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(v) = w.next().await {
            let v = v.unwrap();
            let done = last(&v);
            seen.push(v);
            if done {
                return;
            }
        }
        panic!("the watch ended after {} views", seen.len());
    })
    .await;
    let versions: Vec<u64> = seen.iter().map(ClusterView::version).collect();
    r.unwrap_or_else(|_| panic!("no final view within 30 s; versions seen: {versions:?}"));
    w.close().await;
    seen
}

fn slot_ids(v: &ClusterView) -> Vec<(usize, xlreg::wire::NodeId)> {
    v.members.iter().map(|m| (m.index, m.id)).collect()
}

async fn grow_3_to_5_while_watchers_wait_two_join_and_every_watcher_sees_versions_in_order(
    s: Setup,
) {
    let mut c = launch(&s, 3).await;
    let before = slot_ids(c.view());
    // Two watchers, each past the cluster as launched: their next request
    // is held until the resize.
    let mut tasks = Vec::new();
    let mut launched = 0;
    for _ in 0..2 {
        let mut w = watcher(&s, &c).await;
        let first = w.next().await.unwrap().unwrap();
        assert_eq!((first.members.len(), first.max_size), (3, 3));
        // Created (1), three joins.
        assert_eq!(first.version(), 4);
        launched = first.version();
        tasks.push(tokio::spawn(views_until(w, |v| v.members.len() == 5)));
    }
    let version = c.resize(5).await.unwrap();
    // The resize, then two joins.
    assert_eq!(version, launched + 3);
    for t in tasks {
        let seen = t.await.unwrap();
        let versions: Vec<u64> = seen.iter().map(ClusterView::version).collect();
        assert!(
            versions.windows(2).all(|p| p[0] < p[1]),
            "versions out of order: {versions:?}"
        );
        assert!(versions[0] > launched, "{versions:?}");
        assert_eq!(*versions.last().unwrap(), version, "{versions:?}");
        for v in &seen {
            assert_eq!(v.max_size, 5, "version {}", v.version());
            // Each version after the resize is one more member.
            assert_eq!(
                v.members.len() as u64,
                3 + (v.version() - launched - 1),
                "version {}",
                v.version()
            );
            assert_eq!(v.self_index, ClusterView::NOT_A_MEMBER);
        }
    }
    // Every member, old and new, saw the final version; the old three kept
    // their slots, the new two took slots 3 and 4.
    assert_eq!(c.members.len(), 5);
    for m in &c.members {
        assert_eq!(m.view.version(), version, "{}", m.identity.name);
        assert!(m.view.is_complete());
        assert_eq!(slot_ids(&m.view)[..3], before[..]);
        assert_eq!(m.view.self_member().unwrap().id, m.identity.id);
    }
    assert_eq!(c.member_in(3).unwrap().identity.name, "m03");
    assert_eq!(c.member_in(4).unwrap().identity.name, "m04");
    // A Go-framed client's GetCluster sees the grown, complete cluster.
    let go = ClientOptions {
        legacy_framing: true,
        ..opts()
    };
    let reader = reader_identity().await.unwrap();
    let list = read_cluster(&s.watch_rc, &ClusterRef::Id(c.id()), &reader, &go)
        .await
        .unwrap();
    assert_eq!(
        list.members
            .iter()
            .map(|m| (m.index, m.id))
            .collect::<Vec<_>>(),
        slot_ids(c.view())
    );
}

async fn replacing_member_1_keeps_the_other_members_slots(s: Setup) {
    let mut c = launch(&s, 3).await;
    let before = slot_ids(c.view());
    let old = c.member_in(1).unwrap().view.self_member().unwrap().clone();
    let mut w = watcher(&s, &c).await;
    let first = w.next().await.unwrap().unwrap();
    let watching = tokio::spawn(views_until(w, |v| {
        v.member(1).is_some_and(|m| m.name.starts_with("m01r"))
    }));
    let new = c.replace(1).await.unwrap();
    let (new_id, new_name) = (new.identity.id, new.identity.name.clone());
    assert_eq!(new.index(), 1);
    assert_ne!(new_id, old.id);
    // Every member's view: slots 0 and 2 as before, the newcomer in 1.
    for m in &c.members {
        let ids = slot_ids(&m.view);
        assert_eq!(
            ids,
            vec![before[0], (1, new_id), before[2]],
            "{}",
            m.identity.name
        );
        assert_eq!(m.view.self_member().unwrap().id, m.identity.id);
    }
    let mut slots: Vec<usize> = c.members.iter().map(|m| m.index()).collect();
    slots.sort();
    assert_eq!(slots, [0, 1, 2]);
    // The watcher saw the member of slot 1 change, and nothing else.
    let seen = watching.await.unwrap();
    let last = seen.last().unwrap();
    match &last.changes_from(&first)[..] {
        [ViewChange::Replaced { old: o, new: n }] => {
            assert_eq!((o.id, n.id, n.index), (old.id, new_id, 1));
            assert_eq!(n.name, new_name);
        }
        other => panic!("changes {other:?}"),
    }
    // Evicted, then joined: two versions.
    assert_eq!(last.version(), first.version() + 2);
}

fn fresh_node(name: &str) -> NodeIdentity {
    NodeIdentity::generate(&NodeOptions {
        name: Some(name.into()),
        endpoints: Some(vec!["127.0.0.1:9".into()]),
        key_bits: 1024,
    })
    .unwrap()
}

async fn a_leave_frees_a_slot_that_the_next_member_takes(s: Setup) {
    let c = launch(&s, 3).await;
    let cl = ClusterRef::Id(c.id());
    let before = slot_ids(c.view());
    let m1 = c.member_in(1).unwrap().identity.clone();
    let v = leave(&s.rc, &cl, &m1, &opts()).await.unwrap();
    assert_eq!(v, 5, "created, three joins, a leave");
    let mut w = watcher(&s, &c).await;
    let now = w.next().await.unwrap().unwrap();
    assert_eq!(now.version(), v);
    assert_eq!(slot_ids(&now), vec![before[0], before[2]]);
    assert!(!now.is_complete());
    // Once gone, it is not a member any more.
    let e = leave(&s.rc, &cl, &m1, &opts()).await.unwrap_err();
    assert_eq!(e.server_text(), Some("not a member of this cluster"), "{e}");
    // The next member to join takes the free slot; the others keep theirs.
    let node = fresh_node("late");
    let view = boot(&s.rc, &cl, &node, &BootOptions::default())
        .await
        .unwrap();
    assert_eq!(view.self_index, 1);
    assert_eq!(slot_ids(&view), vec![before[0], (1, node.id), before[2]]);
    let next = w.next().await.unwrap().unwrap();
    assert_eq!(next.version(), v + 1);
    assert_eq!(next.member(1).unwrap().id, node.id);
    w.close().await;
}

fn refused(e: &ClientError) -> &str {
    e.server_text()
        .unwrap_or_else(|| panic!("not a refusal: {e:?}"))
}

async fn refusals_name_the_rule_and_change_nothing(s: Setup) {
    let mut c = launch(&s, 3).await;
    let cl = ClusterRef::Id(c.id());
    let o = opts();
    let member = c.members[0].identity.clone();
    let owner = c.admin().clone();
    // Not the owner.
    let e = resize(&s.rc, &cl, 4, &member, &o).await.unwrap_err();
    assert_eq!(
        refused(&e),
        "only the cluster's creator may resize or evict"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("registry refused Resize of cluster {}: ", c.id())),
        "{e}"
    );
    let e = evict(&s.rc, &cl, &MemberRef::Index(2), &member, &o)
        .await
        .unwrap_err();
    assert_eq!(
        refused(&e),
        "only the cluster's creator may resize or evict"
    );
    // Below the members present.
    let e = resize(&s.rc, &cl, 2, &owner, &o).await.unwrap_err();
    assert_eq!(
        refused(&e),
        "cannot shrink cluster to 2: slot 2 is held by member m02 (evict it first)"
    );
    // The harness says the same, naming what it was doing.
    match c.resize(2).await.unwrap_err() {
        LaunchError::Client { what, err } => {
            assert!(what.contains("from 3 to 2"), "{what}");
            assert_eq!(refused(&err), refused(&e));
        }
        other => panic!("{other:?}"),
    }
    // Unknown members, by name and by slot.
    let nobody = MemberRef::Name("nobody".into());
    let e = evict(&s.rc, &cl, &nobody, &owner, &o).await.unwrap_err();
    assert_eq!(refused(&e), "no member named nobody in this cluster");
    let e = evict(&s.rc, &cl, &MemberRef::Index(7), &owner, &o)
        .await
        .unwrap_err();
    assert_eq!(refused(&e), "no member in slot 7 of this cluster");
    // Leaving a cluster one is not in.
    let e = leave(&s.rc, &cl, &owner, &o).await.unwrap_err();
    assert_eq!(refused(&e), "not a member of this cluster");
    // An unknown cluster.
    let e = resize(&s.rc, &ClusterRef::Name("no-such".into()), 4, &owner, &o)
        .await
        .unwrap_err();
    assert!(refused(&e).starts_with("cannot find cluster"), "{e}");
    // Nothing changed: same version, same members, same size.
    let mut w = watcher(&s, &c).await;
    let now = w.next().await.unwrap().unwrap();
    assert_eq!(now.version(), 4);
    assert_eq!(now.max_size, 3);
    assert_eq!(slot_ids(&now), slot_ids(c.view()));
    // The same size is no change and no new version.
    assert_eq!(resize(&s.rc, &cl, 3, &owner, &o).await.unwrap(), 4);
    w.close().await;
}

async fn a_watch_ends_when_the_cluster_is_deleted(s: Setup) {
    let c = launch(&s, 2).await;
    let mut w = watcher(&s, &c).await;
    w.next().await.unwrap().unwrap();
    let ended = tokio::spawn(async move {
        let t0 = std::time::Instant::now();
        let next = w.next().await;
        (next.map(|r| r.map(|v| v.version())), t0.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A member deletes it (DeleteCluster, op 14).
    let mut session = Session::connect(&s.rc, &opts()).await.unwrap();
    session.register(&c.members[0].identity, 0).await.unwrap();
    session
        .delete_cluster(&ClusterRef::Id(c.id()))
        .await
        .unwrap();
    session.bye().await.unwrap();
    let (next, waited) = ended.await.unwrap();
    assert!(next.is_none(), "{next:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}
