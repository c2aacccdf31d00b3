//! The request-level seam: a [`Backend`] performs registry requests.
//!
//! Why a trait: the server holds an `Arc<dyn Backend>` and never knows
//! where the registry lives. The in-process [`RegistryService`] (rules in
//! memory, one writer, group commit, a [`Store`] underneath) is one
//! implementation; a shared database (PostgreSQL) is another, written as a
//! new file implementing this trait, without touching the session or the
//! connection code.
//!
//! What a backend owes its callers (see the module docs of
//! [`crate::registry`] for how the work is split with the rules):
//!
//! * [`Backend::perform`] performs one request atomically, deciding with
//!   the rule functions of [`super::rules`] ([`Registry::decide`](super::Registry::decide)) on a
//!   consistent view of the rows involved;
//! * an `Ok` is returned only after the change is durable;
//! * refusals are [`BackendError::Rule`] carrying the exact text the client
//!   gets, failures of the storage are [`BackendError::Storage`] (nothing
//!   was applied);
//! * [`Backend::subscribe`] wakes held GetClusters when a cluster's
//!   committed members change.
//!
//! [`RegistryService`]: super::RegistryService
//! [`Store`]: super::Store

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

use std::time::Duration;

use super::listing::{Listing, ListingPage};
use super::request::{Answer, GetCluster, Members, Op, Request, Watch, Watched};
use super::rules::RuleError;
use super::store::StoreError;
use crate::wire::NodeId;

/// A boxed, sendable future: what an object-safe async trait method
/// returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a backend did not perform a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The request broke a rule. Display is the ErrDesc for the wire.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// The storage failed; nothing was applied. The client gets only this
    /// text; the cause (with its path or URL) is in the source chain.
    #[error("{}", crate::wire::msg::STORAGE_FAILURE)]
    Storage(#[source] Arc<StoreError>),
    /// The backend is shutting down.
    #[error("registry is shutting down")]
    Closed,
    /// The backend answered a request with the answer of another (a bug
    /// in the backend).
    #[error("registry backend answered {op} with {answer}")]
    WrongAnswer {
        /// The request's [`Request::op_name`].
        op: &'static str,
        /// The answer it gave.
        answer: String,
    },
}

impl From<StoreError> for BackendError {
    fn from(e: StoreError) -> Self {
        BackendError::Storage(Arc::new(e))
    }
}

/// Where the registry's state lives, seen one request at a time.
///
/// Object-safe (`Arc<dyn Backend>`): the async methods return
/// [`BoxFuture`]s. Every registry request goes through the one call
/// [`Backend::perform`]; the others are not requests (wake-ups, listings,
/// readiness, shutdown). Use [`perform_held`] to run a [`Request`] as the
/// server does (it holds GetClusters using [`Backend::perform`] and
/// [`Backend::subscribe`]), or [`BackendExt::call`] for a typed answer.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Perform one request atomically and answer it once its change is
    /// durable. A GetCluster is answered at once with a consistent
    /// snapshot of the committed members (`hold` is ignored here;
    /// [`perform_held`] does the holding).
    fn perform(&self, req: Request) -> BoxFuture<'_, Result<Answer, BackendError>>;

    /// A receiver whose value changes (at least) every time the committed
    /// members of `cluster` change, or the cluster goes (deleted or
    /// expired). It may also change for other clusters; holders re-read
    /// and wait again.
    fn subscribe(&self, cluster: &NodeId) -> watch::Receiver<u64>;

    /// One page of the live clusters, for the status page and the admin
    /// API: at most [`ListingPage::limit`] (itself at most
    /// [`MAX_LISTING_PAGE`](super::MAX_LISTING_PAGE)) clusters in the order asked, with their
    /// members, and the totals. Default: an empty listing.
    fn listing(&self, page: ListingPage) -> BoxFuture<'_, Result<Listing, BackendError>> {
        let _ = page;
        Box::pin(std::future::ready(Ok(Listing::default())))
    }

    /// Stop taking requests, finish the ones accepted, release the
    /// storage. Idempotent.
    fn shutdown(&self) -> BoxFuture<'_, ()>;

    /// Where the state lives (a path, `<ephemeral>`, a URL without
    /// secrets), for logs.
    fn location(&self) -> String;

    /// Is the storage usable right now (`/readyz`)? Default: yes.
    fn ping(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Typed calls on any [`Backend`]: `backend.call(Create { .. })` answers
/// with the [`ClusterFacts`](super::ClusterFacts), through the one
/// [`Backend::perform`] (no hold).
pub trait BackendExt: Backend {
    /// Perform `op` and return its typed answer.
    fn call<O: Op + Send + 'static>(
        &self,
        op: O,
    ) -> BoxFuture<'_, Result<O::Output, BackendError>> {
        let req: Request = op.into();
        let name = req.op_name();
        let fut = self.perform(req);
        Box::pin(async move {
            O::output(fut.await?).map_err(|a| BackendError::WrongAnswer {
                op: name,
                answer: format!("{a:?}"),
            })
        })
    }
}

