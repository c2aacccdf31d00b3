//! `xlreg bench memory`: the registry's peak memory holding many clusters,
//! against the raw bytes of the member tokens it stores.
//!
//! A separate `xlreg serve` process (persistent data dir in a temporary
//! directory, default logging and hold, 1024-bit registry key) is filled over loopback by
//! 32 concurrent clients: per cluster, one session registers, creates the
//! cluster and joins it, and one session per further member registers and
//! joins. Member tokens carry 2048-bit keys (what Go clients use) and one
//! endpoint; every membership has a fresh node ID. Then the server's peak
//! resident set (`VmHWM` in /proc/PID/status) is compared with the sum of
//! the encoded tokens it stores (each as ClusterMembers sends it).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::rsa2048_decrypt_rate;
use super::serve_proc::{call, presigned, rss, spawn_serve, Serve};
use xlreg::client::{ClientError, ClientOptions, Connection};
use xlreg::regcred::RegCred;
use xlreg::wire::{NodeId, Tag, XlRegMsg};

/// The server measured: persistent and default logging, but a 1024-bit
/// registry key (memory does not depend on it; filling is 4x faster).
const MEMORY_SERVE: Serve = Serve {
    key_bits: 1024,
    ..Serve::DEFAULT
};

/// Concurrent clients filling the registry.
const CLIENTS: usize = 32;
/// Filling stops after this, whatever is left.
pub const FILL_BUDGET: Duration = Duration::from_secs(600);

/// The result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always `memory`.
    pub benchmark: &'static str,
    /// RSA-2048 private decryptions per second on one core, this run.
    pub rsa2048_decrypt_per_s: f64,
    /// Cores.
    pub cores: usize,
    /// Clusters filled.
    pub clusters: usize,
    /// Members per cluster.
    pub members_per_cluster: usize,
    /// Memberships stored.
    pub memberships: usize,
    /// Bytes of one stored token.
    pub token_bytes: usize,
    /// Sum of the stored tokens' bytes.
    pub raw_token_bytes: u64,
    /// Server RSS right after start, bytes.
    pub baseline_rss_bytes: u64,
    /// Server peak RSS (VmHWM) after filling, bytes.
    pub peak_rss_bytes: u64,
    /// Server RSS after filling, bytes.
    pub final_rss_bytes: u64,
    /// peak RSS / raw token bytes.
    pub peak_over_raw: f64,
    /// (peak − baseline) / raw token bytes.
    pub growth_over_raw: f64,
    /// Seconds spent filling.
    pub fill_seconds: f64,
    /// Sessions per second while filling.
    pub fill_sessions_per_s: f64,
}

async fn fill_cluster(
    rc: &RegCred,
    opts: &ClientOptions,
    members: &[XlRegMsg],
    c: usize,
) -> Result<(), ClientError> {
    let with_fresh_id = |m: &XlRegMsg| {
        let mut m = m.clone();
        if let Some(t) = m.member_specs.as_mut() {
            t.id = Some(NodeId::random().as_bytes().to_vec());
        }
        m
    };
    let mut s = Connection::open(rc, opts).await?;
    call(&mut s, &with_fresh_id(&members[0]), Tag::MemberOk).await?;
    let name = format!("mem-{c:06}");
    let r = call(
        &mut s,
        &XlRegMsg::create(&name, members.len() as u32, 0, 1),
        Tag::CreateReply,
    )
    .await?;
    let id = NodeId::from_bytes(r.cluster_id.as_deref().unwrap_or_default())?;
    call(&mut s, &XlRegMsg::join_by_id(&id), Tag::JoinReply).await?;
    call(&mut s, &XlRegMsg::bye(), Tag::Ack).await?;
    s.close().await;
    for m in &members[1..] {
        let mut s = Connection::open(rc, opts).await?;
        call(&mut s, &with_fresh_id(m), Tag::MemberOk).await?;
        call(&mut s, &XlRegMsg::join_by_id(&id), Tag::JoinReply).await?;
        call(&mut s, &XlRegMsg::bye(), Tag::Ack).await?;
        s.close().await;
    }
    Ok(())
}

/// Fill a fresh server with `clusters` × `per_cluster` members and report.
pub async fn run(clusters: usize, per_cluster: usize) -> anyhow::Result<Report> {
    if !(2..=64).contains(&per_cluster) {
        bail!("members per cluster must be in 2..=64");
    }
    let rate = tokio::task::spawn_blocking(rsa2048_decrypt_rate).await?;
    let members: Vec<XlRegMsg> = presigned(per_cluster, 2048)
        .await?
        .into_iter()
        .map(|p| p.member)
        .collect();
    let token_bytes = {
        let mut t = members[0].member_specs.clone().unwrap_or_default();
        t.dig_sig = None;
        t.id = Some(NodeId::random().as_bytes().to_vec());
        prost::Message::encoded_len(&t)
    };
    let (server, rc) = tokio::task::spawn_blocking(|| spawn_serve(MEMORY_SERVE)).await??;
    let pid = server.child.id();
    let (_, baseline) = rss(pid)?;
    let members = Arc::new(members);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (rc, members, next, done, failed) = (
            rc.clone(),
            members.clone(),
            next.clone(),
            done.clone(),
            failed.clone(),
        );
        tasks.spawn(async move {
            let opts = ClientOptions::default();
            loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= clusters || failed.load(Ordering::Relaxed) || t0.elapsed() > FILL_BUDGET {
                    return Ok(());
                }
                if let Err(e) = fill_cluster(&rc, &opts, &members, c).await {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r?.context("filling the registry")?;
    }
    let fill = t0.elapsed().as_secs_f64();
    let filled = done.load(Ordering::Relaxed);
    let (peak, now) = rss(pid)?;
    drop(server);
    let memberships = filled * per_cluster;
    let raw = (memberships * token_bytes) as u64;
    let ratio = |x: u64| if raw > 0 { x as f64 / raw as f64 } else { 0.0 };
    Ok(Report {
        benchmark: "memory",
        rsa2048_decrypt_per_s: rate,
        cores: xlreg::testing::keys::default_threads(),
        clusters: filled,
        members_per_cluster: per_cluster,
        memberships,
        token_bytes,
        raw_token_bytes: raw,
        baseline_rss_bytes: baseline,
        peak_rss_bytes: peak,
        final_rss_bytes: now,
        peak_over_raw: ratio(peak),
        growth_over_raw: ratio(peak.saturating_sub(baseline)),
        fill_seconds: fill,
        fill_sessions_per_s: (filled * per_cluster) as f64 / fill,
    })
}

/// Human-readable summary.
pub fn table(r: &Report) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    format!(
        "RSA-2048 private decrypt: {:.0}/s per core, {} cores\n\n\
         clusters          {} x {} members = {} memberships\n\
         stored tokens     {} bytes each, {:.1} MiB raw\n\
         server RSS        {:.1} MiB at start, {:.1} MiB peak, {:.1} MiB at the end\n\
         peak / raw        {:.2}x  (growth over start / raw: {:.2}x)\n\
         filling           {:.1} s, {:.0} sessions/s\n",
        r.rsa2048_decrypt_per_s,
        r.cores,
        r.clusters,
        r.members_per_cluster,
        r.memberships,
        r.token_bytes,
        mib(r.raw_token_bytes),
        mib(r.baseline_rss_bytes),
        mib(r.peak_rss_bytes),
        mib(r.final_rss_bytes),
        r.peak_over_raw,
        r.growth_over_raw,
        r.fill_seconds,
        r.fill_sessions_per_s
    )
}
