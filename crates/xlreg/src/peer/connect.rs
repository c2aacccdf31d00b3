//! Dialing a peer: the stream is returned only once the other end proved
//! it holds the sig key the registry lists for the member we asked for,
//! and accepted us.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::cert::LocalCert;
use super::handshake;
use super::listener::check_self;
use super::pin::Pins;
use super::stream::PeerStream;
use super::tls::{client_context, RenewingContext};
use super::{PeerError, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::client::{ClusterView, MemberInfo, NodeIdentity};
use crate::wire::NodeId;

/// Pause between attempts while a peer's endpoint refuses TCP connections
/// (it may not be listening yet).
pub const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Dials members of one cluster; build it once and connect many times.
///
/// By default a connection the peer's endpoint refuses at the TCP level
/// ("connection refused": nothing listens there yet) is **retried every
/// [50 ms](RETRY_PAUSE) until the [timeout](PeerConnector::timeout)**
/// (10 s by default), so that members booting together can dial each other
/// before every listener is up; the final error then says for how long it
/// tried. A program that polls many peers and wants a dead one reported at
/// once sets [`retry_refused(false)`](PeerConnector::retry_refused).
#[derive(Clone)]
pub struct PeerConnector {
    pub(super) ctx: RenewingContext,
    cluster_id: NodeId,
    members: Vec<MemberInfo>,
    pub(super) timeout: Duration,
    anonymous: bool,
    pub(super) retry_refused: bool,
}

/// The error for a TCP connect that failed with `e` after `tried` (how
/// long refused connections were retried, when they were).
pub(super) fn connect_failed(who: String, e: std::io::Error, tried: Option<Duration>) -> PeerError {
    let what = match tried {
        Some(t) if e.kind() == std::io::ErrorKind::ConnectionRefused => format!(
            "connecting (refused on every attempt for {:.1} s, one every {} ms) to",
            t.as_secs_f64(),
            RETRY_PAUSE.as_millis()
        ),
        _ => "connecting to".into(),
    };
    PeerError::Io {
        what,
        addr: who,
        source: e,
    }
}

impl std::fmt::Debug for PeerConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PeerConnector(cluster {}, {} members, anonymous {})",
            self.cluster_id,
            self.members.len(),
            self.anonymous
        )
    }
}

impl PeerConnector {
    /// Dial as `node`, a member of `view`'s cluster.
    pub fn new(view: &ClusterView, node: &NodeIdentity) -> Result<Self, PeerError> {
        check_self(view, node)?;
        let ctx = RenewingContext::new(
            Some(LocalCert::generate(node)?),
            Some((node.sig_key.clone(), node.name.clone())),
            client_context,
        )?;
        Ok(Self::from_context(
            view.cluster_id,
            &view.members,
            ctx,
            false,
        ))
    }

    /// Dial as a client that is not a member (no certificate), with the
    /// members read through [`read_members`](crate::client::read_members).
    /// The member authenticates itself; it accepts us only if its listener
    /// allows anonymous clients.
    pub fn anonymous(cluster_id: NodeId, members: &[MemberInfo]) -> Result<Self, PeerError> {
        Self::with_cert(cluster_id, members, None)
    }

    /// Dial presenting `cert` as it is (tests: expired or self-made
    /// certificates).
    pub fn with_cert(
        cluster_id: NodeId,
        members: &[MemberInfo],
        cert: Option<LocalCert>,
    ) -> Result<Self, PeerError> {
        let anonymous = cert.is_none();
        let ctx = RenewingContext::new(cert, None, client_context)?;
        Ok(Self::from_context(cluster_id, members, ctx, anonymous))
    }

    fn from_context(
        cluster_id: NodeId,
        members: &[MemberInfo],
        ctx: RenewingContext,
        anonymous: bool,
    ) -> Self {
        PeerConnector {
            ctx,
            cluster_id,
            members: members.to_vec(),
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            anonymous,
            retry_refused: true,
        }
    }

    /// How long connecting and the handshake may take together. Default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Whether a refused TCP connection ("connection refused": nothing
    /// listens on the endpoint yet) is retried every [`RETRY_PAUSE`] until
    /// the [timeout](Self::timeout). Default: yes (members booting together
    /// dial each other before every listener is up). With `false` the
    /// first refusal is the error.
    pub fn retry_refused(mut self, yes: bool) -> Self {
        self.retry_refused = yes;
        self
    }

