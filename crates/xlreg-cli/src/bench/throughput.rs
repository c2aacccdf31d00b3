//! `xlreg bench throughput`: complete member sessions per second —
//! Hello, Member, Join, GetCluster, Bye — at several numbers of concurrent
//! clients.
//!
//! Setup: a separate `xlreg serve` process per configuration. The
//! headline is what a user gets from `xlreg serve`: a data directory
//! (SQLite, group commit), a 2048-bit registry key (so each session costs
//! it one RSA-2048 private decryption, the Hello), default logging (`info`)
//! and hold; the second configuration is `--ephemeral --log warn`. Each
//! GetCluster carries the `hold_ms = 0` extension (what `xlreg join --wait
//! 0` sends: answer with the members present). 64 member identities with
//! 2048-bit keys whose Member messages are signed beforehand; enough
//! 64-member clusters created beforehand for every session to take a free
//! slot (session k joins cluster k/64 as member k%64). GetCluster asks for
//! every member (`--get all`, the default: on average half a cluster of
//! tokens comes back) or only for member 0 (`--get one`). Clients (this
//! process) and server share the machine's cores.
//!
//! The bound is one RSA-2048 private decryption per session on every core:
//! `rate_per_core × cores`. The server's own CPU time is read from
//! /proc, so each row also gives the server's CPU per session over one
//! RSA-2048 decryption measured in the same run (target: ≤ 1.25).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::floor::Floor;
use super::rsa2048_decrypt_rate;
use super::serve_proc::{call, cpu_time, presigned, spawn_serve, PreSigned, Serve};
use xlreg::client::{ClientError, ClientOptions, Connection};
use xlreg::regcred::RegCred;
use xlreg::testing::keys;
use xlreg::wire::{NodeId, Tag, Which, XlRegMsg};

/// Members per cluster (the protocol's maximum).
const PER_CLUSTER: usize = 64;

/// The target: server CPU per session, in RSA-2048 decryptions.
pub const TARGET: f64 = 1.25;

/// The server configurations measured, headline first.
pub const SERVERS: [Serve; 2] = [
    Serve::DEFAULT,
    Serve {
        ephemeral: true,
        log: Some("warn"),
        ..Serve::DEFAULT
    },
];

/// One server configuration at one concurrency level.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The server's configuration (see [`Serve::label`]).
    pub server: String,
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
    /// Server CPU time per session, µs.
    pub server_cpu_us: f64,
    /// This process's (the clients') CPU time per session, µs.
    pub client_cpu_us: f64,
    /// One RSA-2048 decryption over the server's CPU time per session.
    pub rsa_share_of_server_cpu: f64,
    /// The server's CPU time per session in RSA-2048 decryptions (this
    /// run's rate); the target is ≤ 1.25.
    pub server_cpu_in_rsa_decrypts: f64,
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
    /// What GetCluster asks for: `all` or `one`.
    pub get: &'static str,
    /// Results.
    pub rows: Vec<Row>,
    /// What a session cannot cost less than, measured in the same run
    /// (at the highest client level).
    pub floor: Floor,
}

async fn session(
    rc: &RegCred,
    opts: &ClientOptions,
    member: &XlRegMsg,
    cluster: &NodeId,
    which: Which,
) -> Result<(), ClientError> {
    let mut c = Connection::open(rc, opts).await?;
    call(&mut c, member, Tag::MemberOk).await?;
    call(&mut c, &XlRegMsg::join_by_id(cluster), Tag::JoinReply).await?;
    let get = XlRegMsg {
        hold_ms: Some(0),
        ..XlRegMsg::get_cluster(cluster, which)
    };
    call(&mut c, &get, Tag::ClusterMembers).await?;
    call(&mut c, &XlRegMsg::bye(), Tag::Ack).await?;
    c.close().await;
    Ok(())
}

