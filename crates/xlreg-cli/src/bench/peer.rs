//! `xlreg bench peer`: what the secure peer channel ([`xlreg::peer`])
//! costs on this machine — the time to set one up (TCP connect, TLS 1.3
//! handshake with both certificates and the pinning checks, the
//! listener's acceptance byte) and the throughput of one channel, beside
//! the throughput of a raw TCP connection measured in the same run, over
//! the same loopback.
//!
//! Two members of an in-process cluster (keys of the requested size,
//! made beforehand). Handshakes are sequential; each transfer sends
//! `megabytes` MiB in 64 KiB writes, announced by an 8-byte length, and
//! waits for the receiver's one-byte answer once all arrived. The
//! request/response rows send 1 KiB and wait for its 1 KiB echo, one at a
//! time, timing each round trip. Beside them: the in-process AES-GCM rate
//! of this CPU (the ceiling of a channel, one core encrypting) and the cost
//! of one RSA signature with the member key (what a full handshake pays on
//! each side). Every row is bounded in count and wall time.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::rsa2048_decrypt_rate;
use xlreg::peer::{LocalCert, PeerAcceptor, PeerConnector, PeerListener, Pins, CERT_VALIDITY};
use xlreg::testing::{LaunchOptions, LocalCluster};

/// Wall-time budget of the handshake row.
pub const HANDSHAKE_BUDGET: Duration = Duration::from_secs(5);
/// Time limit of one transfer.
pub const TRANSFER_LIMIT: Duration = Duration::from_secs(30);
/// Write size of a transfer.
const CHUNK: usize = 64 * 1024;
/// Message size of the request/response rows.
const MESSAGE: usize = 1024;
/// Round trips per kind in the request/response rows (and at most
/// [`ROUND_TRIP_BUDGET`]).
const ROUND_TRIPS: usize = 20_000;
/// Wall-time budget of one request/response row.
pub const ROUND_TRIP_BUDGET: Duration = Duration::from_secs(3);
/// A connection's first byte says what the server end does.
const MODE_TRANSFER: u8 = b'T';
const MODE_ECHO: u8 = b'E';

/// Results for one key size.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Member key size.
    pub key_bits: u32,
    /// Handshakes measured.
    pub handshakes: usize,
    /// Median time to an authenticated channel, ms.
    pub handshake_median_ms: f64,
    /// Fastest, ms.
    pub handshake_min_ms: f64,
    /// Slowest, ms.
    pub handshake_max_ms: f64,
    /// Median plain TCP connect on the same loopback, ms.
    pub tcp_connect_median_ms: f64,
    /// MiB sent per transfer.
    pub megabytes: usize,
    /// Transfers per kind (median taken).
    pub rounds: usize,
    /// One secure channel, MB/s (10^6 bytes per second).
    pub channel_mb_per_s: f64,
    /// One raw TCP connection, MB/s.
    pub raw_tcp_mb_per_s: f64,
    /// channel / raw.
    pub ratio: f64,
    /// One secure channel, MB per second of this process's CPU time
    /// (both ends): what a transfer costs, apart from waiting for a core.
    pub channel_mb_per_cpu_s: f64,
    /// The same for raw TCP.
    pub raw_tcp_mb_per_cpu_s: f64,
    /// channel / raw, per CPU second: the ratio a machine with a free
    /// core per end would approach.
    pub cpu_ratio: f64,
    /// TLS version and cipher of the channel.
    pub cipher: String,
    /// Handshakes per second, one after the other (1 / mean wall time).
    pub handshakes_per_s: f64,
    /// CPU time of one handshake, both ends together (this process's CPU
    /// time over the handshake loop / handshakes), ms. On a loaded machine
    /// the wall time mostly measures waiting for a core; this does not.
    pub handshake_cpu_ms: f64,
    /// Handshakes per second of the design before key bindings
    /// (certificates on the RSA sig key: an RSA signature per handshake on
    /// each side), measured alternately with the above.
    pub rsa_design_handshakes_per_s: f64,
    /// Its CPU time per handshake, both ends, ms.
    pub rsa_design_handshake_cpu_ms: f64,
    /// handshakes/s over the RSA design's, same run.
    pub handshake_speedup: f64,
    /// One RSA-PSS SHA-256 signature with the member's sig key, ms of CPU.
    pub rsa_sign_ms: f64,
    /// Whether the member certificate is the fast delegated one
    /// (`xlreg::peer` signs with its sig key once per certificate).
    pub cert_key: String,
    /// 1 KiB request/response round trips per second over the channel.
    pub rr_channel_per_s: f64,
    /// The same over raw TCP.
    pub rr_raw_per_s: f64,
    /// channel / raw.
    pub rr_ratio: f64,
    /// Channel round trip, median and 99th percentile, µs.
    pub rtt_channel_us: (f64, f64),
    /// Raw TCP round trip, median and 99th percentile, µs.
    pub rtt_raw_us: (f64, f64),
    /// Channel round trips per second with the message written as a
    /// 4-byte length and a body in two writes (two records).
    pub rr_two_writes_per_s: f64,
    /// The same pieces in one vectored write (one record).
    pub rr_vectored_per_s: f64,
    /// Round trip p50/p99 of the two-write row, µs.
    pub rtt_two_writes_us: (f64, f64),
    /// Round trip p50/p99 of the vectored row, µs.
    pub rtt_vectored_us: (f64, f64),
}

