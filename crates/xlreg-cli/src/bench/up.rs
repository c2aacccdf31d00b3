//! `xlreg bench up`: `xlreg up --size N` end to end, as a user runs it —
//! a new process each time (start-up, key generation on every core, the
//! embedded registry, formation, the printed JSON, shutdown), cold (no key
//! pool), with 1024-bit and 2048-bit member keys; plus the same with a
//! warm `--key-pool`. The registry is the one `xlreg up` embeds: in
//! memory, with a fresh RSA-1024 key (the table says so).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::rsa2048_decrypt_rate;

/// Wall-time budget of one row.
pub const ROW_BUDGET: Duration = Duration::from_secs(30);

/// One configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Members.
    pub members: u32,
    /// Member key size.
    pub key_bits: u32,
    /// `cold` or `pool` (keys read from a warm `--key-pool`).
    pub keys: &'static str,
    /// Runs measured.
    pub runs: usize,
    /// Median wall time of the whole process, s.
    pub wall_median_s: f64,
    /// Slowest run, s.
    pub wall_max_s: f64,
    /// Median key generation time `up` reported, s.
    pub keygen_median_s: f64,
    /// Median formation time `up` reported, s.
    pub formation_median_s: f64,
}

/// The whole benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always `up`.
    pub benchmark: &'static str,
    /// RSA-2048 private decryptions per second on one core, this run.
    pub rsa2048_decrypt_per_s: f64,
    /// Cores.
    pub cores: usize,
    /// Results.
    pub rows: Vec<Row>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Run `exe up --size size --key-bits bits --json [--key-pool pool]` once:
/// (wall s, keygen s, formation s).
fn once(exe: &PathBuf, size: u32, bits: u32, pool: Option<&PathBuf>) -> anyhow::Result<[f64; 3]> {
    let mut c = Command::new(exe);
    c.args(["up", "--json", "--log", "warn", "--size"])
        .arg(size.to_string())
        .arg("--key-bits")
        .arg(bits.to_string())
        .env_remove("XLREG_KEY_POOL")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(p) = pool {
        c.arg("--key-pool").arg(p);
    }
    let t = Instant::now();
    let out = c
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    let wall = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("xlreg up exited with {}", out.status);
    }
    let j: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("xlreg up printed no JSON")?;
    let members = j["members"].as_array().map_or(0, Vec::len);
    if members != size as usize {
        bail!("xlreg up printed {members} members, expected {size}");
    }
    let t = &j["timings"];
    Ok([
        wall,
        t["keygen_s"].as_f64().unwrap_or(0.0),
        t["formation_s"].as_f64().unwrap_or(0.0),
    ])
}

/// Measure `runs` runs of each key size (bounded by [`ROW_BUDGET`] per
/// row), cold and with a warm pool.
pub fn run(size: u32, key_bits: &[u32], runs: usize) -> anyhow::Result<Report> {
    let exe = std::env::current_exe().context("cannot find the xlreg executable")?;
    let rate = rsa2048_decrypt_rate();
    let pool = tempfile::Builder::new()
        .prefix("xlreg-bench-pool-")
        .tempdir()?;
    let mut rows = Vec::new();
    for &bits in key_bits {
        for warm in [false, true] {
            let pool_dir = warm.then(|| pool.path().to_path_buf());
            if let Some(p) = &pool_dir {
                once(&exe, size, bits, Some(p))?; // fill the pool
            }
            let start = Instant::now();
            let mut r: [Vec<f64>; 3] = Default::default();
            for _ in 0..runs.max(1) {
                let x = once(&exe, size, bits, pool_dir.as_ref())?;
                for (v, x) in r.iter_mut().zip(x) {
                    v.push(x);
                }
                if start.elapsed() > ROW_BUDGET {
                    break;
                }
            }
            let n = r[0].len();
            let max = r[0].iter().copied().fold(0.0, f64::max);
            rows.push(Row {
                members: size,
                key_bits: bits,
                keys: if warm { "pool" } else { "cold" },
                runs: n,
                wall_median_s: median(&mut r[0]),
                wall_max_s: max,
                keygen_median_s: median(&mut r[1]),
                formation_median_s: median(&mut r[2]),
            });
        }
    }
    Ok(Report {
        benchmark: "up",
        rsa2048_decrypt_per_s: rate,
        cores: xlreg::testing::keys::default_threads(),
        rows,
    })
}

/// Human-readable table.
pub fn table(r: &Report) -> String {
    let mut s = super::rsa_reference_line(r.rsa2048_decrypt_per_s, r.cores);
    s.push_str("registry: embedded by `xlreg up`, in memory, RSA-1024 key\n\n");
    s.push_str(&format!(
        "{:>7}  {:>8}  {:>4}  {:>4}  {:>10}  {:>7}  {:>8}  {:>11}\n",
        "MEMBERS", "KEY BITS", "KEYS", "RUNS", "WALL med s", "max s", "KEYGEN s", "FORMATION s"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:>7}  {:>8}  {:>4}  {:>4}  {:>10.3}  {:>7.3}  {:>8.3}  {:>11.3}\n",
            row.members,
            row.key_bits,
            row.keys,
            row.runs,
            row.wall_median_s,
            row.wall_max_s,
            row.keygen_median_s,
            row.formation_median_s
        ));
    }
    s
}
