//! Listening for peers on one of the member's registered endpoints.
//!
//! [`PeerListener::accept`] does one handshake at a time (bounded by the
//! handshake timeout). A server that must not let one slow dialer delay
//! the next takes [`PeerListener::accept_tcp`] and runs
//! [`PeerAcceptor::handshake`] in a task per connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::ssl::SslContext;
use tokio::net::{TcpListener, TcpStream};

use super::cert::LocalCert;
use super::handshake;
use super::pin::Pins;
use super::stream::{Peer, PeerStream};
use super::tls::server_context;
use super::{PeerError, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::client::{ClusterView, NodeIdentity};
use crate::wire::PrivateKey;

/// Check that `node` is the member `view` calls itself, by its sig key.
pub(crate) fn check_self(view: &ClusterView, node: &NodeIdentity) -> Result<(), PeerError> {
    let me = view.self_member().ok_or_else(|| {
        PeerError::Usage(format!(
            "the view of cluster {} has no member {} (this node)",
            view.cluster_id, view.self_index
        ))
    })?;
    if me.sig_key != node.sig_key.public() {
        return Err(PeerError::Usage(format!(
            "node {:?} does not hold the sig key registered for member {} ({}) of cluster {}",
            node.name, me.index, me.name, view.cluster_id
        )));
    }
    Ok(())
}

struct Current {
    cert: LocalCert,
    ctx: SslContext,
}

/// The listener's TLS side, shareable between tasks: our certificate
/// (renewed when half its validity has passed), the pinned keys of the
/// cluster, and the policy for anonymous clients.
#[derive(Clone)]
pub struct PeerAcceptor {
    pub(super) pins: Arc<Pins>,
    current: Arc<Mutex<Current>>,
    /// Key and name to renew the certificate with; `None` for a fixed
    /// certificate.
    renew: Option<(PrivateKey, String)>,
    pub(super) allow_anonymous: bool,
    pub(super) timeout: Duration,
}

impl std::fmt::Debug for PeerAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PeerAcceptor({}, anonymous {})",
            self.pins.expected, self.allow_anonymous
        )
    }
}

impl PeerAcceptor {
    /// Accept the members of `view`, presenting `node`'s certificate.
    pub fn new(view: &ClusterView, node: &NodeIdentity) -> Result<Self, PeerError> {
        check_self(view, node)?;
        let pins = Pins::all_members(view.cluster_id, &view.members);
        let mut a = Self::with_cert(pins, LocalCert::generate(node)?)?;
        a.renew = Some((node.sig_key.clone(), node.name.clone()));
        Ok(a)
    }

    /// Accept the keys in `pins`, presenting `cert` as it is (never
    /// renewed). For tests and special set-ups.
    pub fn with_cert(pins: Pins, cert: LocalCert) -> Result<Self, PeerError> {
        let pins = Arc::new(pins);
        let ctx = server_context(&cert, pins.clone())?;
        Ok(PeerAcceptor {
            pins,
            current: Arc::new(Mutex::new(Current { cert, ctx })),
            renew: None,
            allow_anonymous: false,
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Whether dialers without a certificate (clients that are not members)
    /// are accepted, as [`Peer::Anonymous`]. Default: no.
    pub fn allow_anonymous(mut self, yes: bool) -> Self {
        self.allow_anonymous = yes;
        self
    }

    /// How long a handshake may take. Default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The pinned keys.
    pub fn pins(&self) -> &Pins {
        &self.pins
    }

    pub(super) fn context(&self) -> Result<SslContext, PeerError> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((key, name)) = &self.renew {
            if cur.cert.needs_renewal() {
                let now = std::time::SystemTime::now();
                let cert = LocalCert::generate_with(
                    key,
                    name,
                    now - super::cert::CLOCK_SKEW,
                    now + super::CERT_VALIDITY,
                )?;
                let ctx = server_context(&cert, self.pins.clone())?;
                *cur = Current { cert, ctx };
            }
        }
        Ok(cur.ctx.clone())
    }

    /// Run the handshake on an accepted socket: the dialer is authenticated
    /// (or anonymous, if allowed) when this returns.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
    ) -> Result<(Peer, PeerStream), PeerError> {
        let ctx = self.context()?;
        let s = handshake::accept(
            tcp,
            addr,
            &ctx,
            self.pins.clone(),
            self.allow_anonymous,
            self.timeout,
        )
        .await?;
        Ok((s.peer().clone(), s))
    }
}

/// Listens on a member endpoint and yields authenticated peers.
#[derive(Debug)]
pub struct PeerListener {
    tcp: TcpListener,
    acceptor: PeerAcceptor,
}

impl PeerListener {
    /// Listen on this member's registered endpoint `endpoint_index` and
    /// accept the members of `view`.
    pub async fn bind(
        view: &ClusterView,
        node: &NodeIdentity,
        endpoint_index: usize,
    ) -> Result<Self, PeerError> {
        check_self(view, node)?;
        let me = view.self_member().map(|m| &m.endpoints);
        let ep = me
            .and_then(|e| e.get(endpoint_index))
            .ok_or_else(|| {
                PeerError::Usage(format!(
                    "member {} ({}) has no endpoint {endpoint_index} (it registered {})",
                    view.self_index,
                    node.name,
                    me.map(Vec::len).unwrap_or(0)
                ))
            })?
            .clone();
        let tcp = TcpListener::bind(&ep).await.map_err(|e| PeerError::Io {
            what: "listening on".into(),
            addr: ep,
            source: e,
        })?;
        Self::from_listener(tcp, view, node)
    }