/// Create `count` clusters of 64 (one session each, `CONCURRENCY` at a
/// time) with the admin identity `admin` (a signed Member message).
async fn create_clusters(
    rc: &RegCred,
    admin: &XlRegMsg,
    count: usize,
) -> anyhow::Result<Vec<NodeId>> {
    const CONCURRENCY: usize = 16;
    let mut out = Vec::with_capacity(count);
    let mut tasks = tokio::task::JoinSet::new();
    let mut started = 0;
    while out.len() < count {
        while started < count && tasks.len() < CONCURRENCY {
            let (rc, admin) = (rc.clone(), admin.clone());
            tasks.spawn(async move {
                let mut c = Connection::open(&rc, &ClientOptions::default()).await?;
                call(&mut c, &admin, Tag::MemberOk).await?;
                let name = xlreg::testing::unique_name("tp");
                let r = call(
                    &mut c,
                    &XlRegMsg::create(&name, PER_CLUSTER as u32, 0, 1),
                    Tag::CreateReply,
                )
                .await?;
                call(&mut c, &XlRegMsg::bye(), Tag::Ack).await?;
                c.close().await;
                Ok::<_, ClientError>(NodeId::from_bytes(
                    r.cluster_id.as_deref().unwrap_or_default(),
                )?)
            });
            started += 1;
        }
        match tasks.join_next().await {
            Some(r) => out.push(r?.context("creating a cluster")?),
            None => break,
        }
    }
    Ok(out)
}

fn own_cpu_time() -> anyhow::Result<Duration> {
    cpu_time(std::process::id())
}

/// Measure each server configuration of [`SERVERS`] at each level of
/// `clients` for about `seconds`; GetCluster asks for every member (`all`)
/// or member 0 only.
pub async fn run(levels: &[usize], seconds: f64, all: bool) -> anyhow::Result<Report> {
    let rate = tokio::task::spawn_blocking(rsa2048_decrypt_rate).await?;
    let cores = keys::default_threads();
    let bound = rate * cores as f64;
    let mut members = presigned(PER_CLUSTER + 1, 2048).await?;
    let admin = members.pop().expect("admin").member;
    let floor_member = members[0].member.clone();
    let members = Arc::new(members);
    let which = if all { Which::ALL } else { Which(1) };
    let mut rows = Vec::new();
    for how in SERVERS {
        let (server, rc) = tokio::task::spawn_blocking(move || spawn_serve(how)).await??;
        for &clients in levels {
            let level = Level {
                rc: &rc,
                admin: &admin,
                members: &members,
                which,
                clients,
                seconds,
                bound,
            };
            let (sessions, errors, secs, server_cpu, client_cpu) =
                level.measure(|| server.cpu_time()).await?;
            let per_s = sessions as f64 / secs;
            let per = |cpu: f64| {
                if sessions > 0 {
                    cpu * 1e6 / sessions as f64
                } else {
                    0.0
                }
            };
            let server_cpu_us = per(server_cpu);
            let rsa_us = if rate > 0.0 { 1e6 / rate } else { 0.0 };
            rows.push(Row {
                server: how.label(),
                clients,
                sessions,
                errors,
                seconds: secs,
                sessions_per_s: per_s,
                fraction_of_bound: if bound > 0.0 { per_s / bound } else { 0.0 },
                server_cpu_us,
                client_cpu_us: per(client_cpu),
                rsa_share_of_server_cpu: if server_cpu_us > 0.0 {
                    rsa_us / server_cpu_us
                } else {
                    0.0
                },
                server_cpu_in_rsa_decrypts: if rsa_us > 0.0 {
                    server_cpu_us / rsa_us
                } else {
                    0.0
                },
            });
        }
        drop(server);
    }
    // On average a session finds half its cluster present.
    let tokens = if all { PER_CLUSTER / 2 } else { 1 };
    let top = levels.iter().copied().max().unwrap_or(1);
    let floor = super::floor::measure(rate, &floor_member, tokens, top, seconds).await?;
    Ok(Report {
        benchmark: "throughput",
        rsa2048_decrypt_per_s: rate,
        cores,
        bound_sessions_per_s: bound,
        get: if all { "all" } else { "one" },
        rows,
        floor,
    })
}

