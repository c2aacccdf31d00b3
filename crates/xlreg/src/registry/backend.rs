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
//! * each method performs one request atomically, deciding with the rule
//!   functions of [`super::rules`] on a consistent view of the rows
//!   involved;
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

use super::request::{
    Answer, Create, Delete, GetCluster, Join, Joined, Members, Register, Request,
};
use super::rules::{ClusterFacts, Registry, RuleError};
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
    #[error("registry storage failure; request not applied")]
    Storage(#[source] Arc<StoreError>),
    /// The backend is shutting down.
    #[error("registry is shutting down")]
    Closed,
}

impl From<StoreError> for BackendError {
    fn from(e: StoreError) -> Self {
        BackendError::Storage(Arc::new(e))
    }
}

/// Where the registry's state lives, seen one request at a time.
///
/// Object-safe (`Arc<dyn Backend>`): the async methods return
/// [`BoxFuture`]s. Use [`perform`] to run a [`Request`]; it also holds
/// GetClusters using [`Backend::get_cluster`] and [`Backend::subscribe`].
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Register a member ID (or assign a fresh one) for a sig key.
    fn register(&self, req: Register) -> BoxFuture<'_, Result<NodeId, BackendError>>;

    /// Create a cluster, or return the committed one of that name.
    fn create(&self, req: Create) -> BoxFuture<'_, Result<ClusterFacts, BackendError>>;

    /// Join a cluster; the slot is decided inside the backend's atomic
    /// step so that two members never get the same one.
    fn join(&self, req: Join) -> BoxFuture<'_, Result<Joined, BackendError>>;

    /// A consistent snapshot of one cluster's committed members, now
    /// (`req.hold` is ignored here; [`perform`] does the holding).
    fn get_cluster<'a>(
        &'a self,
        req: &'a GetCluster,
    ) -> BoxFuture<'a, Result<Members, BackendError>>;

    /// A receiver whose value changes (at least) every time the committed
    /// members of `cluster` change. It may also change for other clusters;
    /// holders re-read and wait again.
    fn subscribe(&self, cluster: &NodeId) -> watch::Receiver<u64>;

    /// Stop taking requests, finish the ones accepted, release the
    /// storage. Idempotent.
    fn shutdown(&self) -> BoxFuture<'_, ()>;

    /// Where the state lives (a path, `<ephemeral>`, a URL without
    /// secrets), for logs.
    fn location(&self) -> String;

    /// Delete the live cluster called `name` (an operator's request): it
    /// is gone for every request, its slots freed, its name free for a new
    /// cluster. `Ok` only once that is durable. Default: unsupported.
    fn delete_cluster(&self, name: Vec<u8>) -> BoxFuture<'_, Result<NodeId, BackendError>> {
        let _ = name;
        Box::pin(std::future::ready(Err(BackendError::Rule(
            RuleError::Unsupported("delete clusters"),
        ))))
    }

    /// Delete a cluster at the request of one of its members (the wire
    /// extension); like [`Backend::delete_cluster`] otherwise. Default:
    /// unsupported.
    fn delete(&self, req: Delete) -> BoxFuture<'_, Result<NodeId, BackendError>> {
        let _ = req;
        Box::pin(std::future::ready(Err(BackendError::Rule(
            RuleError::Unsupported("delete clusters"),
        ))))
    }

    /// Remove at most `limit` clusters whose TTL ran out (expired clusters
    /// are already invisible to every request; this frees their storage)
    /// and store clusters' last activity so expiry survives a restart.
    /// Returns how many expired. Default: nothing to do.
    fn expire(&self, limit: usize) -> BoxFuture<'_, Result<usize, BackendError>> {
        let _ = limit;
        Box::pin(std::future::ready(Ok(0)))
    }

    /// The whole registry, read in one consistent snapshot, for the
    /// status page and the admin API of a backend whose state is not in
    /// this process (the in-process service is read under its lock
    /// instead). Default: `None` (nothing to list).
    fn listing(&self) -> BoxFuture<'_, Result<Option<Registry>, BackendError>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Is the storage usable right now (`/readyz`)? Default: yes.
    fn ping(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Perform one request on `backend`: the one dispatch path shared by the
/// server's connections and the fuzz driver. A GetCluster with a non-zero
/// `hold` waits (at most that long) until its cluster is complete.
pub async fn perform(backend: &dyn Backend, req: Request) -> Result<Answer, BackendError> {
    match req {
        Request::Register(r) => backend.register(r).await.map(Answer::Registered),
        Request::Create(c) => backend.create(c).await.map(Answer::Created),
        Request::Join(j) => backend.join(j).await.map(Answer::Joined),
        Request::GetCluster(g) => get_cluster_held(backend, &g).await.map(Answer::Members),
        Request::Delete(d) => backend.delete(d).await.map(Answer::Deleted),
    }
}

/// GetCluster with its hold: answer at once when the cluster is complete
/// (or no hold was asked for), else wait for changes until it is or the
/// hold expires, then answer with what there is.
pub async fn get_cluster_held(
    backend: &dyn Backend,
    req: &GetCluster,
) -> Result<Members, BackendError> {
    let deadline = tokio::time::Instant::now() + req.hold;
    let first = backend.get_cluster(req).await?;
    if first.complete || req.hold.is_zero() {
        return Ok(first);
    }
    let mut changes = backend.subscribe(&first.cluster_id);
    loop {
        // Read again after subscribing, so a change between the first
        // read and the subscription is not missed.
        let m = backend.get_cluster(req).await?;
        if m.complete || tokio::time::Instant::now() >= deadline {
            return Ok(m);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            // Hold expired or the backend is gone: answer with what there is.
            Ok(Err(_)) | Err(_) => return backend.get_cluster(req).await,
        }
    }
}
