//! `xlreg serve --store postgres://…` as processes: `kill -9` of one
//! server of a group while members boot through both, and `xlreg store
//! copy` of a SQLite registry into PostgreSQL served with the same
//! `members` output. Skips (visibly) without `XLREG_TEST_POSTGRES`, fails
//! without it when `XLREG_REQUIRE_POSTGRES=1`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use xlreg::client::{boot, create_cluster, BootOptions, ClientOptions, ClusterRef, ClusterSpec};
use xlreg::regcred::RegCred;
use xlreg::registry::postgres::{PoolOptions, PostgresBackend};
use xlreg::server::{Server, ServerConfig, ServerIdentity};
use xlreg::testing::postgres::members as group_members;
use xlreg::testing::postgres::TestDb;
use xlreg::wire::NodeId;

/// A running `xlreg serve` child; killed (SIGKILL) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path, store: &str, listen: &str, advertise: &[String]) -> Proc {
    serve_with(dir, store, listen, advertise, &[])
}

fn serve_with(dir: &Path, store: &str, listen: &str, advertise: &[String], more: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xlreg"));
    cmd.args(["serve", "--listen", listen, "--data-dir"])
        .arg(dir)
        .args(more)
        .env("XLREG_STORE", store)
        .env("XLREG_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for a in advertise {
        cmd.args(["--advertise", a]);
    }
    let mut child = cmd.spawn().expect("start xlreg serve");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("listening on "),
        "unexpected first line {line:?}"
    );
    std::thread::spawn(move || for _ in out.lines() {});
    Proc(child)
}

