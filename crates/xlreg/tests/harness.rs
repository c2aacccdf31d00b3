//! The in-process harness (`xlreg::testing`) as another project would use
//! it in its own `#[tokio::test]`s, and the held GetCluster that makes
//! members learn the full cluster the moment the last one joins.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xlreg::client::boot::{boot, create_cluster_as};
use xlreg::client::{BootOptions, ClientOptions, ClusterRef, ClusterSpec};
use xlreg::registry::{BackendExt, ClusterTarget, GetCluster};
use xlreg::server::ServerConfig;
use xlreg::testing::{
    keys, member_identity, LaunchOptions, LocalCluster, LocalRegistry, Observer, Progress,
};
use xlreg::wire::Which;

/// The example from the module documentation, as a test.
#[tokio::test]
async fn a_test_cluster_in_one_call() {
    let cluster = LocalCluster::launch(3).await.unwrap();
    assert_eq!(cluster.members.len(), 3);
    let mut slots: Vec<usize> = cluster.members.iter().map(|m| m.index()).collect();
    slots.sort();
    assert_eq!(slots, vec![0, 1, 2]);
    for m in &cluster.members {
        let v = &m.view;
        assert!(v.is_complete());
        assert_eq!(v.cluster_id, cluster.id());
        assert_eq!(v.cluster_name.as_deref(), Some(cluster.name.as_str()));
        assert_eq!(v.members, cluster.view().members);
        assert_eq!(v.self_member().unwrap().id, m.identity.id);
        assert_eq!(v.endpoint_count, 2);
        // Endpoints are real listening sockets, handed to the test.
        assert_eq!(m.listeners().count(), 2);
        for (l, e) in m.listeners().zip(&m.identity.endpoints) {
            assert_eq!(l.local_addr().unwrap().to_string(), *e);
            std::net::TcpStream::connect(e).unwrap();
        }
    }
    // Keys are never shared within the cluster.
    assert!(keys::all_distinct(
        cluster
            .members
            .iter()
            .flat_map(|m| { [&m.identity.comms_key, &m.identity.sig_key] })
    ));
    let addr = cluster.registry().unwrap().addr();
    cluster.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "registry stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_members_agree_and_progress_is_reported() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let cluster = LocalCluster::launch_with(LaunchOptions {
        size: 64,
        endpoints: 1,
        observer: Some(Observer::new(move |p| ev.lock().unwrap().push(p))),
        ..LaunchOptions::default()
    })
    .await
    .unwrap();
    assert!(cluster.views().all(|v| v.members == cluster.view().members));
    assert_eq!(cluster.view().members.len(), 64);
    let ev = events.lock().unwrap().clone();
    let count = |f: &dyn Fn(&Progress) -> bool| ev.iter().filter(|p| f(p)).count();
    // 128 member keys + admin 2 + registry 2 + reader 2.
    assert_eq!(ev.first(), Some(&Progress::KeysNeeded(134)));
    assert_eq!(count(&|p| *p == Progress::Key), 134);
    assert_eq!(count(&|p| matches!(p, Progress::Joined { .. })), 64);
    assert_eq!(count(&|p| matches!(p, Progress::Booted { .. })), 64);
    let t = cluster.timings;
    assert!(t.total >= t.keygen + t.formation);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_launch_against_an_existing_registry_and_a_taken_name() {
    let reg = LocalRegistry::start().await.unwrap();
    let opts = LaunchOptions {
        size: 2,
        endpoints: 1,
        name: Some("shared".into()),
        regcred: Some(reg.regcred().clone()),
        ..LaunchOptions::default()
    };
    let c = LocalCluster::launch_with(opts.clone()).await.unwrap();
    assert!(c.registry().is_none());
    assert_eq!(c.regcred(), reg.regcred());
    // The same name again: the registry returns the existing cluster,
    // whose member names are taken.
    let e = LocalCluster::launch_with(opts).await.unwrap_err();
    // The registry's refusal is the cause (`source()`) of the launch error.
    let e = xlreg::ErrorChain(&e).to_string();
    assert!(e.contains("already in use"), "{e}");
    let e = LocalCluster::launch_with(LaunchOptions {
        size: 3,
        name: Some("shared".into()),
        regcred: Some(reg.regcred().clone()),
        ..LaunchOptions::default()
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert!(LocalCluster::launch(65).await.is_err());
    reg.stop().await;
}

/// The registry holds a member's GetCluster until the last member joins,
/// and answers at that moment — not at the bound (10 s here), and not on
/// a polling tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_held_get_cluster_returns_the_moment_the_last_member_joins() {
    let reg = LocalRegistry::start_with(ServerConfig {
        hold: Duration::from_secs(10),
        ..ServerConfig::ephemeral()
    })
    .await
    .unwrap();
    let rc = reg.regcred().clone();
    let ks = keys::generate_keys(8, 1024, keys::KeyGen::Fast, 2, &|| {}).unwrap();
    let mut ks = ks.into_iter();
    let mut node = |name: &str| {
        member_identity(
            name,
            ks.next().unwrap(),
            ks.next().unwrap(),
            vec!["127.0.0.1:9".into()],
        )
        .unwrap()
    };
    let admin = node("admin");
    let info = create_cluster_as(
        &rc,
        &admin,
        &ClusterSpec::new("held", 3),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    let opts = BootOptions::default();
    let early: Vec<_> = (0..2)
        .map(|i| {
            let (rc, n, o) = (rc.clone(), node(&format!("early{i}")), opts.clone());
            tokio::spawn(async move {
                let v = boot(&rc, &ClusterRef::Id(info.id), &n, &o).await.unwrap();
                (v, Instant::now())
            })
        })
        .collect();
    // Both early members have joined and are waiting in a held GetCluster.
    let deadline = Instant::now() + Duration::from_secs(5);
    let joined_now = || async {
        let get = GetCluster {
            cluster: ClusterTarget::Id(info.id),
            which: Which::ALL,
            budget: 1 << 20,
            hold: Duration::ZERO,
        };
        let m = reg.server().backend().call(get).await.unwrap();
        m.selection.which.iter().count()
    };
    while joined_now().await < 2 {
        assert!(Instant::now() < deadline, "early members did not join");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(early.iter().all(|h| !h.is_finished()), "held, not answered");
    let last = node("last");
    let last_view = boot(&rc, &ClusterRef::Id(info.id), &last, &opts)
        .await
        .unwrap();
    let joined = Instant::now();
    assert!(last_view.is_complete());
    for h in early {
        let (v, at) = h.await.unwrap();
        assert!(v.is_complete());
        assert_eq!(v.members, last_view.members);
        let after = at.saturating_duration_since(joined);
        assert!(
            after < Duration::from_millis(500),
            "answered {after:?} after the last join"
        );
    }
    reg.stop().await;
}

/// anyhow's `{:#}` prints each link of a chain once: the launch says what
/// it was doing, the client error where it connected, and only the OS
/// error says "refused".
#[tokio::test]
async fn an_os_error_appears_once_in_a_formatted_launch_error_chain() {
    let registry = LocalRegistry::start().await.unwrap();
    let rc = registry.regcred().clone();
    registry.stop().await;
    let e = LocalCluster::launch_with(LaunchOptions {
        size: 2,
        regcred: Some(rc.clone()),
        ..LaunchOptions::default()
    })
    .await
    .expect_err("nothing listens there any more");
    let chain = format!("{:#}", anyhow::Error::new(e));
    assert_eq!(chain.matches("os error").count(), 1, "{chain}");
    assert_eq!(chain.matches("refused").count(), 1, "{chain}");
    assert!(chain.starts_with("creating cluster"), "{chain}");
    assert!(chain.contains(&rc.endpoints[0]), "{chain}");
    assert_eq!(
        chain.matches(&rc.endpoints[0]).count(),
        1,
        "the address is named once: {chain}"
    );
    // The same line without anyhow.
    let e2 = xlreg::regcred::RegCred::load("/nonexistent/regCred.dat").unwrap_err();
    let line = xlreg::ErrorChain(&e2).to_string();
    assert_eq!(line.matches("os error 2").count(), 1, "{line}");
    assert_eq!(format!("{:#}", anyhow::Error::new(e2)), line);
}

/// The serve_peers example as a test: each member serves on a tokio
/// listener taken from the harness, and every member reaches every peer
/// at the endpoint its view lists.
#[tokio::test]
async fn members_serve_on_taken_tokio_listeners_and_reach_each_other() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut cluster = LocalCluster::launch(3).await.unwrap();
    for m in &mut cluster.members {
        let l = m.take_listener(1).unwrap();
        assert_eq!(l.local_addr().unwrap().to_string(), m.endpoints()[1]);
        assert_eq!(m.listeners().count(), 1, "one left after taking one");
        let again = m.take_listener(1).unwrap_err();
        assert!(again.to_string().contains("no listener 1"), "{again}");
        assert!(m.take_std_listener(7).is_none());
        let name = m.identity.name.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(name.as_bytes()).await;
            }
        });
    }
    let mut calls = 0;
    for m in &cluster.members {
        for peer in m.view.members.iter().filter(|p| p.id != m.identity.id) {
            let mut s = tokio::net::TcpStream::connect(&peer.endpoints[1])
                .await
                .unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).await.unwrap();
            assert_eq!(answer, peer.name);
            calls += 1;
        }
    }
    assert_eq!(calls, 6);
    // A std listener taken outside tokio is non-blocking, ready for an
    // event loop: accept with nothing pending returns WouldBlock at once.
    let l = cluster.members[0].take_std_listener(0).unwrap();
    assert_eq!(
        l.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    cluster.shutdown().await;
}

#[test]
fn take_listener_outside_a_runtime_is_an_error_not_a_panic() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cluster = rt.block_on(LocalCluster::launch(2)).unwrap();
    let e = cluster.members[0].take_listener(0).unwrap_err();
    assert!(e.to_string().contains("outside a tokio runtime"), "{e}");
    // Nothing was taken by the failed call.
    assert_eq!(cluster.members[0].listeners().count(), 2);
    rt.block_on(cluster.shutdown());
}
