//! `xlreg bench soak`: a registry under steady load for minutes, to see
//! that it stays up and that its memory follows what it stores, not how
//! long it has run.
//!
//! A default `xlreg serve` child process (data directory, 2048-bit key,
//! default logging and hold) is driven over loopback by concurrent
//! clients. Each client loops: one session registers, creates a cluster
//! of `members` and joins it; one session per further member registers and
//! joins; one more session registers and reads the whole cluster
//! (GetCluster). Member messages are signed beforehand (fresh node IDs per
//! session), so clients spend no CPU on RSA signing. Every sample interval
//! the run prints sessions/s, p50/p99 session latency and the server's
//! resident set (`VmRSS` in /proc/PID/status).
//!
//! Two phases, each half of `--minutes`, each with a fresh server:
//! **TTL on** (`--cluster-ttl`, default 30 s: clusters expire behind the
//! load, so the stored state and the RSS level off; the slope of RSS over
//! the phase's second half is printed) and **TTL off** (every cluster
//! stays; RSS growth is printed against the raw bytes of the member tokens
//! stored). Bounded in time (the phases) and in count (at most
//! [`MAX_CLUSTERS`] clusters per phase).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::rsa2048_decrypt_rate;
use super::serve_proc::{call, presigned, rss, spawn_serve, Serve};
use xlreg::client::{ClientError, ClientOptions, Connection};
use xlreg::regcred::RegCred;
use xlreg::wire::{NodeId, Tag, Which, XlRegMsg};

/// Most clusters one phase creates, whatever its duration.
pub const MAX_CLUSTERS: u64 = 2_000_000;

/// One sample interval.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the phase started (end of the interval).
    pub t_s: f64,
    /// Complete sessions per second in the interval.
    pub sessions_per_s: f64,
    /// Median session latency in the interval, ms.
    pub p50_ms: f64,
    /// 99th percentile session latency in the interval, ms.
    pub p99_ms: f64,
    /// Server VmRSS at the end of the interval, MiB.
    pub rss_mib: f64,
    /// Clusters created so far in the phase.
    pub clusters: u64,
}

/// One phase (TTL on or off).
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    /// `--cluster-ttl` given to the server (`never`: TTL off).
    pub cluster_ttl: String,
    /// Samples, in order.
    pub samples: Vec<Sample>,
    /// Sessions completed.
    pub sessions: u64,
    /// Sessions that failed (the phase stops at the first).
    pub errors: u64,
    /// Clusters created and filled.
    pub clusters: u64,
    /// Sessions per second over the phase.
    pub sessions_per_s: f64,
    /// Session latency over the whole phase: median and 99th percentile, ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// Server RSS right after start, MiB.
    pub rss_start_mib: f64,
    /// Server RSS at the end, MiB.
    pub rss_end_mib: f64,
    /// Least-squares slope of RSS over the phase's second half, MiB/min.
    pub rss_slope_mib_per_min: f64,
    /// Raw bytes of the member tokens stored if nothing expired, MiB.
    pub stored_raw_mib: f64,
}

/// The result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always `soak`.
    pub benchmark: &'static str,
    /// RSA-2048 private decryptions per second on one core, this run.
    pub rsa2048_decrypt_per_s: f64,
    /// Cores.
    pub cores: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Members per cluster.
    pub members: usize,
    /// The phases: TTL on, then TTL off.
    pub phases: Vec<Phase>,
}

