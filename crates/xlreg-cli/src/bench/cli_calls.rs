//! `xlreg bench cli`: how long the member commands take as a user runs
//! them — a new `xlreg` process each time against a default `xlreg serve`
//! (persistent, 2048-bit key, GetCluster hold 1 s) on loopback.
//!
//! Rows: the first `xlreg create` (which generates the kept admin
//! identity), a second `create` (which reuses it; target ≤ 50 ms), the
//! first `xlreg join --wait 0` of a new node directory (which generates the
//! node's keys) and a second one with the saved identity, into a cluster
//! that is still missing members (target ≤ 50 ms: the registry is asked not
//! to hold the GetCluster).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::rsa2048_decrypt_rate;
use super::serve_proc::{spawn_serve, Serve};

/// Runs per repeated row.
pub const RUNS: usize = 5;

/// One command.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// What ran.
    pub call: String,
    /// Runs measured.
    pub runs: usize,
    /// Median wall time, ms.
    pub median_ms: f64,
    /// Slowest run, ms.
    pub max_ms: f64,
}

/// The whole benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always `cli`.
    pub benchmark: &'static str,
    /// RSA-2048 private decryptions per second on one core, this run.
    pub rsa2048_decrypt_per_s: f64,
    /// Cores.
    pub cores: usize,
    /// Results.
    pub rows: Vec<Row>,
}

/// Run `xlreg ARGS` (this executable), fail unless it succeeds; wall time
/// and stdout.
fn xlreg(args: &[&str], env_dir: &Path) -> anyhow::Result<(Duration, String)> {
    let exe = std::env::current_exe().context("cannot find the xlreg executable")?;
    let t = Instant::now();
    let out = Command::new(&exe)
        .args(args)
        .env("XDG_DATA_HOME", env_dir)
        .env_remove("XLREG_NODE_DIR")
        .env_remove("XLREG_REGCRED")
        .env("XLREG_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    let took = t.elapsed();
    if !out.status.success() {
        bail!(
            "xlreg {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((took, String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn row(call: &str, mut times: Vec<Duration>) -> Row {
    times.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    Row {
        call: call.to_string(),
        runs: times.len(),
        median_ms: times.get(times.len() / 2).map_or(0.0, ms),
        max_ms: times.last().map_or(0.0, ms),
    }
}

/// Measure the rows described in the module docs.
pub fn run() -> anyhow::Result<Report> {
    let rate = rsa2048_decrypt_rate();
    let (server, rc) = spawn_serve(Serve::DEFAULT)?;
    let work = tempfile::Builder::new()
        .prefix("xlreg-bench-cli-")
        .tempdir()?;
    let rc_path = work.path().join("regCred.dat");
    rc.save(&rc_path)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", rc_path.display()))?;
    let rcp = rc_path.to_str().context("temporary path is not UTF-8")?;
    let admin = work.path().join("admin");
    let admin_s = admin.to_str().context("temporary path is not UTF-8")?;
    let create = |name: &str| {
        xlreg(
            &[
                "create",
                "--regcred",
                rcp,
                name,
                "--size",
                "64",
                "--node-dir",
                admin_s,
                "--json",
            ],
            work.path(),
        )
    };
    let (first, out) = create("bench-cli-0")?;
    let cid = serde_json::from_str::<serde_json::Value>(&out)?["cluster_id"]
        .as_str()
        .context("create printed no cluster_id")?
        .to_string();
    let mut again = Vec::new();
    for i in 1..=RUNS {
        again.push(create(&format!("bench-cli-{i}"))?.0);
    }
    let node = work.path().join("node");
    let node_s = node.to_str().context("temporary path is not UTF-8")?;
    let join = || {
        xlreg(
            &[
                "join",
                "--regcred",
                rcp,
                "--cluster-id",
                &cid,
                "--node-dir",
                node_s,
                "--name",
                "bench",
                "--endpoint",
                "127.0.0.1:9",
                "--wait",
                "0",
                "--json",
            ],
            work.path(),
        )
    };
    let join_first = join()?.0;
    let mut join_again = Vec::new();
    for _ in 0..RUNS {
        join_again.push(join()?.0);
    }
    drop(server);
    Ok(Report {
        benchmark: "cli",
        rsa2048_decrypt_per_s: rate,
        cores: xlreg::testing::keys::default_threads(),
        rows: vec![
            row("create, first (generates the admin identity)", vec![first]),
            row("create, again (kept admin identity)", again),
            row(
                "join --wait 0, new node dir (generates keys)",
                vec![join_first],
            ),
            row("join --wait 0, saved identity, 63 slots empty", join_again),
        ],
    })
}

/// Human-readable table.
pub fn table(r: &Report) -> String {
    let mut s = super::rsa_reference_line(r.rsa2048_decrypt_per_s, r.cores);
    s.push_str("registry: `xlreg serve` defaults (persistent, RSA-2048, hold 1000 ms)\n\n");
    let w = r.rows.iter().map(|x| x.call.len()).max().unwrap_or(4);
    s.push_str(&format!(
        "{:<w$}  {:>4}  {:>9}  {:>9}\n",
        "CALL", "RUNS", "MEDIAN ms", "MAX ms"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:<w$}  {:>4}  {:>9.1}  {:>9.1}\n",
            row.call, row.runs, row.median_ms, row.max_ms
        ));
    }
    s
}
