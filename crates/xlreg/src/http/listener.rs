//! The side door's listener: its own connection cap and timeouts, so that
//! no HTTP client can hold the door open or take the process's open files
//! away from the registry port.
//!
//! Why not `axum::serve`: it has no header-read timeout, no idle timeout
//! and no connection cap. With ~1 100 connections that sent half a header
//! and stayed, the process ran out of open files and the registry port
//! stopped accepting too (issue 21). Here every connection is served by
//! hyper's HTTP/1 connection builder under [`HttpLimits`]:
//!
//! - **header timeout**: a request's headers must arrive within it, counted
//!   from the accept or the end of the previous response (hyper's
//!   `header_read_timeout`), so a slow drip of header bytes ends;
//! - **idle timeout**: a connection with no request being handled on which
//!   no byte moves either way for this long is closed (a silent client, a
//!   kept-alive connection, a client that stops reading its response);
//! - **request timeout**: a handler, with the request body it reads, gets
//!   this long, then the client gets 408 (a slow-drip body);
//! - **body limit**: bodies read by a handler are refused beyond it (413);
//! - **connection cap**: at the cap, a new connection evicts the oldest one
//!   that has no request being handled (nginx reuses idle keep-alive
//!   connections the same way when it runs out of `worker_connections`), so
//!   a fresh `/healthz` is answered at once however many connections are
//!   held; when every connection is busy handling a request, the new one
//!   gets a 503 and is closed. The side door never holds more than
//!   `max_connections + 1` sockets.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Default for [`HttpLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;
/// Default for [`HttpLimits::header_timeout`], in seconds.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// Default for [`HttpLimits::idle_timeout`], in seconds.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 5;
/// Default for [`HttpLimits::request_timeout`], in seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Default for [`HttpLimits::max_body`], in bytes.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// The largest request head (request line and headers) hyper buffers; a
/// larger one is refused (hyper's minimum is 8 KiB).
const MAX_HEAD: usize = 16 * 1024;

/// How long shutdown waits for open requests before closing them.
const DRAIN: Duration = Duration::from_secs(5);

/// What no HTTP client may exceed (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections held open at once (at least 1).
    pub max_connections: usize,
    /// Longest wait for a request's headers.
    pub header_timeout: Duration,
    /// Longest silence on a connection with no request being handled.
    pub idle_timeout: Duration,
    /// Longest a handler (with the body it reads) may take.
    pub request_timeout: Duration,
    /// Largest request body a handler reads, in bytes.
    pub max_body: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// What the side door did with connections so far (for tests and logs).
#[derive(Debug, Default)]
pub struct ConnCounts {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed to make room for a newer one at the cap.
    pub evicted: AtomicU64,
    /// Connections refused (503) because every held one was busy.
    pub refused: AtomicU64,
    /// Connections closed by the idle timeout.
    pub idle_closed: AtomicU64,
}

/// One held connection, as the accept loop sees it.
struct Entry {
    /// Requests being handled on it right now.
    in_flight: AtomicUsize,
    /// Told to close (evicted).
    evict: Notify,
}

/// The held connections, oldest first.
#[derive(Default)]
struct Table {
    next: u64,
    conns: BTreeMap<u64, Arc<Entry>>,
}

impl Table {
    fn insert(&mut self) -> (u64, Arc<Entry>) {
        let id = self.next;
        self.next += 1;
        let e = Arc::new(Entry {
            in_flight: AtomicUsize::new(0),
            evict: Notify::new(),
        });
        self.conns.insert(id, e.clone());
        (id, e)
    }

