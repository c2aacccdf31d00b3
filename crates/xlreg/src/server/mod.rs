//! `xlreg serve`: a registry that Go clients can use unchanged, that never
//! crashes on bad input and never forgets a cluster.
//!
//! Layout, one concern per file (private; everything public is at
//! `xlreg::server::X`): `session.rs` is the sans-IO state machine of spec
//! §8.3 (one Member first; then at most one Create and one Join;
//! GetCluster only after a Join; Bye at any time; anything else is refused
//! with an Error), `connection.rs` the per-connection I/O, `dispatch.rs`
//! the step from a message to a reply, `identity.rs` the registry's keys
//! and files ([`ServerIdentity`]), `config.rs` the [`ServerConfig`],
//! `shared.rs` the state every connection reads, and this module the
//! accept loop with a connection limit and graceful shutdown (stop
//! accepting, let sessions finish their request, close the store).
//! Requests go to an `Arc<dyn Backend>` ([`crate::registry::Backend`])
//! opened from [`ServerConfig::store`]
//! ([`StoreConfig::open`](crate::registry::StoreConfig::open)): by
//! default the in-process registry over SQLite in the data directory (or
//! memory, when ephemeral), or PostgreSQL; a backend written elsewhere is
//! given to [`Server::start_with_backend`]. Every store gets the same
//! [`Policy`] ([`ServerConfig::policy`]).

pub(crate) mod config;
pub(crate) mod connection;
pub(crate) mod counted;
pub(crate) mod dispatch;
pub(crate) mod identity;
pub(crate) mod limits;
pub(crate) mod session;
pub(crate) mod shared;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::goconfig::GoRegistryConfig;
use crate::regcred::RegCred;
use crate::registry::{Backend, Policy, StoreError};
use crate::wire::NodeId;
pub use config::{ServerConfig, DEFAULT_DATA_DIR, DEFAULT_LISTEN};
pub use identity::{prepare_data_dir, DirLock, IdentityError, ServerIdentity};

/// Plumbing the workspace's fuzz targets and tests drive directly (the
/// sans-IO session, the dispatch step, the registration limiter). Not
/// API: only with the private feature `__test-vectors` (which `__fuzzing`
/// enables), and may change in any release.
#[cfg(feature = "__test-vectors")]
#[doc(hidden)]
pub mod internals {
    pub use super::dispatch::{respond, Reply};
    pub use super::limits::{RegistrationLimiter, MAX_TRACKED};
    pub use super::session::{texts, Effect, ServerSession, SessionConfig, State};
}
use session::SessionConfig;
use shared::Shared;

/// Why a server could not start; each names the file or address.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Identity or data directory problem.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Database problem.
    #[error(transparent)]
    Store(#[from] crate::registry::StoreError),
    /// Cannot listen.
    #[error("cannot listen on {addr}: {err}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// OS error.
        err: std::io::Error,
    },
    /// A bad `reg.config` to adopt.
    #[error("{0}")]
    Adopt(String),
    /// regCred.dat could not be written.
    #[error("{0}")]
    RegCred(String),
    /// A setting outside its range.
    #[error("bad server setting: {0}")]
    Config(String),
}

/// A running registry server. Dropping it requests shutdown; call
/// [`Server::shutdown`] to wait for a clean stop.
pub struct Server {
    addr: SocketAddr,
    regcred: RegCred,
    regcred_path: Option<PathBuf>,
    backend: Arc<dyn Backend>,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    active: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Server({})", self.addr)
    }
}

