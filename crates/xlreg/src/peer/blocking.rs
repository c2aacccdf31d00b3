//! The same channel without an async runtime: std sockets and OpenSSL's
//! blocking `SslStream`, for plain threads and for bindings (a Python
//! object wraps a [`BlockingPeerStream`] as a socket-like object).
//!
//! The TLS contexts, the pinning rules and the naming of failures are the
//! ones the async side uses ([`super::tls`], [`super::pin`],
//! [`super::handshake`]); only the byte moving differs. Handshakes are
//! bounded by socket timeouts, which are cleared once the channel is up.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssl::ssl::{HandshakeError, SslStream};

use super::connect::{connect_failed, RETRY_PAUSE};
use super::handshake::{
    acceptance, established, failure, Side, NOT_TLS_ANSWER, TLS_HANDSHAKE_RECORD,
};
use super::listener::PeerAcceptor;
use super::pin::Pins;
use super::stream::Peer;
use super::tls::{client_ssl, server_ssl};
use super::{PeerConnector, PeerError, ACCEPTED};

/// A mutually authenticated TLS 1.3 stream over a std socket; `Read` and
/// `Write` it.
#[derive(Debug)]
pub struct BlockingPeerStream {
    inner: SslStream<TcpStream>,
    peer: Peer,
    addr: SocketAddr,
    handshake: Duration,
}

impl BlockingPeerStream {
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

    /// The TLS state.
    pub fn ssl(&self) -> &openssl::ssl::SslRef {
        self.inner.ssl()
    }

    /// The socket (e.g. to set read and write timeouts).
    pub fn socket(&self) -> &TcpStream {
        self.inner.get_ref()
    }

    /// Send TLS close_notify.
    pub fn shutdown(&mut self) -> std::io::Result<()> {
        match self.inner.shutdown() {
            Ok(_) => Ok(()),
            Err(e) => Err(e
                .into_io_error()
                .unwrap_or_else(|e| std::io::Error::other(e.to_string()))),
        }
    }
}

impl Read for BlockingPeerStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for BlockingPeerStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn io_err(what: &str, addr: &str) -> impl FnOnce(std::io::Error) -> PeerError {
    let (what, addr) = (what.to_string(), addr.to_string());
    move |source| PeerError::Io { what, addr, source }
}

fn set_timeouts(s: &TcpStream, t: Option<Duration>, who: &str) -> Result<(), PeerError> {
    s.set_read_timeout(t)
        .and_then(|_| s.set_write_timeout(t))
        .map_err(io_err("setting timeouts on", who))
}

/// Turn a failed blocking handshake into a [`PeerError`].
fn handshake_failed(
    e: HandshakeError<TcpStream>,
    pins: &Pins,
    who: &str,
    side: Side,
    timeout: Duration,
) -> PeerError {
    match e {
        HandshakeError::SetupFailure(e) => PeerError::Tls {
            what: "starting the handshake".into(),
            addr: who.into(),
            detail: e.to_string(),
        },
        HandshakeError::WouldBlock(_) => PeerError::Timeout {
            what: "waiting for the TLS handshake with".into(),
            addr: who.into(),
            after: timeout,
        },
        HandshakeError::Failure(mid) => {
            let detail = mid.error().to_string();
            failure(mid.ssl(), pins, detail, who, side)
        }
    }
}

impl PeerConnector {
    /// Blocking [`connect`](PeerConnector::connect): member `peer_index`,
    /// first endpoint.
    pub fn connect_blocking(&self, peer_index: usize) -> Result<BlockingPeerStream, PeerError> {
        self.connect_endpoint_blocking(peer_index, 0)
    }

    /// Blocking [`connect_endpoint`](PeerConnector::connect_endpoint).
    pub fn connect_endpoint_blocking(
        &self,
        peer_index: usize,
        endpoint_index: usize,
    ) -> Result<BlockingPeerStream, PeerError> {
        let (pins, addr) = self.target(peer_index, endpoint_index)?;
        self.connect_pinned_blocking(pins, &addr)
    }

