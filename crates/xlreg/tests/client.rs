//! The client library and member CLI against our own server on loopback:
//! concurrent boots of 2, 8 and 64 members, capacity, restarts, typed
//! errors, timeouts, and both framings (xlreg length-prefixed and the Go
//! legacy framing, including a server that answers at once and caps its
//! replies like a Go registry).

use std::time::{Duration, Instant};

use xlreg::client::node::{NodeIdentity, NodeOptions};
use xlreg::client::{
    self, BootOptions, ClientError, ClientOptions, ClusterRef, ClusterSpec, ClusterView, Session,
};
use xlreg::regcred::RegCred;
use xlreg::server::{Server, ServerConfig};
use xlreg::wire::{Framing, NodeId};

/// `n` fresh member identities with 1024-bit keys, generated in parallel.
async fn identities(n: usize, prefix: &str) -> Vec<NodeIdentity> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let name = format!("{prefix}{i}");
            tokio::task::spawn_blocking(move || {
                NodeIdentity::generate(&NodeOptions {
                    name: Some(name),
                    endpoints: Some(vec![
                        format!("127.0.0.1:{}", 40000 + i),
                        format!("127.0.0.1:{}", 41000 + i),
                    ]),
                    key_bits: 1024,
                })
                .expect("identity")
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("join"));
    }
    out
}

async fn admin() -> NodeIdentity {
    identities(1, "admin").await.pop().expect("one")
}

async fn create(rc: &RegCred, name: &str, size: u32) -> NodeId {
    let info = client::boot::create_cluster_as(
        rc,
        &admin().await,
        &ClusterSpec::new(name, size).endpoints(2),
        &ClientOptions::default(),
    )
    .await
    .expect("create");
    assert_eq!(info.max_size, size);
    info.id
}

