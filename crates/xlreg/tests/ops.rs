//! Operating a registry: the HTTP side door (metrics, admin API), cluster
//! deletion and TTLs, and the limits — against real servers and clients
//! on loopback.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use xlreg::client::NodeIdentity;
use xlreg::client::Session;
use xlreg::client::{boot, create_cluster_as};
use xlreg::client::{BootOptions, ClientError, ClientOptions, ClusterRef, ClusterSpec};
use xlreg::http::{AdminToken, HttpConfig, HttpServer};
use xlreg::regcred::RegCred;
use xlreg::registry::{BackendExt, DeleteByName, ListingOrder, ListingPage};
use xlreg::server::{Server, ServerConfig};
use xlreg::testing::{keys, member_identity};

fn node(name: &str) -> NodeIdentity {
    let k = || keys::generate_key(1024, keys::KeyGen::Fast).unwrap();
    member_identity(name, k(), k(), vec!["127.0.0.1:9".into()]).unwrap()
}

fn token() -> AdminToken {
    AdminToken::from_secret(
        "test-token-0123456789abcdef",
        std::path::Path::new("<test>"),
    )
    .unwrap()
}

async fn side_door(server: &Server) -> (HttpServer, String) {
    let h = HttpServer::start(
        HttpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: token(),
        },
        server,
    )
    .await
    .unwrap();
    let url = format!("http://{}", h.local_addr());
    (h, url)
}

