//! The in-process [`Backend`]: the whole registry in memory, one writer,
//! group commit, over a [`Store`].
//!
//! Why a single writer: rules such as "a slot is used once" and "a name
//! exists once" are then decided in one order with no races (spec §16.25:
//! the Go server checks, then inserts, without a lock), and the writer can
//! group-commit: it drains every request that queued while the previous
//! transaction was being fsynced and commits them together. A reply is
//! sent only after its change is durable; readers never see uncommitted
//! members. With a store that does not wait for a device
//! ([`MemoryStore`], ephemeral registries) requests are decided and
//! committed inline under the lock instead: there is nothing to wait for,
//! so no thread hop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::{oneshot, watch};

use super::backend::{Backend, BackendError, BoxFuture};
use super::listing::{page_of, Listing, ListingPage};
use super::memory::MemoryStore;
use super::request::{Answer, Request};
use super::rules::{Policy, Registry, RuleError};
use super::store::{Store, StoreError};
use crate::wire::NodeId;

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 1024;

type Reply<T> = oneshot::Sender<Result<T, BackendError>>;

/// A write queued for the writer thread: a request and where its answer
/// goes, or a readiness ping for the store.
enum Job {
    Op(Request, Reply<Answer>),
    Ping(Reply<()>),
}

/// A write decided, waiting for its batch to be stored.
enum Decided {
    Op(Result<Answer, RuleError>, Reply<Answer>),
    Ping(Reply<()>),
}

impl Job {
    fn decide(self, reg: &mut Registry) -> Decided {
        match self {
            Job::Op(req, reply) => Decided::Op(reg.decide(req), reply),
            Job::Ping(reply) => Decided::Ping(reply),
        }
    }
}

/// The answer to a write decided as `decided` in a batch stored as
/// `stored`: a rule refusal stands; an accepted write fails with its batch.
fn outcome<T>(
    decided: Result<T, RuleError>,
    stored: &Result<(), Arc<StoreError>>,
) -> Result<T, BackendError> {
    match (decided, stored) {
        (Err(rule), _) => Err(BackendError::Rule(rule)),
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(BackendError::Storage(e.clone())),
    }
}

impl Decided {
    fn send(self, stored: &Result<(), Arc<StoreError>>) {
        // A requester that went away does not need its answer.
        let _ = match self {
            Decided::Op(r, reply) => reply.send(outcome(r, stored)).is_ok(),
            Decided::Ping(reply) => reply.send(outcome(Ok(()), stored)).is_ok(),
        };
    }
}

/// How writes reach the store.
enum Writes {
    /// The store is cheap: decide, append and commit under the lock.
    Inline(Mutex<Box<dyn Store>>),
    /// The store waits for a device: a writer thread group-commits.
    Writer {
        /// Requests for the writer thread; `None` once closed.
        jobs: Mutex<Option<mpsc::Sender<Job>>>,
        thread: Mutex<Option<JoinHandle<()>>>,
        /// Becomes `true` (or closed) when the writer thread has finished.
        stopped: watch::Receiver<bool>,
    },
}

/// The shared registry: cheap to call from many sessions.
pub struct RegistryService {
    state: Arc<Mutex<Registry>>,
    writes: Writes,
    closed: AtomicBool,
    changed: Arc<watch::Sender<u64>>,
    location: String,
    commit_seconds: CommitObserver,
}

/// Where the writer records each commit's duration, once the server set
/// it ([`RegistryService::observe_commits`]).
type CommitObserver = Arc<std::sync::OnceLock<prometheus_client::metrics::histogram::Histogram>>;

