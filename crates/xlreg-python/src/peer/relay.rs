//! The asyncio side of a peer channel, in process: a Rust task moves
//! plaintext between the TLS stream and two queues in memory, and
//! `xlreg.aio.peer`'s transport takes what arrived from one and adds what
//! Python writes to the other, on the event loop's thread.
//!
//! Why: resolving one asyncio future per read and per write from a
//! runtime thread (a thread hop and a GIL round trip each) kept one read
//! and one write in flight, so TLS and Python took turns. A UNIX socket
//! pair between the task and the loop's own socket transport let both run
//! at once, but cost a kernel copy and system calls each way. Here the
//! queues are the pipeline, and the loop's thread copies nothing it need
//! not: a written `bytes` is held by reference until the task has
//! encrypted it, and what arrived is lent to the stream reader as a
//! memoryview over the task's buffer, which the reader copies into its own
//! (as it would copy a socket's bytes). Python takes one batch (at most
//! [`READ_BATCH`]) per turn of the loop, so the reader's buffer stays
//! small. The only system call on the loop's side is the read of a wake
//! byte.
//!
//! How Python learns of news (data, the peer's end, a failure, room to
//! write again): through a wake socket, one end of a UNIX socket pair the
//! loop watches (`add_reader`). The task writes one byte when there is
//! news and none is pending; Python's [`PyRelay::poll`] takes all the news
//! and the byte, under the same lock. No runtime thread enters Python.
//!
//! Back-pressure: the task stops reading from the peer while
//! [`INBOUND_LIMIT`] bytes wait for Python; `write` tells Python to pause
//! writing once more than the high-water mark waits to be encrypted, and
//! the task says when it is at the low-water mark again.
//!
//! How the ends finish: the peer ending its direction (TLS close_notify)
//! is reported once everything before it was taken; Python ending its
//! direction (`write_eof`, or `close`) sends close_notify once everything
//! it wrote was sent. After `close` the task owns the channel: Python may
//! drop every object, and what it wrote is still sent (for at most
//! [`CLOSE_LINGER`]). A relay dropped without `close` aborts. A channel
//! failure is kept until Python polls it.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use tokio::io::{AsyncWriteExt, ReadBuf};
use tokio::sync::{watch, Notify};

use super::{io_failure, read_some, Channel};
use crate::errors::Failure;
use crate::runtime::runtime;

/// Most bytes one batch of TLS reads takes (then Python gets them).
const READ_BATCH: usize = 256 * 1024;
/// Emptied batch buffers kept for reuse.
const SPARES: usize = 4;
/// Reading from the peer pauses while this many bytes wait for Python.
const INBOUND_LIMIT: usize = 1 << 20;
/// After `close()`, how long the task may still try to send what Python
/// wrote (a peer that never reads cannot keep the channel forever).
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(30);
/// Writes of at least this many bytes are held by reference; smaller ones
/// are copied and gathered, up to [`GATHER_MAX`] bytes a piece.
const HOLD_MIN: usize = 16 * 1024;
const GATHER_MAX: usize = 64 * 1024;
/// `PyBUF_READ` of CPython's `memoryobject.h` (a read-only view).
const PY_BUF_READ: std::os::raw::c_int = 0x100;
/// Default write buffer limits (Python's transport sets its own).
const HIGH_WATER: usize = 1 << 20;
const LOW_WATER: usize = 1 << 18;

/// What Python asked of the relay.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    /// Keep relaying.
    Running,
    /// Python closed its transport: stop reading from the peer, send what
    /// Python wrote, then close_notify.
    Closed,
    /// Drop the channel now.
    Aborted,
}

/// The queues and flags both sides share (under [`Shared::lock`]).
#[derive(Default)]
struct Queues {
    /// Decrypted batches Python has not taken yet (each at most
    /// [`READ_BATCH`] bytes: Python takes one per `poll`, so a stream
    /// reader's buffer never grows past one batch).
    inbound: VecDeque<Vec<u8>>,
    /// Bytes in `inbound`.
    inbound_len: usize,
    /// Emptied batch buffers, for the task's next batches.
    spares: Vec<Vec<u8>>,
    /// The peer ended its direction after `inbound`.
    peer_ended: bool,
    /// Python was told of `peer_ended`.
    end_told: bool,
    /// The failure that ended the relay, until Python takes it.
    failure: Option<Failure>,
    /// What Python wrote that the task has not taken yet.
    outbound: VecDeque<Out>,
    /// Bytes in `outbound`.
    outbound_len: usize,
    /// Bytes the task took from `outbound` and is still sending.
    in_flight: usize,
    /// Python's `bytes` the task has sent, to be released with the GIL
    /// by Python's next call (if Python never calls again, by pyo3's
    /// deferred release when the relay is dropped).
    sent: Vec<PyBackedBytes>,
    /// Python ended its direction: close_notify once `outbound` is sent.
    eof_requested: bool,
    /// Python was told to pause writing and not yet to resume.
    write_paused: bool,
    /// Python is to be told to resume writing.
    resume_due: bool,
    high: usize,
    low: usize,
    /// A wake byte is pending (Python has not polled since).
    woken: bool,
}

