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

async fn clusters(http: &str, data: &str) -> serde_json::Value {
    let (code, out, err) = xlreg(&[
        "admin",
        "--http",
        http,
        "--data-dir",
        data,
        "clusters",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_a_shared_registry_deletes_its_cluster_unless_kept_with_an_hour_ttl() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_srv, rc, http) = serve(&data, &[]);
    let data_s = data.to_str().unwrap();

    // Without --keep: the cluster is deleted when up stops.
    let (code, _, err) = xlreg(&[
        "up",
        "--size",
        "2",
        "--key-bits",
        "1024",
        "--regcred",
        &rc,
        "--name",
        "gone",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("deleted cluster gone from the shared registry"),
        "{err}"
    );
    assert_eq!(clusters(&http, data_s).await, serde_json::json!([]));

    // With --keep: it stays, with the one-hour default TTL.
    let mut up = Reaped(
        Command::new(env!("CARGO_BIN_EXE_xlreg"))
            .args([
                "up",
                "--size",
                "2",
                "--key-bits",
                "1024",
                "--keep",
                "--name",
                "kept",
                "--regcred",
                &rc,
            ])
            .env("XLREG_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let err = BufReader::new(up.0.stderr.take().unwrap());
    for line in err.lines() {
        if line.unwrap().contains("Ctrl-C stops them") {
            break;
        }
    }
    let v = clusters(&http, data_s).await;
    assert_eq!(v[0]["name"], "kept");
    assert_eq!(v[0]["ttl_s"], 3600, "the shared-registry default");
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(up.0.id() as i32, libc::SIGINT) };
    assert!(up.0.wait().unwrap().success());
    let v = clusters(&http, data_s).await;
    assert_eq!(v[0]["name"], "kept", "--keep keeps it");
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