/// The whole benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always `peer`.
    pub benchmark: &'static str,
    /// RSA-2048 private decryptions per second on one core, this run.
    pub rsa2048_decrypt_per_s: f64,
    /// In-process AES-128-GCM encryption of 16 KiB records, MB/s of one
    /// core's CPU time (the TLS record cipher's ceiling on this CPU).
    pub aes128_gcm_mb_per_s: f64,
    /// The same for AES-256-GCM.
    pub aes256_gcm_mb_per_s: f64,
    /// The same for ChaCha20-Poly1305.
    pub chacha20_poly1305_mb_per_s: f64,
    /// Cores.
    pub cores: usize,
    /// One row per key size.
    pub rows: Vec<Row>,
}

fn median_ms(mut v: Vec<Duration>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[v.len() / 2]), ms(v[0]), ms(v[v.len() - 1]))
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Serve one connection: its first byte says transfer or echo.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> std::io::Result<()> {
    let mut mode = [0u8; 1];
    s.read_exact(&mut mode).await?;
    match mode[0] {
        MODE_ECHO => echo(s).await,
        _ => sink(s).await,
    }
}

/// Echo [`MESSAGE`]-byte messages until the peer closes.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> std::io::Result<()> {
    let mut buf = [0u8; MESSAGE];
    loop {
        match s.read_exact(&mut buf).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        s.write_all(&buf).await?;
        s.flush().await?;
    }
}

/// Round trips of [`MESSAGE`] bytes, one at a time: (per second, each
/// round trip).
async fn request_response<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    framing: Framing,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    s.write_all(&[MODE_ECHO]).await?;
    let msg = [0x42u8; MESSAGE];
    let (head, body) = msg.split_at(4);
    let mut back = [0u8; MESSAGE];
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    let t0 = Instant::now();
    while times.len() < ROUND_TRIPS && t0.elapsed() < ROUND_TRIP_BUDGET {
        let t = Instant::now();
        match framing {
            Framing::Whole => s.write_all(&msg).await?,
            Framing::TwoWrites => {
                s.write_all(head).await?;
                s.write_all(body).await?;
            }
            Framing::Vectored => write_all_vectored(&mut s, head, body).await?,
        }
        s.flush().await?;
        s.read_exact(&mut back).await?;
        times.push(t.elapsed());
    }
    let _ = s.shutdown().await;
    Ok((times.len() as f64 / t0.elapsed().as_secs_f64(), times))
}

/// Write `head` and `body` with vectored writes until all is written.
async fn write_all_vectored<S: AsyncWrite + Unpin>(
    s: &mut S,
    mut head: &[u8],
    mut body: &[u8],
) -> std::io::Result<()> {
    use std::io::IoSlice;
    while !head.is_empty() || !body.is_empty() {
        let n = s
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    Ok(())
}

/// How a request/response row writes its 1 KiB message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// One write of the whole message.
    Whole,
    /// A 4-byte length, then the body: two writes (what a framed protocol
    /// written naively does).
    TwoWrites,
    /// The same two pieces in one vectored write.
    Vectored,
}

