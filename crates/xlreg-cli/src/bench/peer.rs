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
//! waits for the receiver's one-byte answer once all arrived. Every row
//! is bounded in count and wall time.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::rsa2048_decrypt_rate;
use xlreg::peer::{PeerConnector, PeerListener};
use xlreg::testing::{LaunchOptions, LocalCluster};

/// Wall-time budget of the handshake row.
pub const HANDSHAKE_BUDGET: Duration = Duration::from_secs(5);
/// Time limit of one transfer.
pub const TRANSFER_LIMIT: Duration = Duration::from_secs(30);
/// Write size of a transfer.
const CHUNK: usize = 64 * 1024;

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
    /// TLS version and cipher of the channel.
    pub cipher: String,
}

/// The whole benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always `peer`.
    pub benchmark: &'static str,
    /// RSA-2048 private decryptions per second on one core, this run.
    pub rsa2048_decrypt_per_s: f64,
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
async fn source<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, bytes: usize) -> anyhow::Result<f64> {
    let buf = vec![0x5au8; CHUNK];
    let t = Instant::now();
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
    Ok(bytes as f64 / t.elapsed().as_secs_f64() / 1e6)
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
                    tokio::spawn(sink(s));
                }
                Err(e) => tracing::warn!("bench peer: {}", xlreg::ErrorChain(&e)),
            }
        }
    });
    let dialer = &cluster.members[1];
    let conn = PeerConnector::new(&dialer.view, &dialer.identity)?;
    let target = view.self_index;

    // Handshakes, after one warm-up.
    drop(conn.connect(target).await?);
    let mut times = Vec::new();
    let t0 = Instant::now();
    while times.len() < handshakes && t0.elapsed() < HANDSHAKE_BUDGET {
        let t = Instant::now();
        let s = conn.connect(target).await?;
        times.push(t.elapsed());
        drop(s);
    }
    let n = times.len();
    let (hs_med, hs_min, hs_max) = median_ms(times);

    // Raw TCP on the same loopback: connect time and a sink.
    let raw = TcpListener::bind("127.0.0.1:0").await?;
    let raw_addr = raw.local_addr()?;
    let raw_server = tokio::spawn(async move {
        while let Ok((s, _)) = raw.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(sink(s));
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
    server.abort();
    raw_server.abort();
    cluster.shutdown().await;
    let (channel, raw) = (median(tls), median(plain));
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
    let mut rows = Vec::new();
    for &k in key_bits {
        rows.push(row(k, handshakes, megabytes, rounds).await?);
    }
    Ok(Report {
        benchmark: "peer",
        rsa2048_decrypt_per_s: rate,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rows,
    })
}

/// The report as a table.
pub fn table(r: &Report) -> String {
    let mut s = super::rsa_reference_line(r.rsa2048_decrypt_per_s, r.cores);
    s.push_str(&format!(
        "{:>8}  {:>10}  {:>12}  {:>10}  {:>13}  {:>13}  {:>13}  {:>6}\n",
        "KEY BITS",
        "HANDSHAKES",
        "HANDSHAKE ms",
        "TCP CONN ms",
        "TRANSFER",
        "CHANNEL MB/s",
        "RAW TCP MB/s",
        "RATIO"
    ));
    for row in &r.rows {
        s.push_str(&format!(
            "{:>8}  {:>10}  {:>12.2}  {:>10.3}  {:>13}  {:>13.0}  {:>13.0}  {:>6.2}\n",
            row.key_bits,
            row.handshakes,
            row.handshake_median_ms,
            row.tcp_connect_median_ms,
            format!("{} x {} MiB", row.rounds, row.megabytes),
            row.channel_mb_per_s,
            row.raw_tcp_mb_per_s,
            row.ratio
        ));
    }
    if let Some(c) = r.rows.first().map(|r| &r.cipher) {
        s.push_str(&format!(
            "\nmedians; handshake = TCP connect + TLS handshake + pinning + acceptance byte; {c}\n"
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

    #[tokio::test]
    async fn a_transfer_delivers_every_byte_and_is_answered() {
        let (a, b) = tokio::io::duplex(4096);
        let sink = tokio::spawn(sink(b));
        let rate = source(a, 300_000).await.unwrap();
        assert!(rate > 0.0);
        sink.await.unwrap().unwrap();
    }
}