struct Shared {
    queues: Mutex<Queues>,
    /// Our end of the wake socket pair (nonblocking).
    wake: UnixStream,
    /// Python's end, which its event loop watches.
    python_end: UnixStream,
    /// Python wrote, or ended its direction.
    to_peer: Notify,
    /// Python took inbound bytes.
    room: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tell Python there is news (one pending byte at most; under the
    /// lock, so `poll` never misses one).
    fn wake(&self, q: &mut Queues) {
        if !q.woken {
            q.woken = true;
            // The socket holds one byte at most: never WouldBlock.
            let _ = (&self.wake).write(&[1]);
        }
    }

    fn buffered(q: &Queues) -> usize {
        q.outbound_len + q.in_flight
    }
}

/// A piece of what Python wrote.
enum Out {
    /// Small writes, copied and gathered (one TLS record for several).
    Copied(Vec<u8>),
    /// A large `bytes`, held as it is (no copy on the loop's thread).
    Held(PyBackedBytes),
}

impl Out {
    fn bytes(&self) -> &[u8] {
        match self {
            Out::Copied(v) => v,
            Out::Held(b) => b,
        }
    }
}

/// The relay of one channel as its asyncio transport drives it:
/// `fileno()` for the loop to watch, `poll()` for the news, `write()`,
/// `write_eof()`, `close()`, `abort()`. Private to `xlreg.aio.peer`.
#[pyclass(module = "xlreg._xlreg", name = "_Relay", frozen)]
pub struct PyRelay {
    shared: Arc<Shared>,
    stop: watch::Sender<Stop>,
    /// The buffer under the memoryview the last `poll` returned, and the
    /// view.
    lent: Mutex<Option<(Vec<u8>, Py<PyAny>)>>,
}

impl PyRelay {
    /// Start relaying `chan` (whose halves the task takes).
    pub(super) fn start(chan: Arc<Channel>) -> io::Result<PyRelay> {
        let (wake, python_end) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        python_end.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues {
                high: HIGH_WATER,
                low: LOW_WATER,
                ..Queues::default()
            }),
            wake,
            python_end,
            to_peer: Notify::new(),
            room: Notify::new(),
        });
        let (stop, rx) = watch::channel(Stop::Running);
        runtime().spawn(relay(chan, shared.clone(), rx));
        Ok(PyRelay {
            shared,
            stop,
            lent: Mutex::new(None),
        })
    }

    /// A read-only memoryview over `v`, which is kept (and not touched)
    /// until the view is released.
    fn lend<'py>(&self, py: Python<'py>, v: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: `v`'s heap buffer neither moves nor changes while it is
        // in `lent`, which it stays in until the view is released (then no
        // access through the view is possible) or, if never, for good.
        let raw = unsafe {
            ffi::PyMemoryView_FromMemory(
                v.as_ptr() as *mut std::os::raw::c_char,
                v.len() as ffi::Py_ssize_t,
                PY_BUF_READ,
            )
        };
        // SAFETY: a new reference, or NULL with an exception set.
        let view = unsafe { Bound::from_owned_ptr_or_err(py, raw)? };
        let old = self
            .lent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace((v, view.clone().unbind()));
        debug_assert!(old.is_none(), "take_lent runs first");
        Ok(view)
    }

    /// The buffer lent by the last `poll`, back, if its view was released;
    /// an unreleased one is leaked (Python may still read it).
    fn take_lent(&self, py: Python<'_>) -> Option<Vec<u8>> {
        let lent = self.lent.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (v, view) = lent?;
        // A released view refuses every attribute (ValueError).
        if view.bind(py).getattr("nbytes").is_err() {
            Some(v)
        } else {
            std::mem::forget(v);
            None
        }
    }

    fn request(&self, how: Stop) {
        self.stop.send_if_modified(|s| {
            let change = *s != how && *s != Stop::Aborted;
            if change {
                *s = how;
            }
            change
        });
    }
}

#[pymethods]
impl PyRelay {
    /// The file descriptor the event loop watches for news.
    fn fileno(&self) -> RawFd {
        self.shared.python_end.as_raw_fd()
    }