fn resolve_identity(
    cfg: &ServerConfig,
) -> Result<(ServerIdentity, Option<identity::DirLock>), ServerError> {
    let adopted = match &cfg.adopt {
        Some(p) => {
            let go = GoRegistryConfig::load(p).map_err(|e| {
                ServerError::Adopt(format!(
                    "cannot adopt {}: {}",
                    p.display(),
                    crate::ErrorChain(&e)
                ))
            })?;
            Some(ServerIdentity::from_go(&go))
        }
        None => None,
    };
    match &cfg.data_dir {
        None => {
            let id = match (adopted, &cfg.identity) {
                (Some(a), _) => a,
                (None, Some(i)) => i.clone(),
                (None, None) => ServerIdentity::generate(cfg.key_bits)?,
            };
            Ok((id, None))
        }
        Some(dir) => {
            identity::prepare_data_dir(dir)?;
            let lock = identity::DirLock::acquire(dir)?;
            let id = match adopted.or_else(|| cfg.identity.clone()) {
                Some(a) => {
                    a.save(dir)?;
                    a
                }
                None => {
                    let (id, created) = ServerIdentity::load_or_create(dir, cfg.key_bits)?;
                    if created {
                        info!(id = %id.id, dir = %dir.display(), "created a new registry identity");
                    }
                    id
                }
            };
            identity::check_private_modes(dir, cfg.strict_perms)?;
            Ok((id, Some(lock)))
        }
    }
}

fn advertised(cfg: &ServerConfig, bound: SocketAddr) -> String {
    if let Some(a) = &cfg.advertise {
        return a.clone();
    }
    if bound.ip().is_unspecified() {
        let loopback = if bound.is_ipv4() {
            "127.0.0.1"
        } else {
            "[::1]"
        };
        warn!("listening on {bound}; advertising {loopback}:{} in regCred.dat (set --advertise for other hosts)", bound.port());
        return format!("{loopback}:{}", bound.port());
    }
    bound.to_string()
}

impl Server {
    /// Load or create the identity, open the store
    /// ([`ServerConfig::store_config`]) with the server's policy, bind,
    /// write regCred.dat and start serving.
    pub async fn start(cfg: ServerConfig) -> Result<Server, ServerError> {
        let store = cfg.store_config();
        Self::start_inner(cfg, move |own_id, policy, metrics| async move {
            store
                .open(own_id, policy, Some(metrics.store_commit_duration.clone()))
                .await
        })
        .await
    }

    /// Like [`Server::start`], with the registry kept by a [`Backend`]
    /// written elsewhere: `backend` is called with the registry's own ID
    /// (from its identity) and the policy it must apply
    /// ([`ServerConfig::policy`]) once the identity is loaded. The data
    /// directory still holds the identity and regCred.dat.
    pub async fn start_with_backend<F, Fut>(
        cfg: ServerConfig,
        backend: F,
    ) -> Result<Server, ServerError>
    where
        F: FnOnce(NodeId, Policy) -> Fut,
        Fut: std::future::Future<Output = Result<Arc<dyn Backend>, StoreError>>,
    {
        Self::start_inner(cfg, |own_id, policy, _| backend(own_id, policy)).await
    }