impl std::fmt::Debug for RegistryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryService({})", self.location)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the registry half-updated
    // in a way that matters more than losing the server, so keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RegistryService {
    /// Load the registry from `store` (through the rules'
    /// [`Registry::restore`]) and start serving it with `policy` (TTLs
    /// and limits).
    pub fn start(
        mut store: Box<dyn Store>,
        own_id: NodeId,
        policy: Policy,
    ) -> Result<Arc<Self>, StoreError> {
        let location = store.location().to_string();
        let changes = store.load()?;
        let mut registry = Registry::restore(own_id, changes)
            .map_err(|e| StoreError::new(location.clone(), "inconsistent data", e))?;
        registry.set_policy(policy);
        registry.start_clock(super::unix_now_ms());
        let commit_seconds = CommitObserver::default();
        let state = Arc::new(Mutex::new(registry));
        let changed = Arc::new(watch::channel(0u64).0);
        let writes = if store.waits_for_device() {
            let (tx, rx) = mpsc::channel::<Job>();
            let (state, changed) = (state.clone(), changed.clone());
            let (stopped_tx, stopped) = watch::channel(false);
            let observe = commit_seconds.clone();
            let thread = std::thread::Builder::new()
                .name("xlreg-store".into())
                .spawn(move || {
                    writer_loop(store, state, rx, changed, observe);
                    let _ = stopped_tx.send(true);
                })
                .map_err(|e| StoreError::new(location.clone(), "cannot start the writer", e))?;
            Writes::Writer {
                jobs: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                stopped,
            }
        } else {
            Writes::Inline(Mutex::new(store))
        };
        Ok(Arc::new(RegistryService {
            state,
            writes,
            closed: AtomicBool::new(false),
            changed,
            location,
            commit_seconds,
        }))
    }

    /// Record every store commit's duration in `h` (the server's
    /// `xlreg_store_commit_duration_seconds`). First call wins.
    pub fn observe_commits(&self, h: prometheus_client::metrics::histogram::Histogram) {
        let _ = self.commit_seconds.set(h);
    }

    /// An ephemeral registry owned by `own_id`: kept in memory only.
    pub fn ephemeral(own_id: NodeId, policy: Policy) -> Arc<Self> {
        Self::start(Box::new(MemoryStore::new()), own_id, policy)
            .expect("an empty memory store always loads")
    }

    /// Where the registry is stored (a path, `:memory:`, `<ephemeral>`).
    pub fn store_path(&self) -> &str {
        &self.location
    }

    /// A read on committed state: decided under the lock, no store. A
    /// GetCluster restarts its cluster's TTL clock (stored by the
    /// sweeper).
    fn read(&self, req: Request) -> Result<Answer, BackendError> {
        let mut reg = lock(&self.state);
        reg.set_now(super::unix_now_ms());
        let r = reg.decide(req);
        if let Ok(Answer::Members(m)) = &r {
            reg.touch(&m.cluster_id);
        }
        r.map_err(BackendError::Rule)
    }

    /// Decide a write and return its answer once the change is durable.
    async fn write(&self, job: Job) -> Result<(), BackendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(BackendError::Closed);
        }
        match &self.writes {
            Writes::Inline(store) => {
                let mut reg = lock(&self.state);
                reg.set_now(super::unix_now_ms());
                if let Job::Ping(_) = &job {
                    if let Err(e) = lock(store).ping() {
                        job.decide(&mut reg).send(&Err(Arc::new(e)));
                        return Ok(());
                    }
                }
                let decided = job.decide(&mut reg);
                if !reg.pending().is_empty() {
                    if let Err(e) = lock(store).append(reg.pending()) {
                        reg.rollback();
                        decided.send(&Err(Arc::new(e)));
                        return Ok(());
                    }
                    reg.commit();
                    self.changed.send_modify(|v| *v += 1);
                }
                decided.send(&Ok(()));
                Ok(())
            }
            Writes::Writer { jobs, .. } => {
                let guard = lock(jobs);
                let tx = guard.as_ref().ok_or(BackendError::Closed)?;
                tx.send(job).map_err(|_| BackendError::Closed)
            }
        }
    }

    /// Perform a write request: queue it (or decide it inline) and wait
    /// for its answer.
    async fn perform_write(&self, req: Request) -> Result<Answer, BackendError> {
        let (reply, rx) = oneshot::channel();
        self.write(Job::Op(req, reply)).await?;
        rx.await.map_err(|_| BackendError::Closed)?
    }

    /// One page of the live committed clusters, read under the lock.
    fn list(&self, page: &ListingPage) -> Listing {
        let mut reg = lock(&self.state);
        reg.set_now(super::unix_now_ms());
        page_of(&reg, page)
    }

    /// Run `f` on the committed registry (listings, tests, stats), with
    /// the clock set to now so expired clusters are not listed.
    pub fn with_registry<R>(&self, f: impl FnOnce(&Registry) -> R) -> R {
        let mut reg = lock(&self.state);
        reg.set_now(super::unix_now_ms());
        f(&reg)
    }

    /// Stop accepting requests, let the writer finish what is queued, and
    /// wait for it. Idempotent; blocks (see [`Backend::shutdown`] for the
    /// async form).
    pub fn close(&self) {
        self.stop_taking();
        if let Writes::Writer { thread, .. } = &self.writes {
            if let Some(h) = lock(thread).take() {
                let _ = h.join();
            }
        }
    }

    /// Refuse new requests; the writer ends once the queue is drained.
    fn stop_taking(&self) {
        self.closed.store(true, Ordering::Release);
        if let Writes::Writer { jobs, .. } = &self.writes {
            drop(lock(jobs).take());
        }
    }
}

