//! `xlreg bench formation`: how long until every member of a new cluster
//! holds the complete view, with keys made beforehand.
//!
//! One in-process registry (in memory, GetCluster held up to 1 s) with
//! the 2048-bit registry key `xlreg serve` makes by default (each row names
//! it) and, per run, a new
//! cluster created beforehand; then all members boot at once through the
//! client library ([`xlreg::client::boot()`]: Hello, Member, Join, held
//! GetCluster, Bye), each on its own connection over loopback. The time
//! is from the start of the boots to the last member's complete view; it
//! includes each member signing its token. Members reuse one set of keys
//! across runs (distinct within a cluster) and get fresh node IDs.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::rsa2048_decrypt_rate;
use xlreg::client::{BootOptions, ClientOptions};
use xlreg::server::ServerConfig;
use xlreg::testing::{self, keys, member_identity, LocalRegistry};

/// The registry's key size: what `xlreg serve` generates by default.
pub const REGISTRY_KEY_BITS: u32 = 2048;

/// Wall-time budget of one row: a row stops after this even if runs are
/// left.
pub const ROW_BUDGET: Duration = Duration::from_secs(10);

/// One cluster size and key size.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Members.
    pub members: u32,
    /// Member key size.
    pub key_bits: u32,
    /// The registry's key size (every Hello is decrypted with it).
    pub registry_key_bits: u32,
    /// Runs measured.
    pub runs: usize,
    /// Fastest run, ms.
    pub min_ms: f64,
    /// Median run, ms.
    pub median_ms: f64,
    /// Slowest run, ms.
    pub max_ms: f64,
}

/// The whole benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always `formation`.
    pub benchmark: &'static str,
    /// RSA-2048 private decryptions per second on one core, this run.
    pub rsa2048_decrypt_per_s: f64,
    /// Cores.
    pub cores: usize,
    /// Results.
    pub rows: Vec<Row>,
}

/// Measure clusters of each of `sizes` with each of `key_bits`, `runs`
/// times each (bounded by [`ROW_BUDGET`] per row).
pub async fn run(sizes: &[u32], key_bits: &[u32], runs: usize) -> anyhow::Result<Report> {
    let rate = tokio::task::spawn_blocking(rsa2048_decrypt_rate).await?;
    let registry = LocalRegistry::start_with(ServerConfig {
        key_bits: REGISTRY_KEY_BITS,
        ..ServerConfig::ephemeral()
    })
    .await?;
    let rc = registry.regcred().clone();
    let max = sizes.iter().copied().max().unwrap_or(2) as usize;
    let mut rows = Vec::new();
    for &bits in key_bits {
        let premade = Premade::generate(max, bits).await?;
        let admin = &premade.admin;
        for &size in sizes {
            let mut times = Vec::new();
            let row_start = Instant::now();
            // One warm-up run, not counted.
            for run in 0..=runs {
                let name = testing::unique_name("bench");
                let info = testing::create(
                    &rc,
                    admin,
                    &xlreg::client::ClusterSpec::new(name.clone(), size),
                    &ClientOptions::default(),
                )
                .await?;
                let nodes = (0..size as usize)
                    .map(|i| premade.member(i))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let t = Instant::now();
                let views =
                    testing::boot_all(&rc, info.id, &nodes, &BootOptions::default(), &None).await?;
                let took = t.elapsed();
                testing::check_views(&views, size as usize)?;
                if run > 0 {
                    times.push(took);
                }
                if row_start.elapsed() > ROW_BUDGET {
                    break;
                }
            }
            times.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            rows.push(Row {
                members: size,
                key_bits: bits,
                registry_key_bits: REGISTRY_KEY_BITS,
                runs: times.len(),
                min_ms: times.first().map_or(0.0, |d| ms(*d)),
                median_ms: times.get(times.len() / 2).map_or(0.0, |d| ms(*d)),
                max_ms: times.last().map_or(0.0, |d| ms(*d)),
            });
        }
    }
    registry.stop().await;
    Ok(Report {
        benchmark: "formation",
        rsa2048_decrypt_per_s: rate,
        cores: keys::default_threads(),
        rows,
    })
}

/// Human-readable table.
pub fn table(r: &Report) -> String {
    let mut s = super::rsa_reference_line(r.rsa2048_decrypt_per_s, r.cores);
    s.push_str(&format!(
        "{:>7}  {:>8}  {:>12}  {:>4}  {:>9}  {:>9}  {:>9}\n",
        "MEMBERS", "KEY BITS", "REGISTRY KEY", "RUNS", "MIN ms", "MEDIAN ms", "MAX ms"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:>7}  {:>8}  {:>12}  {:>4}  {:>9.1}  {:>9.1}  {:>9.1}\n",
            row.members,
            row.key_bits,
            format!("RSA-{}", row.registry_key_bits),
            row.runs,
            row.min_ms,
            row.median_ms,
            row.max_ms
        ));
    }
    s
}

/// Keys made before anything is timed: a comms and a sig key for each of up
/// to `max` members, and an admin identity (1024-bit) that creates clusters.
pub(crate) struct Premade {
    keys: Vec<xlreg::wire::PrivateKey>,
    /// The identity that creates the clusters.
    pub admin: xlreg::client::NodeIdentity,
}

impl Premade {
    /// Generate `2 * max` member keys of `bits` bits, and the admin's.
    pub async fn generate(max: usize, bits: u32) -> anyhow::Result<Self> {
        let threads = keys::default_threads();
        let keys = tokio::task::spawn_blocking(move || {
            keys::generate_sized(
                &[vec![bits; 2 * max], vec![1024; 2]].concat(),
                keys::KeyGen::Fast,
                threads,
                &|| {},
            )
        })
        .await??;
        let admin = member_identity(
            "admin",
            keys[2 * max].clone(),
            keys[2 * max + 1].clone(),
            vec![],
        )?;
        Ok(Premade { keys, admin })
    }

    /// Member `i` (name `mNN`, one endpoint on 127.0.0.1:20000+i).
    pub fn member(&self, i: usize) -> anyhow::Result<xlreg::client::NodeIdentity> {
        Ok(member_identity(
            &testing::member_name(i),
            self.keys[2 * i].clone(),
            self.keys[2 * i + 1].clone(),
            vec![format!("127.0.0.1:{}", 20000 + i)],
        )?)
    }
}
