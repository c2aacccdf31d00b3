//! The asyncio side of a peer channel: a relay task moves plaintext
//! between the TLS stream and one end of a UNIX socket pair, and the event
//! loop's own socket transport drives the other end (`xlreg.aio.peer`
//! makes the pair, with socket buffers large enough for a few batches).
//!
//! Why: resolving one asyncio future per read and per write from a
//! runtime thread (a thread hop and a GIL round trip each) kept one read
//! and one write in flight, so TLS and Python took turns. Through the
//! socket pair both run at once (the kernel buffers are the pipeline and
//! the back-pressure), the loop reads and writes with its native
//! transport, and no runtime thread enters Python at all. The cost is one
//! extra kernel copy each way.
//!
//! How the ends finish: the peer ending its direction (TLS close_notify)
//! shuts down our socket's write side (Python reads EOF); Python ending
//! its direction (`write_eof`, or closing its socket) sends close_notify.
//! A TLS failure is kept for Python ([`Relay::take_failure`]) before the
//! socket closes, so the transport reports it instead of a bare EOF.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::UnixStream;
use tokio::sync::watch;

use super::{io_failure, read_some, Channel};
use crate::errors::Failure;
use crate::runtime::runtime;

/// Bytes moved per read, each way (the event loop reads 256 KiB too).
const RELAY_CHUNK: usize = 256 * 1024;

/// What Python asked of the relay.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Stop {
    /// Keep relaying.
    Running,
    /// Python closed its socket: stop reading from the peer, send what
    /// Python wrote, then close_notify.
    Closed,
    /// Drop the channel now.
    Aborted,
}

/// A running relay, held by its `Connection`.
pub(super) struct Relay {
    stop: watch::Sender<Stop>,
    failure: Arc<Mutex<Option<Failure>>>,
}

impl Relay {
    /// Start relaying `chan` to `ours`, our end of a UNIX stream socket
    /// pair.
    pub(super) fn start(chan: Arc<Channel>, ours: OwnedFd) -> io::Result<Relay> {
        let ours = std::os::unix::net::UnixStream::from(ours);
        ours.set_nonblocking(true)?;
        let _g = runtime().enter();
        let ours = UnixStream::from_std(ours)?;
        let (stop, rx) = watch::channel(Stop::Running);
        let failure = Arc::new(Mutex::new(None));
        runtime().spawn(relay(chan, ours, rx, failure.clone()));
        Ok(Relay { stop, failure })
    }

    /// Ask the relay to stop (an abort overrides a close).
    pub(super) fn stop(&self, how: Stop) {
        self.stop.send_if_modified(|s| {
            let change = *s != how && *s != Stop::Aborted;
            if change {
                *s = how;
            }
            change
        });
    }

    /// The failure that ended the relay, once.
    pub(super) fn take_failure(&self) -> Option<Failure> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

async fn relay(
    chan: Arc<Channel>,
    mut unix: UnixStream,
    mut stop: watch::Receiver<Stop>,
    failure: Arc<Mutex<Option<Failure>>>,
) {
    let mut rg = chan.reader.lock().await;
    let mut wg = chan.writer.lock().await;
    if let (Some(r), Some(w)) = (rg.as_mut(), wg.as_mut()) {
        let who = chan.who.as_str();
        let (mut ur, mut uw) = unix.split();
        let mut closed = stop.clone();
        // Peer -> Python, until the peer ends its direction, Python closes
        // its socket, or a failure.
        let inbound = async {
            let mut buf = vec![0u8; RELAY_CHUNK];
            let copy = async {
                loop {
                    // One TLS read is one record (16 KiB at most): take
                    // every record already here, so Python wakes once per
                    // batch, not once per record.
                    let mut rb = ReadBuf::new(&mut buf);
                    read_some(r, &mut rb, true)
                        .await
                        .map_err(|e| io_failure("reading from", who, e))?;
                    if rb.filled().is_empty() {
                        let _ = uw.shutdown().await;
                        return Ok(());
                    }
                    while rb.remaining() > 0 {
                        match read_some(r, &mut rb, false).await {
                            Ok(Some(k)) if k > 0 => {}
                            _ => break, // an end or a failure: the next read says
                        }
                    }
                    if uw.write_all(rb.filled()).await.is_err() {
                        return Ok(()); // Python closed its socket
                    }
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
            let mut buf = vec![0u8; RELAY_CHUNK];
            loop {
                // A reset (Python closed with unread bytes) ends it too.
                let n = ur.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return w
                        .shutdown()
                        .await
                        .map_err(|e| io_failure("ending our direction to", who, e));
                }
                async {
                    w.write_all(&buf[..n]).await?;
                    w.flush().await
                }
                .await
                .map_err(|e| io_failure("writing to", who, e))?;
            }
        };
        let res = tokio::select! {
            r = async { tokio::try_join!(inbound, outbound).map(|_| ()) } => r,
            _ = stop.wait_for(|s| *s == Stop::Aborted) => Ok(()),
            _ = chan.closing() => Ok(()),
        };
        if let Err(f) = res {
            // Before the socket closes: Python looks for it at EOF.
            *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
        }
    }
    chan.closed.send_replace(true);
    rg.take();
    wg.take();
    drop(unix);
}
