//! `xlreg serve --http` with TTL and limit flags, `xlreg create --ttl` and
//! `xlreg admin …`, as an operator runs them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

mod support;

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

/// `xlreg members --watch` as a child: its stdout lines arrive on the
/// returned channel; the child's exit is `wait`ed at the end.
fn watch_members(
    rc: &str,
    cluster: &str,
    home: &std::path::Path,
    json: bool,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xlreg"));
    cmd.args(["members", "--regcred", rc, "--cluster", cluster, "--watch"])
        .env("XDG_DATA_HOME", home)
        .env("XLREG_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if json {
        cmd.arg("--json");
    }
    let mut child = cmd.spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// The next JSON line of a `members --watch --json`, within 20 s.
fn next_version(rx: &std::sync::mpsc::Receiver<String>) -> serde_json::Value {
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("a line from members --watch within 20 s");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// Clusters that change (issue 23) from the shell: the operator's `admin
/// resize/evict`, the creator's `resize/evict`, a member's `leave`, their
/// refusals, and `members --watch` printing each version with what changed
/// until the cluster is deleted (then it exits 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_change_from_the_shell_and_members_watch_prints_each_version() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_srv, rc, http) = serve(&data, &[]);
    let data_s = data.to_str().unwrap();
    let dir = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    let admin = |args: &[&str]| {
        let mut a = vec!["admin", "--http", &http, "--data-dir", data_s];
        a.extend_from_slice(args);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        xlreg(&refs).await
    };
    let owner = dir("owner");
    let (code, _, err) = xlreg(&[
        "create",
        "--regcred",
        &rc,
        "chg",
        "--size",
        "2",
        "--node-dir",
        &owner,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let join = |name: &'static str| {
        let (rc, nd) = (rc.clone(), dir(name));
        async move {
            xlreg(&[
                "join",
                "--regcred",
                &rc,
                "--cluster",
                "chg",
                "--name",
                name,
                "--endpoint",
                "127.0.0.1:9",
                "--key-bits",
                "1024",
                "--wait",
                "20",
                "--node-dir",
                &nd,
            ])
            .await
        }
    };
    let (a, b) = tokio::join!(join("alpha"), join("beta"));
    assert_eq!((a.0, b.0), (0, 0), "{} {}", a.2, b.2);

    let (watch_json, lines) = watch_members(&rc, "chg", tmp.path(), true);
    let (watch_text, text_lines) = watch_members(&rc, "chg", tmp.path(), false);
    let first = next_version(&lines);
    assert_eq!(first["version"], 3, "created and two joins: {first}");
    assert_eq!(first["members"].as_array().unwrap().len(), 2);
    assert_eq!(first["changes"], serde_json::json!([]));
    assert!(first["self_index"].is_null(), "a reader: {first}");
    // alpha and beta joined at once: either may hold either slot.
    let in_slot = |i: u64| -> String {
        let members = first["members"].as_array().unwrap();
        let m = members.iter().find(|m| m["index"] == i);
        m.unwrap_or_else(|| panic!("no member in slot {i}: {first}"))["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (in0, in1) = (in_slot(0), in_slot(1));

    // The operator grows it, through the side door.
    let (code, out, err) = run(admin(&["resize", "chg", "3"])).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "resized chg to 3 members (version 4)");
    let v = next_version(&lines);
    assert_eq!(
        (v["version"].as_u64(), v["max_size"].as_u64()),
        (Some(4), Some(3))
    );
    assert_eq!(v["changes"], serde_json::json!(["size 2 -> 3"]));

    // The creator grows it again, through the protocol.
    let (code, out, err) = xlreg(&[
        "resize",
        "--regcred",
        &rc,
        "--cluster",
        "chg",
        "4",
        "--node-dir",
        &owner,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "cluster \"chg\": resized to 4 members (version 5)"
    );
    assert_eq!(
        next_version(&lines)["changes"],
        serde_json::json!(["size 3 -> 4"])
    );

    // The operator evicts slot 1; the member in slot 0 leaves on its own.
    let (code, out, err) = run(admin(&["evict", "chg", "1"])).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "evicted slot 1 of chg (version 6)");
    let v = next_version(&lines);
    let change = v["changes"][0].as_str().unwrap().to_string();
    assert!(change.starts_with(&format!("slot 1: {in1} left (")), "{v}");
    let (code, out, err) = xlreg(&[
        "leave",
        "--regcred",
        &rc,
        "--cluster",
        "chg",
        "--node-dir",
        &dir(&in0),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        format!("cluster \"chg\": member \"{in0}\" left (version 7)")
    );
    let v = next_version(&lines);
    assert!(
        v["changes"][0]
            .as_str()
            .unwrap()
            .starts_with(&format!("slot 0: {in0} left (")),
        "{v}"
    );
    assert_eq!(v["members"], serde_json::json!([]));

    // Refusals: bad input (2) before anything is sent, the rules' texts (1).
    let (code, _, err) = run(admin(&["resize", "chg", "1"])).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("size 1 is not in 2..=64"), "{err}");
    let (code, _, err) = run(admin(&["evict", "chg", "nobody"])).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no member named nobody in this cluster"),
        "{err}"
    );
    let (code, _, err) = xlreg(&[
        "resize",
        "--regcred",
        &rc,
        "--cluster",
        "chg",
        "5",
        "--node-dir",
        &dir("beta"),
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("only the cluster's creator may resize or evict"),
        "{err}"
    );
    let (code, _, err) = xlreg(&[
        "evict",
        "--regcred",
        &rc,
        "--cluster",
        "chg",
        "0",
        "--node-dir",
        &owner,
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no member in slot 0 of this cluster"), "{err}");

    // Deleting the cluster ends both watches with exit 0.
    let (code, _, err) = run(admin(&["delete", "chg"])).await;
    assert_eq!(code, 0, "{err}");
    let limit = std::time::Duration::from_secs(20);
    let json_out = support::wait_bounded(watch_json, limit);
    assert_eq!(json_out.status.code(), Some(0));
    let said = String::from_utf8_lossy(&json_out.stderr);
    assert!(said.contains("cluster \"chg\" was deleted"), "{said}");
    assert!(lines.recv_timeout(limit).is_err(), "no line after the end");
    let text_out = support::wait_bounded(watch_text, limit);
    assert_eq!(text_out.status.code(), Some(0));
    let text: Vec<String> = text_lines.iter().collect();
    let text = text.join("\n");
    // The text watcher was not waited for between the changes, so two of
    // them may share a version: look for the changes, not their versions.
    for want in [
        "version   3: 2 of 2 members".to_string(),
        ": size 2 -> 3".to_string(),
        ": size 3 -> 4".to_string(),
        format!(": slot 1: {in1} left ("),
        format!(": slot 0: {in0} left ("),
        "cluster \"chg\" was deleted (or expired)".to_string(),
    ] {
        assert!(text.contains(&want), "{want:?} missing from:\n{text}");
    }
}
