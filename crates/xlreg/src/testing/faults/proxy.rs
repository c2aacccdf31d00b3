//! The byte pumps between members: one loopback listener per (member,
//! peer, endpoint), owned by the harness. A connection accepted on the
//! listener for (a, b, k) comes from member a (its view of b names this
//! port) and is forwarded to b's registered endpoint k; the bytes from a
//! to b obey the rule of link a→b, the replies the rule of link b→a.
//!
//! Why a proxy: it needs no root, no `tc` or namespaces, works on
//! loopback, and knows both ends of every connection, so "cut 0 from 1"
//! is one rule. The fault acts on the byte stream, so TLS and any other
//! protocol pass through a healthy link unchanged.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::rules::{LinkRule, LOSS_SYN_RTO};

/// Bytes read in one go.
const CHUNK: usize = 64 * 1024;
/// Bytes a delayed link holds before it stops reading (backpressure).
const MAX_QUEUED: usize = 4 * 1024 * 1024;
/// At most this many proxy listeners per cluster (size² × endpoints).
pub const MAX_LISTENERS: usize = 4096;

/// Off: every link copies through a buffer, as off Linux (for
/// `xlreg bench faults`, which measures both in one run).
static FAST_PATH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turn the splice fast path of healthy links on or off for connections
/// accepted from now on (on by default).
pub fn set_fast_path(on: bool) {
    FAST_PATH.store(on, Ordering::Relaxed);
}

/// The links' rules, shared by the control handle and the pumps.
#[derive(Debug)]
pub(crate) struct Links {
    pub n: usize,
    /// `[a * n + b]`: the bytes from a to b.
    pub rules: Vec<watch::Sender<LinkRule>>,
    seed: AtomicU64,
}

impl Links {
    pub fn new(n: usize) -> Self {
        let seed = u64::from_le_bytes(crate::wire::crypto::random_array::<8>()) | 1;
        Links {
            n,
            rules: (0..n * n)
                .map(|_| watch::Sender::new(LinkRule::default()))
                .collect(),
            seed: AtomicU64::new(seed),
        }
    }

    /// Set every link's rule; pumps see only the links that changed.
    pub fn set(&self, table: &[LinkRule]) {
        for (tx, new) in self.rules.iter().zip(table) {
            tx.send_if_modified(|r| std::mem::replace(r, *new) != *new);
        }
    }

    fn rng(&self) -> Rng {
        Rng(self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .max(1))
    }
}

/// xorshift64: jitter and loss only need to look random, not be secret.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The proxies of one cluster. Dropping it stops every listener and
/// every forwarded connection.
#[derive(Debug)]
pub(crate) struct FaultNet {
    /// `[from][to][k]`: the port `from` dials for `to`'s endpoint k
    /// (`None` for from == to).
    pub addrs: Vec<Vec<Vec<Option<SocketAddr>>>>,
    _tasks: JoinSet<()>,
    /// Dropped with the net: every connection task watches it.
    _stop: watch::Sender<()>,
}

impl FaultNet {
    /// Listen for every (from, to, k) with from != to; `targets[to][k]` is
    /// the registered endpoint. Call inside a tokio runtime.
    pub fn start(links: Arc<Links>, targets: &[Vec<SocketAddr>]) -> std::io::Result<Self> {
        let n = targets.len();
        let count: usize = targets.iter().map(Vec::len).sum::<usize>() * n.saturating_sub(1);
        if count > MAX_LISTENERS {
            return Err(std::io::Error::other(format!(
                "faults need {count} proxy ports for this cluster (at most {MAX_LISTENERS}): \
                 use fewer members or endpoints"
            )));
        }
        let (stop, _) = watch::channel(());
        let mut tasks = JoinSet::new();
        let mut addrs = vec![];
        for from in 0..n {
            let mut row = vec![];
            for (to, eps) in targets.iter().enumerate() {
                let mut cell = vec![];
                for &target in eps {
                    if from == to {
                        cell.push(None);
                        continue;
                    }
                    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
                    l.set_nonblocking(true)?;
                    cell.push(Some(l.local_addr()?));
                    let l = TcpListener::from_std(l)?;
                    let (links, stop) = (links.clone(), stop.subscribe());
                    tasks.spawn(accept_loop(l, links, stop, from, to, target));
                }
                row.push(cell);
            }
            addrs.push(row);
        }
        Ok(FaultNet {
            addrs,
            _tasks: tasks,
            _stop: stop,
        })
    }
}

