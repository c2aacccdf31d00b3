//! `xlreg.peer`'s Rust half: the members' mutually authenticated TLS 1.3
//! channel ([`xlreg::peer`]) as a socket-like `Connection` and a
//! `Listener`, blocking (GIL released, Ctrl-C honoured), with awaitable
//! connect and accept, and an in-process relay ([`relay`]) that
//! `xlreg.aio.peer`'s asyncio transport drives.
//!
//! Why the async channel under the blocking calls too: one implementation
//! (the library's tokio [`PeerListener`]/[`PeerStream`]) serves threads
//! and asyncio alike, a blocking call can wake up to check Python signals
//! without tearing the TLS state, and `close()` from another thread wakes
//! a blocked `recv`. A connection for the blocking calls moves its socket
//! to a current-thread runtime of its own, which the blocked thread drives
//! ([`PeerStream::move_to_current_runtime`]): the kernel wakes that thread
//! itself, where the shared runtime woke a worker that then woke it (the
//! bench's context switches per MiB fell from 22–25 to 4–8).

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::Duration;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::sync::{watch, Mutex as AsyncMutex};

use xlreg::client::MemberInfo;
use xlreg::peer::{Peer, PeerConnector, PeerError, PeerListener, PeerStream};

use crate::errors::Failure;
use crate::flows::seconds;
use crate::node::PyNode;
use crate::runtime::{awaitable, block_on_here, block_on_in, runtime};
use crate::view::{PyClusterView, PyMember, PyMemberList};

mod relay;
pub use relay::PyRelay;

/// Largest single `recv` buffer (bigger requests return at most this).
const MAX_RECV: usize = 1 << 20;

/// Who the other end is, as Python sees it: the member from the view (or
/// member list), or None for an anonymous client.
fn peer_member(peer: &Peer, members: &[MemberInfo]) -> Option<MemberInfo> {
    let i = peer.index()?;
    members.iter().find(|m| m.index == i).cloned()
}

fn io_failure(what: &str, addr: &str, source: io::Error) -> Failure {
    Failure::Peer(PeerError::Io {
        what: what.into(),
        addr: addr.into(),
        source,
    })
}

fn closed_failure(what: &str, who: &str) -> Failure {
    Failure::Usage(format!("{what} {who}: the connection is closed"))
}

/// The two directions of one channel, each behind its own lock so that
/// one thread (or task) can read while another writes.
struct Channel {
    reader: AsyncMutex<Option<ReadHalf<PeerStream>>>,
    writer: AsyncMutex<Option<WriteHalf<PeerStream>>>,
    /// Set by `close()`: wakes reads and writes in progress.
    closed: watch::Sender<bool>,
    who: String,
    /// A blocking connection's own current-thread runtime, which its
    /// socket is registered with: the thread blocked in `recv` or
    /// `sendall` drives it, so the kernel wakes that thread directly
    /// (through the shared runtime, a worker woke first, then woke it:
    /// several context switches per wait). None for a connection made for
    /// asyncio (relayed on the shared runtime). Declared last: dropped
    /// after the halves.
    own: Option<tokio::runtime::Runtime>,
}

impl Channel {
    fn new(s: PeerStream, own: Option<tokio::runtime::Runtime>) -> Arc<Self> {
        let who = who(&s);
        let (r, w) = tokio::io::split(s);
        Arc::new(Channel {
            reader: AsyncMutex::new(Some(r)),
            writer: AsyncMutex::new(Some(w)),
            closed: watch::channel(false).0,
            who,
            own,
        })
    }

