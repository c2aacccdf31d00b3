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

/// A mutually authenticated TLS 1.3 stream to a peer; read and write it
/// like any tokio stream.
#[derive(Debug)]
pub struct PeerStream {
    inner: SslStream<TcpStream>,
    peer: Peer,
    addr: SocketAddr,
    handshake: Duration,
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
        }
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
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