/// One HTTP call (blocking client on the blocking pool): status and body.
async fn call(method: &str, url: String, bearer: Option<&str>) -> (u16, String) {
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

/// Scrape `/metrics` with a Prometheus text parser: sample values by
/// `name{label="value"}` (labels sorted), plus bare names.
async fn scrape(base: &str) -> HashMap<String, f64> {
    let (status, text) = call("GET", format!("{base}/metrics"), None).await;
    assert_eq!(status, 200);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let mut out = HashMap::new();
    for s in scrape.samples {
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            _ => continue,
        };
        let mut labels: Vec<_> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        labels.sort();
        let key = if labels.is_empty() {
            s.metric.clone()
        } else {
            format!("{}{{{}}}", s.metric, labels.join(","))
        };
        out.insert(key, v);
    }
    out
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

async fn form(rc: &RegCred, name: &str, size: usize) -> xlreg::wire::NodeId {
    let info = create_cluster_as(
        rc,
        &node("admin"),
        &ClusterSpec::new(name, size as u32),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..size {
        let (rc, n) = (rc.clone(), node(&format!("m{i}")));
        tasks.push(tokio::spawn(async move {
            boot(&rc, &ClusterRef::Id(info.id), &n, &BootOptions::default()).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().unwrap().is_complete());
    }
    info.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_a_cluster_forms_and_as_bad_input_arrives() {
    let server = Server::start(ServerConfig::ephemeral()).await.unwrap();
    let (_h, base) = side_door(&server).await;
    let before = scrape(&base).await;
    assert_eq!(get(&before, "xlreg_joins_total"), 0.0);

    form(server.regcred(), "formed", 3).await;
    let after = scrape(&base).await;
    assert_eq!(get(&after, "xlreg_creates_total"), 1.0);
    assert_eq!(get(&after, "xlreg_joins_total"), 3.0);
    assert_eq!(
        get(&after, "xlreg_registrations_total"),
        4.0,
        "3 members + admin"
    );
    assert_eq!(get(&after, "xlreg_clusters"), 1.0);
    assert_eq!(get(&after, "xlreg_members"), 3.0);
    assert!(get(&after, "xlreg_request_duration_seconds_count{op=\"Join\"}") >= 3.0);
    // A session is counted when the server has seen its end, which can come
    // after the client already has its answer: wait for it, boundedly.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let byes = get(
            &scrape(&base).await,
            "xlreg_sessions_total{outcome=\"bye\"}",
        );
        if byes >= 4.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{byes} sessions ended with Bye, want 4"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Garbage instead of a Hello: a handshake failure.
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    s.write_all(&[0x5a; 128]).await.unwrap();
    // Joining a name that does not exist: an Error reply with its text.
    let mut sess = Session::connect(server.regcred(), &ClientOptions::default())
        .await
        .unwrap();
    sess.register(&node("lost"), 0).await.unwrap();
    let e = sess
        .join(&ClusterRef::Name("no-such".into()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot find cluster"), "{e}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(&base).await;
        let bad = get(&m, "xlreg_handshake_failures_total{reason=\"bad_hello\"}");
        let err = get(
            &m,
            "xlreg_error_replies_total{text=\"cannot find cluster with this name\"}",
        );
        if bad == 1.0 && err == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "bad_hello {bad}, error {err}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_the_token_and_a_delete_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::persistent(dir.path()))
        .await
        .unwrap();
    let (h, base) = side_door(&server).await;
    let old = form(server.regcred(), "doomed", 2).await;

    let (code, body) = call("GET", format!("{base}/api/clusters"), None).await;
    assert_eq!(code, 200, "reads are open on loopback");
    assert!(
        body.contains("\"doomed\"") && body.contains(&old.to_hex()),
        "{body}"
    );
    let (code, body) = call("GET", format!("{base}/api/clusters/doomed"), None).await;
    assert_eq!(code, 200);
    assert!(body.contains("\"member_list\""), "{body}");

    let url = format!("{base}/api/clusters/doomed");
    let (code, body) = call("DELETE", url.clone(), None).await;
    assert_eq!(
        (code, body.contains("admin token required")),
        (401, true),
        "{body}"
    );
    let (code, body) = call("DELETE", url.clone(), Some("test-token-wrong")).await;
    assert_eq!(
        (code, body.contains("admin token refused")),
        (401, true),
        "{body}"
    );
    let (code, _) = call("GET", format!("{base}/api/clusters/doomed"), None).await;
    assert_eq!(code, 200, "still there after refused deletes");

    let (code, body) = call("DELETE", url.clone(), Some(token().secret())).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = call("DELETE", url.clone(), Some(token().secret())).await;
    assert_eq!(
        (code, body.contains("cannot find cluster doomed")),
        (404, true)
    );
    let (_, stats) = call("GET", format!("{base}/api/stats"), None).await;
    assert!(stats.contains("\"deleted_clusters\":1"), "{stats}");

    // Gone after a restart too, and the name makes a new cluster.
    h.shutdown().await;
    server.shutdown().await;
    let server = Server::start(ServerConfig::persistent(dir.path()))
        .await
        .unwrap();
    let listed = server
        .backend()
        .listing(ListingPage {
            order: ListingOrder::ByName { after: None },
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!((listed.total_clusters, listed.clusters.len()), (0, 0));
    let new = form(server.regcred(), "doomed", 2).await;
    assert_ne!(new, old, "a new ID for the reused name");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_waiting_on_a_deleted_cluster_gets_an_error() {
    let server = Server::start(ServerConfig::ephemeral()).await.unwrap();
    let rc = server.regcred().clone();
    let info = create_cluster_as(
        &rc,
        &node("admin"),
        &ClusterSpec::new("half", 3),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    let waiting = tokio::spawn(async move {
        let opts = BootOptions {
            wait: Some(Duration::from_secs(20)),
            ..BootOptions::default()
        };
        boot(&rc, &ClusterRef::Id(info.id), &node("early"), &opts).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "waiting for two more members");
    server
        .backend()
        .call(DeleteByName(b"half".to_vec()))
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting member gives up")
        .unwrap();
    let e = r.expect_err("the cluster is gone");
    assert!(e.to_string().contains("can't find cluster"), "{e}");
    server.shutdown().await;
}

async fn ttl_create(
    rc: &RegCred,
    name: &str,
    ttl: Option<Duration>,
    legacy: bool,
) -> xlreg::wire::NodeId {
    create_cluster_as(
        rc,
        &node("admin"),
        &ClusterSpec::new(name, 2).ttl(ttl),
        &ClientOptions {
            legacy_framing: legacy,
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap()
    .id
}

async fn join_error(rc: &RegCred, id: xlreg::wire::NodeId) -> Option<ClientError> {
    let mut s = Session::connect(rc, &ClientOptions::default())
        .await
        .unwrap();
    // A fresh member name each time: a second join must not clash.
    let name = format!("late-{}", &xlreg::wire::NodeId::random().to_hex()[..8]);
    s.register(&node(&name), 0).await.unwrap();
    s.join(&ClusterRef::Id(id)).await.err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_expires_its_name_is_reusable_and_expiry_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || ServerConfig {
        sweep_interval: Duration::from_millis(100),
        ..ServerConfig::persistent(dir.path())
    };
    let server = Server::start(cfg()).await.unwrap();
    let (_h, base) = side_door(&server).await;
    let rc = server.regcred().clone();
    let short = ttl_create(&rc, "short", Some(Duration::from_secs(1)), false).await;
    let forever = ttl_create(&rc, "forever", None, false).await;
    assert!(join_error(&rc, short).await.is_none(), "alive at first");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let e = join_error(&rc, short).await.expect("expired");
    assert!(e.to_string().contains("cannot find cluster"), "{e}");
    assert!(
        join_error(&rc, forever).await.is_none(),
        "no TTL, no expiry"
    );
    let m = scrape(&base).await;
    assert_eq!(get(&m, "xlreg_expired_clusters_total"), 1.0);
    let again = ttl_create(&rc, "short", Some(Duration::from_secs(2)), false).await;
    assert_ne!(again, short, "the name makes a new cluster");

    // Expiry survives a restart: the stored activity time counts.
    server.shutdown().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let server = Server::start(cfg()).await.unwrap();
    let rc = server.regcred().clone();
    let e = join_error(&rc, again).await.expect("expired while down");
    assert!(e.to_string().contains("cannot find cluster"), "{e}");
    let e = join_error(&rc, forever).await;
    assert!(e.is_none(), "{e:?}");
    // The sweeper deletes the expired rows in the background.
    let deadline = Instant::now() + Duration::from_secs(5);
    while rusqlite_count(dir.path()) != 1 {
        assert!(
            Instant::now() < deadline,
            "expired rows not deleted from the store"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}

fn rusqlite_count(dir: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(dir.join("registry.db")).unwrap();
    c.query_row("SELECT COUNT(*) FROM clusters", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_clients_get_the_server_default_ttl() {
    let server = Server::start(ServerConfig {
        cluster_ttl: Some(Duration::from_secs(1)),
        sweep_interval: Duration::from_millis(100),
        ..ServerConfig::ephemeral()
    })
    .await
    .unwrap();
    let rc = server.regcred().clone();
    // Legacy framing, as a Go client: a TTL cannot be sent (the helper
    // drops it with a warning), the server default applies.
    let go = ttl_create(&rc, "go", Some(Duration::from_secs(3600)), true).await;
    let mut s = Session::connect(
        &rc,
        &ClientOptions {
            legacy_framing: true,
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    s.register(&node("x"), 0).await.unwrap();
    let e = s
        .create(&ClusterSpec::new("strict", 2).ttl(Some(Duration::from_secs(5))))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("cluster TTL needs an xlreg registry"),
        "{e}"
    );
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(
        join_error(&rc, go).await.is_some(),
        "expired by the default"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_with_an_error_naming_the_limit_and_others_are_served() {
    let server = Server::start(ServerConfig {
        max_clusters: Some(2),
        max_registrations_per_hour: Some(4),
        ..ServerConfig::ephemeral()
    })
    .await
    .unwrap();
    let (_h, base) = side_door(&server).await;
    let rc = server.regcred().clone();
    let mut s = Session::connect(&rc, &ClientOptions::default())
        .await
        .unwrap();
    s.register(&node("a"), 0).await.unwrap();
    s.create(&ClusterSpec::new("one", 2)).await.unwrap();
    let mut s = Session::connect(&rc, &ClientOptions::default())
        .await
        .unwrap();
    s.register(&node("b"), 0).await.unwrap();
    s.create(&ClusterSpec::new("two", 2)).await.unwrap();
    let mut s = Session::connect(&rc, &ClientOptions::default())
        .await
        .unwrap();
    s.register(&node("c"), 0).await.unwrap();
    let e = s.create(&ClusterSpec::new("three", 2)).await.unwrap_err();
    assert!(
        e.to_string().contains("at most 2 clusters (max-clusters)"),
        "{e}"
    );
    // An existing cluster is still served (Create of its name returns it).
    let mut s = Session::connect(&rc, &ClientOptions::default())
        .await
        .unwrap();
    s.register(&node("d"), 0).await.unwrap();
    s.create(&ClusterSpec::new("one", 2)).await.unwrap();
    // Five registrations from this address in the hour: the fifth refused.
    let mut s = Session::connect(&rc, &ClientOptions::default())
        .await
        .unwrap();
    let e = s.register(&node("e"), 0).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("at most 4 registrations per source address per hour"),
        "{e}"
    );
    let m = scrape(&base).await;
    assert_eq!(
        get(&m, "xlreg_limit_refusals_total{limit=\"max_clusters\"}"),
        1.0
    );
    assert_eq!(
        get(
            &m,
            "xlreg_limit_refusals_total{limit=\"registrations_per_address\"}"
        ),
        1.0
    );
    server.shutdown().await;
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServerConfig::persistent(dir.path()))
        .await
        .unwrap();
    let (_h, base) = side_door(&server).await;
    assert_eq!(
        call("GET", format!("{base}/healthz"), None).await,
        (200, "ok\n".into())
    );
    assert_eq!(
        call("GET", format!("{base}/readyz"), None).await,
        (200, "ready\n".into())
    );
    let (code, cred) = call("GET", format!("{base}/regCred.dat"), None).await;
    assert_eq!(code, 200);
    assert_eq!(RegCred::parse(&cred).unwrap(), *server.regcred());
    server.shutdown().await;
    let (code, body) = call("GET", format!("{base}/readyz"), None).await;
    assert_eq!(code, 503, "store closed: not ready ({body})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_deletes_its_cluster_over_the_wire_and_others_cannot() {
    let server = Server::start(ServerConfig::ephemeral()).await.unwrap();
    let rc = server.regcred().clone();
    let info = create_cluster_as(
        &rc,
        &node("admin"),
        &ClusterSpec::new("wire", 2),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    let alpha = node("alpha");
    boot(
        &rc,
        &ClusterRef::Id(info.id),
        &alpha,
        &BootOptions {
            wait: None,
            ..BootOptions::default()
        },
    )
    .await
    .unwrap();
    // Not a member: refused (and the session is closed).
    let mut s = Session::connect(&rc, &ClientOptions::default())
        .await
        .unwrap();
    s.register(&node("stranger"), 0).await.unwrap();
    let e = s
        .delete_cluster(&ClusterRef::Name("wire".into()))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("only a member of the cluster may delete it"),
        "{e}"
    );
    // Legacy framing: the client does not even ask.
    let mut s = Session::connect(
        &rc,
        &ClientOptions {
            legacy_framing: true,
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    s.register(&alpha, 0).await.unwrap();
    let e = s
        .delete_cluster(&ClusterRef::Id(info.id))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Usage(_)), "{e}");
    // A member: deleted.
    let mut s = Session::connect(&rc, &ClientOptions::default())
        .await
        .unwrap();
    s.register(&alpha, 0).await.unwrap();
    s.delete_cluster(&ClusterRef::Id(info.id)).await.unwrap();
    s.bye().await.unwrap();
    assert_eq!(
        join_error(&rc, info.id)
            .await
            .map(|e| e.to_string().contains("cannot find cluster")),
        Some(true)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn off_loopback_even_reads_need_the_token() {
    let server = Server::start(ServerConfig::ephemeral()).await.unwrap();
    // Bound to every address (so not "loopback"); spoken to on loopback.
    let h = HttpServer::start(
        HttpConfig {
            listen: "0.0.0.0:0".parse().unwrap(),
            token: token(),
        },
        &server,
    )
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{}", h.local_addr().port());
    for path in [
        "/",
        "/metrics",
        "/api/clusters",
        "/api/stats",
        "/regCred.dat",
    ] {
        let (code, _) = call("GET", format!("{base}{path}"), None).await;
        assert_eq!(code, 401, "{path} without the token");
        let (code, _) = call("GET", format!("{base}{path}"), Some(token().secret())).await;
        assert_eq!(code, 200, "{path} with the token");
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            call("GET", format!("{base}{path}"), None).await.0,
            200,
            "{path}"
        );
    }
    server.shutdown().await;
}

/// One HTTP POST with a JSON body: status and body.
async fn post_json(url: String, bearer: Option<&str>, body: &str) -> (u16, String) {
    let (bearer, body) = (bearer.map(String::from), body.to_string());
    tokio::task::spawn_blocking(move || {
        let mut req = ureq::post(&url).set("Content-Type", "application/json");
        if let Some(b) = bearer {
            req = req.set("Authorization", &format!("Bearer {b}"));
        }
        match req.send_string(&body) {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("POST {url}: {e}"),
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_resizes_and_evicts_through_the_admin_api_and_sees_version_and_history() {
    let server = Server::start(ServerConfig::ephemeral()).await.unwrap();
    let (_h, base) = side_door(&server).await;
    form(server.regcred(), "grown", 2).await;
    let t = Some("test-token-0123456789abcdef");
    let url = |what: &str| format!("{base}/api/clusters/grown/{what}");
    // Auth like DELETE: no token, no change.
    let (code, _) = post_json(url("resize"), None, r#"{"size": 4}"#).await;
    assert_eq!(code, 401);
    let (code, body) = post_json(url("resize"), t, r#"{"size": 4}"#).await;
    assert_eq!((code, body.as_str()), (200, r#"{"version":4}"#));
    let (code, body) = post_json(url("evict"), t, r#"{"member": 0}"#).await;
    assert_eq!((code, body.as_str()), (200, r#"{"version":5}"#));
    let (code, body) = post_json(url("evict"), t, r#"{"member": "m1"}"#).await;
    assert_eq!((code, body.as_str()), (200, r#"{"version":6}"#));
    // Refusals: 409 with the rule's text, 404 for no such cluster, 400 for
    // a body that is not the shape asked for.
    let (code, body) = post_json(url("evict"), t, r#"{"member": "m1"}"#).await;
    assert_eq!(code, 409);
    assert!(
        body.contains("no member named m1 in this cluster"),
        "{body}"
    );
    let (code, body) = post_json(url("resize"), t, r#"{"size": 99}"#).await;
    assert_eq!(code, 409);
    assert!(body.contains("size 99 is not in 2..=64"), "{body}");
    let (code, _) = post_json(
        format!("{base}/api/clusters/nope/resize"),
        t,
        r#"{"size": 3}"#,
    )
    .await;
    assert_eq!(code, 404);
    let (code, body) = post_json(url("resize"), t, r#"{"size": "big"}"#).await;
    assert_eq!(code, 400);
    assert!(body.contains("request body must be"), "{body}");
    let (code, body) = call("GET", format!("{base}/api/clusters/grown"), None).await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["version"].as_u64(), v["size"].as_u64()),
        (Some(6), Some(4))
    );
    let kinds: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["create", "join", "join", "resize", "evict", "evict"]
    );
    assert_eq!(v["history"][5]["by"], "admin");
    assert_eq!(v["member_list"].as_array().unwrap().len(), 0);
    // The status page shows the version.
    let (_, page) = call("GET", format!("{base}/"), None).await;
    assert!(page.contains("<td class=\"version\">6</td>"), "{page}");
    assert!(page.contains("resize 2 -&gt; 4"), "history on the page");
}

/// Wait (at most 5 s) until `gauge` reads `want`.
async fn gauge_reaches(gauge: &prometheus_client::metrics::gauge::Gauge, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while gauge.get() != want {
        assert!(
            Instant::now() < deadline,
            "gauge {} never reached {want}",
            gauge.get()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_watch_raises_held_watches_and_its_answer_lowers_it() {
    let server = Server::start(ServerConfig {
        hold: Duration::from_secs(20),
        ..ServerConfig::ephemeral()
    })
    .await
    .unwrap();
    let (_h, base) = side_door(&server).await;
    let id = form(server.regcred(), "watched", 2).await;
    let m = server.metrics().clone();
    let mut w = xlreg::client::Watch::new(
        server.regcred(),
        ClusterRef::Id(id),
        xlreg::client::reader_identity().await.unwrap(),
        ClientOptions::default(),
    );
    // The first view is answered at once: nothing held.
    let first = w.next().await.unwrap().unwrap();
    assert_eq!(first.version(), 3, "created, two joins");
    assert_eq!(m.held_watches.get(), 0);
    // The next one is held until the cluster changes.
    let waiting = tokio::spawn(async move { w.next().await.unwrap().unwrap().version() });
    gauge_reaches(&m.held_watches, 1).await;
    let held = scrape(&base).await;
    assert_eq!(get(&held, "xlreg_held_watches"), 1.0);
    assert_eq!(
        get(&held, "xlreg_held_getclusters"),
        0.0,
        "a Watch is no GetCluster"
    );
    let (code, body) = post_json(
        format!("{base}/api/clusters/watched/resize"),
        Some("test-token-0123456789abcdef"),
        r#"{"size": 3}"#,
    )
    .await;
    assert_eq!((code, body.as_str()), (200, r#"{"version":4}"#));
    let seen = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the resize answers the held watch")
        .unwrap();
    assert_eq!(seen, 4);
    // Lowered before the answer was sent.
    assert_eq!(m.held_watches.get(), 0);
    assert_eq!(get(&scrape(&base).await, "xlreg_held_watches"), 0.0);
    server.shutdown().await;
}