impl<B: Backend + ?Sized> BackendExt for B {}

/// Perform one request on `backend` as the server does: the one dispatch
/// path shared by the server's connections and the fuzz driver. A
/// GetCluster with a non-zero `hold` waits (at most that long) until its
/// cluster is complete.
pub async fn perform_held(backend: &dyn Backend, req: Request) -> Result<Answer, BackendError> {
    match req {
        Request::GetCluster(g) if !g.hold.is_zero() => {
            get_cluster_held(backend, &g).await.map(Answer::Members)
        }
        Request::Watch(w) if !w.hold.is_zero() => {
            watch_held(backend, &w).await.map(Answer::Watched)
        }
        req => backend.perform(req).await,
    }
}

/// A GetCluster now: through [`Backend::perform`].
async fn get_now(backend: &dyn Backend, req: &GetCluster) -> Result<Members, BackendError> {
    let req = GetCluster {
        hold: Duration::ZERO,
        ..req.clone()
    };
    backend.call(req).await
}

/// GetCluster with its hold: answer at once when the cluster is complete
/// (or no hold was asked for), else wait for changes until it is or the
/// hold expires, then answer with what there is.
pub async fn get_cluster_held(
    backend: &dyn Backend,
    req: &GetCluster,
) -> Result<Members, BackendError> {
    let deadline = tokio::time::Instant::now() + req.hold;
    let first = get_now(backend, req).await?;
    if first.complete || req.hold.is_zero() {
        return Ok(first);
    }
    let mut changes = backend.subscribe(&first.cluster_id);
    loop {
        // Read again after subscribing, so a change between the first
        // read and the subscription is not missed.
        let m = get_now(backend, req).await?;
        if m.complete || tokio::time::Instant::now() >= deadline {
            return Ok(m);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            // Hold expired or the backend is gone: answer with what there is.
            Ok(Err(_)) | Err(_) => return get_now(backend, req).await,
        }
    }
}

/// A Watch now: through [`Backend::perform`].
async fn watch_now(backend: &dyn Backend, req: &Watch) -> Result<Watched, BackendError> {
    let req = Watch {
        hold: Duration::ZERO,
        ..req.clone()
    };
    backend.call(req).await
}

/// Watch with its hold: answer as soon as the cluster's committed version
/// is above the one the watcher knows, else wait for changes until it is
/// or the hold expires, then answer with the current state (the same
/// version: the watcher asks again). A cluster that is deleted or expires
/// while watched ends the wait with its error.
pub async fn watch_held(backend: &dyn Backend, req: &Watch) -> Result<Watched, BackendError> {
    let deadline = tokio::time::Instant::now() + req.hold;
    let first = watch_now(backend, req).await?;
    if first.version > req.known || req.hold.is_zero() {
        return Ok(first);
    }
    let mut changes = backend.subscribe(&first.cluster_id);
    loop {
        // Read again after subscribing, so a change between the first
        // read and the subscription is not missed.
        let w = watch_now(backend, req).await?;
        if w.version > req.known || tokio::time::Instant::now() >= deadline {
            return Ok(w);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return watch_now(backend, req).await,
        }
    }
}