    /// Run a blocking call's future: on the connection's own runtime, or
    /// on the shared one.
    fn block_on<T, F>(&self, py: Python<'_>, fut: F) -> PyResult<T>
    where
        T: Send,
        F: Future<Output = Result<T, Failure>> + Send,
    {
        match &self.own {
            Some(rt) => block_on_in(py, rt, fut),
            None => block_on_here(py, fut),
        }
    }

    /// Wait until `close()` was called.
    async fn closing(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Fill the start of `buf`: waits for the first byte, then takes
    /// whatever else is already decrypted or readable without waiting.
    /// Returns how many bytes it wrote (initialised), 0 at the end.
    async fn recv_into(self: Arc<Self>, buf: &mut [MaybeUninit<u8>]) -> Result<usize, Failure> {
        let mut guard = tokio::select! {
            g = self.reader.lock() => g,
            _ = self.closing() => return Err(closed_failure("reading from", &self.who)),
        };
        let r = guard
            .as_mut()
            .ok_or_else(|| closed_failure("reading from", &self.who))?;
        if buf.is_empty() {
            return Ok(0);
        }
        let mut rb = ReadBuf::uninit(buf);
        let first = tokio::select! {
            res = read_some(r, &mut rb, true) => res,
            _ = self.closing() => return Err(closed_failure("reading from", &self.who)),
        };
        if let Err(e) = first {
            return Err(io_failure("reading from", &self.who, e));
        }
        while !rb.filled().is_empty() && rb.remaining() > 0 {
            match read_some(r, &mut rb, false).await {
                Ok(Some(k)) if k > 0 => {}
                _ => break,
            }
        }
        Ok(rb.filled().len())
    }

    async fn send(self: Arc<Self>, data: PyBackedBytes) -> Result<(), Failure> {
        let mut guard = tokio::select! {
            g = self.writer.lock() => g,
            _ = self.closing() => return Err(closed_failure("writing to", &self.who)),
        };
        let w = guard
            .as_mut()
            .ok_or_else(|| closed_failure("writing to", &self.who))?;
        let res = tokio::select! {
            r = async { w.write_all(&data).await?; w.flush().await } => r,
            _ = self.closing() => return Err(closed_failure("writing to", &self.who)),
        };
        res.map_err(|e| io_failure("writing to", &self.who, e))
    }

    async fn shutdown(self: Arc<Self>) -> Result<(), Failure> {
        let mut guard = self.writer.lock().await;
        match guard.as_mut() {
            None => Ok(()),
            Some(w) => w
                .shutdown()
                .await
                .map_err(|e| io_failure("ending our direction to", &self.who, e)),
        }
    }

    async fn close(self: Arc<Self>) {
        self.closed.send_replace(true);
        let r = self.reader.lock().await.take();
        let w = self.writer.lock().await.take();
        drop((r, w));
    }
}

fn who(s: &PeerStream) -> String {
    format!("{} at {}", s.peer(), s.peer_addr())
}

/// One read into `rb`: `wait` = true waits for data; false returns `None`
/// when nothing is ready now. `Some(bytes added)`, 0 at the end.
async fn read_some(
    r: &mut ReadHalf<PeerStream>,
    rb: &mut ReadBuf<'_>,
    wait: bool,
) -> io::Result<Option<usize>> {
    let before = rb.filled().len();
    std::future::poll_fn(|cx| match Pin::new(&mut *r).poll_read(cx, rb) {
        Poll::Ready(Ok(())) => Poll::Ready(Ok(Some(rb.filled().len() - before))),
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending if wait => Poll::Pending,
        Poll::Pending => Poll::Ready(Ok(None)),
    })
    .await
}

/// An authenticated channel to one peer: `sendall`, `recv`, `shutdown`,
/// `close`, like a connected socket. `peer` is the member proven on the
/// other end (None for an anonymous client). A context manager.
#[pyclass(module = "xlreg.peer", name = "Connection", frozen)]
pub struct PyConnection {
    chan: Arc<Channel>,
    peer: Option<MemberInfo>,
    peer_addr: SocketAddr,
    handshake: Duration,
    /// Set once the channel is relayed to asyncio streams (`_relay`).
    relayed: OnceLock<()>,
}

impl PyConnection {
    /// A connection for asyncio (relayed on the shared runtime).
    fn new(s: PeerStream, members: &[MemberInfo]) -> Self {
        Self::with_runtime(s, members, None)
    }

    /// A connection for the blocking calls: its socket moves to a
    /// current-thread runtime of its own (see [`Channel::own`]).
    fn blocking(mut s: PeerStream, members: &[MemberInfo]) -> Result<Self, Failure> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| io_failure("starting the runtime of the connection to", &who(&s), e))?;
        {
            let _g = rt.enter();
            s.move_to_current_runtime()
                .map_err(|e| io_failure("moving the connection to", &who(&s), e))?;
        }
        Ok(Self::with_runtime(s, members, Some(rt)))
    }