    /// Remove and signal the oldest connection with no request in flight.
    fn evict_oldest_idle(&mut self) -> bool {
        let found = self
            .conns
            .iter()
            .find(|(_, e)| e.in_flight.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match found.and_then(|id| self.conns.remove(&id)) {
            Some(e) => {
                e.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serve `app` on `listener` under `limits` until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    counts: Arc<ConnCounts>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = app.layer(DefaultBodyLimit::max(limits.max_body));
    let cap = limits.max_connections.max(1);
    let table = Arc::new(Mutex::new(Table::default()));
    let mut conns = JoinSet::new();
    // Sockets open (held or evicted but not yet closed), and a wake-up
    // each time one closes: at most `cap` stay open while waiting for the
    // next accept.
    let open = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(Notify::new());
    loop {
        while open.load(Ordering::Acquire) > cap {
            tokio::select! {
                _ = closed.notified() => {}
                _ = shutdown.changed() => break,
            }
        }
        if *shutdown.borrow() {
            break;
        }
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        counts.accepted.fetch_add(1, Ordering::Relaxed);
        let entry = {
            let mut t = table.lock().expect("connection table");
            if t.conns.len() < cap {
                Some(t.insert())
            } else if t.evict_oldest_idle() {
                counts.evicted.fetch_add(1, Ordering::Relaxed);
                Some(t.insert())
            } else {
                None
            }
        };
        let Some((id, entry)) = entry else {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "HTTP connection refused: every connection is busy");
            refuse(stream);
            continue;
        };
        open.fetch_add(1, Ordering::AcqRel);
        let (app, table, counts, rx) =
            (app.clone(), table.clone(), counts.clone(), shutdown.clone());
        let (open, closed) = (open.clone(), closed.clone());
        conns.spawn(async move {
            serve_conn(stream, app, limits, &entry, &counts, rx).await;
            table.lock().expect("connection table").conns.remove(&id);
            open.fetch_sub(1, Ordering::AcqRel);
            closed.notify_one();
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
}

/// Say 503 if the socket takes it at once, then close.
fn refuse(stream: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Type: text/plain\r\nContent-Length: 24\r\n\r\nHTTP connections busy\r\n\r\n";
    let _ = stream.try_write(BUSY);
}

/// Counts a request as in flight while its guard lives.
struct InFlight(Arc<Entry>);

impl InFlight {
    fn new(e: &Arc<Entry>) -> Self {
        e.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(e.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn serve_conn(
    stream: TcpStream,
    app: Router,
    limits: HttpLimits,
    entry: &Arc<Entry>,
    counts: &ConnCounts,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Tracked {
        inner: stream,
        start,
        last: last.clone(),
    });
    let svc_entry = entry.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let guard = InFlight::new(&svc_entry);
        let app = app.clone();
        async move {
            let r = tokio::time::timeout(
                limits.request_timeout,
                app.oneshot(req.map(axum::body::Body::new)),
            )
            .await;
            drop(guard);
            match r {
                Ok(r) => r,
                Err(_) => Ok((
                    StatusCode::REQUEST_TIMEOUT,
                    [("connection", "close")],
                    "request not completed within the HTTP request timeout\n",
                )
                    .into_response()),
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD)
        .keep_alive(true);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let silent = start
            .elapsed()
            .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
        let idle_left = limits.idle_timeout.saturating_sub(silent);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "HTTP connection ended");
                }
                return;
            }
            _ = entry.evict.notified() => {
                tracing::debug!("HTTP connection evicted for a newer one");
                return;
            }
            _ = shutdown.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(idle_left.max(Duration::from_millis(10))) => {
                let silent = start.elapsed().saturating_sub(Duration::from_millis(
                    last.load(Ordering::Relaxed),
                ));
                if silent >= limits.idle_timeout
                    && entry.in_flight.load(Ordering::Acquire) == 0
                {
                    counts.idle_closed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("HTTP connection closed: idle");
                    return;
                }
            }
        }
    }
}

/// A socket that notes when a byte last moved (milliseconds since `start`).
struct Tracked {
    inner: TcpStream,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl Tracked {
    fn moved(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.moved();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Door {
        addr: std::net::SocketAddr,
        counts: Arc<ConnCounts>,
        _stop: watch::Sender<bool>,
    }

    async fn door(limits: HttpLimits) -> Door {
        let app = Router::new()
            .route("/x", get(|| async { "x" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    "slow"
                }),
            )
            .route(
                "/body",
                post(|b: String| async move { b.len().to_string() }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(ConnCounts::default());
        let (stop, rx) = watch::channel(false);
        tokio::spawn(serve(listener, app, limits, counts.clone(), rx));
        Door {
            addr,
            counts,
            _stop: stop,
        }
    }

    fn limits() -> HttpLimits {
        HttpLimits {
            max_connections: 8,
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_body: 1024,
        }
    }

    /// Read until the server closes (or `limit` passes): what came, and when
    /// it closed (`None`: still open at `limit`).
    async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
        let t = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = limit.saturating_sub(t.elapsed());
            match tokio::time::timeout(left, s.read(&mut buf)).await {
                Err(_) => return (String::from_utf8_lossy(&got).into(), None),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    return (String::from_utf8_lossy(&got).into(), Some(t.elapsed()))
                }
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[tokio::test]
    async fn a_header_dripped_byte_by_byte_is_cut_at_the_header_timeout() {
        let d = door(HttpLimits {
            header_timeout: Duration::from_secs(1),
            ..limits()
        })
        .await;
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let t = Instant::now();
        let mut closed = false;
        while t.elapsed() < Duration::from_secs(5) {
            if s.write_all(b"X").await.is_err() {
                closed = true;
                break;
            }
            let mut b = [0u8; 64];
            if let Ok(r) = tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await {
                if matches!(r, Ok(0) | Err(_)) {
                    closed = true;
                    break;
                }
            }
        }
        let took = t.elapsed();
        assert!(closed, "still open after {took:?} of dripping");
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(4),
            "closed after {took:?}, header timeout 1 s"
        );
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_at_the_idle_timeout() {
        let d = door(HttpLimits {
            idle_timeout: Duration::from_secs(1),
            ..limits()
        })
        .await;
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        let took = closed.expect("a silent connection stays open");
        assert!(took >= Duration::from_millis(800), "closed after {took:?}");
        assert_eq!(d.counts.idle_closed.load(Ordering::Relaxed), 1);
        // A kept-alive connection too, after its first answer.
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (text, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(closed.is_some(), "kept-alive connection never closed");
        assert_eq!(d.counts.idle_closed.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_gets_413_and_one_under_it_is_read() {
        let d = door(limits()).await;
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        s.write_all(
            b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        s.write_all(&[b'a'; 100]).await.unwrap();
        let (text, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("100"),
            "{text}"
        );
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        s.write_all(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
            .await
            .unwrap();
        let _ = s.write_all(&[b'a'; 4096]).await;
        let (text, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    }

    #[tokio::test]
    async fn a_body_that_stops_coming_gets_408_at_the_request_timeout() {
        let d = door(HttpLimits {
            request_timeout: Duration::from_secs(1),
            ..limits()
        })
        .await;
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        s.write_all(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        let (text, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(closed.is_some(), "closed after the 408");
    }

    #[tokio::test]
    async fn at_the_cap_a_new_connection_closes_the_oldest_idle_one() {
        let d = door(HttpLimits {
            max_connections: 2,
            ..limits()
        })
        .await;
        let mut first = TcpStream::connect(d.addr).await.unwrap();
        let _second = TcpStream::connect(d.addr).await.unwrap();
        // Let the server accept both before the third arrives.
        while d.counts.accepted.load(Ordering::Relaxed) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut third = TcpStream::connect(d.addr).await.unwrap();
        third
            .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (text, _) = read_until_closed(&mut third, Duration::from_secs(5)).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        let (_, closed) = read_until_closed(&mut first, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "the oldest connection is still open");
        assert_eq!(d.counts.evicted.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn at_the_cap_with_every_connection_busy_a_new_one_gets_503() {
        let d = door(HttpLimits {
            max_connections: 1,
            ..limits()
        })
        .await;
        let mut busy = TcpStream::connect(d.addr).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut late = TcpStream::connect(d.addr).await.unwrap();
        let (text, closed) = read_until_closed(&mut late, Duration::from_secs(2)).await;
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(closed.is_some());
        assert_eq!(d.counts.refused.load(Ordering::Relaxed), 1);
        let (text, _) = read_until_closed(&mut busy, Duration::from_secs(5)).await;
        assert!(
            text.ends_with("slow"),
            "the busy request still completes: {text}"
        );
    }
}
