//! `xlreg bench throughput`: complete member sessions per second —
//! Hello, Member, Join, GetCluster (all members present), Bye — at several
//! numbers of concurrent clients.
//!
//! Setup: an in-process registry with a 2048-bit key (so each session costs
//! it one RSA-2048 private decryption, the Hello), the GetCluster hold off,
//! nothing on disk; 64 member identities with 2048-bit keys whose Member
//! messages are signed beforehand; enough 64-member clusters created
//! beforehand for every session to take a free slot (session k joins
//! cluster k/64 as member k%64). Clients and server share the machine's
//! cores. The bound is one RSA-2048 private decryption per session on
//! every core: `rate_per_core × cores`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::rsa2048_decrypt_rate;
use crate::client::{ClientError, ClientOptions, Connection};
use crate::regcred::RegCred;
use crate::server::ServerConfig;
use crate::testing::{keys, member_identity, LocalRegistry};
use crate::wire::{NodeId, Tag, Which, XlRegMsg};

/// Members per cluster (the protocol's maximum).
const PER_CLUSTER: usize = 64;

/// One concurrency level.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
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
    /// `sessions_per_s` over the RSA-decrypt bound.
    pub fraction_of_bound: f64,
}

/// The whole benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always `throughput`.
    pub benchmark: &'static str,
    /// RSA-2048 private decryptions per second on one core, this run.
    pub rsa2048_decrypt_per_s: f64,
    /// Cores.
    pub cores: usize,
    /// The bound: decryptions per second on all cores.
    pub bound_sessions_per_s: f64,
    /// Results.
    pub rows: Vec<Row>,
}

/// A member whose Member message is ready to send.
#[derive(Clone)]
pub(crate) struct PreSigned {
    pub(crate) member: XlRegMsg,
}

/// `n` members with `bits`-bit keys and signed Member messages, one
/// endpoint each.
pub(crate) async fn presigned(n: usize, bits: u32) -> anyhow::Result<Vec<PreSigned>> {
    let threads = keys::default_threads();
    let ks = tokio::task::spawn_blocking(move || {
        keys::generate_keys(2 * n, bits, keys::KeyGen::Fast, threads, &|| {})
    })
    .await??;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let node = member_identity(
            &format!("m{i:02}"),
            ks[2 * i].clone(),
            ks[2 * i + 1].clone(),
            vec![format!("127.0.0.1:{}", 20000 + i)],
        )?;
        out.push(PreSigned {
            member: XlRegMsg::member(node.token(0)?),
        });
    }
    Ok(out)
}

/// Send `msg`, expect a reply with op `want`.
pub(crate) async fn call(
    c: &mut Connection,
    msg: &XlRegMsg,
    want: Tag,
) -> Result<XlRegMsg, ClientError> {
    c.send(msg).await?;
    let r = c.recv("a reply").await?;
    if r.tag() != Some(want) {
        return Err(ClientError::BadReply(format!(
            "expected {want:?}, got op {:?}: {}",
            r.op,
            r.err_text()
        )));
    }
    Ok(r)
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
    call(&mut c, &XlRegMsg::get_cluster(cluster, Which::ALL), Tag::ClusterMembers).await?;
    call(&mut c, &XlRegMsg::bye(), Tag::Ack).await?;
    c.close().await;
    Ok(())
}

/// Measure each level of `clients` for about `seconds`.
pub async fn run(levels: &[usize], seconds: f64) -> anyhow::Result<Report> {
    let rate = tokio::task::spawn_blocking(rsa2048_decrypt_rate).await?;
    let cores = keys::default_threads();
    let bound = rate * cores as f64;
    let server_keys = tokio::task::spawn_blocking(|| {
        keys::generate_keys(2, 2048, keys::KeyGen::Fast, 2, &|| {})
    })
    .await??;
    let registry = LocalRegistry::start_with(ServerConfig {
        hold: Duration::ZERO,
        identity: Some(crate::server::ServerIdentity {
            id: NodeId::random(),
            comms: server_keys[0].clone(),
            sig: server_keys[1].clone(),
        }),
        ..ServerConfig::ephemeral()
    })
    .await?;
    let rc = registry.regcred().clone();
    let members = Arc::new(presigned(PER_CLUSTER, 2048).await?);
    let duration = Duration::from_secs_f64(seconds);
    let mut rows = Vec::new();
    for &clients in levels {
        // Slots for 1.5× the bound over the whole duration, at least 1000.
        let cap = ((bound * seconds * 1.5) as usize).max(1000);
        let mut clusters = Vec::new();
        for _ in 0..cap.div_ceil(PER_CLUSTER) {
            let name = crate::testing::unique_name("tp").into_bytes();
            let c = registry
                .server()
                .registry()
                .create(name, PER_CLUSTER as u32, 0, 1)
                .await
                .map_err(|e| anyhow::anyhow!("creating a cluster: {e}"))?;
            clusters.push(c.id);
        }
        let clusters = Arc::new(clusters);
        let next = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..clients {
            let (rc, members, clusters) = (rc.clone(), members.clone(), clusters.clone());
            let (next, done, errors, stop) =
                (next.clone(), done.clone(), errors.clone(), stop.clone());
            tasks.spawn(async move {
                let opts = ClientOptions::default();
                while !stop.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= clusters.len() * PER_CLUSTER {
                        break;
                    }
                    let m = &members[k % PER_CLUSTER].member;
                    match session(&rc, &opts, m, &clusters[k / PER_CLUSTER]).await {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            tracing::debug!("session {k}: {e}");
                            errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            });
        }
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        while tasks.join_next().await.is_some() {}
        let secs = t0.elapsed().as_secs_f64();
        let sessions = done.load(Ordering::Relaxed);
        let per_s = sessions as f64 / secs;
        rows.push(Row {
            clients,
            sessions,
            errors: errors.load(Ordering::Relaxed),
            seconds: secs,
            sessions_per_s: per_s,
            fraction_of_bound: if bound > 0.0 { per_s / bound } else { 0.0 },
        });
    }
    registry.stop().await;
    Ok(Report {
        benchmark: "throughput",
        rsa2048_decrypt_per_s: rate,
        cores,
        bound_sessions_per_s: bound,
        rows,
    })
}

/// Human-readable table.
pub fn table(r: &Report) -> String {
    let mut s = format!(
        "RSA-2048 private decrypt: {:.0}/s per core, {} cores: bound {:.0} sessions/s\n\n",
        r.rsa2048_decrypt_per_s, r.cores, r.bound_sessions_per_s
    );
    s.push_str(&format!(
        "{:>7}  {:>8}  {:>6}  {:>10}  {:>8}\n",
        "CLIENTS", "SESSIONS", "ERRORS", "SESSIONS/s", "OF BOUND"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:>7}  {:>8}  {:>6}  {:>10.0}  {:>7.1}%\n",
            row.clients,
            row.sessions,
            row.errors,
            row.sessions_per_s,
            row.fraction_of_bound * 100.0
        ));
    }
    s
}