    /// Accept the members of `view` on a socket that is already listening
    /// (e.g. bound before joining, so that peers can connect as soon as
    /// they learn the endpoint).
    pub fn from_listener(
        tcp: TcpListener,
        view: &ClusterView,
        node: &NodeIdentity,
    ) -> Result<Self, PeerError> {
        Ok(PeerListener {
            tcp,
            acceptor: PeerAcceptor::new(view, node)?,
        })
    }

    /// The same from a std listener (e.g.
    /// [`LocalMember::listeners`](crate::testing::LocalMember)). Must be
    /// called within a tokio runtime.
    pub fn from_std(
        l: std::net::TcpListener,
        view: &ClusterView,
        node: &NodeIdentity,
    ) -> Result<Self, PeerError> {
        let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let io = |e| PeerError::Io {
            what: "using the listener on".into(),
            addr: addr.clone(),
            source: e,
        };
        l.set_nonblocking(true).map_err(io)?;
        let tcp = TcpListener::from_std(l).map_err(io)?;
        Self::from_listener(tcp, view, node)
    }

    /// A listener with a given acceptor (tests: an impostor's certificate).
    pub fn with_acceptor(tcp: TcpListener, acceptor: PeerAcceptor) -> Self {
        PeerListener { tcp, acceptor }
    }

    /// See [`PeerAcceptor::allow_anonymous`].
    pub fn allow_anonymous(mut self, yes: bool) -> Self {
        self.acceptor = self.acceptor.allow_anonymous(yes);
        self
    }

    /// See [`PeerAcceptor::handshake_timeout`].
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.acceptor = self.acceptor.handshake_timeout(t);
        self
    }

    /// The address listened on.
    pub fn local_addr(&self) -> Result<SocketAddr, PeerError> {
        self.tcp.local_addr().map_err(|e| PeerError::Io {
            what: "reading the address of".into(),
            addr: "the listener".into(),
            source: e,
        })
    }

    /// The TLS side, to run handshakes in other tasks.
    pub fn acceptor(&self) -> PeerAcceptor {
        self.acceptor.clone()
    }

    /// Accept a TCP connection without the handshake.
    pub async fn accept_tcp(&self) -> Result<(TcpStream, SocketAddr), PeerError> {
        let (s, a) = self.tcp.accept().await.map_err(|e| PeerError::Io {
            what: "accepting on".into(),
            addr: self
                .tcp
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            source: e,
        })?;
        // Handshake flights and small messages must not wait for Nagle.
        let _ = s.set_nodelay(true);
        Ok((s, a))
    }

    /// The next authenticated peer. An error concerns one dialer (it is
    /// named in the error); the listener stays usable.
    pub async fn accept(&self) -> Result<(Peer, PeerStream), PeerError> {
        let (tcp, addr) = self.accept_tcp().await?;
        self.acceptor.handshake(tcp, addr).await
    }
}