/// Median and 99th percentile, µs.
fn p50_p99_us(mut v: Vec<Duration>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let p99 = ((v.len() * 99).div_ceil(100)).clamp(1, v.len()) - 1;
    (us(v[v.len() / 2]), us(v[p99]))
}

/// Encryption rate of an AEAD cipher on 16 KiB records, MB/s of this
/// thread's CPU time (bounded: 0.3 s or 20 000 records).
pub fn aead_rate(cipher: openssl::symm::Cipher) -> f64 {
    let key = vec![7u8; cipher.key_len()];
    let iv = [9u8; 12];
    let record = vec![0x5au8; 16 * 1024];
    let mut tag = [0u8; 16];
    let cpu0 = super::thread_cpu_time();
    let t0 = Instant::now();
    let mut n = 0usize;
    while n < 20_000 && t0.elapsed() < Duration::from_millis(300) {
        if openssl::symm::encrypt_aead(cipher, &key, Some(&iv), &[0u8; 5], &record, &mut tag)
            .is_err()
        {
            return 0.0;
        }
        n += 1;
    }
    let cpu = super::thread_cpu_time().saturating_sub(cpu0).as_secs_f64();
    let secs = if cpu > 0.0 {
        cpu
    } else {
        t0.elapsed().as_secs_f64()
    };
    (n * record.len()) as f64 / secs / 1e6
}

/// CPU ms of one RSA-PSS SHA-256 signature (what TLS 1.3's
/// CertificateVerify costs with an RSA certificate key) with `key`.
fn rsa_sign_ms(key: &openssl::pkey::PKey<openssl::pkey::Private>) -> f64 {
    use openssl::sign::{RsaPssSaltlen, Signer};
    let sign = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut s = Signer::new(openssl::hash::MessageDigest::sha256(), key)?;
        s.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS)?;
        s.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
        s.update(&[1u8; 130])?;
        s.sign_to_vec()
    };
    if sign().is_err() {
        return 0.0;
    }
    let cpu0 = super::thread_cpu_time();
    let st = super::measure_bounded(200, Duration::from_millis(400), || {
        let _ = std::hint::black_box(sign());
    });
    let cpu = super::thread_cpu_time().saturating_sub(cpu0).as_secs_f64();
    if st.n == 0 {
        return 0.0;
    }
    let secs = if cpu > 0.0 {
        cpu
    } else {
        st.total.as_secs_f64()
    };
    secs * 1e3 / st.n as f64
}

/// CPU time of this process (all threads).
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// "RSA 2048 bits", "EC 256 bits", …
fn describe_key(k: &openssl::pkey::PKey<openssl::pkey::Private>) -> String {
    use openssl::pkey::Id;
    let kind = match k.id() {
        Id::RSA => "RSA",
        Id::EC => "ECDSA",
        Id::ED25519 => "Ed25519",
        _ => "other",
    };
    format!("{kind} {} bits", k.bits())
}

/// A certificate of the design before key bindings: on the sig key itself.
fn rsa_cert(node: &xlreg::client::NodeIdentity) -> anyhow::Result<LocalCert> {
    let now = std::time::SystemTime::now();
    Ok(LocalCert::generate_with(
        &node.sig_key,
        &node.name,
        now - Duration::from_secs(300),
        now + CERT_VALIDITY,
    )?)
}

/// Receive one transfer: an 8-byte length, that many bytes, answer 1 byte.
async fn sink<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> std::io::Result<()> {
    let mut len = [0u8; 8];
    s.read_exact(&mut len).await?;
    let mut left = u64::from_be_bytes(len);
    let mut buf = vec![0u8; CHUNK];
    while left > 0 {
        let want = (left as usize).min(buf.len());
        let n = s.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        left -= n as u64;
    }
    s.write_all(&[1]).await?;
    s.flush().await
}