    /// Blocking [`connect_pinned`](PeerConnector::connect_pinned).
    pub fn connect_pinned_blocking(
        &self,
        pins: Pins,
        addr: &str,
    ) -> Result<BlockingPeerStream, PeerError> {
        let who = format!("{} at {addr}", pins.expected);
        let start = Instant::now();
        let sa = addr
            .to_socket_addrs()
            .map_err(io_err("resolving", &who))?
            .next()
            .ok_or_else(|| PeerError::Usage(format!("{who}: the address resolves to nothing")))?;
        let tcp = loop {
            let left = self.timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(PeerError::Timeout {
                    what: "connecting to".into(),
                    addr: who,
                    after: self.timeout,
                });
            }
            match TcpStream::connect_timeout(&sa, left) {
                Ok(s) => break s,
                Err(e)
                    if self.retry_refused
                        && e.kind() == std::io::ErrorKind::ConnectionRefused
                        && start.elapsed() + RETRY_PAUSE < self.timeout =>
                {
                    std::thread::sleep(RETRY_PAUSE);
                }
                Err(e) => {
                    let tried = self.retry_refused.then(|| start.elapsed());
                    return Err(connect_failed(who, e, tried));
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let left = self
            .timeout
            .saturating_sub(start.elapsed())
            .max(RETRY_PAUSE);
        set_timeouts(&tcp, Some(left), &who)?;
        let pins = Arc::new(pins);
        let ctx = self.ctx.get()?;
        let (ssl, _slot) = client_ssl(&ctx, pins.clone())?;
        let mut s = ssl
            .connect(tcp)
            .map_err(|e| handshake_failed(e, &pins, &who, Side::Dialer, self.timeout))?;
        let peer = established(s.ssl(), &pins, false, &who)?;
        let mut b = [0u8; 1];
        let r = s.read(&mut b);
        acceptance(r, b[0], &who)?;
        set_timeouts(s.get_ref(), None, &who)?;
        Ok(BlockingPeerStream {
            addr: sa,
            inner: s,
            peer,
            handshake: start.elapsed(),
        })
    }
}

impl PeerAcceptor {
    /// Blocking [`handshake`](PeerAcceptor::handshake) on an accepted std
    /// socket.
    pub fn handshake_blocking(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
    ) -> Result<BlockingPeerStream, PeerError> {
        let start = Instant::now();
        let a = addr.to_string();
        let _ = tcp.set_nodelay(true);
        tcp.set_nonblocking(false)
            .map_err(io_err("switching to blocking mode", &a))?;
        set_timeouts(&tcp, Some(self.timeout), &a)?;
        let mut first = [0u8; 1];
        match tcp.peek(&mut first) {
            Ok(0) => {
                return Err(io_err("reading the TLS handshake of", &a)(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ))
            }
            Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => {
                let _ = (&tcp).write_all(NOT_TLS_ANSWER);
                let _ = tcp.shutdown(std::net::Shutdown::Write);
                return Err(PeerError::NotTls {
                    addr: a,
                    first_byte: first[0],
                });
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(PeerError::Timeout {
                    what: "waiting for the TLS handshake of".into(),
                    addr: a,
                    after: self.timeout,
                })
            }
            Err(e) => return Err(io_err("reading the first bytes of", &a)(e)),
        }
        let ctx = self.context()?;
        let (ssl, _slot) = server_ssl(&ctx, self.pins.clone(), self.allow_anonymous)?;
        let mut s = ssl
            .accept(tcp)
            .map_err(|e| handshake_failed(e, &self.pins, &a, Side::Listener, self.timeout))?;
        let peer = established(s.ssl(), &self.pins, self.allow_anonymous, &a)?;
        s.write_all(&[ACCEPTED])
            .and_then(|_| s.flush())
            .map_err(io_err("sending the acceptance to", &a))?;
        set_timeouts(s.get_ref(), None, &a)?;
        Ok(BlockingPeerStream {
            inner: s,
            peer,
            addr,
            handshake: start.elapsed(),
        })
    }
}

/// A blocking listener on a member endpoint.
#[derive(Debug)]
pub struct BlockingPeerListener {
    tcp: TcpListener,
    acceptor: PeerAcceptor,
}

impl BlockingPeerListener {
    /// Accept with `acceptor` (see [`PeerAcceptor::new`]) on a listening
    /// std socket (switched to blocking mode if it was not).
    pub fn new(tcp: TcpListener, acceptor: PeerAcceptor) -> Result<Self, PeerError> {
        tcp.set_nonblocking(false)
            .map_err(io_err("switching to blocking mode", "the peer listener"))?;
        Ok(BlockingPeerListener { tcp, acceptor })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> Result<SocketAddr, PeerError> {
        self.tcp
            .local_addr()
            .map_err(io_err("reading the address of", "the listener"))
    }

    /// The next authenticated peer; an error concerns one dialer.
    pub fn accept(&self) -> Result<(Peer, BlockingPeerStream), PeerError> {
        let (tcp, addr) = self
            .tcp
            .accept()
            .map_err(io_err("accepting on", "the peer listener"))?;
        let s = self.acceptor.handshake_blocking(tcp, addr)?;
        Ok((s.peer().clone(), s))
    }
}
