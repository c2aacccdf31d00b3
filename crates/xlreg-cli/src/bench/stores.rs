//! `xlreg bench formation|throughput --store postgres://…`: the same
//! workload against SQLite (one server, DATA_DIR store) and PostgreSQL
//! with one and with two servers, side by side in one run, so the ratios
//! compare like with like on this machine.
//!
//! Setup: every server runs in this process with a 1024-bit registry key
//! and the default 1 s GetCluster hold; the SQLite one uses a persistent
//! data dir in a temporary directory, the PostgreSQL ones a scratch
//! database made on the given server (its user must be allowed to CREATE
//! DATABASE) and dropped afterwards. With two servers, members alternate:
//! member i lists server i mod 2 first. Clients and servers share the
//! machine's cores. PostgreSQL's CPU time (every `postgres` process on
//! this machine, read from /proc) is reported per session when the
//! database runs here.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::serve_proc::{call, cpu_time, presigned};
use xlreg::client::{BootOptions, ClientError, ClientOptions, ClusterSpec, Connection};
use xlreg::regcred::RegCred;
use xlreg::registry::postgres::PoolOptions;
use xlreg::server::{Server, ServerConfig};
use xlreg::testing::postgres::{PgGroup, TestDb};
use xlreg::testing::{self, keys, member_identity};
use xlreg::wire::{NodeId, Tag, Which, XlRegMsg};

/// Wall-time budget of one formation row.
const ROW_BUDGET: Duration = Duration::from_secs(8);
/// Clusters of 64 made before each throughput row (its session cap).
const THROUGHPUT_CLUSTERS: usize = 128;

/// Where the registry lives in one configuration.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub enum Backend {
    /// One server, SQLite in its data dir.
    Sqlite,
    /// `n` servers on one PostgreSQL database.
    Postgres(usize),
}

impl Backend {
    fn label(&self) -> String {
        match self {
            Backend::Sqlite => "sqlite x1".into(),
            Backend::Postgres(n) => format!("postgres x{n}"),
        }
    }
}

/// Every configuration measured, in order.
const BACKENDS: [Backend; 3] = [Backend::Sqlite, Backend::Postgres(1), Backend::Postgres(2)];

/// Running servers of one configuration.
struct Running {
    /// One regcred per server, that server first.
    regcreds: Vec<RegCred>,
    sqlite: Option<(Server, tempfile::TempDir)>,
    pg: Option<(PgGroup, TestDb)>,
}

impl Running {
    async fn start(b: Backend, url: &str) -> anyhow::Result<Running> {
        match b {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new().prefix("xlreg-bench-").tempdir()?;
                let s = Server::start(ServerConfig::persistent(dir.path().join("data"))).await?;
                Ok(Running {
                    regcreds: vec![s.regcred().clone()],
                    sqlite: Some((s, dir)),
                    pg: None,
                })
            }
            Backend::Postgres(n) => {
                let db = TestDb::create_on(url, "bench")
                    .await
                    .map_err(|e| anyhow::anyhow!("--store: {e}"))?;
                let pool = PoolOptions {
                    max_connections: 32,
                    ..Default::default()
                };
                let g = PgGroup::start(db.url(), n, ServerConfig::ephemeral(), pool).await?;
                Ok(Running {
                    regcreds: (0..n).map(|i| g.regcred_from(i)).collect(),
                    sqlite: None,
                    pg: Some((g, db)),
                })
            }
        }
    }

    async fn stop(self) {
        if let Some((s, _dir)) = self.sqlite {
            s.shutdown().await;
        }
        if let Some((g, db)) = self.pg {
            g.shutdown().await;
            drop(db);
        }
    }
}

/// CPU time of every `postgres` process on this machine (zero when none).
fn postgres_cpu() -> Duration {
    let mut total = Duration::ZERO;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return total;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            total += cpu_time(pid).unwrap_or_default();
        }
    }
    total
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One formation row.
#[derive(Clone, Debug, Serialize)]
pub struct FormationRow {
    /// `sqlite x1`, `postgres x1`, `postgres x2`.
    pub store: String,
    /// Members.
    pub members: u32,
    /// Runs measured.
    pub runs: usize,
    /// Fastest run, ms.
    pub min_ms: f64,
    /// Median run, ms.
    pub median_ms: f64,
    /// Slowest run, ms.
    pub max_ms: f64,
    /// Median over the SQLite median of the same size.
    pub vs_sqlite: f64,
}

/// The formation comparison.
#[derive(Clone, Debug, Serialize)]
pub struct FormationReport {
    /// Always `formation-stores`.
    pub benchmark: &'static str,
    /// Cores.
    pub cores: usize,
    /// Member key bits.
    pub key_bits: u32,
    /// Results.
    pub rows: Vec<FormationRow>,
}

