//! The member CLI (`create`, `join`, `members`, `register`) as a user runs
//! it, against an in-process server on loopback.

use xlreg::server::{Server, ServerConfig};

/// A data home for the whole test binary, so `create` never writes its
/// admin identity under the real user's home.
fn data_home() -> &'static std::path::Path {
    static D: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    D.get_or_init(|| tempfile::tempdir().expect("tmp")).path()
}

async fn xlreg(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_xlreg"))
        .args(args)
        .env_remove("XLREG_REGCRED")
        .env_remove("XLREG_NODE_DIR")
        .env("XDG_DATA_HOME", data_home())
        .env("XLREG_LOG", "warn")
        .output()
        .await
        .expect("run xlreg");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_create_join_members_and_register_with_json() {
    let tmp = tempfile::tempdir().expect("tmp");
    let rcpath = tmp.path().join("regCred.dat");
    let server = Server::start(ServerConfig {
        regcred_path: Some(rcpath.clone()),
        ..ServerConfig::ephemeral()
    })
    .await
    .expect("server");
    let rcp = rcpath.to_str().expect("utf8");

    let (code, out, err) = xlreg(&[
        "create",
        "--regcred",
        rcp,
        "clitest",
        "--size",
        "2",
        "--endpoints",
        "1",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let c = json(&out);
    assert_eq!(c["name"], "clitest");
    assert_eq!(c["max_size"], 2);
    assert_eq!(c["endpoint_count"], 1);
    let cid = c["cluster_id"].as_str().expect("id").to_string();

    let d1 = tmp.path().join("n1");
    let d1s = d1.to_str().expect("utf8").to_string();
    let join = |dir: Option<String>, name: &'static str, port: &'static str| {
        let rcp = rcp.to_string();
        let cid = cid.clone();
        async move {
            let mut a = vec![
                "join".to_string(),
                "--regcred".into(),
                rcp,
                "--cluster-id".into(),
                cid,
                "--name".into(),
                name.into(),
                "--endpoint".into(),
                format!("127.0.0.1:{port}"),
                "--key-bits".into(),
                "1024".into(),
                "--wait".into(),
                "20".into(),
                "--json".into(),
            ];
            if let Some(d) = dir {
                a.push("--node-dir".into());
                a.push(d);
            }
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            xlreg(&refs).await
        }
    };
    let (a, b) = tokio::join!(
        join(Some(d1s.clone()), "one", "5001"),
        join(None, "two", "5002")
    );
    assert_eq!(a.0, 0, "{}", a.2);
    assert_eq!(b.0, 0, "{}", b.2);
    let (va, vb) = (json(&a.1), json(&b.1));
    assert_eq!(va["cluster_id"], cid.as_str());
    assert_eq!(va["members"], vb["members"]);
    assert_eq!(va["members"].as_array().map(Vec::len), Some(2));
    assert_ne!(va["self_index"], vb["self_index"]);
    for key in [
        "cluster_id",
        "cluster_name",
        "max_size",
        "endpoint_count",
        "self_index",
        "members",
    ] {
        assert!(va.get(key).is_some(), "missing {key}");
    }
    for key in [
        "index",
        "name",
        "id",
        "endpoints",
        "comms_key_sha256",
        "sig_key_sha256",
    ] {
        assert!(
            va["members"][0].get(key).is_some(),
            "missing members[].{key}"
        );
    }
    let saved_id =
        json(&std::fs::read_to_string(d1.join("node.json")).expect("node.json"))["id"].clone();
    let me = &va["members"][va["self_index"].as_u64().expect("index") as usize];
    assert_eq!(me["id"], saved_id);

    let (code, out, err) =
        xlreg(&["members", "--regcred", rcp, "--cluster-id", &cid, "--json"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["members"], va["members"]);
    // By name too (an xlreg extension of GetCluster).
    let (code, out, err) = xlreg(&[
        "members",
        "--regcred",
        rcp,
        "--cluster",
        "clitest",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["cluster_id"], cid.as_str());
    assert_eq!(json(&out)["members"], va["members"]);

    // Register with the saved identity: same ID printed.
    let (code, out, err) = xlreg(&["register", "--regcred", rcp, "--node-dir", &d1s]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), saved_id.as_str().expect("str"));

    // Human output of members is a table.
    let (code, out, _) = xlreg(&["members", "--regcred", rcp, "--cluster-id", &cid]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("IDX") && out.contains("one") && out.contains("two"),
        "{out}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_go_to_stderr_with_nonzero_exit_codes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let rcpath = tmp.path().join("regCred.dat");
    let server = Server::start(ServerConfig {
        regcred_path: Some(rcpath.clone()),
        ..ServerConfig::ephemeral()
    })
    .await
    .expect("server");
    let rcp = rcpath.to_str().expect("utf8");

    // A registry's refusal: exit 1, the server's text on one line.
    let (code, out, err) = xlreg(&["members", "--regcred", rcp, "--cluster", "x"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("cannot find cluster with this name"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Bad input: exit 2.
    let (code, _, err) = xlreg(&[
        "join",
        "--regcred",
        rcp,
        "--cluster-id",
        "abc",
        "--endpoint",
        "127.0.0.1:1",
    ])
    .await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = xlreg(&["create", "--regcred", rcp, "c", "--size", "65"]).await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = xlreg(&[
        "join",
        "--regcred",
        "/nonexistent/regCred.dat",
        "--cluster",
        "c",
        "--endpoint",
        "127.0.0.1:1",
    ])
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/regCred.dat"), "{err}");
    let (code, _, err) = xlreg(&["join", "--regcred", rcp, "--cluster", "c"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--endpoint"), "{err}");

    // The registry refuses: exit 1, its text on stderr.
    let unknown = "42".repeat(20);
    let (code, out, err) = xlreg(&[
        "join",
        "--regcred",
        rcp,
        "--cluster-id",
        &unknown,
        "--endpoint",
        "127.0.0.1:1",
        "--key-bits",
        "1024",
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("cannot find cluster with this ID"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_keeps_one_private_admin_identity_and_says_where() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let rcpath = tmp.path().join("regCred.dat");
    let server = Server::start(ServerConfig {
        regcred_path: Some(rcpath.clone()),
        ..ServerConfig::ephemeral()
    })
    .await
    .expect("server");
    let rcp = rcpath.to_str().expect("utf8");
    let admin = tmp.path().join("admin");
    let admin_s = admin.to_str().expect("utf8");
    let create = |name: &'static str| async move {
        xlreg(&[
            "create",
            "--regcred",
            rcp,
            name,
            "--node-dir",
            admin_s,
            "--json",
        ])
        .await
    };
    let (code, out, err) = create("a1").await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("created the admin identity"), "{err}");
    assert_eq!(json(&out)["admin_node_dir"], admin_s);
    let node = std::fs::read_to_string(admin.join("node.json")).expect("node.json");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&admin), 0o700);
    for f in std::fs::read_dir(&admin).expect("dir") {
        let p = f.expect("entry").path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    // The second create reuses it: nothing generated, the same files.
    let (code, _, err) = create("a2").await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("created the admin identity"), "{err}");
    assert_eq!(
        std::fs::read_to_string(admin.join("node.json")).expect("node.json"),
        node
    );
    // Without --node-dir the XDG data directory is used, and printed.
    let (code, out, err) = xlreg(&["create", "--regcred", rcp, "a3"]).await;
    assert_eq!(code, 0, "{err}");
    let xdg = data_home().join("xlreg/admin");
    assert!(
        out.contains(&format!("admin_node_dir  {}", xdg.display())),
        "{out}"
    );
    assert!(xdg.join("node.json").exists());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_wait_0_is_answered_at_once_not_held_for_missing_members() {
    let tmp = tempfile::tempdir().expect("tmp");
    let rcpath = tmp.path().join("regCred.dat");
    // A registry that would hold a GetCluster for 20 s.
    let server = Server::start(ServerConfig {
        regcred_path: Some(rcpath.clone()),
        hold: std::time::Duration::from_secs(20),
        ..ServerConfig::ephemeral()
    })
    .await
    .expect("server");
    let rcp = rcpath.to_str().expect("utf8");
    let (code, out, err) =
        xlreg(&["create", "--regcred", rcp, "w0", "--size", "3", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let cid = json(&out)["cluster_id"].as_str().expect("id").to_string();
    let t = std::time::Instant::now();
    let (code, out, err) = xlreg(&[
        "join",
        "--regcred",
        rcp,
        "--cluster-id",
        &cid,
        "--name",
        "only",
        "--endpoint",
        "127.0.0.1:5009",
        "--key-bits",
        "1024",
        "--wait",
        "0",
        "--json",
    ])
    .await;
    let took = t.elapsed();
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["members"].as_array().map(Vec::len), Some(1));
    assert!(
        took < std::time::Duration::from_secs(10),
        "join --wait 0 took {took:?}: the registry held its GetCluster"
    );
    // `members` reads what exists without being held either.
    let t = std::time::Instant::now();
    let (code, _, err) = xlreg(&["members", "--regcred", rcp, "--cluster-id", &cid]).await;
    assert_eq!(code, 0, "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    server.shutdown().await;
}
