//! The floor under the registry's CPU per session: what a complete
//! session (Hello, Member, Join, GetCluster, Bye) cannot cost less than on
//! this machine, whatever the server's own code does.
//!
//! Why: the throughput target is stated as server CPU per session over one
//! RSA-2048 decryption. Part of the rest is fixed by the protocol and the
//! transport, so the benchmark measures, in the same run and in CPU time,
//! the work no implementation can skip:
//!
//! * the Hello: one RSA-2048 OAEP private decryption;
//! * the Member: decoding the token's two SPKI keys and checking its
//!   signature ([`verify_token_limited`], what the server calls);
//! * the session's AES-256-CBC: opening the four sealed requests and
//!   sealing the five replies, the same bytes as a real session;
//! * the transport: a raw loopback TCP server on its own tokio runtime
//!   (one worker per core, like `xlreg serve`) that accepts, reads each
//!   request and writes each reply of the same sizes in one write, reads
//!   the client's close and closes — no parsing, no registry, no logging.
//!   Its worker threads' CPU time (from `/proc/self/task`) per session is
//!   the TCP part of the floor.
//!
//! Durability (the SQLite commits and their `fdatasync`) is not in the
//! floor, so the floor is a lower bound for the persistent server.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{measure_bounded, thread_cpu_time};
use xlreg::wire::{verify_token_limited, Framing, KeyLimits, NodeId, SessionKey, Which, XlRegMsg};

/// RSA-2048 ciphertext: the Hello's length on the wire.
const HELLO_LEN: usize = 256;
/// The HelloReply's length on the wire.
const HELLO_REPLY_LEN: usize = 64;
/// Members per cluster in the throughput benchmark.
const PER_CLUSTER: usize = 64;

/// The floor of one session, each part in µs of CPU time.
#[derive(Clone, Debug, Serialize)]
pub struct Floor {
    /// One RSA-2048 OAEP private decryption (the Hello).
    pub rsa_decrypt_us: f64,
    /// Decoding the Member token's two keys and verifying its signature.
    pub token_verify_us: f64,
    /// Opening the four requests and sealing the five replies.
    pub seal_open_us: f64,
    /// Server-side CPU of a raw loopback TCP session with the same
    /// exchanges and bytes.
    pub raw_tcp_us: f64,
    /// Raw TCP sessions measured.
    pub raw_tcp_sessions: usize,
    /// Concurrent raw clients.
    pub raw_tcp_clients: usize,
    /// Bytes of each (request, reply) exchange, Hello first.
    pub exchanges: Vec<(usize, usize)>,
    /// The sum of the parts, µs.
    pub total_us: f64,
}

impl Floor {
    /// The floor in RSA-2048 decryptions.
    pub fn in_rsa_decrypts(&self) -> f64 {
        if self.rsa_decrypt_us > 0.0 {
            self.total_us / self.rsa_decrypt_us
        } else {
            0.0
        }
    }
}

/// The sealed bodies of one session: requests (Member, Join, GetCluster,
/// Bye) and replies (MemberOK, JoinReply, ClusterMembers, Ack), as a
/// length-prefixed xlreg session frames them. ClusterMembers carries
/// `tokens` copies of the member's token (the throughput benchmark's
/// average: half a cluster for `--get all`, one for `--get one`).
struct Shape {
    requests: Vec<Vec<u8>>,
    replies: Vec<Vec<u8>>,
}

fn shape(member: &XlRegMsg, tokens: usize) -> Shape {
    let id = NodeId::from_bytes(&[7u8; 32]).expect("32 bytes");
    let cluster = NodeId::from_bytes(&[9u8; 32]).expect("32 bytes");
    let which = if tokens > 1 { Which::ALL } else { Which(1) };
    let get = XlRegMsg {
        hold_ms: Some(0),
        ..XlRegMsg::get_cluster(&cluster, which)
    };
    let token = member.member_specs.clone().unwrap_or_default();
    Shape {
        requests: vec![
            member.to_bytes(),
            XlRegMsg::join_by_id(&cluster).to_bytes(),
            get.to_bytes(),
            XlRegMsg::bye().to_bytes(),
        ],
        replies: vec![
            XlRegMsg::member_ok(&id, 0).to_bytes(),
            XlRegMsg::join_reply(&cluster, PER_CLUSTER as u32, 0, 1).to_bytes(),
            XlRegMsg::cluster_members(cluster.as_bytes(), which, vec![token; tokens]).to_bytes(),
            XlRegMsg::ack().to_bytes(),
        ],
    }
}

/// CPU µs per run of `f` on this thread (at most `n` runs or 0.5 s).
fn cpu_us(n: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let cpu0 = thread_cpu_time();
    let s = measure_bounded(n, Duration::from_millis(500), f);
    let cpu = thread_cpu_time().saturating_sub(cpu0).as_secs_f64();
    if s.n == 0 {
        0.0
    } else {
        cpu * 1e6 / s.n as f64
    }
}