/// Send `bytes` and wait for the answer; MB/s.
async fn source<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    bytes: usize,
) -> anyhow::Result<(f64, f64)> {
    let buf = vec![0x5au8; CHUNK];
    let cpu = process_cpu_time();
    let t = Instant::now();
    s.write_all(&[MODE_TRANSFER]).await?;
    s.write_all(&(bytes as u64).to_be_bytes()).await?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK);
        s.write_all(&buf[..n]).await?;
        left -= n;
    }
    s.flush().await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    let wall = t.elapsed().as_secs_f64();
    let cpu = process_cpu_time().saturating_sub(cpu).as_secs_f64();
    let per_cpu = if cpu > 0.0 {
        bytes as f64 / cpu / 1e6
    } else {
        0.0
    };
    Ok((bytes as f64 / wall / 1e6, per_cpu))
}

async fn row(
    key_bits: u32,
    handshakes: usize,
    megabytes: usize,
    rounds: usize,
) -> anyhow::Result<Row> {
    let mut cluster = LocalCluster::launch_with(LaunchOptions {
        size: 2,
        endpoints: 1,
        key_bits,
        ..LaunchOptions::default()
    })
    .await
    .context("launching a 2-member cluster")?;
    let (view, node) = (
        cluster.members[0].view.clone(),
        cluster.members[0].identity.clone(),
    );
    let tcp = cluster.members[0]
        .take_listener(0)
        .context("taking member 0's listener")?;
    let listener = PeerListener::from_listener(tcp, &view, &node)?;
    let server = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((_, s)) => {
                    tokio::spawn(serve(s));
                }
                Err(e) => tracing::warn!("bench peer: {}", xlreg::ErrorChain(&e)),
            }
        }
    });
    let dialer = &cluster.members[1];
    let conn = PeerConnector::new(&dialer.view, &dialer.identity)?;
    let target = view.self_index;

    // The design this replaces, in the same run: certificates on the RSA
    // sig key itself, so each handshake makes an RSA signature on each side.
    let rsa_listener = PeerListener::with_acceptor(
        TcpListener::bind("127.0.0.1:0").await?,
        PeerAcceptor::with_cert(
            Pins::all_members(view.cluster_id, &view.members),
            rsa_cert(&node)?,
        )?,
    );
    let rsa_addr = rsa_listener.local_addr()?.to_string();
    let rsa_server = tokio::spawn(async move {
        while let Ok((_, s)) = rsa_listener.accept().await {
            tokio::spawn(serve(s));
        }
    });
    let rsa_conn = PeerConnector::with_cert(
        dialer.view.cluster_id,
        &dialer.view.members,
        Some(rsa_cert(&dialer.identity)?),
    )?;
    let me = view
        .self_member()
        .context("member 0 is not in its own view")?;
    let rsa_pins = Pins::one_member(view.cluster_id, me);

    // Handshakes, after one warm-up each, alternating the two designs so
    // that both see the same load.
    drop(conn.connect(target).await?);
    drop(rsa_conn.connect_pinned(rsa_pins.clone(), &rsa_addr).await?);
    let mut times = Vec::new();
    let mut rsa_times = Vec::new();
    let (mut hs_cpu, mut rsa_cpu) = (Duration::ZERO, Duration::ZERO);
    let t0 = Instant::now();
    while times.len() < handshakes && t0.elapsed() < HANDSHAKE_BUDGET {
        let (c, t) = (process_cpu_time(), Instant::now());
        let s = conn.connect(target).await?;
        times.push(t.elapsed());
        drop(s);
        hs_cpu += process_cpu_time().saturating_sub(c);
        let (c, t) = (process_cpu_time(), Instant::now());
        let s = rsa_conn.connect_pinned(rsa_pins.clone(), &rsa_addr).await?;
        rsa_times.push(t.elapsed());
        drop(s);
        rsa_cpu += process_cpu_time().saturating_sub(c);
    }
    rsa_server.abort();
    let n = times.len();
    let per_ms = |cpu: Duration| {
        if n == 0 {
            0.0
        } else {
            cpu.as_secs_f64() * 1e3 / n as f64
        }
    };
    let (handshake_cpu_ms, rsa_design_cpu_ms) = (per_ms(hs_cpu), per_ms(rsa_cpu));
    let per_s = |t: &[Duration]| {
        let total: Duration = t.iter().sum();
        if total.is_zero() {
            0.0
        } else {
            t.len() as f64 / total.as_secs_f64()
        }
    };
    let (handshakes_per_s, rsa_design_per_s) = (per_s(&times), per_s(&rsa_times));
    let (hs_med, hs_min, hs_max) = median_ms(times);

    // Raw TCP on the same loopback: connect time and a sink.
    let raw = TcpListener::bind("127.0.0.1:0").await?;
    let raw_addr = raw.local_addr()?;
    let raw_server = tokio::spawn(async move {
        while let Ok((s, _)) = raw.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(serve(s));
        }
    });
    let mut tcp_times = Vec::new();
    for _ in 0..n.clamp(1, 200) {
        let t = Instant::now();
        let s = TcpStream::connect(raw_addr).await?;
        tcp_times.push(t.elapsed());
        drop(s);
    }

    let bytes = megabytes << 20;
    let mut tls = Vec::new();
    let mut plain = Vec::new();
    let mut cipher = String::new();
    for _ in 0..rounds {
        let s = conn.connect(target).await?;
        cipher = format!(
            "{} {}",
            s.ssl().version_str(),
            s.ssl().current_cipher().map(|c| c.name()).unwrap_or("-")
        );
        tls.push(
            tokio::time::timeout(TRANSFER_LIMIT, source(s, bytes))
                .await
                .context("a channel transfer took longer than 30 s")??,
        );
        let s = TcpStream::connect(raw_addr).await?;
        s.set_nodelay(true)?;
        plain.push(
            tokio::time::timeout(TRANSFER_LIMIT, source(s, bytes))
                .await
                .context("a raw TCP transfer took longer than 30 s")??,
        );
    }

    // 1 KiB request/response: channel, raw TCP, then the channel with the
    // message framed as a 4-byte length and a body, in two writes and in
    // one vectored write.
    let mut rr = Vec::new();
    for (channel, framing) in [
        (true, Framing::Whole),
        (false, Framing::Whole),
        (true, Framing::TwoWrites),
        (true, Framing::Vectored),
    ] {
        let r = if channel {
            let s = conn.connect(target).await?;
            tokio::time::timeout(TRANSFER_LIMIT, request_response(s, framing)).await
        } else {
            let s = TcpStream::connect(raw_addr).await?;
            s.set_nodelay(true)?;
            tokio::time::timeout(TRANSFER_LIMIT, request_response(s, framing)).await
        };
        let (per_s, times) = r.context("the round trips took longer than 30 s")??;
        rr.push((per_s, p50_p99_us(times)));
    }

    let sig = cluster.members[1].identity.sig_key.openssl_pkey().clone();
    let rsa_sign = tokio::task::spawn_blocking(move || rsa_sign_ms(&sig)).await?;
    let cert_key = conn
        .certificate()
        .map(|c| describe_key(c.key()))
        .unwrap_or_else(|| "none".into());
    server.abort();
    raw_server.abort();
    cluster.shutdown().await;
    let (channel, raw) = (
        median(tls.iter().map(|r| r.0).collect()),
        median(plain.iter().map(|r| r.0).collect()),
    );
    let (channel_cpu, raw_cpu) = (
        median(tls.iter().map(|r| r.1).collect()),
        median(plain.iter().map(|r| r.1).collect()),
    );
    Ok(Row {
        key_bits,
        handshakes: n,
        handshake_median_ms: hs_med,
        handshake_min_ms: hs_min,
        handshake_max_ms: hs_max,
        tcp_connect_median_ms: median_ms(tcp_times).0,
        megabytes,
        rounds,
        channel_mb_per_s: channel,
        raw_tcp_mb_per_s: raw,
        ratio: if raw > 0.0 { channel / raw } else { 0.0 },
        cipher,
        handshakes_per_s,
        handshake_cpu_ms,
        rsa_design_handshakes_per_s: rsa_design_per_s,
        rsa_design_handshake_cpu_ms: rsa_design_cpu_ms,
        handshake_speedup: if rsa_design_per_s > 0.0 {
            handshakes_per_s / rsa_design_per_s
        } else {
            0.0
        },
        rsa_sign_ms: rsa_sign,
        cert_key,
        channel_mb_per_cpu_s: channel_cpu,
        raw_tcp_mb_per_cpu_s: raw_cpu,
        cpu_ratio: if raw_cpu > 0.0 {
            channel_cpu / raw_cpu
        } else {
            0.0
        },
        rr_channel_per_s: rr[0].0,
        rr_raw_per_s: rr[1].0,
        rr_ratio: if rr[1].0 > 0.0 {
            rr[0].0 / rr[1].0
        } else {
            0.0
        },
        rtt_channel_us: rr[0].1,
        rtt_raw_us: rr[1].1,
        rr_two_writes_per_s: rr[2].0,
        rr_vectored_per_s: rr[3].0,
        rtt_two_writes_us: rr[2].1,
        rtt_vectored_us: rr[3].1,
    })
}