/// Boot all `nodes` concurrently into `cluster`.
async fn boot_all(
    rc: &RegCred,
    cluster: &ClusterRef,
    nodes: &[NodeIdentity],
    opts: &BootOptions,
) -> Vec<Result<ClusterView, ClientError>> {
    let tasks: Vec<_> = nodes
        .iter()
        .cloned()
        .map(|n| {
            let (rc, c, o) = (rc.clone(), cluster.clone(), opts.clone());
            tokio::spawn(async move { client::boot(&rc, &c, &n, &o).await })
        })
        .collect();
    let mut out = vec![];
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// Every view complete, identical apart from self_index, each member
/// finding itself at a distinct index.
fn assert_identical_complete(views: &[ClusterView], nodes: &[NodeIdentity]) {
    let n = nodes.len();
    let mut seen = vec![false; n];
    for (v, node) in views.iter().zip(nodes) {
        assert!(
            v.is_complete(),
            "{} has {} of {}",
            node.name,
            v.members.len(),
            v.max_size
        );
        assert_eq!(v.members.len(), n);
        assert_eq!(v.self_member().expect("self").id, node.id);
        assert_eq!(v.self_member().expect("self").name, node.name);
        assert_eq!(v.self_member().expect("self").endpoints, node.endpoints);
        assert!(!seen[v.self_index], "index {} twice", v.self_index);
        seen[v.self_index] = true;
        let mut a = v.clone();
        let mut b = views[0].clone();
        a.self_index = 0;
        b.self_index = 0;
        assert_eq!(a, b, "views of {} and {} differ", node.name, nodes[0].name);
    }
    // Keys in the view are the members' real keys.
    for node in nodes {
        let m = views[0]
            .members
            .iter()
            .find(|m| m.id == node.id)
            .expect("member present");
        assert_eq!(m.comms_key, node.comms_key.public());
        assert_eq!(m.sig_key, node.sig_key.public());
    }
}

async fn boot_cluster_of(size: usize, opts: BootOptions) -> Duration {
    let server = Server::start(ServerConfig::ephemeral())
        .await
        .expect("server");
    let rc = server.regcred().clone();
    let cluster = create(&rc, &format!("c{size}"), size as u32).await;
    let nodes = identities(size, "m").await;
    let t0 = Instant::now();
    let results = boot_all(&rc, &ClusterRef::Id(cluster), &nodes, &opts).await;
    let took = t0.elapsed();
    let views: Vec<_> = results.into_iter().map(|r| r.expect("boot")).collect();
    assert_identical_complete(&views, &nodes);
    assert_eq!(views[0].cluster_id, cluster);
    assert_eq!(views[0].endpoint_count, 2);
    eprintln!(
        "{size} members booted concurrently in {took:?} (legacy framing: {})",
        opts.client.legacy_framing
    );
    server.shutdown().await;
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_of_2_boots_concurrently_with_identical_complete_views() {
    boot_cluster_of(2, BootOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_of_8_boots_concurrently_with_identical_complete_views() {
    boot_cluster_of(8, BootOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_of_64_boots_concurrently_and_a_65th_join_is_refused() {
    let server = Server::start(ServerConfig::ephemeral())
        .await
        .expect("server");
    let rc = server.regcred().clone();
    let cluster = create(&rc, "big", 64).await;
    let nodes = identities(65, "m").await;
    let t0 = Instant::now();
    let results = boot_all(
        &rc,
        &ClusterRef::Id(cluster),
        &nodes[..64],
        &BootOptions::default(),
    )
    .await;
    let took = t0.elapsed();
    let views: Vec<_> = results.into_iter().map(|r| r.expect("boot")).collect();
    assert_identical_complete(&views, &nodes[..64]);
    eprintln!("64 members booted concurrently in {took:?}");
    assert!(took < Duration::from_secs(20), "64 members took {took:?}");

    let e = client::boot(
        &rc,
        &ClusterRef::Id(cluster),
        &nodes[64],
        &BootOptions::default(),
    )
    .await
    .expect_err("65th join must fail");
    match &e {
        ClientError::Server { request, text, .. } => {
            assert_eq!(*request, "Join");
            assert_eq!(text, "cluster is full");
        }
        other => panic!("expected a Server error, got {other:?}"),
    }
    assert!(e.to_string().contains("cluster is full"), "{e}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_over_16k_travel_length_prefixed_between_xlreg_peers() {
    // 56 members with 1024-bit keys: the keys alone of a full
    // ClusterMembers reply are 56 × 324 bytes > 16 KiB.
    let server = Server::start(ServerConfig::ephemeral())
        .await
        .expect("server");
    let rc = server.regcred().clone();
    let cluster = create(&rc, "wide", 56).await;
    let nodes = identities(56, "w").await;
    let views: Vec<_> = boot_all(
        &rc,
        &ClusterRef::Id(cluster),
        &nodes,
        &BootOptions::default(),
    )
    .await
    .into_iter()
    .map(|r| r.expect("boot"))
    .collect();
    assert_identical_complete(&views, &nodes);

    let mut s = Session::connect(&rc, &ClientOptions::default())
        .await
        .expect("connect");
    assert_eq!(s.framing(), Framing::LengthPrefixed);
    s.register(&admin().await, 0).await.expect("register");
    let r = s
        .get_members(&cluster, xlreg::wire::Which::ALL)
        .await
        .expect("members");
    assert_eq!(r.members.len(), 56, "all 56 tokens in one reply");
    let bytes: usize = r
        .members
        .iter()
        .map(|m| m.comms_key.to_spki_der().len() + m.sig_key.to_spki_der().len())
        .sum();
    assert!(
        bytes > 16 * 1024,
        "reply too small to prove anything: {bytes}"
    );
    s.bye().await.expect("bye");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_framing_client_boots_against_our_server() {
    let opts = BootOptions {
        client: ClientOptions {
            legacy_framing: true,
            ..ClientOptions::default()
        },
        ..BootOptions::default()
    };
    boot_cluster_of(8, opts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_client_gathers_capped_immediate_replies_like_from_a_go_registry() {
    // No hold and a small reply limit: the server answers at once with only
    // a few tokens per reply, as a Go registry does near 16 KiB.
    let server = Server::start(ServerConfig {
        hold: Duration::ZERO,
        legacy_reply_limit: 2500,
        ..ServerConfig::ephemeral()
    })
    .await
    .expect("server");
    let rc = server.regcred().clone();
    let cluster = create(&rc, "capped", 12).await;
    let nodes = identities(12, "g").await;
    let opts = BootOptions {
        client: ClientOptions {
            legacy_framing: true,
            ..ClientOptions::default()
        },
        ..BootOptions::default()
    };
    let s = Session::connect(&rc, &opts.client).await.expect("connect");
    assert_eq!(s.framing(), Framing::Legacy);
    s.bye().await.expect("bye");
    let views: Vec<_> = boot_all(&rc, &ClusterRef::Id(cluster), &nodes, &opts)
        .await
        .into_iter()
        .map(|r| r.expect("boot"))
        .collect();
    assert_identical_complete(&views, &nodes);

    // One capped reply really holds fewer than all 12 tokens.
    let mut s = Session::connect(&rc, &opts.client).await.expect("connect");
    s.register(&admin().await, 0).await.expect("register");
    let r = s
        .get_members(&cluster, xlreg::wire::Which::ALL)
        .await
        .expect("members");
    assert!(
        !r.members.is_empty() && r.members.len() < 12,
        "expected a capped reply, got {} tokens",
        r.members.len()
    );
    s.bye().await.expect("bye");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_member_with_the_same_node_dir_keeps_its_id_and_slot() {
    let server = Server::start(ServerConfig::ephemeral())
        .await
        .expect("server");
    let rc = server.regcred().clone();
    let cluster = create(&rc, "restart", 2).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("member");
    let opts = NodeOptions {
        name: Some("keeper".into()),
        endpoints: Some(vec!["127.0.0.1:45000".into(), "127.0.0.1:45001".into()]),
        key_bits: 1024,
    };
    let (first, created) = NodeIdentity::load_or_create(&dir, &opts).expect("create identity");
    assert!(created);
    let other = identities(1, "other").await;
    let mut nodes = vec![first.clone()];
    nodes.extend(other);
    let views: Vec<_> = boot_all(
        &rc,
        &ClusterRef::Id(cluster),
        &nodes,
        &BootOptions::default(),
    )
    .await
    .into_iter()
    .map(|r| r.expect("boot"))
    .collect();
    assert_identical_complete(&views, &nodes);

    // "Restart": a new process would only have the directory.
    let (again, created) =
        NodeIdentity::load_or_create(&dir, &NodeOptions::default()).expect("reload");
    assert!(!created);
    assert_eq!(again.id, first.id);
    assert_eq!(again.name, "keeper");
    let v = client::boot(
        &rc,
        &ClusterRef::Id(cluster),
        &again,
        &BootOptions::default(),
    )
    .await
    .expect("re-boot after restart");
    assert!(v.is_complete());
    assert_eq!(v.self_index, views[0].self_index);
    assert_eq!(v.self_member().expect("self").id, first.id);

    // A different identity under the same name is refused.
    let mut impostor = identities(1, "x").await.pop().expect("one");
    impostor.name = "keeper".into();
    let e = client::boot(
        &rc,
        &ClusterRef::Id(cluster),
        &impostor,
        &BootOptions::default(),
    )
    .await
    .expect_err("name taken");
    assert_eq!(e.server_text(), Some("cluster member name already in use"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_reply_surfaces_as_typed_error_carrying_the_server_text() {
    let server = Server::start(ServerConfig::ephemeral())
        .await
        .expect("server");
    let rc = server.regcred().clone();
    let node = admin().await;
    let unknown = NodeId::from_bytes(&[0x42; 20]).expect("id");
    let e = client::boot(
        &rc,
        &ClusterRef::Id(unknown),
        &node,
        &BootOptions::default(),
    )
    .await
    .expect_err("unknown cluster");
    assert!(
        matches!(&e, ClientError::Server { request: "Join", text, .. } if text == "cannot find cluster with this ID"),
        "{e:?}"
    );
    // The Go text stays as it is on the wire; the client adds what it asked for.
    assert_eq!(
        e.to_string(),
        format!("registry refused Join of cluster {unknown}: cannot find cluster with this ID")
    );
    let e = client::boot(
        &rc,
        &ClusterRef::Name("nope".into()),
        &node,
        &BootOptions::default(),
    )
    .await
    .expect_err("unknown name");
    assert_eq!(e.server_text(), Some("cannot find cluster with this name"));
    assert!(e.to_string().contains("of cluster \"nope\""), "{e}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_by_name_works_and_the_view_carries_the_name() {
    let server = Server::start(ServerConfig::ephemeral())
        .await
        .expect("server");
    let rc = server.regcred().clone();
    let id = create(&rc, "named", 2).await;
    let nodes = identities(2, "n").await;
    let views: Vec<_> = boot_all(
        &rc,
        &ClusterRef::Name("named".into()),
        &nodes,
        &BootOptions::default(),
    )
    .await
    .into_iter()
    .map(|r| r.expect("boot"))
    .collect();
    assert_identical_complete(&views, &nodes);
    assert_eq!(views[0].cluster_id, id);
    assert_eq!(views[0].cluster_name.as_deref(), Some("named"));
    assert_eq!(views[0].to_json()["cluster_name"], "named");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_cluster_fails_at_the_deadline_saying_how_many_arrived() {
    let server = Server::start(ServerConfig::ephemeral())
        .await
        .expect("server");
    let rc = server.regcred().clone();
    let cluster = create(&rc, "lonely", 3).await;
    let node = admin().await;
    let opts = BootOptions {
        wait: Some(Duration::from_millis(1500)),
        ..BootOptions::default()
    };
    let t0 = Instant::now();
    let e = client::boot(&rc, &ClusterRef::Id(cluster), &node, &opts)
        .await
        .expect_err("incomplete");
    assert!(
        matches!(
            e,
            ClientError::IncompleteCluster {
                have: 1,
                want: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("1 of 3"), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("cluster {cluster} incomplete after "))
            && e.to_string().contains(
                " s: 1 of 3 members, slots 1, 2 still empty; members must boot concurrently"
            ),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    // With no wait, the same member gets what is there right after joining.
    let v = client::boot(
        &rc,
        &ClusterRef::Id(cluster),
        &node,
        &BootOptions { wait: None, ..opts },
    )
    .await
    .expect("wait 0");
    assert_eq!(v.members.len(), 1);
    assert!(!v.is_complete());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_can_be_read_without_joining() {
    let server = Server::start(ServerConfig::ephemeral())
        .await
        .expect("server");
    let rc = server.regcred().clone();
    let cluster = create(&rc, "readable", 3).await;
    let nodes = identities(3, "r").await;
    for r in boot_all(
        &rc,
        &ClusterRef::Id(cluster),
        &nodes,
        &BootOptions::default(),
    )
    .await
    {
        r.expect("boot");
    }
    let reader = admin().await;
    let list = client::read_members(&rc, &cluster, &reader, &ClientOptions::default())
        .await
        .expect("read");
    assert_eq!(list.members.len(), 3);
    assert!(
        list.members.iter().all(|m| m.id != reader.id),
        "reader did not join"
    );
    let j = list.to_json();
    assert_eq!(j["cluster_id"], cluster.to_hex());
    assert_eq!(j["members"].as_array().map(Vec::len), Some(3));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_server_trips_the_timeout() {
    // Accepts connections and never answers.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut conns = vec![];
        while let Ok((s, _)) = l.accept().await {
            conns.push(s);
        }
    });
    let server = Server::start(ServerConfig::ephemeral())
        .await
        .expect("server");
    let mut rc = server.regcred().clone();
    rc.endpoints = vec![addr.to_string()];
    let opts = BootOptions {
        client: ClientOptions {
            io_timeout: Duration::from_millis(500),
            ..ClientOptions::default()
        },
        ..BootOptions::default()
    };
    let t0 = Instant::now();
    let e = client::boot(&rc, &ClusterRef::Name("x".into()), &admin().await, &opts)
        .await
        .expect_err("stalled");
    assert!(matches!(e, ClientError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    hold.abort();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_deadline_is_honoured_even_when_the_registry_holds_longer() {
    // The registry holds a GetCluster up to 5 s; a boot with wait = 200 ms
    // must give up at 200 ms, not at the end of the hold.
    let server = Server::start(ServerConfig {
        hold: Duration::from_secs(5),
        ..ServerConfig::ephemeral()
    })
    .await
    .expect("server");
    let rc = server.regcred().clone();
    let cluster = create(&rc, "deadline", 3).await;
    let node = identities(1, "alone").await.pop().expect("one");
    let t0 = Instant::now();
    let e = client::boot(
        &rc,
        &ClusterRef::Id(cluster),
        &node,
        &BootOptions {
            wait: Some(Duration::from_millis(200)),
            ..BootOptions::default()
        },
    )
    .await
    .expect_err("one member of three cannot complete the cluster");
    let took = t0.elapsed();
    assert!(
        matches!(
            e,
            ClientError::IncompleteCluster {
                have: 1,
                want: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(800),
        "gave up after {took:?}"
    );
    server.shutdown().await;
}