/// Formation of clusters of each of `sizes` on every configuration.
pub async fn formation(
    url: &str,
    sizes: &[u32],
    bits: u32,
    runs: usize,
) -> anyhow::Result<FormationReport> {
    let max = sizes.iter().copied().max().unwrap_or(2) as usize;
    let premade = super::formation::Premade::generate(max, bits).await?;
    let admin = &premade.admin;
    let mut rows: Vec<FormationRow> = Vec::new();
    for b in BACKENDS {
        let r = Running::start(b, url).await?;
        for &size in sizes {
            let mut times = Vec::new();
            let row_start = Instant::now();
            for run in 0..=runs {
                let name = testing::unique_name("bench");
                let info = testing::create(
                    &r.regcreds[0],
                    admin,
                    &ClusterSpec::new(&name, size),
                    &ClientOptions::default(),
                )
                .await?;
                let mut set = tokio::task::JoinSet::new();
                let t = Instant::now();
                for i in 0..size as usize {
                    let node = premade.member(i)?;
                    let rc = r.regcreds[i % r.regcreds.len()].clone();
                    set.spawn(async move {
                        xlreg::client::boot(
                            &rc,
                            &xlreg::client::ClusterRef::Id(info.id),
                            &node,
                            &BootOptions::default(),
                        )
                        .await
                    });
                }
                let mut views = Vec::new();
                while let Some(v) = set.join_next().await {
                    views.push(v??);
                }
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
            let median = times.get(times.len() / 2).map_or(0.0, |d| ms(*d));
            let base = rows
                .iter()
                .find(|x| x.store == Backend::Sqlite.label() && x.members == size)
                .map_or(median, |x| x.median_ms);
            rows.push(FormationRow {
                store: b.label(),
                members: size,
                runs: times.len(),
                min_ms: times.first().map_or(0.0, |d| ms(*d)),
                median_ms: median,
                max_ms: times.last().map_or(0.0, |d| ms(*d)),
                vs_sqlite: if base > 0.0 { median / base } else { 0.0 },
            });
        }
        r.stop().await;
    }
    Ok(FormationReport {
        benchmark: "formation-stores",
        cores: keys::default_threads(),
        key_bits: bits,
        rows,
    })
}

/// Human-readable formation table.
pub fn formation_table(r: &FormationReport) -> String {
    let mut s = format!(
        "{} cores, {}-bit member keys; servers and clients in this process\n\n",
        r.cores, r.key_bits
    );
    s.push_str(&format!(
        "{:<12}  {:>7}  {:>4}  {:>9}  {:>9}  {:>9}  {:>9}\n",
        "STORE", "MEMBERS", "RUNS", "MIN ms", "MEDIAN ms", "MAX ms", "VS SQLITE"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:<12}  {:>7}  {:>4}  {:>9.1}  {:>9.1}  {:>9.1}  {:>8.2}x\n",
            row.store, row.members, row.runs, row.min_ms, row.median_ms, row.max_ms, row.vs_sqlite
        ));
    }
    s
}

/// One throughput row.
#[derive(Clone, Debug, Serialize)]
pub struct ThroughputRow {
    /// `sqlite x1`, `postgres x1`, `postgres x2`.
    pub store: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Sessions completed.
    pub sessions: usize,
    /// Sessions that failed.
    pub errors: usize,
    /// Seconds measured.
    pub seconds: f64,
    /// Sessions per second.
    pub sessions_per_s: f64,
    /// Over the SQLite rate at the same concurrency.
    pub vs_sqlite: f64,
    /// This process's CPU (servers and clients) per session, µs.
    pub xlreg_cpu_us: f64,
    /// PostgreSQL's CPU per session, µs (0 for SQLite, or a remote DB).
    pub postgres_cpu_us: f64,
}

/// The throughput comparison.
#[derive(Clone, Debug, Serialize)]
pub struct ThroughputReport {
    /// Always `throughput-stores`.
    pub benchmark: &'static str,
    /// Cores.
    pub cores: usize,
    /// Results.
    pub rows: Vec<ThroughputRow>,
}

async fn session(
    rc: &RegCred,
    opts: &ClientOptions,
    member: &XlRegMsg,
    cluster: &NodeId,
) -> Result<(), ClientError> {
    let mut c = Connection::open(rc, opts).await?;
    call(&mut c, member, Tag::MemberOk).await?;
    call(&mut c, &XlRegMsg::join_by_id(cluster), Tag::JoinReply).await?;
    call(
        &mut c,
        &XlRegMsg::get_cluster(cluster, Which(1)),
        Tag::ClusterMembers,
    )
    .await?;
    call(&mut c, &XlRegMsg::bye(), Tag::Ack).await?;
    c.close().await;
    Ok(())
}

