//! `xlreg serve --http` with TTL and limit flags, `xlreg create --ttl` and
//! `xlreg admin …`, as an operator runs them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

async fn xlreg(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_xlreg"))
        .args(args)
        .env_remove("XLREG_REGCRED")
        .env_remove("XLREG_HTTP")
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

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `xlreg serve --http` with `extra` flags: the child, regCred path, URL.
fn serve(dir: &std::path::Path, extra: &[&str]) -> (Reaped, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xlreg"))
        .args(["serve", "--listen", "127.0.0.1:0", "--key-bits", "1024"])
        .args(["--http", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("XLREG_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let child = Reaped(child);
    let (mut rc, mut http) = (None, None);
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("regCred: ") {
            rc = Some(p.to_string());
        } else if let Some(u) = line.strip_prefix("http on ") {
            http = Some(u.to_string());
            break;
        }
    }
    (child, rc.unwrap(), http.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_lists_shows_and_deletes_with_the_data_dir_token() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_srv, rc, http) = serve(&data, &["--max-clusters", "5"]);
    let data_s = data.to_str().unwrap();

    let (code, _, err) = xlreg(&[
        "create",
        "--regcred",
        &rc,
        "ttl30m",
        "--size",
        "2",
        "--ttl",
        "30m",
    ])
    .await;
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = xlreg(&[
        "admin",
        "--http",
        &http,
        "--data-dir",
        data_s,
        "clusters",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["name"], "ttl30m");
    assert_eq!(v[0]["ttl_s"], 1800, "the TTL asked for with create --ttl");
    assert!(v[0]["expires_ms"].as_u64().unwrap() > v[0]["last_active_ms"].as_u64().unwrap());

    let (code, out, err) = xlreg(&[
        "admin",
        "--http",
        &http,
        "--data-dir",
        data_s,
        "cluster",
        "ttl30m",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ttl30m") && out.contains("0/2"), "{out}");

    // No token anywhere: delete is refused before any request is made.
    let elsewhere = tmp.path().join("elsewhere");
    let (code, _, err) = xlreg(&[
        "admin",
        "--http",
        &http,
        "--data-dir",
        elsewhere.to_str().unwrap(),
        "delete",
        "ttl30m",
    ])
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("delete needs the admin token"), "{err}");

    let (code, out, err) = xlreg(&[
        "admin",
        "--http",
        &http,
        "--data-dir",
        data_s,
        "delete",
        "ttl30m",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("deleted ttl30m"), "{out}");
    let (code, _, err) = xlreg(&[
        "admin",
        "--http",
        &http,
        "--data-dir",
        data_s,
        "cluster",
        "ttl30m",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("HTTP 404: cannot find cluster ttl30m"),
        "{err}"
    );

    let (code, out, err) = xlreg(&[
        "admin",
        "--http",
        &http,
        "--data-dir",
        data_s,
        "stats",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (s["clusters"].as_u64(), s["deleted_clusters"].as_u64()),
        (Some(0), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_a_shared_registry_gives_its_cluster_an_hour_unless_told() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_srv, rc, http) = serve(&data, &[]);
    let data_s = data.to_str().unwrap();
    for (name, ttl) in [("shared-default", None), ("shared-10m", Some("10m"))] {
        let mut args = vec![
            "up",
            "--size",
            "2",
            "--key-bits",
            "1024",
            "--regcred",
            &rc,
            "--name",
            name,
        ];
        if let Some(t) = ttl {
            args.extend(["--ttl", t]);
        }
        let (code, _, err) = xlreg(&args).await;
        assert_eq!(code, 0, "{err}");
    }
    let (code, out, err) = xlreg(&[
        "admin",
        "--http",
        &http,
        "--data-dir",
        data_s,
        "clusters",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ttl = |name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["ttl_s"].clone())
    };
    assert_eq!(ttl("shared-default"), Some(serde_json::json!(3600)));
    assert_eq!(ttl("shared-10m"), Some(serde_json::json!(600)));
}

#[tokio::test]
async fn bad_ops_flags_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let (code, _, err) = xlreg(&["serve", "--data-dir", d, "--cluster-ttl", "soon"]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("--cluster-ttl") && err.contains("90s, 30m, 2h, 7d or never"),
        "{err}"
    );
    let (code, _, err) = xlreg(&["serve", "--data-dir", d, "--ephemeral-ttl", "0s"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("must be positive"), "{err}");
    let tok = tmp.path().join("tok");
    std::fs::write(&tok, "0123456789abcdef0123\n").unwrap();
    let (code, _, err) = xlreg(&[
        "serve",
        "--data-dir",
        d,
        "--http",
        "127.0.0.1:0",
        "--admin-token-file",
        tok.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--admin-token-file") && err.contains("chmod 600"),
        "{err}"
    );
    let (code, _, err) = xlreg(&["admin", "--http", "127.0.0.1:1", "stats"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("must start with http://"), "{err}");
}
