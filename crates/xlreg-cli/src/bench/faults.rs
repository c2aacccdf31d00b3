//! `xlreg bench faults`: what the fault proxy of
//! `LaunchOptions { faults: true }` costs on a healthy link — round-trip
//! latency and throughput through the proxy beside a direct connection to
//! the same member endpoint, in the same run. Bounded in count and time.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xlreg::testing::{LaunchOptions, LocalCluster};

/// Time budget of each latency series.
const RTT_BUDGET: Duration = Duration::from_secs(5);
/// Time limit of one transfer.
const TRANSFER_LIMIT: Duration = Duration::from_secs(30);

/// The result.
#[derive(Debug, Serialize)]
pub struct FaultsBench {
    /// Round trips timed per path.
    pub round_trips: usize,
    /// Median 1-byte round trip, direct, µs.
    pub rtt_direct_us: f64,
    /// Median 1-byte round trip through the proxy, µs.
    pub rtt_proxy_us: f64,
    /// MiB per transfer.
    pub megabytes: usize,
    /// Median throughput direct, MB/s.
    pub direct_mb_s: f64,
    /// Median throughput through the proxy, MB/s.
    pub proxy_mb_s: f64,
    /// The same with the splice fast path off (a copy through a buffer,
    /// as off Linux), MB/s.
    pub proxy_copy_mb_s: f64,
}

impl FaultsBench {
    /// The table.
    pub fn print(&self) {
        println!("fault proxy on a healthy link vs direct (2 members, loopback, same run)");
        println!("                     direct        proxy        cost");
        println!(
            "round trip (median)  {:>8.1} µs  {:>8.1} µs  {:+8.1} µs  ({} each)",
            self.rtt_direct_us,
            self.rtt_proxy_us,
            self.rtt_proxy_us - self.rtt_direct_us,
            self.round_trips
        );
        println!(
            "throughput (median)  {:>7.0} MB/s {:>7.0} MB/s {:>8.1} %   ({} MiB each)",
            self.direct_mb_s,
            self.proxy_mb_s,
            (self.proxy_mb_s / self.direct_mb_s - 1.0) * 100.0,
            self.megabytes
        );
        println!(
            "  proxy copying     {:>7.0} MB/s {:>7.0} MB/s {:>8.1} %   (fast path off)",
            self.direct_mb_s,
            self.proxy_copy_mb_s,
            (self.proxy_copy_mb_s / self.direct_mb_s - 1.0) * 100.0,
        );
    }
}

/// First byte of a connection to the bench server: echo or sink.
const ECHO: u8 = b'E';
const SINK: u8 = b'S';

async fn serve(mut s: TcpStream) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let mut mode = [0u8; 1];
    s.read_exact(&mut mode).await?;
    let mut buf = vec![0u8; 256 * 1024];
    if mode[0] == ECHO {
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            s.write_all(&buf[..n]).await?;
        }
    }
    let mut len = [0u8; 8];
    s.read_exact(&mut len).await?;
    let mut left = u64::from_le_bytes(len);
    while left > 0 {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        left = left.saturating_sub(n as u64);
    }
    s.write_all(b"k").await
}

async fn rtts(addr: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(&[ECHO]).await?;
    let mut b = [0u8; 1];
    let mut out = Vec::with_capacity(n);
    let t0 = Instant::now();
    // Warm-up, then the timed ones.
    for i in 0..n + 50 {
        if t0.elapsed() > RTT_BUDGET {
            break;
        }
        let t = Instant::now();
        s.write_all(b"x").await?;
        s.read_exact(&mut b).await?;
        if i >= 50 {
            out.push(t.elapsed());
        }
    }
    Ok(out)
}

async fn transfer(addr: &str, bytes: usize) -> anyhow::Result<f64> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let chunk = vec![7u8; 256 * 1024];
    let t = Instant::now();
    s.write_all(&[SINK]).await?;
    s.write_all(&(bytes as u64).to_le_bytes()).await?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n]).await?;
        left -= n;
    }
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    Ok(bytes as f64 / t.elapsed().as_secs_f64() / 1e6)
}

fn median_us(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2)
        .map(|d| d.as_secs_f64() * 1e6)
        .unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Measure: `round_trips` 1-byte round trips per path and `rounds`
/// transfers of `megabytes` MiB per path, the paths alternating.
pub async fn run(
    round_trips: usize,
    megabytes: usize,
    rounds: usize,
) -> anyhow::Result<FaultsBench> {
    let mut cluster = LocalCluster::launch_with(LaunchOptions {
        size: 2,
        endpoints: 1,
        faults: true,
        ..LaunchOptions::default()
    })
    .await
    .context("launching a 2-member cluster with faults")?;
    let l = cluster.members[1].take_listener(0)?;
    let server = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s));
        }
    });
    let direct = cluster.members[1].endpoints()[0].clone();
    let proxy = cluster.members[0]
        .view
        .member(1)
        .context("member 1 in member 0's view")?
        .endpoints[0]
        .clone();
    anyhow::ensure!(direct != proxy, "the view does not name the proxy");

    let (mut rd, mut rp) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        rd.extend(rtts(&direct, round_trips / 2).await?);
        rp.extend(rtts(&proxy, round_trips / 2).await?);
    }
    let bytes = megabytes << 20;
    let (mut td, mut tp, mut tc) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        td.push(tokio::time::timeout(TRANSFER_LIMIT, transfer(&direct, bytes)).await??);
        tp.push(tokio::time::timeout(TRANSFER_LIMIT, transfer(&proxy, bytes)).await??);
        xlreg::testing::faults::set_fast_path(false);
        let copied = tokio::time::timeout(TRANSFER_LIMIT, transfer(&proxy, bytes)).await;
        xlreg::testing::faults::set_fast_path(true);
        tc.push(copied??);
    }
    server.abort();
    cluster.shutdown().await;
    Ok(FaultsBench {
        round_trips: rd.len().min(rp.len()),
        rtt_direct_us: median_us(rd),
        rtt_proxy_us: median_us(rp),
        megabytes,
        direct_mb_s: median(td),
        proxy_mb_s: median(tp),
        proxy_copy_mb_s: median(tc),
    })
}