    /// The certificate presented now (`None` for an anonymous dialer).
    pub fn certificate(&self) -> Option<LocalCert> {
        self.ctx.cert()
    }

    /// The pins and address for member `peer_index`'s endpoint
    /// `endpoint_index`.
    pub(super) fn target(
        &self,
        peer_index: usize,
        endpoint_index: usize,
    ) -> Result<(Pins, String), PeerError> {
        let m = self.member(peer_index)?;
        let ep = m.endpoints.get(endpoint_index).ok_or_else(|| {
            PeerError::Usage(format!(
                "member {} ({}) has no endpoint {endpoint_index} (it registered {})",
                m.index,
                m.name,
                m.endpoints.len()
            ))
        })?;
        let pins = Pins::one_member(self.cluster_id, m);
        Ok((pins, ep.clone()))
    }

    fn member(&self, index: usize) -> Result<&MemberInfo, PeerError> {
        self.members
            .iter()
            .find(|m| m.index == index)
            .ok_or_else(|| {
                PeerError::Usage(format!(
                    "cluster {} has no member {index} (known: {})",
                    self.cluster_id,
                    self.members.len()
                ))
            })
    }

    /// Connect to member `peer_index` on its first endpoint.
    pub async fn connect(&self, peer_index: usize) -> Result<PeerStream, PeerError> {
        self.connect_endpoint(peer_index, 0).await
    }

    /// Connect to member `peer_index` on its endpoint `endpoint_index`.
    pub async fn connect_endpoint(
        &self,
        peer_index: usize,
        endpoint_index: usize,
    ) -> Result<PeerStream, PeerError> {
        let (pins, ep) = self.target(peer_index, endpoint_index)?;
        self.connect_pinned(pins, &ep).await
    }

    /// Connect to `addr` and accept only the keys of `pins`, offering the
    /// cluster binding of `pins.cluster_id`. The building block of the
    /// other methods; tests use it to offer a wrong binding.
    pub async fn connect_pinned(&self, pins: Pins, addr: &str) -> Result<PeerStream, PeerError> {
        let who = format!("{} at {addr}", pins.expected);
        let start = Instant::now();
        let tcp = loop {
            let left = self.timeout.saturating_sub(start.elapsed());
            match tokio::time::timeout(left, TcpStream::connect(addr)).await {
                Err(_) => {
                    return Err(PeerError::Timeout {
                        what: "connecting to".into(),
                        addr: who,
                        after: self.timeout,
                    })
                }
                Ok(Ok(s)) => break s,
                Ok(Err(e))
                    if self.retry_refused
                        && e.kind() == std::io::ErrorKind::ConnectionRefused
                        && start.elapsed() + RETRY_PAUSE < self.timeout =>
                {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Ok(Err(e)) => {
                    let tried = self.retry_refused.then(|| start.elapsed());
                    return Err(connect_failed(who, e, tried));
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let ctx = self.ctx.get()?;
        handshake::connect(tcp, &ctx, Arc::new(pins), &who, start, self.timeout).await
    }
}

/// Connect to member `peer_index` of `view`'s cluster as `node`: the
/// stream is returned only if the other end proved it is that member and
/// accepted us. Makes a certificate per call; to dial often, keep a
/// [`PeerConnector`]. A refused TCP connection is retried every
/// [`RETRY_PAUSE`] for up to [`DEFAULT_HANDSHAKE_TIMEOUT`] (the peer may
/// still be starting); use a [`PeerConnector`] with
/// [`retry_refused(false)`](PeerConnector::retry_refused) to fail at once.
pub async fn connect(
    view: &ClusterView,
    node: &NodeIdentity,
    peer_index: usize,
) -> Result<PeerStream, PeerError> {
    PeerConnector::new(view, node)?.connect(peer_index).await
}

/// Connect to member `peer_index` as a client that is not a member (see
/// [`PeerConnector::anonymous`]).
pub async fn connect_anonymous(
    cluster_id: NodeId,
    members: &[MemberInfo],
    peer_index: usize,
) -> Result<PeerStream, PeerError> {
    PeerConnector::anonymous(cluster_id, members)?
        .connect(peer_index)
        .await
}