    fn with_runtime(
        s: PeerStream,
        members: &[MemberInfo],
        own: Option<tokio::runtime::Runtime>,
    ) -> Self {
        PyConnection {
            peer: peer_member(s.peer(), members),
            peer_addr: s.peer_addr(),
            handshake: s.handshake_time(),
            chan: Channel::new(s, own),
            relayed: OnceLock::new(),
        }
    }

    /// The blocking calls are not for a channel relayed to asyncio
    /// streams (the relay owns both directions).
    fn not_relayed(&self, what: &str) -> PyResult<()> {
        if self.relayed.get().is_some() {
            return Err(Failure::Usage(format!(
                "{what} {}: the connection belongs to its asyncio streams",
                self.chan.who
            ))
            .into());
        }
        Ok(())
    }
}

fn addr_tuple(a: SocketAddr) -> (String, u16) {
    (a.ip().to_string(), a.port())
}

#[pymethods]
impl PyConnection {
    /// The member proven on the other end (by its registered sig key), or
    /// None for an anonymous client.
    #[getter]
    fn peer(&self) -> Option<PyMember> {
        self.peer.clone().map(|inner| PyMember { inner })
    }

    /// The peer's `(host, port)`.
    #[getter]
    fn peer_address(&self) -> (String, u16) {
        addr_tuple(self.peer_addr)
    }

    /// Seconds from TCP connect (or accept) to the authenticated channel.
    #[getter]
    fn handshake_time(&self) -> f64 {
        self.handshake.as_secs_f64()
    }

    /// Send all of `data` (bytes-like); returns when it is written.
    fn sendall(&self, py: Python<'_>, data: PyBackedBytes) -> PyResult<()> {
        self.not_relayed("writing to")?;
        self.chan.block_on(py, self.chan.clone().send(data))
    }

    /// Up to `n` bytes (at least 1, waiting for them), or `b""` once the
    /// peer ended its direction.
    fn recv<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        self.not_relayed("reading from")?;
        let n = n.min(MAX_RECV);
        // Decrypted straight into a new `bytes` of `n` bytes, returned as
        // it is when filled (bulk transfers); a short read is copied into
        // a `bytes` of its length (the stable ABI cannot shrink one).
        // SAFETY: a NULL source makes an uninitialised `bytes` of `n`
        // bytes (or fails with an exception set).
        let raw = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), n as ffi::Py_ssize_t) };
        // SAFETY: `raw` is a new reference to a `bytes`, or NULL.
        let obj =
            unsafe { Bound::from_owned_ptr_or_err(py, raw)?.cast_into_unchecked::<PyBytes>() };
        // SAFETY: the object is a `bytes` of `n` bytes that nobody else can
        // see until we return it, so its storage is ours to fill, also
        // with the GIL released.
        let data = unsafe { ffi::PyBytes_AsString(obj.as_ptr()) }.cast::<MaybeUninit<u8>>();
        let buf = unsafe { std::slice::from_raw_parts_mut(data, n) };
        let filled = self.chan.block_on(py, self.chan.clone().recv_into(buf))?;
        if filled == n {
            return Ok(obj);
        }
        // SAFETY: `recv_into` initialised the first `filled` bytes.
        let got = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), filled) };
        Ok(PyBytes::new(py, got))
    }

    /// End our direction (TLS close_notify): the peer's `recv` returns
    /// `b""`; we can still receive.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        self.not_relayed("ending our direction to")?;
        self.chan.block_on(py, self.chan.clone().shutdown())
    }

    /// Close the connection (a `recv` or `sendall` in progress in another
    /// thread fails). Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let c = self.chan.clone();
        self.chan.block_on(py, async move {
            c.close().await;
            Ok(())
        })
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        *self.chan.closed.borrow()
    }

    /// Hand the channel to a relay task that `xlreg.aio.peer`'s
    /// transport drives (see [`relay`]); the blocking calls refuse from
    /// then on. Once per connection.
    fn _relay(&self) -> PyResult<PyRelay> {
        if self.closed() {
            return Err(closed_failure("relaying", &self.chan.who).into());
        }
        if self.chan.own.is_some() {
            return Err(Failure::Usage(format!(
                "{} was made by the blocking calls: it cannot be relayed to asyncio",
                self.chan.who
            ))
            .into());
        }
        // The GIL is held throughout (this call never releases it), so
        // nobody relays it between the check and the set.
        if self.relayed.set(()).is_err() {
            return Err(Failure::Usage(format!("{} is relayed already", self.chan.who)).into());
        }
        PyRelay::start(self.chan.clone())
            .map_err(|e| io_failure("relaying", &self.chan.who, e).into())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.close(py)
    }

    fn __repr__(&self) -> String {
        let who = match &self.peer {
            Some(m) => format!("member {} ({:?})", m.index, m.name),
            None => "anonymous".into(),
        };
        format!(
            "Connection(peer={who}, address={}, closed={})",
            self.peer_addr,
            self.closed()
        )
    }
}