async fn accept_loop(
    l: TcpListener,
    links: Arc<Links>,
    stop: watch::Receiver<()>,
    from: usize,
    to: usize,
    target: SocketAddr,
) {
    loop {
        let client = match l.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::debug!("fault proxy {from}->{to}: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let n = links.n;
        let fwd = links.rules[from * n + to].subscribe();
        let back = links.rules[to * n + from].subscribe();
        let (r1, r2) = (links.rng(), links.rng());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = forward(client, target, fwd, back, r1, r2) => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// Wait until a new connection may pass (both directions open: TCP's
/// handshake needs both), connect to the target and pump both ways.
async fn forward(
    client: TcpStream,
    target: SocketAddr,
    mut fwd: watch::Receiver<LinkRule>,
    mut back: watch::Receiver<LinkRule>,
    r1: Rng,
    mut r2: Rng,
) {
    loop {
        let (f, b) = (*fwd.borrow_and_update(), *back.borrow_and_update());
        if !f.blocked && !b.blocked {
            if f.loss > 0.0 && r2.unit() < f.loss {
                tokio::time::sleep(LOSS_SYN_RTO).await;
            }
            break;
        }
        tokio::select! {
            r = fwd.changed() => if r.is_err() { return },
            r = back.changed() => if r.is_err() { return },
        }
    }
    let server = match TcpStream::connect(target).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("fault proxy: connecting to {target}: {e}");
            // The caller sees the connection closed, as the target's
            // refusal would close it.
            drop(client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::join!(pump(cr, sw, fwd, r1), pump(sr, cw, back, r2));
}

/// Copy `r` to `w` under the link's rule: at once when healthy; held
/// while blocked; each chunk late by the rule's delay (order kept) when
/// delayed. A change of rule takes effect at once, also for bytes already
/// held (a heal releases them).
///
/// On Linux a healthy link takes the fast path ([`super::splice`]): the
/// kernel moves the bytes, and the pump leaves it the moment the rule
/// changes.
async fn pump(
    mut r: OwnedReadHalf,
    mut w: OwnedWriteHalf,
    mut rule: watch::Receiver<LinkRule>,
    mut rng: Rng,
) {
    #[cfg(target_os = "linux")]
    let pipe = match FAST_PATH.load(Ordering::Relaxed) {
        true => super::splice::Pipe::new(),
        false => None,
    };
    let mut buf = vec![0u8; CHUNK];
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut queued = 0usize;
    let mut eof = false;
    let mut last_due = Instant::now();
    loop {
        let cur = *rule.borrow_and_update();
        if cur.blocked {
            if rule.changed().await.is_err() {
                return;
            }
            continue;
        }
        if eof && queue.is_empty() {
            let _ = w.shutdown().await;
            return;
        }
        #[cfg(target_os = "linux")]
        if let (Some(p), true, true) = (&pipe, cur.is_healthy(), queue.is_empty() && !eof) {
            use super::splice::{healthy, Left};
            match healthy(&r, &w, p, &mut rule).await {
                Left::RuleChanged => {
                    last_due = last_due.min(Instant::now());
                    continue;
                }
                Left::Eof => {
                    eof = true;
                    continue;
                }
                Left::Stop => return,
            }
        }
        let head = queue.front().map(|(due, _)| *due);
        tokio::select! {
            biased;
            changed = rule.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = Instant::now();
                let new = *rule.borrow();
                for (due, _) in &mut queue {
                    // A lighter rule releases what the old one held.
                    *due = (*due).min(now + new.delay + new.jitter);
                }
                last_due = last_due.min(now);
            }
            _ = tokio::time::sleep_until(head.unwrap_or_else(Instant::now)), if head.is_some() => {
                let (_, bytes) = queue.pop_front().expect("a head");
                queued -= bytes.len();
                if w.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            got = r.read(&mut buf), if !eof && queued < MAX_QUEUED => {
                let n = match got {
                    Ok(0) | Err(_) => {
                        eof = true;
                        continue;
                    }
                    Ok(n) => n,
                };
                if cur.is_healthy() && queue.is_empty() {
                    if w.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    continue;
                }
                let now = Instant::now();
                let due = (now + cur.wait(rng.unit(), rng.unit())).max(last_due);
                last_due = due;
                queued += n;
                queue.push_back((due, buf[..n].to_vec()));
            }
        }
    }
}