/// Measure the floor: `rsa_decrypt_per_s` is this run's rate, `member` a
/// signed Member message like the benchmark's, `tokens` the tokens a
/// GetCluster returns on average; the raw TCP part runs `clients`
/// concurrent clients for about `seconds`.
pub async fn measure(
    rsa_decrypt_per_s: f64,
    member: &XlRegMsg,
    tokens: usize,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<Floor> {
    let shape = shape(member, tokens);
    let token = member
        .member_specs
        .clone()
        .context("the Member message has no token")?;
    let (token_verify_us, seal_open_us, frames) = tokio::task::spawn_blocking(move || {
        let limits = KeyLimits::default();
        let verify = cpu_us(2000, || {
            let _ =
                std::hint::black_box(verify_token_limited(std::hint::black_box(&token), &limits));
        });
        let key = SessionKey([5u8; 32]);
        let framing = Framing::LengthPrefixed;
        let sealed: Vec<Vec<u8>> = shape.requests.iter().map(|b| key.seal_body(b)).collect();
        let seal_open = cpu_us(2000, || {
            for r in &sealed {
                let _ = std::hint::black_box(key.open_body(std::hint::black_box(r)));
            }
            for b in &shape.replies {
                std::hint::black_box(framing.encode_body(&key, std::hint::black_box(b)));
            }
        });
        let mut frames = vec![(HELLO_LEN, HELLO_REPLY_LEN)];
        for (q, a) in shape.requests.iter().zip(&shape.replies) {
            frames.push((
                framing.encode_body(&key, q).len(),
                framing.encode_body(&key, a).len(),
            ));
        }
        (verify, seal_open, frames)
    })
    .await?;
    let (raw_tcp_us, raw_tcp_sessions) = raw_tcp(&frames, clients, seconds).await?;
    let rsa_decrypt_us = if rsa_decrypt_per_s > 0.0 {
        1e6 / rsa_decrypt_per_s
    } else {
        0.0
    };
    Ok(Floor {
        rsa_decrypt_us,
        token_verify_us,
        seal_open_us,
        raw_tcp_us,
        raw_tcp_sessions,
        raw_tcp_clients: clients,
        total_us: rsa_decrypt_us + token_verify_us + seal_open_us + raw_tcp_us,
        exchanges: frames,
    })
}

/// A thread of this process whose CPU time can be read from any thread.
#[derive(Clone, Copy)]
struct CpuClock(libc::clockid_t);

impl CpuClock {
    /// The calling thread's CPU clock.
    fn of_this_thread() -> Option<Self> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: pthread_self is always valid for the calling thread, and
        // pthread_getcpuclockid writes into the clockid we own.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        (rc == 0).then_some(CpuClock(id))
    }

    /// CPU time used by the thread so far (zero if unreadable).
    fn now(self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own; the
        // clock's thread lives as long as the runtime, which outlives
        // every read.
        if unsafe { libc::clock_gettime(self.0, &mut ts) } != 0 {
            return Duration::ZERO;
        }
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// Server CPU µs per raw session and the number of sessions.
async fn raw_tcp(
    frames: &[(usize, usize)],
    clients: usize,
    seconds: f64,
) -> anyhow::Result<(f64, usize)> {
    let cores = xlreg::testing::keys::default_threads();
    let tids = Arc::new(Mutex::new(Vec::new()));
    let rt = {
        let tids = tids.clone();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name("raw-tcp-floor")
            .on_thread_start(move || {
                if let Some(c) = CpuClock::of_this_thread() {
                    tids.lock().expect("clock list").push(c);
                }
            })
            .enable_all()
            .build()?
    };
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let server_frames: Arc<Vec<(usize, Vec<u8>)>> =
        Arc::new(frames.iter().map(|&(q, a)| (q, vec![0x5a; a])).collect());
    rt.spawn(async move {
        let Ok(listener) = TcpListener::from_std(std_listener) else {
            return;
        };
        while let Ok((s, _)) = listener.accept().await {
            let frames = server_frames.clone();
            tokio::spawn(async move {
                let _ = serve_raw(s, &frames).await;
            });
        }
    });
    let cpu = || -> anyhow::Result<Duration> {
        let list = tids.lock().expect("clock list").clone();
        Ok(list.into_iter().map(CpuClock::now).sum())
    };
    // Warm-up: one session, so every worker has started.
    let frames = Arc::new(frames.to_vec());
    raw_client(addr, &frames).await?;
    let cap = 200_000usize;
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = cpu()?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients.max(1) {
        let (next, done, stop, frames) = (next.clone(), done.clone(), stop.clone(), frames.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) && next.fetch_add(1, Ordering::Relaxed) < cap {
                if raw_client(addr, &frames).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let used = cpu()?.saturating_sub(cpu0).as_secs_f64();
    rt.shutdown_background();
    let n = done.load(Ordering::Relaxed);
    Ok((if n > 0 { used * 1e6 / n as f64 } else { 0.0 }, n))
}

/// The raw server side of one session.
async fn serve_raw(mut s: TcpStream, frames: &[(usize, Vec<u8>)]) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; frames.iter().map(|f| f.0).max().unwrap_or(0)];
    for (q, reply) in frames {
        s.read_exact(&mut buf[..*q]).await?;
        s.write_all(reply).await?;
    }
    // The client closes after the Ack.
    let _ = s.read(&mut buf).await?;
    s.shutdown().await
}

/// The raw client side of one session.
async fn raw_client(addr: std::net::SocketAddr, frames: &[(usize, usize)]) -> anyhow::Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let big = frames.iter().map(|f| f.0.max(f.1)).max().unwrap_or(0);
    let out = vec![0xa5u8; big];
    let mut buf = vec![0u8; big];
    for &(q, a) in frames {
        s.write_all(&out[..q]).await?;
        s.read_exact(&mut buf[..a]).await?;
    }
    s.shutdown().await?;
    let _ = s.read(&mut buf).await;
    Ok(())
}

/// Human-readable lines: the floor's parts and the verdict against
/// `actual` (server CPU per session in decryptions) and `target`.
pub fn lines(f: &Floor, actual: Option<(&str, f64)>, target: f64) -> String {
    let x = |us: f64| {
        if f.rsa_decrypt_us > 0.0 {
            us / f.rsa_decrypt_us
        } else {
            0.0
        }
    };
    let mut s = String::from(
        "\nfloor: the CPU a session cannot go below on this machine (this run, CPU time)\n",
    );
    let mut row = |name: String, us: f64| {
        s.push_str(&format!("  {name:<68} {us:>7.0} µs  {:>5.2}x\n", x(us)));
    };
    row("RSA-2048 OAEP decrypt (Hello)".into(), f.rsa_decrypt_us);
    row(
        "+ Member token: 2 SPKI decodes + SHA-1 signature verify".into(),
        f.token_verify_us,
    );
    row(
        "+ AES-256-CBC: open 4 requests, seal 5 replies (same bytes)".into(),
        f.seal_open_us,
    );
    let bytes: usize = f.exchanges.iter().map(|(q, a)| q + a).sum();
    row(
        format!(
            "+ raw loopback TCP session, {} exchanges, {} B, {} clients",
            f.exchanges.len(),
            bytes,
            f.raw_tcp_clients
        ),
        f.raw_tcp_us,
    );
    row("= floor (without SQLite commits)".into(), f.total_us);
    if let Some((label, actual)) = actual {
        s.push_str(&format!(
            "  {:<68} {:>7.0} µs  {:>5.2}x\n",
            format!("actual: {label}"),
            actual * f.rsa_decrypt_us,
            actual
        ));
    }
    let floor = f.in_rsa_decrypts();
    if floor > target {
        s.push_str(&format!(
            "target ≤ {target:.2}x is unreachable by design on this machine: the floor alone is {floor:.2}x\n"
        ));
    } else {
        s.push_str(&format!(
            "target ≤ {target:.2}x is above the floor ({floor:.2}x): reachable in principle\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bigger_get_cluster_makes_a_bigger_reply_only() {
        let token = xlreg::wire::Token {
            name: Some(b"m00".to_vec()),
            comms_key: Some(vec![1; 294]),
            sig_key: Some(vec![2; 294]),
            ..Default::default()
        };
        let m = XlRegMsg::member(token);
        let (one, all) = (shape(&m, 1), shape(&m, 32));
        assert_eq!(one.requests.len(), 4);
        assert_eq!(one.replies.len(), 4);
        assert!(all.replies[2].len() > 30 * one.replies[2].len() / 2);
        assert_eq!(one.replies[0], all.replies[0]);
    }

    #[test]
    fn the_verdict_says_unreachable_only_above_the_target() {
        let mut f = Floor {
            rsa_decrypt_us: 100.0,
            token_verify_us: 10.0,
            seal_open_us: 5.0,
            raw_tcp_us: 50.0,
            raw_tcp_sessions: 1,
            raw_tcp_clients: 1,
            exchanges: vec![(256, 64)],
            total_us: 165.0,
        };
        assert!((f.in_rsa_decrypts() - 1.65).abs() < 1e-9);
        assert!(lines(&f, None, 1.25).contains("unreachable"));
        f.raw_tcp_us = 5.0;
        f.total_us = 120.0;
        assert!(lines(&f, Some(("x", 2.0)), 1.25).contains("reachable in principle"));
    }
}