impl Drop for PyConnection {
    fn drop(&mut self) {
        if self.relayed.get().is_some() {
            // The relay task owns the channel (and, after the transport's
            // `close()`, still sends what was written).
            return;
        }
        // The stream's socket deregisters from the runtime's reactor.
        let _g = runtime().enter();
        self.chan.closed.send_replace(true);
        if let Ok(mut r) = self.chan.reader.try_lock() {
            r.take();
        }
        if let Ok(mut w) = self.chan.writer.try_lock() {
            w.take();
        }
    }
}

/// Authenticated dialers (or refusals) a listener holds before `accept`
/// takes them; while this many wait, handshakes pause.
const ACCEPT_QUEUE: usize = 16;

type Accepted = Result<(Peer, PeerStream), PeerError>;

/// A listener on one of this member's endpoints: `accept()` returns a
/// `Connection` once a dialer proved it is a member of the cluster (or, if
/// allowed, is an anonymous client). Handshakes run in the background as
/// soon as dialers connect (as a TCP backlog would hold them), so a dialer
/// need not wait for `accept()` to be called. A context manager.
#[pyclass(module = "xlreg.peer", name = "Listener", frozen)]
pub struct PyListener {
    queue: Arc<AsyncMutex<tokio::sync::mpsc::Receiver<Accepted>>>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
    members: Arc<Vec<MemberInfo>>,
    address: SocketAddr,
    closed: watch::Sender<bool>,
}

impl PyListener {
    fn start(l: PeerListener, members: Vec<MemberInfo>) -> Result<Self, Failure> {
        let address = l.local_addr().map_err(Failure::Peer)?;
        let (tx, rx) = tokio::sync::mpsc::channel(ACCEPT_QUEUE);
        let task = runtime().spawn(async move {
            loop {
                let r = l.accept().await;
                if tx.send(r).await.is_err() {
                    return;
                }
            }
        });
        Ok(PyListener {
            queue: Arc::new(AsyncMutex::new(rx)),
            task: Mutex::new(Some(task.abort_handle())),
            members: Arc::new(members),
            address,
            closed: watch::channel(false).0,
        })
    }