/// Latencies (µs) of the sessions completed since the last sample.
#[derive(Default)]
struct Window {
    lat_us: Vec<u32>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// Least-squares slope of (x, y) points (0 for fewer than two).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

fn fresh(m: &XlRegMsg) -> XlRegMsg {
    let mut m = m.clone();
    if let Some(t) = m.member_specs.as_mut() {
        t.id = Some(NodeId::random().as_bytes().to_vec());
    }
    m
}

/// One timed session: open, run `f`, Bye, close.
async fn session<F, Fut>(
    rc: &RegCred,
    opts: &ClientOptions,
    win: &Mutex<Window>,
    sessions: &AtomicU64,
    f: F,
) -> Result<(), ClientError>
where
    F: FnOnce(Connection) -> Fut,
    Fut: std::future::Future<Output = Result<Connection, ClientError>>,
{
    let t = Instant::now();
    let s = Connection::open(rc, opts).await?;
    let mut s = f(s).await?;
    call(&mut s, &XlRegMsg::bye(), Tag::Ack).await?;
    s.close().await;
    let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
    win.lock().expect("window").lat_us.push(us);
    sessions.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Create, fill and read one cluster.
async fn cycle(
    rc: &RegCred,
    opts: &ClientOptions,
    members: &[XlRegMsg],
    reader: &XlRegMsg,
    name: String,
    win: &Mutex<Window>,
    sessions: &AtomicU64,
) -> Result<(), ClientError> {
    let size = members.len() as u32;
    let id = Arc::new(Mutex::new(None::<NodeId>));
    let slot = id.clone();
    session(rc, opts, win, sessions, |mut s| async move {
        call(&mut s, &fresh(&members[0]), Tag::MemberOk).await?;
        let r = call(
            &mut s,
            &XlRegMsg::create(&name, size, 0, 1),
            Tag::CreateReply,
        )
        .await?;
        let cid = NodeId::from_bytes(r.cluster_id.as_deref().unwrap_or_default())?;
        call(&mut s, &XlRegMsg::join_by_id(&cid), Tag::JoinReply).await?;
        *slot.lock().expect("id") = Some(cid);
        Ok(s)
    })
    .await?;
    let cid = id.lock().expect("id").expect("set by the create session");
    for m in &members[1..] {
        session(rc, opts, win, sessions, |mut s| async move {
            call(&mut s, &fresh(m), Tag::MemberOk).await?;
            call(&mut s, &XlRegMsg::join_by_id(&cid), Tag::JoinReply).await?;
            Ok(s)
        })
        .await?;
    }
    session(rc, opts, win, sessions, |mut s| async move {
        call(&mut s, &fresh(reader), Tag::MemberOk).await?;
        let r = call(
            &mut s,
            &XlRegMsg::get_cluster(&cid, Which::ALL),
            Tag::ClusterMembers,
        )
        .await?;
        if r.tokens.len() != size as usize {
            return Err(ClientError::BadReply(format!(
                "GetCluster listed {} of {size} members",
                r.tokens.len()
            )));
        }
        Ok(s)
    })
    .await
}

async fn phase(
    ttl: &'static str,
    seconds: f64,
    clients: usize,
    members: &Arc<Vec<XlRegMsg>>,
    reader: &XlRegMsg,
    token_bytes: usize,
    sample_every: Duration,
) -> anyhow::Result<Phase> {
    let how = Serve {
        cluster_ttl: Some(ttl),
        ..Serve::DEFAULT
    };
    let (server, rc) = tokio::task::spawn_blocking(move || spawn_serve(how)).await??;
    let pid = server.child.id();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let rss_start = mib(rss(pid)?.1);
    let win = Arc::new(Mutex::new(Window::default()));
    let sessions = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t0 = Instant::now();
    let budget = Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (rc, members, reader) = (rc.clone(), members.clone(), reader.clone());
        let (win, sessions, next, done, stop) = (
            win.clone(),
            sessions.clone(),
            next.clone(),
            done.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            let opts = ClientOptions::default();
            loop {
                if stop.load(Ordering::Relaxed) || t0.elapsed() >= budget {
                    return Ok::<(), ClientError>(());
                }
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= MAX_CLUSTERS {
                    return Ok(());
                }
                let name = format!("soak-{c:08}");
                if let Err(e) = cycle(&rc, &opts, &members, &reader, name, &win, &sessions).await {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut samples = Vec::new();
    let mut all_lat: Vec<u32> = Vec::new();
    let mut last_t = 0.0;
    let mut last_sessions = 0;
    loop {
        let left = budget.saturating_sub(t0.elapsed());
        if !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(sample_every.min(left)).await;
        }
        let mut lat = std::mem::take(&mut win.lock().expect("window").lat_us);
        lat.sort_unstable();
        let t = t0.elapsed().as_secs_f64();
        let n = sessions.load(Ordering::Relaxed);
        let s = Sample {
            t_s: t,
            sessions_per_s: (n - last_sessions) as f64 / (t - last_t).max(1e-9),
            p50_ms: percentile(&lat, 0.5),
            p99_ms: percentile(&lat, 0.99),
            rss_mib: mib(rss(pid)?.1),
            clusters: done.load(Ordering::Relaxed),
        };
        eprintln!(
            "  ttl {ttl:>5}  {:>6.0} s  {:>6.0} sessions/s  p50 {:>6.1} ms  p99 {:>7.1} ms  RSS {:>6.1} MiB  {} clusters",
            s.t_s, s.sessions_per_s, s.p50_ms, s.p99_ms, s.rss_mib, s.clusters
        );
        all_lat.extend_from_slice(&lat);
        samples.push(s);
        (last_t, last_sessions) = (t, n);
        if t0.elapsed() >= budget || stop.load(Ordering::Relaxed) {
            break;
        }
    }
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r.context("soak client")? {
            errors += 1;
            eprintln!("  a session failed: {e}");
        }
    }
    all_lat.sort_unstable();
    let rss_end = mib(rss(pid)?.1);
    drop(server);
    let half = seconds / 2.0;
    let pts: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t_s >= half)
        .map(|s| (s.t_s / 60.0, s.rss_mib))
        .collect();
    let clusters = done.load(Ordering::Relaxed);
    let n = sessions.load(Ordering::Relaxed);
    Ok(Phase {
        cluster_ttl: ttl.to_string(),
        samples,
        sessions: n,
        errors,
        clusters,
        sessions_per_s: n as f64 / t0.elapsed().as_secs_f64().max(1e-9),
        p50_ms: percentile(&all_lat, 0.5),
        p99_ms: percentile(&all_lat, 0.99),
        rss_start_mib: rss_start,
        rss_end_mib: rss_end,
        rss_slope_mib_per_min: slope(&pts),
        stored_raw_mib: mib(clusters * members.len() as u64 * token_bytes as u64),
    })
}

/// Run both phases, `minutes` in all, with `clients` concurrent clients and
/// clusters of `members`; clusters expire after `ttl` in the first phase.
pub async fn run(
    minutes: f64,
    ttl: &'static str,
    clients: usize,
    members: usize,
) -> anyhow::Result<Report> {
    if !(2..=64).contains(&members) {
        bail!("members per cluster must be in 2..=64");
    }
    if !(1..=256).contains(&clients) {
        bail!("clients must be in 1..=256");
    }
    let rate = tokio::task::spawn_blocking(rsa2048_decrypt_rate).await?;
    let mut signed: Vec<XlRegMsg> = presigned(members + 1, 2048)
        .await?
        .into_iter()
        .map(|p| p.member)
        .collect();
    let reader = signed.pop().expect("members + 1 signed");
    let token_bytes = {
        let mut t = signed[0].member_specs.clone().unwrap_or_default();
        t.dig_sig = None;
        t.id = Some(NodeId::random().as_bytes().to_vec());
        prost::Message::encoded_len(&t)
    };
    let signed = Arc::new(signed);
    let per_phase = minutes * 60.0 / 2.0;
    // About 20 samples a phase, at least 2 s apart.
    let every = Duration::from_secs_f64((per_phase / 20.0).max(2.0));
    let mut phases = Vec::new();
    for t in [ttl, "never"] {
        eprintln!("soak phase: --cluster-ttl {t}, {per_phase:.0} s, {clients} clients");
        phases.push(phase(t, per_phase, clients, &signed, &reader, token_bytes, every).await?);
    }
    Ok(Report {
        benchmark: "soak",
        rsa2048_decrypt_per_s: rate,
        cores: xlreg::testing::keys::default_threads(),
        clients,
        members,
        phases,
    })
}

/// Human-readable summary: per phase, the samples and the totals.
pub fn table(r: &Report) -> String {
    let mut out = super::rsa_reference_line(r.rsa2048_decrypt_per_s, r.cores);
    out.push_str(&format!(
        "{} clients; each cycle: create + {} joins + 1 GetCluster = {} sessions\n",
        r.clients,
        r.members,
        r.members + 1
    ));
    for p in &r.phases {
        out.push_str(&format!(
            "\n--cluster-ttl {}\n     t  sessions/s   p50 ms   p99 ms  RSS MiB  clusters\n",
            p.cluster_ttl
        ));
        for s in &p.samples {
            out.push_str(&format!(
                "{:>5.0}s  {:>10.0}  {:>7.1}  {:>7.1}  {:>7.1}  {:>8}\n",
                s.t_s, s.sessions_per_s, s.p50_ms, s.p99_ms, s.rss_mib, s.clusters
            ));
        }
        out.push_str(&format!(
            "total: {} sessions ({:.0}/s), {} errors, {} clusters; p50 {:.1} ms, p99 {:.1} ms\n\
             RSS {:.1} -> {:.1} MiB; slope over the second half {:+.2} MiB/min; \
             member tokens created {:.1} MiB raw (RSS growth / that: {:.2}x)\n",
            p.sessions,
            p.sessions_per_s,
            p.errors,
            p.clusters,
            p.p50_ms,
            p.p99_ms,
            p.rss_start_mib,
            p.rss_end_mib,
            p.rss_slope_mib_per_min,
            p.stored_raw_mib,
            (p.rss_end_mib - p.rss_start_mib) / p.stored_raw_mib.max(1e-9)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_flat_points() {
        assert!((slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) - 2.0).abs() < 1e-9);
        assert_eq!(slope(&[(0.0, 4.0), (1.0, 4.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 4.0)]), 0.0);
    }

    #[test]
    fn percentiles_pick_from_sorted_latencies() {
        let v: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