/// One concurrency level against one server.
struct Level<'a> {
    rc: &'a RegCred,
    admin: &'a XlRegMsg,
    members: &'a Arc<Vec<PreSigned>>,
    which: Which,
    clients: usize,
    seconds: f64,
    bound: f64,
}

impl Level<'_> {
    /// Run the level; returns sessions, errors, seconds, and the server's
    /// (read by `server_cpu`) and this process's CPU seconds.
    async fn measure(
        &self,
        server_cpu: impl Fn() -> anyhow::Result<Duration>,
    ) -> anyhow::Result<(usize, usize, f64, f64, f64)> {
        // Slots for 1.2× the bound over the whole duration, at least 1000.
        let cap = ((self.bound * self.seconds * 1.2) as usize).max(1000);
        let clusters =
            Arc::new(create_clusters(self.rc, self.admin, cap.div_ceil(PER_CLUSTER)).await?);
        let next = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (server0, client0) = (server_cpu()?, own_cpu_time()?);
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.clients {
            let (rc, members, clusters) = (self.rc.clone(), self.members.clone(), clusters.clone());
            let (next, done, errors, stop) =
                (next.clone(), done.clone(), errors.clone(), stop.clone());
            let which = self.which;
            tasks.spawn(async move {
                let opts = ClientOptions::default();
                while !stop.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= clusters.len() * PER_CLUSTER {
                        break;
                    }
                    let m = &members[k % PER_CLUSTER].member;
                    match session(&rc, &opts, m, &clusters[k / PER_CLUSTER], which).await {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            tracing::debug!("session {k}: {e}");
                            errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            });
        }
        tokio::time::sleep(Duration::from_secs_f64(self.seconds)).await;
        stop.store(true, Ordering::Relaxed);
        while tasks.join_next().await.is_some() {}
        let secs = t0.elapsed().as_secs_f64();
        let server = server_cpu()?.saturating_sub(server0).as_secs_f64();
        let client = own_cpu_time()?.saturating_sub(client0).as_secs_f64();
        Ok((
            done.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed),
            secs,
            server,
            client,
        ))
    }
}

/// Human-readable table.
pub fn table(r: &Report) -> String {
    let mut s = format!(
        "RSA-2048 private decrypt: {:.0}/s per core ({:.0} µs), {} cores: bound {:.0} sessions/s\n\
         GetCluster asks for {}\n\n",
        r.rsa2048_decrypt_per_s,
        1e6 / r.rsa2048_decrypt_per_s.max(1e-9),
        r.cores,
        r.bound_sessions_per_s,
        if r.get == "all" {
            "every member"
        } else {
            "member 0 only"
        }
    );
    let w = r.rows.iter().map(|x| x.server.len()).max().unwrap_or(6);
    s.push_str(&format!(
        "{:<w$}  {:>7}  {:>8}  {:>6}  {:>10}  {:>8}  {:>13}  {:>13}  {:>13}\n",
        "SERVER",
        "CLIENTS",
        "SESSIONS",
        "ERRORS",
        "SESSIONS/s",
        "OF BOUND",
        "SERVER µs/ses",
        "CLIENT µs/ses",
        "SERVER/RSA"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:<w$}  {:>7}  {:>8}  {:>6}  {:>10.0}  {:>7.1}%  {:>13.0}  {:>13.0}  {:>12.2}x\n",
            row.server,
            row.clients,
            row.sessions,
            row.errors,
            row.sessions_per_s,
            row.fraction_of_bound * 100.0,
            row.server_cpu_us,
            row.client_cpu_us,
            row.server_cpu_in_rsa_decrypts
        ));
    }
    // The headline: the default server at its highest client level.
    let headline = r
        .rows
        .iter()
        .filter(|x| x.server == SERVERS[0].label())
        .max_by_key(|x| x.clients)
        .map(|x| {
            (
                format!("{}, {} clients", x.server, x.clients),
                x.server_cpu_in_rsa_decrypts,
            )
        });
    s.push_str(&super::floor::lines(
        &r.floor,
        headline.as_ref().map(|(l, v)| (l.as_str(), *v)),
        TARGET,
    ));
    s
}