/// Complete member sessions per second (Hello, Member, Join, GetCluster
/// of member 0, Bye; sessions alternate servers) on every configuration.
pub async fn throughput(
    url: &str,
    levels: &[usize],
    seconds: f64,
) -> anyhow::Result<ThroughputReport> {
    const PER: usize = 64;
    let mut members = presigned(PER, 1024).await?;
    let threads = keys::default_threads();
    let ak = tokio::task::spawn_blocking(move || {
        keys::generate_keys(2, 1024, keys::KeyGen::Fast, threads, &|| {})
    })
    .await??;
    let admin = member_identity("admin", ak[0].clone(), ak[1].clone(), vec![])?;
    members.truncate(PER);
    let members = Arc::new(members);
    let duration = Duration::from_secs_f64(seconds);
    let mut rows: Vec<ThroughputRow> = Vec::new();
    for b in BACKENDS {
        let r = Running::start(b, url).await?;
        for &clients in levels {
            let mut clusters = Vec::with_capacity(THROUGHPUT_CLUSTERS);
            for _ in 0..THROUGHPUT_CLUSTERS {
                let name = testing::unique_name("tp");
                let rc = &r.regcreds[0];
                clusters.push(
                    testing::create(
                        rc,
                        &admin,
                        &ClusterSpec::new(&name, PER as u32),
                        &ClientOptions::default(),
                    )
                    .await?
                    .id,
                );
            }
            let clusters = Arc::new(clusters);
            let (next, done, errors) = (
                Arc::new(AtomicUsize::new(0)),
                Arc::new(AtomicUsize::new(0)),
                Arc::new(AtomicUsize::new(0)),
            );
            let stop = Arc::new(AtomicBool::new(false));
            let (pg0, me0) = (postgres_cpu(), cpu_time(std::process::id())?);
            let t0 = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..clients {
                let (rcs, members, clusters) =
                    (r.regcreds.clone(), members.clone(), clusters.clone());
                let (next, done, errors, stop) =
                    (next.clone(), done.clone(), errors.clone(), stop.clone());
                tasks.spawn(async move {
                    let opts = ClientOptions::default();
                    while !stop.load(Ordering::Relaxed) {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= clusters.len() * PER {
                            break;
                        }
                        let rc = &rcs[k % rcs.len()];
                        let m = &members[k % PER].member;
                        match session(rc, &opts, m, &clusters[k / PER]).await {
                            Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                tracing::debug!("session {k}: {e}");
                                errors.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                });
            }
            let deadline = tokio::time::sleep(duration);
            tokio::pin!(deadline);
            // Stop at the deadline, or earlier when every slot is used.
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    r = tasks.join_next() => if r.is_none() { break },
                }
            }
            stop.store(true, Ordering::Relaxed);
            while tasks.join_next().await.is_some() {}
            let secs = t0.elapsed().as_secs_f64();
            let pg = postgres_cpu().saturating_sub(pg0).as_secs_f64();
            let me = cpu_time(std::process::id())?
                .saturating_sub(me0)
                .as_secs_f64();
            let sessions = done.load(Ordering::Relaxed);
            let per = |cpu: f64| {
                if sessions > 0 {
                    cpu * 1e6 / sessions as f64
                } else {
                    0.0
                }
            };
            let per_s = sessions as f64 / secs;
            let base = rows
                .iter()
                .find(|x| x.store == Backend::Sqlite.label() && x.clients == clients)
                .map_or(per_s, |x| x.sessions_per_s);
            rows.push(ThroughputRow {
                store: b.label(),
                clients,
                sessions,
                errors: errors.load(Ordering::Relaxed),
                seconds: secs,
                sessions_per_s: per_s,
                vs_sqlite: if base > 0.0 { per_s / base } else { 0.0 },
                xlreg_cpu_us: per(me),
                postgres_cpu_us: if b == Backend::Sqlite { 0.0 } else { per(pg) },
            });
        }
        r.stop().await;
    }
    Ok(ThroughputReport {
        benchmark: "throughput-stores",
        cores: keys::default_threads(),
        rows,
    })
}

/// Human-readable throughput table.
pub fn throughput_table(r: &ThroughputReport) -> String {
    let mut s = format!(
        "{} cores; servers and clients in this process; sessions: Hello, Member, Join, \
         GetCluster (member 0), Bye\n\n",
        r.cores
    );
    s.push_str(&format!(
        "{:<12}  {:>7}  {:>8}  {:>6}  {:>10}  {:>9}  {:>14}  {:>14}\n",
        "STORE",
        "CLIENTS",
        "SESSIONS",
        "ERRORS",
        "SESSIONS/s",
        "VS SQLITE",
        "XLREG µs/ses",
        "POSTGRES µs/ses"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:<12}  {:>7}  {:>8}  {:>6}  {:>10.0}  {:>8.2}x  {:>14.0}  {:>14.0}\n",
            row.store,
            row.clients,
            row.sessions,
            row.errors,
            row.sessions_per_s,
            row.vs_sqlite,
            row.xlreg_cpu_us,
            row.postgres_cpu_us
        ));
    }
    s
}