    /// Take the news: `(data, ended, failure, resume_writing)` — what
    /// arrived (None if nothing did, or if `take` is false: reading is
    /// paused), True once when the peer ended its direction after it, the
    /// exception that ended the channel (once), and True when writing may
    /// resume.
    ///
    /// `data` is a read-only `memoryview` lent over the relay's own buffer
    /// (no copy on the loop's thread): valid until the caller releases it
    /// (`release()`, which `xlreg.aio.peer` does as soon as the stream
    /// reader copied it), and not reused before. An unreleased view keeps
    /// its buffer for good (it is leaked, never reused under it).
    fn poll<'py>(&self, py: Python<'py>, take: bool) -> PyResult<News<'py>> {
        let back = self.take_lent(py);
        let mut q = self.shared.lock();
        if let Some(mut v) = back {
            if q.spares.len() < SPARES {
                v.clear();
                q.spares.push(v);
            }
        }
        let data = if take { q.inbound.pop_front() } else { None };
        if let Some(v) = &data {
            q.inbound_len -= v.len();
        }
        // More batches wait: the wake byte stays, so the loop calls again
        // (after its other callbacks: one batch per turn).
        let more_waits = take && !q.inbound.is_empty();
        if q.woken && !more_waits {
            let mut sink = [0u8; 16];
            while matches!((&self.shared.python_end).read(&mut sink), Ok(n) if n > 0) {}
            q.woken = false;
        }
        // The end comes after the last batch.
        let ended = take && q.inbound.is_empty() && q.peer_ended && !q.end_told;
        if ended {
            q.end_told = true;
        }
        let failure = q.failure.take();
        let resume = std::mem::take(&mut q.resume_due);
        let sent = std::mem::take(&mut q.sent);
        drop(q);
        drop(sent); // with the GIL held
        let view = match data {
            None => None,
            Some(v) => {
                self.shared.room.notify_one();
                Some(self.lend(py, v)?)
            }
        };
        let failure = failure.map(|f| f.into_pyerr().into_value(py).into_any());
        Ok((view, ended, failure, resume))
    }

    /// Queue `data` for the peer; True if the writer should pause now
    /// (more than the high-water mark waits). A `bytes` of [`HOLD_MIN`]
    /// bytes or more is held, not copied (it cannot change).
    fn write(&self, data: PyBackedBytes) -> bool {
        let mut q = self.shared.lock();
        let sent = std::mem::take(&mut q.sent);
        q.outbound_len += data.len();
        if data.len() >= HOLD_MIN {
            q.outbound.push_back(Out::Held(data));
        } else {
            match q.outbound.back_mut() {
                Some(Out::Copied(v)) if v.len() + data.len() <= GATHER_MAX => {
                    v.extend_from_slice(&data)
                }
                _ => q.outbound.push_back(Out::Copied(data.to_vec())),
            }
        }
        let pause = !q.write_paused && Shared::buffered(&q) > q.high;
        if pause {
            q.write_paused = true;
        }
        drop(q);
        drop(sent); // with the GIL held
        self.shared.to_peer.notify_one();
        pause
    }

    /// Bytes written and not yet sent.
    fn buffer_size(&self) -> usize {
        Shared::buffered(&self.shared.lock())
    }

    /// The write buffer's high- and low-water marks (checked by Python).
    fn set_limits(&self, high: usize, low: usize) {
        let mut q = self.shared.lock();
        q.high = high;
        q.low = low;
    }

    /// End our direction: close_notify once what was written is sent.
    fn write_eof(&self) {
        self.shared.lock().eof_requested = true;
        self.shared.to_peer.notify_one();
    }

    /// Stop reading from the peer; send what was written, then
    /// close_notify, then drop the channel.
    fn close(&self) {
        self.shared.lock().eof_requested = true;
        self.shared.to_peer.notify_one();
        self.request(Stop::Closed);
    }

    /// Drop the channel now (what was written and not sent is lost).
    fn abort(&self) {
        self.request(Stop::Aborted);
    }
}

impl Drop for PyRelay {
    fn drop(&mut self) {
        // Nobody can poll any more: a relay Python forgot without closing
        // ends; after `close()` the task still sends what was written.
        if *self.stop.borrow() == Stop::Running {
            self.request(Stop::Aborted);
        }
        // A view still lent keeps its buffer (freed only if released).
        if self.lent.get_mut().map(|l| l.is_some()).unwrap_or(true) {
            Python::attach(|py| drop(self.take_lent(py)));
        }
    }
}

/// What `poll` returns: `(data, ended, failure, resume_writing)`.
type News<'py> = (Option<Bound<'py, PyAny>>, bool, Option<Py<PyAny>>, bool);

/// What the outbound half does next.
#[derive(PartialEq, Eq)]
enum Next {
    Send,
    End,
    Wait,
}