    async fn start_inner<F, Fut>(cfg: ServerConfig, backend: F) -> Result<Server, ServerError>
    where
        F: FnOnce(NodeId, Policy, Arc<crate::metrics::Metrics>) -> Fut,
        Fut: std::future::Future<Output = Result<Arc<dyn Backend>, StoreError>>,
    {
        let key_limits = crate::wire::KeyLimits::with_max_bits(cfg.max_key_bits)
            .map_err(|e| ServerError::Config(format!("max_key_bits: {e}")))?;
        let cfg2 = cfg.clone();
        let (identity, lock) = tokio::task::spawn_blocking(move || resolve_identity(&cfg2))
            .await
            .expect("identity task")?;
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let backend = backend(identity.id, cfg.policy(), metrics.clone()).await?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|err| ServerError::Listen {
                addr: cfg.listen,
                err,
            })?;
        let addr = listener.local_addr().map_err(|err| ServerError::Listen {
            addr: cfg.listen,
            err,
        })?;
        let endpoint = advertised(&cfg, addr);
        let mut regcred = identity.regcred(&cfg.name, &endpoint);
        regcred.endpoints.extend(
            cfg.advertise_more
                .iter()
                .filter(|e| **e != endpoint)
                .cloned(),
        );
        let regcred_path = cfg
            .regcred_path
            .clone()
            .or_else(|| cfg.data_dir.as_ref().map(|d| d.join("regCred.dat")));
        if let Some(p) = &regcred_path {
            regcred.save(p).map_err(|e| {
                ServerError::RegCred(format!("cannot write regCred: {}", crate::ErrorChain(&e)))
            })?;
        }
        let session_cfg = Arc::new(SessionConfig {
            allow_anonymous_reads: cfg.allow_anonymous_reads,
            legacy_reply_limit: cfg.legacy_reply_limit,
            registry_token: identity.token(&cfg.name, &endpoint),
            version: crate::wire::GO_SERVER_VERSION,
            hold: cfg.hold,
            idle_timeout: cfg.idle_timeout,
            key_limits,
        });
        let limiter = cfg
            .max_registrations_per_hour
            .map(limits::RegistrationLimiter::new);
        let sweep_every = cfg.sweep_interval.max(Duration::from_millis(10));
        let shared = Arc::new(Shared {
            cfg,
            identity,
            backend: backend.clone(),
            session_cfg,
            metrics: metrics.clone(),
            limiter,
        });
        let (shutdown, rx) = watch::channel(false);
        tokio::spawn(sweep_loop(
            backend.clone(),
            metrics.clone(),
            sweep_every,
            rx.clone(),
        ));
        let active = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(listener, shared, rx, lock, active.clone()));
        info!(%addr, regcred = ?regcred_path, "xlreg registry listening");
        Ok(Server {
            addr,
            regcred,
            regcred_path,
            backend,
            metrics,
            shutdown,
            task: Some(task),
            active,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The credentials clients need (endpoint = the advertised address).
    pub fn regcred(&self) -> &RegCred {
        &self.regcred
    }

    /// Where regCred.dat was written, if anywhere.
    pub fn regcred_path(&self) -> Option<&Path> {
        self.regcred_path.as_deref()
    }

    /// Connections being served right now (at most `max_connections`).
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// The backend that performs this server's registry requests.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// This server's metrics (what `/metrics` serves).
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// Stop accepting, let sessions finish their current request (at most
    /// a few seconds), close the store.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Remove expired clusters in the background, a bounded batch at a time
/// (each its own transaction), and store clusters' last activity so
/// expiry survives a restart.
async fn sweep_loop(
    backend: Arc<dyn Backend>,
    metrics: Arc<crate::metrics::Metrics>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    use crate::registry::{BackendError, BackendExt, Expire, SWEEP_BATCH};
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = dispatch::shutdown_requested(&mut shutdown) => return,
        }
        // A backlog drains batch by batch while full batches come back.
        loop {
            match backend.call(Expire(SWEEP_BATCH)).await {
                Ok(n) => {
                    if n > 0 {
                        metrics.expired_clusters.inc_by(n as u64);
                        info!(expired = n, "expired clusters removed");
                    }
                    if n < SWEEP_BATCH {
                        break;
                    }
                }
                Err(BackendError::Closed) => return,
                Err(e) => {
                    warn!(error = %e, "expiry sweep failed; will retry");
                    break;
                }
            }
        }
    }
}

/// How long shutdown waits for sessions before dropping them.
const DRAIN: Duration = Duration::from_secs(5);

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    lock: Option<identity::DirLock>,
    active: Arc<AtomicUsize>,
) {
    let limit = Arc::new(Semaphore::new(shared.cfg.max_connections.max(1)));
    let mut sessions = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = dispatch::shutdown_requested(&mut shutdown) => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = dispatch::shutdown_requested(&mut shutdown) => break,
        };
        let shared = shared.clone();
        let rx = shutdown.clone();
        let active = active.clone();
        active.fetch_add(1, Ordering::Relaxed);
        sessions.spawn(async move {
            connection::serve(stream, peer, shared, rx).await;
            active.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
        // Reap finished sessions so the set does not grow.
        while sessions.try_join_next().is_some() {}
    }
    drop(listener);
    let active = sessions.len();
    if active > 0 {
        info!(active, "shutting down: waiting for sessions");
    }
    if tokio::time::timeout(DRAIN, async {
        while sessions.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        warn!(
            left = sessions.len(),
            "sessions still open after the drain period; closing them"
        );
        sessions.abort_all();
        while sessions.join_next().await.is_some() {}
    }
    let backend = shared.backend.clone();
    drop(shared);
    backend.shutdown().await;
    drop(lock);
    info!("xlreg registry stopped");
}
