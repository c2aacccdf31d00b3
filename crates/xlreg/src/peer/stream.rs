//! An authenticated channel to one peer: a TLS stream that knows who is on
//! the other end and how long the handshake took.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// Who is on the other end of a [`PeerStream`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A member of the cluster, proven by its registered sig key.
    Member {
        /// Its index in the cluster.
        index: usize,
        /// Its name.
        name: String,
    },
    /// A client without a certificate (only when the listener allows
    /// anonymous clients).
    Anonymous,
}

impl Peer {
    /// The member index, for a member.
    pub fn index(&self) -> Option<usize> {
        match self {
            Peer::Member { index, .. } => Some(*index),
            Peer::Anonymous => None,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Member { index, name } => write!(f, "member {index} ({name})"),
            Peer::Anonymous => f.write_str("an anonymous client"),
        }
    }
}

/// Most plaintext one TLS record carries.
pub(crate) const RECORD_PLAINTEXT: usize = 16 * 1024;

/// A mutually authenticated TLS 1.3 stream to a peer; read and write it
/// like any tokio stream.
///
/// **Small writes in one record:** each `write` becomes at least one TLS
/// record and one `send`. Pieces written together with a vectored write
/// (`write_vectored`, `write_all_buf(header.chain(body))`, a codec's
/// `FramedWrite`) are gathered into one record (up to 16 KiB) and one
/// `send`, so a length prefix and its message cost one record, not two.
/// Nothing is held back: every write is encrypted and handed to the
/// socket before it returns, as before.
#[derive(Debug)]
pub struct PeerStream {
    inner: SslStream<TcpStream>,
    peer: Peer,
    addr: SocketAddr,
    handshake: Duration,
    /// The slices of a vectored write, gathered into one record, while
    /// OpenSSL has not taken them all (a write that returned `Pending`
    /// is retried with the same bytes, as OpenSSL requires).
    gathered: Vec<u8>,
}

impl PeerStream {
    pub(crate) fn new(
        inner: SslStream<TcpStream>,
        peer: Peer,
        addr: SocketAddr,
        handshake: Duration,
    ) -> Self {
        PeerStream {
            inner,
            peer,
            addr,
            handshake,
            gathered: Vec::new(),
        }
    }

    /// Write the gathered slices as one record. The caller is presenting
    /// the same bytes again after a `Pending`, or for the first time.
    fn poll_gathered(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, &self.gathered);
        if r.is_ready() {
            // Taken (all, or a prefix the caller will present again), or
            // failed: either way these bytes are no longer ours to retry.
            self.gathered.clear();
        }
        r
    }

    /// Who is on the other end.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The peer's socket address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Time from TCP connect (or accept) to an authenticated channel.
    pub fn handshake_time(&self) -> Duration {
        self.handshake
    }

    /// The TLS state (negotiated version, cipher, ALPN, peer certificate).
    pub fn ssl(&self) -> &openssl::ssl::SslRef {
        self.inner.ssl()
    }

    /// The underlying stream.
    pub fn into_inner(self) -> SslStream<TcpStream> {
        self.inner
    }

    /// Move the socket to the I/O driver of the runtime this is called in
    /// ([`tokio::runtime::Handle::current`]; panics outside one, as
    /// [`TcpStream::from_std`] does); the TLS session goes on untouched.
    ///
    /// Why: a stream accepted or dialed on a shared multi-threaded runtime
    /// wakes its reader through one of that runtime's threads. A thread
    /// that blocks on the stream (a binding's blocking `recv`) can instead
    /// drive the stream's own current-thread runtime, so the kernel wakes
    /// it directly: one context switch per wait instead of three or four.
    ///
    /// The socket is duplicated, the duplicate registered here, and the
    /// original deregistered from its old driver and closed. Call it with
    /// no read or write in progress (it takes `&mut self`).
    #[cfg(unix)]
    pub fn move_to_current_runtime(&mut self) -> io::Result<()> {
        use std::os::fd::AsFd;
        let tcp = self.inner.get_mut();
        let dup = std::net::TcpStream::from(tcp.as_fd().try_clone_to_owned()?);
        dup.set_nonblocking(true)?;
        let here = TcpStream::from_std(dup)?;
        drop(std::mem::replace(tcp, here));
        Ok(())
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.gathered.is_empty() {
            return self.poll_gathered(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.gathered.is_empty() {
            let total: usize = bufs.iter().map(|b| b.len()).sum();
            let Some(first) = bufs.iter().find(|b| !b.is_empty()) else {
                return Poll::Ready(Ok(0));
            };
            // One slice, or a first slice of a record or more: as it is.
            if first.len() == total || first.len() >= RECORD_PLAINTEXT {
                return Pin::new(&mut this.inner).poll_write(cx, first);
            }
            let mut room = RECORD_PLAINTEXT;
            for b in bufs {
                let take = b.len().min(room);
                this.gathered.extend_from_slice(&b[..take]);
                room -= take;
                if room == 0 {
                    break;
                }
            }
        }
        this.poll_gathered(cx)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