async fn relay(chan: Arc<Channel>, shared: Arc<Shared>, mut stop: watch::Receiver<Stop>) {
    let mut rg = chan.reader.lock().await;
    let mut wg = chan.writer.lock().await;
    if let (Some(r), Some(w)) = (rg.as_mut(), wg.as_mut()) {
        let who = chan.who.as_str();
        let mut closed = stop.clone();
        // Peer -> Python, until the peer ends its direction, Python closes,
        // or a failure.
        let inbound = async {
            let copy = async {
                let mut buf: Vec<u8> = Vec::with_capacity(READ_BATCH);
                loop {
                    while shared.lock().inbound_len >= INBOUND_LIMIT {
                        shared.room.notified().await;
                    }
                    buf.clear();
                    buf.reserve(READ_BATCH);
                    let spare = &mut buf.spare_capacity_mut()[..READ_BATCH];
                    let mut rb = ReadBuf::uninit(spare);
                    read_some(r, &mut rb, true)
                        .await
                        .map_err(|e| io_failure("reading from", who, e))?;
                    if rb.filled().is_empty() {
                        let mut q = shared.lock();
                        q.peer_ended = true;
                        shared.wake(&mut q);
                        return Ok(());
                    }
                    // One TLS read is one record (16 KiB at most): take
                    // every record already here, so Python wakes once per
                    // batch, not once per record.
                    while rb.remaining() > 0 {
                        match read_some(r, &mut rb, false).await {
                            Ok(Some(k)) if k > 0 => {}
                            _ => break, // an end or a failure: the next read says
                        }
                    }
                    let n = rb.filled().len();
                    // SAFETY: the reads initialised the first `n` bytes.
                    unsafe { buf.set_len(n) };
                    let mut q = shared.lock();
                    q.inbound_len += buf.len();
                    match q.inbound.back_mut() {
                        // Small batches Python has not taken yet are
                        // gathered (one wake of the loop for them).
                        Some(last) if last.len() + buf.len() <= READ_BATCH => {
                            last.extend_from_slice(&buf)
                        }
                        _ => {
                            let next = q.spares.pop().unwrap_or_default();
                            q.inbound.push_back(std::mem::replace(&mut buf, next));
                        }
                    }
                    shared.wake(&mut q);
                }
            };
            tokio::select! {
                r = copy => r,
                _ = closed.wait_for(|s| *s != Stop::Running) => Ok(()),
            }
        };
        // Python -> peer, until Python ends its direction (then
        // close_notify) or a failure.
        let outbound = async {
            let mut batch: VecDeque<Out> = VecDeque::new();
            loop {
                let next = {
                    let mut q = shared.lock();
                    if !q.outbound.is_empty() {
                        std::mem::swap(&mut q.outbound, &mut batch);
                        q.in_flight = std::mem::take(&mut q.outbound_len);
                        Next::Send
                    } else if q.eof_requested {
                        Next::End
                    } else {
                        Next::Wait
                    }
                };
                if next == Next::Wait {
                    shared.to_peer.notified().await;
                    continue;
                }
                if next == Next::End {
                    return w
                        .shutdown()
                        .await
                        .map_err(|e| io_failure("ending our direction to", who, e));
                }
                async {
                    for out in &batch {
                        w.write_all(out.bytes()).await?;
                    }
                    w.flush().await
                }
                .await
                .map_err(|e| io_failure("writing to", who, e))?;
                let mut q = shared.lock();
                q.in_flight = 0;
                q.sent.extend(batch.drain(..).filter_map(|out| match out {
                    Out::Held(b) => Some(b),
                    Out::Copied(_) => None,
                }));
                if q.write_paused && q.outbound_len <= q.low {
                    q.write_paused = false;
                    q.resume_due = true;
                    shared.wake(&mut q);
                }
            }
        };
        let mut linger = stop.clone();
        let res = tokio::select! {
            r = async { tokio::try_join!(inbound, outbound).map(|_| ()) } => r,
            _ = async {
                // Err: the relay object is gone (after `close()`, or it
                // would have aborted): not an abort.
                if stop.wait_for(|s| *s == Stop::Aborted).await.is_err() {
                    std::future::pending::<()>().await;
                }
            } => Ok(()),
            _ = async {
                let _ = linger.wait_for(|s| *s != Stop::Running).await;
                tokio::time::sleep(CLOSE_LINGER).await;
            } => Ok(()),
            _ = chan.closing() => Ok(()),
        };
        if let Err(f) = res {
            let mut q = shared.lock();
            q.failure = Some(f);
            shared.wake(&mut q);
        }
    }
    chan.closed.send_replace(true);
    rg.take();
    wg.take();
}