fn xlreg(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xlreg"))
        .args(args)
        .env_remove("XLREG_REGCRED")
        .env_remove("XLREG_STORE")
        .env("XLREG_LOG", "warn")
        .output()
        .expect("run xlreg");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn copy_identity(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        let name = f.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".pem") || name == "identity.json" {
            std::fs::copy(f.path(), to.join(&*name)).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_one_server_every_boot_completes_through_the_other_and_each_join_is_stored_once()
{
    let Some(db) = TestDb::create("kill9_group").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (code, _, err) = xlreg(&[
        "serve",
        "--init-only",
        "--key-bits",
        "1024",
        "--data-dir",
        a.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    copy_identity(&a, &b);
    let ports = xlreg::testing::free_ports(2).unwrap();
    let eps: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut sa = Some(serve(&a, db.raw_url(), &eps[0], &eps));
    let _sb = serve(&b, db.raw_url(), &eps[1], &eps);
    let rc = RegCred::load(a.join("regCred.dat")).unwrap();
    assert_eq!(
        rc,
        RegCred::load(b.join("regCred.dat")).unwrap(),
        "one regCred.dat"
    );
    assert_eq!(rc.endpoints, eps);

    let size = 32;
    let info = create_cluster(
        &rc,
        &ClusterSpec::new("kill9", size),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    let members = group_members("k", size as usize);
    let opts = BootOptions {
        wait: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, node) in members.iter().cloned().enumerate() {
        let mut rc = rc.clone();
        rc.endpoints.rotate_left(i % 2);
        let opts = opts.clone();
        tasks.spawn(async move {
            // Spread the boots over the kill.
            tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
            boot(&rc, &ClusterRef::Id(info.id), &node, &opts).await
        });
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(sa.take()); // SIGKILL server a mid-run
    let mut views = Vec::new();
    while let Some(r) = tasks.join_next().await {
        views.push(
            r.unwrap()
                .expect("every boot completes through the other server"),
        );
    }
    xlreg::testing::check_views(&views, size as usize).unwrap();

    let store =
        PostgresBackend::connect(db.url(), rc.id, &PoolOptions::default(), Default::default())
            .await
            .unwrap();
    let snap = store.snapshot().await.unwrap();
    let c = snap.cluster(&info.id).unwrap();
    let mut seen: HashMap<NodeId, usize> = HashMap::new();
    for (_, m) in c.members() {
        *seen.entry(m.id).or_default() += 1;
    }
    assert_eq!(c.len(), size as usize);
    for n in &members {
        assert_eq!(seen.get(&n.id), Some(&1), "member {} stored once", n.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_moves_a_sqlite_registry_into_postgres_with_the_same_members_output() {
    let Some(db) = TestDb::create("store_copy").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("reg");
    let server = Server::start(ServerConfig::persistent(&dir)).await.unwrap();
    let rc = server.regcred().clone();
    let nodes = group_members("k", 5);
    let mut names = Vec::new();
    for (k, size) in [(0usize, 3u32), (3, 2)] {
        let name = format!("copy-{k}");
        let info = create_cluster(
            &rc,
            &ClusterSpec::new(&name, size),
            &ClientOptions::default(),
        )
        .await
        .unwrap();
        let mut set = tokio::task::JoinSet::new();
        for n in &nodes[k..k + size as usize] {
            let (rc, n) = (rc.clone(), n.clone());
            set.spawn(async move {
                boot(&rc, &ClusterRef::Id(info.id), &n, &BootOptions::default()).await
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        names.push(name);
    }
    let rcp = dir.join("regCred.dat");
    let members = |rcp: &Path| -> Vec<String> {
        names
            .iter()
            .map(|n| {
                let (code, out, err) = xlreg(&[
                    "members",
                    "--regcred",
                    rcp.to_str().unwrap(),
                    "--cluster",
                    n,
                    "--json",
                ]);
                assert_eq!(code, 0, "{err}");
                out
            })
            .collect()
    };
    let before = members(&rcp);
    server.shutdown().await;

    let (code, out, err) = xlreg(&[
        "store",
        "copy",
        "--from",
        dir.to_str().unwrap(),
        "--to",
        db.raw_url(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 clusters, 5 members"), "{out}");
    let password = db
        .raw_url()
        .split_once("://")
        .and_then(|(_, r)| r.split_once('@'))
        .and_then(|(user, _)| user.split_once(':'))
        .map(|(_, pw)| pw.to_string());
    if let Some(pw) = password {
        assert!(!out.contains(&format!(":{pw}@")), "password shown: {out}");
        assert!(out.contains(":***@"), "{out}");
    }

    // A second copy into the same database is refused and changes nothing.
    let (code, _, err) = xlreg(&[
        "store",
        "copy",
        "--from",
        dir.to_str().unwrap(),
        "--to",
        db.raw_url(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not empty"), "{err}");

    let port = xlreg::testing::free_ports(1).unwrap()[0];
    let _s = serve(&dir, db.raw_url(), &format!("127.0.0.1:{port}"), &[]);
    let after = members(&rcp);
    assert_eq!(before, after, "same members output served from PostgreSQL");
    let ident = ServerIdentity::load(&dir).unwrap();
    assert_eq!(ident.id, rc.id);
}

#[test]
fn a_bad_store_url_is_refused_with_exit_2_and_no_password_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    for (url, want) in [
        ("mysql://u:Sekr1t@h/db", "expected postgres://"),
        ("postgres://u:Sekr1t@h:notaport/db", "bad PostgreSQL URL"),
        ("postgres://u:Sekr1t@h:5432", "no database name"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_xlreg"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", dir])
            .env("XLREG_STORE", url)
            .env("XLREG_LOG", "warn")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains(want), "{url}: {err}");
        assert!(err.contains("--store"), "names the flag: {err}");
        assert!(!err.contains("Sekr1t"), "password shown: {err}");
    }
}

#[test]
fn serve_with_an_unreachable_database_fails_naming_the_redacted_url() {
    let tmp = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = xlreg::testing::free_ports(1).unwrap()[0];
    let out = Command::new(env!("CARGO_BIN_EXE_xlreg"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--key-bits",
            "1024",
            "--data-dir",
        ])
        .arg(tmp.path())
        .env(
            "XLREG_STORE",
            format!("postgres://u:Sekr1t@127.0.0.1:{port}/db"),
        )
        .env("XLREG_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("postgres://u:***@127.0.0.1:{port}/db")),
        "{err}"
    );
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains("Sekr1t"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgres_takes_cluster_ttl_and_a_ttl_created_through_one_server_expires_through_the_other(
) {
    let Some(db) = TestDb::create("cli_ttl_group").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (code, _, err) = xlreg(&[
        "serve",
        "--init-only",
        "--key-bits",
        "1024",
        "--data-dir",
        a.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    copy_identity(&a, &b);
    let ports = xlreg::testing::free_ports(2).unwrap();
    let eps: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let ttl = ["--cluster-ttl", "2s", "--ephemeral-ttl", "2s"];
    let _sa = serve_with(&a, db.raw_url(), &eps[0], &eps, &ttl);
    let _sb = serve_with(&b, db.raw_url(), &eps[1], &eps, &ttl);
    let rc = a.join("regCred.dat");
    let rc = rc.to_str().unwrap();
    let admin = tmp.path().join("admin");
    let (code, out, err) = xlreg(&[
        "create",
        "--regcred",
        rc,
        "--address",
        &eps[0],
        "--node-dir",
        admin.to_str().unwrap(),
        // Longer than the servers' default: a debug build's reader makes an
        // RSA identity (about a second) before each read.
        "--ttl",
        "6s",
        "brief",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.trim().is_empty(), "prints the cluster ID");
    let members = |addr: &str| {
        xlreg(&[
            "members",
            "--regcred",
            rc,
            "--address",
            addr,
            "--cluster",
            "brief",
        ])
    };
    let (code, _, err) = members(&eps[1]);
    assert_eq!(code, 0, "live through server B: {err}");
    // 6 s after that read (which restarted its clock), and a sweep later.
    tokio::time::sleep(Duration::from_millis(7000)).await;
    let (code, _, err) = members(&eps[1]);
    assert_ne!(code, 0, "expired through server B");
    assert!(err.contains("cannot find cluster"), "{err}");
}
