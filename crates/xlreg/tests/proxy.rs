//! Sessions between our client and server through hostile loopback TCP
//! proxies: one that splits every write into 1-byte segments with small
//! random delays, one that merges segments into large bursts. Whole
//! sessions — including a 64-member view with 2048-bit keys — must work
//! through both, in both framings (Go's unframed one and ours).

mod raw;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use xlreg::client::{self, BootOptions, ClientOptions, ClusterRef, NodeIdentity};
use xlreg::regcred::RegCred;
use xlreg::wire::{NodeId, PrivateKey};

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Every byte its own write (TCP_NODELAY: its own segment), with a
    /// random 0–2 ms pause now and then.
    Fragment,
    /// Collect for a few milliseconds, then forward in one write.
    Coalesce,
}

/// Statistics of a proxy: writes forwarded.
#[derive(Default)]
struct Stats {
    writes: AtomicU64,
    bytes: AtomicU64,
}

fn rng_next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: Mode,
    stats: Arc<Stats>,
    seed: u64,
) {
    let mut buf = vec![0u8; 65536];
    let mut rng = seed | 1;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match mode {
            Mode::Fragment => {
                for &b in &buf[..n] {
                    if to.write_all(&[b]).await.is_err() {
                        return;
                    }
                    stats.writes.fetch_add(1, Ordering::Relaxed);
                    if rng_next(&mut rng) % 32 == 0 {
                        tokio::time::sleep(Duration::from_micros(rng_next(&mut rng) % 2000)).await;
                    }
                }
            }
            Mode::Coalesce => {
                let mut chunk = buf[..n].to_vec();
                // Gather whatever else arrives in the next few ms.
                let until = tokio::time::Instant::now() + Duration::from_millis(5);
                while let Ok(Ok(m)) = tokio::time::timeout_at(until, from.read(&mut buf)).await {
                    if m == 0 {
                        break;
                    }
                    chunk.extend_from_slice(&buf[..m]);
                }
                if to.write_all(&chunk).await.is_err() {
                    return;
                }
                stats.writes.fetch_add(1, Ordering::Relaxed);
            }
        }
        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}

/// Start a proxy to `upstream`; returns its address.
async fn proxy(upstream: String, mode: Mode) -> (String, Arc<Stats>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let stats = Arc::new(Stats::default());
    let st = stats.clone();
    tokio::spawn(async move {
        let mut seed = 0x9e3779b97f4a7c15u64;
        while let Ok((c, _)) = l.accept().await {
            let Ok(s) = TcpStream::connect(&upstream).await else {
                continue;
            };
            c.set_nodelay(true).unwrap();
            s.set_nodelay(true).unwrap();
            let (cr, cw) = c.into_split();
            let (sr, sw) = s.into_split();
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            tokio::spawn(pump(cr, sw, mode, st.clone(), seed));
            tokio::spawn(pump(sr, cw, mode, st.clone(), seed ^ 0xabcdef));
        }
    });
    (addr, stats)
}

fn node(name: &str, keys: &(PrivateKey, PrivateKey), port: u16) -> NodeIdentity {
    NodeIdentity::from_keys(
        name,
        NodeId::random(),
        keys.0.clone(),
        keys.1.clone(),
        vec![format!("127.0.0.1:{port}")],
    )
    .unwrap()
}

async fn boot_three_through(mode: Mode, legacy: bool) {
    let srv = raw::server_with(|c| c.hold = Duration::from_secs(1)).await;
    let rc: RegCred = srv.regcred().clone();
    let (addr, stats) = proxy(rc.endpoints[0].clone(), mode).await;
    let client = ClientOptions {
        address: Some(addr),
        legacy_framing: legacy,
        ..Default::default()
    };
    let admin = node("admin", raw::keys(7), 1);
    let info = client::create_cluster_as(
        &rc,
        &admin,
        &client::ClusterSpec::new("through-proxy", 3),
        &client,
    )
    .await
    .unwrap();
    let opts = BootOptions {
        client,
        ..Default::default()
    };
    let mut tasks = Vec::new();
    for i in 0..3 {
        let (rc, opts, id) = (rc.clone(), opts.clone(), info.id);
        let n = node(&format!("m{i}"), raw::keys(i), 7000 + i as u16);
        tasks.push(tokio::spawn(async move {
            client::boot(&rc, &ClusterRef::Id(id), &n, &opts).await
        }));
    }
    let mut views = Vec::new();
    for t in tasks {
        views.push(t.await.unwrap().expect("boot through the proxy"));
    }
    assert!(views.iter().all(|v| v.members.len() == 3));
    let ids = |v: &xlreg::client::ClusterView| v.members.iter().map(|m| m.id).collect::<Vec<_>>();
    assert!(
        views.iter().all(|v| ids(v) == ids(&views[0])),
        "identical views"
    );
    let writes = stats.writes.load(Ordering::Relaxed);
    let bytes = stats.bytes.load(Ordering::Relaxed);
    eprintln!("{mode:?} legacy={legacy}: {bytes} bytes in {writes} writes");
    if let Mode::Fragment = mode {
        assert_eq!(writes, bytes, "every byte was its own write");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_one_byte_segments_in_xlreg_framing() {
    boot_three_through(Mode::Fragment, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_one_byte_segments_in_go_framing() {
    boot_three_through(Mode::Fragment, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_coalesced_segments_in_both_framings() {
    boot_three_through(Mode::Coalesce, false).await;
    boot_three_through(Mode::Coalesce, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_member_view_with_2048_bit_keys_arrives_through_both_proxies() {
    let srv = raw::server().await;
    let rc: RegCred = srv.regcred().clone();
    let keys = tokio::task::spawn_blocking(|| {
        (
            PrivateKey::generate(2048).unwrap(),
            PrivateKey::generate(2048).unwrap(),
        )
    })
    .await
    .unwrap();
    let admin = node("admin", raw::keys(7), 1);
    let direct = ClientOptions::default();
    let info = client::create_cluster_as(
        &rc,
        &admin,
        &client::ClusterSpec::new("big", 64).endpoints(2),
        &direct,
    )
    .await
    .unwrap();
    // Fill the cluster directly (fast), then read it through the proxies.
    let opts = BootOptions {
        wait: None,
        ..Default::default()
    };
    let mut tasks = Vec::new();
    for i in 0..64u16 {
        let mut n = node(&format!("node{i:02}"), &keys, 40000 + i);
        n.endpoints.push(format!("127.0.0.1:{}", 41000 + i));
        let (rc, opts, id) = (rc.clone(), opts.clone(), info.id);
        tasks.push(tokio::spawn(async move {
            client::boot(&rc, &ClusterRef::Id(id), &n, &opts).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for mode in [Mode::Fragment, Mode::Coalesce] {
        for legacy in [false, true] {
            let (addr, stats) = proxy(rc.endpoints[0].clone(), mode).await;
            let opts = ClientOptions {
                address: Some(addr),
                legacy_framing: legacy,
                ..Default::default()
            };
            let reader = node("reader", raw::keys(6), 2);
            let t = Instant::now();
            let list = client::read_members(&rc, &info.id, &reader, &opts)
                .await
                .unwrap();
            assert_eq!(list.members.len(), 64, "{mode:?} legacy={legacy}");
            assert!(list.members.iter().all(|m| m.sig_key.bits() == 2048));
            eprintln!(
                "{mode:?} legacy={legacy}: 64-member view, {} bytes in {} writes, {:?}",
                stats.bytes.load(Ordering::Relaxed),
                stats.writes.load(Ordering::Relaxed),
                t.elapsed()
            );
        }
    }
}