/// Measure each key size: up to `handshakes` handshakes (and at most
/// [`HANDSHAKE_BUDGET`]), then `rounds` transfers of `megabytes` MiB over
/// the channel and over raw TCP, alternating.
pub async fn run(
    key_bits: &[u32],
    handshakes: usize,
    megabytes: usize,
    rounds: usize,
) -> anyhow::Result<Report> {
    let rate = tokio::task::spawn_blocking(rsa2048_decrypt_rate).await?;
    use openssl::symm::Cipher;
    let (aes128, aes256, chacha) = tokio::task::spawn_blocking(|| {
        (
            aead_rate(Cipher::aes_128_gcm()),
            aead_rate(Cipher::aes_256_gcm()),
            aead_rate(Cipher::chacha20_poly1305()),
        )
    })
    .await?;
    let mut rows = Vec::new();
    for &k in key_bits {
        rows.push(row(k, handshakes, megabytes, rounds).await?);
    }
    Ok(Report {
        benchmark: "peer",
        rsa2048_decrypt_per_s: rate,
        aes128_gcm_mb_per_s: aes128,
        aes256_gcm_mb_per_s: aes256,
        chacha20_poly1305_mb_per_s: chacha,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rows,
    })
}

/// The report as a table.
pub fn table(r: &Report) -> String {
    let mut s = super::rsa_reference_line(r.rsa2048_decrypt_per_s, r.cores);
    s.push_str(&format!(
        "AEAD ceiling (in-process, 16 KiB records, MB/s per core): AES-128-GCM {:.0}, AES-256-GCM {:.0}, ChaCha20-Poly1305 {:.0}\n\n",
        r.aes128_gcm_mb_per_s, r.aes256_gcm_mb_per_s, r.chacha20_poly1305_mb_per_s
    ));
    s.push_str(&format!(
        "{:>8}  {:>10}  {:>12}  {:>12}  {:>10}  {:>11}  {:>10}  {:>13}  {:>13}  {:>13}  {:>6}\n",
        "KEY BITS",
        "HANDSHAKES",
        "HANDSHAKE ms",
        "HANDSHAKES/s",
        "HS CPU ms",
        "RSA SIGN ms",
        "TCP CONN ms",
        "TRANSFER",
        "CHANNEL MB/s",
        "RAW TCP MB/s",
        "RATIO"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:>8}  {:>10}  {:>12.2}  {:>12.0}  {:>10.2}  {:>11.2}  {:>10.3}  {:>13}  {:>13.0}  {:>13.0}  {:>6.2}\n",
            row.key_bits,
            row.handshakes,
            row.handshake_median_ms,
            row.handshakes_per_s,
            row.handshake_cpu_ms,
            row.rsa_sign_ms,
            row.tcp_connect_median_ms,
            format!("{} x {} MiB", row.rounds, row.megabytes),
            row.channel_mb_per_s,
            row.raw_tcp_mb_per_s,
            row.ratio
        ));
    }
    s.push_str(&format!(
        "\n{:>8}  {:>18}  {:>18}  {:>9}  (MB per CPU second, both ends)\n",
        "KEY BITS", "CHANNEL MB/CPU-s", "RAW TCP MB/CPU-s", "CPU RATIO"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:>8}  {:>18.0}  {:>18.0}  {:>9.2}\n",
            row.key_bits, row.channel_mb_per_cpu_s, row.raw_tcp_mb_per_cpu_s, row.cpu_ratio
        ));
    }
    s.push_str(&format!(
        "\n{:>8}  {:>16}  {:>16}  {:>6}  {:>22}  {:>22}\n",
        "KEY BITS",
        "1 KiB RR/s CHAN",
        "1 KiB RR/s RAW",
        "RATIO",
        "RTT CHAN p50/p99 us",
        "RTT RAW p50/p99 us"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:>8}  {:>16.0}  {:>16.0}  {:>6.2}  {:>22}  {:>22}\n",
            row.key_bits,
            row.rr_channel_per_s,
            row.rr_raw_per_s,
            row.rr_ratio,
            format!("{:.0} / {:.0}", row.rtt_channel_us.0, row.rtt_channel_us.1),
            format!("{:.0} / {:.0}", row.rtt_raw_us.0, row.rtt_raw_us.1),
        ));
    }
    s.push_str(&format!(
        "\n{:>8}  {:>22}  {:>22}  {:>6}  (channel, 4-byte length + 1020-byte body)\n",
        "KEY BITS", "RR/s 2 WRITES (p50 us)", "RR/s VECTORED (p50 us)", "GAIN"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:>8}  {:>22}  {:>22}  {:>5.2}x\n",
            row.key_bits,
            format!(
                "{:.0} ({:.0})",
                row.rr_two_writes_per_s, row.rtt_two_writes_us.0
            ),
            format!(
                "{:.0} ({:.0})",
                row.rr_vectored_per_s, row.rtt_vectored_us.0
            ),
            if row.rr_two_writes_per_s > 0.0 {
                row.rr_vectored_per_s / row.rr_two_writes_per_s
            } else {
                0.0
            },
        ));
    }
    s.push_str(&format!(
        "\n{:>8}  {:>22}  {:>22}  {:>8}\n",
        "KEY BITS", "HANDSHAKES/s (CPU ms)", "RSA-CERT HS/s (CPU ms)", "SPEED-UP"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:>8}  {:>22}  {:>22}  {:>7.2}x\n",
            row.key_bits,
            format!("{:.0} ({:.2})", row.handshakes_per_s, row.handshake_cpu_ms),
            format!(
                "{:.0} ({:.2})",
                row.rsa_design_handshakes_per_s, row.rsa_design_handshake_cpu_ms
            ),
            row.handshake_speedup,
        ));
    }
    if let Some(row) = r.rows.first() {
        s.push_str(&format!(
            "\nRSA-CERT = the design before key bindings, measured alternately in this run: certificates on the RSA sig key, one RSA signature per handshake on each side\nmedians; handshake = TCP connect + TLS handshake + pinning + acceptance byte; HS CPU = CPU time of both ends per handshake; {}; certificate key: {}\n",
            row.cipher, row.cert_key
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_pick_the_middle_and_survive_empty_input() {
        let d = |ms| Duration::from_millis(ms);
        assert_eq!(median_ms(vec![d(3), d(1), d(2)]), (2.0, 1.0, 3.0));
        assert_eq!(median_ms(vec![]), (0.0, 0.0, 0.0));
        assert_eq!(median(vec![5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn percentiles_pick_the_middle_and_the_99th() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(p50_p99_us(v), (51.0, 99.0));
        assert_eq!(p50_p99_us(vec![]), (0.0, 0.0));
        assert_eq!(p50_p99_us(vec![Duration::from_micros(7)]), (7.0, 7.0));
    }

    #[test]
    fn the_aead_ceiling_is_measured() {
        assert!(aead_rate(openssl::symm::Cipher::aes_128_gcm()) > 0.0);
    }

    #[tokio::test]
    async fn round_trips_are_echoed_and_timed() {
        let (a, b) = tokio::io::duplex(4096);
        let server = tokio::spawn(serve(b));
        let (rate, times) = request_response(a, Framing::Vectored).await.unwrap();
        assert!(rate > 0.0);
        assert!(!times.is_empty());
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_transfer_delivers_every_byte_and_is_answered() {
        let (a, b) = tokio::io::duplex(4096);
        let sink = tokio::spawn(serve(b));
        let (rate, _) = source(a, 300_000).await.unwrap();
        assert!(rate > 0.0);
        sink.await.unwrap().unwrap();
    }
}