impl Drop for RegistryService {
    fn drop(&mut self) {
        self.close();
    }
}

impl Backend for RegistryService {
    fn perform(&self, req: Request) -> BoxFuture<'_, Result<Answer, BackendError>> {
        if req.is_read() {
            return Box::pin(std::future::ready(self.read(req)));
        }
        Box::pin(self.perform_write(req))
    }

    fn listing(&self, page: ListingPage) -> BoxFuture<'_, Result<Listing, BackendError>> {
        Box::pin(std::future::ready(Ok(self.list(&page))))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.write(Job::Ping(reply)).await?;
            rx.await.map_err(|_| BackendError::Closed)?
        })
    }

    fn subscribe(&self, _cluster: &NodeId) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stop_taking();
            if let Writes::Writer { stopped, .. } = &self.writes {
                // Wait without blocking a runtime thread; the join below
                // is then immediate.
                let _ = stopped.clone().wait_for(|s| *s).await;
            }
            self.close();
        })
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

fn writer_loop(
    mut store: Box<dyn Store>,
    state: Arc<Mutex<Registry>>,
    rx: mpsc::Receiver<Job>,
    changed: Arc<watch::Sender<u64>>,
    commit_seconds: CommitObserver,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let (decided, changes) = {
            let mut reg = lock(&state);
            reg.set_now(super::unix_now_ms());
            let decided: Vec<Decided> = jobs.into_iter().map(|j| j.decide(&mut reg)).collect();
            (decided, reg.pending().to_vec())
        };
        let started = std::time::Instant::now();
        let stored = if changes.is_empty() {
            // A readiness ping goes to the storage itself.
            if decided.iter().any(|d| matches!(d, Decided::Ping(_))) {
                store.ping().map_err(Arc::new)
            } else {
                Ok(())
            }
        } else {
            let r = store.append(&changes).map_err(Arc::new);
            if let Some(h) = commit_seconds.get() {
                h.observe(started.elapsed().as_secs_f64());
            }
            r
        };
        {
            let mut reg = lock(&state);
            match &stored {
                Ok(()) => {
                    reg.commit();
                }
                Err(e) => {
                    tracing::error!(error = %e, cause = %e.cause, requests = decided.len(), "store commit failed; batch rolled back");
                    reg.rollback();
                }
            }
        }
        if !changes.is_empty() && stored.is_ok() {
            changed.send_modify(|v| *v += 1);
        }
        for d in decided {
            d.send(&stored);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::registry::backend::{perform_held, BackendExt};
    use crate::registry::request::{ClusterTarget, Create, GetCluster, Join, Joined};
    use crate::registry::rules::MemberRecord;
    use crate::registry::SqliteStore;
    use crate::wire::Which;

    fn rec(i: u32) -> MemberRecord {
        let mut id = [0u8; 20];
        id[..4].copy_from_slice(&i.to_le_bytes());
        MemberRecord {
            id: NodeId::from_bytes(&id).unwrap(),
            name: format!("m{i}").into_bytes().into(),
            token: format!("t{i}").into_bytes().into(),
        }
    }

    fn svc() -> Arc<RegistryService> {
        RegistryService::start(
            Box::new(SqliteStore::in_memory().unwrap()),
            NodeId::from_bytes(&[0xee; 20]).unwrap(),
            Policy::default(),
        )
        .unwrap()
    }

    fn create(name: &str, max_size: u32) -> Create {
        Create {
            name: name.as_bytes().to_vec(),
            max_size,
            attrs: 0,
            ep_count: 1,
            ttl_ms: None,
            owner: None,
        }
    }

    fn join(c: NodeId, i: u32) -> Join {
        Join {
            cluster: ClusterTarget::Id(c),
            record: rec(i),
            endpoints: 1,
        }
    }

    fn get(c: NodeId, hold: Duration) -> Request {
        Request::GetCluster(GetCluster {
            cluster: ClusterTarget::Id(c),
            which: Which::ALL,
            budget: 1 << 20,
            hold,
        })
    }

    async fn which(s: &RegistryService, req: Request) -> Which {
        match perform_held(s, req).await.unwrap() {
            Answer::Members(m) => m.selection.which,
            a => panic!("GetCluster answered {a:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_joins_never_share_a_slot() {
        let s = svc();
        let c = s.call(create("c", 64)).await.unwrap().id;
        let mut tasks = Vec::new();
        for i in 0..80 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move { s.call(join(c, i)).await }));
        }
        let mut slots = Vec::new();
        let mut full = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(j) => slots.push(j.index),
                Err(BackendError::Rule(RuleError::Full)) => full += 1,
                Err(e) => panic!("{e}"),
            }
        }
        slots.sort();
        assert_eq!(slots, (0..64).collect::<Vec<_>>());
        assert_eq!(full, 16);
    }

    #[tokio::test]
    async fn held_get_returns_when_the_last_member_joins() {
        let s = svc();
        let c = s.call(create("c", 2)).await.unwrap().id;
        s.call(join(c, 0)).await.unwrap();
        let s2 = s.clone();
        let started = std::time::Instant::now();
        let getter = tokio::spawn(async move { which(&s2, get(c, Duration::from_secs(10))).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !getter.is_finished(),
            "held while the cluster is incomplete"
        );
        s.call(join(c, 1)).await.unwrap();
        assert_eq!(getter.await.unwrap(), Which(0b11));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn held_get_gives_up_at_the_bound() {
        let s = svc();
        let c = s.call(create("c", 3)).await.unwrap().id;
        s.call(join(c, 0)).await.unwrap();
        assert_eq!(which(&s, get(c, Duration::from_millis(50))).await, Which(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ephemeral_registry_applies_inline_with_the_same_rules() {
        let s =
            RegistryService::ephemeral(NodeId::from_bytes(&[0xee; 20]).unwrap(), Policy::default());
        let c = s.call(create("c", 2)).await.unwrap().id;
        let mut tasks = Vec::new();
        for i in 0..5 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move { s.call(join(c, i)).await }));
        }
        let ok = futures_count(tasks).await;
        assert_eq!(ok, 2, "two slots, five racers");
        assert_eq!(which(&s, get(c, Duration::ZERO)).await, Which(0b11));
        s.close();
        assert!(matches!(
            s.call(create("d", 3)).await,
            Err(BackendError::Closed)
        ));
    }

    async fn futures_count(
        tasks: Vec<tokio::task::JoinHandle<Result<Joined, BackendError>>>,
    ) -> usize {
        let mut n = 0;
        for t in tasks {
            n += t.await.unwrap().is_ok() as usize;
        }
        n
    }

    #[tokio::test]
    async fn closed_service_refuses_requests() {
        let s = svc();
        s.shutdown().await;
        assert!(matches!(
            s.call(create("c", 3)).await,
            Err(BackendError::Closed)
        ));
    }

    /// A store whose appends fail: requests are refused as storage
    /// failures (with the cause kept) and nothing becomes visible.
    struct BrokenStore;

    impl Store for BrokenStore {
        fn load(&mut self) -> Result<Vec<super::super::rules::Change>, StoreError> {
            Ok(Vec::new())
        }
        fn append(&mut self, _: &[super::super::rules::Change]) -> Result<(), StoreError> {
            Err(StoreError::new(
                "broken.db",
                "commit",
                std::io::Error::other("disk on fire"),
            ))
        }
        fn waits_for_device(&self) -> bool {
            true
        }
        fn location(&self) -> &str {
            "broken.db"
        }
    }

    #[tokio::test]
    async fn a_failed_append_refuses_the_request_and_applies_nothing() {
        let s = RegistryService::start(Box::new(BrokenStore), NodeId::random(), Policy::default())
            .unwrap();
        let e = s.call(create("c", 3)).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "registry storage failure; request not applied"
        );
        let cause = std::error::Error::source(&e).expect("the store error is the source");
        assert_eq!(cause.to_string(), "registry database broken.db: commit");
        assert_eq!(
            std::error::Error::source(cause).map(|c| c.to_string()),
            Some("disk on fire".to_string())
        );
        assert_eq!(s.with_registry(|r| r.clusters().count()), 0);
        assert_eq!(
            s.with_registry(|r| r.find(&ClusterTarget::Name(b"c"[..].into()))),
            Err(RuleError::NoSuchName),
            "rolled back, not left pending"
        );
    }
}