    fn accept_fut(
        &self,
        timeout: Option<f64>,
    ) -> PyResult<impl Future<Output = Result<PeerStream, Failure>> + Send + 'static> {
        let t = timeout.map(|t| seconds("timeout", t)).transpose()?;
        let addr = self.address;
        let is_closed = move || Failure::Usage(format!("the listener on {addr} is closed"));
        if *self.closed.borrow() {
            return Err(is_closed().into());
        }
        let queue = self.queue.clone();
        let mut closed = self.closed.subscribe();
        Ok(async move {
            let accept = async {
                let mut q = queue.lock().await;
                match q.recv().await {
                    Some(Ok((_, s))) => Ok(s),
                    Some(Err(e)) => Err(Failure::Peer(e)),
                    None => Err(is_closed()),
                }
            };
            let bounded = async {
                match t {
                    None => accept.await,
                    Some(t) => match tokio::time::timeout(t, accept).await {
                        Ok(r) => r,
                        Err(_) => Err(Failure::Peer(PeerError::Timeout {
                            what: "waiting for a peer on".into(),
                            addr: addr.to_string(),
                            after: t,
                        })),
                    },
                }
            };
            tokio::select! {
                r = bounded => r,
                _ = closed.wait_for(|c| *c) => Err(is_closed()),
            }
        })
    }
}

#[pymethods]
impl PyListener {
    /// The next authenticated peer, waiting up to `timeout` seconds (None:
    /// no limit; `PeerTimeoutError` after it). A dialer that is refused
    /// raises `PeerRefusedError`; the listener stays usable.
    #[pyo3(signature = (timeout=None))]
    fn accept(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyConnection> {
        let f = self.accept_fut(timeout)?;
        let s = block_on_here(py, f)?;
        Ok(PyConnection::blocking(s, &self.members)?)
    }

    /// Awaitable `accept` (for `xlreg.aio.peer`).
    #[pyo3(signature = (timeout=None))]
    fn _accept_async<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let f = self.accept_fut(timeout)?;
        let members = self.members.clone();
        awaitable(py, async move { Ok(PyConnection::new(f.await?, &members)) })
    }

    /// The `(host, port)` listened on.
    #[getter]
    fn address(&self) -> (String, u16) {
        addr_tuple(self.address)
    }

    /// Stop listening (an `accept` in progress fails; dialers not yet
    /// accepted are dropped). Idempotent.
    fn close(&self) {
        self.closed.send_replace(true);
        if let Some(t) = self.task.lock().ok().and_then(|mut g| g.take()) {
            t.abort();
        }
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        *self.closed.borrow()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        format!(
            "Listener(address={}, closed={})",
            self.address,
            self.closed()
        )
    }
}

impl Drop for PyListener {
    fn drop(&mut self) {
        self.close();
        // Streams still queued deregister from the runtime's reactor.
        let _g = runtime().enter();
        if let Ok(mut q) = self.queue.try_lock() {
            q.close();
            while q.try_recv().is_ok() {}
        }
    }
}

/// `xlreg.peer.listen`: listen as `node`, member of `view`'s cluster, on
/// the listening socket with file descriptor `fd` (taken over), or on the
/// member's first registered endpoint.
#[pyfunction]
#[pyo3(signature = (view, node, fd=None, allow_anonymous=false))]
pub fn _peer_listen(
    py: Python<'_>,
    view: &Bound<'_, PyClusterView>,
    node: &Bound<'_, PyNode>,
    fd: Option<i32>,
    allow_anonymous: bool,
) -> PyResult<PyListener> {
    let view = view.get().inner.clone();
    let node = node.get().inner.clone();
    let members = view.members.clone();
    let l = match fd {
        Some(fd) => {
            use std::os::fd::FromRawFd;
            // SAFETY: the Python wrapper detached `fd` from its socket
            // object, so this is its only owner.
            let std = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            let _g = runtime().enter();
            PeerListener::from_std(std, &view, &node).map_err(Failure::Peer)?
        }
        None => block_on_here(py, async move {
            PeerListener::bind(&view, &node, 0)
                .await
                .map_err(Failure::Peer)
        })?,
    };
    Ok(PyListener::start(
        l.allow_anonymous(allow_anonymous),
        members,
    )?)
}

fn timeout_arg(timeout: f64) -> PyResult<Duration> {
    let t = seconds("timeout", timeout)?;
    if t.is_zero() {
        return Err(Failure::Usage("timeout=0: connecting needs some time".into()).into());
    }
    Ok(t)
}

