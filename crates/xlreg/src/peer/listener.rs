//! Listening for peers on one of the member's registered endpoints.
//!
//! [`PeerListener::accept`] runs the handshakes of several dialers at once,
//! each bounded by the handshake timeout, so a dialer that connects and
//! stalls delays nobody. [`PeerListener::accept_tcp`] and
//! [`PeerAcceptor::handshake`] are the two halves, for servers that
//! schedule handshakes themselves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::SslContext;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::cert::LocalCert;
use super::handshake;
use super::pin::Pins;
use super::stream::{Peer, PeerStream};
use super::tls::{server_context, RenewingContext};
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

/// The error for a failed bind of `ep`; "address in use" hints at the
/// usual cause in tests: a harness (`LocalCluster`, `xlreg up`) already
/// holds the member's endpoint open.
fn bind_failed(ep: String, e: std::io::Error) -> PeerError {
    let addr = if e.kind() == std::io::ErrorKind::AddrInUse {
        format!(
            "{ep} (if a test harness such as LocalCluster holds this member's endpoint, \
             take its socket with LocalMember::take_listener and use \
             PeerListener::from_listener)"
        )
    } else {
        ep
    };
    PeerError::Io {
        what: "listening on".into(),
        addr,
        source: e,
    }
}

/// The listener's TLS side, shareable between tasks: our certificate
/// (renewed when half its validity has passed), the pinned keys of the
/// cluster, and the policy for anonymous clients.
#[derive(Clone)]
pub struct PeerAcceptor {
    pub(super) pins: Arc<Pins>,
    ctx: RenewingContext,
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
        Self::build(
            pins,
            LocalCert::generate(node)?,
            Some((node.sig_key.clone(), node.name.clone())),
        )
    }

    /// Accept the keys in `pins`, presenting `cert` as it is (never
    /// renewed). For tests and special set-ups.
    pub fn with_cert(pins: Pins, cert: LocalCert) -> Result<Self, PeerError> {
        Self::build(pins, cert, None)
    }

    fn build(
        pins: Pins,
        cert: LocalCert,
        renew: Option<(PrivateKey, String)>,
    ) -> Result<Self, PeerError> {
        let pins = Arc::new(pins);
        let p = pins.clone();
        let ctx = RenewingContext::new(Some(cert), renew, move |c| match c {
            Some(c) => server_context(c, p.clone()),
            None => Err(PeerError::Certificate(
                "a listener needs a certificate".into(),
            )),
        })?;
        Ok(PeerAcceptor {
            pins,
            ctx,
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
        self.ctx.get()
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

/// Handshakes a [`PeerListener`] runs at once; while this many are in
/// progress it accepts no new connection.
pub const MAX_PENDING_HANDSHAKES: usize = 64;

type Handshakes = JoinSet<Result<(Peer, PeerStream), PeerError>>;

/// Listens on a member endpoint and yields authenticated peers.
#[derive(Debug)]
pub struct PeerListener {
    tcp: TcpListener,
    acceptor: PeerAcceptor,
    pending: tokio::sync::Mutex<Handshakes>,
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
        let tcp = TcpListener::bind(&ep)
            .await
            .map_err(|e| bind_failed(ep, e))?;
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
        Ok(Self::with_acceptor(tcp, PeerAcceptor::new(view, node)?))
    }

    /// The same from a std listener (e.g. one from
    /// `LocalMember::take_std_listener`). Must be called within a tokio
    /// runtime; outside one it returns a [`PeerError::Usage`].
    pub fn from_std(
        l: std::net::TcpListener,
        view: &ClusterView,
        node: &NodeIdentity,
    ) -> Result<Self, PeerError> {
        let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(PeerError::Usage(format!(
                "PeerListener::from_std (listener on {addr}) was called outside a tokio \
                 runtime; call it from async code, or use peer::BlockingPeerListener"
            )));
        }
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
        PeerListener {
            tcp,
            acceptor,
            pending: tokio::sync::Mutex::new(JoinSet::new()),
        }
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

    /// The next authenticated peer. Handshakes run concurrently (up to
    /// [`MAX_PENDING_HANDSHAKES`], each bounded by the handshake timeout),
    /// so a dialer that stalls does not delay the others. An error concerns
    /// one dialer (it is named in the error); the listener stays usable.
    /// Cancel-safe: a handshake in progress when the future is dropped
    /// completes in the next call.
    pub async fn accept(&self) -> Result<(Peer, PeerStream), PeerError> {
        let mut pending = self.pending.lock().await;
        loop {
            let room = pending.len() < MAX_PENDING_HANDSHAKES;
            tokio::select! {
                biased;
                Some(done) = pending.join_next(), if !pending.is_empty() => {
                    return done.unwrap_or_else(|e| Err(PeerError::Setup {
                        what: "a handshake task".into(),
                        detail: e.to_string(),
                    }));
                }
                r = self.accept_tcp(), if room => {
                    let (tcp, addr) = r?;
                    let a = self.acceptor.clone();
                    pending.spawn(async move { a.handshake(tcp, addr).await });
                }
            }
        }
    }
}