/// Dial for asyncio: the connection stays on the shared runtime.
async fn connect_fut(
    conn: PeerConnector,
    members: Vec<MemberInfo>,
    index: usize,
    endpoint: usize,
) -> Result<PyConnection, Failure> {
    let s = conn
        .connect_endpoint(index, endpoint)
        .await
        .map_err(Failure::Peer)?;
    Ok(PyConnection::new(s, &members))
}

/// Dial for the blocking calls (the connection gets its own runtime).
fn connect_blocking(
    py: Python<'_>,
    conn: PeerConnector,
    members: Vec<MemberInfo>,
    index: usize,
    endpoint: usize,
) -> PyResult<PyConnection> {
    let s = block_on_here(py, async move {
        conn.connect_endpoint(index, endpoint)
            .await
            .map_err(Failure::Peer)
    })?;
    Ok(PyConnection::blocking(s, &members)?)
}

fn member_connector(
    view: &Bound<'_, PyClusterView>,
    node: &Bound<'_, PyNode>,
    timeout: f64,
) -> PyResult<(PeerConnector, Vec<MemberInfo>)> {
    let t = timeout_arg(timeout)?;
    let view = &view.get().inner;
    let c = PeerConnector::new(view, &node.get().inner).map_err(Failure::Peer)?;
    Ok((c.timeout(t), view.members.clone()))
}

fn anonymous_connector(
    members: &Bound<'_, PyMemberList>,
    timeout: f64,
) -> PyResult<(PeerConnector, Vec<MemberInfo>)> {
    let t = timeout_arg(timeout)?;
    let list = &members.get().inner;
    let c = PeerConnector::anonymous(list.cluster_id, &list.members).map_err(Failure::Peer)?;
    Ok((c.timeout(t), list.members.clone()))
}

/// `xlreg.peer.connect`: dial member `index` of `view`'s cluster as
/// `node`.
#[pyfunction]
#[pyo3(signature = (view, node, index, timeout=10.0, *, endpoint=0))]
pub fn _peer_connect(
    py: Python<'_>,
    view: &Bound<'_, PyClusterView>,
    node: &Bound<'_, PyNode>,
    index: usize,
    timeout: f64,
    endpoint: usize,
) -> PyResult<PyConnection> {
    let (c, members) = member_connector(view, node, timeout)?;
    connect_blocking(py, c, members, index, endpoint)
}

/// Awaitable `_peer_connect`.
#[pyfunction]
#[pyo3(signature = (view, node, index, timeout=10.0, *, endpoint=0))]
pub fn _peer_connect_async<'py>(
    py: Python<'py>,
    view: &Bound<'py, PyClusterView>,
    node: &Bound<'py, PyNode>,
    index: usize,
    timeout: f64,
    endpoint: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let (c, members) = member_connector(view, node, timeout)?;
    awaitable(py, connect_fut(c, members, index, endpoint))
}

/// `xlreg.peer.connect_anonymous`: dial member `index` as a client that is
/// not a member, with the members read by `read_members`.
#[pyfunction]
#[pyo3(signature = (members, index, timeout=10.0, *, endpoint=0))]
pub fn _peer_connect_anonymous(
    py: Python<'_>,
    members: &Bound<'_, PyMemberList>,
    index: usize,
    timeout: f64,
    endpoint: usize,
) -> PyResult<PyConnection> {
    let (c, ms) = anonymous_connector(members, timeout)?;
    connect_blocking(py, c, ms, index, endpoint)
}

/// Awaitable `_peer_connect_anonymous`.
#[pyfunction]
#[pyo3(signature = (members, index, timeout=10.0, *, endpoint=0))]
pub fn _peer_connect_anonymous_async<'py>(
    py: Python<'py>,
    members: &Bound<'py, PyMemberList>,
    index: usize,
    timeout: f64,
    endpoint: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let (c, ms) = anonymous_connector(members, timeout)?;
    awaitable(py, connect_fut(c, ms, index, endpoint))
}
